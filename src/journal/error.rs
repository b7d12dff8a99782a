//! What can go wrong with a journal, each variant worded for the operator who reads it:
//! which file, which byte, what is wrong, and what to do.
//!
//! The I/O error is a field rather than a `source`, as in `WorldFileError`: a caller
//! printing the whole chain would otherwise print it twice.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::Position;

/// Why a journal or snapshot file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file system call failed.
    #[error("{}: cannot {action}: {error}", path.display())]
    Io { path: PathBuf, action: &'static str, error: io::Error },
    /// A file carries a format version newer than this build reads.
    #[error(
        "{}: format version {version}, but this build of partner-credit reads versions up to \
         {known}: a newer partner-credit wrote it; run that version (or a newer one) on this directory",
        path.display()
    )]
    NewerFormat { path: PathBuf, version: u32, known: u32 },
    /// A file is damaged where a torn write cannot explain it; nothing was changed on disk.
    #[error("{}, byte {offset}: {problem}; {advice}", path.display())]
    Damaged { path: PathBuf, offset: u64, problem: String, advice: &'static str },
    /// Another journal (in this process or another) holds the directory's lock.
    #[error(
        "{}: the journal directory is in use (another partner-credit holds its lock {}); stop \
         that process first, or point this one at another directory",
        dir.display(),
        lock.display()
    )]
    Locked { dir: PathBuf, lock: PathBuf },
    /// An earlier write or fsync failed: the journal accepts no more records, and nothing
    /// submitted after that failure is durable.
    #[error("the journal stopped after a failed write or fsync: {0}")]
    Failed(Arc<JournalError>),
    /// A snapshot was asked to cover records that were never submitted.
    #[error("a snapshot cannot cover position {position:?}: the journal ends at {submitted:?}")]
    PositionAhead { position: Position, submitted: Position },
    /// The writer thread is gone (a `done` callback panicked on it).
    #[error("the journal's writer thread stopped")]
    WriterStopped,
}

/// For damage in the journal's segments: acknowledged records may sit beyond it.
pub(super) const ADVICE_RESTORE: &str =
    "this is not a torn write at the end of the journal, so acknowledged records may be lost \
     here and partner-credit will not cut them: restore the directory from a backup";

/// For a damaged newest snapshot: an older one and the journal after it may still be whole.
pub(super) const ADVICE_SNAPSHOT: &str =
    "restore the directory from a backup, or move this file out of the directory to start from \
     the previous snapshot (the journal is kept from it; opening checks it is all there)";

/// For a standalone snapshot file.
pub(super) const ADVICE_SNAPSHOT_FILE: &str = "the snapshot file cannot be used: use another copy";

pub(super) fn io_error(
    path: impl Into<PathBuf>,
    action: &'static str,
) -> impl FnOnce(io::Error) -> JournalError {
    let path = path.into();
    move |error| JournalError::Io { path, action, error }
}

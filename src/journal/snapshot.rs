//! Snapshot files: written atomically, read whole, and pruned in the journal directory.
//!
//! Invariants:
//! - a snapshot file is never seen half-written: it is written to `<name>.tmp`, fsynced,
//!   renamed, and the directory fsynced, so a crash leaves the old file set or the new one
//!   (plus a `.tmp` that the next open removes);
//! - pruning keeps the two newest snapshots and the journal from the older of them on, so
//!   the previous snapshot can still be replayed if the newest one is ever damaged;
//! - pruning deletes the oldest segment first, so what remains is always contiguous.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{io_error, ADVICE_SNAPSHOT_FILE};
use super::format::{self, HeaderProblem, SnapshotProblem, SNAPSHOT_HEADER_BYTES, TEMPORARY_SUFFIX};
use super::recover::Listing;
use super::{sync_directory, JournalError, Position, FORMAT_VERSION};

/// Writes a snapshot file at `path` atomically: `payload` is the state after every record
/// before `position`. For the operator's save action; the journal's own snapshots go
/// through [`Journal::write_snapshot`](super::Journal::write_snapshot).
pub fn write_snapshot_file(path: &Path, position: Position, payload: &[u8]) -> Result<(), JournalError> {
    let mut temporary = OsString::from(path.as_os_str());
    temporary.push(TEMPORARY_SUFFIX);
    let temporary = PathBuf::from(temporary);
    let written = write_file(&temporary, position, payload).and_then(|()| {
        fs::rename(&temporary, path).map_err(io_error(path, "rename the snapshot into place"))
    });
    if written.is_err() {
        // The temporary file is only clutter now; the error that matters is the one above.
        let _ = fs::remove_file(&temporary);
    }
    written?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    sync_directory(parent)
}

fn write_file(path: &Path, position: Position, payload: &[u8]) -> Result<(), JournalError> {
    let header = format::encode_snapshot_header(position.0, payload.len() as u64);
    let checksum = crc32c::crc32c_append(crc32c::crc32c(&header), payload);
    let mut file = File::create(path).map_err(io_error(path, "create the snapshot file"))?;
    file.write_all(&header)
        .and_then(|()| file.write_all(payload))
        .and_then(|()| file.write_all(&checksum.to_le_bytes()))
        .map_err(io_error(path, "write the snapshot file"))?;
    file.sync_all().map_err(io_error(path, "fsync the snapshot file"))
}

/// Reads a snapshot file written by [`write_snapshot_file`] or by a journal: the position it
/// covers and its payload. For the operator's load action.
pub fn read_snapshot_file(path: &Path) -> Result<(Position, Vec<u8>), JournalError> {
    read(path, ADVICE_SNAPSHOT_FILE)
}

/// Reads and checks a snapshot file; `advice` ends the message if it is damaged.
pub(super) fn read(path: &Path, advice: &'static str) -> Result<(Position, Vec<u8>), JournalError> {
    let mut bytes = fs::read(path).map_err(io_error(path, "read the snapshot file"))?;
    let damaged = |offset: u64, problem: String| JournalError::Damaged {
        path: path.to_path_buf(),
        offset,
        problem,
        advice,
    };
    let position = match format::decode_snapshot(&bytes) {
        Ok((position, _)) => position,
        Err(SnapshotProblem::Header(HeaderProblem::Newer(version))) => {
            return Err(JournalError::NewerFormat {
                path: path.to_path_buf(),
                version,
                known: FORMAT_VERSION,
            })
        }
        Err(SnapshotProblem::Header(problem)) => return Err(damaged(0, problem.describe("snapshot"))),
        Err(SnapshotProblem::Length { expected, actual }) => {
            return Err(damaged(
                20,
                format!("the header implies a file of {expected} bytes, but it has {actual}"),
            ))
        }
        Err(SnapshotProblem::Checksum) => {
            let offset = bytes.len() as u64 - format::SNAPSHOT_TRAILER_BYTES;
            return Err(damaged(offset, "the snapshot's checksum does not match its contents".into()));
        }
    };
    // Keep the payload in place rather than copying it out: a snapshot can be large.
    bytes.truncate(bytes.len() - format::SNAPSHOT_TRAILER_BYTES as usize);
    bytes.drain(..SNAPSHOT_HEADER_BYTES as usize);
    Ok((Position(position), bytes))
}

/// Deletes what the two newest snapshots no longer need: older snapshots, and segments that
/// end at or before the older kept snapshot. Never the newest segment, which the writer
/// appends to.
pub(super) fn prune(dir: &Path) -> Result<(), JournalError> {
    let listing = Listing::read(dir)?;
    let kept = listing.snapshots.len().saturating_sub(2);
    let Some((oldest_kept, _)) = listing.snapshots.get(kept) else { return Ok(()) };
    for pair in listing.segments.windows(2) {
        let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
        if next_first > oldest_kept {
            break;
        }
        fs::remove_file(path).map_err(io_error(path, "delete the segment"))?;
    }
    for (_, path) in &listing.snapshots[..kept] {
        fs::remove_file(path).map_err(io_error(path, "delete the snapshot"))?;
    }
    sync_directory(dir)
}

/// Makes `dir` a journal that starts from `payload`: every segment and snapshot in it is
/// deleted (see [`clear`]), and `payload` written as its only snapshot, at position 0. For
/// loading an operator's snapshot into an engine with a data directory: its next open
/// recovers it.
pub fn replace_with_snapshot(dir: &Path, payload: &[u8]) -> Result<(), JournalError> {
    let _lock = clear_locked(dir)?;
    write_snapshot_file(&dir.join(format::snapshot_name(0)), Position(0), payload)
}

/// Deletes every segment and snapshot in `dir` (creating it if missing), so that the next
/// open starts an empty journal. Under the directory's lock: refused while a journal holds
/// it.
pub fn clear(dir: &Path) -> Result<(), JournalError> {
    clear_locked(dir).map(drop)
}

fn clear_locked(dir: &Path) -> Result<super::lock::DirectoryLock, JournalError> {
    fs::create_dir_all(dir).map_err(io_error(dir, "create the journal directory"))?;
    let lock = super::lock::DirectoryLock::acquire(dir)?;
    let entries = fs::read_dir(dir).map_err(io_error(dir, "list the journal directory"))?;
    for entry in entries {
        let entry = entry.map_err(io_error(dir, "list the journal directory"))?;
        let ours = entry.file_name().to_str().and_then(format::file_kind).is_some();
        if ours {
            fs::remove_file(entry.path()).map_err(io_error(entry.path(), "delete a journal file"))?;
        }
    }
    sync_directory(dir)?;
    Ok(lock)
}

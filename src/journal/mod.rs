//! The journal: an append-only log of opaque records in a directory, with group commit,
//! and the snapshot files that let the log be shortened. It knows nothing of what a record
//! means: the engine decides what goes in a payload and replays it. This interface is the
//! seam a replicated log can later replace, so it stays narrow:
//!
//! ```text
//! Journal::open(JournalOptions) -> (Journal, Recovered { snapshot, records: RecordReader, cut })
//! journal.buffer() -> Vec<u8>                          a pooled payload buffer
//! journal.submit(payload, Option<Done>) -> Position    Done = Box<dyn FnOnce(Durability) + Send>
//! journal.after_durable(Done)                          Durability = Result<(), Arc<JournalError>>
//! journal.submitted(), journal.durable() -> Position;  journal.failure()
//! journal.write_snapshot(Position, &[u8]) -> PathBuf;  journal.close()
//! write_snapshot_file(path, Position, &[u8]), read_snapshot_file(path)
//! measure_fdatasync(dir, Duration) -> fsyncs per second
//! "always" | "interval:<ms>" | "never" .parse::<FsyncPolicy>()
//! ```
//!
//! A [`Position`] is a byte offset over the records of the whole journal: it counts every
//! byte of every record frame and no segment or file header, so it never depends on where
//! segments were cut. The position after a record is where the next one starts.
//!
//! # Files
//!
//! All integers are little-endian; every checksum is CRC-32C.
//!
//! - `journal-<first position, 20 digits>.pcj`, a segment: a header of magic `PCJOURNL`,
//!   format version (u32), the segment's first position (u64) and a checksum of those
//!   (u32); then record frames: payload length (u32), checksum of the length bytes then
//!   the payload (u32), payload. The writer rolls to a new segment once the current one
//!   reaches `segment_bytes` (so segments end on a record, a little past it).
//! - A segment's records may be followed by zeros up to the end of its file: the writer
//!   makes each new segment `segment_bytes` plus a little headroom long, of real zeros
//!   written and synced, before its header, and writes records over them at explicit
//!   offsets. Overwriting allocated blocks leaves the file's size and extents unchanged, so
//!   a group commit's fdatasync writes data only, not the inode (measured on ext4 with 4 KiB
//!   writes: about 10,000 fsyncs a second against 6,000 appending). A frame header of zeros
//!   (length 0, checksum 0) is never a record's, since an empty payload's checksum is not 0:
//!   zeros from there to the end of the file are the segment's end, in any segment. The next
//!   segment is prepared as `journal-prepared.tmp` and renamed when it gets its header.
//!   Journal bytes ([`Journal::submitted`], positions) count records only, never these zeros.
//! - [`FORMAT_VERSION`] stayed 1 with preallocation: a segment that ends at its last record,
//!   as earlier builds wrote them, is read as before, and every byte of a record is as it
//!   was. An earlier build would cut the newest segment's zeros off as a torn write and
//!   refuse an older segment's zeros as damage; going back to one is not supported.
//! - `snapshot-<position, 20 digits>.pcs`: magic `PCSNAPSH`, version (u32), the position it
//!   covers (u64), payload length (u64), payload, a checksum of everything before it (u32).
//!   Written to `<name>.tmp`, fsynced, renamed, directory fsynced.
//! - `lock`: held with `flock` while a journal is open (see `lock.rs`).
//!
//! # Promises
//!
//! - `done` runs once per record, on the writer thread, in submission order, when the
//!   record is durable under the [`FsyncPolicy`]: `Always`, after an fdatasync covering it;
//!   `Interval` and `Never`, once written to the file. It is told `Err` instead if a write or
//!   fsync failed first: the journal is then stopped for good ([`Journal::failure`]) and no
//!   answer may claim durability.
//! - `submit` blocks when [`QUEUE_MESSAGES_MAX`] messages wait for the writer
//!   (backpressure); a payload over [`RECORD_BYTES_MAX`] panics. The writer takes at most
//!   [`DRAIN_BYTES_MAX`] of payload into one write and one fsync.
//! - Recovery cuts a torn write off the end of the newest segment (and reports it in
//!   [`Recovered::cut`]) by zeroing its bytes and fsyncing, so the segment keeps its
//!   preallocated length and the records written after the cut read back; the writer
//!   continues after the last whole record, not at the file's length. A torn write
//!   includes a power loss's out-of-order pages: a whole aligned 4 KiB page of zeros
//!   between a bad record and a whole record after it is a page the disk never got (no
//!   fsync completed after it was written, so nothing after it was acknowledged under
//!   `Always`), and is cut there too. Any other damage, a bad record with a whole record
//!   after it and no page of zeros between, a bad record or header in an older segment, a gap between segments, a damaged newest
//!   snapshot, refuses to open with a [`JournalError`] naming the file, the byte, the
//!   problem and what to do; so does a file of a newer format version, or a directory
//!   another journal holds.
//! - A damaged newest snapshot is refused rather than skipped for the previous one. The
//!   journal is kept from the previous snapshot on, so the operator can move the damaged
//!   file away and open again; doing it silently would hide the damage.
//! - [`Recovered::records`] streams the records after the snapshot one at a time rather
//!   than holding them all, so replay needs memory for a record, not for the journal.
//!
//! Crates: `crc32c` for the checksums (CRC-32C is what the hardware computes, one
//! instruction per 8 bytes on x86-64 and aarch64; the crate picks it at run time);
//! `libc::flock` for the lock. docs/ARCHITECTURE.md says why the format is our own.

mod error;
mod format;
mod lock;
mod measure;
mod recover;
mod snapshot;
mod writer;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::JournalError;
pub use format::{FORMAT_VERSION, RECORD_BYTES_MAX};
pub use measure::measure_fdatasync;
pub use recover::{RecordReader, Recovered, TornTail};
pub use snapshot::{clear, read_snapshot_file, replace_with_snapshot, write_snapshot_file};
pub use writer::{Done, Durability, Journal, DRAIN_BYTES_MAX, QUEUE_MESSAGES_MAX};

/// A byte offset over the records of the whole journal (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(pub u64);

/// When records are fsynced, and so what `done` waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// An fdatasync covers every record before its `done` runs; records queued together
    /// share one.
    #[default]
    Always,
    /// `done` runs once the record is written; an fdatasync follows within the interval
    /// (and at close). A crash of the machine loses at most the interval's records.
    Interval(Duration),
    /// `done` runs once the record is written; fsyncs only at segment ends, snapshots and
    /// close. A crash of the process loses nothing; one of the machine may lose anything
    /// not yet synced.
    Never,
}

impl FsyncPolicy {
    /// The longest interval `interval:<ms>` accepts: a minute. Longer would put more at
    /// risk in a crash than anyone choosing durability means to.
    pub const INTERVAL_MS_MAX: u64 = 60_000;
}

/// Why a text is not an fsync policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an fsync policy: {problem} (always, interval:<ms> from 1 to {max}, or never)", max = FsyncPolicy::INTERVAL_MS_MAX)]
pub struct FsyncPolicyError {
    pub text: String,
    pub problem: &'static str,
}

/// `always`, `interval:<ms>` (`interval:5` or `interval:5ms`) or `never` (`none`, Redis's
/// word, is read as `never`): the one reader of the policy, for the command line's
/// `--fsync` and the server's configuration alike.
impl std::str::FromStr for FsyncPolicy {
    type Err = FsyncPolicyError;

    fn from_str(text: &str) -> Result<FsyncPolicy, FsyncPolicyError> {
        let refused = |problem| FsyncPolicyError { text: text.into(), problem };
        match text {
            "always" => return Ok(FsyncPolicy::Always),
            "never" | "none" => return Ok(FsyncPolicy::Never),
            _ => {}
        }
        let Some(interval) = text.strip_prefix("interval:") else {
            return Err(refused(if text == "interval" {
                "the interval needs its milliseconds"
            } else {
                "unknown policy"
            }));
        };
        let digits = interval.strip_suffix("ms").unwrap_or(interval);
        if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(refused("the interval is a whole number of milliseconds"));
        }
        match digits.parse::<u64>() {
            Ok(ms) if (1..=FsyncPolicy::INTERVAL_MS_MAX).contains(&ms) => {
                Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
            }
            _ => Err(refused("the interval is out of range")),
        }
    }
}

/// As the parser reads it: `always`, `interval:<ms>ms`, `never`.
impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Interval(interval) => write!(f, "interval:{}ms", interval.as_millis()),
            FsyncPolicy::Never => f.write_str("never"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct JournalOptions {
    pub dir: PathBuf,
    pub fsync: FsyncPolicy,
    /// A segment is closed once it reaches this size, header included. Each segment's file
    /// is preallocated to about this size (see the module documentation).
    pub segment_bytes: u64,
}

impl JournalOptions {
    pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;

    /// The defaults: fsync always, 64 MiB segments.
    pub fn new(dir: impl Into<PathBuf>) -> JournalOptions {
        JournalOptions {
            dir: dir.into(),
            fsync: FsyncPolicy::Always,
            segment_bytes: JournalOptions::SEGMENT_BYTES_DEFAULT,
        }
    }
}

/// Makes the directory's entries (files created, renamed or deleted) durable.
fn sync_directory(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(error::io_error(dir, "fsync the directory"))
}

//! Opening a journal directory: find the newest snapshot, check every segment the journal
//! still needs, cut a torn write off the end, and stream the records after the snapshot.
//!
//! A crash can tear only what was being written: the end of the newest segment (records
//! written but not yet synced). A new segment's header is synced before the segment gets
//! its name, and everything else was synced before anything after it was written, so
//! damage there is damage, not a crash. A power loss can write an unsynced stretch's pages
//! out of order (they overwrite preallocated zeros), leaving a page of zeros before a page
//! that did reach the disk: that too is a torn write, cut at the first bad record.
//!
//! A segment ends at the end of its file, or where only zeros are left after a whole
//! record: the writer preallocates segments with zeros and writes records over them, so in
//! any segment, newest or older, zeros to the end of the file are unused space, not damage
//! and not a torn write (no frame header is all zeros; see `format.rs`).
//!
//! Invariants:
//! - the only changes recovery makes are cutting the newest segment back to its last whole
//!   record (zeroing the torn bytes after it, so the writer's next records land on zeros
//!   as in any preallocated segment), deleting a newest segment whose header was never
//!   completed, and deleting leftover `.tmp` files (snapshots and a prepared segment), all
//!   after every check passed: a refusal changes nothing;
//! - a bad record in the newest segment is cut only if no whole record follows it anywhere
//!   in the file, or if a whole aligned 4 KiB page of zeros lies between it and the next
//!   whole record (a page never written: no fsync completed after its write, so nothing
//!   after it was acknowledged under `always`); otherwise a whole record after it means the
//!   damage is in the middle of the journal;
//! - the segments form one contiguous run of positions from at or before the snapshot's
//!   position to the end, with the snapshot's position on a record boundary.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{io_error, ADVICE_RESTORE, ADVICE_SNAPSHOT};
use super::format::{
    self, FileKind, HeaderProblem, FRAME_HEADER_BYTES, RECORD_BYTES_MAX, SEGMENT_HEADER_BYTES,
};
use super::{snapshot, sync_directory, JournalError, Position, FORMAT_VERSION};

/// What `Journal::open` found on disk.
#[derive(Debug)]
pub struct Recovered {
    /// The newest snapshot and the position it covers.
    pub snapshot: Option<(Position, Vec<u8>)>,
    /// The records from the snapshot's position (or the start) to the end, in order, each
    /// with the position just past it, as `Journal::submit` returned it.
    pub records: RecordReader,
    /// The torn write cut off the end, if there was one: the caller logs it.
    pub cut: Option<TornTail>,
}

/// A torn write that recovery cut off the end of the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub file: PathBuf,
    /// The byte of the file it was cut at: the end of its last whole record, or 0 for a
    /// segment whose header was never completed (the file was deleted).
    pub offset: u64,
    /// The bytes from `offset` to the last one that was not zero: the torn write, which the
    /// cut zeroed. Zeros after it (preallocated space) are neither counted nor changed.
    pub bytes_dropped: u64,
    /// The journal position of the cut: where the next record goes.
    pub position: Position,
    /// What was found at `offset`.
    pub problem: String,
}

impl fmt::Display for TornTail {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}: cut a torn write at byte {} (journal position {}), dropping {} bytes: {}",
            self.file.display(),
            self.offset,
            self.position.0,
            self.bytes_dropped,
            self.problem
        )
    }
}

/// The journal's files by kind, segments and snapshots sorted by position.
#[derive(Debug, Default)]
pub(super) struct Listing {
    pub(super) segments: Vec<(u64, PathBuf)>,
    pub(super) snapshots: Vec<(u64, PathBuf)>,
    pub(super) temporaries: Vec<PathBuf>,
}

impl Listing {
    pub(super) fn read(dir: &Path) -> Result<Listing, JournalError> {
        let mut listing = Listing::default();
        for entry in fs::read_dir(dir).map_err(io_error(dir, "list the journal directory"))? {
            let entry = entry.map_err(io_error(dir, "list the journal directory"))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            match format::file_kind(&name) {
                Some(FileKind::Segment(first)) => listing.segments.push((first, entry.path())),
                Some(FileKind::Snapshot(position)) => listing.snapshots.push((position, entry.path())),
                Some(FileKind::Temporary) => listing.temporaries.push(entry.path()),
                None => {}
            }
        }
        listing.segments.sort_unstable();
        listing.snapshots.sort_unstable();
        Ok(listing)
    }
}

/// What the writer needs to go on: where the journal ends and the segment to append to.
pub(super) struct Recovery {
    pub(super) recovered: Recovered,
    pub(super) end: u64,
    /// The newest segment's first position and path; `None` when there is none yet.
    pub(super) last_segment: Option<(u64, PathBuf)>,
}

/// A segment the reader will stream, from `offset` to `end` (byte offsets in the file).
#[derive(Debug)]
struct ReadSpan {
    path: PathBuf,
    file: File,
    first: u64,
    offset: u64,
    end: u64,
}

pub(super) fn recover(dir: &Path) -> Result<Recovery, JournalError> {
    let listing = Listing::read(dir)?;
    let snapshot = newest_snapshot(&listing.snapshots)?;
    let start = snapshot.as_ref().map_or(0, |(position, _)| position.0);

    let mut cut = None;
    let mut end: Option<u64> = None;
    let mut spans = Vec::new();
    let mut last_segment = None;
    let segments = &listing.segments;
    for (index, (first, path)) in segments.iter().enumerate() {
        let first = *first;
        let last = index + 1 == segments.len();
        // Segments that end at or before the snapshot are kept only for the previous one.
        let before_snapshot = !last && segments[index + 1].0 <= start;
        let mut file = File::open(path).map_err(io_error(path, "open the segment"))?;
        let file_bytes = file.metadata().map_err(io_error(path, "read the segment's size"))?.len();
        let expected_first = end.unwrap_or(start);
        match read_segment_header(&mut file, path, file_bytes)? {
            Ok(header_first) if header_first != first => {
                return Err(damaged(path, 12, format!("the header says the segment starts at position {header_first}, its name says {first}")));
            }
            Ok(_) => {}
            // A crash while the newest segment was created: its header never made it to disk,
            // so no record did either (the header is synced before the first record).
            Err(problem) if last && file_bytes <= SEGMENT_HEADER_BYTES && first == expected_first => {
                cut = Some(TornTail {
                    file: path.clone(),
                    offset: 0,
                    bytes_dropped: file_bytes,
                    position: Position(first),
                    problem: problem.describe("segment"),
                });
                break;
            }
            Err(problem) => return Err(damaged(path, 0, problem.describe("segment"))),
        }
        if before_snapshot {
            continue;
        }
        match end {
            Some(previous_end) if first != previous_end => {
                return Err(damaged(path, 0, format!("the segment starts at position {first}, but the one before it ends at position {previous_end}: records are missing or repeated")));
            }
            None if first > start => {
                let covered = if snapshot.is_some() {
                    "the newest snapshot covers up to"
                } else {
                    "the journal starts at"
                };
                return Err(damaged(path, 0, format!("the oldest needed segment starts at position {first}, but {covered} position {start}: the records between are missing")));
            }
            _ => {}
        }
        let scanned = scan_segment(&mut file, path, first, file_bytes, last, start)?;
        let segment_end = first + (scanned.records_end - SEGMENT_HEADER_BYTES);
        cut = cut.or(scanned.cut);
        end = Some(segment_end);
        if segment_end > start {
            let offset = SEGMENT_HEADER_BYTES + start.saturating_sub(first);
            spans.push(ReadSpan { path: path.clone(), file, first, offset, end: scanned.records_end });
        }
        last_segment = Some((first, path.clone()));
    }
    let end = end.unwrap_or(start);
    if let (Some((position, _)), Some((_, path))) = (&snapshot, listing.snapshots.last()) {
        if position.0 > end {
            return Err(damaged(path, 12, format!("the snapshot covers the journal up to position {}, but the journal ends at position {end}: the records it covers are missing", position.0)));
        }
    }
    // Every check passed: only now change anything.
    if let Some(cut) = &cut {
        apply(cut)?;
    }
    for path in &listing.temporaries {
        fs::remove_file(path).map_err(io_error(path, "delete an interrupted snapshot"))?;
    }
    if cut.is_some() || !listing.temporaries.is_empty() {
        sync_directory(dir)?;
    }
    let records = RecordReader { spans: spans.into(), reader: None, stopped: false };
    Ok(Recovery { recovered: Recovered { snapshot, records, cut }, end, last_segment })
}

/// Cuts the torn write off: overwrites its bytes with zeros and fsyncs, or deletes the
/// segment when its header was torn. Zeroing rather than truncating keeps the segment's
/// preallocated length, so the writer's next records still overwrite allocated blocks; and
/// since only zeros then follow the last whole record, the next open reads the segment's
/// end there, whether or not records were written after the cut.
fn apply(cut: &TornTail) -> Result<(), JournalError> {
    if cut.offset == 0 {
        return fs::remove_file(&cut.file)
            .map_err(io_error(&cut.file, "delete a segment whose creation was torn"));
    }
    let file =
        OpenOptions::new().write(true).open(&cut.file).map_err(io_error(&cut.file, "open the segment"))?;
    let zeros = vec![0; cut.bytes_dropped as usize];
    file.write_all_at(&zeros, cut.offset)
        .map_err(io_error(&cut.file, "zero the torn write in the segment"))?;
    file.sync_data().map_err(io_error(&cut.file, "fsync the cut segment"))
}

fn damaged(path: &Path, offset: u64, problem: String) -> JournalError {
    JournalError::Damaged { path: path.to_path_buf(), offset, problem, advice: ADVICE_RESTORE }
}

/// The newest snapshot, read whole; the older ones only have their version checked, since a
/// newer build's files anywhere mean this build must not touch the directory.
fn newest_snapshot(snapshots: &[(u64, PathBuf)]) -> Result<Option<(Position, Vec<u8>)>, JournalError> {
    let Some(((named, newest), older)) = snapshots.split_last() else { return Ok(None) };
    for (_, path) in older {
        let mut bytes = Vec::with_capacity(12);
        let file = File::open(path).map_err(io_error(path, "open the snapshot"))?;
        file.take(12).read_to_end(&mut bytes).map_err(io_error(path, "read the snapshot"))?;
        if let Err(HeaderProblem::Newer(version)) = format::check_snapshot_version(&bytes) {
            return Err(JournalError::NewerFormat { path: path.clone(), version, known: FORMAT_VERSION });
        }
    }
    let (position, payload) = snapshot::read(newest, ADVICE_SNAPSHOT)?;
    if position.0 != *named {
        return Err(JournalError::Damaged {
            path: newest.clone(),
            offset: 12,
            problem: format!("the file covers position {}, but its name says {named}", position.0),
            advice: ADVICE_SNAPSHOT,
        });
    }
    Ok(Some((position, payload)))
}

/// The segment's header: its first position, or what is wrong with it. A newer format is
/// an error at once, whatever else is found.
fn read_segment_header(
    file: &mut File,
    path: &Path,
    file_bytes: u64,
) -> Result<Result<u64, HeaderProblem>, JournalError> {
    let mut header = vec![0; file_bytes.min(SEGMENT_HEADER_BYTES) as usize];
    file.read_exact(&mut header).map_err(io_error(path, "read the segment's header"))?;
    match format::decode_segment_header(&header) {
        Err(HeaderProblem::Newer(version)) => {
            Err(JournalError::NewerFormat { path: path.to_path_buf(), version, known: FORMAT_VERSION })
        }
        decoded => Ok(decoded),
    }
}

struct Scanned {
    /// The byte offset just past the segment's last whole record.
    records_end: u64,
    cut: Option<TornTail>,
}

/// Checks every record of a segment, the file positioned just past its header. In the
/// newest segment a torn write is cut off; anything else wrong refuses.
fn scan_segment(
    file: &mut File,
    path: &Path,
    first: u64,
    file_bytes: u64,
    last: bool,
    start: u64,
) -> Result<Scanned, JournalError> {
    let mut reader = BufReader::with_capacity(1 << 20, &mut *file);
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut payload = Vec::new();
    let (bad_offset, problem) = loop {
        let remaining = file_bytes - offset;
        if remaining == 0 {
            return Ok(Scanned { records_end: offset, cut: None });
        }
        let mut frame_header = [0; FRAME_HEADER_BYTES as usize];
        let header_bytes = remaining.min(FRAME_HEADER_BYTES) as usize;
        reader.read_exact(&mut frame_header[..header_bytes]).map_err(io_error(path, "read the segment"))?;
        if frame_header == [0; FRAME_HEADER_BYTES as usize] {
            if only_zeros(&mut reader, path, remaining - header_bytes as u64)? {
                return Ok(Scanned { records_end: offset, cut: None });
            }
            break (offset, "zeros where a record should start, and more than zeros after them".to_owned());
        }
        if remaining < FRAME_HEADER_BYTES {
            break (offset, format!("the file ends {remaining} bytes into a record's frame header"));
        }
        let (length, checksum) = format::decode_frame_header(&frame_header);
        if length as usize > RECORD_BYTES_MAX {
            break (
                offset,
                format!("a record claims {length} bytes, more than the limit of {RECORD_BYTES_MAX}"),
            );
        }
        if u64::from(length) > remaining - FRAME_HEADER_BYTES {
            let left = remaining - FRAME_HEADER_BYTES;
            break (
                offset,
                format!("a record of {length} bytes runs past the end of the file ({left} bytes left)"),
            );
        }
        payload.resize(length as usize, 0);
        reader.read_exact(&mut payload).map_err(io_error(path, "read the segment"))?;
        if format::frame_checksum(length.to_le_bytes(), &payload) != checksum {
            break (offset, "a record's checksum does not match its contents".to_owned());
        }
        let position = first + (offset - SEGMENT_HEADER_BYTES);
        let frame = format::frame_bytes(payload.len());
        if position < start && start < position + frame {
            let problem = format!(
                "the newest snapshot covers up to position {start}, inside the record at position {position}"
            );
            return Err(damaged(path, offset, problem));
        }
        offset += frame;
    };
    drop(reader);
    if !last {
        return Err(damaged(path, bad_offset, format!("{problem}, in a segment that is not the newest")));
    }
    let mut rest = Vec::new();
    file.seek(SeekFrom::Start(bad_offset))
        .and_then(|_| file.read_to_end(&mut rest))
        .map_err(io_error(path, "read the segment"))?;
    // A whole record anywhere after the bad one means it was not the last thing written.
    // Trying every byte costs a checksum only where a plausible length is found.
    let mut problem = problem;
    if let Some(skip) = (1..rest.len()).find(|&skip| format::valid_frame_at(&rest[skip..]).is_some()) {
        let follows = bad_offset + skip as u64;
        match unwritten_page(&rest[..skip], bad_offset) {
            // Pages of one unsynced write reached the disk out of order (a power loss): the
            // zero page was never written, so no fsync completed after it was, and nothing
            // after it was acknowledged under `always`. A cut, as of a torn write.
            Some(page) => {
                problem = format!(
                    "{problem}: the page at byte {page} was never written (zeros) and a record at byte \
                     {follows} was, pages of one unsynced write that reached the disk out of order"
                );
            }
            None => {
                let problem = format!("{problem}, and a whole record follows it at byte {follows}");
                return Err(damaged(path, bad_offset, problem));
            }
        }
    }
    // Zeros after the torn write are the segment's preallocated space: left as they are.
    let torn_bytes = rest.iter().rposition(|&byte| byte != 0).map_or(0, |last| last + 1);
    let cut = TornTail {
        file: path.to_path_buf(),
        offset: bad_offset,
        bytes_dropped: torn_bytes as u64,
        position: Position(first + (bad_offset - SEGMENT_HEADER_BYTES)),
        problem,
    };
    Ok(Scanned { records_end: bad_offset, cut: Some(cut) })
}

/// The file offset of the first whole page (4 KiB, aligned) of zeros in `bytes`, which
/// start at file offset `offset`: a page of the preallocated segment that a write never
/// reached. Damage of written data (a flipped bit, a torn sector) does not make a whole page
/// of zeros.
fn unwritten_page(bytes: &[u8], offset: u64) -> Option<u64> {
    const PAGE: u64 = 4096;
    let end = offset + bytes.len() as u64;
    let mut page = offset.next_multiple_of(PAGE);
    while page + PAGE <= end {
        let start = (page - offset) as usize;
        if bytes[start..start + PAGE as usize].iter().all(|&byte| byte == 0) {
            return Some(page);
        }
        page += PAGE;
    }
    None
}

/// Whether the next `bytes` bytes of `reader` are all zero (reads them all if they are).
fn only_zeros(reader: &mut impl Read, path: &Path, bytes: u64) -> Result<bool, JournalError> {
    let mut chunk = vec![0; 64 << 10];
    let mut left = bytes;
    while left > 0 {
        let take = left.min(chunk.len() as u64) as usize;
        reader.read_exact(&mut chunk[..take]).map_err(io_error(path, "read the segment"))?;
        if chunk[..take].iter().any(|&byte| byte != 0) {
            return Ok(false);
        }
        left -= take as u64;
    }
    Ok(true)
}

/// Streams the records recovery found after the snapshot, one segment open at a time
/// through a small buffer, so replaying a long journal needs no more memory than a record.
///
/// Recovery already checked every record; the reader checks each checksum again (cheap) in
/// case a file changed since, and stops after the first error. It reads from the files
/// recovery opened, so pruning the directory after a snapshot does not disturb it.
#[derive(Debug)]
pub struct RecordReader {
    spans: VecDeque<ReadSpan>,
    reader: Option<(BufReader<File>, ReadSpan)>,
    stopped: bool,
}

impl RecordReader {
    fn next_record(&mut self) -> Result<Option<(Position, Vec<u8>)>, JournalError> {
        loop {
            if let Some((reader, span)) = &mut self.reader {
                if span.offset < span.end {
                    let record = read_record(reader, span)?;
                    return Ok(Some(record));
                }
            }
            let Some(mut span) = self.spans.pop_front() else { return Ok(None) };
            span.file.seek(SeekFrom::Start(span.offset)).map_err(io_error(&span.path, "read the segment"))?;
            let file = span.file.try_clone().map_err(io_error(&span.path, "read the segment"))?;
            self.reader = Some((BufReader::with_capacity(64 << 10, file), span));
        }
    }
}

fn read_record(
    reader: &mut BufReader<File>,
    span: &mut ReadSpan,
) -> Result<(Position, Vec<u8>), JournalError> {
    let mut frame_header = [0; FRAME_HEADER_BYTES as usize];
    reader.read_exact(&mut frame_header).map_err(io_error(&span.path, "read the segment"))?;
    let (length, checksum) = format::decode_frame_header(&frame_header);
    let frame = format::frame_bytes(length as usize);
    let changed =
        || damaged(&span.path, span.offset, "the record changed on disk since the journal was opened".into());
    if length as usize > RECORD_BYTES_MAX || span.offset + frame > span.end {
        return Err(changed());
    }
    let mut payload = vec![0; length as usize];
    reader.read_exact(&mut payload).map_err(io_error(&span.path, "read the segment"))?;
    if format::frame_checksum(length.to_le_bytes(), &payload) != checksum {
        return Err(changed());
    }
    span.offset += frame;
    Ok((Position(span.first + (span.offset - SEGMENT_HEADER_BYTES)), payload))
}

impl Iterator for RecordReader {
    type Item = Result<(Position, Vec<u8>), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped {
            return None;
        }
        let next = self.next_record().transpose();
        self.stopped = matches!(next, None | Some(Err(_)));
        next
    }
}

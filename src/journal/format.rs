//! The bytes on disk: file names, segment headers, record frames and snapshot files.
//!
//! All integers are little-endian; every checksum is CRC-32C. Nothing here does I/O: the
//! recovery scan, the writer and the snapshot code read and write these layouts.
//!
//! Invariants:
//! - a reader checks the magic and then the version before anything else, so a file of a
//!   newer format is reported as such even if the rest of its header changed shape;
//! - a record frame's checksum covers its length field too, so a damaged length is caught
//!   like a damaged payload;
//! - no frame header is all zeros: an empty payload's frame has the checksum of four zero
//!   length bytes, which is not 0. So zeros where a frame would start are never a record, and
//!   a segment's preallocated zeros after its last record read as its end.

/// The format version this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

pub(super) const SEGMENT_MAGIC: [u8; 8] = *b"PCJOURNL";
pub(super) const SNAPSHOT_MAGIC: [u8; 8] = *b"PCSNAPSH";

/// Magic (8), version (4), first position (8), CRC-32C of the 20 bytes before it (4).
pub(super) const SEGMENT_HEADER_BYTES: u64 = 24;
/// Length of the payload (4), CRC-32C of the length bytes then the payload (4).
pub(super) const FRAME_HEADER_BYTES: u64 = 8;
/// Magic (8), version (4), position (8), payload length (8); the payload and a CRC-32C of
/// everything before it (4) follow.
pub(super) const SNAPSHOT_HEADER_BYTES: u64 = 28;
pub(super) const SNAPSHOT_TRAILER_BYTES: u64 = 4;

/// The longest payload one record may carry. A frame that claims more is damage: the writer
/// never writes one (`Journal::submit` asserts it).
pub const RECORD_BYTES_MAX: usize = 64 << 20;

const SEGMENT_PREFIX: &str = "journal-";
const SEGMENT_SUFFIX: &str = ".pcj";
const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".pcs";
/// Appended to a snapshot's name while it is written; a leftover one is an interrupted write.
pub(super) const TEMPORARY_SUFFIX: &str = ".tmp";
/// The next segment while its zeros are written, before it has a header and a position: a
/// leftover one is an interrupted preparation, and no record was ever written to it.
pub(super) const PREPARED_SEGMENT_NAME: &str = "journal-prepared.tmp";

/// The most zeros a segment is preallocated with beyond `segment_bytes`: room for the
/// record that crosses `segment_bytes` (the writer rolls only after it).
const PREALLOCATION_HEADROOM_BYTES_MAX: u64 = 64 << 10;
/// Preallocation ends on a page: the last page written is then a whole one of the file.
const PAGE_BYTES: u64 = 4096;

/// How long a new segment's file is made, of zeros, before its first record:
/// `segment_bytes` and a headroom (at most 64 KiB, no more than `segment_bytes` itself, so
/// tiny test segments stay tiny), rounded up to a 4 KiB page.
pub(super) fn preallocated_bytes(segment_bytes: u64) -> u64 {
    let headroom = segment_bytes.min(PREALLOCATION_HEADROOM_BYTES_MAX);
    segment_bytes.saturating_add(headroom).max(SEGMENT_HEADER_BYTES).next_multiple_of(PAGE_BYTES)
}

/// Positions are zero-padded to 20 digits (`u64::MAX` has 20), so names sort as positions do.
pub(super) fn segment_name(first: u64) -> String {
    format!("{SEGMENT_PREFIX}{first:020}{SEGMENT_SUFFIX}")
}

pub(super) fn snapshot_name(position: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{position:020}{SNAPSHOT_SUFFIX}")
}

/// A file of the journal directory, by its name; `None` for files that are not ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FileKind {
    Segment(u64),
    Snapshot(u64),
    /// A snapshot write interrupted before its rename, or a segment being prepared.
    Temporary,
}

pub(super) fn file_kind(name: &str) -> Option<FileKind> {
    if let Some(position) = numbered(name, SEGMENT_PREFIX, SEGMENT_SUFFIX) {
        return Some(FileKind::Segment(position));
    }
    if let Some(position) = numbered(name, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX) {
        return Some(FileKind::Snapshot(position));
    }
    if name == PREPARED_SEGMENT_NAME {
        return Some(FileKind::Temporary);
    }
    let stem = name.strip_suffix(TEMPORARY_SUFFIX)?;
    numbered(stem, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX).map(|_| FileKind::Temporary)
}

fn numbered(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What is wrong with a header (a segment's or a snapshot's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HeaderProblem {
    Short,
    Magic,
    /// Written by a newer build.
    Newer(u32),
    /// A version no build ever wrote (0).
    Version(u32),
    Checksum,
}

impl HeaderProblem {
    pub(super) fn describe(self, what: &str) -> String {
        match self {
            HeaderProblem::Short => format!("the file ends inside its {what} header"),
            HeaderProblem::Magic => format!("not a partner-credit {what} file (wrong magic bytes)"),
            HeaderProblem::Newer(version) | HeaderProblem::Version(version) => {
                format!("unknown {what} format version {version}")
            }
            HeaderProblem::Checksum => format!("the {what} header's checksum does not match"),
        }
    }
}

/// Checks the magic and the version, the first 12 bytes of either kind of file.
fn check_magic_and_version(bytes: &[u8], magic: [u8; 8]) -> Result<(), HeaderProblem> {
    if bytes.len() < 12 {
        return Err(HeaderProblem::Short);
    }
    if bytes[..8] != magic {
        return Err(HeaderProblem::Magic);
    }
    match u32_at(bytes, 8) {
        FORMAT_VERSION => Ok(()),
        version if version > FORMAT_VERSION => Err(HeaderProblem::Newer(version)),
        version => Err(HeaderProblem::Version(version)),
    }
}

pub(super) fn encode_segment_header(first: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0; SEGMENT_HEADER_BYTES as usize];
    header[..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&first.to_le_bytes());
    let checksum = crc32c::crc32c(&header[..20]);
    header[20..].copy_from_slice(&checksum.to_le_bytes());
    header
}

/// The segment's first position, from the start of the file (at most a header's worth).
pub(super) fn decode_segment_header(bytes: &[u8]) -> Result<u64, HeaderProblem> {
    check_magic_and_version(bytes, SEGMENT_MAGIC)?;
    if bytes.len() < SEGMENT_HEADER_BYTES as usize {
        return Err(HeaderProblem::Short);
    }
    if crc32c::crc32c(&bytes[..20]) != u32_at(bytes, 20) {
        return Err(HeaderProblem::Checksum);
    }
    Ok(u64_at(bytes, 12))
}

/// The checksum of a frame: the length bytes, then the payload.
pub(super) fn frame_checksum(length: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&length), payload)
}

/// Bytes one record takes in the journal, its frame header included.
pub(super) fn frame_bytes(payload_bytes: usize) -> u64 {
    FRAME_HEADER_BYTES + payload_bytes as u64
}

pub(super) fn append_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let length = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&frame_checksum(length, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// A frame header: the payload's length and the checksum it claims.
pub(super) fn decode_frame_header(bytes: &[u8]) -> (u32, u32) {
    (u32_at(bytes, 0), u32_at(bytes, 4))
}

/// A frame that is whole and whose checksum matches, at the start of `bytes`: its length.
pub(super) fn valid_frame_at(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < FRAME_HEADER_BYTES as usize {
        return None;
    }
    let (length, checksum) = decode_frame_header(bytes);
    let end = FRAME_HEADER_BYTES as usize + length as usize;
    if length as usize > RECORD_BYTES_MAX || end > bytes.len() {
        return None;
    }
    let payload = &bytes[FRAME_HEADER_BYTES as usize..end];
    (frame_checksum(length.to_le_bytes(), payload) == checksum).then_some(end as u64)
}

pub(super) fn encode_snapshot_header(
    position: u64,
    payload_bytes: u64,
) -> [u8; SNAPSHOT_HEADER_BYTES as usize] {
    let mut header = [0; SNAPSHOT_HEADER_BYTES as usize];
    header[..8].copy_from_slice(&SNAPSHOT_MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&position.to_le_bytes());
    header[20..28].copy_from_slice(&payload_bytes.to_le_bytes());
    header
}

/// Only the magic and the version of a snapshot file, from its first 12 bytes or more.
pub(super) fn check_snapshot_version(bytes: &[u8]) -> Result<(), HeaderProblem> {
    check_magic_and_version(bytes, SNAPSHOT_MAGIC)
}

/// What is wrong with a snapshot file's contents, and at which byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum SnapshotProblem {
    Header(HeaderProblem),
    /// The file's length is not the one its header implies.
    Length {
        expected: u64,
        actual: u64,
    },
    Checksum,
}

/// A whole snapshot file: the position it covers and its payload.
pub(super) fn decode_snapshot(bytes: &[u8]) -> Result<(u64, &[u8]), SnapshotProblem> {
    check_snapshot_version(bytes).map_err(SnapshotProblem::Header)?;
    if bytes.len() < SNAPSHOT_HEADER_BYTES as usize {
        return Err(SnapshotProblem::Header(HeaderProblem::Short));
    }
    let position = u64_at(bytes, 12);
    let payload_bytes = u64_at(bytes, 20);
    let expected = SNAPSHOT_HEADER_BYTES.saturating_add(payload_bytes).saturating_add(SNAPSHOT_TRAILER_BYTES);
    if expected != bytes.len() as u64 {
        return Err(SnapshotProblem::Length { expected, actual: bytes.len() as u64 });
    }
    let (covered, trailer) = bytes.split_at(bytes.len() - SNAPSHOT_TRAILER_BYTES as usize);
    if crc32c::crc32c(covered) != u32_at(trailer, 0) {
        return Err(SnapshotProblem::Checksum);
    }
    Ok((position, &covered[SNAPSHOT_HEADER_BYTES as usize..]))
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("four bytes"))
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("eight bytes"))
}

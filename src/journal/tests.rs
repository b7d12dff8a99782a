//! The journal against real files in a temporary directory: round trips, recovery from
//! torn writes, refusals of damage, snapshots, the lock, the `done` promises and failures.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use proptest::prelude::*;

use super::format::{self, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use super::*;

/// A record as `submit` returned it and the reader yields it: the position after it, its payload.
type Record = (Position, Vec<u8>);

fn options(dir: &Path, segment_bytes: u64) -> JournalOptions {
    JournalOptions { segment_bytes, ..JournalOptions::new(dir) }
}

/// Record `index`'s payload: lengths from 0 to 40 bytes, contents that tell records apart.
fn payload(index: usize) -> Vec<u8> {
    (0..index % 41).map(|byte| (index * 7 + byte) as u8).collect()
}

/// Submits records `range` and returns each with the position after it.
fn submit_all(journal: &Journal, range: std::ops::Range<usize>) -> Vec<Record> {
    range
        .map(|index| {
            let mut buffer = journal.buffer();
            buffer.extend_from_slice(&payload(index));
            (journal.submit(buffer, None), payload(index))
        })
        .collect()
}

/// Opens, submits `count` records, closes: what was written.
fn write_journal(dir: &Path, segment_bytes: u64, count: usize) -> Vec<Record> {
    let (journal, _) = Journal::open(options(dir, segment_bytes)).unwrap();
    let written = submit_all(&journal, 0..count);
    journal.close().unwrap();
    written
}

fn read_all(recovered: Recovered) -> Vec<Record> {
    recovered.records.map(Result::unwrap).collect()
}

fn reopen(dir: &Path) -> (Journal, Recovered) {
    Journal::open(options(dir, 256)).unwrap()
}

fn reopen_with(dir: &Path, segment_bytes: u64) -> (Journal, Recovered) {
    Journal::open(options(dir, segment_bytes)).unwrap()
}

fn refusal(dir: &Path) -> JournalError {
    Journal::open(options(dir, 256)).err().expect("open refuses")
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    files(dir, ".pcj")
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_str().unwrap().ends_with(suffix))
        .collect();
    found.sort();
    found
}

fn flip_bit(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

/// Overwrites the file's bytes at `offset` (a preallocated segment's zeros, say).
fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    OpenOptions::new().write(true).open(path).unwrap().write_all_at(bytes, offset).unwrap();
}

/// The file offset just past the last of `records` in a segment starting at `first`: where
/// its zeros begin when the records end in it.
fn records_end(first: u64, records: &[Record]) -> u64 {
    SEGMENT_HEADER_BYTES + (records.last().map_or(first, |(end, _)| end.0) - first)
}

fn zeros_from(path: &Path, offset: u64) -> bool {
    fs::read(path).unwrap()[offset as usize..].iter().all(|&byte| byte == 0)
}

/// The file offset of the record that ends at `end`, in a segment starting at `first`.
fn record_offset(first: u64, end: Position, payload: &[u8]) -> u64 {
    SEGMENT_HEADER_BYTES + (end.0 - format::frame_bytes(payload.len()) - first)
}

fn first_of(segment: &Path) -> u64 {
    let name = segment.file_name().unwrap().to_str().unwrap();
    match format::file_kind(name) {
        Some(format::FileKind::Segment(first)) => first,
        other => panic!("{name} is {other:?}"),
    }
}

#[test]
fn records_round_trip_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_journal(dir.path(), 256, 500);
    assert!(segments(dir.path()).len() > 10, "small segments roll");
    let mut end = 0;
    for (position, payload) in &written {
        end += FRAME_HEADER_BYTES + payload.len() as u64;
        assert_eq!(*position, Position(end), "a position counts every frame byte and nothing else");
    }
    let (journal, recovered) = reopen(dir.path());
    assert!(recovered.snapshot.is_none() && recovered.cut.is_none());
    assert_eq!(read_all(recovered), written);
    assert_eq!(journal.submitted(), Position(end));
    assert_eq!(journal.durable(), Position(end));
    // Every segment but the newest ends at the next one's first position (checked on open);
    // each has its first position in its name and header.
    for segment in segments(dir.path()) {
        let header = fs::read(&segment).unwrap();
        assert_eq!(format::decode_segment_header(&header[..24]), Ok(first_of(&segment)));
    }
}

#[test]
fn reopening_appends_after_the_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = write_journal(dir.path(), 256, 30);
    for round in 0..3 {
        let (journal, recovered) = reopen(dir.path());
        assert_eq!(read_all(recovered), written, "round {round}");
        written.extend(submit_all(&journal, 30 + round * 10..40 + round * 10));
        journal.close().unwrap();
    }
    let (_journal, recovered) = reopen(dir.path());
    assert_eq!(read_all(recovered).len(), 60);
}

#[test]
fn an_empty_or_missing_directory_starts_an_empty_journal() {
    let dir = tempfile::tempdir().unwrap();
    for path in [dir.path().to_path_buf(), dir.path().join("a/b/journal")] {
        let (journal, recovered) = Journal::open(JournalOptions::new(&path)).unwrap();
        assert!(recovered.snapshot.is_none() && recovered.cut.is_none());
        assert_eq!(read_all(recovered), vec![]);
        assert_eq!((journal.submitted(), journal.durable()), (Position(0), Position(0)));
        assert_eq!(segments(&path).len(), 1);
    }
}

/// A torn write at the end of the newest segment: `damage` gets the segment's path, its
/// first position and the records; `kept` is how many records survive.
struct TornCase {
    name: &'static str,
    damage: fn(&Path, u64, &[Record]),
    kept: usize,
}

#[test]
fn a_torn_tail_is_cut_reported_and_appended_after() {
    let cases = [
        TornCase {
            name: "truncated inside the last payload",
            damage: |path, first, records| {
                let end = records_end(first, records);
                OpenOptions::new().write(true).open(path).unwrap().set_len(end - 3).unwrap();
            },
            kept: 39,
        },
        TornCase {
            name: "truncated inside the last frame header",
            damage: |path, first, records| {
                let (end, payload) = &records[39];
                let offset = record_offset(first, *end, payload) + 5;
                OpenOptions::new().write(true).open(path).unwrap().set_len(offset).unwrap();
            },
            kept: 39,
        },
        TornCase {
            name: "half a record written over the zeros",
            damage: |path, first, records| {
                let mut frame = Vec::new();
                format::append_frame(&mut frame, &[7; 100]);
                write_at(path, records_end(first, records), &frame[..50]);
            },
            kept: 40,
        },
        TornCase {
            name: "the last record's second half still zeros (its page never reached the disk)",
            damage: |path, first, records| {
                let (end, payload) = &records[39];
                let offset = record_offset(first, *end, payload) + FRAME_HEADER_BYTES + 20;
                write_at(path, offset, &vec![0; (records_end(first, records) - offset) as usize]);
            },
            kept: 39,
        },
        TornCase {
            name: "the last record's checksum fails, nothing after it",
            damage: |path, first, records| {
                let (end, payload) = &records[39];
                flip_bit(path, record_offset(first, *end, payload) + FRAME_HEADER_BYTES + 1);
            },
            kept: 39,
        },
        TornCase {
            name: "the last record's length is damaged, nothing after it",
            damage: |path, first, records| {
                let (end, payload) = &records[39];
                flip_bit(path, record_offset(first, *end, payload) + 1);
            },
            kept: 39,
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        // One segment, so every record is in the newest one; payload 39 is 39 bytes long.
        let written = write_journal(dir.path(), 1 << 20, 40);
        let segment = &segments(dir.path())[0];
        let bytes_before = records_end(0, &written);
        (case.damage)(segment, 0, &written);
        let damaged = fs::read(segment).unwrap();

        let (journal, recovered) = reopen(dir.path());
        let cut = recovered.cut.clone().unwrap_or_else(|| panic!("{}: a cut is reported", case.name));
        assert_eq!(read_all(recovered), written[..case.kept], "{}", case.name);
        let end = written[case.kept - 1].0;
        assert_eq!(cut.position, end, "{}", case.name);
        assert_eq!(cut.file, *segment, "{}", case.name);
        assert_eq!(cut.offset, SEGMENT_HEADER_BYTES + end.0, "{}", case.name);
        // What was dropped runs from the cut to the last byte that was not zero.
        let last_nonzero = damaged.iter().rposition(|&byte| byte != 0).unwrap() as u64;
        assert_eq!(cut.bytes_dropped, last_nonzero + 1 - cut.offset, "{}", case.name);
        assert!(cut.offset <= bytes_before, "{}", case.name);
        assert!(cut.to_string().contains("byte"), "{}: {cut}", case.name);
        assert_eq!(journal.submitted(), end, "{}", case.name);
        // The cut zeroes the torn bytes and keeps the file's length (its preallocation).
        assert_eq!(fs::metadata(segment).unwrap().len(), damaged.len() as u64, "{}", case.name);
        assert!(zeros_from(segment, cut.offset), "{}: zeros follow the cut", case.name);

        let mut expected = written[..case.kept].to_vec();
        expected.extend(submit_all(&journal, 100..105));
        journal.close().unwrap();
        let (_journal, recovered) = reopen(dir.path());
        assert!(recovered.cut.is_none(), "{}: the cut was made durable", case.name);
        assert_eq!(read_all(recovered), expected, "{}", case.name);
    }
}

#[test]
fn no_frame_header_is_all_zeros_so_zeros_are_never_a_record() {
    assert_ne!(format::frame_checksum(0_u32.to_le_bytes(), &[]), 0);
    let mut frame = Vec::new();
    format::append_frame(&mut frame, &[]);
    assert_eq!(frame.len() as u64, FRAME_HEADER_BYTES);
    assert_ne!(frame, [0; FRAME_HEADER_BYTES as usize]);
    assert_eq!(format::valid_frame_at(&[0; 64]), None);
}

#[test]
fn a_preallocated_segments_zeros_read_as_its_end_and_no_cut() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_journal(dir.path(), 1 << 20, 40);
    let segment = &segments(dir.path())[0];
    let end = records_end(0, &written);
    let preallocated = format::preallocated_bytes(1 << 20);
    assert_eq!(fs::metadata(segment).unwrap().len(), preallocated);
    assert!(preallocated > (1 << 20) && zeros_from(segment, end));

    let (journal, recovered) = reopen(dir.path());
    assert!(recovered.cut.is_none(), "zeros after the last record are no torn write");
    assert_eq!(read_all(recovered), written);
    assert_eq!(journal.submitted(), written.last().unwrap().0);
    drop(journal);
    assert_eq!(fs::metadata(segment).unwrap().len(), preallocated, "recovery leaves the zeros");
}

#[test]
fn a_segment_without_preallocation_still_opens_and_appends() {
    // As a build before preallocation left it: the file ends at its last record.
    let dir = tempfile::tempdir().unwrap();
    let mut written = write_journal(dir.path(), 1 << 20, 40);
    let segment = &segments(dir.path())[0];
    OpenOptions::new().write(true).open(segment).unwrap().set_len(records_end(0, &written)).unwrap();

    let (journal, recovered) = reopen_with(dir.path(), 1 << 20);
    assert!(recovered.cut.is_none());
    assert_eq!(read_all(recovered), written);
    written.extend(submit_all(&journal, 40..50));
    journal.close().unwrap();
    assert_eq!(fs::metadata(segment).unwrap().len(), records_end(0, &written), "records extend the file");
    let (_journal, recovered) = reopen_with(dir.path(), 1 << 20);
    assert!(recovered.cut.is_none());
    assert_eq!(read_all(recovered), written);
}

#[test]
fn zeros_with_a_whole_record_after_them_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_journal(dir.path(), 1 << 20, 40);
    let segment = &segments(dir.path())[0];
    // Record 10 zeroed whole, frame header and payload: records 11 to 39 follow it.
    let (end, payload) = &written[10];
    let offset = record_offset(0, *end, payload);
    write_at(segment, offset, &vec![0; format::frame_bytes(payload.len()) as usize]);
    let bytes = fs::read(segment).unwrap();

    let error = refusal(dir.path());
    assert_damaged(&error, segment, offset, "follows");
    assert!(error.to_string().contains("zeros"), "{error}");
    assert_eq!(fs::read(segment).unwrap(), bytes, "a refusal changes nothing");
}

#[test]
fn a_page_never_written_before_whole_records_is_cut_as_a_power_loss_tears_it() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_journal(dir.path(), 1 << 20, 800);
    let segment = &segments(dir.path())[0];
    // The page at 8 KiB went back to the preallocated zeros while the pages after it kept
    // their records: an unsynced write whose pages reached the disk out of order.
    const PAGE: u64 = 4096;
    assert!(records_end(0, &written) > 4 * PAGE, "the records span more than the zeroed page");
    write_at(segment, 2 * PAGE, &[0; PAGE as usize]);
    // The records that end before the page are kept; the one it cuts into and all after go.
    let kept: Vec<Record> =
        written.iter().take_while(|(end, _)| SEGMENT_HEADER_BYTES + end.0 <= 2 * PAGE).cloned().collect();
    let (bad, bad_payload) = &written[kept.len()];
    let bad_offset = record_offset(0, *bad, bad_payload);

    let (journal, recovered) = reopen_with(dir.path(), 1 << 20);
    let cut = recovered.cut.clone().expect("a cut is reported");
    assert_eq!(cut.offset, bad_offset);
    assert!(cut.problem.contains("never written"), "{}", cut.problem);
    assert_eq!(read_all(recovered), kept);
    assert!(zeros_from(segment, bad_offset), "the cut zeroes everything after it");
    // The journal goes on after the kept records, and all of it reads back.
    let more = submit_all(&journal, 5000..5010);
    journal.close().unwrap();
    let (_journal, recovered) = reopen_with(dir.path(), 1 << 20);
    assert!(recovered.cut.is_none());
    assert_eq!(read_all(recovered), [kept, more].concat());
}

#[test]
fn zeros_shorter_than_a_page_before_a_whole_record_refuse() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), 1 << 20, 800);
    let segment = &segments(dir.path())[0];
    // 4 KiB of zeros across a page boundary: no whole aligned page is zero, so this is not
    // a page the disk never got.
    write_at(segment, 2 * 4096 + 100, &[0; 4096]);
    let bytes = fs::read(segment).unwrap();
    let error = refusal(dir.path());
    assert!(error.to_string().contains("follows"), "{error}");
    assert_eq!(fs::read(segment).unwrap(), bytes, "a refusal changes nothing");
}

#[test]
fn a_journal_rolled_over_preallocated_segments_recovers_every_record() {
    let dir = tempfile::tempdir().unwrap();
    // Records of 0 to 40 bytes in 4 KiB segments: a dozen segments, each preallocated.
    let written = write_journal(dir.path(), 4096, 2000);
    let all = segments(dir.path());
    assert!(all.len() > 10, "{} segments", all.len());
    for (index, segment) in all.iter().enumerate() {
        let first = first_of(segment);
        let next_first = all.get(index + 1).map_or(u64::MAX, |next| first_of(next));
        let records: Vec<Record> = written.iter().filter(|(end, _)| end.0 <= next_first).cloned().collect();
        let len = fs::metadata(segment).unwrap().len();
        assert_eq!(len, format::preallocated_bytes(4096), "{}", segment.display());
        assert!(zeros_from(segment, records_end(first, &records)), "{}", segment.display());
    }
    assert!(files(dir.path(), ".tmp").is_empty(), "closing deletes an unused prepared segment");

    let (journal, recovered) = Journal::open(options(dir.path(), 4096)).unwrap();
    assert!(recovered.cut.is_none());
    assert_eq!(read_all(recovered), written);
    assert_eq!(journal.submitted(), written.last().unwrap().0);
}

#[test]
fn reopen_append_reopen_cycles_write_over_the_zeros_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = write_journal(dir.path(), 1 << 20, 10);
    for round in 0..5 {
        let (journal, recovered) = reopen_with(dir.path(), 1 << 20);
        assert!(recovered.cut.is_none(), "round {round}");
        assert_eq!(read_all(recovered), written, "round {round}");
        written.extend(submit_all(&journal, 10 + round * 10..20 + round * 10));
        journal.close().unwrap();
        let segment = &segments(dir.path())[0];
        // Appends after a reopen start at the last record, not at the file's end.
        assert_eq!(
            fs::metadata(segment).unwrap().len(),
            format::preallocated_bytes(1 << 20),
            "round {round}"
        );
        assert!(zeros_from(segment, records_end(0, &written)), "round {round}");
    }
    let (_journal, recovered) = reopen_with(dir.path(), 1 << 20);
    assert_eq!(read_all(recovered), written);
}

#[test]
fn a_leftover_prepared_segment_is_deleted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_journal(dir.path(), 1 << 20, 10);
    let prepared = dir.path().join(format::PREPARED_SEGMENT_NAME);
    fs::write(&prepared, vec![0; 8192]).unwrap();
    let (_journal, recovered) = reopen(dir.path());
    assert_eq!(read_all(recovered), written);
    assert!(!prepared.exists());
}

#[test]
fn a_segment_whose_header_was_torn_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_journal(dir.path(), 1 << 20, 10);
    let end = written.last().unwrap().0;
    let torn = dir.path().join(format::segment_name(end.0));
    fs::write(&torn, &format::encode_segment_header(end.0)[..10]).unwrap();

    let (journal, recovered) = reopen(dir.path());
    let cut = recovered.cut.clone().expect("a cut is reported");
    assert_eq!((cut.file.clone(), cut.offset, cut.bytes_dropped, cut.position), (torn.clone(), 0, 10, end));
    assert_eq!(read_all(recovered), written);
    let more = submit_all(&journal, 10..12);
    journal.close().unwrap();
    let (_journal, recovered) = reopen(dir.path());
    assert_eq!(read_all(recovered), [written, more].concat());
}

fn assert_damaged(error: &JournalError, path: &Path, offset: u64, words: &str) {
    let message = error.to_string();
    assert!(
        matches!(error, JournalError::Damaged { path: found, offset: at, .. } if found == path && *at == offset),
        "{message}"
    );
    for expected in [path.file_name().unwrap().to_str().unwrap(), &format!("byte {offset}"), words, "backup"]
    {
        assert!(message.contains(expected), "{expected:?} not in {message:?}");
    }
}

#[test]
fn damage_before_a_whole_record_refuses() {
    // (what is damaged in record 10 of 40 in one segment, at which byte of the record)
    for (what, byte_in_record) in [("payload", FRAME_HEADER_BYTES + 2), ("length", 0), ("checksum", 5)] {
        let dir = tempfile::tempdir().unwrap();
        let written = write_journal(dir.path(), 1 << 20, 40);
        let segment = &segments(dir.path())[0];
        let (end, payload) = &written[10];
        let offset = record_offset(0, *end, payload);
        flip_bit(segment, offset + byte_in_record);
        let bytes = fs::read(segment).unwrap();

        let error = refusal(dir.path());
        assert_damaged(&error, segment, offset, "follows");
        assert_eq!(fs::read(segment).unwrap(), bytes, "{what}: a refusal changes nothing");
    }
}

#[test]
fn damage_in_an_older_segment_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_journal(dir.path(), 256, 100);
    let older = &segments(dir.path())[1];
    let next_first = first_of(&segments(dir.path())[2]);
    // The last record of the older segment: nothing follows it in that file.
    let (end, payload) = written.iter().find(|(end, _)| end.0 == next_first).unwrap();
    let offset = record_offset(first_of(older), *end, payload);
    flip_bit(older, offset + 4);
    assert_damaged(&refusal(dir.path()), older, offset, "not the newest");

    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), 256, 100);
    let older = &segments(dir.path())[1];
    flip_bit(older, 15);
    assert_damaged(&refusal(dir.path()), older, 0, "checksum");
}

#[test]
fn a_gap_between_segments_refuses() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), 256, 100);
    let all = segments(dir.path());
    fs::remove_file(&all[3]).unwrap();
    assert_damaged(&refusal(dir.path()), &all[4], 0, "missing");

    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), 256, 100);
    fs::remove_file(&segments(dir.path())[0]).unwrap();
    assert_damaged(&refusal(dir.path()), &segments(dir.path())[0], 0, "missing");
}

/// Rewrites a header's version, with a checksum to match where the header has one.
fn set_version(path: &Path, version: u32, header_checksum: bool) {
    let mut bytes = fs::read(path).unwrap();
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    if header_checksum {
        let checksum = crc32c::crc32c(&bytes[..20]);
        bytes[20..24].copy_from_slice(&checksum.to_le_bytes());
    }
    fs::write(path, bytes).unwrap();
}

#[test]
fn files_of_a_newer_format_refuse() {
    let check = |error: JournalError, path: &Path| {
        let message = error.to_string();
        assert!(matches!(error, JournalError::NewerFormat { version: 2, known: 1, .. }), "{message}");
        assert!(message.contains(path.file_name().unwrap().to_str().unwrap()), "{message}");
        assert!(message.contains("version 2") && message.contains("newer partner-credit"), "{message}");
    };
    for segment_index in [0, 3] {
        let dir = tempfile::tempdir().unwrap();
        write_journal(dir.path(), 256, 60);
        let segment = &segments(dir.path())[segment_index];
        set_version(segment, 2, true);
        check(refusal(dir.path()), segment);
    }

    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = reopen(dir.path());
    let written = submit_all(&journal, 0..10);
    let snapshot = journal.write_snapshot(written[4].0, b"state").unwrap();
    journal.close().unwrap();
    set_version(&snapshot, 2, false);
    check(refusal(dir.path()), &snapshot);
    check(read_snapshot_file(&snapshot).unwrap_err(), &snapshot);
}

#[test]
fn a_snapshot_replaces_the_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = reopen(dir.path());
    let written = submit_all(&journal, 0..100);
    let first_snapshot = written[49].0;
    let path = journal.write_snapshot(first_snapshot, b"after 50").unwrap();
    assert_eq!(path, dir.path().join(format::snapshot_name(first_snapshot.0)));
    journal.close().unwrap();
    let remaining = segments(dir.path());
    assert_eq!(first_of(&remaining[0]), segments_first_at_or_before(&remaining, first_snapshot.0));

    let (journal, recovered) = reopen(dir.path());
    assert_eq!(recovered.snapshot, Some((first_snapshot, b"after 50".to_vec())));
    assert_eq!(read_all(recovered), written[50..]);

    // Two more snapshots: the oldest goes, and the journal is kept from the older kept one.
    let more = submit_all(&journal, 100..200);
    let second = more[49].0;
    let third = more[99].0;
    journal.write_snapshot(second, b"after 150").unwrap();
    journal.write_snapshot(third, b"after 200").unwrap();
    let kept: Vec<PathBuf> = files(dir.path(), ".pcs");
    assert_eq!(kept, [second, third].map(|position| dir.path().join(format::snapshot_name(position.0))));
    let remaining = segments(dir.path());
    assert_eq!(first_of(&remaining[0]), segments_first_at_or_before(&remaining, second.0));
    assert!(segments(dir.path()).len() > 1);
    let after = submit_all(&journal, 200..210);
    journal.close().unwrap();

    let (_journal, recovered) = reopen(dir.path());
    assert_eq!(recovered.snapshot, Some((third, b"after 200".to_vec())));
    assert_eq!(read_all(recovered), after);
}

/// The first position of the segment that holds `position`.
fn segments_first_at_or_before(segments: &[PathBuf], position: u64) -> u64 {
    segments.iter().map(|segment| first_of(segment)).filter(|first| *first <= position).max().unwrap()
}

#[test]
fn a_damaged_newest_snapshot_refuses_and_the_previous_one_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = reopen(dir.path());
    let written = submit_all(&journal, 0..100);
    journal.write_snapshot(written[29].0, b"after 30").unwrap();
    let newest = journal.write_snapshot(written[79].0, b"after 80").unwrap();
    journal.close().unwrap();
    let bytes = fs::metadata(&newest).unwrap().len();
    flip_bit(&newest, 30);

    let error = refusal(dir.path());
    assert!(
        matches!(&error, JournalError::Damaged { path, offset, .. } if *path == newest && *offset == bytes - 4)
    );
    assert!(error.to_string().contains("previous snapshot"), "{error}");

    // What the message advises: move it away, and the previous snapshot replays.
    fs::rename(&newest, dir.path().join("moved-away")).unwrap();
    let (_journal, recovered) = reopen(dir.path());
    assert_eq!(recovered.snapshot, Some((written[29].0, b"after 30".to_vec())));
    assert_eq!(read_all(recovered), written[30..]);
}

#[test]
fn snapshot_files_round_trip_and_refuse_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("saved.pcs");
    write_snapshot_file(&path, Position(1234), b"the state").unwrap();
    assert_eq!(read_snapshot_file(&path).unwrap(), (Position(1234), b"the state".to_vec()));
    assert!(!dir.path().join("saved.pcs.tmp").exists());
    let whole = fs::read(&path).unwrap();

    // (damage, the byte the error names)
    type Damage = fn(&mut Vec<u8>);
    let cases: [(&str, Damage, u64); 4] = [
        ("a flipped payload bit", |bytes| bytes[30] ^= 1, whole.len() as u64 - 4),
        ("a flipped position bit", |bytes| bytes[13] ^= 1, whole.len() as u64 - 4),
        ("truncated", |bytes| bytes.truncate(bytes.len() - 1), 20),
        ("wrong magic", |bytes| bytes[0] = b'x', 0),
    ];
    for (name, damage, offset) in cases {
        let mut bytes = whole.clone();
        damage(&mut bytes);
        fs::write(&path, bytes).unwrap();
        let error = read_snapshot_file(&path).unwrap_err();
        assert!(matches!(error, JournalError::Damaged { offset: at, .. } if at == offset), "{name}: {error}");
    }
}

#[test]
fn a_snapshot_past_the_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = reopen(dir.path());
    let written = submit_all(&journal, 0..3);
    let error = journal.write_snapshot(Position(10_000), b"").unwrap_err();
    assert!(matches!(error, JournalError::PositionAhead { .. }), "{error}");
    journal.close().unwrap();

    // A snapshot ahead of what is on disk means records it covers are missing. The torn
    // write behind the refusal is left as it is: a refusal changes nothing.
    write_snapshot_file(&dir.path().join(format::snapshot_name(10_000)), Position(10_000), b"").unwrap();
    let segment = &segments(dir.path())[0];
    write_at(segment, records_end(0, &written), &[0x5a; 100]);
    let bytes = fs::read(segment).unwrap();
    assert!(refusal(dir.path()).to_string().contains("missing"));
    assert_eq!(fs::read(segment).unwrap(), bytes);
}

#[test]
fn a_second_open_of_the_directory_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = reopen(dir.path());
    let error = refusal(dir.path());
    assert!(matches!(error, JournalError::Locked { .. }), "{error}");
    assert!(error.to_string().contains("in use"), "{error}");
    journal.close().unwrap();
    let (journal, _) = reopen(dir.path());
    drop(journal);
    reopen(dir.path());
}

#[test]
fn done_runs_in_submission_order_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(options(dir.path(), 4096)).unwrap().0);
    // (the record's position, durable() when its done ran)
    let seen = Arc::new(Mutex::new(Vec::new()));
    let submitters: Vec<_> = (0..4)
        .map(|thread_index| {
            let (journal, seen) = (journal.clone(), seen.clone());
            thread::spawn(move || {
                for index in 0..500 {
                    let (inner, seen) = (journal.clone(), seen.clone());
                    let position = Arc::new(Mutex::new(None::<Position>));
                    let known = position.clone();
                    let done: Done = Box::new(move |durability| {
                        durability.unwrap();
                        let position = known.lock().unwrap().expect("submit returned first");
                        seen.lock().unwrap().push((position, inner.durable()));
                    });
                    // The position is set before the writer can run `done`: it holds the
                    // lock until then.
                    let mut slot = position.lock().unwrap();
                    *slot = Some(journal.submit(payload(thread_index * 1000 + index), Some(done)));
                }
            })
        })
        .collect();
    submitters.into_iter().for_each(|submitter| submitter.join().unwrap());
    let (sender, receiver) = crossbeam_channel::bounded(1);
    journal.after_durable(Box::new(move |durability| sender.send(durability).unwrap()));
    receiver.recv().unwrap().unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2000);
    assert!(seen.windows(2).all(|pair| pair[0].0 < pair[1].0), "done runs in submission order");
    assert!(seen.iter().all(|(position, durable)| durable >= position), "done runs once durable");
    assert_eq!(seen.last().unwrap().0, journal.submitted());
    // The writer drops each `done` (and its clone of the journal) just after running it.
    let mut shared = journal;
    let journal = loop {
        match Arc::try_unwrap(shared) {
            Ok(journal) => break journal,
            Err(still_shared) => {
                shared = still_shared;
                thread::yield_now();
            }
        }
    };
    journal.close().unwrap();
}

#[test]
fn a_done_may_drop_the_last_handle_to_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(reopen(dir.path()).0);
    let (go, wait) = crossbeam_channel::bounded::<()>(1);
    let inner = journal.clone();
    let written = journal.submit(
        payload(5),
        Some(Box::new(move |durability| {
            durability.unwrap();
            wait.recv().unwrap();
            drop(inner);
        })),
    );
    drop(journal);
    go.send(()).unwrap();
    // The writer closes the journal itself and releases the lock.
    let recovered = loop {
        match Journal::open(options(dir.path(), 256)) {
            Ok((_journal, recovered)) => break recovered,
            Err(JournalError::Locked { .. }) => thread::sleep(Duration::from_millis(1)),
            Err(error) => panic!("{error}"),
        }
    };
    assert_eq!(read_all(recovered), [(written, payload(5))]);
}

#[test]
fn after_durable_runs_at_once_when_nothing_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = reopen(dir.path());
    let here = thread::current().id();
    let ran_on = Arc::new(Mutex::new(None));
    let record = ran_on.clone();
    journal.after_durable(Box::new(move |durability| {
        durability.unwrap();
        *record.lock().unwrap() = Some(thread::current().id());
    }));
    assert_eq!(*ran_on.lock().unwrap(), Some(here));

    // With a record pending, it runs after the record's done.
    let order = Arc::new(Mutex::new(Vec::new()));
    let (first, second) = (order.clone(), order.clone());
    journal.submit(payload(3), Some(Box::new(move |_| first.lock().unwrap().push("record"))));
    journal.after_durable(Box::new(move |_| second.lock().unwrap().push("after_durable")));
    journal.close().unwrap();
    assert_eq!(*order.lock().unwrap(), ["record", "after_durable"]);
}

#[test]
fn every_policy_delivers_done_and_keeps_the_records() {
    for policy in [FsyncPolicy::Always, FsyncPolicy::Interval(Duration::from_millis(2)), FsyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let options = JournalOptions { fsync: policy, ..options(dir.path(), 512) };
        let (journal, _) = Journal::open(options).unwrap();
        let delivered = Arc::new(AtomicUsize::new(0));
        let mut written = Vec::new();
        for index in 0..200 {
            let delivered = delivered.clone();
            let done: Done = Box::new(move |durability| {
                durability.unwrap();
                delivered.fetch_add(1, Ordering::SeqCst);
            });
            written.push((journal.submit(payload(index), Some(done)), payload(index)));
            if index % 50 == 0 {
                thread::sleep(Duration::from_millis(5));
            }
        }
        journal.close().unwrap();
        assert_eq!(delivered.load(Ordering::SeqCst), 200, "{policy:?}");
        let (_journal, recovered) = reopen(dir.path());
        assert_eq!(read_all(recovered), written, "{policy:?}");
    }
}

#[test]
fn a_failed_write_stops_the_journal_and_every_later_done_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = reopen(dir.path());
    let results = Arc::new(Mutex::new(Vec::new()));
    let done = |label: &'static str| -> Done {
        let results = results.clone();
        Box::new(move |durability: Durability| results.lock().unwrap().push((label, durability.is_ok())))
    };
    let wait = |journal: &Journal| {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        journal.after_durable(Box::new(move |durability| sender.send(durability.is_ok()).unwrap()));
        receiver.recv().unwrap()
    };
    journal.submit(payload(1), Some(done("before")));
    assert!(wait(&journal));
    journal.break_writes();
    journal.submit(payload(2), Some(done("failed")));
    journal.submit(payload(3), Some(done("after")));
    assert!(!wait(&journal), "after_durable is told too");
    let durable_before = journal.durable();
    assert!(journal.failure().is_some());
    assert!(durable_before < journal.submitted());
    assert!(matches!(journal.write_snapshot(Position(0), b""), Err(JournalError::Failed(_))));
    assert!(matches!(journal.close(), Err(JournalError::Failed(_))));
    assert_eq!(*results.lock().unwrap(), [("before", true), ("failed", false), ("after", false)]);
}

#[test]
fn the_fdatasync_probe_measures_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let rate = measure_fdatasync(dir.path(), Duration::from_millis(50)).unwrap();
    assert!(rate > 0.0);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn the_journal_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Journal>();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Cutting the newest segment at any byte recovers the longest prefix of whole records.
    #[test]
    fn a_cut_anywhere_in_the_newest_segment_recovers_the_whole_prefix(
        lengths in proptest::collection::vec(0_usize..100, 1..60),
        segment_bytes in 64_u64..512,
        cut_fraction in 0.0_f64..1.0,
        zeroed in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(options(dir.path(), segment_bytes)).unwrap();
        let written: Vec<Record> = lengths
            .iter()
            .enumerate()
            .map(|(index, length)| {
                let payload: Vec<u8> = (0..*length).map(|byte| (index * 31 + byte * 7) as u8).collect();
                (journal.submit(payload.clone(), None), payload)
            })
            .collect();
        journal.close().unwrap();

        let newest = segments(dir.path()).pop().unwrap();
        let first = first_of(&newest);
        let bytes = records_end(first, &written);
        let cut_at = (bytes as f64 * cut_fraction) as u64;
        // The file is cut short (an append's tear), or its bytes from the cut on are zeros
        // again (a tear of writes over preallocated zeros).
        if zeroed && cut_at >= SEGMENT_HEADER_BYTES {
            write_at(&newest, cut_at, &vec![0; (bytes - cut_at) as usize]);
        } else {
            OpenOptions::new().write(true).open(&newest).unwrap().set_len(cut_at).unwrap();
        }
        let contents = fs::read(&newest).unwrap();
        // A header cut short deletes the segment: the journal then ends at its first position.
        let end = first + cut_at.saturating_sub(SEGMENT_HEADER_BYTES);

        let (journal, recovered) = Journal::open(options(dir.path(), segment_bytes)).unwrap();
        let expected: Vec<_> = written.iter().filter(|(position, _)| position.0 <= end).cloned().collect();
        let expected_end = expected.last().map_or(0, |(position, _)| position.0);
        // Nothing is reported when the cut falls exactly between two records, or when only
        // zeros are left of the torn record (an empty record's length bytes, say): zeros
        // after a whole record are a segment's end.
        let kept_end = (SEGMENT_HEADER_BYTES + expected_end.max(first) - first) as usize;
        let torn_left = contents.get(kept_end..cut_at as usize).unwrap_or_default();
        let cut_expected = cut_at < SEGMENT_HEADER_BYTES
            || (end != expected_end.max(first) && torn_left.iter().any(|&byte| byte != 0));
        prop_assert_eq!(recovered.cut.is_some(), cut_expected);
        prop_assert_eq!(read_all(recovered), expected);
        prop_assert_eq!(journal.submitted(), Position(expected_end));
    }
}

#[test]
fn fsync_policies_parse_as_the_command_line_and_the_configuration_write_them() {
    use std::str::FromStr;
    let interval = |ms| Ok(FsyncPolicy::Interval(Duration::from_millis(ms)));
    let refused = |text: &str, problem| Err(FsyncPolicyError { text: text.into(), problem });
    let cases: [(&str, Result<FsyncPolicy, FsyncPolicyError>); 17] = [
        ("always", Ok(FsyncPolicy::Always)),
        ("never", Ok(FsyncPolicy::Never)),
        ("none", Ok(FsyncPolicy::Never)),
        ("interval:5", interval(5)),
        ("interval:5ms", interval(5)),
        ("interval:1", interval(1)),
        ("interval:60000", interval(60_000)),
        ("interval:0", refused("interval:0", "the interval is out of range")),
        ("interval:60001", refused("interval:60001", "the interval is out of range")),
        (
            "interval:99999999999999999999",
            refused("interval:99999999999999999999", "the interval is out of range"),
        ),
        ("interval:", refused("interval:", "the interval is a whole number of milliseconds")),
        ("interval:ms", refused("interval:ms", "the interval is a whole number of milliseconds")),
        ("interval:1.5", refused("interval:1.5", "the interval is a whole number of milliseconds")),
        ("interval:-5", refused("interval:-5", "the interval is a whole number of milliseconds")),
        ("interval", refused("interval", "the interval needs its milliseconds")),
        ("Always", refused("Always", "unknown policy")),
        ("", refused("", "unknown policy")),
    ];
    for (text, expected) in cases {
        assert_eq!(FsyncPolicy::from_str(text), expected, "{text:?}");
    }
    // What it writes, it reads back.
    for policy in [FsyncPolicy::Always, FsyncPolicy::Never, FsyncPolicy::Interval(Duration::from_millis(7))] {
        assert_eq!(policy.to_string().parse::<FsyncPolicy>(), Ok(policy));
    }
    let error = "sometimes".parse::<FsyncPolicy>().unwrap_err().to_string();
    assert_eq!(
        error,
        "\"sometimes\" is not an fsync policy: unknown policy (always, interval:<ms> from 1 to 60000, or never)"
    );
}

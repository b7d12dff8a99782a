//! The journal handle and its writer thread: submission, group commit and segment rolls.
//!
//! Callers submit records into a bounded channel and return at once with the record's
//! position; one thread, `journal-writer`, takes whatever is queued (up to
//! [`DRAIN_BYTES_MAX`]), writes it with one `write` per segment touched, fsyncs once under
//! [`FsyncPolicy::Always`], then runs the records' `done` callbacks in order. Many records
//! thus share one fdatasync, and nothing waits on a timer for company: a lone record is
//! written at once.
//!
//! Invariants:
//! - positions are handed out under the same lock as the channel send, so the order of
//!   positions is the order of the channel, which is the order in the file;
//! - `durable` only grows, and only to a position the policy's promise covers: synced under
//!   `Always`, written otherwise;
//! - after a failed write or fsync nothing more is written, and every `done` from then on
//!   is told the failure: after a failed fsync the kernel may have dropped the dirty pages,
//!   so retrying could report durable what is not;
//! - a finished segment is synced before the next one is created, so a crash can tear only
//!   the newest one;
//! - a segment the writer creates is first a file of real zeros `preallocated_bytes` long,
//!   synced, named `journal-prepared.tmp`; only then does it get its header (synced) and its
//!   name (directory synced). Records overwrite those zeros at explicit offsets, so an
//!   fdatasync finds the file's size and blocks unchanged and writes only data, not the
//!   inode. A record past the preallocated end extends the file: correct, only slower;
//! - every byte of the newest segment after its last record is zero (preallocated, zeroed
//!   by a recovery cut, or past the file's end): recovery reads that as the segment's end;
//! - the next segment is prepared on one helper thread, started when the current segment is
//!   half full, so that a roll seldom waits for zeros; at most one is prepared at a time,
//!   and closing stops it and deletes its file (after a panic on the writer thread, the
//!   next open deletes it);
//! - the directory's lock is shared by the journal and the writer thread, and let go only
//!   when both have: a journal dropped on the writer thread (its last handle went with a
//!   `done`) keeps the directory locked until the writer has synced and stopped.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, SendError, Sender};
use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;

use super::error::io_error;
use super::format::{self, PREPARED_SEGMENT_NAME, RECORD_BYTES_MAX, SEGMENT_HEADER_BYTES};
use super::lock::DirectoryLock;
use super::recover::{recover, Recovered, Recovery};
use super::snapshot::{prune, write_snapshot_file};
use super::{sync_directory, FsyncPolicy, JournalError, JournalOptions, Position};

/// How many messages (records and waiters) may wait for the writer. A submitter that finds
/// the queue full blocks until the writer catches up: the journal's backpressure.
pub const QUEUE_MESSAGES_MAX: usize = 1024;
/// How many payload bytes the writer takes into one write and one fsync.
pub const DRAIN_BYTES_MAX: usize = 8 << 20;
/// How many returned buffers the pool keeps, and the largest one it keeps.
const POOL_BUFFERS_MAX: usize = 1024;
const POOLED_BUFFER_BYTES_MAX: usize = 1 << 20;
/// The zeros a segment is prepared with are written this many bytes at a time; a stop is
/// noticed between two writes.
const ZEROS_CHUNK_BYTES: usize = 1 << 20;

/// Whether what a `done` callback is told about is durable: `Err` if the journal failed
/// before it was (the record may or may not be on disk; it must not be acknowledged).
pub type Durability = Result<(), Arc<JournalError>>;
/// Runs once, on the writer thread, when a record (or everything before a waiter) is
/// durable or cannot be. It should be quick (a channel send): the next group waits for it.
pub type Done = Box<dyn FnOnce(Durability) + Send>;

enum Message {
    Record {
        payload: Vec<u8>,
        done: Option<Done>,
    },
    /// `after_durable`: runs when everything before it is durable.
    Waiter(Done),
    /// Fsync everything written, whatever the policy (a snapshot needs it), and answer.
    Sync(Sender<Durability>),
    Close,
    /// Makes the next write fail, to test what a failure does.
    #[cfg(test)]
    BreakWrites,
}

/// The writer's results, shared with the handle.
struct Shared {
    /// Everything before this position is durable under the policy.
    durable: AtomicU64,
    /// Set once, at the first failed write or fsync.
    failure: OnceLock<Arc<JournalError>>,
    /// Payload buffers the writer is done with, for `Journal::buffer`.
    pool: ArrayQueue<Vec<u8>>,
}

impl Shared {
    fn fail(&self, error: JournalError) -> Arc<JournalError> {
        let error = Arc::new(error);
        if self.failure.set(error.clone()).is_ok() {
            tracing::error!("journal failed; no record from now on is durable: {error}");
        }
        self.failure.get().cloned().unwrap_or(error)
    }
}

/// The channel's sending end and the position after the last submitted record.
struct Queue {
    sender: Sender<Message>,
    submitted: u64,
}

/// An append-only journal of opaque records in a directory. `Send + Sync`: share it in an
/// `Arc`. See the module documentation for the format and the promises.
pub struct Journal {
    /// Under one lock with the sender, so that positions follow the channel's order.
    queue: Mutex<Queue>,
    /// `Queue::submitted`, readable without the lock.
    submitted: AtomicU64,
    shared: Arc<Shared>,
    /// Taken when the journal closes.
    writer: Mutex<Option<JoinHandle<()>>>,
    /// One snapshot at a time: each prunes what the one before it wrote.
    snapshotting: Mutex<()>,
    dir: PathBuf,
    /// The directory's lock, shared with the writer: released once both have let go, so
    /// never while the writer may still write (`close` and `Drop` join it first; a journal
    /// dropped on the writer thread leaves the writer its share until it ends).
    lock: Mutex<Option<Arc<DirectoryLock>>>,
}

impl Journal {
    /// Opens the journal in `options.dir` (created if missing) and recovers it: returns the
    /// journal ready to append after the last whole record, and what was found on disk.
    /// Refuses a directory another journal holds, files of a newer format, and damage that
    /// a torn write cannot explain.
    pub fn open(options: JournalOptions) -> Result<(Journal, Recovered), JournalError> {
        let dir = options.dir;
        create_directory(&dir)?;
        let lock = Arc::new(DirectoryLock::acquire(&dir)?);
        let Recovery { recovered, end, last_segment } = recover(&dir)?;
        let preallocated_bytes = format::preallocated_bytes(options.segment_bytes);
        let stop = Arc::new(AtomicBool::new(false));
        let segment = match last_segment {
            Some((first, path)) => Segment::open(path, first, end)?,
            None => Segment::install(&dir, prepare(&dir, preallocated_bytes, &stop)?, end)?,
        };
        let shared = Arc::new(Shared {
            durable: AtomicU64::new(end),
            failure: OnceLock::new(),
            pool: ArrayQueue::new(POOL_BUFFERS_MAX),
        });
        let (sender, receiver) = crossbeam_channel::bounded(QUEUE_MESSAGES_MAX);
        let writer = Writer {
            receiver,
            shared: shared.clone(),
            dir: dir.clone(),
            policy: options.fsync,
            segment_bytes: options.segment_bytes,
            preallocated_bytes,
            segment,
            next: None,
            stop,
            written: end,
            synced: end,
            synced_at: Instant::now(),
            staging: Vec::new(),
            batch: Vec::new(),
            _lock: lock.clone(),
        };
        let handle = thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run())
            .map_err(io_error(&dir, "start the journal writer thread"))?;
        let journal = Journal {
            queue: Mutex::new(Queue { sender, submitted: end }),
            submitted: AtomicU64::new(end),
            shared,
            writer: Mutex::new(Some(handle)),
            snapshotting: Mutex::new(()),
            dir,
            lock: Mutex::new(Some(lock)),
        };
        Ok((journal, recovered))
    }

    /// An empty buffer for one record's payload, from the buffers earlier records returned,
    /// so a steady state allocates nothing.
    pub fn buffer(&self) -> Vec<u8> {
        self.shared.pool.pop().unwrap_or_default()
    }

    /// Appends one record, after every record submitted before it, and returns the position
    /// just past it. `done` runs on the writer thread, in submission order, once the record
    /// is durable under the policy (or the journal failed). Cheap unless the writer is
    /// [`QUEUE_MESSAGES_MAX`] messages behind: then it blocks until there is room.
    ///
    /// # Panics
    /// If the payload is longer than [`RECORD_BYTES_MAX`]: callers keep records small (one
    /// shard round), and recovery would take a longer frame for damage.
    pub fn submit(&self, payload: Vec<u8>, done: Option<Done>) -> Position {
        assert!(
            payload.len() <= RECORD_BYTES_MAX,
            "a journal record of {} bytes is over the limit",
            payload.len()
        );
        let mut queue = self.queue.lock();
        let end = queue.submitted + format::frame_bytes(payload.len());
        queue.submitted = end;
        self.submitted.store(end, Ordering::Release);
        if let Err(SendError(message)) = queue.sender.send(Message::Record { payload, done }) {
            drop(queue);
            self.writer_gone(message);
        }
        Position(end)
    }

    /// Runs `done` once everything submitted so far is durable: at once, on this thread, if
    /// it already is; otherwise on the writer thread, in order with the records' `done`s.
    /// For answers that depend on records already submitted but add none.
    pub fn after_durable(&self, done: Done) {
        let submitted = self.submitted.load(Ordering::Acquire);
        if self.shared.durable.load(Ordering::Acquire) >= submitted {
            return done(Ok(()));
        }
        let queue = self.queue.lock();
        if let Err(SendError(message)) = queue.sender.send(Message::Waiter(done)) {
            drop(queue);
            self.writer_gone(message);
        }
    }

    /// The position after the last submitted record.
    pub fn submitted(&self) -> Position {
        Position(self.submitted.load(Ordering::Acquire))
    }

    /// The position up to which everything is durable under the policy.
    pub fn durable(&self) -> Position {
        Position(self.shared.durable.load(Ordering::Acquire))
    }

    /// The failure that stopped the journal, if one did: nothing submitted after it is
    /// durable, and the process should stop taking requests that need the journal.
    pub fn failure(&self) -> Option<Arc<JournalError>> {
        self.shared.failure.get().cloned()
    }

    /// Writes a snapshot covering the journal up to `position` (the caller guarantees that
    /// `payload` is exactly the state after every record before it), then deletes what the
    /// two newest snapshots no longer need. First waits until the journal is synced up to
    /// `position`, whatever the policy, so a snapshot is never ahead of the journal on disk.
    /// Slow (it fsyncs a whole snapshot): call it from a background thread.
    pub fn write_snapshot(&self, position: Position, payload: &[u8]) -> Result<PathBuf, JournalError> {
        let _one_at_a_time = self.snapshotting.lock();
        let submitted = self.submitted();
        if position > submitted {
            return Err(JournalError::PositionAhead { position, submitted });
        }
        self.sync()?;
        let path = self.dir.join(format::snapshot_name(position.0));
        write_snapshot_file(&path, position, payload)?;
        prune(&self.dir)?;
        Ok(path)
    }

    /// Syncs everything submitted so far, whatever the policy.
    fn sync(&self) -> Result<(), JournalError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let queue = self.queue.lock();
        queue.sender.send(Message::Sync(reply)).map_err(|_| JournalError::WriterStopped)?;
        drop(queue);
        match answer.recv() {
            Ok(durability) => durability.map_err(JournalError::Failed),
            Err(_) => Err(JournalError::WriterStopped),
        }
    }

    /// Flushes and fsyncs everything submitted, runs the pending `done`s, stops the writer
    /// and lets go of the directory, so another journal may open it while handles to this
    /// one remain: records submitted after are refused (their `done` is told the writer
    /// stopped). Dropping the journal does the same, without the result.
    pub fn close(&self) -> Result<(), JournalError> {
        let closed = self.shut_down();
        if self.writer.lock().is_none() {
            self.lock.lock().take();
        }
        closed
    }

    fn shut_down(&self) -> Result<(), JournalError> {
        let Some(writer) = self.writer.lock().take() else { return Ok(()) };
        // The last `Arc<Journal>` went with a `done`, on the writer thread, which can neither
        // join itself nor wait for room in its own queue. It stops when it finds the channel
        // closed (the sender drops with the journal), after syncing what is left.
        if thread::current().id() == writer.thread().id() {
            return Ok(());
        }
        // If the writer is already gone, joining tells how.
        let _ = self.queue.lock().sender.send(Message::Close);
        if writer.join().is_err() {
            return Err(JournalError::WriterStopped);
        }
        match self.failure() {
            Some(failure) => Err(JournalError::Failed(failure)),
            None => Ok(()),
        }
    }

    /// The writer thread died (a `done` panicked): nothing more will be durable.
    fn writer_gone(&self, message: Message) {
        let failure = self.shared.fail(JournalError::WriterStopped);
        match message {
            Message::Record { done: Some(done), .. } | Message::Waiter(done) => done(Err(failure)),
            _ => {}
        }
    }

    #[cfg(test)]
    pub(super) fn break_writes(&self) {
        self.queue.lock().sender.send(Message::BreakWrites).expect("the writer runs");
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Err(error) = self.shut_down() {
            tracing::error!("closing the journal: {error}");
        }
    }
}

/// Creates the directory if missing, and makes its entry durable in its parent.
fn create_directory(dir: &Path) -> Result<(), JournalError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io_error(dir, "create the journal directory"))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_directory(parent),
        _ => Ok(()),
    }
}

/// The segment the writer writes records to.
struct Segment {
    file: File,
    path: PathBuf,
    /// The byte offset in the file just past the last record written (header included):
    /// where the next frame goes. The file may be longer; every byte after this is zero.
    end: u64,
}

impl Segment {
    /// The newest segment as recovery left it, whose records end at position `end`: the
    /// writer goes on after its last whole record, not at the file's length, which may
    /// include preallocated zeros.
    fn open(path: PathBuf, first: u64, end: u64) -> Result<Segment, JournalError> {
        debug_assert!(path.ends_with(format::segment_name(first)));
        let file = OpenOptions::new().write(true).open(&path).map_err(io_error(&path, "open the segment"))?;
        Ok(Segment { file, path, end: SEGMENT_HEADER_BYTES + (end - first) })
    }

    /// Makes a prepared file of zeros (see [`prepare`]) the segment whose first record will
    /// be at `first`: its header written and synced, then its name given and the directory
    /// synced, all before any record is written to it. A crash before the rename leaves only
    /// `journal-prepared.tmp`, which recovery deletes.
    fn install(dir: &Path, prepared: File, first: u64) -> Result<Segment, JournalError> {
        let temporary = dir.join(PREPARED_SEGMENT_NAME);
        let path = dir.join(format::segment_name(first));
        prepared
            .write_all_at(&format::encode_segment_header(first), 0)
            .map_err(io_error(&temporary, "write the segment's header"))?;
        prepared.sync_data().map_err(io_error(&temporary, "fsync the segment"))?;
        // A rename would silently replace a segment of that name; none may exist.
        if path.exists() {
            let exists = io::Error::new(io::ErrorKind::AlreadyExists, "a segment of that name exists");
            return Err(io_error(&path, "create the segment")(exists));
        }
        fs::rename(&temporary, &path).map_err(io_error(&path, "name the prepared segment"))?;
        sync_directory(dir)?;
        Ok(Segment { file: prepared, path, end: SEGMENT_HEADER_BYTES })
    }
}

/// Writes `journal-prepared.tmp` in `dir`: `bytes` of real zeros, then fsyncs it (its name
/// becomes durable with the rename in [`Segment::install`]). Real zeros,
/// not `set_len` (a sparse file) or a plain `fallocate` (unwritten extents): either would
/// leave the file system block allocation or extent conversion to do when a record is
/// written, which the fdatasync after it would have to make durable. Gives up with
/// `Interrupted` when `stop` is set (the journal is closing).
fn prepare(dir: &Path, bytes: u64, stop: &AtomicBool) -> Result<File, JournalError> {
    let path = dir.join(PREPARED_SEGMENT_NAME);
    let failed = |action| io_error(&path, action);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(failed("create the next segment"))?;
    let zeros = vec![0_u8; ZEROS_CHUNK_BYTES];
    let mut offset = 0;
    while offset < bytes {
        if stop.load(Ordering::Relaxed) {
            let stopped = io::Error::new(io::ErrorKind::Interrupted, "the journal is closing");
            return Err(failed("prepare the next segment")(stopped));
        }
        let chunk = (bytes - offset).min(ZEROS_CHUNK_BYTES as u64);
        file.write_all_at(&zeros[..chunk as usize], offset)
            .map_err(failed("write zeros into the next segment"))?;
        offset += chunk;
    }
    file.sync_all().map_err(failed("fsync the next segment"))?;
    Ok(file)
}

/// The next segment's file while a helper thread prepares it.
type Preparing = JoinHandle<Result<File, JournalError>>;

struct Writer {
    /// The directory's lock, held until the writer has finished with the files.
    _lock: Arc<DirectoryLock>,
    receiver: Receiver<Message>,
    shared: Arc<Shared>,
    dir: PathBuf,
    policy: FsyncPolicy,
    segment_bytes: u64,
    /// How long each new segment's file is made before records are written to it.
    preallocated_bytes: u64,
    segment: Segment,
    /// The next segment, prepared ahead once `segment` is half full.
    next: Option<Preparing>,
    /// Set when the writer stops, so that a preparation under way gives up.
    stop: Arc<AtomicBool>,
    /// The position after the last record written to the file.
    written: u64,
    /// The position up to which an fsync covers the journal.
    synced: u64,
    synced_at: Instant,
    /// The frames of one group, written with one call.
    staging: Vec<u8>,
    /// The messages of one group, reused.
    batch: Vec<Message>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let first = self.receive();
            let mut closing = matches!(first, Message::Close);
            let mut bytes = payload_bytes(&first);
            self.batch.push(first);
            while !closing && bytes < DRAIN_BYTES_MAX {
                let Ok(message) = self.receiver.try_recv() else { break };
                closing = matches!(message, Message::Close);
                bytes += payload_bytes(&message);
                self.batch.push(message);
            }
            self.commit(closing);
            if closing {
                self.stop_preparing();
                return;
            }
        }
    }

    /// The next message; under `Interval`, syncs when written records have waited long
    /// enough for one and nothing else comes.
    fn receive(&mut self) -> Message {
        loop {
            let deadline = match self.policy {
                FsyncPolicy::Interval(interval)
                    if self.synced < self.written && self.shared.failure.get().is_none() =>
                {
                    self.synced_at + interval
                }
                _ => return self.receiver.recv().unwrap_or(Message::Close),
            };
            match self.receiver.recv_deadline(deadline) {
                Ok(message) => return message,
                Err(RecvTimeoutError::Disconnected) => return Message::Close,
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(error) = self.sync() {
                        self.shared.fail(error);
                    }
                }
            }
        }
    }

    /// Writes the group, syncs as the policy (or a message) asks, then answers every message.
    fn commit(&mut self, closing: bool) {
        let durability = match self.shared.failure.get() {
            Some(failure) => Err(failure.clone()),
            None => self.write_and_sync(closing).map_err(|error| self.shared.fail(error)),
        };
        if durability.is_ok() {
            let durable = if self.policy == FsyncPolicy::Always { self.synced } else { self.written };
            self.shared.durable.store(durable, Ordering::Release);
        }
        for message in self.batch.drain(..) {
            match message {
                Message::Record { payload, done } => {
                    if payload.capacity() <= POOLED_BUFFER_BYTES_MAX {
                        let mut payload = payload;
                        payload.clear();
                        let _ = self.shared.pool.push(payload);
                    }
                    if let Some(done) = done {
                        done(durability.clone());
                    }
                }
                Message::Waiter(done) => done(durability.clone()),
                Message::Sync(reply) => {
                    let _ = reply.send(durability.clone());
                }
                Message::Close => {}
                #[cfg(test)]
                Message::BreakWrites => {}
            }
        }
    }

    fn write_and_sync(&mut self, closing: bool) -> Result<(), JournalError> {
        let mut sync_asked = closing;
        let batch = std::mem::take(&mut self.batch);
        let written = self.write(&batch, &mut sync_asked);
        self.batch = batch;
        written?;
        let sync = sync_asked
            || match self.policy {
                FsyncPolicy::Always => true,
                FsyncPolicy::Interval(interval) => self.synced_at.elapsed() >= interval,
                FsyncPolicy::Never => false,
            };
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    /// Writes the group's records, rolling to a new segment where the current one is full.
    fn write(&mut self, batch: &[Message], sync_asked: &mut bool) -> Result<(), JournalError> {
        for message in batch {
            match message {
                Message::Record { payload, .. } => {
                    let segment_bytes = self.segment.end + self.staging.len() as u64;
                    if segment_bytes >= self.segment_bytes && segment_bytes > SEGMENT_HEADER_BYTES {
                        self.flush()?;
                        self.roll()?;
                    }
                    format::append_frame(&mut self.staging, payload);
                }
                Message::Sync(_) => *sync_asked = true,
                #[cfg(test)]
                Message::BreakWrites => {
                    self.flush()?;
                    let read_only =
                        File::open(&self.segment.path).map_err(io_error(&self.segment.path, "reopen"))?;
                    self.segment.file = read_only;
                }
                Message::Waiter(_) | Message::Close => {}
            }
        }
        self.flush()?;
        self.prepare_next_when_due();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), JournalError> {
        if self.staging.is_empty() {
            return Ok(());
        }
        let result = self.segment.file.write_all_at(&self.staging, self.segment.end);
        let bytes = self.staging.len() as u64;
        self.staging.clear();
        // One huge record must not keep its buffer for good.
        if self.staging.capacity() > 2 * DRAIN_BYTES_MAX {
            self.staging.shrink_to(DRAIN_BYTES_MAX);
        }
        result.map_err(io_error(&self.segment.path, "write the segment"))?;
        self.segment.end += bytes;
        self.written += bytes;
        Ok(())
    }

    /// Closes the full segment and starts the next at the current position.
    fn roll(&mut self) -> Result<(), JournalError> {
        // Synced first, so that only the newest segment can ever be torn.
        self.sync()?;
        let prepared = match self.next.take() {
            Some(preparing) => preparing.join().unwrap_or_else(|_| {
                let panicked = io::Error::other("the thread preparing it panicked");
                Err(io_error(self.dir.join(PREPARED_SEGMENT_NAME), "prepare the next segment")(panicked))
            })?,
            None => prepare(&self.dir, self.preallocated_bytes, &self.stop)?,
        };
        self.segment = Segment::install(&self.dir, prepared, self.written)?;
        Ok(())
    }

    /// Starts preparing the next segment on a helper thread once the current one is half
    /// full (and none is being prepared): by the roll its zeros are usually on disk. If the
    /// thread cannot start, the roll prepares the segment itself.
    fn prepare_next_when_due(&mut self) {
        if self.next.is_some() || self.segment.end < self.segment_bytes / 2 {
            return;
        }
        let (dir, bytes, stop) = (self.dir.clone(), self.preallocated_bytes, self.stop.clone());
        self.next = thread::Builder::new()
            .name("journal-prepare".into())
            .spawn(move || prepare(&dir, bytes, &stop))
            .ok();
    }

    /// Stops a preparation under way and deletes its file: a journal at rest keeps no
    /// segment without records, and the next open would delete it anyway.
    fn stop_preparing(&mut self) {
        let Some(preparing) = self.next.take() else { return };
        self.stop.store(true, Ordering::Relaxed);
        let _ = preparing.join();
        let path = self.dir.join(PREPARED_SEGMENT_NAME);
        if let Err(error) = fs::remove_file(&path) {
            tracing::warn!("deleting the unused prepared segment {}: {error}", path.display());
        }
    }

    fn sync(&mut self) -> Result<(), JournalError> {
        if self.synced == self.written {
            return Ok(());
        }
        self.segment.file.sync_data().map_err(io_error(&self.segment.path, "fsync the segment"))?;
        self.synced = self.written;
        self.synced_at = Instant::now();
        Ok(())
    }
}

fn payload_bytes(message: &Message) -> usize {
    match message {
        Message::Record { payload, .. } => payload.len(),
        _ => 0,
    }
}

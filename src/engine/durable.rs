//! Durability: with a data directory the engine keeps a journal of every change, writes
//! snapshots in the background, and recovers from them when it starts (docs/ARCHITECTURE.md,
//! "Durability").
//!
//! The journal's records are the shards' rounds and the runtime's creations (see
//! `runtime::sharded::log`), and the engine's own, whose first byte tells them apart: the
//! genesis (the first record of a new journal: the keys ids are hashed with and the number
//! of shards, which replay needs before anything else). A snapshot holds the same: the
//! runtime's image, which has both.
//!
//! Invariants:
//! - recovery builds the whole state before the runtime's threads start, and the runtime
//!   releases the reservations whose deadline passed while the process was down before it
//!   takes a request;
//! - what the engine keeps beside the runtime (which account owns a voucher, which customer
//!   a resource freezes, the next voucher id) is rebuilt from the accounts, never journalled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::intents::{self, Intent, Intents};
use super::EngineConfig;
use crate::clock::Clock;
use crate::coordinator::Keys;
use crate::domain::Account;
use crate::journal::{FsyncPolicy, Journal, JournalError, JournalOptions, Position};
use crate::runtime::sharded::{Recovering, RuntimeImage};
use crate::runtime::{Runtime, RuntimeKind, RuntimeSettings, StepsOf};

/// The first byte of the genesis record (0 and 1 are the runtime's).
const GENESIS: u8 = 2;

/// What replay needs before any other record.
#[derive(Serialize, Deserialize)]
struct Genesis {
    keys: Keys,
    shards: u32,
}

/// A snapshot's payload.
#[derive(Serialize, Deserialize)]
pub(super) struct EngineImage {
    pub runtime: RuntimeImage,
    /// Open intents and their steps' answers.
    pub intents: Vec<(u64, Intent, StepsOf)>,
    pub next_intent: u64,
}

/// Why an engine with a data directory did not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The journal's files are whole, but what they say cannot be applied.
    #[error("{}: recovery failed at journal position {position}: {problem}. The files are kept as they are; restore the directory from a backup, or start with another --data-dir", dir.display())]
    Recovery { dir: PathBuf, position: u64, problem: String },
    #[error("--data-dir needs the sharded runtime: the actix runtime keeps no journal")]
    Actix,
    #[error("--data-dir does not work with escrowed partners yet: start without escrow partners, or without a data directory")]
    Escrow,
}

/// The runtime recovered from the data directory (or a snapshot), and the journal it now
/// writes.
pub(super) struct Opened {
    pub runtime: Runtime,
    pub journal: Option<Arc<Journal>>,
    /// Every account as recovered, for the engine's own indexes.
    pub accounts: Vec<Account>,
    /// The intents left open, to finish before anything else, and the next intent's id.
    pub intents: BTreeMap<u64, Intent>,
    pub next_intent: u64,
}

/// Whether `config` asks for an engine that can be journalled and restored: the sharded
/// runtime, without escrow (whose slices are runtime state no record describes).
fn durable_kind(config: &EngineConfig) -> Result<(), OpenError> {
    if config.runtime != RuntimeKind::Sharded {
        return Err(OpenError::Actix);
    }
    if !config.escrow_partners.is_empty() {
        return Err(OpenError::Escrow);
    }
    Ok(())
}

/// Opens `dir`: the newest snapshot, then every record after it, then the runtime starts
/// writing there.
pub(super) fn open(
    config: &EngineConfig,
    dir: &Path,
    settings: RuntimeSettings,
    clock: Arc<dyn Clock>,
) -> Result<Opened, OpenError> {
    durable_kind(config)?;
    let options =
        JournalOptions { dir: dir.to_path_buf(), fsync: config.fsync, segment_bytes: config.segment_bytes };
    let (journal, recovered) = Journal::open(options)?;
    let journal = Arc::new(journal);
    if let Some(cut) = &recovered.cut {
        tracing::warn!("{cut}");
    }
    let failed = |position: Position, problem: String| OpenError::Recovery {
        dir: dir.to_path_buf(),
        position: position.0,
        problem,
    };
    let mut records = recovered.records.peekable();
    let mut intents = BTreeMap::new();
    let mut next_intent = 0;
    let recovering = match recovered.snapshot {
        Some((position, bytes)) => {
            let image: EngineImage = postcard::from_bytes(&bytes)
                .map_err(|error| failed(position, format!("the snapshot does not decode: {error}")))?;
            let (recovering, open, next) =
                restore_image(settings, clock, image).map_err(|error| failed(position, error.to_string()))?;
            (intents, next_intent) = (open, next);
            recovering
        }
        None => match records.next() {
            Some(record) => {
                let (position, bytes) = record?;
                let genesis = read_genesis(&bytes).map_err(|problem| failed(position, problem))?;
                Recovering::new(settings, clock, genesis.keys, genesis.shards as usize)
            }
            None => {
                // A new journal: its first record says how the rest is read.
                let count = settings.workers.clamp(1, crate::coordinator::index::SHARDS_MAX);
                let genesis = Genesis { keys: Keys::random(), shards: count as u32 };
                let payload =
                    postcard::to_extend(&(GENESIS, &genesis), journal.buffer()).expect("the genesis encodes");
                journal.submit(payload, None);
                Recovering::new(settings, clock, genesis.keys, count)
            }
        },
    };
    for record in records {
        let (position, bytes) = record?;
        match bytes.first() {
            Some(&GENESIS) => continue,
            Some(&intents::INTENT | &intents::INTENT_END) => {
                let id =
                    intents::replay(&bytes, &mut intents).map_err(|problem| failed(position, problem))?;
                if bytes[0] == intents::INTENT_END {
                    recovering.step_answers().forget(id);
                }
                next_intent = next_intent.max(id + 1);
                continue;
            }
            _ => {}
        }
        let replayed = recovering.replay(&bytes).map_err(|error| failed(position, error.to_string()))?;
        if !replayed {
            return Err(failed(
                position,
                format!("record kind {:?} is not one this build writes", bytes.first()),
            ));
        }
    }
    let mut accounts = Vec::new();
    recovering.each_account(|account| accounts.push(account.clone()));
    let hold = config.fsync == FsyncPolicy::Always;
    let runtime = Runtime::Sharded(recovering.start(Some((journal.clone(), hold))));
    Ok(Opened { runtime, journal: Some(journal), accounts, intents, next_intent })
}

/// Shards holding a snapshot's state, its open intents and the next intent's id.
fn restore_image(
    settings: RuntimeSettings,
    clock: Arc<dyn Clock>,
    image: EngineImage,
) -> Result<(Recovering, BTreeMap<u64, Intent>, u64), crate::runtime::sharded::ReplayError> {
    let shards = image.runtime.shards.len();
    let recovering = Recovering::new(settings, clock, image.runtime.keys.clone(), shards);
    recovering.restore(image.runtime)?;
    let mut open = BTreeMap::new();
    let mut answers = Vec::new();
    for (id, intent, steps) in image.intents {
        open.insert(id, intent);
        answers.push((id, steps));
    }
    recovering.step_answers().restore(answers);
    Ok((recovering, open, image.next_intent))
}

/// The state a snapshot file holds, and its payload: checked whole before anything
/// is replaced by it.
pub(super) fn read_image(path: &Path) -> Result<(EngineImage, Vec<u8>), OpenError> {
    let (position, bytes) = crate::journal::read_snapshot_file(path)?;
    let image = postcard::from_bytes(&bytes).map_err(|error| OpenError::Recovery {
        dir: path.to_path_buf(),
        position: position.0,
        problem: format!("the snapshot does not decode: {error}"),
    })?;
    Ok((image, bytes))
}

/// A runtime in memory whose state is `image`.
pub(super) fn restore(
    config: &EngineConfig,
    image: EngineImage,
    settings: RuntimeSettings,
    clock: Arc<dyn Clock>,
) -> Result<Opened, OpenError> {
    durable_kind(config)?;
    let (recovering, intents, next_intent) = restore_image(settings, clock, image).map_err(|error| {
        OpenError::Recovery { dir: PathBuf::new(), position: 0, problem: error.to_string() }
    })?;
    let mut accounts = Vec::new();
    recovering.each_account(|account| accounts.push(account.clone()));
    let runtime = Runtime::Sharded(recovering.start(None));
    Ok(Opened { runtime, journal: None, accounts, intents, next_intent })
}

fn read_genesis(bytes: &[u8]) -> Result<Genesis, String> {
    match postcard::from_bytes::<(u8, Genesis)>(bytes) {
        Ok((GENESIS, genesis)) => Ok(genesis),
        Ok((kind, _)) => Err(format!("the journal starts with a record of kind {kind}, not its genesis")),
        Err(error) => Err(format!("the genesis record does not decode: {error}")),
    }
}

/// Why a snapshot was not written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("snapshots need the sharded runtime: the actix runtime has no consistent copy of its state")]
    Actix,
    #[error("{}: the snapshot's content does not decode: {problem}", path.display())]
    Content { path: PathBuf, problem: String },
}

/// The whole state as a snapshot's payload, and the journal position it covers (0 without
/// a journal).
async fn image(
    runtime: &Runtime,
    intents: &Intents,
    journal: Option<&Journal>,
) -> Result<(Vec<u8>, Position), SnapshotError> {
    let answers = runtime.step_answers().ok_or(SnapshotError::Actix)?;
    // With every shard held: the journal's position, then the open intents.
    let cut = || (journal.map_or(Position(0), Journal::submitted), intents.image(answers));
    let (image, (position, (intents, next_intent))) = runtime.image(cut).await.ok_or(SnapshotError::Actix)?;
    let image = EngineImage { runtime: image, intents, next_intent };
    let bytes = postcard::to_allocvec(&image).expect("the state encodes");
    Ok((bytes, position))
}

/// Writes a snapshot into the journal's directory; the journal before it is then dropped.
pub(super) async fn checkpoint(
    runtime: &Runtime,
    intents: &Intents,
    journal: &Journal,
) -> Result<PathBuf, SnapshotError> {
    let (bytes, position) = image(runtime, intents, Some(journal)).await?;
    Ok(journal.write_snapshot(position, &bytes)?)
}

/// Writes a snapshot of the whole state to `path` (SaveSnapshot).
async fn save(
    runtime: &Runtime,
    intents: &Intents,
    journal: Option<&Journal>,
    path: &Path,
) -> Result<u64, SnapshotError> {
    let (bytes, position) = image(runtime, intents, journal).await?;
    crate::journal::write_snapshot_file(path, position, &bytes)?;
    Ok(bytes.len() as u64)
}

/// Writes a snapshot in the background whenever the journal has grown by `every` bytes
/// since the last, until the answered sender is dropped; the handle joins it.
pub(super) fn spawn_snapshots(
    runtime: Arc<Runtime>,
    intents: Arc<Intents>,
    journal: Arc<Journal>,
    every: u64,
) -> (crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let thread = std::thread::Builder::new()
        .name("snapshots".into())
        .spawn(move || {
            let mut last = journal.submitted();
            let interval = std::time::Duration::from_millis(200);
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                if journal.submitted().0.saturating_sub(last.0) < every {
                    continue;
                }
                last = journal.submitted();
                match futures::executor::block_on(checkpoint(&runtime, &intents, &journal)) {
                    Ok(path) => tracing::info!("wrote snapshot {}", path.display()),
                    Err(error) => tracing::error!("writing a snapshot: {error}"),
                }
            }
        })
        .expect("spawn the snapshot thread");
    (stop, thread)
}

impl super::Engine {
    /// Writes a snapshot into the data directory now (the engine also does it by itself
    /// every `snapshot_bytes` of journal); answers its path, or `None` without a data
    /// directory.
    pub async fn checkpoint(&self) -> Result<Option<PathBuf>, SnapshotError> {
        match &self.journal {
            Some(journal) => checkpoint(&self.runtime, &self.intents, journal).await.map(Some),
            None => Ok(None),
        }
    }

    /// Bytes of record frames submitted to the journal so far (its position), or `None`
    /// without a data directory: what a stretch of work costs on disk, as the difference of
    /// two readings.
    pub fn journal_bytes(&self) -> Option<u64> {
        self.journal.as_ref().map(|journal| journal.submitted().0)
    }

    /// SaveSnapshot: writes the whole state (every account and purchase record) to `path`,
    /// atomically; answers its size in bytes.
    pub async fn save_snapshot(&self, path: &Path) -> Result<u64, SnapshotError> {
        save(&self.runtime, &self.intents, self.journal.as_deref(), path).await
    }
}

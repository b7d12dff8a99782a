//! The recovery measurement: how long [`Engine::open`] takes to bring back a data directory
//! of `accounts` accounts and `purchases` purchases, both from a snapshot of the accounts
//! plus a journal of the purchases (the shape the engine keeps itself in) and from the
//! journal alone (no snapshot ever written).
//!
//! The files are synced and their pages dropped from the page cache before the open, so
//! the time includes reading them from the disk, as after a reboot.
//!
//! Invariant: each recovered engine is audited, and every purchase made before the close was
//! committed and is held as committed after it: a fast recovery that lost something is not
//! reported as one.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::coordinator::PurchaseRequest;
use crate::domain::{Caller, Money, PurchaseId, Uin};
use crate::engine::{Engine, EngineConfig};
use crate::journal::FsyncPolicy;
use crate::world::{World, WorldSpec};

/// Purchases per batch while the journal is written.
const BATCH: usize = 1024;
/// The most accounts and purchases the measurement takes (about 6 GB of memory at the
/// accounts' bound).
pub const ACCOUNTS_MAX: usize = 10_000_000;
pub const PURCHASES_MAX: u64 = 100_000_000;
/// What `--only` matches to run the measurement, as a row's name.
pub const NAME: &str = "durable recovery";

/// One recovery: what the directory held and how long opening it took.
#[derive(Clone, Debug, Serialize)]
pub struct Recovery {
    /// `snapshot + journal` or `journal only`.
    pub shape: String,
    pub accounts: usize,
    pub purchases: u64,
    /// The newest snapshot's size (0 for `journal only`).
    pub snapshot_bytes: u64,
    /// The journal's record bytes after the snapshot.
    pub journal_bytes: u64,
    /// [`Engine::open`], from the call to a running engine.
    pub open_secs: f64,
    /// The recovered engine's audit held and it held every committed purchase.
    pub audit_ok: bool,
}

/// Both recoveries, each in a fresh directory inside `dirs` (deleted after it).
pub(super) async fn measure(
    dirs: &mut super::DataDirs,
    accounts: usize,
    purchases: u64,
) -> anyhow::Result<Vec<Recovery>> {
    anyhow::ensure!(
        (1..=ACCOUNTS_MAX).contains(&accounts),
        "--recovery-accounts (customers) must be from 1 to {ACCOUNTS_MAX}, not {accounts}"
    );
    anyhow::ensure!(
        purchases <= PURCHASES_MAX,
        "--recovery-purchases must be from 0 to {PURCHASES_MAX}, not {purchases}"
    );
    let world = World::generate(&WorldSpec {
        customers: accounts,
        customer_credit: Money::from_units(1_000_000),
        ..WorldSpec::default()
    });
    let mut measured = Vec::new();
    for snapshot in [true, false] {
        let shape = if snapshot { "snapshot + journal" } else { "journal only" };
        let dir = dirs.fresh(&format!("recovery {shape}"))?;
        measured.push(one(&dir, &world, purchases, snapshot, shape).await?);
        dirs.remove(&dir)?;
        super::release_freed_memory();
    }
    Ok(measured)
}

async fn one(
    dir: &Path,
    world: &World,
    purchases: u64,
    snapshot: bool,
    shape: &str,
) -> anyhow::Result<Recovery> {
    let config = EngineConfig {
        data_dir: Some(dir.to_path_buf()),
        // What is measured is reading the directory back, not writing it.
        fsync: FsyncPolicy::Never,
        // No snapshot but the one asked for: the journal after it holds every purchase.
        snapshot_bytes: u64::MAX,
        ..EngineConfig::default()
    };
    let engine = Engine::open(config.clone())?;
    let accounts = engine.import(Caller::Operator, world).await?;
    let snapshot_bytes = match snapshot {
        true => {
            let path = engine.checkpoint().await?.expect("the engine has a data directory");
            std::fs::metadata(&path)?.len()
        }
        false => 0,
    };
    let journal_before = engine.journal_bytes().unwrap_or(0);
    let customers = world.customer_uins();
    let committed = make_purchases(&engine, &customers, purchases).await?;
    let journal_bytes = engine.journal_bytes().unwrap_or(0) - if snapshot { journal_before } else { 0 };
    engine.close()?;
    drop(engine);
    super::release_freed_memory();

    drop_cached_pages(dir)?;

    let started = Instant::now();
    let engine = tokio::task::spawn_blocking(move || Engine::open(config)).await??;
    let open = started.elapsed();
    let audit_ok =
        super::books_hold(&engine, committed, purchases).await? && engine.account_count() == accounts;
    engine.close()?;
    Ok(Recovery {
        shape: shape.into(),
        accounts,
        purchases,
        snapshot_bytes,
        journal_bytes,
        open_secs: open.as_secs_f64(),
        audit_ok,
    })
}

/// `purchases` one-shot purchases of 1.00 by customers in turn, in batches: answers how
/// many were committed.
async fn make_purchases(engine: &Engine, customers: &[Uin], purchases: u64) -> anyhow::Result<u64> {
    let amount = Money::from_units(1);
    let mut committed = 0;
    let mut made = 0u64;
    while made < purchases {
        let size = (purchases - made).min(BATCH as u64);
        let requests = (made..made + size)
            .map(|sequence| {
                let id = PurchaseId::numbered("r", 0, sequence).expect("short id");
                PurchaseRequest::new(id, customers[sequence as usize % customers.len()], amount)
            })
            .collect();
        let answers = engine.purchase_batch(Caller::Operator, requests).await?;
        committed += answers.iter().filter(|answer| answer.is_ok()).count() as u64;
        made += size;
    }
    Ok(committed)
}

/// Syncs every file in `dir` and drops its pages from the page cache, so that the next
/// read comes from the disk.
fn drop_cached_pages(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        let file = std::fs::File::open(&path)?;
        // Only clean pages can be dropped.
        file.sync_all()?;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor is open for the call; the advice changes no data.
            let error = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            anyhow::ensure!(error == 0, "posix_fadvise of {}: error {error}", path.display());
        }
    }
    Ok(())
}

/// The report's lines: one per recovery.
pub fn format(recoveries: &[Recovery]) -> String {
    let mut text = String::new();
    for recovery in recoveries {
        text.push_str(&format!(
            "recovery ({}): {} accounts + {} purchases, snapshot {:.1} MiB + journal {:.1} MiB: open in {:.2} s (cold cache){}\n",
            recovery.shape,
            recovery.accounts,
            recovery.purchases,
            mib(recovery.snapshot_bytes),
            mib(recovery.journal_bytes),
            recovery.open_secs,
            if recovery.audit_ok { "" } else { " (AUDIT FAILED)" },
        ));
    }
    text
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

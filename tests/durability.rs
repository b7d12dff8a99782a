//! Durability: an engine with a data directory restarts with exactly the state it
//! acknowledged: balances, purchase records (a repeat gets its first answer), open
//! reservations with their deadlines, and what an operation spread over several accounts
//! did.

mod common;

use std::sync::Arc;

use common::*;
use partner_credit::{Caller, Engine, EngineConfig, ManualClock, OpenError, RuntimeKind, Timestamp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let engine = open(dir.path(), &clock);
    let t = tree(&engine).await;
    let c = Caller::Uin(t.c);
    let first = engine.purchase(c, request("p-1", t.c, "12.34")).await.unwrap();
    engine.reserve(c, request("r-commit", t.c, "5"), Some(60_000)).await.unwrap();
    engine.reserve(c, request("r-cancel", t.c, "6"), Some(60_000)).await.unwrap();
    engine.reserve(c, request("r-open", t.c, "7"), Some(60_000)).await.unwrap();
    engine.commit(c, pid("r-commit")).await.unwrap();
    engine.cancel(c, pid("r-cancel")).await.unwrap();
    let refused = refusal(engine.purchase(c, request("p-big", t.c, "100000"))).await;
    let before = state(&engine).await;
    drop(engine);

    let engine = open(dir.path(), &clock);
    assert_eq!(state(&engine).await, before);
    // A repeat of an acknowledged id gets its first answer, and charges nothing again.
    assert_eq!(engine.purchase(c, request("p-1", t.c, "12.34")).await.unwrap(), first);
    assert_eq!(refusal(engine.purchase(c, request("p-big", t.c, "100000"))).await, refused);
    assert_eq!(refusal(engine.commit(c, pid("r-cancel"))).await, "AlreadyCancelled");
    assert_eq!(state(&engine).await, before);
    // The open reservation is still open, and commits.
    engine.commit(c, pid("r-open")).await.unwrap();
    let after_commit = state(&engine).await;
    drop(engine);

    let engine = open(dir.path(), &clock);
    assert_eq!(state(&engine).await, after_commit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_whose_deadline_passed_while_down_is_released_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let engine = open(dir.path(), &clock);
    let t = tree(&engine).await;
    let c = Caller::Uin(t.c);
    let before = available(&engine, t.c).await;
    engine.reserve(c, request("r", t.c, "7"), Some(1_000)).await.unwrap();
    assert_eq!(available(&engine, t.c).await, before - m("7"));
    drop(engine);

    clock.set(Timestamp(START.0 + 5_000));
    let engine = open(dir.path(), &clock);
    assert_eq!(available(&engine, t.c).await, before);
    assert_eq!(refusal(engine.commit(c, pid("r"))).await, "ReservationExpired");
    assert_books_balance(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_needs_the_sharded_runtime_and_no_escrow() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        data_dir: Some(dir.path().to_path_buf()),
        runtime: RuntimeKind::Actix,
        ..EngineConfig::default()
    };
    assert!(matches!(Engine::open(config), Err(OpenError::Actix)));
    let config = EngineConfig {
        data_dir: Some(dir.path().to_path_buf()),
        escrow_partners: vec![partner_credit::Uin(7)],
        ..EngineConfig::default()
    };
    assert!(matches!(Engine::open(config), Err(OpenError::Escrow)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let _engine = open(dir.path(), &clock);
    let config = EngineConfig { data_dir: Some(dir.path().to_path_buf()), ..EngineConfig::default() };
    let error = Engine::open(config).err().expect("the directory is held");
    assert!(error.to_string().contains("lock") || error.to_string().contains("held"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_is_the_last_snapshot_plus_the_journal_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let engine = open(dir.path(), &clock);
    let t = tree(&engine).await;
    let c = Caller::Uin(t.c);
    for index in 0..50 {
        engine.purchase(c, request(&format!("before-{index}"), t.c, "1")).await.unwrap();
    }
    engine.reserve(c, request("open-across", t.c, "3"), Some(60_000)).await.unwrap();
    let snapshot = engine.checkpoint().await.unwrap().expect("a data directory");
    assert!(snapshot.exists(), "{}", snapshot.display());
    for index in 0..50 {
        engine.purchase(c, request(&format!("after-{index}"), t.c, "1")).await.unwrap();
    }
    engine.commit(c, pid("open-across")).await.unwrap();
    let before = state(&engine).await;
    drop(engine);

    let engine = open(dir.path(), &clock);
    assert_eq!(state(&engine).await, before);
    // Ids from before the snapshot and after it are remembered alike.
    let first = engine.purchase(c, request("before-7", t.c, "1")).await.unwrap();
    let again = engine.purchase(c, request("after-7", t.c, "1")).await.unwrap();
    assert_eq!((first.id.as_str(), again.id.as_str()), ("before-7", "after-7"));
    assert_eq!(state(&engine).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_snapshot_loads_into_a_new_engine_in_memory_or_on_disk() {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("seed.pcs");
    let clock = ManualClock::new(START);
    let (engine, _) = engine_with(RuntimeKind::Sharded, EngineConfig::default());
    let t = tree(&engine).await;
    let c = Caller::Uin(t.c);
    let first = engine.purchase(c, request("p-1", t.c, "2.5")).await.unwrap();
    engine.reserve(c, request("r-1", t.c, "1"), Some(60_000)).await.unwrap();
    let bytes = engine.save_snapshot(&path).await.unwrap();
    assert!(bytes > 0);
    let saved = state(&engine).await;
    drop(engine);

    let config = EngineConfig { workers: 2, ..EngineConfig::default() };
    let loaded = Engine::load_snapshot_with_clock(config, &path, Arc::new(clock.clone())).unwrap();
    assert_eq!(state(&loaded).await, saved);
    assert_eq!(loaded.purchase(c, request("p-1", t.c, "2.5")).await.unwrap(), first);
    drop(loaded);

    let dir = files.path().join("data");
    let config = EngineConfig { data_dir: Some(dir.clone()), workers: 2, ..EngineConfig::default() };
    let loaded = Engine::load_snapshot_with_clock(config, &path, Arc::new(clock.clone())).unwrap();
    assert_eq!(state(&loaded).await, saved);
    loaded.commit(c, pid("r-1")).await.unwrap();
    let committed = state(&loaded).await;
    drop(loaded);
    let reopened = open(&dir, &clock);
    assert_eq!(state(&reopened).await, committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_refused_and_replaces_nothing() {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("seed.pcs");
    let (engine, clock) = engine_with(RuntimeKind::Sharded, EngineConfig::default());
    tree(&engine).await;
    engine.save_snapshot(&path).await.unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    let dir = files.path().join("data");
    let kept = open(&dir, &clock);
    let kept_state = state(&kept).await;
    drop(kept);
    let config = EngineConfig { data_dir: Some(dir.clone()), workers: 2, ..EngineConfig::default() };
    let error = Engine::load_snapshot_with_clock(config, &path, Arc::new(clock.clone())).err().unwrap();
    assert!(error.to_string().contains("seed.pcs"), "{error}");
    assert_eq!(state(&open(&dir, &clock)).await, kept_state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_engine_lets_go_of_its_directory_and_an_empty_one_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let old = Arc::new(open(dir.path(), &clock));
    let t = tree(&old).await;
    old.close().unwrap();
    // Handles to the old engine remain, and fail.
    assert!(matches!(old.account(OP, t.c).await, Err(partner_credit::Error::Failed(_))));
    let before = state(&open(dir.path(), &clock)).await;
    assert!(before.contains(&format!("{}", t.c.0)));

    let config =
        EngineConfig { data_dir: Some(dir.path().to_path_buf()), workers: 2, ..EngineConfig::default() };
    let empty = Engine::open_empty(config, Arc::new(clock.clone())).unwrap();
    assert!(empty.all_accounts().await.unwrap().is_empty());
    drop(empty);
    assert!(open(dir.path(), &clock).all_accounts().await.unwrap().is_empty());
}

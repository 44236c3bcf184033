//! The embedded (SQLite) backend: the conformance suite on a fresh temporary
//! directory per test, plus what only this backend has (reopening, the open
//! check of the chain's tail, migrations, group commit, throughput).

use std::time::Instant;

use bytes::Bytes;
use pathway_store::embedded::{DB_FILE_NAME, EmbeddedStore, OPEN_VERIFY_EVENTS};
use pathway_store::{EventStore, ExpectedVersion, ReadFilter, StoreError};
use rusqlite::Connection;
use tempfile::TempDir;

use crate::conformance::{
    Tamper, assert_log_sound, conformance_tests, new_event, new_events, read_everything,
};

/// A fresh store in its own temporary directory (removed with the guard).
async fn fresh_store() -> (EmbeddedStore, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("open store");
    (store, dir)
}

/// Changes rows with a separate SQLite connection, as someone with access to
/// the file could.
async fn tamper(store: &EmbeddedStore, change: Tamper) {
    let conn = Connection::open(store.db_path()).expect("open db for tampering");
    tamper_db(&conn, change);
}

fn tamper_db(conn: &Connection, change: Tamper) {
    let changed = match change {
        Tamper::ChangePayload { position } => conn
            .execute(
                "UPDATE events SET payload = x'deadbeef' WHERE position = ?1",
                [position as i64],
            )
            .unwrap(),
        Tamper::DeleteRow { position } => conn
            .execute("DELETE FROM events WHERE position = ?1", [position as i64])
            .unwrap(),
        Tamper::SwapPositions { a, b } => {
            conn.execute_batch(&format!(
                "BEGIN;
                 UPDATE events SET position = -1 WHERE position = {a};
                 UPDATE events SET position = {a} WHERE position = {b};
                 UPDATE events SET position = {b} WHERE position = -1;
                 COMMIT;"
            ))
            .unwrap();
            1
        }
    };
    assert_eq!(changed, 1, "{change:?} changed one row");
}

conformance_tests!(store: fresh_store(), tamper: tamper);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_creates_directory_wal_database_and_schema() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("nested/data");
    let store = EmbeddedStore::open(&dir).unwrap();
    assert_eq!(store.db_path(), dir.join(DB_FILE_NAME));
    store
        .append("person-1", ExpectedVersion::Any, vec![new_event("one")])
        .await
        .unwrap();
    let conn = Connection::open(dir.join(DB_FILE_NAME)).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let user_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(user_version, 1);
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_events_and_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store
            .append("person-1", ExpectedVersion::NoStream, new_events("a", 5))
            .await
            .unwrap();
        store
            .append("person-2", ExpectedVersion::NoStream, new_events("b", 3))
            .await
            .unwrap();
        read_everything(&store).await
    };
    for round in 0..3u64 {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(*store.head_changes().borrow(), 8 + round);
        let r = store
            .append(
                "person-1",
                ExpectedVersion::Exact(5 + round),
                vec![new_event("again")],
            )
            .await
            .unwrap();
        assert_eq!((r.first_position, r.stream_version), (9 + round, 6 + round));
        let all = assert_log_sound(&store).await;
        assert_eq!(all[..8], first[..]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_refuses_a_broken_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store
            .append("person-1", ExpectedVersion::Any, new_events("t", 20))
            .await
            .unwrap();
    }
    let conn = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    // Older than the window checked on open: opens, and verify finds it.
    let old = 20 - OPEN_VERIFY_EVENTS - 1;
    tamper_db(&conn, Tamper::ChangePayload { position: old });
    let store = EmbeddedStore::open(dir.path()).expect("an old change does not block opening");
    let report = store.verify(1, None).await.unwrap();
    assert_eq!(report.first_break.map(|b| b.position), Some(old));
    drop(store);

    tamper_db(&conn, Tamper::ChangePayload { position: 18 });
    match EmbeddedStore::open(dir.path()) {
        Err(StoreError::Corrupted { location, detail }) => {
            assert!(location.ends_with("events.db position 18"), "{location}");
            assert_eq!(
                detail,
                "the log's tail does not verify: content changed (hash mismatch)"
            );
        }
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

/// A removed record is never skipped over: unfiltered reads and
/// subscriptions report the hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_report_a_hole_instead_of_skipping_it() {
    let (store, _dir) = fresh_store().await;
    store
        .append("person-1", ExpectedVersion::Any, new_events("h", 10))
        .await
        .unwrap();
    tamper(&store, Tamper::DeleteRow { position: 4 }).await;
    for from in [1, 4] {
        match store.read_all(from, 100, &ReadFilter::all()).await {
            Err(StoreError::Corrupted { location, detail }) => {
                assert!(location.ends_with("events.db position 4"), "{location}");
                assert_eq!(detail, "record missing: read position 5 next");
            }
            other => panic!("read_all({from}): expected Corrupted, got {other:?}"),
        }
    }
    assert_eq!(
        store
            .read_all(5, 100, &ReadFilter::all())
            .await
            .unwrap()
            .len(),
        6
    );
    let mut subscription = pathway_store::subscribe_all(&store, 1);
    assert!(matches!(
        subscription.next().await,
        Err(StoreError::Corrupted { .. })
    ));
    assert_eq!(subscription.position(), 1);
}

/// Large reads run as two parts at once; a hole in either part is
/// reported, by `read_all` and by `read_all_mapped` alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_reads_report_a_hole_in_either_half() {
    let (store, _dir) = fresh_store().await;
    for batch in 0..12 {
        store
            .append(
                &format!("person-{batch}"),
                ExpectedVersion::Any,
                new_events("s", 100),
            )
            .await
            .unwrap();
    }
    tamper(&store, Tamper::DeleteRow { position: 4 }).await;
    tamper(&store, Tamper::DeleteRow { position: 800 }).await;
    // From 1 the hole is in the first part; from 5 (parts 5..=504 and
    // 505..) in the second.
    for (from, hole) in [(1u64, 4u64), (5, 800)] {
        let check = |what: &str, result: Result<usize, StoreError>| match result {
            Err(StoreError::Corrupted { location, detail }) => {
                assert!(
                    location.ends_with(&format!("events.db position {hole}")),
                    "{what}({from}): {location}"
                );
                assert_eq!(
                    detail,
                    format!("record missing: read position {} next", hole + 1)
                );
            }
            other => panic!("{what}({from}): expected Corrupted, got {other:?}"),
        };
        check(
            "read_all",
            store
                .read_all(from, 1000, &ReadFilter::all())
                .await
                .map(|r| r.len()),
        );
        check(
            "read_all_mapped",
            store
                .read_all_mapped(from, 1000, pathway_store::RecordParts::All, |r| r.position)
                .await
                .map(|r| r.len()),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(dir.path()).unwrap());
    let conn = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    match EmbeddedStore::open(dir.path()) {
        Err(StoreError::Corrupted { detail, .. }) => {
            assert_eq!(
                detail,
                "schema version 99 is newer than this build supports (1)"
            );
        }
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE_NAME), vec![0x55u8; 8192]).unwrap();
    match EmbeddedStore::open(dir.path()) {
        Err(StoreError::Corrupted { location, .. }) => assert!(location.ends_with(DB_FILE_NAME)),
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

/// Conflicting requests fail alone; the requests committed in the same
/// groups succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_request_does_not_fail_its_group() {
    const REQUESTS: usize = 64;
    let (store, _dir) = fresh_store().await;
    store
        .append("shared-1", ExpectedVersion::Any, new_events("s", 3))
        .await
        .unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                if i % 2 == 0 {
                    store
                        .append(
                            &format!("own-{i}"),
                            ExpectedVersion::NoStream,
                            vec![new_event("ok")],
                        )
                        .await
                } else {
                    store
                        .append(
                            "shared-1",
                            ExpectedVersion::Exact(1),
                            vec![new_event("stale")],
                        )
                        .await
                }
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task.await.unwrap();
        if i % 2 == 0 {
            assert_eq!(result.unwrap().stream_version, 1);
        } else {
            assert!(
                matches!(
                    result,
                    Err(StoreError::WrongExpectedVersion { actual: 3, .. })
                ),
                "{result:?}"
            );
        }
    }
    assert_eq!(assert_log_sound(&store).await.len(), 3 + REQUESTS / 2);
}

/// A caller that gives up while its append is queued does not disturb the
/// others; whatever it had queued either committed whole or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_appends_leave_the_log_sound() {
    let (store, _dir) = fresh_store().await;
    let mut handles = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store
                .append(&format!("c-{i}"), ExpectedVersion::Any, new_events("c", 4))
                .await
        }));
    }
    for handle in handles.iter().step_by(2) {
        handle.abort();
    }
    for handle in handles {
        match handle.await {
            Ok(result) => {
                let r = result.unwrap();
                assert_eq!(r.last_position - r.first_position, 3);
            }
            Err(e) => assert!(e.is_cancelled()),
        }
    }
    let all = assert_log_sound(&store).await;
    assert_eq!(all.len() % 4, 0, "appends are all or nothing");
    let r = store
        .append("after-1", ExpectedVersion::NoStream, vec![new_event("x")])
        .await
        .unwrap();
    assert_eq!(r.first_position, all.len() as u64 + 1);
}

/// 64 concurrent single-event appenders, then reading the log back; prints
/// the rates. Correctness is asserted; the rates are for the release-build
/// check (`cargo test --release -p pathway-store --test it throughput -- --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_64_writers_then_read_all() {
    const WRITERS: usize = 64;
    let appends_per_writer: usize = if cfg!(debug_assertions) { 20 } else { 1_000 };
    let (store, _dir) = fresh_store().await;
    let payload = Bytes::from(vec![b'p'; 200]);
    let started = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let stream = format!("bench-{w}");
                for _ in 0..appends_per_writer {
                    let event = pathway_store::NewEvent {
                        payload: payload.clone(),
                        ..new_event("")
                    };
                    store
                        .append(&stream, ExpectedVersion::Any, vec![event])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let total = (WRITERS * appends_per_writer) as u64;
    let append_secs = started.elapsed().as_secs_f64();
    assert_eq!(store.head().await.unwrap().position, total);

    let started = Instant::now();
    let mut read = 0u64;
    let mut from = 1;
    loop {
        let batch = store
            .read_all(from, 10_000, &ReadFilter::all())
            .await
            .unwrap();
        let Some(last) = batch.last() else { break };
        assert_eq!(last.position, from + batch.len() as u64 - 1, "dense batch");
        from = last.position + 1;
        read += batch.len() as u64;
    }
    let read_secs = started.elapsed().as_secs_f64();
    assert_eq!(read, total);
    println!(
        "embedded: {total} appends by {WRITERS} writers: {:.0} events/s; read_all: {:.0} events/s",
        total as f64 / append_secs,
        total as f64 / read_secs
    );
}

/// Opening the same directory twice in one process (two handles) still
/// yields one dense chain: each commit re-reads the head under the write lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_directory_share_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let a = EmbeddedStore::open(dir.path()).unwrap();
    let b = EmbeddedStore::open(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for (i, store) in [a.clone(), b.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for n in 0..50 {
                store
                    .append(
                        &format!("h{i}-{n}"),
                        ExpectedVersion::NoStream,
                        new_events("x", 2),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(assert_log_sound(&a).await, assert_log_sound(&b).await);
    assert_eq!(a.head().await.unwrap().position, 200);
}

//! The PostgreSQL backend against a real server: the conformance suite, the
//! hash chain against direct tampering, several stores (processes) sharing
//! one database, constraint-violation mapping and crash recovery.
//!
//! Every test creates its own database on the server named by
//! `PATHWAY_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and drops it when done.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use pathway_store::postgres::PostgresStore;
use pathway_store::{
    AppendResult, ChainBreakKind, EventStore, ExpectedVersion, NewEvent, ReadFilter, StoreError,
};
use uuid::Uuid;

use crate::conformance::{Tamper, conformance_tests, new_event};
use crate::crash::{child_append_loop, child_command, run_crash_rounds};

/// Longest a test waits for a condition it expects to become true.
const WAIT_TIMEOUT_MS: u64 = 10_000;

/// A fresh database for one test (dropped with it), with this crate's conveniences.
pub(crate) struct TestDb(pathway_testkit::TestDb);

impl TestDb {
    /// Creates `pathway_test_<random>`. Panics with instructions when the server is absent.
    pub(crate) async fn create() -> TestDb {
        TestDb(pathway_testkit::TestDb::create())
    }

    pub(crate) fn url(&self) -> &str {
        self.0.url()
    }

    /// A store on this database (a new pool, committer and watcher: another "process").
    pub(crate) async fn store(&self) -> PostgresStore {
        PostgresStore::connect(self.url())
            .await
            .expect("connect PostgresStore to the test database")
    }

    /// A plain connection to this database, for looking under the store.
    pub(crate) async fn sql(&self) -> tokio_postgres::Client {
        pathway_testkit::connect(self.url()).await
    }
}

/// A fresh store on its own fresh database (dropped with the guard).
async fn fresh_store() -> (PostgresStore, TestDb) {
    let db = TestDb::create().await;
    (db.store().await, db)
}

/// Changes rows with plain SQL, as someone with access to the database could.
async fn tamper(store: &PostgresStore, change: Tamper) {
    let client = store
        .pool()
        .get()
        .await
        .expect("pooled connection for tampering");
    let changed = match change {
        Tamper::ChangePayload { position } => client
            .execute(
                "UPDATE events SET payload = '\\xdeadbeef' WHERE position = $1",
                &[&(position as i64)],
            )
            .await
            .unwrap(),
        Tamper::DeleteRow { position } => client
            .execute(
                "DELETE FROM events WHERE position = $1",
                &[&(position as i64)],
            )
            .await
            .unwrap(),
        Tamper::SwapPositions { a, b } => {
            // Through a free position: the primary key is checked row by row.
            let free = 1_000_000_000i64;
            client
                .batch_execute(&format!(
                    "BEGIN;
                     UPDATE events SET position = {free} WHERE position = {a};
                     UPDATE events SET position = {a} WHERE position = {b};
                     UPDATE events SET position = {b} WHERE position = {free};
                     COMMIT;"
                ))
                .await
                .unwrap();
            1
        }
    };
    assert_eq!(changed, 1, "{change:?} changed one row");
}

conformance_tests!(store: fresh_store(), tamper: tamper);

/// Names the database the PostgreSQL crash child appends to.
const CHILD_URL_ENV: &str = "PATHWAY_CRASH_CHILD_PG_URL";

/// The PostgreSQL crash child: appends until killed. Runs only when
/// re-invoked by [`postgres_store_survives_sigkill`] with [`CHILD_URL_ENV`]
/// set; in an ordinary test run it returns at once and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writer() {
    let Ok(url) = std::env::var(CHILD_URL_ENV) else {
        return;
    };
    let store = PostgresStore::connect(&url).await.expect("child connects");
    child_append_loop(store).await;
}

/// A writer process killed mid group commit loses no acknowledged event and
/// leaves a dense, valid chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_survives_sigkill() {
    let db = TestDb::create().await;
    let url = db.url().to_owned();
    run_crash_rounds(
        move || {
            let mut command = child_command("postgres::crash_child_writer");
            command.env(CHILD_URL_ENV, &url);
            command
        },
        async || db.store().await,
    )
    .await;
}

/// `streams × per_stream` single-event appends, round-robin over the streams.
async fn fill(store: &PostgresStore, streams: usize, per_stream: usize) {
    for v in 0..per_stream {
        for s in 0..streams {
            let stream = format!("person-{s}");
            store
                .append(
                    &stream,
                    ExpectedVersion::Exact(v as u64),
                    vec![new_event(&format!("{s}/{v}"))],
                )
                .await
                .expect("append");
        }
    }
}

/// Runs `verify` over the whole log and returns its first break.
async fn first_break(store: &PostgresStore) -> Option<(u64, ChainBreakKind)> {
    let report = store.verify(1, None).await.expect("verify");
    report.first_break.map(|b| (b.position, b.kind))
}

#[tokio::test]
async fn tampered_envelope_column_is_content_changed() {
    let db = TestDb::create().await;
    let store = db.store().await;
    fill(&store, 1, 4).await;
    let sql = db.sql().await;
    sql.execute(
        "UPDATE events SET recorded_at = recorded_at + interval '1 microsecond' WHERE position = 2",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        first_break(&store).await,
        Some((2, ChainBreakKind::ContentChanged))
    );
}

/// Two stores on one database stand for two Pathway processes: their
/// concurrent appends interleave into one dense, valid chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_append_concurrently_into_one_dense_chain() {
    const WRITERS_PER_STORE: usize = 8;
    const APPENDS_PER_WRITER: usize = 25;
    let db = TestDb::create().await;
    let (a, b) = tokio::join!(db.store(), db.store());

    let mut tasks = Vec::new();
    for (s, store) in [a.clone(), b.clone()].into_iter().enumerate() {
        for w in 0..WRITERS_PER_STORE {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let stream = format!("person-{s}x{w}");
                let mut results = Vec::new();
                for v in 0..APPENDS_PER_WRITER {
                    // Some appends carry two events, to mix batch sizes in a group.
                    let events: Vec<NewEvent> = (0..1 + v % 2)
                        .map(|i| new_event(&format!("{s}/{w}/{v}/{i}")))
                        .collect();
                    let expected = results
                        .last()
                        .map_or(ExpectedVersion::NoStream, |r: &AppendResult| {
                            ExpectedVersion::Exact(r.stream_version)
                        });
                    results.push(
                        store
                            .append(&stream, expected, events)
                            .await
                            .expect("append"),
                    );
                }
                results
            }));
        }
    }
    let mut positions = BTreeSet::new();
    let mut total = 0u64;
    for task in tasks {
        for r in task.await.unwrap() {
            for p in r.first_position..=r.last_position {
                assert!(positions.insert(p), "position {p} given twice");
            }
            total += r.last_position - r.first_position + 1;
        }
    }
    let expected: BTreeSet<u64> = (1..=total).collect();
    assert_eq!(positions, expected, "positions are not dense");

    for store in [&a, &b] {
        let report = store.verify(1, None).await.unwrap();
        assert_eq!((report.checked, report.first_break), (total, None));
        let all = store
            .read_all(1, usize::MAX, &ReadFilter::all())
            .await
            .unwrap();
        assert_eq!(all.len() as u64, total);
        assert!(all.iter().zip(1..).all(|(e, p)| e.position == p));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_of_another_store_wake_head_changes() {
    let db = TestDb::create().await;
    let (a, b) = tokio::join!(db.store(), db.store());
    let mut changes = a.head_changes();
    assert_eq!(*changes.borrow_and_update(), 0);
    let result = b
        .append(
            "person-1",
            ExpectedVersion::NoStream,
            vec![new_event("x"), new_event("y")],
        )
        .await
        .unwrap();
    let seen = tokio::time::timeout(
        Duration::from_millis(WAIT_TIMEOUT_MS),
        changes.wait_for(|h| *h >= 2),
    )
    .await
    .expect("store a never saw store b's commit")
    .map(|h| *h)
    .unwrap();
    assert_eq!((seen, result.last_position), (2, 2));
}

#[tokio::test]
async fn a_retry_through_another_store_returns_the_original_result() {
    let db = TestDb::create().await;
    let (a, b) = tokio::join!(db.store(), db.store());
    let events = vec![new_event("1"), new_event("2")];
    let first = a
        .append("person-1", ExpectedVersion::NoStream, events.clone())
        .await
        .unwrap();
    a.append(
        "person-2",
        ExpectedVersion::NoStream,
        vec![new_event("other")],
    )
    .await
    .unwrap();
    let retried = b
        .append("person-1", ExpectedVersion::NoStream, events.clone())
        .await
        .unwrap();
    assert_eq!(retried, first);

    let mut changed = events.clone();
    changed[1].payload = Bytes::from_static(b"changed");
    match b.append("person-1", ExpectedVersion::Any, changed).await {
        Err(StoreError::EventIdReused {
            event_id,
            stream,
            version,
        }) => {
            assert_eq!(
                (event_id, stream.as_str(), version),
                (events[1].event_id, "person-1", 2)
            );
        }
        other => panic!("expected EventIdReused, got {other:?}"),
    }
    assert_eq!(a.head().await.unwrap().position, 3);
}

/// Concurrent starters on an empty database apply the migrations once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_migrate_once() {
    let db = TestDb::create().await;
    let stores = futures::future::join_all((0..4).map(|_| PostgresStore::connect(db.url()))).await;
    for store in &stores {
        assert!(store.is_ok(), "{store:?}");
    }
    let sql = db.sql().await;
    let rows = sql
        .query(
            "SELECT version, name FROM pathway_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let applied: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(applied, vec![(1, "events".to_owned())]);
}

/// A writer that skips the store's lock: the constraints still hold, and
/// the violation reaches the caller as a typed conflict while a request
/// that only lost its position is retried and commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_violation_from_a_lockless_writer_is_a_typed_conflict() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let rogue = db.sql().await;
    let watcher = db.sql().await;

    rogue.batch_execute("BEGIN").await.unwrap();
    rogue
        .execute(
            "INSERT INTO events VALUES (1, 'person-x', 1, $1, '$test', 1, now(), '', 'rogue', $2, $2)",
            &[&Uuid::new_v4(), &vec![0u8; 32]],
        )
        .await
        .unwrap();

    let conflicting = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append(
                    "person-x",
                    ExpectedVersion::Exact(0),
                    vec![new_event("mine")],
                )
                .await
        }
    });
    // Wait until the committer's insert blocks on the rogue's uncommitted key.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_TIMEOUT_MS);
    loop {
        let row = watcher
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the committer never blocked on the rogue row"
        );
        tokio::task::yield_now().await;
    }
    let other = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append(
                    "person-y",
                    ExpectedVersion::NoStream,
                    vec![new_event("other")],
                )
                .await
        }
    });
    rogue.batch_execute("COMMIT").await.unwrap();

    match conflicting.await.unwrap() {
        Err(StoreError::WrongExpectedVersion {
            stream,
            expected,
            actual,
        }) => {
            assert_eq!(
                (stream.as_str(), expected, actual),
                ("person-x", ExpectedVersion::Exact(0), 1)
            );
        }
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
    let other = other.await.unwrap().expect("the other append commits");
    assert_eq!((other.first_position, other.stream_version), (2, 1));
}

#[tokio::test]
async fn connect_to_a_missing_database_is_unavailable() {
    let db = TestDb::create().await;
    let url = pathway_testkit::with_dbname(db.url(), "pathway_test_no_such_database");
    match PostgresStore::connect(&url).await {
        Err(e @ StoreError::Unavailable(_)) => {
            assert!(
                e.to_string().contains("pathway_test_no_such_database"),
                "{e}"
            );
            assert!(e.is_retryable());
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn schema_version_beyond_int_is_rejected_alone() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let mut bad = new_event("x");
    bad.schema_version = u32::MAX;
    match store
        .append("person-1", ExpectedVersion::Any, vec![bad])
        .await
    {
        Err(StoreError::InvalidInput(msg)) => {
            assert!(msg.contains("schema version 4294967295"), "{msg}")
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(store.head().await.unwrap().position, 0);
}

#[tokio::test]
async fn read_all_filters_by_type_and_category_in_sql() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let typed = |t: &str| NewEvent {
        event_type: t.to_owned(),
        ..new_event(t)
    };
    store
        .append(
            "person-1",
            ExpectedVersion::Any,
            vec![typed("$a"), typed("$b")],
        )
        .await
        .unwrap();
    store
        .append("employer-1", ExpectedVersion::Any, vec![typed("$a")])
        .await
        .unwrap();
    store
        .append("plain", ExpectedVersion::Any, vec![typed("$b")])
        .await
        .unwrap();
    let positions = |events: Vec<pathway_store::RecordedEvent>| {
        events.iter().map(|e| e.position).collect::<Vec<_>>()
    };
    let filter = |types: &[&str], categories: &[&str]| ReadFilter {
        event_types: types.iter().map(|s| s.to_string()).collect(),
        categories: categories.iter().map(|s| s.to_string()).collect(),
    };
    let cases: [(ReadFilter, Vec<u64>); 5] = [
        (ReadFilter::all(), vec![1, 2, 3, 4]),
        (filter(&["$a"], &[]), vec![1, 3]),
        (filter(&[], &["person", "plain"]), vec![1, 2, 4]),
        (filter(&["$b"], &["person"]), vec![2]),
        (filter(&["$c"], &[]), vec![]),
    ];
    for (f, expected) in cases {
        assert_eq!(
            positions(store.read_all(1, 100, &f).await.unwrap()),
            expected,
            "{f:?}"
        );
    }
    assert_eq!(
        positions(
            store
                .read_all(2, 2, &filter(&["$a", "$b"], &[]))
                .await
                .unwrap()
        ),
        vec![2, 3]
    );
}

/// The benchmark functions behind `pathway bench` write and read what they report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_functions_report_what_they_did() {
    use pathway_store::bench::{BenchConfig, bench_append, bench_read, copy_baseline};

    let db = TestDb::create().await;
    let store = db.store().await;
    let cfg = BenchConfig {
        writers: 4,
        events: 42,
        events_per_append: 4,
        payload_bytes: 16,
    };
    let report = bench_append(store.clone(), cfg).await.unwrap();
    assert_eq!(report.events, 42);
    assert!(
        report.events_per_s > 0.0 && report.p50_ms <= report.p99_ms,
        "{report:?}"
    );
    assert_eq!(store.head().await.unwrap().position, 42);
    let all = store.read_all(1, 100, &ReadFilter::all()).await.unwrap();
    let streams: BTreeSet<&str> = all.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(streams.len(), 4);
    assert!(
        all.iter()
            .all(|e| e.event_type == "PersonRegistered" && e.payload.len() == 16)
    );
    assert_eq!(store.verify(1, None).await.unwrap().first_break, None);

    assert_eq!(bench_read(store.clone(), 25).await.unwrap().events, 25);
    // Stops at the end of the log.
    assert_eq!(bench_read(store.clone(), 1_000).await.unwrap().events, 42);

    assert!(copy_baseline(db.url(), 100, 16).await.unwrap() > 0.0);
    let sql = db.sql().await;
    let scratch = sql
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'pathway_bench_copy_%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(scratch.get::<_, i64>(0), 0, "the scratch table is dropped");
}

/// Every connection of the store plans prepared statements afresh (a generic
/// plan made on the empty log would scan the whole log for each group commit
/// for ever when nothing runs ANALYZE); options given in the URL are kept.
#[tokio::test]
async fn store_connections_plan_each_execution_and_keep_url_options() {
    let db = TestDb::create().await;
    let cases = [
        (db.url().to_owned(), None),
        (
            format!("{}?options=-c%20statement_timeout%3D4321", db.url()),
            Some("4321ms"),
        ),
    ];
    for (url, timeout) in cases {
        let store = PostgresStore::connect(&url).await.expect("connect");
        let client = store.pool().get().await.expect("pooled connection");
        let show = |name: &'static str| {
            let client = &client;
            async move {
                let row = client
                    .query_one(&format!("SHOW {name}"), &[])
                    .await
                    .expect("SHOW");
                row.get::<_, String>(0)
            }
        };
        assert_eq!(show("plan_cache_mode").await, "force_custom_plan", "{url}");
        if let Some(timeout) = timeout {
            assert_eq!(show("statement_timeout").await, timeout, "{url}");
        }
    }
}

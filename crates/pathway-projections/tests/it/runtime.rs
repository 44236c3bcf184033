//! The projector runtime against real storage: SQLite files in a temporary
//! directory, and a fresh PostgreSQL database per test on the server named by
//! `PATHWAY_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when done.
//!
//! Most scenarios run on both backends (`<scenario>::sqlite`,
//! `<scenario>::postgres`): the SQLite variant reads an embedded log, the
//! PostgreSQL one a `PostgresStore` in the same database. The logs hold real
//! encoded events with envelopes; a small counting projection (`test_moves`)
//! makes exactly-once visible: its rows must equal a fold over the log
//! computed here.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pathway_domain::pb;
use pathway_projections::runtime::{self, ProjectorOptions, ReadStore};
use pathway_projections::views::{DpfResidence, DpfView, View};
use pathway_projections::{
    Column, ProjectedEvent, Projection, ProjectionError, Table, Tx, Value, models,
};
use pathway_proto::Message;
use pathway_store::embedded::EmbeddedStore;
use pathway_store::postgres::PostgresStore;
use pathway_store::{EventStore, ExpectedVersion, NewEvent, ReadFilter};
use uuid::Uuid;

/// Longest a test waits for a condition it expects to become true.
const WAIT_TIMEOUT_MS: u64 = 15_000;
/// A region a person leaves the province to: their row is deleted.
const LEFT_PROVINCE: &str = "999999";
const REGIONS: [&str; 5] = ["230102", "230203", "230302", "230402", LEFT_PROVINCE];
const PERSONS: usize = 12;

// ---------------------------------------------------------------------------
// The counting projection
// ---------------------------------------------------------------------------

const PERSONS_TABLE: Table = Table {
    name: "persons",
    key: &[Column::text("person_ref")],
    values: &[
        Column::int("moves"),
        Column::text("region"),
        Column::text("previous_region"),
        Column::int("last_position"),
        Column::bool("moved_by_dpf"),
    ],
};
const REGIONS_TABLE: Table = Table {
    name: "regions",
    key: &[Column::text("region"), Column::int("year")],
    values: &[Column::int("arrivals"), Column::int("departures")],
};
const TABLES: &[Table] = &[PERSONS_TABLE, REGIONS_TABLE];

/// Sees residence changes only; counts moves per person and arrivals and
/// departures per region, reading its own rows back (`get`) and deleting
/// persons who leave the province.
struct Moves;

impl Projection for Moves {
    fn name(&self) -> &'static str {
        "test_moves"
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn view(&self, event: &pathway_domain::Event) -> Option<View> {
        match event {
            pathway_domain::Event::ResidenceChanged(e) => {
                Some(View::Dpf(DpfView::Moved(DpfResidence {
                    person_ref: e.person_ref.clone(),
                    to_region: e.to_region.clone(),
                    effective_on: None,
                })))
            }
            _ => None,
        }
    }

    fn apply(&self, event: &ProjectedEvent<View>, tx: &mut dyn Tx) -> Result<(), ProjectionError> {
        let View::Dpf(DpfView::Moved(moved)) = &event.view else {
            unreachable!("view returns only moves");
        };
        let key = [Value::from(moved.person_ref.as_str())];
        let previous = tx.get(&PERSONS_TABLE, &key)?.map(|row| row[1].clone());
        let year = Value::Int(2024);
        if let Some(Value::Text(previous)) = &previous {
            tx.add(
                &REGIONS_TABLE,
                &[previous.as_str().into(), year.clone()],
                &[("departures", 1)],
            )?;
        }
        tx.add(
            &REGIONS_TABLE,
            &[moved.to_region.as_str().into(), year],
            &[("arrivals", 1)],
        )?;
        if moved.to_region == LEFT_PROVINCE {
            return tx.delete(&PERSONS_TABLE, &key);
        }
        tx.upsert(
            &PERSONS_TABLE,
            &key,
            &[
                ("region", moved.to_region.as_str().into()),
                ("previous_region", previous.unwrap_or(Value::Null)),
                ("last_position", Value::Int(event.position as i64)),
                (
                    "moved_by_dpf",
                    (event.actor_department == pb::Department::Dpf).into(),
                ),
            ],
        )?;
        tx.add(&PERSONS_TABLE, &key, &[("moves", 1)])
    }
}

fn moves() -> Arc<dyn Projection> {
    Arc::new(Moves)
}

/// The rows `Moves` must hold after applying the log up to `upto`: the same
/// rules, folded in memory over the decoded log.
async fn expected<S: EventStore>(log: &S, upto: u64) -> (Vec<Vec<Value>>, Vec<Vec<Value>>) {
    let mut persons: BTreeMap<String, (i64, String, Option<String>, i64, bool)> = BTreeMap::new();
    let mut regions: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for record in read_log(log)
        .await
        .into_iter()
        .filter(|r| r.position <= upto)
    {
        let pathway_domain::Event::ResidenceChanged(e) =
            pathway_engine::decode(&record).expect("decode")
        else {
            continue;
        };
        let actor = pathway_engine::decode_envelope(&record)
            .expect("envelope")
            .actor_department();
        let previous = persons.get(&e.person_ref).map(|p| p.1.clone());
        if let Some(previous) = &previous {
            regions.entry(previous.clone()).or_default().1 += 1;
        }
        regions.entry(e.to_region.clone()).or_default().0 += 1;
        if e.to_region == LEFT_PROVINCE {
            persons.remove(&e.person_ref);
            continue;
        }
        let moves = persons.get(&e.person_ref).map_or(0, |p| p.0) + 1;
        persons.insert(
            e.person_ref.clone(),
            (
                moves,
                e.to_region.clone(),
                previous,
                record.position as i64,
                actor == pb::Department::Dpf,
            ),
        );
    }
    let persons = persons
        .into_iter()
        .map(|(person, (moves, region, previous, position, dpf))| {
            vec![
                person.into(),
                moves.into(),
                region.into(),
                previous.map_or(Value::Null, Value::from),
                position.into(),
                dpf.into(),
            ]
        })
        .collect();
    let regions = regions
        .into_iter()
        .map(|(region, (arrivals, departures))| {
            vec![
                region.into(),
                2024.into(),
                arrivals.into(),
                departures.into(),
            ]
        })
        .collect();
    (persons, regions)
}

/// Both tables of `test_moves` as stored.
fn stored(target: &ReadStore) -> (Vec<Vec<Value>>, Vec<Vec<Value>>) {
    (
        runtime::query(target, "test_moves", &PERSONS_TABLE, &[]).expect("query persons"),
        runtime::query(target, "test_moves", &REGIONS_TABLE, &[]).expect("query regions"),
    )
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

/// A deterministic pseudo-random sequence (no clock, no OS entropy).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn encoded(kind: pathway_domain::Event, actor: pb::Department) -> NewEvent {
    let event_id = Uuid::new_v4();
    let envelope = pb::EventEnvelope {
        event_id: event_id.to_string(),
        event_type: kind.event_type().to_owned(),
        schema_version: pathway_proto::SCHEMA_VERSION_V1,
        occurred_at: Some(pathway_proto::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        correlation_id: Uuid::new_v4().to_string(),
        causation_id: Uuid::new_v4().to_string(),
        actor_department: actor as i32,
        actor_region: "230000".into(),
        actor_id: "test".into(),
        command_id: Uuid::new_v4().to_string(),
        stream_id: String::new(),
        stream_version: 0,
        recorded_at: None,
    };
    NewEvent {
        event_id,
        event_type: kind.event_type().to_owned(),
        schema_version: pathway_proto::SCHEMA_VERSION_V1,
        metadata: envelope.encode_to_vec().into(),
        payload: pb::Event { kind: Some(kind) }.encode_to_vec().into(),
    }
}

/// Appends `count` events (in appends of 1–3 to one person's stream):
/// residence changes, and every fourth a consent the projection does not see.
/// The last event appended is always an invisible one.
async fn append_events<S: EventStore>(log: &S, seed: u64, count: usize) {
    let mut rng = Lcg(seed);
    let mut left = count;
    while left > 0 {
        let person = format!("p{:02}", rng.below(PERSONS as u64));
        let n = (1 + rng.below(3) as usize).min(left);
        let events = (0..n)
            .map(|i| {
                let last = left == n && i == n - 1;
                if last || rng.below(4) == 0 {
                    let consent = pb::ConsentGranted {
                        person_ref: person.clone(),
                        ..Default::default()
                    };
                    encoded(
                        pathway_domain::Event::ConsentGranted(consent),
                        pb::Department::Dpf,
                    )
                } else {
                    let moved = pb::ResidenceChanged {
                        person_ref: person.clone(),
                        from_region: String::new(),
                        to_region: REGIONS[rng.below(REGIONS.len() as u64) as usize].to_owned(),
                        effective_on: None,
                    };
                    let actor = if rng.below(2) == 0 {
                        pb::Department::Dpf
                    } else {
                        pb::Department::CivilAffairs
                    };
                    encoded(pathway_domain::Event::ResidenceChanged(moved), actor)
                }
            })
            .collect();
        log.append(&format!("person-{person}"), ExpectedVersion::Any, events)
            .await
            .expect("append");
        left -= n;
    }
}

async fn read_log<S: EventStore>(log: &S) -> Vec<pathway_store::RecordedEvent> {
    let mut out = Vec::new();
    loop {
        let batch = log
            .read_all(out.len() as u64 + 1, 1_000, &ReadFilter::all())
            .await
            .expect("read log");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

async fn head<S: EventStore>(log: &S) -> u64 {
    log.head().await.expect("head").position
}

// ---------------------------------------------------------------------------
// Environments
// ---------------------------------------------------------------------------

/// An embedded log and SQLite read models in one temporary directory.
struct SqliteEnv {
    log: EmbeddedStore,
    target: ReadStore,
    dir: tempfile::TempDir,
}

impl SqliteEnv {
    fn new() -> SqliteEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EmbeddedStore::open(&dir.path().join("log")).expect("open embedded log");
        let target = ReadStore::Sqlite {
            dir: dir.path().join("models"),
        };
        SqliteEnv { log, target, dir }
    }
}

/// A fresh PostgreSQL database holding both the log and the read models.
struct PgEnv {
    log: PostgresStore,
    target: ReadStore,
    db: TestDb,
}

impl PgEnv {
    async fn new() -> PgEnv {
        let db = TestDb::create();
        let log = PostgresStore::connect(db.url())
            .await
            .expect("connect PostgresStore to the test database");
        let target = ReadStore::Postgres {
            url: db.url().to_owned(),
        };
        PgEnv { log, target, db }
    }
}

pub(crate) use pathway_testkit::TestDb;

/// A synchronous connection, on the calling thread (never call from a
/// runtime thread: use [`sql`] or a thread of your own).
fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "cannot connect to PostgreSQL at {url}: {e}\n\
             These tests need a running PostgreSQL server (15 or later) that lets the user create databases.\n\
             Start one, e.g. `pg_ctlcluster 15 main start` or\n\
             `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15`,\n\
             or point PATHWAY_TEST_DATABASE_URL at a server you have."
        )
    })
}

/// Runs `statements` on `url` from a thread of its own.
fn sql(url: &str, statements: &str) {
    let (url, statements) = (url.to_owned(), statements.to_owned());
    std::thread::spawn(move || connect(&url).batch_execute(&statements).expect("run SQL"))
        .join()
        .expect("SQL thread");
}

/// One boolean answer of `query` on `url`, from a thread of its own.
fn sql_bool(url: &str, query: &str) -> bool {
    let (url, query) = (url.to_owned(), query.to_owned());
    std::thread::spawn(move || {
        connect(&url)
            .query_one(&query, &[])
            .expect("query")
            .get::<_, bool>(0)
    })
    .join()
    .expect("SQL thread")
}

/// Small reads and batches, so a log of a few hundred events takes many
/// transactions.
fn small_batches() -> ProjectorOptions {
    ProjectorOptions {
        read_events_max: 5,
        batch_events_max: 12,
        ..ProjectorOptions::default()
    }
}

/// [`small_batches`] whose first batch reaching position `fail_at` fails
/// between its rows and its checkpoint; the second value is then the
/// checkpoint that batch started from.
fn failing_before_checkpoint_at(
    fail_at: u64,
) -> (ProjectorOptions, Arc<std::sync::Mutex<Option<u64>>>) {
    let checkpoint_before = Arc::new(std::sync::Mutex::new(None));
    let mut options = small_batches();
    let seen = Arc::clone(&checkpoint_before);
    options.before_checkpoint = Some(Arc::new(move |first: u64, last: u64| {
        if last >= fail_at {
            *seen.lock().unwrap() = Some(first - 1);
            return Err(ProjectionError::Storage(
                "injected failure before the checkpoint".into(),
            ));
        }
        Ok(())
    }));
    (options, checkpoint_before)
}

/// Runs each scenario on SQLite (embedded log) and PostgreSQL (PostgreSQL log).
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let env = super::SqliteEnv::new();
                super::$scenario(&env.log, &env.target).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let env = super::PgEnv::new().await;
                super::$scenario(&env.log, &env.target).await;
            }
        }
    )*};
}

on_both_backends!(
    a_changed_model_is_refused_until_rebuilt,
    catch_up_applies_each_event_once,
    failure_before_checkpoint_rolls_back_the_batch,
    rebuild_produces_identical_rows,
    lag_counts_positions_and_seconds_behind,
    follow_picks_up_new_events_until_shutdown,
    projectors_racing_on_one_model_apply_each_event_once,
    follow_resynchronises_after_a_rebuild,
    catch_up_and_rebuild_report_progress,
    models_follow_together_until_one_ends,
    a_checkpoint_moved_under_models_following_together_ends_their_run,
    a_cache_smaller_than_the_model_still_projects_every_row,
);

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/// `Moves` as a later build might declare it: one more column in `persons`.
struct MovesGrown;

const GROWN_PERSONS_TABLE: Table = Table {
    name: "persons",
    key: &[Column::text("person_ref")],
    values: &[
        Column::int("moves"),
        Column::text("region"),
        Column::text("previous_region"),
        Column::int("last_position"),
        Column::bool("moved_by_dpf"),
        Column::int("returns"),
    ],
};

impl Projection for MovesGrown {
    fn name(&self) -> &'static str {
        Moves.name()
    }

    fn tables(&self) -> &'static [Table] {
        &[GROWN_PERSONS_TABLE, REGIONS_TABLE]
    }

    fn view(&self, event: &pathway_domain::Event) -> Option<View> {
        Moves.view(event)
    }

    fn apply(&self, _: &ProjectedEvent<View>, _: &mut dyn Tx) -> Result<(), ProjectionError> {
        Ok(())
    }
}

async fn a_changed_model_is_refused_until_rebuilt<S: EventStore + Clone>(
    log: &S,
    target: &ReadStore,
) {
    append_events(log, 5, 40).await;
    let head = head(log).await;
    assert_eq!(runtime::catch_up(log, target, moves()).await.unwrap(), head);
    let grown: Arc<dyn Projection> = Arc::new(MovesGrown);
    let refused = runtime::catch_up(log, target, Arc::clone(&grown))
        .await
        .expect_err("tables of the earlier model");
    assert!(
        matches!(&refused, ProjectionError::Schema { projection: "test_moves", detail }
            if detail.contains("returns") && detail.contains("pathway projections rebuild test_moves")),
        "{refused}"
    );
    // Nothing was changed by the refusal: the earlier build still reads and
    // writes its tables.
    assert_eq!(runtime::catch_up(log, target, moves()).await.unwrap(), head);
    runtime::rebuild_many(log, target, &[Arc::clone(&grown)])
        .await
        .expect("rebuild with the new model");
    assert_eq!(runtime::catch_up(log, target, grown).await.unwrap(), head);
    assert!(matches!(
        runtime::catch_up(log, target, moves()).await,
        Err(ProjectionError::Schema { .. })
    ));
}

async fn catch_up_applies_each_event_once<S: EventStore + Clone>(log: &S, target: &ReadStore) {
    assert_eq!(runtime::read_checkpoint(target, "test_moves").unwrap(), 0);
    assert_eq!(
        runtime::catch_up(log, target, moves()).await.unwrap(),
        0,
        "empty log"
    );

    append_events(log, 1, 300).await;
    let head1 = head(log).await;
    let checkpoint = runtime::catch_up_with(log, target, moves(), &small_batches())
        .await
        .unwrap();
    assert_eq!(
        checkpoint, head1,
        "the checkpoint passes the trailing invisible event"
    );
    assert_eq!(
        runtime::read_checkpoint(target, "test_moves").unwrap(),
        head1
    );
    assert_eq!(stored(target), expected(log, head1).await);

    // Again: nothing to do, nothing changes.
    assert_eq!(
        runtime::catch_up(log, target, moves()).await.unwrap(),
        head1
    );
    assert_eq!(stored(target), expected(log, head1).await);

    // More events: only they are applied.
    append_events(log, 2, 100).await;
    let head2 = head(log).await;
    assert_eq!(
        runtime::catch_up(log, target, moves()).await.unwrap(),
        head2
    );
    assert_eq!(stored(target), expected(log, head2).await);

    // Filters and ordering of `query`.
    let in_first_region = runtime::query(
        target,
        "test_moves",
        &PERSONS_TABLE,
        &[("region", REGIONS[0].into())],
    )
    .unwrap();
    let (persons, _) = expected(log, head2).await;
    let all = persons.len() as u64;
    // `sum_by` adds up in the database what the rows hold.
    let mut moves_by_region: std::collections::BTreeMap<String, i64> = Default::default();
    for row in &persons {
        let (Value::Text(region), Value::Int(moves)) = (&row[2], &row[1]) else {
            panic!("persons row {row:?}");
        };
        *moves_by_region.entry(region.clone()).or_default() += moves;
    }
    let summed =
        runtime::sum_by(target, "test_moves", &PERSONS_TABLE, &["region"], "moves").unwrap();
    assert!(summed.len() > 1, "{summed:?}");
    assert_eq!(
        summed,
        moves_by_region
            .iter()
            .map(|(region, moves)| (vec![Value::from(region.as_str())], *moves))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        runtime::sum_by(target, "test_moves", &PERSONS_TABLE, &[], "moves").unwrap(),
        vec![(vec![], moves_by_region.values().sum::<i64>())]
    );
    assert!(matches!(
        runtime::sum_by(target, "test_moves", &PERSONS_TABLE, &[], "region"),
        Err(ProjectionError::Storage(_))
    ));
    let want: Vec<_> = persons
        .into_iter()
        .filter(|row| row[2] == Value::from(REGIONS[0]))
        .collect();
    assert_eq!(in_first_region, want);
    // `count` counts in the database what `query` would return.
    assert!(!want.is_empty() && (want.len() as u64) < all);
    assert_eq!(
        runtime::count(
            target,
            "test_moves",
            &PERSONS_TABLE,
            &[("region", REGIONS[0].into())]
        )
        .unwrap(),
        want.len() as u64
    );
    assert_eq!(
        runtime::count(target, "test_moves", &PERSONS_TABLE, &[]).unwrap(),
        all
    );
    assert!(matches!(
        runtime::count(
            target,
            "test_moves",
            &PERSONS_TABLE,
            &[("nope", Value::Null)]
        ),
        Err(ProjectionError::Storage(_))
    ));
    assert!(matches!(
        runtime::query(
            target,
            "test_moves",
            &PERSONS_TABLE,
            &[("nope", Value::Null)]
        ),
        Err(ProjectionError::Storage(_))
    ));
    assert!(matches!(
        runtime::read_checkpoint(target, "../x"),
        Err(ProjectionError::UnknownModel(_))
    ));
    // `query_page` returns what `query` does, a page at a time, for a
    // one-column key with a filter and a two-column key without.
    for (table, filters, size) in [
        (&PERSONS_TABLE, vec![("region", Value::from(REGIONS[0]))], 2),
        (&REGIONS_TABLE, vec![], 3),
    ] {
        let all = runtime::query(target, "test_moves", table, &filters).unwrap();
        assert!(all.len() > size, "{} has {} rows", table.name, all.len());
        let (mut paged, mut after, mut pages) = (Vec::new(), None::<Vec<Value>>, 0);
        loop {
            let page = runtime::query_page(
                target,
                "test_moves",
                table,
                &filters,
                after.as_deref(),
                size,
            )
            .unwrap();
            assert!(page.rows.len() <= size);
            pages += 1;
            paged.extend(page.rows);
            match page.next {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        assert_eq!(paged, all, "{} paged by {size}", table.name);
        assert_eq!(pages, all.len().div_ceil(size), "{}", table.name);
    }
    for (after, limit) in [
        (Some(vec![Value::Int(1)]), 10),
        (Some(vec![Value::from("a"), Value::from("b")]), 10),
        (None, 0),
        (None, runtime::QUERY_PAGE_ROWS_MAX + 1),
    ] {
        assert!(
            matches!(
                runtime::query_page(
                    target,
                    "test_moves",
                    &PERSONS_TABLE,
                    &[],
                    after.as_deref(),
                    limit
                ),
                Err(ProjectionError::Storage(_))
            ),
            "after {after:?}, limit {limit}"
        );
    }
}

async fn failure_before_checkpoint_rolls_back_the_batch<S: EventStore + Clone>(
    log: &S,
    target: &ReadStore,
) {
    append_events(log, 3, 200).await;
    let head = head(log).await;
    let fail_at = head / 2;
    let (options, checkpoint_before) = failing_before_checkpoint_at(fail_at);
    let err = runtime::catch_up_with(log, target, moves(), &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");

    // The model is exactly as it was before the failed batch.
    let before = checkpoint_before.lock().unwrap().expect("the hook fired");
    assert!(before > 0 && before < fail_at, "failed mid-log: {before}");
    assert_eq!(
        runtime::read_checkpoint(target, "test_moves").unwrap(),
        before
    );
    assert_eq!(stored(target), expected(log, before).await);

    // A restart finishes the job, and equals a from-scratch rebuild.
    assert_eq!(
        runtime::catch_up_with(log, target, moves(), &small_batches())
            .await
            .unwrap(),
        head
    );
    let restarted = stored(target);
    assert_eq!(restarted, expected(log, head).await);
    assert_eq!(runtime::rebuild(log, target, moves()).await.unwrap(), head);
    assert_eq!(stored(target), restarted);
}

/// A writer whose cache holds fewer rows than the model flushes and drops
/// them mid-batch and reads them back when an event touches them again:
/// the rows come out the same, caught up in small batches or rebuilt in one.
async fn a_cache_smaller_than_the_model_still_projects_every_row<S: EventStore + Clone>(
    log: &S,
    target: &ReadStore,
) {
    append_events(log, 8, 240).await;
    let head = head(log).await;
    let tiny = |batch_events_max| ProjectorOptions {
        cache_rows_max: 3,
        batch_events_max,
        ..small_batches()
    };
    assert_eq!(
        runtime::catch_up_with(log, target, moves(), &tiny(40))
            .await
            .unwrap(),
        head
    );
    let (persons, regions) = expected(log, head).await;
    assert!(persons.len() > 6, "more rows than the cache holds");
    assert_eq!(stored(target), (persons.clone(), regions.clone()));
    assert_eq!(
        runtime::rebuild_many_with(log, target, &[moves()], &tiny(100_000))
            .await
            .unwrap(),
        [head]
    );
    assert_eq!(stored(target), (persons, regions));
}

async fn rebuild_produces_identical_rows<S: EventStore + Clone>(log: &S, target: &ReadStore) {
    // Rebuilding a model that does not exist yet creates it.
    append_events(log, 4, 150).await;
    let head1 = head(log).await;
    assert_eq!(runtime::rebuild(log, target, moves()).await.unwrap(), head1);
    assert_eq!(stored(target), expected(log, head1).await);

    append_events(log, 5, 150).await;
    let head2 = head(log).await;
    runtime::catch_up_with(log, target, moves(), &small_batches())
        .await
        .unwrap();
    let caught_up = stored(target);
    assert_eq!(runtime::rebuild(log, target, moves()).await.unwrap(), head2);
    assert_eq!(stored(target), caught_up);
    assert_eq!(
        runtime::read_checkpoint(target, "test_moves").unwrap(),
        head2
    );
    // The rebuilt model goes on from its checkpoint.
    append_events(log, 6, 20).await;
    let head3 = head(log).await;
    assert_eq!(
        runtime::catch_up(log, target, moves()).await.unwrap(),
        head3
    );
    assert_eq!(stored(target), expected(log, head3).await);
}

async fn catch_up_and_rebuild_report_progress<S: EventStore + Clone>(log: &S, target: &ReadStore) {
    append_events(log, 7, 23).await;
    let head = head(log).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let options = ProjectorOptions {
        progress: Some({
            let seen = Arc::clone(&seen);
            Arc::new(move |read, to| seen.lock().unwrap().push((read, to)))
        }),
        ..small_batches()
    };
    // Reads of 5 events: each read's last position, against the head.
    let mut reads: Vec<u64> = (1..=head).filter(|p| p % 5 == 0).collect();
    if head % 5 != 0 {
        reads.push(head);
    }
    let expected: Vec<(u64, u64)> = reads.iter().map(|&p| (p, head)).collect();
    let take = || std::mem::take(&mut *seen.lock().unwrap());
    runtime::catch_up_with(log, target, moves(), &options)
        .await
        .unwrap();
    assert_eq!(take(), expected);
    // Caught up: nothing left to read, nothing reported.
    runtime::catch_up_with(log, target, moves(), &options)
        .await
        .unwrap();
    assert_eq!(take(), []);
    // A rebuild reads from the start again.
    runtime::rebuild_many_with(log, target, &[moves()], &options)
        .await
        .unwrap();
    assert_eq!(take(), expected);
}

async fn lag_counts_positions_and_seconds_behind<S: EventStore + Clone>(
    log: &S,
    target: &ReadStore,
) {
    let empty = runtime::lag(log, target, "test_moves").await.unwrap();
    assert_eq!(
        (
            empty.checkpoint,
            empty.head_position,
            empty.positions_behind
        ),
        (0, 0, 0)
    );
    assert_eq!(empty.seconds_behind, 0.0);

    append_events(log, 7, 30).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    append_events(log, 8, 30).await;
    let head = head(log).await;
    let behind = runtime::lag(log, target, "test_moves").await.unwrap();
    assert_eq!(
        (
            behind.checkpoint,
            behind.head_position,
            behind.positions_behind
        ),
        (0, head, head)
    );
    assert!(behind.seconds_behind >= 1.0, "{behind:?}");

    runtime::catch_up(log, target, moves()).await.unwrap();
    let caught_up = runtime::lag(log, target, "test_moves").await.unwrap();
    assert_eq!(
        (
            caught_up.checkpoint,
            caught_up.head_position,
            caught_up.positions_behind
        ),
        (head, head, 0)
    );
    assert_eq!(caught_up.seconds_behind, 0.0);
}

async fn follow_picks_up_new_events_until_shutdown<S: EventStore + Clone>(
    log: &S,
    target: &ReadStore,
) {
    append_events(log, 9, 50).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let follower = {
        let (log, target) = (log.clone(), target.clone());
        tokio::spawn(async move { runtime::follow(&log, &target, moves(), shutdown).await })
    };
    wait_for_checkpoint(target, head(log).await).await;
    for round in 0..5 {
        append_events(log, 10 + round, 20).await;
        wait_for_checkpoint(target, head(log).await).await;
    }
    let head = head(log).await;
    assert_eq!(stored(target), expected(log, head).await);
    stop.send(true).unwrap();
    let stopped = tokio::time::timeout(Duration::from_millis(WAIT_TIMEOUT_MS), follower)
        .await
        .expect("follow stops on shutdown")
        .expect("follow task")
        .expect("follow");
    assert_eq!(stopped, head);
    // Appended after the shutdown: not applied.
    append_events(log, 20, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        runtime::read_checkpoint(target, "test_moves").unwrap(),
        head
    );
}

/// Two projectors on one model at once: the checkpoint comparison in every
/// batch makes the loser of each race resynchronise instead of applying a
/// batch twice.
async fn projectors_racing_on_one_model_apply_each_event_once<S: EventStore + Clone>(
    log: &S,
    target: &ReadStore,
) {
    append_events(log, 21, 400).await;
    let head = head(log).await;
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let (log, target) = (log.clone(), target.clone());
            tokio::spawn(async move {
                runtime::catch_up_with(&log, &target, moves(), &small_batches()).await
            })
        })
        .collect();
    for run in runs {
        assert_eq!(run.await.unwrap().unwrap(), head);
    }
    assert_eq!(stored(target), expected(log, head).await);
}

/// A follower keeps running through a rebuild of its model (while events are
/// appended): it finds its checkpoint moved by the swap, resynchronises from
/// the rebuilt model and applies every event once.
async fn follow_resynchronises_after_a_rebuild<S: EventStore + Clone>(log: &S, target: &ReadStore) {
    append_events(log, 50, 200).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let follower = {
        let (log, target) = (log.clone(), target.clone());
        tokio::spawn(async move {
            runtime::follow_with(&log, &target, moves(), shutdown, &small_batches()).await
        })
    };
    wait_for_checkpoint(target, head(log).await).await;
    let appender = {
        let log = log.clone();
        tokio::spawn(async move { append_events(&log, 51, 150).await })
    };
    runtime::rebuild(log, target, moves()).await.unwrap();
    appender.await.unwrap();
    let head = head(log).await;
    wait_for_checkpoint(target, head).await;
    assert_eq!(stored(target), expected(log, head).await);
    stop.send(true).unwrap();
    assert_eq!(follower.await.unwrap().unwrap(), head);
}

/// A `follow_many_with` run of `models` on its own task, and its stop.
fn follow_many<S: EventStore + Clone>(
    log: &S,
    target: &ReadStore,
    models: Vec<Arc<dyn Projection>>,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<Result<Vec<runtime::Followed>, ProjectionError>>,
) {
    let (log, target) = (log.clone(), target.clone());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(async move {
        runtime::follow_many_with(&log, &target, &models, shutdown, &small_batches()).await
    });
    (stop, run)
}

/// How the models of a [`follow_many`] run ended (it must end in time).
async fn ended(
    run: tokio::task::JoinHandle<Result<Vec<runtime::Followed>, ProjectionError>>,
) -> Vec<runtime::Followed> {
    tokio::time::timeout(Duration::from_millis(WAIT_TIMEOUT_MS), run)
        .await
        .expect("the run ends")
        .expect("follow task")
        .expect("the shared reader")
}

/// `Moves` under another name that fails on every event from position
/// `fail_from` on.
struct FailingMoves {
    fail_from: u64,
}

impl Projection for FailingMoves {
    fn name(&self) -> &'static str {
        "test_failing_moves"
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn view(&self, event: &pathway_domain::Event) -> Option<View> {
        Moves.view(event)
    }

    fn apply(&self, event: &ProjectedEvent<View>, tx: &mut dyn Tx) -> Result<(), ProjectionError> {
        if event.position >= self.fail_from {
            return Err(ProjectionError::Storage(format!(
                "injected failure at position {}",
                event.position
            )));
        }
        Moves.apply(event, tx)
    }
}

/// Two models follow the log with one reader: both apply every new event
/// until asked to stop. When one fails, the run ends: the other stops at
/// its checkpoint, with exactly the events up to it, and catches up after.
async fn models_follow_together_until_one_ends<S: EventStore + Clone>(log: &S, target: &ReadStore) {
    let follow = |fail_from: u64| {
        follow_many(
            log,
            target,
            vec![moves(), Arc::new(FailingMoves { fail_from })],
        )
    };

    append_events(log, 60, 50).await;
    let (stop, run) = follow(u64::MAX);
    for round in 0..3 {
        append_events(log, 61 + round, 40).await;
        wait_for_checkpoint(target, head(log).await).await;
    }
    let head1 = head(log).await;
    stop.send(true).unwrap();
    let followed = ended(run).await;
    assert!(
        matches!(followed[..], [runtime::Followed::Stopped(a), runtime::Followed::Stopped(b)] if a == head1 && b == head1),
        "{followed:?}"
    );
    assert_eq!(
        runtime::read_checkpoint(target, "test_failing_moves").unwrap(),
        head1
    );
    assert_eq!(stored(target), expected(log, head1).await);

    // The second model fails on the next event: the run ends by itself.
    let (_stop, run) = follow(head1 + 1);
    append_events(log, 70, 60).await;
    let head2 = head(log).await;
    let followed = ended(run).await;
    let [
        runtime::Followed::Stopped(stopped),
        runtime::Followed::Failed(ref failed),
    ] = followed[..]
    else {
        panic!("one stopped, one failed: {followed:?}");
    };
    assert!(
        failed.to_string().contains("injected failure at position"),
        "{failed}"
    );
    assert_eq!(
        runtime::read_checkpoint(target, "test_failing_moves").unwrap(),
        head1,
        "the failed batch rolled back"
    );
    assert!((head1..=head2).contains(&stopped), "{stopped}");
    assert_eq!(
        runtime::read_checkpoint(target, "test_moves").unwrap(),
        stopped
    );
    assert_eq!(stored(target), expected(log, stopped).await);
    assert_eq!(
        runtime::catch_up(log, target, moves()).await.unwrap(),
        head2
    );
    assert_eq!(stored(target), expected(log, head2).await);
}

/// A rebuild swaps in a model at another position while models follow
/// together: the run ends, reporting the move, and the next run takes the
/// model on from the moved checkpoint.
async fn a_checkpoint_moved_under_models_following_together_ends_their_run<
    S: EventStore + Clone,
>(
    log: &S,
    target: &ReadStore,
) {
    append_events(log, 80, 60).await;
    let short = head(log).await;
    append_events(log, 81, 60).await;
    let head = head(log).await;
    // Another log holding only the first events of this one.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = EmbeddedStore::open(&other_dir.path().join("log")).expect("open the other log");
    append_events(&other, 80, 60).await;
    assert_eq!(self::head(&other).await, short);

    let follow = || follow_many(log, target, vec![moves()]);

    let (_stop, run) = follow();
    wait_for_checkpoint(target, head).await;
    // The rebuild from the shorter log moves the model back to `short`.
    assert_eq!(
        runtime::rebuild(&other, target, moves()).await.unwrap(),
        short
    );
    let followed = ended(run).await;
    assert!(
        matches!(followed[..], [runtime::Followed::Moved { expected, found }] if expected == head && found == short),
        "{followed:?}"
    );

    let (stop, run) = follow();
    wait_for_checkpoint(target, head).await;
    assert_eq!(stored(target), expected(log, head).await);
    stop.send(true).unwrap();
    let followed = ended(run).await;
    assert!(
        matches!(followed[..], [runtime::Followed::Stopped(c)] if c == head),
        "{followed:?}"
    );
}

async fn wait_for_checkpoint(target: &ReadStore, position: u64) {
    let started = Instant::now();
    loop {
        let checkpoint = runtime::read_checkpoint(target, "test_moves").unwrap();
        if checkpoint >= position {
            assert_eq!(checkpoint, position);
            return;
        }
        assert!(
            started.elapsed() < Duration::from_millis(WAIT_TIMEOUT_MS),
            "checkpoint stuck at {checkpoint}, waiting for {position}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// Backend-specific: readers of the old model during a rebuild
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rebuild_swaps_while_an_old_reader_keeps_reading() {
    let env = SqliteEnv::new();
    let (log, target) = (&env.log, &env.target);
    append_events(log, 30, 200).await;
    runtime::catch_up(log, target, moves()).await.unwrap();
    let old = stored(target);
    append_events(log, 31, 100).await;

    // A reader inside a read transaction on the old model.
    let reader = rusqlite::Connection::open(model_file(target)).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let read_persons = |conn: &rusqlite::Connection| -> Vec<(String, i64)> {
        let mut s = conn
            .prepare("SELECT person_ref, moves FROM persons ORDER BY person_ref")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let old_persons = read_persons(&reader);
    assert_eq!(old_persons.len(), old.0.len());

    let head = head(log).await;
    assert_eq!(runtime::rebuild(log, target, moves()).await.unwrap(), head);
    assert_eq!(
        read_persons(&reader),
        old_persons,
        "the old reader still reads the old model"
    );
    assert_eq!(
        stored(target),
        expected(log, head).await,
        "new readers read the new model"
    );
    reader.execute_batch("COMMIT").unwrap();
    assert_eq!(
        read_persons(&reader).len(),
        expected(log, head).await.0.len()
    );
    assert!(!env.dir.path().join("models/test_moves.rebuild.db").exists());
}

/// A rebuild swaps in by copying the rebuilt file's pages, which needs the
/// live file's page size; a live model made with another one is swapped
/// table by table, and keeps its page size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rebuild_swaps_into_a_live_model_of_another_page_size() {
    let env = SqliteEnv::new();
    let (log, target) = (&env.log, &env.target);
    let page_size = |conn: &rusqlite::Connection| -> i64 {
        conn.pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap()
    };
    std::fs::create_dir_all(model_file(target).parent().unwrap()).unwrap();
    {
        let live = rusqlite::Connection::open(model_file(target)).unwrap();
        live.pragma_update(None, "page_size", 8192).unwrap();
        live.pragma_update(None, "journal_mode", "WAL").unwrap();
        assert_eq!(page_size(&live), 8192);
    }
    append_events(log, 32, 120).await;
    runtime::catch_up(log, target, moves()).await.unwrap();
    append_events(log, 33, 80).await;
    let head = head(log).await;
    assert_eq!(runtime::rebuild(log, target, moves()).await.unwrap(), head);
    assert_eq!(stored(target), expected(log, head).await);
    assert_eq!(
        runtime::read_checkpoint(target, "test_moves").unwrap(),
        head
    );
    let live = rusqlite::Connection::open(model_file(target)).unwrap();
    assert_eq!(page_size(&live), 8192);
    assert!(!env.dir.path().join("models/test_moves.rebuild.db").exists());
}

/// A rebuild's file is written in place, its rollback journal in memory
/// (not in a write-ahead log): a batch that fails before its checkpoint is
/// still rolled back, the live model is untouched, and the next rebuild
/// starts afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_failed_rebuild_batch_rolls_back_and_leaves_the_live_model() {
    let env = SqliteEnv::new();
    let (log, target) = (&env.log, &env.target);
    append_events(log, 32, 200).await;
    runtime::catch_up(log, target, moves()).await.unwrap();
    let live = stored(target);
    let live_checkpoint = runtime::read_checkpoint(target, "test_moves").unwrap();
    append_events(log, 33, 200).await;
    let head = head(log).await;

    let fail_at = head / 2;
    let (options, rolled_back_to) = failing_before_checkpoint_at(fail_at);
    let err = runtime::rebuild_many_with(log, target, &[moves()], &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(stored(target), live, "the live model is untouched");
    assert_eq!(
        runtime::read_checkpoint(target, "test_moves").unwrap(),
        live_checkpoint
    );

    // The rebuild's file holds exactly the batches before the failed one.
    let before = rolled_back_to.lock().unwrap().expect("the hook fired");
    assert!(before > 0 && before < fail_at, "failed mid-log: {before}");
    let scratch = env.dir.path().join("models/test_moves.rebuild.db");
    let conn = rusqlite::Connection::open(&scratch).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "a rebuild's file is not a WAL database");
    let checkpoint: i64 = conn
        .query_row("SELECT position FROM checkpoint", [], |r| r.get(0))
        .unwrap();
    assert_eq!(checkpoint as u64, before);
    let persons: Vec<(String, i64)> = conn
        .prepare("SELECT person_ref, moves FROM persons ORDER BY person_ref")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want: Vec<(String, i64)> = expected(log, before)
        .await
        .0
        .into_iter()
        .map(|row| match (&row[0], &row[1]) {
            (Value::Text(p), Value::Int(m)) => (p.clone(), *m),
            other => panic!("unexpected row {other:?}"),
        })
        .collect();
    assert_eq!(persons, want);
    drop(conn);

    assert_eq!(runtime::rebuild(log, target, moves()).await.unwrap(), head);
    assert_eq!(stored(target), expected(log, head).await);
    assert!(!scratch.exists());
}

fn model_file(target: &ReadStore) -> std::path::PathBuf {
    match target {
        ReadStore::Sqlite { dir } => dir.join("test_moves.db"),
        ReadStore::Postgres { .. } => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rebuild_swaps_while_an_old_reader_keeps_reading_and_keeps_grants() {
    let env = PgEnv::new().await;
    let (log, target, url) = (&env.log, &env.target, env.db.url().to_owned());
    append_events(log, 32, 200).await;
    runtime::catch_up(log, target, moves()).await.unwrap();
    let old = stored(target);
    append_events(log, 33, 100).await;

    // The department's role, granted exactly its own schema.
    let role = format!("test_moves_reader_{}", Uuid::new_v4().simple());
    sql(
        &url,
        &format!(
            "CREATE ROLE {role}; GRANT USAGE ON SCHEMA test_moves TO {role}; \
             GRANT SELECT ON ALL TABLES IN SCHEMA test_moves TO {role}"
        ),
    );

    // A reader holding a cursor over the old model, half read.
    let swapped = Arc::new(AtomicBool::new(false));
    let (half_read, half_read_rx) = std::sync::mpsc::channel();
    let reader = {
        let (url, swapped) = (url.clone(), Arc::clone(&swapped));
        std::thread::spawn(move || {
            let mut client = connect(&url);
            let mut tx = client.transaction().unwrap();
            tx.batch_execute("DECLARE old CURSOR FOR SELECT person_ref FROM test_moves.persons ORDER BY person_ref")
                .unwrap();
            let mut rows: Vec<String> = tx
                .query("FETCH 2 FROM old", &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            half_read.send(()).unwrap();
            let started = Instant::now();
            while !swapped.load(Ordering::SeqCst) {
                assert!(
                    started.elapsed() < Duration::from_millis(WAIT_TIMEOUT_MS),
                    "swap never happened"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            rows.extend(
                tx.query("FETCH ALL FROM old", &[])
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<_, String>(0)),
            );
            tx.commit().unwrap();
            rows
        })
    };
    half_read_rx.recv().unwrap();

    let head = head(log).await;
    let rebuild = {
        let (log, target) = (log.clone(), target.clone());
        tokio::spawn(async move { runtime::rebuild(&log, &target, moves()).await })
    };
    // The swap commits while the reader's cursor is still open; the old
    // schema is dropped once the reader is done with it.
    let started = Instant::now();
    while !sql_bool(
        &url,
        "SELECT to_regnamespace('test_moves_retired') IS NOT NULL",
    ) {
        assert!(
            started.elapsed() < Duration::from_millis(WAIT_TIMEOUT_MS),
            "swap never happened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        stored(target),
        expected(log, head).await,
        "new readers read the new model"
    );
    swapped.store(true, Ordering::SeqCst);
    let old_rows = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    let old_refs: Vec<String> = old
        .0
        .iter()
        .map(|row| match &row[0] {
            Value::Text(s) => s.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        old_rows, old_refs,
        "the old reader read the whole old model"
    );
    assert_eq!(rebuild.await.unwrap().unwrap(), head);
    assert!(!sql_bool(
        &url,
        "SELECT to_regnamespace('test_moves_retired') IS NOT NULL"
    ));
    assert!(!sql_bool(
        &url,
        "SELECT to_regnamespace('test_moves_rebuild') IS NOT NULL"
    ));

    // The role still reads exactly its model.
    for table in ["persons", "regions", "checkpoint"] {
        assert!(
            sql_bool(
                &url,
                &format!("SELECT has_table_privilege('{role}', 'test_moves.{table}', 'SELECT')")
            ),
            "{table}"
        );
    }
    assert!(sql_bool(
        &url,
        &format!("SELECT has_schema_privilege('{role}', 'test_moves', 'USAGE')")
    ));
    assert!(!sql_bool(
        &url,
        &format!("SELECT has_table_privilege('{role}', 'public.events', 'SELECT')")
    ));
    sql(&url, &format!("DROP OWNED BY {role}; DROP ROLE {role}"));
}

// ---------------------------------------------------------------------------
// The department models
// ---------------------------------------------------------------------------

/// Every department model over a simulated province: catch-up in small
/// batches, a second catch-up, and a rebuild all give the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn department_models_catch_up_and_rebuild_agree() {
    let sqlite = SqliteEnv::new();
    let pg = PgEnv::new().await;
    let engine = pathway_engine::Engine::unsealed(sqlite.log.clone());
    let config = pathway_sim::SimConfig {
        persons: 40,
        seed: 7,
        concurrency: 8,
    };
    pathway_sim::run(&engine, &config, |_, _| {})
        .await
        .expect("simulate");
    let head = head(&sqlite.log).await;
    assert!(head > 100, "a province of events: {head}");

    for projection in models::all() {
        let name = projection.name();
        for target in [&sqlite.target, &pg.target] {
            let checkpoint = runtime::catch_up_with(
                &sqlite.log,
                target,
                Arc::clone(&projection),
                &small_batches(),
            )
            .await;
            assert_eq!(checkpoint.unwrap(), head, "{name}");
            let rows = all_rows(target, projection.as_ref());
            assert_eq!(
                runtime::catch_up(&sqlite.log, target, Arc::clone(&projection))
                    .await
                    .unwrap(),
                head
            );
            assert_eq!(
                all_rows(target, projection.as_ref()),
                rows,
                "{name}: second catch-up"
            );
            assert_eq!(
                runtime::rebuild(&sqlite.log, target, Arc::clone(&projection))
                    .await
                    .unwrap(),
                head
            );
            assert_eq!(
                all_rows(target, projection.as_ref()),
                rows,
                "{name}: rebuild"
            );
        }
        assert_eq!(
            all_rows(&sqlite.target, projection.as_ref()),
            all_rows(&pg.target, projection.as_ref()),
            "{name}: SQLite and PostgreSQL agree"
        );
    }
}

/// `catch_up_many` of every department model, each from its own
/// checkpoint (one model ahead of the others, the others new), gives every
/// model the rows `catch_up` of that model alone gives, on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_many_agrees_with_catch_up_of_each_model() {
    let sqlite = SqliteEnv::new();
    let pg = PgEnv::new().await;
    let engine = pathway_engine::Engine::unsealed(sqlite.log.clone());
    let simulate = |seed| pathway_sim::SimConfig {
        persons: 30,
        seed,
        concurrency: 8,
    };
    pathway_sim::run(&engine, &simulate(11), |_, _| {})
        .await
        .expect("simulate");
    let head1 = head(&sqlite.log).await;
    let all = models::all();
    for target in [&sqlite.target, &pg.target] {
        assert_eq!(
            runtime::catch_up_with(&sqlite.log, target, Arc::clone(&all[0]), &small_batches())
                .await
                .unwrap(),
            head1
        );
    }
    pathway_sim::run(&engine, &simulate(12), |_, _| {})
        .await
        .expect("simulate more");
    let head2 = head(&sqlite.log).await;
    assert!(head2 > head1);

    let reference = ReadStore::Sqlite {
        dir: sqlite.dir.path().join("reference"),
    };
    for projection in &all {
        assert_eq!(
            runtime::catch_up(&sqlite.log, &reference, Arc::clone(projection))
                .await
                .unwrap(),
            head2
        );
    }
    for target in [&sqlite.target, &pg.target] {
        let checkpoints = runtime::catch_up_many_with(&sqlite.log, target, &all, &small_batches())
            .await
            .unwrap();
        assert_eq!(checkpoints, vec![head2; all.len()]);
        for projection in &all {
            assert_eq!(
                all_rows(target, projection.as_ref()),
                all_rows(&reference, projection.as_ref()),
                "{}",
                projection.name()
            );
        }
        // Again: nothing to do, nothing changes.
        assert_eq!(
            runtime::catch_up_many(&sqlite.log, target, &all)
                .await
                .unwrap(),
            vec![head2; all.len()]
        );
    }
    for projection in &all {
        assert_eq!(
            all_rows(&pg.target, projection.as_ref()),
            all_rows(&reference, projection.as_ref()),
            "{}: again",
            projection.name()
        );
    }
}

fn all_rows(target: &ReadStore, projection: &dyn Projection) -> Vec<Vec<Vec<Value>>> {
    projection
        .tables()
        .iter()
        .map(|table| runtime::query(target, projection.name(), table, &[]).expect("query"))
        .collect()
}

// ---------------------------------------------------------------------------
// Kill test (SQLite)
// ---------------------------------------------------------------------------

/// Names the directory of [`child_projector`]'s log and models.
const CHILD_DIR_ENV: &str = "PATHWAY_PROJECTOR_CHILD_DIR";
/// The child stalls inside the batch containing this position.
const CHILD_STALL_AT_ENV: &str = "PATHWAY_PROJECTOR_CHILD_STALL_AT";
const STALLED_LINE: &str = "stalled before checkpoint";

/// Not a test on its own: the body of the child process of
/// [`sqlite_projector_killed_mid_batch_recovers`]. It projects with small
/// batches and blocks between the rows and the checkpoint of one batch, so
/// the parent's SIGKILL lands mid-transaction. Without its environment
/// variable it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_projector() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let stall_at: u64 = std::env::var(CHILD_STALL_AT_ENV).unwrap().parse().unwrap();
    let dir = Path::new(&dir);
    let log = EmbeddedStore::open(&dir.join("log")).unwrap();
    let target = ReadStore::Sqlite {
        dir: dir.join("models"),
    };
    let mut options = small_batches();
    options.before_checkpoint = Some(Arc::new(move |_first: u64, last: u64| {
        if last >= stall_at {
            println!("{STALLED_LINE}");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Ok(())
    }));
    runtime::catch_up_with(&log, &target, moves(), &options)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_projector_killed_mid_batch_recovers() {
    use std::io::BufRead;

    let env = SqliteEnv::new();
    append_events(&env.log, 40, 300).await;
    let head = head(&env.log).await;
    drop(env.log);
    for stall_at in [head / 3, 2 * head / 3] {
        let exe = std::env::current_exe().unwrap();
        let mut child = std::process::Command::new(exe)
            .args([
                "--exact",
                "runtime::child_projector",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, env.dir.path())
            .env(CHILD_STALL_AT_ENV, stall_at.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut stalled = false;
        for line in stdout.lines() {
            if line.unwrap().contains(STALLED_LINE) {
                stalled = true;
                break;
            }
        }
        assert!(stalled, "the child reached its stall point");
        child.kill().unwrap();
        child.wait().unwrap();
        let checkpoint = runtime::read_checkpoint(&env.target, "test_moves").unwrap();
        assert!(
            checkpoint < stall_at,
            "the stalled batch is not committed: {checkpoint}"
        );
        let log = EmbeddedStore::open(&env.dir.path().join("log")).unwrap();
        assert_eq!(stored(&env.target), expected(&log, checkpoint).await);
    }
    let log = EmbeddedStore::open(&env.dir.path().join("log")).unwrap();
    assert_eq!(
        runtime::catch_up(&log, &env.target, moves()).await.unwrap(),
        head
    );
    let recovered = stored(&env.target);
    assert_eq!(recovered, expected(&log, head).await);
    runtime::rebuild(&log, &env.target, moves()).await.unwrap();
    assert_eq!(stored(&env.target), recovered);
}

/// A projector whose model cannot be opened reports why (here: a directory
/// stands where the model's file goes), not that its writer went away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_that_cannot_open_its_model_says_why() {
    let env = SqliteEnv::new();
    append_events(&env.log, 41, 20).await;
    let model_file = env.dir.path().join("models").join("test_moves.db");
    std::fs::create_dir_all(&model_file).expect("a directory in the model file's place");
    let error = runtime::catch_up(&env.log, &env.target, moves())
        .await
        .expect_err("the model cannot be opened");
    let text = error.to_string();
    assert!(
        text.contains("test_moves.db") && !text.contains("stopped unexpectedly"),
        "{text}"
    );
}

//! Crash and race tests on a real PostgreSQL server.
//!
//! Each test creates its own database on the server named by
//! `PATHWAY_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and drops it when done. The crash tests re-invoke this test binary to run
//! only [`child_saga_process`] with environment variables naming the
//! database, the clock and the fault point; the child runs a router and a
//! sweeper, prints `fault point reached: <point>` when it reaches the point and waits there
//! until the parent kills it with SIGKILL. Without those variables the child
//! test returns at once, so an ordinary run is unaffected.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pathway_saga::{FaultHook, FaultPoint, phaseout::start_of_day};
use pathway_store::postgres::PostgresStore;

use crate::support::{STANDARD_FEN, World, noon, quiet, settle, ymd};

const CHILD_URL_ENV: &str = "PATHWAY_SAGA_CHILD_URL";
const CHILD_NOW_ENV: &str = "PATHWAY_SAGA_CHILD_NOW";
const CHILD_POINT_ENV: &str = "PATHWAY_SAGA_CHILD_POINT";
/// What the child prints when it reaches the fault point.
const REACHED: &str = "fault point reached:";
/// Households in each crash and race test.
const HOUSEHOLDS: usize = 40;

/// A fresh database for one test (dropped with it).
struct TestDb(pathway_testkit::TestDb);

impl TestDb {
    async fn create() -> TestDb {
        TestDb(pathway_testkit::TestDb::create())
    }

    fn url(&self) -> &str {
        self.0.url()
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(self.url())
            .await
            .expect("connect PostgresStore to the test database")
    }
}

/// `HOUSEHOLDS` dibao households, each in a phase-out ending 2026-03-10,
/// their deadlines scheduled; the clock then at the deadline.
async fn households_at_their_deadline(db: &TestDb) -> World<PostgresStore> {
    let mut w = World::new(db.store().await, noon(ymd(2025, 3, 10)), 7);
    for h in 0..HOUSEHOLDS {
        let household = format!("H{h}");
        w.assert_dibao(&household, &[&format!("P{h}")]).await;
        w.reassess(&household, STANDARD_FEN + 10_000, &format!("PO{h}"))
            .await
            .expect("phase-out started");
    }
    let mut router = w.router(quiet()).await;
    let mut sweeper = w.sweeper("setup", quiet());
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert_eq!(
        sweeper.index().len(),
        HOUSEHOLDS,
        "every deadline scheduled"
    );
    w.clock.set(start_of_day(ymd(2026, 3, 10)));
    w
}

/// Every household's deadline fired exactly once and its benefit was
/// phased out exactly once.
async fn assert_each_fired_and_applied_once(w: &World<PostgresStore>) {
    let fired = w.all_of("SagaTimerFired").await;
    let done = w.all_of("BenefitPhasedOut").await;
    let mut per_saga = std::collections::BTreeMap::<String, usize>::new();
    for (stream, _) in &fired {
        *per_saga.entry(stream.clone()).or_default() += 1;
    }
    assert_eq!(per_saga.len(), HOUSEHOLDS, "every deadline fired");
    assert!(
        per_saga.values().all(|&n| n == 1),
        "a deadline fired twice: {per_saga:?}"
    );
    let mut per_household = std::collections::BTreeMap::<String, usize>::new();
    for (stream, _) in &done {
        *per_household.entry(stream.clone()).or_default() += 1;
    }
    assert_eq!(per_household.len(), HOUSEHOLDS, "every phase-out completed");
    assert!(
        per_household.values().all(|&n| n == 1),
        "completed twice: {per_household:?}"
    );
}

/// Runs the child at `point`, waits until it gets there, kills it.
fn run_child_until(db: &TestDb, now: DateTime<Utc>, point: FaultPoint) {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "pg::child_saga_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_URL_ENV, db.url())
        .env(CHILD_NOW_ENV, now.to_rfc3339())
        .env(CHILD_POINT_ENV, format!("{point:?}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut reached = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child");
        // The harness may have written the test's name on the same line.
        if line.contains(REACHED) {
            reached = true;
            break;
        }
    }
    // SIGKILL: no destructor, no flush, no goodbye.
    child.kill().expect("kill child");
    let status = child.wait().expect("reap child");
    assert!(reached, "child never reached {point:?} (exit {status})");
}

/// The child: a router and a sweeper on the parent's database, stopping
/// dead at the fault point named by the parent.
#[tokio::test]
async fn child_saga_process() {
    let (Ok(url), Ok(now), Ok(point)) = (
        std::env::var(CHILD_URL_ENV),
        std::env::var(CHILD_NOW_ENV),
        std::env::var(CHILD_POINT_ENV),
    ) else {
        return;
    };
    let now: DateTime<Utc> = now.parse().expect("child clock");
    let store = PostgresStore::connect(&url).await.expect("child connects");
    let w = World::new(store, now, 99);
    w.clock.set(now);
    let hook: FaultHook = Arc::new(move |at, saga_id| {
        if format!("{at:?}") == point {
            // Straight to the pipe, past the test harness's capture.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{REACHED} {at:?} {saga_id}");
            let _ = out.flush();
            // Wait here for the kill, blocking this thread as a hang would.
            loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
        }
        Ok(())
    });
    let mut router = w.router(hook.clone()).await;
    let mut sweeper = w.sweeper("child", hook);
    settle(&mut router, &mut sweeper)
        .await
        .expect("child settles");
    println!(
        "done without reaching {}",
        std::env::var(CHILD_POINT_ENV).unwrap_or_default()
    );
}

async fn crash_then_recover(point: FaultPoint) {
    let db = TestDb::create().await;
    let w = households_at_their_deadline(&db).await;
    run_child_until(&db, w.now(), point);
    // A new process takes over on the same log.
    let mut router = w.router(quiet()).await;
    let mut sweeper = w.sweeper("recovery", quiet());
    settle(&mut router, &mut sweeper)
        .await
        .expect("recovery settles");
    assert_each_fired_and_applied_once(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_the_firing_and_its_append_fires_once() {
    crash_then_recover(FaultPoint::BeforeFireAppend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_right_after_the_firing_is_appended_fires_once() {
    crash_then_recover(FaultPoint::AfterFireAppend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_the_step_append_and_its_command_applies_the_command_once() {
    crash_then_recover(FaultPoint::AfterStepAppend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_command_before_the_checkpoint_applies_it_once() {
    crash_then_recover(FaultPoint::AfterCommands).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_and_two_routers_racing_fire_each_timer_once_and_apply_each_command_once() {
    let db = TestDb::create().await;
    let w = households_at_their_deadline(&db).await;
    // A second "process": its own pool, committer and watcher.
    let other = World::new(db.store().await, w.now(), 8);
    other.clock.set(w.now());
    let mut s1 = w.sweeper("s1", quiet()).with_concurrency(8);
    let mut s2 = other.sweeper("s2", quiet()).with_concurrency(8);
    let (r1, r2) = tokio::join!(s1.sweep_once(), s2.sweep_once());
    let (r1, r2) = (r1.expect("s1 sweeps"), r2.expect("s2 sweeps"));
    assert_eq!(r1.fired + r2.fired, HOUSEHOLDS as u64, "{r1:?} {r2:?}");
    let mut a = w.router(quiet()).await;
    let mut b = other.router(quiet()).await;
    let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
    ra.expect("router a");
    rb.expect("router b");
    assert_each_fired_and_applied_once(&w).await;
    // Once more each: nothing new.
    let (r1, r2) = tokio::join!(s1.sweep_once(), s2.sweep_once());
    assert_eq!(r1.expect("s1").fired + r2.expect("s2").fired, 0);
    assert_each_fired_and_applied_once(&w).await;
}

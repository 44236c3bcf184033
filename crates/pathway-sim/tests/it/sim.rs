//! The simulator is deterministic for a seed and obeys the counting rule.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use async_trait::async_trait;
use pathway_engine::Engine;
use pathway_sim::{SimConfig, SimStats};
use pathway_store::{
    AppendResult, EventStore, ExpectedVersion, Head, NewEvent, ReadFilter, RecordedEvent,
    StoreError, VerifyReport, embedded::EmbeddedStore,
};

async fn run(persons: usize, seed: u64, concurrency: usize) -> (SimStats, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("open");
    run_on(store, persons, seed, concurrency).await
}

/// The simulation on `store`, through an engine made as `pathway demo`
/// makes it: its tally and the log's head.
async fn run_on<S: EventStore + Clone>(
    store: S,
    persons: usize,
    seed: u64,
    concurrency: usize,
) -> (SimStats, u64) {
    let engine = Engine::unsealed(store.clone()).resending_on_outage();
    let cfg = SimConfig {
        persons,
        seed,
        concurrency,
    };
    let stats = pathway_sim::run(&engine, &cfg, |_, _| {})
        .await
        .expect("simulation runs");
    let head = store.head().await.expect("head").position;
    (stats, head)
}

#[tokio::test]
async fn the_same_seed_gives_the_same_programme_whatever_the_concurrency() {
    let (a, head_a) = run(60, 7, 1).await;
    let (b, head_b) = run(60, 7, 16).await;
    assert_eq!(a, b);
    assert_eq!(head_a, head_b);
    assert_eq!(head_a, a.events_appended);
}

#[tokio::test]
async fn new_employment_is_counted_at_most_once_per_person_and_year() {
    let persons = 80;
    let (stats, _) = run(persons, 11, 8).await;
    for year in 2022..=2024 {
        let counted: u32 = stats
            .new_employment
            .iter()
            .filter(|((_, y), _)| *y == year)
            .map(|(_, n)| n)
            .sum();
        assert!(
            counted as usize <= persons,
            "{counted} counted in {year} for {persons} persons"
        );
    }
    let total: u32 = stats.new_employment.values().sum();
    assert!(total > 0, "the simulated province employs someone");
    assert!(stats.commands_accepted > persons as u64 * 5);
}

/// A log that fails some appends as an overloaded or restarting database
/// would: every 7th append commits but its answer is lost (a timeout), every
/// 11th is refused unwritten.
#[derive(Clone)]
struct Flaky {
    inner: EmbeddedStore,
    appends: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

#[async_trait]
impl EventStore for Flaky {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let n = self.appends.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(11) {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Unavailable("connection refused".to_owned()));
        }
        let result = self.inner.append(stream, expected, events).await?;
        if n.is_multiple_of(7) {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Timeout {
                operation: "group commit",
                timeout_ms: 30_000,
            });
        }
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from_version, max).await
    }

    async fn read_all(
        &self,
        from_position: u64,
        max: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from_position, max, filter).await
    }

    async fn head(&self) -> Result<Head, StoreError> {
        self.inner.head().await
    }

    async fn verify(&self, from: u64, to: Option<u64>) -> Result<VerifyReport, StoreError> {
        self.inner.verify(from, to).await
    }

    fn head_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.head_changes()
    }
}

#[tokio::test(start_paused = true)]
async fn appends_that_fail_or_lose_their_answer_are_sent_again_and_land_once() {
    let (clean, clean_head) = run(40, 5, 8).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let flaky = Flaky {
        inner: EmbeddedStore::open(&dir.path().join("log")).expect("open"),
        appends: Arc::default(),
        failed: Arc::default(),
    };
    // The simulation rides out the failures.
    let (stats, head) = run_on(flaky.clone(), 40, 5, 8).await;
    assert!(flaky.failed.load(Ordering::Relaxed) > 50);
    // The same programme, each event once: a lost answer's retry was
    // answered with the first result, not appended again.
    assert_eq!(stats, clean);
    assert_eq!(head, clean_head);
    let report = flaky.verify(1, None).await.expect("verify");
    assert!(report.first_break.is_none());
}

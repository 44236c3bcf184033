//! The simulator is deterministic for a seed and obeys the counting rule.

use pathway_engine::Engine;
use pathway_sim::{SimConfig, SimStats};
use pathway_store::{EventStore, embedded::EmbeddedStore};

async fn run(persons: usize, seed: u64, concurrency: usize) -> (SimStats, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("open");
    let engine = Engine::new(store.clone());
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

//! A fresh PostgreSQL database per test, filled by the simulator.

use pathway_engine::Engine;
use pathway_sim::SimConfig;
use pathway_store::postgres::PostgresStore;

/// A fresh, empty database (dropped with the guard) and a client for tampering.
pub(crate) async fn fresh_database() -> (pathway_testkit::TestDb, tokio_postgres::Client) {
    let db = pathway_testkit::TestDb::create();
    let client = pathway_testkit::connect(db.url()).await;
    (db, client)
}

/// A PostgreSQL log holding a small simulated programme.
pub(crate) async fn filled_store(url: &str, persons: usize) -> PostgresStore {
    let store = PostgresStore::connect(url)
        .await
        .expect("connect the store");
    let engine = Engine::unsealed(store.clone());
    let cfg = SimConfig {
        persons,
        seed: 8,
        concurrency: 4,
    };
    pathway_sim::run(&engine, &cfg, |_, _| {})
        .await
        .expect("the simulation runs");
    store
}

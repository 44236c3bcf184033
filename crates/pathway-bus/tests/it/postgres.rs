//! The relay on PostgreSQL: the advisory-lock leader election and the
//! checkpoint table. Each test creates its own database on the server named by
//! `PATHWAY_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).

use async_nats::jetstream;
use pathway_bus::coordinator::PgCoordinator;
use pathway_bus::subjects::Department;
use pathway_engine::Engine;
use pathway_sim::SimConfig;
use pathway_store::EventStore;
use pathway_store::postgres::PostgresStore;

use crate::relay::{check_streams_match_log, connect, published_position, wait_for_position};
use crate::server::NatsServer;
use crate::test_relay;

use pathway_testkit::TestDb;

async fn simulate(store: &PostgresStore, persons: usize, seed: u64) {
    let engine = Engine::new(store.clone());
    let cfg = SimConfig {
        persons,
        seed,
        concurrency: 4,
    };
    pathway_sim::run(&engine, &cfg, |_, _| {})
        .await
        .expect("simulation appends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_relay_leads_per_database_and_a_standby_takes_over_when_it_dies() {
    let nats = NatsServer::start();
    let db = TestDb::create();
    let store_a = PostgresStore::connect(db.url()).await.expect("store a");
    let store_b = PostgresStore::connect(db.url()).await.expect("store b");
    simulate(&store_a, 10, 51).await;
    let client = connect(&nats.url()).await;
    let js = jetstream::new(client.clone());

    let leader = tokio::spawn(
        test_relay(
            store_a.clone(),
            PgCoordinator::new(store_a.pool().clone(), "test"),
            client.clone(),
        )
        .run(),
    );
    wait_for_position(&js, store_a.head().await.expect("head").position).await;
    // A second relay on the same database (another process) stands by.
    let standby = tokio::spawn(
        test_relay(
            store_b.clone(),
            PgCoordinator::new(store_b.pool().clone(), "test"),
            client.clone(),
        )
        .run(),
    );
    simulate(&store_b, 10, 52).await;
    wait_for_position(&js, store_a.head().await.expect("head").position).await;

    // The leader dies; its connection and lock go with it.
    leader.abort();
    let _ = leader.await;
    let before = published_position(&js, Department::Audit).await;
    simulate(&store_a, 10, 53).await;
    let head = store_a.head().await.expect("head").position;
    assert!(head > before, "new events to relay after the leader died");
    wait_for_position(&js, head).await;
    standby.abort();
    let _ = standby.await;
    check_streams_match_log(&store_a, &js).await;
}

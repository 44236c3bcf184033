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

use crate::relay::{
    check_streams_match_log, connect, published_position, stream_messages, wait_for_position,
};
use crate::server::NatsServer;
use crate::test_relay;

use pathway_testkit::TestDb;

async fn simulate(store: &PostgresStore, persons: usize, seed: u64) {
    simulate_with(Engine::unsealed(store.clone()), persons, seed).await;
}

async fn simulate_with(engine: Engine<PostgresStore>, persons: usize, seed: u64) {
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

/// While the key table cannot be read (its database restarting, here: the
/// table renamed away), opening a batch is a retryable outage, not a defect
/// of the log; the relay waits it out and then publishes everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_table_outage_is_retried_not_fatal() {
    let nats = NatsServer::start();
    let db = TestDb::create();
    let store = PostgresStore::connect(db.url()).await.expect("store");
    let master = || pathway_keys::MasterKey::from_bytes([9; 32]);
    let keyring = pathway_keys::postgres_keyring(store.pool().clone(), master())
        .await
        .expect("keyring");
    simulate_with(Engine::new(store.clone(), keyring.clone()), 5, 61).await;
    let records = store
        .read_all(1, 10_000, &pathway_store::ReadFilter::all())
        .await
        .expect("read_all");
    let expected = pathway_bus::outgoing::outgoing_opened(&records, Some(&keyring))
        .await
        .expect("messages with the key table up");

    // A fresh keyring (nothing cached), as after a process restart.
    let fresh = pathway_keys::postgres_keyring(store.pool().clone(), master())
        .await
        .expect("keyring");
    let sql = store.pool().get().await.expect("connection");
    sql.batch_execute("ALTER TABLE pathway_keys.data_keys RENAME TO data_keys_away")
        .await
        .expect("take the key table away");
    match pathway_bus::outgoing::outgoing_opened(&records, Some(&fresh)).await {
        Err(pathway_bus::BusError::KeyTable(detail)) => {
            assert!(detail.contains("data_keys"), "names the table: {detail}")
        }
        other => panic!("expected a retryable key-table error, got {other:?}"),
    }

    let client = connect(&nats.url()).await;
    let js = jetstream::new(client.clone());
    let relay = tokio::spawn(
        test_relay(
            store.clone(),
            PgCoordinator::new(store.pool().clone(), "test"),
            client.clone(),
        )
        .with_keyring(fresh.clone())
        .run(),
    );
    sql.batch_execute("ALTER TABLE pathway_keys.data_keys_away RENAME TO data_keys")
        .await
        .expect("bring the key table back");
    wait_for_position(&js, store.head().await.expect("head").position).await;
    assert!(!relay.is_finished(), "the relay is still running");
    relay.abort();
    let _ = relay.await;
    check_streams_match_log(&store, &js).await;
    // What was published is the opened form, message for message.
    for d in Department::ALL {
        let want: Vec<_> = expected
            .iter()
            .flatten()
            .filter(|m| m.department == d)
            .map(|m| m.payload.clone())
            .collect();
        let got: Vec<_> = stream_messages(&js, d)
            .await
            .into_iter()
            .map(|(_, _, payload)| payload)
            .collect();
        assert!(
            got == want,
            "{d}: published payloads differ from the opened messages"
        );
    }
    assert_eq!(
        pathway_bus::outgoing::outgoing_opened(&records, Some(&fresh))
            .await
            .expect("messages once the table is back"),
        expected
    );
}

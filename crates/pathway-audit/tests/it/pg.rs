//! A fresh PostgreSQL database per test, filled by the simulator.

use pathway_engine::Engine;
use pathway_sim::SimConfig;
use pathway_store::postgres::PostgresStore;

/// The server the tests use.
const SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// A fresh, empty database: its URL and a synchronous client for tampering.
pub(crate) async fn fresh_database(test: &str) -> (String, tokio_postgres::Client) {
    let admin = connect(&format!("{SERVER_URL}/postgres"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required at {SERVER_URL} (user postgres, trust auth): {e}\n\
                 start it, e.g. `pg_ctlcluster 15 main start` or \
                 `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15`"
            )
        });
    let name = format!("pathway_audit_{test}_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    let url = format!("{SERVER_URL}/{name}");
    let client = connect(&url).await.expect("connect to the test database");
    (url, client)
}

/// A PostgreSQL log holding a small simulated programme.
pub(crate) async fn filled_store(url: &str, persons: usize) -> PostgresStore {
    let store = PostgresStore::connect(url)
        .await
        .expect("connect the store");
    let engine = Engine::new(store.clone());
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

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("test connection: {e}");
        }
    });
    Ok(client)
}

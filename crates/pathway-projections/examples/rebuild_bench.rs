//! Projection throughput on an existing log, for `docs/benchmarks.md`.
//! Run in release mode against a filled log (an embedded data directory, or
//! a PostgreSQL database):
//!
//! ```text
//! cargo run --release -p pathway-projections --example rebuild_bench -- /tmp/pwdemo
//! cargo run --release -p pathway-projections --example rebuild_bench -- \
//!   postgres://postgres@127.0.0.1:5432/pathway_demo_pg
//! ```
//!
//! An empty PostgreSQL log is first filled with the demo's province
//! (`pathway demo` defaults). Each run catches the six department models up from empty (fresh
//! storage) and then rebuilds them (fresh storage and swap), printing the
//! log events per second of each.

use std::time::Instant;

use pathway_projections::models;
use pathway_projections::runtime::{self, ReadStore};
use pathway_store::EventStore;
use pathway_store::embedded::EmbeddedStore;
use pathway_store::postgres::PostgresStore;

/// The `pathway` binary's allocator, so the figures match its.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Runs of each measurement (`PATHWAY_BENCH_RUNS`, default 3).
fn runs() -> usize {
    std::env::var("PATHWAY_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
}

/// Whether to measure `what` (`catch_up` or `rebuild`; `PATHWAY_BENCH_ONLY`
/// restricts to one).
fn measures(what: &str) -> bool {
    std::env::var("PATHWAY_BENCH_ONLY").map_or(true, |only| only == what)
}

async fn measure<S: EventStore + Clone>(store: &S, target: &ReadStore, reset: impl Fn()) {
    let head = store.head().await.expect("head").position;
    let projections = models::all();
    for run in 1..=runs() {
        reset();
        if measures("catch_up") {
            let started = Instant::now();
            runtime::catch_up_many(store, target, &projections)
                .await
                .expect("catch up");
            let s = started.elapsed().as_secs_f64();
            println!(
                "run {run}: catch-up of six models from empty: {head} events in {:.3} s = {:.0} events/s",
                s,
                head as f64 / s
            );
        }
        if !measures("rebuild") {
            continue;
        }
        let started = Instant::now();
        runtime::rebuild_many(store, target, &projections)
            .await
            .expect("rebuild");
        let s = started.elapsed().as_secs_f64();
        println!(
            "run {run}: rebuild of six models (with swap): {head} events in {:.3} s = {:.0} events/s",
            s,
            head as f64 / s
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(at) = std::env::args().nth(1) else {
        eprintln!("usage: rebuild_bench DATA_DIR | postgres://…");
        std::process::exit(2);
    };
    if at.starts_with("postgres://") {
        postgres_projections(at).await;
    } else {
        embedded_projections(std::path::PathBuf::from(at)).await;
    }
}

async fn embedded_projections(dir: std::path::PathBuf) {
    let store = EmbeddedStore::open(&dir).expect("open the embedded log");
    let models_dir = tempfile::tempdir().expect("tempdir");
    let target = ReadStore::Sqlite {
        dir: models_dir.path().join("models"),
    };
    let path = models_dir.path().join("models");
    measure(&store, &target, || {
        let _ = std::fs::remove_dir_all(&path);
    })
    .await;
}

async fn postgres_projections(url: String) {
    let store = PostgresStore::connect(&url)
        .await
        .expect("connect to the log");
    if store.head().await.expect("head").position == 0 {
        // An empty log: fill it with the demo's province (as `pathway demo`).
        let engine = pathway_engine::Engine::unsealed(store.clone());
        let config = pathway_sim::SimConfig {
            persons: pathway_sim::PERSONS_DEFAULT,
            seed: 2022,
            concurrency: pathway_sim::CONCURRENCY_DEFAULT,
        };
        let started = Instant::now();
        pathway_sim::run(&engine, &config, |_, _| {})
            .await
            .expect("simulate");
        println!(
            "filled the log with the demo in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let target = ReadStore::Postgres { url: url.clone() };
    let drop_schemas = || {
        let url = url.clone();
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            for p in models::all() {
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", p.name()))
                    .expect("drop schema");
            }
        })
        .join()
        .expect("drop schemas");
    };
    measure(&store, &target, drop_schemas).await;
}

//! Relay benchmark: throughput with acks, and append-to-subscriber latency.
//!
//! Needs a fresh nats-server (2.12+) with JetStream, e.g.
//! `nats-server -p 4333 -js -sd $(mktemp -d)`, then
//! `cargo run --release -p pathway-bus --example relay_bench -- nats://127.0.0.1:4333 [events]`.
//!
//! 1. Builds a log of `events` (default 100,000) on the embedded store: the
//!    events of a small simulated province, copied onto fresh streams.
//! 2. Throughput: one relay publishes the whole log (every department view
//!    and the audit record, each acknowledged) from an empty checkpoint.
//! 3. Latency: with the relay caught up, appends one event every millisecond
//!    for 10 s and measures from before each append to its arrival at a pull
//!    consumer of the audit stream.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use pathway_bus::coordinator::FileCoordinator;
use pathway_bus::relay::Relay;
use pathway_bus::subjects::Department;
use pathway_engine::Engine;
use pathway_store::embedded::EmbeddedStore;
use pathway_store::{EventStore, ExpectedVersion, NewEvent, ReadFilter};

const LATENCY_RATE_PER_S: u64 = 1_000;
const LATENCY_DURATION_S: u64 = 10;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: relay_bench NATS_URL [events]")?;
    let events: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(&dir.path().join("log"))?;

    // 1. The log.
    let engine = Engine::unsealed(store.clone());
    let cfg = pathway_sim::SimConfig {
        persons: 100,
        seed: 1,
        concurrency: 4,
    };
    pathway_sim::run(&engine, &cfg, |_, _| {}).await?;
    let templates = store.read_all(1, 100_000, &ReadFilter::all()).await?;
    let mut head = store.head().await?.position;
    let mut i = 0usize;
    while head < events {
        let chunk: Vec<NewEvent> = (0..100)
            .map(|k| {
                let t = &templates[(i * 100 + k) % templates.len()];
                NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: t.event_type.clone(),
                    schema_version: t.schema_version,
                    metadata: t.metadata.clone(),
                    payload: t.payload.clone(),
                }
            })
            .collect();
        head = store
            .append(&format!("bench-{i}"), ExpectedVersion::Any, chunk)
            .await?
            .last_position;
        i += 1;
    }
    println!("log: {head} events");

    // 2. Throughput.
    let client = async_nats::connect(&url).await?;
    let js = jetstream::new(client.clone());
    let started = Instant::now();
    let relay = tokio::spawn(
        Relay::new(
            store.clone(),
            FileCoordinator::new(dir.path(), "bench"),
            client.clone(),
        )
        .with_stream_max_bytes(4 * 1024 * 1024 * 1024)
        .run(),
    );
    wait_for(&js, head).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut messages = 0;
    for d in Department::ALL {
        messages += js
            .get_stream(d.stream())
            .await?
            .info()
            .await?
            .state
            .messages;
    }
    println!(
        "throughput: {head} events ({messages} messages, all acked) in {elapsed:.2} s = {:.0} events/s, {:.0} messages/s",
        head as f64 / elapsed,
        messages as f64 / elapsed
    );

    // 3. Latency at a steady rate.
    let stream = js.get_stream(Department::Audit.stream()).await?;
    let reader: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::New,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let sent: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let total = LATENCY_RATE_PER_S * LATENCY_DURATION_S;
    let receiver = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total as usize);
            let mut messages = reader.messages().await.expect("pull");
            while (latencies.len() as u64) < total {
                let m = messages.next().await.expect("message").expect("message");
                let arrived = Instant::now();
                let id = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                    .map(|v| v.as_str().to_owned())
                    .expect("event id header");
                let at = *sent.lock().expect("lock").get(&id).expect("sent before");
                latencies.push(arrived.duration_since(at));
            }
            latencies
        })
    };
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / LATENCY_RATE_PER_S));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let template = &templates[0];
    let mut appends = Vec::new();
    for n in 0..total {
        tick.tick().await;
        let store = store.clone();
        let sent = sent.clone();
        let event = NewEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: template.event_type.clone(),
            schema_version: template.schema_version,
            metadata: template.metadata.clone(),
            payload: template.payload.clone(),
        };
        appends.push(tokio::spawn(async move {
            sent.lock()
                .expect("lock")
                .insert(event.event_id.to_string(), Instant::now());
            store
                .append(
                    &format!("latency-{n}"),
                    ExpectedVersion::NoStream,
                    vec![event],
                )
                .await
                .expect("append");
        }));
    }
    for a in appends {
        a.await?;
    }
    let mut latencies = tokio::time::timeout(Duration::from_secs(60), receiver).await??;
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "latency at {LATENCY_RATE_PER_S} events/s over {LATENCY_DURATION_S} s ({} measured): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    relay.abort();
    Ok(())
}

async fn wait_for(
    js: &jetstream::Context,
    position: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut stream = js.get_stream(Department::Audit.stream()).await;
    loop {
        if let Ok(s) = &mut stream {
            let stored = s.info().await.map_or(0, |i| i.state.messages);
            if stored >= position {
                return Ok(());
            }
        } else {
            stream = js.get_stream(Department::Audit.stream()).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

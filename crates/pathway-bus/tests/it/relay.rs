//! The relay end to end: every appended event reaches each department's
//! subjects exactly once per event id, in log order, while the relay is
//! killed and restarted, NATS is killed and restarted, and appends go on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use pathway_bus::coordinator::FileCoordinator;
use pathway_bus::outgoing::outgoing;
use pathway_bus::relay::POSITION_HEADER;
use pathway_bus::subjects::Department;
use pathway_engine::Engine;
use pathway_proto::Message as _;
use pathway_proto::views::v1 as pb;
use pathway_sim::SimConfig;
use pathway_store::embedded::EmbeddedStore;
use pathway_store::{EventStore, ReadFilter};

use crate::server::NatsServer;
use crate::test_relay;

/// Longest a test waits for the relay to reach a position.
const CATCH_UP_TIMEOUT_MS: u64 = 120_000;

pub(crate) async fn connect(url: &str) -> async_nats::Client {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("PATHWAY_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_test_writer()
        .try_init();
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(url)
        .await
        .expect("connect to the test nats-server")
}

/// The log position of the last message in `department`'s stream (0 if
/// none, or if the stream is not there yet).
pub(crate) async fn published_position(js: &jetstream::Context, department: Department) -> u64 {
    pathway_bus::relay::published_position(js, department)
        .await
        .unwrap_or(0)
}

pub(crate) async fn wait_for_position(js: &jetstream::Context, position: u64) {
    let deadline = Instant::now() + Duration::from_millis(CATCH_UP_TIMEOUT_MS);
    loop {
        let at = published_position(js, Department::Audit).await;
        if at >= position {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "relay stuck at position {at}, waiting for {position}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message of `department`'s stream: (event id header, position
/// header, payload), in stream order.
pub(crate) async fn stream_messages(
    js: &jetstream::Context,
    department: Department,
) -> Vec<(String, u64, bytes::Bytes)> {
    let mut stream = js.get_stream(department.stream()).await.expect("stream");
    let count = stream.info().await.expect("stream info").state.messages;
    if count == 0 {
        return Vec::new();
    }
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("ephemeral consumer");
    let mut messages = consumer
        .messages()
        .await
        .expect("pull")
        .take(count as usize);
    let mut out = Vec::new();
    while let Some(m) = messages.next().await {
        let m = m.expect("message");
        let headers = m.headers.clone().expect("headers");
        let id = headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .unwrap_or_else(|| panic!("Nats-Msg-Id missing: {headers:?}"))
            .as_str()
            .to_owned();
        let position = headers
            .get(POSITION_HEADER)
            .expect("position header")
            .as_str()
            .parse()
            .expect("position");
        out.push((id, position, m.payload.clone()));
    }
    out
}

/// Checks every stream against the log: for each department, exactly the
/// events that have a view for it, each once, in log order, each payload the
/// department's own message for that event.
pub(crate) async fn check_streams_match_log<S: EventStore>(store: &S, js: &jetstream::Context) {
    let head = store.head().await.expect("head").position;
    let mut expected: BTreeMap<Department, Vec<(String, u64)>> = BTreeMap::new();
    let mut from = 1;
    while from <= head {
        let batch = store
            .read_all(from, 1_000, &ReadFilter::all())
            .await
            .expect("read log");
        for r in &batch {
            for m in outgoing(r).expect("outgoing") {
                expected
                    .entry(m.department)
                    .or_default()
                    .push((r.event_id.to_string(), r.position));
            }
        }
        from += batch.len() as u64;
    }
    for d in Department::ALL {
        let got = stream_messages(js, d).await;
        let got_ids: Vec<(String, u64)> = got.iter().map(|(id, p, _)| (id.clone(), *p)).collect();
        let want = expected.remove(&d).unwrap_or_default();
        assert_eq!(got_ids.len(), want.len(), "{d}: message count");
        assert!(
            got_ids == want,
            "{d}: messages differ from the log (order or duplicates)"
        );
        for (id, _, payload) in &got {
            let event_id = match d {
                Department::Dpf => pb::DpfEvent::decode(payload.as_ref()).map(|m| m.event_id),
                Department::Hrss => pb::HrssEvent::decode(payload.as_ref()).map(|m| m.event_id),
                Department::CivilAffairs => {
                    pb::CivilAffairsEvent::decode(payload.as_ref()).map(|m| m.event_id)
                }
                Department::Education => {
                    pb::EducationEvent::decode(payload.as_ref()).map(|m| m.event_id)
                }
                Department::Sasac => pb::SasacEvent::decode(payload.as_ref()).map(|m| m.event_id),
                Department::Committee => {
                    pb::CommitteeEvent::decode(payload.as_ref()).map(|m| m.event_id)
                }
                Department::Audit => pb::AuditRecord::decode(payload.as_ref()).map(|m| m.event_id),
            }
            .expect("payload is the department's message");
            assert_eq!(&event_id, id, "{d}: payload and header name the same event");
        }
    }
}

async fn simulate(engine: &Engine<EmbeddedStore>, persons: usize, seed: u64) {
    let cfg = SimConfig {
        persons,
        seed,
        concurrency: 4,
    };
    pathway_sim::run(engine, &cfg, |_, _| {})
        .await
        .expect("simulation appends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_its_departments_once_in_order_across_relay_and_nats_restarts() {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("open store");
    let engine = Engine::unsealed(store.clone());
    let client = connect(&nats.url()).await;
    let js = jetstream::new(client.clone());
    let spawn_relay = || {
        let relay = test_relay(
            store.clone(),
            FileCoordinator::new(dir.path(), "test"),
            client.clone(),
        )
        .with_batch_events_max(20);
        tokio::spawn(relay.run())
    };

    // Appends run beside the relay the whole time.
    let appends = {
        let engine = engine.clone();
        tokio::spawn(async move { simulate(&engine, 60, 11).await })
    };
    let relay = spawn_relay();
    wait_for_position(&js, 150).await;
    relay.abort();
    let _ = relay.await;
    let killed_at = published_position(&js, Department::Audit).await;
    let head = store.head().await.expect("head").position;
    eprintln!("relay killed at position {killed_at} (log head {head})");

    let relay = spawn_relay();
    wait_for_position(&js, killed_at + 150).await;
    nats.kill();
    // The log takes appends while NATS is down.
    let before = store.head().await.expect("head").position;
    simulate(&engine, 10, 12).await;
    let after = store.head().await.expect("head").position;
    assert!(after > before, "appends go on while NATS is down");
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.resume();

    appends.await.expect("appends task");
    simulate(&engine, 10, 13).await;
    let head = store.head().await.expect("head").position;
    wait_for_position(&js, head).await;
    relay.abort();
    let _ = relay.await;
    eprintln!("relayed {head} events");
    check_streams_match_log(&store, &js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_relay_on_the_same_store_stands_by_and_takes_over() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("open store");
    let engine = Engine::unsealed(store.clone());
    simulate(&engine, 20, 21).await;
    let client = connect(&nats.url()).await;
    let js = jetstream::new(client.clone());

    let mut first = FileCoordinator::new(dir.path(), "test");
    pathway_bus::coordinator::Coordinator::lead(&mut first)
        .await
        .expect("first leads");
    // The standby cannot lead while the first holds the file.
    let standby = tokio::spawn(
        test_relay(
            store.clone(),
            FileCoordinator::new(dir.path(), "test"),
            client.clone(),
        )
        .run(),
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        published_position(&js, Department::Audit).await,
        0,
        "the standby published while another process led"
    );
    drop(first);
    let head = store.head().await.expect("head").position;
    wait_for_position(&js, head).await;
    standby.abort();
    let _ = standby.await;
    check_streams_match_log(&store, &js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_republishes_from_a_position_into_fresh_streams() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("open store");
    let engine = Engine::unsealed(store.clone());
    simulate(&engine, 10, 31).await;
    let client = connect(&nats.url()).await;
    let js = jetstream::new(client.clone());
    let head = store.head().await.expect("head").position;

    let relay = tokio::spawn(
        test_relay(
            store.clone(),
            FileCoordinator::new(dir.path(), "test"),
            client.clone(),
        )
        .run(),
    );
    wait_for_position(&js, head).await;
    relay.abort();
    let _ = relay.await;

    let mut relay = test_relay(
        store.clone(),
        FileCoordinator::new(dir.path(), "test"),
        client.clone(),
    );
    relay.rebuild(1).await.expect("rebuild");
    assert_eq!(
        published_position(&js, Department::Audit).await,
        0,
        "streams emptied"
    );
    let relay = tokio::spawn(relay.run());
    wait_for_position(&js, head).await;
    relay.abort();
    let _ = relay.await;
    check_streams_match_log(&store, &js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_consumer_resumes_after_its_last_ack() {
    use pathway_bus::consumer::{Start, consume};

    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("open store");
    simulate(&Engine::unsealed(store.clone()), 10, 61).await;
    let client = connect(&nats.url()).await;
    let js = jetstream::new(client.clone());
    let relay = tokio::spawn(
        test_relay(
            store.clone(),
            FileCoordinator::new(dir.path(), "test"),
            client.clone(),
        )
        .run(),
    );
    wait_for_position(&js, store.head().await.expect("head").position).await;
    relay.abort();

    let mut seen = Vec::new();
    for _ in 0..2 {
        // A new connection each time, as a restarted process would have.
        let js = jetstream::new(connect(&nats.url()).await);
        consume(
            &js,
            Department::Dpf,
            "resume-test",
            Start::FromStart,
            Some(5),
            |m| {
                assert!(m.json.get("view").is_some(), "decoded view: {}", m.json);
                seen.push(m.stream_sequence);
                Ok(())
            },
        )
        .await
        .expect("consume");
    }
    assert_eq!(
        seen,
        (1..=10).collect::<Vec<u64>>(),
        "the second reader resumes at 6"
    );
}

/// Streams larger than the server's JetStream storage are refused by NATS
/// when created; the relay's error says which setting to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_larger_than_the_servers_storage_are_refused_with_the_settings_to_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("small.conf");
    std::fs::write(
        &config,
        "port: 4222\njetstream {\n  store_dir: \"/var/lib/nats/pathway\"\n  max_file_store: 10MB\n}\n",
    )
    .expect("write config");
    let nats = NatsServer::start_with_config(&config, Vec::new());
    let js = pathway_bus::relay::relay_context(connect(&nats.url()).await);
    let too_large = 100 * 1024 * 1024;
    let error = pathway_bus::relay::ensure_streams(&js, too_large, 1)
        .await
        .expect_err("seven streams of 100 MiB do not fit 10 MB");
    let text = error.to_string();
    assert!(
        text.contains("insufficient storage")
            && text.contains(&format!(
                "{} streams of {too_large} bytes each (--stream-max-bytes) times 1 replica(s)",
                pathway_bus::relay::PATHWAY_STREAMS
            ))
            && text.contains("max_file_store"),
        "{text}"
    );
    // Streams that fit are created.
    pathway_bus::relay::ensure_streams(&js, 1024 * 1024, 1)
        .await
        .expect("seven streams of 1 MiB fit 10 MB");
}

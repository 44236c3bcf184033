//! Issue 10, part 3: the cluster test without Docker. A real 3-node NATS
//! JetStream cluster runs as local processes (each node its own client and
//! cluster port and store directory, routes between them, streams with 3
//! replicas); two `pathway serve` applications and one fresh PostgreSQL
//! database sit on it. A load loop submits commands over HTTP (retrying a
//! command whose answer it did not see, with the same command id, on either
//! instance) while the test
//!
//! 1. kills (SIGKILL) the NATS node leading the auditors' stream, then
//! 2. stops the Pathway instance leading the relay.
//!
//! After each, a durable subscriber on the auditors' stream must see events
//! appended after the failure within [`FAILOVER_MS_MAX`]. At the end: every
//! command the client saw acknowledged is in the log exactly once (at the
//! positions it was told), and every event of the log is in the auditors'
//! stream exactly once per event id.
//!
//! Randomised choices (which node each client connects to, which instance
//! each command goes to) come from a seed printed at the start; rerun with
//! `PATHWAY_CLUSTER_SEED=<seed>`. Every wait polls with a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pathway_bus::async_nats::{self, jetstream};
use pathway_bus::consumer::{Start, consume};
use pathway_bus::subjects::Department;
use pathway_server::{Application, Settings, StoreLocation, settings::Secret};
use pathway_store::{EventStore, ReadFilter, RecordedEvent, postgres::PostgresStore};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::helpers::{MASTER_KEY, SECRET, TestDb, token};
use pathway_testkit::nats::wait_until_port_open;
use pathway_testkit::{free_ports, nats_server_binary as nats_binary};

/// Longest any single wait of this test lasts.
const WAIT_TIMEOUT_MS: u64 = 60_000;
/// Longest wait for a started node to accept connections.
const NODE_READY_TIMEOUT_MS: u64 = 10_000;
/// Longest a subscriber may go without new events after a failure. A killed
/// node is noticed by NATS' Raft election timeout (4 to 9 s), and a publish
/// to the dead stream leader by the relay's ack timeout (5 s): about 11 s
/// measured on the 2-core development machine; the bound leaves room for a
/// loaded one.
const FAILOVER_MS_MAX: u64 = 30_000;
/// Per-stream bound: small, so every node accepts seven replicated streams.
const TEST_STREAM_MAX_BYTES: i64 = 64 * 1024 * 1024;
/// Copies of every stream: one per node.
const REPLICAS: u8 = 3;
/// Concurrent clients of the load loop.
const LOAD_CLIENTS: u64 = 3;
/// Pause between two commands of one load client.
const LOAD_PAUSE_MS: u64 = 10;
/// Commands acknowledged between two phases of the test.
const COMMANDS_PER_PHASE: usize = 40;
/// The durable consumer of the test's subscriber.
const DURABLE: &str = "cluster-test-auditor";

// ---------------------------------------------------------------------------
// A seeded generator (splitmix64), so a failing run can be repeated.

#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seed() -> u64 {
    std::env::var("PATHWAY_CLUSTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(Uuid::new_v4().as_u128() as u32))
}

// ---------------------------------------------------------------------------
// A 3-node NATS JetStream cluster of local processes

struct Node {
    name: String,
    port: u16,
    child: Option<Child>,
}

struct NatsCluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    fn start(size: usize) -> NatsCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(2 * size);
        let (client_ports, cluster_ports) = ports.split_at(size);
        let binary = nats_binary();
        let mut nodes = Vec::new();
        for i in 0..size {
            let name = format!("n{}", i + 1);
            let routes: Vec<String> = (0..size)
                .filter(|j| *j != i)
                .map(|j| format!("\"nats-route://127.0.0.1:{}\"", cluster_ports[j]))
                .collect();
            let store = dir.path().join(&name);
            let config = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\n\
                 jetstream {{ store_dir: \"{store}\" }}\n\
                 cluster {{\n  name: pathway-test\n  listen: \"127.0.0.1:{cluster}\"\n  \
                 routes: [{routes}]\n}}\n",
                port = client_ports[i],
                store = store.display(),
                cluster = cluster_ports[i],
                routes = routes.join(", "),
            );
            let conf = dir.path().join(format!("{name}.conf"));
            std::fs::write(&conf, config).expect("write node config");
            let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).expect("log");
            let child = Command::new(&binary)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn nats-server");
            nodes.push(Node {
                name,
                port: client_ports[i],
                child: Some(child),
            });
        }
        for node in &nodes {
            wait_until_port_open(
                node.port,
                Duration::from_millis(NODE_READY_TIMEOUT_MS),
                &format!("nats-server {}", node.name),
            );
        }
        NatsCluster { nodes, dir }
    }

    fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].port)
    }

    fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node named {name}"))
    }

    /// SIGKILL, no goodbye to the cluster.
    fn kill(&mut self, i: usize) {
        let mut child = self.nodes[i].child.take().expect("node running");
        child.kill().expect("kill nats-server");
        child.wait().expect("reap nats-server");
    }

    /// The tail of every node's log, for a failure message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{}.log", node.name)))
                .unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {} ---\n", node.name));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Pathway instances

struct Instance {
    name: &'static str,
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), pathway_server::ServerError>>,
}

fn settings(db: &TestDb, nats_url: String) -> Settings {
    let mut s = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        store: StoreLocation::Postgres {
            url: Secret::new(db.url().to_owned()),
        },
        token_secret: Some(Secret::new(SECRET)),
        master_key: Some(Secret::new(MASTER_KEY)),
        policy_file: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/policy/authorization.toml"),
        // No read models here (and so no second projector on one database).
        projectors: false,
        ..Settings::default()
    };
    s.limits.requests_per_second_per_department = 100_000;
    s.nats.url = Some(nats_url);
    s.nats.stream_max_bytes = TEST_STREAM_MAX_BYTES;
    s.nats.stream_replicas = REPLICAS;
    s.workers.chain_verify_interval_ms = 0;
    s.workers.drain_timeout_ms = 10_000;
    s
}

async fn start(name: &'static str, settings: Settings) -> Instance {
    let app = Application::build(settings).await.expect("builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        stopped.await.ok();
    }));
    Instance {
        name,
        base,
        stop: Some(stop),
        handle,
    }
}

impl Instance {
    async fn leads_relay(&self) -> bool {
        let Ok(response) = reqwest::get(format!("{}/metrics", self.base)).await else {
            return false;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines().any(|l| l.trim() == "pathway_relay_leader 1")
    }

    /// As SIGTERM would: drains requests, stops the workers, releases the locks.
    async fn shut_down(mut self) {
        self.stop.take().expect("running").send(()).ok();
        self.handle
            .await
            .expect("server task")
            .expect("stopped cleanly");
    }
}

// ---------------------------------------------------------------------------
// The load loop

/// A command the client saw acknowledged, with what it was told.
#[derive(Debug, Clone)]
struct Acked {
    command_id: String,
    stream: String,
    events: usize,
    first: u64,
    last: u64,
}

struct Load {
    /// Base URLs of the instances the clients send to.
    targets: Arc<Mutex<Vec<String>>>,
    acked: Arc<Mutex<Vec<Acked>>>,
    /// Answers that must not happen (a rejection, a malformed command).
    wrong: Arc<Mutex<Vec<String>>>,
    /// Requests without an answer, or answered 5xx/429, later retried.
    retries: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

fn assert_household(household: &str) -> Value {
    json!({
        "command_id": Uuid::new_v4(), "department": "civil_affairs", "region": "230102",
        "actor": "ca-officer-9", "at": "2023-01-05T10:00:00+08:00",
        "command": {"aggregate": "household", "type": "assert_low_income_status",
            "household_ref": household, "members": [Uuid::new_v4()], "status": "dibao",
            "effective_on": "2023-01-01", "asserted_by": "230102-civil-affairs"}
    })
}

impl Load {
    fn start(targets: Vec<String>, rng: &mut Rng) -> Load {
        let load = Load {
            targets: Arc::new(Mutex::new(targets)),
            acked: Arc::new(Mutex::new(Vec::new())),
            wrong: Arc::new(Mutex::new(Vec::new())),
            retries: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            clients: Vec::new(),
        };
        let mut clients = Vec::new();
        for c in 0..LOAD_CLIENTS {
            let mut rng = Rng(rng.next());
            let (targets, acked, wrong, retries, stop) = (
                load.targets.clone(),
                load.acked.clone(),
                load.wrong.clone(),
                load.retries.clone(),
                load.stop.clone(),
            );
            clients.push(tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(15))
                    .build()
                    .expect("http client");
                let bearer = token("civil_affairs", None);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let command = assert_household(&format!("hh-230102-c{c}-{n:06}"));
                    // The same command (same id) until it is answered.
                    loop {
                        let target = {
                            let t = targets.lock().expect("targets");
                            t[rng.below(t.len())].clone()
                        };
                        let answer = http
                            .post(format!("{target}/v1/commands"))
                            .bearer_auth(&bearer)
                            .json(&command)
                            .send()
                            .await;
                        let (status, body) = match answer {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                (status, r.json::<Value>().await.unwrap_or(Value::Null))
                            }
                            Err(_) => (0, Value::Null),
                        };
                        if status == 200 {
                            let position = |k: &str| body[k].as_u64().expect("a position");
                            acked.lock().expect("acked").push(Acked {
                                command_id: body["command_id"].as_str().expect("id").to_owned(),
                                stream: body["stream"].as_str().expect("stream").to_owned(),
                                events: body["events"].as_array().expect("events").len(),
                                first: position("first_position"),
                                last: position("last_position"),
                            });
                            break;
                        }
                        if status == 0 || status == 429 || status >= 500 {
                            retries.fetch_add(1, Ordering::Relaxed);
                            if stop.load(Ordering::Relaxed) {
                                break; // never acknowledged: the client gives up
                            }
                            tokio::time::sleep(Duration::from_millis(25)).await;
                            continue;
                        }
                        wrong
                            .lock()
                            .expect("wrong")
                            .push(format!("{target}: {status} {body}"));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(LOAD_PAUSE_MS)).await;
                }
            }));
        }
        Load { clients, ..load }
    }

    fn acked(&self) -> usize {
        self.acked.lock().expect("acked").len()
    }

    /// Waits until `more` further commands are acknowledged.
    async fn wait_for_more(&self, more: usize, what: &str) {
        let target = self.acked() + more;
        wait_for(what, || async { (self.acked() >= target).then_some(()) }).await;
    }

    fn remove_target(&self, base: &str) {
        self.targets.lock().expect("targets").retain(|t| t != base);
    }

    async fn stop(self) -> (Vec<Acked>, Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.await.expect("load client");
        }
        let acked = self.acked.lock().expect("acked").clone();
        let wrong = self.wrong.lock().expect("wrong").clone();
        (acked, wrong, self.retries.load(Ordering::Relaxed))
    }
}

// ---------------------------------------------------------------------------
// A department-side subscriber: a durable pull consumer on the auditors'
// stream, through the same code as `pathway subscribe`.

struct Subscriber {
    /// Highest log position received.
    position: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    /// The first errors the consumer ended with.
    error_texts: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    async fn start(url: String) -> Subscriber {
        let client = pathway_bus::connect(&url, None, None, None)
            .await
            .expect("subscriber connects");
        let js = jetstream::new(client);
        let position = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let error_texts = Arc::new(Mutex::new(Vec::new()));
        let (p, r, e, texts) = (
            position.clone(),
            received.clone(),
            errors.clone(),
            error_texts.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                // Resumes after the last ack; returns only on an error
                // (the stream not there yet, a node gone).
                let result = consume(
                    &js,
                    Department::Audit,
                    DURABLE,
                    Start::FromStart,
                    None,
                    |m| {
                        let at = &m.json["position"];
                        let at = at
                            .as_u64()
                            .or_else(|| at.as_str().and_then(|s| s.parse().ok()))
                            .unwrap_or(0);
                        p.fetch_max(at, Ordering::Relaxed);
                        r.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    },
                )
                .await;
                if let Err(error) = result {
                    e.fetch_add(1, Ordering::Relaxed);
                    let mut texts = texts.lock().expect("errors");
                    if texts.len() < 5 {
                        texts.push(error.to_string());
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Subscriber {
            position,
            received,
            errors,
            error_texts,
            task,
        }
    }

    fn position(&self) -> u64 {
        self.position.load(Ordering::Relaxed)
    }

    /// Waits until an event appended after `head` arrives; returns how long it took.
    async fn wait_past(&self, head: u64, what: &str) -> Duration {
        let since = Instant::now();
        wait_for(what, || async { (self.position() > head).then_some(()) }).await;
        since.elapsed()
    }
}

// ---------------------------------------------------------------------------
// Helpers

/// Polls `check` until it returns `Some`, failing after [`WAIT_TIMEOUT_MS`].
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_millis(WAIT_TIMEOUT_MS);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The whole log, in order.
async fn read_log(store: &PostgresStore) -> Vec<RecordedEvent> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = out.last().map_or(1, |r| r.position + 1);
        let batch = store
            .read_all(from, 5_000, &ReadFilter::all())
            .await
            .expect("read the log");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

/// Event ids and positions of every message in the auditors' stream.
async fn audit_stream(js: &jetstream::Context) -> Vec<(String, u64)> {
    pathway_bus::relay::published(js, Department::Audit)
        .await
        .expect("audit stream")
}

/// The log position of the last message in the auditors' stream.
async fn stream_position(js: &jetstream::Context) -> Option<u64> {
    pathway_bus::relay::published_position(js, Department::Audit)
        .await
        .ok()
}

/// The node leading the auditors' stream, once it has all its replicas.
async fn audit_stream_leader(js: &jetstream::Context, replicas: usize) -> String {
    wait_for("the auditors' stream to be replicated", || async {
        let mut stream = js.get_stream(Department::Audit.stream()).await.ok()?;
        let info = stream.info().await.ok()?;
        if info.config.num_replicas != usize::from(REPLICAS) {
            return None;
        }
        let cluster = info.cluster.clone()?;
        let current = cluster.replicas.iter().filter(|r| r.current).count();
        (current + 1 >= replicas)
            .then_some(cluster.leader)
            .flatten()
    })
    .await
}

// ---------------------------------------------------------------------------
// The test

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_node_and_a_pathway_instance_die_under_load_and_nothing_is_lost_or_doubled() {
    let started = Instant::now();
    let seed = seed();
    eprintln!("cluster test seed: {seed} (rerun with PATHWAY_CLUSTER_SEED={seed})");
    let mut rng = Rng(seed);

    let mut nats = NatsCluster::start(3);
    let db = TestDb::create();
    let store = PostgresStore::connect(db.url()).await.expect("store");

    // Each client connects to one node (seeded) and learns the others from it.
    let (node_a, node_b, node_s) = (rng.below(3), rng.below(3), rng.below(3));
    eprintln!(
        "instance a -> n{}, b -> n{}, subscriber -> n{}",
        node_a + 1,
        node_b + 1,
        node_s + 1
    );
    let a = start("a", settings(&db, nats.url(node_a))).await;
    let b = start("b", settings(&db, nats.url(node_b))).await;
    let subscriber = Subscriber::start(nats.url(node_s)).await;

    let load = Load::start(vec![a.base.clone(), b.base.clone()], &mut rng);
    load.wait_for_more(COMMANDS_PER_PHASE, "the first commands")
        .await;
    let head = store.head().await.expect("head").position;
    subscriber
        .wait_past(head.saturating_sub(1), "the subscriber's first events")
        .await;

    // (a) Kill the NATS node leading the auditors' stream.
    let js = jetstream::new(
        async_nats::connect(nats.url(rng.below(3)))
            .await
            .expect("connect"),
    );
    let leader = audit_stream_leader(&js, 3).await;
    let victim = nats.index_of(&leader);
    let survivor = (victim + 1 + rng.below(2)) % 3;
    let head = store.head().await.expect("head").position;
    eprintln!("killing NATS node {leader} (leads PATHWAY_AUDIT) at log position {head}");
    let killed = Instant::now();
    nats.kill(victim);
    let js = jetstream::new(
        async_nats::connect(nats.url(survivor))
            .await
            .expect("connect"),
    );
    wait_for("the relay to publish past the failure", || async {
        (stream_position(&js).await? > head).then_some(())
    })
    .await;
    let relayed = killed.elapsed();
    subscriber
        .wait_past(head, "events appended after the NATS leader died")
        .await;
    let took = killed.elapsed();
    eprintln!(
        "after the NATS node died: relay published new events after {relayed:?}, \
         the subscriber received them after {took:?}"
    );
    if took > Duration::from_millis(FAILOVER_MS_MAX) {
        panic!("NATS failover took {took:?}\n{}", nats.logs());
    }
    let new_leader = audit_stream_leader(&js, 2).await;
    assert_ne!(new_leader, leader, "a surviving node leads the stream");
    load.wait_for_more(COMMANDS_PER_PHASE, "commands after the NATS failover")
        .await;

    // (b) Stop the Pathway instance leading the relay.
    let (leading, standing_by) = wait_for("one relay leader", || async {
        match (a.leads_relay().await, b.leads_relay().await) {
            (true, false) => Some((true, false)),
            (false, true) => Some((false, true)),
            _ => None,
        }
    })
    .await;
    assert!(leading != standing_by);
    let (leader_app, other) = if leading { (a, b) } else { (b, a) };
    let head = store.head().await.expect("head").position;
    eprintln!(
        "stopping instance {} (leads the relay) at log position {head}",
        leader_app.name
    );
    let leader_base = leader_app.base.clone();
    let stopping = Instant::now();
    leader_app.shut_down().await;
    load.remove_target(&leader_base);
    let stopped = stopping.elapsed();
    wait_for("the other instance to lead the relay", || async {
        other.leads_relay().await.then_some(())
    })
    .await;
    let took_over = stopping.elapsed();
    // Events appended after the leader stopped (the load goes on).
    let head = store.head().await.expect("head").position;
    subscriber
        .wait_past(head, "events appended after the relay leader stopped")
        .await;
    let took = stopping.elapsed();
    eprintln!(
        "after the relay leader was told to stop: stopped after {stopped:?}, \
         instance {} led the relay after {took_over:?}, the subscriber received \
         events appended after that at {took:?}",
        other.name
    );
    assert!(
        took <= Duration::from_millis(FAILOVER_MS_MAX),
        "relay failover took {took:?}"
    );
    load.wait_for_more(COMMANDS_PER_PHASE, "commands after the relay failover")
        .await;

    // Stop the load and let the relay catch up.
    let (acked, wrong, retries) = load.stop().await;
    assert!(wrong.is_empty(), "unexpected answers: {wrong:?}");
    let head = store.head().await.expect("head").position;
    subscriber
        .wait_past(head.saturating_sub(1), "the subscriber to reach the head")
        .await;
    eprintln!(
        "{} commands acknowledged ({retries} retried requests), log head {head}, \
         subscriber received {} messages ({} consumer restarts: {:?})",
        acked.len(),
        subscriber.received.load(Ordering::Relaxed),
        subscriber.errors.load(Ordering::Relaxed),
        subscriber.error_texts.lock().expect("errors")
    );
    subscriber.task.abort();

    // The log as it is now. The workflows' routers may still append behind
    // it (saga steps, router checkpoints): those are not checked here.
    let log = read_log(&store).await;
    let end = log.last().expect("events").position;
    for (i, r) in log.iter().enumerate() {
        assert_eq!(r.position, i as u64 + 1, "the log is dense");
    }

    // Every acknowledged command is in the log exactly once, where it was told.
    let mut by_command: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for r in &log {
        let envelope = pathway_engine::decode_envelope(r).expect("envelope");
        by_command
            .entry((envelope.command_id, r.stream_id.clone()))
            .or_default()
            .push(r.position);
    }
    let mut seen = BTreeSet::new();
    for a in &acked {
        assert!(
            seen.insert(a.command_id.clone()),
            "{a:?} acknowledged twice"
        );
        assert!(a.events > 0, "{a:?}");
        let positions = by_command
            .get(&(a.command_id.clone(), a.stream.clone()))
            .unwrap_or_else(|| panic!("acknowledged command not in the log: {a:?}"));
        let told: Vec<u64> = (a.first..=a.last).collect();
        assert_eq!(positions, &told, "{a:?} in the log exactly once");
        assert_eq!(positions.len(), a.events, "{a:?}");
    }

    // Every event of the log is in the auditors' stream exactly once by id.
    wait_for("the relay to publish up to the end of the log", || async {
        (stream_position(&js).await? >= end).then_some(())
    })
    .await;
    let published = audit_stream(&js).await;
    let mut ids = BTreeSet::new();
    let doubled: Vec<&(String, u64)> = published
        .iter()
        .filter(|(id, _)| !ids.insert(id.clone()))
        .collect();
    assert!(doubled.is_empty(), "published twice: {doubled:?}");
    let positions: Vec<u64> = published.iter().map(|(_, p)| *p).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "the stream is in log order"
    );
    let upto_end: BTreeSet<String> = published
        .iter()
        .filter(|(_, p)| *p <= end)
        .map(|(id, _)| id.clone())
        .collect();
    let in_log: BTreeSet<String> = log.iter().map(|r| r.event_id.to_string()).collect();
    assert_eq!(upto_end.len(), log.len(), "one message per event");
    assert_eq!(
        upto_end, in_log,
        "the stream holds exactly the log's events"
    );
    eprintln!(
        "log positions 1..={end}: every event published once ({} messages in the stream)",
        published.len()
    );

    other.shut_down().await;
    eprintln!("cluster test took {:?}", started.elapsed());
}

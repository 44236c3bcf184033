//! The chaos test (issue #9, part 2): two `pathway serve` processes (the real
//! binary) on one PostgreSQL and one NATS, both started by this test on free
//! ports, under load from the simulator's commands (the client of
//! `pathway bench e2e`), while the test SIGKILLs and restarts a server,
//! crash-restarts PostgreSQL (`pg_ctl stop -m immediate`) and restarts NATS.
//!
//! Afterwards: every command a client saw acknowledged is in the log exactly
//! once, at the positions its answer named; positions are dense; the hash
//! chain verifies; every read model equals a rebuild from scratch; every due
//! saga timer fired exactly once; every event reached NATS exactly once; and
//! clients only ever saw decisions or clean retryable errors (409, 429, 503,
//! a refused or dropped connection), never a 500.
//!
//! `PATHWAY_CHAOS_SECONDS` (default 60) is how long load and faults run;
//! `PATHWAY_CHAOS_SEED` fixes the seed (printed either way). The soak form
//! is `tests/chaos/run.sh --soak MINUTES`. Every wait polls with a deadline.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use pathway_bus::{
    async_nats::{self, jetstream},
    subjects::Department,
};
use pathway_domain::pb::{self, event::Kind};
use pathway_projections::{models, runtime, runtime::ReadStore};
use pathway_store::{EventStore, ReadFilter, RecordedEvent, postgres::PostgresStore};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use tokio::time::Instant;

#[allow(dead_code)]
#[path = "../../src/bench_e2e.rs"]
mod bench_e2e;

use bench_e2e::{HttpSink, Until};
use pathway_testkit::nats::{NatsServer, free_port};

const SECRET: &str = "chaos-signing-secret-0123456789abcdef";
/// Base64 of 32 bytes of 7, as the other tests.
const MASTER_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
/// Load and faults run this long unless `PATHWAY_CHAOS_SECONDS` says otherwise.
const CHAOS_SECONDS_DEFAULT: u64 = 60;
/// Concurrent simulated clients.
const CLIENTS: usize = 12;
/// Longest any start or catch-up wait lasts.
const WAIT_TIMEOUT_MS: u64 = 120_000;
/// Longest the system may take to settle after the load (timers fired,
/// relay and read models at the head), on a loaded 2-core machine.
const SETTLE_TIMEOUT_MS: u64 = 300_000;
/// Longest a client retries one command through the faults.
const RETRY_FOR_S: u64 = 90;
/// Pause between two faults, in milliseconds (drawn from this range).
const FAULT_GAP_MS: std::ops::Range<u64> = 2_000..6_000;
/// Bound of each NATS stream (2 GiB): a soak must not age out events before the check.
const STREAM_MAX_BYTES: &str = "2147483648";
/// Records read per page when scanning the log.
const PAGE: usize = 5_000;

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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL of our own, so it can be crashed and restarted

struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// `runuser -u postgres --` when running as root (initdb refuses root).
    as_user: Option<String>,
}

fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .find(|d| d.join("pg_ctl").is_file())
        .expect("PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    fn cmd(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        match &self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start() -> Postgres {
        let dir = tempfile::tempdir().expect("tempdir");
        let as_user = is_root().then(|| "postgres".to_owned());
        if let Some(user) = &as_user {
            let status = Command::new("chown")
                .args([
                    &format!("{user}:"),
                    dir.path().to_str().expect("utf-8 path"),
                ])
                .status()
                .expect("chown");
            assert!(status.success(), "chown the PostgreSQL directory");
        }
        let pg = Postgres {
            bin: pg_bin(),
            dir,
            port: free_port(),
            as_user,
        };
        let out = pg
            .cmd("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(pg.data())
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.up();
        pg
    }

    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A crash as far as clients can tell: every backend dies at once, and
    /// the restart replays the WAL.
    fn crash_and_restart(&self) {
        let out = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .expect("pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.up();
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn createdb(&self, name: &str) {
        let out = self
            .cmd("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ])
            .output()
            .expect("createdb");
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

// ---------------------------------------------------------------------------
// `pathway serve`, the real binary

struct Server {
    name: &'static str,
    port: u16,
    database_url: String,
    nats_url: String,
    policy: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn new(name: &'static str, database_url: String, nats_url: String, logs: &Path) -> Server {
        Server {
            name,
            port: free_port(),
            database_url,
            nats_url,
            policy: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../deploy/policy/authorization.toml"),
            log: logs.join(format!("{name}.log")),
            child: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_pathway"))
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--database-url", &self.database_url])
            .args(["--nats-url", &self.nats_url])
            .arg("--policy-file")
            .arg(&self.policy)
            .args(["--requests-per-second-per-department", "100000"])
            .args(["--ready-lag-positions-max", "0"])
            .args(["--sweep-interval-ms", "200"])
            .args(["--chain-verify-interval-ms", "2000"])
            .args(["--drain-timeout-ms", "20000"])
            .args(["--stream-max-bytes", STREAM_MAX_BYTES])
            .env("PATHWAY_TOKEN_SECRET", SECRET)
            .env("PATHWAY_MASTER_KEY", MASTER_KEY)
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn pathway serve");
        self.child = Some(child);
    }

    async fn wait_healthy(&self) {
        let url = format!("{}/healthz", self.url());
        let name = self.name;
        wait_for(&format!("{name} to answer /healthz"), || {
            let url = url.clone();
            async move {
                let r = reqwest::get(&url).await.ok()?;
                (r.status().as_u16() == 200).then_some(())
            }
        })
        .await;
    }

    fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reaped");
        }
    }

    /// SIGTERM and wait: a graceful stop leaves the read models at the head.
    async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let status = tokio::task::spawn_blocking(move || c.wait())
                .await
                .expect("task")
                .expect("wait");
            assert!(status.success(), "{} stopped with {status}", self.name);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.sigkill();
    }
}

// ---------------------------------------------------------------------------
// Reading the outcome

async fn whole_log(store: &PostgresStore) -> Vec<RecordedEvent> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = out.last().map_or(1, |r| r.position + 1);
        let page = store
            .read_all(from, PAGE, &ReadFilter::all())
            .await
            .expect("read the log");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Event ids and positions in the auditors' stream; empty while NATS or the
/// stream is not reachable (the caller polls).
async fn audit_stream(js: &jetstream::Context) -> Vec<(String, u64)> {
    pathway_bus::relay::published(js, Department::Audit)
        .await
        .unwrap_or_default()
}

/// Saga timers: `(saga, timer, generation)` fired, with how often, and the
/// generations still pending (scheduled, not cancelled, not fired) with
/// their due time in seconds since 1970.
#[derive(Debug, Default)]
struct Timers {
    fired: BTreeMap<(String, String, u64), u32>,
    scheduled: usize,
    pending_due: Vec<((String, String, u64), i64)>,
}

fn timers(log: &[RecordedEvent]) -> Timers {
    let mut t = Timers::default();
    // (saga, timer) → latest scheduled generation and its due time.
    let mut live: BTreeMap<(String, String), Option<(u64, i64)>> = BTreeMap::new();
    for r in log.iter().filter(|r| r.stream_id.starts_with("saga-")) {
        match pathway_engine::decode(r).expect("a saga event decodes") {
            Kind::SagaStepTaken(step) => {
                for change in step.timers {
                    let key = (step.saga_id.clone(), change.timer.clone());
                    if change.change == pb::SagaTimerChange::Scheduled as i32 {
                        t.scheduled += 1;
                        let due = change.due_at.as_ref().map_or(0, |d| d.seconds);
                        live.insert(key, Some((change.generation, due)));
                    } else {
                        live.insert(key, None);
                    }
                }
            }
            Kind::SagaTimerFired(f) => {
                let key = (f.saga_id.clone(), f.timer.clone());
                *t.fired
                    .entry((f.saga_id, f.timer, f.generation))
                    .or_default() += 1;
                if live.get(&key).and_then(|g| *g).map(|(g, _)| g) == Some(f.generation) {
                    live.insert(key, None);
                }
            }
            _ => {}
        }
    }
    for ((saga, timer), g) in live {
        if let Some((generation, due)) = g {
            t.pending_due.push(((saga, timer, generation), due));
        }
    }
    t
}

async fn query_all(target: &ReadStore) -> BTreeMap<String, Vec<Vec<pathway_projections::Value>>> {
    let target = target.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = BTreeMap::new();
        for model in models::all() {
            for table in model.tables() {
                let rows = runtime::query(&target, model.name(), table, &[]).expect("query");
                out.insert(format!("{}.{}", model.name(), table.name), rows);
            }
        }
        out
    })
    .await
    .expect("task")
}

// ---------------------------------------------------------------------------
// The test

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_survive_kills_and_restarts_of_servers_postgres_and_nats() {
    let seed: u64 = std::env::var("PATHWAY_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let seconds: u64 = std::env::var("PATHWAY_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CHAOS_SECONDS_DEFAULT);
    eprintln!("chaos: seed {seed} (PATHWAY_CHAOS_SEED), {seconds} s (PATHWAY_CHAOS_SECONDS)");
    let mut rng = StdRng::seed_from_u64(seed);

    let pg = Postgres::start();
    pg.createdb("pathway");
    pg.createdb("scratch");
    let mut nats = NatsServer::start();
    let logs = tempfile::tempdir().expect("tempdir");
    let url = pg.url("pathway");
    let mut servers = [
        Server::new("a", url.clone(), nats.url(), logs.path()),
        Server::new("b", url.clone(), nats.url(), logs.path()),
    ];
    // One after the other: the first creates the schema.
    for s in &mut servers {
        s.spawn();
        s.wait_healthy().await;
    }

    let policy = pathway_server::policy::Policy::load(&servers[0].policy).expect("policy");
    let sink = Arc::new(
        HttpSink::new(
            servers.iter().map(Server::url).collect(),
            bench_e2e::mint_tokens(SECRET),
            policy,
            None,
            Duration::from_secs(RETRY_FOR_S),
            true,
        )
        .expect("sink")
        .retrying_internal_errors(),
    );
    let load = tokio::spawn(bench_e2e::drive(
        sink.clone(),
        seed,
        CLIENTS,
        Until {
            duration: Some(Duration::from_secs(seconds)),
            commands: None,
        },
    ));

    // Faults until the load stops starting new lives: rounds of the four
    // kinds in a random order, so each happens in every round.
    let started = Instant::now();
    let mut done: BTreeMap<&str, u32> = BTreeMap::new();
    let mut round: Vec<u8> = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) && !load.is_finished() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(FAULT_GAP_MS))).await;
        if round.is_empty() {
            round = vec![0, 1, 2, 3];
            round.shuffle(&mut rng);
        }
        match round.pop().expect("a fault") {
            k @ (0 | 1) => {
                let s = &mut servers[usize::from(k)];
                eprintln!(
                    "chaos: SIGKILL server {} at {:?}",
                    s.name,
                    started.elapsed()
                );
                s.sigkill();
                s.spawn();
                s.wait_healthy().await;
                *done.entry("server SIGKILL + restart").or_default() += 1;
            }
            2 => {
                eprintln!(
                    "chaos: PostgreSQL crash + restart at {:?}",
                    started.elapsed()
                );
                pg.crash_and_restart();
                *done
                    .entry("PostgreSQL immediate stop + restart")
                    .or_default() += 1;
            }
            _ => {
                eprintln!("chaos: NATS restart at {:?}", started.elapsed());
                nats.restart();
                *done.entry("NATS restart").or_default() += 1;
            }
        }
    }
    let report = load.await.expect("load task").expect("load ran");
    eprintln!("chaos: faults {done:?}");
    eprintln!(
        "chaos: load {} commands in {:.1} s: {} accepted, {} rejected, {} retryable errors, {} failed; by status {:?}",
        report.commands,
        report.seconds,
        report.accepted,
        report.rejected,
        report.retryable_errors,
        report.failed,
        report.by_status
    );

    // Clients saw decisions and clean retryable errors only.
    let server_logs = || logs_of(logs.path());
    let failures = sink.failures();
    assert!(
        failures.is_empty(),
        "unclean answers: {failures:#?}\nserver logs (tail): {}",
        tail(&server_logs(), 4_000)
    );
    // A 500 is retried (so the command's fate is still checked below) and
    // judged here: there must be none.
    let internal = sink.internal_errors();
    assert!(internal.is_empty(), "HTTP 500 answers: {internal:#?}");
    for status in sink.by_status().keys() {
        assert!(
            ["200", "400 rejected", "409", "429", "503", "connect"].contains(&status.as_str()),
            "answer {status} is neither a decision nor a clean retryable error"
        );
    }
    assert!(report.accepted > 0, "the load got commands through");

    // Quiescence: both servers up, every due timer fired, the relay at the
    // head, the read models at the head (`/readyz`), all at one head.
    let store = PostgresStore::connect(&url).await.expect("store");
    let nats_client = async_nats::connect(nats.url()).await.expect("NATS");
    let js = jetstream::new(nats_client);
    let now = chrono::Utc::now().timestamp();
    let client = reqwest::Client::new();
    let urls: Vec<String> = servers.iter().map(Server::url).collect();
    let deadline = Instant::now() + Duration::from_millis(SETTLE_TIMEOUT_MS);
    let (log, published) = loop {
        let why = async {
            let head = store.head().await.map_err(|e| e.to_string())?.position;
            let log = whole_log(&store).await;
            let t = timers(&log);
            let due: Vec<_> = t
                .pending_due
                .iter()
                .filter(|(_, due)| *due <= now)
                .collect();
            if !due.is_empty() {
                return Err(format!(
                    "{} due timers pending, e.g. {:?}",
                    due.len(),
                    due[0]
                ));
            }
            let published = audit_stream(&js).await;
            let relayed = published.last().map_or(0, |(_, p)| *p);
            if relayed < head {
                return Err(format!("relay at {relayed} of head {head}"));
            }
            for u in &urls {
                let r = client
                    .get(format!("{u}/readyz"))
                    .send()
                    .await
                    .map_err(|e| format!("{u}/readyz: {e}"))?;
                if r.status().as_u16() != 200 {
                    let body = r.text().await.unwrap_or_default();
                    return Err(format!("{u}/readyz: {body}"));
                }
            }
            let now_head = store.head().await.map_err(|e| e.to_string())?.position;
            if now_head != head {
                return Err(format!("head moved from {head} to {now_head}"));
            }
            Ok((log, published))
        }
        .await;
        match why {
            Ok(settled) => break settled,
            Err(why) => assert!(
                Instant::now() < deadline,
                "timed out waiting for timers, relay and read models to settle: {why}\n\
                 server logs (tail): {}",
                tail(&server_logs(), 6_000)
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let head = log.last().map_or(0, |r| r.position);

    // Positions dense, event ids unique.
    for (i, r) in log.iter().enumerate() {
        assert_eq!(r.position, i as u64 + 1, "positions are dense");
    }
    let mut ids = BTreeSet::new();
    for r in &log {
        assert!(ids.insert(r.event_id), "event {} stored twice", r.event_id);
    }

    // Every acknowledged command is in the log once, where its answer said.
    let acks = sink.acks();
    assert!(
        acks.len() as u64 >= report.accepted,
        "setup and load acknowledgements kept"
    );
    let mut appended = 0;
    for ack in &acks {
        let (Some(first), Some(last)) = (ack.first_position, ack.last_position) else {
            assert!(ack.events.is_empty(), "{ack:?}");
            continue;
        };
        let records = &log[(first - 1) as usize..last as usize];
        assert_eq!(records.len(), ack.events.len(), "{ack:?}");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.stream_id, ack.stream, "{ack:?}");
            assert_eq!(r.event_type, ack.events[i], "{ack:?}");
            assert_eq!(
                r.event_id,
                pathway_engine::event_id(ack.command_id, &ack.stream, i),
                "{ack:?}"
            );
        }
        appended += records.len();
    }
    let commands: BTreeSet<_> = acks
        .iter()
        .map(|a| (a.command_id, a.stream.clone()))
        .collect();
    assert_eq!(commands.len(), acks.len(), "each command acknowledged once");

    // The chain verifies.
    let verified = pathway_audit::verify::verify_postgres(&store, 1, None, &mut |_| {})
        .await
        .expect("verify");
    assert_eq!(verified.first_break, None, "the hash chain verifies");
    assert_eq!(verified.checked, head);

    // Every due timer fired exactly once.
    let t = timers(&log);
    for (key, n) in &t.fired {
        assert_eq!(*n, 1, "timer {key:?} fired {n} times");
    }
    assert!(t.pending_due.iter().all(|(_, due)| *due > now));

    // Every event reached NATS once, in log order.
    let in_stream: Vec<String> = published
        .iter()
        .filter(|(_, p)| *p <= head)
        .map(|(id, _)| id.clone())
        .collect();
    let in_log: Vec<String> = log.iter().map(|r| r.event_id.to_string()).collect();
    assert_eq!(in_stream.len(), in_log.len(), "every event once on NATS");
    assert_eq!(in_stream, in_log, "every event once on NATS, in log order");

    // Read models: stop both servers gracefully (their projectors end at the
    // head), then compare every table with a rebuild from scratch.
    for s in &mut servers {
        s.stop().await;
    }
    let head = store.head().await.expect("head").position;
    let live = ReadStore::Postgres { url: url.clone() };
    for model in models::all() {
        let name = model.name();
        let checkpoint = {
            let live = live.clone();
            tokio::task::spawn_blocking(move || runtime::read_checkpoint(&live, name))
                .await
                .expect("task")
                .expect("checkpoint")
        };
        assert_eq!(checkpoint, head, "model {name} at the head");
    }
    let scratch = ReadStore::Postgres {
        url: pg.url("scratch"),
    };
    // The rebuild opens personal fields as the servers' projectors do.
    let keyring = pathway_keys::postgres_keyring(
        store.pool().clone(),
        pathway_keys::MasterKey::from_base64(MASTER_KEY).expect("master key"),
    )
    .await
    .expect("keyring");
    let options = runtime::ProjectorOptions {
        keyring: Some(keyring),
        ..Default::default()
    };
    runtime::catch_up_many_with(&store, &scratch, &models::all(), &options)
        .await
        .expect("rebuild from scratch");
    let (live_rows, rebuilt_rows) = (query_all(&live).await, query_all(&scratch).await);
    let rows: usize = live_rows.values().map(Vec::len).sum();
    let mut differing = Vec::new();
    for (table, rows) in &live_rows {
        let rebuilt = rebuilt_rows.get(table).cloned().unwrap_or_default();
        if rebuilt != *rows {
            let only_live: Vec<_> = rows
                .iter()
                .filter(|r| !rebuilt.contains(r))
                .take(3)
                .collect();
            let only_rebuilt: Vec<_> = rebuilt
                .iter()
                .filter(|r| !rows.contains(r))
                .take(3)
                .collect();
            differing.push(format!(
                "{table}: {} live rows, {} rebuilt; only live (first 3): {only_live:?}; only rebuilt (first 3): {only_rebuilt:?}",
                rows.len(),
                rebuilt.len()
            ));
        }
    }
    assert!(
        differing.is_empty(),
        "read models differ from their rebuild:\n{}",
        differing.join("\n")
    );
    eprintln!(
        "chaos: PASS seed {seed}: head {head}, {} acknowledged commands ({appended} events), \
         {} timers scheduled, {} fired, {} events on NATS, {} read-model rows equal to the rebuild",
        acks.len(),
        t.scheduled,
        t.fired.len(),
        in_stream.len(),
        rows
    );
}

/// Every server's log, concatenated.
fn logs_of(dir: &Path) -> String {
    ["a", "b"]
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn tail(text: &str, chars: usize) -> &str {
    let start = text.len().saturating_sub(chars);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    &text[start..]
}

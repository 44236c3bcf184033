//! `pathway bench e2e`: drives a running `pathway serve` through its HTTP
//! API with the simulator's commands (registrations, the Four Ones,
//! training, placements, dibao reassessments, graduate cohorts) from many
//! concurrent clients, and reports commands/s, request latency and the
//! outcome of every command.
//!
//! The client side is [`HttpSink`], a [`CommandSink`] that posts each
//! command as its JSON envelope to `POST /v1/commands`, retries the answers
//! that mean "try again" (409, 429, 503, a refused or dropped connection)
//! with the same command id, and tallies every answer. The chaos test of
//! `crates/pathway-cli/tests/it/chaos.rs` drives its servers with the same
//! code.
//!
//! This file uses nothing of the binary crate, so the test can include it.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use pathway_domain::Aggregate;
use pathway_engine::{CommandMeta, Handled};
use pathway_server::{policy::Policy, settings::Secret, token};
use pathway_sim::{
    Employer, SimError, SimStats,
    sink::{CommandSink, Sent, department_name, envelope},
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Departments a `--token-secret` mints tokens for.
pub(crate) const DEPARTMENTS: [&str; 8] = [
    "dpf",
    "hrss",
    "civil_affairs",
    "education",
    "sasac",
    "organization",
    "finance",
    "committee",
];
/// Lifetime of minted tokens, in seconds.
const MINTED_TOKEN_TTL_S: i64 = 24 * 3600;
/// Persons the setup phase sizes the employers for (20 employers).
const SETUP_PERSONS: usize = 1_000;
/// Run length when neither --duration nor --commands is given, in seconds.
const DURATION_DEFAULT_S: f64 = 30.0;
/// Longest one HTTP request may take before it counts as a retryable error.
const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// First pause before a retry, doubled per attempt up to [`RETRY_PAUSE_MAX_MS`].
const RETRY_PAUSE_MS: u64 = 10;
const RETRY_PAUSE_MAX_MS: u64 = 1_000;
/// Longest pause a `Retry-After` can ask for.
const RETRY_AFTER_MAX_MS: u64 = 2_000;
/// Failure messages kept for the report.
const FAILURES_KEPT_MAX: usize = 20;

/// `pathway bench e2e`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct E2eArgs {
    /// Base URL of a running `pathway serve`; repeat to spread the load over
    /// several instances (a failed request is retried on the next one).
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// A bearer token as `department=TOKEN` (e.g. `dpf=pw1.…`); repeat for
    /// each department the simulator acts as (dpf, hrss, civil_affairs,
    /// education, organization).
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// The server's token-signing secret: mint a token for every department
    /// instead of passing --token (as `pathway serve token issue` would).
    #[arg(long, env = "PATHWAY_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
    /// Authorization policy of the server: commands are sent as a
    /// department that may issue them.
    #[arg(
        long,
        env = "PATHWAY_POLICY_FILE",
        default_value = "deploy/policy/authorization.toml"
    )]
    policy_file: PathBuf,
    /// Commands per second in all (requests are paced); flat out without it.
    #[arg(long)]
    rate: Option<f64>,
    /// Concurrent clients, each living one simulated person's life at a time.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds to start new lives for (default 30 when --commands is absent).
    #[arg(long)]
    duration: Option<f64>,
    /// Commands to send: no new life starts after this many.
    #[arg(long)]
    commands: Option<u64>,
    /// Seed of the simulation (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// How long one command is retried on retryable errors, in seconds.
    #[arg(long, default_value_t = 30.0)]
    retry_for: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// When the load stops starting new lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Until {
    pub(crate) duration: Option<Duration>,
    pub(crate) commands: Option<u64>,
}

/// A command the server acknowledged (HTTP 200), as its answer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    pub(crate) command_id: Uuid,
    pub(crate) stream: String,
    pub(crate) command: String,
    pub(crate) events: Vec<String>,
    pub(crate) first_position: Option<u64>,
    pub(crate) last_position: Option<u64>,
}

/// Paces requests to a rate shared by every client.
#[derive(Debug)]
struct Pace {
    start: Instant,
    interval_ns: u64,
    next_ns: AtomicU64,
}

#[derive(Debug, Default)]
struct Tally {
    /// Commands given to the sink.
    commands: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    /// Retryable answers (409, 429, 503, connection errors), each retried.
    retryable: AtomicU64,
    /// Commands that ended in an answer that is neither a decision nor
    /// retryable (a 500, 403, …), or that stayed retryable past --retry-for.
    failed: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    /// Answers by status (`connect` for a request that got no answer).
    by_status: Mutex<BTreeMap<String, u64>>,
    /// Accepted commands by `aggregate.type`.
    by_command: Mutex<BTreeMap<String, u64>>,
    rejections: Mutex<BTreeMap<String, u64>>,
    failures: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends the simulator's commands to `pathway serve` over HTTP.
#[derive(Debug)]
pub(crate) struct HttpSink {
    client: reqwest::Client,
    urls: Vec<String>,
    tokens: BTreeMap<String, String>,
    policy: Policy,
    pace: Option<Pace>,
    retry_for: Duration,
    next_url: AtomicUsize,
    tally: Tally,
    acks: Option<Mutex<Vec<Ack>>>,
    /// Retry a 500 as if it were retryable, keeping its message in
    /// [`HttpSink::internal_errors`] (the chaos test judges them).
    retry_internal: bool,
    internal: Mutex<Vec<String>>,
}

/// What one request got back.
enum Answer {
    Status(u16, Value, Option<u64>),
    NoAnswer(String),
}

impl HttpSink {
    /// A sink posting to `urls` (in turn) with `tokens` (department → token).
    /// `rate`: commands per second in all. `record_acks` keeps every
    /// acknowledged command for [`HttpSink::acks`].
    pub(crate) fn new(
        urls: Vec<String>,
        tokens: BTreeMap<String, String>,
        policy: Policy,
        rate: Option<f64>,
        retry_for: Duration,
        record_acks: bool,
    ) -> anyhow::Result<HttpSink> {
        anyhow::ensure!(!urls.is_empty(), "no server URL");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .build()
            .context("HTTP client")?;
        let pace = match rate {
            Some(r) => {
                anyhow::ensure!(r > 0.0 && r.is_finite(), "--rate must be positive");
                Some(Pace {
                    start: Instant::now(),
                    interval_ns: (1e9 / r) as u64,
                    next_ns: AtomicU64::new(0),
                })
            }
            None => None,
        };
        Ok(HttpSink {
            client,
            urls: urls
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            tokens,
            policy,
            pace,
            retry_for,
            next_url: AtomicUsize::new(0),
            tally: Tally::default(),
            acks: record_acks.then(|| Mutex::new(Vec::new())),
            retry_internal: false,
            internal: Mutex::new(Vec::new()),
        })
    }

    /// Retries answers of 500 too (each is kept for [`HttpSink::internal_errors`]).
    #[allow(dead_code)]
    pub(crate) fn retrying_internal_errors(mut self) -> HttpSink {
        self.retry_internal = true;
        self
    }

    /// The 500 answers retried, as `command: body`.
    #[allow(dead_code)]
    pub(crate) fn internal_errors(&self) -> Vec<String> {
        lock(&self.internal).clone()
    }

    /// Every command acknowledged so far (when recording; the chaos test reads them).
    #[allow(dead_code)]
    pub(crate) fn acks(&self) -> Vec<Ack> {
        self.acks
            .as_ref()
            .map(|a| lock(a).clone())
            .unwrap_or_default()
    }

    /// Answers that were neither a decision nor retryable, as `status: body`.
    pub(crate) fn failures(&self) -> Vec<String> {
        lock(&self.tally.failures).clone()
    }

    /// Answers by status.
    pub(crate) fn by_status(&self) -> BTreeMap<String, u64> {
        lock(&self.tally.by_status).clone()
    }

    fn fail(&self, message: String) {
        self.tally.failed.fetch_add(1, Ordering::Relaxed);
        let mut f = lock(&self.tally.failures);
        if f.len() < FAILURES_KEPT_MAX {
            f.push(message);
        }
    }

    /// The department that sends `name`: the simulator's own when the
    /// policy lets it, else the first department that may (the simulator
    /// also acts as the engine's own department, which has no token).
    fn department_for(&self, simulated: &str, name: &str) -> Option<String> {
        if self.policy.may_issue(simulated, name) {
            return Some(simulated.to_owned());
        }
        DEPARTMENTS
            .iter()
            .find(|d| self.policy.may_issue(d, name))
            .map(|d| (*d).to_owned())
    }

    async fn pace(&self) {
        if let Some(p) = &self.pace {
            let slot = p.next_ns.fetch_add(p.interval_ns, Ordering::Relaxed);
            tokio::time::sleep_until((p.start + Duration::from_nanos(slot)).into()).await;
        }
    }

    async fn post(&self, url: &str, token: &str, body: &str) -> Answer {
        let response = self
            .client
            .post(format!("{url}/v1/commands"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await;
        match response {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                match r.bytes().await {
                    Ok(bytes) => Answer::Status(
                        status,
                        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                        retry_after,
                    ),
                    Err(e) => Answer::NoAnswer(format!("reading the answer: {e}")),
                }
            }
            Err(e) => Answer::NoAnswer(error_chain(&e)),
        }
    }

    fn count_status(&self, key: String) {
        *lock(&self.tally.by_status).entry(key).or_default() += 1;
    }

    /// Sends one envelope until it is decided, or fails for good.
    async fn deliver(&self, stream: &str, mut body: Value) -> Result<Sent, SimError> {
        let sink_error = |message: String| SimError::Sink {
            stream: stream.to_owned(),
            message,
        };
        let name = format!(
            "{}.{}",
            body["command"]["aggregate"].as_str().unwrap_or("?"),
            body["command"]["type"].as_str().unwrap_or("?")
        );
        let simulated = body["department"].as_str().unwrap_or("?").to_owned();
        let Some(department) = self.department_for(&simulated, &name) else {
            self.fail(format!("{name}: no department may issue it"));
            return Err(sink_error(format!("no department may issue {name}")));
        };
        body["department"] = Value::from(department.as_str());
        let Some(token) = self.tokens.get(&department) else {
            self.fail(format!("{name}: no token for {department}"));
            return Err(sink_error(format!("no token for department {department}")));
        };
        let command_id = body["command_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_default();
        let text = body.to_string();
        self.tally.commands.fetch_add(1, Ordering::Relaxed);
        let first = self.next_url.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut attempt: u32 = 0;
        let mut last_error: String;
        loop {
            self.pace().await;
            let url = &self.urls[(first + attempt as usize) % self.urls.len()];
            let sent_at = Instant::now();
            let answer = self.post(url, token, &text).await;
            let micros = u32::try_from(sent_at.elapsed().as_micros()).unwrap_or(u32::MAX);
            lock(&self.tally.latencies_us).push(micros);
            let pause = match answer {
                Answer::Status(200, v, _) => {
                    self.count_status("200".to_owned());
                    self.tally.accepted.fetch_add(1, Ordering::Relaxed);
                    *lock(&self.tally.by_command).entry(name).or_default() += 1;
                    if let Some(acks) = &self.acks {
                        lock(acks).push(Ack {
                            command_id,
                            stream: v["stream"].as_str().unwrap_or(stream).to_owned(),
                            command: v["command"].as_str().unwrap_or("?").to_owned(),
                            events: v["events"]
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|e| e.as_str().map(str::to_owned))
                                        .collect()
                                })
                                .unwrap_or_default(),
                            first_position: v["first_position"].as_u64(),
                            last_position: v["last_position"].as_u64(),
                        });
                    }
                    return Ok(Sent::Accepted(Handled {
                        events: Vec::new(),
                        append: None,
                    }));
                }
                Answer::Status(400, v, _) if v["error"] == "rejected" => {
                    self.count_status("400 rejected".to_owned());
                    self.tally.rejected.fetch_add(1, Ordering::Relaxed);
                    let message = v["message"].as_str().unwrap_or("?").to_owned();
                    *lock(&self.tally.rejections)
                        .entry(message.clone())
                        .or_default() += 1;
                    return Ok(Sent::Rejected(message));
                }
                Answer::Status(status @ (409 | 429 | 503), _, retry_after) => {
                    self.count_status(status.to_string());
                    last_error = format!("HTTP {status}");
                    retry_after.map(|s| Duration::from_millis((s * 1000).min(RETRY_AFTER_MAX_MS)))
                }
                Answer::Status(500, v, _) if self.retry_internal => {
                    self.count_status("500".to_owned());
                    last_error = format!("HTTP 500: {v}");
                    lock(&self.internal).push(format!("{name} {command_id}: {v}"));
                    None
                }
                Answer::NoAnswer(e) => {
                    self.count_status("connect".to_owned());
                    last_error = e;
                    None
                }
                Answer::Status(status, v, _) => {
                    self.count_status(status.to_string());
                    let message = format!("{name} {command_id}: HTTP {status}: {v}");
                    self.fail(message.clone());
                    return Err(sink_error(message));
                }
            };
            self.tally.retryable.fetch_add(1, Ordering::Relaxed);
            if started.elapsed() >= self.retry_for {
                let message = format!(
                    "{name} {command_id}: still retryable after {:?} ({last_error})",
                    self.retry_for
                );
                self.fail(message.clone());
                return Err(sink_error(message));
            }
            attempt += 1;
            let backoff = RETRY_PAUSE_MS << attempt.min(7);
            // Spread by the command id, so clients do not retry in step.
            let jitter = (command_id.as_u128() as u64 ^ u64::from(attempt)) % (backoff / 2 + 1);
            let pause = pause.unwrap_or(Duration::from_millis(backoff.min(RETRY_PAUSE_MAX_MS)))
                + Duration::from_millis(jitter);
            tokio::time::sleep(pause).await;
        }
    }
}

impl CommandSink for HttpSink {
    async fn send<A: Aggregate + Send>(
        &self,
        stream: &str,
        command: &A::Command,
        meta: &CommandMeta,
    ) -> Result<Sent, SimError>
    where
        A::Command: Serialize + Sync,
    {
        let body = envelope::<A>(stream, command, meta);
        debug_assert_eq!(
            body["department"].as_str(),
            Some(department_name(meta.actor_department).as_str())
        );
        self.deliver(stream, body).await
    }
}

/// An error and its causes on one line (reqwest hides the interesting part).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Tokens for every department in [`DEPARTMENTS`], signed with `secret`.
pub(crate) fn mint_tokens(secret: &str) -> BTreeMap<String, String> {
    let secret = Secret::new(secret);
    let now = chrono::Utc::now().timestamp();
    DEPARTMENTS
        .iter()
        .map(|dept| {
            let claims = token::Claims {
                sub: format!("bench-e2e-{dept}"),
                dept: (*dept).to_owned(),
                city: None,
                iat: now,
                exp: now + MINTED_TOKEN_TTL_S,
                jti: Uuid::new_v4().to_string(),
            };
            ((*dept).to_owned(), token::issue(&secret, &claims))
        })
        .collect()
}

/// What a load run did.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) seed: u64,
    pub(crate) clients: usize,
    pub(crate) rate: Option<f64>,
    /// Commands of the untimed setup (training programmes, employers).
    pub(crate) setup_commands: u64,
    pub(crate) setup_seconds: f64,
    /// Simulated persons whose lives were started.
    pub(crate) persons: usize,
    /// Lives (or the cohorts) cut short by a failed command.
    pub(crate) lives_failed: usize,
    /// Commands of the timed phase.
    pub(crate) commands: u64,
    pub(crate) seconds: f64,
    pub(crate) commands_per_s: f64,
    /// The concurrent part: the persons' lives, before the cohorts.
    pub(crate) lives_commands: u64,
    pub(crate) lives_seconds: f64,
    pub(crate) lives_commands_per_s: f64,
    /// The graduate cohorts and ledgers, sent by one client after the lives.
    pub(crate) cohort_commands: u64,
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
    pub(crate) retryable_errors: u64,
    pub(crate) failed: u64,
    /// HTTP requests of the timed phase (a retry is another request).
    pub(crate) requests: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) by_status: BTreeMap<String, u64>,
    pub(crate) by_command: BTreeMap<String, u64>,
    /// The most frequent rejections (the rules the simulation trips).
    pub(crate) rejections: BTreeMap<String, u64>,
    pub(crate) failures: Vec<String>,
}

/// `counts` less `before`, without the keys that end at zero.
fn minus(
    mut counts: BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    for (k, v) in before {
        if let Some(c) = counts.get_mut(k) {
            *c -= (*v).min(*c);
        }
    }
    counts.retain(|_, c| *c > 0);
    counts
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

/// Runs the simulator against the server: the setup (untimed), then
/// `clients` concurrent lives until `until`, then the graduate cohorts.
pub(crate) async fn drive(
    sink: Arc<HttpSink>,
    seed: u64,
    clients: usize,
    until: Until,
) -> anyhow::Result<Report> {
    anyhow::ensure!(clients > 0, "--clients must be at least 1");
    let setup_started = Instant::now();
    let (employers, _) = pathway_sim::setup(&*sink, seed, SETUP_PERSONS)
        .await
        .context("setup (training programmes and employers)")?;
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    let setup_commands = sink.tally.commands.load(Ordering::Relaxed);
    let setup_requests = lock(&sink.tally.latencies_us).len();
    let setup_by_command = lock(&sink.tally.by_command).clone();
    let setup_by_status = sink.by_status();
    let setup_counts = (
        sink.tally.accepted.load(Ordering::Relaxed),
        sink.tally.rejected.load(Ordering::Relaxed),
        sink.tally.retryable.load(Ordering::Relaxed),
        sink.tally.failed.load(Ordering::Relaxed),
    );
    let employers: Arc<Vec<Employer>> = Arc::new(employers);
    let next_person = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let graduates = Arc::new(Mutex::new(SimStats::default()));
    let lives_failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (sink, employers, next_person, stop, graduates, lives_failed) = (
            sink.clone(),
            employers.clone(),
            next_person.clone(),
            stop.clone(),
            graduates.clone(),
            lives_failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let sent = sink.tally.commands.load(Ordering::Relaxed) - setup_commands;
                let over = until.duration.is_some_and(|d| started.elapsed() >= d)
                    || until.commands.is_some_and(|n| sent >= n);
                if over || stop.load(Ordering::Relaxed) {
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                let i = next_person.fetch_add(1, Ordering::Relaxed);
                match pathway_sim::person(&*sink, seed, i, &employers).await {
                    Ok(stats) => lock(&graduates).graduates.extend(stats.graduates),
                    Err(e) => {
                        lives_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(person = i, error = %e, "a simulated life stopped");
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.context("client task")?;
    }
    let lives_seconds = started.elapsed().as_secs_f64();
    let lives_commands = sink.tally.commands.load(Ordering::Relaxed) - setup_commands;
    let graduates = std::mem::take(&mut lock(&graduates).graduates);
    if let Err(e) = pathway_sim::graduates(&*sink, seed, &graduates).await {
        lives_failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "the graduate cohorts stopped");
    }
    let seconds = started.elapsed().as_secs_f64();
    let t = &sink.tally;
    let commands = t.commands.load(Ordering::Relaxed) - setup_commands;
    let mut latencies = lock(&t.latencies_us).split_off(setup_requests);
    latencies.sort_unstable();
    let mut rejections: Vec<(String, u64)> = lock(&t.rejections)
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    rejections.sort_by_key(|r| std::cmp::Reverse(r.1));
    Ok(Report {
        seed,
        clients,
        rate: sink.pace.as_ref().map(|p| 1e9 / p.interval_ns as f64),
        setup_commands,
        setup_seconds,
        persons: next_person.load(Ordering::Relaxed),
        lives_failed: lives_failed.load(Ordering::Relaxed),
        commands,
        seconds,
        commands_per_s: commands as f64 / seconds.max(1e-9),
        lives_commands,
        lives_seconds,
        lives_commands_per_s: lives_commands as f64 / lives_seconds.max(1e-9),
        cohort_commands: commands - lives_commands,
        accepted: t.accepted.load(Ordering::Relaxed) - setup_counts.0,
        rejected: t.rejected.load(Ordering::Relaxed) - setup_counts.1,
        retryable_errors: t.retryable.load(Ordering::Relaxed) - setup_counts.2,
        failed: t.failed.load(Ordering::Relaxed) - setup_counts.3,
        requests: latencies.len(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        p999_ms: percentile(&latencies, 0.999),
        max_ms: latencies.last().map_or(0.0, |m| f64::from(*m) / 1000.0),
        by_status: minus(sink.by_status(), &setup_by_status),
        by_command: minus(lock(&t.by_command).clone(), &setup_by_command),
        rejections: rejections.into_iter().take(5).collect(),
        failures: sink.failures(),
    })
}

/// `pathway bench e2e`.
pub(crate) async fn run(args: E2eArgs) -> anyhow::Result<()> {
    let mut tokens = match &args.token_secret {
        Some(secret) => mint_tokens(secret),
        None => BTreeMap::new(),
    };
    for t in &args.tokens {
        let (dept, token) = t
            .split_once('=')
            .with_context(|| format!("--token {t:?}: department=TOKEN expected"))?;
        tokens.insert(dept.to_owned(), token.to_owned());
    }
    anyhow::ensure!(
        !tokens.is_empty(),
        "no tokens: pass --token department=TOKEN (repeated) or --token-secret"
    );
    let policy = Policy::load(&args.policy_file)
        .with_context(|| format!("policy file {}", args.policy_file.display()))?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let until = Until {
        duration: match (args.duration, args.commands) {
            (Some(d), _) => Some(Duration::from_secs_f64(d)),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs_f64(DURATION_DEFAULT_S)),
        },
        commands: args.commands,
    };
    let sink = Arc::new(HttpSink::new(
        args.urls.clone(),
        tokens,
        policy,
        args.rate,
        Duration::from_secs_f64(args.retry_for),
        false,
    )?);
    eprintln!(
        "bench e2e: seed {seed}, {} clients, {}, against {}",
        args.clients,
        args.rate
            .map_or("flat out".to_owned(), |r| format!("{r} commands/s")),
        args.urls.join(", ")
    );
    let report = drive(sink, seed, args.clients, until).await?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["bench"] = Value::from("e2e");
        v["urls"] = Value::from(args.urls.clone());
        println!("{v}");
    } else {
        let r = &report;
        println!("{:<22}e2e", "bench");
        println!("{:<22}{}", "urls", args.urls.join(", "));
        println!("{:<22}{}", "seed", r.seed);
        println!("{:<22}{}", "clients", r.clients);
        println!(
            "{:<22}{} commands in {:.2} s",
            "setup", r.setup_commands, r.setup_seconds
        );
        println!("{:<22}{}", "persons", r.persons);
        println!("{:<22}{}", "commands", r.commands);
        println!("{:<22}{:.2}", "seconds", r.seconds);
        println!("{:<22}{:.0}", "commands_per_s", r.commands_per_s);
        println!(
            "{:<22}{:.0} ({} commands in {:.2} s)",
            "lives_commands_per_s", r.lives_commands_per_s, r.lives_commands, r.lives_seconds
        );
        println!("{:<22}{}", "cohort_commands", r.cohort_commands);
        println!("{:<22}{}", "accepted", r.accepted);
        println!("{:<22}{}", "rejected", r.rejected);
        println!("{:<22}{}", "retryable_errors", r.retryable_errors);
        println!("{:<22}{}", "failed", r.failed);
        println!("{:<22}{}", "requests", r.requests);
        println!("{:<22}{:.2}", "p50_ms", r.p50_ms);
        println!("{:<22}{:.2}", "p99_ms", r.p99_ms);
        println!("{:<22}{:.2}", "p999_ms", r.p999_ms);
        println!("{:<22}{:.2}", "max_ms", r.max_ms);
        for (k, v) in &r.by_command {
            println!("  {k:<44}{v}");
        }
        for f in &r.failures {
            println!("failure: {f}");
        }
    }
    anyhow::ensure!(
        report.failed == 0,
        "{} commands failed (see failures)",
        report.failed
    );
    Ok(())
}

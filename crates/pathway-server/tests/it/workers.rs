//! The workers `pathway serve` runs beside the API, against real PostgreSQL
//! and a real `nats-server` each test starts on a free port: the workflows
//! fire a due phase-out timer, the relay publishes the log to NATS, two
//! instances elect one relay leader and one sweeper leader and fail over,
//! `/metrics` and `/readyz` report the workers, the tail verification counts
//! a tampered record, and a graceful shutdown leaves the read models at the
//! head. Every wait polls with a deadline.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use pathway_bus::async_nats::{self, jetstream};
use pathway_bus::subjects::Department;
use pathway_projections::{models, runtime::ReadStore};
use pathway_server::{Application, Settings, StoreLocation, settings::Secret};

use crate::helpers::MASTER_KEY;
use pathway_store::{EventStore, ReadFilter, postgres::PostgresStore};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::helpers::{SECRET, TestDb, token};
use pathway_testkit::nats::NatsServer;

/// Longest any wait of these tests lasts.
const WAIT_TIMEOUT_MS: u64 = 60_000;
/// Per-stream bound: small, so the server accepts seven streams on any disk.
const TEST_STREAM_MAX_BYTES: i64 = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Applications

struct Running {
    base: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), pathway_server::ServerError>>,
}

fn settings(db: &TestDb, nats: Option<&NatsServer>) -> Settings {
    let mut s = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        store: StoreLocation::Postgres {
            url: Secret::new(db.url().to_owned()),
        },
        token_secret: Some(Secret::new(SECRET)),
        master_key: Some(Secret::new(MASTER_KEY)),
        policy_file: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/policy/authorization.toml"),
        ready_lag_positions_max: 0,
        ..Settings::default()
    };
    s.nats.url = nats.map(NatsServer::url);
    s.nats.stream_max_bytes = TEST_STREAM_MAX_BYTES;
    s.workers.sweep_interval_ms = 100;
    s.workers.chain_verify_interval_ms = 200;
    s.workers.drain_timeout_ms = 10_000;
    s
}

async fn start(settings: Settings) -> Running {
    let app = Application::build(settings).await.expect("builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        stopped.await.ok();
    }));
    Running {
        base,
        client: reqwest::Client::new(),
        stop: Some(stop),
        handle,
    }
}

impl Running {
    async fn post(&self, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/commands", self.base))
            .bearer_auth(token("civil_affairs", None))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// The value of one sample of `/metrics` (`name` with its labels, as printed).
    async fn metric(&self, name: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics").await;
        sample(&text, name)
    }

    async fn shut_down(mut self) {
        self.stop.take().expect("running").send(()).ok();
        self.handle
            .await
            .expect("server task")
            .expect("stopped cleanly");
    }
}

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

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

// ---------------------------------------------------------------------------
// Commands: a dibao household whose phase-out ended in the past

fn household_commands(household: &str, member: Uuid) -> Vec<Value> {
    vec![
        json!({
            "command_id": Uuid::new_v4(), "department": "civil_affairs", "region": "230102",
            "actor": "ca-officer-9", "at": "2023-01-05T10:00:00+08:00",
            "command": {"aggregate": "household", "type": "assert_low_income_status",
                "household_ref": household, "members": [member], "status": "dibao",
                "effective_on": "2023-01-01", "asserted_by": "230102-civil-affairs"}
        }),
        // Income above the standard, within the margin: a phase-out starts,
        // planned to end long before today, so its deadline is due at once.
        json!({
            "command_id": Uuid::new_v4(), "department": "civil_affairs", "region": "230102",
            "actor": "ca-officer-9", "at": "2023-08-20T10:00:00+08:00",
            "command": {"aggregate": "household", "type": "reassess_income",
                "household_ref": household, "per_capita_income_fen": 82000,
                "dibao_standard_fen": 72000, "meets_edge_criteria": true,
                "assessed_by": "230102-civil-affairs", "assessed_on": "2023-08-20",
                "phase_out_id": format!("po-{household}"), "benefit_mode": "tapered"}
        }),
    ]
}

async fn events_of(store: &PostgresStore, event_type: &str) -> Vec<pathway_store::RecordedEvent> {
    let filter = ReadFilter {
        event_types: vec![event_type.to_owned()],
        categories: Vec::new(),
    };
    store.read_all(1, 10_000, &filter).await.expect("read")
}

/// Event ids and positions in the auditors' stream (every event goes
/// there); empty while the stream is not there yet.
async fn audit_stream(js: &jetstream::Context) -> Vec<(String, u64)> {
    pathway_bus::relay::published(js, Department::Audit)
        .await
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_fires_a_due_timer_relays_the_log_reports_metrics_and_stops_at_the_head() {
    let nats = NatsServer::start();
    let db = TestDb::create();
    let app = start(settings(&db, Some(&nats))).await;
    let store = PostgresStore::connect(db.url()).await.expect("store");

    let mut accepted = 0;
    for command in household_commands("hh-230102-00001", Uuid::new_v4()) {
        let (status, body) = app.post(&command).await;
        assert_eq!(status, 200, "{body}");
        accepted += 1;
    }
    // One rejection: a reassessment of a household nobody asserted.
    let mut unknown = household_commands("hh-230102-00002", Uuid::new_v4()).remove(1);
    unknown["command"]["per_capita_income_fen"] = json!(-1);
    let (status, body) = app.post(&unknown).await;
    assert_eq!(status, 400, "{body}");
    let refused = if body["error"] == "rejected" {
        "rejected"
    } else {
        "malformed"
    };

    // The saga scheduled the deadline, the sweeper fired it, the saga
    // completed the phase-out: all read back from the log.
    let phased_out = wait_for("the phase-out to complete", || async {
        let done = events_of(&store, "BenefitPhasedOut").await;
        (!done.is_empty()).then_some(done)
    })
    .await;
    assert_eq!(phased_out.len(), 1);
    let fired = events_of(&store, "SagaTimerFired").await;
    assert_eq!(fired.len(), 1, "the deadline fired once");
    assert!(fired[0].stream_id.starts_with("saga-phaseout-"));

    // Every event of the log reached the auditors' NATS stream, once, by id.
    let js = jetstream::new(
        async_nats::connect(nats.url())
            .await
            .expect("connect to NATS"),
    );
    let head = store.head().await.expect("head").position;
    let published = wait_for("the relay to publish up to the head", || async {
        let published = audit_stream(&js).await;
        published
            .last()
            .is_some_and(|(_, p)| *p >= head)
            .then_some(published)
    })
    .await;
    let in_log: Vec<String> = store
        .read_all(1, 10_000, &ReadFilter::all())
        .await
        .expect("read")
        .into_iter()
        .filter(|r| r.position <= head)
        .map(|r| r.event_id.to_string())
        .collect();
    let in_stream: Vec<String> = published
        .iter()
        .filter(|(_, p)| *p <= head)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(in_stream, in_log, "every event once, in log order");
    for r in [&phased_out[0], &fired[0]] {
        assert!(in_stream.contains(&r.event_id.to_string()));
    }

    // Metrics.
    let (_, text) = app.get("/metrics").await;
    assert_eq!(
        sample(&text, "pathway_commands_total{outcome=\"accepted\"}"),
        Some(f64::from(accepted)),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("pathway_commands_total{{outcome=\"{refused}\"}}")
        ),
        Some(1.0)
    );
    assert!(
        text.contains("pathway_command_append_seconds_bucket"),
        "{text}"
    );
    for model in models::all() {
        let name = model.name();
        assert!(
            text.contains(&format!(
                "pathway_projector_lag_positions{{model=\"{name}\"}}"
            )),
            "{name}: {text}"
        );
    }
    wait_for("leadership and timer metrics", || async {
        let (_, text) = app.get("/metrics").await;
        let ok = sample(&text, "pathway_relay_leader") == Some(1.0)
            && sample(&text, "pathway_saga_sweeper_leader") == Some(1.0)
            && sample(&text, "pathway_saga_timers_fired_total") == Some(1.0)
            && sample(&text, "pathway_saga_timers_pending") == Some(0.0)
            && sample(&text, "pathway_saga_timers_overdue") == Some(0.0)
            && sample(&text, "pathway_relay_lag_positions").is_some_and(|lag| lag <= 3.0)
            && sample(&text, "pathway_chain_verified_position").is_some_and(|p| p >= 1.0)
            && sample(&text, "pathway_chain_verification_failures_total") == Some(0.0)
            && sample(&text, "pathway_worker_up{worker=\"relay\"}") == Some(1.0);
        ok.then_some(())
    })
    .await;

    // Readiness lists the workers.
    let (status, body) = wait_for("ready", || async {
        let (status, body) = app.get("/readyz").await;
        (status == 200).then_some((status, body))
    })
    .await;
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(status, 200);
    assert_eq!(body["workers"]["relay"], "running", "{body}");
    assert_eq!(body["workers"]["sagas"], "running", "{body}");
    assert_eq!(body["workers"]["projectors"], "running", "{body}");

    // A graceful shutdown leaves every read model at the head.
    app.shut_down().await;
    let head = store.head().await.expect("head").position;
    let target = ReadStore::Postgres {
        url: db.url().to_owned(),
    };
    for model in models::all() {
        let name = model.name();
        let target = target.clone();
        let checkpoint = tokio::task::spawn_blocking(move || {
            pathway_projections::runtime::read_checkpoint(&target, name)
        })
        .await
        .expect("task")
        .expect("checkpoint");
        assert_eq!(checkpoint, head, "model {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_elect_one_relay_and_one_sweeper_leader_and_the_other_takes_over() {
    let nats = NatsServer::start();
    let db = TestDb::create();
    let mut s = settings(&db, Some(&nats));
    s.projectors = false;
    s.workers.chain_verify_interval_ms = 0;
    let a = start(s.clone()).await;
    let leads = |app: &Running| {
        let app = app.base.clone();
        async move {
            let text = reqwest::get(format!("{app}/metrics"))
                .await
                .expect("metrics")
                .text()
                .await
                .expect("body");
            (
                sample(&text, "pathway_relay_leader") == Some(1.0),
                sample(&text, "pathway_saga_sweeper_leader") == Some(1.0),
            )
        }
    };
    wait_for("the first instance to lead both", || async {
        (leads(&a).await == (true, true)).then_some(())
    })
    .await;
    let b = start(s).await;
    wait_for("the second instance to stand by", || async {
        let (_, body) = b.get("/readyz").await;
        let body: Value = serde_json::from_str(&body).ok()?;
        (body["workers"]["relay"] == "standby" && body["workers"]["sagas"] == "standby")
            .then_some(())
    })
    .await;
    assert_eq!(leads(&a).await, (true, true), "exactly one leader of each");
    assert_eq!(
        leads(&b).await,
        (false, false),
        "exactly one leader of each"
    );

    // Work goes on through the standby's API while the first leads.
    for command in household_commands("hh-230102-00003", Uuid::new_v4()) {
        let (status, body) = b.post(&command).await;
        assert_eq!(status, 200, "{body}");
    }
    let store = PostgresStore::connect(db.url()).await.expect("store");
    wait_for("the phase-out to complete", || async {
        (!events_of(&store, "BenefitPhasedOut").await.is_empty()).then_some(())
    })
    .await;

    // The leader stops: the other takes both over within seconds.
    a.shut_down().await;
    let took_over = Instant::now();
    wait_for("the second instance to take over", || async {
        (leads(&b).await == (true, true)).then_some(())
    })
    .await;
    assert!(
        took_over.elapsed() < Duration::from_secs(10),
        "took over in {:?}",
        took_over.elapsed()
    );
    // And it works as the leader: a new timer fires, its events are relayed.
    for command in household_commands("hh-230102-00004", Uuid::new_v4()) {
        let (status, body) = b.post(&command).await;
        assert_eq!(status, 200, "{body}");
    }
    wait_for("the second phase-out to complete", || async {
        (events_of(&store, "BenefitPhasedOut").await.len() == 2).then_some(())
    })
    .await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("connect"));
    let head = store.head().await.expect("head").position;
    wait_for("the new leader to relay up to the head", || async {
        audit_stream(&js)
            .await
            .last()
            .is_some_and(|(_, p)| *p >= head)
            .then_some(())
    })
    .await;
    let ids: BTreeSet<String> = audit_stream(&js)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let log = store
        .read_all(1, 10_000, &ReadFilter::all())
        .await
        .expect("read");
    assert!(
        log.iter()
            .filter(|r| r.position <= head)
            .all(|r| ids.contains(&r.event_id.to_string())),
        "every event published across the failover"
    );
    b.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_nats_url_the_relay_is_off_and_the_embedded_store_runs_the_workflows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        store: StoreLocation::Embedded {
            data_dir: dir.path().join("data"),
        },
        token_secret: Some(Secret::new(SECRET)),
        master_key: Some(Secret::new(MASTER_KEY)),
        policy_file: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/policy/authorization.toml"),
        ready_lag_positions_max: 0,
        ..Settings::default()
    };
    s.workers.sweep_interval_ms = 100;
    let app = start(s).await;
    for command in household_commands("hh-230102-00005", Uuid::new_v4()) {
        let (status, body) = app.post(&command).await;
        assert_eq!(status, 200, "{body}");
    }
    wait_for("the timer to fire in-process", || async {
        (app.metric("pathway_saga_timers_fired_total").await == Some(1.0)).then_some(())
    })
    .await;
    let (status, body) = wait_for("ready", || async {
        let (status, body) = app.get("/readyz").await;
        (status == 200).then_some((status, body))
    })
    .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        body["workers"]["relay"], "off: no NATS URL configured",
        "{body}"
    );
    assert_eq!(body["workers"]["sagas"], "running", "{body}");
    assert_eq!(app.metric("pathway_relay_leader").await, Some(0.0));
    app.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_verification_counts_a_tampered_record() {
    let db = TestDb::create();
    let mut s = settings(&db, None);
    s.projectors = false;
    s.sagas = false;
    let app = start(s.clone()).await;
    for command in household_commands("hh-230102-00006", Uuid::new_v4()) {
        let (status, body) = app.post(&command).await;
        assert_eq!(status, 200, "{body}");
    }
    let store = PostgresStore::connect(db.url()).await.expect("store");
    let head = store.head().await.expect("head").position;
    assert!(head >= 2);
    wait_for("the tail to be verified", || async {
        (app.metric("pathway_chain_verified_position").await == Some(head as f64)).then_some(())
    })
    .await;
    assert_eq!(
        app.metric("pathway_chain_verification_failures_total")
            .await,
        Some(0.0)
    );
    app.shut_down().await;

    let client = pathway_testkit::connect(db.url()).await;
    client
        .execute(
            "UPDATE events SET payload = '\\xdeadbeef' WHERE position = 2",
            &[],
        )
        .await
        .expect("tamper");
    // A new instance verifies the tail it finds at start.
    let app = start(s).await;
    wait_for("the failure to be counted", || async {
        (app.metric("pathway_chain_verification_failures_total")
            .await
            == Some(1.0))
        .then_some(())
    })
    .await;
    app.shut_down().await;
}

/// The projectors start with one shared catch-up of every model. A model
/// stored by another build (other columns) fails in it alone: the others
/// still reach the head and follow new events, and serve reports the one
/// that needs a rebuild; once its old tables are gone it rejoins and is
/// built from position 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_model_fails_alone_while_the_others_follow_and_recovers_once_its_tables_are_gone()
{
    let db = TestDb::create();
    let mut s = settings(&db, None);
    s.sagas = false;
    s.projectors = false;
    // A log to catch up with, written before any projector runs.
    let app = start(s.clone()).await;
    for command in household_commands("hh-230102-00007", Uuid::new_v4()) {
        let (status, body) = app.post(&command).await;
        assert_eq!(status, 200, "{body}");
    }
    app.shut_down().await;
    let head = PostgresStore::connect(db.url())
        .await
        .expect("store")
        .head()
        .await
        .expect("head")
        .position;
    assert!(head >= 2);
    pathway_testkit::connect(db.url())
        .await
        .batch_execute(
            "CREATE SCHEMA sasac; \
             CREATE TABLE sasac.employers (employer_ref text PRIMARY KEY, size integer)",
        )
        .await
        .expect("an older build's sasac model");

    s.projectors = true;
    let app = start(s).await;
    let others = ["dpf", "hrss", "civil_affairs", "education", "committee"];
    wait_for("the other models to reach the head", || async {
        let (_, text) = app.get("/metrics").await;
        others
            .iter()
            .all(|model| {
                sample(
                    &text,
                    &format!("pathway_projector_lag_positions{{model=\"{model}\"}}"),
                ) == Some(0.0)
            })
            .then_some(())
    })
    .await;
    let body = wait_for(
        "the changed model's failure in the health report",
        || async {
            let (status, body) = app.get("/readyz").await;
            let body: Value = serde_json::from_str(&body).expect("json");
            let projectors = body["workers"]["projectors"].as_str()?.to_owned();
            (status == 503 && projectors.starts_with("failed: sasac")).then_some(projectors)
        },
    )
    .await;
    assert!(body.contains("rebuild the model"), "{body}");

    // The others go on following the log together without it.
    for command in household_commands("hh-230102-00008", Uuid::new_v4()) {
        let (status, body) = app.post(&command).await;
        assert_eq!(status, 200, "{body}");
    }
    let store = PostgresStore::connect(db.url()).await.expect("store");
    let new_head = store.head().await.expect("head").position;
    assert!(new_head > head);
    let client = pathway_testkit::connect(db.url()).await;
    wait_for("the other models to follow the new events", || async {
        for model in others {
            let row = client
                .query_one(&format!("SELECT position FROM {model}.checkpoint"), &[])
                .await
                .ok()?;
            if row.get::<_, i64>(0) as u64 != new_head {
                return None;
            }
        }
        Some(())
    })
    .await;
    let (_, text) = app.get("/metrics").await;
    assert_eq!(
        sample(&text, "pathway_projector_lag_positions{model=\"sasac\"}"),
        Some(new_head as f64),
        "the changed model is left as it was"
    );

    // Once its old tables are gone the model recovers by itself: it is
    // built from position 1 and follows with the others.
    client
        .batch_execute("DROP SCHEMA sasac CASCADE")
        .await
        .expect("drop the older build's model");
    wait_for("the recovered model at the head", || async {
        let row = client
            .query_one("SELECT position FROM sasac.checkpoint", &[])
            .await
            .ok()?;
        (row.get::<_, i64>(0) as u64 == new_head).then_some(())
    })
    .await;
    wait_for("the projectors reported running again", || async {
        let (status, body) = app.get("/readyz").await;
        let body: Value = serde_json::from_str(&body).expect("json");
        (status == 200 && body["workers"]["projectors"] == "running").then_some(())
    })
    .await;
    app.shut_down().await;
}

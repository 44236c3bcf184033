//! Renders every console page over demo-size data and reports latency
//! percentiles per page (the whole request: cookie check, policy, read-model
//! query, template, charts).
//!
//! ```text
//! cargo run --release -p pathway-console --example render_bench [-- PERSONS [REQUESTS [PAGE]]]
//! ```
//!
//! PAGE, if given, measures only the pages whose name contains it.
//!
//! Defaults: the demo's 3,000 persons (seed 2022) and 200 requests per page
//! (50 for the auditor's timeline, which scans the whole log per request).
//! The target is p99 < 200 ms per page (docs/benchmarks.md).

use std::{path::PathBuf, sync::Arc, time::Instant};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use chrono::{NaiveDate, Utc};
use pathway_console::{ConsoleContext, ConsoleOptions, SESSION_COOKIE};
use pathway_engine::Engine;
use pathway_projections::{models, runtime, runtime::ReadStore};
use pathway_server::{
    policy::Policy,
    settings::Secret,
    token::{self, Claims, Revocations},
};
use pathway_sim::SimConfig;
use pathway_store::embedded::EmbeddedStore;
use tower::ServiceExt as _;

const SECRET: &str = "bench-console-secret-0123456789abcdef";

fn cookie(dept: &str, city: Option<&str>) -> String {
    let now = Utc::now().timestamp();
    let bearer = token::issue(
        &Secret::new(SECRET),
        &Claims {
            sub: "bench".into(),
            dept: dept.into(),
            city: city.map(str::to_owned),
            iat: now,
            exp: now + 3_600,
            jti: "bench".into(),
        },
    );
    format!("{SESSION_COOKIE}={bearer}")
}

async fn get(app: &Router, path: &str, cookie: &str) -> (StatusCode, usize) {
    let response = app
        .clone()
        .oneshot(
            Request::get(path)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, body.len())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let persons: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(pathway_sim::PERSONS_DEFAULT);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let only = args.next();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("store");
    let started = Instant::now();
    pathway_sim::run(
        &Engine::unsealed(store.clone()),
        &SimConfig {
            persons,
            seed: 2022,
            concurrency: pathway_sim::CONCURRENCY_DEFAULT,
        },
        |_, _| {},
    )
    .await
    .expect("simulate");
    let key = pathway_audit::checkpoint::generate_key().expect("key");
    pathway_audit::checkpoint::checkpoint(&store, &key, Utc::now())
        .await
        .expect("checkpoint");
    let read_store = ReadStore::Sqlite {
        dir: dir.path().join("models"),
    };
    runtime::catch_up_many(&store, &read_store, &models::all())
        .await
        .expect("read models");
    let head = pathway_store::EventStore::head(&store)
        .await
        .expect("head")
        .position;
    println!(
        "demo data: {persons} persons, {head} events, seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let policy = Policy::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/policy/authorization.toml"),
    )
    .expect("policy");
    let ctx = ConsoleContext::new(
        store.clone(),
        read_store.clone(),
        Arc::new(policy),
        Secret::new(SECRET),
        Arc::new(Revocations::new(&[], None)),
    )
    .with_options(ConsoleOptions {
        secure_cookies: false,
        today: NaiveDate::from_ymd_opt(2024, 12, 31),
        trusted_checkpoint_key: Some(key.verifying_key()),
        ..ConsoleOptions::default()
    });
    let app = Router::new().nest("/console", pathway_console::router(ctx));

    let person = runtime::query(
        &read_store,
        "dpf",
        models::by_name("dpf")
            .expect("dpf")
            .tables()
            .iter()
            .find(|t| t.name == "persons")
            .expect("persons"),
        &[(
            "city",
            pathway_projections::Value::Text("230100".to_owned()),
        )],
    )
    .expect("persons")
    .into_iter()
    .next()
    .and_then(|r| match &r[0] {
        pathway_projections::Value::Text(s) => Some(s.clone()),
        _ => None,
    })
    .expect("a Harbin resident");

    let committee = cookie("committee", None);
    let harbin = cookie("dpf", Some("230100"));
    let province_dpf = cookie("dpf", None);
    let civil = cookie("civil_affairs", None);
    let education = cookie("education", None);
    let auditor = cookie("auditor", None);
    let pages: Vec<(&str, String, &str, usize)> = vec![
        ("sign-in", "/console/sign-in".into(), "", requests),
        (
            "dashboard",
            "/console/dashboard".into(),
            &committee,
            requests,
        ),
        (
            "dashboard, one year, English",
            "/console/dashboard?year=2023&lang=en".into(),
            &committee,
            requests,
        ),
        (
            "case list, city DPF",
            "/console/cases".into(),
            &harbin,
            requests,
        ),
        (
            "case list, province DPF, page 20",
            "/console/cases?page=20".into(),
            &province_dpf,
            requests,
        ),
        (
            "case list, search",
            format!("/console/cases?q={}", &person[..4]),
            &harbin,
            requests,
        ),
        (
            "case page",
            format!("/console/cases/{person}"),
            &harbin,
            requests,
        ),
        (
            "phase-out calendar",
            "/console/phase-outs".into(),
            &civil,
            requests,
        ),
        (
            "graduate outcomes",
            "/console/graduates".into(),
            &education,
            requests,
        ),
        (
            "log verification",
            "/console/audit/verification".into(),
            &auditor,
            requests,
        ),
        (
            "person timeline",
            format!("/console/audit/timeline?person={person}"),
            &auditor,
            (requests / 4).max(10),
        ),
    ];
    println!(
        "{:<36} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "page", "n", "KiB", "p50 ms", "p99 ms", "max ms"
    );
    let mut worst: f64 = 0.0;
    for (name, path, cookie, n) in pages
        .iter()
        .filter(|(name, ..)| only.as_deref().is_none_or(|o| name.contains(o)))
    {
        // One warm-up request (the verification page verifies the whole
        // chain on its first visit; that cold figure is printed apart).
        let cold = Instant::now();
        let (status, bytes) = get(&app, path, cookie).await;
        let cold_ms = cold.elapsed().as_secs_f64() * 1e3;
        assert_eq!(status, StatusCode::OK, "{name}: {path}");
        let mut times = Vec::with_capacity(*n);
        for _ in 0..*n {
            let t = Instant::now();
            let (status, _) = get(&app, path, cookie).await;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(status, StatusCode::OK);
        }
        times.sort_by(f64::total_cmp);
        let p99 = percentile(&times, 0.99);
        worst = worst.max(p99);
        println!(
            "{:<36} {:>6} {:>9.1} {:>9.2} {:>9.2} {:>9.2}   (first request {:.1} ms)",
            name,
            n,
            bytes as f64 / 1024.0,
            percentile(&times, 0.5),
            p99,
            times.last().copied().unwrap_or(0.0),
            cold_ms
        );
    }
    println!(
        "worst p99 {worst:.2} ms (target < 200 ms): {}",
        if worst < 200.0 { "met" } else { "NOT met" }
    );
}

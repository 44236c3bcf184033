//! A seeded province and a console over it.

use std::{path::PathBuf, sync::Arc};

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use chrono::{NaiveDate, Utc};
use pathway_console::{ConsoleContext, ConsoleOptions, Locale};
use pathway_engine::Engine;
use pathway_projections::{Value, models, runtime, runtime::ReadStore};
use pathway_server::{
    policy::Policy,
    settings::Secret,
    token::{self, Claims, Revocations},
};
use pathway_sim::SimConfig;
use pathway_store::embedded::EmbeddedStore;
use tower::ServiceExt as _;

pub(crate) const SECRET: &str = "console-test-secret-0123456789abcdef";
/// The console's "today" in the tests: the end of the plan, as the demo.
pub(crate) const TODAY: (i32, u32, u32) = (2024, 12, 31);

/// A simulated province, its read models caught up and one signed checkpoint.
pub(crate) struct Province {
    _dir: tempfile::TempDir,
    pub(crate) store: EmbeddedStore,
    pub(crate) read_store: ReadStore,
    pub(crate) key: pathway_audit::checkpoint::CheckpointKey,
}

pub(crate) async fn province(persons: usize) -> Province {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("store");
    let cfg = SimConfig {
        persons,
        seed: 2022,
        concurrency: 8,
    };
    pathway_sim::run(&Engine::unsealed(store.clone()), &cfg, |_, _| {})
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
    Province {
        _dir: dir,
        store,
        read_store,
        key,
    }
}

pub(crate) fn policy() -> Policy {
    Policy::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/policy/authorization.toml"),
    )
    .expect("policy")
}

impl Province {
    /// The console mounted under `/console`, as `pathway serve` mounts it.
    pub(crate) fn app(&self) -> Router {
        let ctx = ConsoleContext::new(
            self.store.clone(),
            self.read_store.clone(),
            Arc::new(policy()),
            Secret::new(SECRET),
            Arc::new(Revocations::new(&["revoked-jti".to_owned()], None)),
        )
        .with_options(ConsoleOptions {
            secure_cookies: false,
            today: NaiveDate::from_ymd_opt(TODAY.0, TODAY.1, TODAY.2),
            trusted_checkpoint_key: Some(self.key.verifying_key()),
            ..ConsoleOptions::default()
        });
        Router::new().nest("/console", pathway_console::router(ctx))
    }

    /// Rows of a read model, unsuppressed, as stored.
    pub(crate) fn rows(
        &self,
        model: &str,
        table: &str,
        filters: &[(&str, Value)],
    ) -> Vec<Vec<Value>> {
        let t = *models::by_name(model)
            .expect("model")
            .tables()
            .iter()
            .find(|t| t.name == table)
            .expect("table");
        runtime::query(&self.read_store, model, &t, filters).expect("query")
    }
}

/// A token for a department (and city office).
pub(crate) fn token(dept: &str, city: Option<&str>) -> String {
    token_with(dept, city, "jti-ok", 3_600)
}

pub(crate) fn token_with(dept: &str, city: Option<&str>, jti: &str, ttl: i64) -> String {
    let now = Utc::now().timestamp();
    token::issue(
        &Secret::new(SECRET),
        &Claims {
            sub: format!("{dept}-tester"),
            dept: dept.to_owned(),
            city: city.map(str::to_owned),
            iat: now - 10,
            exp: now + ttl,
            jti: jti.to_owned(),
        },
    )
}

/// A response: status, headers, body text.
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The `name=value` part of the Set-Cookie for `name`.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

pub(crate) async fn send(app: &Router, request: Request<Body>) -> Page {
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    Page {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("utf-8"),
    }
}

/// GET with the session cookie of `session` (a `name=value` pair), if any.
pub(crate) async fn get(app: &Router, path: &str, session: Option<&str>) -> Page {
    let mut request = Request::get(path);
    if let Some(cookie) = session {
        request = request.header(header::COOKIE, cookie);
    }
    send(app, request.body(Body::empty()).expect("request")).await
}

/// Signs in with `bearer` and returns the response.
pub(crate) async fn sign_in_response(app: &Router, bearer: &str) -> Page {
    let body = format!("token={}&lang=zh", bearer);
    send(
        app,
        Request::post("/console/sign-in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request"),
    )
    .await
}

/// Signs in and returns the session cookie pair (`name=value`).
pub(crate) async fn sign_in(app: &Router, bearer: &str) -> String {
    let page = sign_in_response(app, bearer).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let cookie = page
        .cookie(pathway_console::SESSION_COOKIE)
        .expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    cookie.split(';').next().expect("pair").to_owned()
}

/// Every catalog message must be found: a missing key renders as ⟦key⟧.
pub(crate) fn assert_no_missing_labels(page: &Page) {
    assert!(
        !page.body.contains('⟦'),
        "a label is missing from a catalog: {}",
        page.body
            .split('⟦')
            .nth(1)
            .and_then(|s| s.split('⟧').next())
            .unwrap_or("")
    );
}

/// The number as pages show it.
pub(crate) fn n(v: i64) -> String {
    Locale::ZhCn.number(v)
}

pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
    }
}

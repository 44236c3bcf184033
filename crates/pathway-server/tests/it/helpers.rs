//! Spawning the application and building requests.

use std::{path::PathBuf, time::Duration};

use pathway_server::{
    Application, Settings, StoreLocation,
    settings::Secret,
    token::{self, Claims},
};
use serde_json::{Value, json};
use uuid::Uuid;

pub(crate) const SECRET: &str = "test-signing-secret-0123456789abcdef";
/// The master key of personal-data keys in tests (base64 of 32 bytes of 7).
pub(crate) const MASTER_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
/// The purpose the helpers state on reads.
pub(crate) const PURPOSE: &str = "case review";
/// Longest a test waits for the read models to catch up.
const READY_TIMEOUT_MS: u64 = 20_000;

pub(crate) use pathway_testkit::TestDb;

/// A running application and what it runs on.
pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), pathway_server::ServerError>>>,
    db: Option<TestDb>,
    _dir: Option<tempfile::TempDir>,
    pub(crate) scratch: tempfile::TempDir,
}

fn base_settings(store: StoreLocation) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        store,
        token_secret: Some(Secret::new(SECRET)),
        master_key: Some(Secret::new(MASTER_KEY)),
        policy_file: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/policy/authorization.toml"),
        ready_lag_positions_max: 0,
        ..Settings::default()
    }
}

/// The application on a fresh PostgreSQL database, settings adjusted by `tweak`.
pub(crate) async fn spawn_pg(tweak: impl FnOnce(&mut Settings, &std::path::Path)) -> TestApp {
    let db = TestDb::create();
    let mut settings = base_settings(StoreLocation::Postgres {
        url: Secret::new(db.url().to_owned()),
    });
    spawn(settings_with(&mut settings, tweak), Some(db), None).await
}

/// The application on an embedded store in a temporary directory.
pub(crate) async fn spawn_embedded(tweak: impl FnOnce(&mut Settings, &std::path::Path)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = base_settings(StoreLocation::Embedded {
        data_dir: dir.path().join("data"),
    });
    spawn(settings_with(&mut settings, tweak), None, Some(dir)).await
}

fn settings_with(
    settings: &mut Settings,
    tweak: impl FnOnce(&mut Settings, &std::path::Path),
) -> (Settings, tempfile::TempDir) {
    let scratch = tempfile::tempdir().expect("tempdir");
    tweak(settings, scratch.path());
    (settings.clone(), scratch)
}

async fn spawn(
    (settings, scratch): (Settings, tempfile::TempDir),
    db: Option<TestDb>,
    dir: Option<tempfile::TempDir>,
) -> TestApp {
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        stopped.await.ok();
    }));
    TestApp {
        base,
        client: reqwest::Client::new(),
        stop: Some(stop),
        handle: Some(handle),
        db,
        _dir: dir,
        scratch,
    }
}

impl TestApp {
    pub(crate) async fn post(&self, token: &str, body: &Value) -> (u16, Value) {
        self.post_raw(token, body.to_string()).await
    }

    pub(crate) async fn post_raw(&self, token: &str, body: String) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/commands", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A GET stating [`PURPOSE`].
    pub(crate) async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        self.get_for(token, path, Some(PURPOSE)).await
    }

    /// A GET stating `purpose`, if any.
    pub(crate) async fn get_for(
        &self,
        token: &str,
        path: &str,
        purpose: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(purpose) = purpose {
            request = request.header("x-pathway-purpose", purpose);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// A gRPC client on the same port as HTTP.
    pub(crate) async fn grpc(
        &self,
    ) -> pathway_proto::api::v1::pathway_client::PathwayClient<tonic::transport::Channel> {
        let channel = tonic::transport::Endpoint::from_shared(self.base.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("gRPC connects");
        pathway_proto::api::v1::pathway_client::PathwayClient::new(channel)
    }

    /// The URL of the application's PostgreSQL database.
    pub(crate) fn database_url(&self) -> &str {
        self.db.as_ref().expect("a PostgreSQL application").url()
    }

    /// The PostgreSQL store under the application.
    pub(crate) async fn store(&self) -> pathway_store::postgres::PostgresStore {
        let db = self.db.as_ref().expect("a PostgreSQL application");
        pathway_store::postgres::PostgresStore::connect(db.url())
            .await
            .expect("store")
    }

    /// Waits until `/readyz` says every read model is caught up.
    pub(crate) async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        loop {
            let (status, body) = self.get_text("/readyz").await;
            if status == 200 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "read models not caught up in {READY_TIMEOUT_MS} ms: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server as SIGTERM would and waits for it to finish.
    pub(crate) async fn shut_down(mut self) -> Result<(), pathway_server::ServerError> {
        self.stop.take().expect("running").send(()).ok();
        self.handle
            .take()
            .expect("running")
            .await
            .expect("server task")
    }
}

/// A gRPC request with `token` and, if any, `purpose` in its metadata.
pub(crate) fn grpc_request<T>(token: &str, purpose: Option<&str>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(v) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", v);
    }
    if let Some(p) = purpose
        && let Ok(v) = p.parse()
    {
        request.metadata_mut().insert("x-pathway-purpose", v);
    }
    request
}

/// A gRPC `Command` of a JSON envelope.
pub(crate) fn grpc_command(envelope: &Value) -> pathway_proto::api::v1::SubmitCommandRequest {
    use pathway_proto::api::v1::{Command, SubmitCommandRequest, submit_command_request::Request};
    SubmitCommandRequest {
        request: Some(Request::Command(Command {
            command_id: envelope["command_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            envelope_json: envelope.to_string(),
        })),
    }
}

/// A token for `dept` (and `city`) valid for an hour.
pub(crate) fn token(dept: &str, city: Option<&str>) -> String {
    let (t, _) = token_with_id(dept, city, 3_600);
    t
}

/// A token expiring `ttl_s` seconds from now (negative: already expired) and its id.
pub(crate) fn token_with_id(dept: &str, city: Option<&str>, ttl_s: i64) -> (String, String) {
    let now = chrono::Utc::now().timestamp();
    let jti = Uuid::new_v4().to_string();
    let claims = Claims {
        sub: format!("{dept}-tester"),
        dept: dept.to_owned(),
        city: city.map(str::to_owned),
        iat: now,
        exp: now + ttl_s,
        jti: jti.clone(),
    };
    (token::issue(&Secret::new(SECRET), &claims), jti)
}

/// A resident ID born 1990-04-12 in `county`, with its GB 11643 check digit.
pub(crate) fn resident_id(county: &str, serial: u32) -> String {
    let body = format!("{county}19900412{:03}", serial % 1000);
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

/// A `register_person` envelope.
pub(crate) fn register(
    command_id: Uuid,
    person_ref: Uuid,
    dept: &str,
    office: &str,
    residence: &str,
    serial: u32,
) -> Value {
    let id_hmac = format!("{:064x}", Uuid::new_v4().as_u128());
    json!({
        "command_id": command_id,
        "department": dept,
        "region": office,
        "actor": "worker-1",
        "at": "2023-03-01T10:00:00+08:00",
        "command": {
            "aggregate": "person",
            "type": "register_person",
            "person_ref": person_ref,
            "name": "王伟",
            "id_number": resident_id(residence, serial),
            "id_hmac": id_hmac,
            "phone": null,
            "address": null,
            "hukou_region": residence,
            "residence_region": residence,
            "registering_org": format!("{office}-dpf"),
        }
    })
}

/// A `verify_basic_info` envelope (one of the Four Ones) for a registered person.
pub(crate) fn verify_basic_info(person_ref: Uuid, office: &str) -> Value {
    json!({
        "command_id": Uuid::new_v4(),
        "department": "dpf",
        "region": office,
        "actor": "worker-1",
        "at": "2023-04-01T10:00:00+08:00",
        "command": {
            "aggregate": "person",
            "type": "verify_basic_info",
            "person_ref": person_ref,
            "year": 2023,
            "verified_by_org": format!("{office}-dpf"),
            "employment_status": "unemployed",
            "wants_work": true,
            "has_work_capacity": true,
            "non_work_reason": null,
            "verified_on": "2023-04-01",
        }
    })
}

//! The server's settings: one typed struct, layered defaults → optional TOML
//! file → overrides (the `PATHWAY_*` environment and command-line flags, which
//! the binary merges with clap before handing them here).
//!
//! Secrets (the token-signing secret, a database URL that may carry a
//! password) are held in [`Secret`], whose `Debug` prints `***`, so logging
//! the settings never leaks them.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::ServerError;

/// Default listen address: local only, so a bare start exposes nothing.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:8080";
/// Default policy file, relative to the working directory.
pub const POLICY_FILE_DEFAULT: &str = "deploy/policy/authorization.toml";
/// Default largest request body, in bytes (1 MiB, as a line of `pathway import`).
pub const REQUEST_BODY_BYTES_MAX_DEFAULT: usize = 1_048_576;
/// Default largest batch of commands in one request.
pub const COMMANDS_PER_BATCH_MAX_DEFAULT: usize = 100;
/// Default sustained requests per second per department (also the burst).
pub const REQUESTS_PER_SECOND_PER_DEPARTMENT_DEFAULT: u32 = 50;
/// Default time a request may take before it is answered 503.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default bound for `/readyz`: positions a read model may be behind.
pub const READY_LAG_POSITIONS_MAX_DEFAULT: u64 = 1_000;
/// Default time a shutdown may take to drain in-flight requests, and again
/// to stop the workers (projectors, workflows, relay), in milliseconds.
pub const DRAIN_TIMEOUT_MS_DEFAULT: u64 = 20_000;
/// Default pause between two sweeps of the timer sweeper, in milliseconds.
pub const SWEEP_INTERVAL_MS_DEFAULT: u64 = pathway_saga::workflows::SWEEP_INTERVAL_MS_DEFAULT;
/// Default age past its due time at which a pending saga timer counts as overdue.
pub const TIMER_OVERDUE_AFTER_MS_DEFAULT: u64 =
    pathway_saga::workflows::TIMER_OVERDUE_AFTER_MS_DEFAULT;
/// Default pause between two tail verifications of the hash chain, in
/// milliseconds (0 turns the verification off).
pub const CHAIN_VERIFY_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// Default most positions one tail verification checks.
pub const CHAIN_VERIFY_BATCH_EVENTS_MAX_DEFAULT: u64 = 100_000;
/// Default name of the relay's checkpoint.
pub const RELAY_NAME_DEFAULT: &str = "default";
/// Shortest token-signing secret accepted, in bytes.
pub const TOKEN_SECRET_BYTES_MIN: usize = 32;

/// A value that must never be logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the event log (and the read models beside it) lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// PostgreSQL; the read models are department schemas of the same database.
    Postgres { url: Secret },
    /// The embedded store under a data directory; read models in `<dir>/models/`.
    Embedded { data_dir: PathBuf },
}

/// Input limits, each with its unit in its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub request_body_bytes_max: usize,
    pub commands_per_batch_max: usize,
    pub requests_per_second_per_department: u32,
    pub request_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_body_bytes_max: REQUEST_BODY_BYTES_MAX_DEFAULT,
            commands_per_batch_max: COMMANDS_PER_BATCH_MAX_DEFAULT,
            requests_per_second_per_department: REQUESTS_PER_SECOND_PER_DEPARTMENT_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// Everything `pathway serve` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub store: StoreLocation,
    /// HMAC-SHA256 key of bearer tokens (at least [`TOKEN_SECRET_BYTES_MIN`] bytes).
    pub token_secret: Option<Secret>,
    pub policy_file: PathBuf,
    /// File of revoked token ids, one per line (`#` comments), re-read on change.
    pub revocation_file: Option<PathBuf>,
    /// Revoked token ids listed in the configuration itself.
    pub revoked_tokens: Vec<String>,
    pub limits: Limits,
    /// Run the projectors of every read model inside the server.
    pub projectors: bool,
    pub ready_lag_positions_max: u64,
    /// Run the workflows (saga routers and the timer sweeper; one leader per database).
    pub sagas: bool,
    /// Run the NATS relay (one leader per database); needs [`Settings::nats`].
    pub relay: bool,
    /// How to reach NATS; without a URL the relay is off.
    pub nats: NatsSettings,
    pub workers: WorkerSettings,
    /// The master key wrapping personal-data keys (base64 of 32 bytes).
    pub master_key: Option<Secret>,
    /// A file holding the master key, when it is not given directly.
    pub master_key_file: Option<PathBuf>,
}

/// How the relay reaches NATS and sizes its streams.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    pub url: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// Name of the relay's checkpoint.
    pub relay_name: String,
    /// Bound of each stream on disk, in bytes.
    pub stream_max_bytes: i64,
    /// Copies of each stream (3 on a 3-node cluster).
    pub stream_replicas: u8,
}

impl Default for NatsSettings {
    fn default() -> Self {
        NatsSettings {
            url: None,
            user: None,
            password: None,
            relay_name: RELAY_NAME_DEFAULT.to_owned(),
            stream_max_bytes: pathway_bus::limits::STREAM_MAX_BYTES_DEFAULT,
            stream_replicas: 1,
        }
    }
}

/// Timing of the background workers and of shutdown, each with its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Bound of each shutdown stage (draining requests; stopping workers).
    pub drain_timeout_ms: u64,
    pub sweep_interval_ms: u64,
    pub timer_overdue_after_ms: u64,
    /// 0 turns the periodic tail verification of the hash chain off.
    pub chain_verify_interval_ms: u64,
    pub chain_verify_batch_events_max: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            drain_timeout_ms: DRAIN_TIMEOUT_MS_DEFAULT,
            sweep_interval_ms: SWEEP_INTERVAL_MS_DEFAULT,
            timer_overdue_after_ms: TIMER_OVERDUE_AFTER_MS_DEFAULT,
            chain_verify_interval_ms: CHAIN_VERIFY_INTERVAL_MS_DEFAULT,
            chain_verify_batch_events_max: CHAIN_VERIFY_BATCH_EVENTS_MAX_DEFAULT,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: LISTEN_DEFAULT
                .parse()
                .expect("default listen address parses"),
            store: StoreLocation::Embedded {
                data_dir: PathBuf::from("pathway-data"),
            },
            token_secret: None,
            policy_file: PathBuf::from(POLICY_FILE_DEFAULT),
            revocation_file: None,
            revoked_tokens: Vec::new(),
            limits: Limits::default(),
            projectors: true,
            ready_lag_positions_max: READY_LAG_POSITIONS_MAX_DEFAULT,
            sagas: true,
            relay: true,
            nats: NatsSettings::default(),
            workers: WorkerSettings::default(),
            master_key: None,
            master_key_file: None,
        }
    }
}

/// The TOML configuration file: every key optional.
///
/// ```toml
/// listen = "0.0.0.0:8080"
/// database_url = "postgres://pathway@db/pathway"   # or data_dir = "…"
/// token_secret = "…"                               # better: PATHWAY_TOKEN_SECRET
/// master_key_file = "/run/secrets/pathway-master-key" # or PATHWAY_MASTER_KEY
/// policy_file = "deploy/policy/authorization.toml"
/// revocation_file = "/etc/pathway/revoked-tokens"
/// revoked_tokens = ["3f1e…"]
/// projectors = true
/// sagas = true                                     # routers + timer sweeper (one leader)
/// relay = true                                     # NATS relay (one leader); needs [nats] url
/// ready_lag_positions_max = 1000
/// [limits]
/// request_body_bytes_max = 1048576
/// commands_per_batch_max = 100
/// requests_per_second_per_department = 50
/// request_timeout_ms = 10000
/// [nats]
/// url = "nats://nats:4222"
/// user = "pathway"
/// password = "…"                                   # better: PATHWAY_NATS_PASSWORD
/// relay_name = "default"
/// stream_max_bytes = 8589934592
/// stream_replicas = 1
/// [workers]
/// drain_timeout_ms = 20000
/// sweep_interval_ms = 1000
/// timer_overdue_after_ms = 60000
/// chain_verify_interval_ms = 60000                 # 0: off
/// chain_verify_batch_events_max = 100000
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    pub listen: Option<SocketAddr>,
    pub database_url: Option<Secret>,
    pub data_dir: Option<PathBuf>,
    pub token_secret: Option<Secret>,
    pub policy_file: Option<PathBuf>,
    pub revocation_file: Option<PathBuf>,
    #[serde(default)]
    pub revoked_tokens: Vec<String>,
    pub limits: Option<Limits>,
    pub projectors: Option<bool>,
    pub sagas: Option<bool>,
    pub relay: Option<bool>,
    pub ready_lag_positions_max: Option<u64>,
    pub nats: Option<NatsSettings>,
    pub workers: Option<WorkerSettings>,
    pub master_key_file: Option<PathBuf>,
}

/// The top layer: environment and flags, as merged by the binary. `None`
/// leaves the layer below in force.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub database_url: Option<Secret>,
    pub data_dir: Option<PathBuf>,
    pub token_secret: Option<Secret>,
    pub policy_file: Option<PathBuf>,
    pub revocation_file: Option<PathBuf>,
    pub request_body_bytes_max: Option<usize>,
    pub commands_per_batch_max: Option<usize>,
    pub requests_per_second_per_department: Option<u32>,
    pub request_timeout_ms: Option<u64>,
    pub ready_lag_positions_max: Option<u64>,
    /// `Some(false)` turns the in-process projectors off.
    pub projectors: Option<bool>,
    /// `Some(false)` turns the workflows (routers and sweeper) off.
    pub sagas: Option<bool>,
    /// `Some(false)` turns the relay off.
    pub relay: Option<bool>,
    pub nats_url: Option<String>,
    pub nats_user: Option<String>,
    pub nats_password: Option<Secret>,
    pub relay_name: Option<String>,
    pub stream_max_bytes: Option<i64>,
    pub stream_replicas: Option<u8>,
    pub drain_timeout_ms: Option<u64>,
    pub sweep_interval_ms: Option<u64>,
    pub timer_overdue_after_ms: Option<u64>,
    pub chain_verify_interval_ms: Option<u64>,
    pub chain_verify_batch_events_max: Option<u64>,
    pub master_key: Option<Secret>,
    pub master_key_file: Option<PathBuf>,
}

impl Settings {
    /// Defaults, then `config` (if given), then `overrides`.
    pub fn load(config: Option<&Path>, overrides: Overrides) -> Result<Settings, ServerError> {
        let mut settings = Settings::default();
        if let Some(path) = config {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ServerError::Settings(format!("config file {}: {e}", path.display()))
            })?;
            settings.apply_file(&text).map_err(|e| {
                ServerError::Settings(format!("config file {}: {e}", path.display()))
            })?;
        }
        settings.apply(overrides);
        settings.check()?;
        Ok(settings)
    }

    /// Applies a TOML configuration file's keys.
    pub fn apply_file(&mut self, text: &str) -> Result<(), String> {
        let file: SettingsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.database_url.is_some() && file.data_dir.is_some() {
            return Err("give database_url or data_dir, not both".to_owned());
        }
        self.listen = file.listen.unwrap_or(self.listen);
        if let Some(url) = file.database_url {
            self.store = StoreLocation::Postgres { url };
        }
        if let Some(data_dir) = file.data_dir {
            self.store = StoreLocation::Embedded { data_dir };
        }
        self.token_secret = file.token_secret.or(self.token_secret.take());
        self.policy_file = file.policy_file.unwrap_or(self.policy_file.clone());
        self.revocation_file = file.revocation_file.or(self.revocation_file.take());
        self.revoked_tokens.extend(file.revoked_tokens);
        self.limits = file.limits.unwrap_or(self.limits);
        self.projectors = file.projectors.unwrap_or(self.projectors);
        self.sagas = file.sagas.unwrap_or(self.sagas);
        self.relay = file.relay.unwrap_or(self.relay);
        self.nats = file.nats.unwrap_or_else(|| self.nats.clone());
        self.workers = file.workers.unwrap_or(self.workers);
        self.master_key_file = file.master_key_file.or(self.master_key_file.take());
        self.ready_lag_positions_max = file
            .ready_lag_positions_max
            .unwrap_or(self.ready_lag_positions_max);
        Ok(())
    }

    /// Applies the environment and flags.
    pub fn apply(&mut self, o: Overrides) {
        self.listen = o.listen.unwrap_or(self.listen);
        // A database URL wins over a data directory on the same layer.
        if let Some(data_dir) = o.data_dir {
            self.store = StoreLocation::Embedded { data_dir };
        }
        if let Some(url) = o.database_url {
            self.store = StoreLocation::Postgres { url };
        }
        self.token_secret = o.token_secret.or(self.token_secret.take());
        self.policy_file = o.policy_file.unwrap_or(self.policy_file.clone());
        self.revocation_file = o.revocation_file.or(self.revocation_file.take());
        let l = &mut self.limits;
        l.request_body_bytes_max = o.request_body_bytes_max.unwrap_or(l.request_body_bytes_max);
        l.commands_per_batch_max = o.commands_per_batch_max.unwrap_or(l.commands_per_batch_max);
        l.requests_per_second_per_department = o
            .requests_per_second_per_department
            .unwrap_or(l.requests_per_second_per_department);
        l.request_timeout_ms = o.request_timeout_ms.unwrap_or(l.request_timeout_ms);
        self.ready_lag_positions_max = o
            .ready_lag_positions_max
            .unwrap_or(self.ready_lag_positions_max);
        self.projectors = o.projectors.unwrap_or(self.projectors);
        self.sagas = o.sagas.unwrap_or(self.sagas);
        self.relay = o.relay.unwrap_or(self.relay);
        let n = &mut self.nats;
        n.url = o.nats_url.or(n.url.take());
        n.user = o.nats_user.or(n.user.take());
        n.password = o.nats_password.or(n.password.take());
        n.relay_name = o.relay_name.unwrap_or(std::mem::take(&mut n.relay_name));
        n.stream_max_bytes = o.stream_max_bytes.unwrap_or(n.stream_max_bytes);
        n.stream_replicas = o.stream_replicas.unwrap_or(n.stream_replicas);
        let w = &mut self.workers;
        w.drain_timeout_ms = o.drain_timeout_ms.unwrap_or(w.drain_timeout_ms);
        w.sweep_interval_ms = o.sweep_interval_ms.unwrap_or(w.sweep_interval_ms);
        w.timer_overdue_after_ms = o.timer_overdue_after_ms.unwrap_or(w.timer_overdue_after_ms);
        w.chain_verify_interval_ms = o
            .chain_verify_interval_ms
            .unwrap_or(w.chain_verify_interval_ms);
        w.chain_verify_batch_events_max = o
            .chain_verify_batch_events_max
            .unwrap_or(w.chain_verify_batch_events_max);
        self.master_key = o.master_key.or(self.master_key.take());
        self.master_key_file = o.master_key_file.or(self.master_key_file.take());
    }

    /// Refuses settings the server cannot run safely with.
    pub fn check(&self) -> Result<(), ServerError> {
        let l = &self.limits;
        let bad = |what: &str| Err(ServerError::Settings(what.to_owned()));
        if l.request_body_bytes_max == 0 {
            return bad("limits.request_body_bytes_max must be at least 1");
        }
        if l.commands_per_batch_max == 0 {
            return bad("limits.commands_per_batch_max must be at least 1");
        }
        if l.requests_per_second_per_department == 0 {
            return bad("limits.requests_per_second_per_department must be at least 1");
        }
        if l.request_timeout_ms == 0 {
            return bad("limits.request_timeout_ms must be at least 1");
        }
        let w = &self.workers;
        if w.drain_timeout_ms == 0 {
            return bad("workers.drain_timeout_ms must be at least 1");
        }
        if w.sweep_interval_ms == 0 {
            return bad("workers.sweep_interval_ms must be at least 1");
        }
        if w.chain_verify_interval_ms > 0 && w.chain_verify_batch_events_max == 0 {
            return bad("workers.chain_verify_batch_events_max must be at least 1");
        }
        let n = &self.nats;
        if n.stream_max_bytes <= 0 {
            return bad("nats.stream_max_bytes must be at least 1");
        }
        if !(1..=5).contains(&n.stream_replicas) {
            return bad("nats.stream_replicas must be 1 to 5");
        }
        if n.relay_name.is_empty() {
            return bad("nats.relay_name must not be empty");
        }
        Ok(())
    }

    /// The token-signing secret, refused when absent or short.
    pub fn require_token_secret(&self) -> Result<&Secret, ServerError> {
        match &self.token_secret {
            None => Err(ServerError::Settings(
                "no token secret: set PATHWAY_TOKEN_SECRET (or token_secret in the config file)"
                    .to_owned(),
            )),
            Some(s) if s.expose().len() < TOKEN_SECRET_BYTES_MIN => {
                Err(ServerError::Settings(format!(
                    "token secret is {} bytes; at least {TOKEN_SECRET_BYTES_MIN} expected",
                    s.expose().len()
                )))
            }
            Some(s) => Ok(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_defaults_then_file_then_overrides() {
        let mut s = Settings::default();
        assert_eq!(s.listen.to_string(), LISTEN_DEFAULT);
        s.apply_file(
            r#"
            listen = "0.0.0.0:9000"
            database_url = "postgres://u:pw@db/pathway"
            token_secret = "from-the-file"
            [limits]
            request_body_bytes_max = 2048
            "#,
        )
        .expect("file parses");
        assert_eq!(s.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(s.limits.request_body_bytes_max, 2048);
        assert_eq!(
            s.limits.commands_per_batch_max,
            COMMANDS_PER_BATCH_MAX_DEFAULT
        );
        s.apply(Overrides {
            listen: Some("127.0.0.1:1".parse().expect("addr")),
            token_secret: Some(Secret::new("from-the-environment")),
            ..Overrides::default()
        });
        assert_eq!(s.listen.to_string(), "127.0.0.1:1");
        assert_eq!(
            s.token_secret.as_ref().map(Secret::expose),
            Some("from-the-environment")
        );
        assert!(matches!(s.store, StoreLocation::Postgres { .. }));
    }

    #[test]
    fn workers_are_on_by_default_and_layered() {
        let mut s = Settings::default();
        assert!(s.projectors && s.sagas && s.relay);
        assert_eq!(s.nats.url, None, "no NATS unless configured");
        s.apply_file(
            r#"
            sagas = false
            [nats]
            url = "nats://from-file:4222"
            stream_replicas = 3
            [workers]
            drain_timeout_ms = 5000
            "#,
        )
        .expect("file parses");
        assert!(!s.sagas);
        assert_eq!(s.nats.url.as_deref(), Some("nats://from-file:4222"));
        assert_eq!(s.nats.relay_name, RELAY_NAME_DEFAULT);
        assert_eq!(s.workers.drain_timeout_ms, 5000);
        assert_eq!(s.workers.sweep_interval_ms, SWEEP_INTERVAL_MS_DEFAULT);
        s.apply(Overrides {
            relay: Some(false),
            nats_url: Some("nats://from-env:4222".to_owned()),
            chain_verify_interval_ms: Some(0),
            ..Overrides::default()
        });
        assert!(!s.relay);
        assert_eq!(s.nats.url.as_deref(), Some("nats://from-env:4222"));
        assert_eq!(s.nats.stream_replicas, 3);
        assert_eq!(s.workers.chain_verify_interval_ms, 0);
        s.check().expect("valid");
        s.workers.drain_timeout_ms = 0;
        assert!(s.check().is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut s = Settings::default();
        s.apply(Overrides {
            token_secret: Some(Secret::new("top-secret-signing-key")),
            database_url: Some(Secret::new("postgres://u:hunter2@db/x")),
            nats_password: Some(Secret::new("nats-hunter3")),
            ..Overrides::default()
        });
        let shown = format!("{s:?}");
        assert!(!shown.contains("top-secret"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("hunter3"), "{shown}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let err = Settings::default()
            .apply_file("listn = \"0.0.0.0:1\"")
            .expect_err("misspelt key");
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn short_secret_is_refused() {
        let s = Settings {
            token_secret: Some(Secret::new("short")),
            ..Settings::default()
        };
        assert!(s.require_token_secret().is_err());
    }
}

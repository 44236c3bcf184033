//! `pathway serve`: the department-facing HTTP API.
//!
//! One process runs the command engine behind a JSON API and, each unless
//! turned off, the background [`workers`]: the projectors of every read
//! model, the workflows (saga routers and the durable-timer sweeper, one
//! leader per database), the NATS relay (one leader per database; off
//! without a NATS URL) and a periodic tail verification of the hash chain. Each request is authenticated by
//! a signed bearer token ([`token`]), rate-limited per department office
//! ([`rate`]), authorized against the checked-in policy ([`policy`]) and, for
//! a city office, scoped to its city ([`api`]).
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/commands` | one JSON command envelope (docs/commands.md), or an array of them (a batch) |
//! | `GET /v1/models/{model}/{table}?city=&year=&after=&limit=` | rows of a read model the caller may read, a page at a time in key order (`limit` 1–10,000, default 1,000; `next` is the `after` of the following page, `null` on the last) |
//! | `POST /pathway.api.v1.Pathway/*` | the same API over gRPC, on the same port ([`grpc`]) |
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | the log answers, every read model is within the lag bound and no worker failed |
//! | `GET /metrics` | Prometheus text format |
//!
//! Layout as in zero2prod: [`Application::build`] binds the listener (port 0
//! in tests) and opens the store from [`Settings`]; [`Application::run_until_stopped`]
//! serves until the shutdown future resolves (SIGTERM or Ctrl-C in the
//! binary), then stops accepting, drains in-flight requests and stops the
//! workers ([`workers::Workers::stop`]), all within `workers.drain_timeout_ms`.

pub mod api;
pub mod grpc;
pub mod metrics;
pub mod policy;
pub mod rate;
pub mod settings;
pub mod token;
pub mod workers;

use std::{future::Future, sync::Arc};

use pathway_projections::{ProjectionError, runtime::ReadStore};
use pathway_store::{EventStore, StoreError, embedded::EmbeddedStore, postgres::PostgresStore};
use tokio::net::TcpListener;

pub use settings::{Settings, StoreLocation};

use crate::{
    api::AppState, metrics::Metrics, policy::Policy, rate::RateLimiter, token::Revocations,
};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("settings: {0}")]
    Settings(String),
    #[error("authorization policy {0}")]
    Policy(String),
    #[error("event log: {0}")]
    Store(#[from] StoreError),
    #[error("read models: {0}")]
    Projection(#[from] ProjectionError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// The opened log, of either kind.
#[derive(Clone)]
enum Opened {
    Embedded(EmbeddedStore),
    Postgres(PostgresStore),
}

/// The keyring of personal-data keys: the master key from the settings (or,
/// for an embedded store only, the data directory's own `master.key`), the
/// key table beside the log.
async fn open_keyring(
    settings: &Settings,
    store: &Opened,
) -> Result<pathway_engine::Keyring, ServerError> {
    use pathway_keys::MasterKey;
    let keys =
        |e: pathway_keys::KeyError| ServerError::Settings(format!("personal-data keys: {e}"));
    let master = match (&settings.master_key, &settings.master_key_file) {
        (Some(key), _) => Some(MasterKey::from_base64(key.expose()).map_err(keys)?),
        (None, Some(path)) => Some(MasterKey::load_or_create(path).map_err(keys)?),
        (None, None) => None,
    };
    match (store, &settings.store) {
        (Opened::Embedded(_), StoreLocation::Embedded { data_dir }) => {
            pathway_keys::embedded_keyring(data_dir, master)
                .await
                .map_err(keys)
        }
        (Opened::Postgres(s), _) => {
            let master = master.ok_or_else(|| {
                ServerError::Settings(
                    "serving PostgreSQL needs the deployment's master key: set \
                     PATHWAY_MASTER_KEY or master_key_file (a new one: pathway keys generate)"
                        .to_owned(),
                )
            })?;
            pathway_keys::postgres_keyring(s.pool().clone(), master)
                .await
                .map_err(keys)
        }
        (Opened::Embedded(_), StoreLocation::Postgres { .. }) => {
            unreachable!("an embedded store has a data dir")
        }
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    port: u16,
    store: Opened,
    read_store: ReadStore,
    settings: Settings,
    policy: Policy,
    keyring: pathway_engine::Keyring,
    mounts: Vec<(String, Mount)>,
}

/// The opened log, for routers mounted beside the API.
#[derive(Clone)]
pub enum OpenedStore {
    Embedded(EmbeddedStore),
    Postgres(PostgresStore),
}

/// What a router mounted beside the API gets: the server's own store, read
/// models, policy and credentials checks.
pub struct MountContext {
    pub store: OpenedStore,
    pub read_store: ReadStore,
    pub policy: Policy,
    pub secret: settings::Secret,
    pub revocations: Revocations,
    pub keyring: pathway_engine::Keyring,
}

/// Makes a router to mount at a path (e.g. the web console at `/console`).
pub type Mount = Box<dyn FnOnce(MountContext) -> axum::Router + Send>;

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Checks the settings, loads the policy, opens the store and binds the
    /// listener.
    pub async fn build(settings: Settings) -> Result<Application, ServerError> {
        settings.check()?;
        settings.require_token_secret()?;
        let policy = Policy::load(&settings.policy_file)?;
        let (store, read_store) = match &settings.store {
            StoreLocation::Postgres { url } => (
                Opened::Postgres(PostgresStore::connect(url.expose()).await?),
                ReadStore::Postgres {
                    url: url.expose().to_owned(),
                },
            ),
            StoreLocation::Embedded { data_dir } => (
                Opened::Embedded(EmbeddedStore::open(data_dir)?),
                ReadStore::Sqlite {
                    dir: data_dir.join("models"),
                },
            ),
        };
        let keyring = open_keyring(&settings, &store).await?;
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| ServerError::Listen {
                    addr: settings.listen,
                    source,
                })?;
        let port = listener
            .local_addr()
            .map_err(|source| ServerError::Listen {
                addr: settings.listen,
                source,
            })?
            .port();
        Ok(Application {
            listener,
            port,
            store,
            read_store,
            settings,
            policy,
            keyring,
            mounts: Vec::new(),
        })
    }

    /// Serves the router `make` builds under `path` (e.g. `/console`), beside
    /// the API, with the same store, policy and credentials.
    pub fn mount(mut self, path: &str, make: Mount) -> Self {
        self.mounts.push((path.to_owned(), make));
        self
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight
    /// requests finish, and stops the workers: workflows, relay, chain
    /// verifier, then the projectors, which commit their last batch and catch
    /// up to the head. All of it within `workers.drain_timeout_ms`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        match self.store.clone() {
            Opened::Embedded(s) => {
                let dir = match &self.settings.store {
                    StoreLocation::Embedded { data_dir } => data_dir.clone(),
                    StoreLocation::Postgres { .. } => {
                        unreachable!("an embedded store has a data dir")
                    }
                };
                self.run(s, workers::Backend::Embedded(dir), shutdown).await
            }
            Opened::Postgres(s) => {
                let backend = workers::Backend::Postgres(s.clone());
                self.run(s, backend, shutdown).await
            }
        }
    }

    async fn run<S: EventStore + Clone>(
        self,
        store: S,
        backend: workers::Backend,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let secret = self.settings.require_token_secret()?.clone();
        let metrics = Metrics::new();
        let mount_policy = self.policy.clone();
        let state = Arc::new(AppState {
            engine: pathway_engine::Engine::new(store.clone(), self.keyring.clone()),
            read_store: self.read_store.clone(),
            secret,
            policy: self.policy,
            revocations: Revocations::new(
                &self.settings.revoked_tokens,
                self.settings.revocation_file.clone(),
            ),
            rate: RateLimiter::new(self.settings.limits.requests_per_second_per_department),
            limits: self.settings.limits,
            metrics: metrics.clone(),
            ready_lag_positions_max: self.settings.ready_lag_positions_max,
            streams: grpc::Streams::default(),
        });
        let workers = workers::Workers::start(
            store,
            backend,
            self.read_store.clone(),
            &self.settings,
            metrics,
            self.keyring.clone(),
        )
        .await;
        tracing::info!(
            port = self.port,
            projectors = self.settings.projectors,
            sagas = self.settings.sagas,
            relay = self.settings.relay,
            "serving"
        );
        let streams = state.streams.clone();
        let mut router = build_router(state, workers.health());
        for (path, make) in self.mounts {
            let ctx = MountContext {
                store: match &self.store {
                    Opened::Embedded(s) => OpenedStore::Embedded(s.clone()),
                    Opened::Postgres(s) => OpenedStore::Postgres(s.clone()),
                },
                read_store: self.read_store.clone(),
                policy: mount_policy.clone(),
                secret: self.settings.require_token_secret()?.clone(),
                revocations: Revocations::new(
                    &self.settings.revoked_tokens,
                    self.settings.revocation_file.clone(),
                ),
                keyring: self.keyring.clone(),
            };
            router = router.nest(&path, make(ctx));
        }
        let drain = std::time::Duration::from_millis(self.settings.workers.drain_timeout_ms);
        let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
        let serve = axum::serve(self.listener, router).with_graceful_shutdown(async move {
            shutdown.await;
            streams.stop(); // open gRPC event streams end, so the drain is not held up
            signalled.send(()).ok();
        });
        let mut serving = tokio::spawn(std::future::IntoFuture::into_future(serve));
        // The whole shutdown (requests, then workers) ends by `deadline`.
        let (served, deadline) = tokio::select! {
            done = &mut serving => (done, tokio::time::Instant::now() + drain),
            _ = on_signal => {
                tracing::info!("stopped accepting; draining in-flight requests");
                let deadline = tokio::time::Instant::now() + drain;
                match tokio::time::timeout_at(deadline, &mut serving).await {
                    Ok(done) => (done, deadline),
                    Err(_) => {
                        tracing::error!(
                            drain_timeout_ms = drain.as_millis() as u64,
                            "in-flight requests not finished within the drain timeout; cut off"
                        );
                        serving.abort();
                        (Ok(Ok(())), deadline)
                    }
                }
            }
        };
        let served = match served {
            Ok(result) => result.map_err(ServerError::Serve),
            Err(e) => Err(ServerError::Serve(std::io::Error::other(e))),
        };
        tracing::info!("requests drained; stopping the workers");
        workers.stop(deadline).await;
        tracing::info!("stopped");
        served
    }
}

/// Every HTTP route: the API of [`api::router`] (plus the routes mounted
/// beside it here), wrapped in the readiness layer that adds the workers'
/// health to `/readyz`. The one place the router is built.
fn build_router<S: EventStore + Clone>(
    state: Arc<AppState<S>>,
    health: workers::WorkerHealth,
) -> axum::Router {
    api::router(state).layer(axum::middleware::from_fn_with_state(
        health,
        workers::readiness,
    ))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
    }
}

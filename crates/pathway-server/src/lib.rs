//! `pathway serve`: the department-facing HTTP API.
//!
//! One process runs the command engine behind a JSON API and, unless turned
//! off, the projectors of every read model. Each request is authenticated by
//! a signed bearer token ([`token`]), rate-limited per department office
//! ([`rate`]), authorized against the checked-in policy ([`policy`]) and, for
//! a city office, scoped to its city ([`api`]).
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/commands` | one JSON command envelope (docs/commands.md), or an array of them (a batch) |
//! | `GET /v1/models/{model}/{table}?city=&year=` | rows of a read model the caller may read |
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | the log answers and every read model is within the lag bound |
//! | `GET /metrics` | Prometheus text format |
//!
//! Layout as in zero2prod: [`Application::build`] binds the listener (port 0
//! in tests) and opens the store from [`Settings`]; [`Application::run_until_stopped`]
//! serves until the shutdown future resolves, then drains in-flight requests
//! and stops the projectors, which flush their checkpoints.

pub mod api;
pub mod metrics;
pub mod policy;
pub mod rate;
pub mod settings;
pub mod token;

use std::{future::Future, sync::Arc};

use pathway_projections::{ProjectionError, models, runtime::ReadStore};
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

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    port: u16,
    store: Opened,
    read_store: ReadStore,
    settings: Settings,
    policy: Policy,
}

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
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight
    /// requests finish, and stops the projectors (each commits its last
    /// batch and checkpoint before it returns).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        match self.store.clone() {
            Opened::Embedded(s) => self.run(s, shutdown).await,
            Opened::Postgres(s) => self.run(s, shutdown).await,
        }
    }

    async fn run<S: EventStore + Clone>(
        self,
        store: S,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let secret = self.settings.require_token_secret()?.clone();
        let state = Arc::new(AppState {
            engine: pathway_engine::Engine::new(store.clone()),
            read_store: self.read_store.clone(),
            secret,
            policy: self.policy,
            revocations: Revocations::new(
                &self.settings.revoked_tokens,
                self.settings.revocation_file.clone(),
            ),
            rate: RateLimiter::new(self.settings.limits.requests_per_second_per_department),
            limits: self.settings.limits,
            metrics: Metrics::new(),
            ready_lag_positions_max: self.settings.ready_lag_positions_max,
        });
        let (stop_projectors, projectors_stop) = tokio::sync::watch::channel(false);
        let mut projectors = tokio::task::JoinSet::new();
        if self.settings.projectors {
            for projection in models::all() {
                let (store, target, stop) = (
                    store.clone(),
                    self.read_store.clone(),
                    projectors_stop.clone(),
                );
                let name = projection.name();
                // Named by its span: task names need tokio_unstable.
                let span = tracing::info_span!("projector", model = name);
                projectors.spawn(tracing::Instrument::instrument(
                    async move {
                        let result =
                            pathway_projections::runtime::follow(&store, &target, projection, stop)
                                .await;
                        (name, result)
                    },
                    span,
                ));
            }
        }
        tracing::info!(
            port = self.port,
            projectors = self.settings.projectors,
            "serving"
        );
        let served = axum::serve(self.listener, api::router(state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServerError::Serve);
        tracing::info!("stopped accepting; in-flight requests drained, stopping projectors");
        stop_projectors.send(true).ok();
        while let Some(done) = projectors.join_next().await {
            match done {
                Ok((name, Ok(checkpoint))) => {
                    tracing::info!(model = name, checkpoint, "projector stopped");
                }
                Ok((name, Err(e))) => {
                    tracing::error!(model = name, error = %e, "projector failed");
                }
                Err(e) => tracing::error!(error = %e, "projector task panicked"),
            }
        }
        served
    }
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

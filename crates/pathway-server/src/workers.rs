//! The background workers `pathway serve` runs beside the API, each of which
//! can be switched off: the projectors of every read model, the workflows
//! (saga routers and the durable-timer sweeper, [`pathway_saga::workflows`]),
//! the NATS relay ([`pathway_bus::relay`]), and the periodic tail
//! verification of the hash chain. This module is glue: the runtimes live in
//! their crates, shared with `pathway saga run`, `pathway relay run` and
//! `pathway projections run`.
//!
//! Leadership: the workflows and the relay each run in exactly one instance
//! per database (a PostgreSQL advisory lock on a dedicated connection; for
//! the embedded store an in-process lock and a file lock), the other
//! instances stand by and take over within seconds when the leader's lock
//! ends.
//!
//! Projectors: the models catch up and then follow the log together, with
//! one reader ([`runtime::follow_many_with`]): each new event is read,
//! decoded and its personal fields opened once for all of them. A model
//! that fails sits out for a pause while the others go on, then rejoins;
//! one whose checkpoint a rebuild moves is taken on from there by the next
//! shared run.
//!
//! Health: every worker reports its state (`off`, `standby`, `running`,
//! `failed: …`) to [`WorkerHealth`]; `/readyz` lists them and answers 503
//! while one has failed ([`readiness`]); `pathway_worker_up{worker}` follows
//! (1 running or standing by, 0 failed, absent when off).
//!
//! Shutdown ([`Workers::stop`], by a deadline: the whole shutdown, requests
//! included, takes at most `workers.drain_timeout_ms`): the workflows stop first (their routers
//! finish the batch in hand and write their checkpoints), then the relay and
//! the chain verifier, then the projectors, which commit their last batch and
//! then catch up to the head once more, so their checkpoints are at the head
//! the moment this instance stops. A stage still running at the deadline is
//! abandoned, with an error logged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::Response,
};
use pathway_bus::{
    BusError,
    coordinator::{Coordinator, FileCoordinator, PgCoordinator},
    relay::Relay,
};
use pathway_projections::{
    Projection, ProjectionError, models,
    runtime::{self, ProjectorOptions, ReadStore},
};
use pathway_saga::{LeaderLock, WorkflowOptions, WorkflowStatus};
use pathway_store::{EventStore, postgres::PostgresStore};
use serde_json::json;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::{Settings, metrics::Metrics};

/// Pause before a failed projector is started again.
const PROJECTOR_RESTART_BACKOFF_MS: u64 = 1_000;

/// How often the worker metrics (relay lag, saga timers, leadership) are refreshed.
pub const METRICS_REFRESH_MS: u64 = 1_000;
/// Largest `/readyz` body the readiness layer reads back to add the workers.
const READYZ_BODY_BYTES_MAX: usize = 1_048_576;

/// Worker names, as in `/readyz` and `pathway_worker_up{worker}`.
pub const PROJECTORS: &str = "projectors";
pub const SAGAS: &str = "sagas";
pub const RELAY: &str = "relay";
pub const CHAIN_VERIFIER: &str = "chain_verifier";

/// What a worker is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerState {
    /// Switched off (the reason).
    Off(String),
    /// Waiting for the leader lock another instance holds.
    Standby,
    /// Working (and, for a led worker, leading).
    Running,
    /// Stopped or failing (the error).
    Failed(String),
}

impl std::fmt::Display for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerState::Off(why) => write!(f, "off: {why}"),
            WorkerState::Standby => f.write_str("standby"),
            WorkerState::Running => f.write_str("running"),
            WorkerState::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// The state of every worker, shared with the readiness layer.
#[derive(Debug, Clone)]
pub struct WorkerHealth {
    states: Arc<Mutex<BTreeMap<&'static str, WorkerState>>>,
    metrics: Metrics,
}

impl WorkerHealth {
    pub fn new(metrics: Metrics) -> Self {
        WorkerHealth {
            states: Arc::new(Mutex::new(BTreeMap::new())),
            metrics,
        }
    }

    pub fn set(&self, worker: &'static str, state: WorkerState) {
        // A worker switched off has no sample, so alerts count only the
        // instances that run it.
        match &state {
            WorkerState::Off(_) => {
                let _ = self.metrics.worker_up.remove_label_values(&[worker]);
            }
            WorkerState::Failed(_) => self.metrics.worker_up.with_label_values(&[worker]).set(0),
            WorkerState::Standby | WorkerState::Running => {
                self.metrics.worker_up.with_label_values(&[worker]).set(1)
            }
        }
        let mut states = self.states.lock().expect("health lock");
        if states.get(worker) != Some(&state) {
            tracing::debug!(worker, %state, "worker state");
            states.insert(worker, state);
        }
    }

    pub fn get(&self, worker: &str) -> Option<WorkerState> {
        self.states
            .lock()
            .expect("health lock")
            .get(worker)
            .cloned()
    }

    /// No worker has failed.
    pub fn healthy(&self) -> bool {
        !self
            .states
            .lock()
            .expect("health lock")
            .values()
            .any(|s| matches!(s, WorkerState::Failed(_)))
    }

    fn json(&self) -> serde_json::Value {
        let states = self.states.lock().expect("health lock");
        serde_json::Value::Object(
            states
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v.to_string())))
                .collect(),
        )
    }
}

/// Adds `"workers"` to the `/readyz` answer, and turns it into 503
/// (`"ready": false`) while a worker has failed. Other routes pass through.
pub async fn readiness(
    State(health): State<WorkerHealth>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() != "/readyz" {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, READYZ_BODY_BYTES_MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({}));
    if !value.is_object() {
        value = json!({ "answer": value });
    }
    value["workers"] = health.json();
    if !health.healthy() {
        value["ready"] = json!(false);
        parts.status = StatusCode::SERVICE_UNAVAILABLE;
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(value.to_string()))
}

/// What the leader locks and the relay checkpoint live on.
#[derive(Clone)]
pub enum Backend {
    Postgres(PostgresStore),
    Embedded(PathBuf),
}

/// The running workers.
pub struct Workers<S> {
    store: S,
    read_store: ReadStore,
    health: WorkerHealth,
    /// Stops the workflows.
    stop_sagas: watch::Sender<bool>,
    sagas: Option<tokio::task::JoinHandle<()>>,
    /// Stops the relay, the chain verifier and the metrics refresh.
    stop_others: watch::Sender<bool>,
    others: JoinSet<()>,
    stop_projectors: watch::Sender<bool>,
    projectors: JoinSet<(&'static str, Result<u64, ProjectionError>)>,
    /// The task that runs the models following together (`follow_together`).
    projector_group: Option<tokio::task::JoinHandle<()>>,
    projectors_on: bool,
    keyring: pathway_engine::Keyring,
}

impl<S> std::fmt::Debug for Workers<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

/// The relay's view of itself, kept by [`Observed`].
#[derive(Debug, Default)]
struct RelayView {
    leading: AtomicBool,
    checkpoint: AtomicU64,
}

/// A coordinator that reports leadership and checkpoint to the metrics.
struct Observed<C> {
    inner: C,
    view: Arc<RelayView>,
    metrics: Metrics,
    health: WorkerHealth,
}

impl<C> Observed<C> {
    fn lost(&self) {
        if self.view.leading.swap(false, Ordering::Relaxed) {
            tracing::warn!("relay leadership lost: standing by");
        }
        self.metrics.relay_leader.set(0);
        self.health.set(RELAY, WorkerState::Standby);
    }
}

#[async_trait::async_trait]
impl<C: Coordinator> Coordinator for Observed<C> {
    async fn lead(&mut self) -> Result<(), BusError> {
        self.inner.lead().await?;
        self.view.leading.store(true, Ordering::Relaxed);
        self.metrics.relay_leader.set(1);
        self.health.set(RELAY, WorkerState::Running);
        Ok(())
    }

    async fn checkpoint(&mut self) -> Result<u64, BusError> {
        let result = self.inner.checkpoint().await;
        match &result {
            Ok(p) => self.view.checkpoint.store(*p, Ordering::Relaxed),
            Err(BusError::LeadershipLost(_)) => self.lost(),
            Err(_) => {}
        }
        result
    }

    async fn set_checkpoint(&mut self, position: u64) -> Result<(), BusError> {
        let result = self.inner.set_checkpoint(position).await;
        match &result {
            Ok(()) => self.view.checkpoint.store(position, Ordering::Relaxed),
            Err(BusError::LeadershipLost(_)) => self.lost(),
            Err(_) => {}
        }
        result
    }
}

/// Resolves when `stop` turns true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

impl<S: EventStore + Clone> Workers<S> {
    /// Starts every worker the settings turn on.
    pub async fn start(
        store: S,
        backend: Backend,
        read_store: ReadStore,
        settings: &Settings,
        metrics: Metrics,
        keyring: pathway_engine::Keyring,
    ) -> Workers<S> {
        let health = WorkerHealth::new(metrics.clone());
        let (stop_sagas, sagas_stop) = watch::channel(false);
        let (stop_others, others_stop) = watch::channel(false);
        let (stop_projectors, projectors_stop) = watch::channel(false);
        let mut others = JoinSet::new();
        let w = &settings.workers;

        // Projectors: the models catch up together and then follow the log
        // together (`follow_together`), each event read, decoded and its
        // personal fields opened once for all of them. Each model has a task
        // that ends with its final checkpoint (or why it stopped) when the
        // projectors stop.
        let mut projectors = JoinSet::new();
        let mut projector_group = None;
        if settings.projectors {
            health.set(PROJECTORS, WorkerState::Running);
            let options = pathway_projections::runtime::ProjectorOptions {
                keyring: Some(keyring.clone()),
                ..Default::default()
            };
            let mut members = Vec::new();
            for projection in models::all() {
                let (done_tx, done) = oneshot::channel();
                let name = projection.name();
                members.push(Member::new(projection, done_tx));
                // Named by its span: task names need tokio_unstable.
                let span = tracing::info_span!("projector", model = name);
                projectors.spawn(tracing::Instrument::instrument(
                    async move {
                        let stopped = done.await.unwrap_or_else(|_| {
                            Err(ProjectionError::Storage(
                                "the projectors' shared run ended without a word".to_owned(),
                            ))
                        });
                        (name, stopped)
                    },
                    span,
                ));
            }
            projector_group = Some(tokio::spawn(tracing::Instrument::instrument(
                follow_together(
                    store.clone(),
                    read_store.clone(),
                    members,
                    projectors_stop.clone(),
                    options,
                    health.clone(),
                ),
                tracing::info_span!("projectors"),
            )));
        } else {
            health.set(PROJECTORS, WorkerState::Off("switched off".to_owned()));
        }

        // Workflows.
        let saga_status = Arc::new(WorkflowStatus::default());
        let sagas = if settings.sagas {
            health.set(SAGAS, WorkerState::Standby);
            let lock = match &backend {
                Backend::Postgres(pg) => LeaderLock::postgres(pg.pool().clone()),
                Backend::Embedded(dir) => LeaderLock::in_process(dir.display().to_string()),
            };
            let options = WorkflowOptions {
                sweep_interval: Duration::from_millis(w.sweep_interval_ms),
                overdue_after: Duration::from_millis(w.timer_overdue_after_ms),
                sweeper_name: format!("serve-{}", uuid::Uuid::new_v4().simple()),
                keyring: Some(keyring.clone()),
            };
            let (store, status, health) = (store.clone(), saga_status.clone(), health.clone());
            Some(tokio::spawn(tracing::Instrument::instrument(
                async move {
                    match pathway_saga::workflows::run(store, lock, options, status, sagas_stop)
                        .await
                    {
                        Ok(()) => health.set(SAGAS, WorkerState::Off("stopped".to_owned())),
                        Err(e) => {
                            tracing::error!(error = %e, "workflows stopped");
                            health.set(SAGAS, WorkerState::Failed(e.to_string()));
                        }
                    }
                },
                tracing::info_span!("workflows"),
            )))
        } else {
            health.set(SAGAS, WorkerState::Off("switched off".to_owned()));
            None
        };

        // Relay.
        let relay_view = Arc::new(RelayView::default());
        let relay_on = settings.relay && settings.nats.url.is_some();
        match (&settings.nats.url, settings.relay) {
            (_, false) => health.set(RELAY, WorkerState::Off("switched off".to_owned())),
            (None, true) => {
                tracing::info!(
                    "relay off: no NATS URL configured (set PATHWAY_NATS_URL, --nats-url or [nats] url)"
                );
                health.set(RELAY, WorkerState::Off("no NATS URL configured".to_owned()));
            }
            (Some(url), true) => {
                health.set(RELAY, WorkerState::Standby);
                let n = &settings.nats;
                let client = pathway_bus::connect(
                    url,
                    n.user.as_deref(),
                    n.password.as_ref().map(|p| p.expose()),
                    None,
                )
                .await;
                match client {
                    Err(e) => {
                        tracing::error!(error = %e, "relay cannot connect to NATS");
                        health.set(RELAY, WorkerState::Failed(e.to_string()));
                    }
                    Ok(client) => {
                        let (view, metrics, health) =
                            (relay_view.clone(), metrics.clone(), health.clone());
                        let stop = others_stop.clone();
                        let (max_bytes, replicas) =
                            (n.stream_max_bytes, usize::from(n.stream_replicas));
                        let name = n.relay_name.clone();
                        let store = store.clone();
                        let backend = backend.clone();
                        let keyring = keyring.clone();
                        others.spawn(tracing::Instrument::instrument(
                            async move {
                                let result = match backend {
                                    Backend::Postgres(pg) => {
                                        let c = PgCoordinator::new(pg.pool().clone(), &name);
                                        let c = Observed {
                                            inner: c,
                                            view,
                                            metrics: metrics.clone(),
                                            health: health.clone(),
                                        };
                                        Relay::new(store, c, client)
                                            .with_stream_max_bytes(max_bytes)
                                            .with_stream_replicas(replicas)
                                            .with_keyring(keyring)
                                            .run_until(stop)
                                            .await
                                    }
                                    Backend::Embedded(dir) => {
                                        let c = FileCoordinator::new(&dir, &name);
                                        let c = Observed {
                                            inner: c,
                                            view,
                                            metrics: metrics.clone(),
                                            health: health.clone(),
                                        };
                                        Relay::new(store, c, client)
                                            .with_stream_max_bytes(max_bytes)
                                            .with_stream_replicas(replicas)
                                            .with_keyring(keyring)
                                            .run_until(stop)
                                            .await
                                    }
                                };
                                metrics.relay_leader.set(0);
                                match result {
                                    Ok(()) => {
                                        health.set(RELAY, WorkerState::Off("stopped".to_owned()))
                                    }
                                    Err(e) => {
                                        tracing::error!(error = %e, "relay failed");
                                        health.set(RELAY, WorkerState::Failed(e.to_string()));
                                    }
                                }
                            },
                            tracing::info_span!("relay"),
                        ));
                    }
                }
            }
        }

        // Tail verification of the hash chain.
        if w.chain_verify_interval_ms > 0 {
            health.set(CHAIN_VERIFIER, WorkerState::Running);
            others.spawn(verify_chain_tail(
                store.clone(),
                Duration::from_millis(w.chain_verify_interval_ms),
                w.chain_verify_batch_events_max,
                metrics.clone(),
                others_stop.clone(),
            ));
        } else {
            health.set(CHAIN_VERIFIER, WorkerState::Off("switched off".to_owned()));
        }

        // Worker metrics.
        others.spawn(refresh_metrics(
            store.clone(),
            backend,
            settings.nats.relay_name.clone(),
            relay_on,
            relay_view,
            settings.sagas.then_some(saga_status),
            metrics,
            health.clone(),
            others_stop,
        ));

        Workers {
            store,
            read_store,
            health,
            stop_sagas,
            sagas,
            stop_others,
            others,
            stop_projectors,
            projectors,
            projector_group,
            projectors_on: settings.projectors,
            keyring,
        }
    }

    /// The workers' states, for the readiness layer.
    pub fn health(&self) -> WorkerHealth {
        self.health.clone()
    }

    /// Stops every worker (see the module docs) by `deadline`; a stage
    /// still running then is abandoned with an error logged.
    pub async fn stop(mut self, deadline: tokio::time::Instant) {
        self.stop_sagas.send(true).ok();
        if let Some(mut sagas) = self.sagas.take()
            && tokio::time::timeout_at(deadline, &mut sagas).await.is_err()
        {
            tracing::error!("workflows did not stop within the drain timeout; abandoned");
            sagas.abort();
        }
        self.stop_others.send(true).ok();
        if tokio::time::timeout_at(deadline, async {
            while self.others.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::error!("relay or chain verifier did not stop within the drain timeout");
            self.others.abort_all();
        }
        self.stop_projectors.send(true).ok();
        let projectors = async {
            let mut failed = false;
            while let Some(done) = self.projectors.join_next().await {
                match done {
                    Ok((name, Ok(checkpoint))) => {
                        tracing::info!(model = name, checkpoint, "projector stopped");
                    }
                    Ok((name, Err(e))) => {
                        failed = true;
                        tracing::error!(model = name, error = %e, "projector failed");
                    }
                    Err(e) => {
                        failed = true;
                        tracing::error!(error = %e, "projector task panicked");
                    }
                }
            }
            if self.projectors_on && !failed {
                // The workflows above may have appended after the last
                // batch: one more catch-up leaves every checkpoint at the head.
                let options = pathway_projections::runtime::ProjectorOptions {
                    keyring: Some(self.keyring.clone()),
                    ..Default::default()
                };
                match pathway_projections::runtime::catch_up_many_with(
                    &self.store,
                    &self.read_store,
                    &models::all(),
                    &options,
                )
                .await
                {
                    Ok(checkpoints) => {
                        tracing::info!(?checkpoints, "projectors caught up to the head")
                    }
                    Err(e) => tracing::error!(error = %e, "final projector catch-up failed"),
                }
            }
        };
        if tokio::time::timeout_at(deadline, projectors).await.is_err() {
            tracing::error!("projectors did not stop within the drain timeout");
            self.projectors.abort_all();
        }
        if let Some(group) = self.projector_group.take() {
            group.abort();
        }
    }
}

/// A model of the projectors following together.
struct Member {
    projection: Arc<dyn Projection>,
    /// Told the model's final checkpoint (or why it stopped) when the
    /// projectors stop; `None` once told.
    done: Option<oneshot::Sender<Result<u64, ProjectionError>>>,
    resyncs: runtime::Resyncs,
    /// After a failure: when it is back in the shared run.
    out_until: Option<tokio::time::Instant>,
}

impl Member {
    fn new(
        projection: Arc<dyn Projection>,
        done: oneshot::Sender<Result<u64, ProjectionError>>,
    ) -> Self {
        Member {
            projection,
            done: Some(done),
            resyncs: runtime::Resyncs::default(),
            out_until: None,
        }
    }

    fn finish(&mut self, stopped: Result<u64, ProjectionError>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(stopped);
        }
    }
}

/// Catches the models up together, then has them follow the log together
/// ([`runtime::follow_many_with`]) until asked to stop. A run ends when one
/// model ends; the next run takes the others on at once. A model whose
/// checkpoint a rebuild moved is taken on from there; one that failed sits
/// out for [`PROJECTOR_RESTART_BACKOFF_MS`] (reported in the health) and
/// then rejoins (the run in progress stops at its checkpoints to take it
/// in), so a model that recovers, after a database restart say, reads with
/// the others again. A failure of the shared reader (the log unreachable)
/// is retried after the same pause. On stop, every model's task is told
/// its final checkpoint, or why it stopped.
async fn follow_together<S: EventStore + Clone>(
    store: S,
    target: ReadStore,
    mut members: Vec<Member>,
    mut stop: watch::Receiver<bool>,
    options: ProjectorOptions,
    health: WorkerHealth,
) {
    let backoff = Duration::from_millis(PROJECTOR_RESTART_BACKOFF_MS);
    // Asked to stop first: the models then stop at once, at their checkpoints.
    let all: Vec<_> = members.iter().map(|m| Arc::clone(&m.projection)).collect();
    tokio::select! {
        caught_up = runtime::catch_up_many_with(&store, &target, &all, &options) => {
            if let Err(e) = caught_up {
                tracing::warn!(error = %e, "shared catch-up failed; the models follow from their checkpoints");
            }
        }
        _ = stop.wait_for(|s| *s) => {}
    }
    loop {
        let stopping = *stop.borrow();
        let now = tokio::time::Instant::now();
        // On stop every model not yet told takes part in one last run (it
        // reads nothing), to be told its checkpoint.
        let running: Vec<usize> = (0..members.len())
            .filter(|&i| {
                let m = &members[i];
                m.done.is_some() && (stopping || m.out_until.is_none_or(|back| back <= now))
            })
            .collect();
        if members.iter().all(|m| m.done.is_none()) {
            return;
        }
        let back = members
            .iter()
            .filter_map(|m| m.out_until)
            .filter(|back| *back > now)
            .min();
        let rejoining = running.iter().any(|&i| members[i].out_until.is_some());
        for &i in &running {
            members[i].out_until = None;
        }
        if rejoining && !stopping {
            health.set(PROJECTORS, WorkerState::Running);
        }
        if running.is_empty() {
            // Every model left sits out: wait for the first to come back.
            paused_until(&mut stop, back.unwrap_or(now + backoff)).await;
            continue;
        }
        let projections: Vec<_> = running
            .iter()
            .map(|&i| Arc::clone(&members[i].projection))
            .collect();
        let (end_run, run_stop) = watch::channel(stopping);
        let run = runtime::follow_many_with(&store, &target, &projections, run_stop, &options);
        tokio::pin!(run);
        let ended = loop {
            let ending = *end_run.borrow();
            tokio::select! {
                ended = &mut run => break ended,
                _ = stop.wait_for(|s| *s), if !ending => {
                    end_run.send_replace(true);
                }
                _ = tokio::time::sleep_until(back.unwrap_or(now)), if !ending && back.is_some() => {
                    end_run.send_replace(true);
                }
            }
        };
        let stopping = *stop.borrow();
        let ends = match ended {
            Ok(ends) => ends,
            Err(e) => {
                tracing::error!(error = %e, "the projectors' log reader failed; restarting");
                if stopping {
                    for &i in &running {
                        members[i].finish(Err(ProjectionError::Storage(e.to_string())));
                    }
                    continue;
                }
                health.set(PROJECTORS, WorkerState::Failed(format!("log reader: {e}")));
                if !paused(&mut stop).await {
                    health.set(PROJECTORS, WorkerState::Running);
                }
                continue;
            }
        };
        let mut one_ended = false;
        for (&i, end) in running.iter().zip(ends) {
            let member = &mut members[i];
            let name = member.projection.name();
            let failure = match end {
                runtime::Followed::Stopped(checkpoint) => {
                    if stopping {
                        member.finish(Ok(checkpoint));
                    }
                    continue;
                }
                runtime::Followed::Moved { expected, found } => {
                    one_ended = true;
                    match member.resyncs.moved(name, expected, found) {
                        Ok(resyncs) => {
                            tracing::warn!(
                                model = name,
                                expected,
                                found,
                                resyncs,
                                "checkpoint moved by another writer; resynchronising"
                            );
                            continue;
                        }
                        Err(e) => e,
                    }
                }
                runtime::Followed::Failed(e) => {
                    one_ended = true;
                    e
                }
            };
            tracing::error!(model = name, error = %failure, "projector failed; restarting");
            if stopping {
                member.finish(Err(failure));
            } else {
                health.set(
                    PROJECTORS,
                    WorkerState::Failed(format!("{name}: {failure}")),
                );
                member.out_until = Some(tokio::time::Instant::now() + backoff);
            }
        }
        let rejoin_due = back.is_some_and(|back| back <= tokio::time::Instant::now());
        if !stopping && !one_ended && !rejoin_due {
            // Nobody ended, nobody asked to stop: not expected, but never spin.
            tracing::warn!("the projectors' shared run ended on its own; restarting");
            paused(&mut stop).await;
        }
    }
}

/// Waits [`PROJECTOR_RESTART_BACKOFF_MS`]; `true` when asked to stop
/// before or meanwhile.
async fn paused(stop: &mut watch::Receiver<bool>) -> bool {
    let until = tokio::time::Instant::now() + Duration::from_millis(PROJECTOR_RESTART_BACKOFF_MS);
    paused_until(stop, until).await
}

/// Waits until `until`; `true` when asked to stop before or meanwhile.
async fn paused_until(stop: &mut watch::Receiver<bool>, until: tokio::time::Instant) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(until) => {}
        _ = stop.wait_for(|s| *s) => return true,
    }
    *stop.borrow()
}

/// Verifies the hash chain over the positions appended since the last check
/// (starting with the last `batch_max` positions at start), at most
/// `batch_max` positions every `interval`. Each bad position found adds one to
/// `pathway_chain_verification_failures_total` and is logged as an error.
async fn verify_chain_tail<S: EventStore>(
    store: S,
    interval: Duration,
    batch_max: u64,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let batch_max = batch_max.max(1);
    let mut next: Option<u64> = None;
    loop {
        match store.head().await {
            Ok(head) => {
                let from = *next.get_or_insert_with(|| {
                    head.position.saturating_sub(batch_max).saturating_add(1)
                });
                if head.position >= from {
                    let to = head.position.min(from.saturating_add(batch_max - 1));
                    match store.verify(from, Some(to)).await {
                        Ok(report) => match report.first_break {
                            None => {
                                metrics
                                    .chain_verified_position
                                    .set(i64::try_from(to).unwrap_or(i64::MAX));
                                next = Some(to + 1);
                            }
                            Some(b) => {
                                // A missing seed (the record before `from`)
                                // was reported by the check before.
                                if b.position >= from {
                                    metrics.chain_verification_failures.inc();
                                    tracing::error!(
                                        position = b.position,
                                        kind = %b.kind,
                                        "hash chain verification failed: the log was altered; \
                                         run `pathway audit verify` (docs/operations.md, Monitor)"
                                    );
                                    metrics
                                        .chain_verified_position
                                        .set(i64::try_from(b.position).unwrap_or(i64::MAX));
                                }
                                next = Some(b.position.max(from) + 1);
                            }
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "chain tail verification failed to run")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "chain tail verification: no head"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stopped(&mut stop) => return,
        }
    }
}

/// Copies the workers' state into the metrics every [`METRICS_REFRESH_MS`].
#[allow(clippy::too_many_arguments)]
async fn refresh_metrics<S: EventStore>(
    store: S,
    backend: Backend,
    relay_name: String,
    relay_on: bool,
    relay: Arc<RelayView>,
    sagas: Option<Arc<WorkflowStatus>>,
    metrics: Metrics,
    health: WorkerHealth,
    mut stop: watch::Receiver<bool>,
) {
    let mut fired_seen = 0;
    loop {
        if let Some(status) = &sagas {
            let leading = status.leading();
            metrics.saga_sweeper_leader.set(i64::from(leading));
            metrics
                .saga_timers_pending
                .set(i64::try_from(status.timers_pending()).unwrap_or(i64::MAX));
            metrics
                .saga_timers_overdue
                .set(i64::try_from(status.timers_overdue()).unwrap_or(i64::MAX));
            let fired = status.timers_fired();
            metrics
                .saga_timers_fired
                .inc_by(fired.saturating_sub(fired_seen));
            fired_seen = fired;
            // A worker that ended on its own has set its final state.
            if !matches!(health.get(SAGAS), Some(WorkerState::Off(_))) {
                health.set(
                    SAGAS,
                    match status.last_error() {
                        Some(e) => WorkerState::Failed(e),
                        None if leading => WorkerState::Running,
                        None => WorkerState::Standby,
                    },
                );
            }
        }
        if relay_on && let Ok(head) = store.head().await {
            let checkpoint = if relay.leading.load(Ordering::Relaxed) {
                Some(relay.checkpoint.load(Ordering::Relaxed))
            } else {
                match &backend {
                    Backend::Postgres(pg) => pg_relay_checkpoint(pg, &relay_name).await,
                    // The leader's file is locked; only the leader knows.
                    Backend::Embedded(_) => None,
                }
            };
            if let Some(c) = checkpoint {
                metrics
                    .relay_lag_positions
                    .set(i64::try_from(head.position.saturating_sub(c)).unwrap_or(i64::MAX));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(METRICS_REFRESH_MS)) => {}
            () = stopped(&mut stop) => return,
        }
    }
}

/// The relay checkpoint as the leader last wrote it (None before any relay led).
async fn pg_relay_checkpoint(pg: &PostgresStore, relay: &str) -> Option<u64> {
    let client = pg.pool().get().await.ok()?;
    let row = client
        .query_opt(
            "SELECT position FROM pathway_relay_checkpoint WHERE relay = $1",
            &[&relay],
        )
        .await
        .ok()??;
    u64::try_from(row.get::<_, i64>(0)).ok()
}

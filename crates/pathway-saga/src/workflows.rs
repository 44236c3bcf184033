//! The workflows as one long-running worker, shared by `pathway saga run` and
//! `pathway serve`: the phase-out, city annual report and graduate ledger
//! routers and the timer sweeper, run by the holder of the [`LeaderLock`].
//!
//! A standby keeps a [`TimerIndex`] of its own (so its [`WorkflowStatus`]
//! still reports pending and overdue timers) and tries the lock every
//! [`LEADER_STANDBY_POLL_MS`]; when the leader's lock ends (process gone,
//! connection dropped) a standby takes over within about that time. A leader
//! checks it still holds the lock after every sweep, and on losing it stops
//! its routers and stands by again. A failure (the log unreachable, a
//! command failing) stops the leader's routers, releases the lock, and is
//! retried after [`WORKFLOW_RETRY_BACKOFF_MS`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use pathway_store::EventStore;
use tokio::sync::watch;

use crate::leader::{LEADER_STANDBY_POLL_MS, LeaderLock};
use crate::{
    Clock, Router, SagaError, Sweeper, SystemClock, TimerIndex,
    city_report::CityReportSaga,
    ledger::LedgerSaga,
    no_faults,
    phaseout::{EngineSink, PhaseOutSaga},
};

/// Default pause between sweeps, in milliseconds.
pub const SWEEP_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Default age past its due time at which a pending timer counts as overdue.
pub const TIMER_OVERDUE_AFTER_MS_DEFAULT: u64 = 60_000;
/// Pause after a failed leadership term before trying again.
pub const WORKFLOW_RETRY_BACKOFF_MS: u64 = 2_000;

/// How the workflows run.
#[derive(Debug, Clone)]
pub struct WorkflowOptions {
    /// Pause between sweeps.
    pub sweep_interval: Duration,
    /// A pending timer this long past its due time counts as overdue.
    pub overdue_after: Duration,
    /// The sweeper's name, recorded in each firing.
    pub sweeper_name: String,
    /// Opens personal fields of the routers' inputs (and seals those of
    /// their commands); without one, sagas see personal fields sealed.
    pub keyring: Option<pathway_engine::Keyring>,
}

impl Default for WorkflowOptions {
    fn default() -> Self {
        WorkflowOptions {
            sweep_interval: Duration::from_millis(SWEEP_INTERVAL_MS_DEFAULT),
            overdue_after: Duration::from_millis(TIMER_OVERDUE_AFTER_MS_DEFAULT),
            sweeper_name: "sweeper".to_owned(),
            keyring: None,
        }
    }
}

/// What the worker is doing, for metrics and readiness; updated as it runs.
#[derive(Debug, Default)]
pub struct WorkflowStatus {
    leading: AtomicBool,
    timers_pending: AtomicU64,
    timers_overdue: AtomicU64,
    timers_fired: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl WorkflowStatus {
    /// Whether this process holds the lock and runs the routers and sweeper.
    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }
    /// Pending timers, as of the last sweep (leader) or index refresh (standby).
    pub fn timers_pending(&self) -> u64 {
        self.timers_pending.load(Ordering::Relaxed)
    }
    /// Pending timers more than `overdue_after` past their due time.
    pub fn timers_overdue(&self) -> u64 {
        self.timers_overdue.load(Ordering::Relaxed)
    }
    /// Timers this process fired.
    pub fn timers_fired(&self) -> u64 {
        self.timers_fired.load(Ordering::Relaxed)
    }
    /// The error of the last failed term, cleared when a term runs well.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("status lock").clone()
    }

    fn set_error(&self, e: Option<String>) {
        *self.last_error.lock().expect("status lock") = e;
    }

    fn observe(&self, index: &TimerIndex, overdue_after: Duration) {
        let overdue_before =
            Utc::now() - chrono::Duration::from_std(overdue_after).unwrap_or(chrono::Duration::MAX);
        let overdue = index.due(overdue_before, usize::MAX).len();
        self.timers_pending
            .store(index.len() as u64, Ordering::Relaxed);
        self.timers_overdue.store(overdue as u64, Ordering::Relaxed);
    }
}

/// Why a leadership term ended.
enum TermEnd {
    Shutdown,
    LockLost,
}

fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Waits `pause` or until shutdown; true when shutting down.
async fn pause_or_stop(shutdown: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => stopping(shutdown),
        changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
    }
}

/// Runs the workflows until `shutdown` turns true (or its sender is
/// dropped): stands by until `lock` is taken, then leads. On shutdown the
/// routers finish their current batch and write their checkpoints, and the
/// lock is released.
pub async fn run<S: EventStore + Clone>(
    store: S,
    mut lock: LeaderLock,
    options: WorkflowOptions,
    status: Arc<WorkflowStatus>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), SagaError> {
    let mut standby_index = TimerIndex::new();
    let mut announced_standby = false;
    loop {
        if stopping(&shutdown) {
            return Ok(());
        }
        match lock.try_acquire().await {
            Ok(true) => {
                tracing::info!("workflow lock taken: leading (routers and timer sweeper)");
                announced_standby = false;
                status.leading.store(true, Ordering::Relaxed);
                let term = lead(&store, &mut lock, &options, &status, shutdown.clone()).await;
                status.leading.store(false, Ordering::Relaxed);
                lock.release();
                match term {
                    Ok(TermEnd::Shutdown) => {
                        tracing::info!("workflows stopped");
                        return Ok(());
                    }
                    Ok(TermEnd::LockLost) => {
                        tracing::warn!("workflow lock lost: standing by");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "workflows failed; retrying");
                        status.set_error(Some(e.to_string()));
                        if pause_or_stop(
                            &mut shutdown,
                            Duration::from_millis(WORKFLOW_RETRY_BACKOFF_MS),
                        )
                        .await
                        {
                            return Ok(());
                        }
                    }
                }
                continue;
            }
            Ok(false) => {
                if !announced_standby {
                    tracing::info!("workflow lock held elsewhere: standing by");
                    announced_standby = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "workflow lock attempt failed"),
        }
        match standby_index.catch_up(&store).await {
            Ok(_) => {
                status.observe(&standby_index, options.overdue_after);
                status.set_error(None);
            }
            Err(e) => {
                tracing::warn!(error = %e, "timer index refresh failed");
                status.set_error(Some(e.to_string()));
            }
        }
        if pause_or_stop(&mut shutdown, Duration::from_millis(LEADER_STANDBY_POLL_MS)).await {
            return Ok(());
        }
    }
}

/// One leadership term: the routers in tasks, the sweeper in this one.
async fn lead<S: EventStore + Clone>(
    store: &S,
    lock: &mut LeaderLock,
    options: &WorkflowOptions,
    status: &WorkflowStatus,
    mut shutdown: watch::Receiver<bool>,
) -> Result<TermEnd, SagaError> {
    let engine = match &options.keyring {
        Some(keyring) => pathway_engine::Engine::new(store.clone(), keyring.clone()),
        None => pathway_engine::Engine::unsealed(store.clone()),
    };
    let (stop, routers_stop) = watch::channel(false);
    let mut routers = tokio::task::JoinSet::new();
    let started: Result<(), SagaError> = async {
        let phaseout = Router::start(
            store.clone(),
            PhaseOutSaga::default(),
            EngineSink(engine.clone()),
            "phaseout",
            no_faults(),
        )
        .await?;
        routers.spawn(phaseout.run(routers_stop.clone()));
        let city_report = Router::start(
            store.clone(),
            CityReportSaga::default(),
            EngineSink(engine.clone()),
            "cityreport",
            no_faults(),
        )
        .await?;
        routers.spawn(city_report.run(routers_stop.clone()));
        let ledger = Router::start(
            store.clone(),
            LedgerSaga,
            EngineSink(engine.clone()),
            "ledger",
            no_faults(),
        )
        .await?;
        routers.spawn(ledger.run(routers_stop.clone()));
        Ok(())
    }
    .await;
    let clock = SystemClock;
    let mut sweeper = Sweeper::new(store.clone(), clock, &options.sweeper_name, no_faults());
    let term = match started {
        Err(e) => Err(e),
        Ok(()) => loop {
            if let Some(done) = routers.try_join_next() {
                break Err(router_ended(done));
            }
            match sweeper.sweep_until_idle_or(|| *shutdown.borrow()).await {
                Ok(report) => {
                    status
                        .timers_fired
                        .fetch_add(report.fired, Ordering::Relaxed);
                    if report.fired + report.fired_elsewhere + report.stale > 0 {
                        tracing::info!(?report, now = %clock.now(), "swept");
                    }
                    status.observe(sweeper.index(), options.overdue_after);
                    status.set_error(None);
                }
                Err(e) => break Err(e),
            }
            if pause_or_stop(&mut shutdown, options.sweep_interval).await {
                break Ok(TermEnd::Shutdown);
            }
            if !lock.still_held().await {
                break Ok(TermEnd::LockLost);
            }
        },
    };
    stop.send(true).ok();
    let mut first_error = None;
    while let Some(done) = routers.join_next().await {
        if let Err(e) = flatten(done) {
            tracing::error!(error = %e, "workflow router failed");
            first_error.get_or_insert(e);
        }
    }
    match (term, first_error) {
        (Err(e), _) | (Ok(_), Some(e)) => Err(e),
        (Ok(end), None) => Ok(end),
    }
}

fn flatten(done: Result<Result<(), SagaError>, tokio::task::JoinError>) -> Result<(), SagaError> {
    done.map_err(|e| SagaError::Leadership(format!("router task: {e}")))?
}

/// A router that returned while it should run: its error, or a note that it stopped.
fn router_ended(done: Result<Result<(), SagaError>, tokio::task::JoinError>) -> SagaError {
    match flatten(done) {
        Err(e) => e,
        Ok(()) => SagaError::Leadership("a router stopped unexpectedly".to_owned()),
    }
}

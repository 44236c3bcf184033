//! The due-timer index and the sweeper that fires due timers.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use pathway_domain::{Event, pb};
use pathway_engine::decode;
use pathway_store::{EventStore, ExpectedVersion, ReadFilter, StoreError};

use crate::log::{self, SAGA_CATEGORY, decode_error, from_ts, new_event, ts};
use crate::{Clock, FaultHook, FaultPoint, SagaError, TimerStatus};

/// Events the index reads from the log per call.
pub const INDEX_READ_BATCH_EVENTS: usize = 1_000;
/// Most timers one sweep takes from the index.
pub const SWEEP_TIMERS_MAX: usize = 20_000;
/// Firings in flight at once (appends waiting for the group commit).
pub const FIRE_CONCURRENCY: usize = 512;
/// Appends of one firing tried before giving up on a contended saga.
pub const FIRE_ATTEMPTS_MAX: u32 = 10;

/// A pending timer as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    pub saga_id: String,
    pub timer: String,
    pub generation: u64,
    pub due_at: DateTime<Utc>,
    /// The saga stream's version as the index last saw it.
    pub version: u64,
}

type Key = (DateTime<Utc>, String, String, u64);

/// Pending timers of every saga, ordered by due time: a projection of the
/// `saga` category of the log.
#[derive(Debug, Default)]
pub struct TimerIndex {
    next_position: u64,
    due: BTreeSet<Key>,
    /// (saga, timer) → its pending generation's key.
    pending: HashMap<(String, String), Key>,
    /// Last version seen of each saga stream.
    versions: HashMap<String, u64>,
}

impl TimerIndex {
    pub fn new() -> Self {
        TimerIndex {
            next_position: 1,
            ..TimerIndex::default()
        }
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// The earliest due time.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.due.first().map(|k| k.0)
    }

    /// Reads the saga events committed since the last call.
    pub async fn catch_up<S: EventStore>(&mut self, store: &S) -> Result<u64, SagaError> {
        let filter = ReadFilter {
            event_types: Vec::new(),
            categories: vec![SAGA_CATEGORY.to_owned()],
        };
        let mut read = 0;
        loop {
            let head = store.head().await?;
            let batch = store
                .read_all(self.next_position, INDEX_READ_BATCH_EVENTS, &filter)
                .await?;
            let n = batch.len();
            for r in &batch {
                let event = decode(r).map_err(|e| decode_error(r, e.to_string()))?;
                self.apply(&r.stream_id, r.stream_version, &event);
                self.next_position = r.position + 1;
            }
            read += n as u64;
            if n < INDEX_READ_BATCH_EVENTS {
                self.next_position = self.next_position.max(head.position + 1);
                return Ok(read);
            }
        }
    }

    fn apply(&mut self, saga_id: &str, version: u64, event: &Event) {
        let known = self.versions.entry(saga_id.to_owned()).or_default();
        *known = (*known).max(version);
        match event {
            Event::SagaStepTaken(s) => {
                for t in &s.timers {
                    let id = (saga_id.to_owned(), t.timer.clone());
                    match pb::SagaTimerChange::try_from(t.change) {
                        Ok(pb::SagaTimerChange::Scheduled) => {
                            let key = (
                                from_ts(t.due_at.as_ref()),
                                saga_id.to_owned(),
                                t.timer.clone(),
                                t.generation,
                            );
                            if let Some(old) = self.pending.insert(id, key.clone()) {
                                self.due.remove(&old);
                            }
                            self.due.insert(key);
                        }
                        Ok(pb::SagaTimerChange::Cancelled) => self.remove(&id, t.generation),
                        _ => {}
                    }
                }
            }
            Event::SagaTimerFired(f) => {
                self.remove(&(saga_id.to_owned(), f.timer.clone()), f.generation)
            }
            _ => {}
        }
    }

    fn remove(&mut self, id: &(String, String), generation: u64) {
        if self.pending.get(id).is_some_and(|k| k.3 == generation)
            && let Some(key) = self.pending.remove(id)
        {
            self.due.remove(&key);
        }
    }

    /// Timers due at or before `now`, earliest first, at most `max`.
    pub fn due(&self, now: DateTime<Utc>, max: usize) -> Vec<DueTimer> {
        self.due
            .iter()
            .take_while(|k| k.0 <= now)
            .take(max)
            .map(|(due_at, saga_id, timer, generation)| DueTimer {
                saga_id: saga_id.clone(),
                timer: timer.clone(),
                generation: *generation,
                due_at: *due_at,
                version: self.versions.get(saga_id).copied().unwrap_or(0),
            })
            .collect()
    }

    /// Every pending timer, earliest first.
    pub fn all(&self) -> Vec<DueTimer> {
        self.due(DateTime::<Utc>::MAX_UTC, usize::MAX)
    }

    fn forget(&mut self, d: &DueTimer) {
        self.remove(&(d.saga_id.clone(), d.timer.clone()), d.generation);
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Firings this sweeper appended.
    pub fired: u64,
    /// Due timers another sweeper fired first.
    pub fired_elsewhere: u64,
    /// Index entries the stream showed rescheduled or cancelled.
    pub stale: u64,
}

enum Outcome {
    Fired,
    FiredElsewhere,
    Stale,
    NotDue,
}

/// Fires due timers; several may run against one log.
pub struct Sweeper<S, C> {
    store: S,
    clock: C,
    index: TimerIndex,
    name: String,
    hook: FaultHook,
    concurrency: usize,
    timers_max: usize,
}

impl<S, C> std::fmt::Debug for Sweeper<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeper")
            .field("name", &self.name)
            .field("pending", &self.index.len())
            .finish_non_exhaustive()
    }
}

impl<S: EventStore + Clone, C: Clock + Clone> Sweeper<S, C> {
    pub fn new(store: S, clock: C, name: &str, hook: FaultHook) -> Self {
        Sweeper {
            store,
            clock,
            index: TimerIndex::new(),
            name: name.to_owned(),
            hook,
            concurrency: FIRE_CONCURRENCY,
            timers_max: SWEEP_TIMERS_MAX,
        }
    }

    /// Timers one sweep fires at most (default and most [`SWEEP_TIMERS_MAX`]).
    pub fn with_timers_per_sweep(mut self, timers: usize) -> Self {
        self.timers_max = timers.clamp(1, SWEEP_TIMERS_MAX);
        self
    }

    /// Firings in flight at once (default [`FIRE_CONCURRENCY`]).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    pub fn index(&self) -> &TimerIndex {
        &self.index
    }

    /// Brings the index up to the log, then fires every timer due now (at
    /// most [`SWEEP_TIMERS_MAX`], or as set by
    /// [`Sweeper::with_timers_per_sweep`]).
    #[tracing::instrument(skip_all, fields(sweeper = %self.name))]
    pub async fn sweep_once(&mut self) -> Result<SweepReport, SagaError> {
        self.index.catch_up(&self.store).await?;
        let due = self.index.due(self.clock.now(), self.timers_max);
        let this = &*self;
        let results: Vec<(DueTimer, Result<Outcome, SagaError>)> = futures::stream::iter(due)
            .map(|d| async move {
                let outcome = this.fire(&d).await;
                (d, outcome)
            })
            .buffer_unordered(this.concurrency)
            .collect()
            .await;
        let mut report = SweepReport::default();
        let mut first_error = None;
        for (d, outcome) in results {
            match outcome {
                Ok(Outcome::Fired) => report.fired += 1,
                Ok(Outcome::FiredElsewhere) => report.fired_elsewhere += 1,
                Ok(Outcome::Stale) => report.stale += 1,
                Ok(Outcome::NotDue) => continue,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            }
            self.index.forget(&d);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Sweeps until nothing is due; returns the total.
    pub async fn sweep_until_idle(&mut self) -> Result<SweepReport, SagaError> {
        self.sweep_until_idle_or(|| false).await
    }

    /// [`Sweeper::sweep_until_idle`], but stops after the sweep in hand (of
    /// at most [`Sweeper::with_timers_per_sweep`] timers) once `stop()` is true: while
    /// timers keep falling due, a shutdown must not wait for none to be.
    pub async fn sweep_until_idle_or(
        &mut self,
        stop: impl Fn() -> bool,
    ) -> Result<SweepReport, SagaError> {
        let mut total = SweepReport::default();
        loop {
            let r = self.sweep_once().await?;
            total.fired += r.fired;
            total.fired_elsewhere += r.fired_elsewhere;
            total.stale += r.stale;
            if r.fired + r.fired_elsewhere + r.stale == 0 || stop() {
                return Ok(total);
            }
        }
    }

    async fn fire(&self, d: &DueTimer) -> Result<Outcome, SagaError> {
        let mut version = d.version;
        let mut due_at = d.due_at;
        for _ in 0..FIRE_ATTEMPTS_MAX {
            let now = self.clock.now();
            if due_at > now {
                return Ok(Outcome::NotDue);
            }
            (self.hook)(FaultPoint::BeforeFireAppend, &d.saga_id)?;
            let kind = d
                .saga_id
                .strip_prefix("saga-")
                .and_then(|rest| rest.split('-').next())
                .unwrap_or_default()
                .to_owned();
            let event = Event::SagaTimerFired(pb::SagaTimerFired {
                saga_id: d.saga_id.clone(),
                saga_kind: kind,
                timer: d.timer.clone(),
                generation: d.generation,
                due_at: Some(ts(due_at)),
                fired_at: Some(ts(now)),
                sweeper: self.name.clone(),
            });
            let id_name = format!("{}/timer/{}/{}", d.saga_id, d.timer, d.generation);
            let new = new_event(event, &id_name, &d.saga_id, now, "");
            match self
                .store
                .append(&d.saga_id, ExpectedVersion::Exact(version), vec![new])
                .await
            {
                Ok(_) => {
                    (self.hook)(FaultPoint::AfterFireAppend, &d.saga_id)?;
                    return Ok(Outcome::Fired);
                }
                Err(StoreError::WrongExpectedVersion { .. } | StoreError::EventIdReused { .. }) => {
                    // The index was behind or another sweeper won: ask the
                    // stream, which is the truth.
                    let (log, _) = log::load(&self.store, &d.saga_id, false).await?;
                    match log.timers.get(&d.timer) {
                        Some(t)
                            if t.generation == d.generation && t.status == TimerStatus::Pending =>
                        {
                            version = log.version;
                            due_at = t.due_at;
                        }
                        Some(t)
                            if t.generation == d.generation
                                && matches!(t.status, TimerStatus::Fired { .. }) =>
                        {
                            return Ok(Outcome::FiredElsewhere);
                        }
                        _ => return Ok(Outcome::Stale),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(SagaError::Conflict {
            saga_id: d.saga_id.clone(),
            attempts: FIRE_ATTEMPTS_MAX,
        })
    }
}

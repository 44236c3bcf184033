//! The router: follows the log from a checkpoint and feeds each event to the
//! sagas it concerns (see the crate docs for the guarantees).

use std::time::Duration;

use chrono::{DateTime, Utc};
use pathway_domain::{Event, pb};
use pathway_engine::{CommandMeta, EngineError, decode};
use pathway_store::{EventStore, ExpectedVersion, ReadFilter, RecordedEvent, StoreError};
use uuid::Uuid;

use crate::log::{self, SAGA_NAMESPACE, decode_error, new_event, occurred_at, ts};
use crate::{
    CommandSink, FaultHook, FaultPoint, Input, InputKind, ProcessManager, SagaError, SagaLog,
    TimerRequest, TimerStatus, command_id, saga_stream,
};

/// A checkpoint is written after at most this many events handled.
pub const CHECKPOINT_EVENTS: u64 = 1_000;
/// Events read from the log per call.
pub const ROUTER_READ_BATCH_EVENTS: usize = 1_000;
/// Appends of one step tried before giving up on a contended saga.
pub const STEP_APPEND_ATTEMPTS_MAX: u32 = 10;
/// A running router looks for new events at least this often.
pub const ROUTER_POLL_INTERVAL_MS: u64 = 200;
/// The stream category of router checkpoints.
pub const ROUTER_CATEGORY: &str = "sagarouter";
/// GB/T 2260 code of the province, the region commands from sagas act in.
pub const PROVINCE_REGION: &str = "230000";

/// Feeds the log to the sagas of one process manager.
pub struct Router<S, P, K> {
    store: S,
    pm: P,
    sink: K,
    name: String,
    hook: FaultHook,
    filter: ReadFilter,
    next_position: u64,
    handled_since_checkpoint: u64,
}

impl<S, P, K> std::fmt::Debug for Router<S, P, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("name", &self.name)
            .field("next_position", &self.next_position)
            .finish_non_exhaustive()
    }
}

impl<S: EventStore + Clone, P: ProcessManager, K: CommandSink<P::Command>> Router<S, P, K> {
    /// A router named `name` resuming from its checkpoint. When the process
    /// manager's correlation learns from the log, the events below the
    /// checkpoint that it learns from are replayed to it first.
    pub async fn start(
        store: S,
        mut pm: P,
        sink: K,
        name: &str,
        hook: FaultHook,
    ) -> Result<Self, SagaError> {
        let next_position = read_checkpoint(&store, name).await?;
        let learn = pm.learning_event_types();
        if !learn.is_empty() && next_position > 1 {
            let filter = ReadFilter {
                event_types: learn.iter().map(|t| (*t).to_owned()).collect(),
                categories: Vec::new(),
            };
            let mut from = 1;
            'learn: loop {
                let batch = store
                    .read_all(from, ROUTER_READ_BATCH_EVENTS, &filter)
                    .await?;
                let n = batch.len();
                for r in &batch {
                    if r.position >= next_position {
                        break 'learn;
                    }
                    let event = open_decode(&sink, r).await?;
                    pm.correlate(&event);
                    from = r.position + 1;
                }
                if n < ROUTER_READ_BATCH_EVENTS {
                    break;
                }
            }
        }
        let mut event_types: Vec<String> =
            pm.event_types().iter().map(|t| (*t).to_owned()).collect();
        event_types.push("SagaTimerFired".to_owned());
        Ok(Router {
            store,
            pm,
            sink,
            name: name.to_owned(),
            hook,
            filter: ReadFilter {
                event_types,
                categories: Vec::new(),
            },
            next_position,
            handled_since_checkpoint: 0,
        })
    }

    /// The position of the next event to handle.
    pub fn position(&self) -> u64 {
        self.next_position
    }

    /// Handles every event committed so far, then writes the checkpoint.
    /// Returns the number of events handled.
    pub async fn run_once(&mut self) -> Result<u64, SagaError> {
        self.run_batches(|| false).await
    }

    /// [`Router::run_once`], but stops after the batch in hand (of at most
    /// [`ROUTER_READ_BATCH_EVENTS`]) once `stop()` is true: under a load
    /// that keeps the head moving, the router may never catch up, and a
    /// shutdown must not wait for it to.
    #[tracing::instrument(skip_all, fields(router = %self.name, position = self.next_position))]
    async fn run_batches(&mut self, stop: impl Fn() -> bool) -> Result<u64, SagaError> {
        let mut handled = 0;
        loop {
            let head = self.store.head().await?;
            let batch = self
                .store
                .read_all(self.next_position, ROUTER_READ_BATCH_EVENTS, &self.filter)
                .await?;
            let n = batch.len();
            for r in &batch {
                self.route(r).await?;
                self.next_position = r.position + 1;
                self.handled_since_checkpoint += 1;
                handled += 1;
                if self.handled_since_checkpoint >= CHECKPOINT_EVENTS {
                    self.checkpoint().await?;
                }
            }
            if n < ROUTER_READ_BATCH_EVENTS {
                // Every event up to the head read before this batch is
                // committed and was offered: none below it can appear later.
                self.next_position = self.next_position.max(head.position + 1);
                break;
            }
            if stop() {
                break;
            }
        }
        if self.handled_since_checkpoint > 0 {
            self.checkpoint().await?;
        }
        Ok(handled)
    }

    /// Runs until `shutdown` turns true, waking on new commits.
    pub async fn run(
        mut self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SagaError> {
        let mut head = self.store.head_changes();
        while !*shutdown.borrow() {
            head.borrow_and_update();
            self.run_batches(|| *shutdown.borrow()).await?;
            tokio::select! {
                _ = head.changed() => {}
                _ = shutdown.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(ROUTER_POLL_INTERVAL_MS)) => {}
            }
        }
        Ok(())
    }

    async fn checkpoint(&mut self) -> Result<(), SagaError> {
        let stream = format!("{ROUTER_CATEGORY}-{}", self.name);
        let event = Event::SagaRouterCheckpointed(pb::SagaRouterCheckpointed {
            router: self.name.clone(),
            next_position: self.next_position,
        });
        let id_name = format!("{stream}/{}", self.next_position);
        let at = DateTime::<Utc>::UNIX_EPOCH;
        self.store
            .append(
                &stream,
                ExpectedVersion::Any,
                vec![new_event(event, &id_name, &stream, at, "")],
            )
            .await?;
        self.handled_since_checkpoint = 0;
        Ok(())
    }

    async fn route(&mut self, r: &RecordedEvent) -> Result<(), SagaError> {
        let event = open_decode(&self.sink, r).await?;
        if let Event::SagaTimerFired(_) = &event {
            let prefix = format!("{}-{}-", log::SAGA_CATEGORY, P::KIND);
            if r.stream_id.starts_with(&prefix) {
                self.deliver(&r.stream_id, r, &event).await?;
            }
            return Ok(());
        }
        for key in self.pm.correlate(&event) {
            let saga_id = saga_stream(P::KIND, &key);
            self.deliver(&saga_id, r, &event).await?;
        }
        Ok(())
    }

    /// Hands one input to one saga: decides and appends its step and sends
    /// the step's commands, or, if the saga already handled the input, sends
    /// that step's commands again.
    async fn deliver(
        &self,
        saga_id: &str,
        r: &RecordedEvent,
        event: &Event,
    ) -> Result<(), SagaError> {
        for _ in 0..STEP_APPEND_ATTEMPTS_MAX {
            let (log, _) = log::load(&self.store, saga_id, false).await?;
            if log.last_input_position >= r.position {
                return self.resend(saga_id, r.position).await;
            }
            let (kind, at) = match event {
                Event::SagaTimerFired(f) => {
                    let current = log.timers.get(&f.timer).is_some_and(|t| {
                        t.generation == f.generation
                            && matches!(t.status, TimerStatus::Fired { .. })
                    });
                    if !current {
                        tracing::debug!(saga_id, timer = %f.timer, generation = f.generation, "stale firing ignored");
                        return Ok(());
                    }
                    (
                        InputKind::Timer {
                            timer: &f.timer,
                            due_at: log::from_ts(f.due_at.as_ref()),
                        },
                        log::from_ts(f.fired_at.as_ref()),
                    )
                }
                other => (InputKind::Event(other), occurred_at(r)),
            };
            let prefix = format!("{}-{}-", log::SAGA_CATEGORY, P::KIND);
            let input = Input {
                kind,
                key: saga_id.strip_prefix(&prefix).unwrap_or(saga_id),
                position: r.position,
                event_id: r.event_id,
                at,
            };
            let state: P::State = if log.state_json.is_empty() {
                P::State::default()
            } else {
                serde_json::from_str(&log.state_json).map_err(|e| SagaError::Decode {
                    stream: saga_id.to_owned(),
                    version: log.version,
                    detail: format!("state: {e}"),
                })?
            };
            let t = self.pm.handle(&state, &input);
            if t.state == state && t.commands.is_empty() && t.timers.is_empty() {
                return Ok(());
            }
            let step = self.step_event(saga_id, &log, r, &t)?;
            let commands = step.commands.clone();
            (self.hook)(FaultPoint::BeforeStepAppend, saga_id)?;
            let expected = if log.version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(log.version)
            };
            let id_name = format!("{saga_id}/input/{}", r.position);
            let new = new_event(
                Event::SagaStepTaken(step),
                &id_name,
                saga_id,
                at,
                &r.event_id.to_string(),
            );
            match self.store.append(saga_id, expected, vec![new]).await {
                Ok(_) => {
                    (self.hook)(FaultPoint::AfterStepAppend, saga_id)?;
                    self.send(saga_id, &commands, r.event_id, at).await?;
                    (self.hook)(FaultPoint::AfterCommands, saga_id)?;
                    return Ok(());
                }
                Err(StoreError::WrongExpectedVersion { .. } | StoreError::EventIdReused { .. }) => {
                    tracing::debug!(saga_id, "saga stream moved, reloading");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(SagaError::Conflict {
            saga_id: saga_id.to_owned(),
            attempts: STEP_APPEND_ATTEMPTS_MAX,
        })
    }

    fn step_event(
        &self,
        saga_id: &str,
        log: &SagaLog,
        r: &RecordedEvent,
        t: &crate::Transition<P::State, P::Command>,
    ) -> Result<pb::SagaStepTaken, SagaError> {
        let step = log.steps + 1;
        let mut commands = Vec::with_capacity(t.commands.len());
        for (i, c) in t.commands.iter().enumerate() {
            commands.push(pb::SagaCommandIssued {
                command_id: command_id(saga_id, step, i).to_string(),
                stream_id: self.pm.command_stream(c),
                command_json: serde_json::to_string(c).map_err(|e| SagaError::Decode {
                    stream: saga_id.to_owned(),
                    version: log.version,
                    detail: format!("command does not encode: {e}"),
                })?,
            });
        }
        // Generation and pending-ness of each timer as this step goes.
        let mut current: std::collections::BTreeMap<&str, (u64, bool)> = log
            .timers
            .iter()
            .map(|(k, e)| (k.as_str(), (e.generation, e.status == TimerStatus::Pending)))
            .collect();
        let mut timers = Vec::new();
        for req in &t.timers {
            match req {
                TimerRequest::Schedule { timer, due_at } => {
                    let generation = current.get(timer.as_str()).map_or(1, |(g, _)| g + 1);
                    current.insert(timer, (generation, true));
                    timers.push(pb::SagaTimerChanged {
                        timer: timer.clone(),
                        generation,
                        change: pb::SagaTimerChange::Scheduled as i32,
                        due_at: Some(ts(*due_at)),
                    });
                }
                TimerRequest::Cancel { timer } => {
                    if let Some((generation, pending @ true)) = current.get_mut(timer.as_str()) {
                        *pending = false;
                        timers.push(pb::SagaTimerChanged {
                            timer: timer.clone(),
                            generation: *generation,
                            change: pb::SagaTimerChange::Cancelled as i32,
                            due_at: None,
                        });
                    }
                }
            }
        }
        Ok(pb::SagaStepTaken {
            saga_id: saga_id.to_owned(),
            saga_kind: P::KIND.to_owned(),
            step,
            input_event_id: r.event_id.to_string(),
            input_event_type: r.event_type.clone(),
            input_position: r.position,
            state_json: serde_json::to_string(&t.state).map_err(|e| SagaError::Decode {
                stream: saga_id.to_owned(),
                version: log.version,
                detail: format!("state does not encode: {e}"),
            })?,
            commands,
            timers,
        })
    }

    /// Sends again the commands of the step that handled `position`.
    async fn resend(&self, saga_id: &str, position: u64) -> Result<(), SagaError> {
        let (_, steps) = log::load(&self.store, saga_id, true).await?;
        for (r, event) in steps {
            if let Event::SagaStepTaken(s) = event
                && s.input_position == position
            {
                let cause = s.input_event_id.parse().unwrap_or(Uuid::nil());
                tracing::debug!(
                    saga_id,
                    step = s.step,
                    "input handled before, re-sending its commands"
                );
                return self
                    .send(saga_id, &s.commands, cause, occurred_at(&r))
                    .await;
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        saga_id: &str,
        commands: &[pb::SagaCommandIssued],
        cause: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), SagaError> {
        for c in commands {
            let command_id: Uuid = c.command_id.parse().map_err(|e| SagaError::Decode {
                stream: saga_id.to_owned(),
                version: 0,
                detail: format!("command id {}: {e}", c.command_id),
            })?;
            let command: P::Command =
                serde_json::from_str(&c.command_json).map_err(|e| SagaError::Decode {
                    stream: saga_id.to_owned(),
                    version: 0,
                    detail: format!("command {command_id}: {e}"),
                })?;
            let meta = CommandMeta {
                command_id,
                correlation_id: Uuid::new_v5(&SAGA_NAMESPACE, saga_id.as_bytes()),
                causation_id: Some(cause),
                actor_department: pb::Department::Pathway,
                actor_region: PROVINCE_REGION.to_owned(),
                actor_id: saga_id.to_owned(),
                now: at,
            };
            match self.sink.send(&c.stream_id, &command, &meta).await {
                Ok(()) => {}
                Err(e @ (EngineError::Rejected(_) | EngineError::CommandIdReused { .. })) => {
                    // The domain has the last word; the saga learns the
                    // outcome from the events that do happen.
                    tracing::info!(saga_id, %command_id, error = %e, "saga command not applied");
                }
                Err(source) => {
                    return Err(SagaError::Command {
                        saga_id: saga_id.to_owned(),
                        command_id,
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Decodes an input and opens its personal fields with the sink's keyring.
async fn open_decode<C, K: CommandSink<C>>(
    sink: &K,
    r: &RecordedEvent,
) -> Result<Event, SagaError> {
    let mut event = decode(r).map_err(|e| decode_error(r, e.to_string()))?;
    if let Some(keyring) = sink.keyring() {
        keyring
            .open(r.event_id, &mut event)
            .await
            .map_err(|e| decode_error(r, e.to_string()))?;
    }
    Ok(event)
}

/// The position a router resumes from (1 when it never checkpointed).
pub async fn read_checkpoint<S: EventStore>(store: &S, name: &str) -> Result<u64, SagaError> {
    let stream = format!("{ROUTER_CATEGORY}-{name}");
    let mut next = 1;
    let mut version = 0;
    loop {
        let batch = store
            .read_stream(&stream, version + 1, ROUTER_READ_BATCH_EVENTS)
            .await?;
        let n = batch.len();
        for r in &batch {
            version = r.stream_version;
            if let Event::SagaRouterCheckpointed(c) =
                decode(r).map_err(|e| decode_error(r, e.to_string()))?
            {
                next = next.max(c.next_position);
            }
        }
        if n < ROUTER_READ_BATCH_EVENTS {
            return Ok(next);
        }
    }
}

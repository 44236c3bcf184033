//! A saga's stream and its fold: steps taken, state, timers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pathway_domain::{Event, pb};
use pathway_engine::{decode, decode_envelope};
use pathway_store::{EventStore, NewEvent, RecordedEvent};
use uuid::Uuid;

use crate::SagaError;

/// The stream category of every saga stream.
pub const SAGA_CATEGORY: &str = "saga";
/// Events read per call while loading a saga stream.
pub const SAGA_READ_BATCH_EVENTS: usize = 1_000;

/// The stream of saga `kind` for business key `key`: `saga-<kind>-<key>`.
pub fn saga_stream(kind: &str, key: &str) -> String {
    format!("{SAGA_CATEGORY}-{kind}-{key}")
}

/// Where a timer generation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerStatus {
    Pending,
    Fired { fired_at: DateTime<Utc> },
    Cancelled,
}

/// The current generation of one named timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerEntry {
    pub generation: u64,
    pub due_at: DateTime<Utc>,
    pub status: TimerStatus,
}

/// One step as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub version: u64,
    pub step: pb::SagaStepTaken,
}

/// A saga stream folded: the runtime's view, independent of the process
/// manager's state type (kept as JSON here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SagaLog {
    pub saga_id: String,
    /// The stream's version (0 = no stream).
    pub version: u64,
    /// Steps taken.
    pub steps: u64,
    /// Global position of the last input handled (0 = none).
    pub last_input_position: u64,
    /// State after the last step, as JSON (empty before the first step).
    pub state_json: String,
    pub timers: BTreeMap<String, TimerEntry>,
}

impl SagaLog {
    /// Applies one event of the saga's stream.
    pub fn apply(&mut self, version: u64, event: &Event) {
        self.version = version;
        match event {
            Event::SagaStepTaken(s) => {
                self.steps = s.step;
                self.last_input_position = self.last_input_position.max(s.input_position);
                self.state_json.clone_from(&s.state_json);
                for t in &s.timers {
                    self.apply_timer_change(t);
                }
            }
            Event::SagaTimerFired(f) => {
                if let Some(entry) = self.timers.get_mut(&f.timer)
                    && entry.generation == f.generation
                    && entry.status == TimerStatus::Pending
                {
                    entry.status = TimerStatus::Fired {
                        fired_at: from_ts(f.fired_at.as_ref()),
                    };
                }
            }
            _ => {}
        }
    }

    fn apply_timer_change(&mut self, t: &pb::SagaTimerChanged) {
        match pb::SagaTimerChange::try_from(t.change) {
            Ok(pb::SagaTimerChange::Scheduled) => {
                self.timers.insert(
                    t.timer.clone(),
                    TimerEntry {
                        generation: t.generation,
                        due_at: from_ts(t.due_at.as_ref()),
                        status: TimerStatus::Pending,
                    },
                );
            }
            Ok(pb::SagaTimerChange::Cancelled) => {
                if let Some(entry) = self.timers.get_mut(&t.timer)
                    && entry.generation == t.generation
                {
                    entry.status = TimerStatus::Cancelled;
                }
            }
            _ => {}
        }
    }

    /// The generation a new schedule of `timer` takes.
    pub fn next_generation(&self, timer: &str) -> u64 {
        self.timers.get(timer).map_or(1, |t| t.generation + 1)
    }

    /// Timers still waiting to fire.
    pub fn pending(&self) -> impl Iterator<Item = (&String, &TimerEntry)> {
        self.timers
            .iter()
            .filter(|(_, t)| t.status == TimerStatus::Pending)
    }
}

/// Reads and folds a saga stream; also returns its steps when `keep_steps`.
pub async fn load<S: EventStore>(
    store: &S,
    saga_id: &str,
    keep_steps: bool,
) -> Result<(SagaLog, Vec<(RecordedEvent, Event)>), SagaError> {
    let mut log = SagaLog {
        saga_id: saga_id.to_owned(),
        ..SagaLog::default()
    };
    let mut kept = Vec::new();
    loop {
        let batch = store
            .read_stream(saga_id, log.version + 1, SAGA_READ_BATCH_EVENTS)
            .await?;
        let n = batch.len();
        for r in batch {
            let event = decode(&r).map_err(|e| decode_error(&r, e.to_string()))?;
            log.apply(r.stream_version, &event);
            if keep_steps {
                kept.push((r, event));
            }
        }
        if n < SAGA_READ_BATCH_EVENTS {
            return Ok((log, kept));
        }
    }
}

pub(crate) fn decode_error(r: &RecordedEvent, detail: String) -> SagaError {
    SagaError::Decode {
        stream: r.stream_id.clone(),
        version: r.stream_version,
        detail,
    }
}

/// The business time of a stored event (its envelope's `occurred_at`, else
/// its commit time).
pub(crate) fn occurred_at(r: &RecordedEvent) -> DateTime<Utc> {
    decode_envelope(r)
        .ok()
        .and_then(|env| env.occurred_at)
        .map_or(r.recorded_at, |t| from_ts(Some(&t)))
}

pub(crate) fn ts(t: DateTime<Utc>) -> pathway_proto::Timestamp {
    pathway_proto::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub(crate) fn from_ts(t: Option<&pathway_proto::Timestamp>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Namespace of every id the runtime derives (event ids, command ids).
pub const SAGA_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_3c2e_8d4a_5e7f_9a0b_1c2d_3e4f_5a6b);

/// A saga's own event, wrapped for the store: its id is derived from `name`
/// so the same decision appended twice is one event.
pub(crate) fn new_event(
    event: Event,
    id_name: &str,
    saga_id: &str,
    at: DateTime<Utc>,
    causation: &str,
) -> NewEvent {
    let event_id = Uuid::new_v5(&SAGA_NAMESPACE, id_name.as_bytes());
    pathway_engine::record(
        event_id,
        &event,
        pathway_engine::Provenance {
            occurred_at: at,
            correlation_id: Uuid::new_v5(&SAGA_NAMESPACE, saga_id.as_bytes()).to_string(),
            causation_id: causation.to_owned(),
            actor_department: pb::Department::Pathway,
            actor_region: String::new(),
            actor_id: saga_id.to_owned(),
            command_id: event_id.to_string(),
        },
    )
}

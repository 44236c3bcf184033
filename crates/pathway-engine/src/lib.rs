//! The command engine: the only path from a command to the log.
//!
//! For a command on stream `S`: read `S`, decode each payload into a domain
//! [`Event`], fold the aggregate with `evolve`, `decide` the command at the
//! caller's time, wrap each new event in an envelope (ids, times, actor,
//! correlation and causation) and append with `ExpectedVersion::Exact` of the
//! version read. If another writer got there first, the stream is reloaded and
//! the command decided again, at most [`COMMAND_RETRIES_MAX`] times.
//!
//! Event ids are derived from the command id (UUID v5 of the command id and
//! the event's index), so a retried command presents the same event ids and
//! the store's idempotent append returns the first result instead of acting
//! twice.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use pathway_domain::{Aggregate, Context, Event, Rejection, pb, policy::PolicyTable};
use pathway_proto::Message;
use pathway_store::{
    AppendResult, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreError,
};
use uuid::Uuid;

/// Decide-and-append attempts before a conflict is returned to the caller.
pub const COMMAND_RETRIES_MAX: u32 = 5;
/// Events read per call while loading a stream.
pub const STREAM_READ_BATCH_EVENTS: usize = 1_000;

/// Who sends a command, when, and why.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    /// Client-supplied idempotency key.
    pub command_id: Uuid,
    /// The business process this command belongs to.
    pub correlation_id: Uuid,
    /// The command or event that caused this one (defaults to the command id).
    pub causation_id: Option<Uuid>,
    pub actor_department: pb::Department,
    /// GB/T 2260 code of the acting office.
    pub actor_region: String,
    /// Pseudonymous id of the acting user or saga.
    pub actor_id: String,
    /// The time the command is decided at (business time of the events).
    pub now: DateTime<Utc>,
}

/// What a handled command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// The events appended (empty when the command changed nothing).
    pub events: Vec<Event>,
    /// Positions and stream version of the append, if anything was appended.
    pub append: Option<AppendResult>,
}

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The domain rejected the command (the caller's fault).
    #[error("rejected: {0}")]
    Rejected(#[from] Rejection),
    /// Other writers kept changing the stream; retry later.
    #[error("gave up after {attempts} attempts: {source}")]
    Conflict { attempts: u32, source: StoreError },
    /// A stored event could not be decoded.
    #[error("stream {stream}: event at version {version} does not decode: {detail}")]
    Decode {
        stream: String,
        version: u64,
        detail: String,
    },
    /// The log failed.
    #[error(transparent)]
    Store(StoreError),
}

/// Runs commands against one event log.
#[derive(Debug, Clone)]
pub struct Engine<S> {
    store: S,
    policy: &'static PolicyTable,
}

impl<S: EventStore + Clone> Engine<S> {
    /// An engine over `store` with the built-in policy table.
    pub fn new(store: S) -> Self {
        Engine {
            store,
            policy: PolicyTable::builtin(),
        }
    }

    /// The log this engine writes to.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Loads a stream's aggregate state and version.
    pub async fn load<A: Aggregate>(&self, stream: &str) -> Result<(A, u64), EngineError> {
        let mut state = A::default();
        let mut version = 0;
        loop {
            let batch = self
                .store
                .read_stream(stream, version + 1, STREAM_READ_BATCH_EVENTS)
                .await
                .map_err(EngineError::Store)?;
            let n = batch.len();
            for r in &batch {
                state = state.evolve(&decode(r)?);
                version = r.stream_version;
            }
            if n < STREAM_READ_BATCH_EVENTS {
                return Ok((state, version));
            }
        }
    }

    /// Decides `command` on `stream` and appends the resulting events.
    #[tracing::instrument(skip_all, fields(stream_id = %stream, command_id = %meta.command_id))]
    pub async fn handle<A: Aggregate>(
        &self,
        stream: &str,
        command: &A::Command,
        meta: &CommandMeta,
    ) -> Result<Handled, EngineError> {
        let ctx = Context::new(meta.now, self.policy);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (state, version) = self.load::<A>(stream).await?;
            let events = state.decide(command, &ctx)?;
            if events.is_empty() {
                return Ok(Handled {
                    events,
                    append: None,
                });
            }
            let new: Vec<NewEvent> = events
                .iter()
                .enumerate()
                .map(|(i, e)| envelope(e, i, meta))
                .collect();
            let expected = if version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(version)
            };
            match self.store.append(stream, expected, new).await {
                Ok(result) => {
                    return Ok(Handled {
                        events,
                        append: Some(result),
                    });
                }
                Err(e @ StoreError::WrongExpectedVersion { .. }) => {
                    if attempt >= COMMAND_RETRIES_MAX {
                        return Err(EngineError::Conflict {
                            attempts: attempt,
                            source: e,
                        });
                    }
                    tracing::debug!(attempt, "conflict, reloading");
                }
                Err(e) => return Err(EngineError::Store(e)),
            }
        }
    }
}

/// Decodes a stored payload into a domain event.
pub fn decode(r: &RecordedEvent) -> Result<Event, EngineError> {
    let err = |detail: String| EngineError::Decode {
        stream: r.stream_id.clone(),
        version: r.stream_version,
        detail,
    };
    let event = pb::Event::decode(r.payload.as_ref()).map_err(|e| err(e.to_string()))?;
    let kind = event
        .kind
        .ok_or_else(|| err("payload carries no event".into()))?;
    if kind.event_type() != r.event_type {
        return Err(err(format!(
            "payload is {} but the record says {}",
            kind.event_type(),
            r.event_type
        )));
    }
    Ok(kind)
}

/// Decodes a stored envelope.
pub fn decode_envelope(r: &RecordedEvent) -> Result<pb::EventEnvelope, EngineError> {
    pb::EventEnvelope::decode(r.metadata.as_ref()).map_err(|e| EngineError::Decode {
        stream: r.stream_id.clone(),
        version: r.stream_version,
        detail: format!("envelope: {e}"),
    })
}

/// The id of the `index`-th event of a command: stable across retries.
pub fn event_id(command_id: Uuid, index: usize) -> Uuid {
    Uuid::new_v5(&command_id, &(index as u64).to_be_bytes())
}

fn envelope(event: &Event, index: usize, meta: &CommandMeta) -> NewEvent {
    let event_id = event_id(meta.command_id, index);
    let ts = pathway_proto::Timestamp {
        seconds: meta.now.timestamp(),
        nanos: meta.now.timestamp_subsec_nanos() as i32,
    };
    let env = pb::EventEnvelope {
        event_id: event_id.to_string(),
        event_type: event.event_type().to_owned(),
        schema_version: pathway_proto::SCHEMA_VERSION_V1,
        occurred_at: Some(ts),
        correlation_id: meta.correlation_id.to_string(),
        causation_id: meta.causation_id.unwrap_or(meta.command_id).to_string(),
        actor_department: meta.actor_department as i32,
        actor_region: meta.actor_region.clone(),
        actor_id: meta.actor_id.clone(),
        command_id: meta.command_id.to_string(),
        // Assigned by the store, kept as columns beside the envelope.
        stream_id: String::new(),
        stream_version: 0,
        recorded_at: None,
    };
    NewEvent {
        event_id,
        event_type: event.event_type().to_owned(),
        schema_version: pathway_proto::SCHEMA_VERSION_V1,
        metadata: Bytes::from(env.encode_to_vec()),
        payload: Bytes::from(
            pb::Event {
                kind: Some(event.clone()),
            }
            .encode_to_vec(),
        ),
    }
}

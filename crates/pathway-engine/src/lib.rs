//! The command engine: the only path from a command to the log.
//!
//! For a command on stream `S`: read `S`, decode each payload into a domain
//! [`Event`], fold the aggregate with `evolve`, `decide` the command at the
//! caller's time, wrap each new event in an envelope (ids, times, actor,
//! correlation and causation) and append with `ExpectedVersion::Exact` of the
//! version read. If another writer got there first, the stream is reloaded and
//! the command decided again, at most [`COMMAND_RETRIES_MAX`] times.
//!
//! Commands are idempotent by their client-supplied command id, and the id is
//! scoped to its stream: the same id on another stream is another command.
//! - While loading `S`, the engine looks for events whose envelope carries the
//!   command id. If there are any, the command was handled before: the engine
//!   returns that first result (the stored events and their positions) and
//!   appends nothing. As a guard, it decides the command once more, purely, on
//!   the state just before those events and at their time; if that decision
//!   differs from what is stored, the id was reused for another command and
//!   the answer is [`EngineError::CommandIdReused`].
//! - Event ids are derived from the command id and the stream (UUID v5 of the
//!   command id, the stream and the event's index), so when two retries of one
//!   command race past the lookup, they present the same event ids and the
//!   store's idempotent append answers the later one with the first result.
//! - A command that was rejected, or decided to change nothing, left nothing
//!   in the log, so a retry of it is decided afresh.
//!
//! Personal fields are sealed on the way in and opened on the way out when
//! the engine has a [`Keyring`] ([`Engine::new`]; only tests and logs without
//! personal data use [`Engine::unsealed`]): `decide` and `evolve` see clear values, the log
//! only ciphertext. An event that erases a person's data
//! (`PersonalDataErased`) destroys the person's data key once it is stored,
//! and again on every retry of the command, so a crash between the two is
//! mended by retrying.
//!
//! Registration is the one command that spans two streams:
//! [`Engine::register_person`] reserves the ID number's keyed hash (see
//! [`reservation`]) before it appends the person's registration.

pub mod json;
pub mod reservation;

use std::any::Any;
use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
pub use pathway_keys::{KeyError, Keyring, OpenFields};

use lru::LruCache;
use pathway_domain::{
    Aggregate, Context, Event, Rejection, pb,
    person::{Person, PersonCommand, RegisterPerson},
    policy::PolicyTable,
};
use pathway_proto::Message;
use pathway_store::{
    AppendResult, EventStore, ExpectedVersion, NewEvent, RecordRef, RecordedEvent, StoreError,
};
use uuid::Uuid;

use crate::reservation::{Reservation, ReserveRegistration, reservation_stream};

/// Decide-and-append attempts before a conflict is returned to the caller.
pub const COMMAND_RETRIES_MAX: u32 = 10;
/// Pause before a conflicted command is decided again, doubled per attempt up
/// to [`COMMAND_RETRY_BACKOFF_DOUBLINGS_MAX`] times and spread by ±50% (see
/// [`retry_backoff`]).
pub const COMMAND_RETRY_BACKOFF_US: u64 = 2_000;
/// Doublings of the retry pause at most (2 ms × 2⁵ = 64 ms).
pub const COMMAND_RETRY_BACKOFF_DOUBLINGS_MAX: u32 = 5;
/// Attempts of one command while the log is out of reach, for an engine
/// made with [`Engine::resending_on_outage`] (one, no resend, otherwise).
pub const OUTAGE_ATTEMPTS_MAX: u32 = 6;
/// Pause before a command is sent again after an outage, doubled per
/// attempt (0.25 s, then up to 4 s: about 8 s in all).
pub const OUTAGE_RESEND_PAUSE_MS: u64 = 250;
/// Events read per call while loading a stream.
pub const STREAM_READ_BATCH_EVENTS: usize = 1_000;
/// Streams whose folded state the engine keeps in memory between commands
/// (least recently used dropped first).
pub const SNAPSHOTS_MAX: usize = 1_024;
/// Events a stream must hold before its state is kept: shorter streams are
/// read and folded whole for every command, which costs less than the
/// bookkeeping.
pub const SNAPSHOT_EVENTS_MIN: u64 = 64;

/// Who sends a command, when, and why.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    /// Client-supplied idempotency key, scoped to the command's stream.
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
#[derive(Debug, Clone, PartialEq)]
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
    /// The command id was already used on this stream for a different
    /// command (the caller's fault: a command id names one command).
    #[error("stream {stream}: command id {command_id} was already used for a different command")]
    CommandIdReused { stream: String, command_id: Uuid },
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
    /// A data key could not be made, found or used.
    #[error("personal data keys: {0}")]
    Keys(#[from] KeyError),
}

impl EngineError {
    /// The log or the key table was out of reach (down, timed out, shut
    /// down): sending the same command again, with the same command id, may
    /// succeed, and is answered with the first result if an earlier attempt
    /// did commit.
    pub fn is_unavailable(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_outage(),
            EngineError::Keys(KeyError::Table(_)) => true,
            _ => false,
        }
    }
}

/// Runs commands against one event log.
#[derive(Debug, Clone)]
pub struct Engine<S> {
    store: S,
    policy: &'static PolicyTable,
    keyring: Option<Keyring>,
    snapshots: Snapshots,
    /// Attempts of a command while the log is out of reach.
    outage_attempts: u32,
}

/// The folded state of long streams, kept between commands so that a
/// command on a stream of n events reads and folds only the events appended
/// since (by any process: the tail is always read from the log), not all n.
///
/// A snapshot is taken out of the cache while a command works on it and put
/// back, advanced by the command's own events, once they are appended; a
/// concurrent command on the same stream meanwhile folds from the log. Each
/// snapshot keeps the ids of the events folded into it, so a retried
/// command whose events are already folded in is recognised and answered
/// from a full load, exactly as without the snapshot.
#[derive(Clone)]
struct Snapshots(Arc<Mutex<LruCache<String, Snapshot>>>);

struct Snapshot {
    state: Box<dyn Any + Send + Sync>,
    version: u64,
    /// The ids of the events at versions 1..=`version`.
    event_ids: HashSet<Uuid>,
}

impl std::fmt::Debug for Snapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.0.lock().map_or(0, |c| c.len());
        f.debug_struct("Snapshots").field("streams", &len).finish()
    }
}

impl Snapshots {
    fn new() -> Self {
        Snapshots(Arc::new(Mutex::new(LruCache::new(
            NonZeroUsize::new(SNAPSHOTS_MAX).expect("non-zero"),
        ))))
    }

    /// Takes `stream`'s snapshot out (state, version, folded event ids),
    /// unless `first_event_id` (the id the command's first event would
    /// have) was folded into it.
    fn take<A: Aggregate>(
        &self,
        stream: &str,
        first_event_id: Option<Uuid>,
    ) -> Option<(A, u64, HashSet<Uuid>)> {
        let mut cache = self.0.lock().ok()?;
        let snapshot = cache.pop(stream)?;
        if first_event_id.is_some_and(|id| snapshot.event_ids.contains(&id)) {
            cache.put(stream.to_owned(), snapshot);
            return None;
        }
        let Snapshot {
            state,
            version,
            event_ids,
        } = snapshot;
        // A stream holds one aggregate; another type finds no snapshot.
        let state = state.downcast::<A>().ok()?;
        Some((*state, version, event_ids))
    }

    /// Keeps `state` at `version` unless the cache meanwhile got a later one.
    fn put<A: Aggregate>(&self, stream: &str, state: A, version: u64, event_ids: HashSet<Uuid>) {
        if version < SNAPSHOT_EVENTS_MIN {
            return;
        }
        let Ok(mut cache) = self.0.lock() else { return };
        if cache.peek(stream).is_some_and(|s| s.version >= version) {
            return;
        }
        cache.put(
            stream.to_owned(),
            Snapshot {
                state: Box::new(state),
                version,
                event_ids,
            },
        );
    }

    fn clear(&self) {
        if let Ok(mut cache) = self.0.lock() {
            cache.clear();
        }
    }
}

/// A stream as loaded for one command.
struct Loaded<A> {
    state: A,
    version: u64,
    /// The ids of the events folded into `state`.
    event_ids: HashSet<Uuid>,
    /// What this command id already did on the stream, if anything.
    prior: Option<Prior<A>>,
}

/// The first result of a command found in its stream.
struct Prior<A> {
    /// The state just before the command's events.
    before: A,
    /// The time the command was decided at (`occurred_at` of its envelope).
    decided_at: DateTime<Utc>,
    events: Vec<Event>,
    append: AppendResult,
}

impl<S: EventStore + Clone> Engine<S> {
    /// An engine over `store` with the built-in policy table, sealing
    /// personal fields with `keyring` before they are stored and opening them
    /// when streams are loaded. Every production entry point uses this.
    pub fn new(store: S, keyring: Keyring) -> Self {
        Engine {
            keyring: Some(keyring),
            ..Self::unsealed(store)
        }
    }

    /// An engine that stores personal fields in clear: only for tests and
    /// for logs that hold no personal data (e.g. the graduate exchange's
    /// status answers). Said out loud so that no entry point can forget the
    /// keyring by accident.
    pub fn unsealed(store: S) -> Self {
        Engine {
            store,
            policy: PolicyTable::builtin(),
            keyring: None,
            snapshots: Snapshots::new(),
            outage_attempts: 1,
        }
    }

    /// This engine, sending a command again (up to [`OUTAGE_ATTEMPTS_MAX`]
    /// times, backing off) while the log or the key table is out of reach
    /// ([`EngineError::is_unavailable`]): for a batch caller such as the
    /// simulator or an import, which a database restart or a stall of a
    /// loaded machine should not end. Each attempt is the same command (same
    /// command id), so one that did commit is answered with its first
    /// result. A server answers such errors at once instead (503), and its
    /// client resends.
    pub fn resending_on_outage(mut self) -> Self {
        self.outage_attempts = OUTAGE_ATTEMPTS_MAX;
        self
    }

    /// Runs `once` again while it fails with an outage, as set by
    /// [`Engine::resending_on_outage`].
    async fn resending<T, F>(
        &self,
        command_id: Uuid,
        mut once: impl FnMut() -> F,
    ) -> Result<T, EngineError>
    where
        F: std::future::Future<Output = Result<T, EngineError>>,
    {
        let mut pause = std::time::Duration::from_millis(OUTAGE_RESEND_PAUSE_MS);
        let mut attempt = 1;
        loop {
            match once().await {
                Err(e) if e.is_unavailable() && attempt < self.outage_attempts => {
                    tracing::warn!(%command_id, attempt, error = %e, "log out of reach; sending the command again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// The keyring personal fields are sealed with, if any.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_ref()
    }

    /// Decodes `records` and opens their personal fields with this engine's
    /// keyring (fields of erased persons stay sealed).
    pub async fn decode_all(&self, records: &[RecordedEvent]) -> Result<Vec<Event>, EngineError> {
        let mut events = records.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        if let Some(keyring) = &self.keyring {
            keyring
                .open_all(records.iter().map(|r| r.event_id).zip(events.iter_mut()))
                .await?;
        }
        Ok(events)
    }

    /// Destroys the data keys of persons whose erasure is among `events`.
    async fn destroy_erased_keys(&self, events: &[Event]) -> Result<(), EngineError> {
        let Some(keyring) = &self.keyring else {
            return Ok(());
        };
        for event in events {
            if let Event::PersonalDataErased(e) = event {
                keyring.erase(&e.person_ref, &e.reason).await?;
                // No opened field of the person outlives the key in memory.
                self.snapshots.clear();
            }
        }
        Ok(())
    }

    /// The log this engine writes to.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Loads a stream's aggregate state and version.
    pub async fn load<A: Aggregate>(&self, stream: &str) -> Result<(A, u64), EngineError> {
        let loaded = self.load_for::<A>(stream, None).await?;
        if loaded.version >= SNAPSHOT_EVENTS_MIN {
            self.snapshots.put(
                stream,
                loaded.state.clone(),
                loaded.version,
                loaded.event_ids,
            );
        }
        Ok((loaded.state, loaded.version))
    }

    /// Loads a stream and, when `command_id` is given, the events that command
    /// already appended to it. They are recognised by id, which is derived
    /// from the command id, the stream and the event's index
    /// ([`event_id`]): no envelope is decoded except the first match's, for
    /// the time the command was decided at.
    async fn load_for<A: Aggregate>(
        &self,
        stream: &str,
        command_id: Option<Uuid>,
    ) -> Result<Loaded<A>, EngineError> {
        // The id the command's next event would have, were it stored.
        let mut expected = command_id.map(|c| (c, event_id(c, stream, 0)));
        let (mut state, mut version, mut event_ids) = self
            .snapshots
            .take::<A>(stream, expected.map(|(_, id)| id))
            .unwrap_or_else(|| (A::default(), 0, HashSet::new()));
        let mut prior: Option<Prior<A>> = None;
        loop {
            let batch = self
                .store
                .read_stream(stream, version + 1, STREAM_READ_BATCH_EVENTS)
                .await
                .map_err(EngineError::Store)?;
            let n = batch.len();
            let events = self.decode_all(&batch).await?;
            for (r, event) in batch.iter().zip(events) {
                if let Some((command_id, id)) = expected
                    && r.event_id == id
                {
                    let index = match &mut prior {
                        Some(p) => {
                            p.append.last_position = r.position;
                            p.append.stream_version = r.stream_version;
                            p.events.push(event.clone());
                            p.events.len()
                        }
                        None => {
                            let env = decode_envelope(r)?;
                            prior = Some(Prior {
                                before: state.clone(),
                                decided_at: occurred_at(r, &env)?,
                                events: vec![event.clone()],
                                append: AppendResult {
                                    first_position: r.position,
                                    last_position: r.position,
                                    stream_version: r.stream_version,
                                },
                            });
                            1
                        }
                    };
                    expected = Some((command_id, event_id(command_id, stream, index)));
                }
                state = state.evolve(&event);
                version = r.stream_version;
                event_ids.insert(r.event_id);
            }
            if n < STREAM_READ_BATCH_EVENTS {
                return Ok(Loaded {
                    state,
                    version,
                    event_ids,
                    prior,
                });
            }
        }
    }

    /// Decides `command` on `stream` and appends the resulting events.
    ///
    /// A command whose id already acted on `stream` returns its first result
    /// and appends nothing; the same id with different content is
    /// [`EngineError::CommandIdReused`].
    #[tracing::instrument(skip_all, fields(stream_id = %stream, command_id = %meta.command_id))]
    pub async fn handle<A: Aggregate>(
        &self,
        stream: &str,
        command: &A::Command,
        meta: &CommandMeta,
    ) -> Result<Handled, EngineError> {
        self.resending(meta.command_id, || {
            self.handle_once::<A>(stream, command, meta)
        })
        .await
    }

    /// [`Engine::handle`], one attempt.
    async fn handle_once<A: Aggregate>(
        &self,
        stream: &str,
        command: &A::Command,
        meta: &CommandMeta,
    ) -> Result<Handled, EngineError> {
        let ctx = Context::new(meta.now, self.policy);
        let mut attempt = 0;
        // An append that found our event ids already stored: the reload must
        // find them as this command's first result.
        let mut ids_taken: Option<StoreError> = None;
        loop {
            attempt += 1;
            let loaded = self.load_for::<A>(stream, Some(meta.command_id)).await?;
            if let Some(prior) = loaded.prior {
                let handled = self.first_result(stream, command, meta, prior)?;
                self.destroy_erased_keys(&handled.events).await?;
                return Ok(handled);
            }
            if let Some(e) = ids_taken.take() {
                return Err(EngineError::Store(e));
            }
            let Loaded {
                state,
                version,
                mut event_ids,
                ..
            } = loaded;
            let events = match state.decide(command, &ctx) {
                Ok(events) if !events.is_empty() => events,
                decided => {
                    // Nothing appended: the state as loaded is current.
                    self.snapshots.put(stream, state, version, event_ids);
                    return Ok(Handled {
                        events: decided?,
                        append: None,
                    });
                }
            };
            let mut new: Vec<NewEvent> = Vec::with_capacity(events.len());
            for (i, e) in events.iter().enumerate() {
                match &self.keyring {
                    Some(keyring) => {
                        let mut sealed = e.clone();
                        keyring
                            .seal(event_id(meta.command_id, stream, i), &mut sealed)
                            .await?;
                        new.push(envelope(&sealed, stream, i, meta));
                    }
                    None => new.push(envelope(e, stream, i, meta)),
                }
            }
            let expected = if version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(version)
            };
            let new_ids: Vec<Uuid> = new.iter().map(|e| e.event_id).collect();
            match self.store.append(stream, expected, new).await {
                Ok(result) => {
                    // The stream now is what was loaded and these events.
                    let advanced = events.iter().fold(state, |s, e| s.evolve(e));
                    event_ids.extend(new_ids);
                    self.snapshots
                        .put(stream, advanced, result.stream_version, event_ids);
                    self.destroy_erased_keys(&events).await?;
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
                    let pause = retry_backoff(meta.command_id, attempt);
                    tracing::debug!(
                        attempt,
                        pause_us = pause.as_micros() as u64,
                        "conflict, reloading"
                    );
                    tokio::time::sleep(pause).await;
                }
                Err(e @ StoreError::EventIdReused { .. }) => {
                    // A concurrent retry of this command id appended other
                    // content first; the reload answers from what it stored.
                    tracing::debug!(attempt, "event ids already stored, reloading");
                    ids_taken = Some(e);
                }
                Err(e) => return Err(EngineError::Store(e)),
            }
        }
    }

    /// Registers a person, keeping one active registration per ID number.
    ///
    /// The registration is decided in memory first (on the person's stream as
    /// loaded), so an invalid registration reserves nothing; then the ID
    /// number's keyed hash is reserved for the person on
    /// `idhmac-<hex of id_hmac>` (expected version "no stream"), and only then
    /// is the person's registration appended. A second registration of the same
    /// ID number for another person is rejected on `id_number`. A retry of the
    /// same command returns the first result; a retry after a failure between
    /// the reservation and the registration finds the reservation in this
    /// person's name and completes the registration.
    #[tracing::instrument(skip_all, fields(person_ref = %cmd.person_ref, command_id = %meta.command_id))]
    pub async fn register_person(
        &self,
        cmd: &RegisterPerson,
        meta: &CommandMeta,
    ) -> Result<Handled, EngineError> {
        self.resending(meta.command_id, || self.register_person_once(cmd, meta))
            .await
    }

    /// [`Engine::register_person`], one attempt.
    async fn register_person_once(
        &self,
        cmd: &RegisterPerson,
        meta: &CommandMeta,
    ) -> Result<Handled, EngineError> {
        let command = PersonCommand::RegisterPerson(cmd.clone());
        let stream = command.stream_id();
        let loaded = self
            .load_for::<Person>(&stream, Some(meta.command_id))
            .await?;
        if let Some(prior) = loaded.prior {
            return self.first_result(&stream, &command, meta, prior);
        }
        loaded
            .state
            .decide(&command, &Context::new(meta.now, self.policy))?;
        let reserve = ReserveRegistration {
            id_hmac: cmd.id_hmac.clone(),
            person_ref: cmd.person_ref.clone(),
        };
        self.handle_once::<Reservation>(&reservation_stream(&cmd.id_hmac), &reserve, meta)
            .await?;
        self.handle_once::<Person>(&stream, &command, meta).await
    }

    /// The first result of a command found in its stream, if the command
    /// decides the same events again on the state and at the time it was
    /// first decided; otherwise the command id was reused.
    fn first_result<A: Aggregate>(
        &self,
        stream: &str,
        command: &A::Command,
        meta: &CommandMeta,
        prior: Prior<A>,
    ) -> Result<Handled, EngineError> {
        let ctx = Context::new(prior.decided_at, self.policy);
        match prior.before.decide(command, &ctx) {
            Ok(events) if events == prior.events => {
                tracing::debug!("command already handled, returning its first result");
                Ok(Handled {
                    events: prior.events,
                    append: Some(prior.append),
                })
            }
            _ => Err(EngineError::CommandIdReused {
                stream: stream.to_owned(),
                command_id: meta.command_id,
            }),
        }
    }
}

/// Decodes a stored payload into a domain event.
pub fn decode(r: &RecordedEvent) -> Result<Event, EngineError> {
    decode_record(r.as_record_ref())
}

/// [`decode`] of a record borrowed where the store read it
/// ([`pathway_store::EventStore::read_all_mapped`]).
pub fn decode_record(r: RecordRef<'_>) -> Result<Event, EngineError> {
    let err = |detail: String| EngineError::Decode {
        stream: r.stream_id.to_owned(),
        version: r.stream_version,
        detail,
    };
    let event = pb::Event::decode(r.payload).map_err(|e| err(e.to_string()))?;
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

/// The id of the `index`-th event of a command on `stream`: stable across
/// retries, and distinct on every stream (a command id is scoped to its
/// stream). UUID v5 in the command id's namespace of the stream id, a zero
/// byte (stream ids hold no control characters) and the big-endian index.
pub fn event_id(command_id: Uuid, stream: &str, index: usize) -> Uuid {
    let mut name = Vec::with_capacity(stream.len() + 1 + 8);
    name.extend_from_slice(stream.as_bytes());
    name.push(0);
    name.extend_from_slice(&(index as u64).to_be_bytes());
    Uuid::new_v5(&command_id, &name)
}

/// The pause after the `attempt`-th conflict of a command:
/// [`COMMAND_RETRY_BACKOFF_US`] doubled per attempt (at most
/// [`COMMAND_RETRY_BACKOFF_DOUBLINGS_MAX`] times) and spread by ±50%.
///
/// Writers that conflicted in one group commit would otherwise reload and
/// collide again in lockstep, one winning per round. The spread is derived
/// from the command id, not drawn at random, so a run replays exactly.
pub fn retry_backoff(command_id: Uuid, attempt: u32) -> std::time::Duration {
    let base = COMMAND_RETRY_BACKOFF_US
        << attempt
            .saturating_sub(1)
            .min(COMMAND_RETRY_BACKOFF_DOUBLINGS_MAX);
    let spread = (Uuid::new_v5(&command_id, &attempt.to_be_bytes()).as_u128() % 1_000) as u64;
    std::time::Duration::from_micros(base * (500 + spread) / 1_000)
}

/// The time a stored event was decided at, from its envelope.
fn occurred_at(r: &RecordedEvent, env: &pb::EventEnvelope) -> Result<DateTime<Utc>, EngineError> {
    env.occurred_at
        .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .ok_or_else(|| EngineError::Decode {
            stream: r.stream_id.clone(),
            version: r.stream_version,
            detail: "envelope: occurred_at is missing or out of range".into(),
        })
}

fn envelope(event: &Event, stream: &str, index: usize, meta: &CommandMeta) -> NewEvent {
    record(
        event_id(meta.command_id, stream, index),
        event,
        Provenance {
            occurred_at: meta.now,
            correlation_id: meta.correlation_id.to_string(),
            causation_id: meta.causation_id.unwrap_or(meta.command_id).to_string(),
            actor_department: meta.actor_department,
            actor_region: meta.actor_region.clone(),
            actor_id: meta.actor_id.clone(),
            command_id: meta.command_id.to_string(),
        },
    )
}

/// Who caused an event, when and why: the envelope fields a writer chooses.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: String,
    pub causation_id: String,
    pub actor_department: pb::Department,
    pub actor_region: String,
    pub actor_id: String,
    pub command_id: String,
}

/// An event ready to append in the one envelope layout every writer uses
/// (commands, sagas, audit): id, type and schema version from the event, the
/// rest from `provenance`; stream, version and commit time are the store's.
pub fn record(event_id: Uuid, event: &Event, provenance: Provenance) -> NewEvent {
    let at = provenance.occurred_at;
    let env = pb::EventEnvelope {
        event_id: event_id.to_string(),
        event_type: event.event_type().to_owned(),
        schema_version: pathway_proto::SCHEMA_VERSION_V1,
        occurred_at: Some(pathway_proto::Timestamp {
            seconds: at.timestamp(),
            nanos: at.timestamp_subsec_nanos() as i32,
        }),
        correlation_id: provenance.correlation_id,
        causation_id: provenance.causation_id,
        actor_department: provenance.actor_department as i32,
        actor_region: provenance.actor_region,
        actor_id: provenance.actor_id,
        command_id: provenance.command_id,
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

//! The process-manager trait: a pure state machine.

use chrono::{DateTime, Utc};
use pathway_domain::Event;
use pathway_engine::{CommandMeta, EngineError};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::log::SAGA_NAMESPACE;

/// What a saga is asked to handle.
#[derive(Debug, Clone, Copy)]
pub enum InputKind<'a> {
    /// A domain event from the log.
    Event(&'a Event),
    /// One of the saga's timers fired (its current generation).
    Timer {
        timer: &'a str,
        due_at: DateTime<Utc>,
    },
}

/// An input with where and when it happened.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub kind: InputKind<'a>,
    /// The business key of the saga handling the input (its stream is
    /// `saga-<KIND>-<key>`): a saga started by an event that does not name
    /// it (e.g. one city-year of thirteen) learns from it who it is.
    pub key: &'a str,
    /// Global position of the input in the log.
    pub position: u64,
    pub event_id: Uuid,
    /// Business time: the event's `occurred_at`, or the firing time.
    pub at: DateTime<Utc>,
}

/// A timer change a step asks for. Scheduling a timer that is pending
/// reschedules it (a new generation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerRequest {
    Schedule {
        timer: String,
        due_at: DateTime<Utc>,
    },
    Cancel {
        timer: String,
    },
}

/// The result of handling one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition<S, C> {
    pub state: S,
    pub commands: Vec<C>,
    pub timers: Vec<TimerRequest>,
}

impl<S, C> Transition<S, C> {
    /// The state changed, nothing issued.
    pub fn state(state: S) -> Self {
        Transition {
            state,
            commands: Vec::new(),
            timers: Vec::new(),
        }
    }
}

/// A process manager: correlation plus a pure decision. No IO, no clock.
pub trait ProcessManager: Send + Sync + 'static {
    type State: Default + Clone + std::fmt::Debug + PartialEq + Serialize + DeserializeOwned + Send;
    type Command: Clone + std::fmt::Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync;

    /// The saga kind, part of its stream id: `saga-<KIND>-<key>`.
    const KIND: &'static str;

    /// Event types this process manager correlates.
    fn event_types(&self) -> &'static [&'static str];

    /// Event types the correlation learns from (replayed from the start of
    /// the log when a router starts at a checkpoint). Empty when `correlate`
    /// needs no memory.
    fn learning_event_types(&self) -> &'static [&'static str] {
        &[]
    }

    /// The business keys of the sagas `event` concerns. May learn from the
    /// event (e.g. which persons form a household); events reach it in log
    /// order.
    fn correlate(&mut self, event: &Event) -> Vec<String>;

    /// Decide one input.
    fn handle(
        &self,
        state: &Self::State,
        input: &Input<'_>,
    ) -> Transition<Self::State, Self::Command>;

    /// The stream a command is decided on.
    fn command_stream(&self, command: &Self::Command) -> String;
}

/// Sends the commands a saga issued (e.g. to the command engine).
#[async_trait::async_trait]
pub trait CommandSink<C>: Send + Sync + 'static {
    /// Applies `command`; idempotent by `meta.command_id`.
    async fn send(&self, stream: &str, command: &C, meta: &CommandMeta) -> Result<(), EngineError>;

    /// The keyring that opens personal fields of input events, if any (the
    /// engine's): without one, a saga sees personal fields sealed.
    fn keyring(&self) -> Option<&pathway_engine::Keyring> {
        None
    }
}

/// The id of the `index`-th command of step `step` of saga `saga_id`.
pub fn command_id(saga_id: &str, step: u64, index: usize) -> Uuid {
    Uuid::new_v5(
        &SAGA_NAMESPACE,
        format!("{saga_id}/{step}/{index}").as_bytes(),
    )
}

//! Process managers (sagas) with durable timers.
//!
//! A process manager is a pure state machine, [`ProcessManager::handle`]:
//! `(state, input) -> (state, commands, timer requests)`, correlated by a
//! business key (a household, a graduate ledger, a city-year; the workflows
//! are [`phaseout`], [`ledger`] and [`city_report`]). Everything
//! else here is the runtime that makes it durable:
//!
//! - **State is event-sourced in the saga's own stream**, `saga-<kind>-<key>`
//!   (e.g. `saga-phaseout-<household_ref>`). Each input handled appends one
//!   `SagaStepTaken` holding the input's id and global position, the state
//!   after the step (JSON), the commands issued and the timer changes. The
//!   stream is folded by [`SagaLog`].
//! - **Commands are deterministic.** The `i`-th command of step `n` of saga
//!   `S` has the id `UUID v5(SAGA_NAMESPACE, "S/n/i")` and is stored in the
//!   step before it is sent. After a crash the step is found in the stream and
//!   its commands are sent again with the same ids; the command engine's
//!   idempotency by command id applies each once.
//! - **A router follows the log** ([`Router`]): it reads the event types the
//!   process manager correlates (plus `SagaTimerFired`) in position order
//!   from its checkpoint, asks the process manager for the business keys of
//!   each event, and feeds the event to each saga. A saga remembers the
//!   position of the last input it handled, so an event delivered again
//!   (after a crash, or by a second router) is not handled twice: its step is
//!   found and only its commands are re-sent. The checkpoint is an event
//!   (`SagaRouterCheckpointed` on `sagarouter-<name>`), written every
//!   [`router::CHECKPOINT_EVENTS`] events and when idle, always after the
//!   steps and commands below it are done.
//! - **Durable timers live in the saga's stream.** A step schedules,
//!   reschedules or cancels a named timer; every schedule takes the next
//!   generation of that timer. A [`Sweeper`] fires a due timer by appending
//!   `SagaTimerFired` (timer, generation, due and fired times) to the saga's
//!   stream with the expected version it knows. Of two sweepers racing, the
//!   store lets exactly one append win; the loser reloads the stream, sees
//!   the generation fired and does nothing. A sweeper that dies before its
//!   append fired nothing, and the timer is still due for the next sweep. It
//!   never fires early: it re-checks `due_at <= clock.now()` against the
//!   stream (not its index) before appending. The firing is itself an input
//!   the router delivers to the saga, in log order; a firing of a generation
//!   that is no longer the timer's current one (rescheduled or cancelled in
//!   between) is stale and reaches no saga.
//! - **The due index is a projection** ([`TimerIndex`]): pending timers in a
//!   `BTreeSet` ordered by `(due_at, saga, timer, generation)` with each
//!   saga's last known stream version, built by reading the `saga` category
//!   of the log from position 1 at start and kept current by reading on.
//!   Taking everything due is a range scan; a hundred thousand timers due
//!   at one instant cost one ordered set and as many appends, which the
//!   store's group commit batches. The index may lag the log: an append with
//!   a stale expected version fails, and the sweeper reloads the stream
//!   (the truth) before deciding again.
//! - **Time** comes from a [`Clock`]; tests and the simulator use
//!   [`ManualClock`] to run years of policy time in seconds.
//!
//! - **One leader runs the workflows** ([`workflows::run`]): the routers and
//!   the sweeper run in the process holding the [`LeaderLock`] (a PostgreSQL
//!   advisory lock, or an in-process lock for the embedded store); the
//!   others stand by and take over when the leader's lock ends.
//!
//! Fault points ([`FaultPoint`]) let tests stop a router or sweeper between
//! the steps that matter (before/after a timer's append, between a step's
//! append and its commands), either by killing the process there or by
//! abandoning the runtime and starting a new one on the same log.

pub mod bench;
pub mod city_report;
mod clock;
mod error;
mod fault;
pub mod leader;
pub mod ledger;
mod log;
mod manager;
pub mod phaseout;
pub mod router;
pub mod show;
pub mod timers;
pub mod workflows;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::SagaError;
pub use fault::{FaultHook, FaultPoint, no_faults};
pub use leader::LeaderLock;
pub use log::{
    SAGA_CATEGORY, SAGA_NAMESPACE, SAGA_READ_BATCH_EVENTS, SagaLog, StepRecord, TimerEntry,
    TimerStatus, load as load_saga, saga_stream,
};
pub use manager::{
    CommandSink, Input, InputKind, ProcessManager, TimerRequest, Transition, command_id,
};
pub use router::Router;
pub use timers::{SweepReport, Sweeper, TimerIndex};
pub use workflows::{WorkflowOptions, WorkflowStatus};

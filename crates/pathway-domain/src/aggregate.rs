//! The decider shape every aggregate follows.

use chrono::{DateTime, NaiveDate, Utc};

use crate::{Decision, Event, policy::PolicyTable};

/// What a decision may know besides state and command: the time (passed in,
/// never read) and the effective-dated policy parameters.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The instant the command is decided at.
    pub now: DateTime<Utc>,
    /// The calendar date at `now` in the province (UTC+8).
    pub today: NaiveDate,
    /// Policy parameters; decisions look up the values in force at the
    /// relevant business date with `policy.at(date)`.
    pub policy: &'a PolicyTable,
}

impl<'a> Context<'a> {
    /// A context at `now`, with `today` derived in China Standard Time (UTC+8).
    pub fn new(now: DateTime<Utc>, policy: &'a PolicyTable) -> Self {
        let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
        Context {
            now,
            today: now.with_timezone(&cst).date_naive(),
            policy,
        }
    }
}

/// An event-sourced aggregate: state is a fold of its events, and commands are
/// decided against that state by pure code.
pub trait Aggregate: Default + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The commands this aggregate decides.
    type Command;
    /// Stream id prefix, e.g. `person` for `person-<uuid>`.
    const CATEGORY: &'static str;

    /// Decide a command: the events it produces, or why it is rejected.
    fn decide(&self, command: &Self::Command, ctx: &Context<'_>) -> Decision;

    /// Apply one event to the state. Total: an event that does not concern
    /// this aggregate leaves the state unchanged.
    fn evolve(self, event: &Event) -> Self;

    /// Fold a history into state.
    fn fold<'e>(events: impl IntoIterator<Item = &'e Event>) -> Self {
        events.into_iter().fold(Self::default(), Self::evolve)
    }
}

//! The graduate ledger workflow (一人一册, R-GRAD-1), one saga per ledger:
//! `saga-ledger-<ledger_id>`.
//!
//! A matched graduate's ledger is opened for a year, gets a plan before any
//! service (the [`GraduateLedger`] aggregate enforces the order) and one
//! outcome by the year-end ([`outcome_due`], 31 December). The saga
//! remembers the deadline:
//! - `GraduateLedgerOpened` → the `reminder` timer at 1 December 00:00 in the
//!   province (UTC+8), unless the ledger opens after it, and the `deadline`
//!   timer at 00:00 of the day after the due date (1 January of the next
//!   year);
//! - the reminder fires → recorded as a saga step (`reminded_at` in the
//!   state), the reminder the ledger's officer is sent; no domain command;
//! - `GraduateOutcomeRecorded` → both timers cancelled;
//! - the deadline fires with no outcome seen →
//!   `LedgerCommand::MarkOutcomeOverdue` on `ledger-<person_ref>-<year>`,
//!   which the domain turns into `GraduateOutcomeOverdue` (and refuses before
//!   the due date or after an outcome).
//!
//! [`GraduateLedger`]: pathway_domain::graduates::GraduateLedger

use chrono::{DateTime, NaiveDate, Utc};
use pathway_domain::{
    Aggregate, Event,
    graduates::{GraduateLedger, LedgerCommand, outcome_due},
};
use pathway_engine::{CommandMeta, EngineError};
use pathway_store::EventStore;
use serde::{Deserialize, Serialize};

use crate::city_report::{deadline_at, reminder_at};
use crate::phaseout::EngineSink;
use crate::{CommandSink, Input, InputKind, ProcessManager, TimerRequest, Transition};

/// The saga kind: streams `saga-ledger-<ledger_id>`.
pub const KIND: &str = "ledger";
/// The reminder timer, on 1 December of the ledger's year.
pub const REMINDER: &str = "reminder";
/// The deadline timer, at the start of the day after the due date.
pub const DEADLINE: &str = "deadline";

/// The ledger as the saga knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenLedger {
    pub ledger_id: String,
    pub person_ref: String,
    pub year: i32,
    pub due_on: NaiveDate,
}

/// A command the saga issues on its ledger, with the ledger's stream (a
/// ledger command names no ledger: the stream does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnLedger {
    /// `ledger-<person_ref>-<year>` ([`ledger_stream`]).
    pub stream: String,
    pub command: LedgerCommand,
}

/// What the saga remembers of one ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerState {
    pub ledger: Option<OpenLedger>,
    /// Whether the outcome is recorded.
    pub outcome: bool,
    /// When the reminder went out.
    pub reminded_at: Option<DateTime<Utc>>,
    /// Whether the saga asked for the overdue mark.
    pub overdue_requested: bool,
    /// Whether the domain recorded the outcome overdue.
    pub overdue: bool,
}

/// The graduate ledger process manager; its correlation needs no memory
/// (every ledger event names its ledger).
#[derive(Debug, Clone, Copy, Default)]
pub struct LedgerSaga;

const EVENT_TYPES: &[&str] = &[
    "GraduateLedgerOpened",
    "GraduateOutcomeRecorded",
    "GraduateOutcomeOverdue",
];

impl ProcessManager for LedgerSaga {
    type State = LedgerState;
    type Command = OnLedger;
    const KIND: &'static str = KIND;

    fn event_types(&self) -> &'static [&'static str] {
        EVENT_TYPES
    }

    fn correlate(&mut self, event: &Event) -> Vec<String> {
        match event {
            Event::GraduateLedgerOpened(e) => vec![e.ledger_id.clone()],
            Event::GraduateOutcomeRecorded(e) => vec![e.ledger_id.clone()],
            Event::GraduateOutcomeOverdue(e) => vec![e.ledger_id.clone()],
            _ => Vec::new(),
        }
    }

    fn handle(&self, state: &LedgerState, input: &Input<'_>) -> Transition<LedgerState, OnLedger> {
        decide(state, input)
    }

    fn command_stream(&self, command: &OnLedger) -> String {
        command.stream.clone()
    }
}

/// The stream of a ledger: `ledger-<person_ref>-<year>`.
pub fn ledger_stream(person_ref: &str, year: i32) -> String {
    format!("{}-{person_ref}-{year}", GraduateLedger::CATEGORY)
}

/// The saga's decision: pure.
pub fn decide(state: &LedgerState, input: &Input<'_>) -> Transition<LedgerState, OnLedger> {
    let mut t = Transition::state(state.clone());
    match input.kind {
        InputKind::Event(Event::GraduateLedgerOpened(e)) if state.ledger.is_none() => {
            let Some(due_on) = outcome_due(e.year) else {
                return t;
            };
            t.state.ledger = Some(OpenLedger {
                ledger_id: e.ledger_id.clone(),
                person_ref: e.person_ref.clone(),
                year: e.year,
                due_on,
            });
            if let Some(at) = reminder_at(e.year)
                && input.at < at
            {
                t.timers.push(TimerRequest::Schedule {
                    timer: REMINDER.to_owned(),
                    due_at: at,
                });
            }
            if let Some(at) = deadline_at(due_on) {
                t.timers.push(TimerRequest::Schedule {
                    timer: DEADLINE.to_owned(),
                    due_at: at,
                });
            }
        }
        InputKind::Event(Event::GraduateOutcomeRecorded(_)) if !state.outcome => {
            t.state.outcome = true;
            for timer in [REMINDER, DEADLINE] {
                t.timers.push(TimerRequest::Cancel {
                    timer: timer.to_owned(),
                });
            }
        }
        InputKind::Event(Event::GraduateOutcomeOverdue(_)) => t.state.overdue = true,
        InputKind::Event(_) => {}
        InputKind::Timer { timer, .. } if timer == REMINDER => {
            if state.ledger.is_some() && !state.outcome && state.reminded_at.is_none() {
                t.state.reminded_at = Some(input.at);
            }
        }
        InputKind::Timer { timer, .. } if timer == DEADLINE => {
            if let Some(l) = &state.ledger
                && !state.outcome
                && !state.overdue
                && !state.overdue_requested
            {
                t.state.overdue_requested = true;
                t.commands.push(OnLedger {
                    stream: ledger_stream(&l.person_ref, l.year),
                    command: LedgerCommand::MarkOutcomeOverdue { due_on: l.due_on },
                });
            }
        }
        InputKind::Timer { .. } => {}
    }
    t
}

#[async_trait::async_trait]
impl<S: EventStore + Clone> CommandSink<OnLedger> for EngineSink<S> {
    fn keyring(&self) -> Option<&pathway_engine::Keyring> {
        self.0.keyring()
    }

    async fn send(
        &self,
        stream: &str,
        command: &OnLedger,
        meta: &CommandMeta,
    ) -> Result<(), EngineError> {
        debug_assert_eq!(stream, command.stream);
        self.0
            .handle::<GraduateLedger>(stream, &command.command, meta)
            .await
            .map(|_| ())
    }
}

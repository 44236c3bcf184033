//! The city annual report workflow (R-RPT-1), one saga per city and plan
//! year: `saga-cityreport-<city>-<year>` (e.g. `saga-cityreport-230100-2024`).
//!
//! Each of the 13 prefecture-level cities ([`CITIES`]) reports to the province
//! once a year, due on the policy's `city_report_due` (31 December). The saga
//! remembers and reminds; the [`CityReport`] aggregate decides:
//! - **start**: the first event of a plan year the router sees (a placement,
//!   a new employment counted, a graduate cohort or ledger, a city report of
//!   that year; see [`year_of`]) starts the sagas of all 13 cities for that
//!   year at once. Each takes its due date from the policy in force on
//!   1 January of the year and keeps it in its state, so a later policy
//!   change does not move a running deadline. Years outside the plan start
//!   nothing;
//! - the `reminder` timer at 1 December 00:00 in the province (UTC+8): its
//!   firing is recorded as a saga step (`reminded_at` in the state), the
//!   reminder the city is sent; no domain command;
//! - the `deadline` timer at 00:00 of the day after the due date (1 January
//!   of the next year): with no `CityAnnualReportSubmitted` seen for the
//!   city and year, `CityReportCommand::MarkOverdue` on `report-<city>-<year>`,
//!   which the domain turns into `CityAnnualReportOverdue` (and refuses before
//!   the due date or after a filing);
//! - a filing before the deadline cancels both timers.
//!
//! The router's correlation remembers which years it started, so only the
//! first event of a year fans out to 13 sagas. The memory is not rebuilt
//! from the log when a router restarts (that would mean re-reading every
//! placement): the first event of a year after a restart fans out again, and
//! each of the 13 sagas, already started, finds nothing to do (no step).
//!
//! [`CityReport`]: pathway_domain::governance::CityReport

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use pathway_domain::{
    Aggregate, Event,
    convert::naive,
    governance::{CityReport, CityReportCommand},
    policy::PolicyTable,
    validate::CITIES,
};
use pathway_engine::{CommandMeta, EngineError};
use pathway_store::EventStore;
use serde::{Deserialize, Serialize};

use crate::phaseout::{EngineSink, province_date, start_of_day};
use crate::{CommandSink, Input, InputKind, ProcessManager, TimerRequest, Transition};

/// The saga kind: streams `saga-cityreport-<city>-<year>`.
pub const KIND: &str = "cityreport";
/// The reminder timer, on [`REMINDER_MONTH_DAY`] of the year.
pub const REMINDER: &str = "reminder";
/// The deadline timer, at the start of the day after the due date.
pub const DEADLINE: &str = "deadline";
/// The day each year the reminder goes out: 1 December.
pub const REMINDER_MONTH_DAY: (u32, u32) = (12, 1);

/// The business key of one city's report for one year: `<city>-<year>`.
pub fn key(city: &str, year: i32) -> String {
    format!("{city}-{year}")
}

/// The city and year of a key made by [`key`].
pub fn parse_key(key: &str) -> Option<(String, i32)> {
    let (city, year) = key.rsplit_once('-')?;
    Some((city.to_owned(), year.parse().ok()?))
}

/// The instant the reminder of a year is due: 1 December 00:00 in the province.
pub fn reminder_at(year: i32) -> Option<DateTime<Utc>> {
    let (month, day) = REMINDER_MONTH_DAY;
    NaiveDate::from_ymd_opt(year, month, day).map(start_of_day)
}

/// The instant the deadline of a due date passes: 00:00 of the next day in
/// the province (for 31 December, 1 January 00:00 of the next year).
pub fn deadline_at(due_on: NaiveDate) -> Option<DateTime<Utc>> {
    due_on.succ_opt().map(start_of_day)
}

/// What the saga remembers of one city's report for one year.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CityReportState {
    /// `(city, year)`, from the saga's key when it starts.
    pub key: Option<(String, i32)>,
    /// The due date under the policy of the year.
    pub due_on: Option<NaiveDate>,
    /// The report id, once filed.
    pub filed: Option<String>,
    /// When the reminder went out.
    pub reminded_at: Option<DateTime<Utc>>,
    /// Whether the saga asked for the overdue mark.
    pub overdue_requested: bool,
    /// Whether the domain recorded the report overdue.
    pub overdue: bool,
}

/// The city report process manager.
#[derive(Debug, Clone)]
pub struct CityReportSaga {
    policy: &'static PolicyTable,
    /// Years whose 13 sagas were started.
    started: BTreeSet<i32>,
}

impl Default for CityReportSaga {
    fn default() -> Self {
        CityReportSaga::new(PolicyTable::builtin())
    }
}

impl CityReportSaga {
    /// A process manager taking due dates and plan years from `policy`.
    pub fn new(policy: &'static PolicyTable) -> Self {
        CityReportSaga {
            policy,
            started: BTreeSet::new(),
        }
    }

    fn is_plan_year(&self, year: i32) -> bool {
        NaiveDate::from_ymd_opt(year, 1, 1).is_some_and(|d| self.policy.at(d).is_plan_year(year))
    }
}

const EVENT_TYPES: &[&str] = &[
    "PersonPlaced",
    "NewEmploymentCounted",
    "GraduateCohortReceived",
    "GraduateLedgerOpened",
    "CityAnnualReportSubmitted",
    "CityAnnualReportOverdue",
];

/// The plan year an event opens, if it is one the workflow starts on.
pub fn year_of(event: &Event) -> Option<i32> {
    match event {
        Event::PersonPlaced(e) => naive(e.start_date.as_ref()).map(|d| d.year()),
        Event::NewEmploymentCounted(e) => Some(e.year),
        Event::GraduateCohortReceived(e) => Some(e.year),
        Event::GraduateLedgerOpened(e) => Some(e.year),
        Event::CityAnnualReportSubmitted(e) => Some(e.year),
        Event::CityAnnualReportOverdue(e) => Some(e.year),
        _ => None,
    }
}

impl ProcessManager for CityReportSaga {
    type State = CityReportState;
    type Command = CityReportCommand;
    const KIND: &'static str = KIND;

    fn event_types(&self) -> &'static [&'static str] {
        EVENT_TYPES
    }

    fn correlate(&mut self, event: &Event) -> Vec<String> {
        let Some(year) = year_of(event) else {
            return Vec::new();
        };
        if !self.is_plan_year(year) {
            return Vec::new();
        }
        if self.started.insert(year) {
            return CITIES.iter().map(|c| key(c.code, year)).collect();
        }
        match event {
            Event::CityAnnualReportSubmitted(e) => vec![key(&e.city, e.year)],
            Event::CityAnnualReportOverdue(e) => vec![key(&e.city, e.year)],
            _ => Vec::new(),
        }
    }

    fn handle(
        &self,
        state: &CityReportState,
        input: &Input<'_>,
    ) -> Transition<CityReportState, CityReportCommand> {
        decide(state, input, self.policy)
    }

    fn command_stream(&self, command: &CityReportCommand) -> String {
        let (CityReportCommand::SubmitReport { city, year, .. }
        | CityReportCommand::MarkOverdue { city, year, .. }) = command;
        format!("{}-{city}-{year}", CityReport::CATEGORY)
    }
}

/// The saga's decision: pure. `policy` gives the due date when the saga
/// starts.
pub fn decide(
    state: &CityReportState,
    input: &Input<'_>,
    policy: &PolicyTable,
) -> Transition<CityReportState, CityReportCommand> {
    let mut t = Transition::state(state.clone());
    if state.key.is_none() {
        start(&mut t, input, policy);
    }
    let Some((city, year)) = t.state.key.clone() else {
        return t;
    };
    match input.kind {
        InputKind::Timer { timer, .. } if timer == REMINDER => {
            if t.state.filed.is_none() && t.state.reminded_at.is_none() {
                t.state.reminded_at = Some(input.at);
            }
        }
        InputKind::Timer { timer, .. } if timer == DEADLINE => {
            if let Some(due_on) = t.state.due_on
                && t.state.filed.is_none()
                && !t.state.overdue
                && !t.state.overdue_requested
            {
                t.state.overdue_requested = true;
                t.commands
                    .push(CityReportCommand::MarkOverdue { city, year, due_on });
            }
        }
        InputKind::Timer { .. } => {}
        InputKind::Event(Event::CityAnnualReportSubmitted(e))
            if e.city == city && e.year == year && t.state.filed.is_none() =>
        {
            t.state.filed = Some(e.report_id.clone());
            t.timers
                .retain(|r| !matches!(r, TimerRequest::Schedule { .. }));
            if state.key.is_some() {
                for timer in [REMINDER, DEADLINE] {
                    t.timers.push(TimerRequest::Cancel {
                        timer: timer.to_owned(),
                    });
                }
            }
        }
        InputKind::Event(Event::CityAnnualReportOverdue(e)) if e.city == city && e.year == year => {
            t.state.overdue = true;
        }
        InputKind::Event(_) => {}
    }
    t
}

/// Starts the saga named by the input's key: due date from the policy of
/// the year, both timers scheduled (the reminder only while it is ahead).
fn start(
    t: &mut Transition<CityReportState, CityReportCommand>,
    input: &Input<'_>,
    policy: &PolicyTable,
) {
    let Some((city, year)) = parse_key(input.key) else {
        return;
    };
    let Some(jan_1) = NaiveDate::from_ymd_opt(year, 1, 1) else {
        return;
    };
    let (month, day) = policy.at(jan_1).city_report_due;
    let Some(due_on) = NaiveDate::from_ymd_opt(year, month, day) else {
        return;
    };
    t.state.key = Some((city, year));
    t.state.due_on = Some(due_on);
    if let Some(at) = reminder_at(year)
        && province_date(at) <= due_on
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

#[async_trait::async_trait]
impl<S: EventStore + Clone> CommandSink<CityReportCommand> for EngineSink<S> {
    fn keyring(&self) -> Option<&pathway_engine::Keyring> {
        self.0.keyring()
    }

    async fn send(
        &self,
        stream: &str,
        command: &CityReportCommand,
        meta: &CommandMeta,
    ) -> Result<(), EngineError> {
        self.0
            .handle::<CityReport>(stream, command, meta)
            .await
            .map(|_| ())
    }
}

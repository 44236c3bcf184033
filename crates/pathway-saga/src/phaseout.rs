//! The low-income benefit phase-out saga (低保渐退期), one per household:
//! `saga-phaseout-<household_ref>` (reference §2.7, §4.6).
//!
//! Civil Affairs decides; the household aggregate keeps its decisions within
//! R-LOW-1 (a planned end at most `phase_out_max_months` after the start under
//! the policy of the start, later only with an approved extension; completion
//! never before the planned end; one active phase-out per household). The
//! saga orchestrates and remembers:
//! - a member of a dibao household with no phase-out active is placed →
//!   `RequestReassessment` (trigger: placement) to Civil Affairs;
//! - a phase-out starts → the `deadline` timer at the planned end (00:00 in
//!   the province, UTC+8);
//! - an extension is approved → the deadline moves (a new generation);
//! - a member's placement ends during the phase-out → `RequestReassessment`
//!   (trigger: job loss); income back at or below the standard cancels the
//!   phase-out in the domain;
//! - the phase-out is cancelled → the deadline is cancelled;
//! - the deadline fires → `CompletePhaseOut` on the planned end, which the
//!   domain turns into `BenefitPhasedOut`.
//!
//! The policy version a phase-out runs under is carried in its state, as the
//! domain recorded it at the start.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use pathway_domain::{
    Aggregate, Event,
    convert::{clear_int, naive},
    household::{
        CompletePhaseOut, Household, HouseholdCommand, ReassessmentTrigger, RequestReassessment,
    },
    pb,
};
use pathway_engine::{CommandMeta, Engine, EngineError};
use pathway_store::EventStore;
use serde::{Deserialize, Serialize};

use crate::{CommandSink, Input, InputKind, ProcessManager, TimerRequest, Transition};

/// The saga kind: streams `saga-phaseout-<household_ref>`.
pub const KIND: &str = "phaseout";
/// The one timer of the saga.
pub const DEADLINE: &str = "deadline";
/// Seconds east of UTC of the province's calendar (China Standard Time).
pub const PROVINCE_UTC_OFFSET_S: i32 = 8 * 3600;

/// The phase-out in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivePhaseOut {
    pub phase_out_id: String,
    pub start_date: NaiveDate,
    pub planned_end_date: NaiveDate,
    pub policy_version: String,
    pub extended: bool,
}

/// What the saga remembers of one household.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseOutState {
    pub household_ref: Option<String>,
    pub members: BTreeSet<String>,
    /// Whether the household receives the dibao benefit.
    pub dibao: bool,
    /// Members' placements in progress: placement id → person.
    pub placements: BTreeMap<String, String>,
    pub phase_out: Option<ActivePhaseOut>,
    pub completed: u32,
    pub cancelled: u32,
}

/// The instant a business date begins in the province.
pub fn start_of_day(d: NaiveDate) -> DateTime<Utc> {
    let cst = FixedOffset::east_opt(PROVINCE_UTC_OFFSET_S).expect("UTC+8 is a valid offset");
    cst.from_local_datetime(&d.and_time(NaiveTime::MIN))
        .single()
        .expect("a fixed offset has no gaps")
        .with_timezone(&Utc)
}

/// The business date of an instant in the province.
pub fn province_date(t: DateTime<Utc>) -> NaiveDate {
    let cst = FixedOffset::east_opt(PROVINCE_UTC_OFFSET_S).expect("UTC+8 is a valid offset");
    t.with_timezone(&cst).date_naive()
}

/// The phase-out process manager. Its correlation learns which households a
/// person belongs to from `LowIncomeStatusAsserted`.
#[derive(Debug, Clone, Default)]
pub struct PhaseOutSaga {
    households_of: BTreeMap<String, BTreeSet<String>>,
}

const EVENT_TYPES: &[&str] = &[
    "LowIncomeStatusAsserted",
    "PersonPlaced",
    "PlacementEnded",
    "HouseholdIncomeReassessed",
    "PhaseOutStarted",
    "PhaseOutExtensionApproved",
    "PhaseOutCancelled",
    "BenefitPhasedOut",
    "DibaoBenefitTerminated",
    "DibaoBenefitContinued",
];

impl ProcessManager for PhaseOutSaga {
    type State = PhaseOutState;
    type Command = HouseholdCommand;
    const KIND: &'static str = KIND;

    fn event_types(&self) -> &'static [&'static str] {
        EVENT_TYPES
    }

    fn learning_event_types(&self) -> &'static [&'static str] {
        &["LowIncomeStatusAsserted"]
    }

    fn correlate(&mut self, event: &Event) -> Vec<String> {
        let household = match event {
            Event::LowIncomeStatusAsserted(e) => {
                for m in &e.member_person_refs {
                    self.households_of
                        .entry(m.clone())
                        .or_default()
                        .insert(e.household_ref.clone());
                }
                &e.household_ref
            }
            Event::PersonPlaced(e) => return self.of_person(&e.person_ref),
            Event::PlacementEnded(e) => return self.of_person(&e.person_ref),
            Event::HouseholdIncomeReassessed(e) => &e.household_ref,
            Event::PhaseOutStarted(e) => &e.household_ref,
            Event::PhaseOutExtensionApproved(e) => &e.household_ref,
            Event::PhaseOutCancelled(e) => &e.household_ref,
            Event::BenefitPhasedOut(e) => &e.household_ref,
            Event::DibaoBenefitTerminated(e) => &e.household_ref,
            Event::DibaoBenefitContinued(e) => &e.household_ref,
            _ => return Vec::new(),
        };
        vec![household.clone()]
    }

    fn handle(
        &self,
        state: &PhaseOutState,
        input: &Input<'_>,
    ) -> Transition<PhaseOutState, HouseholdCommand> {
        decide(state, input)
    }

    fn command_stream(&self, command: &HouseholdCommand) -> String {
        command.stream_id()
    }
}

impl PhaseOutSaga {
    fn of_person(&self, person_ref: &str) -> Vec<String> {
        self.households_of
            .get(person_ref)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The saga's decision: pure.
pub fn decide(
    state: &PhaseOutState,
    input: &Input<'_>,
) -> Transition<PhaseOutState, HouseholdCommand> {
    let mut next = state.clone();
    let mut t = Transition::state(state.clone());
    let today = province_date(input.at);
    match input.kind {
        InputKind::Timer { timer, .. } if timer == DEADLINE => {
            if let (Some(h), Some(p)) = (&state.household_ref, &state.phase_out) {
                t.commands
                    .push(HouseholdCommand::CompletePhaseOut(CompletePhaseOut {
                        household_ref: h.clone(),
                        phase_out_id: p.phase_out_id.clone(),
                        on: p.planned_end_date,
                    }));
            }
        }
        InputKind::Timer { .. } => {}
        InputKind::Event(event) => match event {
            Event::LowIncomeStatusAsserted(e) => {
                next.household_ref = Some(e.household_ref.clone());
                next.members = e.member_person_refs.iter().cloned().collect();
                next.dibao =
                    clear_int(e.status.as_ref()) == Some(pb::LowIncomeStatus::Dibao as i64);
                next.placements
                    .retain(|_, person| next.members.contains(person));
            }
            Event::PersonPlaced(e) if state.members.contains(&e.person_ref) => {
                next.placements
                    .insert(e.placement_id.clone(), e.person_ref.clone());
                if let Some(h) = &state.household_ref
                    && state.dibao
                    && state.phase_out.is_none()
                {
                    t.commands.push(reassess(
                        h,
                        ReassessmentTrigger::Placement,
                        &e.placement_id,
                        today,
                    ));
                }
            }
            Event::PlacementEnded(e) if state.placements.contains_key(&e.placement_id) => {
                next.placements.remove(&e.placement_id);
                if let (Some(h), Some(_)) = (&state.household_ref, &state.phase_out) {
                    t.commands.push(reassess(
                        h,
                        ReassessmentTrigger::JobLoss,
                        &e.placement_id,
                        today,
                    ));
                }
            }
            Event::PhaseOutStarted(e) => {
                let (Some(start), Some(end)) = (
                    naive(e.start_date.as_ref()),
                    naive(e.planned_end_date.as_ref()),
                ) else {
                    return t;
                };
                next.phase_out = Some(ActivePhaseOut {
                    phase_out_id: e.phase_out_id.clone(),
                    start_date: start,
                    planned_end_date: end,
                    policy_version: e.policy_version.clone(),
                    extended: false,
                });
                t.timers.push(TimerRequest::Schedule {
                    timer: DEADLINE.to_owned(),
                    due_at: start_of_day(end),
                });
            }
            Event::PhaseOutExtensionApproved(e) => {
                if let (Some(p), Some(end)) = (&mut next.phase_out, naive(e.new_end_date.as_ref()))
                    && p.phase_out_id == e.phase_out_id
                {
                    p.planned_end_date = end;
                    p.extended = true;
                    t.timers.push(TimerRequest::Schedule {
                        timer: DEADLINE.to_owned(),
                        due_at: start_of_day(end),
                    });
                }
            }
            Event::PhaseOutCancelled(e)
                if next
                    .phase_out
                    .as_ref()
                    .is_some_and(|p| p.phase_out_id == e.phase_out_id) =>
            {
                next.phase_out = None;
                next.cancelled += 1;
                t.timers.push(TimerRequest::Cancel {
                    timer: DEADLINE.to_owned(),
                });
            }
            Event::BenefitPhasedOut(e)
                if next
                    .phase_out
                    .as_ref()
                    .is_some_and(|p| p.phase_out_id == e.phase_out_id) =>
            {
                next.phase_out = None;
                next.completed += 1;
                next.dibao = false;
                t.timers.push(TimerRequest::Cancel {
                    timer: DEADLINE.to_owned(),
                });
            }
            Event::DibaoBenefitTerminated(_) => next.dibao = false,
            Event::DibaoBenefitContinued(_) => next.dibao = true,
            _ => {}
        },
    }
    t.state = next;
    t
}

fn reassess(
    household_ref: &str,
    trigger: ReassessmentTrigger,
    placement_id: &str,
    on: NaiveDate,
) -> HouseholdCommand {
    HouseholdCommand::RequestReassessment(RequestReassessment {
        household_ref: household_ref.to_owned(),
        trigger,
        triggering_placement_id: Some(placement_id.to_owned()),
        requested_on: on,
    })
}

/// Sends household commands through the command engine.
#[derive(Debug, Clone)]
pub struct EngineSink<S>(pub Engine<S>);

#[async_trait::async_trait]
impl<S: EventStore + Clone> CommandSink<HouseholdCommand> for EngineSink<S> {
    fn keyring(&self) -> Option<&pathway_engine::Keyring> {
        self.0.keyring()
    }

    async fn send(
        &self,
        stream: &str,
        command: &HouseholdCommand,
        meta: &CommandMeta,
    ) -> Result<(), EngineError> {
        debug_assert_eq!(stream, command.stream_id());
        debug_assert_eq!(Household::CATEGORY, "household");
        self.0
            .handle::<Household>(stream, command, meta)
            .await
            .map(|_| ())
    }
}

//! A low-income household (`household-<household_ref>`) and its benefit
//! phase-out (低保渐退期), decided by Civil Affairs (reference §2.7, §4.6).
//!
//! The engine only records Civil Affairs' decisions and keeps them within the
//! rule R-LOW-1:
//! - a reassessment compares the per-capita income with the dibao standard and
//!   the margin (低保边缘) threshold `standard × edge_multiplier_bp / 10000`
//!   (integer fen, rounded down);
//! - with no phase-out active: income ≤ standard keeps the dibao benefit;
//!   standard < income < threshold with the margin criteria met starts a
//!   phase-out of `phase_out_max_months`; otherwise (income ≥ threshold or the
//!   criteria not met) the dibao benefit ends. Only a dibao household has a
//!   benefit to keep, phase out or end; for any other status a reassessment is
//!   recorded and nothing more;
//! - during a phase-out: income ≤ standard cancels it and the ordinary benefit
//!   continues; any other result is recorded and the phase-out runs on to its
//!   planned end (the household keeps the time it was granted);
//! - a phase-out's planned end is at most `phase_out_max_months` after its
//!   start (policy in force at the start); only an approved extension moves it
//!   further; it completes on or after its planned end, never early;
//! - one active phase-out per household.
//!
//! The policy version in force at the start is recorded with the phase-out and
//! its planned end is fixed then; later decisions compare with that stored
//! end, never with the policy of the day, so a phase-out finishes under the
//! rule it began with.

use std::collections::BTreeSet;

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::{
    Aggregate, Context, Decision, Event, Rejection,
    convert::{self, date, naive, personal_int},
    pb,
    person::{NAME_CHARS_MAX, REF_CHARS_MAX, TEXT_CHARS_MAX, wire_enum},
    policy::BASIS_POINTS_PER_UNIT,
    validate,
};

/// Most members recorded for one household.
pub const MEMBERS_MAX: usize = 30;

/// The rule every phase-out limit cites.
const RULE_MAX_MONTHS: &str = "policy dibao.phase_out_max_months";

wire_enum! {
    /// Low-income status asserted by Civil Affairs.
    LowIncomeStatus => LowIncomeStatus {
        /// no low-income status
        None => None,
        /// 低保
        Dibao => Dibao,
        /// 低保边缘
        Margin => Margin,
        /// 特困
        ExtremePoverty => ExtremePoverty,
    }
}

wire_enum! {
    /// Why a household is reassessed.
    ReassessmentTrigger => ReassessmentTrigger {
        Placement => Placement,
        JobLoss => JobLoss,
        PeriodicReview => PeriodicReview,
        SelfReport => SelfReport,
    }
}

wire_enum! {
    /// How the benefit is paid during a phase-out.
    BenefitMode => BenefitMode {
        Full => Full,
        Tapered => Tapered,
    }
}

wire_enum! {
    /// Why a phase-out is cancelled.
    PhaseOutCancelReason => PhaseOutCancelReason {
        IncomeBelowStandard => IncomeBelowStandard,
        JobLost => JobLost,
        HouseholdChanged => HouseholdChanged,
    }
}

/// Civil Affairs asserts the household's members and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertLowIncomeStatus {
    pub household_ref: String,
    pub members: Vec<String>,
    pub status: LowIncomeStatus,
    pub effective_on: NaiveDate,
    pub asserted_by: String,
}

/// Ask Civil Affairs to reassess the household's income.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestReassessment {
    pub household_ref: String,
    pub trigger: ReassessmentTrigger,
    /// Required when the trigger is a placement or a job loss.
    pub triggering_placement_id: Option<String>,
    pub requested_on: NaiveDate,
}

/// Civil Affairs reassessed the household's per-capita monthly income.
/// `phase_out_id` and `benefit_mode` are used if the result starts a phase-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReassessIncome {
    pub household_ref: String,
    pub per_capita_income_fen: i64,
    pub dibao_standard_fen: i64,
    pub meets_edge_criteria: bool,
    pub assessed_by: String,
    pub assessed_on: NaiveDate,
    pub phase_out_id: String,
    pub benefit_mode: BenefitMode,
}

/// Start a phase-out with an explicit planned end (a local rule shorter than
/// the provincial maximum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartPhaseOut {
    pub household_ref: String,
    pub phase_out_id: String,
    pub start_date: NaiveDate,
    pub planned_end_date: NaiveDate,
    pub benefit_mode: BenefitMode,
}

/// An approved extension moves the planned end later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveExtension {
    pub household_ref: String,
    pub phase_out_id: String,
    pub new_end_date: NaiveDate,
    pub justification: String,
    pub approved_by: String,
}

/// Cancel the active phase-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelPhaseOut {
    pub household_ref: String,
    pub phase_out_id: String,
    pub reason: PhaseOutCancelReason,
    pub on: NaiveDate,
}

/// The planned end passed: the benefit is phased out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletePhaseOut {
    pub household_ref: String,
    pub phase_out_id: String,
    pub on: NaiveDate,
}

/// Commands decided on a household's stream; JSON `{"type": "reassess_income", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HouseholdCommand {
    AssertLowIncomeStatus(AssertLowIncomeStatus),
    RequestReassessment(RequestReassessment),
    ReassessIncome(ReassessIncome),
    StartPhaseOut(StartPhaseOut),
    ApproveExtension(ApproveExtension),
    CancelPhaseOut(CancelPhaseOut),
    CompletePhaseOut(CompletePhaseOut),
}

impl HouseholdCommand {
    /// The household the command is addressed to.
    pub fn household_ref(&self) -> &str {
        match self {
            HouseholdCommand::AssertLowIncomeStatus(c) => &c.household_ref,
            HouseholdCommand::RequestReassessment(c) => &c.household_ref,
            HouseholdCommand::ReassessIncome(c) => &c.household_ref,
            HouseholdCommand::StartPhaseOut(c) => &c.household_ref,
            HouseholdCommand::ApproveExtension(c) => &c.household_ref,
            HouseholdCommand::CancelPhaseOut(c) => &c.household_ref,
            HouseholdCommand::CompletePhaseOut(c) => &c.household_ref,
        }
    }

    /// The stream the command is decided on: `household-<household_ref>`.
    pub fn stream_id(&self) -> String {
        format!("{}-{}", Household::CATEGORY, self.household_ref())
    }
}

/// The latest income reassessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Per-capita monthly income; `None` once sealed.
    pub income_fen: Option<i64>,
    pub standard_fen: i64,
    pub edge_threshold_fen: i64,
    pub meets_edge_criteria: bool,
    pub assessed_on: Option<NaiveDate>,
}

impl Assessment {
    /// Whether the income is above the standard but within the margin.
    pub fn within_margin(&self) -> bool {
        self.income_fen.is_some_and(|i| {
            self.standard_fen < i && i < self.edge_threshold_fen && self.meets_edge_criteria
        })
    }
}

/// The active phase-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseOut {
    pub phase_out_id: String,
    pub start_date: Option<NaiveDate>,
    pub planned_end_date: Option<NaiveDate>,
    pub benefit_mode: i32,
    /// The policy version the phase-out runs under.
    pub policy_version: String,
    /// Whether an extension was approved.
    pub extended: bool,
}

/// The state of one household: a fold of its stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Household {
    household_ref: Option<String>,
    members: BTreeSet<String>,
    /// `None` when never asserted or sealed.
    status: Option<pb::LowIncomeStatus>,
    last_assessment: Option<Assessment>,
    phase_out: Option<PhaseOut>,
    phase_out_ids: BTreeSet<String>,
}

impl Household {
    /// The household's reference, once asserted.
    pub fn household_ref(&self) -> Option<&str> {
        self.household_ref.as_deref()
    }

    /// Member persons.
    pub fn members(&self) -> &BTreeSet<String> {
        &self.members
    }

    /// The members, in order, as phase-out events carry them.
    fn member_refs(&self) -> Vec<String> {
        self.members.iter().cloned().collect()
    }

    /// Current low-income status, if known in the clear.
    pub fn status(&self) -> Option<pb::LowIncomeStatus> {
        self.status
    }

    /// The latest reassessment.
    pub fn last_assessment(&self) -> Option<&Assessment> {
        self.last_assessment.as_ref()
    }

    /// The active phase-out.
    pub fn phase_out(&self) -> Option<&PhaseOut> {
        self.phase_out.as_ref()
    }

    /// Every phase-out id ever started.
    pub fn phase_out_ids(&self) -> &BTreeSet<String> {
        &self.phase_out_ids
    }

    /// The household the command is addressed to, or why it cannot be.
    fn addressed(&self, household_ref: &str) -> Result<&str, Rejection> {
        match &self.household_ref {
            None => Err(Rejection::new(
                "household_ref",
                format!("household {household_ref} has no low-income status asserted"),
                "assistance: Civil Affairs asserts the status first",
            )),
            Some(own) if own != household_ref => Err(Rejection::new(
                "household_ref",
                format!("{household_ref} is not the household of this stream ({own})"),
                "stream household-<household_ref>",
            )),
            Some(own) => Ok(own),
        }
    }

    /// The active phase-out named by `id`.
    fn active(&self, id: &str) -> Result<&PhaseOut, Rejection> {
        match &self.phase_out {
            None => Err(Rejection::new(
                "phase_out_id",
                format!("no phase-out is active, {id} is not"),
                "R-LOW-1 phase-out active",
            )),
            Some(p) if p.phase_out_id != id => Err(Rejection::new(
                "phase_out_id",
                format!("{id} is not the active phase-out ({})", p.phase_out_id),
                "R-LOW-1 phase-out active",
            )),
            Some(p) => Ok(p),
        }
    }

    /// No phase-out is active, and `id` was never used.
    fn can_start(&self, id: &str) -> Result<(), Rejection> {
        if let Some(p) = &self.phase_out {
            let end = p
                .planned_end_date
                .map_or_else(|| "?".to_owned(), |d| d.to_string());
            return Err(Rejection::new(
                "phase_out_id",
                format!("phase-out {} is already active until {end}", p.phase_out_id),
                "R-LOW-1 one active phase-out per household, §4.5",
            ));
        }
        if self.phase_out_ids.contains(id) {
            return Err(Rejection::new(
                "phase_out_id",
                format!("phase-out {id} was already used"),
                "phase-out ids are unique",
            ));
        }
        Ok(())
    }

    fn is_dibao(&self) -> bool {
        self.status == Some(pb::LowIncomeStatus::Dibao)
    }
}

impl Aggregate for Household {
    type Command = HouseholdCommand;
    const CATEGORY: &'static str = "household";

    fn decide(&self, command: &HouseholdCommand, ctx: &Context<'_>) -> Decision {
        if let HouseholdCommand::AssertLowIncomeStatus(c) = command {
            return self.assert_status(c, ctx);
        }
        let household_ref = self.addressed(command.household_ref())?.to_owned();
        match command {
            HouseholdCommand::AssertLowIncomeStatus(_) => unreachable!("decided above"),
            HouseholdCommand::RequestReassessment(c) => request(household_ref, c, ctx),
            HouseholdCommand::ReassessIncome(c) => self.reassess(household_ref, c, ctx),
            HouseholdCommand::StartPhaseOut(c) => self.start(household_ref, c, ctx),
            HouseholdCommand::ApproveExtension(c) => self.extend(household_ref, c, ctx),
            HouseholdCommand::CancelPhaseOut(c) => self.cancel(household_ref, c, ctx),
            HouseholdCommand::CompletePhaseOut(c) => self.complete(household_ref, c, ctx),
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::LowIncomeStatusAsserted(e) => {
                self.household_ref = Some(e.household_ref.clone());
                self.members = e.member_person_refs.iter().cloned().collect();
                self.status = convert::clear_int(e.status.as_ref())
                    .and_then(|s| i32::try_from(s).ok())
                    .and_then(|s| pb::LowIncomeStatus::try_from(s).ok());
            }
            Event::HouseholdIncomeReassessed(e) => {
                self.last_assessment = Some(Assessment {
                    income_fen: convert::clear_int(e.per_capita_income.as_ref()),
                    standard_fen: e.dibao_standard_fen,
                    edge_threshold_fen: e.edge_threshold_fen,
                    meets_edge_criteria: e.meets_edge_criteria,
                    assessed_on: naive(e.assessed_on.as_ref()),
                });
            }
            Event::PhaseOutStarted(e) => {
                self.phase_out_ids.insert(e.phase_out_id.clone());
                self.phase_out = Some(PhaseOut {
                    phase_out_id: e.phase_out_id.clone(),
                    start_date: naive(e.start_date.as_ref()),
                    planned_end_date: naive(e.planned_end_date.as_ref()),
                    benefit_mode: e.benefit_mode,
                    policy_version: e.policy_version.clone(),
                    extended: false,
                });
            }
            Event::PhaseOutExtensionApproved(e) => {
                if let Some(p) = &mut self.phase_out
                    && p.phase_out_id == e.phase_out_id
                {
                    p.planned_end_date = naive(e.new_end_date.as_ref());
                    p.extended = true;
                }
            }
            Event::PhaseOutCancelled(e)
                if self
                    .phase_out
                    .as_ref()
                    .is_some_and(|p| p.phase_out_id == e.phase_out_id) =>
            {
                self.phase_out = None;
            }
            Event::BenefitPhasedOut(e) => {
                if self
                    .phase_out
                    .as_ref()
                    .is_some_and(|p| p.phase_out_id == e.phase_out_id)
                {
                    self.phase_out = None;
                }
                self.status = pb::LowIncomeStatus::try_from(e.resulting_status).ok();
            }
            Event::DibaoBenefitTerminated(_) => {
                self.status = Some(pb::LowIncomeStatus::None);
            }
            Event::DibaoBenefitContinued(_) => {
                self.status = Some(pb::LowIncomeStatus::Dibao);
            }
            _ => {}
        }
        self
    }
}

/// A business date that records a fact: in range and not after today.
fn fact_date(field: &'static str, d: NaiveDate, ctx: &Context<'_>) -> Result<(), Rejection> {
    validate::date_in_range(field, d)?;
    if d > ctx.today {
        return Err(Rejection::new(
            field,
            format!("{d} is after today ({})", ctx.today),
            "facts are recorded when they happened, not ahead",
        ));
    }
    Ok(())
}

/// The latest planned end allowed for a phase-out starting on `start` under
/// the policy in force then, and that policy's version.
fn max_end(start: NaiveDate, ctx: &Context<'_>) -> Result<(NaiveDate, String, u32), Rejection> {
    let policy = ctx.policy.at(start);
    let months = policy.phase_out_max_months;
    let end = start
        .checked_add_months(Months::new(months))
        .ok_or_else(|| {
            Rejection::new(
                "start_date",
                format!("{start} + {months} months is beyond the calendar"),
                "date range",
            )
        })?;
    Ok((end, policy.version, months))
}

fn request(household_ref: String, c: &RequestReassessment, ctx: &Context<'_>) -> Decision {
    fact_date("requested_on", c.requested_on, ctx)?;
    let placement = c
        .triggering_placement_id
        .as_deref()
        .map(|p| validate::text("triggering_placement_id", p, REF_CHARS_MAX))
        .transpose()?;
    let needs_placement = matches!(
        c.trigger,
        ReassessmentTrigger::Placement | ReassessmentTrigger::JobLoss
    );
    if needs_placement && placement.is_none() {
        return Err(Rejection::new(
            "triggering_placement_id",
            format!("is missing for trigger {:?}", c.trigger),
            "saga: a placement or job loss names its placement, §4.6",
        ));
    }
    Ok(vec![Event::HouseholdReassessmentRequested(
        pb::HouseholdReassessmentRequested {
            household_ref,
            trigger: c.trigger.pb() as i32,
            triggering_placement_id: placement.unwrap_or_default(),
            requested_on: date(c.requested_on),
        },
    )])
}

impl Household {
    fn assert_status(&self, c: &AssertLowIncomeStatus, ctx: &Context<'_>) -> Decision {
        let household_ref = validate::text("household_ref", &c.household_ref, REF_CHARS_MAX)?;
        if let Some(own) = &self.household_ref
            && *own != household_ref
        {
            return Err(Rejection::new(
                "household_ref",
                format!("{household_ref} is not the household of this stream ({own})"),
                "stream household-<household_ref>",
            ));
        }
        if c.members.is_empty() || c.members.len() > MEMBERS_MAX {
            return Err(Rejection::new(
                "members",
                format!("{} members, expected 1 to {MEMBERS_MAX}", c.members.len()),
                "assistance: a household has members",
            ));
        }
        let mut members = Vec::with_capacity(c.members.len());
        let mut seen = BTreeSet::new();
        for m in &c.members {
            let m = validate::text("members", m, REF_CHARS_MAX)?;
            if !seen.insert(m.clone()) {
                return Err(Rejection::new(
                    "members",
                    format!("{m} is listed twice"),
                    "assistance: each member once",
                ));
            }
            members.push(m);
        }
        fact_date("effective_on", c.effective_on, ctx)?;
        let asserted_by = validate::text("asserted_by", &c.asserted_by, NAME_CHARS_MAX)?;
        Ok(vec![Event::LowIncomeStatusAsserted(
            pb::LowIncomeStatusAsserted {
                household_ref,
                member_person_refs: members,
                status: personal_int(i64::from(c.status.pb() as i32)),
                effective_on: date(c.effective_on),
                asserted_by,
            },
        )])
    }

    fn reassess(&self, household_ref: String, c: &ReassessIncome, ctx: &Context<'_>) -> Decision {
        let income = validate::money_fen("per_capita_income_fen", c.per_capita_income_fen)?;
        let standard = validate::money_fen("dibao_standard_fen", c.dibao_standard_fen)?;
        if standard == 0 {
            return Err(Rejection::new(
                "dibao_standard_fen",
                "is 0 fen",
                "dibao standard is a positive amount",
            ));
        }
        let assessed_by = validate::text("assessed_by", &c.assessed_by, NAME_CHARS_MAX)?;
        fact_date("assessed_on", c.assessed_on, ctx)?;
        let phase_out_id = validate::text("phase_out_id", &c.phase_out_id, REF_CHARS_MAX)?;
        let policy = ctx.policy.at(c.assessed_on);
        // standard ≤ MONEY_FEN_MAX (10^12) and the multiplier is a u32: the
        // product fits in i128, and the threshold is at most 2^32 × 10^8.
        let threshold = i128::from(standard) * i128::from(policy.edge_multiplier_bp)
            / i128::from(BASIS_POINTS_PER_UNIT);
        let edge_threshold_fen = i64::try_from(threshold).map_err(|_| {
            Rejection::new(
                "dibao_standard_fen",
                format!("{standard} fen is too large"),
                "money in fen",
            )
        })?;
        let on = date(c.assessed_on);
        let mut events = vec![Event::HouseholdIncomeReassessed(
            pb::HouseholdIncomeReassessed {
                household_ref: household_ref.clone(),
                per_capita_income: personal_int(income),
                dibao_standard_fen: standard,
                edge_threshold_fen,
                meets_edge_criteria: c.meets_edge_criteria,
                assessed_by,
                assessed_on: on,
            },
        )];
        if let Some(active) = &self.phase_out {
            if income <= standard {
                events.push(Event::PhaseOutCancelled(pb::PhaseOutCancelled {
                    household_ref: household_ref.clone(),
                    phase_out_id: active.phase_out_id.clone(),
                    reason: pb::PhaseOutCancelReason::IncomeBelowStandard as i32,
                    cancelled_on: on,
                    member_person_refs: self.member_refs(),
                }));
                events.push(Event::DibaoBenefitContinued(pb::DibaoBenefitContinued {
                    household_ref,
                    effective_on: on,
                }));
            }
            return Ok(events);
        }
        if !self.is_dibao() {
            return Ok(events);
        }
        if income <= standard {
            events.push(Event::DibaoBenefitContinued(pb::DibaoBenefitContinued {
                household_ref,
                effective_on: on,
            }));
        } else if income < edge_threshold_fen && c.meets_edge_criteria {
            self.can_start(&phase_out_id)?;
            let (planned_end, policy_version, _) = max_end(c.assessed_on, ctx)?;
            events.push(Event::PhaseOutStarted(pb::PhaseOutStarted {
                household_ref,
                phase_out_id,
                start_date: on,
                planned_end_date: date(planned_end),
                benefit_mode: c.benefit_mode.pb() as i32,
                policy_version,
                member_person_refs: self.member_refs(),
            }));
        } else {
            events.push(Event::DibaoBenefitTerminated(pb::DibaoBenefitTerminated {
                household_ref,
                effective_on: on,
            }));
        }
        Ok(events)
    }

    fn start(&self, household_ref: String, c: &StartPhaseOut, ctx: &Context<'_>) -> Decision {
        let phase_out_id = validate::text("phase_out_id", &c.phase_out_id, REF_CHARS_MAX)?;
        validate::date_in_range("start_date", c.start_date)?;
        validate::date_in_range("planned_end_date", c.planned_end_date)?;
        self.can_start(&phase_out_id)?;
        if !self.is_dibao() {
            return Err(Rejection::state(
                "the household's status is not dibao",
                "R-LOW-1 a phase-out is for dibao households",
            ));
        }
        let Some(assessment) = self.last_assessment.as_ref().filter(|a| a.within_margin()) else {
            return Err(Rejection::state(
                "the latest reassessment does not show income above the standard within the margin",
                "R-LOW-1 start only above the standard and meeting the margin criteria",
            ));
        };
        if let Some(assessed_on) = assessment.assessed_on
            && c.start_date < assessed_on
        {
            return Err(Rejection::new(
                "start_date",
                format!(
                    "{} is before the reassessment on {assessed_on}",
                    c.start_date
                ),
                "saga: a phase-out follows its reassessment, §4.6",
            ));
        }
        if c.planned_end_date <= c.start_date {
            return Err(Rejection::new(
                "planned_end_date",
                format!(
                    "{} is not after start_date {}",
                    c.planned_end_date, c.start_date
                ),
                "phase-out ends after it starts",
            ));
        }
        let (latest, policy_version, months) = max_end(c.start_date, ctx)?;
        if c.planned_end_date > latest {
            return Err(Rejection::new(
                "planned_end_date",
                format!(
                    "{} is after {latest}, {months} months from the start {}; longer needs an approved extension",
                    c.planned_end_date, c.start_date
                ),
                RULE_MAX_MONTHS,
            ));
        }
        Ok(vec![Event::PhaseOutStarted(pb::PhaseOutStarted {
            household_ref,
            phase_out_id,
            start_date: date(c.start_date),
            planned_end_date: date(c.planned_end_date),
            benefit_mode: c.benefit_mode.pb() as i32,
            policy_version,
            member_person_refs: self.member_refs(),
        })])
    }

    fn extend(&self, household_ref: String, c: &ApproveExtension, _ctx: &Context<'_>) -> Decision {
        let active = self.active(&c.phase_out_id)?;
        validate::date_in_range("new_end_date", c.new_end_date)?;
        let justification = validate::text("justification", &c.justification, TEXT_CHARS_MAX)?;
        let approved_by = validate::text("approved_by", &c.approved_by, NAME_CHARS_MAX)?;
        if let Some(end) = active.planned_end_date
            && c.new_end_date <= end
        {
            return Err(Rejection::new(
                "new_end_date",
                format!("{} is not after the planned end {end}", c.new_end_date),
                "R-LOW-1 an extension moves the end later",
            ));
        }
        Ok(vec![Event::PhaseOutExtensionApproved(
            pb::PhaseOutExtensionApproved {
                household_ref,
                phase_out_id: active.phase_out_id.clone(),
                new_end_date: date(c.new_end_date),
                justification,
                approved_by,
                member_person_refs: self.member_refs(),
            },
        )])
    }

    fn cancel(&self, household_ref: String, c: &CancelPhaseOut, ctx: &Context<'_>) -> Decision {
        let active = self.active(&c.phase_out_id)?;
        fact_date("on", c.on, ctx)?;
        if let Some(start) = active.start_date
            && c.on < start
        {
            return Err(Rejection::new(
                "on",
                format!("{} is before the start {start}", c.on),
                "dates in order",
            ));
        }
        let on = date(c.on);
        let mut events = vec![Event::PhaseOutCancelled(pb::PhaseOutCancelled {
            household_ref: household_ref.clone(),
            phase_out_id: active.phase_out_id.clone(),
            reason: c.reason.pb() as i32,
            cancelled_on: on,
            member_person_refs: self.member_refs(),
        })];
        // Income back below the standard or the job lost: the household is an
        // ordinary dibao household again. A changed household is reassessed.
        if c.reason != PhaseOutCancelReason::HouseholdChanged {
            events.push(Event::DibaoBenefitContinued(pb::DibaoBenefitContinued {
                household_ref,
                effective_on: on,
            }));
        }
        Ok(events)
    }

    fn complete(&self, household_ref: String, c: &CompletePhaseOut, ctx: &Context<'_>) -> Decision {
        let active = self.active(&c.phase_out_id)?;
        fact_date("on", c.on, ctx)?;
        if let Some(end) = active.planned_end_date
            && c.on < end
        {
            return Err(Rejection::new(
                "on",
                format!("{} is before the planned end {end}", c.on),
                "R-LOW-1 a phase-out completes at its planned end, never early",
            ));
        }
        let still_margin = self
            .last_assessment
            .as_ref()
            .is_some_and(Assessment::within_margin);
        let resulting_status = if still_margin {
            pb::LowIncomeStatus::Margin
        } else {
            pb::LowIncomeStatus::None
        };
        Ok(vec![Event::BenefitPhasedOut(pb::BenefitPhasedOut {
            household_ref,
            phase_out_id: active.phase_out_id.clone(),
            end_date: date(c.on),
            resulting_status: resulting_status as i32,
            member_person_refs: self.member_refs(),
        })])
    }
}

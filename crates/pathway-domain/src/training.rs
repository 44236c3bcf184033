//! A training programme (`training-<programme_id>`): registered once, with a
//! cycle that matches its duration.
//!
//! Cycles (§4.3): short lasts at most 1 month, medium more than 1 and at most
//! 6 months, long more than 6 months, each measured in calendar months from
//! the start date (`end ≤ start + n months`, chrono's month arithmetic, so a
//! course from 31 January may end on 28 or 29 February and still be short).
//! Enrolment, completion and the subsidy are facts about the person and live on
//! the person's stream (see [`crate::person`]).

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::{
    Aggregate, Context, Decision, Event, Rejection,
    convert::date,
    pb,
    person::{NAME_CHARS_MAX, REF_CHARS_MAX, wire_enum},
    validate,
};

/// A short programme lasts at most this many months.
pub const SHORT_MONTHS_MAX: u32 = 1;
/// A medium programme lasts at most this many months; a long one more.
pub const MEDIUM_MONTHS_MAX: u32 = 6;

wire_enum! {
    /// The kind of training (培训类型).
    TrainingType => TrainingType {
        /// 就业技能
        EmploymentSkills => EmploymentSkills,
        /// 岗位技能
        JobSkills => JobSkills,
        /// 创业
        Entrepreneurship => Entrepreneurship,
        /// 实用技术
        PracticalTechnology => PracticalTechnology,
    }
}

wire_enum! {
    /// The length class of a programme.
    TrainingCycle => TrainingCycle {
        /// at most 1 month
        Short => Short,
        /// more than 1, at most 6 months
        Medium => Medium,
        /// more than 6 months
        Long => Long,
    }
}

impl TrainingCycle {
    /// The cycle a programme from `start` to `end` (inclusive) belongs to;
    /// `None` if the dates are beyond the calendar.
    pub fn of(start: NaiveDate, end: NaiveDate) -> Option<TrainingCycle> {
        let short_end = start.checked_add_months(Months::new(SHORT_MONTHS_MAX))?;
        let medium_end = start.checked_add_months(Months::new(MEDIUM_MONTHS_MAX))?;
        Some(if end <= short_end {
            TrainingCycle::Short
        } else if end <= medium_end {
            TrainingCycle::Medium
        } else {
            TrainingCycle::Long
        })
    }
}

/// Register a training programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterProgramme {
    pub programme_id: String,
    pub training_type: TrainingType,
    pub cycle: TrainingCycle,
    pub provider_org: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    /// GB/T 2260 county code where the programme runs.
    pub region: String,
}

/// Commands decided on a programme's stream; JSON `{"type": "register_programme", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TrainingCommand {
    RegisterProgramme(RegisterProgramme),
}

impl TrainingCommand {
    /// The programme the command is addressed to.
    pub fn programme_id(&self) -> &str {
        match self {
            TrainingCommand::RegisterProgramme(c) => &c.programme_id,
        }
    }

    /// The stream the command is decided on: `training-<programme_id>`.
    pub fn stream_id(&self) -> String {
        format!("{}-{}", TrainingProgramme::CATEGORY, self.programme_id())
    }
}

/// The state of one programme.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingProgramme {
    registered: Option<pb::TrainingProgrammeRegistered>,
}

impl TrainingProgramme {
    /// The registration, if registered.
    pub fn registration(&self) -> Option<&pb::TrainingProgrammeRegistered> {
        self.registered.as_ref()
    }
}

impl Aggregate for TrainingProgramme {
    type Command = TrainingCommand;
    const CATEGORY: &'static str = "training";

    fn decide(&self, command: &TrainingCommand, _ctx: &Context<'_>) -> Decision {
        match command {
            TrainingCommand::RegisterProgramme(c) => self.register(c),
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        if let Event::TrainingProgrammeRegistered(e) = event {
            self.registered = Some(e.clone());
        }
        self
    }
}

impl TrainingProgramme {
    fn register(&self, c: &RegisterProgramme) -> Decision {
        let programme_id = validate::text("programme_id", &c.programme_id, REF_CHARS_MAX)?;
        if let Some(r) = &self.registered {
            return Err(Rejection::state(
                format!("programme {} is already registered", r.programme_id),
                "training: one registration per programme",
            ));
        }
        let provider_org = validate::text("provider_org", &c.provider_org, NAME_CHARS_MAX)?;
        validate::date_in_range("start_date", c.start_date)?;
        validate::date_in_range("end_date", c.end_date)?;
        validate::region("region", &c.region)?;
        if c.end_date < c.start_date {
            return Err(Rejection::new(
                "end_date",
                format!("{} is before start_date {}", c.end_date, c.start_date),
                "training: end ≥ start",
            ));
        }
        let actual = TrainingCycle::of(c.start_date, c.end_date)
            .ok_or_else(|| Rejection::new("end_date", "is beyond the calendar", "date range"))?;
        if actual != c.cycle {
            return Err(Rejection::new(
                "cycle",
                format!(
                    "{:?} does not fit {} to {}, which is {:?}",
                    c.cycle, c.start_date, c.end_date, actual
                ),
                "training cycle: short ≤ 1 month, medium ≤ 6 months, long > 6 months, §4.3",
            ));
        }
        Ok(vec![Event::TrainingProgrammeRegistered(
            pb::TrainingProgrammeRegistered {
                programme_id,
                training_type: c.training_type.pb() as i32,
                cycle: c.cycle.pb() as i32,
                provider_org,
                start_date: date(c.start_date),
                end_date: date(c.end_date),
                region: c.region.clone(),
            },
        )])
    }
}

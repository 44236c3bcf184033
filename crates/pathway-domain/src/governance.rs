//! Programme governance: each city's annual report to the province (R-RPT-1)
//! and the province's evaluation at the end of the plan (R-EVAL-1).
//!
//! Two aggregates live here:
//! - [`CityReport`], stream `report-<city>-<year>`: one city's report for one
//!   plan year, submitted once, or marked overdue after its due date;
//! - [`Evaluation`], stream `evaluation-<plan_id>`: the end-of-plan evaluation,
//!   completed once, against the target of the policy.
//!
//! Reports carry aggregates only, never a person.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::{
    Aggregate, Context, Decision, Event, Rejection, convert, pb,
    policy::Policy,
    validate::{self, CITIES},
};

/// The day each year from which the evaluation of the plan may be completed:
/// 1 December of the plan's last year (reference 4.5, assumed).
pub const EVALUATION_OPENS_MONTH_DAY: (u32, u32) = (12, 1);

/// Largest count a report or evaluation may state, a bound against typos: the
/// province has fewer disabled residents than this.
pub const COUNT_MAX: u32 = 10_000_000;

/// Longest identifier, in characters.
const ID_CHARS_MAX: usize = 64;
/// Longest narrative or findings, in characters.
const NARRATIVE_CHARS_MAX: usize = 20_000;

/// Commands of a [`CityReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CityReportCommand {
    /// The city's report for a plan year; once. A report after an overdue
    /// mark is still accepted (late).
    SubmitReport {
        report_id: String,
        /// One of the 13 prefecture-level codes.
        city: String,
        year: i32,
        submitted_on: NaiveDate,
        new_employment: u32,
        four_ones_verified: u32,
        trained: u32,
        narrative: String,
    },
    /// Record that no report arrived by the due date; once, and only after it.
    MarkOverdue {
        city: String,
        year: i32,
        due_on: NaiveDate,
    },
}

/// One city's report for one year.
#[derive(Debug, Clone, Default)]
pub struct CityReport {
    /// `(city, year)`, set by the first event.
    pub key: Option<(String, i32)>,
    /// The report id, once submitted.
    pub submitted: Option<String>,
    pub overdue: bool,
}

impl CityReport {
    /// The report is not yet submitted and the command's city and year match
    /// the stream's.
    fn check_open(&self, city: &str, year: i32) -> Result<(), Rejection> {
        if let Some(id) = &self.submitted {
            return Err(Rejection::state(
                format!("report {id} was already submitted"),
                "R-RPT-1 one report per city and year",
            ));
        }
        match &self.key {
            Some((c, _)) if c != city => Err(Rejection::new(
                "city",
                format!("{city} does not match this stream's city {c}"),
                "stream report-<city>-<year>",
            )),
            Some((_, y)) if *y != year => Err(Rejection::new(
                "year",
                format!("{year} does not match this stream's year {y}"),
                "stream report-<city>-<year>",
            )),
            _ => Ok(()),
        }
    }
}

impl Aggregate for CityReport {
    type Command = CityReportCommand;
    const CATEGORY: &'static str = "report";

    fn decide(&self, command: &CityReportCommand, ctx: &Context<'_>) -> Decision {
        match command {
            CityReportCommand::SubmitReport {
                report_id,
                city,
                year,
                submitted_on,
                new_employment,
                four_ones_verified,
                trained,
                narrative,
            } => {
                let city = validate::city_code("city", city)?;
                self.check_open(city.code, *year)?;
                plan_year(ctx, *year)?;
                let report_id = validate::text("report_id", report_id, ID_CHARS_MAX)?;
                validate::date_in_range("submitted_on", *submitted_on)?;
                if submitted_on.year() < *year {
                    return Err(Rejection::new(
                        "submitted_on",
                        format!("{submitted_on} is before the reported year {year}"),
                        "R-RPT-1 year-end report",
                    ));
                }
                if *submitted_on > ctx.today {
                    return Err(Rejection::new(
                        "submitted_on",
                        format!("{submitted_on} is after today {}", ctx.today),
                        "no future dates",
                    ));
                }
                count("new_employment", *new_employment)?;
                count("four_ones_verified", *four_ones_verified)?;
                count("trained", *trained)?;
                let narrative = validate::text("narrative", narrative, NARRATIVE_CHARS_MAX)?;
                Ok(vec![Event::CityAnnualReportSubmitted(
                    pb::CityAnnualReportSubmitted {
                        report_id,
                        city: city.code.to_string(),
                        year: *year,
                        submitted_on: convert::date(*submitted_on),
                        new_employment: *new_employment,
                        four_ones_verified: *four_ones_verified,
                        trained: *trained,
                        narrative,
                    },
                )])
            }
            CityReportCommand::MarkOverdue { city, year, due_on } => {
                let city = validate::city_code("city", city)?;
                self.check_open(city.code, *year)?;
                if self.overdue {
                    return Err(Rejection::state(
                        format!("the {year} report of {} is already overdue", city.code),
                        "R-RPT-1 one overdue mark",
                    ));
                }
                let policy = plan_year(ctx, *year)?;
                let (month, day) = policy.city_report_due;
                let due = NaiveDate::from_ymd_opt(*year, month, day).ok_or_else(|| {
                    Rejection::new(
                        "year",
                        format!("due date {year}-{month:02}-{day:02} is not a calendar date"),
                        "policy city_report_due",
                    )
                })?;
                if *due_on != due {
                    return Err(Rejection::new(
                        "due_on",
                        format!("{due_on} is not the due date {due}"),
                        "R-RPT-1, policy city_report_due",
                    ));
                }
                if ctx.today <= due {
                    return Err(Rejection::new(
                        "due_on",
                        format!("today {} is not after the due date {due}", ctx.today),
                        "R-RPT-1, policy city_report_due",
                    ));
                }
                Ok(vec![Event::CityAnnualReportOverdue(
                    pb::CityAnnualReportOverdue {
                        city: city.code.to_string(),
                        year: *year,
                        due_on: convert::date(due),
                    },
                )])
            }
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::CityAnnualReportSubmitted(e) => {
                self.key = Some((e.city.clone(), e.year));
                self.submitted = Some(e.report_id.clone());
            }
            Event::CityAnnualReportOverdue(e) => {
                self.key = Some((e.city.clone(), e.year));
                self.overdue = true;
            }
            _ => {}
        }
        self
    }
}

/// Commands of an [`Evaluation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EvaluationCommand {
    /// Complete the end-of-plan evaluation; once.
    CompleteEvaluation {
        plan_id: String,
        completed_on: NaiveDate,
        new_employment_total: u32,
        /// City reports of the plan's last year filed (or waived); all 13.
        reports_filed: u32,
        findings: String,
    },
}

/// The evaluation of a plan.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// `(plan_id, target)`, once completed.
    pub completed: Option<(String, u32)>,
}

impl Aggregate for Evaluation {
    type Command = EvaluationCommand;
    const CATEGORY: &'static str = "evaluation";

    fn decide(&self, command: &EvaluationCommand, ctx: &Context<'_>) -> Decision {
        match command {
            EvaluationCommand::CompleteEvaluation {
                plan_id,
                completed_on,
                new_employment_total,
                reports_filed,
                findings,
            } => {
                if let Some((id, _)) = &self.completed {
                    return Err(Rejection::state(
                        format!("the evaluation of {id} is already complete"),
                        "R-EVAL-1 one evaluation per plan",
                    ));
                }
                let plan_id = validate::text("plan_id", plan_id, ID_CHARS_MAX)?;
                validate::date_in_range("completed_on", *completed_on)?;
                let policy = evaluated_plan(ctx, *completed_on)?;
                let (month, day) = EVALUATION_OPENS_MONTH_DAY;
                let opens = NaiveDate::from_ymd_opt(policy.plan_last_year, month, day)
                    .ok_or_else(|| Rejection::new("completed_on", "no opening date", "R-EVAL-1"))?;
                if *completed_on < opens {
                    return Err(Rejection::new(
                        "completed_on",
                        format!(
                            "{completed_on} is before {opens}, when the evaluation of the {}–{} plan opens",
                            policy.plan_first_year, policy.plan_last_year
                        ),
                        "R-EVAL-1",
                    ));
                }
                if *completed_on > ctx.today {
                    return Err(Rejection::new(
                        "completed_on",
                        format!("{completed_on} is after today {}", ctx.today),
                        "no future dates",
                    ));
                }
                count("new_employment_total", *new_employment_total)?;
                let cities = u32::try_from(CITIES.len()).unwrap_or(u32::MAX);
                if *reports_filed != cities {
                    return Err(Rejection::new(
                        "reports_filed",
                        format!(
                            "{reports_filed} city reports for {} filed, expected all {cities}",
                            policy.plan_last_year
                        ),
                        "R-EVAL-1, R-RPT-1",
                    ));
                }
                let findings = validate::text("findings", findings, NARRATIVE_CHARS_MAX)?;
                Ok(vec![Event::ProvincialEvaluationCompleted(
                    pb::ProvincialEvaluationCompleted {
                        plan_id,
                        completed_on: convert::date(*completed_on),
                        new_employment_total: *new_employment_total,
                        target: policy.target_new_employment,
                        findings,
                    },
                )])
            }
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        if let Event::ProvincialEvaluationCompleted(e) = event {
            self.completed = Some((e.plan_id.clone(), e.target));
        }
        self
    }
}

/// The policy of a plan year, or a rejection if `year` is not one.
fn plan_year(ctx: &Context<'_>, year: i32) -> Result<Policy, Rejection> {
    let start = NaiveDate::from_ymd_opt(year, 1, 1).ok_or_else(|| {
        Rejection::new("year", format!("{year} is not a calendar year"), "ISO 8601")
    })?;
    let policy = ctx.policy.at(start);
    if !policy.is_plan_year(year) {
        return Err(Rejection::new(
            "year",
            format!(
                "{year} is not a plan year ({}..={})",
                policy.plan_first_year, policy.plan_last_year
            ),
            "R-RPT-1, policy plan years",
        ));
    }
    Ok(policy)
}

/// The policy of the plan an evaluation completed on `completed_on` is about:
/// the one in force on the latest evaluation opening day (1 December) on or
/// before it, so an evaluation finished in the new year still evaluates the
/// plan that just ended.
fn evaluated_plan(ctx: &Context<'_>, completed_on: NaiveDate) -> Result<Policy, Rejection> {
    let (month, day) = EVALUATION_OPENS_MONTH_DAY;
    let this_year = NaiveDate::from_ymd_opt(completed_on.year(), month, day);
    let last_year = NaiveDate::from_ymd_opt(completed_on.year() - 1, month, day);
    let anchor = match (this_year, last_year) {
        (Some(d), _) if d <= completed_on => d,
        (_, Some(d)) => d,
        _ => {
            return Err(Rejection::new(
                "completed_on",
                format!("{completed_on} is out of range"),
                "R-EVAL-1",
            ));
        }
    };
    Ok(ctx.policy.at(anchor))
}

fn count(field: &'static str, n: u32) -> Result<(), Rejection> {
    if n > COUNT_MAX {
        return Err(Rejection::new(
            field,
            format!("{n} exceeds {COUNT_MAX}"),
            "limit count_max",
        ));
    }
    Ok(())
}

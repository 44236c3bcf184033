//! The graduate exchange (残疾人大学生信息交换): Education sends a cohort of
//! disabled graduates, each record matched on a keyed hash of the ID number
//! (never the plain number); every matched graduate gets an annual ledger
//! (一人一册), a plan (一人一策), services and one year-end outcome (R-GRAD-1).
//!
//! Two aggregates live here:
//! - [`Cohort`], stream `cohort-<batch_id>`: one batch from Education and how
//!   each of its records was resolved;
//! - [`GraduateLedger`], stream `ledger-<person_ref>-<year>`: one graduate's
//!   ledger for one year.

use crate::person::wire_enum;
use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{Aggregate, Context, Decision, Event, Rejection, convert, pb, validate};

/// Length of a keyed hash (HMAC-SHA-256) or record hash, in bytes.
pub const HASH_BYTES: usize = 32;

/// Most records one cohort may announce, a bound against malformed batches.
pub const COHORT_RECORDS_MAX: u32 = 100_000;

/// The day each year by which a ledger's outcome is due: 31 December of the
/// ledger's year (R-GRAD-1 "outcome by year-end").
pub const OUTCOME_DUE_MONTH_DAY: (u32, u32) = (12, 31);

/// Longest identifier, in characters.
const ID_CHARS_MAX: usize = 64;
/// Longest school, major or organisation name, in characters.
const NAME_CHARS_MAX: usize = 200;

wire_enum! {
    /// A graduate's level of study, as in `pb::GraduateLevel`.
    GraduateLevel => GraduateLevel {
        /// 专科
        JuniorCollege => JuniorCollege,
        /// 本科
        Bachelor => Bachelor,
        /// 研究生
        Postgraduate => Postgraduate,
    }
}

wire_enum! {
    /// Why a record of the cohort matched no registered person.
    UnmatchedReason => UnmatchedReason {
        NotRegistered => NotRegistered,
        NoValidCertificate => NoValidCertificate,
        OutsideProvince => OutsideProvince,
    }
}

wire_enum! {
    /// A measure of a graduate's plan, as in `pb::GraduateMeasure`.
    GraduateMeasure => GraduateMeasure {
        Assessment => Assessment,
        Training => Training,
        JobReferral => JobReferral,
        PublicSectorPost => PublicSectorPost,
        SoePost => SoePost,
        Entrepreneurship => Entrepreneurship,
    }
}

wire_enum! {
    /// A graduate's year-end outcome, as in `pb::GraduateOutcome`.
    GraduateOutcome => GraduateOutcome {
        Employed => Employed,
        FurtherStudy => FurtherStudy,
        NotYetEmployed => NotYetEmployed,
        NoIntention => NoIntention,
    }
}

/// The form of an employed graduate's job: the same forms as placements.
pub use crate::person::EmploymentForm;

/// Commands of a [`Cohort`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CohortCommand {
    /// Receive a batch from Education; once per stream, received today.
    ReceiveCohort {
        batch_id: String,
        year: i32,
        record_count: u32,
    },
    /// A record matched a registered person.
    RecordMatch {
        person_ref: String,
        /// Keyed hash of the ID number, 32 bytes as 64 hex digits.
        id_hmac: String,
        school: String,
        major: String,
        level: GraduateLevel,
        expected_graduation: NaiveDate,
        /// GB/T 2260 code of the habitual residence (常住地).
        residence_region: String,
    },
    /// A record matched nobody.
    RecordUnmatched {
        /// Hash of the record as sent, 32 bytes as 64 hex digits.
        record_hash: String,
        reason: UnmatchedReason,
    },
}

/// A cohort: its size and the records resolved so far.
#[derive(Debug, Clone, Default)]
pub struct Cohort {
    /// `(batch_id, year, record_count)`, set on receipt.
    pub received: Option<(String, i32, u32)>,
    pub matched_persons: BTreeSet<String>,
    pub matched_hmacs: BTreeSet<Vec<u8>>,
    pub unmatched_hashes: BTreeSet<Vec<u8>>,
}

impl Cohort {
    /// Records resolved, matched or not.
    pub fn resolved(&self) -> usize {
        self.matched_persons.len() + self.unmatched_hashes.len()
    }

    /// The batch id, once the record about to be resolved fits in the cohort.
    fn room_for_one(&self) -> Result<&str, Rejection> {
        let Some((batch_id, _, count)) = &self.received else {
            return Err(Rejection::state(
                "the cohort has not been received",
                "R-GRAD-1",
            ));
        };
        if self.resolved() >= usize::try_from(*count).unwrap_or(usize::MAX) {
            return Err(Rejection::state(
                format!("all {count} records of cohort {batch_id} are already resolved"),
                "matched + unmatched <= record_count",
            ));
        }
        Ok(batch_id)
    }
}

impl Aggregate for Cohort {
    type Command = CohortCommand;
    const CATEGORY: &'static str = "cohort";

    fn decide(&self, command: &CohortCommand, ctx: &Context<'_>) -> Decision {
        match command {
            CohortCommand::ReceiveCohort {
                batch_id,
                year,
                record_count,
            } => {
                if let Some((b, _, _)) = &self.received {
                    return Err(Rejection::state(
                        format!("cohort {b} was already received"),
                        "one receipt per cohort",
                    ));
                }
                let batch_id = validate::text("batch_id", batch_id, ID_CHARS_MAX)?;
                year_start("year", *year)?;
                if *record_count == 0 || *record_count > COHORT_RECORDS_MAX {
                    return Err(Rejection::new(
                        "record_count",
                        format!("{record_count} is not within 1..={COHORT_RECORDS_MAX}"),
                        "limit cohort_records_max",
                    ));
                }
                Ok(vec![Event::GraduateCohortReceived(
                    pb::GraduateCohortReceived {
                        batch_id,
                        year: *year,
                        record_count: *record_count,
                        received_on: convert::date(ctx.today),
                    },
                )])
            }
            CohortCommand::RecordMatch {
                person_ref,
                id_hmac,
                school,
                major,
                level,
                expected_graduation,
                residence_region,
            } => {
                let batch_id = self.room_for_one()?;
                let person_ref = validate::text("person_ref", person_ref, ID_CHARS_MAX)?;
                let id_hmac = hash32("id_hmac", id_hmac)?;
                let school = validate::text("school", school, NAME_CHARS_MAX)?;
                let major = validate::text("major", major, NAME_CHARS_MAX)?;
                validate::date_in_range("expected_graduation", *expected_graduation)?;
                validate::region("residence_region", residence_region)?;
                if self.matched_persons.contains(&person_ref) {
                    return Err(Rejection::new(
                        "person_ref",
                        format!("{person_ref} is already matched in this cohort"),
                        "one match per person",
                    ));
                }
                if self.matched_hmacs.contains(&id_hmac) {
                    return Err(Rejection::new(
                        "id_hmac",
                        "this hash is already matched in this cohort",
                        "one match per person",
                    ));
                }
                Ok(vec![Event::GraduateMatched(pb::GraduateMatched {
                    batch_id: batch_id.to_owned(),
                    person_ref,
                    id_hmac,
                    school,
                    major,
                    level: pb::GraduateLevel::from(*level) as i32,
                    expected_graduation: convert::date(*expected_graduation),
                    residence_region: residence_region.clone(),
                })])
            }
            CohortCommand::RecordUnmatched {
                record_hash,
                reason,
            } => {
                let batch_id = self.room_for_one()?;
                let record_hash = hash32("record_hash", record_hash)?;
                if self.unmatched_hashes.contains(&record_hash) {
                    return Err(Rejection::new(
                        "record_hash",
                        "this record is already resolved as unmatched",
                        "one resolution per record",
                    ));
                }
                Ok(vec![Event::GraduateUnmatched(pb::GraduateUnmatched {
                    batch_id: batch_id.to_owned(),
                    record_hash,
                    reason: pb::UnmatchedReason::from(*reason) as i32,
                })])
            }
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::GraduateCohortReceived(e) => {
                self.received = Some((e.batch_id.clone(), e.year, e.record_count));
            }
            Event::GraduateMatched(e) => {
                self.matched_persons.insert(e.person_ref.clone());
                self.matched_hmacs.insert(e.id_hmac.clone());
            }
            Event::GraduateUnmatched(e) => {
                self.unmatched_hashes.insert(e.record_hash.clone());
            }
            _ => {}
        }
        self
    }
}

/// Commands of a [`GraduateLedger`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LedgerCommand {
    /// Open the year's ledger (一人一册); once per stream.
    OpenLedger {
        ledger_id: String,
        person_ref: String,
        year: i32,
        /// GB/T 2260 code of the habitual residence (常住地), not the hukou;
        /// the ledger records the prefecture-level city containing it.
        city: String,
        school: String,
    },
    /// Set, or revise, the plan (一人一策) until the outcome is recorded.
    SetPlan {
        measures: Vec<GraduateMeasure>,
        target_date: NaiveDate,
    },
    /// A service of the plan was delivered.
    DeliverService {
        measure: GraduateMeasure,
        provider_org: String,
        delivered_on: NaiveDate,
    },
    /// The year-end outcome; once per ledger.
    RecordOutcome {
        outcome: GraduateOutcome,
        /// The form of employment, given exactly when `outcome` is `employed`.
        #[serde(default)]
        employment_form: Option<EmploymentForm>,
        recorded_on: NaiveDate,
    },
    /// Record that no outcome was recorded by the due date
    /// ([`outcome_due`] of the ledger's year); once, only after the due date
    /// and only while no outcome is recorded. An outcome may still follow.
    MarkOutcomeOverdue { due_on: NaiveDate },
}

/// The date a ledger of `year` must have its outcome by.
pub fn outcome_due(year: i32) -> Option<NaiveDate> {
    let (month, day) = OUTCOME_DUE_MONTH_DAY;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// A graduate's ledger for one year.
#[derive(Debug, Clone, Default)]
pub struct GraduateLedger {
    /// `(ledger_id, person_ref)`, set when opened.
    pub opened: Option<(String, String)>,
    /// The ledger's year, set when opened.
    pub year: Option<i32>,
    /// The measures of the current plan; empty before a plan is set.
    pub plan: BTreeSet<i32>,
    /// Services delivered.
    pub delivered: u32,
    /// Whether the year-end outcome is recorded.
    pub outcome_recorded: bool,
    /// Whether the outcome was marked overdue.
    pub outcome_overdue: bool,
}

impl GraduateLedger {
    /// The ledger's ids, while it accepts plans, services and an outcome.
    fn open(&self) -> Result<(&str, &str), Rejection> {
        let Some((ledger_id, person_ref)) = &self.opened else {
            return Err(Rejection::state("the ledger is not open", "R-GRAD-1"));
        };
        if self.outcome_recorded {
            return Err(Rejection::state(
                format!("ledger {ledger_id} already has its year-end outcome"),
                "R-GRAD-1 one outcome per ledger",
            ));
        }
        Ok((ledger_id, person_ref))
    }

    fn planned(&self) -> Result<(&str, &str), Rejection> {
        let ids = self.open()?;
        if self.plan.is_empty() {
            return Err(Rejection::state(
                format!("ledger {} has no plan yet", ids.0),
                "R-GRAD-1 plan before services and outcome",
            ));
        }
        Ok(ids)
    }
}

impl Aggregate for GraduateLedger {
    type Command = LedgerCommand;
    const CATEGORY: &'static str = "ledger";

    fn decide(&self, command: &LedgerCommand, ctx: &Context<'_>) -> Decision {
        match command {
            LedgerCommand::OpenLedger {
                ledger_id,
                person_ref,
                year,
                city,
                school,
            } => {
                if let Some((id, _)) = &self.opened {
                    return Err(Rejection::state(
                        format!("ledger {id} is already open"),
                        "R-GRAD-1 one ledger per person and year",
                    ));
                }
                let ledger_id = validate::text("ledger_id", ledger_id, ID_CHARS_MAX)?;
                let person_ref = validate::text("person_ref", person_ref, ID_CHARS_MAX)?;
                let policy = ctx.policy.at(year_start("year", *year)?);
                if !policy.is_plan_year(*year) {
                    return Err(Rejection::new(
                        "year",
                        format!(
                            "{year} is not a plan year ({}..={})",
                            policy.plan_first_year, policy.plan_last_year
                        ),
                        "R-GRAD-1 annual ledger, policy plan years",
                    ));
                }
                let city = validate::region("city", city)?;
                let school = validate::text("school", school, NAME_CHARS_MAX)?;
                Ok(vec![Event::GraduateLedgerOpened(
                    pb::GraduateLedgerOpened {
                        ledger_id,
                        person_ref,
                        year: *year,
                        city: city.code.to_string(),
                        school,
                    },
                )])
            }
            LedgerCommand::SetPlan {
                measures,
                target_date,
            } => {
                let (ledger_id, person_ref) = self.open()?;
                if measures.is_empty() {
                    return Err(Rejection::new("measures", "no measure given", "R-GRAD-1"));
                }
                let mut seen = BTreeSet::new();
                if let Some(dup) = measures.iter().find(|m| !seen.insert(**m)) {
                    return Err(Rejection::new(
                        "measures",
                        format!("{dup:?} is listed twice"),
                        "R-GRAD-1",
                    ));
                }
                validate::date_in_range("target_date", *target_date)?;
                Ok(vec![Event::GraduateServicePlanSet(
                    pb::GraduateServicePlanSet {
                        ledger_id: ledger_id.to_owned(),
                        person_ref: person_ref.to_owned(),
                        measures: measures
                            .iter()
                            .map(|m| pb::GraduateMeasure::from(*m) as i32)
                            .collect(),
                        target_date: convert::date(*target_date),
                    },
                )])
            }
            LedgerCommand::DeliverService {
                measure,
                provider_org,
                delivered_on,
            } => {
                let (ledger_id, person_ref) = self.planned()?;
                let wire = pb::GraduateMeasure::from(*measure) as i32;
                if !self.plan.contains(&wire) {
                    return Err(Rejection::new(
                        "measure",
                        format!("{measure:?} is not a measure of the plan"),
                        "R-GRAD-1 services follow the plan",
                    ));
                }
                let provider_org = validate::text("provider_org", provider_org, NAME_CHARS_MAX)?;
                not_future("delivered_on", *delivered_on, ctx.today)?;
                Ok(vec![Event::GraduateServiceDelivered(
                    pb::GraduateServiceDelivered {
                        ledger_id: ledger_id.to_owned(),
                        person_ref: person_ref.to_owned(),
                        measure: wire,
                        provider_org,
                        delivered_on: convert::date(*delivered_on),
                    },
                )])
            }
            LedgerCommand::RecordOutcome {
                outcome,
                employment_form,
                recorded_on,
            } => {
                let (ledger_id, person_ref) = self.planned()?;
                let form = match (outcome, employment_form) {
                    (GraduateOutcome::Employed, Some(f)) => f.pb(),
                    (GraduateOutcome::Employed, None) => {
                        return Err(Rejection::new(
                            "employment_form",
                            "is missing for an employed graduate",
                            "R-GRAD-1",
                        ));
                    }
                    (_, Some(f)) => {
                        return Err(Rejection::new(
                            "employment_form",
                            format!("{f:?} given for outcome {outcome:?}"),
                            "R-GRAD-1",
                        ));
                    }
                    (_, None) => pb::EmploymentForm::Unspecified,
                };
                not_future("recorded_on", *recorded_on, ctx.today)?;
                Ok(vec![Event::GraduateOutcomeRecorded(
                    pb::GraduateOutcomeRecorded {
                        ledger_id: ledger_id.to_owned(),
                        person_ref: person_ref.to_owned(),
                        outcome: pb::GraduateOutcome::from(*outcome) as i32,
                        employment_form: form as i32,
                        recorded_on: convert::date(*recorded_on),
                    },
                )])
            }
            LedgerCommand::MarkOutcomeOverdue { due_on } => {
                let (ledger_id, person_ref) = self.open()?;
                if self.outcome_overdue {
                    return Err(Rejection::state(
                        format!("the outcome of ledger {ledger_id} is already overdue"),
                        "R-GRAD-1 one overdue mark",
                    ));
                }
                let year = self.year.unwrap_or_default();
                let due = outcome_due(year).ok_or_else(|| {
                    Rejection::new(
                        "due_on",
                        format!("{year} has no due date"),
                        "R-GRAD-1 outcome by year-end",
                    )
                })?;
                if *due_on != due {
                    return Err(Rejection::new(
                        "due_on",
                        format!("{due_on} is not the due date {due}"),
                        "R-GRAD-1 outcome by year-end",
                    ));
                }
                if ctx.today <= due {
                    return Err(Rejection::new(
                        "due_on",
                        format!("today {} is not after the due date {due}", ctx.today),
                        "R-GRAD-1 outcome by year-end",
                    ));
                }
                Ok(vec![Event::GraduateOutcomeOverdue(
                    pb::GraduateOutcomeOverdue {
                        ledger_id: ledger_id.to_owned(),
                        person_ref: person_ref.to_owned(),
                        year,
                        due_on: convert::date(due),
                    },
                )])
            }
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::GraduateLedgerOpened(e) => {
                self.opened = Some((e.ledger_id.clone(), e.person_ref.clone()));
                self.year = Some(e.year);
            }
            Event::GraduateServicePlanSet(e) => self.plan = e.measures.iter().copied().collect(),
            Event::GraduateServiceDelivered(_) => self.delivered = self.delivered.saturating_add(1),
            Event::GraduateOutcomeRecorded(_) => self.outcome_recorded = true,
            Event::GraduateOutcomeOverdue(_) => self.outcome_overdue = true,
            _ => {}
        }
        self
    }
}

/// A 32-byte hash given as 64 hex digits.
fn hash32(field: &'static str, hex: &str) -> Result<Vec<u8>, Rejection> {
    let rule = "HMAC-SHA-256, 32 bytes as 64 hex digits";
    if hex.len() != 2 * HASH_BYTES {
        return Err(Rejection::new(
            field,
            format!(
                "has {} characters, expected {}",
                hex.chars().count(),
                2 * HASH_BYTES
            ),
            rule,
        ));
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    hex.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| Rejection::new(field, format!("{hex} is not hexadecimal"), rule))
}

/// A business date that has happened by `today`.
fn not_future(field: &'static str, date: NaiveDate, today: NaiveDate) -> Result<(), Rejection> {
    validate::date_in_range(field, date)?;
    if date > today {
        return Err(Rejection::new(
            field,
            format!("{date} is after today {today}"),
            "no future dates",
        ));
    }
    Ok(())
}

/// 1 January of a year inside the accepted date range.
fn year_start(field: &'static str, year: i32) -> Result<NaiveDate, Rejection> {
    let start = NaiveDate::from_ymd_opt(year, 1, 1).ok_or_else(|| {
        Rejection::new(field, format!("{year} is not a calendar year"), "ISO 8601")
    })?;
    validate::date_in_range(field, start)?;
    Ok(start)
}

//! Commands as JSON: the envelope every JSON form of a command uses (the
//! `pathway import` lines, documented with an example of every command in
//! `docs/commands.md`), its parser, and its dispatch through the engine.
//!
//! ```json
//! {"command_id": "…", "department": "dpf", "region": "230100", "actor": "…",
//!  "at": "2023-05-01T10:00:00+08:00", "command": {"aggregate": "person", "type": "register_person", …}}
//! ```
//!
//! `command.aggregate` picks the command enum, `command.type` the command; the
//! rest of `command` is that command's own fields. The stream is derived from
//! the command when the command names it; otherwise the envelope's `stream`
//! says it. A person's registration goes through
//! [`Engine::register_person`], so an ID number is registered once.

use chrono::{DateTime, FixedOffset};
use pathway_domain::{
    Aggregate,
    employer::{DpfOrgan, DpfOrganCommand, Employer, EmployerCommand},
    governance::{CityReport, CityReportCommand, Evaluation, EvaluationCommand},
    graduates::{Cohort, CohortCommand, GraduateLedger, LedgerCommand},
    household::{Household, HouseholdCommand},
    pb,
    person::{Person, PersonCommand},
    training::{TrainingCommand, TrainingProgramme},
    welfare::{Fund, FundCommand, WelfarePosts, WelfarePostsCommand},
};
use pathway_store::EventStore;
use serde::Deserialize;
use uuid::Uuid;

use crate::{CommandMeta, Engine, EngineError, Handled};

/// Longest `actor`, in characters.
pub const ACTOR_CHARS_MAX: usize = 100;

/// The acting department, as in `pb::Department`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Department {
    Dpf,
    Hrss,
    CivilAffairs,
    Education,
    Sasac,
    Organization,
    Finance,
    Committee,
    Auditor,
    Pathway,
}

impl From<Department> for pb::Department {
    fn from(d: Department) -> Self {
        match d {
            Department::Dpf => pb::Department::Dpf,
            Department::Hrss => pb::Department::Hrss,
            Department::CivilAffairs => pb::Department::CivilAffairs,
            Department::Education => pb::Department::Education,
            Department::Sasac => pb::Department::Sasac,
            Department::Organization => pb::Department::Organization,
            Department::Finance => pb::Department::Finance,
            Department::Committee => pb::Department::Committee,
            Department::Auditor => pb::Department::Auditor,
            Department::Pathway => pb::Department::Pathway,
        }
    }
}

/// One line: a command and who sends it, when.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Idempotency key, scoped to the command's stream.
    pub command_id: Uuid,
    /// The business process; defaults to the command id.
    #[serde(default)]
    pub correlation_id: Option<Uuid>,
    /// What caused the command; defaults to the command id.
    #[serde(default)]
    pub causation_id: Option<Uuid>,
    pub department: Department,
    /// GB/T 2260 code of the acting office.
    pub region: String,
    /// Pseudonymous id of the acting user.
    pub actor: String,
    /// When the command is decided (RFC 3339 with an offset).
    pub at: DateTime<FixedOffset>,
    /// The stream, for commands that do not name theirs.
    #[serde(default)]
    pub stream: Option<String>,
    pub command: AnyCommand,
}

/// A command of any aggregate, tagged by `aggregate`.
#[derive(Debug, Deserialize)]
#[serde(tag = "aggregate", rename_all = "snake_case")]
pub enum AnyCommand {
    Person(PersonCommand),
    Household(HouseholdCommand),
    Employer(EmployerCommand),
    DpfOrgan(DpfOrganCommand),
    WelfarePosts(WelfarePostsCommand),
    Fund(FundCommand),
    Cohort(CohortCommand),
    Ledger(LedgerCommand),
    CityReport(CityReportCommand),
    Evaluation(EvaluationCommand),
    Training(TrainingCommand),
}

impl AnyCommand {
    /// The stream category of the command's aggregate.
    pub fn category(&self) -> &'static str {
        match self {
            AnyCommand::Person(_) => Person::CATEGORY,
            AnyCommand::Household(_) => Household::CATEGORY,
            AnyCommand::Employer(_) => Employer::CATEGORY,
            AnyCommand::DpfOrgan(_) => DpfOrgan::CATEGORY,
            AnyCommand::WelfarePosts(_) => WelfarePosts::CATEGORY,
            AnyCommand::Fund(_) => Fund::CATEGORY,
            AnyCommand::Cohort(_) => Cohort::CATEGORY,
            AnyCommand::Ledger(_) => GraduateLedger::CATEGORY,
            AnyCommand::CityReport(_) => CityReport::CATEGORY,
            AnyCommand::Evaluation(_) => Evaluation::CATEGORY,
            AnyCommand::Training(_) => TrainingProgramme::CATEGORY,
        }
    }

    /// The stream the command names, if it names one (as the domain modules
    /// name their streams).
    pub fn named_stream(&self) -> Option<String> {
        let key = match self {
            AnyCommand::Person(c) => return Some(c.stream_id()),
            AnyCommand::Household(c) => return Some(c.stream_id()),
            AnyCommand::Training(c) => return Some(c.stream_id()),
            AnyCommand::Employer(EmployerCommand::RegisterEmployer { uscc, .. }) => uscc.clone(),
            AnyCommand::DpfOrgan(DpfOrganCommand::ReportCadreRatio { dpf_org, .. }) => {
                dpf_org.clone()
            }
            AnyCommand::WelfarePosts(WelfarePostsCommand::DevelopPosts {
                region, year, ..
            })
            | AnyCommand::Fund(FundCommand::BudgetFund { region, year, .. }) => {
                format!("{region}-{year}")
            }
            AnyCommand::Cohort(CohortCommand::ReceiveCohort { batch_id, .. }) => batch_id.clone(),
            AnyCommand::Ledger(LedgerCommand::OpenLedger {
                person_ref, year, ..
            }) => format!("{person_ref}-{year}"),
            AnyCommand::CityReport(
                CityReportCommand::SubmitReport { city, year, .. }
                | CityReportCommand::MarkOverdue { city, year, .. },
            ) => format!("{city}-{year}"),
            AnyCommand::Evaluation(EvaluationCommand::CompleteEvaluation { plan_id, .. }) => {
                plan_id.clone()
            }
            AnyCommand::Employer(_)
            | AnyCommand::WelfarePosts(_)
            | AnyCommand::Fund(_)
            | AnyCommand::Cohort(_)
            | AnyCommand::Ledger(_) => return None,
        };
        Some(format!("{}-{key}", self.category()))
    }
}

/// A parsed line, ready to apply.
#[derive(Debug)]
pub struct Parsed {
    pub envelope: Envelope,
    /// `aggregate.type`, as written.
    pub name: String,
    pub stream: String,
}

/// Parses one line: the envelope, its command and the command's stream.
pub fn parse(line: &str) -> Result<Parsed, String> {
    let mut value: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let command = value.get_mut("command");
    let name = command
        .as_deref()
        .map(|c| {
            let field = |f: &str| c.get(f).and_then(|v| v.as_str()).unwrap_or("?").to_owned();
            format!("{}.{}", field("aggregate"), field("type"))
        })
        .unwrap_or_else(|| "?".to_owned());
    // A keyed hash may be written as 64 hex digits, as elsewhere in the
    // exchange, instead of an array of 32 numbers.
    let hmac_field = match name.as_str() {
        "person.register_person" => Some("id_hmac"),
        "person.record_certificate" => Some("certificate_hmac"),
        _ => None,
    };
    if let Some(field) = hmac_field
        && let Some(hmac) = command.and_then(|c| c.get_mut(field))
        && let Some(hex_digits) = hmac.as_str()
    {
        let bytes = hex::decode(hex_digits)
            .map_err(|e| format!("command.{field}: {hex_digits:?} is not hex: {e}"))?;
        *hmac = serde_json::Value::from(bytes);
    }
    let envelope: Envelope = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if envelope.actor.trim().is_empty() || envelope.actor.chars().count() > ACTOR_CHARS_MAX {
        return Err(format!(
            "actor {:?}: 1 to {ACTOR_CHARS_MAX} characters expected",
            envelope.actor
        ));
    }
    if envelope.region.len() != 6 || !envelope.region.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "region {:?}: a six-digit GB/T 2260 code expected",
            envelope.region
        ));
    }
    // The decision time dates every event of the command: bounded like any
    // business date, so a year-9999 (or pre-1900) command is refused here
    // rather than recorded.
    if let Err(r) = pathway_domain::validate::date_in_range("at", envelope.at.date_naive()) {
        return Err(format!("at {}: {}", envelope.at.to_rfc3339(), r.problem));
    }
    let category = envelope.command.category();
    let stream = match (envelope.command.named_stream(), &envelope.stream) {
        (Some(named), None) => named,
        (Some(named), Some(given)) if named == *given => named,
        (Some(named), Some(given)) => {
            return Err(format!(
                "stream {given:?} is not the command's stream {named:?}"
            ));
        }
        (None, Some(given)) => {
            let key = given
                .strip_prefix(category)
                .and_then(|rest| rest.strip_prefix('-'));
            if key.is_none_or(str::is_empty) {
                return Err(format!("stream {given:?} is not a stream of {category}-…"));
            }
            given.clone()
        }
        (None, None) => {
            return Err(format!(
                "{name} does not name its stream: \"stream\": \"{category}-…\" is required"
            ));
        }
    };
    Ok(Parsed {
        envelope,
        name,
        stream,
    })
}

/// Applies a parsed command through the engine.
pub async fn apply<S: EventStore + Clone>(
    engine: &Engine<S>,
    line: &Parsed,
) -> Result<Handled, EngineError> {
    let e = &line.envelope;
    let meta = CommandMeta {
        command_id: e.command_id,
        correlation_id: e.correlation_id.unwrap_or(e.command_id),
        causation_id: e.causation_id,
        actor_department: e.department.into(),
        actor_region: e.region.clone(),
        actor_id: e.actor.clone(),
        now: e.at.to_utc(),
    };
    let stream = line.stream.as_str();
    match &e.command {
        AnyCommand::Person(PersonCommand::RegisterPerson(c)) => {
            engine.register_person(c, &meta).await
        }
        AnyCommand::Person(c) => engine.handle::<Person>(stream, c, &meta).await,
        AnyCommand::Household(c) => engine.handle::<Household>(stream, c, &meta).await,
        AnyCommand::Employer(c) => engine.handle::<Employer>(stream, c, &meta).await,
        AnyCommand::DpfOrgan(c) => engine.handle::<DpfOrgan>(stream, c, &meta).await,
        AnyCommand::WelfarePosts(c) => engine.handle::<WelfarePosts>(stream, c, &meta).await,
        AnyCommand::Fund(c) => engine.handle::<Fund>(stream, c, &meta).await,
        AnyCommand::Cohort(c) => engine.handle::<Cohort>(stream, c, &meta).await,
        AnyCommand::Ledger(c) => engine.handle::<GraduateLedger>(stream, c, &meta).await,
        AnyCommand::CityReport(c) => engine.handle::<CityReport>(stream, c, &meta).await,
        AnyCommand::Evaluation(c) => engine.handle::<Evaluation>(stream, c, &meta).await,
        AnyCommand::Training(c) => engine.handle::<TrainingProgramme>(stream, c, &meta).await,
    }
}

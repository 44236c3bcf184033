//! `pathway import FILE`: commands as JSON lines, each applied on its own
//! through the command engine.
//!
//! One line is one command in an envelope (the schema and an example of every
//! command are in `docs/commands.md`):
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
//!
//! Lines are applied in file order, one at a time (a later line may depend on
//! an earlier one). A line that is malformed, too long or rejected is reported
//! on stderr with its line number and skipped; the import goes on. Because
//! commands are idempotent by command id, importing the same file again
//! appends nothing and accepts every line that was accepted before. A failure
//! of the log itself stops the import.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Read as _},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context as _;
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
use pathway_engine::{CommandMeta, Engine, EngineError, Handled};
use pathway_store::EventStore;
use serde::Deserialize;
use uuid::Uuid;

use crate::store::{AnyStore, StoreArgs};

/// Longest line accepted, in bytes (without the line break).
pub(crate) const LINE_BYTES_MAX: usize = 1024 * 1024;
/// A progress line on stderr after this many lines.
pub(crate) const PROGRESS_EVERY_LINES: u64 = 10_000;
/// Read buffer of the input, in bytes.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Longest `actor`, in characters.
const ACTOR_CHARS_MAX: usize = 100;

/// `pathway import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// JSON-lines file of commands (`-` reads standard input). The format is
    /// described in docs/commands.md.
    file: PathBuf,
    /// Parse every line and name its command and stream, without applying any.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// The acting department, as in `pb::Department`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Department {
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
struct Envelope {
    /// Idempotency key, scoped to the command's stream.
    command_id: Uuid,
    /// The business process; defaults to the command id.
    #[serde(default)]
    correlation_id: Option<Uuid>,
    /// What caused the command; defaults to the command id.
    #[serde(default)]
    causation_id: Option<Uuid>,
    department: Department,
    /// GB/T 2260 code of the acting office.
    region: String,
    /// Pseudonymous id of the acting user.
    actor: String,
    /// When the command is decided (RFC 3339 with an offset).
    at: DateTime<FixedOffset>,
    /// The stream, for commands that do not name theirs.
    #[serde(default)]
    stream: Option<String>,
    command: AnyCommand,
}

/// A command of any aggregate, tagged by `aggregate`.
#[derive(Debug, Deserialize)]
#[serde(tag = "aggregate", rename_all = "snake_case")]
enum AnyCommand {
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
    fn category(&self) -> &'static str {
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
    fn named_stream(&self) -> Option<String> {
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
struct Parsed {
    envelope: Envelope,
    /// `aggregate.type`, as written.
    name: String,
    stream: String,
}

/// Parses one line: the envelope, its command and the command's stream.
fn parse(line: &str) -> Result<Parsed, String> {
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

/// Applies a parsed line through the engine.
async fn apply<S: EventStore + Clone>(
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

/// What reading one line found.
enum LineRead {
    /// A line (without its line break) is in the buffer.
    Line,
    /// The line was longer than [`LINE_BYTES_MAX`]; it was skipped.
    TooLong,
    /// End of input.
    End,
}

/// Reads one line of at most [`LINE_BYTES_MAX`] bytes into `buf`, never
/// holding more than that in memory.
fn read_line(input: &mut dyn BufRead, buf: &mut Vec<u8>) -> io::Result<LineRead> {
    buf.clear();
    let n = input
        .take(LINE_BYTES_MAX as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(LineRead::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(LineRead::Line);
    }
    if buf.len() <= LINE_BYTES_MAX {
        // The last line, without a line break.
        return Ok(LineRead::Line);
    }
    buf.clear();
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                break;
            }
            None => {
                let len = chunk.len();
                input.consume(len);
            }
        }
    }
    Ok(LineRead::TooLong)
}

/// Lines accepted and rejected so far.
#[derive(Debug, Default)]
struct Tally {
    lines: u64,
    accepted: u64,
    rejected: u64,
}

pub(crate) async fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    // Reading blocks the thread that drives this future, not the runtime's
    // workers, where the log does its work.
    let mut input: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, io::stdin()))
    } else {
        let file =
            File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
        Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, file))
    };
    let tally = if args.dry_run {
        check(&mut *input).await?
    } else {
        match args.store.open().await? {
            AnyStore::Embedded(s) => import(&Engine::new(s), &mut *input).await?,
            AnyStore::Postgres(s) => import(&Engine::new(s), &mut *input).await?,
        }
    };
    if args.dry_run {
        println!(
            "{} valid, {} invalid (dry run, nothing applied)",
            tally.accepted, tally.rejected
        );
    } else {
        println!("{} accepted, {} rejected", tally.accepted, tally.rejected);
    }
    Ok(if tally.rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Applies every line of `input` through `engine`.
async fn import<S: EventStore + Clone>(
    engine: &Engine<S>,
    input: &mut dyn BufRead,
) -> anyhow::Result<Tally> {
    each_line(input, async |number, parsed: Parsed| {
        let id = parsed.envelope.command_id;
        match apply(engine, &parsed).await {
            Ok(_) => Ok(true),
            Err(
                e @ (EngineError::Rejected(_)
                | EngineError::CommandIdReused { .. }
                | EngineError::Conflict { .. }),
            ) => {
                eprintln!("line {number}: command {id}: {e}");
                Ok(false)
            }
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "line {number}: command {id} on stream {}",
                parsed.stream
            ))),
        }
    })
    .await
}

/// Parses every line of `input` and prints its command and stream.
async fn check(input: &mut dyn BufRead) -> anyhow::Result<Tally> {
    each_line(input, async |number, parsed: Parsed| {
        println!(
            "line {number}: {} on {} (command {})",
            parsed.name, parsed.stream, parsed.envelope.command_id
        );
        Ok(true)
    })
    .await
}

/// Reads `input` line by line, reports unusable lines and progress on
/// stderr, and hands each parsed line to `handle` (true when accepted).
async fn each_line(
    input: &mut dyn BufRead,
    mut handle: impl AsyncFnMut(u64, Parsed) -> anyhow::Result<bool>,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        let read = read_line(input, &mut buf).context("reading the input")?;
        number += 1;
        let accepted = match read {
            LineRead::End => break,
            LineRead::TooLong => {
                eprintln!("line {number}: longer than {LINE_BYTES_MAX} bytes, skipped");
                false
            }
            LineRead::Line => match std::str::from_utf8(&buf) {
                Err(e) => {
                    eprintln!("line {number}: malformed: not UTF-8: {e}");
                    false
                }
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => match parse(text.trim_start_matches('\u{feff}')) {
                    Ok(parsed) => handle(number, parsed).await?,
                    Err(e) => {
                        eprintln!("line {number}: malformed: {e}");
                        false
                    }
                },
            },
        };
        tally.lines += 1;
        if accepted {
            tally.accepted += 1;
        } else {
            tally.rejected += 1;
        }
        if tally.lines % PROGRESS_EVERY_LINES == 0 {
            eprintln!(
                "{} lines: {} accepted, {} rejected",
                tally.lines, tally.accepted, tally.rejected
            );
        }
    }
    Ok(tally)
}

//! `pathway audit …` and `pathway replay`: what auditors run. Thin: flags
//! in, `pathway_audit` calls, plain text out.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use pathway_audit::replay::CellValue;
use pathway_audit::{
    bundle,
    checkpoint::{self, Checkpoint},
    history,
    verify::{self, AuditReport, ChainSource},
};

use crate::{
    read::Format,
    store::{AnyStore, StoreArgs},
};

/// `pathway audit`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Recompute the hash chain (and check a signed checkpoint or an export
    /// bundle); exits non-zero naming the first bad position.
    Verify(VerifyArgs),
    /// Make an Ed25519 checkpoint key (file mode 0600) and print its public key.
    Keygen(KeygenArgs),
    /// Sign the log's head, record it as an event and write the checkpoint file.
    Checkpoint(CheckpointArgs),
    /// Write a range of the log as a self-verifying bundle (records, their
    /// checkpoints, a manifest of digests) for `audit verify --bundle`.
    Export(ExportArgs),
    /// Every event about one person, household or employer, in order, with
    /// who, when and why; personal fields pseudonymised unless --auditor
    /// holds a warrant (each read in clear is recorded in the log).
    History(HistoryArgs),
    /// Record a warrant letting one auditor see one subject's personal
    /// fields until a date; needs two distinct approvers.
    Warrant(WarrantArgs),
    /// The end-of-plan evaluation from the log alone: every model replayed
    /// as of YEAR-12-31T23:59:59+08:00 into scratch space.
    Evaluation(EvaluationArgs),
}

/// `pathway audit evaluation`.
#[derive(Debug, clap::Args)]
pub(crate) struct EvaluationArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The evaluated year (the plan's last year is 2024).
    #[arg(long, default_value_t = 2024)]
    pub(crate) year: i32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
    /// Scratch directory for the rebuilt models (default: a temporary
    /// directory, removed afterwards). Must not hold models already.
    #[arg(long)]
    pub(crate) scratch_dir: Option<PathBuf>,
    /// Show city cells of new employment below the policy's small-cell
    /// minimum instead of suppressing them.
    #[arg(long)]
    pub(crate) unsuppressed: bool,
}

/// The subject of a history or warrant: exactly one of the three.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SubjectArgs {
    /// A person's reference (PersonRef).
    #[arg(long)]
    person: Option<String>,
    /// A household's reference.
    #[arg(long)]
    household: Option<String>,
    /// An employer's unified social credit code.
    #[arg(long)]
    employer: Option<String>,
}

impl SubjectArgs {
    fn subject(&self) -> history::Subject {
        use history::SubjectKind;
        let (kind, reference) = match (&self.person, &self.household, &self.employer) {
            (Some(r), _, _) => (SubjectKind::Person, r),
            (_, Some(r), _) => (SubjectKind::Household, r),
            (_, _, Some(r)) => (SubjectKind::Employer, r),
            (None, None, None) => unreachable!("clap requires one subject"),
        };
        history::Subject {
            kind,
            reference: reference.clone(),
        }
    }
}

/// `pathway audit history`.
#[derive(Debug, clap::Args)]
pub(crate) struct HistoryArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    subject: SubjectArgs,
    /// The reading auditor's id: personal fields are shown in clear when a
    /// warrant names this auditor and the subject and is valid today.
    #[arg(long, env = "PATHWAY_AUDITOR_ID")]
    auditor: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// `pathway audit warrant`.
#[derive(Debug, clap::Args)]
pub(crate) struct WarrantArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    subject: SubjectArgs,
    /// The auditor the warrant is for.
    #[arg(long)]
    auditor: String,
    /// Why the personal fields are needed.
    #[arg(long)]
    reason: String,
    /// Reference of the authorising decision.
    #[arg(long, default_value = "")]
    authority: String,
    /// An approver (give two, distinct, neither the auditor).
    #[arg(long = "approved-by", required = true)]
    approved_by: Vec<String>,
    /// Last day of validity (YYYY-MM-DD, China Standard Time, inclusive).
    #[arg(long)]
    until: chrono::NaiveDate,
}

/// `pathway audit export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// First position to export (1-based).
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Last position to export (default: the head).
    #[arg(long)]
    to: Option<u64>,
    /// The bundle directory (must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
}

/// `pathway audit verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// First position to check (1-based); the record before it is taken as given.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Last position to check (default: the head).
    #[arg(long)]
    to: Option<u64>,
    /// A checkpoint file kept outside the system: prove the log (or the
    /// bundle) extends it.
    #[arg(long, requires = "public_key")]
    checkpoint: Option<PathBuf>,
    /// Verify an export bundle instead of the log (no database needed).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    bundle: Option<PathBuf>,
    /// The trusted checkpoint public key: 64 hex digits, or a file holding
    /// them (or a PEM public key). Also checks every checkpoint recorded in the log.
    #[arg(long)]
    public_key: Option<String>,
}

/// `pathway audit keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the private key (PKCS#8 PEM; must not exist yet).
    #[arg(long)]
    out: PathBuf,
}

/// `pathway audit checkpoint`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckpointArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The checkpoint private key (made by `pathway audit keygen`).
    #[arg(long, env = "PATHWAY_CHECKPOINT_KEY")]
    key: PathBuf,
    /// Where to write the checkpoint file (default: checkpoint-<position>.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(crate) async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::Keygen(args) => keygen(args),
        AuditCommand::Checkpoint(args) => checkpoint(args).await,
        AuditCommand::Export(args) => export(args).await,
        AuditCommand::History(args) => show_history(args).await,
        AuditCommand::Warrant(args) => warrant(args).await,
        AuditCommand::Evaluation(args) => evaluation(args).await,
    }
}

pub(crate) async fn evaluation(args: EvaluationArgs) -> anyhow::Result<ExitCode> {
    use pathway_audit::evaluation;
    let temp = tempfile::tempdir().context("creating a scratch directory")?;
    let scratch = args
        .scratch_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let e = match args.store.open().await? {
        AnyStore::Embedded(s) => evaluation::evaluate(&s, args.year, &scratch).await?,
        AnyStore::Postgres(s) => evaluation::evaluate(&s, args.year, &scratch).await?,
    };
    let last_day = chrono::NaiveDate::from_ymd_opt(args.year, 12, 31).context("the year")?;
    let small = i64::from(
        pathway_domain::policy::PolicyTable::builtin()
            .at(last_day)
            .small_cell_min,
    );
    let cell = |n: i64| -> serde_json::Value {
        if !args.unsuppressed && n > 0 && n < small {
            serde_json::Value::from(format!("<{small}"))
        } else {
            serde_json::Value::from(n)
        }
    };
    if args.format == Format::Json {
        let mut out = serde_json::to_value(&e)?;
        if let Some(rows) = out.get_mut("new_employment").and_then(|v| v.as_array_mut()) {
            for (row, c) in rows.iter_mut().zip(&e.new_employment) {
                row["persons"] = cell(c.persons);
            }
        }
        out["small_cell_min"] = if args.unsuppressed {
            serde_json::Value::Null
        } else {
            serde_json::Value::from(small)
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let pct = |bp: i64| format!("{:.2}%", bp as f64 / 100.0);
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    println!(
        "evaluation of the plan {}–{} as of {} (business time), policy {}",
        e.plan_years.0,
        e.plan_years.1,
        e.as_of.with_timezone(&cst).to_rfc3339(),
        e.policy_version
    );
    println!(
        "{} events selected, up to log position {}",
        e.events, e.last_position
    );
    println!();
    if args.unsuppressed {
        println!("new employment (city, year, persons)");
    } else {
        println!("new employment (city, year, persons; cells below {small} suppressed)");
    }
    for c in &e.new_employment {
        let persons = match cell(c.persons) {
            serde_json::Value::String(text) => text,
            n => n.to_string(),
        };
        println!("  {}\t{}\t{persons}", c.city, c.year);
    }
    for (year, n) in &e.new_employment_by_year {
        println!("  province {year}: {n}");
    }
    println!(
        "  plan total {} against the target {}: {}",
        e.new_employment_total,
        e.target_new_employment,
        if e.target_met { "met" } else { "not met" }
    );
    println!();
    println!("public units (year: evaluated, obliged, compliant)");
    for (year, u) in &e.public_units {
        println!("  {year}: {}, {}, {}", u.evaluated, u.obliged, u.compliant);
    }
    println!("DPF cadres (year: organs, compliant, disabled/total, share vs minimum)");
    for (year, c) in &e.dpf_cadres {
        println!(
            "  {year}: {}, {}, {}/{}, {} vs {}",
            c.organs,
            c.compliant_organs,
            c.disabled_cadres,
            c.total_cadres,
            pct(c.share_bp),
            pct(c.min_bp)
        );
    }
    println!("public-welfare posts (year: disabled/total, share vs minimum)");
    for (year, p) in &e.welfare_posts {
        println!(
            "  {year}: {}/{}, {} vs {} ({})",
            p.disabled_posts,
            p.total_posts,
            pct(p.share_bp),
            pct(p.min_bp),
            if p.meets { "met" } else { "not met" }
        );
    }
    println!(
        "fund (year: regions, post social insurance/base fen, share vs cap, regions over cap)"
    );
    for (year, f) in &e.fund {
        println!(
            "  {year}: {}, {}/{}, {} vs {}, [{}]",
            f.regions,
            f.pwp_social_insurance_fen,
            f.fund_base_fen,
            pct(f.share_bp),
            pct(f.cap_bp),
            f.regions_over_cap.join(", ")
        );
    }
    println!(
        "Four Ones (year: verified, wants work, assessed, need registered, served; served share)"
    );
    for (year, f) in &e.four_ones {
        println!(
            "  {year}: {}, {}, {}, {}, {}; {}",
            f.verified,
            f.wants_work,
            f.assessed,
            f.need_registered,
            f.served,
            pct(f.served_share_bp)
        );
    }
    println!("graduates (year: ledgers, plans, services, outcomes, employed)");
    for (year, g) in &e.graduates {
        println!(
            "  {year}: {}, {}, {}, {}, {}",
            g.ledgers_opened, g.plans_set, g.services_delivered, g.outcomes_recorded, g.employed
        );
    }
    for (year, outcomes) in &e.graduate_outcomes {
        let list: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
        println!("  outcomes {year}: {}", list.join(", "));
    }
    let p = &e.phase_outs;
    println!(
        "phase-outs: started {}, extended {}, completed {}, cancelled {}",
        p.started, p.extended, p.completed, p.cancelled
    );
    Ok(ExitCode::SUCCESS)
}

async fn warrant(args: WarrantArgs) -> anyhow::Result<ExitCode> {
    let request = history::WarrantRequest {
        auditor_id: args.auditor,
        subject: args.subject.subject(),
        reason: args.reason,
        authority: args.authority,
        approved_by: args.approved_by,
        valid_until: args.until,
    };
    let now = chrono::Utc::now();
    let w = match args.store.open().await? {
        AnyStore::Embedded(s) => history::issue_warrant(&s, &request, now).await?,
        AnyStore::Postgres(s) => history::issue_warrant(&s, &request, now).await?,
    };
    println!(
        "warrant {} for auditor {} on {} valid {} to {} (approved by {})",
        w.warrant_id,
        w.auditor_id,
        w.subject.stream_id(),
        w.valid_from,
        w.valid_until,
        w.approved_by.join(", ")
    );
    println!(
        "recorded as event {} on {}",
        w.position,
        history::WARRANT_STREAM
    );
    Ok(ExitCode::SUCCESS)
}

async fn show_history(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let subject = args.subject.subject();
    let now = chrono::Utc::now();
    let auditor = args.auditor.as_deref();
    let store = args.store.open().await?;
    let keyring = args.store.keyring(&store).await?;
    let keys = Some(&keyring);
    let h = match store {
        AnyStore::Embedded(s) => {
            history::history_with_keys(&s, &subject, auditor, now, keys).await?
        }
        AnyStore::Postgres(s) => {
            history::history_with_keys(&s, &subject, auditor, now, keys).await?
        }
    };
    let shown = match (&h.warrant, h.access_position) {
        (Some(w), Some(at)) => format!(
            "personal fields in clear under warrant {} (this read is recorded as event {at} on {})",
            w.warrant_id,
            history::ACCESS_STREAM
        ),
        _ => "personal fields pseudonymised (no valid warrant for this auditor)".to_owned(),
    };
    match args.format {
        Format::Json => {
            let out = serde_json::json!({
                "subject": subject.stream_id(),
                "through_position": h.through_position,
                "warrant_id": h.warrant.as_ref().map(|w| &w.warrant_id),
                "access_position": h.access_position,
                "events": h.entries,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Table => {
            let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
            println!(
                "history of {}: {} events, log read through position {}",
                subject.stream_id(),
                h.entries.len(),
                h.through_position
            );
            println!("{shown}");
            for e in &h.entries {
                let time = e
                    .occurred_at
                    .map(|t| t.with_timezone(&cst).to_rfc3339())
                    .unwrap_or_else(|| "-".to_owned());
                println!();
                println!(
                    "#{} {time} {} v{} {}",
                    e.position, e.stream_id, e.stream_version, e.event_type
                );
                println!(
                    "  by {} {} {} (recorded {})",
                    e.actor_department,
                    e.actor_region,
                    e.actor_id,
                    e.recorded_at.with_timezone(&cst).to_rfc3339()
                );
                println!(
                    "  command {} correlation {} causation {}",
                    e.command_id, e.correlation_id, e.causation_id
                );
                println!("  {}", serde_json::to_string(&e.payload)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let done = match args.store.open().await? {
        AnyStore::Embedded(s) => bundle::export(&s, args.from, args.to, &args.out).await?,
        AnyStore::Postgres(s) => bundle::export(&s, args.from, args.to, &args.out).await?,
    };
    let m = &done.manifest;
    println!(
        "exported positions {}..={} ({} records) to {}",
        m.from,
        m.to,
        m.records,
        args.out.display()
    );
    println!("first prev_hash {}", m.first_prev_hash);
    println!("last hash {}", m.last_hash);
    println!("checkpoints {}", done.checkpoints.len());
    Ok(ExitCode::SUCCESS)
}

fn verify_bundle(
    dir: &std::path::Path,
    cp: Option<&Checkpoint>,
    trusted: Option<&checkpoint::VerifyingKey>,
) -> ExitCode {
    let report = bundle::verify_bundle(dir, trusted);
    if let Some(m) = &report.manifest {
        println!(
            "bundle {}: positions {}..={}, {} records",
            dir.display(),
            m.from,
            m.to,
            m.records
        );
        println!("last hash {}", m.last_hash);
    }
    println!("checked {} records", report.records_checked);
    for (_, verdict) in &report.checkpoints {
        match verdict {
            Ok(s) => println!("recorded {s}"),
            Err(s) => println!("recorded checkpoint rejected: {s}"),
        }
    }
    let mut ok = report.ok();
    if let (Some(cp), Some(key)) = (cp, trusted) {
        match bundle::judge_kept_checkpoint(dir, cp, key) {
            Ok(s) => println!("{s}"),
            Err(s) => {
                ok = false;
                println!("checkpoint file rejected: {s}");
            }
        }
    }
    for finding in &report.findings {
        println!("bad: {finding}");
    }
    if ok {
        println!("bundle ok");
        ExitCode::SUCCESS
    } else {
        println!("bundle FAILED");
        ExitCode::FAILURE
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let trusted = args
        .public_key
        .as_deref()
        .map(checkpoint::parse_public_key)
        .transpose()?;
    let cp = args
        .checkpoint
        .as_deref()
        .map(Checkpoint::read)
        .transpose()?;
    if let Some(dir) = &args.bundle {
        return Ok(verify_bundle(dir, cp.as_ref(), trusted.as_ref()));
    }
    let report = match args.store.open().await? {
        AnyStore::Embedded(s) => audit_on(&s, &args, cp.as_ref(), trusted.as_ref()).await?,
        AnyStore::Postgres(s) => audit_on(&s, &args, cp.as_ref(), trusted.as_ref()).await?,
    };
    print_report(&report);
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn audit_on<S: ChainSource>(
    store: &S,
    args: &VerifyArgs,
    cp: Option<&Checkpoint>,
    trusted: Option<&checkpoint::VerifyingKey>,
) -> anyhow::Result<AuditReport> {
    Ok(verify::audit(store, args.from, args.to, cp, trusted).await?)
}

fn print_report(report: &AuditReport) {
    let chain = &report.chain;
    let seconds = report.elapsed.as_secs_f64();
    println!(
        "checked {} events in {seconds:.3} s ({} events/s)",
        chain.checked,
        (chain.checked as f64 / seconds.max(1e-9)) as u64
    );
    println!("head position {}", chain.head.position);
    println!("head hash {}", hex::encode(chain.head.hash));
    match &chain.first_break {
        None => println!("chain ok"),
        Some(b) => println!("chain broken at {}", verify::describe(b)),
    }
    if let Some((cp, finding)) = &report.checkpoint {
        println!("{}", finding.describe(cp));
    }
    for (cp, finding) in &report.in_log {
        let at = cp.event_position.unwrap_or_default();
        println!("recorded checkpoint (event {at}): {}", finding.describe(cp));
    }
}

fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let key = checkpoint::generate_key()?;
    checkpoint::write_key(&args.out, &key)?;
    let public = key.verifying_key().to_bytes();
    println!("private key written to {} (mode 0600)", args.out.display());
    println!("public key {}", hex::encode(public));
    println!("key id {}", checkpoint::key_id(&public));
    Ok(ExitCode::SUCCESS)
}

async fn checkpoint(args: CheckpointArgs) -> anyhow::Result<ExitCode> {
    let key = checkpoint::read_key(&args.key)?;
    let now = chrono::Utc::now();
    let cp = match args.store.open().await? {
        AnyStore::Embedded(s) => checkpoint::checkpoint(&s, &key, now).await?,
        AnyStore::Postgres(s) => checkpoint::checkpoint(&s, &key, now).await?,
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("checkpoint-{}.json", cp.position)));
    cp.write(&out)
        .with_context(|| format!("writing the checkpoint file {}", out.display()))?;
    println!("checkpoint position {}", cp.position);
    println!("checkpoint hash {}", hex::encode(cp.head_hash));
    println!(
        "signed at {} by key {}",
        cp.signed_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        checkpoint::key_id(&cp.public_key)
    );
    if let Some(at) = cp.event_position {
        println!(
            "recorded as event {at} on {}",
            pathway_audit::CHECKPOINT_STREAM
        );
    }
    println!(
        "checkpoint file {} (keep it outside the system)",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `pathway replay`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The moment, RFC 3339 with its offset, e.g. 2023-12-31T23:59:59+08:00.
    #[arg(long)]
    as_of: chrono::DateTime<chrono::FixedOffset>,
    /// The read model: dpf, hrss, civil_affairs, education, sasac or committee.
    #[arg(long)]
    model: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Select events by commit time instead of business time (see docs).
    #[arg(long)]
    recorded_time: bool,
    /// Show small cells of the committee's aggregates instead of suppressing
    /// them below the minimum in force at the date.
    #[arg(long)]
    unsuppressed: bool,
    /// Scratch directory for the rebuilt model (default: a temporary
    /// directory, removed afterwards). Must not hold that model already.
    #[arg(long)]
    scratch_dir: Option<PathBuf>,
}

pub(crate) async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    use pathway_audit::replay::{self, Clock};
    let temp = tempfile::tempdir().context("creating a scratch directory")?;
    let scratch = args
        .scratch_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let as_of = args.as_of.to_utc();
    let clock = if args.recorded_time {
        Clock::Recorded
    } else {
        Clock::Business
    };
    let store = args.store.open().await?;
    let keyring = args.store.keyring(&store).await?;
    let keys = Some(&keyring);
    let replayed = match store {
        AnyStore::Embedded(s) => {
            replay::replay_with_keys(&s, &args.model, as_of, clock, &scratch, keys).await?
        }
        AnyStore::Postgres(s) => {
            replay::replay_with_keys(&s, &args.model, as_of, clock, &scratch, keys).await?
        }
    };
    let policy = pathway_domain::policy::PolicyTable::builtin().at(args.as_of.date_naive());
    let small = i64::from(policy.small_cell_min);
    let cell = |table: &str, column: &str, v: &CellValue| -> CellValue {
        let hidden =
            pathway_audit::replay::suppressed_columns(replayed.model, table).contains(&column);
        match v {
            CellValue::Int(n) if !args.unsuppressed && hidden && *n > 0 && *n < small => {
                CellValue::Text(format!("<{small}"))
            }
            other => other.clone(),
        }
    };
    let clock_name = match clock {
        Clock::Business => "business time",
        Clock::Recorded => "commit time",
    };
    match args.format {
        Format::Table => {
            println!(
                "model {} as of {} ({clock_name}): {} events selected, up to log position {}",
                replayed.model,
                args.as_of.to_rfc3339(),
                replayed.events,
                replayed.last_position
            );
            for (table, rows) in &replayed.tables {
                println!();
                println!("{} ({} rows)", table.name, rows.len());
                let names: Vec<&str> = table.columns().map(|c| c.name).collect();
                println!("{}", names.join("\t"));
                for row in rows {
                    let cells: Vec<String> = names
                        .iter()
                        .zip(row)
                        .map(|(name, v)| match cell(table.name, name, v) {
                            CellValue::Null => "-".to_owned(),
                            CellValue::Bool(b) => b.to_string(),
                            CellValue::Int(n) => n.to_string(),
                            CellValue::Text(t) => t,
                        })
                        .collect();
                    println!("{}", cells.join("\t"));
                }
            }
        }
        Format::Json => {
            let mut tables = serde_json::Map::new();
            for (table, rows) in &replayed.tables {
                let rows: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|row| {
                        let object: serde_json::Map<String, serde_json::Value> = table
                            .columns()
                            .zip(row)
                            .map(|(c, v)| {
                                let v = cell(table.name, c.name, v);
                                (
                                    c.name.to_owned(),
                                    serde_json::to_value(v).unwrap_or_default(),
                                )
                            })
                            .collect();
                        serde_json::Value::Object(object)
                    })
                    .collect();
                tables.insert(table.name.to_owned(), serde_json::Value::Array(rows));
            }
            let out = serde_json::json!({
                "model": replayed.model,
                "as_of": args.as_of.to_rfc3339(),
                "clock": clock_name,
                "events": replayed.events,
                "last_position": replayed.last_position,
                "small_cell_min": if args.unsuppressed { None } else { Some(small) },
                "tables": tables,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

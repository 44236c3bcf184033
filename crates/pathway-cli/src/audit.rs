//! `pathway audit …` and `pathway replay`: what auditors run. Thin: flags
//! in, `pathway_audit` calls, plain text out.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use pathway_audit::replay::CellValue;
use pathway_audit::{
    checkpoint::{self, Checkpoint},
    verify::{self, AuditReport, ChainSource},
};

use crate::store::{AnyStore, StoreArgs};

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
    /// A checkpoint file kept outside the system: prove the log extends it.
    #[arg(long, requires = "public_key")]
    checkpoint: Option<PathBuf>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
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
    let replayed = match args.store.open().await? {
        AnyStore::Embedded(s) => replay::replay(&s, &args.model, as_of, clock, &scratch).await?,
        AnyStore::Postgres(s) => replay::replay(&s, &args.model, as_of, clock, &scratch).await?,
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

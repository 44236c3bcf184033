//! Read models from the command line: `pathway projections run|rebuild|status`,
//! `pathway query MODEL`, and `pathway report --year`.
//!
//! The read models of the embedded store live beside it (`<data-dir>/models/`,
//! one SQLite file per department); with PostgreSQL they are the department
//! schemas of the same database.

use std::{collections::BTreeMap, io::IsTerminal as _, sync::Arc};

use anyhow::Context as _;
use pathway_domain::{policy::PolicyTable, validate::CITIES};
use pathway_engine::Keyring;
use pathway_projections::{
    Projection, Table, Value, models,
    runtime::{self, Followed, ProjectorOptions, ReadStore},
};
use pathway_store::EventStore;
use serde_json::json;

use crate::store::{AnyStore, StoreArgs};

impl StoreArgs {
    /// Where this log's read models live.
    pub(crate) fn read_store(&self) -> ReadStore {
        match &self.database_url {
            Some(url) => ReadStore::Postgres { url: url.clone() },
            None => ReadStore::Sqlite {
                dir: self.data_dir.join("models"),
            },
        }
    }
}

/// Output format of query and report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}

/// `pathway projections …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ProjectionsCommand {
    /// Bring read models up to the head of the log (all, or the named ones);
    /// with --follow keep them current until interrupted (Ctrl-C).
    Run {
        #[command(flatten)]
        store: StoreArgs,
        /// Models to run (default: all six).
        models: Vec<String>,
        /// Keep following the log after catching up.
        #[arg(long)]
        follow: bool,
    },
    /// Rebuild read models (all, or the named ones) from position 1 into
    /// fresh tables and swap each in atomically; the old models keep serving
    /// until the swap. The log is read and decoded once for all of them.
    Rebuild {
        #[command(flatten)]
        store: StoreArgs,
        /// dpf, hrss, civil_affairs, education, sasac or committee (default: all six).
        models: Vec<String>,
    },
    /// Checkpoint and lag of every read model.
    Status {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn model(name: &str) -> anyhow::Result<Arc<dyn Projection>> {
    models::by_name(name)
        .ok_or_else(|| pathway_projections::ProjectionError::UnknownModel(name.to_owned()).into())
}

fn chosen(names: &[String]) -> anyhow::Result<Vec<Arc<dyn Projection>>> {
    if names.is_empty() {
        return Ok(models::all());
    }
    names.iter().map(|n| model(n)).collect()
}

pub(crate) async fn projections(cmd: ProjectionsCommand) -> anyhow::Result<()> {
    match cmd {
        ProjectionsCommand::Run {
            store,
            models,
            follow,
        } => {
            let projections = chosen(&models)?;
            let target = store.read_store();
            let opened = store.open().await?;
            let options = options(
                store.keyring(&opened).await?,
                "catching up",
                ProjectorOptions::default(),
            );
            match opened {
                AnyStore::Embedded(s) => run(s, target, projections, follow, options).await,
                AnyStore::Postgres(s) => run(s, target, projections, follow, options).await,
            }
        }
        ProjectionsCommand::Rebuild { store, models } => {
            let projections = chosen(&models)?;
            let target = store.read_store();
            let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
            eprintln!("rebuilding {} from position 1 …", names.join(", "));
            let started = std::time::Instant::now();
            let opened = store.open().await?;
            let options = options(
                store.keyring(&opened).await?,
                "rebuilding",
                ProjectorOptions::rebuild(),
            );
            let checkpoints = match opened {
                AnyStore::Embedded(s) => {
                    runtime::rebuild_many_with(&s, &target, &projections, &options).await?
                }
                AnyStore::Postgres(s) => {
                    runtime::rebuild_many_with(&s, &target, &projections, &options).await?
                }
            };
            let seconds = started.elapsed().as_secs_f64();
            for (name, checkpoint) in names.iter().zip(&checkpoints) {
                println!("{name}: rebuilt to position {checkpoint} and swapped in");
            }
            let head = checkpoints.iter().copied().max().unwrap_or(0);
            println!(
                "rebuilt {} model(s) over {head} events in {seconds:.2} s ({:.0} events/s)",
                checkpoints.len(),
                head as f64 / seconds.max(1e-9)
            );
            Ok(())
        }
        ProjectionsCommand::Status { store } => {
            let target = store.read_store();
            let opened = store.open().await?;
            println!(
                "{:<15}{:>12}{:>12}{:>12}{:>14}",
                "model", "checkpoint", "head", "behind", "seconds"
            );
            for p in models::all() {
                let lag = match &opened {
                    AnyStore::Embedded(s) => runtime::lag(s, &target, p.name()).await?,
                    AnyStore::Postgres(s) => runtime::lag(s, &target, p.name()).await?,
                };
                println!(
                    "{:<15}{:>12}{:>12}{:>12}{:>14.1}",
                    p.name(),
                    lag.checkpoint,
                    lag.head_position,
                    lag.positions_behind,
                    lag.seconds_behind
                );
            }
            Ok(())
        }
    }
}

async fn run<S: EventStore + Clone>(
    store: S,
    target: ReadStore,
    projections: Vec<Arc<dyn Projection>>,
    follow: bool,
    options: ProjectorOptions,
) -> anyhow::Result<()> {
    // All the models catch up together: the log is read, decoded and its
    // personal fields opened once for all of them, not once per model.
    let checkpoints = runtime::catch_up_many_with(&store, &target, &projections, &options).await?;
    for (p, checkpoint) in projections.iter().zip(checkpoints) {
        println!("{}: caught up to position {checkpoint}", p.name());
    }
    if !follow {
        return Ok(());
    }
    // Then they follow together: one reader for all of them.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    eprintln!("following the log; Ctrl-C or SIGTERM to stop");
    // SIGTERM too: systemd and Kubernetes stop a service with it.
    let signal = tokio::spawn(async move {
        pathway_server::shutdown_signal().await;
        stop.send(true).ok();
    });
    let followed = async {
        let mut resyncs = vec![runtime::Resyncs::default(); projections.len()];
        loop {
            let ends = runtime::follow_many_with(
                &store,
                &target,
                &projections,
                shutdown.clone(),
                &options,
            )
            .await?;
            if *shutdown.borrow() {
                return Ok(());
            }
            let mut one_ended = false;
            for ((p, end), resyncs) in projections.iter().zip(ends).zip(&mut resyncs) {
                match end {
                    Followed::Stopped(_) => {}
                    Followed::Failed(e) => {
                        return Err(
                            anyhow::Error::new(e).context(format!("read model {}", p.name()))
                        );
                    }
                    Followed::Moved { expected, found } => {
                        one_ended = true;
                        resyncs.moved(p.name(), expected, found)?;
                        eprintln!(
                            "{}: checkpoint moved from {expected} to {found} by another writer \
                             (a rebuild?); following on from there",
                            p.name()
                        );
                    }
                }
            }
            // A run ends when asked to or when a model ends: never spin.
            anyhow::ensure!(one_ended, "the projectors' shared run ended on its own");
        }
    }
    .await;
    signal.abort();
    followed
}

/// Brings every model up to the head (used before reading), opening
/// personal fields with `keyring`.
pub(crate) async fn catch_up_all(
    store: &AnyStore,
    target: &ReadStore,
    keyring: Keyring,
) -> anyhow::Result<()> {
    let projections = models::all();
    let options = options(keyring, "projecting", ProjectorOptions::default());
    match store {
        AnyStore::Embedded(s) => {
            runtime::catch_up_many_with(s, target, &projections, &options).await?
        }
        AnyStore::Postgres(s) => {
            runtime::catch_up_many_with(s, target, &projections, &options).await?
        }
    };
    Ok(())
}

/// `defaults` with personal fields opened by `keyring` and how far a
/// catch-up or rebuild has read shown, as `label`, on stderr.
fn options(keyring: Keyring, label: &str, defaults: ProjectorOptions) -> ProjectorOptions {
    ProjectorOptions {
        keyring: Some(keyring),
        progress: Some(progress_printer(label.to_owned())),
        ..defaults
    }
}

/// Progress of a catch-up or rebuild (`label: read/to events (P%)`): on a
/// terminal one line updated in place at each percent, otherwise a line at
/// each tenth; always the last.
fn progress_printer(label: String) -> runtime::Progress {
    let tty = std::io::stderr().is_terminal();
    let step = if tty { 1 } else { 10 };
    // The last percent shown (0 before the first line).
    let shown = std::sync::Mutex::new(0u64);
    Arc::new(move |read, to| {
        let percent = (read.min(to) * 100).checked_div(to).unwrap_or(100);
        let mut shown = shown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let done = read >= to;
        if percent < *shown + step && !done {
            return;
        }
        *shown = percent;
        let line = format!("  {label}: {read}/{to} events ({percent}%)");
        if tty {
            eprint!("\r{line}");
            if done {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
    })
}

/// `pathway query`.
#[derive(Debug, clap::Args)]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// dpf, hrss, civil_affairs, education, sasac or committee.
    model: String,
    /// One table of the model (default: all its tables).
    table: Option<String>,
    /// Only rows of this city (prefecture code, e.g. 230100).
    #[arg(long)]
    city: Option<String>,
    /// Only rows of this year.
    #[arg(long)]
    year: Option<i32>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Read the model as it is, without first bringing it up to the head.
    #[arg(long)]
    no_catch_up: bool,
}

/// The tables a reader may query: working tables (`lookup_*`) are internal.
fn public_tables(p: &dyn Projection) -> impl Iterator<Item = &'static Table> {
    p.tables().iter().filter(|t| !t.name.starts_with("lookup_"))
}

/// Rows of one table with the committee's small cells suppressed.
pub(crate) fn rows(
    target: &ReadStore,
    model: &str,
    table: &Table,
    filters: &[(&str, Value)],
) -> anyhow::Result<Vec<Vec<Value>>> {
    let mut rows = runtime::query(target, model, table, filters)?;
    models::suppress_small_cells(model, table, &mut rows, chrono::Utc::now().date_naive());
    Ok(rows)
}

pub(crate) async fn query(args: QueryArgs) -> anyhow::Result<()> {
    let projection = model(&args.model)?;
    let tables: Vec<&Table> = match &args.table {
        Some(name) => vec![
            public_tables(projection.as_ref())
                .find(|t| t.name == name)
                .with_context(|| {
                    let names: Vec<&str> =
                        public_tables(projection.as_ref()).map(|t| t.name).collect();
                    format!(
                        "model {} has no table {name:?} (tables: {})",
                        args.model,
                        names.join(", ")
                    )
                })?,
        ],
        None => public_tables(projection.as_ref()).collect(),
    };
    let target = args.store.read_store();
    if !args.no_catch_up {
        let store = args.store.open().await?;
        let keyring = args.store.keyring(&store).await?;
        catch_up_all(&store, &target, keyring).await?;
    }
    let mut out = serde_json::Map::new();
    for table in tables {
        let mut filters = Vec::new();
        let has = |c: &str| table.columns().any(|col| col.name == c);
        if let Some(city) = &args.city {
            if !has("city") {
                if args.table.is_some() {
                    anyhow::bail!("table {} has no city column", table.name);
                }
                continue;
            }
            filters.push(("city", Value::Text(city.clone())));
        }
        if let Some(year) = args.year {
            if !has("year") {
                if args.table.is_some() {
                    anyhow::bail!("table {} has no year column", table.name);
                }
                continue;
            }
            filters.push(("year", Value::Int(year.into())));
        }
        let rows = rows(&target, &args.model, table, &filters)?;
        match args.format {
            Format::Table => {
                println!("{}.{} ({} rows)", args.model, table.name, rows.len());
                print_table(&table.columns().map(|c| c.name).collect::<Vec<_>>(), &rows);
                println!();
            }
            Format::Json => {
                let objects: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        let map: serde_json::Map<String, serde_json::Value> = table
                            .columns()
                            .zip(r)
                            .map(|(c, v)| (c.name.to_owned(), json!(v)))
                            .collect();
                        serde_json::Value::Object(map)
                    })
                    .collect();
                out.insert(table.name.to_owned(), serde_json::Value::Array(objects));
            }
        }
    }
    if args.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "model": args.model, "tables": out }))?
        );
    }
    Ok(())
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Text(s) => s.clone(),
    }
}

/// Prints rows under a header, columns padded to their widest cell.
pub(crate) fn print_table(header: &[&str], rows: &[Vec<Value>]) {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(cell).collect()).collect();
    let widths: Vec<usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([h.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |items: Vec<String>| {
        let padded: Vec<String> = items
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        println!("  {}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in cells {
        line(r);
    }
}

/// `pathway report`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The plan year reported on (2022, 2023 or 2024).
    #[arg(
        long,
        required_unless_present = "evaluation",
        conflicts_with = "evaluation"
    )]
    year: Option<i32>,
    /// The end-of-plan evaluation of this year instead (the plan's is 2024),
    /// reproduced from the log alone: the same as `pathway audit evaluation`.
    #[arg(long)]
    evaluation: Option<i32>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// One city's line of the annual monitoring report.
#[derive(Debug, Default, serde::Serialize)]
struct ReportLine {
    city: String,
    name: String,
    new_employment: i64,
    new_employment_to_date: i64,
    four_ones_verified: i64,
    trained: i64,
    welfare_posts: i64,
    disabled_welfare_posts: i64,
    fund_base_fen: i64,
    fund_pwp_social_insurance_fen: i64,
    report_submitted_on: Option<String>,
    report_overdue: bool,
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => 0,
    }
}

/// Sums rows' integer `column` per key column `by`, for years in `years`.
fn sum_by(
    target: &ReadStore,
    table: &Table,
    by: &str,
    column: &str,
    years: std::ops::RangeInclusive<i32>,
) -> anyhow::Result<BTreeMap<String, i64>> {
    let idx = |name: &str| {
        table
            .columns()
            .position(|c| c.name == name)
            .with_context(|| format!("{}.{name}", table.name))
    };
    let (by_i, col_i, year_i) = (idx(by)?, idx(column)?, idx("year")?);
    let mut out = BTreeMap::new();
    for r in runtime::query(target, "committee", table, &[])? {
        let year = i32::try_from(int(&r[year_i])).unwrap_or(0);
        if years.contains(&year) {
            *out.entry(cell(&r[by_i])).or_default() += int(&r[col_i]);
        }
    }
    Ok(out)
}

pub(crate) async fn report(args: ReportArgs) -> anyhow::Result<std::process::ExitCode> {
    let year = match (args.year, args.evaluation) {
        (_, Some(evaluated)) => {
            return crate::audit::evaluation(crate::audit::EvaluationArgs {
                store: args.store,
                year: evaluated,
                format: args.format,
                scratch_dir: None,
                unsuppressed: false,
            })
            .await;
        }
        (Some(year), None) => year,
        (None, None) => anyhow::bail!("--year or --evaluation is required"),
    };
    let policy = PolicyTable::builtin()
        .at(chrono::NaiveDate::from_ymd_opt(year, 12, 31).context("--year out of range")?);
    anyhow::ensure!(
        policy.is_plan_year(year),
        "--year {} is not a plan year ({}–{})",
        year,
        policy.plan_first_year,
        policy.plan_last_year
    );
    let target = args.store.read_store();
    let store = args.store.open().await?;
    let keyring = args.store.keyring(&store).await?;
    catch_up_all(&store, &target, keyring).await?;
    let lines = report_lines(&target, year)?;
    let small = i64::from(policy.small_cell_min);
    let to_date: i64 = lines.iter().map(|l| l.new_employment_to_date).sum();
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "year": year,
                "target_new_employment": policy.target_new_employment,
                "province_new_employment": lines.iter().map(|l| l.new_employment).sum::<i64>(),
                "province_new_employment_to_date": to_date,
                "small_cells_below": small,
                "cities": lines,
            }))?
        ),
        Format::Table => print_report(&lines, year, &policy, small),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn report_lines(target: &ReadStore, year: i32) -> anyhow::Result<Vec<ReportLine>> {
    let committee = model("committee")?;
    let table = |name: &str| {
        committee
            .tables()
            .iter()
            .find(|t| t.name == name)
            .with_context(|| format!("committee.{name}"))
    };
    let first = PolicyTable::builtin()
        .at(chrono::NaiveDate::from_ymd_opt(year, 12, 31).context("year")?)
        .plan_first_year;
    let new = sum_by(
        target,
        table("new_employment")?,
        "city",
        "persons",
        year..=year,
    )?;
    let to_date = sum_by(
        target,
        table("new_employment")?,
        "city",
        "persons",
        first..=year,
    )?;
    let verified = sum_by(target, table("four_ones")?, "city", "verified", year..=year)?;
    let trained = sum_by(target, table("training")?, "city", "completed", year..=year)?;
    let posts = sum_by(
        target,
        table("welfare_posts")?,
        "region",
        "total_posts",
        year..=year,
    )?;
    let disabled_posts = sum_by(
        target,
        table("welfare_posts")?,
        "region",
        "disabled_posts",
        year..=year,
    )?;
    let base = sum_by(
        target,
        table("fund")?,
        "region",
        "fund_base_fen",
        year..=year,
    )?;
    let pwp = sum_by(
        target,
        table("fund")?,
        "region",
        "pwp_social_insurance_fen",
        year..=year,
    )?;
    let reports = table("city_reports")?;
    let mut filed = BTreeMap::new();
    for r in runtime::query(
        target,
        "committee",
        reports,
        &[("year", Value::Int(year.into()))],
    )? {
        let submitted = match &r[2] {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        };
        filed.insert(cell(&r[0]), (submitted, matches!(r[3], Value::Bool(true))));
    }
    Ok(CITIES
        .iter()
        .map(|c| {
            let get = |m: &BTreeMap<String, i64>| m.get(c.code).copied().unwrap_or(0);
            let (submitted, overdue) = filed.get(c.code).cloned().unwrap_or((None, false));
            ReportLine {
                city: c.code.to_owned(),
                name: c.name_en.to_owned(),
                new_employment: get(&new),
                new_employment_to_date: get(&to_date),
                four_ones_verified: get(&verified),
                trained: get(&trained),
                welfare_posts: get(&posts),
                disabled_welfare_posts: get(&disabled_posts),
                fund_base_fen: get(&base),
                fund_pwp_social_insurance_fen: get(&pwp),
                report_submitted_on: submitted,
                report_overdue: overdue,
            }
        })
        .collect())
}

fn print_report(
    lines: &[ReportLine],
    year: i32,
    policy: &pathway_domain::policy::Policy,
    small: i64,
) {
    let persons = |n: i64| {
        if n > 0 && n < small {
            Value::Text(format!("<{small}"))
        } else {
            Value::Int(n)
        }
    };
    let pct = |n: i64, d: i64| {
        if d == 0 {
            Value::Null
        } else {
            Value::Text(format!("{:.1}%", 100.0 * n as f64 / d as f64))
        }
    };
    println!("Annual monitoring report {year} (cells below {small} persons suppressed)");
    let rows: Vec<Vec<Value>> = lines
        .iter()
        .map(|l| {
            vec![
                Value::Text(format!("{} {}", l.city, l.name)),
                persons(l.new_employment),
                persons(l.new_employment_to_date),
                persons(l.four_ones_verified),
                persons(l.trained),
                pct(l.disabled_welfare_posts, l.welfare_posts),
                pct(l.fund_pwp_social_insurance_fen, l.fund_base_fen),
                Value::Text(match (&l.report_submitted_on, l.report_overdue) {
                    (Some(d), false) => format!("filed {d}"),
                    (Some(d), true) => format!("filed late {d}"),
                    (None, true) => "overdue".to_owned(),
                    (None, false) => "not filed".to_owned(),
                }),
            ]
        })
        .collect();
    print_table(
        &[
            "city",
            "new employment",
            "to date",
            "Four Ones verified",
            "trained",
            "disabled PWP share",
            "fund PWP SI share",
            "city report",
        ],
        &rows,
    );
    let sum = |f: fn(&ReportLine) -> i64| lines.iter().map(f).sum::<i64>();
    let to_date = sum(|l| l.new_employment_to_date);
    println!();
    println!(
        "  province: {} new employment in {year}; {to_date} since {} against the target of {} ({:.1}%)",
        sum(|l| l.new_employment),
        policy.plan_first_year,
        policy.target_new_employment,
        100.0 * to_date as f64 / f64::from(policy.target_new_employment.max(1))
    );
    println!(
        "  disabled public-welfare posts {} of {} (target ≥ {:.0}%); fund used for their social insurance {:.1}% (cap {:.0}%)",
        sum(|l| l.disabled_welfare_posts),
        sum(|l| l.welfare_posts),
        f64::from(policy.pwp_disabled_share_min_bp) / 100.0,
        100.0 * sum(|l| l.fund_pwp_social_insurance_fen) as f64
            / sum(|l| l.fund_base_fen).max(1) as f64,
        f64::from(policy.fund_pwp_cap_bp) / 100.0
    );
}

/// `pathway phase-outs`: Civil Affairs' calendar of low-income benefit
/// phase-outs (低保渐退期).
#[derive(Debug, clap::Args)]
pub(crate) struct PhaseOutsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Flag phase-outs whose planned end is within this many days.
    #[arg(long, default_value_t = 30)]
    within_days: u32,
    /// The day to count from (default: today in China Standard Time).
    #[arg(long)]
    today: Option<chrono::NaiveDate>,
    /// Only the phase-outs ending within the window.
    #[arg(long)]
    ending_only: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// One active phase-out in the calendar.
#[derive(Debug, serde::Serialize)]
struct PhaseOutLine {
    household_ref: String,
    phase_out_id: String,
    phase_out_start: String,
    planned_end: String,
    days_left: i64,
    ending_soon: bool,
}

pub(crate) async fn phase_outs(args: PhaseOutsArgs) -> anyhow::Result<()> {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).context("UTC+8")?;
    let today = args
        .today
        .unwrap_or_else(|| chrono::Utc::now().with_timezone(&cst).date_naive());
    let target = args.store.read_store();
    let store = args.store.open().await?;
    let keyring = args.store.keyring(&store).await?;
    catch_up_all(&store, &target, keyring).await?;
    let projection = model("civil_affairs")?;
    let table = projection
        .tables()
        .iter()
        .find(|t| t.name == "households")
        .context("civil_affairs.households")?;
    let column = |name: &str| {
        table
            .columns()
            .position(|c| c.name == name)
            .with_context(|| format!("households.{name}"))
    };
    let (household, id, start, end) = (
        column("household_ref")?,
        column("phase_out_id")?,
        column("phase_out_start")?,
        column("planned_end")?,
    );
    let active = [("phase_out_state", Value::Text("active".to_owned()))];
    let mut lines: Vec<PhaseOutLine> = runtime::query(&target, "civil_affairs", table, &active)?
        .into_iter()
        .filter_map(|r| {
            let planned_end = cell(&r[end]);
            let days_left = (planned_end.parse::<chrono::NaiveDate>().ok()? - today).num_days();
            Some(PhaseOutLine {
                household_ref: cell(&r[household]),
                phase_out_id: cell(&r[id]),
                phase_out_start: cell(&r[start]),
                planned_end,
                days_left,
                ending_soon: (0..=i64::from(args.within_days)).contains(&days_left),
            })
        })
        .filter(|l| !args.ending_only || l.ending_soon)
        .collect();
    lines.sort_by(|a, b| {
        a.planned_end
            .cmp(&b.planned_end)
            .then(a.household_ref.cmp(&b.household_ref))
    });
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "today": today, "within_days": args.within_days, "phase_outs": lines })
            )?
        ),
        Format::Table => {
            let soon = lines.iter().filter(|l| l.ending_soon).count();
            println!(
                "Active phase-outs as of {today}: {}; ending within {} days: {soon}",
                lines.len(),
                args.within_days
            );
            let rows: Vec<Vec<Value>> = lines
                .iter()
                .map(|l| {
                    vec![
                        Value::Text(l.household_ref.clone()),
                        Value::Text(l.phase_out_id.clone()),
                        Value::Text(l.phase_out_start.clone()),
                        Value::Text(l.planned_end.clone()),
                        Value::Int(l.days_left),
                        Value::Text(if l.ending_soon {
                            "ending soon".into()
                        } else {
                            String::new()
                        }),
                    ]
                })
                .collect();
            print_table(
                &[
                    "household",
                    "phase-out",
                    "started",
                    "planned end",
                    "days left",
                    "",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

//! `pathway demo`: the province's three-year programme in a minute.
//!
//! Runs the seeded simulator through the command engine on a fresh embedded
//! store (or PostgreSQL with --database-url), then reads the whole log back
//! and prints what each department would see, the committee's KPIs, and the
//! verification of the hash chain.

use std::{
    collections::BTreeMap,
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
    time::Instant,
};

use anyhow::Context as _;
use chrono::NaiveDate;
use pathway_domain::{policy::PolicyTable, validate::CITIES};
use pathway_engine::{Engine, Keyring};
use pathway_projections::{
    Table, Value, models,
    runtime::{self, ReadStore},
};
use pathway_sim::{SimConfig, SimStats};
use pathway_store::EventStore;

use crate::{
    read,
    store::{AnyStore, StoreArgs},
};

/// The day the demo's dashboards are read as of: the end of the plan.
const PLAN_END: (i32, u32, u32) = (2024, 12, 31);

/// `pathway demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Simulated persons with disabilities (the province has hundreds of
    /// thousands; the default finishes in well under a minute).
    #[arg(long, default_value_t = pathway_sim::PERSONS_DEFAULT)]
    persons: usize,
    /// Seed of the simulation: the same seed gives the same programme.
    #[arg(long, default_value_t = 2022)]
    seed: u64,
    /// Persons simulated at once.
    #[arg(long, default_value_t = pathway_sim::CONCURRENCY_DEFAULT)]
    concurrency: usize,
    /// PostgreSQL URL to run on instead of the embedded store (the demo
    /// appends to that database's log).
    #[arg(long, env = "PATHWAY_DATABASE_URL")]
    database_url: Option<String>,
    /// Keep the embedded store in this directory (default: a temporary
    /// directory removed at the end). With --database-url, the directory of
    /// the master key (default: PATHWAY_DATA_DIR, else `pathway-data`, as
    /// for every other command): the log outlives the demo, and its sealed
    /// fields open only with that key.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// File holding the master key that wraps personal-data keys (default:
    /// PATHWAY_MASTER_KEY if set, else DATA_DIR/master.key, created).
    #[arg(long, env = "PATHWAY_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.persons > 0, "--persons must be at least 1");
    let scratch = tempfile::tempdir().context("creating a temporary directory")?;
    let location = StoreArgs {
        database_url: args.database_url.clone(),
        data_dir: args.data_dir.clone().unwrap_or_else(|| {
            if args.database_url.is_some() {
                std::env::var_os(crate::store::DATA_DIR_ENV)
                    .map_or_else(|| crate::store::DATA_DIR_DEFAULT.into(), PathBuf::from)
            } else {
                scratch.path().join("store")
            }
        }),
        master_key_file: args.master_key_file.clone(),
    };
    let where_ = match &location.database_url {
        Some(url) => format!("PostgreSQL at {}", crate::store::redact(url)),
        None => format!("embedded store in {}", location.data_dir.display()),
    };
    println!(
        "Pathway demo: Heilongjiang 2022–2024, {} persons, seed {}, {where_}",
        args.persons, args.seed
    );
    let cfg = SimConfig {
        persons: args.persons,
        seed: args.seed,
        concurrency: args.concurrency,
    };
    let started = Instant::now();
    let store = location.open().await?;
    let keyring = location.keyring(&store).await?;
    let (stats, events) = match &store {
        AnyStore::Embedded(s) => simulate(s.clone(), keyring.clone(), &cfg).await?,
        AnyStore::Postgres(s) => simulate(s.clone(), keyring.clone(), &cfg).await?,
    };
    let elapsed = started.elapsed().as_secs_f64();
    print_summary(&stats, events, elapsed);

    let target = location.read_store();
    let projected = Instant::now();
    read::catch_up_all(&store, &target, keyring).await?;
    let head = match &store {
        AnyStore::Embedded(s) => s.head().await?.position,
        AnyStore::Postgres(s) => s.head().await?.position,
    };
    let seconds = projected.elapsed().as_secs_f64();
    println!(
        "Projected {head} events into the six department read models in {seconds:.1} s ({:.0} events/s)",
        head as f64 / seconds.max(1e-9)
    );
    Dashboards { target: &target }.print()?;
    let verify = match &store {
        AnyStore::Embedded(s) => s.verify(1, None).await?,
        AnyStore::Postgres(s) => s.verify(1, None).await?,
    };
    println!();
    println!(
        "Hash chain: {} events checked, head position {}, head hash {}",
        verify.checked,
        verify.head.position,
        hex::encode(verify.head.hash)
    );
    match verify.first_break {
        None => println!("Chain verified: no event altered, removed or reordered."),
        Some(b) => anyhow::bail!("chain broken at position {}: {}", b.position, b.kind),
    }
    Ok(())
}

/// Runs the simulator; returns its tally and the events it appended.
async fn simulate<S: EventStore + Clone>(
    store: S,
    keyring: Keyring,
    cfg: &SimConfig,
) -> anyhow::Result<(SimStats, u64)> {
    let first = store.head().await?.position;
    let engine = Engine::new(store.clone(), keyring).resending_on_outage();
    // On a terminal, one line updated in place; otherwise a line per 10%.
    let tty = std::io::stderr().is_terminal();
    let step = (cfg.persons / if tty { 100 } else { 10 }).max(1);
    let stats = pathway_sim::run(&engine, cfg, |done, total| {
        if done % step == 0 || done == total {
            let line = format!(
                "  simulating persons: {done}/{total} ({}%)",
                done * 100 / total
            );
            if tty {
                eprint!("\r{line}");
                std::io::stderr().flush().ok();
            } else {
                eprintln!("{line}");
            }
        }
    })
    .await?;
    if tty {
        eprintln!();
    }
    let events = store.head().await?.position - first;
    Ok((stats, events))
}

fn print_summary(stats: &SimStats, events: u64, seconds: f64) {
    println!();
    println!(
        "{} commands accepted, {} rejected; {} events appended in {seconds:.1} s ({:.0} events/s)",
        stats.commands_accepted,
        stats.commands_rejected,
        events,
        events as f64 / seconds.max(1e-9)
    );
    if !stats.rejections.is_empty() {
        println!("Rejected by the rules (count, reason):");
        let mut by_count: Vec<_> = stats.rejections.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (reason, n) in by_count.into_iter().take(6) {
            println!("  {n:>6}  {reason}");
        }
    }
}

/// Each department's dashboard, read from its own read model.
struct Dashboards<'a> {
    target: &'a ReadStore,
}

impl Dashboards<'_> {
    /// All rows of `model.table`, committee cells suppressed as in queries.
    /// Read whole: only for tables far smaller than the registry (cities and
    /// years; dibao households, about a tenth of the persons).
    fn rows(&self, model: &str, table: &str) -> anyhow::Result<Vec<BTreeMap<&'static str, Value>>> {
        let table = table_of(model, table)?;
        let rows = read::rows(self.target, model, table, &[])?;
        Ok(rows
            .into_iter()
            .map(|r| table.columns().map(|c| c.name).zip(r).collect())
            .collect())
    }

    /// Rows of `model.table` with `column` true, or all rows without one:
    /// counted by the store, so a province's registry is never read whole.
    fn count(&self, model: &str, table: &str, column: Option<&str>) -> anyhow::Result<u64> {
        let table = table_of(model, table)?;
        let filters: Vec<(&str, Value)> =
            column.map(|c| (c, Value::Bool(true))).into_iter().collect();
        Ok(runtime::count(self.target, model, table, &filters)?)
    }

    /// Sums integer `column` of `model.table` grouped by the text of `by`.
    fn sum_by(
        &self,
        model: &str,
        table: &str,
        by: &[&str],
        column: &str,
    ) -> anyhow::Result<BTreeMap<String, i64>> {
        let table = table_of(model, table)?;
        let mut out = BTreeMap::new();
        for (key, sum) in runtime::sum_by(self.target, model, table, by, column)? {
            let key: Vec<String> = key.iter().map(|v| text(Some(v))).collect();
            *out.entry(key.join(" ")).or_default() += sum;
        }
        Ok(out)
    }

    fn print(&self) -> anyhow::Result<()> {
        let policy = PolicyTable::builtin()
            .at(NaiveDate::from_ymd_opt(PLAN_END.0, PLAN_END.1, PLAN_END.2).context("plan end")?);
        self.committee(&policy)?;
        self.dpf()?;
        self.hrss()?;
        self.civil_affairs()?;
        self.education()?;
        self.sasac(&policy)
    }

    fn committee(&self, policy: &pathway_domain::policy::Policy) -> anyhow::Result<()> {
        let small = policy.small_cell_min;
        println!();
        println!(
            "Provincial committee (残工委) — new employment by city and year (cells below {small} suppressed)"
        );
        let by_city_year: BTreeMap<(String, i64), Value> = self
            .rows("committee", "new_employment")?
            .into_iter()
            .map(|r| {
                (
                    (text(r.get("city")), int(r.get("year"))),
                    r.get("persons").cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        let exact = self.sum_by("committee", "new_employment", &["city"], "persons")?;
        let by_year = self.sum_by("committee", "new_employment", &["year"], "persons")?;
        let years: Vec<i64> = (2022..=2024)
            .map(|y| by_year.get(&y.to_string()).copied().unwrap_or(0))
            .collect();
        let mut rows = Vec::new();
        for c in &CITIES {
            let mut row = vec![Value::Text(c.name_en.to_owned())];
            for y in 2022..=2024 {
                row.push(
                    by_city_year
                        .get(&(c.code.to_owned(), y))
                        .cloned()
                        .unwrap_or(Value::Int(0)),
                );
            }
            let total = exact.get(c.code).copied().unwrap_or(0);
            row.push(if total > 0 && total < i64::from(small) {
                Value::Text(format!("<{small}"))
            } else {
                Value::Int(total)
            });
            rows.push(row);
        }
        let total: i64 = years.iter().sum();
        rows.push(vec![
            Value::Text("province".into()),
            Value::Int(years[0]),
            Value::Int(years[1]),
            Value::Int(years[2]),
            Value::Int(total),
        ]);
        read::print_table(&["city", "2022", "2023", "2024", "total"], &rows);
        println!(
            "  progress toward the target of {}: {total} ({:.1}%)",
            policy.target_new_employment,
            100.0 * total as f64 / f64::from(policy.target_new_employment.max(1))
        );
        let posts = self.sum_by("committee", "welfare_posts", &[], "total_posts")?;
        let disabled = self.sum_by("committee", "welfare_posts", &[], "disabled_posts")?;
        let (posts, disabled) = (first(&posts), first(&disabled));
        println!(
            "  public-welfare posts held for disabled persons: {disabled} of {posts} ({}, target ≥ {:.0}%)",
            percent(disabled, posts),
            f64::from(policy.pwp_disabled_share_min_bp) / 100.0
        );
        let base = first(&self.sum_by("committee", "fund", &[], "fund_base_fen")?);
        let pwp = first(&self.sum_by("committee", "fund", &[], "pwp_social_insurance_fen")?);
        println!(
            "  employment security fund used for their social insurance: {} (cap {:.0}%)",
            percent(pwp, base),
            f64::from(policy.fund_pwp_cap_bp) / 100.0
        );
        let reports = self.rows("committee", "city_reports")?;
        let filed = reports
            .iter()
            .filter(|r| !matches!(r.get("submitted_on"), Some(Value::Null) | None))
            .count();
        let overdue = reports
            .iter()
            .filter(|r| matches!(r.get("overdue"), Some(Value::Bool(true))))
            .count();
        println!(
            "  city annual reports filed: {filed} of {}, marked overdue first: {overdue}",
            13 * 3
        );
        for r in self.rows("committee", "evaluation")? {
            println!(
                "  end-of-plan evaluation {} on {}: {} new employment against {}",
                text(r.get("plan_id")),
                text(r.get("completed_on")),
                text(r.get("new_employment_total")),
                text(r.get("target"))
            );
        }
        Ok(())
    }

    fn dpf(&self) -> anyhow::Result<()> {
        println!();
        println!(
            "Disabled Persons' Federation (残联) — the Four Ones (四个一), training, graduates"
        );
        let four: Vec<Vec<Value>> = (2022..=2024)
            .map(|y| {
                let col = |c: &str| {
                    self.sum_by("dpf", "four_ones", &["year"], c)
                        .map(|m| m.get(&y.to_string()).copied().unwrap_or(0))
                };
                Ok(vec![
                    Value::Int(y.into()),
                    Value::Int(col("verified")?),
                    Value::Int(col("wants_work")?),
                    Value::Int(col("assessed")?),
                    Value::Int(col("need_registered")?),
                    Value::Int(col("served")?),
                ])
            })
            .collect::<anyhow::Result<_>>()?;
        read::print_table(
            &[
                "year",
                "verified",
                "want work",
                "assessed",
                "need registered",
                "served",
            ],
            &four,
        );
        let persons = self.count("dpf", "persons", None)?;
        let employed = self.count("dpf", "persons", Some("employed"))?;
        let phase_out = self.count("dpf", "persons", Some("in_phase_out"))?;
        println!(
            "  registered persons {persons}, employed now {employed}, in a household phase-out {phase_out}"
        );
        let trained = first(&self.sum_by("dpf", "training", &[], "completed")?);
        let ledgers = first(&self.sum_by("dpf", "graduates", &[], "ledgers_opened")?);
        let grads_employed = first(&self.sum_by("dpf", "graduates", &[], "employed")?);
        println!(
            "  trained {trained}; graduate ledgers (一人一册) {ledgers}, graduates employed {grads_employed}"
        );
        Ok(())
    }

    fn hrss(&self) -> anyhow::Result<()> {
        println!();
        println!(
            "Human Resources and Social Security (人社厅) — job seekers, training subsidies, placements"
        );
        let seekers = self.count("hrss", "job_seekers", None)?;
        let referred = self.count("hrss", "job_seekers", Some("referred"))?;
        let tuition = first(&self.sum_by("hrss", "training", &[], "tuition_fen")?);
        let living = first(&self.sum_by("hrss", "training", &[], "living_allowance_fen")?);
        println!(
            "  job seekers registered {seekers}, referred with consent {referred}; training subsidies paid ¥{:.2}",
            (tuition + living) as f64 / 100.0
        );
        let forms = self.sum_by("hrss", "placements", &["employment_form"], "placed")?;
        let forms: Vec<String> = forms.iter().map(|(f, n)| format!("{f} {n}")).collect();
        println!("  placements by form: {}", forms.join(", "));
        Ok(())
    }

    fn civil_affairs(&self) -> anyhow::Result<()> {
        println!();
        println!(
            "Civil Affairs (民政厅) — dibao households and the low-income benefit phase-out (低保渐退)"
        );
        let households = self.rows("civil_affairs", "households")?;
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        for h in &households {
            let state = match h.get("phase_out_state") {
                None | Some(Value::Null) => "none".to_owned(),
                v => text(v),
            };
            *states.entry(state).or_default() += 1;
        }
        let states: Vec<String> = states.iter().map(|(s, n)| format!("{s} {n}")).collect();
        println!(
            "  households {}; phase-out state: {}",
            households.len(),
            states.join(", ")
        );
        let end =
            NaiveDate::from_ymd_opt(PLAN_END.0, PLAN_END.1, PLAN_END.2).context("plan end")?;
        let soon: Vec<String> = households
            .iter()
            .filter(|h| text(h.get("phase_out_state")) == "active")
            .filter_map(|h| text(h.get("planned_end")).parse::<NaiveDate>().ok())
            .filter(|d| *d >= end && (*d - end).num_days() <= 30)
            .map(|d| d.to_string())
            .collect();
        println!(
            "  active phase-outs ending within 30 days of {end}: {}",
            soon.len()
        );
        Ok(())
    }

    fn education(&self) -> anyhow::Result<()> {
        println!();
        println!("Education (教育厅) — graduate cohorts and outcomes (status only)");
        let matched = first(&self.sum_by("education", "cohorts", &[], "matched")?);
        let unmatched = first(&self.sum_by("education", "cohorts", &[], "unmatched")?);
        println!("  cohort records matched {matched}, unmatched {unmatched}");
        let outcomes = self.sum_by("education", "school_outcomes", &["outcome"], "graduates")?;
        let outcomes: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
        println!("  outcomes: {}", outcomes.join(", "));
        Ok(())
    }

    fn sasac(&self, policy: &pathway_domain::policy::Policy) -> anyhow::Result<()> {
        println!();
        println!("SASAC (国资委) and Organization Department (组织部) — quota and public units");
        let quota = self.count("sasac", "quota", None)?;
        let met = self.count("sasac", "quota", Some("meets_quota"))?;
        println!(
            "  quota reports {quota}, meeting the {:.1}% quota {met}",
            f64::from(policy.quota_ratio_bp) / 100.0
        );
        let units = self.count("sasac", "public_units", None)?;
        let applies = self.count("sasac", "public_units", Some("rule_applies"))?;
        let obligated = self.count("sasac", "public_units", Some("obligated"))?;
        println!(
            "  public-unit evaluations {units}, covered by R-PUB-1/2 {applies}, obliged to hire at least one disabled person {obligated}"
        );
        let cadres = self.count("sasac", "dpf_cadres", None)?;
        let compliant = self.count("sasac", "dpf_cadres", Some("compliant"))?;
        println!(
            "  DPF organs with disabled cadres ≥ {:.0}%: {compliant} of {cadres}",
            f64::from(policy.dpf_cadre_share_min_bp) / 100.0
        );
        Ok(())
    }
}

/// The definition of `model.table`.
fn table_of(model: &str, table: &str) -> anyhow::Result<&'static Table> {
    models::by_name(model)
        .context("model")?
        .tables()
        .iter()
        .find(|t| t.name == table)
        .with_context(|| format!("{model}.{table}"))
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Text(s)) => s.clone(),
    }
}

fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Int(i)) => *i,
        _ => 0,
    }
}

/// The single total of an ungrouped sum.
fn first(m: &BTreeMap<String, i64>) -> i64 {
    m.values().sum()
}

fn percent(n: i64, d: i64) -> String {
    if d == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / d as f64)
    }
}

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
use pathway_domain::{pb, policy::PolicyTable, validate::CITIES};
use pathway_engine::Engine;
use pathway_proto::Message;
use pathway_sim::{SimConfig, SimStats};
use pathway_store::{EventStore, ReadFilter};

use crate::store::{AnyStore, StoreArgs};

/// Events read per batch when the demo reads the log back.
const READ_BATCH_EVENTS: usize = 10_000;

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
    /// directory removed at the end).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.persons > 0, "--persons must be at least 1");
    let scratch = tempfile::tempdir().context("creating a temporary directory")?;
    let location = StoreArgs {
        database_url: args.database_url.clone(),
        data_dir: args
            .data_dir
            .clone()
            .unwrap_or_else(|| scratch.path().join("store")),
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
    let (stats, dashboard, verify) = match location.open().await? {
        AnyStore::Embedded(s) => simulate(s, &cfg).await?,
        AnyStore::Postgres(s) => simulate(s, &cfg).await?,
    };
    let elapsed = started.elapsed().as_secs_f64();
    print_summary(&stats, &dashboard, elapsed);
    dashboard.print();
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

async fn simulate<S: EventStore + Clone>(
    store: S,
    cfg: &SimConfig,
) -> anyhow::Result<(SimStats, Dashboard, pathway_store::VerifyReport)> {
    let first = store.head().await?.position + 1;
    let engine = Engine::new(store.clone());
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
    let dashboard = Dashboard::read(&store, first).await?;
    let verify = store.verify(1, None).await?;
    Ok((stats, dashboard, verify))
}

fn print_summary(stats: &SimStats, d: &Dashboard, seconds: f64) {
    println!();
    println!(
        "{} commands accepted, {} rejected; {} events appended in {seconds:.1} s ({:.0} events/s)",
        stats.commands_accepted,
        stats.commands_rejected,
        d.events,
        d.events as f64 / seconds.max(1e-9)
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

/// What the departments see, computed by reading the log from the start of
/// this run. (The standing per-department read models are built by
/// projectors; this is the demo's one-pass view of the same facts.)
#[derive(Debug, Default)]
struct Dashboard {
    events: u64,
    new_employment: BTreeMap<(String, i32), u32>,
    verified: BTreeMap<i32, u32>,
    wants_work: BTreeMap<i32, u32>,
    served: BTreeMap<i32, u32>,
    placements_by_form: BTreeMap<String, u32>,
    trained: u32,
    subsidy_fen: i64,
    phase_outs_started: u32,
    phase_outs_completed: u32,
    phase_outs_cancelled: u32,
    benefits_terminated: u32,
    units_evaluated: u32,
    units_obligated: u32,
    units_exempt_school: u32,
    quota_reports: u32,
    quota_met: u32,
    cadre_compliant: (u32, u32),
    posts: (u64, u64),
    reports_filed: u32,
    reports_overdue: u32,
    evaluation: Option<(u32, u32)>,
}

impl Dashboard {
    async fn read<S: EventStore>(store: &S, from: u64) -> anyhow::Result<Self> {
        let mut d = Dashboard::default();
        let mut next = from;
        loop {
            let batch = store
                .read_all(next, READ_BATCH_EVENTS, &ReadFilter::all())
                .await?;
            let Some(last) = batch.last() else { break };
            next = last.position + 1;
            for r in &batch {
                let event = pb::Event::decode(r.payload.as_ref())
                    .with_context(|| format!("decoding the event at position {}", r.position))?;
                if let Some(kind) = event.kind {
                    d.apply(kind);
                }
            }
        }
        Ok(d)
    }

    fn apply(&mut self, e: pb::event::Kind) {
        use pb::event::Kind as K;
        self.events += 1;
        match e {
            K::NewEmploymentCounted(n) => {
                let city = format!("{}00", n.region.get(..4).unwrap_or("2300"));
                *self.new_employment.entry((city, n.year)).or_default() += 1;
            }
            K::BasicInfoVerified(v) => {
                *self.verified.entry(v.year).or_default() += 1;
                if v.wants_work {
                    *self.wants_work.entry(v.year).or_default() += 1;
                }
            }
            K::EmploymentServiceProvided(s) => *self.served.entry(s.year).or_default() += 1,
            K::PersonPlaced(p) => {
                let form = p
                    .employment_form()
                    .as_str_name()
                    .trim_start_matches("EMPLOYMENT_FORM_")
                    .to_ascii_lowercase();
                *self.placements_by_form.entry(form).or_default() += 1;
            }
            K::TrainingCompleted(_) => self.trained += 1,
            K::TrainingSubsidyGranted(s) => {
                self.subsidy_fen += s.tuition_fen + s.living_allowance_fen
            }
            K::PhaseOutStarted(_) => self.phase_outs_started += 1,
            K::BenefitPhasedOut(_) => self.phase_outs_completed += 1,
            K::PhaseOutCancelled(_) => self.phase_outs_cancelled += 1,
            K::DibaoBenefitTerminated(_) => self.benefits_terminated += 1,
            K::PublicUnitObligationEvaluated(u) => {
                self.units_evaluated += 1;
                self.units_obligated += u32::from(u.obligated_to_hire_one);
                self.units_exempt_school +=
                    u32::from(!u.rule_applies && u.org_type() == pb::OrgType::PublicInstitution);
            }
            K::QuotaReported(q) => {
                self.quota_reports += 1;
                self.quota_met += u32::from(q.meets_quota);
            }
            K::DpfCadreRatioReported(c) => {
                self.cadre_compliant.0 += u32::from(c.compliant);
                self.cadre_compliant.1 += 1;
            }
            K::PublicWelfarePostsDeveloped(p) => {
                self.posts.0 += u64::from(p.disabled_posts);
                self.posts.1 += u64::from(p.total_posts);
            }
            K::CityAnnualReportSubmitted(_) => self.reports_filed += 1,
            K::CityAnnualReportOverdue(_) => self.reports_overdue += 1,
            K::ProvincialEvaluationCompleted(e) => {
                self.evaluation = Some((e.new_employment_total, e.target))
            }
            _ => {}
        }
    }

    fn print(&self) {
        let policy = PolicyTable::builtin()
            .at(chrono::NaiveDate::from_ymd_opt(2024, 12, 31).expect("valid date"));
        let small = policy.small_cell_min;
        let cell = |n: u32| {
            if n > 0 && n < small {
                format!("<{small}")
            } else {
                n.to_string()
            }
        };
        println!();
        println!(
            "Provincial committee (残工委) — new employment by city and year (cells below {small} suppressed)"
        );
        println!(
            "  {:<18}{:>8}{:>8}{:>8}{:>9}",
            "city", "2022", "2023", "2024", "total"
        );
        let mut totals = [0u32; 3];
        for c in &CITIES {
            let row: Vec<u32> = (2022..=2024)
                .map(|y| {
                    self.new_employment
                        .get(&(c.code.to_owned(), y))
                        .copied()
                        .unwrap_or(0)
                })
                .collect();
            for (t, v) in totals.iter_mut().zip(&row) {
                *t += v;
            }
            println!(
                "  {:<18}{:>8}{:>8}{:>8}{:>9}",
                c.name_en,
                cell(row[0]),
                cell(row[1]),
                cell(row[2]),
                cell(row.iter().sum())
            );
        }
        let total: u32 = totals.iter().sum();
        println!(
            "  {:<18}{:>8}{:>8}{:>8}{:>9}",
            "province", totals[0], totals[1], totals[2], total
        );
        println!(
            "  progress toward the target of {}: {total} ({:.1}%)",
            policy.target_new_employment,
            100.0 * f64::from(total) / f64::from(policy.target_new_employment.max(1))
        );
        let share = |n: u64, d: u64| {
            if d == 0 {
                0.0
            } else {
                100.0 * n as f64 / d as f64
            }
        };
        println!(
            "  public-welfare posts held for disabled persons: {} of {} ({:.1}%, target ≥ {:.0}%)",
            self.posts.0,
            self.posts.1,
            share(self.posts.0, self.posts.1),
            f64::from(policy.pwp_disabled_share_min_bp) / 100.0
        );
        println!(
            "  city annual reports filed: {}, marked overdue first: {}",
            self.reports_filed, self.reports_overdue
        );
        if let Some((achieved, target)) = self.evaluation {
            println!(
                "  end-of-plan evaluation recorded: {achieved} new employment against {target}"
            );
        }
        println!();
        println!("Disabled Persons' Federation (残联) — the Four Ones (四个一)");
        println!(
            "  {:<6}{:>10}{:>12}{:>10}",
            "year", "verified", "want work", "served"
        );
        for y in 2022..=2024 {
            println!(
                "  {y:<6}{:>10}{:>12}{:>10}",
                self.verified.get(&y).copied().unwrap_or(0),
                self.wants_work.get(&y).copied().unwrap_or(0),
                self.served.get(&y).copied().unwrap_or(0)
            );
        }
        println!();
        println!("Human Resources and Social Security (人社厅) — training and placements");
        println!(
            "  trained {} persons; subsidies paid ¥{:.2}",
            self.trained,
            self.subsidy_fen as f64 / 100.0
        );
        let forms: Vec<String> = self
            .placements_by_form
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect();
        println!("  placements by form: {}", forms.join(", "));
        println!();
        println!("Civil Affairs (民政厅) — low-income benefit phase-out (低保渐退)");
        println!(
            "  phase-outs started {}, benefit phased out {}, cancelled {}, still running {}; benefits ended outright {}",
            self.phase_outs_started,
            self.phase_outs_completed,
            self.phase_outs_cancelled,
            self.phase_outs_started
                .saturating_sub(self.phase_outs_completed + self.phase_outs_cancelled),
            self.benefits_terminated
        );
        println!();
        println!("SASAC (国资委) and Organization Department (组织部) — quota and public units");
        println!(
            "  quota reports {}, meeting the {:.1}% quota {}",
            self.quota_reports,
            f64::from(policy.quota_ratio_bp) / 100.0,
            self.quota_met
        );
        println!(
            "  public-unit evaluations {}, obliged to hire at least one disabled person {}, schools exempt {}",
            self.units_evaluated, self.units_obligated, self.units_exempt_school
        );
        println!(
            "  DPF organs with disabled cadres ≥ {:.0}%: {} of {}",
            f64::from(policy.dpf_cadre_share_min_bp) / 100.0,
            self.cadre_compliant.0,
            self.cadre_compliant.1
        );
    }
}

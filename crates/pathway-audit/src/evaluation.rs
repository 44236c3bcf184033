//! The end-of-plan evaluation, reproducible from the log alone.
//!
//! Every department's read model is rebuilt from the events whose business
//! time is at or before the end of the evaluated year
//! (`YEAR-12-31T23:59:59+08:00`), into scratch storage, with the same
//! selection and projector code as [`crate::replay`]; the indicators are
//! read from those models and judged against the policy in force on the last
//! day of that year:
//!
//! - new employment by city and year (committee), against the plan's target;
//! - public units obliged to employ at least one person, and of those the
//!   ones whose quota report for the year counts at least one (SASAC);
//! - DPF organs' cadre share against its minimum (SASAC);
//! - the share of public-welfare posts held by disabled persons against its
//!   minimum (committee);
//! - the share of the employment security fund spent on post social
//!   insurance against its cap, per region (committee; an approved override
//!   raises a region's cap to the approved total);
//! - Four Ones coverage: verified, wanting work, assessed, need registered,
//!   served (DPF);
//! - graduates: ledgers opened, plans set, services, outcomes, employed
//!   (DPF), and outcomes by kind (Education);
//! - phase-outs started, extended, completed and cancelled. These are
//!   counted from the selected events themselves: the civil-affairs model
//!   keeps each household's latest phase-out only.

use std::{collections::BTreeMap, path::Path};

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone as _, Utc};
use pathway_domain::policy::{Policy, PolicyTable};
use pathway_projections::{
    Table, Value, models,
    runtime::{self, ReadStore},
};
use pathway_store::{EventStore, ReadFilter};

use crate::{
    AuditError, SCAN_BATCH_EVENTS,
    replay::{AsOf, Clock, read_tables},
};

/// Basis points in one.
const BASIS_POINTS: i64 = 10_000;

/// The last moment of `year`, China Standard Time.
pub fn year_end(year: i32) -> Result<DateTime<Utc>, AuditError> {
    FixedOffset::east_opt(8 * 3600)
        .expect("UTC+8")
        .with_ymd_and_hms(year, 12, 31, 23, 59, 59)
        .single()
        .map(|t| t.to_utc())
        .ok_or_else(|| AuditError::Invalid(format!("year {year} is out of range")))
}

/// New employment of one city in one year.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CityYear {
    pub city: String,
    pub year: i32,
    pub persons: i64,
}

/// Public units of one year.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PublicUnits {
    pub evaluated: i64,
    pub obliged: i64,
    /// Obliged and counting at least one disabled employee in the year's quota report.
    pub compliant: i64,
}

/// DPF organs' cadres in one year.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Cadres {
    pub organs: i64,
    pub compliant_organs: i64,
    pub total_cadres: i64,
    pub disabled_cadres: i64,
    /// Disabled share of all reported cadres, basis points.
    pub share_bp: i64,
    pub min_bp: i64,
}

/// Public-welfare posts of one year.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Posts {
    pub total_posts: i64,
    pub disabled_posts: i64,
    pub share_bp: i64,
    pub min_bp: i64,
    pub meets: bool,
}

/// The fund of one year.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Fund {
    pub regions: i64,
    pub fund_base_fen: i64,
    pub allocated_fen: i64,
    pub pwp_social_insurance_fen: i64,
    /// Post social insurance as a share of the fund base, basis points.
    pub share_bp: i64,
    pub cap_bp: i64,
    /// Regions whose post social insurance exceeds the cap (and any approved override).
    pub regions_over_cap: Vec<String>,
}

/// Four Ones of one year (persons, province).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FourOnes {
    pub verified: i64,
    pub wants_work: i64,
    pub assessed: i64,
    pub need_registered: i64,
    pub served: i64,
    /// Served among those wanting work, basis points.
    pub served_share_bp: i64,
}

/// Graduates of one year (province).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Graduates {
    pub ledgers_opened: i64,
    pub plans_set: i64,
    pub services_delivered: i64,
    pub outcomes_recorded: i64,
    pub employed: i64,
}

/// Phase-outs of low-income benefit, up to the evaluated moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PhaseOuts {
    pub started: u64,
    pub extended: u64,
    pub completed: u64,
    pub cancelled: u64,
}

/// The end-of-plan evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    pub year: i32,
    pub as_of: DateTime<Utc>,
    pub policy_version: String,
    /// Events selected.
    pub events: u64,
    /// Original position of the last selected event.
    pub last_position: u64,
    pub plan_years: (i32, i32),
    pub target_new_employment: i64,
    pub new_employment: Vec<CityYear>,
    pub new_employment_by_year: BTreeMap<i32, i64>,
    /// Over the plan's years.
    pub new_employment_total: i64,
    pub target_met: bool,
    pub public_units: BTreeMap<i32, PublicUnits>,
    pub dpf_cadres: BTreeMap<i32, Cadres>,
    pub welfare_posts: BTreeMap<i32, Posts>,
    pub fund: BTreeMap<i32, Fund>,
    pub four_ones: BTreeMap<i32, FourOnes>,
    pub graduates: BTreeMap<i32, Graduates>,
    /// Education's graduate outcomes by year and outcome.
    pub graduate_outcomes: BTreeMap<i32, BTreeMap<String, i64>>,
    pub phase_outs: PhaseOuts,
}

/// The rows of one table, by column name.
struct Rows {
    table: Table,
    rows: Vec<Vec<Value>>,
}

impl Rows {
    fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|cells| Row {
            table: &self.table,
            cells,
        })
    }
}

struct Row<'a> {
    table: &'a Table,
    cells: &'a [Value],
}

impl Row<'_> {
    fn get(&self, column: &str) -> &Value {
        self.table
            .columns()
            .position(|c| c.name == column)
            .and_then(|i| self.cells.get(i))
            .unwrap_or(&Value::Null)
    }

    fn int(&self, column: &str) -> i64 {
        match self.get(column) {
            Value::Int(n) => *n,
            _ => 0,
        }
    }

    fn year(&self) -> i32 {
        i32::try_from(self.int("year")).unwrap_or(0)
    }

    fn text(&self, column: &str) -> String {
        match self.get(column) {
            Value::Text(t) => t.clone(),
            _ => String::new(),
        }
    }

    fn flag(&self, column: &str) -> bool {
        matches!(self.get(column), Value::Bool(true))
    }
}

fn share_bp(numerator: i64, denominator: i64) -> i64 {
    if denominator <= 0 {
        0
    } else {
        numerator * BASIS_POINTS / denominator
    }
}

/// Evaluates the plan as of the end of `year`, rebuilding every model into
/// the SQLite directory `scratch` (which must hold no models yet).
#[tracing::instrument(skip_all, fields(year))]
pub async fn evaluate<S: EventStore + Clone>(
    store: &S,
    year: i32,
    scratch: &Path,
) -> Result<Evaluation, AuditError> {
    let as_of = year_end(year)?;
    let last_day = NaiveDate::from_ymd_opt(year, 12, 31)
        .ok_or_else(|| AuditError::Invalid(format!("year {year} is out of range")))?;
    let policy = PolicyTable::builtin().at(last_day);
    let selected = AsOf::new(store.clone(), as_of, Clock::Business).await?;
    let target = ReadStore::Sqlite {
        dir: scratch.to_path_buf(),
    };
    let mut tables: BTreeMap<(&'static str, &'static str), Rows> = BTreeMap::new();
    for projection in models::all() {
        runtime::catch_up(&selected, &target, projection.clone()).await?;
        for (table, rows) in read_tables(&target, projection.name(), projection.tables()).await? {
            tables.insert((projection.name(), table.name), Rows { table, rows });
        }
    }
    let table = |model: &'static str, name: &'static str| -> Result<&Rows, AuditError> {
        tables
            .get(&(model, name))
            .ok_or_else(|| AuditError::Invalid(format!("read model {model} has no table {name}")))
    };
    let phase_outs = count_phase_outs(&selected).await?;
    let events = selected.head().await?.position;
    let mut out = Evaluation {
        year,
        as_of,
        policy_version: policy.version.clone(),
        events,
        last_position: selected.last_original_position(),
        plan_years: (policy.plan_first_year, policy.plan_last_year),
        target_new_employment: i64::from(policy.target_new_employment),
        new_employment: Vec::new(),
        new_employment_by_year: BTreeMap::new(),
        new_employment_total: 0,
        target_met: false,
        public_units: BTreeMap::new(),
        dpf_cadres: BTreeMap::new(),
        welfare_posts: BTreeMap::new(),
        fund: BTreeMap::new(),
        four_ones: BTreeMap::new(),
        graduates: BTreeMap::new(),
        graduate_outcomes: BTreeMap::new(),
        phase_outs,
    };
    new_employment(&mut out, table("committee", "new_employment")?, &policy);
    public_units(
        &mut out,
        table("sasac", "public_units")?,
        table("sasac", "quota")?,
    );
    cadres(&mut out, table("sasac", "dpf_cadres")?, &policy);
    posts(&mut out, table("committee", "welfare_posts")?, &policy);
    fund(&mut out, table("committee", "fund")?, &policy);
    for r in table("dpf", "four_ones")?.iter() {
        let f = out.four_ones.entry(r.year()).or_default();
        f.verified += r.int("verified");
        f.wants_work += r.int("wants_work");
        f.assessed += r.int("assessed");
        f.need_registered += r.int("need_registered");
        f.served += r.int("served");
    }
    for f in out.four_ones.values_mut() {
        f.served_share_bp = share_bp(f.served, f.wants_work);
    }
    for r in table("dpf", "graduates")?.iter() {
        let g = out.graduates.entry(r.year()).or_default();
        g.ledgers_opened += r.int("ledgers_opened");
        g.plans_set += r.int("plans_set");
        g.services_delivered += r.int("services_delivered");
        g.outcomes_recorded += r.int("outcomes_recorded");
        g.employed += r.int("employed");
    }
    for r in table("education", "graduate_outcomes")?.iter() {
        *out.graduate_outcomes
            .entry(r.year())
            .or_default()
            .entry(r.text("outcome"))
            .or_default() += 1;
    }
    Ok(out)
}

fn new_employment(out: &mut Evaluation, rows: &Rows, policy: &Policy) {
    for r in rows.iter() {
        let persons = r.int("persons");
        out.new_employment.push(CityYear {
            city: r.text("city"),
            year: r.year(),
            persons,
        });
        *out.new_employment_by_year.entry(r.year()).or_default() += persons;
        if policy.is_plan_year(r.year()) {
            out.new_employment_total += persons;
        }
    }
    out.target_met = out.new_employment_total >= out.target_new_employment;
}

fn public_units(out: &mut Evaluation, units: &Rows, quota: &Rows) {
    let counted: BTreeMap<(String, i32), i64> = quota
        .iter()
        .map(|r| ((r.text("uscc"), r.year()), r.int("counted_disabled")))
        .collect();
    for r in units.iter() {
        let u = out.public_units.entry(r.year()).or_default();
        u.evaluated += 1;
        if r.flag("obligated") {
            u.obliged += 1;
            if counted
                .get(&(r.text("uscc"), r.year()))
                .is_some_and(|&n| n >= 1)
            {
                u.compliant += 1;
            }
        }
    }
}

fn cadres(out: &mut Evaluation, rows: &Rows, policy: &Policy) {
    for r in rows.iter() {
        let c = out.dpf_cadres.entry(r.year()).or_default();
        c.organs += 1;
        c.compliant_organs += i64::from(r.flag("compliant"));
        c.total_cadres += r.int("total_cadres");
        c.disabled_cadres += r.int("disabled_cadres");
    }
    for c in out.dpf_cadres.values_mut() {
        c.share_bp = share_bp(c.disabled_cadres, c.total_cadres);
        c.min_bp = i64::from(policy.dpf_cadre_share_min_bp);
    }
}

fn posts(out: &mut Evaluation, rows: &Rows, policy: &Policy) {
    for r in rows.iter() {
        let p = out.welfare_posts.entry(r.year()).or_default();
        p.total_posts += r.int("total_posts");
        p.disabled_posts += r.int("disabled_posts");
    }
    for p in out.welfare_posts.values_mut() {
        p.share_bp = share_bp(p.disabled_posts, p.total_posts);
        p.min_bp = i64::from(policy.pwp_disabled_share_min_bp);
        p.meets = Policy::meets_share(
            p.disabled_posts.max(0) as u64,
            p.total_posts.max(0) as u64,
            policy.pwp_disabled_share_min_bp,
        );
    }
}

fn fund(out: &mut Evaluation, rows: &Rows, policy: &Policy) {
    for r in rows.iter() {
        let f = out.fund.entry(r.year()).or_default();
        let base = r.int("fund_base_fen");
        let pwp = r.int("pwp_social_insurance_fen");
        f.regions += 1;
        f.fund_base_fen += base;
        f.allocated_fen += r.int("allocated_fen");
        f.pwp_social_insurance_fen += pwp;
        let within = Policy::within_cap(
            pwp.max(0) as u64,
            base.max(0) as u64,
            policy.fund_pwp_cap_bp,
        ) || pwp <= r.int("pwp_override_fen");
        if !within {
            f.regions_over_cap.push(r.text("region"));
        }
    }
    for f in out.fund.values_mut() {
        f.share_bp = share_bp(f.pwp_social_insurance_fen, f.fund_base_fen);
        f.cap_bp = i64::from(policy.fund_pwp_cap_bp);
    }
}

async fn count_phase_outs<S: EventStore>(selected: &S) -> Result<PhaseOuts, AuditError> {
    // Unfiltered: a filtered batch may be empty before the end of the log.
    let head = selected.head().await?.position;
    let mut counts = PhaseOuts::default();
    let mut next = 1;
    while next <= head {
        let batch = selected
            .read_all(next, SCAN_BATCH_EVENTS, &ReadFilter::all())
            .await?;
        let Some(last) = batch.last() else { break };
        next = last.position + 1;
        for r in &batch {
            match r.event_type.as_str() {
                "PhaseOutStarted" => counts.started += 1,
                "PhaseOutExtensionApproved" => counts.extended += 1,
                "BenefitPhasedOut" => counts.completed += 1,
                "PhaseOutCancelled" => counts.cancelled += 1,
                _ => {}
            }
        }
    }
    Ok(counts)
}

//! Effective-dated policy parameters: every number the rules depend on, with
//! the dates it is in force and the document it comes from.
//!
//! The parameters live in `policy.toml` beside this crate's `Cargo.toml`,
//! embedded at compile time ([`PolicyTable::builtin`]); another file's text can
//! be loaded with [`PolicyTable::from_toml`]. Decisions ask for the values in
//! force at a business date with [`PolicyTable::at`] and never write a policy
//! number as a literal.
//!
//! File shape: a `[[version]]` list (`id`, `from`, optional `source`) and, per
//! parameter, a list `[[parameter.<name>]]` of entries `{ from, to, value,
//! source }` where `to` is inclusive and optional (open-ended). Parameter names
//! are the field names of [`Policy`]. Loading checks that every name is known,
//! every value has the right shape, entries of one parameter do not overlap and
//! every parameter has a value in force on every day of the plan period
//! (1 January of the smallest `plan_first_year` to 31 December of the largest
//! `plan_last_year`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use crate::pb;

/// The checked-in policy file.
const BUILTIN_TOML: &str = include_str!("../policy.toml");

/// Ratios are integer basis points: this many make 100%.
pub const BASIS_POINTS_PER_UNIT: u32 = 10_000;

/// Why a policy file could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not TOML, or not the expected shape (a missing `value`, an unknown key).
    #[error("policy file does not parse: {0}")]
    Parse(String),
    /// A `[[parameter.<name>]]` whose name is not a field of [`Policy`].
    #[error("unknown policy parameter `{0}`")]
    UnknownParameter(String),
    /// A parameter with no entries at all.
    #[error("policy parameter `{0}` has no entries")]
    Absent(&'static str),
    /// A parameter with no value in force on some day of the plan period.
    #[error(
        "policy parameter `{parameter}` has no value in force on {date}, inside the plan period {period_start}..={period_end}"
    )]
    Missing {
        /// The parameter.
        parameter: &'static str,
        /// The first uncovered day.
        date: NaiveDate,
        /// First day of the plan period.
        period_start: NaiveDate,
        /// Last day of the plan period.
        period_end: NaiveDate,
    },
    /// Two entries of one parameter (or two versions) in force on the same day.
    #[error("policy parameter `{parameter}`: entry {earlier} overlaps entry {later}")]
    Overlap {
        /// The parameter, or `version`.
        parameter: String,
        /// The earlier entry's range, e.g. `2022-01-01..` or `2022-01-01..=2024-12-31`.
        earlier: String,
        /// The later entry's range.
        later: String,
    },
    /// An entry whose `to` is before its `from`.
    #[error("policy parameter `{parameter}`: entry ends on {to}, before it starts on {from}")]
    EmptyRange {
        /// The parameter.
        parameter: String,
        /// The entry's first day.
        from: NaiveDate,
        /// The entry's last day.
        to: NaiveDate,
    },
    /// A value, or a date, of the wrong shape.
    #[error("policy parameter `{parameter}`: {problem}")]
    InvalidValue {
        /// The parameter, or `version`.
        parameter: String,
        /// What is wrong, naming the value.
        problem: String,
    },
    /// The file names no `[[version]]`.
    #[error("policy file declares no [[version]]")]
    NoVersion,
    /// The plan period is empty.
    #[error("plan period is empty: first year {first} is after last year {last}")]
    EmptyPlanPeriod {
        /// The smallest `plan_first_year`.
        first: i32,
        /// The largest `plan_last_year`.
        last: i32,
    },
}

/// The values of every parameter in force on one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Id of the policy version in force, e.g. `HLJ-2022`.
    pub version: String,
    /// First calendar year of the plan (2022).
    pub plan_first_year: i32,
    /// Last calendar year of the plan (2024), inclusive.
    pub plan_last_year: i32,
    /// Province target of new urban and rural disabled employment over the plan.
    pub target_new_employment: u32,
    /// Quota employment ratio in basis points (150 = 1.5% of staff).
    pub quota_ratio_bp: u32,
    /// How many a person with a severe certificate (grade 1–2) counts as.
    pub severe_multiplier: u32,
    /// Establishment size from which an organ is obligated, inclusive.
    pub organ_threshold: u32,
    /// Establishment size from which a public institution is obligated, inclusive.
    pub institution_threshold: u32,
    /// Date by which an obligated public unit employs at least one person.
    pub public_unit_deadline: NaiveDate,
    /// Minimum share of disabled cadres in DPF organs, basis points, inclusive.
    pub dpf_cadre_share_min_bp: u32,
    /// Minimum share of public-welfare posts held by disabled persons, basis points, inclusive.
    pub pwp_disabled_share_min_bp: u32,
    /// Maximum share of the fund for post social insurance, basis points, inclusive.
    pub fund_pwp_cap_bp: u32,
    /// Longest low-income phase-out without an approved extension, months.
    pub phase_out_max_months: u32,
    /// Margin household test: income below this multiple of the standard, basis points.
    pub edge_multiplier_bp: u32,
    /// Working-age band of men, years of age, both ends inclusive.
    pub working_age_male: (u32, u32),
    /// Working-age band of women, years of age, both ends inclusive.
    pub working_age_female: (u32, u32),
    /// How many new employments one person counts for in one calendar year.
    pub new_employment_per_person_per_year: u32,
    /// Yearly due date of city reports, (month, day).
    pub city_report_due: (u32, u32),
    /// Aggregate cells with fewer persons than this are suppressed.
    pub small_cell_min: u32,
}

impl Policy {
    /// Whether `year` is a year of the plan (both ends inclusive).
    pub fn is_plan_year(&self, year: i32) -> bool {
        (self.plan_first_year..=self.plan_last_year).contains(&year)
    }

    /// The working-age band (inclusive years of age) for `sex`. An unspecified
    /// sex gets the narrower band of the two, so nobody is counted in by default.
    pub fn working_age(&self, sex: pb::Sex) -> (u32, u32) {
        match sex {
            pb::Sex::Male => self.working_age_male,
            pb::Sex::Female => self.working_age_female,
            pb::Sex::Unspecified => (
                self.working_age_male.0.max(self.working_age_female.0),
                self.working_age_male.1.min(self.working_age_female.1),
            ),
        }
    }

    /// Whether `numerator / denominator >= min_bp / 10000`, exactly, in
    /// integers: `meets_share(150, 1000, 1500)` holds, `meets_share(149, 1000,
    /// 1500)` does not. A zero denominator meets no share.
    pub fn meets_share(numerator: u64, denominator: u64, min_bp: u32) -> bool {
        if denominator == 0 {
            return false;
        }
        // u64 × 10_000 and u64 × u32 both fit in u128.
        u128::from(numerator) * u128::from(BASIS_POINTS_PER_UNIT)
            >= u128::from(denominator) * u128::from(min_bp)
    }

    /// Whether `numerator / denominator <= max_bp / 10000`, exactly, in
    /// integers: `within_cap(2000, 10000, 2000)` holds (exactly 20% is
    /// allowed), `within_cap(2001, 10000, 2000)` does not. Over a zero
    /// denominator only a zero numerator is within the cap.
    pub fn within_cap(numerator: u64, denominator: u64, max_bp: u32) -> bool {
        u128::from(numerator) * u128::from(BASIS_POINTS_PER_UNIT)
            <= u128::from(denominator) * u128::from(max_bp)
    }
}

/// Every parameter's entries, keyed by parameter and effective date, plus the
/// list of policy versions.
#[derive(Debug, Clone)]
pub struct PolicyTable {
    /// Versions sorted by `from`, never empty.
    versions: Vec<Version>,
    parameters: Parameters,
}

static BUILTIN: LazyLock<PolicyTable> =
    LazyLock::new(|| match PolicyTable::from_toml(BUILTIN_TOML) {
        Ok(table) => table,
        Err(error) => panic!("the checked-in policy.toml is invalid: {error}"),
    });

impl PolicyTable {
    /// The checked-in `policy.toml`. It is proven valid by a test; an invalid
    /// file is a build defect and panics on first use.
    pub fn builtin() -> &'static PolicyTable {
        &BUILTIN
    }

    /// Load a policy file's text.
    pub fn from_toml(text: &str) -> Result<PolicyTable, PolicyError> {
        let file: FileRows = toml::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        if let Some(name) = file
            .parameter
            .keys()
            .find(|name| !PARAMETER_NAMES.contains(&name.as_str()))
        {
            return Err(PolicyError::UnknownParameter(name.clone()));
        }
        let versions = parse_versions(file.version)?;
        let mut rows = file.parameter;
        let parameters = Parameters::from_rows(&mut rows)?;

        let first = parameters
            .plan_first_year
            .entries
            .iter()
            .map(|e| e.value)
            .min();
        let last = parameters
            .plan_last_year
            .entries
            .iter()
            .map(|e| e.value)
            .max();
        // Both series are non-empty once parsed.
        if let (Some(first), Some(last)) = (first, last) {
            if first > last {
                return Err(PolicyError::EmptyPlanPeriod { first, last });
            }
            let start = year_start(first, "plan_first_year")?;
            let end = year_end(last, "plan_last_year")?;
            parameters.check_coverage(start, end)?;
        }
        Ok(PolicyTable {
            versions,
            parameters,
        })
    }

    /// The values in force at `date`.
    ///
    /// Inside the plan period every parameter has exactly one entry in force
    /// (loading checks it). Outside it a parameter may have none; then the
    /// nearest entry is used: the earliest one if `date` is before all entries,
    /// the latest one that ended before `date` if it is after all entries, and
    /// in a gap between two entries the one closer in days (the earlier on a
    /// tie). Likewise the version is the latest one starting on or before
    /// `date`, or the earliest if `date` is before every version.
    pub fn at(&self, date: NaiveDate) -> Policy {
        self.parameters.at(date, self.version_at(date).to_owned())
    }

    /// The source (rule id and document) of `parameter`'s value at `date`,
    /// for citing in a rejection; `None` for an unknown parameter name.
    pub fn source(&self, parameter: &str, date: NaiveDate) -> Option<&str> {
        self.parameters.source(parameter, date)
    }

    /// Id of the version in force at `date` (see [`PolicyTable::at`]).
    pub fn version_at(&self, date: NaiveDate) -> &str {
        let in_force = self.versions.iter().rev().find(|v| v.from <= date);
        // `versions` is never empty: `from_toml` rejects a file without one.
        in_force
            .or(self.versions.first())
            .map_or("", |v| v.id.as_str())
    }
}

/// A policy version: its id and first day.
#[derive(Debug, Clone)]
struct Version {
    id: String,
    from: NaiveDate,
}

/// One entry of a parameter.
#[derive(Debug, Clone)]
struct Entry<T> {
    from: NaiveDate,
    to: Option<NaiveDate>,
    value: T,
    source: String,
}

impl<T> Entry<T> {
    fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && self.to.is_none_or(|to| date <= to)
    }

    fn range(&self) -> String {
        range_text(self.from, self.to)
    }
}

/// A parameter's entries, sorted by `from`, non-empty and non-overlapping.
#[derive(Debug, Clone)]
struct Series<T> {
    entries: Vec<Entry<T>>,
}

impl<T> Series<T> {
    /// Parse and check the rows of parameter `name` with `parse_value`.
    fn parse(
        name: &'static str,
        rows: Option<Vec<EntryRow>>,
        parse_value: fn(&toml::Value) -> Result<T, String>,
    ) -> Result<Series<T>, PolicyError> {
        let rows = rows.unwrap_or_default();
        if rows.is_empty() {
            return Err(PolicyError::Absent(name));
        }
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let from = plain_date(&row.from, name)?;
            let to = row.to.as_ref().map(|to| plain_date(to, name)).transpose()?;
            if let Some(to) = to.filter(|to| *to < from) {
                return Err(PolicyError::EmptyRange {
                    parameter: name.to_owned(),
                    from,
                    to,
                });
            }
            let value = parse_value(&row.value).map_err(|problem| PolicyError::InvalidValue {
                parameter: name.to_owned(),
                problem: format!("entry from {from}: {problem}"),
            })?;
            entries.push(Entry {
                from,
                to,
                value,
                source: row.source,
            });
        }
        entries.sort_by_key(|e| e.from);
        for pair in entries.windows(2) {
            let (earlier, later) = (&pair[0], &pair[1]);
            if earlier.to.is_none_or(|to| to >= later.from) {
                return Err(PolicyError::Overlap {
                    parameter: name.to_owned(),
                    earlier: earlier.range(),
                    later: later.range(),
                });
            }
        }
        Ok(Series { entries })
    }

    /// The entry in force at `date`, or the nearest one (see [`PolicyTable::at`]).
    fn at(&self, date: NaiveDate) -> &Entry<T> {
        let before = self.entries.iter().rev().find(|e| e.from <= date);
        let after = self.entries.iter().find(|e| e.from > date);
        match (before, after) {
            (Some(b), _) if b.contains(date) => b,
            (Some(b), Some(a)) => {
                // `b` ended before `date` (it does not contain it).
                let since_end = b.to.map_or(0, |to| (date - to).num_days());
                let until_start = (a.from - date).num_days();
                if until_start < since_end { a } else { b }
            }
            (Some(b), None) => b,
            (None, Some(a)) => a,
            (None, None) => unreachable!("a parsed series is never empty"),
        }
    }

    /// The first day of `start..=end` on which no entry is in force.
    fn first_gap(&self, start: NaiveDate, end: NaiveDate) -> Option<NaiveDate> {
        let mut day = start;
        for entry in &self.entries {
            if entry.from > day {
                return Some(day);
            }
            match entry.to {
                None => return None,
                Some(to) if to >= day => match to.succ_opt() {
                    Some(next) if to < end => day = next,
                    _ => return None,
                },
                Some(_) => {}
            }
        }
        Some(day)
    }
}

/// Declares the parameters once: the table's fields, the list of names, and
/// loading, lookup and coverage for each. Each name is a field of [`Policy`].
macro_rules! parameters {
    ($($name:ident: $ty:ty => $parse:expr),* $(,)?) => {
        /// One series per parameter.
        #[derive(Debug, Clone)]
        struct Parameters {
            $($name: Series<$ty>,)*
        }

        /// The known parameter names.
        const PARAMETER_NAMES: &[&str] = &[$(stringify!($name)),*];

        impl Parameters {
            fn from_rows(rows: &mut BTreeMap<String, Vec<EntryRow>>) -> Result<Self, PolicyError> {
                Ok(Parameters {
                    $($name: Series::parse(stringify!($name), rows.remove(stringify!($name)), $parse)?,)*
                })
            }

            fn at(&self, date: NaiveDate, version: String) -> Policy {
                Policy { version, $($name: self.$name.at(date).value.clone(),)* }
            }

            fn source(&self, name: &str, date: NaiveDate) -> Option<&str> {
                match name {
                    $(stringify!($name) => Some(self.$name.at(date).source.as_str()),)*
                    _ => None,
                }
            }

            fn check_coverage(&self, start: NaiveDate, end: NaiveDate) -> Result<(), PolicyError> {
                $(
                    if let Some(date) = self.$name.first_gap(start, end) {
                        return Err(PolicyError::Missing {
                            parameter: stringify!($name),
                            date,
                            period_start: start,
                            period_end: end,
                        });
                    }
                )*
                Ok(())
            }
        }
    };
}

parameters! {
    plan_first_year: i32 => value_year,
    plan_last_year: i32 => value_year,
    target_new_employment: u32 => value_count,
    quota_ratio_bp: u32 => value_share_bp,
    severe_multiplier: u32 => value_count,
    organ_threshold: u32 => value_count,
    institution_threshold: u32 => value_count,
    public_unit_deadline: NaiveDate => value_date,
    dpf_cadre_share_min_bp: u32 => value_share_bp,
    pwp_disabled_share_min_bp: u32 => value_share_bp,
    fund_pwp_cap_bp: u32 => value_share_bp,
    phase_out_max_months: u32 => value_count,
    edge_multiplier_bp: u32 => value_count,
    working_age_male: (u32, u32) => value_age_band,
    working_age_female: (u32, u32) => value_age_band,
    new_employment_per_person_per_year: u32 => value_count,
    city_report_due: (u32, u32) => value_month_day,
    small_cell_min: u32 => value_count,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRows {
    #[serde(default)]
    version: Vec<VersionRow>,
    #[serde(default)]
    parameter: BTreeMap<String, Vec<EntryRow>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionRow {
    id: String,
    from: toml::value::Datetime,
    /// Documentation only: the plan document of this version.
    #[serde(default, rename = "source")]
    _source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRow {
    from: toml::value::Datetime,
    to: Option<toml::value::Datetime>,
    value: toml::Value,
    source: String,
}

fn parse_versions(rows: Vec<VersionRow>) -> Result<Vec<Version>, PolicyError> {
    let mut versions = Vec::with_capacity(rows.len());
    for row in rows {
        if row.id.trim().is_empty() {
            return Err(PolicyError::InvalidValue {
                parameter: "version".to_owned(),
                problem: "a version has an empty id".to_owned(),
            });
        }
        versions.push(Version {
            from: plain_date(&row.from, "version")?,
            id: row.id,
        });
    }
    if versions.is_empty() {
        return Err(PolicyError::NoVersion);
    }
    versions.sort_by_key(|v| v.from);
    for pair in versions.windows(2) {
        if pair[0].from == pair[1].from {
            return Err(PolicyError::Overlap {
                parameter: "version".to_owned(),
                earlier: format!("{} from {}", pair[0].id, pair[0].from),
                later: format!("{} from {}", pair[1].id, pair[1].from),
            });
        }
    }
    Ok(versions)
}

/// A TOML local date (no time, no offset) as a `NaiveDate`.
fn plain_date(value: &toml::value::Datetime, parameter: &str) -> Result<NaiveDate, PolicyError> {
    let invalid = || PolicyError::InvalidValue {
        parameter: parameter.to_owned(),
        problem: format!("{value} is not a plain date (yyyy-mm-dd)"),
    };
    match (value.date, value.time, value.offset) {
        (Some(d), None, None) => {
            NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                .ok_or_else(invalid)
        }
        _ => Err(invalid()),
    }
}

fn range_text(from: NaiveDate, to: Option<NaiveDate>) -> String {
    match to {
        Some(to) => format!("{from}..={to}"),
        None => format!("{from}.."),
    }
}

fn year_start(year: i32, parameter: &str) -> Result<NaiveDate, PolicyError> {
    NaiveDate::from_ymd_opt(year, 1, 1).ok_or_else(|| PolicyError::InvalidValue {
        parameter: parameter.to_owned(),
        problem: format!("year {year} is out of range"),
    })
}

fn year_end(year: i32, parameter: &str) -> Result<NaiveDate, PolicyError> {
    NaiveDate::from_ymd_opt(year, 12, 31).ok_or_else(|| PolicyError::InvalidValue {
        parameter: parameter.to_owned(),
        problem: format!("year {year} is out of range"),
    })
}

fn value_count(value: &toml::Value) -> Result<u32, String> {
    match value {
        toml::Value::Integer(n) => {
            u32::try_from(*n).map_err(|_| format!("{n} is not a count in 0..={}", u32::MAX))
        }
        other => Err(format!("expected an integer, found {other}")),
    }
}

fn value_share_bp(value: &toml::Value) -> Result<u32, String> {
    let bp = value_count(value)?;
    if bp > BASIS_POINTS_PER_UNIT {
        return Err(format!(
            "share {bp} bp is above {BASIS_POINTS_PER_UNIT} bp (100%)"
        ));
    }
    Ok(bp)
}

fn value_year(value: &toml::Value) -> Result<i32, String> {
    match value {
        toml::Value::Integer(n) if (1900..=2100).contains(n) => {
            i32::try_from(*n).map_err(|_| format!("{n} is not a year"))
        }
        toml::Value::Integer(n) => Err(format!("year {n} is outside 1900..=2100")),
        other => Err(format!("expected a year, found {other}")),
    }
}

fn value_date(value: &toml::Value) -> Result<NaiveDate, String> {
    match value {
        toml::Value::Datetime(dt) => {
            plain_date(dt, "").map_err(|_| format!("{dt} is not a plain date (yyyy-mm-dd)"))
        }
        other => Err(format!("expected a date, found {other}")),
    }
}

fn value_pair(value: &toml::Value) -> Result<(u32, u32), String> {
    match value.as_array().map(Vec::as_slice) {
        Some([a, b]) => Ok((value_count(a)?, value_count(b)?)),
        _ => Err(format!("expected a pair [a, b], found {value}")),
    }
}

fn value_age_band(value: &toml::Value) -> Result<(u32, u32), String> {
    let (low, high) = value_pair(value)?;
    if low > high || high > 150 {
        return Err(format!("age band [{low}, {high}] is not a range of ages"));
    }
    Ok((low, high))
}

fn value_month_day(value: &toml::Value) -> Result<(u32, u32), String> {
    let (month, day) = value_pair(value)?;
    // 2000 is a leap year, so 29 February is accepted.
    match NaiveDate::from_ymd_opt(2000, month, day) {
        Some(d) if d.month() == month => Ok((month, day)),
        _ => Err(format!("[{month}, {day}] is not a month and day")),
    }
}

//! Employers and public units: registration, establishment size (编制), the
//! annual quota report (按比例安排残疾人就业), the public-sector obligation to
//! employ at least one disabled person (R-PUB-1, R-PUB-2), disclosure (R-PUB-5,
//! R-SOE-1), and the disabled-cadre share of DPF organs (R-PUB-3).
//!
//! Two aggregates live here:
//! - [`Employer`], stream `employer-<uscc>`: one employer, keyed by its unified
//!   social credit code (GB 32100);
//! - [`DpfOrgan`], stream `dpf-<org_code>`: one Disabled Persons' Federation
//!   organ, with one cadre report per year.
//!
//! Every threshold (ratio, multiplier, 50 / 67 编制, 15%, deadline) is read from
//! the policy in force at the end of the reporting year, never written here.

use crate::person::wire_enum;
use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{
    Aggregate, Context, Decision, Event, Rejection, convert, pb, policy::Policy, validate,
};

/// Largest staff count a report may state. A bound, not a rule: it keeps every
/// product below (`staff × ratio_bp`, `counted × 10_000`) far inside `u64`
/// and the thousandths-of-a-person figure inside `u32`.
pub const STAFF_MAX: u32 = 1_000_000;

/// Longest name or organisation code accepted, in characters.
const NAME_CHARS_MAX: usize = 200;

wire_enum! {
    /// The kind of organisation, as in `pb::OrgType`.
    OrgType => OrgType {
        /// 机关
        Organ => Organ,
        /// 事业单位
        PublicInstitution => PublicInstitution,
        /// 国有企业
        StateOwnedEnterprise => StateOwnedEnterprise,
        /// 民营企业
        PrivateEnterprise => PrivateEnterprise,
        /// 社会团体 / 民办非企业
        SocialOrganisation => SocialOrganisation,
        /// 个体工商户
        IndividualBusiness => IndividualBusiness,
    }
}

wire_enum! {
    /// The administrative level of a unit, as in `pb::AdminLevel`.
    AdminLevel => AdminLevel {
        /// 省
        Provincial => Provincial,
        /// 地市
        Prefecture => Prefecture,
        /// 县
        County => County,
        /// 乡
        Township => Township,
        /// Not part of the administrative hierarchy (enterprises and the like).
        None => None,
    }
}

/// Commands of an [`Employer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmployerCommand {
    /// Register the employer; once per stream.
    RegisterEmployer {
        /// Unified social credit code (GB 32100); the stream key.
        uscc: String,
        name: String,
        org_type: OrgType,
        level: AdminLevel,
        /// GB/T 2260 code of a place in Heilongjiang.
        region: String,
        is_school_or_kindergarten: bool,
        /// The supervising organisation (e.g. the SASAC office of an SOE).
        #[serde(default)]
        supervisor_org: Option<String>,
    },
    /// Record the approved establishment (编制数) of a year; a later record
    /// for the same year corrects the earlier one.
    RecordEstablishmentSize {
        year: i32,
        approved_establishment: u32,
    },
    /// The annual quota report; once per year.
    ReportQuota {
        year: i32,
        staff: u32,
        disabled_employees: u32,
        /// Employees with certificate grade 1–2, included in `disabled_employees`.
        severe_disabled_employees: u32,
    },
    /// Evaluate R-PUB-1 / R-PUB-2 for a year with a recorded establishment.
    EvaluatePublicUnitObligation { year: i32 },
    /// Publish the number of disabled employees (R-PUB-5, R-SOE-1).
    DiscloseEmployment {
        year: i32,
        disabled_count: u32,
        staff: u32,
    },
}

/// An employer's state: its registration and what it reported per year.
#[derive(Debug, Clone, Default)]
pub struct Employer {
    /// The registration; `None` before `EmployerRegistered`.
    pub registration: Option<pb::EmployerRegistered>,
    /// Approved establishment (编制数) by year.
    pub establishment: BTreeMap<i32, u32>,
    /// Counted disabled employees (severe counted with the multiplier) by year.
    pub counted_disabled: BTreeMap<i32, u32>,
}

impl Employer {
    fn registered(&self) -> Result<&pb::EmployerRegistered, Rejection> {
        self.registration
            .as_ref()
            .ok_or_else(|| Rejection::state("employer is not registered", "employer registration"))
    }
}

impl Aggregate for Employer {
    type Command = EmployerCommand;
    const CATEGORY: &'static str = "employer";

    fn decide(&self, command: &EmployerCommand, ctx: &Context<'_>) -> Decision {
        match command {
            EmployerCommand::RegisterEmployer {
                uscc,
                name,
                org_type,
                level,
                region,
                is_school_or_kindergarten,
                supervisor_org,
            } => {
                if let Some(r) = &self.registration {
                    return Err(Rejection::state(
                        format!("employer {} is already registered", r.uscc),
                        "one registration per employer",
                    ));
                }
                let uscc = validate::credit_code("uscc", uscc)?;
                let name = validate::text("name", name, NAME_CHARS_MAX)?;
                validate::region("region", region)?;
                let supervisor_org = match supervisor_org {
                    Some(s) => validate::text("supervisor_org", s, NAME_CHARS_MAX)?,
                    None => String::new(),
                };
                Ok(vec![Event::EmployerRegistered(pb::EmployerRegistered {
                    uscc: uscc.as_str().to_owned(),
                    name,
                    org_type: pb::OrgType::from(*org_type) as i32,
                    level: pb::AdminLevel::from(*level) as i32,
                    region: region.clone(),
                    is_school_or_kindergarten: *is_school_or_kindergarten,
                    supervisor_org,
                })])
            }
            EmployerCommand::RecordEstablishmentSize {
                year,
                approved_establishment,
            } => {
                let reg = self.registered()?;
                year_end("year", *year)?;
                if *approved_establishment > STAFF_MAX {
                    return Err(Rejection::new(
                        "approved_establishment",
                        format!("{approved_establishment} exceeds {STAFF_MAX}"),
                        "limit staff_max",
                    ));
                }
                Ok(vec![Event::EstablishmentSizeRecorded(
                    pb::EstablishmentSizeRecorded {
                        uscc: reg.uscc.clone(),
                        year: *year,
                        approved_establishment: *approved_establishment,
                    },
                )])
            }
            EmployerCommand::ReportQuota {
                year,
                staff,
                disabled_employees,
                severe_disabled_employees,
            } => {
                let reg = self.registered()?;
                let policy = ctx.policy.at(year_end("year", *year)?);
                if self.counted_disabled.contains_key(year) {
                    return Err(Rejection::new(
                        "year",
                        format!("a quota report for {year} already exists"),
                        "one quota report per employer and year",
                    ));
                }
                staff_in_bounds("staff", *staff)?;
                if disabled_employees > staff {
                    return Err(Rejection::new(
                        "disabled_employees",
                        format!("{disabled_employees} exceeds staff {staff}"),
                        "disabled employees are staff",
                    ));
                }
                if severe_disabled_employees > disabled_employees {
                    return Err(Rejection::new(
                        "severe_disabled_employees",
                        format!(
                            "{severe_disabled_employees} exceeds disabled_employees {disabled_employees}"
                        ),
                        "severe employees are disabled employees",
                    ));
                }
                let counted =
                    counted_disabled(&policy, *disabled_employees, *severe_disabled_employees)?;
                // The requirement in thousandths of a person: staff × ratio,
                // where the ratio is in basis points (1/10 000) and a
                // thousandth is ten basis points; floor division.
                let required_milli = u64::from(*staff) * u64::from(policy.quota_ratio_bp) / 10;
                let required_disabled_milli = u32::try_from(required_milli).map_err(|_| {
                    Rejection::new("staff", format!("{staff} is too large"), "limit staff_max")
                })?;
                Ok(vec![Event::QuotaReported(pb::QuotaReported {
                    uscc: reg.uscc.clone(),
                    year: *year,
                    staff: *staff,
                    disabled_employees: *disabled_employees,
                    severe_disabled_employees: *severe_disabled_employees,
                    counted_disabled: counted,
                    required_disabled_milli,
                    meets_quota: meets_quota(&policy, counted, *staff),
                    policy_version: policy.version.clone(),
                })])
            }
            EmployerCommand::EvaluatePublicUnitObligation { year } => {
                let reg = self.registered()?;
                let policy = ctx.policy.at(year_end("year", *year)?);
                let establishment = *self.establishment.get(year).ok_or_else(|| {
                    Rejection::new(
                        "year",
                        format!("no establishment size is recorded for {year}"),
                        "R-PUB-1/R-PUB-2 establishment size required",
                    )
                })?;
                let counted = self.counted_disabled.get(year).copied().unwrap_or(0);
                let rule = public_unit_rule(&policy, reg, establishment);
                let rule_applies = !rule.is_empty();
                let meets = meets_quota(&policy, counted, establishment);
                Ok(vec![Event::PublicUnitObligationEvaluated(
                    pb::PublicUnitObligationEvaluated {
                        uscc: reg.uscc.clone(),
                        year: *year,
                        level: reg.level,
                        org_type: reg.org_type,
                        establishment,
                        counted_disabled: counted,
                        rule_applies,
                        meets_quota: meets,
                        obligated_to_hire_one: rule_applies && !meets,
                        deadline: if rule_applies {
                            convert::date(policy.public_unit_deadline)
                        } else {
                            None
                        },
                        rule: rule.to_owned(),
                        policy_version: policy.version.clone(),
                    },
                )])
            }
            EmployerCommand::DiscloseEmployment {
                year,
                disabled_count,
                staff,
            } => {
                let reg = self.registered()?;
                year_end("year", *year)?;
                staff_in_bounds("staff", *staff)?;
                if disabled_count > staff {
                    return Err(Rejection::new(
                        "disabled_count",
                        format!("{disabled_count} exceeds staff {staff}"),
                        "disabled employees are staff",
                    ));
                }
                Ok(vec![Event::DisabledEmploymentDisclosed(
                    pb::DisabledEmploymentDisclosed {
                        uscc: reg.uscc.clone(),
                        year: *year,
                        disabled_count: *disabled_count,
                        staff: *staff,
                    },
                )])
            }
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::EmployerRegistered(e) => self.registration = Some(e.clone()),
            Event::EstablishmentSizeRecorded(e) => {
                self.establishment.insert(e.year, e.approved_establishment);
            }
            Event::QuotaReported(e) => {
                self.counted_disabled.insert(e.year, e.counted_disabled);
            }
            _ => {}
        }
        self
    }
}

/// Disabled employees as counted toward the quota: a severe employee
/// (certificate grade 1–2) counts `severe_multiplier` times.
fn counted_disabled(policy: &Policy, disabled: u32, severe: u32) -> Result<u32, Rejection> {
    let extra = u64::from(severe) * u64::from(policy.severe_multiplier.saturating_sub(1));
    u32::try_from(u64::from(disabled) + extra).map_err(|_| {
        Rejection::new(
            "severe_disabled_employees",
            format!("{severe} is too large"),
            "limit staff_max",
        )
    })
}

/// Whether `counted` disabled persons meet the quota of `staff`, exactly:
/// `counted / staff ≥ ratio_bp / 10 000`, inclusive.
fn meets_quota(policy: &Policy, counted: u32, staff: u32) -> bool {
    u64::from(counted) * 10_000 >= u64::from(staff) * u64::from(policy.quota_ratio_bp)
}

/// The public-unit rule covering this unit at this establishment: `R-PUB-1`
/// (provincial or prefecture organ at or above the organ threshold),
/// `R-PUB-2` (such a public institution at or above the institution
/// threshold, schools and kindergartens excluded), or `""` when neither does.
fn public_unit_rule(
    policy: &Policy,
    reg: &pb::EmployerRegistered,
    establishment: u32,
) -> &'static str {
    let covered_level = matches!(
        reg.level(),
        pb::AdminLevel::Provincial | pb::AdminLevel::Prefecture
    );
    if !covered_level {
        return "";
    }
    match reg.org_type() {
        pb::OrgType::Organ if establishment >= policy.organ_threshold => "R-PUB-1",
        pb::OrgType::PublicInstitution
            if establishment >= policy.institution_threshold && !reg.is_school_or_kindergarten =>
        {
            "R-PUB-2"
        }
        _ => "",
    }
}

fn staff_in_bounds(field: &'static str, staff: u32) -> Result<(), Rejection> {
    if staff > STAFF_MAX {
        return Err(Rejection::new(
            field,
            format!("{staff} exceeds {STAFF_MAX}"),
            "limit staff_max",
        ));
    }
    Ok(())
}

/// 31 December of a reporting year inside the accepted date range: the date
/// whose policy governs the year's reports.
fn year_end(field: &'static str, year: i32) -> Result<NaiveDate, Rejection> {
    let end = NaiveDate::from_ymd_opt(year, 12, 31).ok_or_else(|| {
        Rejection::new(field, format!("{year} is not a calendar year"), "ISO 8601")
    })?;
    validate::date_in_range(field, end)?;
    Ok(end)
}

/// Commands of a [`DpfOrgan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DpfOrganCommand {
    /// The year's cadre report of a DPF organ (county level and above); once
    /// per organ and year.
    ReportCadreRatio {
        /// The organ's code; the stream key.
        dpf_org: String,
        /// GB/T 2260 code of the organ's area.
        region: String,
        year: i32,
        total_cadres: u32,
        disabled_cadres: u32,
    },
}

/// A DPF organ: its code and the cadre reports per year.
#[derive(Debug, Clone, Default)]
pub struct DpfOrgan {
    /// The organ's code, set by its first report.
    pub dpf_org: Option<String>,
    /// Whether each reported year was compliant with R-PUB-3.
    pub compliant: BTreeMap<i32, bool>,
}

impl Aggregate for DpfOrgan {
    type Command = DpfOrganCommand;
    const CATEGORY: &'static str = "dpf";

    fn decide(&self, command: &DpfOrganCommand, ctx: &Context<'_>) -> Decision {
        match command {
            DpfOrganCommand::ReportCadreRatio {
                dpf_org,
                region,
                year,
                total_cadres,
                disabled_cadres,
            } => {
                let dpf_org = validate::text("dpf_org", dpf_org, NAME_CHARS_MAX)?;
                if let Some(known) = self.dpf_org.as_ref().filter(|k| **k != dpf_org) {
                    return Err(Rejection::new(
                        "dpf_org",
                        format!("{dpf_org} does not match this stream's organ {known}"),
                        "stream dpf-<org_code>",
                    ));
                }
                validate::region("region", region)?;
                let policy = ctx.policy.at(year_end("year", *year)?);
                if self.compliant.contains_key(year) {
                    return Err(Rejection::new(
                        "year",
                        format!("a cadre report for {year} already exists"),
                        "one cadre report per organ and year",
                    ));
                }
                if *total_cadres == 0 {
                    return Err(Rejection::new(
                        "total_cadres",
                        "0: a share needs at least one cadre",
                        "R-PUB-3",
                    ));
                }
                staff_in_bounds("total_cadres", *total_cadres)?;
                if disabled_cadres > total_cadres {
                    return Err(Rejection::new(
                        "disabled_cadres",
                        format!("{disabled_cadres} exceeds total_cadres {total_cadres}"),
                        "R-PUB-3",
                    ));
                }
                let compliant = Policy::meets_share(
                    u64::from(*disabled_cadres),
                    u64::from(*total_cadres),
                    policy.dpf_cadre_share_min_bp,
                );
                Ok(vec![Event::DpfCadreRatioReported(
                    pb::DpfCadreRatioReported {
                        dpf_org,
                        region: region.clone(),
                        year: *year,
                        total_cadres: *total_cadres,
                        disabled_cadres: *disabled_cadres,
                        compliant,
                        policy_version: policy.version.clone(),
                    },
                )])
            }
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        if let Event::DpfCadreRatioReported(e) = event {
            self.dpf_org = Some(e.dpf_org.clone());
            self.compliant.insert(e.year, e.compliant);
        }
        self
    }
}

//! Employers and public units: registration, quota reports with severe
//! disability counted double, the R-PUB-1 / R-PUB-2 obligation at its
//! thresholds, disclosure, and the DPF cadre share (R-PUB-3).

use expect_test::{Expect, expect};
use pathway_domain::{
    Event,
    employer::{AdminLevel, DpfOrgan, DpfOrganCommand, Employer, EmployerCommand, OrgType},
    pb, validate,
};

use crate::check::check;

const TODAY: &str = "2024-06-30";

fn uscc() -> String {
    validate::make_credit_code("11230000MB0123456")
}

fn registered(org_type: pb::OrgType, level: pb::AdminLevel, school: bool) -> Event {
    Event::EmployerRegistered(pb::EmployerRegistered {
        uscc: uscc(),
        name: "Unit".into(),
        org_type: org_type as i32,
        level: level as i32,
        region: "230102".into(),
        is_school_or_kindergarten: school,
        supervisor_org: String::new(),
    })
}

fn establishment(year: i32, size: u32) -> Event {
    Event::EstablishmentSizeRecorded(pb::EstablishmentSizeRecorded {
        uscc: uscc(),
        year,
        approved_establishment: size,
    })
}

fn quota_counted(year: i32, counted: u32) -> Event {
    Event::QuotaReported(pb::QuotaReported {
        uscc: uscc(),
        year,
        counted_disabled: counted,
        ..Default::default()
    })
}

fn register(uscc: &str, region: &str) -> EmployerCommand {
    EmployerCommand::RegisterEmployer {
        uscc: uscc.into(),
        name: " Harbin Municipal Bureau ".into(),
        org_type: OrgType::Organ,
        level: AdminLevel::Prefecture,
        region: region.into(),
        is_school_or_kindergarten: false,
        supervisor_org: None,
    }
}

#[test]
fn register_employer() {
    let cases: Vec<(Vec<Event>, EmployerCommand, Expect)> = vec![
        (
            vec![],
            register(&uscc(), "230102"),
            expect![[r#"
            EmployerRegistered EmployerRegistered(EmployerRegistered { uscc: "11230000MB01234561", name: "Harbin Municipal Bureau", org_type: Organ, level: Prefecture, region: "230102", is_school_or_kindergarten: false, supervisor_org: "" })
        "#]],
        ),
        (
            vec![],
            register(&uscc().to_lowercase(), "230102"),
            expect![[r#"
            EmployerRegistered EmployerRegistered(EmployerRegistered { uscc: "11230000MB01234561", name: "Harbin Municipal Bureau", org_type: Organ, level: Prefecture, region: "230102", is_school_or_kindergarten: false, supervisor_org: "" })
        "#]],
        ),
        (
            vec![],
            register("11230000MB0123456X", "230102"),
            expect![[r#"
            rejected: uscc: check character of 11230000MB0123456X is X, expected 1 (GB 32100)
        "#]],
        ),
        (
            vec![],
            register(&uscc(), "110101"),
            expect![[r#"
            rejected: region: 110101 is not in Heilongjiang (GB/T 2260 23xxxx)
        "#]],
        ),
        (
            vec![registered(
                pb::OrgType::Organ,
                pb::AdminLevel::Prefecture,
                false,
            )],
            register(&uscc(), "230102"),
            expect![[r#"
                rejected: command: employer 11230000MB01234561 is already registered (one registration per employer)
            "#]],
        ),
        (
            vec![],
            EmployerCommand::RegisterEmployer {
                uscc: validate::make_credit_code("91230100MA1ABCDE0"),
                name: "Longjiang Steel".into(),
                org_type: OrgType::StateOwnedEnterprise,
                level: AdminLevel::None,
                region: "230100".into(),
                is_school_or_kindergarten: false,
                supervisor_org: Some("SASAC Heilongjiang".into()),
            },
            expect![[r#"
                EmployerRegistered EmployerRegistered(EmployerRegistered { uscc: "91230100MA1ABCDE0R", name: "Longjiang Steel", org_type: StateOwnedEnterprise, level: None, region: "230100", is_school_or_kindergarten: false, supervisor_org: "SASAC Heilongjiang" })
            "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<Employer>(&given, &when, TODAY, expect);
    }
}

#[test]
fn commands_need_a_registered_employer() {
    let cases = [
        (
            EmployerCommand::RecordEstablishmentSize {
                year: 2024,
                approved_establishment: 50,
            },
            expect![[r#"
            rejected: command: employer is not registered (employer registration)
        "#]],
        ),
        (
            EmployerCommand::ReportQuota {
                year: 2024,
                staff: 100,
                disabled_employees: 1,
                severe_disabled_employees: 0,
            },
            expect![[r#"
                rejected: command: employer is not registered (employer registration)
            "#]],
        ),
        (
            EmployerCommand::EvaluatePublicUnitObligation { year: 2024 },
            expect![[r#"
            rejected: command: employer is not registered (employer registration)
        "#]],
        ),
        (
            EmployerCommand::DiscloseEmployment {
                year: 2024,
                disabled_count: 1,
                staff: 100,
            },
            expect![[r#"
            rejected: command: employer is not registered (employer registration)
        "#]],
        ),
    ];
    for (when, expect) in cases {
        check::<Employer>(&[], &when, TODAY, expect);
    }
}

#[test]
fn record_establishment_size() {
    let given = [registered(
        pb::OrgType::Organ,
        pb::AdminLevel::Provincial,
        false,
    )];
    let cases = [
        (
            2024,
            50,
            expect![[r#"
            EstablishmentSizeRecorded EstablishmentSizeRecorded(EstablishmentSizeRecorded { uscc: "11230000MB01234561", year: 2024, approved_establishment: 50 })
        "#]],
        ),
        (
            2024,
            1_000_001,
            expect![[r#"
            rejected: approved_establishment: 1000001 exceeds 1000000 (limit staff_max)
        "#]],
        ),
        (
            1899,
            50,
            expect![[r#"
            rejected: year: 1899-12-31 is outside 1900-01-01..=2100-12-31 (date range)
        "#]],
        ),
    ];
    for (year, size, expect) in cases {
        let when = EmployerCommand::RecordEstablishmentSize {
            year,
            approved_establishment: size,
        };
        check::<Employer>(&given, &when, TODAY, expect);
    }
}

#[test]
fn quota_report_counts_severe_double() {
    let given = [registered(
        pb::OrgType::PrivateEnterprise,
        pb::AdminLevel::None,
        false,
    )];
    // (staff, disabled, severe): 200 staff need 3.000 persons; 2 disabled of
    // whom 1 severe count 3, exactly the quota; 201 staff need 3.015.
    let cases = [
        (
            200,
            2,
            1,
            expect![[r#"
            QuotaReported QuotaReported(QuotaReported { uscc: "11230000MB01234561", year: 2024, staff: 200, disabled_employees: 2, severe_disabled_employees: 1, counted_disabled: 3, required_disabled_milli: 3000, meets_quota: true, policy_version: "HLJ-2022" })
        "#]],
        ),
        (
            201,
            2,
            1,
            expect![[r#"
            QuotaReported QuotaReported(QuotaReported { uscc: "11230000MB01234561", year: 2024, staff: 201, disabled_employees: 2, severe_disabled_employees: 1, counted_disabled: 3, required_disabled_milli: 3015, meets_quota: false, policy_version: "HLJ-2022" })
        "#]],
        ),
        (
            200,
            2,
            0,
            expect![[r#"
            QuotaReported QuotaReported(QuotaReported { uscc: "11230000MB01234561", year: 2024, staff: 200, disabled_employees: 2, severe_disabled_employees: 0, counted_disabled: 2, required_disabled_milli: 3000, meets_quota: false, policy_version: "HLJ-2022" })
        "#]],
        ),
        (
            0,
            0,
            0,
            expect![[r#"
            QuotaReported QuotaReported(QuotaReported { uscc: "11230000MB01234561", year: 2024, staff: 0, disabled_employees: 0, severe_disabled_employees: 0, counted_disabled: 0, required_disabled_milli: 0, meets_quota: true, policy_version: "HLJ-2022" })
        "#]],
        ),
        (
            100,
            3,
            4,
            expect![[r#"
            rejected: severe_disabled_employees: 4 exceeds disabled_employees 3 (severe employees are disabled employees)
        "#]],
        ),
        (
            2,
            3,
            0,
            expect![[r#"
            rejected: disabled_employees: 3 exceeds staff 2 (disabled employees are staff)
        "#]],
        ),
        (
            1_000_001,
            0,
            0,
            expect![[r#"
            rejected: staff: 1000001 exceeds 1000000 (limit staff_max)
        "#]],
        ),
    ];
    for (staff, disabled, severe, expect) in cases {
        let when = EmployerCommand::ReportQuota {
            year: 2024,
            staff,
            disabled_employees: disabled,
            severe_disabled_employees: severe,
        };
        check::<Employer>(&given, &when, TODAY, expect);
    }
}

#[test]
fn quota_report_once_per_year() {
    let given = [
        registered(pb::OrgType::PrivateEnterprise, pb::AdminLevel::None, false),
        quota_counted(2023, 1),
    ];
    let report = |year| EmployerCommand::ReportQuota {
        year,
        staff: 100,
        disabled_employees: 1,
        severe_disabled_employees: 0,
    };
    check::<Employer>(
        &given,
        &report(2023),
        TODAY,
        expect![[r#"
        rejected: year: a quota report for 2023 already exists (one quota report per employer and year)
    "#]],
    );
    check::<Employer>(
        &given,
        &report(2024),
        TODAY,
        expect![[r#"
        QuotaReported QuotaReported(QuotaReported { uscc: "11230000MB01234561", year: 2024, staff: 100, disabled_employees: 1, severe_disabled_employees: 0, counted_disabled: 1, required_disabled_milli: 1500, meets_quota: false, policy_version: "HLJ-2022" })
    "#]],
    );
}

#[test]
fn public_unit_obligation_thresholds() {
    use pb::{AdminLevel as L, OrgType as T};
    // (org type, level, school, 编制, counted disabled)
    let cases = [
        // R-PUB-1: organs at 49 vs 50
        (
            T::Organ,
            L::Provincial,
            false,
            49,
            0,
            expect![[r#"
            PublicUnitObligationEvaluated PublicUnitObligationEvaluated(PublicUnitObligationEvaluated { uscc: "11230000MB01234561", year: 2024, level: Provincial, org_type: Organ, establishment: 49, counted_disabled: 0, rule_applies: false, meets_quota: false, obligated_to_hire_one: false, deadline: None, rule: "", policy_version: "HLJ-2022" })
        "#]],
        ),
        (
            T::Organ,
            L::Provincial,
            false,
            50,
            0,
            expect![[r#"
            PublicUnitObligationEvaluated PublicUnitObligationEvaluated(PublicUnitObligationEvaluated { uscc: "11230000MB01234561", year: 2024, level: Provincial, org_type: Organ, establishment: 50, counted_disabled: 0, rule_applies: true, meets_quota: false, obligated_to_hire_one: true, deadline: Some(Date { year: 2025, month: 12, day: 31 }), rule: "R-PUB-1", policy_version: "HLJ-2022" })
        "#]],
        ),
        (
            T::Organ,
            L::Prefecture,
            false,
            50,
            0,
            expect![[r#"
            PublicUnitObligationEvaluated PublicUnitObligationEvaluated(PublicUnitObligationEvaluated { uscc: "11230000MB01234561", year: 2024, level: Prefecture, org_type: Organ, establishment: 50, counted_disabled: 0, rule_applies: true, meets_quota: false, obligated_to_hire_one: true, deadline: Some(Date { year: 2025, month: 12, day: 31 }), rule: "R-PUB-1", policy_version: "HLJ-2022" })
        "#]],
        ),
        // R-PUB-2: institutions at 66 vs 67
        (
            T::PublicInstitution,
            L::Prefecture,
            false,
            66,
            0,
            expect![[r#"
            PublicUnitObligationEvaluated PublicUnitObligationEvaluated(PublicUnitObligationEvaluated { uscc: "11230000MB01234561", year: 2024, level: Prefecture, org_type: PublicInstitution, establishment: 66, counted_disabled: 0, rule_applies: false, meets_quota: false, obligated_to_hire_one: false, deadline: None, rule: "", policy_version: "HLJ-2022" })
        "#]],
        ),
        (
            T::PublicInstitution,
            L::Prefecture,
            false,
            67,
            0,
            expect![[r#"
            PublicUnitObligationEvaluated PublicUnitObligationEvaluated(PublicUnitObligationEvaluated { uscc: "11230000MB01234561", year: 2024, level: Prefecture, org_type: PublicInstitution, establishment: 67, counted_disabled: 0, rule_applies: true, meets_quota: false, obligated_to_hire_one: true, deadline: Some(Date { year: 2025, month: 12, day: 31 }), rule: "R-PUB-2", policy_version: "HLJ-2022" })
        "#]],
        ),
        // a school with 编制 200 is exempt from R-PUB-2
        (
            T::PublicInstitution,
            L::Provincial,
            true,
            200,
            0,
            expect![[r#"
            PublicUnitObligationEvaluated PublicUnitObligationEvaluated(PublicUnitObligationEvaluated { uscc: "11230000MB01234561", year: 2024, level: Provincial, org_type: PublicInstitution, establishment: 200, counted_disabled: 0, rule_applies: false, meets_quota: false, obligated_to_hire_one: false, deadline: None, rule: "", policy_version: "HLJ-2022" })
        "#]],
        ),
        // county-level organs are not covered
        (
            T::Organ,
            L::County,
            false,
            200,
            0,
            expect![[r#"
            PublicUnitObligationEvaluated PublicUnitObligationEvaluated(PublicUnitObligationEvaluated { uscc: "11230000MB01234561", year: 2024, level: County, org_type: Organ, establishment: 200, counted_disabled: 0, rule_applies: false, meets_quota: false, obligated_to_hire_one: false, deadline: None, rule: "", policy_version: "HLJ-2022" })
        "#]],
        ),
        // an SOE is neither an organ nor an institution
        (
            T::StateOwnedEnterprise,
            L::Provincial,
            false,
            200,
            0,
            expect![[r#"
            PublicUnitObligationEvaluated PublicUnitObligationEvaluated(PublicUnitObligationEvaluated { uscc: "11230000MB01234561", year: 2024, level: Provincial, org_type: StateOwnedEnterprise, establishment: 200, counted_disabled: 0, rule_applies: false, meets_quota: false, obligated_to_hire_one: false, deadline: None, rule: "", policy_version: "HLJ-2022" })
        "#]],
        ),
        // at quota against 编制: 100 × 1.5% = 1.5, 2 counted meets it
        (
            T::Organ,
            L::Provincial,
            false,
            100,
            2,
            expect![[r#"
            PublicUnitObligationEvaluated PublicUnitObligationEvaluated(PublicUnitObligationEvaluated { uscc: "11230000MB01234561", year: 2024, level: Provincial, org_type: Organ, establishment: 100, counted_disabled: 2, rule_applies: true, meets_quota: true, obligated_to_hire_one: false, deadline: Some(Date { year: 2025, month: 12, day: 31 }), rule: "R-PUB-1", policy_version: "HLJ-2022" })
        "#]],
        ),
        // one short: 1 counted of 100 is below 1.5
        (
            T::Organ,
            L::Provincial,
            false,
            100,
            1,
            expect![[r#"
            PublicUnitObligationEvaluated PublicUnitObligationEvaluated(PublicUnitObligationEvaluated { uscc: "11230000MB01234561", year: 2024, level: Provincial, org_type: Organ, establishment: 100, counted_disabled: 1, rule_applies: true, meets_quota: false, obligated_to_hire_one: true, deadline: Some(Date { year: 2025, month: 12, day: 31 }), rule: "R-PUB-1", policy_version: "HLJ-2022" })
        "#]],
        ),
    ];
    for (org_type, level, school, size, counted, expect) in cases {
        let mut given = vec![
            registered(org_type, level, school),
            establishment(2024, size),
        ];
        if counted > 0 {
            given.push(quota_counted(2024, counted));
        }
        let when = EmployerCommand::EvaluatePublicUnitObligation { year: 2024 };
        check::<Employer>(&given, &when, TODAY, expect);
    }
}

#[test]
fn public_unit_obligation_needs_the_years_establishment() {
    let given = [
        registered(pb::OrgType::Organ, pb::AdminLevel::Provincial, false),
        establishment(2023, 80),
    ];
    let when = EmployerCommand::EvaluatePublicUnitObligation { year: 2024 };
    check::<Employer>(
        &given,
        &when,
        TODAY,
        expect![[r#"
        rejected: year: no establishment size is recorded for 2024 (R-PUB-1/R-PUB-2 establishment size required)
    "#]],
    );
}

#[test]
fn public_unit_deadline_follows_the_policy_of_the_year() {
    let given = [
        registered(pb::OrgType::Organ, pb::AdminLevel::Provincial, false),
        establishment(2025, 80),
    ];
    let when = EmployerCommand::EvaluatePublicUnitObligation { year: 2025 };
    check::<Employer>(
        &given,
        &when,
        "2025-06-30",
        expect![[r#"
        PublicUnitObligationEvaluated PublicUnitObligationEvaluated(PublicUnitObligationEvaluated { uscc: "11230000MB01234561", year: 2025, level: Provincial, org_type: Organ, establishment: 80, counted_disabled: 0, rule_applies: true, meets_quota: false, obligated_to_hire_one: true, deadline: Some(Date { year: 2027, month: 12, day: 31 }), rule: "R-PUB-1", policy_version: "HLJ-2025" })
    "#]],
    );
}

#[test]
fn disclose_employment() {
    let given = [registered(
        pb::OrgType::StateOwnedEnterprise,
        pb::AdminLevel::None,
        false,
    )];
    let cases = [
        (
            3,
            200,
            expect![[r#"
        DisabledEmploymentDisclosed DisabledEmploymentDisclosed(DisabledEmploymentDisclosed { uscc: "11230000MB01234561", year: 2024, disabled_count: 3, staff: 200 })
    "#]],
        ),
        (
            201,
            200,
            expect![[r#"
        rejected: disabled_count: 201 exceeds staff 200 (disabled employees are staff)
    "#]],
        ),
    ];
    for (disabled_count, staff, expect) in cases {
        let when = EmployerCommand::DiscloseEmployment {
            year: 2024,
            disabled_count,
            staff,
        };
        check::<Employer>(&given, &when, TODAY, expect);
    }
}

fn cadre_report(org: &str, year: i32, total: u32, disabled: u32) -> DpfOrganCommand {
    DpfOrganCommand::ReportCadreRatio {
        dpf_org: org.into(),
        region: "230100".into(),
        year,
        total_cadres: total,
        disabled_cadres: disabled,
    }
}

#[test]
fn dpf_cadre_share() {
    // 14.9% vs 15% exactly
    let cases = [
        (
            1000,
            149,
            expect![[r#"
            DpfCadreRatioReported DpfCadreRatioReported(DpfCadreRatioReported { dpf_org: "HRB-DPF", region: "230100", year: 2024, total_cadres: 1000, disabled_cadres: 149, compliant: false, policy_version: "HLJ-2022" })
        "#]],
        ),
        (
            1000,
            150,
            expect![[r#"
            DpfCadreRatioReported DpfCadreRatioReported(DpfCadreRatioReported { dpf_org: "HRB-DPF", region: "230100", year: 2024, total_cadres: 1000, disabled_cadres: 150, compliant: true, policy_version: "HLJ-2022" })
        "#]],
        ),
        (
            20,
            3,
            expect![[r#"
            DpfCadreRatioReported DpfCadreRatioReported(DpfCadreRatioReported { dpf_org: "HRB-DPF", region: "230100", year: 2024, total_cadres: 20, disabled_cadres: 3, compliant: true, policy_version: "HLJ-2022" })
        "#]],
        ),
        (
            10,
            11,
            expect![[r#"
            rejected: disabled_cadres: 11 exceeds total_cadres 10 (R-PUB-3)
        "#]],
        ),
        (
            0,
            0,
            expect![[r#"
            rejected: total_cadres: 0: a share needs at least one cadre (R-PUB-3)
        "#]],
        ),
    ];
    for (total, disabled, expect) in cases {
        check::<DpfOrgan>(
            &[],
            &cadre_report("HRB-DPF", 2024, total, disabled),
            TODAY,
            expect,
        );
    }
}

#[test]
fn dpf_cadre_report_once_per_year_and_organ() {
    let given = [Event::DpfCadreRatioReported(pb::DpfCadreRatioReported {
        dpf_org: "HRB-DPF".into(),
        region: "230100".into(),
        year: 2023,
        total_cadres: 40,
        disabled_cadres: 6,
        compliant: true,
        policy_version: "HLJ-2022".into(),
    })];
    let cases = [
        (
            cadre_report("HRB-DPF", 2023, 40, 6),
            expect![[r#"
            rejected: year: a cadre report for 2023 already exists (one cadre report per organ and year)
        "#]],
        ),
        (
            cadre_report("QQHR-DPF", 2024, 40, 6),
            expect![[r#"
            rejected: dpf_org: QQHR-DPF does not match this stream's organ HRB-DPF (stream dpf-<org_code>)
        "#]],
        ),
        (
            cadre_report("HRB-DPF", 2024, 40, 5),
            expect![[r#"
            DpfCadreRatioReported DpfCadreRatioReported(DpfCadreRatioReported { dpf_org: "HRB-DPF", region: "230100", year: 2024, total_cadres: 40, disabled_cadres: 5, compliant: false, policy_version: "HLJ-2022" })
        "#]],
        ),
    ];
    for (when, expect) in cases {
        check::<DpfOrgan>(&given, &when, TODAY, expect);
    }
}

#[test]
fn employer_commands_read_from_json() {
    let json = r#"{"type":"report_quota","year":2024,"staff":200,"disabled_employees":2,"severe_disabled_employees":1}"#;
    let cmd: EmployerCommand = serde_json::from_str(json).expect("a quota report");
    assert_eq!(
        cmd,
        EmployerCommand::ReportQuota {
            year: 2024,
            staff: 200,
            disabled_employees: 2,
            severe_disabled_employees: 1
        }
    );
    let json = r#"{"type":"register_employer","uscc":"x","name":"n","org_type":"public_institution","level":"prefecture","region":"230100","is_school_or_kindergarten":true}"#;
    let cmd: EmployerCommand = serde_json::from_str(json).expect("a registration");
    assert!(matches!(
        cmd,
        EmployerCommand::RegisterEmployer {
            org_type: OrgType::PublicInstitution,
            supervisor_org: None,
            ..
        }
    ));
}

//! Policy parameters: the checked-in file, effective dating, load errors and
//! the integer share arithmetic.

use chrono::NaiveDate;
use pathway_domain::pb::Sex;
use pathway_domain::policy::{Policy, PolicyError, PolicyTable};

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("test dates are calendar dates")
}

/// The checked-in file's text.
const BUILTIN: &str = include_str!("../../policy.toml");

/// The values of plan 2022 (DOMAIN.md), in force mid-2023.
fn plan_2022() -> Policy {
    Policy {
        version: "HLJ-2022".to_owned(),
        plan_first_year: 2022,
        plan_last_year: 2024,
        target_new_employment: 33_000,
        quota_ratio_bp: 150,
        severe_multiplier: 2,
        organ_threshold: 50,
        institution_threshold: 67,
        public_unit_deadline: date(2025, 12, 31),
        dpf_cadre_share_min_bp: 1500,
        pwp_disabled_share_min_bp: 1000,
        fund_pwp_cap_bp: 2000,
        phase_out_max_months: 12,
        edge_multiplier_bp: 15_000,
        working_age_male: (16, 59),
        working_age_female: (16, 54),
        new_employment_per_person_per_year: 1,
        city_report_due: (12, 31),
        small_cell_min: 5,
    }
}

#[test]
fn builtin_values_in_2023_are_plan_2022() {
    assert_eq!(PolicyTable::builtin().at(date(2023, 6, 1)), plan_2022());
}

#[test]
fn builtin_parses_like_from_toml() {
    let table = PolicyTable::from_toml(BUILTIN).expect("the checked-in file is valid");
    assert_eq!(table.at(date(2023, 6, 1)), plan_2022());
}

#[test]
fn effective_dating_switches_version_and_deadline() {
    let table = PolicyTable::builtin();
    let plan_2025 = Policy {
        version: "HLJ-2025".to_owned(),
        public_unit_deadline: date(2027, 12, 31),
        ..plan_2022()
    };
    let cases: &[(NaiveDate, &Policy)] = &[
        (date(2022, 1, 1), &plan_2022()),
        (date(2024, 12, 31), &plan_2022()),
        (date(2025, 1, 1), &plan_2025),
        (date(2026, 3, 15), &plan_2025),
        (date(2030, 1, 1), &plan_2025),
        // Before every entry: the nearest (earliest) entry and version.
        (date(2010, 1, 1), &plan_2022()),
    ];
    for (at, want) in cases {
        assert_eq!(&table.at(*at), *want, "at {at}");
    }
    assert_eq!(table.version_at(date(2026, 3, 15)), "HLJ-2025");
}

#[test]
fn sources_cite_the_rule() {
    let table = PolicyTable::builtin();
    let cases: &[(&str, NaiveDate, Option<&str>)] = &[
        (
            "public_unit_deadline",
            date(2023, 6, 1),
            Some("R-PUB-1 [plan 2022: end of the 14th Five-Year Plan]"),
        ),
        (
            "public_unit_deadline",
            date(2026, 1, 1),
            Some("R-PUB-1 [plan 2025: at least 1 by the end of 2027]"),
        ),
        (
            "fund_pwp_cap_bp",
            date(2023, 6, 1),
            Some("R-FUND-1 [plan 2022: employment security fund for post social insurance <= 20%]"),
        ),
        ("no_such_parameter", date(2023, 6, 1), None),
    ];
    for (parameter, at, want) in cases {
        assert_eq!(table.source(parameter, *at), *want, "{parameter} at {at}");
    }
}

#[test]
fn nearest_entry_outside_the_plan_period() {
    // A parameter that ends with the plan and a later one that starts in 2026:
    // a gap day takes the closer entry, the earlier on a tie.
    let text = BUILTIN.replace(
        "[[parameter.small_cell_min]]\nfrom = 2022-01-01\nvalue = 5",
        "[[parameter.small_cell_min]]\nfrom = 2022-01-01\nto = 2024-12-31\nvalue = 5\nsource = \"a\"\n\n\
         [[parameter.small_cell_min]]\nfrom = 2025-01-10\nvalue = 10",
    );
    let table = PolicyTable::from_toml(&text).expect("valid");
    let cases: &[(NaiveDate, u32)] = &[
        (date(2024, 12, 31), 5),
        (date(2025, 1, 1), 5),
        (date(2025, 1, 4), 5),
        (date(2025, 1, 5), 5),
        (date(2025, 1, 6), 10),
        (date(2025, 1, 10), 10),
        (date(2031, 1, 1), 10),
    ];
    for (at, want) in cases {
        assert_eq!(table.at(*at).small_cell_min, *want, "at {at}");
    }
}

#[test]
fn load_errors() {
    let replace = |from: &str, to: &str| {
        assert!(
            BUILTIN.contains(from),
            "the checked-in file contains {from:?}"
        );
        BUILTIN.replacen(from, to, 1)
    };
    let cases: Vec<(String, &str)> = vec![
        (
            replace("[[parameter.quota_ratio_bp]]", "[[parameter.quota_ratio]]"),
            "unknown policy parameter `quota_ratio`",
        ),
        (
            replace("[[parameter.small_cell_min]]", "[[parameter.small_cells]]"),
            "unknown policy parameter `small_cells`",
        ),
        (
            replace(
                "[[parameter.small_cell_min]]\nfrom = 2022-01-01",
                "[[parameter.small_cell_min]]\nfrom = 2023-01-01",
            ),
            "policy parameter `small_cell_min` has no value in force on 2022-01-01, \
             inside the plan period 2022-01-01..=2024-12-31",
        ),
        (
            replace(
                "[[parameter.small_cell_min]]\nfrom = 2022-01-01",
                "[[parameter.small_cell_min]]\nfrom = 2022-01-01\nto = 2024-12-30",
            ),
            "policy parameter `small_cell_min` has no value in force on 2024-12-31, \
             inside the plan period 2022-01-01..=2024-12-31",
        ),
        (
            replace(
                "from = 2025-01-01\nvalue = 2027-12-31",
                "from = 2024-12-01\nvalue = 2027-12-31",
            ),
            "policy parameter `public_unit_deadline`: entry 2022-01-01..=2024-12-31 overlaps entry 2024-12-01..",
        ),
        (
            replace(
                "to = 2024-12-31\nvalue = 2025-12-31",
                "to = 2021-12-31\nvalue = 2025-12-31",
            ),
            "policy parameter `public_unit_deadline`: entry ends on 2021-12-31, before it starts on 2022-01-01",
        ),
        (
            replace("value = 150\n", "value = 0.015\n"),
            "policy parameter `quota_ratio_bp`: entry from 1997-02-01: expected an integer, found 0.015",
        ),
        (
            replace("value = 150\n", "value = \"1.5%\"\n"),
            "policy parameter `quota_ratio_bp`: entry from 1997-02-01: expected an integer, found \"1.5%\"",
        ),
        (
            replace("value = 150\n", "value = 10001\n"),
            "policy parameter `quota_ratio_bp`: entry from 1997-02-01: share 10001 bp is above 10000 bp (100%)",
        ),
        (
            replace("value = 33000\n", "value = -1\n"),
            "policy parameter `target_new_employment`: entry from 2022-01-01: -1 is not a count in 0..=4294967295",
        ),
        (
            replace("value = [16, 59]", "value = [59, 16]"),
            "policy parameter `working_age_male`: entry from 2022-01-01: age band [59, 16] is not a range of ages",
        ),
        (
            replace("value = [16, 54]", "value = 16"),
            "policy parameter `working_age_female`: entry from 2022-01-01: expected a pair [a, b], found 16",
        ),
        (
            replace("value = [12, 31]", "value = [11, 31]"),
            "policy parameter `city_report_due`: entry from 2022-01-01: [11, 31] is not a month and day",
        ),
        (
            replace("value = 2025-12-31", "value = 2025"),
            "policy parameter `public_unit_deadline`: entry from 2022-01-01: expected a date, found 2025",
        ),
        (
            replace(
                "[[parameter.plan_last_year]]\nfrom = 2022-01-01",
                "[[parameter.plan_last_year]]\nfrom = 2022-01-01T08:00:00",
            ),
            "policy parameter `plan_last_year`: 2022-01-01T08:00:00 is not a plain date (yyyy-mm-dd)",
        ),
        (
            replace("value = 2024\n", "value = 2021\n"),
            "plan period is empty: first year 2022 is after last year 2021",
        ),
        (
            replace(
                "id = \"HLJ-2025\"\nfrom = 2025-01-01",
                "id = \"HLJ-2025\"\nfrom = 2022-01-01",
            ),
            "policy parameter `version`: entry HLJ-2022 from 2022-01-01 overlaps entry HLJ-2025 from 2022-01-01",
        ),
        (
            "[parameter]\n".to_owned(),
            "policy file declares no [[version]]",
        ),
    ];
    for (text, want) in cases {
        let got = PolicyTable::from_toml(&text)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(got, Err(want.to_owned()));
    }
}

#[test]
fn absent_parameter_is_an_error() {
    let start = BUILTIN
        .find("[[parameter.small_cell_min]]")
        .expect("present");
    let text = &BUILTIN[..start];
    assert_eq!(
        PolicyTable::from_toml(text).map(|_| ()),
        Err(PolicyError::Absent("small_cell_min"))
    );
}

#[test]
fn malformed_files_do_not_parse() {
    let cases = [
        "this is not toml",
        "[[version]]\nid = \"HLJ-2022\"\n",
        "[[version]]\nid = \"HLJ-2022\"\nfrom = 2022-01-01\nextra = 1\n",
        "[[parameter.small_cell_min]]\nfrom = 2022-01-01\nvalue = 5\n",
        "[settings]\n",
    ];
    for text in cases {
        let got = PolicyTable::from_toml(text).map(|_| ());
        assert!(
            matches!(&got, Err(PolicyError::Parse(message)) if !message.is_empty()),
            "{text:?} gave {got:?}"
        );
        let message = got.map_err(|e| e.to_string()).expect_err("rejected");
        assert!(
            message.starts_with("policy file does not parse: "),
            "{message}"
        );
    }
}

#[test]
fn plan_years_and_working_age() {
    let policy = plan_2022();
    let years: Vec<(i32, bool)> = (2021..=2025).map(|y| (y, policy.is_plan_year(y))).collect();
    assert_eq!(
        years,
        [
            (2021, false),
            (2022, true),
            (2023, true),
            (2024, true),
            (2025, false)
        ]
    );
    assert_eq!(policy.working_age(Sex::Male), (16, 59));
    assert_eq!(policy.working_age(Sex::Female), (16, 54));
    assert_eq!(policy.working_age(Sex::Unspecified), (16, 54));
}

#[test]
fn meets_share_boundaries() {
    let cases: &[(u64, u64, u32, bool)] = &[
        // DPF cadres, 15% inclusive: 14.9% fails, 15% passes.
        (149, 1000, 1500, false),
        (150, 1000, 1500, true),
        (3, 20, 1500, true),
        (2, 20, 1500, false),
        // Public-welfare posts, 10%.
        (99, 1000, 1000, false),
        (100, 1000, 1000, true),
        // Exactly 20%.
        (2000, 10_000, 2000, true),
        (1999, 10_000, 2000, false),
        // A third is not 33.34%, but is 33.33%.
        (1, 3, 3334, false),
        (1, 3, 3333, true),
        // No denominator meets no share, not even 0%.
        (0, 0, 0, false),
        (5, 0, 1500, false),
        (0, 7, 0, true),
        // No overflow at the extremes.
        (u64::MAX, u64::MAX, 10_000, true),
        (u64::MAX - 1, u64::MAX, 10_000, false),
        (u64::MAX, 1, u32::MAX, true),
    ];
    for (numerator, denominator, min_bp, want) in cases {
        assert_eq!(
            Policy::meets_share(*numerator, *denominator, *min_bp),
            *want,
            "{numerator}/{denominator} >= {min_bp} bp"
        );
    }
}

#[test]
fn within_cap_boundaries() {
    let cases: &[(u64, u64, u32, bool)] = &[
        // Fund share for post social insurance, 20% inclusive.
        (2000, 10_000, 2000, true),
        (2001, 10_000, 2000, false),
        (1999, 10_000, 2000, true),
        (20_000_000, 100_000_000, 2000, true),
        (20_000_001, 100_000_000, 2000, false),
        (0, 0, 2000, true),
        (1, 0, 2000, false),
        (u64::MAX, u64::MAX, 10_000, true),
    ];
    for (numerator, denominator, max_bp, want) in cases {
        assert_eq!(
            Policy::within_cap(*numerator, *denominator, *max_bp),
            *want,
            "{numerator}/{denominator} <= {max_bp} bp"
        );
    }
}

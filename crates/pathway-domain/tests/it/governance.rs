//! Governance: city annual reports with their overdue marks (R-RPT-1) and the
//! end-of-plan evaluation (R-EVAL-1).

use expect_test::{Expect, expect};
use pathway_domain::{
    Event,
    governance::{CityReport, CityReportCommand, Evaluation, EvaluationCommand},
    pb,
};

use crate::check::{check, day};

fn submit(city: &str, year: i32, submitted_on: &str) -> CityReportCommand {
    CityReportCommand::SubmitReport {
        report_id: "RPT-230100-2024".into(),
        city: city.into(),
        year,
        submitted_on: day(submitted_on),
        new_employment: 4120,
        four_ones_verified: 51_234,
        trained: 3310,
        narrative: "Targets met in all districts.".into(),
    }
}

fn overdue(city: &str, year: i32, due_on: &str) -> CityReportCommand {
    CityReportCommand::MarkOverdue {
        city: city.into(),
        year,
        due_on: day(due_on),
    }
}

fn submitted() -> Event {
    Event::CityAnnualReportSubmitted(pb::CityAnnualReportSubmitted {
        report_id: "RPT-230100-2024".into(),
        city: "230100".into(),
        year: 2024,
        submitted_on: pathway_domain::convert::date(day("2024-12-20")),
        ..Default::default()
    })
}

fn marked_overdue() -> Event {
    Event::CityAnnualReportOverdue(pb::CityAnnualReportOverdue {
        city: "230100".into(),
        year: 2024,
        due_on: pathway_domain::convert::date(day("2024-12-31")),
    })
}

#[test]
fn submit_report() {
    let cases: Vec<(Vec<Event>, CityReportCommand, &str, Expect)> = vec![
        (
            vec![],
            submit("230100", 2024, "2024-12-20"),
            "2024-12-20",
            expect![[r#"
            CityAnnualReportSubmitted CityAnnualReportSubmitted(CityAnnualReportSubmitted { report_id: "RPT-230100-2024", city: "230100", year: 2024, submitted_on: Some(Date { year: 2024, month: 12, day: 20 }), new_employment: 4120, four_ones_verified: 51234, trained: 3310, narrative: "Targets met in all districts." })
        "#]],
        ),
        (
            vec![],
            submit("232700", 2022, "2023-01-05"),
            "2023-01-05",
            expect![[r#"
            CityAnnualReportSubmitted CityAnnualReportSubmitted(CityAnnualReportSubmitted { report_id: "RPT-230100-2024", city: "232700", year: 2022, submitted_on: Some(Date { year: 2023, month: 1, day: 5 }), new_employment: 4120, four_ones_verified: 51234, trained: 3310, narrative: "Targets met in all districts." })
        "#]],
        ),
        // a county code is not a city
        (
            vec![],
            submit("230102", 2024, "2024-12-20"),
            "2024-12-20",
            expect![[r#"
            rejected: city: "230102" is not one of the 13 city codes (GB/T 2260, 13 prefectures of Heilongjiang)
        "#]],
        ),
        (
            vec![],
            submit("230000", 2024, "2024-12-20"),
            "2024-12-20",
            expect![[r#"
            rejected: city: "230000" is not one of the 13 city codes (GB/T 2260, 13 prefectures of Heilongjiang)
        "#]],
        ),
        (
            vec![],
            submit("230100", 2021, "2021-12-20"),
            "2024-12-20",
            expect![[r#"
            rejected: year: 2021 is not a plan year (2022..=2024) (R-RPT-1, policy plan years)
        "#]],
        ),
        (
            vec![],
            submit("230100", 2025, "2025-12-20"),
            "2025-12-20",
            expect![[r#"
            rejected: year: 2025 is not a plan year (2022..=2024) (R-RPT-1, policy plan years)
        "#]],
        ),
        (
            vec![],
            submit("230100", 2024, "2023-12-20"),
            "2024-12-20",
            expect![[r#"
            rejected: submitted_on: 2023-12-20 is before the reported year 2024 (R-RPT-1 year-end report)
        "#]],
        ),
        (
            vec![],
            submit("230100", 2024, "2024-12-21"),
            "2024-12-20",
            expect![[r#"
            rejected: submitted_on: 2024-12-21 is after today 2024-12-20 (no future dates)
        "#]],
        ),
        (
            vec![submitted()],
            submit("230100", 2024, "2024-12-21"),
            "2024-12-21",
            expect![[r#"
            rejected: command: report RPT-230100-2024 was already submitted (R-RPT-1 one report per city and year)
        "#]],
        ),
        // late, after the overdue mark, is still accepted
        (
            vec![marked_overdue()],
            submit("230100", 2024, "2025-01-10"),
            "2025-01-10",
            expect![[r#"
            CityAnnualReportSubmitted CityAnnualReportSubmitted(CityAnnualReportSubmitted { report_id: "RPT-230100-2024", city: "230100", year: 2024, submitted_on: Some(Date { year: 2025, month: 1, day: 10 }), new_employment: 4120, four_ones_verified: 51234, trained: 3310, narrative: "Targets met in all districts." })
        "#]],
        ),
        (
            vec![marked_overdue()],
            submit("230200", 2024, "2025-01-10"),
            "2025-01-10",
            expect![[r#"
            rejected: city: 230200 does not match this stream's city 230100 (stream report-<city>-<year>)
        "#]],
        ),
    ];
    for (given, when, today, expect) in cases {
        check::<CityReport>(&given, &when, today, expect);
    }
}

#[test]
fn mark_overdue() {
    let cases: Vec<(Vec<Event>, CityReportCommand, &str, Expect)> = vec![
        // not before the due date has passed
        (
            vec![],
            overdue("230100", 2024, "2024-12-31"),
            "2024-12-31",
            expect![[r#"
            rejected: due_on: today 2024-12-31 is not after the due date 2024-12-31 (R-RPT-1, policy city_report_due)
        "#]],
        ),
        (
            vec![],
            overdue("230100", 2024, "2024-12-31"),
            "2025-01-01",
            expect![[r#"
            CityAnnualReportOverdue CityAnnualReportOverdue(CityAnnualReportOverdue { city: "230100", year: 2024, due_on: Some(Date { year: 2024, month: 12, day: 31 }) })
        "#]],
        ),
        (
            vec![],
            overdue("230100", 2024, "2024-12-30"),
            "2025-01-01",
            expect![[r#"
            rejected: due_on: 2024-12-30 is not the due date 2024-12-31 (R-RPT-1, policy city_report_due)
        "#]],
        ),
        (
            vec![submitted()],
            overdue("230100", 2024, "2024-12-31"),
            "2025-01-01",
            expect![[r#"
            rejected: command: report RPT-230100-2024 was already submitted (R-RPT-1 one report per city and year)
        "#]],
        ),
        (
            vec![marked_overdue()],
            overdue("230100", 2024, "2024-12-31"),
            "2025-01-02",
            expect![[r#"
            rejected: command: the 2024 report of 230100 is already overdue (R-RPT-1 one overdue mark)
        "#]],
        ),
        (
            vec![],
            overdue("231300", 2024, "2024-12-31"),
            "2025-01-01",
            expect![[r#"
            rejected: city: "231300" is not one of the 13 city codes (GB/T 2260, 13 prefectures of Heilongjiang)
        "#]],
        ),
    ];
    for (given, when, today, expect) in cases {
        check::<CityReport>(&given, &when, today, expect);
    }
}

fn complete(completed_on: &str, reports_filed: u32) -> EvaluationCommand {
    EvaluationCommand::CompleteEvaluation {
        plan_id: "HLJ-2022-2024".into(),
        completed_on: day(completed_on),
        new_employment_total: 34_512,
        reports_filed,
        findings: "Target exceeded; Da Hinggan Ling below its share.".into(),
    }
}

#[test]
fn complete_evaluation() {
    let done = Event::ProvincialEvaluationCompleted(pb::ProvincialEvaluationCompleted {
        plan_id: "HLJ-2022-2024".into(),
        completed_on: pathway_domain::convert::date(day("2024-12-15")),
        new_employment_total: 34_512,
        target: 33_000,
        findings: "done".into(),
    });
    let cases: Vec<(Vec<Event>, EvaluationCommand, &str, Expect)> = vec![
        (
            vec![],
            complete("2024-12-01", 13),
            "2024-12-01",
            expect![[r#"
            ProvincialEvaluationCompleted ProvincialEvaluationCompleted(ProvincialEvaluationCompleted { plan_id: "HLJ-2022-2024", completed_on: Some(Date { year: 2024, month: 12, day: 1 }), new_employment_total: 34512, target: 33000, findings: "Target exceeded; Da Hinggan Ling below its share." })
        "#]],
        ),
        (
            vec![],
            complete("2024-11-30", 13),
            "2024-12-01",
            expect![[r#"
            rejected: completed_on: 2024-11-30 is before 2024-12-01, when the evaluation of the 2022–2024 plan opens (R-EVAL-1)
        "#]],
        ),
        // completed in the new year, it still evaluates the plan that ended
        (
            vec![],
            complete("2025-01-10", 13),
            "2025-01-10",
            expect![[r#"
            ProvincialEvaluationCompleted ProvincialEvaluationCompleted(ProvincialEvaluationCompleted { plan_id: "HLJ-2022-2024", completed_on: Some(Date { year: 2025, month: 1, day: 10 }), new_employment_total: 34512, target: 33000, findings: "Target exceeded; Da Hinggan Ling below its share." })
        "#]],
        ),
        (
            vec![],
            complete("2024-12-15", 12),
            "2024-12-15",
            expect![[r#"
            rejected: reports_filed: 12 city reports for 2024 filed, expected all 13 (R-EVAL-1, R-RPT-1)
        "#]],
        ),
        (
            vec![],
            complete("2024-12-15", 14),
            "2024-12-15",
            expect![[r#"
            rejected: reports_filed: 14 city reports for 2024 filed, expected all 13 (R-EVAL-1, R-RPT-1)
        "#]],
        ),
        (
            vec![],
            complete("2024-12-16", 13),
            "2024-12-15",
            expect![[r#"
            rejected: completed_on: 2024-12-16 is after today 2024-12-15 (no future dates)
        "#]],
        ),
        (
            vec![done],
            complete("2024-12-20", 13),
            "2024-12-20",
            expect![[r#"
            rejected: command: the evaluation of HLJ-2022-2024 is already complete (R-EVAL-1 one evaluation per plan)
        "#]],
        ),
    ];
    for (given, when, today, expect) in cases {
        check::<Evaluation>(&given, &when, today, expect);
    }
}

#[test]
fn governance_commands_read_from_json() {
    let json = r#"{"type":"mark_overdue","city":"230100","year":2024,"due_on":"2024-12-31"}"#;
    let cmd: CityReportCommand = serde_json::from_str(json).expect("an overdue mark");
    assert_eq!(cmd, overdue("230100", 2024, "2024-12-31"));
}

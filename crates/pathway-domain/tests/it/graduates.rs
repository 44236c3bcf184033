//! The graduate exchange: cohorts matched on a keyed hash, and the annual
//! ledger with its plan before services and outcome (R-GRAD-1).

use expect_test::{Expect, expect};
use pathway_domain::{
    Event,
    graduates::{
        Cohort, CohortCommand, EmploymentForm, GraduateLedger, GraduateLevel, GraduateMeasure,
        GraduateOutcome, LedgerCommand, UnmatchedReason,
    },
    pb,
};

use crate::check::{check, day};

const TODAY: &str = "2024-06-30";

fn received(count: u32) -> Event {
    Event::GraduateCohortReceived(pb::GraduateCohortReceived {
        batch_id: "EDU-2024-01".into(),
        year: 2024,
        record_count: count,
        received_on: pathway_domain::convert::date(day("2024-03-15")),
    })
}

fn matched(person: &str, hmac_byte: u8) -> Event {
    Event::GraduateMatched(pb::GraduateMatched {
        batch_id: "EDU-2024-01".into(),
        person_ref: person.into(),
        id_hmac: vec![hmac_byte; 32],
        residence_region: "230103".into(),
        ..Default::default()
    })
}

fn record_match(person: &str, hmac: &str) -> CohortCommand {
    CohortCommand::RecordMatch {
        person_ref: person.into(),
        id_hmac: hmac.into(),
        school: "Heilongjiang University".into(),
        major: "Accounting".into(),
        level: GraduateLevel::Bachelor,
        expected_graduation: day("2024-07-01"),
        residence_region: "230103".into(),
    }
}

fn unmatched(hash: &str) -> CohortCommand {
    CohortCommand::RecordUnmatched {
        record_hash: hash.into(),
        reason: UnmatchedReason::OutsideProvince,
    }
}

#[test]
fn receive_cohort() {
    let receive = |count| CohortCommand::ReceiveCohort {
        batch_id: "EDU-2024-01".into(),
        year: 2024,
        record_count: count,
    };
    let cases: Vec<(Vec<Event>, CohortCommand, Expect)> = vec![
        (
            vec![],
            receive(3),
            expect![[r#"
            GraduateCohortReceived GraduateCohortReceived(GraduateCohortReceived { batch_id: "EDU-2024-01", year: 2024, record_count: 3, received_on: Some(Date { year: 2024, month: 6, day: 30 }) })
        "#]],
        ),
        (
            vec![],
            receive(0),
            expect![[r#"
            rejected: record_count: 0 is not within 1..=100000 (limit cohort_records_max)
        "#]],
        ),
        (
            vec![received(3)],
            receive(3),
            expect![[r#"
            rejected: command: cohort EDU-2024-01 was already received (one receipt per cohort)
        "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<Cohort>(&given, &when, TODAY, expect);
    }
}

#[test]
fn resolve_cohort_records() {
    let hmac_a = "ab".repeat(32);
    let hmac_b = "CD".repeat(32);
    let cases: Vec<(Vec<Event>, CohortCommand, Expect)> = vec![
        (
            vec![],
            record_match("person-a", &hmac_a),
            expect![[r#"
            rejected: command: the cohort has not been received (R-GRAD-1)
        "#]],
        ),
        (
            vec![received(3)],
            record_match("person-a", &hmac_a),
            expect![[r#"
            GraduateMatched GraduateMatched(GraduateMatched { batch_id: "EDU-2024-01", person_ref: "person-a", id_hmac: [171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171], school: "Heilongjiang University", major: "Accounting", level: Bachelor, expected_graduation: Some(Date { year: 2024, month: 7, day: 1 }), residence_region: "230103" })
        "#]],
        ),
        (
            vec![received(3)],
            unmatched(&hmac_b),
            expect![[r#"
            GraduateUnmatched GraduateUnmatched(GraduateUnmatched { batch_id: "EDU-2024-01", record_hash: [205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205, 205], reason: OutsideProvince })
        "#]],
        ),
        (
            vec![received(3)],
            record_match("person-a", "abcd"),
            expect![[r#"
            rejected: id_hmac: has 4 characters, expected 64 (HMAC-SHA-256, 32 bytes as 64 hex digits)
        "#]],
        ),
        (
            vec![received(3)],
            record_match("person-a", &"zz".repeat(32)),
            expect![[r#"
            rejected: id_hmac: zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz is not hexadecimal (HMAC-SHA-256, 32 bytes as 64 hex digits)
        "#]],
        ),
        (
            vec![received(3)],
            CohortCommand::RecordMatch {
                person_ref: "person-a".into(),
                id_hmac: hmac_a.clone(),
                school: "Heilongjiang University".into(),
                major: "Accounting".into(),
                level: GraduateLevel::JuniorCollege,
                expected_graduation: day("2024-07-01"),
                residence_region: "110105".into(),
            },
            expect![[r#"
                rejected: residence_region: 110105 is not in Heilongjiang (GB/T 2260 23xxxx)
            "#]],
        ),
        // the same person or the same hash once per cohort
        (
            vec![received(3), matched("person-a", 0xab)],
            record_match("person-a", &hmac_b),
            expect![[r#"
            rejected: person_ref: person-a is already matched in this cohort (one match per person)
        "#]],
        ),
        (
            vec![received(3), matched("person-a", 0xab)],
            record_match("person-b", &hmac_a),
            expect![[r#"
            rejected: id_hmac: this hash is already matched in this cohort (one match per person)
        "#]],
        ),
        // matched + unmatched never exceed the records announced
        (
            vec![received(1), matched("person-a", 0xab)],
            unmatched(&hmac_b),
            expect![[r#"
            rejected: command: all 1 records of cohort EDU-2024-01 are already resolved (matched + unmatched <= record_count)
        "#]],
        ),
        (
            vec![received(1), matched("person-a", 0xab)],
            record_match("person-b", &hmac_b),
            expect![[r#"
            rejected: command: all 1 records of cohort EDU-2024-01 are already resolved (matched + unmatched <= record_count)
        "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<Cohort>(&given, &when, TODAY, expect);
    }
}

fn opened() -> Event {
    Event::GraduateLedgerOpened(pb::GraduateLedgerOpened {
        ledger_id: "L-1".into(),
        person_ref: "person-a".into(),
        year: 2024,
        city: "230100".into(),
        school: "Heilongjiang University".into(),
    })
}

fn planned(measures: &[pb::GraduateMeasure]) -> Event {
    Event::GraduateServicePlanSet(pb::GraduateServicePlanSet {
        ledger_id: "L-1".into(),
        person_ref: "person-a".into(),
        measures: measures.iter().map(|m| *m as i32).collect(),
        target_date: pathway_domain::convert::date(day("2024-12-31")),
    })
}

fn outcome_recorded() -> Event {
    Event::GraduateOutcomeRecorded(pb::GraduateOutcomeRecorded {
        ledger_id: "L-1".into(),
        person_ref: "person-a".into(),
        outcome: pb::GraduateOutcome::FurtherStudy as i32,
        employment_form: 0,
        recorded_on: pathway_domain::convert::date(day("2024-06-01")),
    })
}

fn open(year: i32, city: &str) -> LedgerCommand {
    LedgerCommand::OpenLedger {
        ledger_id: "L-1".into(),
        person_ref: "person-a".into(),
        year,
        city: city.into(),
        school: "Heilongjiang University".into(),
    }
}

#[test]
fn open_ledger() {
    let cases: Vec<(Vec<Event>, LedgerCommand, Expect)> = vec![
        // the city is the prefecture of the residence
        (
            vec![],
            open(2024, "230103"),
            expect![[r#"
            GraduateLedgerOpened GraduateLedgerOpened(GraduateLedgerOpened { ledger_id: "L-1", person_ref: "person-a", year: 2024, city: "230100", school: "Heilongjiang University" })
        "#]],
        ),
        (
            vec![],
            open(2021, "230103"),
            expect![[r#"
            rejected: year: 2021 is not a plan year (2022..=2024) (R-GRAD-1 annual ledger, policy plan years)
        "#]],
        ),
        (
            vec![],
            open(2025, "230103"),
            expect![[r#"
            rejected: year: 2025 is not a plan year (2022..=2024) (R-GRAD-1 annual ledger, policy plan years)
        "#]],
        ),
        (
            vec![],
            open(2024, "239900"),
            expect![[r#"
            rejected: city: 239900 is not in a Heilongjiang prefecture (239900 is none) (GB/T 2260 23xxxx)
        "#]],
        ),
        (
            vec![opened()],
            open(2024, "230103"),
            expect![[r#"
            rejected: command: ledger L-1 is already open (R-GRAD-1 one ledger per person and year)
        "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<GraduateLedger>(&given, &when, TODAY, expect);
    }
}

#[test]
fn set_plan() {
    use GraduateMeasure::*;
    let plan = |measures: Vec<GraduateMeasure>| LedgerCommand::SetPlan {
        measures,
        target_date: day("2024-12-31"),
    };
    let cases: Vec<(Vec<Event>, LedgerCommand, Expect)> = vec![
        (
            vec![opened()],
            plan(vec![Assessment, JobReferral]),
            expect![[r#"
            GraduateServicePlanSet GraduateServicePlanSet(GraduateServicePlanSet { ledger_id: "L-1", person_ref: "person-a", measures: [Assessment, JobReferral], target_date: Some(Date { year: 2024, month: 12, day: 31 }) })
        "#]],
        ),
        (
            vec![opened()],
            plan(vec![]),
            expect![[r#"
            rejected: measures: no measure given (R-GRAD-1)
        "#]],
        ),
        (
            vec![opened()],
            plan(vec![Training, Training]),
            expect![[r#"
            rejected: measures: Training is listed twice (R-GRAD-1)
        "#]],
        ),
        (
            vec![],
            plan(vec![Assessment]),
            expect![[r#"
            rejected: command: the ledger is not open (R-GRAD-1)
        "#]],
        ),
        // a plan may be revised until the outcome
        (
            vec![opened(), planned(&[pb::GraduateMeasure::Assessment])],
            plan(vec![SoePost]),
            expect![[r#"
            GraduateServicePlanSet GraduateServicePlanSet(GraduateServicePlanSet { ledger_id: "L-1", person_ref: "person-a", measures: [SoePost], target_date: Some(Date { year: 2024, month: 12, day: 31 }) })
        "#]],
        ),
        (
            vec![
                opened(),
                planned(&[pb::GraduateMeasure::Assessment]),
                outcome_recorded(),
            ],
            plan(vec![SoePost]),
            expect![[r#"
                rejected: command: ledger L-1 already has its year-end outcome (R-GRAD-1 one outcome per ledger)
            "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<GraduateLedger>(&given, &when, TODAY, expect);
    }
}

#[test]
fn deliver_service() {
    let deliver = |measure, on: &str| LedgerCommand::DeliverService {
        measure,
        provider_org: "Harbin DPF".into(),
        delivered_on: day(on),
    };
    let with_plan = vec![
        opened(),
        planned(&[
            pb::GraduateMeasure::Assessment,
            pb::GraduateMeasure::JobReferral,
        ]),
    ];
    let cases: Vec<(Vec<Event>, LedgerCommand, Expect)> = vec![
        (
            vec![opened()],
            deliver(GraduateMeasure::Assessment, "2024-05-01"),
            expect![[r#"
            rejected: command: ledger L-1 has no plan yet (R-GRAD-1 plan before services and outcome)
        "#]],
        ),
        (
            with_plan.clone(),
            deliver(GraduateMeasure::Assessment, "2024-05-01"),
            expect![[r#"
            GraduateServiceDelivered GraduateServiceDelivered(GraduateServiceDelivered { ledger_id: "L-1", person_ref: "person-a", measure: Assessment, provider_org: "Harbin DPF", delivered_on: Some(Date { year: 2024, month: 5, day: 1 }) })
        "#]],
        ),
        (
            with_plan.clone(),
            deliver(GraduateMeasure::SoePost, "2024-05-01"),
            expect![[r#"
            rejected: measure: SoePost is not a measure of the plan (R-GRAD-1 services follow the plan)
        "#]],
        ),
        (
            with_plan.clone(),
            deliver(GraduateMeasure::JobReferral, "2024-07-01"),
            expect![[r#"
            rejected: delivered_on: 2024-07-01 is after today 2024-06-30 (no future dates)
        "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<GraduateLedger>(&given, &when, TODAY, expect);
    }
}

#[test]
fn record_outcome() {
    let outcome = |outcome, employment_form| LedgerCommand::RecordOutcome {
        outcome,
        employment_form,
        recorded_on: day("2024-06-30"),
    };
    let with_plan = vec![opened(), planned(&[pb::GraduateMeasure::JobReferral])];
    let mut done = with_plan.clone();
    done.push(outcome_recorded());
    let cases: Vec<(Vec<Event>, LedgerCommand, Expect)> = vec![
        // outcome before a plan
        (
            vec![opened()],
            outcome(GraduateOutcome::NotYetEmployed, None),
            expect![[r#"
            rejected: command: ledger L-1 has no plan yet (R-GRAD-1 plan before services and outcome)
        "#]],
        ),
        (
            vec![],
            outcome(GraduateOutcome::NotYetEmployed, None),
            expect![[r#"
            rejected: command: the ledger is not open (R-GRAD-1)
        "#]],
        ),
        (
            with_plan.clone(),
            outcome(GraduateOutcome::Employed, Some(EmploymentForm::Quota)),
            expect![[r#"
                GraduateOutcomeRecorded GraduateOutcomeRecorded(GraduateOutcomeRecorded { ledger_id: "L-1", person_ref: "person-a", outcome: Employed, employment_form: Quota, recorded_on: Some(Date { year: 2024, month: 6, day: 30 }) })
            "#]],
        ),
        (
            with_plan.clone(),
            outcome(GraduateOutcome::NoIntention, None),
            expect![[r#"
            GraduateOutcomeRecorded GraduateOutcomeRecorded(GraduateOutcomeRecorded { ledger_id: "L-1", person_ref: "person-a", outcome: NoIntention, employment_form: Unspecified, recorded_on: Some(Date { year: 2024, month: 6, day: 30 }) })
        "#]],
        ),
        (
            with_plan.clone(),
            outcome(GraduateOutcome::Employed, None),
            expect![[r#"
            rejected: employment_form: is missing for an employed graduate (R-GRAD-1)
        "#]],
        ),
        (
            with_plan.clone(),
            outcome(
                GraduateOutcome::FurtherStudy,
                Some(EmploymentForm::Flexible),
            ),
            expect![[r#"
                rejected: employment_form: Flexible given for outcome FurtherStudy (R-GRAD-1)
            "#]],
        ),
        // exactly one outcome per ledger
        (
            done.clone(),
            outcome(GraduateOutcome::Employed, Some(EmploymentForm::Quota)),
            expect![[r#"
            rejected: command: ledger L-1 already has its year-end outcome (R-GRAD-1 one outcome per ledger)
        "#]],
        ),
        (
            done,
            LedgerCommand::DeliverService {
                measure: GraduateMeasure::JobReferral,
                provider_org: "Harbin DPF".into(),
                delivered_on: day("2024-06-30"),
            },
            expect![[r#"
                rejected: command: ledger L-1 already has its year-end outcome (R-GRAD-1 one outcome per ledger)
            "#]],
        ),
        (
            with_plan,
            LedgerCommand::RecordOutcome {
                outcome: GraduateOutcome::NotYetEmployed,
                employment_form: None,
                recorded_on: day("2024-07-01"),
            },
            expect![[r#"
                rejected: recorded_on: 2024-07-01 is after today 2024-06-30 (no future dates)
            "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<GraduateLedger>(&given, &when, TODAY, expect);
    }
}

fn outcome_overdue() -> Event {
    Event::GraduateOutcomeOverdue(pb::GraduateOutcomeOverdue {
        ledger_id: "L-1".into(),
        person_ref: "person-a".into(),
        year: 2024,
        due_on: pathway_domain::convert::date(day("2024-12-31")),
    })
}

#[test]
fn mark_outcome_overdue() {
    let mark = |due_on| LedgerCommand::MarkOutcomeOverdue {
        due_on: day(due_on),
    };
    let with_plan = vec![opened(), planned(&[pb::GraduateMeasure::JobReferral])];
    let mut done = with_plan.clone();
    done.push(outcome_recorded());
    let mut overdue = with_plan.clone();
    overdue.push(outcome_overdue());
    let cases: Vec<(Vec<Event>, LedgerCommand, &str, Expect)> = vec![
        // the day after the due date, no outcome: overdue
        (
            with_plan.clone(),
            mark("2024-12-31"),
            "2025-01-01",
            expect![[r#"
                GraduateOutcomeOverdue GraduateOutcomeOverdue(GraduateOutcomeOverdue { ledger_id: "L-1", person_ref: "person-a", year: 2024, due_on: Some(Date { year: 2024, month: 12, day: 31 }) })
            "#]],
        ),
        // a ledger without a plan is overdue just the same
        (
            vec![opened()],
            mark("2024-12-31"),
            "2025-03-01",
            expect![[r#"
            GraduateOutcomeOverdue GraduateOutcomeOverdue(GraduateOutcomeOverdue { ledger_id: "L-1", person_ref: "person-a", year: 2024, due_on: Some(Date { year: 2024, month: 12, day: 31 }) })
        "#]],
        ),
        // on the due date itself: not yet
        (
            with_plan.clone(),
            mark("2024-12-31"),
            "2024-12-31",
            expect![[r#"
                rejected: due_on: today 2024-12-31 is not after the due date 2024-12-31 (R-GRAD-1 outcome by year-end)
            "#]],
        ),
        // the due date is the year-end of the ledger's year
        (
            with_plan.clone(),
            mark("2024-12-30"),
            "2025-01-01",
            expect![[r#"
                rejected: due_on: 2024-12-30 is not the due date 2024-12-31 (R-GRAD-1 outcome by year-end)
            "#]],
        ),
        // an outcome recorded: never overdue
        (
            done,
            mark("2024-12-31"),
            "2025-01-01",
            expect![[r#"
            rejected: command: ledger L-1 already has its year-end outcome (R-GRAD-1 one outcome per ledger)
        "#]],
        ),
        // once
        (
            overdue.clone(),
            mark("2024-12-31"),
            "2025-01-02",
            expect![[r#"
            rejected: command: the outcome of ledger L-1 is already overdue (R-GRAD-1 one overdue mark)
        "#]],
        ),
        (
            vec![],
            mark("2024-12-31"),
            "2025-01-01",
            expect![[r#"
            rejected: command: the ledger is not open (R-GRAD-1)
        "#]],
        ),
        // a late outcome is still recorded
        (
            overdue,
            LedgerCommand::RecordOutcome {
                outcome: GraduateOutcome::NotYetEmployed,
                employment_form: None,
                recorded_on: day("2025-01-05"),
            },
            "2025-01-05",
            expect![[r#"
                GraduateOutcomeRecorded GraduateOutcomeRecorded(GraduateOutcomeRecorded { ledger_id: "L-1", person_ref: "person-a", outcome: NotYetEmployed, employment_form: Unspecified, recorded_on: Some(Date { year: 2025, month: 1, day: 5 }) })
            "#]],
        ),
    ];
    for (given, when, today, expect) in cases {
        check::<GraduateLedger>(&given, &when, today, expect);
    }
}

#[test]
fn graduate_commands_read_from_json() {
    let json = r#"{"type":"record_outcome","outcome":"employed","employment_form":"public_welfare_post","recorded_on":"2024-12-20"}"#;
    let cmd: LedgerCommand = serde_json::from_str(json).expect("an outcome");
    assert_eq!(
        cmd,
        LedgerCommand::RecordOutcome {
            outcome: GraduateOutcome::Employed,
            employment_form: Some(EmploymentForm::PublicWelfarePost),
            recorded_on: day("2024-12-20"),
        }
    );
    let json =
        r#"{"type":"set_plan","measures":["assessment","soe_post"],"target_date":"2024-12-31"}"#;
    let cmd: LedgerCommand = serde_json::from_str(json).expect("a plan");
    assert!(matches!(cmd, LedgerCommand::SetPlan { measures, .. } if measures.len() == 2));
}

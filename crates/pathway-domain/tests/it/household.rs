//! Households and the low-income benefit phase-out (R-LOW-1).

use expect_test::expect;
use pathway_domain::{
    Event,
    household::{
        ApproveExtension, AssertLowIncomeStatus, BenefitMode, CancelPhaseOut, CompletePhaseOut,
        Household, HouseholdCommand as C, LowIncomeStatus, PhaseOutCancelReason, ReassessIncome,
        ReassessmentTrigger, RequestReassessment, StartPhaseOut,
    },
};

use crate::check::{check, day, history, history_after};

const H: &str = "h-1";
/// Dibao standard, fen per person per month; the margin threshold is 1.5×.
const STANDARD: i64 = 70_000;

fn assert_status(status: LowIncomeStatus) -> C {
    C::AssertLowIncomeStatus(AssertLowIncomeStatus {
        household_ref: H.to_owned(),
        members: vec!["p-1".to_owned(), "p-2".to_owned()],
        status,
        effective_on: day("2023-01-01"),
        asserted_by: "Daoli street office".to_owned(),
    })
}

fn reassess(income_fen: i64, meets_edge: bool, on: &str) -> ReassessIncome {
    ReassessIncome {
        household_ref: H.to_owned(),
        per_capita_income_fen: income_fen,
        dibao_standard_fen: STANDARD,
        meets_edge_criteria: meets_edge,
        assessed_by: "Daoli street office".to_owned(),
        assessed_on: day(on),
        phase_out_id: "po-1".to_owned(),
        benefit_mode: BenefitMode::Full,
    }
}

fn start(id: &str, from: &str, to: &str) -> C {
    C::StartPhaseOut(StartPhaseOut {
        household_ref: H.to_owned(),
        phase_out_id: id.to_owned(),
        start_date: day(from),
        planned_end_date: day(to),
        benefit_mode: BenefitMode::Tapered,
    })
}

fn extend(to: &str, justification: &str) -> C {
    C::ApproveExtension(ApproveExtension {
        household_ref: H.to_owned(),
        phase_out_id: "po-1".to_owned(),
        new_end_date: day(to),
        justification: justification.to_owned(),
        approved_by: "Harbin Civil Affairs Bureau".to_owned(),
    })
}

fn complete(on: &str) -> C {
    C::CompletePhaseOut(CompletePhaseOut {
        household_ref: H.to_owned(),
        phase_out_id: "po-1".to_owned(),
        on: day(on),
    })
}

fn cancel(reason: PhaseOutCancelReason, on: &str) -> C {
    C::CancelPhaseOut(CancelPhaseOut {
        household_ref: H.to_owned(),
        phase_out_id: "po-1".to_owned(),
        reason,
        on: day(on),
    })
}

fn dibao() -> Vec<Event> {
    history::<Household>(&[(assert_status(LowIncomeStatus::Dibao), "2023-01-01")])
}

/// A dibao household with phase-out po-1 started by the reassessment of 2023-03-01.
fn in_phase_out() -> Vec<Event> {
    history::<Household>(&[
        (assert_status(LowIncomeStatus::Dibao), "2023-01-01"),
        (
            C::ReassessIncome(reassess(90_000, true, "2023-03-01")),
            "2023-03-01",
        ),
    ])
}

#[test]
fn status_is_asserted_with_members() {
    check::<Household>(
        &[],
        &assert_status(LowIncomeStatus::Dibao),
        "2023-01-01",
        expect![[r#"
        LowIncomeStatusAsserted household_ref=h-1 members=["p-1", "p-2"] status=Dibao on=2023-01-01 by=Daoli street office
    "#]],
    );
    let C::AssertLowIncomeStatus(base) = assert_status(LowIncomeStatus::Dibao) else {
        unreachable!()
    };
    let empty = AssertLowIncomeStatus {
        members: vec![],
        ..base.clone()
    };
    check::<Household>(
        &[],
        &C::AssertLowIncomeStatus(empty),
        "2023-01-01",
        expect![[r#"
        rejected: members: 0 members, expected 1 to 30 (assistance: a household has members)
    "#]],
    );
    let twice = AssertLowIncomeStatus {
        members: vec!["p-1".to_owned(), "p-1".to_owned()],
        ..base
    };
    check::<Household>(
        &[],
        &C::AssertLowIncomeStatus(twice),
        "2023-01-01",
        expect![[r#"
        rejected: members: p-1 is listed twice (assistance: each member once)
    "#]],
    );
}

#[test]
fn nothing_before_the_status_is_asserted() {
    check::<Household>(
        &[],
        &C::ReassessIncome(reassess(90_000, true, "2023-03-01")),
        "2023-03-01",
        expect![[r#"
        rejected: household_ref: household h-1 has no low-income status asserted (assistance: Civil Affairs asserts the status first)
    "#]],
    );
}

#[test]
fn reassessment_requested_by_a_placement_names_it() {
    let request = |placement: Option<&str>| {
        C::RequestReassessment(RequestReassessment {
            household_ref: H.to_owned(),
            trigger: ReassessmentTrigger::Placement,
            triggering_placement_id: placement.map(str::to_owned),
            requested_on: day("2023-02-20"),
        })
    };
    check::<Household>(
        &dibao(),
        &request(Some("pl-1")),
        "2023-02-20",
        expect![[r#"
        HouseholdReassessmentRequested trigger=Placement placement=pl-1 on=2023-02-20
    "#]],
    );
    check::<Household>(
        &dibao(),
        &request(None),
        "2023-02-20",
        expect![[r#"
            rejected: triggering_placement_id: is missing for trigger Placement (saga: a placement or job loss names its placement, §4.6)
        "#]],
    );
}

#[test]
fn income_at_or_below_standard_keeps_the_benefit() {
    check::<Household>(
        &dibao(),
        &C::ReassessIncome(reassess(STANDARD, true, "2023-03-01")),
        "2023-03-01",
        expect![[r#"
        HouseholdIncomeReassessed income=70000 standard=70000 edge_threshold=105000 meets_edge=true by=Daoli street office on=2023-03-01
        DibaoBenefitContinued on=2023-03-01
    "#]],
    );
}

#[test]
fn income_above_standard_within_the_margin_starts_a_12_month_phase_out() {
    check::<Household>(
        &dibao(),
        &C::ReassessIncome(reassess(STANDARD + 1, true, "2023-03-01")),
        "2023-03-01",
        expect![[r#"
        HouseholdIncomeReassessed income=70001 standard=70000 edge_threshold=105000 meets_edge=true by=Daoli street office on=2023-03-01
        PhaseOutStarted id=po-1 2023-03-01..2024-03-01 mode=Full policy=HLJ-2022
    "#]],
    );
    // threshold 1.5 × 70_000 = 105_000: one fen below it is within the margin
    check::<Household>(
        &dibao(),
        &C::ReassessIncome(reassess(104_999, true, "2023-03-31")),
        "2023-03-31",
        expect![[r#"
        HouseholdIncomeReassessed income=104999 standard=70000 edge_threshold=105000 meets_edge=true by=Daoli street office on=2023-03-31
        PhaseOutStarted id=po-1 2023-03-31..2024-03-31 mode=Full policy=HLJ-2022
    "#]],
    );
}

#[test]
fn income_at_the_threshold_or_failing_the_margin_criteria_ends_the_benefit() {
    check::<Household>(
        &dibao(),
        &C::ReassessIncome(reassess(105_000, true, "2023-03-01")),
        "2023-03-01",
        expect![[r#"
        HouseholdIncomeReassessed income=105000 standard=70000 edge_threshold=105000 meets_edge=true by=Daoli street office on=2023-03-01
        DibaoBenefitTerminated on=2023-03-01
    "#]],
    );
    check::<Household>(
        &dibao(),
        &C::ReassessIncome(reassess(90_000, false, "2023-03-01")),
        "2023-03-01",
        expect![[r#"
        HouseholdIncomeReassessed income=90000 standard=70000 edge_threshold=105000 meets_edge=false by=Daoli street office on=2023-03-01
        DibaoBenefitTerminated on=2023-03-01
    "#]],
    );
}

#[test]
fn edge_threshold_is_rounded_down_in_fen() {
    let odd = ReassessIncome {
        dibao_standard_fen: 70_001,
        ..reassess(60_000, true, "2023-03-01")
    };
    check::<Household>(
        &dibao(),
        &C::ReassessIncome(odd),
        "2023-03-01",
        expect![[r#"
        HouseholdIncomeReassessed income=60000 standard=70001 edge_threshold=105001 meets_edge=true by=Daoli street office on=2023-03-01
        DibaoBenefitContinued on=2023-03-01
    "#]],
    );
}

#[test]
fn a_household_that_is_not_dibao_is_only_reassessed() {
    let margin = history::<Household>(&[(assert_status(LowIncomeStatus::Margin), "2023-01-01")]);
    check::<Household>(
        &margin,
        &C::ReassessIncome(reassess(90_000, true, "2023-03-01")),
        "2023-03-01",
        expect![[r#"
        HouseholdIncomeReassessed income=90000 standard=70000 edge_threshold=105000 meets_edge=true by=Daoli street office on=2023-03-01
    "#]],
    );
}

#[test]
fn reassessment_rejects_bad_amounts() {
    let zero = ReassessIncome {
        dibao_standard_fen: 0,
        ..reassess(90_000, true, "2023-03-01")
    };
    check::<Household>(
        &dibao(),
        &C::ReassessIncome(zero),
        "2023-03-01",
        expect![[r#"
        rejected: dibao_standard_fen: is 0 fen (dibao standard is a positive amount)
    "#]],
    );
    check::<Household>(
        &dibao(),
        &C::ReassessIncome(reassess(-5, true, "2023-03-01")),
        "2023-03-01",
        expect![[r#"
        rejected: per_capita_income_fen: -5 fen is negative (money in fen)
    "#]],
    );
    check::<Household>(
        &dibao(),
        &C::ReassessIncome(reassess(90_000, true, "2023-03-02")),
        "2023-03-01",
        expect![[r#"
        rejected: assessed_on: 2023-03-02 is after today (2023-03-01) (facts are recorded when they happened, not ahead)
    "#]],
    );
}

#[test]
fn income_below_standard_cancels_the_phase_out() {
    check::<Household>(
        &in_phase_out(),
        &C::ReassessIncome(reassess(65_000, true, "2023-07-01")),
        "2023-07-01",
        expect![[r#"
        HouseholdIncomeReassessed income=65000 standard=70000 edge_threshold=105000 meets_edge=true by=Daoli street office on=2023-07-01
        PhaseOutCancelled id=po-1 reason=IncomeBelowStandard on=2023-07-01
        DibaoBenefitContinued on=2023-07-01
    "#]],
    );
    // above the standard again: recorded, the phase-out runs on
    check::<Household>(
        &in_phase_out(),
        &C::ReassessIncome(reassess(120_000, false, "2023-07-01")),
        "2023-07-01",
        expect![[r#"
        HouseholdIncomeReassessed income=120000 standard=70000 edge_threshold=105000 meets_edge=false by=Daoli street office on=2023-07-01
    "#]],
    );
}

#[test]
fn explicit_planned_end_exactly_12_months_in_12_months_and_a_day_out() {
    let assessed = history::<Household>(&[
        (assert_status(LowIncomeStatus::Dibao), "2023-01-01"),
        (assert_status(LowIncomeStatus::Margin), "2023-01-01"),
        (
            C::ReassessIncome(reassess(90_000, true, "2023-03-01")),
            "2023-03-01",
        ),
        (assert_status(LowIncomeStatus::Dibao), "2023-03-01"),
    ]);
    check::<Household>(
        &assessed,
        &start("po-9", "2023-03-01", "2024-03-01"),
        "2023-03-01",
        expect![[r#"
        PhaseOutStarted id=po-9 2023-03-01..2024-03-01 mode=Tapered policy=HLJ-2022
    "#]],
    );
    check::<Household>(
        &assessed,
        &start("po-9", "2023-03-01", "2024-03-02"),
        "2023-03-01",
        expect![[r#"
        rejected: planned_end_date: 2024-03-02 is after 2024-03-01, 12 months from the start 2023-03-01; longer needs an approved extension (policy dibao.phase_out_max_months)
    "#]],
    );
    check::<Household>(
        &assessed,
        &start("po-9", "2023-04-01", "2023-10-01"),
        "2023-03-01",
        expect![[r#"
        PhaseOutStarted id=po-9 2023-04-01..2023-10-01 mode=Tapered policy=HLJ-2022
    "#]],
    );
    check::<Household>(
        &assessed,
        &start("po-9", "2023-03-01", "2023-03-01"),
        "2023-03-01",
        expect![[r#"
        rejected: planned_end_date: 2023-03-01 is not after start_date 2023-03-01 (phase-out ends after it starts)
    "#]],
    );
    check::<Household>(
        &assessed,
        &start("po-9", "2023-02-28", "2023-12-31"),
        "2023-03-01",
        expect![[r#"
            rejected: start_date: 2023-02-28 is before the reassessment on 2023-03-01 (saga: a phase-out follows its reassessment, §4.6)
        "#]],
    );
}

#[test]
fn a_phase_out_needs_a_reassessment_within_the_margin() {
    check::<Household>(
        &dibao(),
        &start("po-9", "2023-03-01", "2024-03-01"),
        "2023-03-01",
        expect![[r#"
        rejected: command: the latest reassessment does not show income above the standard within the margin (R-LOW-1 start only above the standard and meeting the margin criteria)
    "#]],
    );
    let above = history::<Household>(&[
        (assert_status(LowIncomeStatus::Margin), "2023-01-01"),
        (
            C::ReassessIncome(reassess(105_000, true, "2023-03-01")),
            "2023-03-01",
        ),
        (assert_status(LowIncomeStatus::Dibao), "2023-03-01"),
    ]);
    check::<Household>(
        &above,
        &start("po-9", "2023-03-01", "2024-03-01"),
        "2023-03-01",
        expect![[r#"
        rejected: command: the latest reassessment does not show income above the standard within the margin (R-LOW-1 start only above the standard and meeting the margin criteria)
    "#]],
    );
}

#[test]
fn a_second_phase_out_is_rejected() {
    check::<Household>(
        &in_phase_out(),
        &start("po-2", "2023-04-01", "2024-01-01"),
        "2023-04-01",
        expect![[r#"
            rejected: phase_out_id: phase-out po-1 is already active until 2024-03-01 (R-LOW-1 one active phase-out per household, §4.5)
        "#]],
    );
    // the same id cannot be reused after the first ended
    let cancelled = [
        in_phase_out(),
        history_after::<Household>(
            &in_phase_out(),
            &[(
                cancel(PhaseOutCancelReason::HouseholdChanged, "2023-05-01"),
                "2023-05-01",
            )],
        ),
    ]
    .concat();
    check::<Household>(
        &cancelled,
        &start("po-1", "2023-05-01", "2024-01-01"),
        "2023-05-01",
        expect![[r#"
        rejected: phase_out_id: phase-out po-1 was already used (phase-out ids are unique)
    "#]],
    );
}

#[test]
fn extension_is_approved_beyond_12_months() {
    check::<Household>(
        &in_phase_out(),
        &extend("2024-09-01", "member in hospital, employment unstable"),
        "2024-01-15",
        expect![[r#"
        PhaseOutExtensionApproved id=po-1 new_end=2024-09-01 justification="member in hospital, employment unstable" by=Harbin Civil Affairs Bureau
    "#]],
    );
    check::<Household>(
        &in_phase_out(),
        &extend("2024-09-01", " "),
        "2024-01-15",
        expect![[r#"
        rejected: justification: is empty (text)
    "#]],
    );
    check::<Household>(
        &in_phase_out(),
        &extend("2024-03-01", "no change"),
        "2024-01-15",
        expect![[r#"
        rejected: new_end_date: 2024-03-01 is not after the planned end 2024-03-01 (R-LOW-1 an extension moves the end later)
    "#]],
    );
    let no_approver = match extend("2024-09-01", "reason") {
        C::ApproveExtension(a) => C::ApproveExtension(ApproveExtension {
            approved_by: String::new(),
            ..a
        }),
        _ => unreachable!(),
    };
    check::<Household>(
        &in_phase_out(),
        &no_approver,
        "2024-01-15",
        expect![[r#"
        rejected: approved_by: is empty (text)
    "#]],
    );
}

#[test]
fn completion_never_before_the_planned_end() {
    check::<Household>(
        &in_phase_out(),
        &complete("2024-02-29"),
        "2024-02-29",
        expect![[r#"
        rejected: on: 2024-02-29 is before the planned end 2024-03-01 (R-LOW-1 a phase-out completes at its planned end, never early)
    "#]],
    );
    check::<Household>(
        &in_phase_out(),
        &complete("2024-03-01"),
        "2024-03-01",
        expect![[r#"
        BenefitPhasedOut id=po-1 end=2024-03-01 resulting=Margin
    "#]],
    );
    // not ahead of today
    check::<Household>(
        &in_phase_out(),
        &complete("2024-03-01"),
        "2024-02-29",
        expect![[r#"
        rejected: on: 2024-03-01 is after today (2024-02-29) (facts are recorded when they happened, not ahead)
    "#]],
    );
    // after an extension the original end is too early
    let extended = [
        in_phase_out(),
        history_after::<Household>(
            &in_phase_out(),
            &[(extend("2024-09-01", "employment unstable"), "2024-01-15")],
        ),
    ]
    .concat();
    check::<Household>(
        &extended,
        &complete("2024-03-01"),
        "2024-03-01",
        expect![[r#"
        rejected: on: 2024-03-01 is before the planned end 2024-09-01 (R-LOW-1 a phase-out completes at its planned end, never early)
    "#]],
    );
    check::<Household>(
        &extended,
        &complete("2024-09-02"),
        "2024-09-02",
        expect![[r#"
        BenefitPhasedOut id=po-1 end=2024-09-02 resulting=Margin
    "#]],
    );
}

#[test]
fn completion_after_income_rose_above_the_margin_leaves_no_status() {
    let rose = [
        in_phase_out(),
        history_after::<Household>(
            &in_phase_out(),
            &[(
                C::ReassessIncome(reassess(150_000, true, "2023-09-01")),
                "2023-09-01",
            )],
        ),
    ]
    .concat();
    check::<Household>(
        &rose,
        &complete("2024-03-01"),
        "2024-03-01",
        expect![[r#"
        BenefitPhasedOut id=po-1 end=2024-03-01 resulting=None
    "#]],
    );
}

#[test]
fn cancellation_on_job_loss_continues_the_benefit() {
    check::<Household>(
        &in_phase_out(),
        &cancel(PhaseOutCancelReason::JobLost, "2023-06-01"),
        "2023-06-01",
        expect![[r#"
        PhaseOutCancelled id=po-1 reason=JobLost on=2023-06-01
        DibaoBenefitContinued on=2023-06-01
    "#]],
    );
    check::<Household>(
        &in_phase_out(),
        &cancel(PhaseOutCancelReason::JobLost, "2023-02-01"),
        "2023-06-01",
        expect![[r#"
        rejected: on: 2023-02-01 is before the start 2023-03-01 (dates in order)
    "#]],
    );
    check::<Household>(
        &dibao(),
        &cancel(PhaseOutCancelReason::JobLost, "2023-06-01"),
        "2023-06-01",
        expect![[r#"
        rejected: phase_out_id: no phase-out is active, po-1 is not (R-LOW-1 phase-out active)
    "#]],
    );
    let wrong = C::CancelPhaseOut(CancelPhaseOut {
        household_ref: H.to_owned(),
        phase_out_id: "po-7".to_owned(),
        reason: PhaseOutCancelReason::JobLost,
        on: day("2023-06-01"),
    });
    check::<Household>(
        &in_phase_out(),
        &wrong,
        "2023-06-01",
        expect![[r#"
        rejected: phase_out_id: po-7 is not the active phase-out (po-1) (R-LOW-1 phase-out active)
    "#]],
    );
}

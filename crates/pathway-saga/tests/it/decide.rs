//! Given/when/then tests of the phase-out saga's decisions: given the inputs
//! the saga has handled, when one more arrives, then the commands it issues
//! and the timer changes it asks for.

use chrono::{DateTime, NaiveDate, Utc};
use expect_test::{Expect, expect};
use pathway_domain::{
    Event,
    convert::{date, personal_int},
    pb,
};
use pathway_saga::{
    Input, InputKind,
    phaseout::{DEADLINE, PhaseOutState, decide},
};
use uuid::Uuid;

use crate::support::{noon, ymd};

/// An input to the saga.
#[allow(clippy::large_enum_variant)] // test data, built a few at a time
enum In {
    Event(Event),
    Deadline,
}

fn asserted(status: pb::LowIncomeStatus) -> In {
    In::Event(Event::LowIncomeStatusAsserted(
        pb::LowIncomeStatusAsserted {
            household_ref: "H1".into(),
            member_person_refs: vec!["P1".into(), "P2".into()],
            status: personal_int(status as i64),
            effective_on: date(ymd(2025, 1, 2)),
            asserted_by: "ca".into(),
        },
    ))
}

fn placed(person: &str, placement: &str) -> In {
    In::Event(Event::PersonPlaced(pb::PersonPlaced {
        placement_id: placement.into(),
        person_ref: person.into(),
        start_date: date(ymd(2025, 3, 1)),
        ..Default::default()
    }))
}

fn ended(person: &str, placement: &str) -> In {
    In::Event(Event::PlacementEnded(pb::PlacementEnded {
        placement_id: placement.into(),
        person_ref: person.into(),
        end_date: date(ymd(2025, 6, 1)),
        reason: 1,
    }))
}

fn started(end: NaiveDate) -> In {
    In::Event(Event::PhaseOutStarted(pb::PhaseOutStarted {
        household_ref: "H1".into(),
        phase_out_id: "PO1".into(),
        start_date: date(ymd(2025, 3, 10)),
        planned_end_date: date(end),
        benefit_mode: 1,
        policy_version: "HLJ-2025".into(),
        member_person_refs: vec!["P1".into(), "P2".into()],
    }))
}

fn extended(end: NaiveDate) -> In {
    In::Event(Event::PhaseOutExtensionApproved(
        pb::PhaseOutExtensionApproved {
            household_ref: "H1".into(),
            phase_out_id: "PO1".into(),
            new_end_date: date(end),
            justification: "j".into(),
            approved_by: "a".into(),
            member_person_refs: vec![],
        },
    ))
}

fn cancelled() -> In {
    In::Event(Event::PhaseOutCancelled(pb::PhaseOutCancelled {
        household_ref: "H1".into(),
        phase_out_id: "PO1".into(),
        reason: 2,
        cancelled_on: date(ymd(2025, 6, 2)),
        member_person_refs: vec![],
    }))
}

fn phased_out() -> In {
    In::Event(Event::BenefitPhasedOut(pb::BenefitPhasedOut {
        household_ref: "H1".into(),
        phase_out_id: "PO1".into(),
        end_date: date(ymd(2026, 3, 10)),
        resulting_status: 2,
        member_person_refs: vec![],
    }))
}

fn terminated() -> In {
    In::Event(Event::DibaoBenefitTerminated(pb::DibaoBenefitTerminated {
        household_ref: "H1".into(),
        effective_on: date(ymd(2025, 3, 10)),
    }))
}

fn step(state: &PhaseOutState, input: &In, position: u64, at: DateTime<Utc>) -> String {
    let kind = match input {
        In::Event(e) => InputKind::Event(e),
        In::Deadline => InputKind::Timer {
            timer: DEADLINE,
            due_at: at,
        },
    };
    let t = decide(
        state,
        &Input {
            kind,
            key: "H1",
            position,
            event_id: Uuid::nil(),
            at,
        },
    );
    let mut out = String::new();
    for c in &t.commands {
        out.push_str(&format!(
            "command {}\n",
            serde_json::to_string(c).expect("encodes")
        ));
    }
    for r in &t.timers {
        out.push_str(&format!("timer {r:?}\n"));
    }
    if out.is_empty() {
        out.push_str("nothing\n");
    }
    out
}

/// Given `given` handled in order, when `when` arrives at `at`: `expect`.
fn check(given: Vec<In>, when: In, at: DateTime<Utc>, expect: Expect) {
    let mut state = PhaseOutState::default();
    for (i, input) in given.iter().enumerate() {
        let kind = match input {
            In::Event(e) => InputKind::Event(e),
            In::Deadline => InputKind::Timer {
                timer: DEADLINE,
                due_at: at,
            },
        };
        state = decide(
            &state,
            &Input {
                kind,
                key: "H1",
                position: i as u64 + 1,
                event_id: Uuid::nil(),
                at: noon(ymd(2025, 3, 1)),
            },
        )
        .state;
    }
    expect.assert_eq(&step(&state, &when, given.len() as u64 + 1, at));
}

#[test]
fn placement_of_a_member_of_a_dibao_household_requests_reassessment() {
    check(
        vec![asserted(pb::LowIncomeStatus::Dibao)],
        placed("P1", "PL1"),
        noon(ymd(2025, 3, 2)),
        expect![[r#"
            command {"type":"request_reassessment","household_ref":"H1","trigger":"placement","triggering_placement_id":"PL1","requested_on":"2025-03-02"}
        "#]],
    );
}

#[test]
fn placement_of_a_non_member_does_nothing() {
    check(
        vec![asserted(pb::LowIncomeStatus::Dibao)],
        placed("P9", "PL1"),
        noon(ymd(2025, 3, 2)),
        expect![[r#"
            nothing
        "#]],
    );
}

#[test]
fn placement_in_a_household_without_dibao_does_nothing() {
    check(
        vec![asserted(pb::LowIncomeStatus::Margin)],
        placed("P1", "PL1"),
        noon(ymd(2025, 3, 2)),
        expect![[r#"
            nothing
        "#]],
    );
    check(
        vec![asserted(pb::LowIncomeStatus::Dibao), terminated()],
        placed("P1", "PL1"),
        noon(ymd(2025, 3, 2)),
        expect![[r#"
            nothing
        "#]],
    );
}

#[test]
fn placement_during_a_phase_out_does_nothing() {
    check(
        vec![
            asserted(pb::LowIncomeStatus::Dibao),
            started(ymd(2026, 3, 10)),
        ],
        placed("P2", "PL2"),
        noon(ymd(2025, 4, 2)),
        expect![[r#"
            nothing
        "#]],
    );
}

#[test]
fn phase_out_started_schedules_the_deadline_at_the_planned_end_in_the_province() {
    check(
        vec![asserted(pb::LowIncomeStatus::Dibao), placed("P1", "PL1")],
        started(ymd(2026, 3, 10)),
        noon(ymd(2025, 3, 10)),
        expect![[r#"
            timer Schedule { timer: "deadline", due_at: 2026-03-09T16:00:00Z }
        "#]],
    );
}

#[test]
fn an_approved_extension_reschedules_the_deadline() {
    check(
        vec![
            asserted(pb::LowIncomeStatus::Dibao),
            started(ymd(2026, 3, 10)),
        ],
        extended(ymd(2026, 6, 10)),
        noon(ymd(2026, 1, 10)),
        expect![[r#"
            timer Schedule { timer: "deadline", due_at: 2026-06-09T16:00:00Z }
        "#]],
    );
}

#[test]
fn placement_ended_during_a_phase_out_requests_a_job_loss_reassessment() {
    check(
        vec![
            asserted(pb::LowIncomeStatus::Dibao),
            placed("P1", "PL1"),
            started(ymd(2026, 3, 10)),
        ],
        ended("P1", "PL1"),
        noon(ymd(2025, 6, 1)),
        expect![[r#"
            command {"type":"request_reassessment","household_ref":"H1","trigger":"job_loss","triggering_placement_id":"PL1","requested_on":"2025-06-01"}
        "#]],
    );
}

#[test]
fn placement_ended_without_a_phase_out_does_nothing() {
    check(
        vec![asserted(pb::LowIncomeStatus::Dibao), placed("P1", "PL1")],
        ended("P1", "PL1"),
        noon(ymd(2025, 6, 1)),
        expect![[r#"
            nothing
        "#]],
    );
}

#[test]
fn a_cancelled_phase_out_cancels_the_deadline() {
    check(
        vec![
            asserted(pb::LowIncomeStatus::Dibao),
            started(ymd(2026, 3, 10)),
        ],
        cancelled(),
        noon(ymd(2025, 6, 2)),
        expect![[r#"
            timer Cancel { timer: "deadline" }
        "#]],
    );
}

#[test]
fn the_deadline_completes_the_phase_out_on_its_planned_end() {
    check(
        vec![
            asserted(pb::LowIncomeStatus::Dibao),
            started(ymd(2026, 3, 10)),
        ],
        In::Deadline,
        pathway_saga::phaseout::start_of_day(ymd(2026, 3, 10)),
        expect![[r#"
            command {"type":"complete_phase_out","household_ref":"H1","phase_out_id":"PO1","on":"2026-03-10"}
        "#]],
    );
}

#[test]
fn the_deadline_after_an_extension_completes_on_the_new_end() {
    check(
        vec![
            asserted(pb::LowIncomeStatus::Dibao),
            started(ymd(2026, 3, 10)),
            extended(ymd(2026, 6, 10)),
        ],
        In::Deadline,
        pathway_saga::phaseout::start_of_day(ymd(2026, 6, 10)),
        expect![[r#"
            command {"type":"complete_phase_out","household_ref":"H1","phase_out_id":"PO1","on":"2026-06-10"}
        "#]],
    );
}

#[test]
fn the_deadline_after_a_cancellation_does_nothing() {
    check(
        vec![
            asserted(pb::LowIncomeStatus::Dibao),
            started(ymd(2026, 3, 10)),
            cancelled(),
        ],
        In::Deadline,
        pathway_saga::phaseout::start_of_day(ymd(2026, 3, 10)),
        expect![[r#"
            nothing
        "#]],
    );
}

#[test]
fn benefit_phased_out_ends_the_saga_and_later_placements_request_nothing() {
    check(
        vec![
            asserted(pb::LowIncomeStatus::Dibao),
            started(ymd(2026, 3, 10)),
        ],
        phased_out(),
        noon(ymd(2026, 3, 10)),
        expect![[r#"
            timer Cancel { timer: "deadline" }
        "#]],
    );
    check(
        vec![
            asserted(pb::LowIncomeStatus::Dibao),
            started(ymd(2026, 3, 10)),
            phased_out(),
        ],
        placed("P2", "PL9"),
        noon(ymd(2026, 4, 1)),
        expect![[r#"
            nothing
        "#]],
    );
}

#[test]
fn the_policy_version_is_kept_in_the_saga_state() {
    let mut state = PhaseOutState::default();
    for input in [
        asserted(pb::LowIncomeStatus::Dibao),
        started(ymd(2026, 3, 10)),
    ] {
        let In::Event(e) = &input else { unreachable!() };
        state = decide(
            &state,
            &Input {
                kind: InputKind::Event(e),
                key: "H1",
                position: 1,
                event_id: Uuid::nil(),
                at: noon(ymd(2025, 3, 10)),
            },
        )
        .state;
    }
    assert_eq!(state.phase_out.expect("active").policy_version, "HLJ-2025");
}

//! Properties of the person and household deciders over random command
//! sequences: the state kept by evolving accepted events equals a fold from
//! scratch, and the accepted event log never breaks a rule — checked by an
//! independent replay of the log, not by the deciders themselves.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Months, NaiveDate};
use pathway_domain::{
    Aggregate, Event,
    convert::naive,
    household::{
        ApproveExtension, AssertLowIncomeStatus, BenefitMode, CancelPhaseOut, CompletePhaseOut,
        Household, HouseholdCommand as H, LowIncomeStatus, PhaseOutCancelReason, ReassessIncome,
        ReassessmentTrigger, RequestReassessment, StartPhaseOut,
    },
    pb,
    person::{
        AssessCapacity, ChangeResidence, CompleteTraining, Consent, ConsentPurpose, ContractType,
        EmploymentForm, EmploymentStatus, EndPlacement, EnrollTrainee, EraseData,
        GrantTrainingSubsidy, Person, PersonCommand as P, PlacePerson, PlacementEndReason,
        ProvideService, RecordCertificate, RegisterNeed, RegisterPerson, ServiceType,
        VerifyBasicInfo,
    },
    policy::PolicyTable,
    training::TrainingType,
    validate::{make_credit_code, make_resident_id},
};
use proptest::{prelude::*, strategy::ValueTree};

use crate::check::{ctx, day};

const PERSON: &str = "p-1";
const HOUSEHOLD: &str = "h-1";
const REGIONS: [&str; 3] = ["230102", "230202", "230603"];
const STANDARD: i64 = 70_000;
const INCOMES: [i64; 8] = [0, 60_000, 70_000, 70_001, 90_000, 104_999, 105_000, 150_000];

/// One random step: a command kind, two small parameters and how many days
/// pass before it.
type Step = (u8, u8, u8, u16);

fn steps(kinds: u8, days_max: u16) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((0..kinds, 0u8..8, 0u8..8, 0..days_max), 1..60)
}

fn d(date: NaiveDate, back_days: u8) -> NaiveDate {
    date - chrono::Days::new(u64::from(back_days % 4))
}

fn person_command(step: Step, today: NaiveDate) -> P {
    let (kind, a, b, _) = step;
    let person_ref = PERSON.to_owned();
    let born = day("1970-03-15") + chrono::Days::new(u64::from(a) * 2000);
    let id = make_resident_id("230102", born, 10 + u16::from(b % 2));
    match kind {
        0 => P::RegisterPerson(RegisterPerson {
            person_ref,
            name: "王芳".to_owned(),
            id_number: id,
            id_hmac: vec![1; 32],
            phone: None,
            address: Some("Harbin".to_owned()),
            hukou_region: REGIONS[usize::from(b) % 3].to_owned(),
            residence_region: REGIONS[usize::from(a) % 3].to_owned(),
            registering_org: "DPF".to_owned(),
        }),
        1 => P::RecordCertificate(RecordCertificate {
            person_ref,
            certificate_number: format!("{id}{}{}", 1 + a % 8, 1 + b % 4),
            certificate_hmac: vec![2; 32],
            valid_from: d(today, a),
            valid_until: d(today, a) + Months::new(u32::from(b) * 30),
            issuing_org: "DPF".to_owned(),
        }),
        2 => P::ChangeResidence(ChangeResidence {
            person_ref,
            to_region: REGIONS[usize::from(a) % 3].to_owned(),
            effective_on: today,
        }),
        3 | 4 => {
            let purpose = ConsentPurpose::ALL[usize::from(a) % ConsentPurpose::ALL.len()];
            let c = Consent {
                person_ref,
                purpose,
            };
            if kind == 3 {
                P::GrantConsent(c)
            } else {
                P::WithdrawConsent(c)
            }
        }
        5 if a == 0 && b == 0 => P::EraseData(EraseData {
            person_ref,
            key_id: "k".to_owned(),
            reason: "request".to_owned(),
            authorised_by: "officer".to_owned(),
        }),
        5 | 6 => P::VerifyBasicInfo(VerifyBasicInfo {
            person_ref,
            year: today.year() - i32::from(b % 2),
            verified_by_org: "DPF".to_owned(),
            employment_status: EmploymentStatus::ALL[usize::from(a) % 3],
            wants_work: a % 3 != 0,
            has_work_capacity: true,
            non_work_reason: None,
            verified_on: d(today, b),
        }),
        7 => P::AssessCapacity(AssessCapacity {
            person_ref,
            year: today.year() - i32::from(b % 2),
            assessment_id: format!("a-{a}"),
            assessor_org: "centre".to_owned(),
            capacity_level: "able".to_owned(),
            assessed_on: today,
        }),
        8 => P::RegisterNeed(RegisterNeed {
            person_ref,
            year: today.year(),
            intended_occupations: vec![],
            intended_region: REGIONS[usize::from(a) % 3].to_owned(),
            preferred_forms: vec![EmploymentForm::ALL[usize::from(b) % 9]],
            registered_on: today,
        }),
        9 => P::ProvideService(ProvideService {
            person_ref,
            year: today.year(),
            service_type: ServiceType::ALL[usize::from(a) % 7],
            provider_org: "service".to_owned(),
            provided_on: today,
        }),
        10 => P::EnrollTrainee(EnrollTrainee {
            person_ref,
            programme_id: format!("t-{}", a % 3),
            training_type: TrainingType::ALL[usize::from(b) % 4],
            enrolled_on: d(today, b),
        }),
        11 => P::CompleteTraining(CompleteTraining {
            person_ref,
            programme_id: format!("t-{}", a % 3),
            passed: b % 2 == 0,
            skill_certificate_level: None,
            completed_on: d(today, b),
        }),
        12 => P::GrantTrainingSubsidy(GrantTrainingSubsidy {
            person_ref,
            programme_id: format!("t-{}", a % 3),
            tuition_fen: i64::from(b) * 10_000 - 10_000,
            living_allowance_fen: 0,
            payer_org: "DPF".to_owned(),
            granted_on: today,
        }),
        13 | 14 => {
            let form = EmploymentForm::ALL[usize::from(b) % 9];
            P::PlacePerson(PlacePerson {
                person_ref,
                placement_id: format!("pl-{}", a % 6),
                employment_form: form,
                employer_uscc: (a % 4 != 3)
                    .then(|| make_credit_code(&format!("91230100MA1B2C3D{}", a % 4))),
                start_date: d(today, a.wrapping_add(b)),
                contract_type: ContractType::ALL[usize::from(a) % 4],
                contract_months: 10 + u32::from(b % 4),
                monthly_wage_fen: 200_000,
                wage_at_least_minimum: b % 5 != 0,
                social_insurance_paid: a % 5 != 0,
                post_id: None,
                region: REGIONS[usize::from(b) % 3].to_owned(),
            })
        }
        _ => P::EndPlacement(EndPlacement {
            person_ref,
            placement_id: format!("pl-{}", a % 6),
            end_date: d(today, b),
            reason: PlacementEndReason::ALL[usize::from(b) % 4],
        }),
    }
}

fn household_command(step: Step, today: NaiveDate) -> H {
    let (kind, a, b, _) = step;
    let household_ref = HOUSEHOLD.to_owned();
    let phase_out_id = format!("po-{}", a % 3);
    match kind {
        0 => H::AssertLowIncomeStatus(AssertLowIncomeStatus {
            household_ref,
            members: vec!["p-1".to_owned()],
            // mostly dibao, so phase-outs happen
            status: if a < 5 {
                LowIncomeStatus::Dibao
            } else {
                LowIncomeStatus::ALL[usize::from(b) % 4]
            },
            effective_on: today,
            asserted_by: "street office".to_owned(),
        }),
        1 => H::RequestReassessment(RequestReassessment {
            household_ref,
            trigger: ReassessmentTrigger::ALL[usize::from(a) % 4],
            triggering_placement_id: (b % 2 == 0).then(|| "pl-1".to_owned()),
            requested_on: today,
        }),
        2 | 3 => H::ReassessIncome(ReassessIncome {
            household_ref,
            per_capita_income_fen: INCOMES[usize::from(a)],
            dibao_standard_fen: STANDARD,
            meets_edge_criteria: b % 4 != 0,
            assessed_by: "street office".to_owned(),
            assessed_on: today,
            phase_out_id,
            benefit_mode: BenefitMode::ALL[usize::from(b) % 2],
        }),
        4 => H::StartPhaseOut(StartPhaseOut {
            household_ref,
            phase_out_id,
            start_date: today,
            planned_end_date: today
                + Months::new(9 + u32::from(b % 5))
                + chrono::Days::new(u64::from(a % 2)),
            benefit_mode: BenefitMode::Tapered,
        }),
        5 => H::ApproveExtension(ApproveExtension {
            household_ref,
            phase_out_id,
            new_end_date: today + Months::new(u32::from(b) * 2),
            justification: if a == 7 {
                String::new()
            } else {
                "unstable work".to_owned()
            },
            approved_by: "bureau".to_owned(),
        }),
        6 => H::CancelPhaseOut(CancelPhaseOut {
            household_ref,
            phase_out_id,
            reason: PhaseOutCancelReason::ALL[usize::from(b) % 3],
            on: today,
        }),
        _ => H::CompletePhaseOut(CompletePhaseOut {
            household_ref,
            phase_out_id,
            on: today,
        }),
    }
}

/// Decide every step, keep the accepted events, and after each acceptance
/// compare the evolved state with a fold from scratch and replay the log.
fn run<A>(
    steps: &[Step],
    command: impl Fn(Step, NaiveDate) -> A::Command,
    first: Step,
    audit: impl Fn(&[Event]) -> Result<(), String>,
) -> Result<usize, TestCaseError>
where
    A: Aggregate + PartialEq,
{
    let mut today = day("2022-01-01");
    let mut state = A::default();
    let mut log: Vec<Event> = Vec::new();
    for &step in std::iter::once(&first).chain(steps) {
        today = today + chrono::Days::new(u64::from(step.3));
        let context = ctx(&today.to_string());
        let Ok(events) = state.decide(&command(step, today), &context) else {
            continue;
        };
        prop_assert!(!events.is_empty(), "an accepted command emits events");
        state = events.iter().fold(state, |s, e| s.evolve(e));
        log.extend(events);
        prop_assert_eq!(&state, &A::fold(&log));
        if let Err(broken) = audit(&log) {
            return Err(TestCaseError::fail(broken));
        }
    }
    Ok(log.len())
}

/// Replays a person's log and reports the first event no decision could make.
fn audit_person(log: &[Event]) -> Result<(), String> {
    let policy = PolicyTable::builtin();
    let mut registered = false;
    let mut erased = false;
    let mut counted: BTreeSet<i32> = BTreeSet::new();
    let mut placements: BTreeMap<String, (String, NaiveDate, bool)> = BTreeMap::new();
    let mut last_placed: Option<(String, i32)> = None;
    let mut enrolled: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let mut wants_work: BTreeMap<i32, bool> = BTreeMap::new();
    for (i, event) in log.iter().enumerate() {
        let fail = |why: &str| Err(format!("event {i} {}: {why}", event.event_type()));
        let personal = matches!(
            event,
            Event::DisabilityCertificateRecorded(_)
                | Event::BasicInfoVerified(_)
                | Event::VocationalCapacityAssessed(_)
                | Event::PersonPlaced(_)
                | Event::ConsentGranted(_)
                | Event::PersonalDataErased(_)
        );
        if personal && erased {
            return fail("personal data after erasure");
        }
        if registered == matches!(event, Event::PersonRegistered(_)) {
            return fail("registration must come first and once");
        }
        match event {
            Event::PersonRegistered(_) => registered = true,
            Event::PersonalDataErased(_) => erased = true,
            Event::BasicInfoVerified(e) => {
                if !policy
                    .at(naive(e.verified_on.as_ref()).unwrap())
                    .is_plan_year(e.year)
                {
                    return fail("verification outside the plan years");
                }
                wants_work.insert(e.year, e.wants_work);
            }
            Event::VocationalCapacityAssessed(pb::VocationalCapacityAssessed { year, .. })
            | Event::EmploymentNeedRegistered(pb::EmploymentNeedRegistered { year, .. })
            | Event::EmploymentServiceProvided(pb::EmploymentServiceProvided { year, .. })
                if wants_work.get(year) != Some(&true) =>
            {
                return fail("Four Ones service without wanting work that year");
            }
            Event::TraineeEnrolled(e) if enrolled.contains_key(&e.programme_id) => {
                return fail("enrolled twice");
            }
            Event::TraineeEnrolled(e) => {
                enrolled.insert(e.programme_id.clone(), (false, false));
            }
            Event::TrainingCompleted(e) => match enrolled.get_mut(&e.programme_id) {
                Some((done @ false, _)) => *done = true,
                _ => return fail("completion without an open enrolment"),
            },
            Event::TrainingSubsidyGranted(e) => match enrolled.get_mut(&e.programme_id) {
                Some((true, paid @ false)) => *paid = true,
                _ => return fail("subsidy before completion or twice"),
            },
            Event::PersonPlaced(e) => {
                let start = naive(e.start_date.as_ref()).unwrap();
                let open_at_employer = !e.employer_uscc.is_empty()
                    && placements
                        .values()
                        .any(|(u, _, open)| *open && *u == e.employer_uscc);
                if open_at_employer || placements.contains_key(&e.placement_id) {
                    return fail("second open placement at one employer or reused id");
                }
                if e.employment_form() == pb::EmploymentForm::Quota
                    && !(e.contract_months >= 12
                        || e.contract_type() == pb::ContractType::EstablishedPost)
                {
                    return fail("quota placement with a short contract");
                }
                placements.insert(
                    e.placement_id.clone(),
                    (e.employer_uscc.clone(), start, true),
                );
                last_placed = Some((e.placement_id.clone(), start.year()));
            }
            Event::NewEmploymentCounted(e) => {
                if last_placed.as_ref() != Some(&(e.placement_id.clone(), e.year)) {
                    return fail("counted without its placement");
                }
                if !policy
                    .at(day(&format!("{}-06-30", e.year)))
                    .is_plan_year(e.year)
                {
                    return fail("counted outside the plan years");
                }
                if !counted.insert(e.year) {
                    return fail("counted twice in one year");
                }
            }
            Event::PlacementEnded(e) => match placements.get_mut(&e.placement_id) {
                Some((_, start, open @ true)) if naive(e.end_date.as_ref()).unwrap() >= *start => {
                    *open = false;
                }
                _ => return fail("end of an unknown or closed placement, or before its start"),
            },
            _ => {}
        }
    }
    Ok(())
}

/// Replays a household's log and reports the first event no decision could make.
fn audit_household(log: &[Event]) -> Result<(), String> {
    let policy = PolicyTable::builtin();
    // active: (id, start, planned end, extended)
    let mut active: Option<(String, NaiveDate, NaiveDate, bool)> = None;
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut asserted = false;
    for (i, event) in log.iter().enumerate() {
        let fail = |why: &str| Err(format!("event {i} {}: {why}", event.event_type()));
        if !asserted && !matches!(event, Event::LowIncomeStatusAsserted(_)) {
            return fail("before the status was asserted");
        }
        match event {
            Event::LowIncomeStatusAsserted(_) => asserted = true,
            Event::PhaseOutStarted(e) => {
                let start = naive(e.start_date.as_ref()).unwrap();
                let end = naive(e.planned_end_date.as_ref()).unwrap();
                if active.is_some() || !ids.insert(e.phase_out_id.clone()) {
                    return fail("second active phase-out or reused id");
                }
                if e.policy_version != policy.at(start).version {
                    return fail("policy version not the one in force at the start");
                }
                active = Some((e.phase_out_id.clone(), start, end, false));
            }
            Event::PhaseOutExtensionApproved(e) => match &mut active {
                Some((id, _, end, extended)) if *id == e.phase_out_id => {
                    let new_end = naive(e.new_end_date.as_ref()).unwrap();
                    if new_end <= *end || e.justification.trim().is_empty() {
                        return fail("extension not later or unjustified");
                    }
                    *end = new_end;
                    *extended = true;
                }
                _ => return fail("extension of a phase-out that is not active"),
            },
            Event::PhaseOutCancelled(e) => match &active {
                Some((id, ..)) if *id == e.phase_out_id => active = None,
                _ => return fail("cancelling a phase-out that is not active"),
            },
            Event::BenefitPhasedOut(e) => match &active {
                Some((id, _, end, _))
                    if *id == e.phase_out_id && naive(e.end_date.as_ref()).unwrap() >= *end =>
                {
                    active = None;
                }
                _ => return fail("completing early or a phase-out that is not active"),
            },
            _ => {}
        }
        if let Some((id, start, end, extended)) = &active {
            let max = *start + Months::new(policy.at(*start).phase_out_max_months);
            if !extended && *end > max {
                return Err(format!(
                    "phase-out {id} runs to {end}, beyond {max} without approval"
                ));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn person_fold_is_consistent_and_log_is_lawful(steps in steps(16, 120)) {
        run::<Person>(&steps, person_command, (0, 0, 0, 10), audit_person)?;
    }

    #[test]
    fn household_fold_is_consistent_and_log_is_lawful(steps in steps(8, 90)) {
        run::<Household>(&steps, household_command, (0, 0, 0, 0), audit_household)?;
    }
}

/// The generators reach the interesting events, so the properties are not
/// vacuously true.
#[test]
fn generators_reach_the_interesting_events() {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config::default());
    let mut seen: BTreeSet<&'static str> = BTreeSet::new();
    for _ in 0..300 {
        let tree = steps(16, 120).new_tree(&mut runner).unwrap();
        let person_steps = tree.current();
        let tree = steps(8, 90).new_tree(&mut runner).unwrap();
        let household_steps = tree.current();
        let person = replay::<Person>(&person_steps, person_command, (0, 0, 0, 10));
        let household = replay::<Household>(&household_steps, household_command, (0, 0, 0, 0));
        seen.extend(person.iter().chain(&household).map(Event::event_type));
    }
    for wanted in [
        "NewEmploymentCounted",
        "PlacementEnded",
        "TrainingSubsidyGranted",
        "VocationalCapacityAssessed",
        "PersonalDataErased",
        "PhaseOutStarted",
        "PhaseOutExtensionApproved",
        "PhaseOutCancelled",
        "BenefitPhasedOut",
        "DibaoBenefitTerminated",
    ] {
        assert!(
            seen.contains(wanted),
            "random sequences never produce {wanted}: {seen:?}"
        );
    }
}

fn replay<A: Aggregate>(
    steps: &[Step],
    command: impl Fn(Step, NaiveDate) -> A::Command,
    first: Step,
) -> Vec<Event> {
    let mut today = day("2022-01-01");
    let mut state = A::default();
    let mut log = Vec::new();
    for &step in std::iter::once(&first).chain(steps) {
        today = today + chrono::Days::new(u64::from(step.3));
        if let Ok(events) = state.decide(&command(step, today), &ctx(&today.to_string())) {
            state = events.iter().fold(state, |s, e| s.evolve(e));
            log.extend(events);
        }
    }
    log
}

/// The replay audits are not vacuous: they catch a hand-made unlawful log.
#[test]
fn audits_catch_unlawful_logs() {
    let registered = Event::PersonRegistered(pb::PersonRegistered {
        person_ref: PERSON.to_owned(),
        ..Default::default()
    });
    let ended = Event::PlacementEnded(pb::PlacementEnded {
        placement_id: "pl-unknown".to_owned(),
        person_ref: PERSON.to_owned(),
        end_date: pathway_domain::convert::date(day("2023-05-01")),
        reason: pb::PlacementEndReason::Resigned as i32,
    });
    assert_eq!(
        audit_person(&[registered.clone(), ended]),
        Err(
            "event 1 PlacementEnded: end of an unknown or closed placement, or before its start"
                .to_owned()
        )
    );
    let counted = |placement: &str| {
        Event::NewEmploymentCounted(pb::NewEmploymentCounted {
            person_ref: PERSON.to_owned(),
            year: 2023,
            placement_id: placement.to_owned(),
            ..Default::default()
        })
    };
    let placed = |placement: &str| {
        Event::PersonPlaced(pb::PersonPlaced {
            placement_id: placement.to_owned(),
            start_date: pathway_domain::convert::date(day("2023-05-01")),
            ..Default::default()
        })
    };
    let twice = [
        registered,
        placed("a"),
        counted("a"),
        placed("b"),
        counted("b"),
    ];
    assert_eq!(
        audit_person(&twice),
        Err("event 4 NewEmploymentCounted: counted twice in one year".to_owned())
    );

    let asserted = Event::LowIncomeStatusAsserted(pb::LowIncomeStatusAsserted::default());
    let started = Event::PhaseOutStarted(pb::PhaseOutStarted {
        phase_out_id: "po-1".to_owned(),
        start_date: pathway_domain::convert::date(day("2023-03-01")),
        planned_end_date: pathway_domain::convert::date(day("2024-03-02")),
        policy_version: "HLJ-2022".to_owned(),
        ..Default::default()
    });
    assert_eq!(
        audit_household(&[asserted, started]),
        Err("phase-out po-1 runs to 2024-03-02, beyond 2024-03-01 without approval".to_owned())
    );
}

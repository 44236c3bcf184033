//! The given/when/then helper every aggregate's tests share: fold the given
//! events, decide the command on a given day, render the outcome as compact
//! text (one line per event, `EventType key=value …`, or `rejected: …`) and
//! compare it with an `expect![[…]]` block (`UPDATE_EXPECT=1` refills them).

use chrono::{DateTime, NaiveDate, Utc};
use expect_test::Expect;
use pathway_domain::{
    Aggregate, Context, Decision, Event,
    convert::{clear_int, clear_text, naive},
    pb,
    policy::PolicyTable,
};

/// A date written `YYYY-MM-DD`.
pub(crate) fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("bad test date {s:?}: {e}"))
}

/// A context at noon (UTC+8) of `today`, with the checked-in policy.
pub(crate) fn ctx(today: &str) -> Context<'static> {
    let noon_cst = day(today).and_hms_opt(4, 0, 0).expect("04:00 exists");
    let now = DateTime::<Utc>::from_naive_utc_and_offset(noon_cst, Utc);
    let ctx = Context::new(now, PolicyTable::builtin());
    assert_eq!(ctx.today, day(today));
    ctx
}

/// Decide each `(command, today)` in order on a fresh state and return all the
/// events; a rejection is a broken test setup and panics.
pub(crate) fn history<A: Aggregate>(steps: &[(A::Command, &str)]) -> Vec<Event>
where
    A::Command: std::fmt::Debug,
{
    history_after::<A>(&[], steps)
}

/// Like [`history`], after the events `given`; returns only the new events.
pub(crate) fn history_after<A: Aggregate>(
    given: &[Event],
    steps: &[(A::Command, &str)],
) -> Vec<Event>
where
    A::Command: std::fmt::Debug,
{
    let mut state = A::fold(given);
    let mut events = Vec::new();
    for (command, today) in steps {
        match state.decide(command, &ctx(today)) {
            Ok(new) => {
                state = new.iter().fold(state, |s, e| s.evolve(e));
                events.extend(new);
            }
            Err(r) => panic!("given step rejected: {r}\n{command:?}"),
        }
    }
    events
}

/// Fold `given`, decide `when` on `today` and compare the rendered outcome.
pub(crate) fn check<A: Aggregate>(given: &[Event], when: &A::Command, today: &str, expect: Expect) {
    let state = A::fold(given);
    let decision = state.decide(when, &ctx(today));
    expect.assert_eq(&render_decision(&decision));
}

/// Every event line, or the rejection.
pub(crate) fn render_decision(decision: &Decision) -> String {
    match decision {
        Ok(events) if events.is_empty() => "no events\n".to_owned(),
        Ok(events) => events.iter().map(|e| render(e) + "\n").collect(),
        Err(r) => format!("rejected: {r}\n"),
    }
}

fn d(date: Option<&pb::Date>) -> String {
    naive(date).map_or_else(|| "-".to_owned(), |d| d.to_string())
}

fn p(field: Option<&pb::Personal>) -> String {
    if let Some(text) = clear_text(field) {
        return format!("{text:?}");
    }
    if let Some(int) = clear_int(field) {
        return int.to_string();
    }
    match field.and_then(|f| f.value.as_ref()) {
        Some(pb::personal::Value::Sealed(_)) => "<sealed>".to_owned(),
        _ => "-".to_owned(),
    }
}

fn s(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// One event as `EventType key=value …`; the stream's own ref is left out.
pub(crate) fn render(event: &Event) -> String {
    let name = event.event_type();
    let body = match event {
        Event::PersonRegistered(e) => format!(
            "person_ref={} name={} id_number={} sex={:?} birth={}-{:02} hukou={} residence={} org={} phone={} address={} on={} id_hmac={}B",
            e.person_ref,
            p(e.name.as_ref()),
            p(e.id_number.as_ref()),
            e.sex(),
            e.birth_year,
            e.birth_month,
            e.hukou_region,
            e.residence_region,
            e.registering_org,
            p(e.phone.as_ref()),
            p(e.address.as_ref()),
            d(e.registered_on.as_ref()),
            e.id_hmac.len(),
        ),
        Event::DisabilityCertificateRecorded(e) => format!(
            "number={} category={} grade={} valid={}..{} org={} hmac={}B",
            p(e.certificate_number.as_ref()),
            p(e.category.as_ref()),
            p(e.grade.as_ref()),
            d(e.valid_from.as_ref()),
            d(e.valid_until.as_ref()),
            e.issuing_org,
            e.certificate_hmac.len(),
        ),
        Event::ResidenceChanged(e) => format!(
            "{} -> {} on={}",
            e.from_region,
            e.to_region,
            d(e.effective_on.as_ref())
        ),
        Event::ConsentGranted(e) => {
            format!("purpose={:?} on={}", e.purpose(), d(e.granted_on.as_ref()))
        }
        Event::ConsentWithdrawn(e) => {
            format!(
                "purpose={:?} on={}",
                e.purpose(),
                d(e.withdrawn_on.as_ref())
            )
        }
        Event::PersonalDataErased(e) => format!(
            "key_id={} reason={:?} by={}",
            e.key_id, e.reason, e.authorised_by
        ),
        Event::BasicInfoVerified(e) => format!(
            "year={} working_age={} wants_work={} capacity={} status={:?} reason={} by={} on={}",
            e.year,
            e.is_working_age,
            e.wants_work,
            e.has_work_capacity,
            e.employment_status(),
            p(e.non_work_reason.as_ref()),
            e.verified_by_org,
            d(e.verified_on.as_ref()),
        ),
        Event::VocationalCapacityAssessed(e) => format!(
            "year={} id={} level={} by={} on={}",
            e.year,
            e.assessment_id,
            p(e.capacity_level.as_ref()),
            e.assessor_org,
            d(e.assessed_on.as_ref()),
        ),
        Event::EmploymentNeedRegistered(e) => format!(
            "year={} occupations={:?} region={} forms={:?} on={}",
            e.year,
            e.intended_occupations,
            e.intended_region,
            e.preferred_forms().collect::<Vec<_>>(),
            d(e.registered_on.as_ref()),
        ),
        Event::EmploymentServiceProvided(e) => format!(
            "year={} type={:?} by={} on={}",
            e.year,
            e.service_type(),
            e.provider_org,
            d(e.provided_on.as_ref()),
        ),
        Event::TrainingProgrammeRegistered(e) => format!(
            "programme_id={} type={:?} cycle={:?} {}..{} provider={} region={}",
            e.programme_id,
            e.training_type(),
            e.cycle(),
            d(e.start_date.as_ref()),
            d(e.end_date.as_ref()),
            e.provider_org,
            e.region,
        ),
        Event::TraineeEnrolled(e) => format!(
            "programme={} type={:?} on={}",
            e.programme_id,
            e.training_type(),
            d(e.enrolled_on.as_ref())
        ),
        Event::TrainingCompleted(e) => format!(
            "programme={} passed={} level={} on={}",
            e.programme_id,
            e.passed,
            s(&e.skill_certificate_level),
            d(e.completed_on.as_ref()),
        ),
        Event::TrainingSubsidyGranted(e) => format!(
            "programme={} tuition={} living={} payer={} on={}",
            e.programme_id,
            e.tuition_fen,
            e.living_allowance_fen,
            e.payer_org,
            d(e.granted_on.as_ref()),
        ),
        Event::PersonPlaced(e) => format!(
            "id={} form={:?} employer={} start={} contract={:?}/{}m wage={} min={} si={} post={} region={}",
            e.placement_id,
            e.employment_form(),
            s(&e.employer_uscc),
            d(e.start_date.as_ref()),
            e.contract_type(),
            e.contract_months,
            p(e.monthly_wage.as_ref()),
            e.wage_at_least_minimum,
            e.social_insurance_paid,
            s(&e.post_id),
            e.region,
        ),
        Event::NewEmploymentCounted(e) => format!(
            "year={} placement={} region={} form={:?}",
            e.year,
            e.placement_id,
            e.region,
            e.employment_form(),
        ),
        Event::PlacementEnded(e) => format!(
            "id={} end={} reason={:?}",
            e.placement_id,
            d(e.end_date.as_ref()),
            e.reason()
        ),
        Event::LowIncomeStatusAsserted(e) => {
            let status = clear_int(e.status.as_ref())
                .and_then(|v| i32::try_from(v).ok())
                .and_then(|v| pb::LowIncomeStatus::try_from(v).ok())
                .map_or_else(|| p(e.status.as_ref()), |st| format!("{st:?}"));
            format!(
                "household_ref={} members={:?} status={status} on={} by={}",
                e.household_ref,
                e.member_person_refs,
                d(e.effective_on.as_ref()),
                e.asserted_by,
            )
        }
        Event::HouseholdReassessmentRequested(e) => format!(
            "trigger={:?} placement={} on={}",
            e.trigger(),
            s(&e.triggering_placement_id),
            d(e.requested_on.as_ref()),
        ),
        Event::HouseholdIncomeReassessed(e) => format!(
            "income={} standard={} edge_threshold={} meets_edge={} by={} on={}",
            p(e.per_capita_income.as_ref()),
            e.dibao_standard_fen,
            e.edge_threshold_fen,
            e.meets_edge_criteria,
            e.assessed_by,
            d(e.assessed_on.as_ref()),
        ),
        Event::PhaseOutStarted(e) => format!(
            "id={} {}..{} mode={:?} policy={}",
            e.phase_out_id,
            d(e.start_date.as_ref()),
            d(e.planned_end_date.as_ref()),
            e.benefit_mode(),
            e.policy_version,
        ),
        Event::PhaseOutExtensionApproved(e) => format!(
            "id={} new_end={} justification={:?} by={}",
            e.phase_out_id,
            d(e.new_end_date.as_ref()),
            e.justification,
            e.approved_by,
        ),
        Event::PhaseOutCancelled(e) => format!(
            "id={} reason={:?} on={}",
            e.phase_out_id,
            e.reason(),
            d(e.cancelled_on.as_ref())
        ),
        Event::BenefitPhasedOut(e) => format!(
            "id={} end={} resulting={:?}",
            e.phase_out_id,
            d(e.end_date.as_ref()),
            e.resulting_status()
        ),
        Event::DibaoBenefitTerminated(e) => format!("on={}", d(e.effective_on.as_ref())),
        Event::DibaoBenefitContinued(e) => format!("on={}", d(e.effective_on.as_ref())),
        other => format!("{other:?}"),
    };
    format!("{name} {body}")
}

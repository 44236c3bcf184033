//! Each department's view of an event: only the fields DOMAIN.md ("Who reads
//! what") and the reference §4.7 let that department see.
//!
//! A view is built from one event, with no state, and is the only thing a
//! department's projection ever receives: a field a department must not see
//! is simply absent from its view types, so no projection bug can store it.
//! Views hold plain values — strings, integers, booleans, dates — with enum
//! values as short lower-case names (`quota`, `dibao`, `employed`).
//!
//! Personal (P2/P3) fields are read with [`clear_int`]: a sealed or erased
//! value reads as `None`. Only two departments ever receive one: the DPF the
//! certificate's category and grade, Civil Affairs the wage, the household's
//! per-capita income and its low-income status. No view carries a name, an
//! ID or certificate number, a phone or an address.
//!
//! Invariants, checked by `tests/it/views.rs` over a sample of every event
//! type:
//! - no wage or income amount outside [`CivilAffairsView`];
//! - no disability category or grade outside [`DpfView`];
//! - no low-income status in the DPF, HRSS or Education views: the DPF and
//!   HRSS learn only which persons belong to a household the assistance
//!   office tracks and whether that household is in phase-out, until when;
//! - no person reference in [`SasacView`] or [`CommitteeView`].

use chrono::NaiveDate;
use pathway_domain::{
    Event,
    convert::{clear_int, naive},
    pb,
};

/// One department's view of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Dpf(DpfView),
    Hrss(HrssView),
    CivilAffairs(CivilAffairsView),
    Education(EducationView),
    Sasac(SasacView),
    Committee(CommitteeView),
}

/// The prefecture (city) code of a GB/T 2260 region code: its first four
/// digits and `00`, e.g. `230102` → `230100`; `unknown` if the code is not one.
pub fn city_of(region: &str) -> String {
    match region.get(..4) {
        Some(p) if region.len() == 6 && region.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{p}00")
        }
        _ => "unknown".to_owned(),
    }
}

/// A prost enum name without its type prefix, in lower case:
/// `EMPLOYMENT_FORM_QUOTA` → `quota`.
fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

fn form(f: pb::EmploymentForm) -> String {
    short(f.as_str_name(), "EMPLOYMENT_FORM_")
}

fn training_type(t: pb::TrainingType) -> String {
    short(t.as_str_name(), "TRAINING_TYPE_")
}

fn low_income_status(s: pb::LowIncomeStatus) -> String {
    short(s.as_str_name(), "LOW_INCOME_STATUS_")
}

fn org_type(t: pb::OrgType) -> String {
    short(t.as_str_name(), "ORG_TYPE_")
}

fn admin_level(l: pb::AdminLevel) -> String {
    short(l.as_str_name(), "ADMIN_LEVEL_")
}

fn date(d: Option<&pb::Date>) -> Option<NaiveDate> {
    naive(d)
}

/// The year of a date, 0 if the date is absent.
fn year_of(d: Option<&pb::Date>) -> i32 {
    d.map_or(0, |d| d.year)
}

/// The personal fields of `e` some view reads (protobuf field numbers, as
/// in `pathway_domain::personal::PERSONAL_FIELD_NUMBERS`): the only ones a
/// projector opens. Names, ID and certificate numbers, phones, addresses,
/// non-work reasons and capacity levels stay sealed. `tests/it/views.rs`
/// checks the list is exact: sealing any other field changes no view, and
/// sealing any listed one changes one.
pub fn personal_fields_read(e: &Event) -> &'static [u32] {
    match e {
        Event::DisabilityCertificateRecorded(_) => &[4, 5],
        Event::PersonPlaced(_) => &[8],
        Event::LowIncomeStatusAsserted(_) => &[3],
        Event::HouseholdIncomeReassessed(_) => &[2],
        _ => &[],
    }
}

/// A small personal integer (category, grade, status code) in the clear.
fn clear_small(p: Option<&pb::Personal>) -> Option<i32> {
    clear_int(p).and_then(|i| i32::try_from(i).ok())
}

// ---------------------------------------------------------------------------
// Shared view records (the same facts, allowed to more than one department)

/// "Household in phase-out: yes, until DATE", or no longer, for the
/// household's members. The members come with the phase-out event itself, so
/// a department learns who is in a phase-out and nothing about households
/// that are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseOutFlag {
    pub household_ref: String,
    pub member_person_refs: Vec<String>,
    pub in_phase_out: bool,
    pub until: Option<NaiveDate>,
}

/// Public-welfare posts developed in a region and year (counts of posts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostsDeveloped {
    pub region: String,
    pub year: i32,
    pub total_posts: i64,
    pub disabled_posts: i64,
}

fn phase_out_flag(e: &Event) -> Option<PhaseOutFlag> {
    let (household_ref, members, in_phase_out, until) = match e {
        Event::PhaseOutStarted(e) => (
            &e.household_ref,
            &e.member_person_refs,
            true,
            date(e.planned_end_date.as_ref()),
        ),
        Event::PhaseOutExtensionApproved(e) => (
            &e.household_ref,
            &e.member_person_refs,
            true,
            date(e.new_end_date.as_ref()),
        ),
        Event::PhaseOutCancelled(e) => (&e.household_ref, &e.member_person_refs, false, None),
        Event::BenefitPhasedOut(e) => (&e.household_ref, &e.member_person_refs, false, None),
        _ => return None,
    };
    Some(PhaseOutFlag {
        household_ref: household_ref.clone(),
        member_person_refs: members.clone(),
        in_phase_out,
        until,
    })
}

// ---------------------------------------------------------------------------
// Disabled Persons' Federation

/// What the DPF sees: registry, Four Ones, training, placements, graduates;
/// of low-income assistance only household membership and the phase-out
/// flag. Never a wage or an income.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpfView {
    Registered(DpfPerson),
    Certificate(DpfCertificate),
    Moved(DpfResidence),
    Erased(PersonOnly),
    Verified(DpfVerified),
    Assessed(FourOnesStep),
    NeedRegistered(FourOnesStep),
    Served(FourOnesStep),
    Enrolled(DpfEnrolment),
    TrainingCompleted(DpfTrainingCompleted),
    Subsidy(DpfSubsidy),
    Placed(DpfPlacement),
    NewEmployment(DpfNewEmployment),
    PlacementEnded(PlacementEnded),
    PhaseOut(PhaseOutFlag),
    LedgerOpened(DpfLedger),
    PlanSet(LedgerStep),
    ServiceDelivered(LedgerStep),
    GraduateOutcome(DpfGraduateOutcome),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpfPerson {
    pub person_ref: String,
    pub sex: String,
    pub birth_year: i32,
    pub residence_region: String,
    pub registered_on: Option<NaiveDate>,
}

/// Category and grade when the event carries them in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpfCertificate {
    pub person_ref: String,
    pub category: Option<i32>,
    pub grade: Option<i32>,
    pub valid_until: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpfResidence {
    pub person_ref: String,
    pub to_region: String,
    pub effective_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonOnly {
    pub person_ref: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpfVerified {
    pub person_ref: String,
    pub year: i32,
    pub wants_work: bool,
}

/// One of the Four Ones done for a person in a year (the assessment's level
/// is not part of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FourOnesStep {
    pub person_ref: String,
    pub year: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpfEnrolment {
    pub programme_id: String,
    pub person_ref: String,
    pub training_type: String,
    pub enrolled_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpfTrainingCompleted {
    pub programme_id: String,
    pub person_ref: String,
    pub passed: bool,
    pub completed_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpfSubsidy {
    pub programme_id: String,
    pub person_ref: String,
    /// Tuition plus living allowance.
    pub subsidy_fen: i64,
    pub granted_on: Option<NaiveDate>,
}

/// A placement without its wage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpfPlacement {
    pub placement_id: String,
    pub person_ref: String,
    pub employment_form: String,
    pub employer_uscc: String,
    pub start_date: Option<NaiveDate>,
    pub social_insurance_paid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpfNewEmployment {
    pub person_ref: String,
    pub year: i32,
    /// Residence county at the time.
    pub region: String,
    pub employment_form: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementEnded {
    pub placement_id: String,
    pub person_ref: String,
    pub end_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpfLedger {
    pub ledger_id: String,
    pub person_ref: String,
    pub year: i32,
    pub city: String,
    pub school: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerStep {
    pub ledger_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpfGraduateOutcome {
    pub ledger_id: String,
    pub outcome: String,
    pub employment_form: String,
}

fn outcome(o: pb::GraduateOutcome) -> String {
    short(o.as_str_name(), "GRADUATE_OUTCOME_")
}

/// The DPF's view of an event.
pub fn dpf(e: &Event) -> Option<DpfView> {
    Some(match e {
        Event::PersonRegistered(e) => DpfView::Registered(DpfPerson {
            person_ref: e.person_ref.clone(),
            sex: short(e.sex().as_str_name(), "SEX_"),
            birth_year: e.birth_year,
            residence_region: e.residence_region.clone(),
            registered_on: date(e.registered_on.as_ref()),
        }),
        Event::DisabilityCertificateRecorded(e) => DpfView::Certificate(DpfCertificate {
            person_ref: e.person_ref.clone(),
            category: clear_small(e.category.as_ref()),
            grade: clear_small(e.grade.as_ref()),
            valid_until: date(e.valid_until.as_ref()),
        }),
        Event::ResidenceChanged(e) => DpfView::Moved(DpfResidence {
            person_ref: e.person_ref.clone(),
            to_region: e.to_region.clone(),
            effective_on: date(e.effective_on.as_ref()),
        }),
        Event::PersonalDataErased(e) => DpfView::Erased(PersonOnly {
            person_ref: e.person_ref.clone(),
        }),
        Event::BasicInfoVerified(e) => DpfView::Verified(DpfVerified {
            person_ref: e.person_ref.clone(),
            year: e.year,
            wants_work: e.wants_work,
        }),
        Event::VocationalCapacityAssessed(e) => DpfView::Assessed(FourOnesStep {
            person_ref: e.person_ref.clone(),
            year: e.year,
        }),
        Event::EmploymentNeedRegistered(e) => DpfView::NeedRegistered(FourOnesStep {
            person_ref: e.person_ref.clone(),
            year: e.year,
        }),
        Event::EmploymentServiceProvided(e) => DpfView::Served(FourOnesStep {
            person_ref: e.person_ref.clone(),
            year: e.year,
        }),
        Event::TraineeEnrolled(e) => DpfView::Enrolled(DpfEnrolment {
            programme_id: e.programme_id.clone(),
            person_ref: e.person_ref.clone(),
            training_type: training_type(e.training_type()),
            enrolled_on: date(e.enrolled_on.as_ref()),
        }),
        Event::TrainingCompleted(e) => DpfView::TrainingCompleted(DpfTrainingCompleted {
            programme_id: e.programme_id.clone(),
            person_ref: e.person_ref.clone(),
            passed: e.passed,
            completed_on: date(e.completed_on.as_ref()),
        }),
        Event::TrainingSubsidyGranted(e) => DpfView::Subsidy(DpfSubsidy {
            programme_id: e.programme_id.clone(),
            person_ref: e.person_ref.clone(),
            subsidy_fen: e.tuition_fen.saturating_add(e.living_allowance_fen),
            granted_on: date(e.granted_on.as_ref()),
        }),
        Event::PersonPlaced(e) => DpfView::Placed(DpfPlacement {
            placement_id: e.placement_id.clone(),
            person_ref: e.person_ref.clone(),
            employment_form: form(e.employment_form()),
            employer_uscc: e.employer_uscc.clone(),
            start_date: date(e.start_date.as_ref()),
            social_insurance_paid: e.social_insurance_paid,
        }),
        Event::NewEmploymentCounted(e) => DpfView::NewEmployment(DpfNewEmployment {
            person_ref: e.person_ref.clone(),
            year: e.year,
            region: e.region.clone(),
            employment_form: form(e.employment_form()),
        }),
        Event::PlacementEnded(e) => DpfView::PlacementEnded(PlacementEnded {
            placement_id: e.placement_id.clone(),
            person_ref: e.person_ref.clone(),
            end_date: date(e.end_date.as_ref()),
        }),
        Event::PhaseOutStarted(_)
        | Event::PhaseOutExtensionApproved(_)
        | Event::PhaseOutCancelled(_)
        | Event::BenefitPhasedOut(_) => DpfView::PhaseOut(phase_out_flag(e)?),
        Event::GraduateLedgerOpened(e) => DpfView::LedgerOpened(DpfLedger {
            ledger_id: e.ledger_id.clone(),
            person_ref: e.person_ref.clone(),
            year: e.year,
            city: e.city.clone(),
            school: e.school.clone(),
        }),
        Event::GraduateServicePlanSet(e) => DpfView::PlanSet(LedgerStep {
            ledger_id: e.ledger_id.clone(),
        }),
        Event::GraduateServiceDelivered(e) => DpfView::ServiceDelivered(LedgerStep {
            ledger_id: e.ledger_id.clone(),
        }),
        Event::GraduateOutcomeRecorded(e) => DpfView::GraduateOutcome(DpfGraduateOutcome {
            ledger_id: e.ledger_id.clone(),
            outcome: outcome(e.outcome()),
            employment_form: form(e.employment_form()),
        }),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Human Resources and Social Security

/// What HRSS sees: employment needs and referral consent, training with its
/// subsidies, placements without wage, public-welfare posts, and the
/// phase-out flag. Never a disability grade or category, an assessment or a
/// low-income status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HrssView {
    NeedRegistered(HrssNeed),
    Referral(HrssReferral),
    Enrolled(HrssEnrolment),
    TrainingCompleted(HrssTrainingCompleted),
    Subsidy(HrssSubsidy),
    Placed(HrssPlacement),
    PostsDeveloped(PostsDeveloped),
    PostAssigned(HrssPostAssigned),
    PostVacated(HrssPostVacated),
    PhaseOut(PhaseOutFlag),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrssNeed {
    pub person_ref: String,
    pub year: i32,
    pub intended_occupations: Vec<String>,
    pub intended_region: String,
}

/// Consent to refer the person to HRSS granted (`true`) or withdrawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrssReferral {
    pub person_ref: String,
    pub consented: bool,
    pub on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrssEnrolment {
    pub programme_id: String,
    pub person_ref: String,
    pub training_type: String,
    pub enrolled_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrssTrainingCompleted {
    pub programme_id: String,
    pub person_ref: String,
    pub passed: bool,
    pub completed_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrssSubsidy {
    pub programme_id: String,
    pub person_ref: String,
    pub tuition_fen: i64,
    pub living_allowance_fen: i64,
    pub granted_on: Option<NaiveDate>,
}

/// A placement: form, employer, start and social insurance — no wage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrssPlacement {
    pub placement_id: String,
    pub person_ref: String,
    pub employment_form: String,
    pub employer_uscc: String,
    pub start_date: Option<NaiveDate>,
    pub social_insurance_paid: bool,
    /// County of the workplace.
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrssPostAssigned {
    pub region: String,
    pub year: i32,
    pub post_id: String,
    pub person_ref: String,
    pub employer_uscc: String,
    pub start_date: Option<NaiveDate>,
    pub planned_end: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrssPostVacated {
    pub region: String,
    pub year: i32,
    pub post_id: String,
    pub person_ref: String,
    pub end_date: Option<NaiveDate>,
}

fn is_referral(purpose: pb::ConsentPurpose) -> bool {
    purpose == pb::ConsentPurpose::ReferToHrss
}

fn posts_developed(e: &pb::PublicWelfarePostsDeveloped) -> PostsDeveloped {
    PostsDeveloped {
        region: e.region.clone(),
        year: e.year,
        total_posts: e.total_posts.into(),
        disabled_posts: e.disabled_posts.into(),
    }
}

/// HRSS's view of an event.
pub fn hrss(e: &Event) -> Option<HrssView> {
    Some(match e {
        Event::EmploymentNeedRegistered(e) => HrssView::NeedRegistered(HrssNeed {
            person_ref: e.person_ref.clone(),
            year: e.year,
            intended_occupations: e.intended_occupations.clone(),
            intended_region: e.intended_region.clone(),
        }),
        Event::ConsentGranted(e) if is_referral(e.purpose()) => HrssView::Referral(HrssReferral {
            person_ref: e.person_ref.clone(),
            consented: true,
            on: date(e.granted_on.as_ref()),
        }),
        Event::ConsentWithdrawn(e) if is_referral(e.purpose()) => {
            HrssView::Referral(HrssReferral {
                person_ref: e.person_ref.clone(),
                consented: false,
                on: date(e.withdrawn_on.as_ref()),
            })
        }
        Event::TraineeEnrolled(e) => HrssView::Enrolled(HrssEnrolment {
            programme_id: e.programme_id.clone(),
            person_ref: e.person_ref.clone(),
            training_type: training_type(e.training_type()),
            enrolled_on: date(e.enrolled_on.as_ref()),
        }),
        Event::TrainingCompleted(e) => HrssView::TrainingCompleted(HrssTrainingCompleted {
            programme_id: e.programme_id.clone(),
            person_ref: e.person_ref.clone(),
            passed: e.passed,
            completed_on: date(e.completed_on.as_ref()),
        }),
        Event::TrainingSubsidyGranted(e) => HrssView::Subsidy(HrssSubsidy {
            programme_id: e.programme_id.clone(),
            person_ref: e.person_ref.clone(),
            tuition_fen: e.tuition_fen,
            living_allowance_fen: e.living_allowance_fen,
            granted_on: date(e.granted_on.as_ref()),
        }),
        Event::PersonPlaced(e) => HrssView::Placed(HrssPlacement {
            placement_id: e.placement_id.clone(),
            person_ref: e.person_ref.clone(),
            employment_form: form(e.employment_form()),
            employer_uscc: e.employer_uscc.clone(),
            start_date: date(e.start_date.as_ref()),
            social_insurance_paid: e.social_insurance_paid,
            region: e.region.clone(),
        }),
        Event::PublicWelfarePostsDeveloped(e) => HrssView::PostsDeveloped(posts_developed(e)),
        Event::PublicWelfarePostAssigned(e) => HrssView::PostAssigned(HrssPostAssigned {
            region: e.region.clone(),
            year: e.year,
            post_id: e.post_id.clone(),
            person_ref: e.person_ref.clone(),
            employer_uscc: e.employer_uscc.clone(),
            start_date: date(e.start_date.as_ref()),
            planned_end: date(e.planned_end.as_ref()),
        }),
        Event::PublicWelfarePostVacated(e) => HrssView::PostVacated(HrssPostVacated {
            region: e.region.clone(),
            year: e.year,
            post_id: e.post_id.clone(),
            person_ref: e.person_ref.clone(),
            end_date: date(e.end_date.as_ref()),
        }),
        Event::PhaseOutStarted(_)
        | Event::PhaseOutExtensionApproved(_)
        | Event::PhaseOutCancelled(_)
        | Event::BenefitPhasedOut(_) => HrssView::PhaseOut(phase_out_flag(e)?),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Civil Affairs

/// What Civil Affairs sees: its households, reassessments and phase-outs with
/// incomes and statuses, and every placement's start, end, employer and
/// wage (its projection keeps only those of its households' members). Never
/// training, assessments, the Four Ones, graduates or disability details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CivilAffairsView {
    StatusAsserted(CaStatusAsserted),
    ReassessmentRequested(CaReassessmentRequested),
    IncomeReassessed(CaIncomeReassessed),
    PhaseOutStarted(CaPhaseOutStarted),
    PhaseOutExtended(CaPhaseOutExtended),
    PhaseOutCancelled(CaPhaseOutCancelled),
    BenefitPhasedOut(CaBenefitPhasedOut),
    BenefitTerminated(CaBenefitDecision),
    BenefitContinued(CaBenefitDecision),
    Placed(CaPlacement),
    PlacementEnded(PlacementEnded),
    /// The person's data key is gone: their wage goes with it.
    Erased(PersonOnly),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaStatusAsserted {
    pub household_ref: String,
    pub member_person_refs: Vec<String>,
    /// `dibao`, `margin`, …; `None` if sealed or erased.
    pub status: Option<String>,
    pub effective_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaReassessmentRequested {
    pub household_ref: String,
    pub trigger: String,
    pub triggering_placement_id: String,
    pub requested_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaIncomeReassessed {
    pub household_ref: String,
    /// Per-capita monthly income; `None` if sealed or erased.
    pub per_capita_income_fen: Option<i64>,
    pub dibao_standard_fen: i64,
    pub edge_threshold_fen: i64,
    pub meets_edge_criteria: bool,
    pub assessed_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPhaseOutStarted {
    pub household_ref: String,
    pub phase_out_id: String,
    pub start_date: Option<NaiveDate>,
    pub planned_end: Option<NaiveDate>,
    pub benefit_mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPhaseOutExtended {
    pub household_ref: String,
    pub phase_out_id: String,
    pub new_end: Option<NaiveDate>,
    pub approved_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPhaseOutCancelled {
    pub household_ref: String,
    pub phase_out_id: String,
    pub reason: String,
    pub cancelled_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBenefitPhasedOut {
    pub household_ref: String,
    pub phase_out_id: String,
    pub end_date: Option<NaiveDate>,
    pub resulting_status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBenefitDecision {
    pub household_ref: String,
    pub effective_on: Option<NaiveDate>,
}

/// A placement with its wage, for the household income test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPlacement {
    pub placement_id: String,
    pub person_ref: String,
    pub employer_uscc: String,
    pub start_date: Option<NaiveDate>,
    /// Monthly wage; `None` if sealed or erased.
    pub monthly_wage_fen: Option<i64>,
}

/// Civil Affairs' view of an event.
pub fn civil_affairs(e: &Event) -> Option<CivilAffairsView> {
    Some(match e {
        Event::LowIncomeStatusAsserted(e) => CivilAffairsView::StatusAsserted(CaStatusAsserted {
            household_ref: e.household_ref.clone(),
            member_person_refs: e.member_person_refs.clone(),
            status: clear_small(e.status.as_ref())
                .and_then(|s| pb::LowIncomeStatus::try_from(s).ok())
                .map(low_income_status),
            effective_on: date(e.effective_on.as_ref()),
        }),
        Event::HouseholdReassessmentRequested(e) => {
            CivilAffairsView::ReassessmentRequested(CaReassessmentRequested {
                household_ref: e.household_ref.clone(),
                trigger: short(e.trigger().as_str_name(), "REASSESSMENT_TRIGGER_"),
                triggering_placement_id: e.triggering_placement_id.clone(),
                requested_on: date(e.requested_on.as_ref()),
            })
        }
        Event::HouseholdIncomeReassessed(e) => {
            CivilAffairsView::IncomeReassessed(CaIncomeReassessed {
                household_ref: e.household_ref.clone(),
                per_capita_income_fen: clear_int(e.per_capita_income.as_ref()),
                dibao_standard_fen: e.dibao_standard_fen,
                edge_threshold_fen: e.edge_threshold_fen,
                meets_edge_criteria: e.meets_edge_criteria,
                assessed_on: date(e.assessed_on.as_ref()),
            })
        }
        Event::PhaseOutStarted(e) => CivilAffairsView::PhaseOutStarted(CaPhaseOutStarted {
            household_ref: e.household_ref.clone(),
            phase_out_id: e.phase_out_id.clone(),
            start_date: date(e.start_date.as_ref()),
            planned_end: date(e.planned_end_date.as_ref()),
            benefit_mode: short(e.benefit_mode().as_str_name(), "BENEFIT_MODE_"),
        }),
        Event::PhaseOutExtensionApproved(e) => {
            CivilAffairsView::PhaseOutExtended(CaPhaseOutExtended {
                household_ref: e.household_ref.clone(),
                phase_out_id: e.phase_out_id.clone(),
                new_end: date(e.new_end_date.as_ref()),
                approved_by: e.approved_by.clone(),
            })
        }
        Event::PhaseOutCancelled(e) => CivilAffairsView::PhaseOutCancelled(CaPhaseOutCancelled {
            household_ref: e.household_ref.clone(),
            phase_out_id: e.phase_out_id.clone(),
            reason: short(e.reason().as_str_name(), "PHASE_OUT_CANCEL_REASON_"),
            cancelled_on: date(e.cancelled_on.as_ref()),
        }),
        Event::BenefitPhasedOut(e) => CivilAffairsView::BenefitPhasedOut(CaBenefitPhasedOut {
            household_ref: e.household_ref.clone(),
            phase_out_id: e.phase_out_id.clone(),
            end_date: date(e.end_date.as_ref()),
            resulting_status: low_income_status(e.resulting_status()),
        }),
        Event::DibaoBenefitTerminated(e) => {
            CivilAffairsView::BenefitTerminated(CaBenefitDecision {
                household_ref: e.household_ref.clone(),
                effective_on: date(e.effective_on.as_ref()),
            })
        }
        Event::DibaoBenefitContinued(e) => CivilAffairsView::BenefitContinued(CaBenefitDecision {
            household_ref: e.household_ref.clone(),
            effective_on: date(e.effective_on.as_ref()),
        }),
        Event::PersonPlaced(e) => CivilAffairsView::Placed(CaPlacement {
            placement_id: e.placement_id.clone(),
            person_ref: e.person_ref.clone(),
            employer_uscc: e.employer_uscc.clone(),
            start_date: date(e.start_date.as_ref()),
            monthly_wage_fen: clear_int(e.monthly_wage.as_ref()),
        }),
        Event::PlacementEnded(e) => CivilAffairsView::PlacementEnded(PlacementEnded {
            placement_id: e.placement_id.clone(),
            person_ref: e.person_ref.clone(),
            end_date: date(e.end_date.as_ref()),
        }),
        Event::PersonalDataErased(e) => CivilAffairsView::Erased(PersonOnly {
            person_ref: e.person_ref.clone(),
        }),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Education

/// What Education sees: its cohorts with matched and unmatched counts, the
/// ledgers opened for its graduates (school, year) and each one's outcome
/// category. Never disability details, plans, persons' references or
/// low-income status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EducationView {
    CohortReceived(EduCohort),
    Matched(EduBatchRecord),
    Unmatched(EduBatchRecord),
    LedgerOpened(EduLedger),
    Outcome(EduOutcome),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EduCohort {
    pub batch_id: String,
    pub year: i32,
    pub record_count: i64,
    pub received_on: Option<NaiveDate>,
}

/// One record of a batch matched or not — counted, nothing more (an
/// unmatched record's reason would say whether the graduate holds a valid
/// disability certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EduBatchRecord {
    pub batch_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EduLedger {
    pub ledger_id: String,
    pub school: String,
    pub year: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EduOutcome {
    pub ledger_id: String,
    /// `employed`, `further_study`, `not_yet_employed`, `no_intention`.
    pub outcome: String,
}

/// Education's view of an event.
pub fn education(e: &Event) -> Option<EducationView> {
    Some(match e {
        Event::GraduateCohortReceived(e) => EducationView::CohortReceived(EduCohort {
            batch_id: e.batch_id.clone(),
            year: e.year,
            record_count: e.record_count.into(),
            received_on: date(e.received_on.as_ref()),
        }),
        Event::GraduateMatched(e) => EducationView::Matched(EduBatchRecord {
            batch_id: e.batch_id.clone(),
        }),
        Event::GraduateUnmatched(e) => EducationView::Unmatched(EduBatchRecord {
            batch_id: e.batch_id.clone(),
        }),
        Event::GraduateLedgerOpened(e) => EducationView::LedgerOpened(EduLedger {
            ledger_id: e.ledger_id.clone(),
            school: e.school.clone(),
            year: e.year,
        }),
        Event::GraduateOutcomeRecorded(e) => EducationView::Outcome(EduOutcome {
            ledger_id: e.ledger_id.clone(),
            outcome: outcome(e.outcome()),
        }),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// SASAC and the Organization Department

/// What SASAC and the Organization Department see: employers, establishment
/// sizes, quota reports, public-unit obligations, disclosures and DPF cadre
/// ratios — organisations and counts, never an individual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SasacView {
    Employer(SasacEmployer),
    Establishment(SasacEstablishment),
    Quota(SasacQuota),
    Obligation(SasacObligation),
    Disclosure(SasacDisclosure),
    DpfCadres(SasacDpfCadres),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasacEmployer {
    pub uscc: String,
    pub name: String,
    pub org_type: String,
    pub level: String,
    pub region: String,
    pub is_school_or_kindergarten: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasacEstablishment {
    pub uscc: String,
    pub year: i32,
    pub approved_establishment: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasacQuota {
    pub uscc: String,
    pub year: i32,
    pub staff: i64,
    pub counted_disabled: i64,
    pub required_disabled_milli: i64,
    pub meets_quota: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasacObligation {
    pub uscc: String,
    pub year: i32,
    pub level: String,
    pub org_type: String,
    pub establishment: i64,
    pub counted_disabled: i64,
    pub rule_applies: bool,
    pub meets_quota: bool,
    pub obligated_to_hire_one: bool,
    pub deadline: Option<NaiveDate>,
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasacDisclosure {
    pub uscc: String,
    pub year: i32,
    pub disabled_count: i64,
    pub staff: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasacDpfCadres {
    pub dpf_org: String,
    pub region: String,
    pub year: i32,
    pub total_cadres: i64,
    pub disabled_cadres: i64,
    pub compliant: bool,
}

/// SASAC's and the Organization Department's view of an event.
pub fn sasac(e: &Event) -> Option<SasacView> {
    Some(match e {
        Event::EmployerRegistered(e) => SasacView::Employer(SasacEmployer {
            uscc: e.uscc.clone(),
            name: e.name.clone(),
            org_type: org_type(e.org_type()),
            level: admin_level(e.level()),
            region: e.region.clone(),
            is_school_or_kindergarten: e.is_school_or_kindergarten,
        }),
        Event::EstablishmentSizeRecorded(e) => SasacView::Establishment(SasacEstablishment {
            uscc: e.uscc.clone(),
            year: e.year,
            approved_establishment: e.approved_establishment.into(),
        }),
        Event::QuotaReported(e) => SasacView::Quota(SasacQuota {
            uscc: e.uscc.clone(),
            year: e.year,
            staff: e.staff.into(),
            counted_disabled: e.counted_disabled.into(),
            required_disabled_milli: e.required_disabled_milli.into(),
            meets_quota: e.meets_quota,
        }),
        Event::PublicUnitObligationEvaluated(e) => SasacView::Obligation(SasacObligation {
            uscc: e.uscc.clone(),
            year: e.year,
            level: admin_level(e.level()),
            org_type: org_type(e.org_type()),
            establishment: e.establishment.into(),
            counted_disabled: e.counted_disabled.into(),
            rule_applies: e.rule_applies,
            meets_quota: e.meets_quota,
            obligated_to_hire_one: e.obligated_to_hire_one,
            deadline: date(e.deadline.as_ref()),
            rule: e.rule.clone(),
        }),
        Event::DisabledEmploymentDisclosed(e) => SasacView::Disclosure(SasacDisclosure {
            uscc: e.uscc.clone(),
            year: e.year,
            disabled_count: e.disabled_count.into(),
            staff: e.staff.into(),
        }),
        Event::DpfCadreRatioReported(e) => SasacView::DpfCadres(SasacDpfCadres {
            dpf_org: e.dpf_org.clone(),
            region: e.region.clone(),
            year: e.year,
            total_cadres: e.total_cadres.into(),
            disabled_cadres: e.disabled_cadres.into(),
            compliant: e.compliant,
        }),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Provincial committee

/// What the provincial committee sees: aggregates only. No variant carries a
/// person reference; per-person events reduce to the city, year and category
/// they count toward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitteeView {
    NewEmployment(CommitteeNewEmployment),
    FourOnesVerified(CommitteeVerified),
    ProgrammeRegistered(CommitteeProgramme),
    TrainingCompleted(CommitteeTrainingCompleted),
    PostsDeveloped(PostsDeveloped),
    FundBudgeted(CommitteeFundBudget),
    FundAllocated(CommitteeAllocation),
    CapOverride(CommitteeCapOverride),
    ReportSubmitted(CommitteeReport),
    ReportOverdue(CommitteeOverdue),
    Evaluation(CommitteeEvaluation),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeNewEmployment {
    pub city: String,
    pub year: i32,
    pub employment_form: String,
}

/// One basic-info verification, attributed to the city of the verifying
/// office (see [`committee`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeVerified {
    pub city: String,
    pub year: i32,
}

/// A training programme and the city it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeProgramme {
    pub programme_id: String,
    pub city: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeTrainingCompleted {
    pub programme_id: String,
    pub year: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeFundBudget {
    pub region: String,
    pub year: i32,
    pub fund_base_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeAllocation {
    pub region: String,
    pub year: i32,
    /// The fund line (`pwp_social_insurance`, `training`, …).
    pub purpose: String,
    pub amount_fen: i64,
    /// Cumulative in this line after the allocation.
    pub purpose_total_fen: i64,
    pub under_override: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeCapOverride {
    pub region: String,
    pub year: i32,
    pub purpose: String,
    pub approved_total_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeReport {
    pub city: String,
    pub year: i32,
    pub submitted_on: Option<NaiveDate>,
    pub new_employment: i64,
    pub four_ones_verified: i64,
    pub trained: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeOverdue {
    pub city: String,
    pub year: i32,
    pub due_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeEvaluation {
    pub plan_id: String,
    pub completed_on: Option<NaiveDate>,
    pub new_employment_total: i64,
    pub target: i64,
}

fn fund_purpose(c: pb::FundCategory) -> String {
    short(c.as_str_name(), "FUND_CATEGORY_")
}

/// The committee's view of an event.
pub fn committee(e: &Event) -> Option<CommitteeView> {
    Some(match e {
        Event::NewEmploymentCounted(e) => CommitteeView::NewEmployment(CommitteeNewEmployment {
            city: city_of(&e.region),
            year: e.year,
            employment_form: form(e.employment_form()),
        }),
        Event::BasicInfoVerified(e) => CommitteeView::FourOnesVerified(CommitteeVerified {
            city: city_of(&e.region),
            year: e.year,
        }),
        Event::TrainingProgrammeRegistered(e) => {
            CommitteeView::ProgrammeRegistered(CommitteeProgramme {
                programme_id: e.programme_id.clone(),
                city: city_of(&e.region),
            })
        }
        Event::TrainingCompleted(e) => {
            CommitteeView::TrainingCompleted(CommitteeTrainingCompleted {
                programme_id: e.programme_id.clone(),
                year: year_of(e.completed_on.as_ref()),
            })
        }
        Event::PublicWelfarePostsDeveloped(e) => CommitteeView::PostsDeveloped(posts_developed(e)),
        Event::EmploymentSecurityFundBudgeted(e) => {
            CommitteeView::FundBudgeted(CommitteeFundBudget {
                region: e.region.clone(),
                year: e.year,
                fund_base_fen: e.fund_base_fen,
            })
        }
        Event::FundAllocationMade(e) => CommitteeView::FundAllocated(CommitteeAllocation {
            region: e.region.clone(),
            year: e.year,
            purpose: fund_purpose(e.category()),
            amount_fen: e.amount_fen,
            purpose_total_fen: e.category_total_fen,
            under_override: e.under_override,
        }),
        Event::AllocationCapOverrideApproved(e) => {
            CommitteeView::CapOverride(CommitteeCapOverride {
                region: e.region.clone(),
                year: e.year,
                purpose: fund_purpose(e.category()),
                approved_total_fen: e.approved_total_fen,
            })
        }
        Event::CityAnnualReportSubmitted(e) => CommitteeView::ReportSubmitted(CommitteeReport {
            city: e.city.clone(),
            year: e.year,
            submitted_on: date(e.submitted_on.as_ref()),
            new_employment: e.new_employment.into(),
            four_ones_verified: e.four_ones_verified.into(),
            trained: e.trained.into(),
        }),
        Event::CityAnnualReportOverdue(e) => CommitteeView::ReportOverdue(CommitteeOverdue {
            city: e.city.clone(),
            year: e.year,
            due_on: date(e.due_on.as_ref()),
        }),
        Event::ProvincialEvaluationCompleted(e) => CommitteeView::Evaluation(CommitteeEvaluation {
            plan_id: e.plan_id.clone(),
            completed_on: date(e.completed_on.as_ref()),
            new_employment_total: e.new_employment_total.into(),
            target: e.target.into(),
        }),
        _ => return None,
    })
}

/// Every department's view of an event, in the order of [`View`]'s variants.
pub fn all(e: &Event) -> Vec<View> {
    [
        dpf(e).map(View::Dpf),
        hrss(e).map(View::Hrss),
        civil_affairs(e).map(View::CivilAffairs),
        education(e).map(View::Education),
        sasac(e).map(View::Sasac),
        committee(e).map(View::Committee),
    ]
    .into_iter()
    .flatten()
    .collect()
}

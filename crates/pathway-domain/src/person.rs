//! The person (`person-<person_ref>`): registry, the Four Ones (四个一),
//! training taken and placements, decided on one stream per person.
//!
//! The stream key is the random `person_ref` minted by the Registry, never the
//! ID number. Personal values (name, ID, phone, address, certificate number,
//! category and grade, wage, assessment, reasons) leave this module as clear
//! [`pb::Personal`] fields; the engine seals them before they are stored.
//!
//! Rules decided here:
//! - registration derives sex and birth year/month from the ID number (GB 11643);
//! - a certificate number starts with the person's ID number and
//!   `valid_until > valid_from`;
//! - the Four Ones: a basic-info verification in a plan year (R-SVC-1); an
//!   assessment, needs registration or service only after a verification in
//!   the same year that says the person wants work — the latest verification
//!   of the year wins (R-SVC-2);
//! - training: not enrolled twice in one programme; a subsidy only after the
//!   training is completed, once per programme (R-TRN-1);
//! - placement: an employer's credit code unless the form needs none; start
//!   not after today; quota eligibility (contract ≥ 12 months or established
//!   post, wage ≥ minimum, social insurance paid); one open placement per
//!   employer; new employment counted at most once per calendar year and only
//!   in plan years (R-TGT-1).
//!
//! After [`PersonalDataErased`](pb::PersonalDataErased) the person's data key
//! is gone, so commands that would record new personal data are rejected:
//! `record_certificate`, `verify_basic_info`, `assess_capacity`,
//! `place_person` and `grant_consent`; `erase_data` itself happens once.
//! Commands that only move pseudonymous case history on stay allowed:
//! `change_residence`, `withdraw_consent`, `register_need`, `provide_service`,
//! `enroll_trainee`, `complete_training`, `grant_training_subsidy` and
//! `end_placement`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::{
    Aggregate, Context, Decision, Event, Rejection,
    convert::{self, date, naive, personal_int, personal_text},
    pb,
    training::TrainingType,
    validate,
};

/// Length of `id_hmac` and `certificate_hmac`: HMAC-SHA256 output.
pub const HMAC_BYTES: usize = 32;
/// Longest identifier minted outside the domain (person_ref, placement_id …).
pub const REF_CHARS_MAX: usize = 64;
/// Longest name of a person or an organisation.
pub const NAME_CHARS_MAX: usize = 100;
/// Longest free text (reasons, addresses, levels).
pub const TEXT_CHARS_MAX: usize = 500;
/// Shortest phone number, in characters.
pub const PHONE_CHARS_MIN: usize = 5;
/// Longest phone number, in characters.
pub const PHONE_CHARS_MAX: usize = 20;
/// Most intended occupations in one needs registration.
pub const OCCUPATIONS_MAX: usize = 20;
/// A contract this long (or an established post) is quota-eligible.
pub const QUOTA_CONTRACT_MONTHS_MIN: u32 = 12;

/// A small serde enum that stands for one protobuf enum, without its
/// `*_UNSPECIFIED` zero value: `snake_case` names in JSON, `.pb()` on the wire.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident => $pb:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $pbv:ident ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl From<$name> for crate::pb::$pb {
            fn from(v: $name) -> Self {
                v.pb()
            }
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire enum value.
            pub fn pb(self) -> crate::pb::$pb {
                match self {
                    $( $name::$variant => crate::pb::$pb::$pbv ),+
                }
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// 就业形式, the form of a placement.
    EmploymentForm => EmploymentForm {
        /// 按比例
        Quota => Quota,
        /// 集中
        Centralised => Centralised,
        /// 个体
        SelfEmployed => SelfEmployed,
        /// 自主创业
        Entrepreneurship => Entrepreneurship,
        /// 公益性岗位
        PublicWelfarePost => PublicWelfarePost,
        /// 辅助性
        Auxiliary => Auxiliary,
        /// 灵活
        Flexible => Flexible,
        /// 农业种养加
        Farming => Farming,
        /// 盲人按摩
        BlindMassage => BlindMassage,
    }
}

impl EmploymentForm {
    /// Whether a placement of this form has an employer with a credit code.
    pub fn needs_employer(self) -> bool {
        !matches!(
            self,
            EmploymentForm::SelfEmployed
                | EmploymentForm::Entrepreneurship
                | EmploymentForm::Flexible
                | EmploymentForm::Farming
        )
    }
}

wire_enum! {
    /// The contract of a placement.
    ContractType => ContractType {
        /// 在编
        EstablishedPost => EstablishedPost,
        /// 劳动合同
        LabourContract => LabourContract,
        /// 服务协议
        ServiceAgreement => ServiceAgreement,
        /// no written contract
        None => None,
    }
}

wire_enum! {
    /// Why a placement ended.
    PlacementEndReason => PlacementEndReason {
        Resigned => Resigned,
        ContractEnded => ContractEnded,
        Dismissed => Dismissed,
        Other => Other,
    }
}

wire_enum! {
    /// The purpose a consent is given for.
    ConsentPurpose => ConsentPurpose {
        ReferToHrss => ReferToHrss,
        ShareOutcomeWithEducation => ShareOutcomeWithEducation,
        ShareCategoryForAccommodation => ShareCategoryForAccommodation,
    }
}

wire_enum! {
    /// Employment status found by a basic-info verification.
    EmploymentStatus => EmploymentStatus {
        Employed => Employed,
        Unemployed => Unemployed,
        UnableToWork => UnableToWork,
    }
}

wire_enum! {
    /// The kind of employment service provided.
    ServiceType => ServiceType {
        PolicyConsultation => PolicyConsultation,
        JobReferral => JobReferral,
        CareerGuidance => CareerGuidance,
        JobFair => JobFair,
        SupportedEmployment => SupportedEmployment,
        EntrepreneurshipGuidance => EntrepreneurshipGuidance,
        TrainingReferral => TrainingReferral,
    }
}

/// Register a person. `id_hmac` is HMAC-SHA256 of the normalised ID number,
/// computed by the engine with the exchange key (the domain holds no key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterPerson {
    pub person_ref: String,
    pub name: String,
    pub id_number: String,
    pub id_hmac: Vec<u8>,
    pub phone: Option<String>,
    pub address: Option<String>,
    /// GB/T 2260 county code; may be outside the province.
    pub hukou_region: String,
    /// GB/T 2260 county code in Heilongjiang.
    pub residence_region: String,
    pub registering_org: String,
}

/// Record the person's disability certificate (第二代残疾人证).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordCertificate {
    pub person_ref: String,
    pub certificate_number: String,
    pub certificate_hmac: Vec<u8>,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
    pub issuing_org: String,
}

/// The person moved their habitual residence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeResidence {
    pub person_ref: String,
    pub to_region: String,
    pub effective_on: NaiveDate,
}

/// Grant or withdraw a consent (dated today).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    pub person_ref: String,
    pub purpose: ConsentPurpose,
}

/// Destroy the person's data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseData {
    pub person_ref: String,
    pub key_id: String,
    pub reason: String,
    pub authorised_by: String,
}

/// One of four: basic information verified (核实基本信息).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBasicInfo {
    pub person_ref: String,
    pub year: i32,
    pub verified_by_org: String,
    pub employment_status: EmploymentStatus,
    pub wants_work: bool,
    pub has_work_capacity: bool,
    pub non_work_reason: Option<String>,
    pub verified_on: NaiveDate,
}

/// One of four: vocational capacity assessed (职业能力评估).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessCapacity {
    pub person_ref: String,
    pub year: i32,
    pub assessment_id: String,
    pub assessor_org: String,
    pub capacity_level: String,
    pub assessed_on: NaiveDate,
}

/// One of four: employment need registered (就业需求登记).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterNeed {
    pub person_ref: String,
    pub year: i32,
    pub intended_occupations: Vec<String>,
    pub intended_region: String,
    pub preferred_forms: Vec<EmploymentForm>,
    pub registered_on: NaiveDate,
}

/// One of four: employment service provided (就业服务).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvideService {
    pub person_ref: String,
    pub year: i32,
    pub service_type: ServiceType,
    pub provider_org: String,
    pub provided_on: NaiveDate,
}

/// Enrol the person in a training programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollTrainee {
    pub person_ref: String,
    pub programme_id: String,
    pub training_type: TrainingType,
    pub enrolled_on: NaiveDate,
}

/// The person finished a programme they are enrolled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteTraining {
    pub person_ref: String,
    pub programme_id: String,
    pub passed: bool,
    pub skill_certificate_level: Option<String>,
    pub completed_on: NaiveDate,
}

/// Pay the training subsidy (tuition, living allowance including transport).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantTrainingSubsidy {
    pub person_ref: String,
    pub programme_id: String,
    pub tuition_fen: i64,
    pub living_allowance_fen: i64,
    pub payer_org: String,
    pub granted_on: NaiveDate,
}

/// The person started work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacePerson {
    pub person_ref: String,
    pub placement_id: String,
    pub employment_form: EmploymentForm,
    /// Unified social credit code; required unless the form needs no employer.
    pub employer_uscc: Option<String>,
    pub start_date: NaiveDate,
    pub contract_type: ContractType,
    pub contract_months: u32,
    pub monthly_wage_fen: i64,
    pub wage_at_least_minimum: bool,
    pub social_insurance_paid: bool,
    pub post_id: Option<String>,
    /// GB/T 2260 county code of the workplace.
    pub region: String,
}

/// The person's placement ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndPlacement {
    pub person_ref: String,
    pub placement_id: String,
    pub end_date: NaiveDate,
    pub reason: PlacementEndReason,
}

/// The rule a second erasure of the same person is rejected under (callers
/// that make erasure idempotent match on it).
pub const ERASED_ONCE_RULE: &str = "PIPL erasure: the data key is destroyed once";

/// Commands decided on a person's stream; JSON `{"type": "place_person", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PersonCommand {
    RegisterPerson(RegisterPerson),
    RecordCertificate(RecordCertificate),
    ChangeResidence(ChangeResidence),
    GrantConsent(Consent),
    WithdrawConsent(Consent),
    EraseData(EraseData),
    VerifyBasicInfo(VerifyBasicInfo),
    AssessCapacity(AssessCapacity),
    RegisterNeed(RegisterNeed),
    ProvideService(ProvideService),
    EnrollTrainee(EnrollTrainee),
    CompleteTraining(CompleteTraining),
    GrantTrainingSubsidy(GrantTrainingSubsidy),
    PlacePerson(PlacePerson),
    EndPlacement(EndPlacement),
}

impl PersonCommand {
    /// The person the command is addressed to.
    pub fn person_ref(&self) -> &str {
        match self {
            PersonCommand::RegisterPerson(c) => &c.person_ref,
            PersonCommand::RecordCertificate(c) => &c.person_ref,
            PersonCommand::ChangeResidence(c) => &c.person_ref,
            PersonCommand::GrantConsent(c) | PersonCommand::WithdrawConsent(c) => &c.person_ref,
            PersonCommand::EraseData(c) => &c.person_ref,
            PersonCommand::VerifyBasicInfo(c) => &c.person_ref,
            PersonCommand::AssessCapacity(c) => &c.person_ref,
            PersonCommand::RegisterNeed(c) => &c.person_ref,
            PersonCommand::ProvideService(c) => &c.person_ref,
            PersonCommand::EnrollTrainee(c) => &c.person_ref,
            PersonCommand::CompleteTraining(c) => &c.person_ref,
            PersonCommand::GrantTrainingSubsidy(c) => &c.person_ref,
            PersonCommand::PlacePerson(c) => &c.person_ref,
            PersonCommand::EndPlacement(c) => &c.person_ref,
        }
    }

    /// The stream the command is decided on: `person-<person_ref>`.
    pub fn stream_id(&self) -> String {
        format!("{}-{}", Person::CATEGORY, self.person_ref())
    }
}

/// What registration recorded; the clear ID only while the event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub person_ref: String,
    /// The ID number in the clear; `None` once sealed or erased.
    pub id_number: Option<String>,
    /// Birth date read from the clear ID number.
    pub birth_date: Option<NaiveDate>,
    pub sex: pb::Sex,
    pub birth_year: i32,
    pub birth_month: u32,
    pub hukou_region: String,
    pub residence_region: String,
}

/// The certificate on record (its category and grade when clear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    pub category: Option<i64>,
    pub grade: Option<i64>,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
}

/// The latest basic-info verification of a year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub verified_on: Option<NaiveDate>,
    pub is_working_age: bool,
    pub wants_work: bool,
}

/// Enrolment in one training programme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub enrolled_on: Option<NaiveDate>,
    pub completed_on: Option<NaiveDate>,
    pub subsidised: bool,
}

/// One placement, open until ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Empty when the form has no employer.
    pub employer_uscc: String,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
}

impl Placement {
    /// Whether the placement has not ended.
    pub fn is_open(&self) -> bool {
        self.end_date.is_none()
    }
}

/// The state of one person: a fold of the person's stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    registration: Option<Registration>,
    erased: bool,
    consents: BTreeSet<i32>,
    certificate: Option<CertificateRecord>,
    verifications: BTreeMap<i32, Verification>,
    enrolments: BTreeMap<String, Enrolment>,
    placements: BTreeMap<String, Placement>,
    counted_years: BTreeSet<i32>,
}

impl Person {
    /// The registration, if the person is registered.
    pub fn registration(&self) -> Option<&Registration> {
        self.registration.as_ref()
    }

    /// Whether the person's data key was destroyed.
    pub fn is_erased(&self) -> bool {
        self.erased
    }

    /// The certificate on record.
    pub fn certificate(&self) -> Option<&CertificateRecord> {
        self.certificate.as_ref()
    }

    /// Consent purposes currently granted (wire values).
    pub fn consents(&self) -> &BTreeSet<i32> {
        &self.consents
    }

    /// The latest verification per year.
    pub fn verifications(&self) -> &BTreeMap<i32, Verification> {
        &self.verifications
    }

    /// Enrolments by programme id.
    pub fn enrolments(&self) -> &BTreeMap<String, Enrolment> {
        &self.enrolments
    }

    /// Placements by placement id.
    pub fn placements(&self) -> &BTreeMap<String, Placement> {
        &self.placements
    }

    /// Calendar years in which the person was counted as new employment.
    pub fn counted_years(&self) -> &BTreeSet<i32> {
        &self.counted_years
    }

    /// The registration the command is addressed to, or why there is none.
    fn addressed(&self, person_ref: &str) -> Result<&Registration, Rejection> {
        let Some(reg) = &self.registration else {
            return Err(Rejection::new(
                "person_ref",
                format!("person {person_ref} is not registered"),
                "registry: register the person first",
            ));
        };
        if reg.person_ref != person_ref {
            return Err(Rejection::new(
                "person_ref",
                format!(
                    "{person_ref} is not the person of this stream ({})",
                    reg.person_ref
                ),
                "stream person-<person_ref>",
            ));
        }
        Ok(reg)
    }

    /// Rejects commands that would record personal data after erasure.
    fn not_erased(&self, command: &str) -> Result<(), Rejection> {
        if self.erased {
            return Err(Rejection::state(
                format!("personal data was erased, {command} would record new personal data"),
                "PIPL erasure: no personal data after the key is destroyed, §4.2",
            ));
        }
        Ok(())
    }
}

impl Aggregate for Person {
    type Command = PersonCommand;
    const CATEGORY: &'static str = "person";

    fn decide(&self, command: &PersonCommand, ctx: &Context<'_>) -> Decision {
        if let PersonCommand::RegisterPerson(c) = command {
            return self.register(c, ctx);
        }
        let reg = self.addressed(command.person_ref())?;
        match command {
            PersonCommand::RegisterPerson(_) => unreachable!("decided above"),
            PersonCommand::RecordCertificate(c) => self.record_certificate(reg, c, ctx),
            PersonCommand::ChangeResidence(c) => change_residence(reg, c),
            PersonCommand::GrantConsent(c) => self.grant_consent(reg, c, ctx),
            PersonCommand::WithdrawConsent(c) => self.withdraw_consent(reg, c, ctx),
            PersonCommand::EraseData(c) => self.erase(reg, c),
            PersonCommand::VerifyBasicInfo(c) => self.verify_basic_info(reg, c, ctx),
            PersonCommand::AssessCapacity(c) => self.assess_capacity(reg, c, ctx),
            PersonCommand::RegisterNeed(c) => self.register_need(reg, c, ctx),
            PersonCommand::ProvideService(c) => self.provide_service(reg, c, ctx),
            PersonCommand::EnrollTrainee(c) => self.enroll(reg, c, ctx),
            PersonCommand::CompleteTraining(c) => self.complete_training(reg, c, ctx),
            PersonCommand::GrantTrainingSubsidy(c) => self.grant_subsidy(reg, c, ctx),
            PersonCommand::PlacePerson(c) => self.place(reg, c, ctx),
            PersonCommand::EndPlacement(c) => self.end_placement(reg, c),
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::PersonRegistered(e) => {
                let id_number = convert::clear_text(e.id_number.as_ref()).map(str::to_owned);
                let birth_date = id_number.as_deref().and_then(birth_date_of);
                self.registration = Some(Registration {
                    person_ref: e.person_ref.clone(),
                    id_number,
                    birth_date,
                    sex: e.sex(),
                    birth_year: e.birth_year,
                    birth_month: e.birth_month,
                    hukou_region: e.hukou_region.clone(),
                    residence_region: e.residence_region.clone(),
                });
            }
            Event::DisabilityCertificateRecorded(e) => {
                self.certificate = Some(CertificateRecord {
                    category: convert::clear_int(e.category.as_ref()),
                    grade: convert::clear_int(e.grade.as_ref()),
                    valid_from: naive(e.valid_from.as_ref()),
                    valid_until: naive(e.valid_until.as_ref()),
                });
            }
            Event::ResidenceChanged(e) => {
                if let Some(reg) = &mut self.registration {
                    reg.residence_region = e.to_region.clone();
                }
            }
            Event::ConsentGranted(e) => {
                self.consents.insert(e.purpose);
            }
            Event::ConsentWithdrawn(e) => {
                self.consents.remove(&e.purpose);
            }
            Event::PersonalDataErased(_) => {
                self.erased = true;
                if let Some(reg) = &mut self.registration {
                    reg.id_number = None;
                }
            }
            Event::BasicInfoVerified(e) => {
                self.verifications.insert(
                    e.year,
                    Verification {
                        verified_on: naive(e.verified_on.as_ref()),
                        is_working_age: e.is_working_age,
                        wants_work: e.wants_work,
                    },
                );
            }
            Event::TraineeEnrolled(e) => {
                self.enrolments.insert(
                    e.programme_id.clone(),
                    Enrolment {
                        enrolled_on: naive(e.enrolled_on.as_ref()),
                        completed_on: None,
                        subsidised: false,
                    },
                );
            }
            Event::TrainingCompleted(e) => {
                if let Some(en) = self.enrolments.get_mut(&e.programme_id) {
                    en.completed_on = naive(e.completed_on.as_ref());
                }
            }
            Event::TrainingSubsidyGranted(e) => {
                if let Some(en) = self.enrolments.get_mut(&e.programme_id) {
                    en.subsidised = true;
                }
            }
            Event::PersonPlaced(e) => {
                self.placements.insert(
                    e.placement_id.clone(),
                    Placement {
                        employer_uscc: e.employer_uscc.clone(),
                        start_date: naive(e.start_date.as_ref()),
                        end_date: None,
                    },
                );
            }
            Event::NewEmploymentCounted(e) => {
                self.counted_years.insert(e.year);
            }
            Event::PlacementEnded(e) => {
                if let Some(p) = self.placements.get_mut(&e.placement_id) {
                    p.end_date = naive(e.end_date.as_ref());
                }
            }
            _ => {}
        }
        self
    }
}

/// The birth date inside a (validated) ID number, characters 7–14.
fn birth_date_of(id: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(id.get(6..14)?, "%Y%m%d").ok()
}

/// An identifier minted outside the domain: non-empty, bounded.
fn reference(field: &'static str, value: &str) -> Result<String, Rejection> {
    validate::text(field, value, REF_CHARS_MAX)
}

/// An HMAC-SHA256 value: exactly 32 bytes.
fn hmac(field: &'static str, value: &[u8]) -> Result<Vec<u8>, Rejection> {
    if value.len() != HMAC_BYTES {
        return Err(Rejection::new(
            field,
            format!("is {} bytes, expected {HMAC_BYTES}", value.len()),
            "HMAC-SHA256, §4.2",
        ));
    }
    Ok(value.to_vec())
}

/// A phone number: digits with an optional leading `+`, spaces and dashes.
fn phone(field: &'static str, value: &str) -> Result<String, Rejection> {
    let value = value.trim();
    let chars = value.chars().count();
    let digits_ok = value
        .char_indices()
        .all(|(i, c)| c.is_ascii_digit() || c == '-' || c == ' ' || (i == 0 && c == '+'));
    if !digits_ok || !(PHONE_CHARS_MIN..=PHONE_CHARS_MAX).contains(&chars) {
        return Err(Rejection::new(
            field,
            format!("{value:?} is not a phone number"),
            "phone: digits, +, - and spaces, 5–20 characters",
        ));
    }
    Ok(value.to_owned())
}

/// A county code outside the province is allowed for the hukou (out-of-province
/// hukou with Heilongjiang residence): six digits, province part not `00`.
fn any_county_code(field: &'static str, value: &str) -> Result<String, Rejection> {
    if value.starts_with("23") {
        return validate::region(field, value).map(|_| value.to_owned());
    }
    let ok =
        value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit()) && !value.starts_with("00");
    if !ok {
        return Err(Rejection::new(
            field,
            format!("{value:?} is not a six-digit county code"),
            "GB/T 2260",
        ));
    }
    Ok(value.to_owned())
}

/// A business date that records a fact: in range and not after today.
fn fact_date(field: &'static str, d: NaiveDate, ctx: &Context<'_>) -> Result<(), Rejection> {
    validate::date_in_range(field, d)?;
    if d > ctx.today {
        return Err(Rejection::new(
            field,
            format!("{d} is after today ({})", ctx.today),
            "facts are recorded when they happened, not ahead",
        ));
    }
    Ok(())
}

/// `later` is on or after `earlier`.
fn not_before(
    field: &'static str,
    later: NaiveDate,
    earlier_name: &str,
    earlier: Option<NaiveDate>,
) -> Result<(), Rejection> {
    match earlier {
        Some(e) if later < e => Err(Rejection::new(
            field,
            format!("{later} is before {earlier_name} {e}"),
            "dates in order",
        )),
        _ => Ok(()),
    }
}

fn change_residence(reg: &Registration, c: &ChangeResidence) -> Decision {
    validate::region("to_region", &c.to_region)?;
    validate::date_in_range("effective_on", c.effective_on)?;
    if c.to_region == reg.residence_region {
        return Err(Rejection::new(
            "to_region",
            format!("the person already resides in {}", c.to_region),
            "residence change moves to another county",
        ));
    }
    Ok(vec![Event::ResidenceChanged(pb::ResidenceChanged {
        person_ref: reg.person_ref.clone(),
        from_region: reg.residence_region.clone(),
        to_region: c.to_region.clone(),
        effective_on: date(c.effective_on),
    })])
}

impl Person {
    fn register(&self, c: &RegisterPerson, ctx: &Context<'_>) -> Decision {
        let person_ref = reference("person_ref", &c.person_ref)?;
        if let Some(reg) = &self.registration {
            return Err(Rejection::state(
                format!("person {} is already registered", reg.person_ref),
                "registry: one registration per person",
            ));
        }
        let name = validate::text("name", &c.name, NAME_CHARS_MAX)?;
        let id = validate::resident_id("id_number", &c.id_number, ctx.today)?;
        let id_hmac = hmac("id_hmac", &c.id_hmac)?;
        let phone = c.phone.as_deref().map(|p| phone("phone", p)).transpose()?;
        let address = c
            .address
            .as_deref()
            .map(|a| validate::text("address", a, TEXT_CHARS_MAX))
            .transpose()?;
        let hukou_region = any_county_code("hukou_region", &c.hukou_region)?;
        validate::region("residence_region", &c.residence_region)?;
        let registering_org =
            validate::text("registering_org", &c.registering_org, NAME_CHARS_MAX)?;
        let birth = id.birth_date();
        Ok(vec![Event::PersonRegistered(pb::PersonRegistered {
            person_ref,
            id_hmac,
            name: personal_text(name),
            id_number: personal_text(id.as_str()),
            sex: id.sex() as i32,
            birth_year: birth.year(),
            birth_month: birth.month(),
            hukou_region,
            residence_region: c.residence_region.clone(),
            registering_org,
            phone: phone.and_then(personal_text),
            address: address.and_then(personal_text),
            registered_on: date(ctx.today),
        })])
    }

    fn record_certificate(
        &self,
        reg: &Registration,
        c: &RecordCertificate,
        ctx: &Context<'_>,
    ) -> Decision {
        self.not_erased("record_certificate")?;
        let Some(id_number) = &reg.id_number else {
            return Err(Rejection::state(
                "the person's ID number is not available in the clear",
                "a certificate number starts with the holder's ID number, §2.4",
            ));
        };
        let id = validate::resident_id("id_number", id_number, ctx.today)?;
        let cert = validate::certificate_number("certificate_number", &c.certificate_number, &id)?;
        let certificate_hmac = hmac("certificate_hmac", &c.certificate_hmac)?;
        validate::date_in_range("valid_from", c.valid_from)?;
        validate::date_in_range("valid_until", c.valid_until)?;
        if c.valid_until <= c.valid_from {
            return Err(Rejection::new(
                "valid_until",
                format!("{} is not after valid_from {}", c.valid_until, c.valid_from),
                "certificate: valid_until > valid_from, §4.3",
            ));
        }
        let issuing_org = validate::text("issuing_org", &c.issuing_org, NAME_CHARS_MAX)?;
        Ok(vec![Event::DisabilityCertificateRecorded(
            pb::DisabilityCertificateRecorded {
                person_ref: reg.person_ref.clone(),
                certificate_hmac,
                certificate_number: personal_text(cert.number.clone()),
                category: personal_int(i64::from(cert.category)),
                grade: personal_int(i64::from(cert.grade)),
                valid_from: date(c.valid_from),
                valid_until: date(c.valid_until),
                issuing_org,
            },
        )])
    }

    fn grant_consent(&self, reg: &Registration, c: &Consent, ctx: &Context<'_>) -> Decision {
        self.not_erased("grant_consent")?;
        let purpose = c.purpose.pb() as i32;
        if self.consents.contains(&purpose) {
            return Err(Rejection::new(
                "purpose",
                format!("consent for {:?} is already granted", c.purpose),
                "consent: grant once, withdraw any time",
            ));
        }
        Ok(vec![Event::ConsentGranted(pb::ConsentGranted {
            person_ref: reg.person_ref.clone(),
            purpose,
            granted_on: date(ctx.today),
        })])
    }

    fn withdraw_consent(&self, reg: &Registration, c: &Consent, ctx: &Context<'_>) -> Decision {
        let purpose = c.purpose.pb() as i32;
        if !self.consents.contains(&purpose) {
            return Err(Rejection::new(
                "purpose",
                format!("no consent for {:?} is granted", c.purpose),
                "consent: only a granted consent can be withdrawn",
            ));
        }
        Ok(vec![Event::ConsentWithdrawn(pb::ConsentWithdrawn {
            person_ref: reg.person_ref.clone(),
            purpose,
            withdrawn_on: date(ctx.today),
        })])
    }

    fn erase(&self, reg: &Registration, c: &EraseData) -> Decision {
        if self.erased {
            return Err(Rejection::state(
                "personal data is already erased",
                ERASED_ONCE_RULE,
            ));
        }
        Ok(vec![Event::PersonalDataErased(pb::PersonalDataErased {
            person_ref: reg.person_ref.clone(),
            key_id: reference("key_id", &c.key_id)?,
            reason: validate::text("reason", &c.reason, TEXT_CHARS_MAX)?,
            authorised_by: validate::text("authorised_by", &c.authorised_by, NAME_CHARS_MAX)?,
        })])
    }

    fn verify_basic_info(
        &self,
        reg: &Registration,
        c: &VerifyBasicInfo,
        ctx: &Context<'_>,
    ) -> Decision {
        self.not_erased("verify_basic_info")?;
        fact_date("verified_on", c.verified_on, ctx)?;
        let policy = ctx.policy.at(c.verified_on);
        if !policy.is_plan_year(c.year) {
            return Err(Rejection::new(
                "year",
                format!(
                    "{} is not a year of plan {} ({}–{})",
                    c.year, policy.version, policy.plan_first_year, policy.plan_last_year
                ),
                "R-SVC-1 Four Ones per plan year",
            ));
        }
        let verified_by_org =
            validate::text("verified_by_org", &c.verified_by_org, NAME_CHARS_MAX)?;
        let non_work_reason = c
            .non_work_reason
            .as_deref()
            .map(|r| validate::text("non_work_reason", r, TEXT_CHARS_MAX))
            .transpose()?;
        // The clear birth date when known, else the last day of the birth month
        // (never older than the person really is).
        let birth = reg.birth_date.or_else(|| {
            let first = NaiveDate::from_ymd_opt(reg.birth_year, reg.birth_month, 1)?;
            first.checked_add_months(Months::new(1))?.pred_opt()
        });
        let Some(birth) = birth else {
            return Err(Rejection::state(
                "the person's birth date is not known",
                "working age from the ID number (GB 11643)",
            ));
        };
        let age = validate::age_on(birth, c.verified_on);
        let (youngest, oldest) = policy.working_age(reg.sex);
        let is_working_age = (youngest..=oldest).contains(&age);
        Ok(vec![Event::BasicInfoVerified(pb::BasicInfoVerified {
            person_ref: reg.person_ref.clone(),
            year: c.year,
            verified_by_org,
            employment_status: c.employment_status.pb() as i32,
            is_working_age,
            wants_work: c.wants_work,
            has_work_capacity: c.has_work_capacity,
            non_work_reason: non_work_reason.and_then(personal_text),
            verified_on: date(c.verified_on),
            region: reg.residence_region.clone(),
        })])
    }

    /// R-SVC-2: the latest verification of `year` says the person wants work.
    fn wants_work_in(&self, year: i32) -> Result<(), Rejection> {
        match self.verifications.get(&year) {
            None => Err(Rejection::new(
                "year",
                format!("no basic-info verification in {year}"),
                "R-SVC-2 Four Ones: verify basic info first",
            )),
            Some(v) if !v.wants_work => Err(Rejection::new(
                "year",
                format!("the latest verification in {year} says the person does not want work"),
                "R-SVC-2 Four Ones: only for those wanting work",
            )),
            Some(_) => Ok(()),
        }
    }

    fn assess_capacity(
        &self,
        reg: &Registration,
        c: &AssessCapacity,
        ctx: &Context<'_>,
    ) -> Decision {
        self.not_erased("assess_capacity")?;
        fact_date("assessed_on", c.assessed_on, ctx)?;
        self.wants_work_in(c.year)?;
        Ok(vec![Event::VocationalCapacityAssessed(
            pb::VocationalCapacityAssessed {
                person_ref: reg.person_ref.clone(),
                year: c.year,
                assessment_id: reference("assessment_id", &c.assessment_id)?,
                assessor_org: validate::text("assessor_org", &c.assessor_org, NAME_CHARS_MAX)?,
                capacity_level: personal_text(validate::text(
                    "capacity_level",
                    &c.capacity_level,
                    TEXT_CHARS_MAX,
                )?),
                assessed_on: date(c.assessed_on),
            },
        )])
    }

    fn register_need(&self, reg: &Registration, c: &RegisterNeed, ctx: &Context<'_>) -> Decision {
        fact_date("registered_on", c.registered_on, ctx)?;
        self.wants_work_in(c.year)?;
        if c.intended_occupations.len() > OCCUPATIONS_MAX {
            return Err(Rejection::new(
                "intended_occupations",
                format!(
                    "{} occupations, at most {OCCUPATIONS_MAX}",
                    c.intended_occupations.len()
                ),
                "bounded lists",
            ));
        }
        let intended_occupations = c
            .intended_occupations
            .iter()
            .map(|o| validate::text("intended_occupations", o, NAME_CHARS_MAX))
            .collect::<Result<Vec<_>, _>>()?;
        validate::region("intended_region", &c.intended_region)?;
        let preferred_forms: BTreeSet<EmploymentForm> = c.preferred_forms.iter().copied().collect();
        Ok(vec![Event::EmploymentNeedRegistered(
            pb::EmploymentNeedRegistered {
                person_ref: reg.person_ref.clone(),
                year: c.year,
                intended_occupations,
                intended_region: c.intended_region.clone(),
                preferred_forms: preferred_forms.into_iter().map(|f| f.pb() as i32).collect(),
                registered_on: date(c.registered_on),
            },
        )])
    }

    fn provide_service(
        &self,
        reg: &Registration,
        c: &ProvideService,
        ctx: &Context<'_>,
    ) -> Decision {
        fact_date("provided_on", c.provided_on, ctx)?;
        self.wants_work_in(c.year)?;
        Ok(vec![Event::EmploymentServiceProvided(
            pb::EmploymentServiceProvided {
                person_ref: reg.person_ref.clone(),
                year: c.year,
                service_type: c.service_type.pb() as i32,
                provider_org: validate::text("provider_org", &c.provider_org, NAME_CHARS_MAX)?,
                provided_on: date(c.provided_on),
            },
        )])
    }

    fn enroll(&self, reg: &Registration, c: &EnrollTrainee, ctx: &Context<'_>) -> Decision {
        let programme_id = reference("programme_id", &c.programme_id)?;
        fact_date("enrolled_on", c.enrolled_on, ctx)?;
        if self.enrolments.contains_key(&programme_id) {
            return Err(Rejection::new(
                "programme_id",
                format!("already enrolled in programme {programme_id}"),
                "training: one enrolment per programme, §4.3",
            ));
        }
        Ok(vec![Event::TraineeEnrolled(pb::TraineeEnrolled {
            programme_id,
            person_ref: reg.person_ref.clone(),
            training_type: c.training_type.pb() as i32,
            enrolled_on: date(c.enrolled_on),
        })])
    }

    fn enrolment(&self, programme_id: &str) -> Result<&Enrolment, Rejection> {
        self.enrolments.get(programme_id).ok_or_else(|| {
            Rejection::new(
                "programme_id",
                format!("not enrolled in programme {programme_id}"),
                "training: enrol first",
            )
        })
    }

    fn complete_training(
        &self,
        reg: &Registration,
        c: &CompleteTraining,
        ctx: &Context<'_>,
    ) -> Decision {
        fact_date("completed_on", c.completed_on, ctx)?;
        let enrolment = self.enrolment(&c.programme_id)?;
        if let Some(done) = enrolment.completed_on {
            return Err(Rejection::new(
                "programme_id",
                format!(
                    "programme {} was already completed on {done}",
                    c.programme_id
                ),
                "training: completed once",
            ));
        }
        not_before(
            "completed_on",
            c.completed_on,
            "enrolment on",
            enrolment.enrolled_on,
        )?;
        let skill_certificate_level = c
            .skill_certificate_level
            .as_deref()
            .map(|l| validate::text("skill_certificate_level", l, NAME_CHARS_MAX))
            .transpose()?
            .unwrap_or_default();
        Ok(vec![Event::TrainingCompleted(pb::TrainingCompleted {
            programme_id: c.programme_id.clone(),
            person_ref: reg.person_ref.clone(),
            passed: c.passed,
            skill_certificate_level,
            completed_on: date(c.completed_on),
        })])
    }

    fn grant_subsidy(
        &self,
        reg: &Registration,
        c: &GrantTrainingSubsidy,
        ctx: &Context<'_>,
    ) -> Decision {
        fact_date("granted_on", c.granted_on, ctx)?;
        let enrolment = self.enrolment(&c.programme_id)?;
        let Some(completed_on) = enrolment.completed_on else {
            return Err(Rejection::new(
                "programme_id",
                format!("programme {} is not completed", c.programme_id),
                "R-TRN-1 subsidy only after completion, §4.3",
            ));
        };
        if enrolment.subsidised {
            return Err(Rejection::new(
                "programme_id",
                format!(
                    "the subsidy for programme {} was already granted",
                    c.programme_id
                ),
                "R-TRN-1 one subsidy per completed programme",
            ));
        }
        not_before(
            "granted_on",
            c.granted_on,
            "completion on",
            Some(completed_on),
        )?;
        Ok(vec![Event::TrainingSubsidyGranted(
            pb::TrainingSubsidyGranted {
                programme_id: c.programme_id.clone(),
                person_ref: reg.person_ref.clone(),
                tuition_fen: validate::money_fen("tuition_fen", c.tuition_fen)?,
                living_allowance_fen: validate::money_fen(
                    "living_allowance_fen",
                    c.living_allowance_fen,
                )?,
                payer_org: validate::text("payer_org", &c.payer_org, NAME_CHARS_MAX)?,
                granted_on: date(c.granted_on),
            },
        )])
    }

    fn place(&self, reg: &Registration, c: &PlacePerson, ctx: &Context<'_>) -> Decision {
        self.not_erased("place_person")?;
        let placement_id = reference("placement_id", &c.placement_id)?;
        if self.placements.contains_key(&placement_id) {
            return Err(Rejection::new(
                "placement_id",
                format!("placement {placement_id} is already recorded"),
                "placement ids are unique",
            ));
        }
        let form = c.employment_form;
        let employer_uscc = match c.employer_uscc.as_deref().map(str::trim) {
            Some(code) if !code.is_empty() => validate::credit_code("employer_uscc", code)?
                .as_str()
                .to_owned(),
            _ if form.needs_employer() => {
                return Err(Rejection::new(
                    "employer_uscc",
                    format!("is missing for form {form:?}"),
                    "placement: an employer unless self-employed, entrepreneurship, flexible or farming",
                ));
            }
            _ => String::new(),
        };
        fact_date("start_date", c.start_date, ctx)?;
        let wage = validate::money_fen("monthly_wage_fen", c.monthly_wage_fen)?;
        validate::region("region", &c.region)?;
        let post_id = c
            .post_id
            .as_deref()
            .map(|p| reference("post_id", p))
            .transpose()?;
        if form == EmploymentForm::Quota {
            if c.contract_type != ContractType::EstablishedPost
                && c.contract_months < QUOTA_CONTRACT_MONTHS_MIN
            {
                return Err(Rejection::new(
                    "contract_months",
                    format!(
                        "{} months, quota employment needs at least {QUOTA_CONTRACT_MONTHS_MIN} or an established post",
                        c.contract_months
                    ),
                    "quota eligibility: contract ≥ 12 months or 在编, §4.3",
                ));
            }
            if !c.wage_at_least_minimum {
                return Err(Rejection::new(
                    "wage_at_least_minimum",
                    "the wage is below the local minimum",
                    "quota eligibility: wage ≥ local minimum, §4.3",
                ));
            }
            if !c.social_insurance_paid {
                return Err(Rejection::new(
                    "social_insurance_paid",
                    "social insurance is not paid",
                    "quota eligibility: social insurance paid, §4.3",
                ));
            }
        }
        if !employer_uscc.is_empty() {
            let open = self
                .placements
                .iter()
                .find(|(_, p)| p.is_open() && p.employer_uscc == employer_uscc);
            if let Some((id, _)) = open {
                return Err(Rejection::new(
                    "employer_uscc",
                    format!("placement {id} at {employer_uscc} is still open"),
                    "placement: one open placement per person per employer, §4.3",
                ));
            }
        }
        let year = c.start_date.year();
        let mut events = vec![Event::PersonPlaced(pb::PersonPlaced {
            placement_id: placement_id.clone(),
            person_ref: reg.person_ref.clone(),
            employment_form: form.pb() as i32,
            employer_uscc,
            start_date: date(c.start_date),
            contract_type: c.contract_type.pb() as i32,
            contract_months: c.contract_months,
            monthly_wage: personal_int(wage),
            wage_at_least_minimum: c.wage_at_least_minimum,
            social_insurance_paid: c.social_insurance_paid,
            post_id: post_id.unwrap_or_default(),
            region: c.region.clone(),
        })];
        if ctx.policy.at(c.start_date).is_plan_year(year) && !self.counted_years.contains(&year) {
            events.push(Event::NewEmploymentCounted(pb::NewEmploymentCounted {
                person_ref: reg.person_ref.clone(),
                year,
                placement_id,
                region: reg.residence_region.clone(),
                employment_form: form.pb() as i32,
            }));
        }
        Ok(events)
    }

    fn end_placement(&self, reg: &Registration, c: &EndPlacement) -> Decision {
        validate::date_in_range("end_date", c.end_date)?;
        let Some(placement) = self.placements.get(&c.placement_id) else {
            return Err(Rejection::new(
                "placement_id",
                format!("no placement {} for this person", c.placement_id),
                "placement: end only a recorded placement",
            ));
        };
        if let Some(ended) = placement.end_date {
            return Err(Rejection::new(
                "placement_id",
                format!("placement {} already ended on {ended}", c.placement_id),
                "placement: end only an open placement, §4.5",
            ));
        }
        not_before("end_date", c.end_date, "the start", placement.start_date)?;
        Ok(vec![Event::PlacementEnded(pb::PlacementEnded {
            placement_id: c.placement_id.clone(),
            person_ref: reg.person_ref.clone(),
            end_date: date(c.end_date),
            reason: c.reason.pb() as i32,
        })])
    }
}

//! The person: registry, Four Ones, training taken and placements.

use expect_test::expect;
use pathway_domain::{
    Event,
    person::{
        AssessCapacity, ChangeResidence, CompleteTraining, Consent, ConsentPurpose, ContractType,
        EmploymentForm, EmploymentStatus, EndPlacement, EnrollTrainee, EraseData,
        GrantTrainingSubsidy, Person, PersonCommand as C, PlacePerson, PlacementEndReason,
        ProvideService, RecordCertificate, RegisterNeed, RegisterPerson, ServiceType,
        VerifyBasicInfo,
    },
    training::TrainingType,
    validate::{make_credit_code, make_resident_id},
};

use crate::check::{check, day, history, history_after};

const P: &str = "p-1";
/// Harbin, Daoli district.
const HARBIN: &str = "230102";
/// Qiqihar, Longsha district.
const QIQIHAR: &str = "230202";

fn employer(n: u8) -> String {
    make_credit_code(&format!("91230100MA1B2C3D{n}"))
}

fn id_of(born: &str, sequence: u16) -> String {
    make_resident_id(HARBIN, day(born), sequence)
}

/// A man (odd sequence) born on `born`, registered in Harbin.
fn man(born: &str) -> RegisterPerson {
    RegisterPerson {
        person_ref: P.to_owned(),
        name: "张伟".to_owned(),
        id_number: id_of(born, 11),
        id_hmac: vec![7; 32],
        phone: Some("+86 138-0000-0000".to_owned()),
        address: None,
        hukou_region: HARBIN.to_owned(),
        residence_region: HARBIN.to_owned(),
        registering_org: "Harbin DPF".to_owned(),
    }
}

/// A woman (even sequence) born on `born`.
fn woman(born: &str) -> RegisterPerson {
    RegisterPerson {
        name: "李娜".to_owned(),
        id_number: id_of(born, 12),
        ..man(born)
    }
}

fn registered() -> Vec<Event> {
    history::<Person>(&[(C::RegisterPerson(man("1980-05-20")), "2023-01-10")])
}

fn certificate(suffix: &str) -> RecordCertificate {
    RecordCertificate {
        person_ref: P.to_owned(),
        certificate_number: format!("{}{suffix}", id_of("1980-05-20", 11)),
        certificate_hmac: vec![9; 32],
        valid_from: day("2021-03-01"),
        valid_until: day("2031-03-01"),
        issuing_org: "Harbin DPF".to_owned(),
    }
}

fn verify(year: i32, wants_work: bool, on: &str) -> VerifyBasicInfo {
    VerifyBasicInfo {
        person_ref: P.to_owned(),
        year,
        verified_by_org: "Daoli DPF".to_owned(),
        employment_status: EmploymentStatus::Unemployed,
        wants_work,
        has_work_capacity: true,
        non_work_reason: None,
        verified_on: day(on),
    }
}

fn assess(year: i32, on: &str) -> C {
    C::AssessCapacity(AssessCapacity {
        person_ref: P.to_owned(),
        year,
        assessment_id: "a-1".to_owned(),
        assessor_org: "Harbin vocational rehabilitation centre".to_owned(),
        capacity_level: "able to work with accommodation".to_owned(),
        assessed_on: day(on),
    })
}

fn quota(id: &str, start: &str, employer_n: u8) -> PlacePerson {
    PlacePerson {
        person_ref: P.to_owned(),
        placement_id: id.to_owned(),
        employment_form: EmploymentForm::Quota,
        employer_uscc: Some(employer(employer_n)),
        start_date: day(start),
        contract_type: ContractType::LabourContract,
        contract_months: 12,
        monthly_wage_fen: 260_000,
        wage_at_least_minimum: true,
        social_insurance_paid: true,
        post_id: None,
        region: HARBIN.to_owned(),
    }
}

fn end(id: &str, on: &str) -> C {
    C::EndPlacement(EndPlacement {
        person_ref: P.to_owned(),
        placement_id: id.to_owned(),
        end_date: day(on),
        reason: PlacementEndReason::Resigned,
    })
}

fn enrol(programme: &str, on: &str) -> C {
    C::EnrollTrainee(EnrollTrainee {
        person_ref: P.to_owned(),
        programme_id: programme.to_owned(),
        training_type: TrainingType::EmploymentSkills,
        enrolled_on: day(on),
    })
}

fn complete(programme: &str, on: &str) -> C {
    C::CompleteTraining(CompleteTraining {
        person_ref: P.to_owned(),
        programme_id: programme.to_owned(),
        passed: true,
        skill_certificate_level: Some("junior".to_owned()),
        completed_on: day(on),
    })
}

fn subsidy(programme: &str, tuition_fen: i64, on: &str) -> C {
    C::GrantTrainingSubsidy(GrantTrainingSubsidy {
        person_ref: P.to_owned(),
        programme_id: programme.to_owned(),
        tuition_fen,
        living_allowance_fen: 30_000,
        payer_org: "Harbin DPF".to_owned(),
        granted_on: day(on),
    })
}

fn consent(purpose: ConsentPurpose) -> Consent {
    Consent {
        person_ref: P.to_owned(),
        purpose,
    }
}

fn erase() -> C {
    C::EraseData(EraseData {
        person_ref: P.to_owned(),
        key_id: "k-1".to_owned(),
        reason: "request of the person".to_owned(),
        authorised_by: "Harbin DPF data officer".to_owned(),
    })
}

/// `prior` followed by the events of `commands` decided on `today`.
fn after(prior: Vec<Event>, today: &str, commands: Vec<C>) -> Vec<Event> {
    let steps: Vec<(C, &str)> = commands.into_iter().map(|c| (c, today)).collect();
    let new = history_after::<Person>(&prior, &steps);
    [prior, new].concat()
}

// ---- registry ----------------------------------------------------------------

#[test]
fn register_derives_sex_and_birth_from_the_id() {
    check::<Person>(
        &[],
        &C::RegisterPerson(man("1980-05-20")),
        "2023-01-10",
        expect![[r#"
        PersonRegistered person_ref=p-1 name="张伟" id_number="230102198005200114" sex=Male birth=1980-05 hukou=230102 residence=230102 org=Harbin DPF phone="+86 138-0000-0000" address=- on=2023-01-10 id_hmac=32B
    "#]],
    );
    check::<Person>(
        &[],
        &C::RegisterPerson(woman("1990-12-01")),
        "2023-01-10",
        expect![[r#"
        PersonRegistered person_ref=p-1 name="李娜" id_number="230102199012010129" sex=Female birth=1990-12 hukou=230102 residence=230102 org=Harbin DPF phone="+86 138-0000-0000" address=- on=2023-01-10 id_hmac=32B
    "#]],
    );
}

#[test]
fn register_rejects_bad_input() {
    let mut bad_check = man("1980-05-20");
    bad_check.id_number.replace_range(
        17..,
        if bad_check.id_number.ends_with('0') {
            "1"
        } else {
            "0"
        },
    );
    check::<Person>(
        &[],
        &C::RegisterPerson(bad_check),
        "2023-01-10",
        expect![[r#"
        rejected: id_number: check digit is 0, expected 4 (GB 11643)
    "#]],
    );
    let short_hmac = RegisterPerson {
        id_hmac: vec![7; 31],
        ..man("1980-05-20")
    };
    check::<Person>(
        &[],
        &C::RegisterPerson(short_hmac),
        "2023-01-10",
        expect![[r#"
            rejected: id_hmac: is 31 bytes, expected 32 (HMAC-SHA256, §4.2)
        "#]],
    );
    let beijing = RegisterPerson {
        residence_region: "110101".to_owned(),
        ..man("1980-05-20")
    };
    check::<Person>(
        &[],
        &C::RegisterPerson(beijing),
        "2023-01-10",
        expect![[r#"
        rejected: residence_region: 110101 is not in Heilongjiang (GB/T 2260 23xxxx)
    "#]],
    );
    let no_name = RegisterPerson {
        name: "  ".to_owned(),
        ..man("1980-05-20")
    };
    check::<Person>(
        &[],
        &C::RegisterPerson(no_name),
        "2023-01-10",
        expect![[r#"
        rejected: name: is empty (text)
    "#]],
    );
    let bad_phone = RegisterPerson {
        phone: Some("call me".to_owned()),
        ..man("1980-05-20")
    };
    check::<Person>(
        &[],
        &C::RegisterPerson(bad_phone),
        "2023-01-10",
        expect![[r#"
        rejected: phone: "call me" is not a phone number (phone: digits, +, - and spaces, 5–20 characters)
    "#]],
    );
    let unborn = man("2023-02-01");
    check::<Person>(
        &[],
        &C::RegisterPerson(unborn),
        "2023-01-10",
        expect![[r#"
        rejected: id_number: birth date 2023-02-01 is after today 2023-01-10 (GB 11643)
    "#]],
    );
}

#[test]
fn out_of_province_hukou_with_heilongjiang_residence_is_allowed() {
    let beijing_hukou = RegisterPerson {
        hukou_region: "110101".to_owned(),
        ..man("1980-05-20")
    };
    check::<Person>(
        &[],
        &C::RegisterPerson(beijing_hukou),
        "2023-01-10",
        expect![[r#"
        PersonRegistered person_ref=p-1 name="张伟" id_number="230102198005200114" sex=Male birth=1980-05 hukou=110101 residence=230102 org=Harbin DPF phone="+86 138-0000-0000" address=- on=2023-01-10 id_hmac=32B
    "#]],
    );
}

#[test]
fn register_twice_is_rejected() {
    check::<Person>(
        &registered(),
        &C::RegisterPerson(man("1980-05-20")),
        "2023-01-11",
        expect![[r#"
        rejected: command: person p-1 is already registered (registry: one registration per person)
    "#]],
    );
}

#[test]
fn commands_need_the_registered_person() {
    check::<Person>(
        &[],
        &C::GrantConsent(consent(ConsentPurpose::ReferToHrss)),
        "2023-01-10",
        expect![[r#"
        rejected: person_ref: person p-1 is not registered (registry: register the person first)
    "#]],
    );
    let other = Consent {
        person_ref: "p-2".to_owned(),
        purpose: ConsentPurpose::ReferToHrss,
    };
    check::<Person>(
        &registered(),
        &C::GrantConsent(other),
        "2023-01-10",
        expect![[r#"
        rejected: person_ref: p-2 is not the person of this stream (p-1) (stream person-<person_ref>)
    "#]],
    );
}

#[test]
fn certificate_starts_with_the_id_and_is_valid_for_a_while() {
    check::<Person>(
        &registered(),
        &C::RecordCertificate(certificate("42")),
        "2023-02-01",
        expect![[r#"
        DisabilityCertificateRecorded number="23010219800520011442" category=4 grade=2 valid=2021-03-01..2031-03-01 org=Harbin DPF hmac=32B
    "#]],
    );
    let other_id = RecordCertificate {
        certificate_number: format!("{}42", id_of("1980-05-21", 11)),
        ..certificate("42")
    };
    check::<Person>(
        &registered(),
        &C::RecordCertificate(other_id),
        "2023-02-01",
        expect![[r#"
        rejected: certificate_number: first 18 characters differ from the holder's resident ID number (disability certificate number = ID + category + grade)
    "#]],
    );
    check::<Person>(
        &registered(),
        &C::RecordCertificate(certificate("82")),
        "2023-02-01",
        expect![[r#"
        rejected: certificate_number: category 8 is not one of 1–7 (visual … multiple) (GB/T 26341)
    "#]],
    );
    let same_day = RecordCertificate {
        valid_until: day("2021-03-01"),
        ..certificate("42")
    };
    check::<Person>(
        &registered(),
        &C::RecordCertificate(same_day),
        "2023-02-01",
        expect![[r#"
            rejected: valid_until: 2021-03-01 is not after valid_from 2021-03-01 (certificate: valid_until > valid_from, §4.3)
        "#]],
    );
}

#[test]
fn residence_changes_to_another_county() {
    let to = |region: &str| {
        C::ChangeResidence(ChangeResidence {
            person_ref: P.to_owned(),
            to_region: region.to_owned(),
            effective_on: day("2023-03-01"),
        })
    };
    check::<Person>(
        &registered(),
        &to(QIQIHAR),
        "2023-03-01",
        expect![[r#"
        ResidenceChanged 230102 -> 230202 on=2023-03-01
    "#]],
    );
    check::<Person>(
        &registered(),
        &to(HARBIN),
        "2023-03-01",
        expect![[r#"
        rejected: to_region: the person already resides in 230102 (residence change moves to another county)
    "#]],
    );
    check::<Person>(
        &registered(),
        &to("239900"),
        "2023-03-01",
        expect![[r#"
        rejected: to_region: 239900 is not in a Heilongjiang prefecture (239900 is none) (GB/T 2260 23xxxx)
    "#]],
    );
}

#[test]
fn consent_is_granted_once_and_withdrawn_once() {
    let grant = C::GrantConsent(consent(ConsentPurpose::ReferToHrss));
    let withdraw = C::WithdrawConsent(consent(ConsentPurpose::ReferToHrss));
    check::<Person>(
        &registered(),
        &grant,
        "2023-02-01",
        expect![[r#"
        ConsentGranted purpose=ReferToHrss on=2023-02-01
    "#]],
    );
    check::<Person>(
        &registered(),
        &withdraw,
        "2023-02-01",
        expect![[r#"
        rejected: purpose: no consent for ReferToHrss is granted (consent: only a granted consent can be withdrawn)
    "#]],
    );
    let granted = after(registered(), "2023-02-01", vec![grant.clone()]);
    check::<Person>(
        &granted,
        &grant,
        "2023-02-02",
        expect![[r#"
        rejected: purpose: consent for ReferToHrss is already granted (consent: grant once, withdraw any time)
    "#]],
    );
    check::<Person>(
        &granted,
        &withdraw,
        "2023-02-02",
        expect![[r#"
        ConsentWithdrawn purpose=ReferToHrss on=2023-02-02
    "#]],
    );
}

#[test]
fn erasure_stops_new_personal_data_but_not_case_history() {
    let grant = C::GrantConsent(consent(ConsentPurpose::ReferToHrss));
    let erased = after(
        registered(),
        "2023-02-01",
        vec![
            grant,
            C::VerifyBasicInfo(verify(2023, true, "2023-02-01")),
            enrol("t-1", "2023-02-01"),
            C::PlacePerson(quota("pl-1", "2023-02-01", 1)),
            erase(),
        ],
    );
    check::<Person>(
        &registered(),
        &erase(),
        "2023-03-01",
        expect![[r#"
        PersonalDataErased key_id=k-1 reason="request of the person" by=Harbin DPF data officer
    "#]],
    );
    check::<Person>(
        &erased,
        &erase(),
        "2023-03-01",
        expect![[r#"
            rejected: command: personal data is already erased (PIPL erasure: the data key is destroyed once)
        "#]],
    );
    check::<Person>(
        &erased,
        &C::RecordCertificate(certificate("42")),
        "2023-03-01",
        expect![[r#"
            rejected: command: personal data was erased, record_certificate would record new personal data (PIPL erasure: no personal data after the key is destroyed, §4.2)
        "#]],
    );
    check::<Person>(
        &erased,
        &C::VerifyBasicInfo(verify(2023, true, "2023-03-01")),
        "2023-03-01",
        expect![[r#"
            rejected: command: personal data was erased, verify_basic_info would record new personal data (PIPL erasure: no personal data after the key is destroyed, §4.2)
        "#]],
    );
    check::<Person>(
        &erased,
        &assess(2023, "2023-03-01"),
        "2023-03-01",
        expect![[r#"
            rejected: command: personal data was erased, assess_capacity would record new personal data (PIPL erasure: no personal data after the key is destroyed, §4.2)
        "#]],
    );
    check::<Person>(
        &erased,
        &C::PlacePerson(quota("pl-2", "2023-03-01", 2)),
        "2023-03-01",
        expect![[r#"
            rejected: command: personal data was erased, place_person would record new personal data (PIPL erasure: no personal data after the key is destroyed, §4.2)
        "#]],
    );
    check::<Person>(
        &erased,
        &C::GrantConsent(consent(ConsentPurpose::ShareOutcomeWithEducation)),
        "2023-03-01",
        expect![[r#"
            rejected: command: personal data was erased, grant_consent would record new personal data (PIPL erasure: no personal data after the key is destroyed, §4.2)
        "#]],
    );
    // still allowed: closing the record
    check::<Person>(
        &erased,
        &C::WithdrawConsent(consent(ConsentPurpose::ReferToHrss)),
        "2023-03-01",
        expect![[r#"
        ConsentWithdrawn purpose=ReferToHrss on=2023-03-01
    "#]],
    );
    check::<Person>(
        &erased,
        &end("pl-1", "2023-03-01"),
        "2023-03-01",
        expect![[r#"
        PlacementEnded id=pl-1 end=2023-03-01 reason=Resigned
    "#]],
    );
    check::<Person>(
        &erased,
        &complete("t-1", "2023-03-01"),
        "2023-03-01",
        expect![[r#"
        TrainingCompleted programme=t-1 passed=true level=junior on=2023-03-01
    "#]],
    );
}

// ---- Four Ones -----------------------------------------------------------------

#[test]
fn working_age_man_59_in_60_out() {
    let born = "1963-06-15";
    let given = history::<Person>(&[(C::RegisterPerson(man(born)), "2022-01-05")]);
    check::<Person>(
        &given,
        &C::VerifyBasicInfo(verify(2023, true, "2023-06-14")),
        "2023-06-14",
        expect![[r#"
        BasicInfoVerified year=2023 working_age=true wants_work=true capacity=true status=Unemployed reason=- by=Daoli DPF on=2023-06-14
    "#]],
    );
    check::<Person>(
        &given,
        &C::VerifyBasicInfo(verify(2023, true, "2023-06-15")),
        "2023-06-15",
        expect![[r#"
        BasicInfoVerified year=2023 working_age=false wants_work=true capacity=true status=Unemployed reason=- by=Daoli DPF on=2023-06-15
    "#]],
    );
}

#[test]
fn working_age_woman_54_in_55_out() {
    let born = "1968-06-15";
    let given = history::<Person>(&[(C::RegisterPerson(woman(born)), "2022-01-05")]);
    check::<Person>(
        &given,
        &C::VerifyBasicInfo(verify(2023, true, "2023-06-14")),
        "2023-06-14",
        expect![[r#"
        BasicInfoVerified year=2023 working_age=true wants_work=true capacity=true status=Unemployed reason=- by=Daoli DPF on=2023-06-14
    "#]],
    );
    check::<Person>(
        &given,
        &C::VerifyBasicInfo(verify(2023, true, "2023-06-15")),
        "2023-06-15",
        expect![[r#"
        BasicInfoVerified year=2023 working_age=false wants_work=true capacity=true status=Unemployed reason=- by=Daoli DPF on=2023-06-15
    "#]],
    );
}

#[test]
fn working_age_starts_at_16() {
    let born = "2007-06-15";
    let given = history::<Person>(&[(C::RegisterPerson(man(born)), "2022-01-05")]);
    check::<Person>(
        &given,
        &C::VerifyBasicInfo(verify(2023, true, "2023-06-14")),
        "2023-06-14",
        expect![[r#"
        BasicInfoVerified year=2023 working_age=false wants_work=true capacity=true status=Unemployed reason=- by=Daoli DPF on=2023-06-14
    "#]],
    );
    check::<Person>(
        &given,
        &C::VerifyBasicInfo(verify(2023, true, "2023-06-15")),
        "2023-06-15",
        expect![[r#"
        BasicInfoVerified year=2023 working_age=true wants_work=true capacity=true status=Unemployed reason=- by=Daoli DPF on=2023-06-15
    "#]],
    );
}

#[test]
fn verification_only_in_plan_years_and_not_ahead() {
    check::<Person>(
        &registered(),
        &C::VerifyBasicInfo(verify(2025, true, "2023-06-14")),
        "2023-06-14",
        expect![[r#"
        rejected: year: 2025 is not a year of plan HLJ-2022 (2022–2024) (R-SVC-1 Four Ones per plan year)
    "#]],
    );
    check::<Person>(
        &registered(),
        &C::VerifyBasicInfo(verify(2021, true, "2023-06-14")),
        "2023-06-14",
        expect![[r#"
        rejected: year: 2021 is not a year of plan HLJ-2022 (2022–2024) (R-SVC-1 Four Ones per plan year)
    "#]],
    );
    check::<Person>(
        &registered(),
        &C::VerifyBasicInfo(verify(2023, true, "2023-06-15")),
        "2023-06-14",
        expect![[r#"
        rejected: verified_on: 2023-06-15 is after today (2023-06-14) (facts are recorded when they happened, not ahead)
    "#]],
    );
    let with_reason = VerifyBasicInfo {
        employment_status: EmploymentStatus::UnableToWork,
        has_work_capacity: false,
        non_work_reason: Some("in treatment".to_owned()),
        ..verify(2022, false, "2022-11-30")
    };
    check::<Person>(
        &registered(),
        &C::VerifyBasicInfo(with_reason),
        "2023-06-14",
        expect![[r#"
        BasicInfoVerified year=2022 working_age=true wants_work=false capacity=false status=UnableToWork reason="in treatment" by=Daoli DPF on=2022-11-30
    "#]],
    );
}

#[test]
fn four_ones_without_a_verification_are_rejected() {
    check::<Person>(
        &registered(),
        &assess(2023, "2023-04-01"),
        "2023-04-01",
        expect![[r#"
        rejected: year: no basic-info verification in 2023 (R-SVC-2 Four Ones: verify basic info first)
    "#]],
    );
}

#[test]
fn four_ones_without_wanting_work_are_rejected() {
    let not_wanting = after(
        registered(),
        "2023-03-01",
        vec![C::VerifyBasicInfo(verify(2023, false, "2023-03-01"))],
    );
    check::<Person>(
        &not_wanting,
        &assess(2023, "2023-04-01"),
        "2023-04-01",
        expect![[r#"
        rejected: year: the latest verification in 2023 says the person does not want work (R-SVC-2 Four Ones: only for those wanting work)
    "#]],
    );
    let service = C::ProvideService(ProvideService {
        person_ref: P.to_owned(),
        year: 2023,
        service_type: ServiceType::JobReferral,
        provider_org: "Daoli employment service".to_owned(),
        provided_on: day("2023-04-01"),
    });
    check::<Person>(
        &not_wanting,
        &service,
        "2023-04-01",
        expect![[r#"
        rejected: year: the latest verification in 2023 says the person does not want work (R-SVC-2 Four Ones: only for those wanting work)
    "#]],
    );
}

#[test]
fn four_ones_follow_the_latest_verification_of_the_same_year() {
    let wanting = after(
        registered(),
        "2023-03-01",
        vec![C::VerifyBasicInfo(verify(2023, true, "2023-03-01"))],
    );
    check::<Person>(
        &wanting,
        &assess(2023, "2023-04-01"),
        "2023-04-01",
        expect![[r#"
        VocationalCapacityAssessed year=2023 id=a-1 level="able to work with accommodation" by=Harbin vocational rehabilitation centre on=2023-04-01
    "#]],
    );
    // another year's verification does not count
    check::<Person>(
        &wanting,
        &assess(2024, "2024-04-01"),
        "2024-04-01",
        expect![[r#"
        rejected: year: no basic-info verification in 2024 (R-SVC-2 Four Ones: verify basic info first)
    "#]],
    );
    // changed mind: the latest verification wins
    let changed = after(
        wanting.clone(),
        "2023-03-05",
        vec![C::VerifyBasicInfo(verify(2023, false, "2023-03-05"))],
    );
    check::<Person>(
        &changed,
        &assess(2023, "2023-04-01"),
        "2023-04-01",
        expect![[r#"
        rejected: year: the latest verification in 2023 says the person does not want work (R-SVC-2 Four Ones: only for those wanting work)
    "#]],
    );
    let back = after(
        changed,
        "2023-03-09",
        vec![C::VerifyBasicInfo(verify(2023, true, "2023-03-09"))],
    );
    check::<Person>(
        &back,
        &assess(2023, "2023-04-01"),
        "2023-04-01",
        expect![[r#"
        VocationalCapacityAssessed year=2023 id=a-1 level="able to work with accommodation" by=Harbin vocational rehabilitation centre on=2023-04-01
    "#]],
    );
    let need = C::RegisterNeed(RegisterNeed {
        person_ref: P.to_owned(),
        year: 2023,
        intended_occupations: vec!["4-01-02".to_owned(), "6-18-01".to_owned()],
        intended_region: HARBIN.to_owned(),
        preferred_forms: vec![
            EmploymentForm::Flexible,
            EmploymentForm::Quota,
            EmploymentForm::Quota,
        ],
        registered_on: day("2023-04-02"),
    });
    check::<Person>(
        &back,
        &need,
        "2023-04-02",
        expect![[r#"
        EmploymentNeedRegistered year=2023 occupations=["4-01-02", "6-18-01"] region=230102 forms=[Quota, Flexible] on=2023-04-02
    "#]],
    );
    let service = C::ProvideService(ProvideService {
        person_ref: P.to_owned(),
        year: 2023,
        service_type: ServiceType::JobReferral,
        provider_org: "Daoli employment service".to_owned(),
        provided_on: day("2023-04-03"),
    });
    check::<Person>(
        &back,
        &service,
        "2023-04-03",
        expect![[r#"
        EmploymentServiceProvided year=2023 type=JobReferral by=Daoli employment service on=2023-04-03
    "#]],
    );
}

// ---- training ----------------------------------------------------------------

#[test]
fn enrolment_once_per_programme() {
    check::<Person>(
        &registered(),
        &enrol("t-1", "2023-03-01"),
        "2023-03-01",
        expect![[r#"
        TraineeEnrolled programme=t-1 type=EmploymentSkills on=2023-03-01
    "#]],
    );
    let enrolled = after(registered(), "2023-03-01", vec![enrol("t-1", "2023-03-01")]);
    check::<Person>(
        &enrolled,
        &enrol("t-1", "2023-03-02"),
        "2023-03-02",
        expect![[r#"
            rejected: programme_id: already enrolled in programme t-1 (training: one enrolment per programme, §4.3)
        "#]],
    );
    check::<Person>(
        &enrolled,
        &enrol("t-2", "2023-03-02"),
        "2023-03-02",
        expect![[r#"
        TraineeEnrolled programme=t-2 type=EmploymentSkills on=2023-03-02
    "#]],
    );
}

#[test]
fn completion_needs_enrolment() {
    check::<Person>(
        &registered(),
        &complete("t-1", "2023-04-01"),
        "2023-04-01",
        expect![[r#"
        rejected: programme_id: not enrolled in programme t-1 (training: enrol first)
    "#]],
    );
    let enrolled = after(registered(), "2023-03-01", vec![enrol("t-1", "2023-03-01")]);
    check::<Person>(
        &enrolled,
        &complete("t-1", "2023-04-01"),
        "2023-04-01",
        expect![[r#"
        TrainingCompleted programme=t-1 passed=true level=junior on=2023-04-01
    "#]],
    );
    check::<Person>(
        &enrolled,
        &complete("t-1", "2023-02-28"),
        "2023-04-01",
        expect![[r#"
        rejected: completed_on: 2023-02-28 is before enrolment on 2023-03-01 (dates in order)
    "#]],
    );
    let done = after(enrolled, "2023-04-01", vec![complete("t-1", "2023-04-01")]);
    check::<Person>(
        &done,
        &complete("t-1", "2023-04-02"),
        "2023-04-02",
        expect![[r#"
        rejected: programme_id: programme t-1 was already completed on 2023-04-01 (training: completed once)
    "#]],
    );
}

#[test]
fn subsidy_only_after_completion_once() {
    let enrolled = after(registered(), "2023-03-01", vec![enrol("t-1", "2023-03-01")]);
    check::<Person>(
        &enrolled,
        &subsidy("t-1", 150_000, "2023-04-01"),
        "2023-04-01",
        expect![[r#"
            rejected: programme_id: programme t-1 is not completed (R-TRN-1 subsidy only after completion, §4.3)
        "#]],
    );
    let done = after(enrolled, "2023-04-01", vec![complete("t-1", "2023-04-01")]);
    check::<Person>(
        &done,
        &subsidy("t-1", 150_000, "2023-04-02"),
        "2023-04-02",
        expect![[r#"
        TrainingSubsidyGranted programme=t-1 tuition=150000 living=30000 payer=Harbin DPF on=2023-04-02
    "#]],
    );
    check::<Person>(
        &done,
        &subsidy("t-1", -1, "2023-04-02"),
        "2023-04-02",
        expect![[r#"
        rejected: tuition_fen: -1 fen is negative (money in fen)
    "#]],
    );
    check::<Person>(
        &done,
        &subsidy("t-1", 150_000, "2023-03-31"),
        "2023-04-02",
        expect![[r#"
        rejected: granted_on: 2023-03-31 is before completion on 2023-04-01 (dates in order)
    "#]],
    );
    let paid = after(done, "2023-04-02", vec![subsidy("t-1", 0, "2023-04-02")]);
    check::<Person>(
        &paid,
        &subsidy("t-1", 150_000, "2023-04-03"),
        "2023-04-03",
        expect![[r#"
        rejected: programme_id: the subsidy for programme t-1 was already granted (R-TRN-1 one subsidy per completed programme)
    "#]],
    );
}

// ---- placement -----------------------------------------------------------------

#[test]
fn quota_placement_counts_new_employment() {
    check::<Person>(
        &registered(),
        &C::PlacePerson(quota("pl-1", "2023-05-01", 1)),
        "2023-05-02",
        expect![[r#"
        PersonPlaced id=pl-1 form=Quota employer=91230100MA1B2C3D10 start=2023-05-01 contract=LabourContract/12m wage=260000 min=true si=true post=- region=230102
        NewEmploymentCounted year=2023 placement=pl-1 region=230102 form=Quota
    "#]],
    );
}

#[test]
fn quota_contract_11_months_out_12_in_or_established_post() {
    let eleven = PlacePerson {
        contract_months: 11,
        ..quota("pl-1", "2023-05-01", 1)
    };
    check::<Person>(
        &registered(),
        &C::PlacePerson(eleven.clone()),
        "2023-05-02",
        expect![[r#"
            rejected: contract_months: 11 months, quota employment needs at least 12 or an established post (quota eligibility: contract ≥ 12 months or 在编, §4.3)
        "#]],
    );
    let twelve = PlacePerson {
        contract_months: 12,
        ..eleven.clone()
    };
    check::<Person>(
        &registered(),
        &C::PlacePerson(twelve),
        "2023-05-02",
        expect![[r#"
        PersonPlaced id=pl-1 form=Quota employer=91230100MA1B2C3D10 start=2023-05-01 contract=LabourContract/12m wage=260000 min=true si=true post=- region=230102
        NewEmploymentCounted year=2023 placement=pl-1 region=230102 form=Quota
    "#]],
    );
    let established = PlacePerson {
        contract_type: ContractType::EstablishedPost,
        contract_months: 0,
        ..eleven.clone()
    };
    check::<Person>(
        &registered(),
        &C::PlacePerson(established),
        "2023-05-02",
        expect![[r#"
        PersonPlaced id=pl-1 form=Quota employer=91230100MA1B2C3D10 start=2023-05-01 contract=EstablishedPost/0m wage=260000 min=true si=true post=- region=230102
        NewEmploymentCounted year=2023 placement=pl-1 region=230102 form=Quota
    "#]],
    );
    // other forms have no contract length rule
    let centralised = PlacePerson {
        employment_form: EmploymentForm::Centralised,
        ..eleven
    };
    check::<Person>(
        &registered(),
        &C::PlacePerson(centralised),
        "2023-05-02",
        expect![[r#"
        PersonPlaced id=pl-1 form=Centralised employer=91230100MA1B2C3D10 start=2023-05-01 contract=LabourContract/11m wage=260000 min=true si=true post=- region=230102
        NewEmploymentCounted year=2023 placement=pl-1 region=230102 form=Centralised
    "#]],
    );
}

#[test]
fn quota_needs_minimum_wage_and_social_insurance() {
    let low = PlacePerson {
        wage_at_least_minimum: false,
        ..quota("pl-1", "2023-05-01", 1)
    };
    check::<Person>(
        &registered(),
        &C::PlacePerson(low),
        "2023-05-02",
        expect![[r#"
            rejected: wage_at_least_minimum: the wage is below the local minimum (quota eligibility: wage ≥ local minimum, §4.3)
        "#]],
    );
    let no_si = PlacePerson {
        social_insurance_paid: false,
        ..quota("pl-1", "2023-05-01", 1)
    };
    check::<Person>(
        &registered(),
        &C::PlacePerson(no_si),
        "2023-05-02",
        expect![[r#"
            rejected: social_insurance_paid: social insurance is not paid (quota eligibility: social insurance paid, §4.3)
        "#]],
    );
}

#[test]
fn employer_required_unless_self_employed_entrepreneurship_flexible_farming() {
    let none = PlacePerson {
        employer_uscc: None,
        ..quota("pl-1", "2023-05-01", 1)
    };
    check::<Person>(
        &registered(),
        &C::PlacePerson(none.clone()),
        "2023-05-02",
        expect![[r#"
        rejected: employer_uscc: is missing for form Quota (placement: an employer unless self-employed, entrepreneurship, flexible or farming)
    "#]],
    );
    let farming = PlacePerson {
        employment_form: EmploymentForm::Farming,
        monthly_wage_fen: 90_000,
        ..none.clone()
    };
    check::<Person>(
        &registered(),
        &C::PlacePerson(farming),
        "2023-05-02",
        expect![[r#"
        PersonPlaced id=pl-1 form=Farming employer=- start=2023-05-01 contract=LabourContract/12m wage=90000 min=true si=true post=- region=230102
        NewEmploymentCounted year=2023 placement=pl-1 region=230102 form=Farming
    "#]],
    );
    let mut bad = quota("pl-1", "2023-05-01", 1);
    bad.employer_uscc = Some(bad.employer_uscc.unwrap().replace("D1", "D2"));
    check::<Person>(
        &registered(),
        &C::PlacePerson(bad),
        "2023-05-02",
        expect![[r#"
        rejected: employer_uscc: check character of 91230100MA1B2C3D20 is 0, expected 3 (GB 32100)
    "#]],
    );
}

#[test]
fn placement_start_not_after_today() {
    check::<Person>(
        &registered(),
        &C::PlacePerson(quota("pl-1", "2023-05-03", 1)),
        "2023-05-02",
        expect![[r#"
        rejected: start_date: 2023-05-03 is after today (2023-05-02) (facts are recorded when they happened, not ahead)
    "#]],
    );
}

#[test]
fn placed_twice_in_one_year_counted_once_again_next_year() {
    let first = after(
        registered(),
        "2023-05-02",
        vec![C::PlacePerson(quota("pl-1", "2023-05-01", 1))],
    );
    check::<Person>(
        &first,
        &C::PlacePerson(quota("pl-2", "2023-09-01", 2)),
        "2023-09-01",
        expect![[r#"
        PersonPlaced id=pl-2 form=Quota employer=91230100MA1B2C3D23 start=2023-09-01 contract=LabourContract/12m wage=260000 min=true si=true post=- region=230102
    "#]],
    );
    let second = after(
        first,
        "2023-09-01",
        vec![C::PlacePerson(quota("pl-2", "2023-09-01", 2))],
    );
    check::<Person>(
        &second,
        &C::PlacePerson(quota("pl-3", "2024-01-01", 3)),
        "2024-01-02",
        expect![[r#"
        PersonPlaced id=pl-3 form=Quota employer=91230100MA1B2C3D36 start=2024-01-01 contract=LabourContract/12m wage=260000 min=true si=true post=- region=230102
        NewEmploymentCounted year=2024 placement=pl-3 region=230102 form=Quota
    "#]],
    );
    // 2025 is outside the plan: placed, not counted
    check::<Person>(
        &second,
        &C::PlacePerson(quota("pl-3", "2025-01-01", 3)),
        "2025-01-02",
        expect![[r#"
        PersonPlaced id=pl-3 form=Quota employer=91230100MA1B2C3D36 start=2025-01-01 contract=LabourContract/12m wage=260000 min=true si=true post=- region=230102
    "#]],
    );
}

#[test]
fn counted_in_the_residence_region() {
    let moved = after(
        registered(),
        "2023-03-01",
        vec![C::ChangeResidence(ChangeResidence {
            person_ref: P.to_owned(),
            to_region: QIQIHAR.to_owned(),
            effective_on: day("2023-03-01"),
        })],
    );
    check::<Person>(
        &moved,
        &C::PlacePerson(quota("pl-1", "2023-05-01", 1)),
        "2023-05-02",
        expect![[r#"
        PersonPlaced id=pl-1 form=Quota employer=91230100MA1B2C3D10 start=2023-05-01 contract=LabourContract/12m wage=260000 min=true si=true post=- region=230102
        NewEmploymentCounted year=2023 placement=pl-1 region=230202 form=Quota
    "#]],
    );
}

#[test]
fn one_open_placement_per_employer() {
    let placed = after(
        registered(),
        "2023-05-02",
        vec![C::PlacePerson(quota("pl-1", "2023-05-01", 1))],
    );
    check::<Person>(
        &placed,
        &C::PlacePerson(quota("pl-2", "2023-06-01", 1)),
        "2023-06-01",
        expect![[r#"
            rejected: employer_uscc: placement pl-1 at 91230100MA1B2C3D10 is still open (placement: one open placement per person per employer, §4.3)
        "#]],
    );
    check::<Person>(
        &placed,
        &C::PlacePerson(quota("pl-1", "2023-06-01", 2)),
        "2023-06-01",
        expect![[r#"
        rejected: placement_id: placement pl-1 is already recorded (placement ids are unique)
    "#]],
    );
    let ended = after(placed, "2023-05-31", vec![end("pl-1", "2023-05-31")]);
    check::<Person>(
        &ended,
        &C::PlacePerson(quota("pl-2", "2023-06-01", 1)),
        "2023-06-01",
        expect![[r#"
        PersonPlaced id=pl-2 form=Quota employer=91230100MA1B2C3D10 start=2023-06-01 contract=LabourContract/12m wage=260000 min=true si=true post=- region=230102
    "#]],
    );
}

#[test]
fn placement_ends_once_not_before_its_start() {
    let placed = after(
        registered(),
        "2023-05-02",
        vec![C::PlacePerson(quota("pl-1", "2023-05-01", 1))],
    );
    check::<Person>(
        &placed,
        &end("pl-1", "2023-05-01"),
        "2023-05-02",
        expect![[r#"
        PlacementEnded id=pl-1 end=2023-05-01 reason=Resigned
    "#]],
    );
    check::<Person>(
        &placed,
        &end("pl-1", "2023-04-30"),
        "2023-05-02",
        expect![[r#"
        rejected: end_date: 2023-04-30 is before the start 2023-05-01 (dates in order)
    "#]],
    );
    check::<Person>(
        &placed,
        &end("pl-9", "2023-05-01"),
        "2023-05-02",
        expect![[r#"
        rejected: placement_id: no placement pl-9 for this person (placement: end only a recorded placement)
    "#]],
    );
    let ended = after(placed, "2023-05-02", vec![end("pl-1", "2023-05-02")]);
    check::<Person>(
        &ended,
        &end("pl-1", "2023-05-03"),
        "2023-05-03",
        expect![[r#"
            rejected: placement_id: placement pl-1 already ended on 2023-05-02 (placement: end only an open placement, §4.5)
        "#]],
    );
}

#[test]
fn commands_round_trip_as_json() {
    let command = C::PlacePerson(quota("pl-1", "2023-05-01", 1));
    let json = serde_json::to_string(&command).unwrap();
    expect![[r#"{"type":"place_person","person_ref":"p-1","placement_id":"pl-1","employment_form":"quota","employer_uscc":"91230100MA1B2C3D10","start_date":"2023-05-01","contract_type":"labour_contract","contract_months":12,"monthly_wage_fen":260000,"wage_at_least_minimum":true,"social_insurance_paid":true,"post_id":null,"region":"230102"}"#]]
    .assert_eq(&json);
    let back: C = serde_json::from_str(&json).unwrap();
    assert_eq!(back, command);
}

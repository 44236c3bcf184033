//! The simulated lives: an employer's years, a person's years, the cities'
//! reports. Each function sends commands in business-time order.

use chrono::{Datelike, Days, NaiveDate};
use hmac::{Hmac, Mac};
use pathway_domain::{
    employer::{self, AdminLevel, EmployerCommand, OrgType},
    governance::{CityReport, CityReportCommand, Evaluation, EvaluationCommand},
    graduates::{
        Cohort, CohortCommand, GraduateLedger, GraduateLevel, GraduateMeasure, GraduateOutcome,
        LedgerCommand, UnmatchedReason,
    },
    household::{
        AssertLowIncomeStatus, BenefitMode, CancelPhaseOut, CompletePhaseOut, Household,
        HouseholdCommand, LowIncomeStatus, PhaseOutCancelReason, ReassessIncome,
        ReassessmentTrigger, RequestReassessment,
    },
    pb,
    person::{
        AssessCapacity, CompleteTraining, Consent, ConsentPurpose, ContractType, EmploymentForm,
        EmploymentStatus, EndPlacement, EnrollTrainee, GrantTrainingSubsidy, Person, PersonCommand,
        PlacePerson, PlacementEndReason, ProvideService, RecordCertificate, RegisterNeed,
        RegisterPerson, ServiceType, VerifyBasicInfo,
    },
    training::{
        RegisterProgramme, TrainingCommand, TrainingCycle, TrainingProgramme, TrainingType,
    },
    validate::{self, CITIES, City},
    welfare::{Fund, FundCategory, FundCommand, WelfarePosts, WelfarePostsCommand},
};
use rand::{Rng, rngs::StdRng};
use sha2::Sha256;

use crate::{Actor, Graduate, SimError, SimStats, names, sink::CommandSink};

/// The key the simulated exchange uses for ID-number HMACs (demo data only).
const DEMO_EXCHANGE_KEY: &[u8] = b"pathway-demo-exchange-key";
/// Monthly dibao standard per person in the simulation, in fen (750 yuan).
const DIBAO_STANDARD_FEN: i64 = 75_000;
const PLAN_YEARS: std::ops::RangeInclusive<i32> = 2022..=2024;
/// Characters of a credit code's body (GB 32100 excludes I, O, S, V, Z).
const USCC_CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Universities whose disabled graduates the simulation follows.
const SCHOOLS: [&str; 5] = [
    "黑龙江大学",
    "哈尔滨工业大学",
    "东北林业大学",
    "哈尔滨医科大学",
    "佳木斯大学",
];

/// An employer the simulated persons can be placed with.
#[derive(Debug, Clone)]
pub struct Employer {
    pub uscc: String,
    pub region: String,
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("simulation dates are valid")
}

fn plus(d: NaiveDate, days: u64) -> NaiveDate {
    d.checked_add_days(Days::new(days))
        .expect("simulation dates stay in range")
}

fn pick_city(rng: &mut StdRng) -> &'static City {
    let total: u32 = CITIES.iter().map(|c| c.weight).sum();
    let mut x = rng.random_range(0..total);
    for c in &CITIES {
        if x < c.weight {
            return c;
        }
        x -= c.weight;
    }
    &CITIES[0]
}

fn county(rng: &mut StdRng, city: &City) -> String {
    format!("{}{:02}", &city.code[..4], rng.random_range(2..=9))
}

fn hmac(value: &str) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(DEMO_EXCHANGE_KEY).expect("HMAC takes keys of any size");
    mac.update(value.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Registers the training programmes each city runs each year.
pub(crate) async fn programmes<K: CommandSink>(a: &mut Actor<'_, K>) -> Result<(), SimError> {
    for year in PLAN_YEARS {
        for city in &CITIES {
            for (k, ty) in TrainingType::ALL.iter().enumerate() {
                let programme_id = programme_id(city, year, k);
                let cmd = TrainingCommand::RegisterProgramme(RegisterProgramme {
                    programme_id: programme_id.clone(),
                    training_type: *ty,
                    cycle: TrainingCycle::Short,
                    provider_org: format!("{}-dpf-training-base", city.code),
                    start_date: ymd(year, 4, 1),
                    end_date: ymd(year, 4, 25),
                    region: city.code.to_owned(),
                });
                a.send::<TrainingProgramme>(
                    &cmd.stream_id(),
                    &cmd,
                    pb::Department::Dpf,
                    city.code,
                    ymd(year, 2, 1),
                )
                .await?;
            }
        }
    }
    Ok(())
}

fn programme_id(city: &City, year: i32, k: usize) -> String {
    format!("{}-{year}-{k}", city.code)
}

/// One employer or public unit over the plan years.
pub(crate) async fn employer<K: CommandSink>(
    a: &mut Actor<'_, K>,
    index: usize,
) -> Result<Employer, SimError> {
    let city = pick_city(a.rng());
    let region = county(a.rng(), city);
    let (prefix, org_type, level) = match index % 10 {
        0 => (
            "11",
            OrgType::Organ,
            if a.rng().random_bool(0.3) {
                AdminLevel::Provincial
            } else {
                AdminLevel::Prefecture
            },
        ),
        1 => ("12", OrgType::PublicInstitution, AdminLevel::Prefecture),
        2 => ("11", OrgType::Organ, AdminLevel::County),
        3 | 4 => ("91", OrgType::StateOwnedEnterprise, AdminLevel::None),
        _ => ("91", OrgType::PrivateEnterprise, AdminLevel::None),
    };
    let body: String = (0..9)
        .map(|_| USCC_CHARS[a.rng().random_range(0..USCC_CHARS.len())] as char)
        .collect();
    let uscc = validate::make_credit_code(&format!("{prefix}{region}{body}"));
    let is_school = org_type == OrgType::PublicInstitution && a.rng().random_bool(0.25);
    let public = matches!(org_type, OrgType::Organ | OrgType::PublicInstitution);
    let stream = format!("employer-{uscc}");
    let register = EmployerCommand::RegisterEmployer {
        uscc: uscc.clone(),
        name: format!("{}单位{index:04}", city.name_zh),
        org_type,
        level,
        region: region.clone(),
        is_school_or_kindergarten: is_school,
        supervisor_org: None,
    };
    let dept = if public {
        pb::Department::Organization
    } else {
        pb::Department::Dpf
    };
    a.send::<employer::Employer>(&stream, &register, dept, &region, ymd(2022, 1, 10))
        .await?;
    let establishment: u32 = a.rng().random_range(30..=140);
    for year in PLAN_YEARS {
        if public {
            let cmd = EmployerCommand::RecordEstablishmentSize {
                year,
                approved_establishment: establishment,
            };
            a.send::<employer::Employer>(&stream, &cmd, dept, &region, ymd(year, 1, 15))
                .await?;
        }
        let staff = if public {
            establishment
        } else {
            a.rng().random_range(20..=600)
        };
        let disabled = a.rng().random_range(0..=(staff / 40).max(1));
        let severe = a.rng().random_range(0..=disabled);
        let report = EmployerCommand::ReportQuota {
            year,
            staff,
            disabled_employees: disabled,
            severe_disabled_employees: severe,
        };
        a.send::<employer::Employer>(
            &stream,
            &report,
            pb::Department::Dpf,
            &region,
            ymd(year, 12, 20),
        )
        .await?;
        if public {
            let cmd = EmployerCommand::EvaluatePublicUnitObligation { year };
            a.send::<employer::Employer>(&stream, &cmd, dept, &region, ymd(year, 12, 28))
                .await?;
        }
    }
    Ok(Employer { uscc, region })
}

/// One person's life over the plan years.
pub(crate) async fn person<K: CommandSink>(
    a: &mut Actor<'_, K>,
    employers: &[Employer],
) -> Result<(), SimError> {
    let city = pick_city(a.rng());
    let residence = county(a.rng(), city);
    let female = a.rng().random_bool(0.42);
    let birth = ymd(
        a.rng().random_range(1966..=2004),
        a.rng().random_range(1..=12),
        a.rng().random_range(1..=28),
    );
    let sequence = a.rng().random_range(0..500u16) * 2 + u16::from(!female);
    let id_number = validate::make_resident_id(&residence, birth, sequence);
    // A few case workers mistype an ID: the engine must reject those.
    let typed_id = if a.rng().random_bool(0.004) {
        mistype(&id_number)
    } else {
        id_number.clone()
    };
    let person_ref = a.uuid().to_string();
    let stream = format!(
        "{}-{person_ref}",
        <Person as pathway_domain::Aggregate>::CATEGORY
    );
    let registered_on = ymd(
        2022,
        a.rng().random_range(1..=6),
        a.rng().random_range(1..=28),
    );
    let dpf = pb::Department::Dpf;
    let register = PersonCommand::RegisterPerson(RegisterPerson {
        person_ref: person_ref.clone(),
        name: names::person(a.rng()),
        id_number: typed_id.clone(),
        id_hmac: hmac(&typed_id),
        phone: Some(format!(
            "13{:09}",
            a.rng().random_range(0..1_000_000_000u64)
        )),
        address: None,
        hukou_region: residence.clone(),
        residence_region: residence.clone(),
        registering_org: format!("{}-dpf", city.code),
    });
    if a.send::<Person>(&stream, &register, dpf, city.code, registered_on)
        .await?
        .is_none()
    {
        return Ok(());
    }
    let category = a.rng().random_range(1..=7);
    let grade = a.rng().random_range(1..=4);
    let certificate_number = format!("{id_number}{category}{grade}");
    let cert = PersonCommand::RecordCertificate(RecordCertificate {
        person_ref: person_ref.clone(),
        certificate_hmac: hmac(&certificate_number),
        certificate_number,
        valid_from: ymd(2019, 6, 1),
        valid_until: ymd(2029, 5, 31),
        issuing_org: format!("{}-dpf", city.code),
    });
    a.send::<Person>(&stream, &cert, dpf, city.code, registered_on)
        .await?;

    // Young persons may be at university; Education reports its graduates.
    if birth.year() >= 1998 && a.rng().random_bool(0.5) {
        let year = a.rng().random_range(PLAN_YEARS);
        let school = SCHOOLS[a.rng().random_range(0..SCHOOLS.len())].to_owned();
        a.stats.graduates.insert(
            person_ref.clone(),
            Graduate {
                id_hmac_hex: hex::encode(hmac(&id_number)),
                residence_region: residence.clone(),
                year,
                school,
            },
        );
    }

    // Some households receive dibao; Civil Affairs asserts it.
    let household_ref = if a.rng().random_bool(0.08) {
        let household_ref = a.uuid().to_string();
        let cmd = HouseholdCommand::AssertLowIncomeStatus(AssertLowIncomeStatus {
            household_ref: household_ref.clone(),
            members: vec![person_ref.clone()],
            status: LowIncomeStatus::Dibao,
            effective_on: registered_on,
            asserted_by: format!("{residence}-township"),
        });
        a.send::<Household>(
            &household_stream(&household_ref),
            &cmd,
            pb::Department::CivilAffairs,
            &residence,
            registered_on,
        )
        .await?;
        Some(household_ref)
    } else {
        None
    };

    let mut employed = false;
    for year in PLAN_YEARS {
        let base = if year == 2022 {
            plus(registered_on, 7).max(ymd(2022, 3, 1))
        } else {
            ymd(year, 3, 1)
        };
        let wants_work = !employed && a.rng().random_bool(0.72);
        let verify = PersonCommand::VerifyBasicInfo(VerifyBasicInfo {
            person_ref: person_ref.clone(),
            year,
            verified_by_org: format!("{residence}-dpf"),
            employment_status: if employed {
                EmploymentStatus::Employed
            } else {
                EmploymentStatus::Unemployed
            },
            wants_work,
            has_work_capacity: true,
            non_work_reason: None,
            verified_on: base,
        });
        if a.send::<Person>(&stream, &verify, dpf, city.code, base)
            .await?
            .is_some()
        {
            *a.stats
                .verified
                .entry((city.code.to_owned(), year))
                .or_default() += 1;
        }
        if !wants_work {
            continue;
        }
        four_ones(a, &stream, &person_ref, city, &residence, year, base).await?;
        if a.rng().random_bool(0.3) {
            train(a, &stream, &person_ref, city, year, base).await?;
        }
        if a.rng().random_bool(0.58) {
            let start = plus(base, a.rng().random_range(60..=200));
            let stays = place(
                a,
                &stream,
                &person_ref,
                city,
                &residence,
                start,
                employers,
                household_ref.as_deref(),
            )
            .await?;
            employed = stays;
        }
    }
    Ok(())
}

fn household_stream(household_ref: &str) -> String {
    format!(
        "{}-{household_ref}",
        <Household as pathway_domain::Aggregate>::CATEGORY
    )
}

fn mistype(id: &str) -> String {
    let mut chars: Vec<char> = id.chars().collect();
    chars[10] = if chars[10] == '9' {
        '0'
    } else {
        char::from(chars[10] as u8 + 1)
    };
    chars.into_iter().collect()
}

async fn four_ones<K: CommandSink>(
    a: &mut Actor<'_, K>,
    stream: &str,
    person_ref: &str,
    city: &City,
    residence: &str,
    year: i32,
    base: NaiveDate,
) -> Result<(), SimError> {
    let dpf = pb::Department::Dpf;
    let assess = PersonCommand::AssessCapacity(AssessCapacity {
        person_ref: person_ref.to_owned(),
        year,
        assessment_id: a.uuid().to_string(),
        assessor_org: format!("{}-dpf-assessment", city.code),
        capacity_level: ["A", "B", "C"][a.rng().random_range(0..3)].to_owned(),
        assessed_on: plus(base, 10),
    });
    a.send::<Person>(stream, &assess, dpf, city.code, plus(base, 10))
        .await?;
    let forms = EmploymentForm::ALL;
    let need = PersonCommand::RegisterNeed(RegisterNeed {
        person_ref: person_ref.to_owned(),
        year,
        intended_occupations: vec!["4-01".to_owned()],
        intended_region: residence.to_owned(),
        preferred_forms: vec![forms[a.rng().random_range(0..forms.len())]],
        registered_on: plus(base, 20),
    });
    a.send::<Person>(stream, &need, dpf, city.code, plus(base, 20))
        .await?;
    if !a.stats.consented.contains_key(person_ref) && a.rng().random_bool(0.6) {
        // Most job seekers agree to be referred to public employment services.
        let consent = PersonCommand::GrantConsent(Consent {
            person_ref: person_ref.to_owned(),
            purpose: ConsentPurpose::ReferToHrss,
        });
        if a.send::<Person>(stream, &consent, dpf, city.code, plus(base, 21))
            .await?
            .is_some()
        {
            a.stats.consented.insert(person_ref.to_owned(), true);
        }
    }
    let services = ServiceType::ALL;
    let service = PersonCommand::ProvideService(ProvideService {
        person_ref: person_ref.to_owned(),
        year,
        service_type: services[a.rng().random_range(0..services.len())],
        provider_org: format!("{}-employment-service", city.code),
        provided_on: plus(base, 30),
    });
    a.send::<Person>(stream, &service, dpf, city.code, plus(base, 30))
        .await?;
    Ok(())
}

async fn train<K: CommandSink>(
    a: &mut Actor<'_, K>,
    stream: &str,
    person_ref: &str,
    city: &City,
    year: i32,
    base: NaiveDate,
) -> Result<(), SimError> {
    let hrss = pb::Department::Hrss;
    let k = a.rng().random_range(0..TrainingType::ALL.len());
    let programme_id = programme_id(city, year, k);
    let enrolled_on = plus(base, 35).min(ymd(year, 3, 31)).max(base);
    let enrol = PersonCommand::EnrollTrainee(EnrollTrainee {
        person_ref: person_ref.to_owned(),
        programme_id: programme_id.clone(),
        training_type: TrainingType::ALL[k],
        enrolled_on,
    });
    if a.send::<Person>(stream, &enrol, hrss, city.code, enrolled_on)
        .await?
        .is_none()
    {
        return Ok(());
    }
    let completed_on = ymd(year, 4, 25).max(enrolled_on);
    let passed = a.rng().random_bool(0.85);
    let complete = PersonCommand::CompleteTraining(CompleteTraining {
        person_ref: person_ref.to_owned(),
        programme_id: programme_id.clone(),
        passed,
        skill_certificate_level: passed.then(|| "5".to_owned()),
        completed_on,
    });
    if a.send::<Person>(stream, &complete, hrss, city.code, completed_on)
        .await?
        .is_some()
    {
        *a.stats
            .trained
            .entry((city.code.to_owned(), year))
            .or_default() += 1;
    }
    if passed {
        let granted_on = plus(completed_on, 14);
        let subsidy = PersonCommand::GrantTrainingSubsidy(GrantTrainingSubsidy {
            person_ref: person_ref.to_owned(),
            programme_id,
            tuition_fen: 120_000,
            living_allowance_fen: 30_000,
            payer_org: format!("{}-hrss", city.code),
            granted_on,
        });
        a.send::<Person>(stream, &subsidy, hrss, city.code, granted_on)
            .await?;
    }
    Ok(())
}

/// Places the person (and sometimes ends and replaces the job in the same
/// year); runs the household's reassessment when it receives dibao. Returns
/// whether the person is still employed at the end of the year.
#[allow(clippy::too_many_arguments)]
async fn place<K: CommandSink>(
    a: &mut Actor<'_, K>,
    stream: &str,
    person_ref: &str,
    city: &City,
    residence: &str,
    start: NaiveDate,
    employers: &[Employer],
    household_ref: Option<&str>,
) -> Result<bool, SimError> {
    let dpf = pb::Department::Dpf;
    let year = start.year();
    let year_end = ymd(year, 12, 31);
    let placement_id = a.uuid().to_string();
    if !send_placement(
        a,
        stream,
        person_ref,
        city,
        residence,
        start,
        employers,
        &placement_id,
    )
    .await?
    {
        return Ok(false);
    }
    // A quarter of jobs end within the year; some of those find another job.
    let end = (a.rng().random_bool(0.25))
        .then(|| plus(start, a.rng().random_range(30..=90)))
        .filter(|e| {
            *e < plus(year_end, 0)
                .checked_sub_days(Days::new(40))
                .unwrap_or(year_end)
        });
    if let Some(household_ref) = household_ref {
        phase_out(a, household_ref, residence, &placement_id, start, end).await?;
    }
    let Some(end_date) = end else { return Ok(true) };
    let ended = PersonCommand::EndPlacement(EndPlacement {
        person_ref: person_ref.to_owned(),
        placement_id,
        end_date,
        reason: PlacementEndReason::ALL[a.rng().random_range(0..PlacementEndReason::ALL.len())],
    });
    a.send::<Person>(stream, &ended, dpf, city.code, end_date)
        .await?;
    if a.rng().random_bool(0.4) {
        // Placed again in the same year: counted once toward the target.
        let again = plus(end_date, a.rng().random_range(7..=30));
        let id = a.uuid().to_string();
        return send_placement(
            a, stream, person_ref, city, residence, again, employers, &id,
        )
        .await;
    }
    Ok(false)
}

#[allow(clippy::too_many_arguments)]
async fn send_placement<K: CommandSink>(
    a: &mut Actor<'_, K>,
    stream: &str,
    person_ref: &str,
    city: &City,
    residence: &str,
    start: NaiveDate,
    employers: &[Employer],
    placement_id: &str,
) -> Result<bool, SimError> {
    const FORMS: [(EmploymentForm, u32); 9] = [
        (EmploymentForm::Quota, 22),
        (EmploymentForm::Centralised, 8),
        (EmploymentForm::SelfEmployed, 12),
        (EmploymentForm::Entrepreneurship, 5),
        (EmploymentForm::PublicWelfarePost, 10),
        (EmploymentForm::Auxiliary, 8),
        (EmploymentForm::Flexible, 18),
        (EmploymentForm::Farming, 14),
        (EmploymentForm::BlindMassage, 3),
    ];
    let mut x = a
        .rng()
        .random_range(0..FORMS.iter().map(|f| f.1).sum::<u32>());
    let mut form = EmploymentForm::Flexible;
    for (f, w) in FORMS {
        if x < w {
            form = f;
            break;
        }
        x -= w;
    }
    let employer = &employers[a.rng().random_range(0..employers.len())];
    let quota = form == EmploymentForm::Quota;
    let cmd = PersonCommand::PlacePerson(PlacePerson {
        person_ref: person_ref.to_owned(),
        placement_id: placement_id.to_owned(),
        employment_form: form,
        employer_uscc: form.needs_employer().then(|| employer.uscc.clone()),
        start_date: start,
        contract_type: if form.needs_employer() {
            ContractType::LabourContract
        } else {
            ContractType::None
        },
        contract_months: if quota {
            a.rng().random_range(12..=36)
        } else {
            a.rng().random_range(0..=24)
        },
        monthly_wage_fen: a.rng().random_range(190_000..=520_000),
        wage_at_least_minimum: true,
        social_insurance_paid: quota || a.rng().random_bool(0.6),
        post_id: None,
        region: if form.needs_employer() {
            employer.region.clone()
        } else {
            residence.to_owned()
        },
    });
    let Some(handled) = a
        .send::<Person>(stream, &cmd, pb::Department::Dpf, city.code, start)
        .await?
    else {
        return Ok(false);
    };
    for e in &handled.events {
        if let pb::event::Kind::NewEmploymentCounted(n) = e {
            let city_code = format!("{}00", &n.region[..4]);
            *a.stats
                .new_employment
                .entry((city_code, n.year))
                .or_default() += 1;
        }
    }
    Ok(true)
}

/// Civil Affairs reassesses a dibao household after a member's placement;
/// a phase-out that starts is completed at its deadline (as the timer would)
/// or cancelled when the job is lost first.
async fn phase_out<K: CommandSink>(
    a: &mut Actor<'_, K>,
    household_ref: &str,
    residence: &str,
    placement_id: &str,
    start: NaiveDate,
    job_end: Option<NaiveDate>,
) -> Result<(), SimError> {
    let ca = pb::Department::CivilAffairs;
    let stream = household_stream(household_ref);
    let requested_on = plus(start, 3);
    let request = HouseholdCommand::RequestReassessment(RequestReassessment {
        household_ref: household_ref.to_owned(),
        trigger: ReassessmentTrigger::Placement,
        triggering_placement_id: Some(placement_id.to_owned()),
        requested_on,
    });
    a.send::<Household>(&stream, &request, ca, residence, requested_on)
        .await?;
    let assessed_on = plus(start, 20);
    let income_pct: i64 = match a.rng().random_range(0..100) {
        0..25 => 85,
        25..80 => 125,
        _ => 170,
    };
    let phase_out_id = a.uuid().to_string();
    let reassess = HouseholdCommand::ReassessIncome(ReassessIncome {
        household_ref: household_ref.to_owned(),
        per_capita_income_fen: DIBAO_STANDARD_FEN * income_pct / 100,
        dibao_standard_fen: DIBAO_STANDARD_FEN,
        meets_edge_criteria: income_pct < 150,
        assessed_by: format!("{residence}-township"),
        assessed_on,
        phase_out_id: phase_out_id.clone(),
        benefit_mode: BenefitMode::Tapered,
    });
    let Some(handled) = a
        .send::<Household>(&stream, &reassess, ca, residence, assessed_on)
        .await?
    else {
        return Ok(());
    };
    let Some(planned_end) = handled.events.iter().find_map(|e| match e {
        pb::event::Kind::PhaseOutStarted(p) => {
            pathway_domain::convert::naive(p.planned_end_date.as_ref())
        }
        _ => None,
    }) else {
        return Ok(());
    };
    match job_end {
        Some(lost) if lost < planned_end => {
            let cancel = HouseholdCommand::CancelPhaseOut(CancelPhaseOut {
                household_ref: household_ref.to_owned(),
                phase_out_id,
                reason: PhaseOutCancelReason::JobLost,
                on: lost,
            });
            a.send::<Household>(&stream, &cancel, ca, residence, lost)
                .await?;
        }
        _ if planned_end <= ymd(2024, 12, 31) => {
            let complete = HouseholdCommand::CompletePhaseOut(CompletePhaseOut {
                household_ref: household_ref.to_owned(),
                phase_out_id,
                on: planned_end,
            });
            a.send::<Household>(&stream, &complete, ca, residence, planned_end)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// The cities' DPF cadre reports, public-welfare posts and fund, annual
/// reports (some late, marked overdue), and the end-of-plan evaluation.
pub(crate) async fn governance<K: CommandSink>(
    a: &mut Actor<'_, K>,
    tally: &SimStats,
) -> Result<(), SimError> {
    let committee = pb::Department::Committee;
    let mut total_new = 0;
    let mut filed_2024 = 0;
    for year in PLAN_YEARS {
        for city in &CITIES {
            let cadres: u32 = a.rng().random_range(40..=120);
            let share_pct = a.rng().random_range(10..=24);
            let org = format!("{}-dpf", city.code);
            let cadre = employer::DpfOrganCommand::ReportCadreRatio {
                dpf_org: org.clone(),
                region: city.code.to_owned(),
                year,
                total_cadres: cadres,
                disabled_cadres: cadres * share_pct / 100,
            };
            a.send::<employer::DpfOrgan>(
                &format!("dpf-{org}"),
                &cadre,
                pb::Department::Organization,
                city.code,
                ymd(year, 11, 30),
            )
            .await?;

            let posts_stream = format!("welfare-{}-{year}", city.code);
            let total_posts = a.rng().random_range(100..=600);
            let develop = WelfarePostsCommand::DevelopPosts {
                region: city.code.to_owned(),
                year,
                total_posts,
                disabled_posts: total_posts * a.rng().random_range(7..=18) / 100,
            };
            a.send::<WelfarePosts>(
                &posts_stream,
                &develop,
                pb::Department::Hrss,
                city.code,
                ymd(year, 3, 15),
            )
            .await?;

            let fund_stream = format!("fund-{}-{year}", city.code);
            let base: i64 = a.rng().random_range(5_000..=40_000) * 1_000_000;
            let budget = FundCommand::BudgetFund {
                region: city.code.to_owned(),
                year,
                fund_base_fen: base,
            };
            a.send::<Fund>(
                &fund_stream,
                &budget,
                pb::Department::Finance,
                city.code,
                ymd(year, 1, 20),
            )
            .await?;
            for (k, pct) in [8_i64, 9, 6].into_iter().enumerate() {
                // The third allocation takes some cities past the 20% cap: rejected.
                let allocate = FundCommand::AllocateFund {
                    allocation_id: format!("{}-{year}-{k}", city.code),
                    category: FundCategory::PwpSocialInsurance,
                    amount_fen: base * pct / 100 - a.rng().random_range(0..=base / 50),
                };
                a.send::<Fund>(
                    &fund_stream,
                    &allocate,
                    pb::Department::Finance,
                    city.code,
                    ymd(year, 3 + 3 * k as u32, 1),
                )
                .await?;
            }

            let new_employment = tally
                .new_employment
                .get(&(city.code.to_owned(), year))
                .copied()
                .unwrap_or(0);
            total_new += new_employment;
            let late = year < 2024 && a.rng().random_bool(0.15);
            let report_stream = format!("report-{}-{year}", city.code);
            if late {
                let overdue = CityReportCommand::MarkOverdue {
                    city: city.code.to_owned(),
                    year,
                    due_on: ymd(year, 12, 31),
                };
                a.send::<CityReport>(
                    &report_stream,
                    &overdue,
                    pb::Department::Pathway,
                    city.code,
                    ymd(year + 1, 1, 2),
                )
                .await?;
            }
            let submitted_on = if late {
                ymd(year + 1, 1, 20)
            } else {
                ymd(year, 12, 28)
            };
            let submit = CityReportCommand::SubmitReport {
                report_id: format!("{}-{year}", city.code),
                city: city.code.to_owned(),
                year,
                submitted_on,
                new_employment,
                four_ones_verified: tally
                    .verified
                    .get(&(city.code.to_owned(), year))
                    .copied()
                    .unwrap_or(0),
                trained: tally
                    .trained
                    .get(&(city.code.to_owned(), year))
                    .copied()
                    .unwrap_or(0),
                narrative: format!("{} {year} annual report", city.name_en),
            };
            if a.send::<CityReport>(&report_stream, &submit, committee, city.code, submitted_on)
                .await?
                .is_some()
                && year == 2024
            {
                filed_2024 += 1;
            }
        }
    }
    let evaluate = EvaluationCommand::CompleteEvaluation {
        plan_id: "HLJ-2022-2024".to_owned(),
        completed_on: ymd(2025, 1, 25),
        new_employment_total: total_new,
        reports_filed: filed_2024,
        findings: "end-of-plan evaluation from the log".to_owned(),
    };
    a.send::<Evaluation>(
        "evaluation-HLJ-2022-2024",
        &evaluate,
        committee,
        "230000",
        ymd(2025, 1, 25),
    )
    .await?;
    Ok(())
}

/// Education's cohort of one city and year: received, each record matched
/// to a registered person, and a few records that match nobody.
pub(crate) async fn cohort<K: CommandSink>(
    a: &mut Actor<'_, K>,
    year: i32,
    city: &str,
    matched: &[(&String, &Graduate)],
) -> Result<(), SimError> {
    const UNMATCHED_PER_COHORT: u32 = 3;
    let batch_id = format!("edu-{year}-{city}");
    let stream = format!("cohort-{batch_id}");
    let received_on = ymd(year, 3, 15);
    let receive = CohortCommand::ReceiveCohort {
        batch_id: batch_id.clone(),
        year,
        record_count: matched.len() as u32 + UNMATCHED_PER_COHORT,
    };
    a.send::<Cohort>(
        &stream,
        &receive,
        pb::Department::Education,
        "230000",
        received_on,
    )
    .await?;
    for (person_ref, g) in matched {
        let record = CohortCommand::RecordMatch {
            person_ref: (*person_ref).clone(),
            id_hmac: g.id_hmac_hex.clone(),
            school: g.school.clone(),
            major: "computer science".to_owned(),
            level: GraduateLevel::Bachelor,
            expected_graduation: ymd(year, 6, 30),
            residence_region: g.residence_region.clone(),
        };
        a.send::<Cohort>(
            &stream,
            &record,
            pb::Department::Pathway,
            "230000",
            received_on,
        )
        .await?;
    }
    for k in 0..UNMATCHED_PER_COHORT {
        let unmatched = CohortCommand::RecordUnmatched {
            record_hash: hex::encode(hmac(&format!("{batch_id}-unmatched-{k}"))),
            reason: UnmatchedReason::NotRegistered,
        };
        a.send::<Cohort>(
            &stream,
            &unmatched,
            pb::Department::Pathway,
            "230000",
            received_on,
        )
        .await?;
    }
    Ok(())
}

/// A matched graduate's employment-service ledger for the year: opened by the
/// city DPF, a plan, a service, an outcome.
pub(crate) async fn ledger<K: CommandSink>(
    a: &mut Actor<'_, K>,
    person_ref: &str,
    g: &Graduate,
) -> Result<(), SimError> {
    let year = g.year;
    let city = format!("{}00", &g.residence_region[..4]);
    let ledger = format!("ledger-{person_ref}-{year}");
    let dpf = pb::Department::Dpf;
    let open = LedgerCommand::OpenLedger {
        ledger_id: a.uuid().to_string(),
        person_ref: person_ref.to_owned(),
        year,
        city: g.residence_region.clone(),
        school: g.school.clone(),
    };
    if a.send::<GraduateLedger>(&ledger, &open, dpf, &city, ymd(year, 4, 1))
        .await?
        .is_none()
    {
        return Ok(());
    }
    let plan = LedgerCommand::SetPlan {
        measures: vec![GraduateMeasure::JobReferral, GraduateMeasure::Training],
        target_date: ymd(year, 11, 30),
    };
    a.send::<GraduateLedger>(&ledger, &plan, dpf, &city, ymd(year, 4, 20))
        .await?;
    let service = LedgerCommand::DeliverService {
        measure: GraduateMeasure::JobReferral,
        provider_org: format!("{city}-employment-service"),
        delivered_on: ymd(year, 7, 15),
    };
    a.send::<GraduateLedger>(&ledger, &service, dpf, &city, ymd(year, 7, 15))
        .await?;
    let employed = a.rng().random_bool(0.62);
    let outcome = LedgerCommand::RecordOutcome {
        outcome: if employed {
            GraduateOutcome::Employed
        } else {
            GraduateOutcome::NotYetEmployed
        },
        employment_form: employed.then_some(EmploymentForm::Flexible),
        recorded_on: ymd(year, 12, 15),
    };
    a.send::<GraduateLedger>(&ledger, &outcome, dpf, &city, ymd(year, 12, 15))
        .await?;
    Ok(())
}

//! Department views over a sample of every event type: who sees which event,
//! and that nothing a department must not see ever reaches its view.
//!
//! The samples are the golden fixtures of `pathway-proto` (every field set),
//! with the personal fields a department may read put in the clear with
//! distinctive values, so a leak shows up as that value in a rendered view.

use std::{fmt::Write as _, fs, path::PathBuf};

use pathway_domain::{Event, convert::personal_int, pb, personal::personal_fields};
use pathway_projections::views::{self, city_of};
use pathway_proto::{Message, events::v1::EVENT_TYPES};

/// The sample's monthly wage and per-capita income, in fen.
const WAGE_FEN: &str = "731942";
const INCOME_FEN: &str = "684317";

const DEPARTMENTS: [&str; 6] = [
    "dpf",
    "hrss",
    "civil_affairs",
    "education",
    "sasac",
    "committee",
];

fn fixture(name: &str) -> Event {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../pathway-proto/tests/fixtures/v1")
        .join(format!("{name}.bin"));
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    pb::Event::decode(bytes.as_slice())
        .unwrap_or_else(|e| panic!("decode {name}: {e}"))
        .kind
        .unwrap_or_else(|| panic!("fixture {name} has no event"))
}

/// The fixture of `name`, with wage, income, category, grade and low-income
/// status in the clear. Every other personal field stays `text-1`.
fn sample(name: &str) -> Event {
    let mut e = fixture(name);
    match &mut e {
        Event::PersonPlaced(p) => p.monthly_wage = personal_int(WAGE_FEN.parse().unwrap()),
        Event::HouseholdIncomeReassessed(h) => {
            h.per_capita_income = personal_int(INCOME_FEN.parse().unwrap())
        }
        Event::DisabilityCertificateRecorded(c) => {
            c.category = personal_int(6);
            c.grade = personal_int(3);
        }
        Event::LowIncomeStatusAsserted(s) => {
            s.status = personal_int(pb::LowIncomeStatus::Dibao as i64)
        }
        Event::BenefitPhasedOut(b) => b.resulting_status = pb::LowIncomeStatus::Margin as i32,
        _ => {}
    }
    e
}

/// A department's view of the event, rendered with `{:?}`.
fn render(department: &str, e: &Event) -> Option<String> {
    match department {
        "dpf" => views::dpf(e).map(|v| format!("{v:?}")),
        "hrss" => views::hrss(e).map(|v| format!("{v:?}")),
        "civil_affairs" => views::civil_affairs(e).map(|v| format!("{v:?}")),
        "education" => views::education(e).map(|v| format!("{v:?}")),
        "sasac" => views::sasac(e).map(|v| format!("{v:?}")),
        "committee" => views::committee(e).map(|v| format!("{v:?}")),
        other => panic!("no department {other}"),
    }
}

/// What must never appear in whose view: (rule, departments, needles).
const FORBIDDEN: &[(&str, &[&str], &[&str])] = &[
    (
        "wage or income amount",
        &["dpf", "hrss", "education", "sasac", "committee"],
        &[WAGE_FEN, INCOME_FEN, "wage", "income"],
    ),
    (
        "disability category or grade",
        &["hrss", "civil_affairs", "education", "sasac", "committee"],
        &["category", "grade", "certificate", "Certificate"],
    ),
    (
        "low-income status",
        &["dpf", "hrss", "education", "sasac", "committee"],
        &["status", "Status", "dibao", "margin", "low_income"],
    ),
    ("person reference", &["sasac", "committee"], &["person_ref"]),
    (
        "disability details, plans or persons",
        &["education"],
        &["person_ref", "measure", "reason", "level", "major"],
    ),
    (
        "direct identifier or unrequested personal field",
        &[
            "dpf",
            "hrss",
            "civil_affairs",
            "education",
            "sasac",
            "committee",
        ],
        &["text-1", "hmac", "phone", "address", "id_number"],
    ),
];

#[test]
fn no_view_carries_what_its_department_must_not_see() {
    let mut leaks = Vec::new();
    for name in EVENT_TYPES {
        let e = sample(name);
        for (rule, departments, needles) in FORBIDDEN {
            for department in *departments {
                let Some(view) = render(department, &e) else {
                    continue;
                };
                for needle in *needles {
                    if view.contains(needle) {
                        leaks.push(format!("{department} sees {rule} ({needle:?}) in {view}"));
                    }
                }
            }
        }
    }
    assert!(leaks.is_empty(), "leaks:\n{}", leaks.join("\n"));
}

/// Positive controls: the samples do carry the values the rules look for,
/// and the departments allowed to see them do.
#[test]
fn allowed_departments_see_the_sensitive_values() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "PersonPlaced",
            "civil_affairs",
            &["monthly_wage_fen: Some(731942)"],
        ),
        (
            "HouseholdIncomeReassessed",
            "civil_affairs",
            &["per_capita_income_fen: Some(684317)"],
        ),
        (
            "LowIncomeStatusAsserted",
            "civil_affairs",
            &["status: Some(\"dibao\")"],
        ),
        (
            "BenefitPhasedOut",
            "civil_affairs",
            &["resulting_status: \"margin\""],
        ),
        (
            "DisabilityCertificateRecorded",
            "dpf",
            &["category: Some(6)", "grade: Some(3)"],
        ),
        (
            "PersonPlaced",
            "dpf",
            &["employment_form: \"quota\"", "person_ref"],
        ),
        (
            "PersonPlaced",
            "hrss",
            &["employer_uscc", "social_insurance_paid: true"],
        ),
        ("PhaseOutStarted", "dpf", &["member_person_refs"]),
        ("PhaseOutStarted", "hrss", &["member_person_refs"]),
        (
            "PhaseOutStarted",
            "dpf",
            &["in_phase_out: true", "until: Some("],
        ),
        (
            "PhaseOutExtensionApproved",
            "hrss",
            &["in_phase_out: true", "until: Some("],
        ),
        (
            "PhaseOutCancelled",
            "hrss",
            &["in_phase_out: false", "until: None"],
        ),
        (
            "GraduateOutcomeRecorded",
            "education",
            &["outcome: \"employed\""],
        ),
        (
            "NewEmploymentCounted",
            "committee",
            &["city: \"unknown\"", "year: 2002"],
        ),
        (
            "EmployerRegistered",
            "sasac",
            &["org_type: \"organ\"", "level: \"provincial\""],
        ),
    ];
    for (event, department, needles) in cases {
        let view = render(department, &sample(event))
            .unwrap_or_else(|| panic!("{department} does not see {event}"));
        for needle in *needles {
            assert!(
                view.contains(needle),
                "{department}'s view of {event} lacks {needle:?}: {view}"
            );
        }
    }
}

/// Which departments see each event type; `-` for none (the engine's own
/// bookkeeping, such as the ID-number reservation behind a registration).
const SEEN_BY: &str = "
PersonRegistered                  dpf
DisabilityCertificateRecorded     dpf
ResidenceChanged                  dpf
ConsentGranted                    hrss
ConsentWithdrawn                  hrss
PersonalDataErased                dpf civil_affairs
RegistrationReserved              -
BasicInfoVerified                 dpf committee
VocationalCapacityAssessed        dpf
EmploymentNeedRegistered          dpf hrss
EmploymentServiceProvided         dpf
TrainingProgrammeRegistered       committee
TraineeEnrolled                   dpf hrss
TrainingCompleted                 dpf hrss committee
TrainingSubsidyGranted            dpf hrss
PersonPlaced                      dpf hrss civil_affairs
NewEmploymentCounted              dpf committee
PlacementEnded                    dpf civil_affairs
LowIncomeStatusAsserted           civil_affairs
HouseholdReassessmentRequested    civil_affairs
HouseholdIncomeReassessed         civil_affairs
PhaseOutStarted                   dpf hrss civil_affairs
PhaseOutExtensionApproved         dpf hrss civil_affairs
PhaseOutCancelled                 dpf hrss civil_affairs
BenefitPhasedOut                  dpf hrss civil_affairs
DibaoBenefitTerminated            civil_affairs
DibaoBenefitContinued             civil_affairs
GraduateCohortReceived            education
GraduateMatched                   education
GraduateUnmatched                 education
GraduateLedgerOpened              dpf education
GraduateServicePlanSet            dpf
GraduateServiceDelivered          dpf
GraduateOutcomeRecorded           dpf education
GraduateOutcomeOverdue            -
EmployerRegistered                sasac
EstablishmentSizeRecorded         sasac
QuotaReported                     sasac
PublicUnitObligationEvaluated     sasac
DisabledEmploymentDisclosed       sasac
DpfCadreRatioReported             sasac
PublicWelfarePostsDeveloped       hrss committee
PublicWelfarePostAssigned         hrss
PublicWelfarePostVacated          hrss
EmploymentSecurityFundBudgeted    committee
FundAllocationMade                committee
AllocationCapOverrideApproved     committee
CityAnnualReportSubmitted         committee
CityAnnualReportOverdue           committee
ProvincialEvaluationCompleted     committee
SagaStepTaken                     -
SagaTimerFired                    -
SagaRouterCheckpointed            -
LogCheckpointSigned               -
AuditWarrantIssued                -
AuditRecordRead                   -
PersonalDataAccessed              -
";

#[test]
fn each_department_sees_exactly_its_event_types() {
    let mut actual = String::from("\n");
    for name in EVENT_TYPES {
        let e = sample(name);
        let seen: Vec<&str> = DEPARTMENTS
            .into_iter()
            .filter(|d| render(d, &e).is_some())
            .collect();
        let seen = if seen.is_empty() {
            "-".to_owned()
        } else {
            seen.join(" ")
        };
        writeln!(actual, "{name:<34}{seen}").unwrap();
    }
    assert_eq!(actual, SEEN_BY);
}

#[test]
fn consent_for_other_purposes_is_not_a_referral() {
    for purpose in [
        pb::ConsentPurpose::ShareOutcomeWithEducation,
        pb::ConsentPurpose::ShareCategoryForAccommodation,
    ] {
        let granted = Event::ConsentGranted(pb::ConsentGranted {
            person_ref: "p".into(),
            purpose: purpose as i32,
            granted_on: None,
        });
        assert_eq!(views::hrss(&granted), None, "{purpose:?}");
    }
}

#[test]
fn sealed_personal_fields_read_as_absent() {
    // The fixtures' personal fields are text, as a sealed or foreign value
    // would be to `clear_int`: no department gets a number out of them.
    let placed = fixture("PersonPlaced");
    let view = render("civil_affairs", &placed).unwrap();
    assert!(view.contains("monthly_wage_fen: None"), "{view}");
    let certificate = fixture("DisabilityCertificateRecorded");
    let view = render("dpf", &certificate).unwrap();
    assert!(view.contains("category: None, grade: None"), "{view}");
}

#[test]
fn city_is_the_prefecture_of_a_region() {
    for (region, city) in [
        ("230102", "230100"),
        ("231002", "231000"),
        ("232701", "232700"),
        ("230100", "230100"),
        ("2301", "unknown"),
        ("region-4", "unknown"),
        ("", "unknown"),
    ] {
        assert_eq!(city_of(region), city, "{region}");
    }
}

#[test]
fn projectors_open_exactly_the_personal_fields_some_view_reads() {
    // What the projector runtime opens (`views::personal_fields_read`) must
    // be what the views read: sealing a listed field changes a department's
    // view (it is needed), sealing any other changes none (opening it would
    // put a name, an ID number or an address in the clear for nothing).
    let sealed = || pb::Personal {
        value: Some(pb::personal::Value::Sealed(pb::Sealed {
            key_id: "subject".into(),
            nonce: vec![0; 24],
            ciphertext: vec![1, 2, 3],
        })),
    };
    let mut opened = 0;
    for name in EVENT_TYPES {
        let e = sample(name);
        let read = views::personal_fields_read(&e);
        let mut probe = e.clone();
        let numbers: Vec<u32> = personal_fields(&mut probe)
            .map(|pf| pf.fields.iter().map(|(n, _)| *n).collect())
            .unwrap_or_default();
        for listed in read {
            assert!(
                numbers.contains(listed),
                "{name}: field {listed} is opened but is not one of its personal fields {numbers:?}"
            );
        }
        let before: Vec<_> = DEPARTMENTS.iter().map(|d| render(d, &e)).collect();
        for number in numbers {
            let mut hidden = e.clone();
            for (n, personal) in personal_fields(&mut hidden).unwrap().fields {
                if n == number {
                    *personal = sealed();
                }
            }
            let after: Vec<_> = DEPARTMENTS.iter().map(|d| render(d, &hidden)).collect();
            assert_eq!(
                after != before,
                read.contains(&number),
                "{name}: field {number} is {} by the projectors, but sealing it {}",
                if read.contains(&number) {
                    "opened"
                } else {
                    "not opened"
                },
                if after != before {
                    "changes a view"
                } else {
                    "changes no view"
                },
            );
            opened += usize::from(read.contains(&number));
        }
    }
    // Category and grade, the wage, the per-capita income, the status.
    assert_eq!(opened, 5);
}

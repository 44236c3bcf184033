//! Which fields of an event are personal (P2/P3), and whose they are.
//!
//! The engine seals every field listed here with the data key of the event's
//! *data subject* before the event is stored, and readers open them with the
//! same key; destroying the key erases the values everywhere at once while the
//! log itself stays untouched. The data subject is the person (`person_ref`)
//! or, for a low-income household's assessments, the household
//! (`household_ref`).
//!
//! The list is explicit (fast, no reflection on the hot path); a test in
//! `pathway-keys` walks the protobuf descriptors and fails if a message gains
//! a `Personal` field that is not listed here.

use crate::{Event, pb};

/// The personal fields of one event, with the data subject whose key seals
/// them. Each field carries its protobuf field number, so a sealed value is
/// bound to the field it was sealed for.
#[derive(Debug)]
pub struct PersonalFields<'a> {
    /// `person_ref` or `household_ref` of the data subject.
    pub subject: &'a str,
    /// `(field number, value)`; absent optional fields are left out.
    pub fields: Vec<(u32, &'a mut pb::Personal)>,
}

/// The personal fields of `event`, or `None` if it has none.
pub fn personal_fields(event: &mut Event) -> Option<PersonalFields<'_>> {
    fn collect<'a, const N: usize>(
        subject: &'a str,
        fields: [(u32, &'a mut Option<pb::Personal>); N],
    ) -> Option<PersonalFields<'a>> {
        let fields: Vec<_> = fields
            .into_iter()
            .filter_map(|(number, field)| field.as_mut().map(|p| (number, p)))
            .collect();
        (!fields.is_empty()).then_some(PersonalFields { subject, fields })
    }
    match event {
        Event::PersonRegistered(e) => collect(
            &e.person_ref,
            [
                (3, &mut e.name),
                (4, &mut e.id_number),
                (11, &mut e.phone),
                (12, &mut e.address),
            ],
        ),
        Event::DisabilityCertificateRecorded(e) => collect(
            &e.person_ref,
            [
                (3, &mut e.certificate_number),
                (4, &mut e.category),
                (5, &mut e.grade),
            ],
        ),
        Event::BasicInfoVerified(e) => collect(&e.person_ref, [(8, &mut e.non_work_reason)]),
        Event::VocationalCapacityAssessed(e) => {
            collect(&e.person_ref, [(5, &mut e.capacity_level)])
        }
        Event::PersonPlaced(e) => collect(&e.person_ref, [(8, &mut e.monthly_wage)]),
        Event::LowIncomeStatusAsserted(e) => collect(&e.household_ref, [(3, &mut e.status)]),
        Event::HouseholdIncomeReassessed(e) => {
            collect(&e.household_ref, [(2, &mut e.per_capita_income)])
        }
        _ => None,
    }
}

/// The protobuf message names (`pathway.events.v1.X`) that carry personal
/// fields, with their field numbers: what [`personal_fields`] covers. Kept
/// beside it so the descriptor test can compare the two.
pub const PERSONAL_FIELD_NUMBERS: &[(&str, &[u32])] = &[
    ("PersonRegistered", &[3, 4, 11, 12]),
    ("DisabilityCertificateRecorded", &[3, 4, 5]),
    ("BasicInfoVerified", &[8]),
    ("VocationalCapacityAssessed", &[5]),
    ("PersonPlaced", &[8]),
    ("LowIncomeStatusAsserted", &[3]),
    ("HouseholdIncomeReassessed", &[2]),
];

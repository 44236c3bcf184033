//! No department's message type can carry a field that department must not
//! see (DOMAIN.md, "Who reads what"): checked on the published schema itself,
//! so no value of any event can put one on the wire.

use std::collections::BTreeSet;

use pathway_bus::subjects::Department;
use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};

fn field_names(desc: &MessageDescriptor, out: &mut BTreeSet<String>, seen: &mut BTreeSet<String>) {
    if !seen.insert(desc.full_name().to_owned()) {
        return;
    }
    for f in desc.fields() {
        out.insert(f.name().to_owned());
        if let Kind::Message(m) = f.kind() {
            field_names(&m, out, seen);
        }
    }
}

/// Field-name fragments no department view may hold: direct identifiers.
const NEVER: &[&str] = &[
    "id_number",
    "id_hmac",
    "certificate_no",
    "phone",
    "address",
    "payload",
    "envelope",
];

fn forbidden(d: Department) -> Vec<&'static str> {
    let mut f = NEVER.to_vec();
    if d != Department::Sasac {
        // A person's name; SASAC sees employers' (organisations') names.
        f.push("name");
    }
    if d != Department::CivilAffairs {
        f.extend(["wage", "income", "dibao"]);
    }
    if d != Department::Dpf {
        f.extend(["category", "grade"]);
    }
    if matches!(
        d,
        Department::Hrss | Department::Education | Department::Dpf
    ) {
        f.extend(["low_income", "assessment"]);
    }
    if matches!(
        d,
        Department::Education | Department::Sasac | Department::Committee
    ) {
        f.extend(["person_ref", "member_person_refs"]);
    }
    f
}

#[test]
fn a_department_view_never_contains_a_forbidden_field() {
    let pool = DescriptorPool::decode(pathway_proto::PUBLISHED_DESCRIPTOR_SET).expect("schema");
    for d in Department::ALL {
        if d == Department::Audit {
            continue;
        }
        let desc = pool
            .get_message_by_name(d.message_name())
            .unwrap_or_else(|| panic!("{} missing", d.message_name()));
        let mut names = BTreeSet::new();
        field_names(&desc, &mut names, &mut BTreeSet::new());
        for name in &names {
            for bad in forbidden(d) {
                // `name` alone matches only the exact field, not e.g. `event_type`.
                let hit = if bad == "name" {
                    name == "name"
                } else {
                    name.contains(bad)
                };
                assert!(!hit, "{d}: field {name} is forbidden ({bad})");
            }
        }
    }
}

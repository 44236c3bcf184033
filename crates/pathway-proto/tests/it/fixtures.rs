//! Golden binary fixtures of every event and of the envelope.
//!
//! A sample of each message is built by reflection from the compiled schema,
//! with every field set to a value derived from its field number, so the
//! encoded bytes depend on every field's number and type. The bytes are
//! checked in under `tests/fixtures/v1/`; any change to the wire format (a
//! renumbered field, a changed type, a removed event) breaks these tests.
//!
//! Adding a new event or field is a deliberate act: regenerate with
//! `PATHWAY_UPDATE_FIXTURES=1 cargo test -p pathway-proto` and commit the new
//! files together with the schema change.

use std::{collections::BTreeSet, fs, path::PathBuf};

use pathway_proto::{
    DESCRIPTOR_SET, Message,
    events::v1::{EVENT_TYPES, Event, EventEnvelope},
};
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, Value};

use crate::sample::{assert_enums_start_unspecified, sample};

fn pool() -> DescriptorPool {
    DescriptorPool::decode(DESCRIPTOR_SET).expect("the compiled descriptor set decodes")
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

/// The sample `Event` carrying event type `name`.
fn sample_event(pool: &DescriptorPool, name: &str) -> Vec<u8> {
    let event = pool
        .get_message_by_name("pathway.events.v1.Event")
        .expect("Event exists");
    let field = event
        .fields()
        .find(|f| matches!(f.kind(), Kind::Message(m) if m.name() == name))
        .unwrap_or_else(|| panic!("Event has no variant {name}"));
    let Kind::Message(inner) = field.kind() else {
        unreachable!()
    };
    let mut msg = DynamicMessage::new(event);
    msg.set_field(&field, Value::Message(sample(&inner, 1, None)));
    msg.encode_to_vec()
}

fn check_fixture(file: &str, bytes: &[u8]) {
    let path = fixture_dir().join(file);
    if std::env::var_os("PATHWAY_UPDATE_FIXTURES").is_some() {
        fs::create_dir_all(fixture_dir()).expect("create fixture dir");
        fs::write(&path, bytes).expect("write fixture");
        return;
    }
    let stored = fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} missing ({e}); a new event needs a fixture: run PATHWAY_UPDATE_FIXTURES=1 cargo test -p pathway-proto",
            path.display()
        )
    });
    assert_eq!(
        stored, bytes,
        "wire format of {file} changed: field numbers and types are frozen in v1 (add fields with new numbers, reserve removed ones, or start v2)"
    );
}

#[test]
fn every_event_type_has_a_golden_fixture_that_matches_the_schema() {
    let pool = pool();
    for name in EVENT_TYPES {
        check_fixture(&format!("{name}.bin"), &sample_event(&pool, name));
    }
}

#[test]
fn golden_fixtures_decode_with_the_generated_types() {
    for name in EVENT_TYPES {
        let bytes = fs::read(fixture_dir().join(format!("{name}.bin"))).expect("fixture exists");
        let event = Event::decode(bytes.as_slice())
            .unwrap_or_else(|e| panic!("fixture {name} does not decode: {e}"));
        let kind = event
            .kind
            .as_ref()
            .unwrap_or_else(|| panic!("fixture {name} has no event"));
        assert_eq!(kind.event_type(), *name);
        // Re-encoding gives the same bytes: the generated code knows every field.
        assert_eq!(event.encode_to_vec(), bytes, "{name} does not round-trip");
    }
}

#[test]
fn no_fixture_without_an_event_type() {
    let on_disk: BTreeSet<String> = fs::read_dir(fixture_dir())
        .expect("fixture dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = EVENT_TYPES
        .iter()
        .map(|n| format!("{n}.bin"))
        .chain(["EventEnvelope.bin".to_owned()])
        .collect();
    assert_eq!(
        on_disk, expected,
        "an event type was removed or renamed: v1 is frozen"
    );
}

#[test]
fn envelope_fixture_matches_and_round_trips() {
    let pool = pool();
    let desc = pool
        .get_message_by_name("pathway.events.v1.EventEnvelope")
        .expect("envelope");
    let bytes = sample(&desc, 0, None).encode_to_vec();
    check_fixture("EventEnvelope.bin", &bytes);
    let env = EventEnvelope::decode(bytes.as_slice()).expect("envelope decodes");
    assert_eq!(env.event_id, "event_id-1");
    assert_eq!(env.stream_version, 103);
    assert_eq!(env.encode_to_vec(), bytes);
}

#[test]
fn every_enum_starts_with_unspecified() {
    assert_enums_start_unspecified(&pool());
}

#[test]
fn event_types_are_the_event_oneof_in_order() {
    let pool = pool();
    let event = pool
        .get_message_by_name("pathway.events.v1.Event")
        .expect("Event exists");
    let names: Vec<String> = event
        .fields()
        .map(|f| match f.kind() {
            Kind::Message(m) => m.name().to_owned(),
            other => panic!("Event.{} is not a message: {other:?}", f.name()),
        })
        .collect();
    assert_eq!(names, EVENT_TYPES);
    assert!(names.len() >= 45, "the v1 contract covers every context");
}

//! Stored events from arbitrary bytes: `pathway_engine::decode` and
//! `decode_envelope` over an arbitrary record, then every aggregate folded
//! over the events that decode (a hostile or corrupt log must give an error
//! or a state, never a panic or an overflow).
//!
//! Input: a sequence of chunks, each a selector byte (which event type the
//! record claims: an index into `EVENT_TYPES`, or the payload's own type when
//! out of range), a little-endian u16 length and that many payload bytes; the
//! envelope is decoded from the same bytes. Properties beyond "no panic": an event that decodes
//! re-encodes to bytes that decode to the same event, and the record built by
//! `pathway_engine::record` for it decodes back to it.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pathway_domain::{
    Aggregate, Event,
    employer::{DpfOrgan, Employer},
    governance::{CityReport, Evaluation},
    graduates::{Cohort, GraduateLedger},
    household::Household,
    pb,
    person::Person,
    training::TrainingProgramme,
    welfare::{Fund, WelfarePosts},
};
use pathway_engine::reservation::Reservation;
use pathway_proto::Message;
use pathway_store::RecordedEvent;

fn recorded(event_type: &str, metadata: &[u8], payload: &[u8]) -> RecordedEvent {
    RecordedEvent {
        position: 1,
        stream_id: "person-fuzz".into(),
        stream_version: 1,
        event_id: uuid::Uuid::nil(),
        event_type: event_type.to_owned(),
        schema_version: pathway_proto::SCHEMA_VERSION_V1,
        recorded_at: chrono::DateTime::UNIX_EPOCH,
        metadata: Bytes::copy_from_slice(metadata),
        payload: Bytes::copy_from_slice(payload),
        prev_hash: [0; 32],
        hash: [0; 32],
    }
}

fn fold_all(events: &[Event]) {
    fn fold<A: Aggregate>(events: &[Event]) {
        let state = A::fold(events);
        // A second pass over the same history: sums and counters must not
        // overflow on a hostile log either.
        let _ = events.iter().fold(state, A::evolve);
    }
    fold::<Person>(events);
    fold::<Household>(events);
    fold::<Employer>(events);
    fold::<DpfOrgan>(events);
    fold::<WelfarePosts>(events);
    fold::<Fund>(events);
    fold::<Cohort>(events);
    fold::<GraduateLedger>(events);
    fold::<CityReport>(events);
    fold::<Evaluation>(events);
    fold::<TrainingProgramme>(events);
    fold::<Reservation>(events);
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut events = Vec::new();
    while let [selector, lo, hi, tail @ ..] = rest
        && events.len() < 16
    {
        let selector = *selector;
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        rest = after;
        let types = pb::EVENT_TYPES;
        // Claim the payload's own type most of the time, so that decoding
        // gets past the type check; otherwise any type (or none).
        let own = pb::Event::decode(bytes)
            .ok()
            .and_then(|e| e.kind)
            .map(|k| k.event_type().to_owned());
        let claimed = match (selector as usize).checked_sub(types.len()) {
            None => types[selector as usize].to_owned(),
            Some(_) => own.clone().unwrap_or_default(),
        };
        let r = recorded(&claimed, bytes, bytes);
        let _ = pathway_engine::decode_envelope(&r);
        match pathway_engine::decode(&r) {
            Ok(event) => {
                assert_eq!(event.event_type(), claimed);
                let wrapped = pb::Event {
                    kind: Some(event.clone()),
                };
                let again = pb::Event::decode(wrapped.encode_to_vec().as_slice())
                    .expect("a re-encoded event decodes");
                assert_eq!(again.kind.as_ref(), Some(&event));
                // The one envelope layout every writer uses round-trips too.
                let new = pathway_engine::record(
                    uuid::Uuid::from_u128(7),
                    &event,
                    pathway_engine::Provenance {
                        occurred_at: chrono::DateTime::UNIX_EPOCH,
                        correlation_id: "c".into(),
                        causation_id: "c".into(),
                        actor_department: pb::Department::Dpf,
                        actor_region: "230100".into(),
                        actor_id: "fuzz".into(),
                        command_id: "c".into(),
                    },
                );
                let stored = recorded(&new.event_type, &new.metadata, &new.payload);
                assert_eq!(pathway_engine::decode(&stored).expect("decodes"), event);
                let env = pathway_engine::decode_envelope(&stored).expect("envelope decodes");
                assert_eq!(env.event_type, new.event_type);
                events.push(event);
            }
            Err(_) => {
                assert!(own.as_deref() != Some(claimed.as_str()) || own.is_none());
            }
        }
    }
    fold_all(&events);
});

//! Input checks shared by every backend, run before anything is written.
//!
//! A batch that fails here is rejected whole with [`StoreError::InvalidInput`]
//! naming the offending value and the limit it breaks; no backend writes any
//! part of it. Limits live in [`crate::limits`].
//!
//! Event types must be names from `pathway.events.v1`
//! ([`pathway_proto::events::v1::EVENT_TYPES`]). Names starting with `$` are
//! reserved for events the system writes about itself (markers, test and
//! diagnostic events) and are admitted without being in that table: no
//! domain event type can start with `$`, so the two never collide.

use std::collections::HashSet;

use pathway_proto::events::v1::EVENT_TYPES;

use crate::limits::{
    APPEND_EVENTS_MAX, EVENT_BYTES_MAX, EVENT_TYPE_BYTES_MAX, STREAM_ID_BYTES_MAX,
};
use crate::{NewEvent, StoreError};

/// The prefix of event types reserved for system and test events.
pub(crate) const SYSTEM_EVENT_TYPE_PREFIX: char = '$';

/// Checks an append before any backend touches storage.
pub(crate) fn check_append(stream: &str, events: &[NewEvent]) -> Result<(), StoreError> {
    check_stream_id(stream)?;
    if events.is_empty() {
        return Err(invalid(format!(
            "stream {stream:?}: empty batch (at least 1 event required)"
        )));
    }
    if events.len() > APPEND_EVENTS_MAX {
        return Err(invalid(format!(
            "stream {stream:?}: {} events in one append (limit {APPEND_EVENTS_MAX})",
            events.len()
        )));
    }
    let mut seen = HashSet::with_capacity(events.len());
    for event in events {
        check_event_type(&event.event_type)?;
        let event_bytes = event.payload.len() + event.metadata.len();
        if event_bytes > EVENT_BYTES_MAX {
            return Err(invalid(format!(
                "event {}: {event_bytes} bytes of payload and metadata (limit {EVENT_BYTES_MAX})",
                event.event_id
            )));
        }
        if !seen.insert(event.event_id) {
            return Err(invalid(format!(
                "event {}: appears more than once in the batch",
                event.event_id
            )));
        }
    }
    Ok(())
}

/// Checks a stream id: non-empty, at most [`STREAM_ID_BYTES_MAX`] bytes, no
/// control characters.
pub(crate) fn check_stream_id(stream: &str) -> Result<(), StoreError> {
    if stream.is_empty() {
        return Err(invalid("empty stream id".to_owned()));
    }
    if stream.len() > STREAM_ID_BYTES_MAX {
        return Err(invalid(format!(
            "stream id {:?}…: {} bytes (limit {STREAM_ID_BYTES_MAX})",
            truncated(stream),
            stream.len()
        )));
    }
    if let Some(c) = stream.chars().find(|c| c.is_control()) {
        return Err(invalid(format!(
            "stream id {stream:?}: control character {c:?}"
        )));
    }
    Ok(())
}

fn check_event_type(event_type: &str) -> Result<(), StoreError> {
    if event_type.len() > EVENT_TYPE_BYTES_MAX {
        return Err(invalid(format!(
            "event type {:?}…: {} bytes (limit {EVENT_TYPE_BYTES_MAX})",
            truncated(event_type),
            event_type.len()
        )));
    }
    if let Some(system) = event_type.strip_prefix(SYSTEM_EVENT_TYPE_PREFIX) {
        if system.is_empty() || system.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid(format!(
                "event type {event_type:?}: a system type needs a name without spaces or control characters"
            )));
        }
        return Ok(());
    }
    if !EVENT_TYPES.contains(&event_type) {
        return Err(invalid(format!(
            "event type {event_type:?}: not a pathway.events.v1 type (nor a reserved `$` system type)"
        )));
    }
    Ok(())
}

/// The first few characters of an over-long value, for a readable message.
fn truncated(value: &str) -> &str {
    const SHOWN_CHARS_MAX: usize = 40;
    value
        .char_indices()
        .nth(SHOWN_CHARS_MAX)
        .map_or(value, |(i, _)| &value[..i])
}

fn invalid(message: String) -> StoreError {
    StoreError::InvalidInput(message)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use uuid::Uuid;

    use super::*;

    fn event(event_type: &str, bytes: usize) -> NewEvent {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: event_type.to_owned(),
            schema_version: 1,
            metadata: Bytes::new(),
            payload: Bytes::from(vec![0u8; bytes]),
        }
    }

    fn check(stream: &str, events: &[NewEvent]) -> String {
        match check_append(stream, events) {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_known_and_system_types() {
        let known = EVENT_TYPES[0];
        assert_eq!(
            check("person-1", &[event(known, 10), event("$test", 10)]),
            "ok"
        );
        assert_eq!(check("person-1", &[event("$test", EVENT_BYTES_MAX)]), "ok");
    }

    #[test]
    fn rejects_each_broken_limit() {
        let long_stream = "s".repeat(STREAM_ID_BYTES_MAX + 1);
        let long_type = format!("${}", "t".repeat(EVENT_TYPE_BYTES_MAX));
        let cases: Vec<(&str, Vec<NewEvent>, &str)> = vec![
            ("person-1", vec![], "empty batch"),
            ("", vec![event("$t", 1)], "empty stream id"),
            (&long_stream, vec![event("$t", 1)], "201 bytes (limit 200)"),
            (
                "person-\n1",
                vec![event("$t", 1)],
                "control character '\\n'",
            ),
            (
                "person-1",
                vec![event("$t", EVENT_BYTES_MAX + 1)],
                "(limit 262144)",
            ),
            (
                "person-1",
                vec![event("NoSuchEvent", 1)],
                "\"NoSuchEvent\": not a pathway.events.v1",
            ),
            ("person-1", vec![event("$", 1)], "system type needs a name"),
            (
                "person-1",
                vec![event(&long_type, 1)],
                "101 bytes (limit 100)",
            ),
            (
                "person-1",
                (0..=APPEND_EVENTS_MAX).map(|_| event("$t", 1)).collect(),
                "1001 events in one append (limit 1000)",
            ),
        ];
        for (stream, events, expected) in cases {
            let got = check(stream, &events);
            assert!(got.starts_with("invalid append: "), "{got}");
            assert!(got.contains(expected), "expected {expected:?} in {got:?}");
        }
    }

    #[test]
    fn rejects_duplicate_event_id_in_batch() {
        let e = event("$t", 1);
        let got = check("person-1", &[e.clone(), e.clone()]);
        assert_eq!(
            got,
            format!(
                "invalid append: event {}: appears more than once in the batch",
                e.event_id
            )
        );
    }
}

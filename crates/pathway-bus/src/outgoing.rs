//! What one stored event becomes on the bus: at most one message per
//! department stream — that department's view as its `pathway.views.v1`
//! message — and one [`AuditRecord`](pathway_proto::views::v1::AuditRecord)
//! for the auditors.

use bytes::Bytes;
use pathway_projections::views;
use pathway_proto::{Message, Timestamp, views::v1 as pb};
use pathway_store::RecordedEvent;

use crate::{
    BusError,
    subjects::{Department, subject},
    views_pb,
};

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub department: Department,
    pub subject: String,
    pub payload: Bytes,
}

/// Every message `record` is published as, in [`Department::ALL`] order,
/// with personal fields as stored (sealed, unless the log holds them in
/// clear). See [`outgoing_opened`] for the form departments read.
pub fn outgoing(record: &RecordedEvent) -> Result<Vec<Outgoing>, BusError> {
    let event = pathway_engine::decode(record).map_err(|e| decode_err(record, e))?;
    outgoing_event(record, &event)
}

/// The messages of each record, its personal fields opened with `keyring`
/// first (fields of erased persons stay out of every view).
pub async fn outgoing_opened(
    records: &[RecordedEvent],
    keyring: Option<&pathway_engine::Keyring>,
) -> Result<Vec<Vec<Outgoing>>, BusError> {
    let mut events = Vec::with_capacity(records.len());
    for r in records {
        events.push(pathway_engine::decode(r).map_err(|e| decode_err(r, e))?);
    }
    if let Some(keyring) = keyring {
        keyring
            .open_all(records.iter().map(|r| r.event_id).zip(events.iter_mut()))
            .await
            .map_err(|e| match e {
                // An outage of the key table is not a defect of the log.
                pathway_engine::KeyError::Table(detail) => BusError::KeyTable(detail),
                e => BusError::Decode {
                    position: records.first().map_or(0, |r| r.position),
                    detail: format!("opening personal fields: {e}"),
                },
            })?;
    }
    records
        .iter()
        .zip(&events)
        .map(|(r, e)| outgoing_event(r, e))
        .collect()
}

fn decode_err(record: &RecordedEvent, e: pathway_engine::EngineError) -> BusError {
    BusError::Decode {
        position: record.position,
        detail: e.to_string(),
    }
}

/// The messages of `record`, decoded as `event`.
pub fn outgoing_event(
    record: &RecordedEvent,
    event: &pathway_domain::Event,
) -> Result<Vec<Outgoing>, BusError> {
    let envelope = pathway_engine::decode_envelope(record).map_err(|e| decode_err(record, e))?;
    let event_id = record.event_id.to_string();
    let event_type = record.event_type.clone();
    let position = record.position;
    let occurred_at = envelope.occurred_at;

    let mut out = Vec::with_capacity(Department::ALL.len());
    let mut push = |department: Department, payload: Vec<u8>| {
        out.push(Outgoing {
            department,
            subject: subject(department, &record.event_type),
            payload: Bytes::from(payload),
        });
    };
    if let Some(v) = views::dpf(event) {
        push(
            Department::Dpf,
            pb::DpfEvent {
                event_id: event_id.clone(),
                event_type: event_type.clone(),
                position,
                occurred_at,
                view: Some(views_pb::dpf(&v)),
            }
            .encode_to_vec(),
        );
    }
    if let Some(v) = views::hrss(event) {
        push(
            Department::Hrss,
            pb::HrssEvent {
                event_id: event_id.clone(),
                event_type: event_type.clone(),
                position,
                occurred_at,
                view: Some(views_pb::hrss(&v)),
            }
            .encode_to_vec(),
        );
    }
    if let Some(v) = views::civil_affairs(event) {
        push(
            Department::CivilAffairs,
            pb::CivilAffairsEvent {
                event_id: event_id.clone(),
                event_type: event_type.clone(),
                position,
                occurred_at,
                view: Some(views_pb::civil_affairs(&v)),
            }
            .encode_to_vec(),
        );
    }
    if let Some(v) = views::education(event) {
        push(
            Department::Education,
            pb::EducationEvent {
                event_id: event_id.clone(),
                event_type: event_type.clone(),
                position,
                occurred_at,
                view: Some(views_pb::education(&v)),
            }
            .encode_to_vec(),
        );
    }
    if let Some(v) = views::sasac(event) {
        push(
            Department::Sasac,
            pb::SasacEvent {
                event_id: event_id.clone(),
                event_type: event_type.clone(),
                position,
                occurred_at,
                view: Some(views_pb::sasac(&v)),
            }
            .encode_to_vec(),
        );
    }
    if let Some(v) = views::committee(event) {
        push(
            Department::Committee,
            pb::CommitteeEvent {
                event_id: event_id.clone(),
                event_type: event_type.clone(),
                position,
                occurred_at,
                view: Some(views_pb::committee(&v)),
            }
            .encode_to_vec(),
        );
    }
    push(Department::Audit, audit_record(record).encode_to_vec());
    Ok(out)
}

/// The auditors' copy of a stored record: every byte as stored.
pub fn audit_record(r: &RecordedEvent) -> pb::AuditRecord {
    pb::AuditRecord {
        position: r.position,
        stream_id: r.stream_id.clone(),
        stream_version: r.stream_version,
        event_id: r.event_id.to_string(),
        event_type: r.event_type.clone(),
        schema_version: r.schema_version,
        recorded_at: Some(Timestamp {
            seconds: r.recorded_at.timestamp(),
            nanos: r.recorded_at.timestamp_subsec_nanos() as i32,
        }),
        envelope: r.metadata.to_vec(),
        payload: r.payload.to_vec(),
        prev_hash: r.prev_hash.to_vec(),
        hash: r.hash.to_vec(),
    }
}

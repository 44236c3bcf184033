//! A subject's history: every event about one person, household or
//! employer, in log order, with who did it, when and why — personal fields
//! pseudonymised unless the auditor holds a warrant recorded in the log.
//!
//! # Which events
//!
//! An event is about the subject when it is on a stream whose id contains
//! the subject's reference (its own stream `person-REF`, a graduate ledger
//! `ledger-REF-2024`, …) or when its payload names the reference in a
//! reference field of the subject's kind: `person_ref` / `member_person_refs`
//! for a person (so a household's phase-out naming the person is found),
//! `household_ref` for a household, `uscc` / `employer_uscc` for an
//! employer. The log's own audit streams (`audit-…`) are left out.
//!
//! **Cost:** one pass over the whole log through `read_all`, in batches of
//! [`SCAN_BATCH_EVENTS`](crate::SCAN_BATCH_EVENTS). Only payloads that
//! contain the reference's bytes are decoded (a protobuf string is stored
//! verbatim), so the pass costs little more than reading the log: seconds
//! per million events on PostgreSQL. The store has no index from a
//! reference to the streams that name it; one is not needed at audit rates.
//!
//! # Personal fields
//!
//! Every `pathway.events.v1.Personal` value in a payload (name, ID number,
//! phone, address, certificate number, category, grade, wage, income,
//! capacity level, …) is shown as `[personal 1a2b3c4d]`: the first 32 bits of
//! SHA-256 over a key drawn afresh for each history and the value, so equal
//! values can be told apart within one history and nothing links them across
//! histories. It is shown in clear only when the log holds an
//! `AuditWarrantIssued` naming this auditor and this subject whose validity
//! covers the day of the read (China Standard Time). Each read in clear
//! appends an `AuditRecordRead` event to [`ACCESS_STREAM`] before the
//! history is returned: no clear read goes unrecorded.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike as _, FixedOffset, NaiveDate, Utc};
use pathway_domain::pb;
use pathway_proto::Message as _;
use pathway_store::{EventStore, ExpectedVersion, ReadFilter, RecordedEvent, chain::category};
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, ReflectMessage as _, Value};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::{AuditError, SCAN_BATCH_EVENTS, checkpoint::audit_event};

/// Stream of the warrants.
pub const WARRANT_STREAM: &str = "audit-warrants";
/// Stream of the records of warranted reads.
pub const ACCESS_STREAM: &str = "audit-access";
/// Distinct approvers a warrant needs.
pub const WARRANT_APPROVERS_MIN: usize = 2;
/// Longest auditor or approver id, in characters.
pub const ACTOR_CHARS_MAX: usize = 100;
/// Longest warrant reason or authority, in characters.
pub const REASON_CHARS_MAX: usize = 1_000;
/// Full name of the personal-field message.
const PERSONAL_MESSAGE: &str = "pathway.events.v1.Personal";

/// What a history is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Person,
    Household,
    Employer,
}

impl SubjectKind {
    /// The category of the subject's own stream.
    pub fn category(self) -> &'static str {
        match self {
            SubjectKind::Person => "person",
            SubjectKind::Household => "household",
            SubjectKind::Employer => "employer",
        }
    }

    fn to_pb(self) -> pb::AuditSubjectKind {
        match self {
            SubjectKind::Person => pb::AuditSubjectKind::Person,
            SubjectKind::Household => pb::AuditSubjectKind::Household,
            SubjectKind::Employer => pb::AuditSubjectKind::Employer,
        }
    }

    /// Whether a payload field called `name` refers to a subject of this kind.
    fn is_reference_field(self, name: &str) -> bool {
        match self {
            SubjectKind::Person => name.ends_with("person_ref") || name.ends_with("person_refs"),
            SubjectKind::Household => name.ends_with("household_ref"),
            SubjectKind::Employer => name == "uscc" || name.ends_with("_uscc"),
        }
    }
}

/// A person, household or employer, by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: SubjectKind,
    /// PersonRef, household ref or unified social credit code.
    pub reference: String,
}

impl Subject {
    /// The subject's own stream.
    pub fn stream_id(&self) -> String {
        format!("{}-{}", self.kind.category(), self.reference)
    }
}

/// A warrant as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warrant {
    pub warrant_id: String,
    pub auditor_id: String,
    pub subject: Subject,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
    pub approved_by: Vec<String>,
    pub reason: String,
    pub authority: String,
    /// Position of its `AuditWarrantIssued` event.
    pub position: u64,
}

/// A request for a warrant.
#[derive(Debug, Clone)]
pub struct WarrantRequest {
    pub auditor_id: String,
    pub subject: Subject,
    pub reason: String,
    /// Reference of the authorising decision (may be empty).
    pub authority: String,
    pub approved_by: Vec<String>,
    /// Last day of validity (inclusive, China Standard Time).
    pub valid_until: NaiveDate,
}

/// China Standard Time, in which warrant dates are read.
fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8")
}

fn date_pb(d: NaiveDate) -> pb::Date {
    pb::Date {
        year: d.year(),
        month: d.month(),
        day: d.day(),
    }
}

fn date_of(d: Option<&pb::Date>) -> Option<NaiveDate> {
    d.and_then(|d| NaiveDate::from_ymd_opt(d.year, d.month, d.day))
}

fn check_id(what: &str, id: &str) -> Result<(), AuditError> {
    if id.trim().is_empty() || id.chars().count() > ACTOR_CHARS_MAX {
        return Err(AuditError::Invalid(format!(
            "{what} {id:?}: 1 to {ACTOR_CHARS_MAX} characters expected"
        )));
    }
    Ok(())
}

/// Records a warrant issued at `now` (valid from that day): appends
/// `AuditWarrantIssued` to [`WARRANT_STREAM`]. Needs two distinct approvers,
/// neither of them the auditor, and a validity ending today or later.
#[tracing::instrument(skip_all)]
pub async fn issue_warrant<S: EventStore>(
    store: &S,
    request: &WarrantRequest,
    now: DateTime<Utc>,
) -> Result<Warrant, AuditError> {
    check_id("auditor", &request.auditor_id)?;
    check_id("subject reference", &request.subject.reference)?;
    for approver in &request.approved_by {
        check_id("approver", approver)?;
        if *approver == request.auditor_id {
            return Err(AuditError::Invalid(format!(
                "approver {approver:?} is the auditor: a warrant is approved by others"
            )));
        }
    }
    let mut distinct = request.approved_by.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() < WARRANT_APPROVERS_MIN {
        return Err(AuditError::Invalid(format!(
            "a warrant needs {WARRANT_APPROVERS_MIN} distinct approvers, got {} ({})",
            distinct.len(),
            request.approved_by.join(", ")
        )));
    }
    if request.reason.trim().is_empty() || request.reason.chars().count() > REASON_CHARS_MAX {
        return Err(AuditError::Invalid(format!(
            "reason: 1 to {REASON_CHARS_MAX} characters expected"
        )));
    }
    if request.authority.chars().count() > REASON_CHARS_MAX {
        return Err(AuditError::Invalid(format!(
            "authority: at most {REASON_CHARS_MAX} characters expected"
        )));
    }
    let today = now.with_timezone(&cst()).date_naive();
    if request.valid_until < today {
        return Err(AuditError::Invalid(format!(
            "valid until {}: the date has passed (today is {today})",
            request.valid_until
        )));
    }
    let warrant_id = Uuid::new_v4();
    let event = pb::Event {
        kind: Some(pb::event::Kind::AuditWarrantIssued(
            pb::AuditWarrantIssued {
                warrant_id: warrant_id.to_string(),
                auditor_id: request.auditor_id.clone(),
                subject_kind: request.subject.kind.to_pb() as i32,
                subject_ref: request.subject.reference.clone(),
                valid_from: Some(date_pb(today)),
                valid_until: Some(date_pb(request.valid_until)),
                authority: request.authority.clone(),
                reason: request.reason.clone(),
                issued_by: pb::Department::Auditor as i32,
                approved_by: request.approved_by.clone(),
            },
        )),
    };
    let actor = format!("approvers:{}", request.approved_by.join("+"));
    let new = audit_event(warrant_id, &event, now, &actor);
    let appended = store
        .append(WARRANT_STREAM, ExpectedVersion::Any, vec![new])
        .await?;
    tracing::info!(position = appended.first_position, "warrant issued");
    Ok(Warrant {
        warrant_id: warrant_id.to_string(),
        auditor_id: request.auditor_id.clone(),
        subject: request.subject.clone(),
        valid_from: today,
        valid_until: request.valid_until,
        approved_by: request.approved_by.clone(),
        reason: request.reason.clone(),
        authority: request.authority.clone(),
        position: appended.first_position,
    })
}

/// One event of a history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub position: u64,
    /// Commit time.
    pub recorded_at: DateTime<Utc>,
    /// Business time (the envelope's `occurred_at`), when present.
    pub occurred_at: Option<DateTime<Utc>>,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub actor_department: String,
    pub actor_region: String,
    pub actor_id: String,
    pub command_id: String,
    pub correlation_id: String,
    pub causation_id: String,
    /// The payload as JSON, personal fields pseudonymised unless warranted.
    pub payload: serde_json::Value,
}

/// A subject's history.
#[derive(Debug, Clone)]
pub struct History {
    pub subject: Subject,
    pub entries: Vec<Entry>,
    /// The warrant the personal fields were shown under, if any.
    pub warrant: Option<Warrant>,
    /// Position of the `AuditRecordRead` event of a warranted read.
    pub access_position: Option<u64>,
    /// The log's head the read covered.
    pub through_position: u64,
}

/// The history of `subject` as read by `auditor` at `now`: see the module
/// docs for which events and how personal fields are shown.
pub async fn history<S: EventStore>(
    store: &S,
    subject: &Subject,
    auditor: Option<&str>,
    now: DateTime<Utc>,
) -> Result<History, AuditError> {
    history_with_keys(store, subject, auditor, now, None).await
}

/// [`history`], with personal fields opened by `keyring` first: a warranted
/// read shows them in clear, others pseudonymised by their clear value, and
/// fields whose key was destroyed show as `[personal, erased]`. Without a
/// keyring, sealed fields show as `[personal, sealed]`.
#[tracing::instrument(skip_all)]
pub async fn history_with_keys<S: EventStore>(
    store: &S,
    subject: &Subject,
    auditor: Option<&str>,
    now: DateTime<Utc>,
    keyring: Option<&pathway_engine::Keyring>,
) -> Result<History, AuditError> {
    check_id("subject reference", &subject.reference)?;
    let pool = descriptor_pool()?;
    let event_desc = pool
        .get_message_by_name("pathway.events.v1.Event")
        .ok_or_else(|| AuditError::Invalid("the schema has no Event".into()))?;
    let head = store.head().await?.position;
    let own = subject.stream_id();
    let needle = subject.reference.as_bytes();
    let today = now.with_timezone(&cst()).date_naive();
    let mut warrant = None;
    let mut matched: Vec<(RecordedEvent, DynamicMessage)> = Vec::new();
    let mut next = 1;
    while next <= head {
        let max = SCAN_BATCH_EVENTS.min((head - next + 1) as usize);
        let batch = store.read_all(next, max, &ReadFilter::all()).await?;
        let Some(last) = batch.last() else { break };
        next = last.position + 1;
        for r in batch {
            if category(&r.stream_id) == "audit" {
                if r.event_type == "AuditWarrantIssued"
                    && let Some(auditor) = auditor
                    && let Some(w) = warrant_of(&r)?
                    && w.auditor_id == auditor
                    && w.subject == *subject
                    && w.valid_from <= today
                    && today <= w.valid_until
                {
                    warrant = Some(w);
                }
                continue;
            }
            let by_stream = r.stream_id == own || contains(r.stream_id.as_bytes(), needle);
            if !by_stream && !contains(&r.payload, needle) {
                continue;
            }
            let message =
                DynamicMessage::decode(event_desc.clone(), r.payload.as_ref()).map_err(|e| {
                    AuditError::Decode {
                        position: r.position,
                        detail: e.to_string(),
                    }
                })?;
            if by_stream || names(&message, subject) {
                matched.push((r, message));
            }
        }
    }
    if let Some(keyring) = keyring {
        open_matched(&mut matched, &event_desc, keyring).await?;
    }
    let still_sealed = if keyring.is_some() {
        "[personal, erased]"
    } else {
        "[personal, sealed]"
    };
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| AuditError::Invalid(format!("no randomness for pseudonyms: {e}")))?;
    let clear = warrant.is_some();
    let entries = matched
        .into_iter()
        .map(|(r, mut message)| {
            // In clear, only the values that cannot be opened are replaced.
            let key = (!clear).then_some(&key);
            pseudonymise(&mut message, key, still_sealed);
            entry(&r, &message)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut access_position = None;
    if let Some(w) = &warrant {
        let read = pb::Event {
            kind: Some(pb::event::Kind::AuditRecordRead(pb::AuditRecordRead {
                warrant_id: w.warrant_id.clone(),
                auditor_id: w.auditor_id.clone(),
                subject_kind: subject.kind.to_pb() as i32,
                subject_ref: subject.reference.clone(),
                read_at: Some(pathway_proto::Timestamp {
                    seconds: now.timestamp(),
                    nanos: now.timestamp_subsec_nanos() as i32,
                }),
                events_shown: entries.len() as u64,
                through_position: head,
            })),
        };
        let new = audit_event(Uuid::new_v4(), &read, now, &w.auditor_id);
        let appended = store
            .append(ACCESS_STREAM, ExpectedVersion::Any, vec![new])
            .await?;
        access_position = Some(appended.first_position);
        tracing::info!(
            position = appended.first_position,
            "warranted read recorded"
        );
    }
    Ok(History {
        subject: subject.clone(),
        entries,
        warrant,
        access_position,
        through_position: head,
    })
}

fn descriptor_pool() -> Result<DescriptorPool, AuditError> {
    DescriptorPool::decode(pathway_proto::DESCRIPTOR_SET)
        .map_err(|e| AuditError::Invalid(format!("the compiled schema does not load: {e}")))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn warrant_of(r: &RecordedEvent) -> Result<Option<Warrant>, AuditError> {
    let event = pb::Event::decode(r.payload.as_ref()).map_err(|e| AuditError::Decode {
        position: r.position,
        detail: e.to_string(),
    })?;
    let Some(pb::event::Kind::AuditWarrantIssued(w)) = event.kind else {
        return Ok(None);
    };
    let kind = match w.subject_kind() {
        pb::AuditSubjectKind::Person => SubjectKind::Person,
        pb::AuditSubjectKind::Household => SubjectKind::Household,
        pb::AuditSubjectKind::Employer => SubjectKind::Employer,
        pb::AuditSubjectKind::Unspecified => return Ok(None),
    };
    let (Some(valid_from), Some(valid_until)) = (
        date_of(w.valid_from.as_ref()),
        date_of(w.valid_until.as_ref()),
    ) else {
        return Ok(None);
    };
    let mut distinct = w.approved_by.clone();
    distinct.sort();
    distinct.dedup();
    // A warrant recorded without dual approval grants nothing.
    if distinct.len() < WARRANT_APPROVERS_MIN || distinct.contains(&w.auditor_id) {
        return Ok(None);
    }
    Ok(Some(Warrant {
        warrant_id: w.warrant_id,
        auditor_id: w.auditor_id,
        subject: Subject {
            kind,
            reference: w.subject_ref,
        },
        valid_from,
        valid_until,
        approved_by: w.approved_by,
        reason: w.reason,
        authority: w.authority,
        position: r.position,
    }))
}

/// Whether a reference field of the subject's kind anywhere in `message`
/// holds the subject's reference.
fn names(message: &DynamicMessage, subject: &Subject) -> bool {
    message.fields().any(|(field, value)| {
        let is_ref = subject.kind.is_reference_field(field.name());
        let hit = |v: &Value| match v {
            Value::String(s) => is_ref && *s == subject.reference,
            Value::Message(m) => names(m, subject),
            _ => false,
        };
        match value {
            Value::List(items) => items.iter().any(hit),
            v => hit(v),
        }
    })
}

/// Opens the sealed personal fields of the matched events.
async fn open_matched(
    matched: &mut [(RecordedEvent, DynamicMessage)],
    event_desc: &prost_reflect::MessageDescriptor,
    keyring: &pathway_engine::Keyring,
) -> Result<(), AuditError> {
    let decode_err = |position: u64, detail: String| AuditError::Decode { position, detail };
    let mut kinds = Vec::with_capacity(matched.len());
    for (r, _) in matched.iter() {
        let event = pb::Event::decode(r.payload.as_ref())
            .map_err(|e| decode_err(r.position, e.to_string()))?;
        kinds.push(event.kind);
    }
    keyring
        .open_all(
            matched
                .iter()
                .zip(kinds.iter_mut())
                .filter_map(|((r, _), k)| k.as_mut().map(|k| (r.event_id, k))),
        )
        .await
        .map_err(|e| AuditError::Invalid(format!("opening personal fields: {e}")))?;
    for ((r, message), kind) in matched.iter_mut().zip(kinds) {
        let bytes = pb::Event { kind }.encode_to_vec();
        *message = DynamicMessage::decode(event_desc.clone(), bytes.as_slice())
            .map_err(|e| decode_err(r.position, e.to_string()))?;
    }
    Ok(())
}

/// Replaces every `Personal` value in `message` with its pseudonym (with
/// `key`) or leaves it in clear (without); values still sealed are shown as
/// `still_sealed`.
fn pseudonymise(message: &mut DynamicMessage, key: Option<&[u8; 32]>, still_sealed: &str) {
    let fields: Vec<_> = message
        .descriptor()
        .fields()
        .filter(|f| matches!(f.kind(), Kind::Message(_)))
        .collect();
    for field in fields {
        if !message.has_field(&field) {
            continue;
        }
        let value = message.get_field_mut(&field);
        match value {
            Value::Message(m) => visit(m, key, still_sealed),
            Value::List(items) => {
                for item in items {
                    if let Value::Message(m) = item {
                        visit(m, key, still_sealed);
                    }
                }
            }
            _ => {}
        }
    }
}

fn visit(message: &mut DynamicMessage, key: Option<&[u8; 32]>, still_sealed: &str) {
    if message.descriptor().full_name() != PERSONAL_MESSAGE {
        pseudonymise(message, key, still_sealed);
        return;
    }
    let Ok(personal) = message.transcode_to::<pb::Personal>() else {
        return;
    };
    let shown = match personal.value {
        None => return,
        Some(pb::personal::Value::Sealed(_)) => still_sealed.to_owned(),
        Some(value) => {
            let Some(key) = key else {
                return;
            };
            let mut h = Sha256::new();
            h.update(key);
            match value {
                pb::personal::Value::Text(t) => {
                    h.update(b"t");
                    h.update(t.as_bytes());
                }
                pb::personal::Value::Integer(n) => {
                    h.update(b"i");
                    h.update(n.to_be_bytes());
                }
                pb::personal::Value::Sealed(_) => {}
            }
            format!("[personal {}]", hex::encode(&h.finalize()[..4]))
        }
    };
    let replacement = pb::Personal {
        value: Some(pb::personal::Value::Text(shown)),
    };
    if let Ok(m) =
        DynamicMessage::decode(message.descriptor(), replacement.encode_to_vec().as_slice())
    {
        *message = m;
    }
}

fn entry(r: &RecordedEvent, message: &DynamicMessage) -> Result<Entry, AuditError> {
    let env = pb::EventEnvelope::decode(r.metadata.as_ref()).map_err(|e| AuditError::Decode {
        position: r.position,
        detail: format!("envelope: {e}"),
    })?;
    let payload = serde_json::to_value(message).map_err(|e| AuditError::Decode {
        position: r.position,
        detail: format!("payload as JSON: {e}"),
    })?;
    // The oneof wraps the event: show the event itself.
    let payload = match payload {
        serde_json::Value::Object(map) if map.len() == 1 => {
            map.into_iter().next().map(|(_, v)| v).unwrap_or_default()
        }
        other => other,
    };
    Ok(Entry {
        position: r.position,
        recorded_at: r.recorded_at,
        occurred_at: env
            .occurred_at
            .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)),
        stream_id: r.stream_id.clone(),
        stream_version: r.stream_version,
        event_type: r.event_type.clone(),
        actor_department: env.actor_department().as_str_name().to_owned(),
        actor_region: env.actor_region,
        actor_id: env.actor_id,
        command_id: env.command_id,
        correlation_id: env.correlation_id,
        causation_id: env.causation_id,
        payload,
    })
}

/// Counts of the entries by event type, for summaries.
pub fn count_by_type(entries: &[Entry]) -> BTreeMap<&str, usize> {
    let mut out = BTreeMap::new();
    for e in entries {
        *out.entry(e.event_type.as_str()).or_default() += 1;
    }
    out
}

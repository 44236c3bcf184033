//! Values that cross the store's API.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The version a stream must be at for an append to succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last version must be exactly this (0 = no stream).
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("stream exists"),
            ExpectedVersion::Exact(n) => write!(f, "{n}"),
        }
    }
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `actual` (0 = absent) satisfies this.
    pub fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::StreamExists => actual > 0,
            ExpectedVersion::Exact(n) => actual == n,
        }
    }
}

/// An event to append. `metadata` is the encoded envelope the caller fills
/// (ids, times, actor); the store adds stream, version, position and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub metadata: Bytes,
    pub payload: Bytes,
}

/// What an append did: the positions and stream versions it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub first_position: u64,
    pub last_position: u64,
    /// The stream's version after the append (its last event's version).
    pub stream_version: u64,
}

/// One event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub position: u64,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// Commit time, truncated to microseconds.
    pub recorded_at: DateTime<Utc>,
    pub metadata: Bytes,
    pub payload: Bytes,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl RecordedEvent {
    /// The record's fields (all but the hashes), borrowed.
    pub fn as_record_ref(&self) -> RecordRef<'_> {
        RecordRef {
            position: self.position,
            stream_id: &self.stream_id,
            stream_version: self.stream_version,
            event_id: self.event_id,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            recorded_at: self.recorded_at,
            metadata: &self.metadata,
            payload: &self.payload,
        }
    }
}

/// What of each record a mapped read ([`crate::EventStore::read_all_mapped`])
/// hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordParts {
    /// Every part of a [`RecordRef`].
    All,
    /// All but the envelope: [`RecordRef::metadata`] is empty, and a store
    /// that can does not read it (for a reader that uses only the payload).
    WithoutMetadata,
}

/// One stored event without its hashes, borrowed from where the store read
/// it: what [`crate::EventStore::read_all_mapped`] hands to its mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub position: u64,
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: u32,
    /// Commit time, truncated to microseconds.
    pub recorded_at: DateTime<Utc>,
    pub metadata: &'a [u8],
    pub payload: &'a [u8],
}

/// The end of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Last position; 0 when the log is empty.
    pub position: u64,
    /// Hash of the last record; [`crate::chain::GENESIS`] when empty.
    pub hash: [u8; 32],
}

/// Restricts `read_all` to some event types and/or stream categories (the
/// part of the stream id before the first `-`). Empty lists mean "all".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadFilter {
    pub event_types: Vec<String>,
    pub categories: Vec<String>,
}

impl ReadFilter {
    /// No filter.
    pub fn all() -> Self {
        ReadFilter::default()
    }

    /// Whether this filter lets `event` through.
    pub fn admits(&self, stream_id: &str, event_type: &str) -> bool {
        (self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type))
            && (self.categories.is_empty()
                || self
                    .categories
                    .iter()
                    .any(|c| crate::chain::category(stream_id) == c))
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked.
    pub checked: u64,
    /// Last position checked and its stored hash.
    pub head: Head,
    /// The first break in the chain, if any.
    pub first_break: Option<ChainBreak>,
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub position: u64,
    pub kind: ChainBreakKind,
}

/// How a record fails verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainBreakKind {
    /// The record's content no longer matches its hash (payload, metadata or
    /// envelope columns changed).
    ContentChanged,
    /// A position is missing (a row deleted).
    RecordMissing,
    /// The record's previous-hash does not match the record before it (rows
    /// reordered or replaced with a recomputed chain).
    OrderChanged,
}

impl std::fmt::Display for ChainBreakKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChainBreakKind::ContentChanged => "content changed (hash mismatch)",
            ChainBreakKind::RecordMissing => "record missing",
            ChainBreakKind::OrderChanged => "order changed (previous hash mismatch)",
        })
    }
}

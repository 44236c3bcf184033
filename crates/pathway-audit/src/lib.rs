//! Audit of the event log: what Pathway knew at any moment, and proof that
//! nothing was altered after the fact — by Pathway's own operators included.
//!
//! - [`verify`]: recomputes the hash chain over a range of the log, streaming
//!   (PostgreSQL is read with one binary `COPY`), and names the first bad
//!   position and what is wrong with it.
//! - [`checkpoint`]: Ed25519-signed statements of the log's head (position,
//!   hash, time), recorded as `LogCheckpointSigned` events and as files an
//!   auditor keeps outside the system. A chain that still verifies but no
//!   longer holds the checkpointed hash at the checkpointed position was
//!   rewritten, recomputed hashes and all.
//! - [`replay`]: a department read model rebuilt from the events whose
//!   business time is at or before a moment, into scratch storage, never
//!   touching the live models.
//!
//! - [`bundle`]: export of a range of the log as a self-verifying bundle
//!   (records with every stored column, their checkpoints, a manifest of
//!   digests), verified on another machine without the database.
//! - [`history`]: every event about one person, household or employer, with
//!   personal fields pseudonymised unless the auditor holds a warrant
//!   recorded in the log; warrants (dual approval) and a record of every
//!   read in clear.
//! - [`evaluation`]: the end-of-plan evaluation from models replayed as of
//!   a year-end.
//!
//! Audit events are appended straight to the store, not through the command
//! engine: they state facts about the log itself (a signature over its head,
//! a warrant granted outside Pathway), not decisions of the domain.

pub mod bundle;
pub mod checkpoint;
pub mod evaluation;
pub mod history;
pub mod replay;
pub mod verify;

use pathway_store::StoreError;

/// Stream of the signed checkpoints.
pub const CHECKPOINT_STREAM: &str = "audit-checkpoints";
/// Events read per batch when the log is scanned through the store API.
pub const SCAN_BATCH_EVENTS: usize = 10_000;

/// Why an audit operation failed. A failed *check* (a broken chain, a bad
/// signature) is not an error but a finding, reported in the operation's result.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A key, checkpoint or bundle file is not in the expected format.
    #[error("{path}: {detail}")]
    Format { path: String, detail: String },
    /// A stored event does not decode.
    #[error("event at position {position}: {detail}")]
    Decode { position: u64, detail: String },
    /// Building a read model failed.
    #[error(transparent)]
    Projection(#[from] pathway_projections::ProjectionError),
    /// The caller asked for something that cannot be done.
    #[error("{0}")]
    Invalid(String),
}

impl AuditError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        AuditError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn format(path: &std::path::Path, detail: impl Into<String>) -> Self {
        AuditError::Format {
            path: path.display().to_string(),
            detail: detail.into(),
        }
    }
}

//! The store's error: conflicts, bad input, corruption and infrastructure
//! failures are kept apart so callers can retry only what is retryable.

use crate::ExpectedVersion;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency: the stream was not at the expected version. Retryable
    /// after reloading the stream.
    #[error("stream {stream}: expected version {expected}, found {actual}")]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        actual: u64,
    },

    /// An event id already stored with other content (or in another stream or version).
    #[error(
        "event {event_id}: already stored with different content in stream {stream} at version {version}"
    )]
    EventIdReused {
        event_id: uuid::Uuid,
        stream: String,
        version: u64,
    },

    /// The caller's input breaks a documented limit or format; nothing was written.
    #[error("invalid append: {0}")]
    InvalidInput(String),

    /// Stored data could not be read back as a record (torn or corrupted).
    #[error("corrupted store at {location}: {detail}")]
    Corrupted { location: String, detail: String },

    /// The database or file system failed; the operation may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),

    /// A bounded wait ran out.
    #[error("{operation} timed out after {timeout_ms} ms")]
    Timeout {
        operation: &'static str,
        timeout_ms: u64,
    },

    /// The store was shut down.
    #[error("store is closed")]
    Closed,
}

impl StoreError {
    /// The storage is out of reach (down, a bounded wait ran out, shut
    /// down), as opposed to a conflict or bad input: the caller may try
    /// again later, here or on another instance.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Timeout { .. } | StoreError::Closed
        )
    }

    /// Whether retrying the same call (after a reload for conflicts) can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::WrongExpectedVersion { .. }
                | StoreError::Unavailable(_)
                | StoreError::Timeout { .. }
        )
    }
}

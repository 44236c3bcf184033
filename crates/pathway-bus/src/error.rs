//! The bus crate's one error type.

use pathway_store::StoreError;

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be turned into messages.
    #[error("event at position {position} does not decode: {detail}")]
    Decode { position: u64, detail: String },
    /// The key table could not be read (e.g. its database is restarting);
    /// the relay retries the batch (retryable).
    #[error("key table: {0}")]
    KeyTable(String),
    /// NATS refused or did not answer an operation (retryable).
    #[error("nats {operation}: {detail}")]
    Nats {
        operation: &'static str,
        detail: String,
    },
    /// A published message was not stored where the relay expected it; the
    /// relay re-reads the streams' tails and goes on (retryable).
    #[error("stream {stream}: {detail}")]
    Resync { stream: String, detail: String },
    /// The checkpoint store or the leader lock failed.
    #[error("relay checkpoint: {0}")]
    Checkpoint(String),
    /// This process no longer holds the relay lock.
    #[error("relay leadership lost: {0}")]
    LeadershipLost(String),
    /// A message received from NATS is not what its subject promises.
    #[error("message on {subject}: {detail}")]
    BadMessage { subject: String, detail: String },
}

impl BusError {
    /// The log, the key table or NATS is out of reach: the same operation
    /// may succeed later (the relay retries it; a gRPC client resumes).
    pub fn is_outage(&self) -> bool {
        match self {
            BusError::Store(e) => e.is_outage(),
            BusError::KeyTable(_) | BusError::Nats { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn nats(operation: &'static str, e: impl std::fmt::Display) -> BusError {
        BusError::Nats {
            operation,
            detail: e.to_string(),
        }
    }
}

//! The runtime's error: store failures, command failures, undecodable saga
//! streams and injected faults are kept apart.

use pathway_engine::EngineError;
use pathway_store::StoreError;

use crate::FaultPoint;

/// Why a router or sweeper step failed. Every variant leaves the log
/// consistent: the step can be retried by this or another process.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    /// The log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A command the saga issued failed for a reason other than a rejection
    /// (rejections are logged and the saga goes on).
    #[error("saga {saga_id}: command {command_id} failed: {source}")]
    Command {
        saga_id: String,
        command_id: uuid::Uuid,
        source: EngineError,
    },
    /// A saga stream or an input does not decode.
    #[error("stream {stream}: event at version {version} does not decode: {detail}")]
    Decode {
        stream: String,
        version: u64,
        detail: String,
    },
    /// Kept losing races on a saga stream.
    #[error("saga {saga_id}: gave up after {attempts} conflicting appends")]
    Conflict { saga_id: String, attempts: u32 },
    /// The leader lock could not be tried, or a leader's worker task ended.
    #[error("workflow leadership: {0}")]
    Leadership(String),
    /// A fault injected by a test at this point.
    #[error("fault injected at {0:?}")]
    Injected(FaultPoint),
}

//! Fault points: where tests stop the runtime to prove crash safety.

use std::sync::Arc;

use crate::SagaError;

/// A point between two durable actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// The sweeper decided to fire a timer and has not appended the firing.
    BeforeFireAppend,
    /// The firing is appended; the sweeper has not updated its index.
    AfterFireAppend,
    /// The router decided a step and has not appended it.
    BeforeStepAppend,
    /// The step is appended; its commands are not sent yet.
    AfterStepAppend,
    /// The step's commands are sent; the checkpoint is not written.
    AfterCommands,
}

/// Called at every fault point with the saga id. Returning an error abandons
/// the operation there (as a crash would); a test may also block in it and
/// kill the process.
pub type FaultHook = Arc<dyn Fn(FaultPoint, &str) -> Result<(), SagaError> + Send + Sync>;

/// A hook that never faults.
pub fn no_faults() -> FaultHook {
    Arc::new(|_, _| Ok(()))
}

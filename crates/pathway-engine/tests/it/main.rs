//! The command engine over the embedded store: decisions reach the log with
//! envelopes, retries are idempotent, conflicts are retried, and an ID number
//! is registered once.

mod engine;
mod hostile;
mod registration;
mod snapshots;

//! The command engine over the embedded store: decisions reach the log with
//! envelopes, retries are idempotent, conflicts are retried.

mod engine;

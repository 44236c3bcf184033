//! The audit crate against real logs: tamper tests on PostgreSQL (direct
//! SQL on the `events` table), replay as of each year-end, export bundles,
//! subject histories under warrants, and the end-of-plan evaluation.

mod bundle;
mod evaluation;
mod history;
mod pg;
mod replay;
mod tamper;

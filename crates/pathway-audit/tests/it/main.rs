//! The audit crate against real logs: tamper tests on PostgreSQL (direct
//! SQL on the `events` table) and replay as of each year-end.

mod pg;
mod replay;
mod tamper;

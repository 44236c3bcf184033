//! Named limits of the log. Every bound has its unit in its name.

/// Largest payload + metadata of one event.
pub const EVENT_BYTES_MAX: usize = 256 * 1024;
/// Most events in one append.
pub const APPEND_EVENTS_MAX: usize = 1_000;
/// Longest stream id.
pub const STREAM_ID_BYTES_MAX: usize = 200;
/// Longest event type name.
pub const EVENT_TYPE_BYTES_MAX: usize = 100;
/// Most events a group commit writes in one transaction.
pub const GROUP_COMMIT_EVENTS_MAX: usize = 4_096;
/// Capacity of the queue of appends waiting for the group committer.
pub const APPEND_QUEUE_LEN_MAX: usize = 8_192;
/// Events a subscription pulls per read.
pub const SUBSCRIPTION_BATCH_EVENTS: usize = 1_000;
/// A subscription re-checks the head at least this often even without a wake-up.
pub const SUBSCRIPTION_POLL_INTERVAL_MS: u64 = 500;
/// Events `verify` reads per batch.
pub const VERIFY_BATCH_EVENTS: usize = 10_000;
/// Wait for a pooled PostgreSQL connection.
pub const PG_POOL_WAIT_TIMEOUT_MS: u64 = 5_000;
/// Wait to open a PostgreSQL connection.
pub const PG_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Pooled PostgreSQL connections.
pub const PG_POOL_SIZE_MAX: usize = 16;

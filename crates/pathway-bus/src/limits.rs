//! Named limits and defaults of the bus. Every bound has its unit in its name.

/// Most events the relay publishes before it waits for their acknowledgements
/// and advances the checkpoint.
pub const RELAY_BATCH_EVENTS_MAX: usize = 1_000;
/// Most publishes awaiting an acknowledgement at once (a batch publishes at
/// most one message per stream per event).
pub const RELAY_ACKS_INFLIGHT_MAX: usize = 8_192;
/// How long the relay waits for one publish acknowledgement.
pub const RELAY_ACK_TIMEOUT_MS: u64 = 5_000;
/// Pause after a failed relay cycle (NATS down, stream missing) before retrying.
pub const RELAY_RETRY_BACKOFF_MS: u64 = 500;
/// How often a standby relay tries to take the leader lock.
pub const RELAY_STANDBY_POLL_MS: u64 = 1_000;
/// JetStream's window for dropping a repeated `Nats-Msg-Id`.
pub const STREAM_DUPLICATE_WINDOW_S: u64 = 120;
/// How long a stream keeps a message. Streams are rebuildable from the log,
/// so this bounds disk use rather than the record.
pub const STREAM_MAX_AGE_DAYS: u64 = 400;
/// Largest stream on disk.
pub const STREAM_MAX_BYTES: i64 = 64 * 1024 * 1024 * 1024;
/// Most messages a consumer may have delivered but not yet acknowledged.
pub const CONSUMER_ACK_PENDING_MAX: i64 = 1_000;
/// How long a consumer waits for an acknowledgement before redelivering.
pub const CONSUMER_ACK_WAIT_S: u64 = 30;

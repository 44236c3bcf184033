//! Named limits and defaults of the bus. Every bound has its unit in its name.

/// Most events the relay publishes before it waits for their acknowledgements
/// and advances the checkpoint.
pub const RELAY_BATCH_EVENTS_MAX: usize = 1_000;
/// Most publishes awaiting an acknowledgement at once. The relay keeps two
/// batches in flight, each at most one message per stream (7) per event, and
/// a publish waits for a free slot while its future holds one: this must
/// cover both batches or the relay would wait on itself.
pub const RELAY_ACKS_INFLIGHT_MAX: usize = 16_384;
const _: () = assert!(RELAY_ACKS_INFLIGHT_MAX >= 2 * RELAY_BATCH_EVENTS_MAX * 7);
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
/// Largest stream on disk by default (per stream; the oldest messages go
/// first). JetStream refuses a stream whose bound exceeds the server's
/// storage, so deployments size it with `--stream-max-bytes`.
pub const STREAM_MAX_BYTES_DEFAULT: i64 = 8 * 1024 * 1024 * 1024;
/// Most messages a consumer may have delivered but not yet acknowledged.
pub const CONSUMER_ACK_PENDING_MAX: i64 = 1_000;
/// How long a consumer waits for an acknowledgement before redelivering.
pub const CONSUMER_ACK_WAIT_S: u64 = 30;
/// Most messages a reader pulls in one request.
pub const CONSUMER_PULL_BATCH_MAX: usize = 100;
/// How long one pull request waits for messages before the next is sent.
pub const CONSUMER_PULL_WAIT_MS: u64 = 5_000;

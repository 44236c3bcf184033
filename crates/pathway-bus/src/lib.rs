//! Distribution of the log over NATS JetStream.
//!
//! PostgreSQL (or the embedded store) stays the system of record; NATS is a
//! replayable distribution layer, rebuilt from the log whenever in doubt.
//!
//! - [`subjects`]: the one subject scheme, `pathway.v1.<department>.<context>.<event>`,
//!   and one JetStream stream per department (plus the auditors').
//! - [`outgoing`]: what one stored event becomes on the bus — each
//!   department's view as its own `pathway.views.v1` message, never the raw
//!   event; the auditors get the full record.
//! - [`relay`]: follows the log from a durable checkpoint and publishes each
//!   event in log order, with `Nats-Msg-Id` = event id, advancing the
//!   checkpoint only after every publish of a batch is acknowledged.
//! - [`coordinator`]: who may relay (one leader per database) and where the
//!   checkpoint lives (a PostgreSQL table, or a SQLite file beside the
//!   embedded store).
//! - [`consumer`]: durable pull consumers with explicit acks, decoding each
//!   message to JSON for `pathway subscribe`.
//!
//! Only this crate knows NATS.

pub mod consumer;
pub mod coordinator;
mod error;
pub mod exchange;
pub mod exchange_service;
pub mod limits;
pub mod outgoing;
pub mod relay;
pub mod subjects;
mod views_pb;

/// The NATS client this crate is built on, for binaries that connect.
pub use async_nats;
pub use error::BusError;

/// Longest wait for one connection attempt to NATS.
pub const NATS_CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Connects to NATS at `url` (with `user` and `password` when both are
/// given, and a custom inbox prefix for readers), retrying in the
/// background while the server is down: a client waiting for its first
/// connection still accepts work.
pub async fn connect(
    url: &str,
    user: Option<&str>,
    password: Option<&str>,
    inbox_prefix: Option<&str>,
) -> Result<async_nats::Client, BusError> {
    let mut options = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(std::time::Duration::from_millis(NATS_CONNECT_TIMEOUT_MS));
    if let (Some(user), Some(password)) = (user, password) {
        options = options.user_and_password(user.to_owned(), password.to_owned());
    }
    if let Some(prefix) = inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }
    options
        .connect(url)
        .await
        .map_err(|e| BusError::nats("connect", e))
}

//! The relay: follows the log from its checkpoint and publishes every event
//! to JetStream, in log order.
//!
//! One cycle: ensure the streams, read each stream's tail (its last sequence
//! and the log position of its last message, from the `Pathway-Position`
//! header), then follow the log from checkpoint + 1 a batch at a time. For
//! each event of a batch, each of its [`outgoing`] messages is published with
//! - `Nats-Msg-Id` = the event id (JetStream drops a repeat inside the
//!   duplicate window),
//! - `Nats-Expected-Last-Sequence` = the stream's sequence before it, so a
//!   message is stored only right after its predecessor: publishes are
//!   pipelined, yet a lost one can never be overtaken by a later one, and
//! - `Pathway-Position` = its log position.
//!
//! A message whose position is at or below its stream's tail is already
//! there and is skipped, so a restart between a publish and the checkpoint
//! write publishes nothing twice. The checkpoint is advanced to the batch's
//! last position only after every publish of the batch is acknowledged. Any
//! failure (NATS down, an ack timeout, a sequence mismatch) ends the cycle;
//! the next one starts again from the checkpoint after
//! [`RELAY_RETRY_BACKOFF_MS`]. Appends to the log never wait for the relay.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_nats::{HeaderMap, header};
use futures::FutureExt as _;
use pathway_store::{EventStore, subscribe_all};

use crate::BusError;
use crate::coordinator::Coordinator;
use crate::limits::{
    RELAY_ACK_TIMEOUT_MS, RELAY_ACKS_INFLIGHT_MAX, RELAY_BATCH_EVENTS_MAX, RELAY_RETRY_BACKOFF_MS,
    STREAM_DUPLICATE_WINDOW_S, STREAM_MAX_AGE_DAYS, STREAM_MAX_BYTES_DEFAULT,
};
use crate::outgoing::outgoing_opened;
use crate::subjects::Department;

/// Copies of each stream unless configured (a single server).
pub const STREAM_REPLICAS_DEFAULT: usize = 1;
/// Most copies JetStream keeps of a stream.
pub const STREAM_REPLICAS_MAX: usize = 5;

/// The header carrying a message's log position.
pub const POSITION_HEADER: &str = "Pathway-Position";
/// The header carrying a message's event type.
pub const EVENT_TYPE_HEADER: &str = "Pathway-Event-Type";

/// The configuration of one department's stream: file storage, limits
/// retention with an explicit age and size, the duplicate window, and
/// `replicas` copies (3 on a 3-node cluster; at most the number of nodes).
pub fn stream_config(department: Department, max_bytes: i64, replicas: usize) -> stream::Config {
    stream::Config {
        name: department.stream(),
        description: Some(format!(
            "Pathway events as the {department} reader sees them; rebuildable from the log"
        )),
        subjects: vec![department.wildcard()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_age: Duration::from_secs(STREAM_MAX_AGE_DAYS * 24 * 3600),
        max_bytes,
        duplicate_window: Duration::from_secs(STREAM_DUPLICATE_WINDOW_S),
        num_replicas: replicas,
        ..Default::default()
    }
}

/// Creates or updates every stream.
pub async fn ensure_streams(
    js: &jetstream::Context,
    max_bytes: i64,
    replicas: usize,
) -> Result<(), BusError> {
    for d in Department::ALL {
        create_stream(js, stream_config(d, max_bytes, replicas)).await?;
    }
    Ok(())
}

/// Streams Pathway creates on a NATS server, each of `--stream-max-bytes`:
/// one per department and the auditor's ([`ensure_streams`]), and the
/// graduate exchange's.
pub const PATHWAY_STREAMS: usize = Department::ALL.len() + 1;

/// Creates or updates one stream. JetStream reserves a stream's `max_bytes`
/// up front, so a refusal for lack of storage names the settings to change.
pub(crate) async fn create_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<(), BusError> {
    let (max_bytes, replicas) = (config.max_bytes, config.num_replicas);
    js.create_or_update_stream(config).await.map_err(|e| {
        let detail = e.to_string();
        if detail.contains("insufficient storage") {
            BusError::nats(
                "create stream",
                format!(
                    "{detail}; the server's JetStream storage (max_file_store) must hold \
                     {PATHWAY_STREAMS} streams of {max_bytes} bytes each (--stream-max-bytes) \
                     times {replicas} replica(s)"
                ),
            )
        } else {
            BusError::nats("create stream", detail)
        }
    })?;
    Ok(())
}

/// Deletes every stream (and its consumers), for a rebuild.
pub async fn delete_streams(js: &jetstream::Context) -> Result<(), BusError> {
    for d in Department::ALL {
        match js.delete_stream(d.stream()).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("not found") => {}
            Err(e) => return Err(BusError::nats("delete stream", e)),
        }
    }
    Ok(())
}

/// A JetStream context for the relay: bounded acks in flight, with backpressure.
pub fn relay_context(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(RELAY_ACK_TIMEOUT_MS))
        .max_ack_inflight(RELAY_ACKS_INFLIGHT_MAX)
        .backpressure_on_inflight(true)
        .build(client)
}

/// Where a stream ends.
#[derive(Debug, Clone, Copy)]
struct Tail {
    /// The stream's last sequence.
    sequence: u64,
    /// The log position of its last message (0 if unknown or empty).
    position: u64,
}

async fn read_tail(js: &jetstream::Context, d: Department) -> Result<Tail, BusError> {
    let (s, state) = stream_state(js, d).await?;
    let last = match state.messages {
        0 => None,
        _ => s.get_raw_message(state.last_sequence).await.ok(),
    };
    Ok(Tail {
        sequence: state.last_sequence,
        position: last.and_then(|m| position_of(&m.headers)).unwrap_or(0),
    })
}

/// `department`'s stream and its state.
async fn stream_state(
    js: &jetstream::Context,
    department: Department,
) -> Result<(jetstream::stream::Stream, jetstream::stream::State), BusError> {
    let mut s = js
        .get_stream(department.stream())
        .await
        .map_err(|e| BusError::nats("get stream", e))?;
    let state = s
        .info()
        .await
        .map_err(|e| BusError::nats("stream info", e))?
        .state
        .clone();
    Ok((s, state))
}

/// The log position a published message carries.
fn position_of(headers: &async_nats::HeaderMap) -> Option<u64> {
    headers.get(POSITION_HEADER)?.as_str().parse().ok()
}

/// The log position of the last message in `department`'s stream (0 when
/// it is empty): how far the relay has published.
pub async fn published_position(
    js: &jetstream::Context,
    department: Department,
) -> Result<u64, BusError> {
    Ok(read_tail(js, department).await?.position)
}

/// The event id and log position of every message in `department`'s stream,
/// in stream order: what the relay published, to compare with the log.
pub async fn published(
    js: &jetstream::Context,
    department: Department,
) -> Result<Vec<(String, u64)>, BusError> {
    use futures::StreamExt as _;
    let (s, state) = stream_state(js, department).await?;
    let count = state.messages;
    let consumer: jetstream::consumer::PullConsumer = s
        .create_consumer(jetstream::consumer::pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::nats("create consumer", e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| BusError::nats("pull", e))?
        .take(usize::try_from(count).unwrap_or(usize::MAX));
    let mut out = Vec::new();
    while let Some(m) = messages.next().await {
        let m = m.map_err(|e| BusError::nats("pull", e))?;
        let bad = |detail: &str| BusError::BadMessage {
            subject: m.subject.to_string(),
            detail: detail.to_owned(),
        };
        let headers = m.headers.as_ref().ok_or_else(|| bad("no headers"))?;
        let id = headers
            .get(header::NATS_MESSAGE_ID)
            .ok_or_else(|| bad("no Nats-Msg-Id header"))?
            .as_str()
            .to_owned();
        let position = position_of(headers).ok_or_else(|| bad("no position header"))?;
        out.push((id, position));
    }
    Ok(out)
}

/// The relay. See the module docs.
pub struct Relay<S, C> {
    store: S,
    coordinator: C,
    js: jetstream::Context,
    batch_events_max: usize,
    stream_max_bytes: i64,
    stream_replicas: usize,
    keyring: Option<pathway_engine::Keyring>,
}

impl<S, C> std::fmt::Debug for Relay<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("batch_events_max", &self.batch_events_max)
            .finish_non_exhaustive()
    }
}

impl<S: EventStore + Clone, C: Coordinator> Relay<S, C> {
    /// A relay from `store` to the JetStream of `client`.
    pub fn new(store: S, coordinator: C, client: async_nats::Client) -> Self {
        Relay {
            store,
            coordinator,
            js: relay_context(client),
            batch_events_max: RELAY_BATCH_EVENTS_MAX,
            stream_max_bytes: STREAM_MAX_BYTES_DEFAULT,
            stream_replicas: STREAM_REPLICAS_DEFAULT,
            keyring: None,
        }
    }

    /// Opens personal fields with `keyring` before the department views are
    /// made, so each department sees the values it is entitled to.
    pub fn with_keyring(mut self, keyring: pathway_engine::Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Bounds each stream to `bytes` on disk.
    pub fn with_stream_max_bytes(mut self, bytes: i64) -> Self {
        self.stream_max_bytes = bytes;
        self
    }

    /// Keeps `replicas` copies of each stream (on a cluster of at least that
    /// many nodes).
    pub fn with_stream_replicas(mut self, replicas: usize) -> Self {
        self.stream_replicas = replicas.clamp(1, STREAM_REPLICAS_MAX);
        self
    }

    /// Publishes at most `events` events per batch (and checkpoint write).
    pub fn with_batch_events_max(mut self, events: usize) -> Self {
        self.batch_events_max = events.clamp(1, RELAY_BATCH_EVENTS_MAX);
        self
    }

    /// Becomes the leader (waiting as a standby), deletes every stream and
    /// sets the checkpoint to `from - 1`, so the next [`Relay::run`]
    /// republishes positions `from..` into fresh streams.
    pub async fn rebuild(&mut self, from: u64) -> Result<(), BusError> {
        self.coordinator.lead().await?;
        delete_streams(&self.js).await?;
        ensure_streams(&self.js, self.stream_max_bytes, self.stream_replicas).await?;
        self.coordinator
            .set_checkpoint(from.saturating_sub(1))
            .await?;
        tracing::info!(from, "streams deleted; republishing from the log");
        Ok(())
    }

    /// Runs until the task is dropped: lead, then relay, retrying every
    /// failure after a pause. Returns only if the log itself fails to decode.
    #[tracing::instrument(name = "relay", skip_all)]
    pub async fn run(mut self) -> Result<(), BusError> {
        loop {
            self.coordinator.lead().await?;
            match self.cycle().await {
                Err(e @ BusError::Decode { .. }) => return Err(e),
                Err(BusError::Resync { stream, detail }) => {
                    tracing::debug!(stream, detail, "re-reading stream tails");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay cycle failed; retrying");
                    tokio::time::sleep(Duration::from_millis(RELAY_RETRY_BACKOFF_MS)).await;
                }
                Ok(()) => {}
            }
        }
    }

    /// [`Relay::run`] until `shutdown` turns true (or its sender is
    /// dropped), then returns `Ok` and drops the relay, releasing the lead.
    /// A batch cut off mid-publish is safe: its checkpoint was not written,
    /// and the next leader skips what the streams already hold.
    pub async fn run_until(
        self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), BusError> {
        if *shutdown.borrow() {
            return Ok(());
        }
        tokio::select! {
            result = self.run() => result,
            _ = async {
                while shutdown.changed().await.is_ok() {
                    if *shutdown.borrow() {
                        return;
                    }
                }
            } => {
                tracing::info!("relay stopped");
                Ok(())
            }
        }
    }

    async fn cycle(&mut self) -> Result<(), BusError> {
        ensure_streams(&self.js, self.stream_max_bytes, self.stream_replicas).await?;
        let mut tails = BTreeMap::new();
        for d in Department::ALL {
            tails.insert(d, read_tail(&self.js, d).await?);
        }
        let checkpoint = self.coordinator.checkpoint().await?;
        tracing::info!(checkpoint, "relaying from checkpoint");
        let mut log = subscribe_all(&self.store, checkpoint + 1);
        let mut batch = Vec::with_capacity(self.batch_events_max);
        // The previous batch: published, its acks not yet awaited. Awaiting
        // them after publishing the next batch keeps NATS busy while the
        // acks travel; the checkpoint still moves only past acked events.
        let mut pending: Option<Pending> = None;
        loop {
            batch.clear();
            let first = match log.next().now_or_never() {
                Some(event) => event?,
                None => {
                    // Caught up: settle the previous batch before waiting.
                    if let Some(p) = pending.take() {
                        self.settle(p).await?;
                    }
                    log.next().await?
                }
            };
            batch.push(first);
            while batch.len() < self.batch_events_max {
                match log.next().now_or_never() {
                    Some(event) => batch.push(event?),
                    None => break,
                }
            }
            let mut acks = Vec::with_capacity(batch.len() * 2);
            let messages = outgoing_opened(&batch, self.keyring.as_ref()).await?;
            for (record, messages) in batch.iter().zip(messages) {
                for m in messages {
                    let tail = tails
                        .get_mut(&m.department)
                        .expect("every department has a tail");
                    if record.position <= tail.position {
                        continue;
                    }
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        header::NATS_MESSAGE_ID,
                        record.event_id.to_string().as_str(),
                    );
                    headers.insert(
                        header::NATS_EXPECTED_LAST_SEQUENCE,
                        tail.sequence.to_string().as_str(),
                    );
                    headers.insert(POSITION_HEADER, record.position.to_string().as_str());
                    headers.insert(EVENT_TYPE_HEADER, record.event_type.as_str());
                    let ack = self
                        .js
                        .send_publish(
                            m.subject,
                            PublishMessage::build().payload(m.payload).headers(headers),
                        )
                        .await
                        .map_err(|e| BusError::nats("publish", e))?;
                    tail.sequence += 1;
                    tail.position = record.position;
                    acks.push((m.department, ack));
                }
            }
            let last = batch.last().expect("a batch has an event").position;
            if let Some(p) = pending.replace(Pending {
                acks,
                last_position: last,
                events: batch.len(),
            }) {
                self.settle(p).await?;
            }
        }
    }

    /// Awaits every ack of a published batch, then advances the checkpoint.
    async fn settle(&mut self, pending: Pending) -> Result<(), BusError> {
        for (department, ack) in pending.acks {
            let ack = ack.await.map_err(|e| BusError::nats("publish ack", e))?;
            if ack.duplicate {
                // Stored before (a publish of an earlier cycle landed
                // late): our sequence count is off by one.
                return Err(BusError::Resync {
                    stream: department.stream(),
                    detail: "duplicate acknowledged".into(),
                });
            }
        }
        self.coordinator
            .set_checkpoint(pending.last_position)
            .await?;
        tracing::debug!(
            position = pending.last_position,
            events = pending.events,
            "batch relayed"
        );
        Ok(())
    }
}

/// A published batch whose acks are still to be awaited.
struct Pending {
    acks: Vec<(Department, jetstream::context::PublishAckFuture)>,
    last_position: u64,
    events: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_keep_the_configured_number_of_copies() {
        for replicas in [1, 3] {
            for d in Department::ALL {
                let config = stream_config(d, 1 << 30, replicas);
                assert_eq!(config.num_replicas, replicas, "{d}");
                assert_eq!(config.storage, stream::StorageType::File);
            }
            let exchange = crate::exchange_service::exchange_stream_config(1 << 30, replicas);
            assert_eq!(exchange.num_replicas, replicas);
        }
    }
}

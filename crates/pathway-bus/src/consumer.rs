//! Reading a department's stream: a durable pull consumer with explicit
//! acks, each message decoded by reflection into JSON.
//!
//! The consumer is created on first use with the requested start (the whole
//! stream, or messages since a time); afterwards its name alone decides where
//! reading resumes, so a restarted reader picks up after its last ack.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

use crate::BusError;
use crate::limits::{
    CONSUMER_ACK_PENDING_MAX, CONSUMER_ACK_WAIT_S, CONSUMER_PULL_BATCH_MAX, CONSUMER_PULL_WAIT_MS,
};
use crate::subjects::Department;

/// Where a new durable consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only messages published after the consumer is created.
    New,
    /// Every message the stream still holds.
    FromStart,
    /// Messages stored at or after this time.
    Since(DateTime<Utc>),
}

/// The inbox prefix a department's client must use: the server config lets
/// each department subscribe only to its own inboxes, so no department can
/// read replies meant for another.
pub fn inbox_prefix(department: Department) -> String {
    format!("_INBOX_{}", department.token())
}

/// The default durable consumer name of `pathway subscribe` for `department`.
pub fn default_durable(department: Department) -> String {
    format!("pathway-subscribe-{}", department.token())
}

/// The configuration of a durable pull consumer.
pub fn consumer_config(durable: &str, start: Start) -> consumer::pull::Config {
    let deliver_policy = match start {
        Start::New => consumer::DeliverPolicy::New,
        Start::FromStart => consumer::DeliverPolicy::All,
        Start::Since(t) => consumer::DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos()),
            )
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        },
    };
    consumer::pull::Config {
        durable_name: Some(durable.to_owned()),
        deliver_policy,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(CONSUMER_ACK_WAIT_S),
        max_ack_pending: CONSUMER_ACK_PENDING_MAX,
        ..Default::default()
    }
}

/// Decodes the payload of a message on `department`'s subjects into JSON (the
/// protobuf JSON mapping of its `pathway.views.v1` message).
pub fn to_json(department: Department, payload: &[u8]) -> Result<serde_json::Value, BusError> {
    let desc = message_descriptor(department);
    let msg = DynamicMessage::decode(desc, payload).map_err(|e| BusError::BadMessage {
        subject: department.wildcard(),
        detail: e.to_string(),
    })?;
    serde_json::to_value(&msg).map_err(|e| BusError::BadMessage {
        subject: department.wildcard(),
        detail: e.to_string(),
    })
}

fn message_descriptor(department: Department) -> MessageDescriptor {
    static POOL: std::sync::OnceLock<DescriptorPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(pathway_proto::PUBLISHED_DESCRIPTOR_SET)
            .expect("the published descriptor set decodes")
    })
    .get_message_by_name(department.message_name())
    .expect("every department's message is in the published schema")
}

/// One received message, decoded.
#[derive(Debug, Clone)]
pub struct Received {
    pub subject: String,
    pub stream_sequence: u64,
    pub json: serde_json::Value,
}

/// Reads `department`'s stream through the durable consumer `durable`
/// (created with `start` if new), calling `handle` for each message and
/// acknowledging it only after `handle` returns `Ok`. Stops after `limit`
/// messages when given.
pub async fn consume(
    js: &jetstream::Context,
    department: Department,
    durable: &str,
    start: Start,
    limit: Option<u64>,
    mut handle: impl FnMut(Received) -> Result<(), BusError>,
) -> Result<u64, BusError> {
    let stream = js
        .get_stream(department.stream())
        .await
        .map_err(|e| BusError::nats("get stream", e))?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(durable, consumer_config(durable, start))
        .await
        .map_err(|e| BusError::nats("create consumer", e))?;
    // One pull request at a time, never ahead of what is handled: a message
    // pulled but not acked (the reader stops or dies) is redelivered only
    // after the ack wait, so pulling ahead would delay and reorder it.
    let mut done = 0;
    loop {
        let want = limit.map_or(CONSUMER_PULL_BATCH_MAX as u64, |l| {
            (l - done).min(CONSUMER_PULL_BATCH_MAX as u64)
        });
        if want == 0 {
            break;
        }
        let mut batch = consumer
            .batch()
            .max_messages(want as usize)
            .expires(Duration::from_millis(CONSUMER_PULL_WAIT_MS))
            .messages()
            .await
            .map_err(|e| BusError::nats("pull", e))?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| BusError::nats("pull", e))?;
            let info = message
                .info()
                .map_err(|e| BusError::nats("message info", e))?;
            let stream_sequence = info.stream_sequence;
            let json = to_json(department, &message.payload)?;
            handle(Received {
                subject: message.subject.to_string(),
                stream_sequence,
                json,
            })?;
            message
                .double_ack()
                .await
                .map_err(|e| BusError::nats("ack", e))?;
            done += 1;
        }
    }
    Ok(done)
}

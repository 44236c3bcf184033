//! The client example of `docs/nats-client.md`, compiled with the tests so it
//! cannot rot: Education reads its stream with a durable pull consumer.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use pathway_proto::Message;
use pathway_proto::views::v1::{EducationEvent, education_view::Kind};

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    // The inbox prefix is required: the server lets `education` receive
    // replies only on _INBOX_education.>.
    let client = async_nats::ConnectOptions::with_user_and_password(
        "education".into(),
        std::env::var("PATHWAY_NATS_EDUCATION_PASSWORD")?,
    )
    .custom_inbox_prefix("_INBOX_education")
    .connect("nats://nats.pathway.internal:4222")
    .await?;
    let js = jetstream::new(client);

    let stream = js.get_stream("PATHWAY_EDUCATION").await?;
    // Created on first run, resumed afterwards by its durable name.
    let reader: consumer::PullConsumer = stream
        .get_or_create_consumer(
            "education-ledger-sync",
            consumer::pull::Config {
                durable_name: Some("education-ledger-sync".into()),
                deliver_policy: consumer::DeliverPolicy::All,
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await?;

    loop {
        // One pull at a time, never ahead of what has been handled.
        let mut batch = reader
            .batch()
            .max_messages(100)
            .expires(Duration::from_secs(5))
            .messages()
            .await?;
        while let Some(message) = batch.next().await {
            let message = message?;
            let event = EducationEvent::decode(message.payload.clone())?;
            // The event id is the idempotency key: a message may be
            // redelivered if the ack was lost.
            match event.view.and_then(|v| v.kind) {
                Some(Kind::Outcome(o)) => {
                    println!(
                        "{} ledger {} outcome {}",
                        event.event_id, o.ledger_id, o.outcome
                    )
                }
                Some(Kind::LedgerOpened(l)) => {
                    println!(
                        "{} ledger {} opened at {}",
                        event.event_id, l.ledger_id, l.school
                    )
                }
                _ => {}
            }
            message.double_ack().await?;
        }
    }
}

//! Security in NATS itself: the server started with `deploy/nats/pathway.conf`
//! lets each department read only its own stream and lets no department
//! publish into Pathway's event subjects.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use pathway_bus::consumer::{Start, consume, consumer_config, inbox_prefix};
use pathway_bus::coordinator::FileCoordinator;

use pathway_bus::subjects::Department;
use pathway_engine::Engine;
use pathway_sim::SimConfig;
use pathway_store::EventStore;
use pathway_store::embedded::EmbeddedStore;
use tokio::sync::mpsc;

use crate::relay::{published_position, wait_for_position};
use crate::server::start_with_deploy_config;
use crate::test_relay;

fn password(user: &str) -> String {
    format!("test-password-{user}")
}

fn env() -> Vec<(String, String)> {
    let mut users = vec!["pathway".to_owned()];
    users.extend(Department::ALL.iter().map(|d| d.token().to_owned()));
    users
        .into_iter()
        .map(|u| {
            (
                format!("PATHWAY_NATS_{}_PASSWORD", u.to_ascii_uppercase()),
                password(&u),
            )
        })
        .collect()
}

/// A client for `user`, with the inbox prefix its permissions allow, and a
/// channel of the server's error reports (permission violations).
async fn login(
    url: &str,
    user: &str,
    inbox: &str,
) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_user_and_password(user.into(), password(user))
        .custom_inbox_prefix(inbox)
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
    (client, rx)
}

async fn expect_violation(errors: &mut mpsc::UnboundedReceiver<String>, what: &str) {
    let report = tokio::time::timeout(Duration::from_secs(5), errors.recv())
        .await
        .unwrap_or_else(|_| panic!("no permissions violation reported for {what}"))
        .expect("error channel open");
    assert!(
        report.to_lowercase().contains("permissions violation"),
        "{what}: unexpected server error {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departments_read_only_their_own_subjects_and_cannot_publish_events() {
    let nats = start_with_deploy_config(env());
    let url = nats.url();

    // Pathway relays some events.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("open store");
    let engine = Engine::unsealed(store.clone());
    let cfg = SimConfig {
        persons: 10,
        seed: 41,
        concurrency: 2,
    };
    pathway_sim::run(&engine, &cfg, |_, _| {})
        .await
        .expect("simulate");
    let (pathway, _) = login(&url, "pathway", "_INBOX").await;
    let js = jetstream::new(pathway.clone());
    let relay = tokio::spawn(
        test_relay(
            store.clone(),
            FileCoordinator::new(dir.path(), "test"),
            pathway.clone(),
        )
        .run(),
    );
    let head = store.head().await.expect("head").position;
    wait_for_position(&js, head).await;
    relay.abort();
    let civil_count = js
        .get_stream(Department::CivilAffairs.stream())
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .state
        .messages;
    assert!(civil_count > 0, "Civil Affairs has messages to steal");

    // Education reads its own stream.
    let (education, mut errors) =
        login(&url, "education", &inbox_prefix(Department::Education)).await;
    let edu_js = jetstream::new(education.clone());
    let read = consume(
        &edu_js,
        Department::Education,
        "edu-test",
        Start::FromStart,
        Some(1),
        |_| Ok(()),
    )
    .await
    .expect("Education reads its own stream");
    assert_eq!(read, 1);

    // Education cannot subscribe to Civil Affairs' subjects…
    let mut sub = education
        .subscribe("pathway.v1.civil_affairs.>")
        .await
        .expect("subscribe request is sent");
    expect_violation(&mut errors, "subscribing to civil_affairs").await;
    pathway
        .publish("pathway.v1.civil_affairs.welfare.probe", "x".into())
        .await
        .expect("pathway publishes");
    pathway.flush().await.expect("flush");
    let got = tokio::time::timeout(
        Duration::from_millis(500),
        futures::StreamExt::next(&mut sub),
    )
    .await;
    assert!(
        !matches!(got, Ok(Some(_))),
        "Education received a Civil Affairs message"
    );

    // …nor read its stream through JetStream.
    let stolen = async {
        let stream = edu_js.get_stream(Department::CivilAffairs.stream()).await?;
        let c: consumer::PullConsumer = stream
            .create_consumer(consumer_config("edu-steal", Start::FromStart))
            .await?;
        Ok::<_, async_nats::Error>(c)
    };
    let stolen = tokio::time::timeout(Duration::from_secs(10), stolen).await;
    assert!(
        !matches!(stolen, Ok(Ok(_))),
        "Education created a consumer on Civil Affairs' stream"
    );

    // No department can publish into Pathway's event subjects.
    for d in Department::ALL {
        let (client, mut errors) = login(&url, d.token(), &inbox_prefix(d)).await;
        let before = published_position(&js, d).await;
        client
            .publish(
                format!("pathway.v1.{}.registry.person_registered", d.token()),
                "forged".into(),
            )
            .await
            .expect("publish is sent");
        client.flush().await.expect("flush");
        expect_violation(&mut errors, &format!("{d} publishing")).await;
        let count_after = js
            .get_stream(d.stream())
            .await
            .expect("stream")
            .info()
            .await
            .expect("info")
            .state
            .messages;
        assert_eq!(
            published_position(&js, d).await,
            before,
            "{d}: forged message stored"
        );
        let _ = count_after;
    }
}

//! The head watcher behind [`crate::EventStore::head_changes`].
//!
//! A dedicated connection runs `LISTEN pathway_events`; each notification
//! carries the head a commit left. Notifications are an optimisation only: the
//! watcher also reads the head every [`limits::SUBSCRIPTION_POLL_INTERVAL_MS`]
//! and right after (re)connecting, so commits made while the connection was
//! down are noticed too.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};
use tracing::Instrument;

use super::{NOTIFY_CHANNEL, pg_error, read_head};
use crate::{StoreError, limits};

/// Wait before opening the `LISTEN` connection again after it failed.
const LISTEN_RECONNECT_DELAY_MS: u64 = 1_000;

/// Starts the watcher; it stops when `shutdown`'s sender is dropped.
pub(super) fn spawn(
    config: Config,
    pool: Pool,
    head_tx: Arc<watch::Sender<u64>>,
    shutdown: oneshot::Receiver<()>,
) {
    let watcher = Watcher {
        config,
        pool,
        head_tx,
    };
    tokio::spawn(
        watcher
            .run(shutdown)
            .instrument(tracing::info_span!("pg_head_watcher")),
    );
}

struct Watcher {
    config: Config,
    pool: Pool,
    head_tx: Arc<watch::Sender<u64>>,
}

/// An open `LISTEN` connection: dropping `client` closes it.
struct Listening {
    _client: Client,
    messages: JoinHandle<()>,
}

impl Watcher {
    async fn run(self, mut shutdown: oneshot::Receiver<()>) {
        let mut poll =
            tokio::time::interval(Duration::from_millis(limits::SUBSCRIPTION_POLL_INTERVAL_MS));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reconnect_delay = Duration::from_millis(LISTEN_RECONNECT_DELAY_MS);
        let mut reconnect_at = tokio::time::Instant::now();
        let mut listening: Option<Listening> = None;
        loop {
            let not_listening = listening.is_none();
            let connection_lost = async {
                match listening.as_mut() {
                    Some(l) => {
                        let _ = (&mut l.messages).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                () = connection_lost => {
                    tracing::warn!("LISTEN connection lost, reconnecting");
                    listening = None;
                    reconnect_at = tokio::time::Instant::now() + reconnect_delay;
                }
                () = tokio::time::sleep_until(reconnect_at), if not_listening => {
                    match self.listen().await {
                        Ok(l) => {
                            listening = Some(l);
                            // Commits made while not listening sent no wake-up.
                            self.poll_head().await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot LISTEN for commits, polling only");
                            reconnect_at = tokio::time::Instant::now() + reconnect_delay;
                        }
                    }
                }
                _ = poll.tick() => self.poll_head().await,
            }
        }
        if let Some(l) = listening {
            l.messages.abort();
        }
    }

    /// Opens a connection and listens on the commit channel.
    async fn listen(&self) -> Result<Listening, StoreError> {
        let (client, mut connection) = self.config.connect(NoTls).await.map_err(pg_error)?;
        let head_tx = self.head_tx.clone();
        let messages = tokio::spawn(
            async move {
                while let Some(message) =
                    futures::future::poll_fn(|cx| connection.poll_message(cx)).await
                {
                    match message {
                        Ok(AsyncMessage::Notification(n)) => match n.payload().parse::<u64>() {
                            Ok(head) => advance(&head_tx, head),
                            Err(_) => tracing::warn!(
                                payload = n.payload(),
                                "ignoring malformed notification"
                            ),
                        },
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "LISTEN connection failed");
                            break;
                        }
                    }
                }
            }
            .instrument(tracing::info_span!("pg_listen_connection")),
        );
        client
            .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
            .await
            .map_err(pg_error)?;
        Ok(Listening {
            _client: client,
            messages,
        })
    }

    async fn poll_head(&self) {
        match read_head(&self.pool).await {
            Ok(head) => advance(&self.head_tx, head.position),
            Err(e) => tracing::debug!(error = %e, "cannot poll the head"),
        }
    }
}

/// Moves the watched head forward (never back: notifications can arrive out of order).
pub(super) fn advance(head_tx: &watch::Sender<u64>, head: u64) {
    head_tx.send_if_modified(|seen| {
        let advanced = head > *seen;
        if advanced {
            *seen = head;
        }
        advanced
    });
}

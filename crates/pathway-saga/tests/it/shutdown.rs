//! Workflows stop promptly while the log keeps growing: a router stops
//! after the batch in hand, not when it has caught up with a moving head.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use chrono::{DateTime, Utc};
use pathway_domain::{Event, pb};
use pathway_engine::{CommandMeta, EngineError, Provenance};
use pathway_saga::{
    CommandSink, Input, ProcessManager, Router, Transition, no_faults,
    router::ROUTER_READ_BATCH_EVENTS,
};
use pathway_store::{EventStore, ExpectedVersion};
use tokio::sync::watch;
use uuid::Uuid;

use crate::mem::MemStore;

/// Counts the events it is offered; asks for shutdown at the first one.
struct Counting {
    seen: Arc<AtomicU64>,
    stop: Arc<watch::Sender<bool>>,
}

impl ProcessManager for Counting {
    type State = ();
    type Command = ();
    const KIND: &'static str = "counting";

    fn event_types(&self) -> &'static [&'static str] {
        &["SagaRouterCheckpointed"]
    }

    fn correlate(&mut self, event: &Event) -> Vec<String> {
        if let Event::SagaRouterCheckpointed(c) = event
            && c.router == "noise"
        {
            self.seen.fetch_add(1, Ordering::Relaxed);
            self.stop.send(true).ok();
        }
        Vec::new()
    }

    fn handle(&self, _: &(), _: &Input<'_>) -> Transition<(), ()> {
        Transition::state(())
    }

    fn command_stream(&self, _: &()) -> String {
        unreachable!("correlates no saga")
    }
}

struct NoCommands;

#[async_trait::async_trait]
impl CommandSink<()> for NoCommands {
    async fn send(&self, _: &str, _: &(), _: &CommandMeta) -> Result<(), EngineError> {
        unreachable!("correlates no saga")
    }
}

/// `n` events the counting manager is offered, on stream `noise-1`.
async fn noise(store: &MemStore, n: u64) {
    let at = DateTime::<Utc>::UNIX_EPOCH;
    let events = (1..=n)
        .map(|i| {
            let event = Event::SagaRouterCheckpointed(pb::SagaRouterCheckpointed {
                router: "noise".to_owned(),
                next_position: i,
            });
            pathway_engine::record(
                Uuid::from_u128(u128::from(i)),
                &event,
                Provenance {
                    occurred_at: at,
                    correlation_id: String::new(),
                    causation_id: String::new(),
                    actor_department: pb::Department::Unspecified,
                    actor_region: String::new(),
                    actor_id: String::new(),
                    command_id: String::new(),
                },
            )
        })
        .collect();
    store
        .append("noise-1", ExpectedVersion::NoStream, events)
        .await
        .expect("append");
}

#[tokio::test]
async fn a_router_asked_to_stop_stops_after_the_batch_in_hand() {
    let store = MemStore::new();
    let total = 2 * ROUTER_READ_BATCH_EVENTS as u64 + 500;
    noise(&store, total).await;
    let seen = Arc::new(AtomicU64::new(0));
    let (stop, shutdown) = watch::channel(false);
    let stop = Arc::new(stop);
    let pm = Counting {
        seen: seen.clone(),
        stop: stop.clone(),
    };
    let router = Router::start(store.clone(), pm, NoCommands, "counting", no_faults())
        .await
        .expect("router starts");
    router.run(shutdown).await.expect("router runs");
    // Asked to stop at the first event: it finished that batch, no more.
    assert_eq!(
        seen.load(Ordering::Relaxed),
        ROUTER_READ_BATCH_EVENTS as u64
    );

    // Its checkpoint is where it stopped: a new router handles the rest.
    let (_stop, shutdown) = watch::channel(false);
    let rest = Arc::new(AtomicU64::new(0));
    let mut again = Router::start(
        store.clone(),
        Counting {
            seen: rest.clone(),
            stop: Arc::new(watch::channel(false).0),
        },
        NoCommands,
        "counting",
        no_faults(),
    )
    .await
    .expect("router starts");
    assert_eq!(again.position(), ROUTER_READ_BATCH_EVENTS as u64 + 1);
    again.run_once().await.expect("runs");
    assert_eq!(
        rest.load(Ordering::Relaxed),
        total - ROUTER_READ_BATCH_EVENTS as u64
    );
    drop(shutdown);
}

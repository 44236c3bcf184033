//! The contract every [`EventStore`] backend must meet, written once.
//!
//! Each check is an async function generic over the store, taking a fresh,
//! empty store. A backend's test module instantiates all of them with
//! [`conformance_tests!`], giving it a constructor for fresh stores and a
//! tamper hook (the only backend-specific part: changing stored rows behind
//! the store's back).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use pathway_store::chain::GENESIS;
use pathway_store::limits::{
    APPEND_EVENTS_MAX, EVENT_BYTES_MAX, STREAM_ID_BYTES_MAX, SUBSCRIPTION_BATCH_EVENTS,
};
use pathway_store::{
    AppendResult, ChainBreak, ChainBreakKind, EventStore, ExpectedVersion, Head, NewEvent,
    ReadFilter, RecordParts, RecordedEvent, StoreError, subscribe_all,
};
use uuid::Uuid;

/// A reserved system event type, admitted without being a domain event.
pub(crate) const TEST_EVENT_TYPE: &str = "$test";

/// Longest a test waits for something that should happen at once.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Instantiates every conformance check as a `#[tokio::test]` for one backend.
///
/// `store:` is an expression evaluating to a future of `(store, guard)`: a
/// fresh, empty store and whatever must live as long as it (a temporary
/// directory, a throw-away database). `tamper:` names an
/// `async fn(&S, Tamper)` that changes the store's rows directly.
macro_rules! conformance_tests {
    (store: $make:expr, tamper: $tamper:path $(,)?) => {
        crate::conformance::conformance_tests!(@plain $make;
            expected_version_cases,
            idempotent_retry_returns_original_result,
            concurrent_retries_of_one_append_agree,
            event_id_reused_with_other_content,
            concurrent_exact_appends_one_winner_per_version,
            concurrent_streams_get_dense_positions,
            subscription_sees_each_event_once_in_order,
            subscription_waits_for_live_events,
            read_stream_and_read_all_with_filters,
            mapped_reads_are_read_all_mapped,
            head_tracks_last_record,
            bad_input_is_rejected_and_nothing_written,
            verify_clean_log,
        );
        crate::conformance::conformance_tests!(@tamper $make, $tamper;
            verify_detects_changed_payload,
            verify_detects_deleted_row,
            verify_detects_swapped_rows,
        );
    };
    (@plain $make:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (store, _guard) = $make.await;
            crate::conformance::$name(store).await;
        }
    )*};
    (@tamper $make:expr, $tamper:path; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (store, _guard) = $make.await;
            let handle = store.clone();
            crate::conformance::$name(store, async move |tamper| $tamper(&handle, tamper).await)
                .await;
        }
    )*};
}
pub(crate) use conformance_tests;

/// A change made to stored rows behind the store's back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tamper {
    /// Overwrite the payload of the record at this position.
    ChangePayload { position: u64 },
    /// Delete the record at this position.
    DeleteRow { position: u64 },
    /// Exchange the positions of two records.
    SwapPositions { a: u64, b: u64 },
}

// ---------------------------------------------------------------------------
// Helpers

/// An event of the reserved test type whose payload is `label`.
pub(crate) fn new_event(label: &str) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: TEST_EVENT_TYPE.to_owned(),
        schema_version: 1,
        metadata: Bytes::from_static(b"{\"actor\":\"test\"}"),
        payload: Bytes::from(label.to_owned()),
    }
}

/// `n` test events labelled `label-0`, `label-1`, ….
pub(crate) fn new_events(label: &str, n: usize) -> Vec<NewEvent> {
    (0..n).map(|i| new_event(&format!("{label}-{i}"))).collect()
}

fn typed_event(event_type: &str, label: &str) -> NewEvent {
    NewEvent {
        event_type: event_type.to_owned(),
        ..new_event(label)
    }
}

/// Every record of the log, read in bounded batches.
pub(crate) async fn read_everything<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    loop {
        let from = all.last().map_or(1, |r: &RecordedEvent| r.position + 1);
        let batch = store
            .read_all(from, 1_000, &ReadFilter::all())
            .await
            .expect("read_all");
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

/// Asserts positions `1..=n` in order, each event id once, a clean chain and
/// a head that matches the last record.
pub(crate) async fn assert_log_sound<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    let all = read_everything(store).await;
    let positions: Vec<u64> = all.iter().map(|r| r.position).collect();
    let dense: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(positions, dense, "positions must be dense from 1");
    let ids: HashSet<Uuid> = all.iter().map(|r| r.event_id).collect();
    assert_eq!(ids.len(), all.len(), "every event id once");
    let head = store.head().await.expect("head");
    let expected_head = all.last().map_or(
        Head {
            position: 0,
            hash: GENESIS,
        },
        |r| Head {
            position: r.position,
            hash: r.hash,
        },
    );
    assert_eq!(head, expected_head);
    let report = store.verify(1, None).await.expect("verify");
    assert_eq!(report.first_break, None);
    assert_eq!(report.checked, all.len() as u64);
    assert_eq!(report.head, head);
    all
}

fn conflict(result: Result<AppendResult, StoreError>) -> (String, ExpectedVersion, u64) {
    match result {
        Err(StoreError::WrongExpectedVersion {
            stream,
            expected,
            actual,
        }) => (stream, expected, actual),
        other => panic!("expected a version conflict, got {other:?}"),
    }
}

fn invalid_input(result: Result<AppendResult, StoreError>) -> String {
    match result {
        Err(StoreError::InvalidInput(message)) => message,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Appends

/// Every expected-version rule, on absent and existing streams; a conflict
/// names the stream, the expectation and the actual version, and writes
/// nothing.
pub(crate) async fn expected_version_cases<S: EventStore + Clone>(store: S) {
    use ExpectedVersion::{Any, Exact, NoStream, StreamExists};
    // (stream, expected, Ok(stream version after) | Err(actual version))
    let cases: &[(&str, ExpectedVersion, Result<u64, u64>)] = &[
        ("order-a", StreamExists, Err(0)),
        ("order-a", Exact(1), Err(0)),
        ("order-a", Exact(0), Ok(1)),
        ("order-a", NoStream, Err(1)),
        ("order-a", Exact(0), Err(1)),
        ("order-a", Exact(2), Err(1)),
        ("order-a", Exact(1), Ok(2)),
        ("order-a", StreamExists, Ok(3)),
        ("order-a", Any, Ok(4)),
        ("order-b", NoStream, Ok(1)),
        ("order-b", NoStream, Err(1)),
        ("order-c", Any, Ok(1)),
        ("order-c", Exact(1), Ok(2)),
    ];
    let mut last_position = 0;
    for (i, &(stream, expected, outcome)) in cases.iter().enumerate() {
        let result = store
            .append(stream, expected, vec![new_event(&format!("case-{i}"))])
            .await;
        match outcome {
            Ok(version) => {
                let r = result.unwrap_or_else(|e| panic!("case {i} ({stream}, {expected}): {e}"));
                last_position += 1;
                assert_eq!(
                    r,
                    AppendResult {
                        first_position: last_position,
                        last_position,
                        stream_version: version
                    },
                    "case {i}"
                );
            }
            Err(actual) => {
                let message = result.as_ref().map_err(ToString::to_string).err();
                assert_eq!(
                    conflict(result),
                    (stream.to_owned(), expected, actual),
                    "case {i}"
                );
                assert_eq!(
                    message,
                    Some(format!(
                        "stream {stream}: expected version {expected}, found {actual}"
                    ))
                );
            }
        }
    }
    // Conflicts are retryable and wrote nothing.
    assert!(
        StoreError::WrongExpectedVersion {
            stream: "order-a".into(),
            expected: ExpectedVersion::NoStream,
            actual: 1
        }
        .is_retryable()
    );
    let versions: Vec<u64> = store
        .read_stream("order-a", 1, 100)
        .await
        .expect("read_stream")
        .iter()
        .map(|r| r.stream_version)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    assert_eq!(assert_log_sound(&store).await.len(), 7);
}

/// Appending the same events again returns the first append's result, even
/// after the stream and the log moved on, and writes nothing.
pub(crate) async fn idempotent_retry_returns_original_result<S: EventStore + Clone>(store: S) {
    let batch = new_events("retry", 3);
    let first = store
        .append("person-1", ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("first append");
    assert_eq!(
        first,
        AppendResult {
            first_position: 1,
            last_position: 3,
            stream_version: 3
        }
    );
    let single = new_event("single");
    let single_first = store
        .append("person-1", ExpectedVersion::Exact(3), vec![single.clone()])
        .await
        .unwrap();
    assert_eq!(
        single_first,
        AppendResult {
            first_position: 4,
            last_position: 4,
            stream_version: 4
        }
    );
    store
        .append("person-2", ExpectedVersion::Any, new_events("other", 2))
        .await
        .unwrap();

    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Any,
        ExpectedVersion::Exact(0),
    ] {
        let again = store.append("person-1", expected, batch.clone()).await;
        assert_eq!(again.expect("retry"), first, "retry with {expected}");
    }
    let again = store
        .append("person-1", ExpectedVersion::Exact(3), vec![single])
        .await;
    assert_eq!(again.expect("single retry"), single_first);

    let all = assert_log_sound(&store).await;
    assert_eq!(all.len(), 6, "retries wrote nothing");
    assert_eq!(
        store.read_stream("person-1", 1, 100).await.unwrap().len(),
        4
    );
}

/// The same append sent many times at once (a client retrying before the
/// first answer) is stored once, and every sender gets the same result.
pub(crate) async fn concurrent_retries_of_one_append_agree<S: EventStore + Clone>(store: S) {
    const SENDERS: usize = 16;
    store
        .append("person-1", ExpectedVersion::Any, vec![new_event("before")])
        .await
        .unwrap();
    for n in [1, 3] {
        let batch = new_events("retried", n);
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(SENDERS));
        let tasks: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (store, batch, barrier) = (store.clone(), batch.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.append("person-1", ExpectedVersion::Any, batch).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap().expect("every sender succeeds"));
        }
        assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
        assert_eq!(
            results[0].last_position - results[0].first_position,
            n as u64 - 1
        );
    }
    assert_eq!(assert_log_sound(&store).await.len(), 5);
}

/// An event id already stored cannot be stored again with other content,
/// in another stream, or mixed into a batch with new ids.
pub(crate) async fn event_id_reused_with_other_content<S: EventStore + Clone>(store: S) {
    let original = new_event("original");
    let pair = new_events("pair", 2);
    store
        .append("person-1", ExpectedVersion::Any, vec![original.clone()])
        .await
        .unwrap();
    store
        .append("person-1", ExpectedVersion::Any, pair.clone())
        .await
        .unwrap();
    let id = original.event_id;

    let other_payload = NewEvent {
        payload: Bytes::from_static(b"changed"),
        ..original.clone()
    };
    let other_metadata = NewEvent {
        metadata: Bytes::from_static(b"changed"),
        ..original.clone()
    };
    let other_type = NewEvent {
        event_type: "$other".into(),
        ..original.clone()
    };
    let other_schema = NewEvent {
        schema_version: 2,
        ..original.clone()
    };
    let pair_reordered = vec![pair[1].clone(), pair[0].clone()];
    let pair_prefix = vec![pair[0].clone(), new_event("new")];
    let new_then_stored = vec![new_event("new"), original.clone()];
    // (stream, events, the stored (event id, stream, version) named by the error)
    type Reused<'a> = (Uuid, &'a str, u64);
    let cases: Vec<(&str, Vec<NewEvent>, Reused<'_>)> = vec![
        ("person-1", vec![other_payload], (id, "person-1", 1)),
        ("person-1", vec![other_metadata], (id, "person-1", 1)),
        ("person-1", vec![other_type], (id, "person-1", 1)),
        ("person-1", vec![other_schema], (id, "person-1", 1)),
        ("person-2", vec![original.clone()], (id, "person-1", 1)),
        (
            "person-1",
            pair_reordered,
            (pair[0].event_id, "person-1", 2),
        ),
        ("person-1", pair_prefix, (pair[0].event_id, "person-1", 2)),
        ("person-1", new_then_stored, (id, "person-1", 1)),
    ];
    for (i, (stream, events, (event_id, stored_stream, version))) in cases.into_iter().enumerate() {
        match store.append(stream, ExpectedVersion::Any, events).await {
            Err(StoreError::EventIdReused {
                event_id: got_id,
                stream: got_stream,
                version: v,
            }) => {
                assert_eq!(
                    (got_id, got_stream.as_str(), v),
                    (event_id, stored_stream, version),
                    "case {i}"
                );
            }
            other => panic!("case {i}: expected EventIdReused, got {other:?}"),
        }
    }
    assert!(
        !StoreError::EventIdReused {
            event_id: id,
            stream: "person-1".into(),
            version: 1
        }
        .is_retryable()
    );
    assert_eq!(assert_log_sound(&store).await.len(), 3, "nothing written");
    assert!(
        store
            .read_stream("person-2", 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Many appenders racing on one stream with `Exact(v)`: exactly one wins each
/// version, the others see the winner's version.
pub(crate) async fn concurrent_exact_appends_one_winner_per_version<S: EventStore + Clone>(
    store: S,
) {
    const CONTENDERS: usize = 16;
    const VERSIONS: u64 = 8;
    for version in 0..VERSIONS {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CONTENDERS));
        let tasks: Vec<_> = (0..CONTENDERS)
            .map(|i| {
                let store = store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let event = new_event(&format!("v{version}-contender-{i}"));
                    store
                        .append("race-1", ExpectedVersion::Exact(version), vec![event])
                        .await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(r) => {
                    winners += 1;
                    assert_eq!(r.stream_version, version + 1);
                }
                other => {
                    let got = conflict(other);
                    assert_eq!(
                        got,
                        (
                            "race-1".to_owned(),
                            ExpectedVersion::Exact(version),
                            version + 1
                        )
                    );
                }
            }
        }
        assert_eq!(winners, 1, "exactly one winner for version {version}");
    }
    let stream = store.read_stream("race-1", 1, 100).await.unwrap();
    let versions: Vec<u64> = stream.iter().map(|r| r.stream_version).collect();
    assert_eq!(versions, (1..=VERSIONS).collect::<Vec<_>>());
    assert_eq!(assert_log_sound(&store).await.len() as u64, VERSIONS);
}

/// 64 appenders on their own streams: positions `1..=N` dense, every event
/// once at the position its append returned, stream versions in order and a
/// chain that verifies.
pub(crate) async fn concurrent_streams_get_dense_positions<S: EventStore + Clone>(store: S) {
    const WRITERS: usize = 64;
    const APPENDS_PER_WRITER: usize = 20;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = format!("writer-{w}");
                let mut acks = Vec::with_capacity(APPENDS_PER_WRITER);
                for i in 0..APPENDS_PER_WRITER {
                    let event = new_event(&format!("{stream}-{i}"));
                    let id = event.event_id;
                    let r = store
                        .append(&stream, ExpectedVersion::Exact(i as u64), vec![event])
                        .await
                        .expect("append");
                    assert_eq!(r.first_position, r.last_position);
                    assert_eq!(r.stream_version, i as u64 + 1);
                    acks.push((id, r.first_position));
                }
                acks
            })
        })
        .collect();
    let mut acked: BTreeMap<u64, Uuid> = BTreeMap::new();
    for task in tasks {
        for (id, position) in task.await.expect("writer") {
            assert!(
                acked.insert(position, id).is_none(),
                "position {position} given twice"
            );
        }
    }
    let total = (WRITERS * APPENDS_PER_WRITER) as u64;
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let all = assert_log_sound(&store).await;
    for record in &all {
        assert_eq!(acked[&record.position], record.event_id);
    }
    for w in 0..WRITERS {
        let stream = store
            .read_stream(&format!("writer-{w}"), 1, 1_000)
            .await
            .unwrap();
        let versions: Vec<u64> = stream.iter().map(|r| r.stream_version).collect();
        assert_eq!(
            versions,
            (1..=APPENDS_PER_WRITER as u64).collect::<Vec<_>>()
        );
        assert!(stream.windows(2).all(|p| p[0].position < p[1].position));
    }
}

// ---------------------------------------------------------------------------
// Subscriptions

async fn collect_from<S: EventStore + Clone>(
    mut subscription: pathway_store::Subscription<S>,
    n: usize,
) -> Vec<RecordedEvent> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let event = tokio::time::timeout(WAIT_TIMEOUT, subscription.next())
            .await
            .expect("subscription stalled")
            .expect("subscription");
        got.push(event);
    }
    assert_eq!(
        subscription.position(),
        got.last().map_or(1, |e| e.position + 1)
    );
    got
}

/// Subscriptions started before, during and after a burst of concurrent
/// appends (more than one read batch) each see every event exactly once, in
/// position order.
pub(crate) async fn subscription_sees_each_event_once_in_order<S: EventStore + Clone>(store: S) {
    const WRITERS: usize = 4;
    const APPENDS_PER_WRITER: usize = 150;
    const EVENTS_PER_APPEND: usize = 3;
    const TOTAL: usize = WRITERS * APPENDS_PER_WRITER * EVENTS_PER_APPEND;
    const { assert!(TOTAL > SUBSCRIPTION_BATCH_EVENTS) };

    let before = subscribe_all(&store, 1);
    assert_eq!(before.position(), 1);
    let before = tokio::spawn(collect_from(before, TOTAL));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..APPENDS_PER_WRITER {
                    let events = new_events(&format!("w{w}-{i}"), EVENTS_PER_APPEND);
                    store
                        .append(&format!("burst-{w}"), ExpectedVersion::Any, events)
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    // Started once some, but not necessarily all, of the burst is in.
    let mut first_seen = subscribe_all(&store, 1);
    let first = tokio::time::timeout(WAIT_TIMEOUT, first_seen.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.position, 1);
    let during = tokio::spawn(collect_from(subscribe_all(&store, 1), TOTAL));
    for writer in writers {
        writer.await.expect("writer");
    }
    let after = collect_from(subscribe_all(&store, 1), TOTAL).await;
    let from_middle = collect_from(subscribe_all(&store, 700), TOTAL - 699).await;

    let log = assert_log_sound(&store).await;
    assert_eq!(log.len(), TOTAL);
    for (name, seen) in [
        ("before", before.await.unwrap()),
        ("during", during.await.unwrap()),
        ("after", after),
    ] {
        assert_eq!(seen, log, "subscription started {name} the burst");
    }
    assert_eq!(from_middle, log[699..]);
}

/// A caught-up subscription wakes up for each new commit without missing or
/// repeating one, and reports the next position it will deliver.
pub(crate) async fn subscription_waits_for_live_events<S: EventStore + Clone>(store: S) {
    store
        .append("live-1", ExpectedVersion::Any, new_events("old", 2))
        .await
        .unwrap();
    let mut subscription = subscribe_all(&store, 0);
    assert_eq!(subscription.position(), 1);
    let caught_up = collect_from(subscribe_all(&store, 1), 2).await;
    for expected in &caught_up {
        let got = tokio::time::timeout(WAIT_TIMEOUT, subscription.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, expected);
    }
    assert_eq!(subscription.position(), 3);
    for round in 0..5u64 {
        // Start waiting first, then append: the waiter must be woken.
        let waiter = tokio::spawn(async move {
            let event = tokio::time::timeout(WAIT_TIMEOUT, subscription.next()).await;
            (subscription, event)
        });
        let appended = store
            .append(
                "live-1",
                ExpectedVersion::Exact(2 + round),
                vec![new_event("live")],
            )
            .await
            .unwrap();
        let (returned, event) = waiter.await.unwrap();
        subscription = returned;
        let event = event.expect("woken").expect("next");
        assert_eq!(event.position, appended.first_position);
        assert_eq!(event.stream_version, 3 + round);
        assert_eq!(subscription.position(), appended.first_position + 1);
    }
    // Nothing more is delivered until something is appended.
    let idle = tokio::time::timeout(Duration::from_millis(50), subscription.next()).await;
    assert!(idle.is_err(), "no event without an append, got {idle:?}");
    assert_eq!(subscription.position(), 8);
}

// ---------------------------------------------------------------------------
// Reads

/// `read_stream` by version and `read_all` by position, `max`, event type and
/// category (the stream id up to the first `-`).
pub(crate) async fn read_stream_and_read_all_with_filters<S: EventStore + Clone>(store: S) {
    let domain_type = pathway_proto::events::v1::EVENT_TYPES[0];
    // (stream, event type), appended one by one: position = index + 1.
    let layout: &[(&str, &str)] = &[
        ("person-1", "$alpha"),    // 1
        ("person-1", "$beta"),     // 2
        ("employer-1", "$alpha"),  // 3
        ("personal-1", "$beta"),   // 4
        ("person", "$alpha"),      // 5
        ("person-2", domain_type), // 6
        ("person-1", "$alpha"),    // 7
        ("employer-1-x", "$beta"), // 8
    ];
    let mut appended = Vec::new();
    for (i, &(stream, event_type)) in layout.iter().enumerate() {
        let event = typed_event(event_type, &format!("e{}", i + 1));
        let r = store
            .append(stream, ExpectedVersion::Any, vec![event.clone()])
            .await
            .unwrap();
        assert_eq!(r.first_position, i as u64 + 1);
        appended.push(event);
    }

    let stream = store.read_stream("person-1", 1, 100).await.unwrap();
    assert_eq!(
        stream
            .iter()
            .map(|r| (r.stream_version, r.position))
            .collect::<Vec<_>>(),
        [(1, 1), (2, 2), (3, 7)]
    );
    let record = &stream[1];
    assert_eq!(record.stream_id, "person-1");
    assert_eq!(record.event_id, appended[1].event_id);
    assert_eq!(record.event_type, "$beta");
    assert_eq!(record.schema_version, 1);
    assert_eq!(record.metadata, appended[1].metadata);
    assert_eq!(record.payload, appended[1].payload);
    assert_eq!(record.prev_hash, stream[0].hash);
    let from_two: Vec<u64> = store
        .read_stream("person-1", 2, 1)
        .await
        .unwrap()
        .iter()
        .map(|r| r.stream_version)
        .collect();
    assert_eq!(from_two, [2]);
    assert!(
        store
            .read_stream("person-1", 4, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .read_stream("person-1", 1, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .read_stream("nobody-1", 1, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let filter = |types: &[&str], categories: &[&str]| ReadFilter {
        event_types: types.iter().map(|t| t.to_string()).collect(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
    };
    // (from, max, filter, positions)
    let cases: Vec<(u64, usize, ReadFilter, Vec<u64>)> = vec![
        (1, 100, ReadFilter::all(), (1..=8).collect()),
        (0, 100, ReadFilter::all(), (1..=8).collect()),
        (4, 2, ReadFilter::all(), vec![4, 5]),
        (8, 100, ReadFilter::all(), vec![8]),
        (9, 100, ReadFilter::all(), vec![]),
        (u64::MAX, 100, ReadFilter::all(), vec![]),
        (1, 0, ReadFilter::all(), vec![]),
        (1, usize::MAX, ReadFilter::all(), (1..=8).collect()),
        (1, 100, filter(&["$beta"], &[]), vec![2, 4, 8]),
        (
            1,
            100,
            filter(&["$beta", domain_type], &[]),
            vec![2, 4, 6, 8],
        ),
        (1, 100, filter(&["NoSuchType"], &[]), vec![]),
        (1, 100, filter(&[], &["person"]), vec![1, 2, 5, 6, 7]),
        (1, 100, filter(&[], &["employer"]), vec![3, 8]),
        (
            1,
            100,
            filter(&[], &["person", "personal"]),
            vec![1, 2, 4, 5, 6, 7],
        ),
        (1, 100, filter(&[], &["person-1"]), vec![]),
        (1, 100, filter(&["$alpha"], &["person"]), vec![1, 5, 7]),
        (2, 2, filter(&["$alpha"], &["person"]), vec![5, 7]),
        (1, 1, filter(&[], &["employer"]), vec![3]),
    ];
    for (from, max, filter, expected) in cases {
        let got: Vec<u64> = store
            .read_all(from, max, &filter)
            .await
            .unwrap()
            .iter()
            .map(|r| r.position)
            .collect();
        assert_eq!(got, expected, "read_all({from}, {max}, {filter:?})");
    }
}

/// `read_all_mapped` hands over exactly the records an unfiltered
/// `read_all` returns, field by field: reads that fit one query and reads
/// large enough to be split in two (from 512 records), a partial last read,
/// and reads past the head; without metadata, the same records with empty
/// metadata.
pub(crate) async fn mapped_reads_are_read_all_mapped<S: EventStore + Clone>(store: S) {
    type Fields = (
        u64,
        String,
        u64,
        uuid::Uuid,
        String,
        u32,
        i64,
        Vec<u8>,
        Vec<u8>,
    );
    fn fields(r: pathway_store::RecordRef<'_>) -> Fields {
        (
            r.position,
            r.stream_id.to_owned(),
            r.stream_version,
            r.event_id,
            r.event_type.to_owned(),
            r.schema_version,
            r.recorded_at.timestamp_micros(),
            r.metadata.to_vec(),
            r.payload.to_vec(),
        )
    }
    fill(&store, 1_300).await;
    // (from, max, positions read)
    let cases: &[(u64, usize, std::ops::RangeInclusive<u64>)] = &[
        (1, 1_000, 1..=1_000),
        (301, 1_000, 301..=1_300),
        (1_000, 600, 1_000..=1_300),
        (1, 600, 1..=600),
        (0, 10, 1..=10),
        (1_290, 512, 1_290..=1_300),
        (1, 5_000, 1..=1_300),
    ];
    for (from, max, positions) in cases.iter().cloned() {
        let mapped = store
            .read_all_mapped(from, max, RecordParts::All, fields)
            .await
            .unwrap();
        let read: Vec<Fields> = store
            .read_all(from, max, &ReadFilter::all())
            .await
            .unwrap()
            .iter()
            .map(|r| fields(r.as_record_ref()))
            .collect();
        assert_eq!(
            mapped.iter().map(|f| f.0).collect::<Vec<_>>(),
            positions.collect::<Vec<_>>(),
            "read_all_mapped({from}, {max})"
        );
        assert!(mapped.iter().all(|f| !f.7.is_empty()), "envelopes read");
        assert_eq!(mapped, read, "read_all_mapped({from}, {max})");
        let without = store
            .read_all_mapped(from, max, RecordParts::WithoutMetadata, fields)
            .await
            .unwrap();
        let emptied: Vec<Fields> = read
            .into_iter()
            .map(|mut f| {
                f.7.clear();
                f
            })
            .collect();
        assert_eq!(
            without, emptied,
            "read_all_mapped({from}, {max}) without metadata"
        );
    }
    for (from, max) in [(1_301, 10), (u64::MAX, 10), (1, 0)] {
        for parts in [RecordParts::All, RecordParts::WithoutMetadata] {
            assert!(
                store
                    .read_all_mapped(from, max, parts, fields)
                    .await
                    .unwrap()
                    .is_empty(),
                "read_all_mapped({from}, {max}, {parts:?})"
            );
        }
    }
}

/// `head` is position 0 and the genesis hash when empty, then the last
/// record's position and hash.
pub(crate) async fn head_tracks_last_record<S: EventStore + Clone>(store: S) {
    assert_eq!(
        store.head().await.unwrap(),
        Head {
            position: 0,
            hash: GENESIS
        }
    );
    assert_eq!(*store.head_changes().borrow(), 0);
    let mut changes = store.head_changes();
    for (n, expected_last) in [(1, 1), (4, 5), (2, 7)] {
        let r = store
            .append("head-1", ExpectedVersion::Any, new_events("h", n))
            .await
            .unwrap();
        assert_eq!(r.last_position, expected_last);
        let head = store.head().await.unwrap();
        let last = store
            .read_all(expected_last, 1, &ReadFilter::all())
            .await
            .unwrap();
        assert_eq!(
            head,
            Head {
                position: expected_last,
                hash: last[0].hash
            }
        );
        // The watch has moved to (at least) this commit.
        tokio::time::timeout(WAIT_TIMEOUT, changes.wait_for(|&p| p >= expected_last))
            .await
            .expect("head watch woke")
            .expect("head watch open");
    }
}

/// Each broken limit is `InvalidInput` naming the value, writes nothing (not
/// even the valid events of the batch), and leaves the store usable.
pub(crate) async fn bad_input_is_rejected_and_nothing_written<S: EventStore + Clone>(store: S) {
    store
        .append("person-1", ExpectedVersion::Any, vec![new_event("valid")])
        .await
        .unwrap();
    let oversized = NewEvent {
        payload: Bytes::from(vec![7u8; EVENT_BYTES_MAX + 1]),
        metadata: Bytes::new(),
        ..new_event("oversized")
    };
    let oversized_split = NewEvent {
        payload: Bytes::from(vec![7u8; EVENT_BYTES_MAX / 2 + 1]),
        metadata: Bytes::from(vec![7u8; EVENT_BYTES_MAX / 2]),
        ..new_event("oversized")
    };
    let duplicate = new_event("twice");
    let long_stream = format!("person-{}", "x".repeat(STREAM_ID_BYTES_MAX));
    let cases: Vec<(String, Vec<NewEvent>, String)> = vec![
        (
            "person-1".into(),
            vec![new_event("ok"), oversized.clone(), new_event("ok")],
            format!(
                "event {}: {} bytes",
                oversized.event_id,
                EVENT_BYTES_MAX + 1
            ),
        ),
        (
            "person-1".into(),
            vec![oversized_split.clone()],
            format!("(limit {EVENT_BYTES_MAX})"),
        ),
        ("person-1".into(), vec![], "empty batch".into()),
        (
            String::new(),
            vec![new_event("ok")],
            "empty stream id".into(),
        ),
        (
            long_stream.clone(),
            vec![new_event("ok")],
            format!("(limit {STREAM_ID_BYTES_MAX})"),
        ),
        (
            "person-\u{7}1".into(),
            vec![new_event("ok")],
            "control character".into(),
        ),
        (
            "person-1".into(),
            vec![new_event("ok"), typed_event("PersonTeleported", "bad")],
            "\"PersonTeleported\"".into(),
        ),
        (
            "person-1".into(),
            vec![duplicate.clone(), new_event("ok"), duplicate.clone()],
            format!("event {}: appears more than once", duplicate.event_id),
        ),
        (
            "person-1".into(),
            new_events("many", APPEND_EVENTS_MAX + 1),
            format!(
                "{} events in one append (limit {APPEND_EVENTS_MAX})",
                APPEND_EVENTS_MAX + 1
            ),
        ),
    ];
    for (i, (stream, events, expected)) in cases.into_iter().enumerate() {
        let result = store.append(&stream, ExpectedVersion::Any, events).await;
        let message = invalid_input(result);
        assert!(
            message.contains(&expected),
            "case {i}: {expected:?} not in {message:?}"
        );
        assert_eq!(
            store.head().await.unwrap().position,
            1,
            "case {i} wrote something"
        );
    }
    // Exactly at the limits is fine.
    let at_limit = NewEvent {
        payload: Bytes::from(vec![1u8; EVENT_BYTES_MAX - 10]),
        metadata: Bytes::from(vec![2u8; 10]),
        ..new_event("at-limit")
    };
    let longest_stream = "s".repeat(STREAM_ID_BYTES_MAX);
    let r = store
        .append(
            &longest_stream,
            ExpectedVersion::NoStream,
            vec![at_limit.clone()],
        )
        .await;
    assert_eq!(r.unwrap().first_position, 2);
    let r = store.append(
        "person-1",
        ExpectedVersion::Exact(1),
        new_events("max", APPEND_EVENTS_MAX),
    );
    assert_eq!(r.await.unwrap().last_position, 2 + APPEND_EVENTS_MAX as u64);
    let stored = store.read_stream(&longest_stream, 1, 1).await.unwrap();
    assert_eq!(stored[0].payload, at_limit.payload);
    assert_eq!(assert_log_sound(&store).await.len(), 2 + APPEND_EVENTS_MAX);
}

// ---------------------------------------------------------------------------
// Verification

/// Appends `n` events in batches of 1..=3 to a few streams.
async fn fill<S: EventStore>(store: &S, n: u64) {
    let mut written = 0;
    let mut i = 0u64;
    while written < n {
        let batch = (i % 3 + 1).min(n - written);
        let stream = format!("fill-{}", i % 4);
        store
            .append(
                &stream,
                ExpectedVersion::Any,
                new_events("fill", batch as usize),
            )
            .await
            .unwrap();
        written += batch;
        i += 1;
    }
}

/// A clean log verifies over any range; a range is seeded from the record
/// before it.
pub(crate) async fn verify_clean_log<S: EventStore + Clone>(store: S) {
    let empty = store.verify(1, None).await.unwrap();
    assert_eq!(
        (empty.checked, empty.head, empty.first_break),
        (
            0,
            Head {
                position: 0,
                hash: GENESIS
            },
            None
        )
    );
    fill(&store, 30).await;
    let all = read_everything(&store).await;
    let head_at = |p: u64| Head {
        position: p,
        hash: all[p as usize - 1].hash,
    };
    // (from, to, checked, last position)
    let cases: &[(u64, Option<u64>, u64, u64)] = &[
        (1, None, 30, 30),
        (0, None, 30, 30),
        (1, Some(30), 30, 30),
        (10, Some(20), 11, 20),
        (30, None, 1, 30),
        (2, Some(2), 1, 2),
        (21, Some(20), 0, 20),
        (100, None, 0, 30),
    ];
    for &(from, to, checked, last) in cases {
        let report = store.verify(from, to).await.unwrap();
        assert_eq!(report.first_break, None, "verify({from}, {to:?})");
        assert_eq!(report.checked, checked, "verify({from}, {to:?})");
        assert_eq!(report.head, head_at(last), "verify({from}, {to:?})");
    }
    // Past the head: the missing records are reported, not skipped.
    let past = store.verify(1, Some(32)).await.unwrap();
    assert_eq!(
        past.first_break,
        Some(ChainBreak {
            position: 31,
            kind: ChainBreakKind::RecordMissing
        })
    );
    assert_eq!(past.checked, 30);
}

async fn tampered_log<S, F>(store: &S, tamper: F, change: Tamper) -> Vec<RecordedEvent>
where
    S: EventStore,
    F: AsyncFnOnce(Tamper),
{
    fill(store, 20).await;
    let before = read_everything(store).await;
    assert_eq!(store.verify(1, None).await.unwrap().first_break, None);
    tamper(change).await;
    before
}

/// A changed payload is `ContentChanged` at its position; the records before
/// it are reported checked.
pub(crate) async fn verify_detects_changed_payload<S, F>(store: S, tamper: F)
where
    S: EventStore + Clone,
    F: AsyncFnOnce(Tamper),
{
    let before = tampered_log(&store, tamper, Tamper::ChangePayload { position: 7 }).await;
    let report = store.verify(1, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak {
            position: 7,
            kind: ChainBreakKind::ContentChanged
        })
    );
    assert_eq!(report.checked, 6);
    assert_eq!(
        report.head,
        Head {
            position: 6,
            hash: before[5].hash
        }
    );
    // A range that ends before the change still verifies.
    assert_eq!(store.verify(1, Some(6)).await.unwrap().first_break, None);
    assert_ne!(
        store.read_all(7, 1, &ReadFilter::all()).await.unwrap()[0].payload,
        before[6].payload
    );
}

/// A deleted record is `RecordMissing` at its position, also when it is the
/// seed of a range.
pub(crate) async fn verify_detects_deleted_row<S, F>(store: S, tamper: F)
where
    S: EventStore + Clone,
    F: AsyncFnOnce(Tamper),
{
    tampered_log(&store, tamper, Tamper::DeleteRow { position: 7 }).await;
    let report = store.verify(1, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak {
            position: 7,
            kind: ChainBreakKind::RecordMissing
        })
    );
    assert_eq!(report.checked, 6);
    let seeded = store.verify(8, None).await.unwrap();
    assert_eq!(
        seeded.first_break,
        Some(ChainBreak {
            position: 7,
            kind: ChainBreakKind::RecordMissing
        })
    );
    assert_eq!(seeded.checked, 0);
}

/// Two records exchanging positions is `OrderChanged` at the first of them.
pub(crate) async fn verify_detects_swapped_rows<S, F>(store: S, tamper: F)
where
    S: EventStore + Clone,
    F: AsyncFnOnce(Tamper),
{
    let before = tampered_log(&store, tamper, Tamper::SwapPositions { a: 5, b: 9 }).await;
    let report = store.verify(1, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak {
            position: 5,
            kind: ChainBreakKind::OrderChanged
        })
    );
    assert_eq!(report.checked, 4);
    let at_five = store.read_all(5, 1, &ReadFilter::all()).await.unwrap();
    assert_eq!(
        at_five[0].event_id, before[8].event_id,
        "the tamper hook swapped the records"
    );
}

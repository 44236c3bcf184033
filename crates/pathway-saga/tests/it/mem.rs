//! An in-memory log for the simulation: the `EventStore` contract without
//! durability, so years of policy time run in seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pathway_store::{
    AppendResult, EventStore, ExpectedVersion, Head, NewEvent, ReadFilter, RecordedEvent,
    StoreError, VerifyReport, chain::GENESIS,
};
use tokio::sync::watch;

#[derive(Default)]
struct Inner {
    log: Vec<RecordedEvent>,
    streams: HashMap<String, Vec<usize>>,
    ids: HashMap<uuid::Uuid, usize>,
}

#[derive(Clone)]
pub(crate) struct MemStore {
    inner: Arc<Mutex<Inner>>,
    head: Arc<watch::Sender<u64>>,
}

impl MemStore {
    pub(crate) fn new() -> Self {
        MemStore {
            inner: Arc::default(),
            head: Arc::new(watch::channel(0).0),
        }
    }
}

#[async_trait]
impl EventStore for MemStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let mut inner = self.inner.lock().expect("lock");
        if let Some(first) = events.first()
            && let Some(&at) = inner.ids.get(&first.event_id)
        {
            let r = &inner.log[at];
            let same = r.stream_id == stream
                && events.iter().enumerate().all(|(i, e)| {
                    inner.log.get(at + i).is_some_and(|r| {
                        r.event_id == e.event_id
                            && r.payload == e.payload
                            && r.metadata == e.metadata
                    })
                });
            if same {
                return Ok(AppendResult {
                    first_position: r.position,
                    last_position: r.position + events.len() as u64 - 1,
                    stream_version: r.stream_version + events.len() as u64 - 1,
                });
            }
            return Err(StoreError::EventIdReused {
                event_id: first.event_id,
                stream: r.stream_id.clone(),
                version: r.stream_version,
            });
        }
        let actual = inner.streams.get(stream).map_or(0, |v| v.len() as u64);
        if !expected.admits(actual) {
            return Err(StoreError::WrongExpectedVersion {
                stream: stream.to_owned(),
                expected,
                actual,
            });
        }
        let first_position = inner.log.len() as u64 + 1;
        for (i, e) in events.into_iter().enumerate() {
            let index = inner.log.len();
            inner.ids.insert(e.event_id, index);
            inner
                .streams
                .entry(stream.to_owned())
                .or_default()
                .push(index);
            inner.log.push(RecordedEvent {
                position: index as u64 + 1,
                stream_id: stream.to_owned(),
                stream_version: actual + i as u64 + 1,
                event_id: e.event_id,
                event_type: e.event_type,
                schema_version: e.schema_version,
                recorded_at: DateTime::<Utc>::UNIX_EPOCH,
                metadata: e.metadata,
                payload: e.payload,
                prev_hash: GENESIS,
                hash: GENESIS,
            });
        }
        let last_position = inner.log.len() as u64;
        let stream_version = inner.streams[stream].len() as u64;
        self.head.send_replace(last_position);
        Ok(AppendResult {
            first_position,
            last_position,
            stream_version,
        })
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.inner.lock().expect("lock");
        Ok(inner.streams.get(stream).map_or_else(Vec::new, |idx| {
            idx.iter()
                .skip(from_version.saturating_sub(1) as usize)
                .take(max)
                .map(|&i| inner.log[i].clone())
                .collect()
        }))
    }

    async fn read_all(
        &self,
        from_position: u64,
        max: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.inner.lock().expect("lock");
        Ok(inner
            .log
            .iter()
            .skip(from_position.saturating_sub(1) as usize)
            .filter(|r| filter.admits(&r.stream_id, &r.event_type))
            .take(max)
            .cloned()
            .collect())
    }

    async fn head(&self) -> Result<Head, StoreError> {
        let inner = self.inner.lock().expect("lock");
        Ok(Head {
            position: inner.log.len() as u64,
            hash: GENESIS,
        })
    }

    async fn verify(&self, _from: u64, _to: Option<u64>) -> Result<VerifyReport, StoreError> {
        let head = self.head().await?;
        Ok(VerifyReport {
            checked: 0,
            head,
            first_break: None,
        })
    }

    fn head_changes(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }
}

//! Store benchmarks behind `pathway bench append|read`.
//!
//! [`bench_append`] runs concurrent writers, each appending to its own stream
//! with an exact expected version (the path every command takes), and
//! reports throughput and per-append latency. [`bench_read`] reads the log
//! from position 1 in subscription-sized batches. [`copy_baseline`] times a
//! plain binary `COPY` of equivalent rows into a scratch table: the ceiling
//! for what PostgreSQL can ingest on this machine, to judge the store against.
//! The functions work on any [`EventStore`]; only the baseline needs PostgreSQL.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio_postgres::NoTls;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tracing::Instrument;
use uuid::Uuid;

use crate::chain::{Canonical, GENESIS};
use crate::{EventStore, ExpectedVersion, NewEvent, ReadFilter, StoreError, limits};

/// The event type of benchmark events: a real domain type, so the run goes
/// through the same validation as production appends.
pub const BENCH_EVENT_TYPE: &str = "PersonRegistered";

/// What [`bench_append`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchConfig {
    /// Concurrent writers, each on its own stream.
    pub writers: usize,
    /// Events to write in total.
    pub events: usize,
    /// Events per append call (at most [`limits::APPEND_EVENTS_MAX`]).
    pub events_per_append: usize,
    /// Payload bytes of each event.
    pub payload_bytes: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            writers: 64,
            events: 100_000,
            events_per_append: 1,
            payload_bytes: 256,
        }
    }
}

/// What a benchmark measured. Latencies are per call (one append, or one read batch).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BenchReport {
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl BenchReport {
    fn new(events: u64, elapsed: Duration, mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        let seconds = elapsed.as_secs_f64();
        BenchReport {
            events,
            seconds,
            events_per_s: if seconds > 0.0 {
                events as f64 / seconds
            } else {
                0.0
            },
            p50_ms: percentile_ms(&latencies, 50),
            p99_ms: percentile_ms(&latencies, 99),
        }
    }
}

/// The `pct`th percentile (nearest rank) of sorted latencies, in milliseconds.
fn percentile_ms(sorted: &[Duration], pct: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (sorted.len() * pct).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1_000.0
}

/// The event type's name as the schema spells it (checked against the table,
/// so a renamed type fails loudly here rather than in validation).
fn bench_event_type() -> Result<&'static str, StoreError> {
    pathway_proto::events::v1::EVENT_TYPES
        .iter()
        .copied()
        .find(|t| *t == BENCH_EVENT_TYPE)
        .ok_or_else(|| {
            StoreError::InvalidInput(format!(
                "event type {BENCH_EVENT_TYPE:?}: not in pathway.events.v1"
            ))
        })
}

fn bench_event(event_type: &str, payload: &Bytes) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: event_type.to_owned(),
        schema_version: pathway_proto::SCHEMA_VERSION_V1,
        metadata: Bytes::new(),
        payload: payload.clone(),
    }
}

/// Appends `cfg.events` events from `cfg.writers` concurrent writers and
/// reports throughput and the latency of each append call.
#[tracing::instrument(skip_all, fields(writers = cfg.writers, events = cfg.events))]
pub async fn bench_append<S: EventStore + Clone>(
    store: S,
    cfg: BenchConfig,
) -> Result<BenchReport, StoreError> {
    let event_type = bench_event_type()?;
    let writers = cfg.writers.max(1);
    let per_append = cfg.events_per_append.clamp(1, limits::APPEND_EVENTS_MAX);
    let payload = Bytes::from(vec![0x5a; cfg.payload_bytes]);

    // Split the events as evenly as possible; the last append of a writer may be short.
    let shares: Vec<usize> = (0..writers)
        .map(|w| cfg.events / writers + usize::from(w < cfg.events % writers))
        .collect();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for (writer, share) in shares.into_iter().enumerate() {
        let store = store.clone();
        let payload = payload.clone();
        let task = async move {
            let stream = format!("person-{}", Uuid::new_v4());
            let mut version = 0u64;
            let mut latencies = Vec::with_capacity(share.div_ceil(per_append));
            let mut left = share;
            while left > 0 {
                let n = left.min(per_append);
                let events = (0..n).map(|_| bench_event(event_type, &payload)).collect();
                let t = Instant::now();
                let result = store
                    .append(&stream, ExpectedVersion::Exact(version), events)
                    .await?;
                latencies.push(t.elapsed());
                version = result.stream_version;
                left -= n;
            }
            Ok::<_, StoreError>(latencies)
        };
        tasks.push(tokio::spawn(
            task.instrument(tracing::info_span!("bench_writer", writer)),
        ));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        let writer = task
            .await
            .map_err(|e| StoreError::Unavailable(format!("bench writer failed: {e}")))??;
        latencies.extend(writer);
    }
    Ok(BenchReport::new(
        cfg.events as u64,
        start.elapsed(),
        latencies,
    ))
}

/// Reads up to `events_to_read` events from position 1 in batches of
/// [`limits::SUBSCRIPTION_BATCH_EVENTS`] (as a catching-up subscriber does),
/// stopping early at the end of the log. Latencies are per batch.
#[tracing::instrument(skip_all, fields(events_to_read))]
pub async fn bench_read<S: EventStore>(
    store: S,
    events_to_read: u64,
) -> Result<BenchReport, StoreError> {
    let filter = ReadFilter::all();
    let mut latencies = Vec::new();
    let mut read = 0u64;
    let mut next = 1u64;
    let start = Instant::now();
    while read < events_to_read {
        let want = usize::try_from(events_to_read - read)
            .unwrap_or(usize::MAX)
            .min(limits::SUBSCRIPTION_BATCH_EVENTS);
        let t = Instant::now();
        let batch = store.read_all(next, want, &filter).await?;
        latencies.push(t.elapsed());
        let Some(last) = batch.last() else { break };
        next = last.position + 1;
        read += batch.len() as u64;
    }
    Ok(BenchReport::new(read, start.elapsed(), latencies))
}

/// Times one binary `COPY` of `events` rows shaped like the log's (same
/// columns, constraints and hashes, `payload_bytes` each) into a scratch
/// table in the database at `url`, committed durably, and returns events/s.
/// The scratch table is dropped afterwards.
#[tracing::instrument(skip_all, fields(events, payload_bytes))]
pub async fn copy_baseline(
    url: &str,
    events: usize,
    payload_bytes: usize,
) -> Result<f64, StoreError> {
    let event_type = bench_event_type()?;
    let unavailable =
        |e: tokio_postgres::Error| StoreError::Unavailable(format!("PostgreSQL: {e}"));
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL url: {e}")))?;
    config.connect_timeout(Duration::from_millis(limits::PG_CONNECT_TIMEOUT_MS));
    let (mut client, connection) = config.connect(NoTls).await.map_err(unavailable)?;
    let driver = tokio::spawn(
        async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "baseline connection ended");
            }
        }
        .instrument(tracing::info_span!("bench_copy_connection")),
    );

    let table = format!("pathway_bench_copy_{}", Uuid::new_v4().simple());
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (
                position BIGINT PRIMARY KEY, stream_id TEXT NOT NULL, stream_version BIGINT NOT NULL,
                event_id UUID NOT NULL UNIQUE, event_type TEXT NOT NULL, schema_version INT NOT NULL,
                recorded_at TIMESTAMPTZ NOT NULL, metadata BYTEA NOT NULL, payload BYTEA NOT NULL,
                prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL, UNIQUE (stream_id, stream_version))"
        ))
        .await
        .map_err(unavailable)?;

    let result = async {
        let rows = baseline_rows(events, payload_bytes, event_type);
        let start = Instant::now();
        let tx = client.transaction().await.map_err(unavailable)?;
        let sink = tx
            .copy_in(&format!(
                "COPY {table} (position, stream_id, stream_version, event_id, event_type, schema_version, \
                 recorded_at, metadata, payload, prev_hash, hash) FROM STDIN BINARY"
            ))
            .await
            .map_err(unavailable)?;
        let types = [
            Type::INT8,
            Type::TEXT,
            Type::INT8,
            Type::UUID,
            Type::TEXT,
            Type::INT4,
            Type::TIMESTAMPTZ,
            Type::BYTEA,
            Type::BYTEA,
            Type::BYTEA,
            Type::BYTEA,
        ];
        let writer = BinaryCopyInWriter::new(sink, &types);
        futures::pin_mut!(writer);
        for r in &rows {
            let values: [&(dyn ToSql + Sync); 11] = [
                &r.position,
                &r.stream_id,
                &r.stream_version,
                &r.event_id,
                &event_type,
                &r.schema_version,
                &r.recorded_at,
                &r.metadata,
                &r.payload,
                &r.prev_hash.as_slice(),
                &r.hash.as_slice(),
            ];
            writer.as_mut().write(&values).await.map_err(unavailable)?;
        }
        writer.finish().await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        let seconds = start.elapsed().as_secs_f64();
        Ok::<_, StoreError>(if seconds > 0.0 { rows.len() as f64 / seconds } else { 0.0 })
    }
    .await;

    let dropped = client
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await;
    drop(client);
    let _ = driver.await;
    let events_per_s = result?;
    dropped.map_err(unavailable)?;
    Ok(events_per_s)
}

/// One scratch row, precomputed so only the `COPY` is timed.
struct BaselineRow {
    position: i64,
    stream_id: String,
    stream_version: i64,
    event_id: Uuid,
    schema_version: i32,
    recorded_at: DateTime<Utc>,
    metadata: Vec<u8>,
    payload: Vec<u8>,
    prev_hash: [u8; 32],
    hash: [u8; 32],
}

/// `events` rows chained as the store would chain them, 64 streams round-robin.
fn baseline_rows(events: usize, payload_bytes: usize, event_type: &str) -> Vec<BaselineRow> {
    const STREAMS: usize = 64;
    let streams: Vec<String> = (0..STREAMS)
        .map(|_| format!("person-{}", Uuid::new_v4()))
        .collect();
    let now = Utc::now();
    let recorded_at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    let payload = vec![0x5a; payload_bytes];
    let mut prev = GENESIS;
    (0..events)
        .map(|i| {
            let position = i as u64 + 1;
            let stream_version = (i / STREAMS) as u64 + 1;
            let stream_id = streams[i % STREAMS].clone();
            let event_id = Uuid::new_v4();
            let hash = Canonical {
                position,
                stream_id: &stream_id,
                stream_version,
                event_id: &event_id,
                event_type,
                schema_version: pathway_proto::SCHEMA_VERSION_V1,
                recorded_at_micros: recorded_at.timestamp_micros(),
                metadata: &[],
                payload: &payload,
            }
            .hash(&prev);
            let row = BaselineRow {
                position: position as i64,
                stream_id,
                stream_version: stream_version as i64,
                event_id,
                schema_version: pathway_proto::SCHEMA_VERSION_V1 as i32,
                recorded_at,
                metadata: Vec::new(),
                payload: payload.clone(),
                prev_hash: prev,
                hash,
            };
            prev = hash;
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{BenchReport, percentile_ms};

    #[test]
    fn percentiles_use_nearest_rank() {
        let ms = |n: u64| Duration::from_millis(n);
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile_ms(&sorted, 50), 50.0);
        assert_eq!(percentile_ms(&sorted, 99), 99.0);
        assert_eq!(percentile_ms(&[ms(7)], 99), 7.0);
        assert_eq!(percentile_ms(&[], 50), 0.0);
    }

    #[test]
    fn report_computes_rate() {
        let r = BenchReport::new(
            1_000,
            Duration::from_millis(500),
            vec![Duration::from_millis(2)],
        );
        assert_eq!(r.events_per_s, 2_000.0);
        assert_eq!((r.p50_ms, r.p99_ms), (2.0, 2.0));
    }
}

//! The PostgreSQL backend: [`PostgresStore`].
//!
//! # Layout
//!
//! One table, `events`, created by the versioned migrations in `migrations/`
//! (applied by [`PostgresStore::connect`] under an advisory lock). Its unique
//! constraints — `position`, `event_id`, `(stream_id, stream_version)` — are the
//! last guard against double writes: a violation (SQLSTATE 23505) is mapped to
//! a typed [`StoreError`], never prevented only by a read before the write.
//!
//! # Writes: group commit
//!
//! [`EventStore::append`] validates its input and queues it (bounded by
//! [`limits::APPEND_QUEUE_LEN_MAX`]) for one committer task per store. The
//! committer drains up to [`limits::GROUP_COMMIT_EVENTS_MAX`] events and writes
//! them in one transaction, pipelined in two round trips:
//!
//! 1. `BEGIN`; `pg_advisory_xact_lock(APPEND_LOCK_KEY)`; read the head (last
//!    position and hash); read the current version of every stream in the
//!    group (one `= ANY($1)` query); read any of the group's event ids already
//!    stored (idempotent retries).
//! 2. Check each request on its own (a retry of a stored append gets the
//!    original result, a reused id gets [`StoreError::EventIdReused`], a wrong
//!    version gets [`StoreError::WrongExpectedVersion`]); give the survivors
//!    dense positions, versions and chain hashes, with one commit time per
//!    group; insert them with one `UNNEST` statement; `NOTIFY pathway_events`
//!    with the new head; `COMMIT`. Then every caller gets its own answer.
//!
//! # Why readers never see a hole
//!
//! Every writer — every committer of every Pathway process sharing the
//! database — takes the same transaction-scoped advisory lock before it reads
//! the head, and keeps it until its transaction ends. PostgreSQL releases
//! transaction locks only after the commit is durable and visible to new
//! snapshots. So the transaction that writes position N reads the head only
//! after the one that wrote N − 1 has committed, and its own rows become
//! visible only after that: a snapshot that sees position N sees all of
//! 1..N−1. Positions are therefore dense and in commit order, and
//! [`EventStore::read_all`] can read "position ≥ p" without a safe-horizon
//! check. (The constraint on `position` catches a writer that skips the lock.)
//!
//! # Waking subscribers
//!
//! [`EventStore::head_changes`] is a `watch` fed by the local committer after
//! each commit, by a dedicated `LISTEN pathway_events` connection (commits of
//! other processes) and by polling the head every
//! [`limits::SUBSCRIPTION_POLL_INTERVAL_MS`] and after every reconnect, so a
//! lost connection or notification delays a wake-up but never loses one.

mod commit;
mod listen;
mod migrate;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{NoTls, Row};

use crate::chain::GENESIS;
use crate::{
    AppendResult, EventStore, ExpectedVersion, Head, NewEvent, ReadFilter, RecordedEvent,
    StoreError, VerifyReport, limits,
};

/// Advisory lock key serialising appends across every process sharing a database ("pathwaya").
const APPEND_LOCK_KEY: i64 = 0x7061_7468_7761_7961;
/// Advisory lock key serialising schema migrations ("pathwaym").
const MIGRATION_LOCK_KEY: i64 = 0x7061_7468_7761_796d;
/// Channel of the commit notifications; the payload is the new head position.
const NOTIFY_CHANNEL: &str = "pathway_events";

/// The columns of a record, in [`decode_row`] order.
const COLUMNS: &str = "position, stream_id, stream_version, event_id, event_type, schema_version, \
                       recorded_at, metadata, payload, prev_hash, hash";

/// The event log in PostgreSQL. Cheap to clone: all clones share one pool,
/// one committer and one head watcher, which stop when the last clone drops.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    appends: mpsc::Sender<commit::AppendRequest>,
    head_tx: Arc<watch::Sender<u64>>,
    /// Dropped with the last handle: tells the head watcher to stop.
    _shutdown: oneshot::Sender<()>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.inner.pool.status())
            .field("head", &*self.inner.head_tx.borrow())
            .finish()
    }
}

/// Set on every connection of the store (see [`PostgresStore::connect`]).
const PLAN_CACHE_OPTION: &str = "-c plan_cache_mode=force_custom_plan";

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`),
    /// applies pending migrations and starts the committer and head watcher.
    /// Must be called within a tokio runtime.
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL url: {e}")))?;
        config
            .connect_timeout(Duration::from_millis(limits::PG_CONNECT_TIMEOUT_MS))
            .application_name("pathway");
        // Plan every execution of a prepared statement with the parameters
        // and table sizes of the moment. A generic plan made while a table is
        // nearly empty (a fresh log) is a sequential scan, and without an
        // ANALYZE since (autovacuum off, or not yet run) it is never replaced:
        // the group commit's event-id lookup then scans the whole log for
        // every group, and appends slow down as the log grows.
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {PLAN_CACHE_OPTION}"),
            _ => PLAN_CACHE_OPTION.to_owned(),
        };
        config.options(&options);

        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(limits::PG_POOL_SIZE_MAX)
            .wait_timeout(Some(Duration::from_millis(limits::PG_POOL_WAIT_TIMEOUT_MS)))
            .create_timeout(Some(Duration::from_millis(limits::PG_CONNECT_TIMEOUT_MS)))
            .recycle_timeout(Some(Duration::from_millis(limits::PG_CONNECT_TIMEOUT_MS)))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build PostgreSQL pool: {e}")))?;

        {
            let mut client = get(&pool).await?;
            migrate::run(&mut client).await?;
        }
        let head = read_head(&pool).await?;

        let head_tx = Arc::new(watch::Sender::new(head.position));
        let (appends, queue) = mpsc::channel(limits::APPEND_QUEUE_LEN_MAX);
        let (shutdown, shutdown_rx) = oneshot::channel();
        commit::spawn(config.clone(), queue, head_tx.clone());
        listen::spawn(config, pool.clone(), head_tx.clone(), shutdown_rx);

        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                appends,
                head_tx,
                _shutdown: shutdown,
            }),
        })
    }

    /// The store's connection pool, for read models kept in the same database
    /// (a projector writing its rows and its checkpoint in one transaction) and
    /// for maintenance. The `events` table must never be written through it.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Reads positions `from..=to`, at most `max`, in position order.
    async fn read_range(
        &self,
        from: u64,
        to: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = get(&self.inner.pool).await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events WHERE position >= $1 AND position <= $2 \
                 ORDER BY position LIMIT $3"
            ))
            .await
            .map_err(pg_error)?;
        let rows = client
            .query(&stmt, &[&to_i64(from), &to_i64(to), &limit(max)])
            .await
            .map_err(pg_error)?;
        rows.iter().map(decode_row).collect()
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    #[tracing::instrument(skip_all, fields(stream_id = %stream, events = events.len()))]
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        crate::validate::check_append(stream, &events)?;
        check_representable(&events)?;
        let (reply, answer) = oneshot::channel();
        let request = commit::AppendRequest {
            stream: stream.to_owned(),
            expected,
            events,
            reply,
        };
        self.inner
            .appends
            .send(request)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    #[tracing::instrument(skip_all, fields(stream_id = %stream, from_version, max))]
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let client = get(&self.inner.pool).await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2 \
                 ORDER BY stream_version LIMIT $3"
            ))
            .await
            .map_err(pg_error)?;
        let rows = client
            .query(&stmt, &[&stream, &to_i64(from_version), &limit(max)])
            .await
            .map_err(pg_error)?;
        rows.iter().map(decode_row).collect()
    }

    #[tracing::instrument(skip_all, fields(from_position, max))]
    async fn read_all(
        &self,
        from_position: u64,
        max: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let client = get(&self.inner.pool).await?;
        let rows = if filter.event_types.is_empty() && filter.categories.is_empty() {
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM events WHERE position >= $1 ORDER BY position LIMIT $2"
                ))
                .await
                .map_err(pg_error)?;
            client.query(&stmt, &[&to_i64(from_position), &limit(max)]).await
        } else {
            // The category is the stream id up to its first '-', as in
            // `chain::category`: split_part returns the whole id when there is none.
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM events WHERE position >= $1 \
                     AND (cardinality($3::text[]) = 0 OR event_type = ANY($3::text[])) \
                     AND (cardinality($4::text[]) = 0 OR split_part(stream_id, '-', 1) = ANY($4::text[])) \
                     ORDER BY position LIMIT $2"
                ))
                .await
                .map_err(pg_error)?;
            client
                .query(
                    &stmt,
                    &[&to_i64(from_position), &limit(max), &filter.event_types, &filter.categories],
                )
                .await
        }
        .map_err(pg_error)?;
        rows.iter().map(decode_row).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn head(&self) -> Result<Head, StoreError> {
        read_head(&self.inner.pool).await
    }

    #[tracing::instrument(skip_all, fields(from, to))]
    async fn verify(&self, from: u64, to: Option<u64>) -> Result<VerifyReport, StoreError> {
        let to = match to {
            Some(to) => to,
            None => self.head().await?.position,
        };
        crate::chain::verify_range(from, to, |first, last, max| {
            self.read_range(first, last, max)
        })
        .await
    }

    fn head_changes(&self) -> watch::Receiver<u64> {
        self.inner.head_tx.subscribe()
    }
}

/// Rejects what `validate` admits but PostgreSQL's `INT` cannot hold, before
/// queuing, so such a request fails alone instead of failing its whole group.
fn check_representable(events: &[NewEvent]) -> Result<(), StoreError> {
    match events
        .iter()
        .find(|e| i32::try_from(e.schema_version).is_err())
    {
        Some(e) => Err(StoreError::InvalidInput(format!(
            "event {}: schema version {} (limit {})",
            e.event_id,
            e.schema_version,
            i32::MAX
        ))),
        None => Ok(()),
    }
}

/// A pooled connection, or a typed error when none comes in time.
async fn get(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get().await.map_err(|e| match e {
        PoolError::Timeout(_) => StoreError::Timeout {
            operation: "waiting for a PostgreSQL connection",
            timeout_ms: limits::PG_POOL_WAIT_TIMEOUT_MS,
        },
        PoolError::Backend(e) => pg_error(e),
        PoolError::Closed => StoreError::Closed,
        other => StoreError::Unavailable(format!("PostgreSQL pool: {other}")),
    })
}

async fn read_head(pool: &Pool) -> Result<Head, StoreError> {
    let client = get(pool).await?;
    let stmt = client
        .prepare_cached("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
        .await
        .map_err(pg_error)?;
    let row = client.query_opt(&stmt, &[]).await.map_err(pg_error)?;
    row.map_or(
        Ok(Head {
            position: 0,
            hash: GENESIS,
        }),
        |row| decode_head(&row),
    )
}

/// A `(position, hash)` row.
fn decode_head(row: &Row) -> Result<Head, StoreError> {
    let position: i64 = row.try_get(0).map_err(pg_error)?;
    let position = to_u64(position, "position", position)?;
    let hash: &[u8] = row.try_get(1).map_err(pg_error)?;
    Ok(Head {
        position,
        hash: to_hash(hash, "hash", position)?,
    })
}

/// A row selected with [`COLUMNS`].
fn decode_row(row: &Row) -> Result<RecordedEvent, StoreError> {
    let position: i64 = row.try_get(0).map_err(pg_error)?;
    let position = to_u64(position, "position", position)?;
    let stream_version: i64 = row.try_get(2).map_err(pg_error)?;
    let schema_version: i32 = row.try_get(5).map_err(pg_error)?;
    let metadata: &[u8] = row.try_get(7).map_err(pg_error)?;
    let payload: &[u8] = row.try_get(8).map_err(pg_error)?;
    let record = RecordedEvent {
        position,
        stream_id: row.try_get(1).map_err(pg_error)?,
        stream_version: to_u64(stream_version, "stream_version", position)?,
        event_id: row.try_get(3).map_err(pg_error)?,
        event_type: row.try_get(4).map_err(pg_error)?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| corrupted(position, "schema_version", schema_version))?,
        recorded_at: row.try_get(6).map_err(pg_error)?,
        metadata: Bytes::copy_from_slice(metadata),
        payload: Bytes::copy_from_slice(payload),
        prev_hash: to_hash(row.try_get(9).map_err(pg_error)?, "prev_hash", position)?,
        hash: to_hash(row.try_get(10).map_err(pg_error)?, "hash", position)?,
    };
    Ok(record)
}

fn to_u64(value: i64, column: &str, position: impl std::fmt::Display) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupted(position, column, value))
}

fn to_hash(
    bytes: &[u8],
    column: &str,
    position: impl std::fmt::Display,
) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| corrupted(position, column, format!("{} bytes", bytes.len())))
}

fn corrupted(
    position: impl std::fmt::Display,
    column: &str,
    value: impl std::fmt::Display,
) -> StoreError {
    StoreError::Corrupted {
        location: format!("events position {position}"),
        detail: format!("column {column} holds {value}"),
    }
}

/// A 1-based position or version as PostgreSQL's `BIGINT` (saturating: the
/// log never gets near `i64::MAX`).
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn limit(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

/// A database failure as a store error, keeping the server's message.
fn pg_error(e: tokio_postgres::Error) -> StoreError {
    let detail = match e.as_db_error() {
        Some(db) => format!("PostgreSQL {}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(&e) {
            Some(source) => format!("PostgreSQL: {e}: {source}"),
            None => format!("PostgreSQL: {e}"),
        },
    };
    StoreError::Unavailable(detail)
}

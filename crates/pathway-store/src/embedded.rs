//! The embedded backend: the log in one SQLite database under a data
//! directory (`<dir>/events.db`), no server needed.
//!
//! Writes go through a single writer thread (`pathway-embedded-writer`) that
//! owns the only write connection. Appends queue on a bounded channel
//! ([`APPEND_QUEUE_LEN_MAX`]); the writer drains up to
//! [`GROUP_COMMIT_EVENTS_MAX`] events and commits them in one transaction,
//! checking each request's expected version on its own against the stream
//! versions including earlier requests of the same group. A request that
//! fails its checks fails alone; the rest of the group commits.
//!
//! Callers are answered only after the commit is durable: the writer commits
//! to the WAL (`journal_mode=WAL`) and hands the group to the syncer threads
//! (`durable`), which fsync the WAL and only then answer and move the head,
//! while the writer already builds the next group. Every group committed
//! before an fsync began is durable when it ends, so one fsync serves all of
//! them.
//!
//! Positions are assigned by the writer inside the write transaction, so they
//! are dense and follow commit order; readers (read-only connections from a
//! bounded pool, on the blocking thread pool) only ever see committed rows,
//! and never return one before it is durable (a read that meets a record
//! not yet fsynced fsyncs the WAL itself). A large unfiltered `read_all`
//! below the head runs as two queries on two connections at once.
//!
//! Crash safety: a torn WAL tail is rolled back by SQLite on open. On open the
//! store additionally verifies the hash chain of the last
//! [`OPEN_VERIFY_EVENTS`] records and refuses to start on a broken tail.
//!
//! Each group runs in a `BEGIN IMMEDIATE` transaction and trusts the head and
//! stream versions it remembers from earlier groups only while `PRAGMA
//! data_version` shows no other connection has committed; otherwise it reads
//! them again. So even a second process writing the same directory cannot
//! fork the chain: it only waits for the write lock.
//!
//! To keep groups large under steady concurrency, the writer waits up to
//! `GROUP_GATHER_WAIT_MAX_US` for about as many requests as the previous
//! group had (callers answered by one group resubmit at once); a lone caller
//! never waits, and neither does a group while an earlier one is being
//! fsynced (its callers cannot resubmit before that fsync ends).
//!
//! Write volume: each group dirties about one leaf page of each index per
//! event (stream and event id keys land at random places) and every dirty
//! page goes to the WAL whole, so new databases use 2 KiB pages
//! (`PAGE_BYTES`), and the WAL grows to `WAL_BYTES_MAX` before a commit
//! checkpoints it, so a checkpoint copies each hot page once for many commits.
//! The writer's connection goes through `pathway_sqlite_vfs`, which writes a
//! group's frames in a few large writes instead of two per frame.
//!
//! An append whose caller goes away (future dropped) may still commit; a
//! retry with the same event ids returns the original result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::DateTime;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use uuid::Uuid;

use crate::chain::{Canonical, GENESIS, Verifier};
use crate::limits::{APPEND_QUEUE_LEN_MAX, GROUP_COMMIT_EVENTS_MAX, VERIFY_BATCH_EVENTS};
use crate::{
    AppendResult, EventStore, ExpectedVersion, Head, NewEvent, ReadFilter, RecordParts, RecordRef,
    RecordedEvent, StoreError, VerifyReport, validate,
};
use durable::{Committed, Durability, Syncer};

mod durable;

/// File name of the database inside the data directory.
pub const DB_FILE_NAME: &str = "events.db";
/// Records whose chain is verified when the store opens.
pub const OPEN_VERIFY_EVENTS: u64 = 16;
/// Read-only connections open at once (and concurrent read calls).
const READER_CONNECTIONS_MAX: usize = 8;
/// Wait for a SQLite lock held by another connection.
const BUSY_TIMEOUT_MS: u64 = 5_000;
/// Longest the writer waits for more requests to join a group, once it has
/// fewer than the previous group had (a bounded commit delay).
const GROUP_GATHER_WAIT_MAX_US: u64 = 500;
/// Memory-mapped bytes per reader connection (reads without a copy per page).
const READER_MMAP_BYTES_MAX: u64 = 1 << 30;
/// Stream versions the writer remembers between groups (forgotten all at
/// once beyond this).
const STREAM_VERSIONS_CACHED_MAX: usize = 65_536;
/// Unfiltered reads of at least this many records (below the head) run as
/// two queries on two reader connections at once (a catching-up subscriber
/// decodes on both cores).
const SPLIT_READ_EVENTS_MIN: usize = 512;
/// Prepared statements kept per connection.
const STATEMENT_CACHE_LEN_MAX: usize = 32;
const WRITER_THREAD_NAME: &str = "pathway-embedded-writer";
/// Page size of a new database. A group of single-event appends to distinct
/// streams dirties about one leaf page of each index per event (the stream
/// and event id keys land at random places), and every dirty page goes to
/// the WAL whole: 2 KiB pages halve the WAL bytes written and fsynced per
/// commit against the 4 KiB default, while 1 KiB pages cost more CPU in
/// deeper trees and per-frame overhead than they save.
const PAGE_BYTES: i64 = 2_048;
/// WAL size at which a commit checkpoints it into the database file (and to
/// which the WAL file is truncated after it restarts). A large WAL lets a
/// checkpoint copy each hot index page once for many commits instead of once
/// per few commits (the default is 1,000 pages).
const WAL_BYTES_MAX: i64 = 64 * 1024 * 1024;
/// Page cache of the write connection: four times the default, so more of
/// the index pages written at random places stay hot. Not larger: the end of
/// each write transaction costs time in proportion to the cache (SQLite's
/// page cache truncation scans its hash table), which at 32 MiB outweighed
/// the reads it saved.
const WRITER_CACHE_BYTES_MAX: i64 = 8 * 1024 * 1024;

/// Schema migrations; entry `i` moves `PRAGMA user_version` from `i` to `i + 1`.
/// Never edit an entry that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the log. `category` is derived (never stored, never hashed) so
    // `read_all` can filter by it in SQL.
    "CREATE TABLE events (
        position           INTEGER PRIMARY KEY,
        stream_id          TEXT    NOT NULL,
        stream_version     INTEGER NOT NULL,
        event_id           BLOB    NOT NULL UNIQUE,
        event_type         TEXT    NOT NULL,
        schema_version     INTEGER NOT NULL,
        recorded_at_micros INTEGER NOT NULL,
        metadata           BLOB    NOT NULL,
        payload            BLOB    NOT NULL,
        prev_hash          BLOB    NOT NULL,
        hash               BLOB    NOT NULL,
        category           TEXT GENERATED ALWAYS AS (
            CASE WHEN instr(stream_id, '-') > 0
                 THEN substr(stream_id, 1, instr(stream_id, '-') - 1)
                 ELSE stream_id END) VIRTUAL,
        UNIQUE (stream_id, stream_version)
    ) STRICT;",
];

/// The column list of [`RECORD_COLUMNS`], as a literal to build on, with
/// `$metadata` the expression read in the metadata's place.
macro_rules! record_columns {
    ($metadata:literal) => {
        concat!(
            "position, stream_id, stream_version, event_id, event_type, \
             schema_version, recorded_at_micros, ",
            $metadata,
            ", payload"
        )
    };
}

/// The columns of a record ([`record_ref`]), without its hashes: what a
/// mapped read hands on (SQLite copies every blob column it returns).
const RECORD_COLUMNS: &str = record_columns!("metadata");
/// [`RECORD_COLUMNS`] with an empty blob in the metadata's place
/// ([`RecordParts::WithoutMetadata`]): SQLite neither copies nor returns
/// the envelope, and the columns keep their indices.
const RECORD_COLUMNS_WITHOUT_METADATA: &str = record_columns!("x'' AS metadata");
/// The columns of a stored event ([`decode_event`]): a record and its hashes.
const EVENT_COLUMNS: &str = concat!(record_columns!("metadata"), ", prev_hash, hash");

const INSERT_EVENT: &str = "INSERT INTO events (position, stream_id, stream_version, event_id, \
     event_type, schema_version, recorded_at_micros, metadata, payload, prev_hash, hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

const SELECT_HEAD: &str = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1";

const SELECT_STREAM_VERSION: &str = "SELECT max(stream_version) FROM events WHERE stream_id = ?1";

const SELECT_BY_EVENT_ID: &str = "SELECT position, stream_id, stream_version, event_type, \
     schema_version, metadata, payload FROM events WHERE event_id = ?1";

/// The log in a SQLite database under a data directory. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

// Field order matters: `appends` is dropped before `writer`, which closes the
// queue so the writer thread finishes its last group and exits before it is
// joined.
struct Inner {
    db_path: PathBuf,
    appends: mpsc::Sender<AppendRequest>,
    head: watch::Receiver<u64>,
    durability: Arc<Durability>,
    readers: Arc<ReaderPool>,
    _writer: WriterThread,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("db_path", &self.inner.db_path)
            .finish()
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the log in `dir`: creates the directory and
    /// `events.db`, applies migrations, verifies the chain's tail and starts
    /// the writer thread.
    #[tracing::instrument(skip_all, fields(dir = %dir.display()))]
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("create data directory {}: {e}", dir.display()))
        })?;
        let db_path = dir.join(DB_FILE_NAME);
        // The writer's WAL frames go out in few large writes (see
        // `pathway_sqlite_vfs`); readers use the default VFS.
        let vfs =
            pathway_sqlite_vfs::register().map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut conn = Connection::open_with_flags_and_vfs(
            &db_path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            vfs,
        )
        .map_err(|e| sqlite_error(&db_path, "open", e))?;
        let wal_watch = pathway_sqlite_vfs::watch(&conn).ok_or_else(|| {
            StoreError::Unavailable(format!(
                "{}: the writer is not open through {}",
                db_path.display(),
                pathway_sqlite_vfs::VFS_NAME
            ))
        })?;
        configure_writer(&conn, &db_path)?;
        migrate(&mut conn, &db_path)?;
        check_tail(&conn, &db_path)?;
        let (head_position, _) =
            read_head(&conn).map_err(|e| sqlite_error(&db_path, "read head", e))?;

        let durability = Durability::open(&db_path, head_position, wal_watch)?;
        let (head_tx, head_rx) = watch::channel(head_position);
        let syncer = Syncer::start(Arc::clone(&durability), head_tx)?;
        let (appends, requests) = mpsc::channel(APPEND_QUEUE_LEN_MAX);
        let writer_path = db_path.clone();
        let writer_durability = Arc::clone(&durability);
        let handle = std::thread::Builder::new()
            .name(WRITER_THREAD_NAME.to_owned())
            .spawn(move || {
                Writer {
                    cache: WriterCache::default(),
                    conn,
                    db_path: writer_path,
                    durability: writer_durability,
                    syncer,
                }
                .run(requests)
            })
            .map_err(|e| StoreError::Unavailable(format!("start writer thread: {e}")))?;
        tracing::debug!(head_position, "embedded store open");
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                readers: Arc::new(ReaderPool {
                    db_path: db_path.clone(),
                    idle: Mutex::new(Vec::with_capacity(READER_CONNECTIONS_MAX)),
                    permits: Arc::new(Semaphore::new(READER_CONNECTIONS_MAX)),
                }),
                db_path,
                appends,
                head: head_rx,
                durability,
                _writer: WriterThread(Some(handle)),
            }),
        })
    }

    /// The database file (`<dir>/events.db`).
    pub fn db_path(&self) -> &Path {
        &self.inner.db_path
    }

    /// Runs `read` on a pooled read-only connection on the blocking pool.
    async fn with_reader<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Path) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(&self.inner.readers);
        let permit = Arc::clone(&pool.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _span = span.enter();
            let conn = pool.take()?;
            let result = read(&conn, &pool.db_path);
            pool.put(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }

    /// An unfiltered read of up to `max` records from `from` (at least `half`
    /// of them committed), as two queries on two connections at once: the
    /// first `half` positions and the rest. The second part counts only if
    /// the first is complete, so the result is still a dense prefix.
    async fn read_split(
        &self,
        from: u64,
        half: usize,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Each part dense from its own start, as the mapped read checks it.
        split(from, half, max, |from, to, max, room| {
            self.read_rows(EVENT_COLUMNS, from, to, max, room, true, decode_event)
        })
        .await
    }

    /// Records with `from <= position <= to`, at most `max`, in position
    /// order, holes included: the chain verification reads with it, to
    /// report a missing record where it is.
    async fn read_range(
        &self,
        from: u64,
        to: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_rows(EVENT_COLUMNS, from, to, max, max, false, decode_event)
            .await
    }

    /// [`Self::read_range`] with each record handed to `map` where it is
    /// read; the positions must run densely from `from`.
    async fn read_range_mapped<T, F>(
        &self,
        from: u64,
        to: u64,
        max: usize,
        room: usize,
        parts: RecordParts,
        map: Arc<F>,
    ) -> Result<Vec<T>, StoreError>
    where
        T: Send + 'static,
        F: Fn(RecordRef<'_>) -> T + Send + Sync + 'static,
    {
        let columns = match parts {
            RecordParts::All => RECORD_COLUMNS,
            RecordParts::WithoutMetadata => RECORD_COLUMNS_WITHOUT_METADATA,
        };
        self.read_rows(columns, from, to, max, room, true, move |row, path| {
            record_ref(row, path).map(|record| map(record))
        })
        .await
    }

    /// The `columns` of the rows with `from <= position <= to`, at most
    /// `max`, in position order, each turned into a `T` by `each` as it is
    /// read; with `dense`, a hole in the positions from `from` is an error.
    /// The last one read is made durable before they are returned, in a
    /// list with room for `room` (a split read's first part makes room for
    /// the second, which is then appended without moving the first).
    #[allow(clippy::too_many_arguments)]
    async fn read_rows<T, F>(
        &self,
        columns: &'static str,
        from: u64,
        to: u64,
        max: usize,
        room: usize,
        dense: bool,
        each: F,
    ) -> Result<Vec<T>, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Row<'_>, &Path) -> Result<T, StoreError> + Send + 'static,
    {
        let durability = Arc::clone(&self.inner.durability);
        self.with_reader(move |conn, path| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {columns} FROM events \
                     WHERE position >= ?1 AND position <= ?2 ORDER BY position LIMIT ?3"
                ))
                .map_err(|e| sqlite_error(path, "prepare read", e))?;
            let mut rows = stmt
                .query(params![sql_int(from), sql_int(to), sql_int(max)])
                .map_err(|e| sqlite_error(path, "read", e))?;
            let mut read = Vec::with_capacity(room.max(max).min(VERIFY_BATCH_EVENTS));
            let mut last = None;
            while let Some(row) = rows.next().map_err(|e| sqlite_error(path, "read row", e))? {
                let position: i64 = row
                    .get(0)
                    .map_err(|e| sqlite_error(path, "read position", e))?;
                let position = u64::try_from(position).unwrap_or(0);
                let expected = from.saturating_add(read.len() as u64);
                if dense && position != expected {
                    return Err(missing_record(path, expected, position));
                }
                read.push(each(row, path)?);
                last = Some(position);
            }
            if let Some(last) = last {
                durability.ensure(last)?;
            }
            Ok(read)
        })
        .await
    }
}

/// A read of up to `max` records from `from` in two parts read at once
/// (`read(from, to, max, room)` reads one into a list with room for
/// `room`): the first `half` positions and the rest, which counts only if
/// the first part is complete. The first part's list has room for both.
async fn split<T, R, Fut>(from: u64, half: usize, max: usize, read: R) -> Result<Vec<T>, StoreError>
where
    R: Fn(u64, u64, usize, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, StoreError>>,
{
    let second_from = from.saturating_add(sql_int_u64(half));
    let (first, second) = tokio::join!(
        read(from, second_from - 1, half, max),
        read(second_from, u64::MAX, max - half, max - half),
    );
    let mut records = first?;
    if records.len() == half {
        records.extend(second?);
    }
    Ok(records)
}

#[async_trait]
impl EventStore for EmbeddedStore {
    #[tracing::instrument(skip_all, fields(stream_id = %stream, events = events.len()))]
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate::check_append(stream, &events)?;
        let (reply, result) = oneshot::channel();
        let request = AppendRequest {
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
        result.await.map_err(|_| StoreError::Closed)?
    }

    #[tracing::instrument(skip_all, fields(stream_id = %stream, from_version = from_version, max = max))]
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let stream = stream.to_owned();
        let durability = Arc::clone(&self.inner.durability);
        self.with_reader(move |conn, path| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events \
                     WHERE stream_id = ?1 AND stream_version >= ?2 \
                     ORDER BY stream_version LIMIT ?3"
                ))
                .map_err(|e| sqlite_error(path, "prepare read_stream", e))?;
            let rows = stmt
                .query(params![stream, sql_int(from_version), sql_int(max)])
                .map_err(|e| sqlite_error(path, "read_stream", e))?;
            durable_events(collect_events(rows, path, max)?, &durability)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(from_position = from_position, max = max))]
    async fn read_all(
        &self,
        from_position: u64,
        max: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let unfiltered = filter.event_types.is_empty() && filter.categories.is_empty();
        let from = from_position.max(1);
        let half = max / 2;
        if unfiltered
            && max >= SPLIT_READ_EVENTS_MIN
            && *self.inner.head.borrow() >= from.saturating_add(sql_int_u64(half))
        {
            return self.read_split(from, half, max).await;
        }
        let filter = filter.clone();
        let durability = Arc::clone(&self.inner.durability);
        self.with_reader(move |conn, path| {
            let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE position >= ?");
            let mut args: Vec<&dyn rusqlite::ToSql> = Vec::new();
            let from_arg = sql_int(from);
            args.push(&from_arg);
            push_in_list(&mut sql, &mut args, "event_type", &filter.event_types);
            push_in_list(&mut sql, &mut args, "category", &filter.categories);
            sql.push_str(" ORDER BY position LIMIT ?");
            let limit = sql_int(max);
            args.push(&limit);
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| sqlite_error(path, "prepare read_all", e))?;
            let rows = stmt
                .query(args.as_slice())
                .map_err(|e| sqlite_error(path, "read_all", e))?;
            let events = durable_events(collect_events(rows, path, max)?, &durability)?;
            if unfiltered {
                check_dense(from, &events, path)?;
            }
            debug_assert!(
                events
                    .iter()
                    .all(|e| filter.admits(&e.stream_id, &e.event_type))
            );
            Ok(events)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(from_position = from_position, max = max))]
    async fn read_all_mapped<T, F>(
        &self,
        from_position: u64,
        max: usize,
        parts: RecordParts,
        map: F,
    ) -> Result<Vec<T>, StoreError>
    where
        T: Send + 'static,
        F: Fn(RecordRef<'_>) -> T + Send + Sync + 'static,
    {
        if max == 0 {
            return Ok(Vec::new());
        }
        let from = from_position.max(1);
        let map = Arc::new(map);
        let half = max / 2;
        if max >= SPLIT_READ_EVENTS_MIN
            && *self.inner.head.borrow() >= from.saturating_add(sql_int_u64(half))
        {
            // As `read_split`, each half mapped by its own reader thread.
            return split(from, half, max, |from, to, max, room| {
                self.read_range_mapped(from, to, max, room, parts, Arc::clone(&map))
            })
            .await;
        }
        self.read_range_mapped(from, u64::MAX, max, max, parts, map)
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn head(&self) -> Result<Head, StoreError> {
        let durability = Arc::clone(&self.inner.durability);
        self.with_reader(move |conn, path| {
            let (position, hash) =
                read_head(conn).map_err(|e| sqlite_error(path, "read head", e))?;
            durability.ensure(position)?;
            Ok(Head { position, hash })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(from = from, to = ?to))]
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
        self.inner.head.clone()
    }
}

/// Appends ` AND column IN (?, …)` for a non-empty list.
fn push_in_list<'a>(
    sql: &mut String,
    args: &mut Vec<&'a dyn rusqlite::ToSql>,
    column: &str,
    values: &'a [String],
) {
    if values.is_empty() {
        return;
    }
    sql.push_str(" AND ");
    sql.push_str(column);
    sql.push_str(" IN (");
    for (i, value) in values.iter().enumerate() {
        sql.push_str(if i == 0 { "?" } else { ", ?" });
        args.push(value);
    }
    sql.push(')');
}

// ---------------------------------------------------------------------------
// Writer

struct AppendRequest {
    stream: String,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

/// Joins the writer thread when the store's last handle is dropped.
struct WriterThread(Option<std::thread::JoinHandle<()>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take()
            && handle.join().is_err()
        {
            tracing::error!("embedded writer thread panicked");
        }
    }
}

/// The writer thread's state: the only write connection, and the syncer
/// that makes its groups durable and answers their callers.
///
/// Field order matters: the syncer is dropped (and joined, after answering
/// every group handed to it) before the connection closes.
struct Writer {
    syncer: Syncer,
    conn: Connection,
    db_path: PathBuf,
    durability: Arc<Durability>,
    cache: WriterCache,
}

/// What the writer learned of the log in earlier groups: the head and the
/// versions of recently written streams. Valid only while no other
/// connection has committed, which `PRAGMA data_version` tells (it changes
/// exactly when another connection commits); dropped on any failed group.
#[derive(Debug, Default)]
struct WriterCache {
    data_version: Option<i64>,
    head: Option<(u64, [u8; 32])>,
    versions: HashMap<String, u64>,
}

/// Moves queued requests into `group` without waiting; `true` when the group
/// is full (a request that would overflow it is `carried` to the next group).
fn gather(
    requests: &mut mpsc::Receiver<AppendRequest>,
    group: &mut Vec<AppendRequest>,
    group_events: &mut usize,
    carried: &mut Option<AppendRequest>,
) -> bool {
    while *group_events < GROUP_COMMIT_EVENTS_MAX {
        match requests.try_recv() {
            Ok(request) if *group_events + request.events.len() > GROUP_COMMIT_EVENTS_MAX => {
                *carried = Some(request);
                return true;
            }
            Ok(request) => {
                *group_events += request.events.len();
                group.push(request);
            }
            Err(_) => return false,
        }
    }
    true
}

/// A group's head position and outcome per request, or an infrastructure
/// failure of the whole group.
type GroupOutcome = Result<(u64, Vec<Result<AppendResult, StoreError>>), StoreError>;

impl Writer {
    fn run(mut self, mut requests: mpsc::Receiver<AppendRequest>) {
        let mut group: Vec<AppendRequest> = Vec::new();
        let mut carried: Option<AppendRequest> = None;
        // Callers answered by the previous group typically submit again at
        // once; waiting briefly for about as many requests keeps groups (and
        // so throughput per fsync) large under steady concurrency.
        let mut previous_group_requests = 0usize;
        let gather_wait = Duration::from_micros(GROUP_GATHER_WAIT_MAX_US);
        loop {
            let first = match carried.take() {
                Some(request) => request,
                None => match requests.blocking_recv() {
                    Some(request) => request,
                    None => break,
                },
            };
            let mut group_events = first.events.len();
            group.push(first);
            let mut deadline = None;
            loop {
                let full = gather(&mut requests, &mut group, &mut group_events, &mut carried);
                // While a group waits for its fsync, its callers cannot
                // submit again: commit what is here, beside that fsync.
                if full || group.len() >= previous_group_requests || self.durability.syncing() {
                    break;
                }
                let deadline = *deadline.get_or_insert_with(|| Instant::now() + gather_wait);
                if Instant::now() >= deadline {
                    break;
                }
                std::thread::yield_now();
            }
            previous_group_requests = group.len();
            let outcome = if self.durability.failed() {
                Err(self.durability.failed_error())
            } else {
                self.commit_group(&group, group_events)
            };
            self.reply(&mut group, outcome);
        }
        tracing::debug!("embedded writer stopped");
    }

    /// Writes one group in one transaction.
    fn commit_group(&mut self, group: &[AppendRequest], group_events: usize) -> GroupOutcome {
        let _span = tracing::debug_span!(
            "group_commit",
            requests = group.len(),
            events = group_events
        )
        .entered();
        let outcome = self.try_commit_group(group);
        if outcome.is_err() {
            // The transaction rolled back: forget what it had counted on.
            self.cache = WriterCache::default();
        }
        outcome
    }

    fn try_commit_group(&mut self, group: &[AppendRequest]) -> GroupOutcome {
        let Writer {
            conn,
            db_path: path,
            cache,
            ..
        } = self;
        let path = &*path;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| sqlite_error(path, "begin", e))?;
        let data_version: i64 = tx
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .map_err(|e| sqlite_error(path, "read data_version", e))?;
        if cache.data_version != Some(data_version)
            || cache.versions.len() > STREAM_VERSIONS_CACHED_MAX
        {
            *cache = WriterCache {
                data_version: Some(data_version),
                ..WriterCache::default()
            };
        }
        let (mut position, mut prev_hash) = match cache.head {
            Some(cached) => cached,
            None => read_head(&tx).map_err(|e| sqlite_error(path, "read head", e))?,
        };
        let recorded_at_micros = chrono::Utc::now().timestamp_micros();
        let mut outcomes = Vec::with_capacity(group.len());
        for request in group {
            let outcome = apply_request(
                &tx,
                request,
                &mut cache.versions,
                &mut position,
                &mut prev_hash,
                recorded_at_micros,
            )
            .map_err(|e| sqlite_error(path, "append", e))?;
            outcomes.push(outcome);
        }
        tx.commit().map_err(|e| sqlite_error(path, "commit", e))?;
        cache.head = Some((position, prev_hash));
        Ok((position, outcomes))
    }

    fn reply(&self, group: &mut Vec<AppendRequest>, outcome: GroupOutcome) {
        match outcome {
            Ok((position, outcomes)) => {
                let replies = group
                    .drain(..)
                    .zip(outcomes)
                    .map(|(request, outcome)| (request.reply, outcome))
                    .collect();
                self.syncer.submit(Committed { position, replies });
            }
            Err(error) => {
                tracing::error!(%error, requests = group.len(), "group commit failed");
                let message = error.to_string();
                for request in group.drain(..) {
                    let _ = request.reply.send(Err(match &error {
                        StoreError::Corrupted { location, detail } => StoreError::Corrupted {
                            location: location.clone(),
                            detail: detail.clone(),
                        },
                        _ => StoreError::Unavailable(message.clone()),
                    }));
                }
            }
        }
    }
}

/// One request inside the group's transaction. The outer error is an
/// infrastructure failure (fails the group); the inner one is this request's
/// own rejection.
fn apply_request(
    tx: &Connection,
    request: &AppendRequest,
    versions: &mut HashMap<String, u64>,
    position: &mut u64,
    prev_hash: &mut [u8; 32],
    recorded_at_micros: i64,
) -> rusqlite::Result<Result<AppendResult, StoreError>> {
    let stream = request.stream.as_str();
    // A lone event is inserted first and its id looked up only if the insert
    // hits the event id's UNIQUE index (one index search instead of two; a
    // failed statement writes nothing). Several events have their ids looked
    // up first, so a request never has to undo part of itself. Either way a
    // stored id decides the outcome before the expected version does.
    let insert_first = request.events.len() == 1;
    if !insert_first && let Some(outcome) = check_retry(tx, request)? {
        return Ok(outcome);
    }
    let current = match versions.get(stream) {
        Some(&version) => version,
        None => stream_version(tx, stream)?,
    };
    if !request.expected.admits(current) {
        if insert_first && let Some(outcome) = check_retry(tx, request)? {
            return Ok(outcome);
        }
        return Ok(Err(StoreError::WrongExpectedVersion {
            stream: request.stream.clone(),
            expected: request.expected,
            actual: current,
        }));
    }
    let first_position = *position + 1;
    let mut version = current;
    let mut insert = tx.prepare_cached(INSERT_EVENT)?;
    for event in &request.events {
        let next_position = *position + 1;
        let next_version = version + 1;
        let hash = Canonical {
            position: next_position,
            stream_id: stream,
            stream_version: next_version,
            event_id: &event.event_id,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            recorded_at_micros,
            metadata: &event.metadata,
            payload: &event.payload,
        }
        .hash(prev_hash);
        let inserted = insert.execute(params![
            sql_int(next_position),
            stream,
            sql_int(next_version),
            event.event_id.as_bytes().as_slice(),
            event.event_type,
            event.schema_version,
            recorded_at_micros,
            &event.metadata[..],
            &event.payload[..],
            prev_hash.as_slice(),
            hash.as_slice(),
        ]);
        match inserted {
            Ok(_) => {}
            Err(e)
                if insert_first
                    && e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) =>
            {
                return match check_retry(tx, request)? {
                    Some(outcome) => Ok(outcome),
                    // Not the event id: a real failure.
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        }
        *position = next_position;
        version = next_version;
        *prev_hash = hash;
    }
    match versions.get_mut(stream) {
        Some(cached) => *cached = version,
        None => {
            versions.insert(request.stream.clone(), version);
        }
    }
    Ok(Ok(AppendResult {
        first_position,
        last_position: *position,
        stream_version: version,
    }))
}

/// If any of the request's event ids is already stored: the original result
/// when all of them are, in this stream, at consecutive versions and
/// positions, with identical content (an idempotent retry); otherwise
/// [`StoreError::EventIdReused`]. `None` when none is stored.
fn check_retry(
    tx: &Connection,
    request: &AppendRequest,
) -> rusqlite::Result<Option<Result<AppendResult, StoreError>>> {
    let mut lookup = tx.prepare_cached(SELECT_BY_EVENT_ID)?;
    let mut new_count = 0usize;
    // (position, version) of the request's first event if this is a retry.
    let mut base: Option<(u64, u64)> = None;
    // The first stored id that cannot be part of a retry of this very append.
    let mut reused: Option<StoreError> = None;
    // The first stored id, named if some other id of the request is new.
    let mut first_stored: Option<StoreError> = None;
    for (offset, event) in (0u64..).zip(&request.events) {
        let stored = lookup
            .query_row([event.event_id.as_bytes().as_slice()], |row| {
                let position = sql_u64(row.get(0)?);
                let stream_id: String = row.get(1)?;
                let version = sql_u64(row.get(2)?);
                let same_content = row.get_ref(3)?.as_str()? == event.event_type
                    && row.get::<_, u32>(4)? == event.schema_version
                    && row.get_ref(5)?.as_blob()? == &event.metadata[..]
                    && row.get_ref(6)?.as_blob()? == &event.payload[..];
                Ok((position, stream_id, version, same_content))
            })
            .optional()?;
        let Some((position, stream_id, version, same_content)) = stored else {
            new_count += 1;
            continue;
        };
        let (base_position, base_version) =
            *base.get_or_insert((position.wrapping_sub(offset), version.wrapping_sub(offset)));
        let in_place = stream_id == request.stream
            && position == base_position.wrapping_add(offset)
            && version == base_version.wrapping_add(offset);
        let error = StoreError::EventIdReused {
            event_id: event.event_id,
            stream: stream_id,
            version,
        };
        if reused.is_none() && !(same_content && in_place) {
            reused = Some(error);
        } else if first_stored.is_none() {
            first_stored = Some(error);
        }
    }
    let Some((base_position, base_version)) = base else {
        return Ok(None);
    };
    if let Some(error) = reused {
        return Ok(Some(Err(error)));
    }
    if new_count > 0 {
        // Some ids stored, some new: not a retry of one append.
        return Ok(first_stored.map(Err));
    }
    let last_offset = request.events.len() as u64 - 1;
    Ok(Some(Ok(AppendResult {
        first_position: base_position,
        last_position: base_position + last_offset,
        stream_version: base_version + last_offset,
    })))
}

fn stream_version(conn: &Connection, stream: &str) -> rusqlite::Result<u64> {
    let version: Option<i64> = conn
        .prepare_cached(SELECT_STREAM_VERSION)?
        .query_row([stream], |row| row.get(0))?;
    Ok(version.map_or(0, sql_u64))
}

// ---------------------------------------------------------------------------
// Readers

/// Read-only connections, at most [`READER_CONNECTIONS_MAX`] at once.
struct ReaderPool {
    db_path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReaderPool {
    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(conn) => Ok(conn),
            None => open_reader(&self.db_path),
        }
    }

    fn put(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < READER_CONNECTIONS_MAX
        {
            idle.push(conn);
        }
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| sqlite_error(path, "open reader", e))?;
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(|e| sqlite_error(path, "configure reader", e))?;
    conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES_MAX)
        .map_err(|e| sqlite_error(path, "configure reader", e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_LEN_MAX);
    Ok(conn)
}

/// `events` (in position order) once the last of them is durable: a record
/// committed but not yet fsynced is never handed out.
fn durable_events(
    events: Vec<RecordedEvent>,
    durability: &Durability,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if let Some(last) = events.last() {
        durability.ensure(last.position)?;
    }
    Ok(events)
}

/// Decodes up to `max` rows of [`EVENT_COLUMNS`].
fn collect_events(
    mut rows: rusqlite::Rows<'_>,
    path: &Path,
    max: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events = Vec::with_capacity(max.min(VERIFY_BATCH_EVENTS));
    while let Some(row) = rows.next().map_err(|e| sqlite_error(path, "read row", e))? {
        events.push(decode_event(row, path)?);
    }
    Ok(events)
}

fn decode_event(row: &Row<'_>, path: &Path) -> Result<RecordedEvent, StoreError> {
    let r = record_ref(row, path)?;
    let corrupt = |detail: String| StoreError::Corrupted {
        location: format!("{} position {}", path.display(), r.position),
        detail,
    };
    let hash_of = |i: usize| -> Result<[u8; 32], StoreError> {
        let bytes = row
            .get_ref(i)
            .map_err(|e| corrupt(format!("unreadable column: {e}")))?
            .as_blob()
            .map_err(|e| corrupt(format!("column {i}: {e}")))?;
        <[u8; 32]>::try_from(bytes)
            .map_err(|_| corrupt(format!("column {i}: hash of {} bytes, not 32", bytes.len())))
    };
    Ok(RecordedEvent {
        position: r.position,
        stream_id: r.stream_id.to_owned(),
        stream_version: r.stream_version,
        event_id: r.event_id,
        event_type: r.event_type.to_owned(),
        schema_version: r.schema_version,
        recorded_at: r.recorded_at,
        metadata: Bytes::copy_from_slice(r.metadata),
        payload: Bytes::copy_from_slice(r.payload),
        prev_hash: hash_of(9)?,
        hash: hash_of(10)?,
    })
}

/// A row of [`RECORD_COLUMNS`] (the first columns of [`EVENT_COLUMNS`]),
/// checked and borrowed from the row: the one place a stored row becomes a
/// record.
fn record_ref<'r>(row: &'r Row<'_>, path: &Path) -> Result<RecordRef<'r>, StoreError> {
    let raw_position: i64 = row
        .get(0)
        .map_err(|e| sqlite_error(path, "read position", e))?;
    let position = u64::try_from(raw_position).unwrap_or(0);
    let corrupt = |detail: String| StoreError::Corrupted {
        location: format!("{} position {raw_position}", path.display()),
        detail,
    };
    let column = |e: rusqlite::Error| corrupt(format!("unreadable column: {e}"));
    let value = |i: usize| row.get_ref(i).map_err(column);
    let blob = |i: usize| -> Result<&'r [u8], StoreError> {
        value(i)?
            .as_blob()
            .map_err(|e| corrupt(format!("column {i}: {e}")))
    };
    let text = |i: usize| -> Result<&'r str, StoreError> {
        value(i)?
            .as_str()
            .map_err(|e| corrupt(format!("column {i}: {e}")))
    };
    let event_id_bytes = blob(3)?;
    let event_id = Uuid::from_slice(event_id_bytes).map_err(|_| {
        corrupt(format!(
            "event id of {} bytes, not 16",
            event_id_bytes.len()
        ))
    })?;
    let recorded_at_micros: i64 = row.get(6).map_err(column)?;
    let recorded_at = DateTime::from_timestamp_micros(recorded_at_micros)
        .ok_or_else(|| corrupt(format!("commit time {recorded_at_micros} µs out of range")))?;
    let stream_version: i64 = row.get(2).map_err(column)?;
    Ok(RecordRef {
        position,
        stream_id: text(1)?,
        stream_version: u64::try_from(stream_version)
            .map_err(|_| corrupt(format!("stream version {stream_version}")))?,
        event_id,
        event_type: text(4)?,
        schema_version: row.get(5).map_err(column)?,
        recorded_at,
        metadata: blob(7)?,
        payload: blob(8)?,
    })
}

/// An unfiltered read must return positions `from`, `from + 1`, …: positions
/// are assigned densely at commit, so a hole means a record was removed.
fn check_dense(from: u64, events: &[RecordedEvent], path: &Path) -> Result<(), StoreError> {
    for (offset, event) in (0u64..).zip(events) {
        let expected = from.saturating_add(offset);
        if event.position != expected {
            return Err(missing_record(path, expected, event.position));
        }
    }
    Ok(())
}

/// A hole in the log: `expected` was next, `found` was read.
fn missing_record(path: &Path, expected: u64, found: u64) -> StoreError {
    StoreError::Corrupted {
        location: format!("{} position {expected}", path.display()),
        detail: format!("record missing: read position {found} next"),
    }
}

// ---------------------------------------------------------------------------
// Opening

fn configure_writer(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| sqlite_error(path, "configure", e);
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(err)?;
    // Takes effect only on a new (empty) database, before WAL mode is set.
    conn.pragma_update(None, "page_size", PAGE_BYTES)
        .map_err(err)?;
    // A negative cache size is in KiB.
    conn.pragma_update(None, "cache_size", -(WRITER_CACHE_BYTES_MAX / 1024))
        .map_err(err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{}: journal_mode is {mode}, WAL required",
            path.display()
        )));
    }
    // A commit writes the WAL without an fsync; the syncer fsyncs it before
    // any caller is answered (see `durable`), so an acknowledged append
    // survives power loss as with `FULL`. Checkpoints still fsync the WAL
    // before copying it and the database file after.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err)?;
    let page_bytes: i64 = conn
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .map_err(err)?;
    // An existing database keeps the page size it was created with.
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        WAL_BYTES_MAX / page_bytes.max(512),
    )
    .map_err(err)?;
    conn.pragma_update(None, "journal_size_limit", WAL_BYTES_MAX)
        .map_err(err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_LEN_MAX);
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| sqlite_error(path, "migrate", e);
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(err)?;
    let known = MIGRATIONS.len();
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > known {
        return Err(StoreError::Corrupted {
            location: path.display().to_string(),
            detail: format!("schema version {current} is newer than this build supports ({known})"),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", index + 1)
            .map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(schema_version = index + 1, "migrated embedded store");
    }
    Ok(())
}

/// Verifies the chain over the last [`OPEN_VERIFY_EVENTS`] records.
fn check_tail(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events ORDER BY position DESC LIMIT ?1"
        ))
        .map_err(|e| sqlite_error(path, "read tail", e))?;
    let window = OPEN_VERIFY_EVENTS + 1;
    let rows = stmt
        .query([sql_int(window)])
        .map_err(|e| sqlite_error(path, "read tail", e))?;
    let mut tail = collect_events(rows, path, OPEN_VERIFY_EVENTS as usize + 1)?;
    tail.reverse();
    let Some(first) = tail.first() else {
        return Ok(());
    };
    let (mut verifier, to_check) = if first.position == 1 {
        (Verifier::after(0, GENESIS), &tail[..])
    } else {
        (Verifier::after(first.position, first.hash), &tail[1..])
    };
    for record in to_check {
        if let Err(b) = verifier.check(record) {
            return Err(StoreError::Corrupted {
                location: format!("{} position {}", path.display(), b.position),
                detail: format!("the log's tail does not verify: {}", b.kind),
            });
        }
    }
    Ok(())
}

fn read_head(conn: &Connection) -> rusqlite::Result<(u64, [u8; 32])> {
    let head = conn
        .prepare_cached(SELECT_HEAD)?
        .query_row([], |row| {
            let position = sql_u64(row.get(0)?);
            let hash = <[u8; 32]>::try_from(row.get_ref(1)?.as_blob()?).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    1,
                    rusqlite::types::Type::Blob,
                    Box::new(e),
                )
            })?;
            Ok((position, hash))
        })
        .optional()?;
    Ok(head.unwrap_or((0, GENESIS)))
}

// ---------------------------------------------------------------------------
// Conversions

/// A `u64` bound as a SQLite integer; values past `i64::MAX` saturate (they
/// only occur as open-ended bounds).
fn sql_int<T: TryInto<i64>>(value: T) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// A count as a position offset.
fn sql_int_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// A stored non-negative integer (positions, versions); negative reads as 0,
/// which no valid record has, so verification reports it.
fn sql_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn sqlite_error(path: &Path, operation: &str, error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupted {
            location: path.display().to_string(),
            detail: format!("{operation}: {error}"),
        },
        _ => StoreError::Unavailable(format!("{operation} {}: {error}", path.display())),
    }
}

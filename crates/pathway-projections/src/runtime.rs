//! The projector: keeps one department's read model current from the log.
//!
//! # Exactly-once effect
//!
//! A projector reads its checkpoint (the last position applied, 0 when new),
//! reads the log from the next position in order, gives every event to the
//! projection (`view`, then `apply` for the events the department may see) and
//! writes the batch's rows **and** the new checkpoint (the batch's last
//! position, whether or not any of its events was visible) in one transaction:
//! one SQLite transaction in the model's own database file, or one PostgreSQL
//! transaction in the model's own schema. A crash before the commit loses the
//! whole batch, rows and checkpoint together, and the next run reads it again;
//! a crash after it finds the checkpoint past the batch. No event is lost or
//! applied twice.
//!
//! Each batch transaction first reads the stored checkpoint (locked: `BEGIN
//! IMMEDIATE` in SQLite, `FOR UPDATE` in PostgreSQL) and compares it with the
//! one the projector last wrote. If another projector (or a rebuild swap)
//! moved it, the batch is rolled back and the projector resynchronises from
//! the stored checkpoint instead of applying events twice. An idle follower
//! checks its checkpoint every poll interval too, so a model swapped in by a
//! rebuild is brought up to date without waiting for the next event.
//!
//! The log needs no safe horizon here: the store assigns positions densely in
//! commit order and `read_all` never returns an event above a hole, so reading
//! "from checkpoint + 1" cannot skip an event that commits late.
//!
//! # Pipeline
//!
//! The calling task reads the log ([`PROJECTOR_READ_EVENTS_MAX`] events per
//! read; up to [`PROJECTOR_READS_AHEAD`] reads in flight, each decoded by
//! `decode_read` on the blocking pool beside the next read) and sends each
//! read over a bounded channel
//! ([`PROJECTOR_CHANNEL_READS_MAX`]) to a writer on its own OS thread
//! (`pathway-projector-<name>`) that owns the read-model connection: the
//! projection code and the synchronous `postgres`/`rusqlite` clients never run
//! on a runtime thread. The writer groups reads into one transaction of at
//! most [`PROJECTOR_BATCH_EVENTS_MAX`] events, and stops adding to it after
//! [`PROJECTOR_BATCH_TIME_MAX_MS`]: a follower takes the reads already
//! waiting, a catch-up waits for the reads still to come up to its target.
//! A rebuild's batches are larger ([`ProjectorOptions::rebuild`]): its
//! fresh storage is read by nobody until the swap.
//!
//! [`catch_up_many`], [`rebuild_many`] and [`follow_many_with`] run one
//! reader for several models: each read is decoded once and sent to every
//! model's writer, which skips what its checkpoint already covers. The
//! last writer done with a read frees it on the blocking pool, off its own
//! path.
//!
//! Inside a batch the projection's rows go through a write-back cache
//! (`cache`): reads are served from it, writes coalesced per row and flushed
//! in table and key order just before the checkpoint is written, in the
//! same transaction. Rows the cache knows to be absent from storage (a model
//! projected from position 1) are inserted, not upserted. PostgreSQL flushes
//! write each table with one statement per write shape, the rows passed as
//! arrays (`unnest`); SQLite flushes with multi-row statements of up to
//! [`SQLITE_FLUSH_ROWS_MAX`] rows, into `WITHOUT ROWID` tables (one B-tree
//! per table, ordered by its key).
//!
//! # Storage
//!
//! [`ReadStore::Sqlite`]: one database file per model, `<dir>/<name>.db`
//! (WAL, `synchronous=FULL`), holding its tables and a one-row `checkpoint`
//! table, so one SQLite transaction covers both. A rebuild writes
//! `<dir>/<name>.rebuild.db` without fsyncs and without a write-ahead log
//! (`synchronous=OFF`, `journal_mode=MEMORY`: the file is only ever read by
//! its swap, which copies it into the live file in one durable transaction,
//! and a crash leaves nothing the next rebuild keeps).
//! [`ReadStore::Postgres`]: one schema per model, named after it, holding
//! its tables and `<name>.checkpoint`, so a department's role can be
//! granted exactly its own schema. Table DDL is generated from the static
//! [`Table`] definitions; identifiers come only from those definitions and
//! are quoted anyway. Key
//! columns are `NOT NULL`; integer value columns default to 0 and, like the
//! others, may be set to NULL (an erasure), which `add` counts as 0. Text
//! columns use the `C` collation in PostgreSQL so both backends order rows by
//! key bytewise.
//!
//! # Rebuild
//!
//! [`rebuild`] projects the whole log from position 1 into fresh storage
//! (`<dir>/<name>.rebuild.db`, schema `<name>_rebuild`) while the current
//! model keeps serving, then swaps it in atomically:
//!
//! - PostgreSQL: one transaction locks the old checkpoint (waiting for an
//!   in-flight batch of a running projector), copies the old schema's and
//!   tables' grants to the new ones (so department roles keep their access),
//!   and renames `<name>` to `<name>_retired` and `<name>_rebuild` to
//!   `<name>`. The retired schema is dropped in a second transaction, with a
//!   lock timeout: dropping it in the swap transaction would make the swap
//!   wait for every reader of the old tables (and queue new readers behind
//!   it). A retired schema left by a timeout is dropped by the next rebuild.
//! - SQLite: the rebuilt file is attached to the model's file and, in one
//!   transaction, the old tables are dropped and recreated from the rebuilt
//!   ones. This deviates from renaming the rebuilt file over the old one:
//!   renaming a WAL database that other connections have open is unsafe (their
//!   `-wal`/`-shm` files stay under the old name and would be replayed into,
//!   or deleted from under, the new file). With the copy, readers that began
//!   a read transaction before the swap keep reading the old model from their
//!   WAL snapshot, the file name never changes, and the swap is one durable
//!   commit. The copy costs one extra write of the rows.
//!
//! A projector running during a rebuild finds its checkpoint moved at its
//! next batch and resynchronises from the rebuilt model's checkpoint.
//!
//! # Fault injection
//!
//! [`ProjectorOptions::before_checkpoint`] (hidden from the docs) is called
//! inside every batch transaction after the rows are written and before the
//! checkpoint is; returning an error rolls the batch back, and blocking there
//! lets a test kill the process mid-batch.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pathway_domain::pb;
use pathway_store::limits::SUBSCRIPTION_POLL_INTERVAL_MS;
use pathway_store::{EventStore, ReadFilter, RecordParts, RecordRef};
use tokio::sync::{mpsc, oneshot, watch};

use crate::model::{
    Column, ColumnType, ProjectedEvent, Projection, ProjectionError, Table, Tx, Value,
};
use crate::views;

mod cache;

use cache::{CachedTx, RowCache};

/// Events one read of the log returns at most.
pub const PROJECTOR_READ_EVENTS_MAX: usize = 4_000;
/// Events one batch transaction applies at most.
pub const PROJECTOR_BATCH_EVENTS_MAX: usize = 100_000;
/// A batch transaction takes no further reads after being open this long.
pub const PROJECTOR_BATCH_TIME_MAX_MS: u64 = 1_000;
/// Events one batch of a rebuild applies at most ([`ProjectorOptions::rebuild`]).
pub const REBUILD_BATCH_EVENTS_MAX: usize = 1_000_000;
/// A rebuild's batch takes no further reads after being open this long.
pub const REBUILD_BATCH_TIME_MAX_MS: u64 = 60_000;
/// Reads waiting between the log reader and the writer thread.
pub const PROJECTOR_CHANNEL_READS_MAX: usize = 8;
/// Log reads (each decoded on the blocking pool) in flight ahead of the one
/// being handed to the writers.
pub const PROJECTOR_READS_AHEAD: usize = 3;
/// Consecutive resynchronisations (checkpoint moved by someone else) that do
/// not find the checkpoint further ahead than the previous one before a
/// projector gives up.
pub const PROJECTOR_RESYNCS_MAX: u32 = 16;
/// Wait for a SQLite lock held by another connection.
pub const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
/// Pause between attempts to switch a new SQLite model to WAL while another
/// connection holds its lock (within [`SQLITE_BUSY_TIMEOUT_MS`]).
pub const SQLITE_BUSY_RETRY_PAUSE_MS: u64 = 5;
/// Page cache of a SQLite model connection that writes (KiB).
pub const SQLITE_WRITER_CACHE_KIB: i64 = 32 * 1024;
/// WAL pages of a SQLite model after which a commit checkpoints them into
/// the database file (4 KiB pages: 64 MiB).
pub const SQLITE_WRITER_WAL_AUTOCHECKPOINT_PAGES: i64 = 16_384;
/// Prepared statements cached per SQLite connection.
pub const SQLITE_STATEMENT_CACHE_LEN_MAX: usize = 256;
/// Bytes of a rebuilt model file its swap maps into memory to read it (the
/// rest, if any, is read with read calls).
pub const SQLITE_SWAP_MMAP_BYTES_MAX: i64 = 1 << 30;
/// Wait to open a PostgreSQL connection.
pub const PG_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Wait for the locks of a rebuild swap (the old checkpoint, the schemas).
pub const PG_SWAP_LOCK_TIMEOUT_MS: u64 = 30_000;
/// Wait for readers of the old model before giving up on dropping it (it is
/// then dropped by the next rebuild).
pub const PG_RETIRED_DROP_LOCK_TIMEOUT_MS: u64 = 5_000;
/// Prepared statements cached per PostgreSQL connection.
pub const PG_STATEMENT_CACHE_LEN_MAX: usize = 256;
/// Rows a projector's cache holds (read, or written and not yet flushed)
/// before it flushes them mid-batch and forgets them.
pub const PROJECTOR_CACHE_ROWS_MAX: usize = 200_000;
/// [`PROJECTOR_CACHE_ROWS_MAX`] of a rebuild ([`ProjectorOptions::rebuild`]),
/// whose one batch holds every row it writes until the end: the DPF
/// model's rows of a 100,000-person province fit (about 500,000), ~150 MB a
/// model at most.
pub const REBUILD_CACHE_ROWS_MAX: usize = 500_000;
/// Key fingerprints a projector that started from an empty model keeps to
/// know which rows are absent without looking them up (4 bytes each, about
/// 10 with the set's spare room: at most ~80 MiB a model). Past it, rows
/// not in the cache are looked up.
pub const PROJECTOR_LEDGER_KEYS_MAX: usize = 8_000_000;
/// Rows one multi-row PostgreSQL statement of a flush writes at most.
pub const PG_FLUSH_ROWS_MAX: usize = 10_000;
/// Rows one multi-row SQLite upsert of a flush writes at most (rows left
/// over are written 16 at a time, then one at a time).
pub const SQLITE_FLUSH_ROWS_MAX: usize = 128;
/// Most rows one page of [`query_page`] returns.
pub const QUERY_PAGE_ROWS_MAX: usize = 10_000;

/// Name of the checkpoint table in every model.
const CHECKPOINT_TABLE: &str = "checkpoint";
/// Longest model name (a schema name must fit PostgreSQL's 63 bytes with the
/// `_rebuild`/`_retired` suffixes).
const MODEL_NAME_BYTES_MAX: usize = 48;

/// Where read models live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadStore {
    /// One SQLite database per model: `<dir>/<name>.db`.
    Sqlite { dir: PathBuf },
    /// One schema per model in this PostgreSQL database.
    Postgres { url: String },
}

/// How far a model is behind the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Last position applied to the model (0 = none).
    pub checkpoint: u64,
    /// Last position of the log.
    pub head_position: u64,
    pub positions_behind: u64,
    /// Commit time of the head minus that of the checkpointed event (of
    /// position 1 when nothing is applied yet); 0 when caught up.
    pub seconds_behind: f64,
}

/// Called inside a batch transaction after its rows are written and before
/// its checkpoint is, with the batch's first and last positions.
pub type BeforeCheckpoint = Arc<dyn Fn(u64, u64) -> Result<(), ProjectionError> + Send + Sync>;

/// Called by a catch-up or rebuild each time a read of the log has been
/// handed to the models, with the last position read and the position the
/// run goes to: how far a long run has come. (The models apply what was
/// read within [`PROJECTOR_CHANNEL_READS_MAX`] reads of it.)
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Tuning of one projector run. `Default` uses the named limits.
#[derive(Clone)]
pub struct ProjectorOptions {
    /// Events per read of the log.
    pub read_events_max: usize,
    /// Events per batch transaction.
    pub batch_events_max: usize,
    /// A batch takes no further reads after being open this long.
    pub batch_time_max_ms: u64,
    /// Rows each writer's cache holds (see the cache's docs).
    pub cache_rows_max: usize,
    /// Opens personal fields before the views are made; without one, every
    /// sealed field reads as absent.
    pub keyring: Option<pathway_engine::Keyring>,
    /// Told how far a catch-up or rebuild has read (not called while
    /// following the log).
    pub progress: Option<Progress>,
    /// Fault injection for tests; see the module docs.
    #[doc(hidden)]
    pub before_checkpoint: Option<BeforeCheckpoint>,
}

impl Default for ProjectorOptions {
    fn default() -> Self {
        ProjectorOptions {
            read_events_max: PROJECTOR_READ_EVENTS_MAX,
            batch_events_max: PROJECTOR_BATCH_EVENTS_MAX,
            batch_time_max_ms: PROJECTOR_BATCH_TIME_MAX_MS,
            cache_rows_max: PROJECTOR_CACHE_ROWS_MAX,
            keyring: None,
            progress: None,
            before_checkpoint: None,
        }
    }
}

impl ProjectorOptions {
    /// The defaults for a rebuild: batches of up to
    /// [`REBUILD_BATCH_EVENTS_MAX`] events or [`REBUILD_BATCH_TIME_MAX_MS`],
    /// and a cache of [`REBUILD_CACHE_ROWS_MAX`] rows.
    /// A batch commit is what makes a live model's progress durable and
    /// visible; a rebuild's fresh storage is read by nobody and discarded
    /// when a rebuild starts, so a commit there buys nothing, and costs a
    /// write of every row the batch changed (a row changed in ten batches is
    /// written ten times, and each time as an upsert, since it is stored).
    /// The same goes for a cache trimmed within a batch: its rows are
    /// written, dropped, read back when an event touches them again, and
    /// written again at the commit.
    pub fn rebuild() -> Self {
        ProjectorOptions {
            batch_events_max: REBUILD_BATCH_EVENTS_MAX,
            batch_time_max_ms: REBUILD_BATCH_TIME_MAX_MS,
            cache_rows_max: REBUILD_CACHE_ROWS_MAX,
            ..ProjectorOptions::default()
        }
    }
}

impl std::fmt::Debug for ProjectorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectorOptions")
            .field("read_events_max", &self.read_events_max)
            .field("batch_events_max", &self.batch_events_max)
            .field("batch_time_max_ms", &self.batch_time_max_ms)
            .field("cache_rows_max", &self.cache_rows_max)
            .field("progress", &self.progress.is_some())
            .field("before_checkpoint", &self.before_checkpoint.is_some())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------

/// Applies every event up to the log's head at the time of the call and
/// returns the model's checkpoint.
pub async fn catch_up<S: EventStore + Clone>(
    store: &S,
    target: &ReadStore,
    projection: Arc<dyn Projection>,
) -> Result<u64, ProjectionError> {
    catch_up_with(store, target, projection, &ProjectorOptions::default()).await
}

/// [`catch_up`] with explicit options.
#[tracing::instrument(skip_all, fields(projection = projection.name()))]
pub async fn catch_up_with<S: EventStore + Clone>(
    store: &S,
    target: &ReadStore,
    projection: Arc<dyn Projection>,
    options: &ProjectorOptions,
) -> Result<u64, ProjectionError> {
    let location = Location::live(target, projection.name())?;
    let head = store.head().await?.position;
    run(
        store,
        &location,
        &projection,
        options,
        Until::Position(head),
    )
    .await
}

/// [`catch_up`] of several models at once: the log is read and decoded once
/// and every event given to each model's writer (one thread and connection
/// per model, each with its own checkpoint and batch transactions, exactly
/// as [`catch_up`]). Returns the models' checkpoints, in order. A model
/// whose checkpoint is moved by another writer meanwhile is caught up on
/// its own afterwards.
pub async fn catch_up_many<S: EventStore + Clone>(
    store: &S,
    target: &ReadStore,
    projections: &[Arc<dyn Projection>],
) -> Result<Vec<u64>, ProjectionError> {
    catch_up_many_with(store, target, projections, &ProjectorOptions::default()).await
}

/// [`catch_up_many`] with explicit options.
#[tracing::instrument(skip_all, fields(projections = projections.len()))]
pub async fn catch_up_many_with<S: EventStore + Clone>(
    store: &S,
    target: &ReadStore,
    projections: &[Arc<dyn Projection>],
    options: &ProjectorOptions,
) -> Result<Vec<u64>, ProjectionError> {
    assert!(options.read_events_max > 0 && options.batch_events_max > 0);
    let models = live_models(target, projections)?;
    let head = store.head().await?.position;
    let started = Instant::now();
    let (checkpoints, applied) = project_many(store, &models, options, head).await?;
    let elapsed = started.elapsed().as_secs_f64();
    tracing::info!(
        head,
        model_events = applied,
        model_events_per_second = (applied as f64 / elapsed.max(1e-9)) as u64,
        "projectors caught up"
    );
    Ok(checkpoints)
}

/// Brings `models` up to `head` with one shared reader (models stopped
/// short are caught up on their own). Returns their checkpoints and the
/// events the shared run applied over all models.
async fn project_many<S: EventStore + Clone>(
    store: &S,
    models: &[Model],
    options: &ProjectorOptions,
    head: u64,
) -> Result<(Vec<u64>, u64), ProjectionError> {
    let mut until = Until::Position(head);
    let (results, read_result) = pipeline_many(store, models, options, &mut until).await;
    let mut checkpoints = Vec::with_capacity(models.len());
    let mut applied = 0;
    for (model, result) in models.iter().zip(results) {
        checkpoints.push(match result {
            Ok((checkpoint, events)) if checkpoint >= head => {
                applied += events;
                checkpoint
            }
            // Stopped short (its checkpoint moved, or the shared reader
            // stopped): catch it up on its own.
            Ok(_) | Err(PipelineError::Moved { .. }) => {
                run(
                    store,
                    &model.location,
                    &model.projection,
                    options,
                    Until::Position(head),
                )
                .await?
            }
            Err(PipelineError::Failed(e)) => return Err(e),
        });
    }
    if let Err(PipelineError::Failed(e)) = read_result
        && checkpoints.iter().any(|c| *c < head)
    {
        return Err(e);
    }
    Ok((checkpoints, applied))
}

/// Catches up, then applies new events as they are committed until
/// `shutdown` becomes `true` (or its sender is dropped). Every batch handed to
/// the writer is committed, checkpoint included, before this returns the
/// final checkpoint.
pub async fn follow<S: EventStore + Clone>(
    store: &S,
    target: &ReadStore,
    projection: Arc<dyn Projection>,
    shutdown: watch::Receiver<bool>,
) -> Result<u64, ProjectionError> {
    follow_with(
        store,
        target,
        projection,
        shutdown,
        &ProjectorOptions::default(),
    )
    .await
}

/// [`follow`] with explicit options.
#[tracing::instrument(skip_all, fields(projection = projection.name()))]
pub async fn follow_with<S: EventStore + Clone>(
    store: &S,
    target: &ReadStore,
    projection: Arc<dyn Projection>,
    shutdown: watch::Receiver<bool>,
    options: &ProjectorOptions,
) -> Result<u64, ProjectionError> {
    let location = Location::live(target, projection.name())?;
    run(
        store,
        &location,
        &projection,
        options,
        Until::Shutdown(shutdown),
    )
    .await
}

/// A projector's resynchronisations after finding its checkpoint moved by
/// another writer. A checkpoint found further ahead than the time before
/// is progress (another writer advancing the model, a rebuild's swap); one
/// that is not counts, and past [`PROJECTOR_RESYNCS_MAX`] in a row the
/// projector gives up.
#[derive(Debug, Default, Clone)]
pub struct Resyncs {
    last_found: Option<u64>,
    in_a_row: u32,
}

impl Resyncs {
    /// Notes that `model`'s checkpoint was found at `found` where
    /// `expected`; the resynchronisations in a row, or why to give up.
    pub fn moved(
        &mut self,
        model: &str,
        expected: u64,
        found: u64,
    ) -> Result<u32, ProjectionError> {
        self.in_a_row = if self.last_found.is_none_or(|last| found > last) {
            1
        } else {
            self.in_a_row + 1
        };
        self.last_found = Some(found);
        if self.in_a_row > PROJECTOR_RESYNCS_MAX {
            return Err(ProjectionError::Storage(format!(
                "read model {model}: checkpoint keeps moving under the projector \
                 (expected {expected}, found {found}): is another projector running?"
            )));
        }
        Ok(self.in_a_row)
    }
}

/// How one model of a [`follow_many_with`] run ended.
#[derive(Debug)]
pub enum Followed {
    /// Stopped at this checkpoint, every batch committed: asked to stop, or
    /// another model of the run ended.
    Stopped(u64),
    /// Another writer moved its checkpoint (a rebuild's swap): a new run
    /// takes it from there (see [`Resyncs`]).
    Moved { expected: u64, found: u64 },
    /// It failed; its checkpoint is where its last committed batch left it.
    Failed(ProjectionError),
}

/// [`follow_with`] of several models with one reader: each new event is
/// read, decoded and its personal fields opened once for all of them (as
/// [`catch_up_many`] does up to a position), then given to each model's
/// writer. Runs until `shutdown` turns true or one model ends (fails, or
/// finds its checkpoint moved); the others then stop at their checkpoints,
/// so a caller can start another run, with that one or without it.
/// Returns how each model ended, in order; `Err` when the shared reader
/// failed (every model stopped at its checkpoint).
#[tracing::instrument(skip_all, fields(projections = projections.len()))]
pub async fn follow_many_with<S: EventStore + Clone>(
    store: &S,
    target: &ReadStore,
    projections: &[Arc<dyn Projection>],
    shutdown: watch::Receiver<bool>,
    options: &ProjectorOptions,
) -> Result<Vec<Followed>, ProjectionError> {
    assert!(options.read_events_max > 0 && options.batch_events_max > 0);
    let models = live_models(target, projections)?;
    let mut until = Until::FirstEnd(shutdown);
    let (results, read_result) = pipeline_many(store, &models, options, &mut until).await;
    if let Err(PipelineError::Failed(e)) = read_result {
        return Err(e);
    }
    Ok(results
        .into_iter()
        .map(|result| match result {
            Ok((checkpoint, _)) => Followed::Stopped(checkpoint),
            Err(PipelineError::Moved { expected, found }) => Followed::Moved { expected, found },
            Err(PipelineError::Failed(e)) => Followed::Failed(e),
        })
        .collect())
}

/// Projects the whole log (up to the head at the time of the call) into
/// fresh storage and swaps it in atomically for the current model, which
/// keeps serving until then. Returns the new model's checkpoint.
#[tracing::instrument(skip_all, fields(projection = projection.name()))]
pub async fn rebuild<S: EventStore + Clone>(
    store: &S,
    target: &ReadStore,
    projection: Arc<dyn Projection>,
) -> Result<u64, ProjectionError> {
    let live = Location::live(target, projection.name())?;
    let fresh = Location::rebuild(target, projection.name())?;
    {
        let fresh = fresh.clone();
        blocking(move || fresh.discard()).await?;
    }
    let head = store.head().await?.position;
    let options = ProjectorOptions::rebuild();
    let checkpoint = run(store, &fresh, &projection, &options, Until::Position(head)).await?;
    let started = Instant::now();
    {
        let projection = Arc::clone(&projection);
        blocking(move || swap(&live, &fresh, projection.as_ref())).await?;
    }
    tracing::info!(
        checkpoint,
        swap_ms = started.elapsed().as_millis() as u64,
        "rebuilt model swapped in"
    );
    Ok(checkpoint)
}

/// [`rebuild`] of several models at once: the log is read and decoded once
/// for all of them (as [`catch_up_many`]), each into its fresh storage, and
/// each rebuilt model is then swapped in for its current one. Returns the
/// new models' checkpoints, in order.
pub async fn rebuild_many<S: EventStore + Clone>(
    store: &S,
    target: &ReadStore,
    projections: &[Arc<dyn Projection>],
) -> Result<Vec<u64>, ProjectionError> {
    rebuild_many_with(store, target, projections, &ProjectorOptions::rebuild()).await
}

/// [`rebuild_many`] with explicit options.
#[tracing::instrument(skip_all, fields(projections = projections.len()))]
pub async fn rebuild_many_with<S: EventStore + Clone>(
    store: &S,
    target: &ReadStore,
    projections: &[Arc<dyn Projection>],
    options: &ProjectorOptions,
) -> Result<Vec<u64>, ProjectionError> {
    let mut lives = Vec::with_capacity(projections.len());
    let mut models = Vec::with_capacity(projections.len());
    for projection in projections {
        lives.push(Location::live(target, projection.name())?);
        let fresh = Location::rebuild(target, projection.name())?;
        {
            let fresh = fresh.clone();
            blocking(move || fresh.discard()).await?;
        }
        models.push(Model {
            location: fresh,
            projection: Arc::clone(projection),
        });
    }
    let head = store.head().await?.position;
    let started = Instant::now();
    let (checkpoints, applied) = project_many(store, &models, options, head).await?;
    let projected = started.elapsed();
    // The swaps touch one model each: run them side by side.
    let swaps: Vec<_> = lives
        .into_iter()
        .zip(&models)
        .map(|(live, model)| {
            let (fresh, projection) = (model.location.clone(), Arc::clone(&model.projection));
            tokio::task::spawn_blocking(move || swap(&live, &fresh, projection.as_ref()))
        })
        .collect();
    for swapped in swaps {
        swapped
            .await
            .map_err(|e| ProjectionError::Storage(format!("read model task failed: {e}")))??;
    }
    tracing::info!(
        head,
        model_events = applied,
        projected_ms = projected.as_millis() as u64,
        swap_ms = (started.elapsed() - projected).as_millis() as u64,
        events_per_second = (head as f64 / started.elapsed().as_secs_f64().max(1e-9)) as u64,
        "rebuilt models swapped in"
    );
    Ok(checkpoints)
}

/// How far `model` is behind the log.
pub async fn lag<S: EventStore>(
    store: &S,
    target: &ReadStore,
    model: &str,
) -> Result<Lag, ProjectionError> {
    let location = Location::live(target, model)?;
    let stored = blocking(move || location.read_checkpoint()).await?;
    let head = store.head().await?.position;
    let (checkpoint, checkpoint_at_us) = stored.unwrap_or((0, None));
    let positions_behind = head.saturating_sub(checkpoint);
    let mut seconds_behind = 0.0;
    if positions_behind > 0 {
        let head_at = recorded_at(store, head).await?;
        let from_at = match checkpoint_at_us {
            Some(us) if checkpoint > 0 => DateTime::<Utc>::from_timestamp_micros(us),
            _ => recorded_at(store, checkpoint.max(1)).await?,
        };
        if let (Some(head_at), Some(from_at)) = (head_at, from_at) {
            let micros = (head_at - from_at).num_microseconds().unwrap_or(i64::MAX);
            seconds_behind = micros.max(0) as f64 / 1e6;
        }
    }
    Ok(Lag {
        checkpoint,
        head_position: head,
        positions_behind,
        seconds_behind,
    })
}

/// The rows of `table` in `model` whose columns equal the `filters` (a
/// `Value::Null` filter matches NULL), every column key first, ordered by
/// key. An absent model has no rows.
pub fn query(
    target: &ReadStore,
    model: &str,
    table: &Table,
    filters: &[(&str, Value)],
) -> Result<Vec<Vec<Value>>, ProjectionError> {
    let location = Location::live(target, model)?;
    let selection = Selection::equal(typed_filters(table, filters)?);
    let table = *table;
    off_runtime(move || location.query(&table, &selection))
}

/// One page of a table: rows in key order, and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub rows: Vec<Vec<Value>>,
    /// The key of the last row, when more rows follow it (pass it as
    /// `after` for the next page); `None` on the last page.
    pub next: Option<Vec<Value>>,
}

/// Rows of `table` in `model` that [`query`] would return, but only those
/// whose key comes after `after` (a full key, in key column order; from the
/// first row when `None`), at most `limit` (1 to [`QUERY_PAGE_ROWS_MAX`]).
/// Each page is one indexed range read, however large the table.
pub fn query_page(
    target: &ReadStore,
    model: &str,
    table: &Table,
    filters: &[(&str, Value)],
    after: Option<&[Value]>,
    limit: usize,
) -> Result<Page, ProjectionError> {
    check_page_limit(limit)?;
    let location = Location::live(target, model)?;
    let selection = Selection {
        after: match after {
            None => Vec::new(),
            Some(key) => typed_key(table, key)?,
        },
        limit: Some(limit + 1),
        ..Selection::equal(typed_filters(table, filters)?)
    };
    let table = *table;
    let mut rows = off_runtime(move || location.query(&table, &selection))?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|row| row[..table.key.len()].to_vec())
    } else {
        None
    };
    Ok(Page { rows, next })
}

/// Rows whose text column among `columns` (any of them) starts with
/// `prefix`: a case list's search box.
#[derive(Debug, Clone, Copy)]
pub struct Search<'a> {
    pub columns: &'a [&'a str],
    pub prefix: &'a str,
}

/// Rows of `table` in `model` matching `filters` (and `search`), in key
/// order: how many there are, and those from `offset` on, at most `limit`
/// (1 to [`QUERY_PAGE_ROWS_MAX`]). Counted and selected by the database, so
/// a page of a large table costs one page of rows in memory. (A deep
/// `offset` walks past the rows before it; for reading a whole table, use
/// [`query_page`].)
pub fn search_page(
    target: &ReadStore,
    model: &str,
    table: &Table,
    filters: &[(&str, Value)],
    search: Option<Search<'_>>,
    offset: usize,
    limit: usize,
) -> Result<(u64, Vec<Vec<Value>>), ProjectionError> {
    check_page_limit(limit)?;
    let location = Location::live(target, model)?;
    let search = match search {
        None => None,
        Some(Search { columns, prefix }) => {
            let columns = columns
                .iter()
                .map(|name| match column_of(table, name)? {
                    Column {
                        name,
                        ty: ColumnType::Text,
                    } => Ok(name),
                    _ => Err(ProjectionError::Storage(format!(
                        "search column {}.{name} is not text",
                        table.name
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some((columns, prefix.to_owned()))
        }
    };
    let selection = Selection {
        search,
        limit: Some(limit),
        // Both databases take a signed 64-bit offset.
        offset: offset.min(i64::MAX as usize),
        ..Selection::equal(typed_filters(table, filters)?)
    };
    let table = *table;
    off_runtime(move || location.count_and_query(&table, &selection))
}

/// A page holds 1 to [`QUERY_PAGE_ROWS_MAX`] rows.
fn check_page_limit(limit: usize) -> Result<(), ProjectionError> {
    if (1..=QUERY_PAGE_ROWS_MAX).contains(&limit) {
        Ok(())
    } else {
        Err(ProjectionError::Storage(format!(
            "page size {limit}: must be 1 to {QUERY_PAGE_ROWS_MAX}"
        )))
    }
}

/// Checks that `key` is a full key of `table` (one value of the right type
/// per key column), as [`query_page`] takes it.
pub fn check_full_key(table: &Table, key: &[Value]) -> Result<(), ProjectionError> {
    typed_key(table, key).map(drop)
}

/// `key` as a full key of `table`, each value checked against its column.
fn typed_key(
    table: &Table,
    key: &[Value],
) -> Result<Vec<(&'static str, ColumnType, Value)>, ProjectionError> {
    if key.len() != table.key.len() {
        return Err(ProjectionError::Storage(format!(
            "a key of {} has {} values, not {}",
            table.name,
            table.key.len(),
            key.len()
        )));
    }
    table
        .key
        .iter()
        .zip(key)
        .map(|(column, value)| {
            if fits(column.ty, value, true) {
                Ok((column.name, column.ty, value.clone()))
            } else {
                Err(ProjectionError::Storage(format!(
                    "key column {}.{} ({:?}) cannot hold {value:?}",
                    table.name, column.name, column.ty
                )))
            }
        })
        .collect()
}

/// How many rows of `table` in `model` [`query`] would return, counted by
/// the database (a summary of a large table without reading it). An absent
/// model has none.
pub fn count(
    target: &ReadStore,
    model: &str,
    table: &Table,
    filters: &[(&str, Value)],
) -> Result<u64, ProjectionError> {
    let location = Location::live(target, model)?;
    let selection = Selection::equal(typed_filters(table, filters)?);
    let table = *table;
    off_runtime(move || location.count(&table, &selection))
}

/// The sums of integer `column` of `table` in `model`, one per distinct
/// value of the `by` columns (one in all without them), ordered by those
/// values: added up by the database, so a large table is not read. An
/// absent model has none.
pub fn sum_by(
    target: &ReadStore,
    model: &str,
    table: &Table,
    by: &[&str],
    column: &str,
) -> Result<Vec<(Vec<Value>, i64)>, ProjectionError> {
    let location = Location::live(target, model)?;
    let by: Vec<Column> = by
        .iter()
        .map(|b| column_of(table, b))
        .collect::<Result<_, _>>()?;
    let summed = column_of(table, column)?;
    if summed.ty != ColumnType::Int {
        return Err(ProjectionError::Storage(format!(
            "column {column:?} of table {} is not an integer",
            table.name
        )));
    }
    let table = *table;
    off_runtime(move || location.sum_by(&table, &by, summed.name))
}

/// Each filter with its column's type; an unknown column is an error.
fn typed_filters(
    table: &Table,
    filters: &[(&str, Value)],
) -> Result<Vec<(&'static str, ColumnType, Value)>, ProjectionError> {
    filters
        .iter()
        .map(|(name, value)| {
            let column = column_of(table, name)?;
            Ok((column.name, column.ty, value.clone()))
        })
        .collect()
}

/// Which rows of a table a query reads: equality filters (`IS NULL` for
/// `Value::Null`), optionally a prefix search over text columns, keys after
/// `after` (a full key; empty: from the first), and `offset` and `limit`
/// in key order.
#[derive(Debug, Clone, Default)]
struct Selection {
    filters: Vec<(&'static str, ColumnType, Value)>,
    search: Option<(Vec<&'static str>, String)>,
    after: Vec<(&'static str, ColumnType, Value)>,
    offset: usize,
    limit: Option<usize>,
}

impl Selection {
    /// Every row matching `filters`.
    fn equal(filters: Vec<(&'static str, ColumnType, Value)>) -> Self {
        Selection {
            filters,
            ..Selection::default()
        }
    }

    /// The values the SQL's params bind, in order: the filters' (but
    /// NULLs), the search prefix, the key after which rows start.
    fn params(&self) -> Vec<(ColumnType, Value)> {
        let mut params: Vec<(ColumnType, Value)> = self
            .filters
            .iter()
            .filter(|(_, _, v)| *v != Value::Null)
            .map(|(_, ty, v)| (*ty, v.clone()))
            .collect();
        if let Some((_, prefix)) = &self.search {
            params.push((ColumnType::Text, Value::Text(prefix.clone())));
        }
        params.extend(self.after.iter().map(|(_, ty, v)| (*ty, v.clone())));
        params
    }
}

/// The column `name` of `table`; an unknown column is an error.
fn column_of(table: &Table, name: &str) -> Result<Column, ProjectionError> {
    table
        .columns()
        .find(|c| c.name == name)
        .copied()
        .ok_or_else(|| {
            ProjectionError::Storage(format!("table {} has no column {name:?}", table.name))
        })
}

/// The model's checkpoint: the last position applied (0 when none).
pub fn read_checkpoint(target: &ReadStore, model: &str) -> Result<u64, ProjectionError> {
    let location = Location::live(target, model)?;
    off_runtime(move || location.read_checkpoint()).map(|c| c.map_or(0, |(position, _)| position))
}

async fn recorded_at<S: EventStore>(
    store: &S,
    position: u64,
) -> Result<Option<DateTime<Utc>>, ProjectionError> {
    let events = store.read_all(position, 1, &ReadFilter::all()).await?;
    Ok(events
        .first()
        .filter(|e| e.position == position)
        .map(|e| e.recorded_at))
}

// ---------------------------------------------------------------------------
// The pipeline
// ---------------------------------------------------------------------------

enum Until {
    /// Stop after applying this position.
    Position(u64),
    /// Follow the log until this turns true.
    Shutdown(watch::Receiver<bool>),
    /// Follow the log until this turns true or one of the writers stops
    /// (the others then stop at their checkpoints).
    FirstEnd(watch::Receiver<bool>),
}

/// How one pipeline run ended short of its goal.
enum PipelineError {
    Failed(ProjectionError),
    /// The stored checkpoint is not the one this projector last wrote.
    Moved {
        expected: u64,
        found: u64,
    },
}

impl From<ProjectionError> for PipelineError {
    fn from(e: ProjectionError) -> Self {
        PipelineError::Failed(e)
    }
}

/// A log event decoded once for every projector of a run. Decoding
/// failures are kept and reported by a projector when it reaches the event,
/// as if it had decoded it itself.
struct Decoded {
    position: u64,
    event_id: uuid::Uuid,
    recorded_at: DateTime<Utc>,
    stream_id: Arc<str>,
    event: Result<pathway_domain::Event, String>,
    actor_department: Result<pb::Department, String>,
}

/// One read of the log, shared by the projectors of a run. Empty: an idle
/// probe (see `read_log`).
type Read = Arc<Vec<Decoded>>;

/// The one field of a stored envelope (`pb::EventEnvelope`) the projectors
/// use. Decoding only it skips the envelope's strings instead of allocating
/// them; the wire format is still checked.
#[derive(Clone, PartialEq, prost::Message)]
struct EnvelopeActor {
    #[prost(int32, tag = "10")]
    actor_department: i32,
}

/// Turns a log record into a decoded event: the one place the projectors
/// decode (payload and envelope) what the log stores. Runs where the store
/// reads the record ([`EventStore::read_all_mapped`]: on the embedded
/// store, its reader threads, without copying the record first).
/// A record read without its envelope ([`RecordParts::WithoutMetadata`])
/// has empty metadata, which decodes as an unspecified actor.
fn decode_record(record: RecordRef<'_>) -> Decoded {
    let event = pathway_engine::decode_record(record).map_err(|e| e.to_string());
    let actor_department = <EnvelopeActor as prost::Message>::decode(record.metadata)
        .map(|envelope| {
            pb::Department::try_from(envelope.actor_department)
                .unwrap_or(pb::Department::Unspecified)
        })
        .map_err(|e| {
            format!(
                "stream {}: event at version {} does not decode: envelope: {e}",
                record.stream_id, record.stream_version
            )
        });
    Decoded {
        position: record.position,
        event_id: record.event_id,
        recorded_at: record.recorded_at,
        stream_id: Arc::from(record.stream_id),
        event,
        actor_department,
    }
}

/// Opens the personal fields of a decoded read that some view reads
/// ([`views::personal_fields_read`]) with `keyring`; the others stay sealed,
/// as do the fields of erased persons (every view reads them as absent).
async fn open_read(
    mut decoded: Vec<Decoded>,
    keyring: Option<&pathway_engine::Keyring>,
) -> Result<Read, ProjectionError> {
    if let Some(keyring) = keyring {
        keyring
            .open_fields(
                decoded
                    .iter_mut()
                    .filter_map(|d| d.event.as_mut().ok().map(|e| (d.event_id, e))),
                pathway_engine::OpenFields::Only(views::personal_fields_read),
            )
            .await
            .map_err(|e| ProjectionError::Storage(format!("opening personal fields: {e}")))?;
    }
    Ok(Arc::new(decoded))
}

/// The live models of `projections` in `target`.
fn live_models(
    target: &ReadStore,
    projections: &[Arc<dyn Projection>],
) -> Result<Vec<Model>, ProjectionError> {
    projections
        .iter()
        .map(|projection| {
            Ok(Model {
                location: Location::live(target, projection.name())?,
                projection: Arc::clone(projection),
            })
        })
        .collect()
}

/// A model a pipeline projects into.
#[derive(Clone)]
struct Model {
    location: Location,
    projection: Arc<dyn Projection>,
}

async fn run<S: EventStore + Clone>(
    store: &S,
    location: &Location,
    projection: &Arc<dyn Projection>,
    options: &ProjectorOptions,
    mut until: Until,
) -> Result<u64, ProjectionError> {
    assert!(options.read_events_max > 0 && options.batch_events_max > 0);
    let started = Instant::now();
    let mut resyncs = Resyncs::default();
    let model = Model {
        location: location.clone(),
        projection: Arc::clone(projection),
    };
    loop {
        match pipeline(store, &model, options, &mut until).await {
            Ok((checkpoint, applied)) => {
                let elapsed = started.elapsed().as_secs_f64();
                tracing::info!(
                    checkpoint,
                    events = applied,
                    events_per_second = (applied as f64 / elapsed.max(1e-9)) as u64,
                    "projector stopped"
                );
                return Ok(checkpoint);
            }
            Err(PipelineError::Failed(e)) => return Err(e),
            Err(PipelineError::Moved { expected, found }) => {
                let resyncs = resyncs.moved(projection.name(), expected, found)?;
                tracing::warn!(
                    expected,
                    found,
                    resyncs,
                    "checkpoint moved by another writer; resynchronising"
                );
            }
        }
    }
}

/// One run of reader + writer from the stored checkpoint. Returns the final
/// checkpoint and the number of events applied.
async fn pipeline<S: EventStore + Clone>(
    store: &S,
    model: &Model,
    options: &ProjectorOptions,
    until: &mut Until,
) -> Result<(u64, u64), PipelineError> {
    let (mut results, read_result) =
        pipeline_many(store, std::slice::from_ref(model), options, until).await;
    // A writer failure explains a failed send better than the send does.
    let written = results.pop().expect("one result per model")?;
    read_result?;
    Ok(written)
}

/// One run of one log reader and a writer per model, each from its stored
/// checkpoint: the log is read (and decoded) once, from the lowest
/// checkpoint, and every writer skips what it already has. Returns each
/// writer's result (final checkpoint and events applied) and the reader's.
async fn pipeline_many<S: EventStore + Clone>(
    store: &S,
    models: &[Model],
    options: &ProjectorOptions,
    until: &mut Until,
) -> (
    Vec<Result<(u64, u64), PipelineError>>,
    Result<(), PipelineError>,
) {
    let mut senders = Vec::with_capacity(models.len());
    let mut dones = Vec::with_capacity(models.len());
    let mut early: Vec<Option<PipelineError>> = Vec::with_capacity(models.len());
    let mut checkpoints = Vec::with_capacity(models.len());
    for model in models {
        let (reads_tx, reads_rx) = mpsc::channel::<Read>(PROJECTOR_CHANNEL_READS_MAX);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let writer = Writer {
            location: model.location.clone(),
            projection: Arc::clone(&model.projection),
            options: options.clone(),
            catch_up_to: match until {
                Until::Position(head) => Some(*head),
                Until::Shutdown(_) | Until::FirstEnd(_) => None,
            },
            runtime: tokio::runtime::Handle::current(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("pathway-projector-{}", model.projection.name()))
            .spawn(move || writer.run(reads_rx, ready_tx, done_tx));
        if let Err(e) = spawned {
            senders.push(None);
            dones.push(None);
            early.push(Some(
                ProjectionError::Storage(format!("spawn projector thread: {e}")).into(),
            ));
            checkpoints.push(None);
            continue;
        }
        senders.push(Some(reads_tx));
        dones.push(Some(done_rx));
        early.push(None);
        checkpoints.push(Some(ready_rx));
    }
    // Each writer's checkpoint (or why it could not start).
    let mut opened = Vec::with_capacity(models.len());
    for (i, ready) in checkpoints.into_iter().enumerate() {
        let Some(ready) = ready else {
            opened.push(0);
            continue;
        };
        match ready.await {
            Ok(Ok(checkpoint)) => opened.push(checkpoint),
            Ok(Err(e)) => {
                early[i] = Some(e.into());
                senders[i] = None;
                opened.push(0);
            }
            Err(_) => {
                early[i] = Some(writer_gone().into());
                senders[i] = None;
                opened.push(0);
            }
        }
    }
    let read_result = async {
        let head = store.head().await.map_err(ProjectionError::from)?.position;
        for (i, model) in models.iter().enumerate() {
            let checkpoint = opened[i];
            if early[i].is_none() && checkpoint > head {
                early[i] = Some(
                    ProjectionError::Storage(format!(
                        "read model {} is at position {checkpoint} but the log ends at {head}: \
                         it was built from another log; rebuild it",
                        model.projection.name()
                    ))
                    .into(),
                );
                senders[i] = None;
            }
            if early[i].is_none() {
                tracing::info!(
                    projection = model.projection.name(),
                    checkpoint,
                    head,
                    "projector started"
                );
            }
        }
        if matches!(until, Until::FirstEnd(_)) && early.iter().any(Option::is_some) {
            // A model that could not start ends the run before it reads.
            return Ok(());
        }
        let Some(lowest) = (0..models.len())
            .filter(|i| senders[*i].is_some())
            .map(|i| opened[i])
            .min()
        else {
            return Ok(());
        };
        let mut next = lowest + 1;
        // The envelopes are read only for a model that uses them.
        let parts = if models.iter().any(|m| m.projection.reads_actor()) {
            RecordParts::All
        } else {
            RecordParts::WithoutMetadata
        };
        read_log(store, options, parts, until, &mut next, &mut senders).await
    }
    .await;
    drop(senders);
    let mut results = Vec::with_capacity(models.len());
    for (i, done) in dones.into_iter().enumerate() {
        // None: the writer ended without a result (it could not start).
        let written = match done {
            Some(done) => done.await.ok(),
            None => None,
        };
        results.push(match (early[i].take(), written) {
            // The writer's own failure says why it stopped, if it failed first.
            (_, Some(Err(e))) => Err(e),
            // Why it could not start, or why the reader let it go.
            (Some(e), _) => Err(e),
            (None, Some(written)) => written,
            (None, None) => Err(writer_gone().into()),
        });
    }
    (results, read_result)
}

/// A log read in flight: its first position, the events asked for, and the
/// task reading and decoding it.
struct PendingRead {
    from: u64,
    max: usize,
    task: tokio::task::JoinHandle<Result<Read, ProjectionError>>,
}

/// Starts reading `max` events from `from` and decoding them (on the
/// blocking pool), beside the reads already in flight.
fn start_read<S: EventStore + Clone>(
    store: &S,
    from: u64,
    max: usize,
    parts: RecordParts,
    keyring: Option<pathway_engine::Keyring>,
) -> PendingRead {
    let store = store.clone();
    let task = tokio::spawn(async move {
        let decoded = store
            .read_all_mapped(from, max, parts, decode_record)
            .await?;
        for (offset, event) in (0u64..).zip(&decoded) {
            if event.position != from + offset {
                return Err(ProjectionError::Storage(format!(
                    "log read from position {from} returned position {} where {} was next",
                    event.position,
                    from + offset
                )));
            }
        }
        if decoded.is_empty() {
            return Ok(Arc::new(Vec::new()));
        }
        open_read(decoded, keyring.as_ref()).await
    });
    PendingRead { from, max, task }
}

/// Reads the log from `next`, decodes each read once and sends it to every
/// writer, until the goal of `until` is reached or every writer hangs up (a
/// writer that hangs up is dropped from `writers`). Up to
/// [`PROJECTOR_READS_AHEAD`] reads (and their decoding) run ahead of the one
/// being handed to the writers: all of them up to a catch-up's target, and
/// while following as long as the reads come back full.
async fn read_log<S: EventStore + Clone>(
    store: &S,
    options: &ProjectorOptions,
    parts: RecordParts,
    until: &mut Until,
    next: &mut u64,
    writers: &mut [Option<mpsc::Sender<Read>>],
) -> Result<(), PipelineError> {
    let mut pending: std::collections::VecDeque<PendingRead> = std::collections::VecDeque::new();
    let result = read_log_inner(store, options, parts, until, next, writers, &mut pending).await;
    for read in pending {
        read.task.abort();
    }
    result
}

async fn read_log_inner<S: EventStore + Clone>(
    store: &S,
    options: &ProjectorOptions,
    parts: RecordParts,
    until: &mut Until,
    next: &mut u64,
    writers: &mut [Option<mpsc::Sender<Read>>],
    pending: &mut std::collections::VecDeque<PendingRead>,
) -> Result<(), PipelineError> {
    let mut head_changes = store.head_changes();
    let poll_interval = Duration::from_millis(SUBSCRIPTION_POLL_INTERVAL_MS);
    let first_end = matches!(until, Until::FirstEnd(_));
    // The first position no read in flight covers.
    let mut queued = *next;
    // Whether the last read came back full (more is likely waiting).
    let mut full = true;
    loop {
        while pending.len() < PROJECTOR_READS_AHEAD {
            let max = match until {
                Until::Position(target) if queued > *target => break,
                Until::Position(target) => {
                    options.read_events_max.min((*target - queued + 1) as usize)
                }
                Until::Shutdown(_) | Until::FirstEnd(_) if !pending.is_empty() && !full => break,
                Until::Shutdown(shutdown) | Until::FirstEnd(shutdown) if *shutdown.borrow() => {
                    break;
                }
                Until::Shutdown(_) | Until::FirstEnd(_) => options.read_events_max,
            };
            head_changes.borrow_and_update();
            pending.push_back(start_read(
                store,
                queued,
                max,
                parts,
                options.keyring.clone(),
            ));
            queued += max as u64;
        }
        let Some(read) = pending.pop_front() else {
            // Nothing left to read: the target is reached or shutdown asked.
            return Ok(());
        };
        debug_assert_eq!(read.from, *next);
        let events = read
            .task
            .await
            .map_err(|e| ProjectionError::Storage(format!("log read task failed: {e}")))??;
        full = events.len() == read.max;
        if !full {
            // The reads queued behind this one start past its end.
            for read in pending.drain(..) {
                read.task.abort();
            }
            queued = *next + events.len() as u64;
        }
        if let Some(last) = events.last() {
            *next = last.position + 1;
            for writer in writers.iter_mut() {
                if let Some(sender) = writer
                    && sender.send(Arc::clone(&events)).await.is_err()
                {
                    *writer = None;
                }
            }
            if !carry_on(writers, first_end)? {
                return Ok(());
            }
            if let (Until::Position(target), Some(progress)) = (&*until, &options.progress) {
                progress(*next - 1, *target);
            }
            continue;
        }
        match until {
            Until::Position(target) => {
                return Err(ProjectionError::Storage(format!(
                    "log ends before position {next} although its head was {target}"
                ))
                .into());
            }
            Until::Shutdown(shutdown) | Until::FirstEnd(shutdown) => {
                if *shutdown.borrow() {
                    return Ok(());
                }
                let Some(first) = writers.iter().flatten().next().cloned() else {
                    return Err(writer_gone().into());
                };
                tokio::select! {
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            return Ok(());
                        }
                    }
                    woken = tokio::time::timeout(poll_interval, head_changes.changed()) => {
                        if woken.is_err() {
                            // Idle: have the writers check that nobody (a
                            // rebuild swap) moved the checkpoint, so the model
                            // does not sit at a stale position until the next
                            // event. Skipped when a channel is busy anyway.
                            for writer in writers.iter_mut() {
                                if let Some(sender) = writer
                                    && let Err(mpsc::error::TrySendError::Closed(_)) =
                                        sender.try_send(Arc::new(Vec::new()))
                                {
                                    *writer = None;
                                }
                            }
                            if !carry_on(writers, first_end)? {
                                return Ok(());
                            }
                        }
                    }
                    // A writer stopped (failed, or found its checkpoint
                    // moved): its result says why.
                    () = first.closed() => {
                        for writer in writers.iter_mut() {
                            if writer.as_ref().is_some_and(mpsc::Sender::is_closed) {
                                *writer = None;
                            }
                        }
                        if !carry_on(writers, first_end)? {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

/// After writers may have hung up (their slots `None`): whether the
/// reader goes on. With `first_end` ([`Until::FirstEnd`]) one writer gone
/// ends the run; otherwise only all of them gone does, as a failure.
fn carry_on(
    writers: &[Option<mpsc::Sender<Read>>],
    first_end: bool,
) -> Result<bool, PipelineError> {
    if first_end && writers.iter().any(Option::is_none) {
        return Ok(false);
    }
    if writers.iter().all(Option::is_none) {
        return Err(writer_gone().into());
    }
    Ok(true)
}

fn writer_gone() -> ProjectionError {
    ProjectionError::Storage("projector writer thread stopped unexpectedly".into())
}

/// The writer thread: owns the read-model connection and its row cache.
struct Writer {
    location: Location,
    projection: Arc<dyn Projection>,
    options: ProjectorOptions,
    /// When catching up to this position, a batch waits for the reads still
    /// to come (within the batch limits) instead of committing what is
    /// there: fewer, larger transactions. A follower commits what is there.
    catch_up_to: Option<u64>,
    /// Where reads this writer is the last to hold are freed.
    runtime: tokio::runtime::Handle,
}

impl Writer {
    /// Lets go of a read; the last writer to hold it frees its events on
    /// the blocking pool, off this writer's path (freeing memory allocated
    /// by the decoding threads is slow).
    fn release(&self, read: Read) {
        if let Ok(events) = Arc::try_unwrap(read)
            && !events.is_empty()
        {
            self.runtime.spawn_blocking(move || drop(events));
        }
    }

    fn run(
        self,
        mut reads: mpsc::Receiver<Read>,
        ready: oneshot::Sender<Result<u64, ProjectionError>>,
        done: oneshot::Sender<Result<(u64, u64), PipelineError>>,
    ) {
        let span = tracing::info_span!("projector_writer", projection = self.projection.name());
        let _entered = span.enter();
        let mut conn = match self.location.open_for_writing(self.projection.as_ref()) {
            Ok(conn) => conn,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let mut checkpoint = match conn.stored_checkpoint() {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        if ready.send(Ok(checkpoint)).is_err() {
            return;
        }
        let mut cache = RowCache::new(
            self.projection.tables(),
            self.options.cache_rows_max,
            PROJECTOR_LEDGER_KEYS_MAX,
            checkpoint == 0,
        );
        let mut applied = 0u64;
        let mut carry: Option<Read> = None;
        let result = loop {
            let first = match carry.take() {
                Some(read) => read,
                None => match reads.blocking_recv() {
                    Some(read) => read,
                    None => break Ok((checkpoint, applied)),
                },
            };
            let Some(last) = first.last() else {
                // An idle probe from the reader.
                match conn.stored_checkpoint() {
                    Ok(found) if found == checkpoint => continue,
                    Ok(found) => {
                        break Err(PipelineError::Moved {
                            expected: checkpoint,
                            found,
                        });
                    }
                    Err(e) => break Err(e.into()),
                }
            };
            if last.position <= checkpoint {
                // Read for a writer further behind.
                self.release(first);
                continue;
            }
            match self.batch(
                &mut conn, &mut cache, checkpoint, first, &mut reads, &mut carry,
            ) {
                Ok((last, events)) => {
                    checkpoint = last;
                    applied += events;
                }
                Err(e) => break Err(e),
            }
        };
        let _ = done.send(result);
    }

    /// One transaction: `first` and any reads already waiting, within the
    /// batch limits. Returns the new checkpoint and the events applied.
    fn batch(
        &self,
        conn: &mut Conn,
        cache: &mut RowCache,
        expected: u64,
        first: Read,
        reads: &mut mpsc::Receiver<Read>,
        carry: &mut Option<Read>,
    ) -> Result<(u64, u64), PipelineError> {
        let started = Instant::now();
        let time_max = Duration::from_millis(self.options.batch_time_max_ms);
        let skip = first.partition_point(|e| e.position <= expected);
        let batch_first = first.get(skip).map_or(expected + 1, |e| e.position);
        let projection = self.projection.as_ref();
        let options = &self.options;
        let mut last: Option<(u64, DateTime<Utc>)> = None;
        let mut events = 0u64;
        let mut visible = 0u64;
        conn.transaction(projection, cache, expected, |tx| {
            let mut read = Some((first, skip));
            while let Some((batch, skip)) = read.take() {
                for record in &batch[skip..] {
                    let position = record.position;
                    assert_eq!(
                        position,
                        last.map_or(expected + 1, |(p, _)| p + 1),
                        "projector batch out of order"
                    );
                    if apply_one(projection, record, tx)? {
                        visible += 1;
                        tx.trim()?;
                    }
                    last = Some((position, record.recorded_at));
                    events += 1;
                }
                self.release(batch);
                if events as usize >= options.batch_events_max || started.elapsed() >= time_max {
                    break;
                }
                let behind = self
                    .catch_up_to
                    .is_some_and(|head| last.is_some_and(|(p, _)| p < head));
                let more = match reads.try_recv() {
                    Ok(more) => Some(more),
                    Err(_) if behind => reads.blocking_recv(),
                    Err(_) => None,
                };
                if let Some(more) = more {
                    if events as usize + more.len() <= options.batch_events_max {
                        read = Some((more, 0));
                    } else {
                        *carry = Some(more);
                    }
                }
            }
            let (last_position, last_at) = last.expect("a batch has at least one event");
            tx.flush()?;
            if let Some(hook) = &options.before_checkpoint {
                hook(batch_first, last_position)?;
            }
            Ok((last_position, last_at))
        })?;
        let (last_position, _) = last.expect("a batch has at least one event");
        tracing::debug!(
            first = batch_first,
            last = last_position,
            events,
            visible,
            cached_rows = cache.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "batch committed"
        );
        Ok((last_position, events))
    }
}

/// Gives one event to the projection; `true` when it was visible to it.
fn apply_one(
    projection: &dyn Projection,
    record: &Decoded,
    tx: &mut dyn Tx,
) -> Result<bool, ProjectionError> {
    let decode_error = |detail: &String| ProjectionError::Decode {
        position: record.position,
        detail: detail.clone(),
    };
    let event = record.event.as_ref().map_err(decode_error)?;
    let Some(view) = projection.view(event) else {
        return Ok(false);
    };
    let actor_department = *record.actor_department.as_ref().map_err(decode_error)?;
    let projected = ProjectedEvent {
        position: record.position,
        recorded_at: record.recorded_at,
        stream_id: Arc::clone(&record.stream_id),
        actor_department,
        view,
    };
    projection.apply(&projected, tx)?;
    Ok(true)
}

/// Runs blocking read-model work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProjectionError> + Send + 'static,
) -> Result<T, ProjectionError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ProjectionError::Storage(format!("read model task failed: {e}")))?
}

/// Runs `f` here, or on a scoped thread when called from inside a tokio
/// runtime (the synchronous `postgres` client must not run on one).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

// ---------------------------------------------------------------------------
// Locations and connections
// ---------------------------------------------------------------------------

/// A model's storage: a SQLite file or a PostgreSQL schema.
#[derive(Debug, Clone)]
enum Location {
    /// `scratch`: a rebuild's file, deleted once swapped in or when the next
    /// rebuild starts, so its commits need not be durable (see
    /// [`Location::rebuild`]).
    Sqlite {
        path: PathBuf,
        scratch: bool,
    },
    Postgres {
        url: String,
        schema: String,
    },
}

fn check_model_name(model: &str) -> Result<(), ProjectionError> {
    let valid = !model.is_empty()
        && model.len() <= MODEL_NAME_BYTES_MAX
        && model.starts_with(|c: char| c.is_ascii_lowercase())
        && model
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ProjectionError::UnknownModel(model.to_owned()))
    }
}

impl Location {
    fn live(target: &ReadStore, model: &str) -> Result<Location, ProjectionError> {
        check_model_name(model)?;
        Ok(match target {
            ReadStore::Sqlite { dir } => Location::Sqlite {
                path: dir.join(format!("{model}.db")),
                scratch: false,
            },
            ReadStore::Postgres { url } => Location::Postgres {
                url: url.clone(),
                schema: model.to_owned(),
            },
        })
    }

    fn rebuild(target: &ReadStore, model: &str) -> Result<Location, ProjectionError> {
        check_model_name(model)?;
        Ok(match target {
            ReadStore::Sqlite { dir } => Location::Sqlite {
                path: dir.join(format!("{model}.rebuild.db")),
                scratch: true,
            },
            ReadStore::Postgres { url } => Location::Postgres {
                url: url.clone(),
                schema: format!("{model}_rebuild"),
            },
        })
    }

    /// Opens the model for a projector, creating its storage and tables.
    fn open_for_writing(&self, projection: &dyn Projection) -> Result<Conn, ProjectionError> {
        check_tables(projection)?;
        match self {
            Location::Sqlite { path, scratch } => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        ProjectionError::Storage(format!("create {}: {e}", dir.display()))
                    })?;
                }
                let access = if *scratch {
                    sqlite::Access::Scratch
                } else {
                    sqlite::Access::Live
                };
                let conn = sqlite::open(path, access)?.expect("opened read-write");
                sqlite::create_tables(&conn, "main", projection)?;
                Ok(Conn::Sqlite(conn, sqlite::SqliteRows::default()))
            }
            Location::Postgres { url, schema } => {
                let mut client = pg::connect(url)?;
                pg::create_schema(&mut client, schema, projection)?;
                Ok(Conn::Postgres {
                    client,
                    schema: schema.clone(),
                    statements: HashMap::new(),
                })
            }
        }
    }

    /// The stored checkpoint and its event's commit time (µs), `None` when
    /// the model does not exist.
    fn read_checkpoint(&self) -> Result<Option<(u64, Option<i64>)>, ProjectionError> {
        match self {
            Location::Sqlite { path, .. } => match sqlite::open(path, sqlite::Access::Read)? {
                None => Ok(None),
                Some(conn) => sqlite::read_checkpoint(&conn),
            },
            Location::Postgres { url, schema } => {
                let mut client = pg::connect(url)?;
                pg::read_checkpoint(&mut client, schema)
            }
        }
    }

    /// The selected rows, in key order.
    fn query(
        &self,
        table: &Table,
        selection: &Selection,
    ) -> Result<Vec<Vec<Value>>, ProjectionError> {
        match self {
            Location::Sqlite { path, .. } => match sqlite::open(path, sqlite::Access::Read)? {
                None => Ok(Vec::new()),
                Some(conn) => sqlite::query(&conn, table, selection),
            },
            Location::Postgres { url, schema } => {
                let mut client = pg::connect(url)?;
                pg::query(&mut client, schema, table, selection)
            }
        }
    }

    /// [`Location::count`] and [`Location::query`] on one connection.
    fn count_and_query(
        &self,
        table: &Table,
        selection: &Selection,
    ) -> Result<(u64, Vec<Vec<Value>>), ProjectionError> {
        match self {
            Location::Sqlite { path, .. } => match sqlite::open(path, sqlite::Access::Read)? {
                None => Ok((0, Vec::new())),
                Some(conn) => Ok((
                    sqlite::count(&conn, table, selection)?,
                    sqlite::query(&conn, table, selection)?,
                )),
            },
            Location::Postgres { url, schema } => {
                let mut client = pg::connect(url)?;
                Ok((
                    pg::count(&mut client, schema, table, selection)?,
                    pg::query(&mut client, schema, table, selection)?,
                ))
            }
        }
    }

    /// How many rows the selection matches (`offset` and `limit` aside).
    fn count(&self, table: &Table, selection: &Selection) -> Result<u64, ProjectionError> {
        match self {
            Location::Sqlite { path, .. } => match sqlite::open(path, sqlite::Access::Read)? {
                None => Ok(0),
                Some(conn) => sqlite::count(&conn, table, selection),
            },
            Location::Postgres { url, schema } => {
                let mut client = pg::connect(url)?;
                pg::count(&mut client, schema, table, selection)
            }
        }
    }

    fn sum_by(
        &self,
        table: &Table,
        by: &[Column],
        column: &str,
    ) -> Result<Vec<(Vec<Value>, i64)>, ProjectionError> {
        match self {
            Location::Sqlite { path, .. } => match sqlite::open(path, sqlite::Access::Read)? {
                None => Ok(Vec::new()),
                Some(conn) => sqlite::sum_by(&conn, table, by, column),
            },
            Location::Postgres { url, schema } => {
                let mut client = pg::connect(url)?;
                pg::sum_by(&mut client, schema, table, by, column)
            }
        }
    }

    /// Removes this storage (a leftover rebuild).
    fn discard(&self) -> Result<(), ProjectionError> {
        match self {
            Location::Sqlite { path, .. } => sqlite::remove_files(path),
            Location::Postgres { url, schema } => {
                let mut client = pg::connect(url)?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(schema)))
                    .map_err(pg::error)
            }
        }
    }
}

/// Rejects projections whose tables the runtime cannot store.
fn check_tables(projection: &dyn Projection) -> Result<(), ProjectionError> {
    let schema_error = |detail: String| ProjectionError::Schema {
        projection: projection.name(),
        detail,
    };
    let mut names = HashSet::new();
    for table in projection.tables() {
        if table.name == CHECKPOINT_TABLE {
            return Err(schema_error(format!(
                "table name {CHECKPOINT_TABLE:?} is reserved"
            )));
        }
        if !names.insert(table.name) {
            return Err(schema_error(format!(
                "table {} is defined twice",
                table.name
            )));
        }
        if table.key.is_empty() {
            return Err(schema_error(format!(
                "table {} has no key column",
                table.name
            )));
        }
        if table.values.len() > cache::VALUE_COLUMNS_MAX {
            return Err(schema_error(format!(
                "table {} has more than {} value columns",
                table.name,
                cache::VALUE_COLUMNS_MAX
            )));
        }
        let mut columns = HashSet::new();
        for column in table.columns() {
            if !columns.insert(column.name) {
                return Err(schema_error(format!(
                    "table {} has column {} twice",
                    table.name, column.name
                )));
            }
        }
    }
    Ok(())
}

/// An open read-model connection of a writer thread (one per thread, so the
/// size difference of the variants does not matter).
#[allow(clippy::large_enum_variant)]
enum Conn {
    Sqlite(rusqlite::Connection, sqlite::SqliteRows),
    Postgres {
        client: postgres::Client,
        schema: String,
        statements: HashMap<String, postgres::Statement>,
    },
}

impl Conn {
    fn stored_checkpoint(&mut self) -> Result<u64, ProjectionError> {
        let stored = match self {
            Conn::Sqlite(conn, _) => sqlite::read_checkpoint(conn)?,
            Conn::Postgres { client, schema, .. } => pg::read_checkpoint(client, schema)?,
        };
        Ok(stored.map_or(0, |(position, _)| position))
    }

    /// Runs `body` in a transaction that first checks the stored checkpoint
    /// is `expected` and, if `body` succeeds, flushes the rows it wrote into
    /// `cache`, stores the returned position and commit time as the new
    /// checkpoint and commits. Any failure empties the cache: it may hold
    /// rows of the rolled-back transaction.
    fn transaction(
        &mut self,
        projection: &dyn Projection,
        cache: &mut RowCache,
        expected: u64,
        body: impl FnOnce(&mut CachedTx<'_>) -> Result<(u64, DateTime<Utc>), ProjectionError>,
    ) -> Result<(), PipelineError> {
        let result = self.transaction_inner(projection, cache, expected, body);
        if result.is_err() {
            cache.clear();
        }
        result
    }

    fn transaction_inner(
        &mut self,
        projection: &dyn Projection,
        cache: &mut RowCache,
        expected: u64,
        body: impl FnOnce(&mut CachedTx<'_>) -> Result<(u64, DateTime<Utc>), ProjectionError>,
    ) -> Result<(), PipelineError> {
        match self {
            Conn::Sqlite(conn, rows) => {
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(sqlite::error)?;
                let found = sqlite::locked_checkpoint(&tx)?;
                if found != expected {
                    return Err(PipelineError::Moved { expected, found });
                }
                let mut store = sqlite::SqliteStore { tx: &tx, rows };
                let mut rows = CachedTx {
                    cache,
                    store: &mut store,
                    all_tables: projection.tables(),
                    projection: projection.name(),
                };
                let (position, at) = body(&mut rows)?;
                rows.flush()?;
                sqlite::write_checkpoint(&tx, position, at)?;
                tx.commit().map_err(sqlite::error)?;
            }
            Conn::Postgres {
                client,
                schema,
                statements,
            } => {
                let mut tx = client.transaction().map_err(pg::error)?;
                let found = pg::locked_checkpoint(&mut tx, schema)?;
                if found != expected {
                    return Err(PipelineError::Moved { expected, found });
                }
                if statements.len() > PG_STATEMENT_CACHE_LEN_MAX {
                    statements.clear();
                }
                let (position, at) = {
                    let mut store = pg::PgStore {
                        tx: &mut tx,
                        schema,
                        statements,
                    };
                    let mut rows = CachedTx {
                        cache,
                        store: &mut store,
                        all_tables: projection.tables(),
                        projection: projection.name(),
                    };
                    let written = body(&mut rows)?;
                    rows.flush()?;
                    written
                };
                pg::write_checkpoint(&mut tx, schema, position, at)?;
                tx.commit().map_err(pg::error)?;
            }
        }
        Ok(())
    }
}

/// Replaces the live model by the rebuilt one in one transaction.
fn swap(
    live: &Location,
    fresh: &Location,
    projection: &dyn Projection,
) -> Result<(), ProjectionError> {
    match (live, fresh) {
        (
            Location::Sqlite { path, .. },
            Location::Sqlite {
                path: fresh_path, ..
            },
        ) => {
            sqlite::swap(path, fresh_path, projection)?;
            sqlite::remove_files(fresh_path)
        }
        (
            Location::Postgres { url, schema },
            Location::Postgres {
                schema: fresh_schema,
                ..
            },
        ) => {
            let mut client = pg::connect(url)?;
            pg::swap(&mut client, schema, fresh_schema, projection)
        }
        _ => unreachable!("live and rebuild locations share a backend"),
    }
}

/// Checks that a stored table has the columns (in order) and key the
/// projection declares: a build whose model changed must not write into
/// the tables of the one before (a missing column would fail on the first
/// write, a reordered one would put values in the wrong place).
fn check_layout(
    projection: &'static str,
    table: &Table,
    stored_columns: &[String],
    stored_key: &[String],
) -> Result<(), ProjectionError> {
    let columns: Vec<&str> = table.columns().map(|c| c.name).collect();
    let key: Vec<&str> = table.key.iter().map(|c| c.name).collect();
    if stored_columns == columns.as_slice() && stored_key == key.as_slice() {
        return Ok(());
    }
    Err(ProjectionError::Schema {
        projection,
        detail: format!(
            "stored table {} has columns ({}) and key ({}), but this build's model has columns ({}) \
             and key ({}): rebuild the model (`pathway projections rebuild {projection}`)",
            table.name,
            stored_columns.join(", "),
            stored_key.join(", "),
            columns.join(", "),
            key.join(", ")
        ),
    })
}

/// `name` as a quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Checks `value` fits `ty`; `key` columns take no NULL. (Value columns
/// may be set to NULL, e.g. on erasure; integer ones default to 0 and `add`
/// counts a NULL as 0.)
fn check_value(
    projection: &'static str,
    table: &Table,
    column: &str,
    ty: ColumnType,
    value: &Value,
    key: bool,
) -> Result<(), ProjectionError> {
    if fits(ty, value, key) {
        Ok(())
    } else {
        Err(ProjectionError::Schema {
            projection,
            detail: format!("{}.{column} ({ty:?}) cannot hold {value:?}", table.name),
        })
    }
}

/// Whether a column of type `ty` can hold `value` (a key column no NULL).
fn fits(ty: ColumnType, value: &Value, key: bool) -> bool {
    match (ty, value) {
        (ColumnType::Text, Value::Text(_))
        | (ColumnType::Int, Value::Int(_))
        | (ColumnType::Bool, Value::Bool(_)) => true,
        (_, Value::Null) => !key,
        _ => false,
    }
}

/// Checks `key` matches the key columns of `table`, which must be one of the
/// projection's tables.
fn check_key(
    projection: &'static str,
    tables: &[Table],
    table: &Table,
    key: &[Value],
) -> Result<(), ProjectionError> {
    if !tables
        .iter()
        .any(|t| std::ptr::eq(t.name, table.name) || t.name == table.name)
    {
        return Err(ProjectionError::Schema {
            projection,
            detail: format!("table {} is not one of its tables", table.name),
        });
    }
    if key.len() != table.key.len() {
        return Err(ProjectionError::Schema {
            projection,
            detail: format!(
                "{} has {} key columns, given {}",
                table.name,
                table.key.len(),
                key.len()
            ),
        });
    }
    for (column, value) in table.key.iter().zip(key) {
        check_value(projection, table, column.name, column.ty, value, true)?;
    }
    Ok(())
}

/// SQL text shared by both backends; `param(i)` renders the i-th (1-based)
/// placeholder and `table_ref` the quoted, possibly schema-qualified, table.
mod sql {
    use super::quote;
    use crate::model::{Column, Table};

    pub(super) fn key_list(table: &Table) -> String {
        table
            .key
            .iter()
            .map(|c| quote(c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(super) fn key_match(table: &Table, param: &dyn Fn(usize) -> String) -> String {
        table
            .key
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = {}", quote(c.name), param(i + 1)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The upsert of a coalesced write of `shape` (per value column: 0 keep,
    /// 1 set, 2 add): `INSERT … ON CONFLICT (key) DO UPDATE SET` the set
    /// columns to the new value and the added ones to `coalesce(cur, 0) +`
    /// the delta.
    /// `rows` renders the row source (`VALUES (…)`, `SELECT … unnest(…)`)
    /// from the inserted columns.
    /// With `insert_only`, a plain `INSERT` of rows known to be absent.
    pub(super) fn merge(
        table_ref: &str,
        table: &Table,
        shape: &[u8],
        insert_only: bool,
        rows: &dyn Fn(&[Column]) -> String,
    ) -> String {
        let columns: Vec<Column> = table
            .key
            .iter()
            .chain(
                table
                    .values
                    .iter()
                    .zip(shape)
                    .filter(|(_, k)| **k != 0)
                    .map(|(c, _)| c),
            )
            .copied()
            .collect();
        let names: Vec<String> = columns.iter().map(|c| quote(c.name)).collect();
        let mut updates: Vec<String> = Vec::new();
        for (column, kind) in table.values.iter().zip(shape) {
            let name = quote(column.name);
            match kind {
                1 => updates.push(format!("{name} = excluded.{name}")),
                2 => updates.push(format!(
                    "{name} = coalesce(cur.{name}, 0) + excluded.{name}"
                )),
                _ => {}
            }
        }
        if insert_only {
            return format!(
                "INSERT INTO {table_ref} ({}) {}",
                names.join(", "),
                rows(&columns)
            );
        }
        let action = if updates.is_empty() {
            "NOTHING".to_owned()
        } else {
            format!("UPDATE SET {}", updates.join(", "))
        };
        format!(
            "INSERT INTO {table_ref} AS cur ({}) {} ON CONFLICT ({}) DO {action}",
            names.join(", "),
            rows(&columns),
            key_list(table)
        )
    }

    pub(super) fn get(table_ref: &str, table: &Table, param: &dyn Fn(usize) -> String) -> String {
        let values = if table.values.is_empty() {
            "1".to_owned()
        } else {
            table
                .values
                .iter()
                .map(|c| quote(c.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "SELECT {values} FROM {table_ref} WHERE {}",
            key_match(table, param)
        )
    }

    pub(super) fn delete(
        table_ref: &str,
        table: &Table,
        param: &dyn Fn(usize) -> String,
    ) -> String {
        format!("DELETE FROM {table_ref} WHERE {}", key_match(table, param))
    }

    /// `SELECT` every column of the rows `selection` picks, ordered by key,
    /// params bound in the order of [`super::Selection::params`].
    pub(super) fn query(
        table_ref: &str,
        table: &Table,
        selection: &super::Selection,
        param: &dyn Fn(usize) -> String,
    ) -> String {
        let columns: Vec<String> = table.columns().map(|c| quote(c.name)).collect();
        let mut sql = format!(
            "SELECT {} FROM {table_ref}{} ORDER BY {}",
            columns.join(", "),
            selected(table, selection, param),
            key_list(table)
        );
        if let Some(limit) = selection.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        if selection.offset > 0 {
            sql.push_str(&format!(" OFFSET {}", selection.offset));
        }
        sql
    }

    /// `SELECT count(*)` of the rows [`query`] selects (`offset` and `limit`
    /// aside).
    pub(super) fn count(
        table_ref: &str,
        table: &Table,
        selection: &super::Selection,
        param: &dyn Fn(usize) -> String,
    ) -> String {
        format!(
            "SELECT count(*) FROM {table_ref}{}",
            selected(table, selection, param)
        )
    }

    /// The `WHERE` clause of a selection (empty when it selects every row):
    /// equality filters, then a prefix search (`substr` of each column, one
    /// param for the prefix), then keys after a row-value bound (one range
    /// of the key index).
    fn selected(
        table: &Table,
        selection: &super::Selection,
        param: &dyn Fn(usize) -> String,
    ) -> String {
        let mut conditions = Vec::new();
        let mut n = 0;
        for (name, _, value) in &selection.filters {
            if *value == super::Value::Null {
                conditions.push(format!("{} IS NULL", quote(name)));
            } else {
                n += 1;
                conditions.push(format!("{} = {}", quote(name), param(n)));
            }
        }
        if let Some((columns, prefix)) = &selection.search {
            n += 1;
            let chars = prefix.chars().count();
            let any: Vec<String> = columns
                .iter()
                .map(|c| format!("substr({}, 1, {chars}) = {}", quote(c), param(n)))
                .collect();
            conditions.push(format!("({})", any.join(" OR ")));
        }
        if !selection.after.is_empty() {
            let bound: Vec<String> = (0..selection.after.len())
                .map(|i| param(n + 1 + i))
                .collect();
            conditions.push(format!("({}) > ({})", key_list(table), bound.join(", ")));
        }
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        }
    }

    /// The `by` columns' values and the sum of `column` per group, ordered.
    pub(super) fn sum_by(table_ref: &str, by: &[Column], column: &str) -> String {
        let by: Vec<String> = by.iter().map(|c| quote(c.name)).collect();
        let sum = format!("CAST(coalesce(sum({}), 0) AS BIGINT)", quote(column));
        if by.is_empty() {
            return format!("SELECT {sum} FROM {table_ref}");
        }
        let by = by.join(", ");
        format!("SELECT {by}, {sum} FROM {table_ref} GROUP BY {by} ORDER BY {by}")
    }
}

// ---------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------

mod sqlite {
    use std::collections::{BTreeMap, HashMap};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use rusqlite::types::Value as SqlValue;
    use rusqlite::{Connection, OpenFlags, OptionalExtension, params_from_iter};

    use super::cache::{RowStore, Shape, Write, Written, shape_kinds};
    use super::{
        CHECKPOINT_TABLE, SQLITE_BUSY_RETRY_PAUSE_MS, SQLITE_BUSY_TIMEOUT_MS,
        SQLITE_FLUSH_ROWS_MAX, SQLITE_STATEMENT_CACHE_LEN_MAX, SQLITE_SWAP_MMAP_BYTES_MAX,
        SQLITE_WRITER_CACHE_KIB, SQLITE_WRITER_WAL_AUTOCHECKPOINT_PAGES, quote, sql,
    };
    use crate::model::{Column, ColumnType, Projection, ProjectionError, Table, Value};

    pub(super) fn error(e: rusqlite::Error) -> ProjectionError {
        ProjectionError::Storage(format!("sqlite: {e}"))
    }

    fn param(i: usize) -> String {
        format!("?{i}")
    }

    /// How [`open`] opens a model file.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Access {
        /// An existing file, read only (`None` when absent).
        Read,
        /// A live model, created if absent: write-ahead log, every commit
        /// durable.
        Live,
        /// A rebuild's file. Nothing reads it but its swap, which copies it
        /// into the live model in one durable transaction, and after a crash
        /// the next rebuild starts it afresh. So its commits skip the fsyncs
        /// (the kernel may never write most of it out at all), and it has no
        /// write-ahead log: its pages are written once, in place, with the
        /// rollback journal (what a failed batch rolls back) kept in memory
        /// — a new file's pages need none. A WAL would write every page
        /// twice (log, then checkpoint).
        Scratch,
    }

    /// Opens a model file as `access` says.
    pub(super) fn open(path: &Path, access: Access) -> Result<Option<Connection>, ProjectionError> {
        let with_path = |e: rusqlite::Error| {
            ProjectionError::Storage(format!("sqlite {}: {e}", path.display()))
        };
        // The busy timeout comes first: switching a new database to WAL
        // takes a lock that another projector opening the same model at the
        // same moment may hold.
        let busy = |conn: Connection| -> Result<Connection, ProjectionError> {
            conn.busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS))
                .map_err(with_path)?;
            Ok(conn)
        };
        let conn = if access == Access::Read {
            if !path.exists() {
                return Ok(None);
            }
            busy(
                Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(with_path)?,
            )?
        } else if access == Access::Scratch {
            let conn = busy(Connection::open(path).map_err(with_path)?)?;
            let mode: String = conn
                .query_row("PRAGMA journal_mode = MEMORY", [], |row| row.get(0))
                .map_err(with_path)?;
            if !mode.eq_ignore_ascii_case("memory") {
                return Err(ProjectionError::Storage(format!(
                    "sqlite {}: journal mode stayed {mode}, not memory",
                    path.display()
                )));
            }
            conn.pragma_update(None, "synchronous", "OFF")
                .map_err(with_path)?;
            conn.pragma_update(None, "cache_size", -SQLITE_WRITER_CACHE_KIB)
                .map_err(with_path)?;
            conn
        } else {
            let conn = busy(Connection::open(path).map_err(with_path)?)?;
            // Switching a new database to WAL takes an exclusive lock for
            // which SQLite does not call the busy handler, so a projector
            // opening the same model at that moment fails at once: retried
            // until the busy timeout.
            let deadline =
                std::time::Instant::now() + Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS);
            loop {
                match conn.pragma_update(None, "journal_mode", "WAL") {
                    Ok(()) => break,
                    Err(rusqlite::Error::SqliteFailure(f, _))
                        if f.code == rusqlite::ErrorCode::DatabaseBusy
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(SQLITE_BUSY_RETRY_PAUSE_MS));
                    }
                    Err(e) => return Err(with_path(e)),
                }
            }
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(with_path)?;
            // Room for a batch's pages, so a large batch does not spill
            // (and write pages twice) before its commit.
            conn.pragma_update(None, "cache_size", -SQLITE_WRITER_CACHE_KIB)
                .map_err(with_path)?;
            // Checkpoint the WAL into the database less often than after
            // every large batch (SQLite's default is 1,000 pages), so a
            // batch's commit does not also copy its pages a second time.
            conn.pragma_update(
                None,
                "wal_autocheckpoint",
                SQLITE_WRITER_WAL_AUTOCHECKPOINT_PAGES,
            )
            .map_err(with_path)?;
            conn
        };
        conn.set_prepared_statement_cache_capacity(SQLITE_STATEMENT_CACHE_LEN_MAX);
        Ok(Some(conn))
    }

    fn column_type(ty: ColumnType, key: bool) -> &'static str {
        match (ty, key) {
            (ColumnType::Text, true) => "TEXT NOT NULL",
            (ColumnType::Int, true) => "INTEGER NOT NULL",
            (ColumnType::Bool, true) => "BOOLEAN NOT NULL",
            (ColumnType::Text, false) => "TEXT",
            (ColumnType::Int, false) => "INTEGER DEFAULT 0",
            (ColumnType::Bool, false) => "BOOLEAN",
        }
    }

    pub(super) fn table_ddl(db: &str, table: &Table) -> String {
        let mut columns: Vec<String> = Vec::new();
        for c in table.key {
            columns.push(format!("{} {}", quote(c.name), column_type(c.ty, true)));
        }
        for c in table.values {
            columns.push(format!("{} {}", quote(c.name), column_type(c.ty, false)));
        }
        // WITHOUT ROWID: one B-tree ordered by the key instead of a rowid
        // table plus a separate index on the key, so a row is written once.
        format!(
            "CREATE TABLE IF NOT EXISTS {}.{} ({}, PRIMARY KEY ({})) WITHOUT ROWID",
            quote(db),
            quote(table.name),
            columns.join(", "),
            sql::key_list(table)
        )
    }

    fn checkpoint_ddl(db: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {}.{} (id INTEGER PRIMARY KEY CHECK (id = 1), \
             position INTEGER NOT NULL, recorded_at_us INTEGER)",
            quote(db),
            quote(CHECKPOINT_TABLE)
        )
    }

    pub(super) fn create_tables(
        conn: &Connection,
        db: &str,
        projection: &dyn Projection,
    ) -> Result<(), ProjectionError> {
        let mut ddl = String::from("BEGIN IMMEDIATE;\n");
        for table in projection.tables() {
            ddl.push_str(&table_ddl(db, table));
            ddl.push_str(";\n");
        }
        ddl.push_str(&checkpoint_ddl(db));
        ddl.push_str(";\nCOMMIT;");
        conn.execute_batch(&ddl).map_err(error)?;
        for table in projection.tables() {
            let mut stored: Vec<(i64, String, i64)> = conn
                .prepare_cached("SELECT cid, name, pk FROM pragma_table_info(?1, ?2)")
                .and_then(|mut s| {
                    s.query_map([table.name, db], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                        .collect()
                })
                .map_err(error)?;
            stored.sort_by_key(|(cid, _, _)| *cid);
            let columns: Vec<String> = stored.iter().map(|(_, n, _)| n.clone()).collect();
            let mut key: Vec<(i64, String)> = stored
                .into_iter()
                .filter(|(_, _, pk)| *pk > 0)
                .map(|(_, n, pk)| (pk, n))
                .collect();
            key.sort();
            let key: Vec<String> = key.into_iter().map(|(_, n)| n).collect();
            super::check_layout(projection.name(), table, &columns, &key)?;
        }
        Ok(())
    }

    pub(super) fn read_checkpoint(
        conn: &Connection,
    ) -> Result<Option<(u64, Option<i64>)>, ProjectionError> {
        let exists: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [CHECKPOINT_TABLE],
                |r| r.get(0),
            )
            .map_err(error)?;
        if !exists {
            return Ok(None);
        }
        let row: Option<(i64, Option<i64>)> = conn
            .query_row(
                &format!(
                    "SELECT position, recorded_at_us FROM {} WHERE id = 1",
                    quote(CHECKPOINT_TABLE)
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(error)?;
        Ok(Some(row.map_or((0, None), |(p, at)| (p as u64, at))))
    }

    /// The checkpoint inside a write transaction (the write lock is held).
    pub(super) fn locked_checkpoint(conn: &Connection) -> Result<u64, ProjectionError> {
        Ok(read_checkpoint(conn)?.map_or(0, |(p, _)| p))
    }

    pub(super) fn write_checkpoint(
        conn: &Connection,
        position: u64,
        at: DateTime<Utc>,
    ) -> Result<(), ProjectionError> {
        let sql = format!(
            "INSERT INTO {} (id, position, recorded_at_us) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET position = excluded.position, recorded_at_us = excluded.recorded_at_us",
            quote(CHECKPOINT_TABLE)
        );
        conn.prepare_cached(&sql)
            .and_then(|mut s| s.execute((position as i64, at.timestamp_micros())))
            .map_err(error)?;
        Ok(())
    }

    fn to_sql(value: &Value) -> SqlValue {
        match value {
            Value::Null => SqlValue::Null,
            Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
            Value::Int(i) => SqlValue::Integer(*i),
            Value::Text(s) => SqlValue::Text(s.clone()),
        }
    }

    fn read_value(row: &rusqlite::Row<'_>, i: usize, ty: ColumnType) -> rusqlite::Result<Value> {
        Ok(match ty {
            ColumnType::Text => row
                .get::<_, Option<String>>(i)?
                .map_or(Value::Null, Value::Text),
            ColumnType::Int => row
                .get::<_, Option<i64>>(i)?
                .map_or(Value::Null, Value::Int),
            ColumnType::Bool => row
                .get::<_, Option<bool>>(i)?
                .map_or(Value::Null, Value::Bool),
        })
    }

    /// The cache's [`RowStore`] over an open SQLite transaction: statements
    /// prepared once per connection (rusqlite's cache), SQL text built once
    /// per table, shape and row count. A flush writes the rows of one shape
    /// [`SQLITE_FLUSH_ROWS_MAX`] at a time with one multi-row upsert.
    #[derive(Default)]
    pub(super) struct SqliteRows {
        sql: HashMap<(&'static str, Statement), String>,
    }

    /// The statements of a table.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    enum Statement {
        Get,
        Delete,
        /// The upsert of `rows` rows of one merge shape (a plain insert
        /// with `insert`).
        Merge {
            shape: Shape,
            insert: bool,
            rows: usize,
        },
    }

    fn bind(
        statement: &mut rusqlite::CachedStatement<'_>,
        i: usize,
        value: &Value,
    ) -> rusqlite::Result<()> {
        match value {
            Value::Null => statement.raw_bind_parameter(i, rusqlite::types::Null),
            Value::Bool(b) => statement.raw_bind_parameter(i, i64::from(*b)),
            Value::Int(n) => statement.raw_bind_parameter(i, *n),
            Value::Text(s) => statement.raw_bind_parameter(i, s.as_str()),
        }
    }

    impl SqliteRows {
        fn sql(&mut self, table: &Table, statement: Statement) -> &str {
            self.sql
                .entry((table.name, statement))
                .or_insert_with(|| match statement {
                    Statement::Get => sql::get(&quote(table.name), table, &param),
                    Statement::Delete => sql::delete(&quote(table.name), table, &param),
                    Statement::Merge {
                        shape,
                        insert,
                        rows,
                    } => {
                        let kinds = shape_kinds(shape, table.values.len());
                        sql::merge(&quote(table.name), table, &kinds, insert, &|columns| {
                            let n = columns.len();
                            let tuples: Vec<String> = (0..rows)
                                .map(|r| {
                                    let params: Vec<String> =
                                        (1..=n).map(|c| param(r * n + c)).collect();
                                    format!("({})", params.join(", "))
                                })
                                .collect();
                            // `WHERE true` is not needed: VALUES is no SELECT.
                            format!("VALUES {}", tuples.join(", "))
                        })
                    }
                })
        }
    }

    /// A row of a flush: its key and write.
    type RowWrite<'r, 'w> = &'r (&'w [Value], Write<'w>);

    pub(super) struct SqliteStore<'a> {
        pub(super) tx: &'a Connection,
        pub(super) rows: &'a mut SqliteRows,
    }

    impl SqliteStore<'_> {
        /// Upserts `rows` (all of one shape) `size` rows per statement
        /// (`rows` holds a multiple of `size`), with one statement prepared
        /// once.
        fn merge(
            &mut self,
            table: &Table,
            (insert, shape): (bool, Shape),
            size: usize,
            rows: &[&(&[Value], Write<'_>)],
        ) -> Result<(), ProjectionError> {
            let sql = self.rows.sql(
                table,
                Statement::Merge {
                    shape,
                    insert,
                    rows: size,
                },
            );
            let mut statement = self.tx.prepare_cached(sql).map_err(error)?;
            for chunk in rows.chunks_exact(size) {
                touch_texts(chunk);
                let mut n = 0;
                let mut result = Ok(());
                for (key, write) in chunk {
                    for value in key.iter() {
                        n += 1;
                        bind(&mut statement, n, value).map_err(error)?;
                    }
                    write.for_each_written(|written| {
                        n += 1;
                        let bound = match written {
                            Written::Set(value) => bind(&mut statement, n, value),
                            Written::Add(delta) => statement.raw_bind_parameter(n, delta),
                        };
                        if result.is_ok() {
                            result = bound;
                        }
                    });
                }
                result.map_err(error)?;
                statement.raw_execute().map_err(error)?;
            }
            Ok(())
        }
    }

    /// Reads the first byte of every text a chunk of a flush binds, before
    /// binding any. The strings of cached rows lie scattered over the heap,
    /// so binding (SQLite copies each text) waits on memory once per
    /// string, one wait after another; these loads, independent of each
    /// other, wait together, and the binds then find the strings in the
    /// processor's cache.
    fn touch_texts(chunk: &[RowWrite<'_, '_>]) {
        let mut folded = 0u8;
        let mut touch = |value: &Value| {
            if let Value::Text(text) = value {
                folded ^= text.as_bytes().first().copied().unwrap_or(0);
            }
        };
        for (key, write) in chunk {
            key.iter().for_each(&mut touch);
            write.for_each_written(|written| {
                if let Written::Set(value) = written {
                    touch(value);
                }
            });
        }
        std::hint::black_box(folded);
    }

    impl RowStore for SqliteStore<'_> {
        fn load(
            &mut self,
            table: &Table,
            key: &[Value],
        ) -> Result<Option<Vec<Value>>, ProjectionError> {
            let sql = self.rows.sql(table, Statement::Get);
            let mut statement = self.tx.prepare_cached(sql).map_err(error)?;
            for (i, value) in key.iter().enumerate() {
                bind(&mut statement, i + 1, value).map_err(error)?;
            }
            let mut rows = statement.raw_query();
            let Some(row) = rows.next().map_err(error)? else {
                return Ok(None);
            };
            table
                .values
                .iter()
                .enumerate()
                .map(|(i, c)| read_value(row, i, c.ty))
                .collect::<rusqlite::Result<Vec<Value>>>()
                .map(Some)
                .map_err(error)
        }

        fn flush(
            &mut self,
            table: &Table,
            writes: &[(&[Value], Write<'_>)],
        ) -> Result<(), ProjectionError> {
            // Deletes first: a key is written once per flush, so the order
            // between a table's deletes and merges does not matter.
            let mut shapes: BTreeMap<(bool, Shape), Vec<RowWrite<'_, '_>>> = BTreeMap::new();
            for write in writes {
                if let (key, Write::Delete) = write {
                    let sql = self.rows.sql(table, Statement::Delete);
                    let mut statement = self.tx.prepare_cached(sql).map_err(error)?;
                    for (i, value) in key.iter().enumerate() {
                        bind(&mut statement, i + 1, value).map_err(error)?;
                    }
                    statement.raw_execute().map_err(error)?;
                } else {
                    let insert = matches!(write.1, Write::Insert(_));
                    shapes
                        .entry((insert, write.1.shape()))
                        .or_default()
                        .push(write);
                }
            }
            for (shape, rows) in shapes {
                // Three statement sizes per shape: one statement per row
                // count would fill the statement cache.
                let mut rest = &rows[..];
                for size in [SQLITE_FLUSH_ROWS_MAX, 16, 1] {
                    let (now, later) = rest.split_at(rest.len() - rest.len() % size);
                    if !now.is_empty() {
                        self.merge(table, shape, size, now)?;
                    }
                    rest = later;
                }
            }
            Ok(())
        }
    }

    pub(super) fn query(
        conn: &Connection,
        table: &Table,
        selection: &super::Selection,
    ) -> Result<Vec<Vec<Value>>, ProjectionError> {
        if !table_exists(conn, table)? {
            return Ok(Vec::new());
        }
        let sql = sql::query(&quote(table.name), table, selection, &param);
        let params = selection_params(selection);
        let types: Vec<ColumnType> = table.columns().map(|c| c.ty).collect();
        let mut statement = conn.prepare(&sql).map_err(error)?;
        let rows = statement
            .query_map(params_from_iter(params), |row| {
                types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| read_value(row, i, *ty))
                    .collect()
            })
            .map_err(error)?;
        rows.collect::<rusqlite::Result<Vec<Vec<Value>>>>()
            .map_err(error)
    }

    pub(super) fn count(
        conn: &Connection,
        table: &Table,
        selection: &super::Selection,
    ) -> Result<u64, ProjectionError> {
        if !table_exists(conn, table)? {
            return Ok(0);
        }
        let sql = sql::count(&quote(table.name), table, selection, &param);
        let n: i64 = conn
            .query_row(&sql, params_from_iter(selection_params(selection)), |r| {
                r.get(0)
            })
            .map_err(error)?;
        Ok(n.max(0) as u64)
    }

    pub(super) fn sum_by(
        conn: &Connection,
        table: &Table,
        by: &[Column],
        column: &str,
    ) -> Result<Vec<(Vec<Value>, i64)>, ProjectionError> {
        if !table_exists(conn, table)? {
            return Ok(Vec::new());
        }
        let mut statement = conn
            .prepare(&sql::sum_by(&quote(table.name), by, column))
            .map_err(error)?;
        let rows = statement
            .query_map([], |row| {
                let values = by
                    .iter()
                    .enumerate()
                    .map(|(i, c)| read_value(row, i, c.ty))
                    .collect::<rusqlite::Result<Vec<Value>>>()?;
                Ok((values, row.get::<_, i64>(by.len())?))
            })
            .map_err(error)?;
        rows.collect::<rusqlite::Result<_>>().map_err(error)
    }

    fn table_exists(conn: &Connection, table: &Table) -> Result<bool, ProjectionError> {
        conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table.name],
            |r| r.get(0),
        )
        .map_err(error)
    }

    fn selection_params(selection: &super::Selection) -> Vec<SqlValue> {
        selection.params().iter().map(|(_, v)| to_sql(v)).collect()
    }

    /// Replaces the live model at `live` with the rebuilt one at `fresh`
    /// in one transaction of the live model, while its readers go on
    /// reading the old one (their snapshots) until it commits.
    ///
    /// SQLite's online backup copies the rebuilt file page by page into the
    /// live one — a copy of its bytes, not of its rows, so a model of
    /// millions of rows swaps in about the time it takes to write its
    /// pages. It needs both files to have the same page size (the live
    /// one keeps a write-ahead log); a live model made with another page
    /// size is swapped row by row instead ([`copy_tables`]).
    pub(super) fn swap(
        live: &Path,
        fresh: &Path,
        projection: &dyn Projection,
    ) -> Result<(), ProjectionError> {
        let mut conn = open(live, Access::Live)?.expect("opened read-write");
        let source = open(fresh, Access::Read)?.ok_or_else(|| {
            ProjectionError::Storage(format!("rebuilt model {} is missing", fresh.display()))
        })?;
        // The backup reads every page once: mapped, not copied by a read
        // call each.
        source
            .pragma_update(None, "mmap_size", SQLITE_SWAP_MMAP_BYTES_MAX)
            .map_err(error)?;
        let page_size = |conn: &Connection| -> Result<i64, ProjectionError> {
            conn.pragma_query_value(None, "page_size", |row| row.get(0))
                .map_err(error)
        };
        if page_size(&conn)? != page_size(&source)? {
            drop(source);
            return copy_tables(&mut conn, fresh, projection);
        }
        let backup = rusqlite::backup::Backup::new(&source, &mut conn).map_err(error)?;
        // Every page in one step: one write transaction of the live model,
        // waiting (its busy timeout) for a writer of it to commit first.
        match backup.step(-1).map_err(error)? {
            rusqlite::backup::StepResult::Done => Ok(()),
            other => Err(ProjectionError::Storage(format!(
                "swapping {} into {}: {other:?}",
                fresh.display(),
                live.display()
            ))),
        }
    }

    /// [`swap`] row by row: the live model's tables dropped and made anew
    /// from the rebuilt ones, in one transaction.
    fn copy_tables(
        conn: &mut Connection,
        fresh: &Path,
        projection: &dyn Projection,
    ) -> Result<(), ProjectionError> {
        conn.execute("ATTACH DATABASE ?1 AS rebuild", [fresh.to_string_lossy()])
            .map_err(error)?;
        let result = (|| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(error)?;
            let old: Vec<String> = {
                let mut s = tx
                    .prepare("SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                    .map_err(error)?;
                s.query_map([], |r| r.get(0))
                    .map_err(error)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(error)?
            };
            let mut batch = String::new();
            for name in &old {
                batch.push_str(&format!("DROP TABLE main.{};\n", quote(name)));
            }
            for table in projection.tables() {
                // The same DDL as the rebuilt table's, so `SELECT *` lists
                // the same columns in the same order, and an INSERT of a
                // whole table into an empty one of the same shape, without
                // a column list, lets SQLite copy the stored records as
                // they are (its transfer optimisation) instead of decoding
                // and re-encoding every row.
                batch.push_str(&table_ddl("main", table));
                batch.push_str(";\n");
                batch.push_str(&format!(
                    "INSERT INTO main.{t} SELECT * FROM rebuild.{t};\n",
                    t = quote(table.name)
                ));
            }
            batch.push_str(&checkpoint_ddl("main"));
            batch.push_str(";\n");
            batch.push_str(&format!(
                "INSERT INTO main.{t} (id, position, recorded_at_us) \
                 SELECT id, position, recorded_at_us FROM rebuild.{t};\n",
                t = quote(CHECKPOINT_TABLE)
            ));
            tx.execute_batch(&batch).map_err(error)?;
            tx.commit().map_err(error)
        })();
        let detached = conn.execute("DETACH DATABASE rebuild", []).map_err(error);
        result?;
        detached?;
        Ok(())
    }

    /// Deletes a model file and its side files.
    pub(super) fn remove_files(path: &Path) -> Result<(), ProjectionError> {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = PathBuf::from(name);
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ProjectionError::Storage(format!(
                        "remove {}: {e}",
                        file.display()
                    )));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

mod pg {
    use std::collections::{BTreeMap, HashMap};
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use postgres::types::ToSql;
    use postgres::{Client, NoTls, Statement, Transaction};

    use super::cache::{RowStore, Shape, Write, Written, shape_kinds};
    use super::{
        CHECKPOINT_TABLE, PG_CONNECT_TIMEOUT_MS, PG_FLUSH_ROWS_MAX,
        PG_RETIRED_DROP_LOCK_TIMEOUT_MS, PG_SWAP_LOCK_TIMEOUT_MS, quote, sql,
    };
    use crate::model::{Column, ColumnType, Projection, ProjectionError, Table, Value};

    pub(super) fn error(e: postgres::Error) -> ProjectionError {
        ProjectionError::Storage(format!("postgres: {e}"))
    }

    fn param(i: usize) -> String {
        format!("${i}")
    }

    pub(super) fn connect(url: &str) -> Result<Client, ProjectionError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| ProjectionError::Storage(format!("read model database url: {e}")))?;
        config.connect_timeout(Duration::from_millis(PG_CONNECT_TIMEOUT_MS));
        if config.get_application_name().is_none() {
            config.application_name("pathway-projector");
        }
        config.connect(NoTls).map_err(error)
    }

    fn table_ref(schema: &str, table: &str) -> String {
        format!("{}.{}", quote(schema), quote(table))
    }

    fn column_type(ty: ColumnType, key: bool) -> &'static str {
        match (ty, key) {
            (ColumnType::Text, true) => "TEXT COLLATE \"C\" NOT NULL",
            (ColumnType::Int, true) => "BIGINT NOT NULL",
            (ColumnType::Bool, true) => "BOOLEAN NOT NULL",
            (ColumnType::Text, false) => "TEXT COLLATE \"C\"",
            (ColumnType::Int, false) => "BIGINT DEFAULT 0",
            (ColumnType::Bool, false) => "BOOLEAN",
        }
    }

    fn table_ddl(schema: &str, table: &Table) -> String {
        let mut columns: Vec<String> = Vec::new();
        for c in table.key {
            columns.push(format!("{} {}", quote(c.name), column_type(c.ty, true)));
        }
        for c in table.values {
            columns.push(format!("{} {}", quote(c.name), column_type(c.ty, false)));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            table_ref(schema, table.name),
            columns.join(", "),
            sql::key_list(table)
        )
    }

    /// Creates the model's schema, tables and checkpoint row. Serialised per
    /// schema by an advisory lock (`CREATE SCHEMA IF NOT EXISTS` races).
    pub(super) fn create_schema(
        client: &mut Client,
        schema: &str,
        projection: &dyn Projection,
    ) -> Result<(), ProjectionError> {
        let mut tx = client.transaction().map_err(error)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('pathway-projector:' || $1))",
            &[&schema],
        )
        .map_err(error)?;
        let mut ddl = format!("CREATE SCHEMA IF NOT EXISTS {};\n", quote(schema));
        for table in projection.tables() {
            ddl.push_str(&table_ddl(schema, table));
            ddl.push_str(";\n");
        }
        ddl.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {} (id SMALLINT PRIMARY KEY CHECK (id = 1), \
             position BIGINT NOT NULL, recorded_at_us BIGINT);\n\
             INSERT INTO {} (id, position) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;",
            table_ref(schema, CHECKPOINT_TABLE),
            table_ref(schema, CHECKPOINT_TABLE),
        ));
        tx.batch_execute(&ddl).map_err(error)?;
        for table in projection.tables() {
            let columns: Vec<String> = tx
                .query(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                    &[&schema, &table.name],
                )
                .map_err(error)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let key: Vec<String> = tx
                .query(
                    "SELECT a.attname::text FROM pg_index i \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
                     WHERE i.indrelid = to_regclass($1) AND i.indisprimary \
                     ORDER BY array_position(i.indkey::smallint[], a.attnum)",
                    &[&table_ref(schema, table.name)],
                )
                .map_err(error)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            super::check_layout(projection.name(), table, &columns, &key)?;
        }
        tx.commit().map_err(error)
    }

    pub(super) fn read_checkpoint(
        client: &mut Client,
        schema: &str,
    ) -> Result<Option<(u64, Option<i64>)>, ProjectionError> {
        let exists = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&table_ref(schema, CHECKPOINT_TABLE)],
            )
            .map_err(error)?
            .get::<_, bool>(0);
        if !exists {
            return Ok(None);
        }
        let row = client
            .query_opt(
                &format!(
                    "SELECT position, recorded_at_us FROM {} WHERE id = 1",
                    table_ref(schema, CHECKPOINT_TABLE)
                ),
                &[],
            )
            .map_err(error)?;
        Ok(Some(row.map_or((0, None), |r| {
            (r.get::<_, i64>(0) as u64, r.get(1))
        })))
    }

    /// The checkpoint, row-locked until the transaction ends.
    pub(super) fn locked_checkpoint(
        tx: &mut Transaction<'_>,
        schema: &str,
    ) -> Result<u64, ProjectionError> {
        let row = tx
            .query_opt(
                &format!(
                    "SELECT position FROM {} WHERE id = 1 FOR UPDATE",
                    table_ref(schema, CHECKPOINT_TABLE)
                ),
                &[],
            )
            .map_err(error)?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    pub(super) fn write_checkpoint(
        tx: &mut Transaction<'_>,
        schema: &str,
        position: u64,
        at: DateTime<Utc>,
    ) -> Result<(), ProjectionError> {
        let updated = tx
            .execute(
                &format!(
                    "UPDATE {} SET position = $1, recorded_at_us = $2 WHERE id = 1",
                    table_ref(schema, CHECKPOINT_TABLE)
                ),
                &[&(position as i64), &at.timestamp_micros()],
            )
            .map_err(error)?;
        if updated != 1 {
            return Err(ProjectionError::Storage(format!(
                "checkpoint row of {schema} is missing"
            )));
        }
        Ok(())
    }

    fn to_sql(ty: ColumnType, value: &Value) -> Box<dyn ToSql + Sync> {
        match (ty, value) {
            (_, Value::Text(s)) => Box::new(s.clone()),
            (_, Value::Int(i)) => Box::new(*i),
            (_, Value::Bool(b)) => Box::new(*b),
            (ColumnType::Text, Value::Null) => Box::new(None::<String>),
            (ColumnType::Int, Value::Null) => Box::new(None::<i64>),
            (ColumnType::Bool, Value::Null) => Box::new(None::<bool>),
        }
    }

    fn read_value(row: &postgres::Row, i: usize, ty: ColumnType) -> Value {
        match ty {
            ColumnType::Text => row
                .get::<_, Option<String>>(i)
                .map_or(Value::Null, Value::Text),
            ColumnType::Int => row.get::<_, Option<i64>>(i).map_or(Value::Null, Value::Int),
            ColumnType::Bool => row
                .get::<_, Option<bool>>(i)
                .map_or(Value::Null, Value::Bool),
        }
    }

    fn refs(params: &[Box<dyn ToSql + Sync>]) -> Vec<&(dyn ToSql + Sync)> {
        params.iter().map(|p| p.as_ref()).collect()
    }

    /// A row of a merge: its key and write.
    type MergeRow<'r, 'w> = &'r (&'w [Value], Write<'w>);

    /// One column of a multi-row statement's parameters.
    enum ColumnArray<'v> {
        Text(Vec<Option<&'v str>>),
        Int(Vec<Option<i64>>),
        Bool(Vec<Option<bool>>),
    }

    impl<'v> ColumnArray<'v> {
        fn new(ty: ColumnType, len: usize) -> Self {
            match ty {
                ColumnType::Text => ColumnArray::Text(Vec::with_capacity(len)),
                ColumnType::Int => ColumnArray::Int(Vec::with_capacity(len)),
                ColumnType::Bool => ColumnArray::Bool(Vec::with_capacity(len)),
            }
        }

        /// Appends `value` (checked against the column type when written).
        fn push(&mut self, value: &'v Value) {
            match (self, value) {
                (ColumnArray::Text(a), Value::Text(s)) => a.push(Some(s)),
                (ColumnArray::Int(a), Value::Int(i)) => a.push(Some(*i)),
                (ColumnArray::Bool(a), Value::Bool(b)) => a.push(Some(*b)),
                (ColumnArray::Text(a), _) => a.push(None),
                (ColumnArray::Int(a), _) => a.push(None),
                (ColumnArray::Bool(a), _) => a.push(None),
            }
        }

        fn push_int(&mut self, i: i64) {
            match self {
                ColumnArray::Int(a) => a.push(Some(i)),
                _ => unreachable!("add is checked to target integer columns"),
            }
        }

        fn as_param(&self) -> &(dyn ToSql + Sync) {
            match self {
                ColumnArray::Text(a) => a,
                ColumnArray::Int(a) => a,
                ColumnArray::Bool(a) => a,
            }
        }
    }

    fn array_type(ty: ColumnType) -> &'static str {
        match ty {
            ColumnType::Text => "text[]",
            ColumnType::Int => "int8[]",
            ColumnType::Bool => "bool[]",
        }
    }

    /// `SELECT * FROM unnest($1::text[], …)` over `columns`.
    fn unnest(columns: &[Column]) -> String {
        let arrays: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}", i + 1, array_type(c.ty)))
            .collect();
        format!("SELECT * FROM unnest({})", arrays.join(", "))
    }

    /// The cache's [`RowStore`] over an open PostgreSQL transaction:
    /// statements prepared once per connection; a flush writes each table
    /// with one statement per write shape (and per
    /// [`PG_FLUSH_ROWS_MAX`] rows), its rows passed as arrays.
    pub(super) struct PgStore<'a, 'c> {
        pub(super) tx: &'a mut Transaction<'c>,
        pub(super) schema: &'a str,
        pub(super) statements: &'a mut HashMap<String, Statement>,
    }

    impl PgStore<'_, '_> {
        fn statement(&mut self, sql: String) -> Result<Statement, ProjectionError> {
            if let Some(statement) = self.statements.get(&sql) {
                return Ok(statement.clone());
            }
            let statement = self.tx.prepare(&sql).map_err(error)?;
            self.statements.insert(sql, statement.clone());
            Ok(statement)
        }

        fn delete(&mut self, table: &Table, keys: &[&[Value]]) -> Result<(), ProjectionError> {
            let key_list = sql::key_list(table);
            let statement = self.statement(format!(
                "DELETE FROM {} WHERE ({key_list}) IN ({})",
                table_ref(self.schema, table.name),
                unnest(table.key)
            ))?;
            let mut arrays: Vec<ColumnArray<'_>> = table
                .key
                .iter()
                .map(|c| ColumnArray::new(c.ty, keys.len()))
                .collect();
            for key in keys {
                for (array, value) in arrays.iter_mut().zip(key.iter()) {
                    array.push(value);
                }
            }
            let params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a.as_param()).collect();
            self.tx.execute(&statement, &params).map_err(error)?;
            Ok(())
        }

        fn merge(
            &mut self,
            table: &Table,
            (insert, shape): (bool, Shape),
            rows: &[MergeRow<'_, '_>],
        ) -> Result<(), ProjectionError> {
            let kinds = shape_kinds(shape, table.values.len());
            let statement = self.statement(sql::merge(
                &table_ref(self.schema, table.name),
                table,
                &kinds,
                insert,
                &unnest,
            ))?;
            let mut arrays: Vec<ColumnArray<'_>> = table
                .key
                .iter()
                .chain(
                    table
                        .values
                        .iter()
                        .zip(&kinds)
                        .filter(|(_, k)| **k != 0)
                        .map(|(c, _)| c),
                )
                .map(|c| ColumnArray::new(c.ty, rows.len()))
                .collect();
            for (key, write) in rows {
                let mut arrays = arrays.iter_mut();
                for value in key.iter() {
                    arrays.next().expect("one array per column").push(value);
                }
                write.for_each_written(|written| {
                    let array = arrays.next().expect("one array per column");
                    match written {
                        Written::Set(value) => array.push(value),
                        Written::Add(delta) => array.push_int(delta),
                    }
                });
            }
            let params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a.as_param()).collect();
            self.tx.execute(&statement, &params).map_err(error)?;
            Ok(())
        }
    }

    impl RowStore for PgStore<'_, '_> {
        fn load(
            &mut self,
            table: &Table,
            key: &[Value],
        ) -> Result<Option<Vec<Value>>, ProjectionError> {
            let statement =
                self.statement(sql::get(&table_ref(self.schema, table.name), table, &param))?;
            let params: Vec<Box<dyn ToSql + Sync>> = table
                .key
                .iter()
                .zip(key)
                .map(|(c, v)| to_sql(c.ty, v))
                .collect();
            let row = self
                .tx
                .query_opt(&statement, &refs(&params))
                .map_err(error)?;
            Ok(row.map(|row| {
                table
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, c)| read_value(&row, i, c.ty))
                    .collect()
            }))
        }

        fn flush(
            &mut self,
            table: &Table,
            writes: &[(&[Value], Write<'_>)],
        ) -> Result<(), ProjectionError> {
            // Deletes first: a key is written once per flush, so the order
            // between a table's deletes and merges does not matter.
            let deletes: Vec<&[Value]> = writes
                .iter()
                .filter(|(_, w)| matches!(w, Write::Delete))
                .map(|(k, _)| *k)
                .collect();
            for chunk in deletes.chunks(PG_FLUSH_ROWS_MAX) {
                self.delete(table, chunk)?;
            }
            let mut shapes: BTreeMap<(bool, Shape), Vec<MergeRow<'_, '_>>> = BTreeMap::new();
            for write in writes {
                if !matches!(write.1, Write::Delete) {
                    let insert = matches!(write.1, Write::Insert(_));
                    shapes
                        .entry((insert, write.1.shape()))
                        .or_default()
                        .push(write);
                }
            }
            for (shape, rows) in &shapes {
                for chunk in rows.chunks(PG_FLUSH_ROWS_MAX) {
                    self.merge(table, *shape, chunk)?;
                }
            }
            Ok(())
        }
    }

    pub(super) fn query(
        client: &mut Client,
        schema: &str,
        table: &Table,
        selection: &super::Selection,
    ) -> Result<Vec<Vec<Value>>, ProjectionError> {
        let reference = table_ref(schema, table.name);
        if !relation_exists(client, &reference)? {
            return Ok(Vec::new());
        }
        let sql = sql::query(&reference, table, selection, &param);
        let params = selection_params(selection);
        let rows = client.query(&sql, &refs(&params)).map_err(error)?;
        let types: Vec<ColumnType> = table.columns().map(|c| c.ty).collect();
        Ok(rows
            .iter()
            .map(|row| {
                types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| read_value(row, i, *ty))
                    .collect()
            })
            .collect())
    }

    pub(super) fn count(
        client: &mut Client,
        schema: &str,
        table: &Table,
        selection: &super::Selection,
    ) -> Result<u64, ProjectionError> {
        let reference = table_ref(schema, table.name);
        if !relation_exists(client, &reference)? {
            return Ok(0);
        }
        let sql = sql::count(&reference, table, selection, &param);
        let params = selection_params(selection);
        let n: i64 = client
            .query_one(&sql, &refs(&params))
            .map_err(error)?
            .get(0);
        Ok(n.max(0) as u64)
    }

    pub(super) fn sum_by(
        client: &mut Client,
        schema: &str,
        table: &Table,
        by: &[Column],
        column: &str,
    ) -> Result<Vec<(Vec<Value>, i64)>, ProjectionError> {
        let reference = table_ref(schema, table.name);
        if !relation_exists(client, &reference)? {
            return Ok(Vec::new());
        }
        let rows = client
            .query(&sql::sum_by(&reference, by, column), &[])
            .map_err(error)?;
        Ok(rows
            .iter()
            .map(|row| {
                let values = by
                    .iter()
                    .enumerate()
                    .map(|(i, c)| read_value(row, i, c.ty))
                    .collect();
                (values, row.get::<_, i64>(by.len()))
            })
            .collect())
    }

    fn relation_exists(client: &mut Client, reference: &str) -> Result<bool, ProjectionError> {
        Ok(client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&reference])
            .map_err(error)?
            .get::<_, bool>(0))
    }

    fn selection_params(selection: &super::Selection) -> Vec<Box<dyn ToSql + Sync>> {
        selection
            .params()
            .iter()
            .map(|(ty, v)| to_sql(*ty, v))
            .collect()
    }

    /// Grants held on `from` (schema or relation), as `GRANT` statements for
    /// the same roles on `to`. Owner privileges are implicit and skipped.
    fn copy_grants(
        tx: &mut Transaction<'_>,
        acl_query: &str,
        arg: &str,
        object: &str,
    ) -> Result<String, ProjectionError> {
        let rows = tx.query(acl_query, &[&arg]).map_err(error)?;
        let mut out = String::new();
        for row in rows {
            let privilege: String = row.get(0);
            let grantee: Option<String> = row.get(1);
            let grantable: bool = row.get(2);
            let grantee = grantee.map_or("PUBLIC".to_owned(), |g| quote(&g));
            out.push_str(&format!(
                "GRANT {privilege} ON {object} TO {grantee}{};\n",
                if grantable { " WITH GRANT OPTION" } else { "" }
            ));
        }
        Ok(out)
    }

    /// Renames the rebuilt schema over the live one in one transaction, then
    /// drops the retired one.
    pub(super) fn swap(
        client: &mut Client,
        live: &str,
        fresh: &str,
        projection: &dyn Projection,
    ) -> Result<(), ProjectionError> {
        let retired = format!("{}_retired", projection.name());
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quote(&retired)
            ))
            .map_err(error)?;
        let mut tx = client.transaction().map_err(error)?;
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {PG_SWAP_LOCK_TIMEOUT_MS}"
        ))
        .map_err(error)?;
        let live_exists: bool = tx
            .query_one("SELECT to_regnamespace($1) IS NOT NULL", &[&quote(live)])
            .map_err(error)?
            .get(0);
        if live_exists {
            // Waits for a running projector's batch and keeps the next one
            // out until the swap commits; that batch then finds its
            // checkpoint moved and resynchronises.
            let checkpoint = table_ref(live, CHECKPOINT_TABLE);
            if tx
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&checkpoint])
                .map_err(error)?
                .get::<_, bool>(0)
            {
                tx.batch_execute(&format!("LOCK TABLE {checkpoint} IN EXCLUSIVE MODE"))
                    .map_err(error)?;
            }
            let schema_acl = "SELECT a.privilege_type, g.rolname::text, a.is_grantable \
                 FROM pg_namespace n, aclexplode(n.nspacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee \
                 WHERE n.nspname = $1 AND a.grantee <> n.nspowner";
            let mut grants = copy_grants(
                &mut tx,
                schema_acl,
                live,
                &format!("SCHEMA {}", quote(fresh)),
            )?;
            let table_acl = "SELECT a.privilege_type, g.rolname::text, a.is_grantable \
                 FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee \
                 WHERE c.oid = to_regclass($1) AND a.grantee <> c.relowner";
            for table in projection
                .tables()
                .iter()
                .map(|t| t.name)
                .chain([CHECKPOINT_TABLE])
            {
                grants.push_str(&copy_grants(
                    &mut tx,
                    table_acl,
                    &table_ref(live, table),
                    &format!("TABLE {}", table_ref(fresh, table)),
                )?);
            }
            tx.batch_execute(&grants).map_err(error)?;
            tx.batch_execute(&format!(
                "ALTER SCHEMA {} RENAME TO {}",
                quote(live),
                quote(&retired)
            ))
            .map_err(error)?;
        }
        tx.batch_execute(&format!(
            "ALTER SCHEMA {} RENAME TO {}",
            quote(fresh),
            quote(live)
        ))
        .map_err(error)?;
        tx.commit().map_err(error)?;
        if live_exists {
            let mut tx = client.transaction().map_err(error)?;
            tx.batch_execute(&format!(
                "SET LOCAL lock_timeout = {PG_RETIRED_DROP_LOCK_TIMEOUT_MS}"
            ))
            .map_err(error)?;
            match tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", quote(&retired))) {
                Ok(()) => tx.commit().map_err(error)?,
                Err(e) => tracing::warn!(
                    schema = %retired,
                    error = %e,
                    "retired model still in use; the next rebuild drops it"
                ),
            }
        }
        Ok(())
    }
}

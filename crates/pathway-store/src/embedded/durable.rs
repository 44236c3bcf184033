//! Durability of the embedded log: the WAL is fsynced by a syncer thread,
//! after the writer's commit and before any caller is answered.
//!
//! The writer commits each group with `synchronous=NORMAL` (its frames are
//! written to the WAL, not yet fsynced) and hands the group's answers to the
//! syncer, which fsyncs the WAL (`fdatasync`) and only then answers the
//! callers and moves the published head. Meanwhile the writer already builds
//! the next group, so the fsync of one group overlaps the CPU work of the
//! next, and groups committed during one fsync share the next. An
//! acknowledged append is as durable as with `synchronous=FULL`: its frames
//! were written before the fsync began. A torn tail after power loss is
//! still rolled back by SQLite's WAL checksums on open.
//!
//! Readers never return a record above the durable position: a read that
//! sees a newer record (committed, not yet fsynced — by this writer or by
//! another process on the same directory) fsyncs the WAL itself first.
//!
//! A failed fsync leaves the WAL's state unknown (the kernel may have dropped
//! the dirty pages), so it is final: the groups waiting on it and every later
//! append fail as unavailable, and reads above the durable position fail,
//! until the store is opened again.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use pathway_sqlite_vfs::WalWatch;
use tokio::sync::{oneshot, watch};

use crate::{AppendResult, StoreError};

/// Name of the syncer threads.
const SYNCER_THREAD_NAME: &str = "pathway-wal-sync";
/// Syncer threads. While one waits for its fsync, the next takes the groups
/// committed since and starts another: a group waits for one fsync that
/// began after its commit, not also for the rest of an earlier one. Any
/// finished fsync makes durable every group committed before it began.
const SYNCER_THREADS: usize = 3;

/// What writer, syncer and readers share.
#[derive(Debug)]
pub(super) struct Durability {
    /// Deferred WAL writes of the writer's connection (see
    /// `pathway_sqlite_vfs`): one that failed fails the next fsync.
    wal_watch: WalWatch,
    wal_path: PathBuf,
    /// Highest position known to be durable (fsynced).
    durable: AtomicU64,
    /// Set once an fsync failed.
    failed: AtomicBool,
    /// Groups handed to the syncer and not yet answered.
    in_flight: AtomicUsize,
}

impl Durability {
    /// Shared state for the database at `db_path`, fsyncing its WAL now so
    /// that everything already committed (by an earlier process too) is
    /// durable from the start.
    pub(super) fn open(
        db_path: &Path,
        head_position: u64,
        wal_watch: WalWatch,
    ) -> Result<Arc<Self>, StoreError> {
        let mut wal = db_path.as_os_str().to_owned();
        wal.push("-wal");
        let durability = Durability {
            wal_watch,
            wal_path: PathBuf::from(wal),
            durable: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        };
        durability
            .sync_wal()
            .map_err(|e| durability.sync_error(&e))?;
        durability.durable.store(head_position, Ordering::Release);
        Ok(Arc::new(durability))
    }

    /// Whether an fsync has failed (nothing more is acknowledged).
    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Whether groups are waiting for their fsync.
    pub(super) fn syncing(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// The error every append gets once an fsync failed.
    pub(super) fn failed_error(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "fsync of {} failed earlier; reopen the store",
            self.wal_path.display()
        ))
    }

    fn sync_error(&self, error: &io::Error) -> StoreError {
        StoreError::Unavailable(format!("fsync {}: {error}", self.wal_path.display()))
    }

    /// Makes sure records up to `position`, which a reader has just seen
    /// committed, are durable before they are returned: fsyncs the WAL if
    /// `position` is above the durable position.
    pub(super) fn ensure(&self, position: u64) -> Result<(), StoreError> {
        if position <= self.durable.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.failed() {
            return Err(self.failed_error());
        }
        self.sync_wal().map_err(|e| {
            self.failed.store(true, Ordering::Release);
            self.sync_error(&e)
        })?;
        self.durable.fetch_max(position, Ordering::AcqRel);
        Ok(())
    }

    /// `fdatasync` of the WAL. No WAL file means nothing is waiting in one
    /// (a checkpoint fsyncs the database file before the WAL is removed).
    /// A WAL write the writer's VFS deferred and then could not make
    /// (reported at the next fsync) fails it the same way.
    fn sync_wal(&self) -> io::Result<()> {
        match File::open(&self.wal_path) {
            Ok(file) => file.sync_data()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match self.wal_watch.write_failed() {
            None => Ok(()),
            Some(code) => Err(io::Error::other(format!(
                "a WAL write failed (SQLite error {code})"
            ))),
        }
    }
}

/// One answer to send once its group is durable.
pub(super) type Reply = (
    oneshot::Sender<Result<AppendResult, StoreError>>,
    Result<AppendResult, StoreError>,
);

/// A committed group waiting for its fsync.
pub(super) struct Committed {
    /// The head position after the group.
    pub(super) position: u64,
    pub(super) replies: Vec<Reply>,
}

/// The writer's end of the syncer: hands committed groups over; dropping it
/// lets the syncer finish what it has and stop (joined here).
pub(super) struct Syncer {
    durability: Arc<Durability>,
    groups: Option<std_mpsc::Sender<Committed>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Syncer {
    /// Starts the syncer thread; it publishes durable head positions on `head`.
    pub(super) fn start(
        durability: Arc<Durability>,
        head: watch::Sender<u64>,
    ) -> Result<Self, StoreError> {
        let (groups, queue) = std_mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let mut syncer = Syncer {
            durability,
            groups: Some(groups),
            threads: Vec::with_capacity(SYNCER_THREADS),
        };
        for _ in 0..SYNCER_THREADS {
            let shared = Arc::clone(&syncer.durability);
            let queue = Arc::clone(&queue);
            let head = head.clone();
            let thread = std::thread::Builder::new()
                .name(SYNCER_THREAD_NAME.to_owned())
                .spawn(move || run(&shared, &queue, &head))
                .map_err(|e| StoreError::Unavailable(format!("start syncer thread: {e}")))?;
            syncer.threads.push(thread);
        }
        Ok(syncer)
    }

    /// Queues a committed group for its fsync and answers.
    pub(super) fn submit(&self, group: Committed) {
        self.durability.in_flight.fetch_add(1, Ordering::AcqRel);
        let sent = self.groups.as_ref().map(|groups| groups.send(group));
        if let Some(Err(std_mpsc::SendError(group))) = sent {
            // The syncer is gone (it panicked): the group cannot be made
            // durable here, so nobody is told it was.
            self.durability.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.durability.failed.store(true, Ordering::Release);
            for (reply, _) in group.replies {
                let _ = reply.send(Err(self.durability.failed_error()));
            }
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.groups = None;
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("embedded syncer thread panicked");
            }
        }
    }
}

/// A syncer loop: takes every group queued, fsyncs once for all of them,
/// then publishes the head and answers (or fails them all).
fn run(
    durability: &Durability,
    queue: &Mutex<std_mpsc::Receiver<Committed>>,
    head: &watch::Sender<u64>,
) {
    let mut batch: Vec<Committed> = Vec::new();
    loop {
        {
            let Ok(queue) = queue.lock() else { return };
            let Ok(first) = queue.recv() else { return };
            batch.push(first);
            while let Ok(more) = queue.try_recv() {
                batch.push(more);
            }
        }
        let position = batch.iter().map(|g| g.position).max().unwrap_or(0);
        let synced = if durability.failed() {
            Err(durability.failed_error())
        } else {
            durability.sync_wal().map_err(|e| {
                durability.failed.store(true, Ordering::Release);
                let error = durability.sync_error(&e);
                tracing::error!(%error, "WAL fsync failed; nothing more is acknowledged");
                error
            })
        };
        let groups = batch.len();
        match synced {
            Ok(()) => {
                durability.durable.fetch_max(position, Ordering::AcqRel);
                head.send_if_modified(|head| {
                    let moved = *head < position;
                    *head = (*head).max(position);
                    moved
                });
                for group in batch.drain(..) {
                    for (reply, outcome) in group.replies {
                        // A caller that went away no longer needs the answer.
                        let _ = reply.send(outcome);
                    }
                }
            }
            Err(error) => {
                let message = error.to_string();
                for group in batch.drain(..) {
                    for (reply, _) in group.replies {
                        let _ = reply.send(Err(StoreError::Unavailable(message.clone())));
                    }
                }
            }
        }
        durability.in_flight.fetch_sub(groups, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to `db` through the WAL-buffering VFS (kept open for
    /// the test) and its watch.
    fn writer(db: &Path) -> (rusqlite::Connection, WalWatch) {
        let vfs = pathway_sqlite_vfs::register().unwrap();
        let conn = rusqlite::Connection::open_with_flags_and_vfs(
            db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_CREATE,
            vfs,
        )
        .unwrap();
        let watch = pathway_sqlite_vfs::watch(&conn).unwrap();
        (conn, watch)
    }

    #[test]
    fn ensure_raises_the_durable_position_and_stops_after_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("events.db");
        // No WAL file yet: nothing waits in one.
        let (_conn, watch) = writer(&db);
        let durability = Durability::open(&db, 3, watch).unwrap();
        assert_eq!(durability.durable.load(Ordering::Acquire), 3);
        std::fs::write(dir.path().join("events.db-wal"), b"frames").unwrap();
        durability.ensure(2).unwrap();
        durability.ensure(7).unwrap();
        assert_eq!(durability.durable.load(Ordering::Acquire), 7);

        durability.failed.store(true, Ordering::Release);
        durability.ensure(7).expect("durable already");
        assert!(matches!(
            durability.ensure(8),
            Err(StoreError::Unavailable(_))
        ));
    }

    #[test]
    fn answers_wait_for_the_fsync_and_move_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("events.db");
        let (_conn, watch) = writer(&db);
        let durability = Durability::open(&db, 0, watch).unwrap();
        let (head, mut head_rx) = watch::channel(0);
        let syncer = Syncer::start(Arc::clone(&durability), head).unwrap();
        let (reply, answer) = oneshot::channel();
        let result = AppendResult {
            first_position: 1,
            last_position: 2,
            stream_version: 2,
        };
        syncer.submit(Committed {
            position: 2,
            replies: vec![(reply, Ok(result))],
        });
        assert_eq!(answer.blocking_recv().unwrap().unwrap(), result);
        drop(syncer);
        assert_eq!(*head_rx.borrow_and_update(), 2);
        assert_eq!(durability.durable.load(Ordering::Acquire), 2);
        assert!(!durability.syncing());
    }
}

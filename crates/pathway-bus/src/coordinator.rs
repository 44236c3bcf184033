//! Who may relay, and where the relay's checkpoint lives.
//!
//! Exactly one relay publishes for a database at a time. With PostgreSQL the
//! leader holds a session-level advisory lock ([`RELAY_LOCK_KEY`]) on a
//! connection it takes out of the store's pool for good; the checkpoint table
//! is written on that same connection, so a relay that lost its connection
//! (and with it the lock) cannot write a checkpoint either. Standbys try the
//! lock every [`RELAY_STANDBY_POLL_MS`] and take over when it is free.
//!
//! With the embedded store the checkpoint is a small SQLite file beside the
//! log (`relay.sqlite` in the data directory), opened in exclusive locking
//! mode: the leader's connection holds the file lock until the process ends,
//! so a second relay on the same directory stands by.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use crate::BusError;
use crate::limits::RELAY_STANDBY_POLL_MS;

/// The advisory-lock key of the relay leader ("PWRELAY" in ASCII).
pub const RELAY_LOCK_KEY: i64 = 0x0050_5752_454c_4159;

/// Leadership and the durable checkpoint of one relay.
#[async_trait]
pub trait Coordinator: Send + 'static {
    /// Waits until this process is the relay leader.
    async fn lead(&mut self) -> Result<(), BusError>;
    /// The last position published and acknowledged (0 = none).
    async fn checkpoint(&mut self) -> Result<u64, BusError>;
    /// Records that every event up to `position` is published; fails when
    /// this process is no longer the leader.
    async fn set_checkpoint(&mut self, position: u64) -> Result<(), BusError>;
}

// ---------------------------------------------------------------------------
// PostgreSQL

const PG_SCHEMA_SQL: &str = "CREATE TABLE IF NOT EXISTS pathway_relay_checkpoint (
    relay text PRIMARY KEY,
    position bigint NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
)";

/// The PostgreSQL coordinator: advisory lock plus a checkpoint table.
pub struct PgCoordinator {
    pool: deadpool_postgres::Pool,
    relay: String,
    leader: Option<deadpool_postgres::ClientWrapper>,
}

impl std::fmt::Debug for PgCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCoordinator")
            .field("relay", &self.relay)
            .field("leading", &self.leader.is_some())
            .finish()
    }
}

impl PgCoordinator {
    /// A coordinator for the relay named `relay` (one checkpoint row per name)
    /// on the store's pool.
    pub fn new(pool: deadpool_postgres::Pool, relay: &str) -> PgCoordinator {
        PgCoordinator {
            pool,
            relay: relay.to_owned(),
            leader: None,
        }
    }

    fn leader(&mut self) -> Result<&deadpool_postgres::ClientWrapper, BusError> {
        match &self.leader {
            Some(c) if !c.is_closed() => Ok(self.leader.as_ref().expect("checked")),
            _ => {
                self.leader = None;
                Err(BusError::LeadershipLost(
                    "the leader connection is closed".into(),
                ))
            }
        }
    }

    async fn try_lead(&mut self) -> Result<bool, BusError> {
        let err = |e: &dyn std::fmt::Display| BusError::Checkpoint(e.to_string());
        let object = self.pool.get().await.map_err(|e| err(&e))?;
        // Out of the pool for good: the session lock must end with the
        // connection, never be handed to another user of the pool.
        let client = deadpool_postgres::Object::take(object);
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&RELAY_LOCK_KEY])
            .await
            .map_err(|e| err(&e))?;
        if !row.get::<_, bool>(0) {
            return Ok(false);
        }
        client
            .batch_execute(PG_SCHEMA_SQL)
            .await
            .map_err(|e| err(&e))?;
        client
            .execute(
                "INSERT INTO pathway_relay_checkpoint (relay, position) VALUES ($1, 0)
                 ON CONFLICT (relay) DO NOTHING",
                &[&self.relay],
            )
            .await
            .map_err(|e| err(&e))?;
        self.leader = Some(client);
        Ok(true)
    }
}

#[async_trait]
impl Coordinator for PgCoordinator {
    async fn lead(&mut self) -> Result<(), BusError> {
        if self.leader().is_ok() {
            return Ok(());
        }
        loop {
            match self.try_lead().await {
                Ok(true) => {
                    tracing::info!(relay = %self.relay, "relay lock taken: leading");
                    return Ok(());
                }
                Ok(false) => {
                    tracing::debug!(relay = %self.relay, "relay lock held elsewhere: standing by")
                }
                Err(e) => tracing::warn!(error = %e, "relay lock attempt failed"),
            }
            tokio::time::sleep(Duration::from_millis(RELAY_STANDBY_POLL_MS)).await;
        }
    }

    async fn checkpoint(&mut self) -> Result<u64, BusError> {
        let relay = self.relay.clone();
        let row = self
            .leader()?
            .query_one(
                "SELECT position FROM pathway_relay_checkpoint WHERE relay = $1",
                &[&relay],
            )
            .await
            .map_err(|e| BusError::LeadershipLost(e.to_string()))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn set_checkpoint(&mut self, position: u64) -> Result<(), BusError> {
        let relay = self.relay.clone();
        let position = i64::try_from(position)
            .map_err(|_| BusError::Checkpoint(format!("position {position} out of range")))?;
        self.leader()?
            .execute(
                "UPDATE pathway_relay_checkpoint SET position = $2, updated_at = now() WHERE relay = $1",
                &[&relay, &position],
            )
            .await
            .map_err(|e| BusError::LeadershipLost(e.to_string()))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Embedded store: a SQLite file beside the log

/// The embedded store's coordinator: `relay.sqlite` in the data directory.
#[derive(Debug)]
pub struct FileCoordinator {
    path: PathBuf,
    relay: String,
    leader: Option<rusqlite::Connection>,
}

impl FileCoordinator {
    /// The checkpoint file of the relay named `relay` beside the embedded
    /// store in `data_dir`.
    pub fn new(data_dir: &Path, relay: &str) -> FileCoordinator {
        FileCoordinator {
            path: data_dir.join("relay.sqlite"),
            relay: relay.to_owned(),
            leader: None,
        }
    }

    fn try_lead(&mut self) -> Result<bool, rusqlite::Error> {
        let conn = rusqlite::Connection::open(&self.path)?;
        conn.busy_timeout(Duration::ZERO)?;
        // Exclusive locking mode: after the first write the file lock is
        // kept until the connection closes (the process ends).
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let attempt = conn.execute_batch(
            "BEGIN EXCLUSIVE;
             CREATE TABLE IF NOT EXISTS relay_checkpoint (
                 relay TEXT PRIMARY KEY, position INTEGER NOT NULL);
             COMMIT;",
        );
        match attempt {
            Ok(()) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        conn.execute(
            "INSERT OR IGNORE INTO relay_checkpoint (relay, position) VALUES (?1, 0)",
            [&self.relay],
        )?;
        self.leader = Some(conn);
        Ok(true)
    }

    fn leader(&self) -> Result<&rusqlite::Connection, BusError> {
        self.leader
            .as_ref()
            .ok_or_else(|| BusError::LeadershipLost("not leading".into()))
    }
}

#[async_trait]
impl Coordinator for FileCoordinator {
    async fn lead(&mut self) -> Result<(), BusError> {
        if self.leader.is_some() {
            return Ok(());
        }
        loop {
            match self.try_lead() {
                Ok(true) => {
                    tracing::info!(path = %self.path.display(), "relay file locked: leading");
                    return Ok(());
                }
                Ok(false) => tracing::debug!("relay file locked elsewhere: standing by"),
                Err(e) => tracing::warn!(error = %e, "relay file lock attempt failed"),
            }
            tokio::time::sleep(Duration::from_millis(RELAY_STANDBY_POLL_MS)).await;
        }
    }

    async fn checkpoint(&mut self) -> Result<u64, BusError> {
        let position: i64 = self
            .leader()?
            .query_row(
                "SELECT position FROM relay_checkpoint WHERE relay = ?1",
                [&self.relay],
                |r| r.get(0),
            )
            .map_err(|e| BusError::Checkpoint(e.to_string()))?;
        Ok(u64::try_from(position).unwrap_or(0))
    }

    async fn set_checkpoint(&mut self, position: u64) -> Result<(), BusError> {
        let position = i64::try_from(position)
            .map_err(|_| BusError::Checkpoint(format!("position {position} out of range")))?;
        self.leader()?
            .execute(
                "UPDATE relay_checkpoint SET position = ?2 WHERE relay = ?1",
                rusqlite::params![&self.relay, position],
            )
            .map_err(|e| BusError::Checkpoint(e.to_string()))?;
        Ok(())
    }
}

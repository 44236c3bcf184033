//! Who runs the workflows: one leader per database.
//!
//! The same pattern as the relay's leader election (`pathway_bus::coordinator`):
//! with PostgreSQL the leader holds a session-level advisory lock
//! ([`WORKFLOW_LOCK_KEY`]) on a connection taken out of the store's pool for
//! good, so the lock ends with the connection (a crashed or partitioned
//! leader loses it when PostgreSQL notices the session is gone). Standbys try
//! the lock every [`LEADER_STANDBY_POLL_MS`]. The embedded store can be opened
//! by one process only, so its lock is in-process: one holder per key (the
//! data directory) among the runtimes of this process.
//!
//! The lock only saves wasted work: a timer's firing and a saga's step are
//! appends with an expected version, so even two leaders at once (a leader
//! that has not noticed yet that its connection is gone) act once in effect.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::SagaError;

/// The advisory-lock key of the workflow leader ("PWSWEEP" in ASCII).
pub const WORKFLOW_LOCK_KEY: i64 = 0x0050_5753_5745_4550;
/// How often a standby tries to take the lock, and a leader checks it still
/// holds it.
pub const LEADER_STANDBY_POLL_MS: u64 = 1_000;
/// Longest a leader waits for its lock connection to answer a probe.
pub const LEADER_PROBE_TIMEOUT_MS: u64 = 5_000;

/// Keys held in this process (the in-process lock of the embedded store).
fn held_here() -> &'static Mutex<BTreeSet<String>> {
    static HELD: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(BTreeSet::new()))
}

enum Kind {
    Postgres {
        pool: deadpool_postgres::Pool,
        held: Option<deadpool_postgres::ClientWrapper>,
    },
    InProcess {
        key: String,
        held: bool,
    },
}

/// The workflow leader lock. Dropping it releases the lock.
pub struct LeaderLock {
    kind: Kind,
}

impl std::fmt::Debug for LeaderLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, held) = match &self.kind {
            Kind::Postgres { held, .. } => ("postgres", held.is_some()),
            Kind::InProcess { held, .. } => ("in-process", *held),
        };
        f.debug_struct("LeaderLock")
            .field("kind", &kind)
            .field("held", &held)
            .finish()
    }
}

impl LeaderLock {
    /// The advisory lock on the database of the store's pool.
    pub fn postgres(pool: deadpool_postgres::Pool) -> LeaderLock {
        LeaderLock {
            kind: Kind::Postgres { pool, held: None },
        }
    }

    /// An in-process lock named `key` (for the embedded store: its data directory).
    pub fn in_process(key: impl Into<String>) -> LeaderLock {
        LeaderLock {
            kind: Kind::InProcess {
                key: key.into(),
                held: false,
            },
        }
    }

    /// Whether this process believes it holds the lock.
    pub fn is_held(&self) -> bool {
        match &self.kind {
            Kind::Postgres { held, .. } => held.as_ref().is_some_and(|c| !c.is_closed()),
            Kind::InProcess { held, .. } => *held,
        }
    }

    /// Takes the lock if it is free; `Ok(true)` when held afterwards.
    pub async fn try_acquire(&mut self) -> Result<bool, SagaError> {
        if self.is_held() {
            return Ok(true);
        }
        match &mut self.kind {
            Kind::Postgres { pool, held } => {
                *held = None;
                let err = |e: &dyn std::fmt::Display| SagaError::Leadership(e.to_string());
                let object = pool.get().await.map_err(|e| err(&e))?;
                // Out of the pool for good: the session lock must end with
                // the connection, never be handed to another user of the pool.
                let client = deadpool_postgres::Object::take(object);
                let row = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&WORKFLOW_LOCK_KEY])
                    .await
                    .map_err(|e| err(&e))?;
                if row.get::<_, bool>(0) {
                    *held = Some(client);
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            Kind::InProcess { key, held } => {
                let mut keys = held_here().lock().expect("leader registry lock");
                *held = keys.insert(key.clone());
                Ok(*held)
            }
        }
    }

    /// Whether the lock is still held, asking PostgreSQL (a dead connection
    /// or a session that no longer answers means it is lost).
    pub async fn still_held(&mut self) -> bool {
        match &mut self.kind {
            Kind::Postgres { held, .. } => {
                let alive = match held.as_ref() {
                    Some(client) if !client.is_closed() => matches!(
                        tokio::time::timeout(
                            Duration::from_millis(LEADER_PROBE_TIMEOUT_MS),
                            client.simple_query("SELECT 1"),
                        )
                        .await,
                        Ok(Ok(_))
                    ),
                    _ => false,
                };
                if !alive {
                    *held = None;
                }
                alive
            }
            Kind::InProcess { held, .. } => *held,
        }
    }

    /// Gives the lock up (PostgreSQL: closes the lock's connection).
    pub fn release(&mut self) {
        match &mut self.kind {
            Kind::Postgres { held, .. } => *held = None,
            Kind::InProcess { key, held } => {
                if std::mem::take(held) {
                    held_here()
                        .lock()
                        .expect("leader registry lock")
                        .remove(key.as_str());
                }
            }
        }
    }
}

impl Drop for LeaderLock {
    fn drop(&mut self) {
        self.release();
    }
}

//! Where wrapped data keys live: a table of `key_id → (master key id,
//! wrapped key)`, whose `wrapped` column is cleared when a key is destroyed.
//! The row itself stays as a tombstone, so a destroyed key is never created
//! again.

use std::path::Path;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use crate::KeyError;

/// A data key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredKey {
    Live { master_id: String, wrapped: Vec<u8> },
    Destroyed,
}

/// The key table. Implementations must make an insert durable before they
/// return it: an event sealed with a key is appended only afterwards.
#[async_trait]
pub trait KeyTable: Send + Sync + 'static {
    /// The stored keys among `key_ids`; ids with no row are left out.
    async fn fetch(&self, key_ids: Vec<String>) -> Result<Vec<(String, StoredKey)>, KeyError>;
    /// Stores a key unless `key_id` already has a row; returns the row that
    /// is stored afterwards (the existing one, if a concurrent creator won).
    async fn insert_if_absent(
        &self,
        key_id: String,
        master_id: String,
        wrapped: Vec<u8>,
    ) -> Result<StoredKey, KeyError>;
    /// Destroys `key_id`'s key (a tombstone if it had none); `true` if a live
    /// key was destroyed.
    async fn destroy(&self, key_id: String, reason: String) -> Result<bool, KeyError>;
    /// The distinct ids of the master keys that wrap live keys (a few at
    /// most: more than one only during a master key rotation).
    async fn master_ids(&self) -> Result<Vec<String>, KeyError>;
    /// Up to `limit` live keys wrapped by `master_id` whose id sorts after
    /// `after`, in key id order: `(key_id, wrapped)`.
    async fn wrapped_by(
        &self,
        master_id: String,
        after: String,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, KeyError>;
    /// Replaces the wrapping of `key_id` if it is still live and wrapped by
    /// `old_master`; `true` if it was replaced.
    async fn rewrap(
        &self,
        key_id: String,
        old_master: String,
        new_master: String,
        wrapped: Vec<u8>,
    ) -> Result<bool, KeyError>;
}

/// Requests queued to the SQLite key table's thread.
const SQLITE_QUEUE_MAX: usize = 1024;
/// Requests served in one SQLite transaction (one fsync).
const SQLITE_REQUESTS_PER_COMMIT_MAX: usize = 512;
/// The key table file in an embedded data directory.
pub const SQLITE_KEY_FILE: &str = "keys.sqlite3";
/// Page cache of the key table's connection: a key table of 100,000 keys
/// (~20 MB) stays in memory once read, so a reader opening the fields of
/// many persons (a rebuild) looks each key up without reading its pages
/// from the file again (SQLite's default is 2 MiB).
const SQLITE_KEY_CACHE_KIB: i64 = 32 * 1024;

/// `(key_id, wrapped key)` pairs.
type Wrapped = Vec<(String, Vec<u8>)>;

enum Request {
    Fetch(
        Vec<String>,
        oneshot::Sender<Result<Vec<(String, StoredKey)>, KeyError>>,
    ),
    Insert(
        String,
        String,
        Vec<u8>,
        oneshot::Sender<Result<StoredKey, KeyError>>,
    ),
    Destroy(String, String, oneshot::Sender<Result<bool, KeyError>>),
    MasterIds(oneshot::Sender<Result<Vec<String>, KeyError>>),
    WrappedBy(
        String,
        String,
        usize,
        oneshot::Sender<Result<Wrapped, KeyError>>,
    ),
    Rewrap(
        String,
        String,
        String,
        Vec<u8>,
        oneshot::Sender<Result<bool, KeyError>>,
    ),
}

/// Keys in a SQLite file beside the embedded log (`keys.sqlite3`), served by
/// one thread that commits the requests queued meanwhile together (group
/// commit: one fsync for many new keys). `secure_delete` overwrites a
/// destroyed key's bytes, and the WAL is truncated after each destruction.
#[derive(Clone)]
pub struct SqliteKeyTable {
    tx: mpsc::Sender<Request>,
}

fn sql_err(e: rusqlite::Error) -> KeyError {
    KeyError::Table(e.to_string())
}

impl SqliteKeyTable {
    /// Opens (creating if absent) the key table in `dir`.
    pub fn open(dir: &Path) -> Result<Self, KeyError> {
        let path = dir.join(SQLITE_KEY_FILE);
        let conn = rusqlite::Connection::open(&path)
            .map_err(|e| KeyError::Table(format!("{}: {e}", path.display())))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA secure_delete = ON;
             CREATE TABLE IF NOT EXISTS data_keys (
                 key_id TEXT PRIMARY KEY,
                 master_key_id TEXT NOT NULL,
                 wrapped BLOB,
                 destroyed_reason TEXT
             );",
        )
        .map_err(sql_err)?;
        conn.pragma_update(None, "cache_size", -SQLITE_KEY_CACHE_KIB)
            .map_err(sql_err)?;
        let (tx, rx) = mpsc::channel(SQLITE_QUEUE_MAX);
        std::thread::Builder::new()
            .name("pathway-keys-sqlite".into())
            .spawn(move || serve(conn, rx))
            .map_err(|e| KeyError::Table(format!("starting the key table thread: {e}")))?;
        Ok(SqliteKeyTable { tx })
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, KeyError>>) -> Request,
    ) -> Result<T, KeyError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| KeyError::Table("the key table thread stopped".into()))?;
        answer
            .await
            .map_err(|_| KeyError::Table("the key table thread stopped".into()))?
    }
}

fn row(master_id: String, wrapped: Option<Vec<u8>>) -> StoredKey {
    match wrapped {
        Some(wrapped) => StoredKey::Live { master_id, wrapped },
        None => StoredKey::Destroyed,
    }
}

fn select(
    tx: &rusqlite::Transaction<'_>,
    key_id: &str,
) -> Result<Option<StoredKey>, rusqlite::Error> {
    use rusqlite::OptionalExtension;
    tx.prepare_cached("SELECT master_key_id, wrapped FROM data_keys WHERE key_id = ?1")?
        .query_row([key_id], |r| Ok(row(r.get(0)?, r.get(1)?)))
        .optional()
}

/// Answers one request once its transaction has committed (`None`) or failed.
type Reply = Box<dyn FnOnce(Option<&KeyError>)>;

fn serve(mut conn: rusqlite::Connection, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < SQLITE_REQUESTS_PER_COMMIT_MAX {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let destroyed = batch.iter().any(|r| matches!(r, Request::Destroy(..)));
        let mut replies: Vec<Reply> = Vec::new();
        let result = (|| -> Result<(), rusqlite::Error> {
            let tx = conn.transaction()?;
            for request in batch {
                match request {
                    Request::Fetch(ids, reply) => {
                        let mut out = Vec::with_capacity(ids.len());
                        for id in ids {
                            if let Some(k) = select(&tx, &id)? {
                                out.push((id, k));
                            }
                        }
                        replies.push(Box::new(move |e| {
                            let _ = reply.send(match e {
                                None => Ok(out),
                                Some(e) => Err(KeyError::Table(e.to_string())),
                            });
                        }));
                    }
                    Request::Insert(id, master_id, wrapped, reply) => {
                        tx.prepare_cached(
                            "INSERT INTO data_keys (key_id, master_key_id, wrapped)
                             VALUES (?1, ?2, ?3) ON CONFLICT (key_id) DO NOTHING",
                        )?
                        .execute(rusqlite::params![id, master_id, wrapped])?;
                        let stored = select(&tx, &id)?.unwrap_or(StoredKey::Destroyed);
                        replies.push(Box::new(move |e| {
                            let _ = reply.send(match e {
                                None => Ok(stored),
                                Some(e) => Err(KeyError::Table(e.to_string())),
                            });
                        }));
                    }
                    Request::MasterIds(reply) => {
                        let ids = tx
                            .prepare_cached(
                                "SELECT DISTINCT master_key_id FROM data_keys
                                 WHERE wrapped IS NOT NULL LIMIT 16",
                            )?
                            .query_map([], |r| r.get(0))?
                            .collect::<Result<Vec<String>, _>>()?;
                        replies.push(Box::new(move |e| {
                            let _ = reply.send(match e {
                                None => Ok(ids),
                                Some(e) => Err(KeyError::Table(e.to_string())),
                            });
                        }));
                    }
                    Request::WrappedBy(master, after, limit, reply) => {
                        let rows = tx
                            .prepare_cached(
                                "SELECT key_id, wrapped FROM data_keys
                                 WHERE master_key_id = ?1 AND wrapped IS NOT NULL AND key_id > ?2
                                 ORDER BY key_id LIMIT ?3",
                            )?
                            .query_map(rusqlite::params![master, after, limit as i64], |r| {
                                Ok((r.get(0)?, r.get(1)?))
                            })?
                            .collect::<Result<Vec<(String, Vec<u8>)>, _>>()?;
                        replies.push(Box::new(move |e| {
                            let _ = reply.send(match e {
                                None => Ok(rows),
                                Some(e) => Err(KeyError::Table(e.to_string())),
                            });
                        }));
                    }
                    Request::Rewrap(id, old, new, wrapped, reply) => {
                        let n = tx
                            .prepare_cached(
                                "UPDATE data_keys SET master_key_id = ?3, wrapped = ?4
                                 WHERE key_id = ?1 AND master_key_id = ?2 AND wrapped IS NOT NULL",
                            )?
                            .execute(rusqlite::params![id, old, new, wrapped])?;
                        replies.push(Box::new(move |e| {
                            let _ = reply.send(match e {
                                None => Ok(n == 1),
                                Some(e) => Err(KeyError::Table(e.to_string())),
                            });
                        }));
                    }
                    Request::Destroy(id, reason, reply) => {
                        let was_live = matches!(select(&tx, &id)?, Some(StoredKey::Live { .. }));
                        tx.prepare_cached(
                            "INSERT INTO data_keys (key_id, master_key_id, wrapped, destroyed_reason)
                             VALUES (?1, '', NULL, ?2)
                             ON CONFLICT (key_id) DO UPDATE SET wrapped = NULL,
                                 destroyed_reason = coalesce(data_keys.destroyed_reason, ?2)",
                        )?
                        .execute(rusqlite::params![id, reason])?;
                        replies.push(Box::new(move |e| {
                            let _ = reply.send(match e {
                                None => Ok(was_live),
                                Some(e) => Err(KeyError::Table(e.to_string())),
                            });
                        }));
                    }
                }
            }
            tx.commit()?;
            if destroyed {
                conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            }
            Ok(())
        })();
        let error = result.err().map(|e| KeyError::Table(e.to_string()));
        for reply in replies {
            reply(error.as_ref());
        }
    }
}

#[async_trait]
impl KeyTable for SqliteKeyTable {
    async fn fetch(&self, key_ids: Vec<String>) -> Result<Vec<(String, StoredKey)>, KeyError> {
        self.ask(|r| Request::Fetch(key_ids, r)).await
    }

    async fn insert_if_absent(
        &self,
        key_id: String,
        master_id: String,
        wrapped: Vec<u8>,
    ) -> Result<StoredKey, KeyError> {
        self.ask(|r| Request::Insert(key_id, master_id, wrapped, r))
            .await
    }

    async fn destroy(&self, key_id: String, reason: String) -> Result<bool, KeyError> {
        self.ask(|r| Request::Destroy(key_id, reason, r)).await
    }

    async fn master_ids(&self) -> Result<Vec<String>, KeyError> {
        self.ask(Request::MasterIds).await
    }

    async fn wrapped_by(
        &self,
        master_id: String,
        after: String,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, KeyError> {
        self.ask(|r| Request::WrappedBy(master_id, after, limit, r))
            .await
    }

    async fn rewrap(
        &self,
        key_id: String,
        old_master: String,
        new_master: String,
        wrapped: Vec<u8>,
    ) -> Result<bool, KeyError> {
        self.ask(|r| Request::Rewrap(key_id, old_master, new_master, wrapped, r))
            .await
    }
}

/// Keys in PostgreSQL, schema `pathway_keys` (kept apart from the log's
/// schema so the log can be granted and backed up without them).
#[derive(Clone)]
pub struct PostgresKeyTable {
    pool: deadpool_postgres::Pool,
}

/// Version 1 of the key table schema.
const POSTGRES_SCHEMA: &str = "
    CREATE SCHEMA IF NOT EXISTS pathway_keys;
    CREATE TABLE IF NOT EXISTS pathway_keys.data_keys (
        key_id text PRIMARY KEY,
        master_key_id text NOT NULL,
        wrapped bytea,
        created_at timestamptz NOT NULL DEFAULT now(),
        destroyed_at timestamptz,
        destroyed_reason text
    );";

/// A PostgreSQL or pool failure as a key-table error, with its causes
/// (tokio-postgres says only "db error"; the server's message is the source).
fn pg_err(e: impl std::error::Error) -> KeyError {
    let mut detail = format!("PostgreSQL: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    KeyError::Table(detail)
}

impl PostgresKeyTable {
    /// Opens the key table on `pool`, creating its schema if absent.
    pub async fn open(pool: deadpool_postgres::Pool) -> Result<Self, KeyError> {
        let client = pool.get().await.map_err(pg_err)?;
        // Two processes creating the schema at once: serialise on a lock.
        client
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock(hashtext('pathway_keys.schema'));
                 {POSTGRES_SCHEMA} COMMIT;"
            ))
            .await
            .map_err(pg_err)?;
        Ok(PostgresKeyTable { pool })
    }
}

#[async_trait]
impl KeyTable for PostgresKeyTable {
    async fn fetch(&self, key_ids: Vec<String>) -> Result<Vec<(String, StoredKey)>, KeyError> {
        let client = self.pool.get().await.map_err(pg_err)?;
        let rows = client
            .query(
                "SELECT key_id, master_key_id, wrapped FROM pathway_keys.data_keys
                 WHERE key_id = ANY($1)",
                &[&key_ids],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), row(r.get(1), r.get(2))))
            .collect())
    }

    async fn insert_if_absent(
        &self,
        key_id: String,
        master_id: String,
        wrapped: Vec<u8>,
    ) -> Result<StoredKey, KeyError> {
        let client = self.pool.get().await.map_err(pg_err)?;
        let inserted = client
            .execute(
                "INSERT INTO pathway_keys.data_keys (key_id, master_key_id, wrapped)
                 VALUES ($1, $2, $3) ON CONFLICT (key_id) DO NOTHING",
                &[&key_id, &master_id, &wrapped],
            )
            .await
            .map_err(pg_err)?;
        if inserted == 1 {
            return Ok(StoredKey::Live { master_id, wrapped });
        }
        // A concurrent creator (or a destruction) came first; its row is
        // committed, since the insert waited for it.
        let r = client
            .query_one(
                "SELECT master_key_id, wrapped FROM pathway_keys.data_keys WHERE key_id = $1",
                &[&key_id],
            )
            .await
            .map_err(pg_err)?;
        Ok(row(r.get(0), r.get(1)))
    }

    async fn destroy(&self, key_id: String, reason: String) -> Result<bool, KeyError> {
        let client = self.pool.get().await.map_err(pg_err)?;
        let was_live: bool = client
            .query_one(
                "WITH old AS (
                     SELECT wrapped IS NOT NULL AS live FROM pathway_keys.data_keys
                     WHERE key_id = $1 FOR UPDATE
                 ), upsert AS (
                     INSERT INTO pathway_keys.data_keys
                         (key_id, master_key_id, wrapped, destroyed_at, destroyed_reason)
                     VALUES ($1, '', NULL, now(), $2)
                     ON CONFLICT (key_id) DO UPDATE SET wrapped = NULL,
                         destroyed_at = coalesce(pathway_keys.data_keys.destroyed_at, now()),
                         destroyed_reason = coalesce(pathway_keys.data_keys.destroyed_reason, $2)
                 )
                 SELECT coalesce((SELECT live FROM old), false)",
                &[&key_id, &reason],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        Ok(was_live)
    }

    async fn master_ids(&self) -> Result<Vec<String>, KeyError> {
        let client = self.pool.get().await.map_err(pg_err)?;
        let rows = client
            .query(
                "SELECT DISTINCT master_key_id FROM pathway_keys.data_keys
                 WHERE wrapped IS NOT NULL LIMIT 16",
                &[],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn wrapped_by(
        &self,
        master_id: String,
        after: String,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, KeyError> {
        let client = self.pool.get().await.map_err(pg_err)?;
        let rows = client
            .query(
                "SELECT key_id, wrapped FROM pathway_keys.data_keys
                 WHERE master_key_id = $1 AND wrapped IS NOT NULL AND key_id > $2
                 ORDER BY key_id LIMIT $3",
                &[&master_id, &after, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn rewrap(
        &self,
        key_id: String,
        old_master: String,
        new_master: String,
        wrapped: Vec<u8>,
    ) -> Result<bool, KeyError> {
        let client = self.pool.get().await.map_err(pg_err)?;
        let n = client
            .execute(
                "UPDATE pathway_keys.data_keys SET master_key_id = $3, wrapped = $4
                 WHERE key_id = $1 AND master_key_id = $2 AND wrapped IS NOT NULL",
                &[&key_id, &old_master, &new_master, &wrapped],
            )
            .await
            .map_err(pg_err)?;
        Ok(n == 1)
    }
}

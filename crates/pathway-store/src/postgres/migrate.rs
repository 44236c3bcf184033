//! Versioned schema migrations, applied on startup.
//!
//! Each migration is an embedded SQL file with a version number; the versions
//! applied are recorded in `pathway_migrations`. All of it runs in one
//! transaction under an advisory lock, so several processes starting at once
//! against one database apply each migration exactly once, and a failed
//! migration leaves nothing behind.

use tokio_postgres::Client;

use super::{MIGRATION_LOCK_KEY, pg_error};
use crate::StoreError;

/// One schema change.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in version order. Never edit one that has shipped: add a new one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "events",
    sql: include_str!("../../migrations/0001_events.sql"),
}];

/// Brings the schema up to date. Refuses a database migrated by a newer build.
#[tracing::instrument(skip_all)]
pub(super) async fn run(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(pg_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS pathway_migrations (
            version    INT         PRIMARY KEY,
            name       TEXT        NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(pg_error)?;
    let applied: Vec<i32> = tx
        .query(
            "SELECT version FROM pathway_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let known_max = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(&newest) = applied.last()
        && newest > known_max
    {
        return Err(StoreError::Unavailable(format!(
            "database schema is at migration {newest}, newer than this build knows ({known_max})"
        )));
    }
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tracing::info!(version = m.version, name = m.name, "applying migration");
        tx.batch_execute(m.sql).await.map_err(pg_error)?;
        tx.execute(
            "INSERT INTO pathway_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await
        .map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn versions_are_dense_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                m.version,
                i as i32 + 1,
                "migration {} is out of sequence",
                m.name
            );
        }
    }
}

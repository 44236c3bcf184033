//! Each way of altering the log with direct SQL is found: by the chain
//! (changed payload, deleted row, swapped rows) or, for a rewrite that
//! recomputes every hash or a removed tail, by the signed checkpoint.

use pathway_audit::{
    checkpoint::{self, Checkpoint, CheckpointFinding},
    verify::{self, AuditReport},
};
use pathway_store::{
    ChainBreak, ChainBreakKind, EventStore, ReadFilter, chain::Canonical, postgres::PostgresStore,
};

use crate::pg::{filled_store, fresh_database};

const PERSONS: usize = 12;

/// A filled log with a checkpoint of its head, the key's public half, and a
/// tampering client.
async fn checkpointed() -> (
    PostgresStore,
    tokio_postgres::Client,
    Checkpoint,
    checkpoint::VerifyingKey,
    pathway_testkit::TestDb,
) {
    let (db, client) = fresh_database().await;
    let store = filled_store(db.url(), PERSONS).await;
    let key = checkpoint::generate_key().expect("a key");
    let cp = checkpoint::checkpoint(&store, &key, chrono::Utc::now())
        .await
        .expect("checkpoint");
    assert!(cp.position > 50, "the simulation filled the log");
    (store, client, cp, key.verifying_key(), db)
}

/// Audits the whole log with both verifiers (binary COPY and the store API),
/// which must agree, against the checkpoint.
async fn audit(
    store: &PostgresStore,
    cp: &Checkpoint,
    key: &checkpoint::VerifyingKey,
) -> AuditReport {
    let report = verify::audit(store, 1, None, Some(cp), Some(key))
        .await
        .expect("audit runs");
    let generic = verify::verify_store(store, 1, None, &mut |_| {})
        .await
        .expect("verify through the store API");
    assert_eq!(generic, report.chain, "both verifiers agree");
    let own = store.verify(1, None).await.expect("the store's verify");
    assert_eq!(
        own.first_break, report.chain.first_break,
        "the store's own verify agrees"
    );
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn untouched_log_verifies_and_extends_its_checkpoint() {
    let (store, _sql, cp, key, _db) = checkpointed().await;
    let report = audit(&store, &cp, &key).await;
    assert_eq!(report.chain.first_break, None);
    assert_eq!(
        report.chain.checked,
        cp.position + 1,
        "the checkpoint event itself is in the log"
    );
    assert_eq!(
        report.checkpoint.as_ref().map(|c| &c.1),
        Some(&CheckpointFinding::Extended)
    );
    assert_eq!(report.in_log.len(), 1);
    assert!(report.ok());
    // A sub-range verifies from the stored hash before it.
    let part = verify::verify_postgres(&store, 10, Some(20), &mut |_| {})
        .await
        .expect("range");
    assert_eq!(
        (part.checked, part.head.position, part.first_break),
        (11, 20, None)
    );
    // Another key's checkpoint is not trusted.
    let other = checkpoint::generate_key().expect("a key").verifying_key();
    let report = verify::audit(&store, 1, None, Some(&cp), Some(&other))
        .await
        .expect("audit");
    assert!(matches!(
        report.checkpoint,
        Some((_, CheckpointFinding::BadSignature(_)))
    ));
    assert!(!report.ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn updated_payload_is_found() {
    let (store, sql, cp, key, _db) = checkpointed().await;
    sql.execute(
        "UPDATE events SET payload = payload || '\\x00'::bytea WHERE position = 17",
        &[],
    )
    .await
    .expect("tamper");
    let report = audit(&store, &cp, &key).await;
    assert_eq!(
        report.chain.first_break,
        Some(ChainBreak {
            position: 17,
            kind: ChainBreakKind::ContentChanged
        })
    );
    assert_eq!(
        report.chain.head.position, 16,
        "verified up to the record before"
    );
    assert!(!report.ok());
    assert!(verify::describe(&report.chain.first_break.unwrap()).contains("position 17: payload"));
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_row_is_found() {
    let (store, sql, cp, key, _db) = checkpointed().await;
    sql.execute("DELETE FROM events WHERE position = 23", &[])
        .await
        .expect("tamper");
    let report = audit(&store, &cp, &key).await;
    assert_eq!(
        report.chain.first_break,
        Some(ChainBreak {
            position: 23,
            kind: ChainBreakKind::RecordMissing
        })
    );
    assert_eq!(
        report.checkpoint.as_ref().map(|c| &c.1),
        Some(&CheckpointFinding::ChainBroken)
    );
    assert!(!report.ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn swapped_rows_are_found() {
    let (store, sql, cp, key, _db) = checkpointed().await;
    sql.batch_execute(
        "BEGIN;
         UPDATE events SET position = 1000000 WHERE position = 31;
         UPDATE events SET position = 31 WHERE position = 38;
         UPDATE events SET position = 38 WHERE position = 1000000;
         COMMIT;",
    )
    .await
    .expect("tamper");
    let report = audit(&store, &cp, &key).await;
    assert_eq!(
        report.chain.first_break,
        Some(ChainBreak {
            position: 31,
            kind: ChainBreakKind::OrderChanged
        })
    );
    assert!(!report.ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_rewritten_with_recomputed_hashes_is_found_by_the_checkpoint() {
    let (store, mut sql, cp, key, _db) = checkpointed().await;
    // Change one payload and recompute every hash from there to the head, so
    // the chain verifies on its own.
    let from = 40;
    let records = store
        .read_all(from - 1, usize::MAX, &ReadFilter::all())
        .await
        .expect("read the tail");
    let mut prev = records[0].hash;
    let tx = sql.transaction().await.expect("begin");
    for mut r in records.into_iter().skip(1) {
        if r.position == from {
            let mut payload = r.payload.to_vec();
            payload.push(0);
            r.payload = payload.into();
        }
        r.prev_hash = prev;
        r.hash = Canonical::of(&r).hash(&prev);
        prev = r.hash;
        tx.execute(
            "UPDATE events SET payload = $1, prev_hash = $2, hash = $3 WHERE position = $4",
            &[
                &r.payload.as_ref(),
                &r.prev_hash.as_slice(),
                &r.hash.as_slice(),
                &(r.position as i64),
            ],
        )
        .await
        .expect("rewrite");
    }
    tx.commit().await.expect("commit");

    let report = audit(&store, &cp, &key).await;
    assert_eq!(
        report.chain.first_break, None,
        "the recomputed chain verifies on its own"
    );
    match &report.checkpoint {
        Some((_, CheckpointFinding::Rewritten { stored_hash })) => {
            assert_ne!(*stored_hash, cp.head_hash)
        }
        other => panic!("the checkpoint must catch the rewrite, found {other:?}"),
    }
    assert!(matches!(
        report.in_log[0].1,
        CheckpointFinding::Rewritten { .. }
    ));
    assert!(!report.ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn removed_tail_is_found_by_the_checkpoint() {
    let (store, sql, cp, key, _db) = checkpointed().await;
    sql.execute(
        "DELETE FROM events WHERE position >= $1",
        &[&((cp.position - 5) as i64)],
    )
    .await
    .expect("tamper");
    let report = audit(&store, &cp, &key).await;
    assert_eq!(
        report.chain.first_break, None,
        "a shorter chain verifies on its own"
    );
    assert_eq!(
        report.checkpoint.as_ref().map(|c| &c.1),
        Some(&CheckpointFinding::Truncated {
            head: cp.position - 6
        })
    );
    assert!(!report.ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_file_round_trips_and_a_changed_field_fails_the_signature() {
    let (store, _sql, cp, key, _db) = checkpointed().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cp.json");
    cp.write(&path).expect("write");
    let read = Checkpoint::read(&path).expect("read");
    assert_eq!(read, cp);
    let mut forged = cp.clone();
    forged.position -= 1;
    forged.head_hash = store
        .read_all(forged.position, 1, &ReadFilter::all())
        .await
        .expect("read")[0]
        .hash;
    assert!(forged.check_signature(&key).is_err());
    // Key files: 0600, and refused when others may read them.
    let key_path = dir.path().join("k.pem");
    let signing = checkpoint::generate_key().expect("key");
    checkpoint::write_key(&key_path, &signing).expect("write key");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&key_path)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        checkpoint::read_key(&key_path)
            .expect("read key")
            .to_bytes(),
        signing.to_bytes()
    );
    assert!(
        checkpoint::write_key(&key_path, &signing).is_err(),
        "never overwrites"
    );
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(checkpoint::read_key(&key_path).is_err());
}

//! Export bundles: a round trip verifies; one flipped byte anywhere, a
//! missing record or a missing checkpoint file fails with a finding that
//! names it.

use std::path::Path;

use pathway_audit::{
    bundle::{self, EVENTS_FILE, MANIFEST_FILE, Manifest},
    checkpoint,
};
use pathway_engine::Engine;
use pathway_proto::Message as _;
use pathway_sim::SimConfig;
use pathway_store::{EventStore, ReadFilter, embedded::EmbeddedStore};

/// A simulated log with a checkpoint in the middle and one at the end, and
/// the trusted key.
async fn log(dir: &Path) -> (EmbeddedStore, checkpoint::VerifyingKey) {
    let store = EmbeddedStore::open(&dir.join("log")).expect("store");
    let cfg = SimConfig {
        persons: 10,
        seed: 5,
        concurrency: 2,
    };
    pathway_sim::run(&Engine::unsealed(store.clone()), &cfg, |_, _| {})
        .await
        .expect("simulate");
    let key = checkpoint::generate_key().expect("key");
    checkpoint::checkpoint(&store, &key, chrono::Utc::now())
        .await
        .expect("checkpoint");
    (store, key.verifying_key())
}

async fn exported(
    test: &str,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    checkpoint::VerifyingKey,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, key) = log(dir.path()).await;
    let out = dir.path().join(format!("bundle-{test}"));
    let head = store.head().await.expect("head").position;
    let done = bundle::export(&store, 1, None, &out).await.expect("export");
    assert_eq!(done.manifest.records, head);
    assert_eq!(done.checkpoints.len(), 1);
    (dir, out, key)
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).expect("write");
}

fn findings(out: &Path, key: &checkpoint::VerifyingKey) -> String {
    let report = bundle::verify_bundle(out, Some(key));
    assert!(!report.ok(), "the damaged bundle must fail");
    report.findings.join("\n")
}

/// The records of a bundle.
fn records(out: &Path) -> Vec<pathway_domain::pb::ExportedRecord> {
    let bytes = std::fs::read(out.join(EVENTS_FILE)).expect("read");
    let mut rest: &[u8] = &bytes;
    let mut out = Vec::new();
    while !rest.is_empty() {
        out.push(
            pathway_domain::pb::ExportedRecord::decode_length_delimited(&mut rest).expect("decode"),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn export_then_verify_round_trips() {
    let (dir, out, key) = exported("round").await;
    let report = bundle::verify_bundle(&out, Some(&key));
    assert!(report.ok(), "{:?}", report.findings);
    let manifest = report.manifest.expect("manifest");
    assert_eq!(report.records_checked, manifest.records);
    assert_eq!(report.checkpoints.len(), 1);
    assert!(
        report.checkpoints[0]
            .1
            .as_ref()
            .is_ok_and(|s| s.contains("checkpoint ok"))
    );
    // Every stored column is in the bundle, byte for byte.
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("store");
    let stored = store
        .read_all(1, usize::MAX, &ReadFilter::all())
        .await
        .expect("read");
    let exported: Vec<_> = records(&out)
        .into_iter()
        .map(|r| bundle::from_exported(r).expect("a record"))
        .collect();
    assert_eq!(exported, stored);
    // Without the trusted key it still verifies, saying the key was not checked.
    let report = bundle::verify_bundle(&out, None);
    assert!(report.ok());
    assert!(
        report.checkpoints[0]
            .1
            .as_ref()
            .is_ok_and(|s| s.contains("not checked"))
    );
    // Another key: the checkpoint is not trusted.
    let other = checkpoint::generate_key().expect("key").verifying_key();
    assert!(!bundle::verify_bundle(&out, Some(&other)).ok());
    // A sub-range anchors at the stored hash before it.
    let part = dir.path().join("part");
    let done = bundle::export(&store, 10, Some(20), &part)
        .await
        .expect("export");
    assert_eq!(done.manifest.records, 11);
    let report = bundle::verify_bundle(&part, Some(&key));
    assert!(report.ok(), "{:?}", report.findings);
    assert!(
        bundle::export(&store, 1, None, &part).await.is_err(),
        "never writes into a bundle"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_payload_byte_is_named() {
    let (_dir, out, key) = exported("payload").await;
    let target = &records(&out)[16];
    assert_eq!(target.position, 17);
    let bytes = std::fs::read(out.join(EVENTS_FILE)).expect("read");
    let at = bytes
        .windows(target.payload.len())
        .position(|w| w == target.payload.as_slice())
        .expect("the payload is in the file");
    flip(&out.join(EVENTS_FILE), at + target.payload.len() / 2);
    let found = findings(&out, &key);
    assert!(found.contains("events.pb: altered"), "{found}");
    assert!(found.contains("position 17: payload"), "{found}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_anywhere_fails() {
    let (_dir, out, key) = exported("anywhere").await;
    let events = std::fs::read(out.join(EVENTS_FILE)).expect("read");
    let manifest = std::fs::read(out.join(MANIFEST_FILE)).expect("read");
    for (file, len) in [(EVENTS_FILE, events.len()), (MANIFEST_FILE, manifest.len())] {
        // Every byte of the manifest, and a spread of the records.
        let step = if file == MANIFEST_FILE {
            1
        } else {
            len / 97 + 1
        };
        for at in (0..len).step_by(step) {
            let path = out.join(file);
            let original = std::fs::read(&path).expect("read");
            flip(&path, at);
            let report = bundle::verify_bundle(&out, Some(&key));
            assert!(!report.ok(), "a flipped byte at {file}:{at} went unnoticed");
            assert!(
                report.findings.iter().any(|f| f.starts_with(file)),
                "{file}:{at}: the findings do not name the file: {:?}",
                report.findings
            );
            std::fs::write(&path, original).expect("restore");
        }
    }
    // The checkpoint file too.
    let cp = std::fs::read_dir(out.join("checkpoints"))
        .expect("dir")
        .next()
        .expect("a checkpoint file")
        .expect("entry")
        .path();
    flip(&cp, 40);
    assert!(findings(&out, &key).contains("checkpoints/checkpoint-"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_record_is_named_even_with_recomputed_digests() {
    let (_dir, out, key) = exported("missing").await;
    // Drop position 23 and restate the file's digest, so only the records
    // themselves can tell.
    let mut bytes = Vec::new();
    for r in records(&out).into_iter().filter(|r| r.position != 23) {
        r.encode_length_delimited(&mut bytes).expect("encode");
    }
    std::fs::write(out.join(EVENTS_FILE), &bytes).expect("write");
    let mut manifest: Manifest =
        serde_json::from_slice(&std::fs::read(out.join(MANIFEST_FILE)).expect("read"))
            .expect("manifest");
    use sha2::Digest as _;
    manifest.files.insert(
        EVENTS_FILE.to_owned(),
        hex::encode(sha2::Sha256::digest(&bytes)),
    );
    manifest.write(&out).expect("write");
    let found = findings(&out, &key);
    assert!(found.contains("position 23: record missing"), "{found}");
    // Dropping the last record: the bundle ends before the manifest's range.
    let last = records(&out).last().expect("records").position;
    let mut bytes = Vec::new();
    for r in records(&out).into_iter().filter(|r| r.position != last) {
        r.encode_length_delimited(&mut bytes).expect("encode");
    }
    std::fs::write(out.join(EVENTS_FILE), &bytes).expect("write");
    assert!(findings(&out, &key).contains("record missing"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_checkpoint_file_is_named() {
    let (_dir, out, key) = exported("nocp").await;
    let mut manifest: Manifest =
        serde_json::from_slice(&std::fs::read(out.join(MANIFEST_FILE)).expect("read"))
            .expect("manifest");
    let name = manifest
        .files
        .keys()
        .find(|k| k.starts_with("checkpoints/"))
        .cloned()
        .expect("a checkpoint file");
    manifest.files.remove(&name);
    std::fs::remove_file(out.join(&name)).expect("remove");
    manifest.write(&out).expect("write");
    let found = findings(&out, &key);
    assert!(found.contains(&format!("{name}: missing")), "{found}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_exported_from_postgresql_verifies() {
    let (db, _sql) = crate::pg::fresh_database().await;
    let store = crate::pg::filled_store(db.url(), 8).await;
    let key = checkpoint::generate_key().expect("key");
    let cp = checkpoint::checkpoint(&store, &key, chrono::Utc::now())
        .await
        .expect("checkpoint");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bundle");
    let done = bundle::export(&store, 1, None, &out).await.expect("export");
    assert_eq!(done.manifest.to, cp.event_position.expect("recorded"));
    let report = bundle::verify_bundle(&out, Some(&key.verifying_key()));
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!(
        bundle::judge_kept_checkpoint(&out, &cp, &key.verifying_key())
            .map(|s| s.contains("checkpoint ok")),
        Ok(true)
    );
}

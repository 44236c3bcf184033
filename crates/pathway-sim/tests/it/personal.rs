//! The log holds personal data only sealed: a simulated province run through
//! an engine with a keyring leaves no name, ID number, phone, address or
//! certificate number in the stored bytes, and every personal field sealed.

use pathway_domain::{Event, pb, personal::personal_fields};
use pathway_engine::{Engine, Keyring};
use pathway_keys::MasterKey;
use pathway_sim::SimConfig;
use pathway_store::{EventStore, ReadFilter, RecordedEvent};

const PERSONS: usize = 30;

async fn simulate<S: EventStore + Clone>(store: S, keyring: Keyring) -> Vec<RecordedEvent> {
    let engine = Engine::new(store.clone(), keyring);
    let cfg = SimConfig {
        persons: PERSONS,
        seed: 5,
        concurrency: 4,
    };
    pathway_sim::run(&engine, &cfg, |_, _| {})
        .await
        .expect("simulation runs");
    let mut all = Vec::new();
    loop {
        let batch = store
            .read_all(all.len() as u64 + 1, 10_000, &ReadFilter::default())
            .await
            .expect("read_all");
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

/// The clear texts of every personal field, after checking that each one is
/// stored sealed and opens with the keyring.
async fn clear_texts(records: &[RecordedEvent], keyring: &Keyring) -> Vec<String> {
    let mut sealed_fields = 0;
    let mut events: Vec<Event> = Vec::new();
    for r in records {
        let mut event = pathway_engine::decode(r).expect("decodes");
        if let Some(pf) = personal_fields(&mut event) {
            for (field, p) in pf.fields {
                assert!(
                    matches!(p.value, Some(pb::personal::Value::Sealed(_))),
                    "{} field {field} at position {} is stored in the clear",
                    r.event_type,
                    r.position
                );
                sealed_fields += 1;
            }
        }
        events.push(event);
    }
    assert!(
        sealed_fields > PERSONS * 3,
        "only {sealed_fields} sealed fields"
    );
    keyring
        .open_all(records.iter().map(|r| r.event_id).zip(events.iter_mut()))
        .await
        .expect("every sealed field opens");
    let mut texts = Vec::new();
    for event in &mut events {
        if let Some(pf) = personal_fields(event) {
            for (_, p) in pf.fields {
                match &p.value {
                    Some(pb::personal::Value::Text(t)) if t.len() >= 4 => texts.push(t.clone()),
                    Some(pb::personal::Value::Text(_) | pb::personal::Value::Integer(_)) => {}
                    other => panic!("a field did not open: {other:?}"),
                }
            }
        }
    }
    assert!(texts.len() >= PERSONS * 2, "only {} texts", texts.len());
    texts
}

fn find(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn the_embedded_log_file_holds_no_personal_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = pathway_store::embedded::EmbeddedStore::open(dir.path()).expect("open");
    let keyring = pathway_keys::embedded_keyring(dir.path(), Some(MasterKey::from_bytes([4; 32])))
        .await
        .expect("keyring");
    let records = simulate(store.clone(), keyring.clone()).await;
    let texts = clear_texts(&records, &keyring).await;
    drop(store);
    // Every file of the log (database, WAL), byte by byte.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("events"))
        {
            bytes.extend(std::fs::read(&path).expect("read"));
        }
    }
    assert!(bytes.len() > 10_000, "the log files were found");
    for t in &texts {
        assert!(!find(&bytes, t), "{t:?} is in the log files in the clear");
    }
}

#[tokio::test]
async fn the_postgres_events_table_holds_no_personal_text() {
    let db = pathway_testkit::TestDb::create();
    let store = pathway_store::postgres::PostgresStore::connect(db.url())
        .await
        .expect("connect");
    let keyring =
        pathway_keys::postgres_keyring(store.pool().clone(), MasterKey::from_bytes([5; 32]))
            .await
            .expect("keyring");
    let records = simulate(store.clone(), keyring.clone()).await;
    let texts = clear_texts(&records, &keyring).await;
    // Straight from the table, as an intruder with SQL access would read it.
    let client = pathway_testkit::connect(db.url()).await;
    let rows = client
        .query("SELECT metadata, payload, stream_id FROM events", &[])
        .await
        .expect("select");
    assert_eq!(rows.len(), records.len());
    let mut bytes = Vec::new();
    for row in &rows {
        bytes.extend_from_slice(row.get::<_, &[u8]>(0));
        bytes.extend_from_slice(row.get::<_, &[u8]>(1));
        bytes.extend_from_slice(row.get::<_, &str>(2).as_bytes());
    }
    for t in &texts {
        assert!(
            !find(&bytes, t),
            "{t:?} is in the events table in the clear"
        );
    }
}

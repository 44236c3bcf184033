//! Commands through the engine on a real (embedded) log.

use chrono::{NaiveDate, TimeZone, Utc};
use pathway_domain::{
    Aggregate, pb,
    person::{Person, PersonCommand, RegisterPerson},
    validate,
};
use pathway_engine::{CommandMeta, Engine, EngineError, decode, decode_envelope};
use pathway_store::{EventStore, ReadFilter, embedded::EmbeddedStore};
use uuid::Uuid;

fn store() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("open store");
    (dir, store)
}

fn meta(command_id: u128) -> CommandMeta {
    CommandMeta {
        command_id: Uuid::from_u128(command_id),
        correlation_id: Uuid::from_u128(7),
        causation_id: None,
        actor_department: pb::Department::Dpf,
        actor_region: "230100".into(),
        actor_id: "case-worker-1".into(),
        now: Utc
            .with_ymd_and_hms(2023, 5, 1, 2, 0, 0)
            .single()
            .expect("valid time"),
    }
}

fn register(person_ref: &str, id_number: &str) -> PersonCommand {
    PersonCommand::RegisterPerson(RegisterPerson {
        person_ref: person_ref.into(),
        name: "王伟".into(),
        id_number: id_number.into(),
        id_hmac: vec![1; 32],
        phone: None,
        address: None,
        hukou_region: "230102".into(),
        residence_region: "230102".into(),
        registering_org: "230100-dpf".into(),
    })
}

fn valid_id() -> String {
    validate::make_resident_id(
        "230102",
        NaiveDate::from_ymd_opt(1990, 4, 12).expect("date"),
        15,
    )
}

#[tokio::test]
async fn a_decision_is_appended_with_its_envelope() {
    let (_dir, store) = store();
    let engine = Engine::new(store.clone());
    let cmd = register("p-1", &valid_id());
    let handled = engine
        .handle::<Person>("person-p-1", &cmd, &meta(1))
        .await
        .expect("accepted");
    let append = handled.append.expect("appended");
    assert_eq!(
        (
            append.first_position,
            append.last_position,
            append.stream_version
        ),
        (1, 1, 1)
    );

    let stored = store
        .read_all(1, 10, &ReadFilter::all())
        .await
        .expect("read");
    assert_eq!(stored.len(), 1);
    let event = decode(&stored[0]).expect("decodes");
    assert_eq!(event.event_type(), "PersonRegistered");
    assert_eq!(stored[0].event_type, "PersonRegistered");
    let env = decode_envelope(&stored[0]).expect("envelope decodes");
    assert_eq!(env.command_id, Uuid::from_u128(1).to_string());
    assert_eq!(env.causation_id, Uuid::from_u128(1).to_string());
    assert_eq!(env.correlation_id, Uuid::from_u128(7).to_string());
    assert_eq!(env.actor_department(), pb::Department::Dpf);
    assert_eq!(env.actor_region, "230100");
    assert_eq!(env.event_id, stored[0].event_id.to_string());

    let (state, version) = engine.load::<Person>("person-p-1").await.expect("load");
    assert_eq!(version, 1);
    assert_eq!(state, Person::fold([&event]));
}

#[tokio::test]
async fn a_retried_command_returns_the_first_result_and_appends_nothing() {
    let (_dir, store) = store();
    let engine = Engine::new(store.clone());
    let id = valid_id();
    let first = engine
        .handle::<Person>("person-p-2", &register("p-2", &id), &meta(2))
        .await
        .expect("first");
    // The same command again (same command id): the stream now exists, so the
    // domain would reject a second registration — but the event ids are the
    // same, and it must not act twice either way.
    let again = engine
        .handle::<Person>("person-p-2", &register("p-2", &id), &meta(2))
        .await;
    match again {
        Ok(h) => assert_eq!(h.append, first.append),
        Err(EngineError::Rejected(r)) => assert_eq!(r.field, "command", "{r}"),
        Err(e) => panic!("unexpected {e}"),
    }
    assert_eq!(
        store.head().await.expect("head").position,
        1,
        "nothing appended twice"
    );
}

#[tokio::test]
async fn a_rejection_names_field_and_rule_and_writes_nothing() {
    let (_dir, store) = store();
    let engine = Engine::new(store.clone());
    let mut id = valid_id();
    let last = if id.ends_with('0') { "1" } else { "0" };
    id.replace_range(17..18, last);
    let err = engine
        .handle::<Person>("person-p-3", &register("p-3", &id), &meta(3))
        .await
        .unwrap_err();
    let EngineError::Rejected(r) = err else {
        panic!("expected a rejection, got {err}")
    };
    assert_eq!(r.field, "id_number");
    assert!(r.to_string().contains("GB 11643"), "{r}");
    assert_eq!(store.head().await.expect("head").position, 0);
}

#[tokio::test]
async fn concurrent_commands_on_one_stream_are_serialised_by_expected_version() {
    let (_dir, store) = store();
    let engine = Engine::new(store.clone());
    engine
        .handle::<Person>("person-p-4", &register("p-4", &valid_id()), &meta(4))
        .await
        .expect("registered");
    // Eight verifications of the same year race: each reloads on conflict, and
    // every accepted one lands at its own version.
    let mut tasks = Vec::new();
    for i in 0..8u128 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let cmd = PersonCommand::VerifyBasicInfo(pathway_domain::person::VerifyBasicInfo {
                person_ref: "p-4".into(),
                year: 2023,
                verified_by_org: "230102-dpf".into(),
                employment_status: pathway_domain::person::EmploymentStatus::Unemployed,
                wants_work: true,
                has_work_capacity: true,
                non_work_reason: None,
                verified_on: NaiveDate::from_ymd_opt(2023, 4, 1).expect("date"),
            });
            engine
                .handle::<Person>("person-p-4", &cmd, &meta(100 + i))
                .await
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        let h = t.await.expect("task").expect("accepted after retries");
        versions.push(h.append.expect("appended").stream_version);
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=9).collect::<Vec<u64>>());
    let report = store.verify(1, None).await.expect("verify");
    assert_eq!((report.checked, report.first_break), (9, None));
}

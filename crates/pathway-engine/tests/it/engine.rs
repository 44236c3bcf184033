//! Commands through the engine on a real (embedded) log.

use chrono::{NaiveDate, TimeZone, Utc};
use pathway_domain::{
    Aggregate, pb,
    person::{EmploymentStatus, Person, PersonCommand, RegisterPerson, VerifyBasicInfo},
    validate,
};
use pathway_engine::{CommandMeta, Engine, EngineError, decode, decode_envelope, event_id};
use pathway_store::{EventStore, ReadFilter, embedded::EmbeddedStore};
use uuid::Uuid;

pub(crate) fn store() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("open store");
    (dir, store)
}

pub(crate) fn meta(command_id: u128) -> CommandMeta {
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

fn verify(person_ref: &str, wants_work: bool) -> PersonCommand {
    PersonCommand::VerifyBasicInfo(VerifyBasicInfo {
        person_ref: person_ref.into(),
        year: 2023,
        verified_by_org: "230102-dpf".into(),
        employment_status: EmploymentStatus::Unemployed,
        wants_work,
        has_work_capacity: true,
        non_work_reason: None,
        verified_on: NaiveDate::from_ymd_opt(2023, 4, 1).expect("date"),
    })
}

pub(crate) fn valid_id() -> String {
    validate::make_resident_id(
        "230102",
        NaiveDate::from_ymd_opt(1990, 4, 12).expect("date"),
        15,
    )
}

#[tokio::test]
async fn a_decision_is_appended_with_its_envelope() {
    let (_dir, store) = store();
    let engine = Engine::unsealed(store.clone());
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
    let engine = Engine::unsealed(store.clone());
    let id = valid_id();
    let first = engine
        .handle::<Person>("person-p-2", &register("p-2", &id), &meta(2))
        .await
        .expect("first");
    // The same command again (same command id): the stream now exists, so
    // deciding again would reject a second registration; instead the engine
    // finds the command's events and answers with them.
    let again = engine
        .handle::<Person>("person-p-2", &register("p-2", &id), &meta(2))
        .await
        .expect("a retry is answered with the first result");
    assert_eq!(again, first);
    assert_eq!(again.events.len(), 1);
    assert_eq!(
        store.head().await.expect("head").position,
        1,
        "nothing appended twice"
    );
}

#[tokio::test]
async fn a_retry_sent_later_is_checked_at_the_time_of_the_first() {
    let (_dir, store) = store();
    let engine = Engine::unsealed(store.clone());
    let id = valid_id();
    let first = engine
        .handle::<Person>("person-p-5", &register("p-5", &id), &meta(5))
        .await
        .expect("first");
    // A client retrying a day later: the registration date inside the event is
    // the first decision's, and the retry is still the same command.
    let mut later = meta(5);
    later.now += chrono::Duration::days(1);
    let again = engine
        .handle::<Person>("person-p-5", &register("p-5", &id), &later)
        .await
        .expect("same command");
    assert_eq!(again, first);
    assert_eq!(store.head().await.expect("head").position, 1);
}

#[tokio::test]
async fn a_command_id_reused_for_another_command_is_refused() {
    let (_dir, store) = store();
    let engine = Engine::unsealed(store.clone());
    engine
        .handle::<Person>("person-p-6", &register("p-6", &valid_id()), &meta(6))
        .await
        .expect("registered");
    engine
        .handle::<Person>("person-p-6", &verify("p-6", true), &meta(60))
        .await
        .expect("verified");
    let err = engine
        .handle::<Person>("person-p-6", &verify("p-6", false), &meta(60))
        .await
        .unwrap_err();
    let EngineError::CommandIdReused { stream, command_id } = &err else {
        panic!("expected a reused command id, got {err}")
    };
    assert_eq!(
        (stream.as_str(), *command_id),
        ("person-p-6", Uuid::from_u128(60))
    );
    assert_eq!(
        err.to_string(),
        "stream person-p-6: command id 00000000-0000-0000-0000-00000000003c was already used for a different command"
    );
    assert_eq!(store.head().await.expect("head").position, 2);
}

#[tokio::test]
async fn a_command_id_is_scoped_to_its_stream() {
    let (_dir, store) = store();
    let engine = Engine::unsealed(store.clone());
    let id = valid_id();
    let mut other = register("p-8", &id);
    if let PersonCommand::RegisterPerson(r) = &mut other {
        r.id_hmac = vec![2; 32];
    }
    let a = engine
        .handle::<Person>("person-p-7", &register("p-7", &id), &meta(7))
        .await
        .expect("p-7");
    let b = engine
        .handle::<Person>("person-p-8", &other, &meta(7))
        .await
        .expect("the same id on another stream is another command");
    assert_eq!(a.append.map(|r| r.first_position), Some(1));
    assert_eq!(b.append.map(|r| r.first_position), Some(2));
    let stored = store
        .read_all(1, 10, &ReadFilter::all())
        .await
        .expect("read");
    assert_ne!(stored[0].event_id, stored[1].event_id);
    assert_eq!(
        stored[0].event_id,
        event_id(Uuid::from_u128(7), "person-p-7", 0)
    );
}

#[tokio::test]
async fn concurrent_retries_of_one_command_act_once() {
    let (_dir, store) = store();
    let engine = Engine::unsealed(store.clone());
    engine
        .handle::<Person>("person-p-9", &register("p-9", &valid_id()), &meta(9))
        .await
        .expect("registered");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            engine
                .handle::<Person>("person-p-9", &verify("p-9", true), &meta(90))
                .await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task").expect("accepted"));
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
    assert_eq!(store.head().await.expect("head").position, 2);
}

#[tokio::test]
async fn a_rejection_names_field_and_rule_and_writes_nothing() {
    let (_dir, store) = store();
    let engine = Engine::unsealed(store.clone());
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
    let engine = Engine::unsealed(store.clone());
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
            let cmd = verify("p-4", true);
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

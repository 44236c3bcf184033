//! One active registration per ID number: the reservation stream decides
//! races, retries are idempotent, and only a valid registration reserves.

use pathway_domain::{
    Aggregate, Event,
    person::{Person, RegisterPerson},
};
use pathway_engine::{
    Engine, EngineError, decode,
    reservation::{Reservation, ReserveRegistration, reservation_stream},
};
use pathway_store::{EventStore, ReadFilter};

use crate::engine::{meta, store, valid_id};

fn registration(person_ref: &str, id_number: &str) -> RegisterPerson {
    RegisterPerson {
        person_ref: person_ref.into(),
        name: "李娜".into(),
        id_number: id_number.into(),
        id_hmac: vec![0xab; 32],
        phone: None,
        address: None,
        hukou_region: "230102".into(),
        residence_region: "230102".into(),
        registering_org: "230100-dpf".into(),
    }
}

const HMAC_STREAM: &str = "idhmac-abababababababababababababababababababababababababababababababab";

#[tokio::test]
async fn a_registration_reserves_the_id_hash_before_the_person_stream() {
    let (_dir, store) = store();
    let engine = Engine::unsealed(store.clone());
    let handled = engine
        .register_person(&registration("p-1", &valid_id()), &meta(1))
        .await
        .expect("registered");
    assert_eq!(handled.events.len(), 1);
    assert_eq!(handled.append.map(|a| a.first_position), Some(2));
    assert_eq!(reservation_stream(&[0xab; 32]), HMAC_STREAM);

    let stored = store
        .read_all(1, 10, &ReadFilter::all())
        .await
        .expect("read");
    let streams: Vec<(&str, &str)> = stored
        .iter()
        .map(|r| (r.stream_id.as_str(), r.event_type.as_str()))
        .collect();
    assert_eq!(
        streams,
        [
            (HMAC_STREAM, "RegistrationReserved"),
            ("person-p-1", "PersonRegistered")
        ]
    );
    let reserved = decode(&stored[0]).expect("decodes");
    let Event::RegistrationReserved(r) = &reserved else {
        panic!("{reserved:?}")
    };
    assert_eq!(
        (r.person_ref.as_str(), r.id_hmac.as_slice()),
        ("p-1", &[0xab; 32][..])
    );
    // The person's fold ignores the reservation.
    assert_eq!(Person::fold([&reserved]), Person::default());
}

#[tokio::test]
async fn a_second_registration_of_the_same_id_is_rejected() {
    let (_dir, store) = store();
    let engine = Engine::unsealed(store.clone());
    let id = valid_id();
    engine
        .register_person(&registration("p-1", &id), &meta(1))
        .await
        .expect("first");
    let err = engine
        .register_person(&registration("p-2", &id), &meta(2))
        .await
        .unwrap_err();
    let EngineError::Rejected(r) = &err else {
        panic!("expected a rejection, got {err}")
    };
    assert_eq!(
        (&*r.field, r.problem.as_str(), &*r.rule),
        (
            "id_number",
            "already registered as person p-1",
            "one active registration per person"
        )
    );
    assert_eq!(store.head().await.expect("head").position, 2);
    let (p2, version) = engine.load::<Person>("person-p-2").await.expect("load");
    assert_eq!((p2, version), (Person::default(), 0));
}

#[tokio::test]
async fn a_retried_registration_returns_the_first_result() {
    let (_dir, store) = store();
    let engine = Engine::unsealed(store.clone());
    let cmd = registration("p-1", &valid_id());
    let first = engine.register_person(&cmd, &meta(1)).await.expect("first");
    let again = engine.register_person(&cmd, &meta(1)).await.expect("retry");
    assert_eq!(again, first);
    assert_eq!(store.head().await.expect("head").position, 2);
}

#[tokio::test]
async fn an_invalid_registration_reserves_nothing() {
    let (_dir, store) = store();
    let engine = Engine::unsealed(store.clone());
    let mut cmd = registration("p-1", &valid_id());
    cmd.residence_region = "110101".into();
    let err = engine.register_person(&cmd, &meta(1)).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Rejected(r) if r.field == "residence_region"),
        "{err}"
    );
    assert_eq!(store.head().await.expect("head").position, 0);
    // The ID number is still free for a valid registration.
    cmd.residence_region = "230102".into();
    engine
        .register_person(&cmd, &meta(2))
        .await
        .expect("registered");
}

#[tokio::test]
async fn a_reservation_left_without_its_registration_is_completed_by_the_retry() {
    let (_dir, store) = store();
    let engine = Engine::unsealed(store.clone());
    let cmd = registration("p-1", &valid_id());
    // The first attempt reserved, then failed before registering.
    let reserve = ReserveRegistration {
        id_hmac: cmd.id_hmac.clone(),
        person_ref: "p-1".into(),
    };
    engine
        .handle::<Reservation>(HMAC_STREAM, &reserve, &meta(1))
        .await
        .expect("reserved");
    let handled = engine
        .register_person(&cmd, &meta(1))
        .await
        .expect("completed");
    assert_eq!(handled.append.map(|a| a.stream_version), Some(1));
    assert_eq!(store.head().await.expect("head").position, 2);
    // Another person still cannot take the ID number.
    let err = engine
        .register_person(&registration("p-2", &cmd.id_number), &meta(2))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Rejected(_)), "{err}");
}

#[tokio::test]
async fn concurrent_registrations_of_one_id_register_exactly_one_person() {
    let (_dir, store) = store();
    let engine = Engine::unsealed(store.clone());
    let id = valid_id();
    let mut tasks = Vec::new();
    for i in 0..8u128 {
        let engine = engine.clone();
        let cmd = registration(&format!("p-{i}"), &id);
        tasks.push(tokio::spawn(async move {
            engine.register_person(&cmd, &meta(100 + i)).await
        }));
    }
    let mut accepted = Vec::new();
    let mut rejected = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Ok(_) => accepted.push(format!("p-{i}")),
            Err(EngineError::Rejected(r)) => {
                assert_eq!(r.field, "id_number", "{r}");
                rejected += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((accepted.len(), rejected), (1, 7), "{accepted:?}");
    let registered: Vec<String> = store
        .read_all(1, 100, &ReadFilter::all())
        .await
        .expect("read")
        .iter()
        .filter(|r| r.event_type == "PersonRegistered")
        .map(|r| r.stream_id.clone())
        .collect();
    assert_eq!(registered, [format!("person-{}", accepted[0])]);
    let (reservation, _) = engine.load::<Reservation>(HMAC_STREAM).await.expect("load");
    assert_eq!(reservation.holder(), Some(accepted[0].as_str()));
}

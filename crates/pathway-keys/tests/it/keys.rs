//! Sealing, opening and erasure of personal fields, on both key tables.

use std::collections::BTreeMap;

use pathway_domain::{
    Event,
    convert::{clear_int, clear_text, personal_int, personal_text},
    pb,
    personal::PERSONAL_FIELD_NUMBERS,
};
use pathway_keys::{KeyError, Keyring, MasterKey, OpenFields, PostgresKeyTable, SqliteKeyTable};
use prost::Message;
use prost_reflect::{DescriptorPool, Kind};
use uuid::Uuid;

const NAME: &str = "张三丰";
const ID_NUMBER: &str = "230102199001011234";
const WAGE_FEN: i64 = 456_789;

fn master(byte: u8) -> MasterKey {
    MasterKey::from_bytes([byte; 32])
}

fn registered(person: &str) -> Event {
    Event::PersonRegistered(pb::PersonRegistered {
        person_ref: person.into(),
        name: personal_text(NAME),
        id_number: personal_text(ID_NUMBER),
        phone: None,
        address: personal_text("哈尔滨市南岗区"),
        ..Default::default()
    })
}

fn placed(person: &str) -> Event {
    Event::PersonPlaced(pb::PersonPlaced {
        person_ref: person.into(),
        monthly_wage: personal_int(WAGE_FEN),
        ..Default::default()
    })
}

fn bytes(e: &Event) -> Vec<u8> {
    pb::Event {
        kind: Some(e.clone()),
    }
    .encode_to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn name_of(e: &Event) -> Option<&str> {
    match e {
        Event::PersonRegistered(r) => clear_text(r.name.as_ref()),
        _ => None,
    }
}

fn wage_of(e: &Event) -> Option<i64> {
    match e {
        Event::PersonPlaced(p) => clear_int(p.monthly_wage.as_ref()),
        _ => None,
    }
}

/// The behaviour every key table must give the keyring.
async fn check_keyring(keyring: &Keyring, other_process: &Keyring) {
    let person = format!("p-{}", Uuid::new_v4());
    let (id1, id2) = (Uuid::new_v4(), Uuid::new_v4());
    let mut reg = registered(&person);
    keyring.seal(id1, &mut reg).await.unwrap();
    let stored = bytes(&reg);
    assert!(!contains(&stored, NAME.as_bytes()), "name stored in clear");
    assert!(
        !contains(&stored, ID_NUMBER.as_bytes()),
        "ID number stored in clear"
    );
    assert_eq!(name_of(&reg), None, "sealed fields read as absent");

    // Sealing is deterministic: a retried command stores the same bytes.
    let mut again = registered(&person);
    keyring.seal(id1, &mut again).await.unwrap();
    assert_eq!(bytes(&again), stored);

    let mut wage = placed(&person);
    keyring.seal(id2, &mut wage).await.unwrap();
    assert!(!contains(&bytes(&wage), &WAGE_FEN.to_be_bytes()));

    // Another process with the same master key opens both.
    let (mut r, mut w) = (reg.clone(), wage.clone());
    other_process
        .open_all([(id1, &mut r), (id2, &mut w)])
        .await
        .unwrap();
    assert_eq!(name_of(&r), Some(NAME));
    assert_eq!(wage_of(&w), Some(WAGE_FEN));

    // Only the chosen fields: the ID number (4) is opened, the name (3) and
    // the address (12) stay sealed, and the placement is not looked at.
    let (mut r, mut w) = (reg.clone(), wage.clone());
    other_process
        .open_fields(
            [(id1, &mut r), (id2, &mut w)],
            OpenFields::Only(|e| match e {
                Event::PersonRegistered(_) => &[4],
                _ => &[],
            }),
        )
        .await
        .unwrap();
    let Event::PersonRegistered(opened) = &r else {
        unreachable!()
    };
    assert_eq!(clear_text(opened.id_number.as_ref()), Some(ID_NUMBER));
    assert_eq!(name_of(&r), None);
    assert_eq!(clear_text(opened.address.as_ref()), None);
    assert_eq!(w, wage, "a placement with no chosen field is left sealed");

    // A sealed value moved to another event does not open.
    let mut moved = reg.clone();
    let err = keyring.open(id2, &mut moved).await.unwrap_err();
    assert!(matches!(err, KeyError::Open { field: 3, .. }), "{err}");

    // A flipped ciphertext bit does not open.
    let mut tampered = reg.clone();
    if let Event::PersonRegistered(p) = &mut tampered
        && let Some(pb::personal::Value::Sealed(s)) =
            p.id_number.as_mut().and_then(|v| v.value.as_mut())
    {
        s.ciphertext[0] ^= 1;
    }
    let err = keyring.open(id1, &mut tampered).await.unwrap_err();
    assert!(matches!(err, KeyError::Open { field: 4, .. }), "{err}");

    // Erasure: the key is gone, the fields stay sealed, nothing new is sealed.
    assert!(
        keyring
            .erase(&person, "data subject's request")
            .await
            .unwrap()
    );
    assert!(!keyring.erase(&person, "twice").await.unwrap());
    let mut r = reg.clone();
    keyring.open(id1, &mut r).await.unwrap();
    assert_eq!(name_of(&r), None);
    assert_eq!(bytes(&r), stored, "an erased event is left as stored");
    let err = keyring
        .seal(Uuid::new_v4(), &mut placed(&person))
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::Destroyed { .. }), "{err}");
}

#[tokio::test]
async fn sqlite_key_table_seals_opens_and_erases() {
    let dir = tempfile::tempdir().unwrap();
    let table = SqliteKeyTable::open(dir.path()).unwrap();
    let a = Keyring::new(master(7), table.clone());
    let b = Keyring::new(master(7), table);
    check_keyring(&a, &b).await;

    // Keys survive a reopen; another master key is refused by name.
    let person = format!("p-{}", Uuid::new_v4());
    let id = Uuid::new_v4();
    let mut e = registered(&person);
    a.seal(id, &mut e).await.unwrap();
    let reopened = Keyring::new(master(7), SqliteKeyTable::open(dir.path()).unwrap());
    let mut r = e.clone();
    reopened.open(id, &mut r).await.unwrap();
    assert_eq!(name_of(&r), Some(NAME));
    let wrong = Keyring::new(master(8), SqliteKeyTable::open(dir.path()).unwrap());
    let err = wrong.open(id, &mut e.clone()).await.unwrap_err();
    assert!(matches!(err, KeyError::WrongMasterKey { .. }), "{err}");
}

#[tokio::test]
async fn a_destroyed_key_leaves_no_bytes_in_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Keyring::new(master(3), SqliteKeyTable::open(dir.path()).unwrap());
    let person = format!("p-{}", Uuid::new_v4());
    keyring
        .seal(Uuid::new_v4(), &mut registered(&person))
        .await
        .unwrap();
    let table = SqliteKeyTable::open(dir.path()).unwrap();
    let wrapped = match pathway_keys::KeyTable::fetch(&table, vec![person.clone()])
        .await
        .unwrap()
        .pop()
    {
        Some((_, pathway_keys::StoredKey::Live { wrapped, .. })) => wrapped,
        other => panic!("expected a live key, got {other:?}"),
    };
    keyring.erase(&person, "erasure test").await.unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !contains(&bytes, &wrapped),
            "{} still holds the destroyed key",
            path.display()
        );
    }
}

#[tokio::test]
async fn postgres_key_table_seals_opens_and_erases() {
    let db = pathway_testkit::TestDb::create();
    let store = pathway_store::postgres::PostgresStore::connect(db.url())
        .await
        .unwrap();
    let a = Keyring::new(
        master(9),
        PostgresKeyTable::open(store.pool().clone()).await.unwrap(),
    );
    let b = Keyring::new(
        master(9),
        PostgresKeyTable::open(store.pool().clone()).await.unwrap(),
    );
    check_keyring(&a, &b).await;

    // Racing creators of one subject's key agree on one key.
    let person = format!("p-{}", Uuid::new_v4());
    let ids: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (k, id, person) = (
                if i % 2 == 0 { a.clone() } else { b.clone() },
                *id,
                person.clone(),
            );
            tokio::spawn(async move {
                let mut e = registered(&person);
                k.seal(id, &mut e).await.map(|()| e)
            })
        })
        .collect();
    let mut events = Vec::new();
    for t in tasks {
        events.push(t.await.unwrap().unwrap());
    }
    let fresh = Keyring::new(
        master(9),
        PostgresKeyTable::open(store.pool().clone()).await.unwrap(),
    );
    fresh
        .open_all(ids.iter().copied().zip(events.iter_mut()))
        .await
        .unwrap();
    assert!(events.iter().all(|e| name_of(e) == Some(NAME)));
}

/// Every `Personal` field of the contract is listed for sealing.
#[test]
fn every_personal_field_of_the_contract_is_sealed() {
    let pool = DescriptorPool::decode(pathway_proto::DESCRIPTOR_SET).unwrap();
    let mut in_contract: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for message in pool.all_messages() {
        if message.package_name() != "pathway.events.v1" {
            continue;
        }
        for field in message.fields() {
            if let Kind::Message(m) = field.kind()
                && m.full_name() == "pathway.events.v1.Personal"
            {
                in_contract
                    .entry(message.name().to_owned())
                    .or_default()
                    .push(field.number());
            }
        }
    }
    let listed: BTreeMap<String, Vec<u32>> = PERSONAL_FIELD_NUMBERS
        .iter()
        .map(|(m, f)| ((*m).to_owned(), f.to_vec()))
        .collect();
    assert_eq!(listed, in_contract);
}

#[tokio::test]
async fn rotating_the_master_key_rewraps_every_key_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let old = Keyring::new(master(1), SqliteKeyTable::open(dir.path()).unwrap());
    let mut sealed = Vec::new();
    for _ in 0..3 {
        let (id, person) = (Uuid::new_v4(), format!("p-{}", Uuid::new_v4()));
        let mut e = registered(&person);
        old.seal(id, &mut e).await.unwrap();
        sealed.push((id, e));
    }
    old.erase(sealed[0].1.person_ref(), "erased before the rotation")
        .await
        .unwrap();
    let n = old.rotate_master(&master(2), |_| {}).await.unwrap();
    assert_eq!(n, 2, "the two live keys, not the destroyed one");
    assert_eq!(old.rotate_master(&master(2), |_| {}).await.unwrap(), 0);

    let new = pathway_keys::embedded_keyring(dir.path(), Some(master(2)))
        .await
        .unwrap();
    let mut events: Vec<Event> = sealed.iter().map(|(_, e)| e.clone()).collect();
    new.open_all(sealed.iter().map(|(id, _)| *id).zip(events.iter_mut()))
        .await
        .unwrap();
    let names: Vec<_> = events.iter().map(name_of).collect();
    assert_eq!(names, [None, Some(NAME), Some(NAME)]);
    let err = pathway_keys::embedded_keyring(dir.path(), Some(master(1)))
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::MasterKey(_)), "{err}");
}

trait PersonRef {
    fn person_ref(&self) -> &str;
}

impl PersonRef for Event {
    fn person_ref(&self) -> &str {
        match self {
            Event::PersonRegistered(r) => &r.person_ref,
            _ => "",
        }
    }
}

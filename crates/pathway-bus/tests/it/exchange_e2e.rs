//! The graduate exchange end to end, against a real `nats-server`: Education
//! publishes a cohort, Pathway matches it against registrations, opens
//! ledgers and answers with counts only; a recorded outcome goes back to
//! Education as status only; bad batches are rejected with a reason and
//! leave the log as it was; a batch sent again appends nothing.

use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use futures::StreamExt as _;
use pathway_bus::coordinator::FileCoordinator;
use pathway_bus::exchange_service::{
    COHORT_OUTCOME_TYPE, COHORT_REJECTED_TYPE, COHORT_SUBJECT, ExchangeService,
    GRADUATE_OUTCOME_TYPE, GraduateOutcomeStatus, MESSAGE_TYPE_HEADER, OUTCOME_SUBJECT, Reply,
};
use pathway_domain::graduates::{Cohort, GraduateLedger, GraduateMeasure, LedgerCommand};
use pathway_domain::person::{EmploymentForm, RegisterPerson};
use pathway_domain::{pb, validate};
use pathway_engine::{CommandMeta, Engine};
use pathway_proto::Message as _;
use pathway_proto::exchange::v1::{
    CohortBatch, CohortOutcome, CohortRejected, Date, ExchangeVersion, GraduateLevel,
    GraduateRecord, RejectionReason,
};
use pathway_store::EventStore;
use pathway_store::embedded::EmbeddedStore;
use uuid::Uuid;

use crate::relay::connect;
use crate::server::NatsServer;
use crate::{TEST_STREAM_MAX_BYTES, test_relay};

/// Longest wait for one answer on the outcome subject.
const ANSWER_TIMEOUT_MS: u64 = 60_000;
/// The service's batch bound in this test: below the server's 1 MiB payload.
const TEST_BATCH_BYTES_MAX: usize = 64 * 1024;
/// The cohort's year: a plan year of the built-in policy.
const YEAR: i32 = 2024;

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 2, 0, 0)
        .single()
        .expect("valid time")
}

fn meta(command_id: u128, now: DateTime<Utc>) -> CommandMeta {
    CommandMeta {
        command_id: Uuid::from_u128(command_id),
        correlation_id: Uuid::from_u128(command_id),
        causation_id: None,
        actor_department: pb::Department::Dpf,
        actor_region: "230100".into(),
        actor_id: "case-worker-1".into(),
        now,
    }
}

fn registration(person_ref: &str, sequence: u16, id_hmac: [u8; 32]) -> RegisterPerson {
    RegisterPerson {
        person_ref: person_ref.into(),
        name: "李娜".into(),
        id_number: validate::make_resident_id(
            "230102",
            NaiveDate::from_ymd_opt(2001, 4, 12).expect("date"),
            sequence,
        ),
        id_hmac: id_hmac.to_vec(),
        phone: None,
        address: None,
        hukou_region: "230102".into(),
        residence_region: "230102".into(),
        registering_org: "230100-dpf".into(),
    }
}

fn record(id_hmac: [u8; 32], city: &str) -> GraduateRecord {
    GraduateRecord {
        id_hmac: id_hmac.to_vec(),
        school: "Harbin Institute of Technology".into(),
        major: "Software engineering".into(),
        level: GraduateLevel::Bachelor as i32,
        expected_graduation: Some(Date {
            year: YEAR,
            month: 6,
            day: 30,
        }),
        residence_city: city.into(),
    }
}

fn batch(batch_id: &str, records: Vec<GraduateRecord>) -> CohortBatch {
    CohortBatch {
        version: ExchangeVersion::ExchangeVersion1 as i32,
        batch_id: batch_id.into(),
        year: YEAR,
        record_count: records.len() as u32,
        records,
    }
}

const P1_HMAC: [u8; 32] = [0x11; 32];
const P2_HMAC: [u8; 32] = [0x22; 32];
const STRANGER_HMAC: [u8; 32] = [0x33; 32];

/// Education's side of the exchange.
struct Education {
    js: jetstream::Context,
    answers: async_nats::Subscriber,
}

impl Education {
    async fn send(&self, payload: Vec<u8>) {
        self.js
            .publish(COHORT_SUBJECT, Bytes::from(payload))
            .await
            .expect("publish batch")
            .await
            .expect("batch stored");
    }

    /// The next answer of type `kind`, skipping any other.
    async fn next(&mut self, kind: &str) -> Bytes {
        let wait = async {
            loop {
                let m = self.answers.next().await.expect("subscription open");
                let header = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(MESSAGE_TYPE_HEADER))
                    .map(|v| v.as_str().to_owned());
                if header.as_deref() == Some(kind) {
                    return m.payload;
                }
            }
        };
        tokio::time::timeout(Duration::from_millis(ANSWER_TIMEOUT_MS), wait)
            .await
            .unwrap_or_else(|_| panic!("no {kind} received"))
    }

    async fn rejection(&mut self) -> CohortRejected {
        CohortRejected::decode(self.next(COHORT_REJECTED_TYPE).await).expect("decodes")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cohort_opens_ledgers_outcomes_go_back_and_bad_batches_change_nothing() {
    let nats = NatsServer::start();
    let client = connect(&nats.url()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("open store");
    let engine = Engine::unsealed(store.clone());

    // Two registered persons: their keyed hashes are reserved.
    for (i, (person_ref, hmac)) in [("p-1", P1_HMAC), ("p-2", P2_HMAC)].into_iter().enumerate() {
        engine
            .register_person(
                &registration(person_ref, 15 + i as u16, hmac),
                &meta(100 + i as u128, at(YEAR, 3, 1)),
            )
            .await
            .expect("registered");
    }

    let relay = tokio::spawn(
        test_relay(
            store.clone(),
            FileCoordinator::new(dir.path(), "test"),
            client.clone(),
        )
        .run(),
    );
    let service = ExchangeService::new(store.clone(), client.clone())
        .with_batch_bytes_max(TEST_BATCH_BYTES_MAX)
        .with_stream_max_bytes(TEST_STREAM_MAX_BYTES)
        .with_clock(|| at(YEAR, 9, 15));
    service.ensure_stream().await.expect("exchange stream");
    let exchange = tokio::spawn(service.run());

    let education_client = connect(&nats.url()).await;
    let mut education = Education {
        js: jetstream::new(education_client.clone()),
        answers: education_client
            .subscribe(OUTCOME_SUBJECT)
            .await
            .expect("subscribe to answers"),
    };
    education_client.flush().await.expect("flush");

    // The cohort: two registered graduates and one stranger.
    let cohort = batch(
        "edu-2024-01",
        vec![
            record(P1_HMAC, "230102"),
            record(STRANGER_HMAC, "230103"),
            record(P2_HMAC, "230202"),
        ],
    )
    .encode_to_vec();
    education.send(cohort.clone()).await;
    let ack = CohortOutcome::decode(education.next(COHORT_OUTCOME_TYPE).await).expect("decodes");
    assert_eq!(
        ack,
        CohortOutcome {
            batch_id: "edu-2024-01".into(),
            received: 3,
            matched: 2,
            unmatched: 1,
            ledgers_opened: 2,
        }
    );
    let (c, _) = engine
        .load::<Cohort>("cohort-edu-2024-01")
        .await
        .expect("cohort");
    assert_eq!(
        (
            c.received.map(|r| r.2),
            c.matched_persons.iter().cloned().collect::<Vec<_>>(),
            c.unmatched_hashes.len(),
        ),
        (Some(3), vec!["p-1".to_owned(), "p-2".to_owned()], 1)
    );
    for person_ref in ["p-1", "p-2"] {
        let (ledger, _) = engine
            .load::<GraduateLedger>(&format!("ledger-{person_ref}-{YEAR}"))
            .await
            .expect("ledger");
        assert_eq!(
            ledger.opened.map(|(_, p)| p),
            Some(person_ref.to_owned()),
            "{person_ref} has a ledger"
        );
    }

    // A year-end outcome on p-1's ledger goes back as status only.
    let ledger = format!("ledger-p-1-{YEAR}");
    let plan = LedgerCommand::SetPlan {
        measures: vec![GraduateMeasure::JobReferral],
        target_date: NaiveDate::from_ymd_opt(YEAR, 11, 30).expect("date"),
    };
    engine
        .handle::<GraduateLedger>(&ledger, &plan, &meta(200, at(YEAR, 10, 1)))
        .await
        .expect("plan set");
    let outcome = LedgerCommand::RecordOutcome {
        outcome: pathway_domain::graduates::GraduateOutcome::Employed,
        employment_form: Some(EmploymentForm::Flexible),
        recorded_on: NaiveDate::from_ymd_opt(YEAR, 12, 15).expect("date"),
    };
    engine
        .handle::<GraduateLedger>(&ledger, &outcome, &meta(201, at(YEAR, 12, 20)))
        .await
        .expect("outcome recorded");
    let payload = education.next(GRADUATE_OUTCOME_TYPE).await;
    assert_eq!(
        GraduateOutcomeStatus::decode(payload.as_ref()).map_err(|e| e.to_string()),
        Ok(GraduateOutcomeStatus {
            id_hmac: P1_HMAC.to_vec(),
            outcome: "employed".into(),
        }),
        "the keyed hash and the category, nothing else"
    );

    // Rejections: nothing of a bad batch reaches the log.
    let mut v2 = batch("edu-2024-02", vec![record(P1_HMAC, "230102")]);
    v2.version = 2;
    let mut plain = batch(
        "edu-2024-03",
        vec![record(P1_HMAC, "230102"), record(P2_HMAC, "230202")],
    );
    plain.records[1].id_hmac = b"23010220010412001X".to_vec();
    let oversized = batch(
        "edu-2024-04",
        (0..1_000u32)
            .map(|i| {
                let mut h = [0u8; 32];
                h[..4].copy_from_slice(&i.to_be_bytes());
                record(h, "230102")
            })
            .collect(),
    )
    .encode_to_vec();
    assert!(oversized.len() > TEST_BATCH_BYTES_MAX);
    let cases: [(&str, Vec<u8>, RejectionReason); 4] = [
        (
            "malformed bytes",
            b"\xff\xff\xff".to_vec(),
            RejectionReason::Malformed,
        ),
        (
            "unknown schema version",
            v2.encode_to_vec(),
            RejectionReason::UnknownVersion,
        ),
        (
            "plain ID number",
            plain.encode_to_vec(),
            RejectionReason::PlainIdNumber,
        ),
        ("oversized batch", oversized, RejectionReason::Oversized),
    ];
    for (what, bytes, reason) in cases {
        let head = store.head().await.expect("head").position;
        education.send(bytes).await;
        let rejected = education.rejection().await;
        assert_eq!(rejected.reason(), reason, "{what}: {rejected:?}");
        assert!(!rejected.detail.is_empty(), "{what}: a reason is given");
        assert!(
            !rejected.detail.contains("23010220010412001X"),
            "{what}: the detail never repeats the value"
        );
        assert_eq!(
            store.head().await.expect("head").position,
            head,
            "{what}: the log head did not move"
        );
    }

    // The valid batch again: the same answer, nothing appended.
    let head = store.head().await.expect("head").position;
    education.send(cohort.clone()).await;
    let again = CohortOutcome::decode(education.next(COHORT_OUTCOME_TYPE).await).expect("decodes");
    assert_eq!(again, ack);
    assert_eq!(store.head().await.expect("head").position, head);

    // A redelivery (the batch handled again before its ack), later in time:
    // every command finds its first result.
    let replay = ExchangeService::new(store.clone(), client.clone()).with_clock(|| at(YEAR, 10, 2));
    assert_eq!(
        replay.handle_batch(&cohort).await.expect("handled"),
        Reply::Accepted(ack)
    );
    assert_eq!(store.head().await.expect("head").position, head);

    exchange.abort();
    relay.abort();
}

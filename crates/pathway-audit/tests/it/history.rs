//! Subject histories: exactly the subject's events in order with their
//! actors; personal values only under a warrant, and every such read
//! recorded.

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use pathway_audit::history::{self, ACCESS_STREAM, History, Subject, SubjectKind, WarrantRequest};
use pathway_domain::pb;
use pathway_engine::Engine;
use pathway_proto::Message as _;
use pathway_sim::SimConfig;
use pathway_store::{EventStore, ReadFilter, RecordedEvent, embedded::EmbeddedStore};

async fn simulated(dir: &std::path::Path) -> (EmbeddedStore, Vec<RecordedEvent>) {
    let store = EmbeddedStore::open(&dir.join("log")).expect("store");
    let cfg = SimConfig {
        persons: 30,
        seed: 3,
        concurrency: 4,
    };
    pathway_sim::run(&Engine::unsealed(store.clone()), &cfg, |_, _| {})
        .await
        .expect("simulate");
    let all = store
        .read_all(1, usize::MAX, &ReadFilter::all())
        .await
        .expect("read");
    (store, all)
}

/// The positions about `reference`, computed the plain way: its own
/// stream, its ledgers, and any other event whose payload holds the
/// reference's bytes (references are UUIDs, so that means naming it).
fn expected(all: &[RecordedEvent], reference: &str) -> Vec<u64> {
    all.iter()
        .filter(|r| !r.stream_id.starts_with("audit-"))
        .filter(|r| {
            r.stream_id == format!("person-{reference}")
                || r.stream_id.starts_with(&format!("ledger-{reference}-"))
                || r.payload
                    .windows(reference.len())
                    .any(|w| w == reference.as_bytes())
        })
        .map(|r| r.position)
        .collect()
}

/// The person named by the most events outside their own stream.
fn busiest_person(all: &[RecordedEvent]) -> String {
    let persons: Vec<&str> = all
        .iter()
        .filter(|r| r.event_type == "PersonRegistered")
        .filter_map(|r| r.stream_id.strip_prefix("person-"))
        .collect();
    persons
        .into_iter()
        .max_by_key(|p| {
            expected(all, p)
                .iter()
                .filter(|pos| !all[**pos as usize - 1].stream_id.starts_with("person-"))
                .count()
        })
        .expect("persons")
        .to_owned()
}

/// The clear personal texts of the person's registration.
fn personal_texts(all: &[RecordedEvent], reference: &str) -> Vec<String> {
    let r = all
        .iter()
        .find(|r| {
            r.stream_id == format!("person-{reference}") && r.event_type == "PersonRegistered"
        })
        .expect("registered");
    let Some(pb::event::Kind::PersonRegistered(e)) =
        pb::Event::decode(r.payload.as_ref()).expect("decode").kind
    else {
        panic!("not a registration")
    };
    [e.name, e.id_number]
        .into_iter()
        .filter_map(|p| match p.and_then(|p| p.value) {
            Some(pb::personal::Value::Text(t)) => Some(t),
            _ => None,
        })
        .collect()
}

fn rendered(h: &History) -> String {
    serde_json::to_string(&h.entries).expect("json")
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 4, 0, 0)
        .single()
        .expect("time")
}

#[tokio::test(flavor = "multi_thread")]
async fn history_lists_exactly_the_subjects_events_in_order_with_actors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, all) = simulated(dir.path()).await;
    let person = busiest_person(&all);
    let subject = Subject {
        kind: SubjectKind::Person,
        reference: person.clone(),
    };
    let h = history::history(&store, &subject, None, at(2025, 3, 1))
        .await
        .expect("history");
    let positions: Vec<u64> = h.entries.iter().map(|e| e.position).collect();
    assert_eq!(positions, expected(&all, &person));
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "in log order");
    assert!(
        h.entries
            .iter()
            .any(|e| !e.stream_id.starts_with("person-")),
        "events on other streams that name the person are included"
    );
    for e in &h.entries {
        assert!(!e.actor_id.is_empty() && !e.actor_region.is_empty());
        assert!(e.actor_department.starts_with("DEPARTMENT_"));
        assert!(!e.command_id.is_empty() && !e.correlation_id.is_empty());
        assert!(!e.causation_id.is_empty());
    }
    // An employer's history: its own stream and the placements naming it.
    let employer = all
        .iter()
        .find(|r| r.event_type == "EmployerRegistered")
        .and_then(|r| r.stream_id.strip_prefix("employer-"))
        .expect("an employer")
        .to_owned();
    let h = history::history(
        &store,
        &Subject {
            kind: SubjectKind::Employer,
            reference: employer.clone(),
        },
        None,
        at(2025, 3, 1),
    )
    .await
    .expect("history");
    assert!(!h.entries.is_empty());
    assert!(h.entries.iter().all(|e| {
        e.stream_id == format!("employer-{employer}")
            || serde_json::to_string(&e.payload)
                .expect("json")
                .contains(&employer)
    }));
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_values_are_shown_only_under_a_warrant_and_each_read_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, all) = simulated(dir.path()).await;
    let person = busiest_person(&all);
    let clear = personal_texts(&all, &person);
    assert!(!clear.is_empty(), "the registration carries personal texts");
    let subject = Subject {
        kind: SubjectKind::Person,
        reference: person.clone(),
    };
    let now = at(2025, 3, 1);

    // No warrant: pseudonyms only, nothing appended.
    let head = store.head().await.expect("head").position;
    let h = history::history(&store, &subject, Some("auditor-7"), now)
        .await
        .expect("history");
    let text = rendered(&h);
    for value in &clear {
        assert!(
            !text.contains(value.as_str()),
            "{value} shown without a warrant"
        );
    }
    assert!(text.contains("[personal "));
    assert!(h.warrant.is_none() && h.access_position.is_none());
    assert_eq!(store.head().await.expect("head").position, head);

    // Dual approval: two distinct approvers, neither the auditor.
    let request = |approved_by: &[&str]| WarrantRequest {
        auditor_id: "auditor-7".into(),
        subject: subject.clone(),
        reason: "year-end evaluation sample".into(),
        authority: "HLJ-AUDIT-2025-3".into(),
        approved_by: approved_by.iter().map(|s| s.to_string()).collect(),
        valid_until: now.date_naive() + Duration::days(10),
    };
    for bad in [
        &["chief-1"][..],
        &["chief-1", "chief-1"],
        &["chief-1", "auditor-7"],
    ] {
        assert!(
            history::issue_warrant(&store, &request(bad), now)
                .await
                .is_err(),
            "{bad:?} is not dual approval"
        );
    }
    // A warrant for someone else grants this auditor nothing.
    let mut other = request(&["chief-1", "chief-2"]);
    other.auditor_id = "auditor-8".into();
    history::issue_warrant(&store, &other, now)
        .await
        .expect("warrant");
    let h = history::history(&store, &subject, Some("auditor-7"), now)
        .await
        .expect("history");
    assert!(h.warrant.is_none());

    // With a warrant: clear values, and the read is recorded.
    let warrant = history::issue_warrant(&store, &request(&["chief-1", "chief-2"]), now)
        .await
        .expect("warrant");
    let h = history::history(&store, &subject, Some("auditor-7"), now)
        .await
        .expect("history");
    let text = rendered(&h);
    for value in &clear {
        assert!(
            text.contains(value.as_str()),
            "{value} not shown under a warrant"
        );
    }
    assert!(!text.contains("[personal "));
    assert_eq!(
        h.warrant.as_ref().map(|w| &w.warrant_id),
        Some(&warrant.warrant_id)
    );
    let at_position = h.access_position.expect("the read was recorded");
    let recorded = store
        .read_all(at_position, 1, &ReadFilter::all())
        .await
        .expect("read");
    assert_eq!(recorded[0].stream_id, ACCESS_STREAM);
    let Some(pb::event::Kind::AuditRecordRead(read)) =
        pb::Event::decode(recorded[0].payload.as_ref())
            .expect("decode")
            .kind
    else {
        panic!("not an AuditRecordRead")
    };
    assert_eq!(read.auditor_id, "auditor-7");
    assert_eq!(read.subject_ref, person);
    assert_eq!(read.warrant_id, warrant.warrant_id);
    assert_eq!(read.events_shown, h.entries.len() as u64);
    // The history itself is unchanged by the audit events around it.
    let positions: Vec<u64> = h.entries.iter().map(|e| e.position).collect();
    assert_eq!(positions, expected(&all, &person));

    // Expired: after its last day the warrant grants nothing.
    let later = now + Duration::days(11);
    let h = history::history(&store, &subject, Some("auditor-7"), later)
        .await
        .expect("history");
    assert!(h.warrant.is_none());
    for value in &clear {
        assert!(!rendered(&h).contains(value.as_str()));
    }
}

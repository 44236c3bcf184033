//! Long streams are kept as in-memory snapshots between commands: the
//! answers must be exactly those of a full load — other writers' events are
//! seen, a retried command returns its first result, a rejection leaves the
//! stream as it was.

use chrono::NaiveDate;
use pathway_domain::graduates::{Cohort, CohortCommand, GraduateLevel};
use pathway_engine::{Engine, EngineError, SNAPSHOT_EVENTS_MIN};
use pathway_store::EventStore;

use crate::engine::{meta, store};

const STREAM: &str = "cohort-edu-2023";

fn receive(record_count: u32) -> CohortCommand {
    CohortCommand::ReceiveCohort {
        batch_id: "edu-2023".into(),
        year: 2023,
        record_count,
    }
}

fn matched(i: u64) -> CohortCommand {
    CohortCommand::RecordMatch {
        person_ref: format!("person-{i}"),
        id_hmac: format!("{:064x}", i + 1),
        school: "Harbin Institute of Technology".into(),
        major: "computer science".into(),
        level: GraduateLevel::Bachelor,
        expected_graduation: NaiveDate::from_ymd_opt(2023, 6, 30).expect("date"),
        residence_region: "230102".into(),
    }
}

/// The command id of the `i`-th match.
fn id(i: u64) -> u128 {
    1_000 + u128::from(i)
}

#[tokio::test]
async fn a_snapshot_answers_as_a_full_load_would() {
    let (_dir, store) = store();
    let a = Engine::unsealed(store.clone());
    let matches = SNAPSHOT_EVENTS_MIN * 2;
    a.handle::<Cohort>(STREAM, &receive(1_000), &meta(1))
        .await
        .expect("received");
    let mut first = Vec::new();
    for i in 0..matches {
        let handled = a
            .handle::<Cohort>(STREAM, &matched(i), &meta(id(i)))
            .await
            .expect("matched");
        first.push(handled.append.expect("appended"));
    }

    // Another process appends to the stream behind this engine's back.
    let b = Engine::unsealed(store.clone());
    let other = matches + 1;
    b.handle::<Cohort>(STREAM, &matched(other), &meta(id(other)))
        .await
        .expect("matched by the other engine");
    // This engine sees it: the same person cannot be matched twice.
    match a
        .handle::<Cohort>(STREAM, &matched(other), &meta(9_999))
        .await
    {
        Err(EngineError::Rejected(r)) => assert_eq!(r.field, "person_ref"),
        other => panic!("expected a rejection on person_ref, got {other:?}"),
    }

    // Retries of commands folded into the snapshot (early and latest) return
    // their first results and append nothing.
    let head = store.head().await.expect("head").position;
    for i in [0, 5, matches - 1] {
        let again = a
            .handle::<Cohort>(STREAM, &matched(i), &meta(id(i)))
            .await
            .expect("retry");
        assert_eq!(
            again.append.as_ref(),
            Some(&first[i as usize]),
            "retry of match {i}"
        );
    }
    // A command id reused for another command is still refused.
    match a
        .handle::<Cohort>(STREAM, &matched(matches + 50), &meta(id(3)))
        .await
    {
        Err(EngineError::CommandIdReused { .. }) => {}
        other => panic!("expected CommandIdReused, got {other:?}"),
    }
    assert_eq!(
        store.head().await.expect("head").position,
        head,
        "nothing appended"
    );

    // The next command continues at the right version.
    let next = matches + 2;
    let handled = a
        .handle::<Cohort>(STREAM, &matched(next), &meta(id(next)))
        .await
        .expect("matched after the rejection and the retries");
    assert_eq!(
        handled.append.expect("appended").stream_version,
        matches + 3,
        "receipt, the matches, the other engine's match, this one"
    );
    let (state, version) = Engine::unsealed(store.clone())
        .load::<Cohort>(STREAM)
        .await
        .expect("full load");
    assert_eq!(version, matches + 3);
    assert_eq!(state.matched_persons.len() as u64, matches + 2);
}

//! The graduate ledger workflow: given/when/then tests of its decisions, and
//! one flow on the embedded log with a manual clock.

use chrono::{DateTime, Utc};
use expect_test::{Expect, expect};
use pathway_domain::{
    Event,
    convert::date,
    graduates::{GraduateLedger, GraduateMeasure, GraduateOutcome, LedgerCommand},
    pb,
};
use pathway_saga::{
    Input, InputKind, ProcessManager,
    ledger::{DEADLINE, LedgerSaga, LedgerState, REMINDER, decide},
    phaseout::start_of_day,
    show,
};
use pathway_store::embedded::EmbeddedStore;
use tempfile::TempDir;
use uuid::Uuid;

use crate::support::{World, noon, quiet, settle, ymd};

/// An input to the saga.
#[allow(clippy::large_enum_variant)] // test data, built a few at a time
enum In {
    Event(Event),
    Timer(&'static str),
}

fn opened() -> In {
    In::Event(Event::GraduateLedgerOpened(pb::GraduateLedgerOpened {
        ledger_id: "L-1".into(),
        person_ref: "person-a".into(),
        year: 2024,
        city: "230100".into(),
        school: "Heilongjiang University".into(),
    }))
}

fn outcome() -> In {
    In::Event(Event::GraduateOutcomeRecorded(
        pb::GraduateOutcomeRecorded {
            ledger_id: "L-1".into(),
            person_ref: "person-a".into(),
            outcome: pb::GraduateOutcome::Employed as i32,
            employment_form: 1,
            recorded_on: date(ymd(2024, 12, 15)),
        },
    ))
}

fn overdue() -> In {
    In::Event(Event::GraduateOutcomeOverdue(pb::GraduateOutcomeOverdue {
        ledger_id: "L-1".into(),
        person_ref: "person-a".into(),
        year: 2024,
        due_on: date(ymd(2024, 12, 31)),
    }))
}

fn input<'a>(i: &'a In, position: u64, at: DateTime<Utc>) -> Input<'a> {
    let kind = match i {
        In::Event(e) => InputKind::Event(e),
        In::Timer(timer) => InputKind::Timer { timer, due_at: at },
    };
    Input {
        kind,
        key: "L-1",
        position,
        event_id: Uuid::nil(),
        at,
    }
}

/// Given `given` handled in order (timers at their due times), when `when`
/// arrives at `at`: `expect` (commands, timer changes, then the state).
fn check(given: Vec<In>, when: In, at: DateTime<Utc>, expect: Expect) {
    let mut state = LedgerState::default();
    for (i, g) in given.iter().enumerate() {
        let at = match g {
            In::Timer(REMINDER) => start_of_day(ymd(2024, 12, 1)),
            In::Timer(_) => start_of_day(ymd(2025, 1, 1)),
            In::Event(_) => noon(ymd(2024, 3, 1)),
        };
        state = decide(&state, &input(g, i as u64 + 1, at)).state;
    }
    let t = decide(&state, &input(&when, given.len() as u64 + 1, at));
    let mut out = String::new();
    for c in &t.commands {
        let json = serde_json::to_string(c).expect("encodes");
        out.push_str(&format!("command {json}\n"));
    }
    for r in &t.timers {
        out.push_str(&format!("timer {r:?}\n"));
    }
    let json = serde_json::to_string(&t.state).expect("encodes");
    out.push_str(&format!("state {json}\n"));
    expect.assert_eq(&out);
}

#[test]
fn an_opened_ledger_gets_a_reminder_on_1_december_and_a_deadline_at_the_year_end() {
    check(
        vec![],
        opened(),
        noon(ymd(2024, 3, 1)),
        expect![[r#"
            timer Schedule { timer: "reminder", due_at: 2024-11-30T16:00:00Z }
            timer Schedule { timer: "deadline", due_at: 2024-12-31T16:00:00Z }
            state {"ledger":{"ledger_id":"L-1","person_ref":"person-a","year":2024,"due_on":"2024-12-31"},"outcome":false,"reminded_at":null,"overdue_requested":false,"overdue":false}
        "#]],
    );
}

#[test]
fn a_ledger_opened_in_december_gets_only_the_deadline() {
    check(
        vec![],
        opened(),
        noon(ymd(2024, 12, 5)),
        expect![[r#"
            timer Schedule { timer: "deadline", due_at: 2024-12-31T16:00:00Z }
            state {"ledger":{"ledger_id":"L-1","person_ref":"person-a","year":2024,"due_on":"2024-12-31"},"outcome":false,"reminded_at":null,"overdue_requested":false,"overdue":false}
        "#]],
    );
}

#[test]
fn an_outcome_cancels_the_reminder_and_the_deadline() {
    check(
        vec![opened()],
        outcome(),
        noon(ymd(2024, 6, 30)),
        expect![[r#"
            timer Cancel { timer: "reminder" }
            timer Cancel { timer: "deadline" }
            state {"ledger":{"ledger_id":"L-1","person_ref":"person-a","year":2024,"due_on":"2024-12-31"},"outcome":true,"reminded_at":null,"overdue_requested":false,"overdue":false}
        "#]],
    );
}

#[test]
fn the_reminder_is_recorded_in_the_saga_state() {
    check(
        vec![opened()],
        In::Timer(REMINDER),
        start_of_day(ymd(2024, 12, 1)),
        expect![[r#"
            state {"ledger":{"ledger_id":"L-1","person_ref":"person-a","year":2024,"due_on":"2024-12-31"},"outcome":false,"reminded_at":"2024-11-30T16:00:00Z","overdue_requested":false,"overdue":false}
        "#]],
    );
}

#[test]
fn the_deadline_without_an_outcome_marks_it_overdue_on_the_ledger() {
    check(
        vec![opened(), In::Timer(REMINDER)],
        In::Timer(DEADLINE),
        start_of_day(ymd(2025, 1, 1)),
        expect![[r#"
            command {"stream":"ledger-person-a-2024","command":{"type":"mark_outcome_overdue","due_on":"2024-12-31"}}
            state {"ledger":{"ledger_id":"L-1","person_ref":"person-a","year":2024,"due_on":"2024-12-31"},"outcome":false,"reminded_at":"2024-11-30T16:00:00Z","overdue_requested":true,"overdue":false}
        "#]],
    );
}

#[test]
fn the_deadline_after_an_outcome_does_nothing() {
    check(
        vec![opened(), outcome()],
        In::Timer(DEADLINE),
        start_of_day(ymd(2025, 1, 1)),
        expect![[r#"
            state {"ledger":{"ledger_id":"L-1","person_ref":"person-a","year":2024,"due_on":"2024-12-31"},"outcome":true,"reminded_at":null,"overdue_requested":false,"overdue":false}
        "#]],
    );
}

#[test]
fn the_deadline_after_the_overdue_mark_does_nothing_more() {
    check(
        vec![opened(), overdue()],
        In::Timer(DEADLINE),
        start_of_day(ymd(2025, 1, 2)),
        expect![[r#"
            state {"ledger":{"ledger_id":"L-1","person_ref":"person-a","year":2024,"due_on":"2024-12-31"},"outcome":false,"reminded_at":null,"overdue_requested":false,"overdue":true}
        "#]],
    );
}

#[test]
fn every_ledger_event_names_its_saga() {
    let mut pm = LedgerSaga;
    for i in [opened(), outcome(), overdue()] {
        let In::Event(e) = i else { unreachable!() };
        assert_eq!(pm.correlate(&e), vec!["L-1".to_owned()]);
    }
}

/// Opens `ledger` of `person` for 2024 with a plan, today.
async fn open(w: &mut World<EmbeddedStore>, ledger: &str, person: &str) {
    let stream = format!("ledger-{person}-2024");
    let dpf = pb::Department::Dpf;
    let open = LedgerCommand::OpenLedger {
        ledger_id: ledger.into(),
        person_ref: person.into(),
        year: 2024,
        city: "230103".into(),
        school: "Heilongjiang University".into(),
    };
    w.command::<GraduateLedger>(dpf, &stream, &open)
        .await
        .expect("ledger opened");
    let plan = LedgerCommand::SetPlan {
        measures: vec![GraduateMeasure::JobReferral],
        target_date: ymd(2024, 12, 31),
    };
    w.command::<GraduateLedger>(dpf, &stream, &plan)
        .await
        .expect("plan set");
}

async fn record_outcome(w: &mut World<EmbeddedStore>, person: &str) {
    let today = w.today();
    let outcome = LedgerCommand::RecordOutcome {
        outcome: GraduateOutcome::FurtherStudy,
        employment_form: None,
        recorded_on: today,
    };
    w.command::<GraduateLedger>(
        pb::Department::Dpf,
        &format!("ledger-{person}-2024"),
        &outcome,
    )
    .await
    .expect("outcome recorded");
}

fn timers_fired(events: &[(String, Event)], timer: &str) -> Vec<String> {
    let mut sagas: Vec<String> = events
        .iter()
        .filter_map(|(stream, e)| match e {
            Event::SagaTimerFired(f) if f.timer == timer => Some(stream.clone()),
            _ => None,
        })
        .collect();
    sagas.sort();
    sagas
}

#[tokio::test]
async fn a_ledger_without_an_outcome_is_reminded_on_1_december_and_overdue_on_1_january() {
    let dir = TempDir::new().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("open store");
    let mut w = World::new(store, noon(ymd(2024, 3, 1)), 11);
    let mut router = w.router_of(LedgerSaga, "ledger").await;
    let mut sweeper = w.sweeper("s1", quiet());

    open(&mut w, "L-1", "person-a").await;
    open(&mut w, "L-2", "person-b").await;
    open(&mut w, "L-3", "person-c").await;
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert_eq!(sweeper.index().len(), 6);

    // L-1's outcome in June: neither reminded nor overdue.
    w.clock.set(noon(ymd(2024, 6, 30)));
    record_outcome(&mut w, "person-a").await;
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert_eq!(sweeper.index().len(), 4);

    // Nothing fires before 1 December.
    w.clock
        .set(start_of_day(ymd(2024, 12, 1)) - chrono::Duration::seconds(1));
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert!(w.all_of("SagaTimerFired").await.is_empty(), "fired early");

    // 1 December 00:00: L-2 and L-3 are reminded.
    w.clock.set(start_of_day(ymd(2024, 12, 1)));
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert_eq!(
        timers_fired(&w.all_of("SagaTimerFired").await, REMINDER),
        vec!["saga-ledger-L-2", "saga-ledger-L-3"]
    );

    // L-2's outcome in December, before the deadline.
    w.clock.set(noon(ymd(2024, 12, 15)));
    record_outcome(&mut w, "person-b").await;
    settle(&mut router, &mut sweeper).await.expect("settles");

    // One second before 1 January: nothing overdue yet.
    w.clock
        .set(start_of_day(ymd(2025, 1, 1)) - chrono::Duration::seconds(1));
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert!(w.all_of("GraduateOutcomeOverdue").await.is_empty());

    // 1 January 00:00: only L-3, without an outcome, is overdue.
    w.clock.set(start_of_day(ymd(2025, 1, 1)));
    settle(&mut router, &mut sweeper).await.expect("settles");
    let fired = w.all_of("SagaTimerFired").await;
    assert_eq!(timers_fired(&fired, DEADLINE), vec!["saga-ledger-L-3"]);
    let overdue = w.all_of("GraduateOutcomeOverdue").await;
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].0, "ledger-person-c-2024");
    let Event::GraduateOutcomeOverdue(e) = &overdue[0].1 else {
        unreachable!()
    };
    assert_eq!(
        (e.ledger_id.as_str(), e.year, e.due_on),
        ("L-3", 2024, date(ymd(2024, 12, 31)))
    );
    assert!(sweeper.index().is_empty());

    // Running again, later, changes nothing; the saga saw the overdue mark.
    w.clock.set(noon(ymd(2025, 2, 1)));
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert_eq!(w.all_of("GraduateOutcomeOverdue").await.len(), 1);
    let out = show::render(&w.store, "saga-ledger-L-3")
        .await
        .expect("show");
    assert!(out.contains(r#""overdue":true"#), "{out}");
    assert!(
        out.contains("deadline gen 1 due 2024-12-31 16:00:00 UTC: fired"),
        "{out}"
    );
}

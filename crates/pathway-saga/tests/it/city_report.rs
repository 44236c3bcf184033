//! The city annual report workflow: given/when/then tests of its decisions
//! and correlation, and one flow on the embedded log with a manual clock.

use chrono::{DateTime, Utc};
use expect_test::{Expect, expect};
use pathway_domain::{
    Event,
    convert::date,
    governance::{CityReport, CityReportCommand},
    pb,
    policy::PolicyTable,
    validate::CITIES,
};
use pathway_saga::{
    Input, InputKind, ProcessManager,
    city_report::{CityReportSaga, CityReportState, DEADLINE, REMINDER, decide},
    phaseout::start_of_day,
    show,
};
use pathway_store::embedded::EmbeddedStore;
use tempfile::TempDir;
use uuid::Uuid;

use crate::support::{World, noon, settle, ymd};

const KEY: &str = "230100-2024";

/// An input to the saga.
#[allow(clippy::large_enum_variant)] // test data, built a few at a time
enum In {
    Event(Event),
    Timer(&'static str),
}

fn counted(year: i32) -> In {
    In::Event(Event::NewEmploymentCounted(pb::NewEmploymentCounted {
        person_ref: "P1".into(),
        year,
        placement_id: "PL1".into(),
        region: "230103".into(),
        employment_form: 1,
    }))
}

fn submitted_event(city: &str, year: i32) -> Event {
    Event::CityAnnualReportSubmitted(pb::CityAnnualReportSubmitted {
        report_id: format!("R-{city}-{year}"),
        city: city.into(),
        year,
        submitted_on: date(ymd(2024, 11, 20)),
        new_employment: 100,
        four_ones_verified: 90,
        trained: 80,
        narrative: "n".into(),
    })
}

fn submitted(city: &str, year: i32) -> In {
    In::Event(submitted_event(city, year))
}

fn overdue(city: &str) -> In {
    In::Event(Event::CityAnnualReportOverdue(
        pb::CityAnnualReportOverdue {
            city: city.into(),
            year: 2024,
            due_on: date(ymd(2024, 12, 31)),
        },
    ))
}

fn input<'a>(i: &'a In, position: u64, at: DateTime<Utc>) -> Input<'a> {
    let kind = match i {
        In::Event(e) => InputKind::Event(e),
        In::Timer(timer) => InputKind::Timer { timer, due_at: at },
    };
    Input {
        kind,
        key: KEY,
        position,
        event_id: Uuid::nil(),
        at,
    }
}

/// Given `given` handled in order (timers at their due times), when `when`
/// arrives at `at`: `expect` (commands, timer changes, then the state).
fn check(given: Vec<In>, when: In, at: DateTime<Utc>, expect: Expect) {
    let policy = PolicyTable::builtin();
    let mut state = CityReportState::default();
    for (i, g) in given.iter().enumerate() {
        let at = match g {
            In::Timer(REMINDER) => start_of_day(ymd(2024, 12, 1)),
            In::Timer(_) => start_of_day(ymd(2025, 1, 1)),
            In::Event(_) => noon(ymd(2024, 3, 1)),
        };
        state = decide(&state, &input(g, i as u64 + 1, at), policy).state;
    }
    let t = decide(&state, &input(&when, given.len() as u64 + 1, at), policy);
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
fn the_first_event_of_a_plan_year_starts_the_saga_with_reminder_and_deadline() {
    check(
        vec![],
        counted(2024),
        noon(ymd(2024, 3, 1)),
        expect![[r#"
            timer Schedule { timer: "reminder", due_at: 2024-11-30T16:00:00Z }
            timer Schedule { timer: "deadline", due_at: 2024-12-31T16:00:00Z }
            state {"key":["230100",2024],"due_on":"2024-12-31","filed":null,"reminded_at":null,"overdue_requested":false,"overdue":false}
        "#]],
    );
}

#[test]
fn a_saga_started_by_its_own_filing_schedules_nothing() {
    check(
        vec![],
        submitted("230100", 2024),
        noon(ymd(2024, 11, 20)),
        expect![[r#"
            state {"key":["230100",2024],"due_on":"2024-12-31","filed":"R-230100-2024","reminded_at":null,"overdue_requested":false,"overdue":false}
        "#]],
    );
}

#[test]
fn a_filing_before_the_deadline_cancels_both_timers() {
    check(
        vec![counted(2024)],
        submitted("230100", 2024),
        noon(ymd(2024, 11, 20)),
        expect![[r#"
            timer Cancel { timer: "reminder" }
            timer Cancel { timer: "deadline" }
            state {"key":["230100",2024],"due_on":"2024-12-31","filed":"R-230100-2024","reminded_at":null,"overdue_requested":false,"overdue":false}
        "#]],
    );
}

#[test]
fn another_citys_filing_changes_nothing() {
    check(
        vec![counted(2024)],
        submitted("230200", 2024),
        noon(ymd(2024, 11, 20)),
        expect![[r#"
            state {"key":["230100",2024],"due_on":"2024-12-31","filed":null,"reminded_at":null,"overdue_requested":false,"overdue":false}
        "#]],
    );
}

#[test]
fn the_reminder_is_recorded_in_the_saga_state() {
    check(
        vec![counted(2024)],
        In::Timer(REMINDER),
        start_of_day(ymd(2024, 12, 1)),
        expect![[r#"
            state {"key":["230100",2024],"due_on":"2024-12-31","filed":null,"reminded_at":"2024-11-30T16:00:00Z","overdue_requested":false,"overdue":false}
        "#]],
    );
}

#[test]
fn the_deadline_without_a_filing_marks_the_report_overdue() {
    check(
        vec![counted(2024), In::Timer(REMINDER)],
        In::Timer(DEADLINE),
        start_of_day(ymd(2025, 1, 1)),
        expect![[r#"
            command {"type":"mark_overdue","city":"230100","year":2024,"due_on":"2024-12-31"}
            state {"key":["230100",2024],"due_on":"2024-12-31","filed":null,"reminded_at":"2024-11-30T16:00:00Z","overdue_requested":true,"overdue":false}
        "#]],
    );
}

#[test]
fn the_deadline_after_a_filing_does_nothing() {
    check(
        vec![counted(2024), submitted("230100", 2024)],
        In::Timer(DEADLINE),
        start_of_day(ymd(2025, 1, 1)),
        expect![[r#"
            state {"key":["230100",2024],"due_on":"2024-12-31","filed":"R-230100-2024","reminded_at":null,"overdue_requested":false,"overdue":false}
        "#]],
    );
}

#[test]
fn the_deadline_after_the_overdue_mark_does_nothing_more() {
    check(
        vec![counted(2024), overdue("230100")],
        In::Timer(DEADLINE),
        start_of_day(ymd(2025, 1, 1)),
        expect![[r#"
            state {"key":["230100",2024],"due_on":"2024-12-31","filed":null,"reminded_at":null,"overdue_requested":false,"overdue":true}
        "#]],
    );
}

#[test]
fn the_first_event_of_a_plan_year_fans_out_to_the_13_cities_once() {
    let mut pm = CityReportSaga::default();
    let In::Event(first) = counted(2024) else {
        unreachable!()
    };
    let keys = pm.correlate(&first);
    let expected: Vec<String> = CITIES.iter().map(|c| format!("{}-2024", c.code)).collect();
    assert_eq!(keys, expected);
    assert_eq!(keys.len(), 13);
    assert!(pm.correlate(&first).is_empty(), "second event of the year");
    assert_eq!(
        pm.correlate(&submitted_event("230200", 2024)),
        vec!["230200-2024".to_owned()]
    );
    // Outside the plan (2022–2024): nothing starts.
    let In::Event(later) = counted(2031) else {
        unreachable!()
    };
    assert!(pm.correlate(&later).is_empty());
    let command = CityReportCommand::MarkOverdue {
        city: "230200".into(),
        year: 2024,
        due_on: ymd(2024, 12, 31),
    };
    assert_eq!(pm.command_stream(&command), "report-230200-2024");
}

/// Submits `city`'s report for 2024 today.
async fn file(w: &mut World<EmbeddedStore>, city: &str) {
    let today = w.today();
    let command = CityReportCommand::SubmitReport {
        report_id: format!("R-{city}"),
        city: city.into(),
        year: 2024,
        submitted_on: today,
        new_employment: 10,
        four_ones_verified: 9,
        trained: 8,
        narrative: "year report".into(),
    };
    w.command::<CityReport>(
        pb::Department::Dpf,
        &format!("report-{city}-2024"),
        &command,
    )
    .await
    .expect("report filed");
}

#[tokio::test]
async fn unfiled_cities_are_reminded_on_1_december_and_marked_overdue_on_1_january() {
    let dir = TempDir::new().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("open store");
    let mut w = World::new(store, noon(ymd(2024, 3, 1)), 7);
    let mut router = w.router_of(CityReportSaga::default(), "cityreport").await;
    let mut sweeper = w.sweeper("s1", crate::support::quiet());

    // The first event of 2024 starts the 13 sagas.
    w.fact(
        "person-P1",
        Event::NewEmploymentCounted(pb::NewEmploymentCounted {
            person_ref: "P1".into(),
            year: 2024,
            placement_id: "PL1".into(),
            region: "230103".into(),
            employment_form: 1,
        }),
    )
    .await;
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert_eq!(w.all_of("SagaStepTaken").await.len(), 13);
    assert_eq!(sweeper.index().len(), 26, "a reminder and a deadline each");

    // Harbin and Qiqihar file in November.
    w.clock.set(noon(ymd(2024, 11, 20)));
    file(&mut w, "230100").await;
    file(&mut w, "230200").await;
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert_eq!(sweeper.index().len(), 22);

    // Nothing fires before 1 December.
    w.clock
        .set(start_of_day(ymd(2024, 12, 1)) - chrono::Duration::seconds(1));
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert!(w.all_of("SagaTimerFired").await.is_empty(), "fired early");

    // 1 December 00:00: the 11 cities that have not filed are reminded.
    w.clock.set(start_of_day(ymd(2024, 12, 1)));
    settle(&mut router, &mut sweeper).await.expect("settles");
    let fired = w.all_of("SagaTimerFired").await;
    assert_eq!(fired.len(), 11);
    assert!(fired.iter().all(|(_, e)| matches!(e,
        Event::SagaTimerFired(f) if f.timer == REMINDER)));
    let out = show::render(&w.store, "saga-cityreport-230300-2024")
        .await
        .expect("show");
    assert!(
        out.contains(r#""reminded_at":"2024-11-30T16:00:00Z""#),
        "{out}"
    );
    assert!(w.all_of("CityAnnualReportOverdue").await.is_empty());

    // Jixi files late in December, before the deadline.
    w.clock.set(noon(ymd(2024, 12, 20)));
    file(&mut w, "230300").await;
    settle(&mut router, &mut sweeper).await.expect("settles");

    // One second before 1 January: still nothing overdue.
    w.clock
        .set(start_of_day(ymd(2025, 1, 1)) - chrono::Duration::seconds(1));
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert_eq!(w.all_of("SagaTimerFired").await.len(), 11);
    assert!(w.all_of("CityAnnualReportOverdue").await.is_empty());

    // 1 January 00:00: exactly the 10 cities without a report are overdue.
    w.clock.set(start_of_day(ymd(2025, 1, 1)));
    settle(&mut router, &mut sweeper).await.expect("settles");
    let overdue = w.all_of("CityAnnualReportOverdue").await;
    let mut cities: Vec<String> = overdue
        .iter()
        .map(|(_, e)| match e {
            Event::CityAnnualReportOverdue(o) => {
                assert_eq!(o.year, 2024);
                assert_eq!(o.due_on, date(ymd(2024, 12, 31)));
                o.city.clone()
            }
            _ => unreachable!(),
        })
        .collect();
    cities.sort();
    let mut expected: Vec<String> = CITIES
        .iter()
        .map(|c| c.code.to_owned())
        .filter(|c| !["230100", "230200", "230300"].contains(&c.as_str()))
        .collect();
    expected.sort();
    assert_eq!(cities, expected);
    assert_eq!(w.all_of("SagaTimerFired").await.len(), 21);
    assert!(sweeper.index().is_empty());

    // Running again, later, changes nothing.
    w.clock.set(noon(ymd(2025, 2, 1)));
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert_eq!(w.all_of("CityAnnualReportOverdue").await.len(), 10);
    let out = show::render(&w.store, "saga-cityreport-230400-2024")
        .await
        .expect("show");
    assert!(out.contains(r#""overdue":true"#), "{out}");
}

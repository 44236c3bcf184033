//! Replay as of a date equals the read model captured at that moment.
//!
//! The simulator's programme (commands decided across 2022–2024) is applied
//! to a log in business-time order; at each year-end, before the first event
//! of the next year, every department's live model is brought up to date and
//! captured. Afterwards, the replay of each model as of each year-end must
//! equal its capture.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone as _, Utc};
use pathway_audit::replay::{self, Clock, time_of};
use pathway_engine::Engine;
use pathway_projections::{
    Table, Value, models,
    runtime::{self, ReadStore},
};
use pathway_sim::SimConfig;
use pathway_store::{EventStore, ExpectedVersion, NewEvent, ReadFilter, embedded::EmbeddedStore};

type Captured = Vec<(Table, Vec<Vec<Value>>)>;

fn year_end(year: i32) -> DateTime<Utc> {
    chrono::FixedOffset::east_opt(8 * 3600)
        .expect("UTC+8")
        .with_ymd_and_hms(year, 12, 31, 23, 59, 59)
        .single()
        .expect("a valid moment")
        .to_utc()
}

async fn capture_all(store: &EmbeddedStore, live: &ReadStore) -> BTreeMap<&'static str, Captured> {
    let mut out = BTreeMap::new();
    for projection in models::all() {
        runtime::catch_up(store, live, projection.clone())
            .await
            .expect("catch up");
        let tables = replay::read_tables(live, projection.name(), projection.tables())
            .await
            .expect("read the live model");
        out.insert(projection.name(), tables);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_as_of_each_year_end_equals_the_model_captured_then() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The programme's commands, decided by the engine through the simulator.
    let source = EmbeddedStore::open(&dir.path().join("source")).expect("source store");
    let cfg = SimConfig {
        persons: 40,
        seed: 11,
        concurrency: 4,
    };
    pathway_sim::run(&Engine::unsealed(source.clone()), &cfg, |_, _| {})
        .await
        .expect("simulate");
    let mut events = source
        .read_all(1, usize::MAX, &ReadFilter::all())
        .await
        .expect("read the programme");
    let mut timed = Vec::with_capacity(events.len());
    for r in events.drain(..) {
        timed.push((time_of(&r, Clock::Business).expect("business time"), r));
    }
    // Stable: events of one moment keep their log order.
    timed.sort_by_key(|(t, _)| *t);

    // Apply them in business-time order, capturing every model at each year-end.
    let log = EmbeddedStore::open(&dir.path().join("log")).expect("log");
    let live = ReadStore::Sqlite {
        dir: dir.path().join("live"),
    };
    let mut captured = BTreeMap::new();
    let mut years = [2022, 2023, 2024].into_iter().peekable();
    for (at, r) in &timed {
        while let Some(&year) = years.peek() {
            if *at <= year_end(year) {
                break;
            }
            captured.insert(year, capture_all(&log, &live).await);
            years.next();
        }
        let event = NewEvent {
            event_id: r.event_id,
            event_type: r.event_type.clone(),
            schema_version: r.schema_version,
            metadata: r.metadata.clone(),
            payload: r.payload.clone(),
        };
        log.append(&r.stream_id, ExpectedVersion::Any, vec![event])
            .await
            .expect("append");
    }
    for year in years {
        captured.insert(year, capture_all(&log, &live).await);
    }
    assert_eq!(captured.len(), 3);
    // Events after the last year-end (the evaluation in January 2025) are in
    // the live models too.
    let live_before = capture_all(&log, &live).await;

    for (year, models_then) in &captured {
        for (name, then) in models_then {
            let scratch = dir.path().join(format!("replay-{year}"));
            let replayed = replay::replay(&log, name, year_end(*year), Clock::Business, &scratch)
                .await
                .expect("replay");
            let rows: usize = then.iter().map(|(_, rows)| rows.len()).sum();
            assert!(
                *name == "education" || rows > 0 || *year == 2022,
                "{name} {year} is empty"
            );
            assert!(
                &replayed.tables == then,
                "model {name} as of the end of {year} differs from its capture"
            );
        }
    }
    // The years differ: the replay really is of the moment asked for.
    assert_ne!(captured[&2022]["committee"], captured[&2024]["committee"]);
    // Live models were not touched by the replays.
    assert!(
        capture_all(&log, &live).await == live_before,
        "a replay changed a live model"
    );
}

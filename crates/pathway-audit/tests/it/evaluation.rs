//! The end-of-plan evaluation, from models replayed as of 2024-12-31,
//! equals counts computed straight from the log's events.

use std::collections::BTreeMap;

use pathway_audit::{
    evaluation::{self, year_end},
    replay::{Clock, time_of},
};
use pathway_domain::{Event, pb};
use pathway_engine::Engine;
use pathway_projections::views::city_of;
use pathway_proto::Message as _;
use pathway_sim::SimConfig;
use pathway_store::{EventStore, ReadFilter, embedded::EmbeddedStore};

#[tokio::test(flavor = "multi_thread")]
async fn evaluation_totals_equal_counts_from_the_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("store");
    let cfg = SimConfig {
        persons: 60,
        seed: 24,
        concurrency: 4,
    };
    pathway_sim::run(&Engine::unsealed(store.clone()), &cfg, |_, _| {})
        .await
        .expect("simulate");
    let report = evaluation::evaluate(&store, 2024, &dir.path().join("scratch"))
        .await
        .expect("evaluate");

    // The same figures, counted from the events up to the year-end.
    let end = year_end(2024).expect("year end");
    let all = store
        .read_all(1, usize::MAX, &ReadFilter::all())
        .await
        .expect("read");
    let mut selected = 0u64;
    let mut later = 0u64;
    let mut employment: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut by_year: BTreeMap<i32, i64> = BTreeMap::new();
    let mut posts: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    let mut cadres: BTreeMap<(String, i32), pb::DpfCadreRatioReported> = BTreeMap::new();
    let mut obligations: BTreeMap<(String, i32), bool> = BTreeMap::new();
    let mut quota: BTreeMap<(String, i32), u32> = BTreeMap::new();
    let mut ledgers: BTreeMap<i32, i64> = BTreeMap::new();
    let (mut started, mut completed, mut cancelled, mut extended) = (0, 0, 0, 0);
    for r in &all {
        if time_of(r, Clock::Business).expect("time") > end {
            later += 1;
            continue;
        }
        selected += 1;
        let Some(event) = pb::Event::decode(r.payload.as_ref()).expect("decode").kind else {
            continue;
        };
        match event {
            Event::NewEmploymentCounted(e) => {
                *employment.entry((city_of(&e.region), e.year)).or_default() += 1;
                *by_year.entry(e.year).or_default() += 1;
            }
            Event::PublicWelfarePostsDeveloped(e) => {
                let p = posts.entry(e.year).or_default();
                p.0 += i64::from(e.total_posts);
                p.1 += i64::from(e.disabled_posts);
            }
            Event::DpfCadreRatioReported(e) => {
                cadres.insert((e.dpf_org.clone(), e.year), e);
            }
            Event::PublicUnitObligationEvaluated(e) => {
                obligations.insert((e.uscc, e.year), e.obligated_to_hire_one);
            }
            Event::QuotaReported(e) => {
                quota.insert((e.uscc, e.year), e.counted_disabled);
            }
            Event::GraduateLedgerOpened(e) => *ledgers.entry(e.year).or_default() += 1,
            Event::PhaseOutStarted(_) => started += 1,
            Event::PhaseOutExtensionApproved(_) => extended += 1,
            Event::BenefitPhasedOut(_) => completed += 1,
            Event::PhaseOutCancelled(_) => cancelled += 1,
            _ => {}
        }
    }
    assert!(later > 0, "the log goes on past the year-end");
    assert_eq!(report.events, selected);

    let reported: BTreeMap<(String, i32), i64> = report
        .new_employment
        .iter()
        .map(|c| ((c.city.clone(), c.year), c.persons))
        .collect();
    assert_eq!(reported, employment);
    assert_eq!(report.new_employment_by_year, by_year);
    let plan_total: i64 = by_year
        .iter()
        .filter(|(y, _)| (2022..=2024).contains(*y))
        .map(|(_, n)| n)
        .sum();
    assert!(plan_total > 0);
    assert_eq!(report.new_employment_total, plan_total);
    assert_eq!(report.target_new_employment, 33_000);
    assert!(
        !report.target_met,
        "a small simulation does not reach the target"
    );

    let reported_posts: BTreeMap<i32, (i64, i64)> = report
        .welfare_posts
        .iter()
        .map(|(y, p)| (*y, (p.total_posts, p.disabled_posts)))
        .collect();
    assert_eq!(reported_posts, posts);

    let mut expected_cadres: BTreeMap<i32, (i64, i64, i64, i64)> = BTreeMap::new();
    for ((_, year), e) in &cadres {
        let c = expected_cadres.entry(*year).or_default();
        c.0 += 1;
        c.1 += i64::from(e.compliant);
        c.2 += i64::from(e.total_cadres);
        c.3 += i64::from(e.disabled_cadres);
    }
    let reported_cadres: BTreeMap<i32, (i64, i64, i64, i64)> = report
        .dpf_cadres
        .iter()
        .map(|(y, c)| {
            (
                *y,
                (
                    c.organs,
                    c.compliant_organs,
                    c.total_cadres,
                    c.disabled_cadres,
                ),
            )
        })
        .collect();
    assert_eq!(reported_cadres, expected_cadres);

    let mut expected_units: BTreeMap<i32, (i64, i64, i64)> = BTreeMap::new();
    for ((uscc, year), obliged) in &obligations {
        let u = expected_units.entry(*year).or_default();
        u.0 += 1;
        if *obliged {
            u.1 += 1;
            if quota.get(&(uscc.clone(), *year)).is_some_and(|&n| n >= 1) {
                u.2 += 1;
            }
        }
    }
    let reported_units: BTreeMap<i32, (i64, i64, i64)> = report
        .public_units
        .iter()
        .map(|(y, u)| (*y, (u.evaluated, u.obliged, u.compliant)))
        .collect();
    assert_eq!(reported_units, expected_units);

    let reported_ledgers: BTreeMap<i32, i64> = report
        .graduates
        .iter()
        .filter(|(_, g)| g.ledgers_opened > 0)
        .map(|(y, g)| (*y, g.ledgers_opened))
        .collect();
    assert_eq!(reported_ledgers, ledgers);

    let p = &report.phase_outs;
    assert_eq!(
        (p.started, p.extended, p.completed, p.cancelled),
        (started, extended, completed, cancelled)
    );
    assert!(started > 0, "the simulation starts phase-outs");

    // Reproducible: the same log gives the same evaluation.
    let again = evaluation::evaluate(&store, 2024, &dir.path().join("scratch-2"))
        .await
        .expect("evaluate again");
    assert_eq!(
        serde_json::to_value(&again).expect("json"),
        serde_json::to_value(&report).expect("json")
    );
}

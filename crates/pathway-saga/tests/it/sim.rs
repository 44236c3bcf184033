//! A deterministic simulation of the phase-out saga: thousands of dibao
//! households over three years of policy time, with random placements, job
//! losses, reassessments, extensions and re-assertions, and crashes injected
//! at random fault points of the router and the sweeper (the crashed
//! runtime is abandoned and a new one resumes from the log and the router's
//! checkpoint). The seed is printed at the start and again on failure;
//! replay with `PATHWAY_SAGA_SIM_SEED=<seed>`.
//!
//! Invariants checked on the log at the end:
//! - no phase-out ends later than its approved end (planned, or the last
//!   approved extension), and none ends before it (never early);
//! - no timer generation fires twice, none fires before its due time, and
//!   every firing happens within a day of its due time;
//! - no phase-out is both completed and cancelled, or completed twice;
//! - every started phase-out has ended (completed or cancelled) or its
//!   approved end is after the last simulated day.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{Months, NaiveDate};
use pathway_domain::{Event, convert::naive, household::HouseholdCommand, pb};
use pathway_saga::{FaultHook, FaultPoint, SagaError, phaseout::start_of_day};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use pathway_store::EventStore;

use crate::mem::MemStore;
use crate::support::{PhaseOutRouter, STANDARD_FEN, World, noon, ymd};

const SEED_ENV: &str = "PATHWAY_SAGA_SIM_SEED";
const HOUSEHOLDS_ENV: &str = "PATHWAY_SAGA_SIM_HOUSEHOLDS";
const DEFAULT_SEED: u64 = 20_251_129;
const DEFAULT_HOUSEHOLDS: usize = 2_000;
const FIRST_DAY: (i32, u32, u32) = (2025, 1, 1);
const SIM_DAYS: u64 = 3 * 365;
/// Chance per fault point passed that the runtime crashes there, per mille.
const CRASH_PER_MILLE: u32 = 5;
/// Most crash-and-restart rounds per settle before the test gives up.
const RESTARTS_PER_SETTLE_MAX: u32 = 1_000;

struct SeedOnFailure(u64);

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "saga simulation failed with seed {0}; replay: {SEED_ENV}={0}",
                self.0
            );
        }
    }
}

struct Household {
    id: String,
    members: Vec<String>,
    /// Member → its placement in progress.
    placed: BTreeMap<String, String>,
}

struct Crashes {
    rng: Mutex<StdRng>,
    count: Mutex<u64>,
}

#[tokio::test]
async fn three_years_of_phase_outs_with_crashes_keep_every_invariant() {
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let households: usize = std::env::var(HOUSEHOLDS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_HOUSEHOLDS);
    eprintln!("saga simulation seed {seed}, {households} households");
    let _guard = SeedOnFailure(seed);
    simulate(seed, households).await;
}

async fn settle_with_crashes(
    w: &World<MemStore>,
    router: &mut PhaseOutRouter<MemStore>,
    sweeper: &mut pathway_saga::Sweeper<MemStore, pathway_saga::ManualClock>,
    hook: &FaultHook,
) {
    for _ in 0..RESTARTS_PER_SETTLE_MAX {
        match crate::support::settle(router, sweeper).await {
            Ok(()) => return,
            Err(SagaError::Injected(_)) => {
                // The process died: start over from the log.
                *router = w.router(hook.clone()).await;
                *sweeper = w.sweeper("sim", hook.clone());
            }
            Err(e) => panic!("runtime failed: {e}"),
        }
    }
    panic!("still crashing after {RESTARTS_PER_SETTLE_MAX} restarts");
}

async fn simulate(seed: u64, n: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let crashes = Arc::new(Crashes {
        rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed)),
        count: Mutex::new(0),
    });
    let hook: FaultHook = {
        let crashes = crashes.clone();
        Arc::new(move |point: FaultPoint, _saga: &str| {
            if crashes.rng.lock().expect("lock").random_range(0..1_000) < CRASH_PER_MILLE {
                *crashes.count.lock().expect("lock") += 1;
                return Err(SagaError::Injected(point));
            }
            Ok(())
        })
    };
    let first = ymd(FIRST_DAY.0, FIRST_DAY.1, FIRST_DAY.2);
    let last = first + chrono::Days::new(SIM_DAYS - 1);
    let mut w = World::new(MemStore::new(), start_of_day(first), seed);
    let mut router = w.router(hook.clone()).await;
    let mut sweeper = w.sweeper("sim", hook.clone());

    let mut homes: Vec<Household> = (0..n)
        .map(|h| Household {
            id: format!("H{h}"),
            members: (0..rng.random_range(1..=3))
                .map(|m| format!("P{h}-{m}"))
                .collect(),
            placed: BTreeMap::new(),
        })
        .collect();
    for h in &homes {
        let members: Vec<&str> = h.members.iter().map(String::as_str).collect();
        w.assert_dibao(&h.id, &members).await;
    }
    // Requests not yet answered: household → (answer on, job loss?).
    let mut requests: BTreeMap<String, (NaiveDate, bool)> = BTreeMap::new();
    // Active phase-outs as Civil Affairs knows them: household → (id, end).
    let mut active: BTreeMap<String, (String, NaiveDate)> = BTreeMap::new();
    let mut not_dibao: BTreeMap<String, ()> = BTreeMap::new();
    let mut read_from = 1;
    let mut phase_out_seq = 0u64;
    let mut placement_seq = 0u64;

    let mut day = first;
    while day <= last {
        w.clock.set(start_of_day(day));
        settle_with_crashes(&w, &mut router, &mut sweeper, &hook).await;
        w.clock.set(noon(day));
        for h in homes.iter_mut() {
            for m in h.members.clone() {
                if let Some(placement) = h.placed.get(&m).cloned() {
                    if rng.random_range(0..1_000) < 2 {
                        h.placed.remove(&m);
                        w.placement_ended(&m, &placement).await;
                    }
                } else if rng.random_range(0..1_000) < 3 {
                    placement_seq += 1;
                    let placement = format!("PL{placement_seq}");
                    h.placed.insert(m.clone(), placement.clone());
                    w.placed(&m, &placement).await;
                }
            }
        }
        // Civil Affairs answers the requests due today.
        let due: Vec<(String, bool)> = requests
            .iter()
            .filter(|(_, (on, _))| *on <= day)
            .map(|(h, (_, job_loss))| (h.clone(), *job_loss))
            .collect();
        for (h, job_loss) in due {
            requests.remove(&h);
            let below = if job_loss { 700 } else { 400 };
            let roll = rng.random_range(0..1_000);
            let income = if roll < below {
                STANDARD_FEN - rng.random_range(1..20_000)
            } else if roll < 900 {
                STANDARD_FEN + rng.random_range(1..30_000)
            } else {
                STANDARD_FEN * 3
            };
            phase_out_seq += 1;
            w.reassess(&h, income, &format!("PO{phase_out_seq}"))
                .await
                .unwrap_or_else(|e| panic!("reassessment of {h} rejected: {e}"));
        }
        // Extensions, approved with a reason, sometimes beyond 12 months.
        for (h, (id, end)) in active.clone() {
            if end > day && rng.random_range(0..1_000) < 2 {
                let to = end + Months::new(rng.random_range(1..=3));
                // Today's reassessment may have cancelled it already.
                match w.extend(&h, &id, to).await {
                    Ok(_) | Err(pathway_engine::EngineError::Rejected(_)) => {}
                    Err(e) => panic!("extension of {id} failed: {e}"),
                }
            }
        }
        // A household off dibao may be granted it again.
        for h in not_dibao.keys().cloned().collect::<Vec<_>>() {
            if rng.random_range(0..1_000) < 3 {
                let home = homes.iter().find(|x| x.id == h).expect("known household");
                let members: Vec<&str> = home.members.iter().map(String::as_str).collect();
                w.assert_dibao(&h, &members).await;
            }
        }
        settle_with_crashes(&w, &mut router, &mut sweeper, &hook).await;
        // What happened, as Civil Affairs' inbox and registers show it.
        let batch = w
            .store
            .read_all(read_from, usize::MAX, &pathway_store::ReadFilter::all())
            .await
            .expect("read log");
        for r in batch {
            read_from = r.position + 1;
            match pathway_engine::decode(&r).expect("decodes") {
                Event::HouseholdReassessmentRequested(e) => {
                    let job_loss = e.trigger == pb::ReassessmentTrigger::JobLoss as i32;
                    let on = day + chrono::Days::new(rng.random_range(0..20));
                    requests.entry(e.household_ref).or_insert((on, job_loss));
                }
                Event::PhaseOutStarted(e) => {
                    let end = naive(e.planned_end_date.as_ref()).expect("end");
                    active.insert(e.household_ref, (e.phase_out_id, end));
                }
                Event::PhaseOutExtensionApproved(e) => {
                    let end = naive(e.new_end_date.as_ref()).expect("end");
                    active.insert(e.household_ref, (e.phase_out_id, end));
                }
                Event::PhaseOutCancelled(e) => {
                    active.remove(&e.household_ref);
                }
                Event::BenefitPhasedOut(e) => {
                    active.remove(&e.household_ref);
                    not_dibao.insert(e.household_ref, ());
                }
                Event::DibaoBenefitTerminated(e) => {
                    not_dibao.insert(e.household_ref, ());
                }
                Event::LowIncomeStatusAsserted(e) => {
                    not_dibao.remove(&e.household_ref);
                }
                _ => {}
            }
        }
        day = day.succ_opt().expect("next day");
    }
    let crashed = *crashes.count.lock().expect("lock");
    check_invariants(&w, last, crashed).await;
    let _ = &mut homes;
    let _ = HouseholdCommand::household_ref;
}

#[derive(Default, Debug)]
struct PhaseOutRecord {
    start: Option<NaiveDate>,
    approved_end: Option<NaiveDate>,
    completed: Vec<NaiveDate>,
    cancelled: u32,
}

async fn check_invariants(w: &World<MemStore>, last: NaiveDate, crashed: u64) {
    let mut phase_outs: BTreeMap<String, PhaseOutRecord> = BTreeMap::new();
    let mut firings: BTreeMap<(String, String, u64), u32> = BTreeMap::new();
    let all = w
        .store
        .read_all(1, usize::MAX, &pathway_store::ReadFilter::all())
        .await
        .expect("read log");
    let events = all.len();
    for r in all {
        match pathway_engine::decode(&r).expect("decodes") {
            Event::PhaseOutStarted(e) => {
                let p = phase_outs.entry(e.phase_out_id).or_default();
                p.start = naive(e.start_date.as_ref());
                p.approved_end = naive(e.planned_end_date.as_ref());
                let start = p.start.expect("start");
                assert!(
                    p.approved_end <= start.checked_add_months(Months::new(12)),
                    "planned end beyond 12 months without an approval: {p:?}"
                );
            }
            Event::PhaseOutExtensionApproved(e) => {
                assert!(!e.approved_by.is_empty() && !e.justification.is_empty());
                phase_outs.entry(e.phase_out_id).or_default().approved_end =
                    naive(e.new_end_date.as_ref());
            }
            Event::PhaseOutCancelled(e) => {
                phase_outs.entry(e.phase_out_id).or_default().cancelled += 1
            }
            Event::BenefitPhasedOut(e) => phase_outs
                .entry(e.phase_out_id)
                .or_default()
                .completed
                .push(naive(e.end_date.as_ref()).expect("end date")),
            Event::SagaTimerFired(f) => {
                let due = pathway_saga_ts(f.due_at.as_ref());
                let fired = pathway_saga_ts(f.fired_at.as_ref());
                assert!(fired >= due, "fired early: {f:?}");
                assert!(fired - due < chrono::Duration::days(1), "fired late: {f:?}");
                *firings
                    .entry((r.stream_id.clone(), f.timer, f.generation))
                    .or_default() += 1;
            }
            _ => {}
        }
    }
    for (k, n) in &firings {
        assert_eq!(*n, 1, "timer {k:?} fired {n} times");
    }
    let (mut completed, mut cancelled, mut running) = (0, 0, 0);
    for (id, p) in &phase_outs {
        let end = p
            .approved_end
            .unwrap_or_else(|| panic!("{id} has no planned end: {p:?}"));
        assert!(p.completed.len() <= 1, "{id} completed twice: {p:?}");
        assert!(p.cancelled <= 1, "{id} cancelled twice: {p:?}");
        assert!(
            p.completed.is_empty() || p.cancelled == 0,
            "{id} completed and cancelled: {p:?}"
        );
        if let Some(done) = p.completed.first() {
            assert_eq!(*done, end, "{id} did not end on its approved end: {p:?}");
            completed += 1;
        } else if p.cancelled == 1 {
            cancelled += 1;
        } else {
            assert!(
                end > last,
                "{id} neither ended nor within its period on {last}: {p:?}"
            );
            running += 1;
        }
    }
    eprintln!(
        "simulated {} phase-outs ({completed} completed, {cancelled} cancelled, {running} running), {} firings, {crashed} crashes, {events} events",
        phase_outs.len(),
        firings.len()
    );
    assert!(
        completed > 0 && cancelled > 0 && crashed > 0,
        "the simulation exercised too little"
    );
}

fn pathway_saga_ts(t: Option<&pathway_proto::Timestamp>) -> chrono::DateTime<chrono::Utc> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .expect("timestamp")
}

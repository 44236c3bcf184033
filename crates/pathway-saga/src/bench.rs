//! The timer benchmark behind `pathway saga bench`: many active timers,
//! firing throughput and lag after the due time.
//!
//! Setup appends one saga stream per timer (kind `bench`), each with one step
//! scheduling its `deadline`, then builds a sweeper's index. Two runs follow:
//! - **burst**: every timer due at the same instant; throughput is timers
//!   fired per second from that instant to the last commit;
//! - **steady**: timers due at `rate_per_s`, one after another; lag is the
//!   firing's commit time minus its due time (p50, p99, max).
//!
//! Due times are synthetic; an [`OffsetClock`] maps them onto the wall clock
//! just before each run, so the setup time does not count as lag.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use pathway_domain::{Event, pb};
use pathway_store::{EventStore, ExpectedVersion, ReadFilter};

use crate::log::{new_event, ts};
use crate::{Clock, SagaError, Sweeper, no_faults};

/// Appends in flight while setting up.
pub const SETUP_CONCURRENCY: usize = 512;
/// The sweeper idles this long when nothing is due.
pub const SWEEP_IDLE_MS: u64 = 5;

/// Wall time shifted by an adjustable offset.
#[derive(Debug, Clone, Default)]
pub struct OffsetClock {
    offset_us: Arc<AtomicI64>,
}

impl OffsetClock {
    /// Makes `now()` read `at` at this instant.
    pub fn set_now(&self, at: DateTime<Utc>) {
        let offset = (at - Utc::now()).num_microseconds().unwrap_or(0);
        self.offset_us.store(offset, Ordering::SeqCst);
    }

    fn offset(&self) -> chrono::Duration {
        chrono::Duration::microseconds(self.offset_us.load(Ordering::SeqCst))
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }
}

/// What a run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunFigures {
    pub timers: u64,
    /// From the first due time to the last commit.
    pub elapsed_s: f64,
    pub fired_per_s: f64,
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
}

/// Both runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct BenchFigures {
    pub setup_s: f64,
    pub index_build_s: f64,
    pub burst: RunFigures,
    pub steady: RunFigures,
}

/// Runs the benchmark with `timers` timers per run on an empty log.
pub async fn run<S: EventStore + Clone>(
    store: S,
    timers: u64,
    rate_per_s: u64,
) -> Result<BenchFigures, SagaError> {
    let mut figures = BenchFigures::default();
    let base: DateTime<Utc> = DateTime::from_timestamp(1_900_000_000, 0).expect("valid instant");
    let burst_at = base;
    let steady_from = base + chrono::Duration::days(1);
    let step_us = 1_000_000 / rate_per_s.max(1) as i64;

    let started = Instant::now();
    schedule(&store, "burst", timers, |_| burst_at).await?;
    schedule(&store, "steady", timers, |i| {
        steady_from + chrono::Duration::microseconds(step_us * i as i64)
    })
    .await?;
    figures.setup_s = started.elapsed().as_secs_f64();

    let clock = OffsetClock::default();
    // Well before anything is due: building the index fires nothing.
    clock.set_now(burst_at - chrono::Duration::hours(1));
    let mut sweeper = Sweeper::new(store.clone(), clock.clone(), "bench", no_faults());
    let started = Instant::now();
    sweeper.sweep_once().await?;
    figures.index_build_s = started.elapsed().as_secs_f64();

    figures.burst = fire_all(&store, &mut sweeper, &clock, burst_at, burst_at, timers).await?;
    figures.steady = fire_all(
        &store,
        &mut sweeper,
        &clock,
        steady_from,
        steady_from + chrono::Duration::microseconds(step_us * timers as i64),
        timers,
    )
    .await?;
    Ok(figures)
}

async fn schedule<S: EventStore + Clone>(
    store: &S,
    prefix: &str,
    n: u64,
    due: impl Fn(u64) -> DateTime<Utc>,
) -> Result<(), SagaError> {
    let appends = futures::stream::iter(0..n)
        .map(|i| {
            let saga_id = format!("saga-bench-{prefix}{i}");
            let step = pb::SagaStepTaken {
                saga_id: saga_id.clone(),
                saga_kind: "bench".to_owned(),
                step: 1,
                input_position: 0,
                state_json: "{}".to_owned(),
                timers: vec![pb::SagaTimerChanged {
                    timer: "deadline".to_owned(),
                    generation: 1,
                    change: pb::SagaTimerChange::Scheduled as i32,
                    due_at: Some(ts(due(i))),
                }],
                ..Default::default()
            };
            let event = new_event(
                Event::SagaStepTaken(step),
                &format!("{saga_id}/setup"),
                &saga_id,
                due(i),
                "",
            );
            let store = store.clone();
            async move {
                store
                    .append(&saga_id, ExpectedVersion::NoStream, vec![event])
                    .await
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY);
    futures::pin_mut!(appends);
    while let Some(result) = appends.next().await {
        result?;
    }
    Ok(())
}

/// Sweeps from just before `first_due` until `n` timers fired, then reads
/// the firings back for their commit times.
async fn fire_all<S: EventStore + Clone>(
    store: &S,
    sweeper: &mut Sweeper<S, OffsetClock>,
    clock: &OffsetClock,
    first_due: DateTime<Utc>,
    last_due: DateTime<Utc>,
    n: u64,
) -> Result<RunFigures, SagaError> {
    let from = store.head().await?.position + 1;
    clock.set_now(first_due - chrono::Duration::milliseconds(100));
    // Due times on the wall clock: synthetic time + (wall − synthetic).
    let shift = Utc::now() - clock.now();
    let mut fired = 0;
    while fired < n {
        let report = sweeper.sweep_once().await?;
        fired += report.fired;
        if report.fired == 0 {
            if clock.now() > last_due + chrono::Duration::seconds(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(SWEEP_IDLE_MS)).await;
        }
    }
    let filter = ReadFilter {
        event_types: vec!["SagaTimerFired".to_owned()],
        categories: Vec::new(),
    };
    let mut lags_us = Vec::with_capacity(n as usize);
    let mut last_commit = first_due + shift;
    let mut position = from;
    loop {
        let batch = store.read_all(position, 1_000, &filter).await?;
        let len = batch.len();
        for r in batch {
            position = r.position + 1;
            let Ok(Event::SagaTimerFired(f)) = pathway_engine::decode(&r) else {
                continue;
            };
            let due_wall = crate::log::from_ts(f.due_at.as_ref()) + shift;
            lags_us.push(
                (r.recorded_at - due_wall)
                    .num_microseconds()
                    .unwrap_or(i64::MAX),
            );
            last_commit = last_commit.max(r.recorded_at);
        }
        if len < 1_000 {
            break;
        }
    }
    lags_us.sort_unstable();
    let pick = |q: f64| -> f64 {
        if lags_us.is_empty() {
            return 0.0;
        }
        let i = ((lags_us.len() as f64 - 1.0) * q).round() as usize;
        lags_us[i] as f64 / 1_000.0
    };
    let elapsed_s = (last_commit - (first_due + shift))
        .num_microseconds()
        .unwrap_or(0) as f64
        / 1e6;
    Ok(RunFigures {
        timers: lags_us.len() as u64,
        elapsed_s,
        fired_per_s: if elapsed_s > 0.0 {
            lags_us.len() as f64 / elapsed_s
        } else {
            0.0
        },
        lag_p50_ms: pick(0.50),
        lag_p99_ms: pick(0.99),
        lag_max_ms: pick(1.0),
    })
}

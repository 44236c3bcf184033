//! The province simulator: a seeded, deterministic stand-in for the 13 cities'
//! case workers, employers, Civil Affairs offices and committees over the plan
//! years 2022–2024.
//!
//! It drives the engine only through commands — never by writing events — so
//! everything it produces passed the domain's rules. Each person's life is
//! drawn from an RNG seeded by `(seed, person index)`, so the commands for a
//! given seed are the same whatever the concurrency; only the interleaving of
//! different streams in the log varies.

mod life;
mod names;
pub mod sink;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::{StreamExt, stream};
use pathway_domain::{Aggregate, pb};
use pathway_engine::{CommandMeta, Engine, EngineError, Handled};
use pathway_store::EventStore;
use rand::{Rng, SeedableRng, rngs::StdRng};
use sink::{CommandSink, Sent};
use uuid::Uuid;

pub use life::Employer;

/// Persons simulated by default.
pub const PERSONS_DEFAULT: usize = 3_000;
/// Persons whose lives run at once (bounds memory and open appends).
pub const CONCURRENCY_DEFAULT: usize = 64;
/// Employers, cohorts or ledgers set up at once in the phases around the
/// persons' lives (each is its own stream).
pub const PHASE_CONCURRENCY: usize = 64;
/// Employers and public units simulated per 1,000 persons.
pub const EMPLOYERS_PER_THOUSAND_PERSONS: usize = 20;

/// How big a province to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub persons: usize,
    pub seed: u64,
    pub concurrency: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            persons: PERSONS_DEFAULT,
            seed: 2022,
            concurrency: CONCURRENCY_DEFAULT,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    pub commands_accepted: u64,
    pub commands_rejected: u64,
    pub events_appended: u64,
    /// Rejections by their message, for a sample of what the rules caught.
    pub rejections: BTreeMap<String, u64>,
    /// New employment counted, by city code and year.
    pub new_employment: BTreeMap<(String, i32), u32>,
    /// Basic-info verifications (first of the Four Ones), by city code and year.
    pub verified: BTreeMap<(String, i32), u32>,
    /// Persons trained, by city code and year.
    pub trained: BTreeMap<(String, i32), u32>,
    /// Persons who consented to referral to public employment services.
    pub consented: BTreeMap<String, bool>,
    /// Registered persons who graduate from university, by person ref.
    pub graduates: BTreeMap<String, Graduate>,
}

/// A simulated university graduate, reported by Education in a cohort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graduate {
    /// HMAC of the ID number, hex (the exchange's matching key).
    pub id_hmac_hex: String,
    pub residence_region: String,
    pub year: i32,
    pub school: String,
}

impl SimStats {
    /// Adds `other`'s counts and maps to these.
    pub fn merge(&mut self, other: SimStats) {
        self.commands_accepted += other.commands_accepted;
        self.commands_rejected += other.commands_rejected;
        self.events_appended += other.events_appended;
        for (k, v) in other.rejections {
            *self.rejections.entry(k).or_default() += v;
        }
        for (k, v) in other.new_employment {
            *self.new_employment.entry(k).or_default() += v;
        }
        for (k, v) in other.verified {
            *self.verified.entry(k).or_default() += v;
        }
        for (k, v) in other.trained {
            *self.trained.entry(k).or_default() += v;
        }
        self.graduates.extend(other.graduates);
        self.consented.extend(other.consented);
    }
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The engine failed for a reason other than a rule (store down, conflict storm …).
    #[error("simulated command on {stream} failed: {source}")]
    Engine { stream: String, source: EngineError },
    /// A [`CommandSink`] other than the engine could not deliver a command
    /// (or was told to stop).
    #[error("simulated command on {stream} not delivered: {message}")]
    Sink { stream: String, message: String },
}

/// Sends commands on behalf of one simulated actor and tallies the outcome.
pub(crate) struct Actor<'a, K> {
    sink: &'a K,
    rng: StdRng,
    pub(crate) stats: SimStats,
    correlation_id: Uuid,
}

impl<'a, K: CommandSink> Actor<'a, K> {
    fn new(sink: &'a K, seed: u64, stream_seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ stream_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let correlation_id = Uuid::from_u128(rng.random());
        Actor {
            sink,
            rng,
            stats: SimStats::default(),
            correlation_id,
        }
    }

    pub(crate) fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// A fresh deterministic id.
    pub(crate) fn uuid(&mut self) -> Uuid {
        Uuid::from_u128(self.rng.random())
    }

    /// Sends `command` to `stream` as `department` at 10:00 China time on `on`.
    /// A rejection is tallied and returned as `None`; other failures stop the run.
    pub(crate) async fn send<A: Aggregate + Send>(
        &mut self,
        stream: &str,
        command: &A::Command,
        department: pb::Department,
        region: &str,
        on: NaiveDate,
    ) -> Result<Option<Handled>, SimError>
    where
        A::Command: serde::Serialize + Sync,
    {
        let meta = CommandMeta {
            command_id: self.uuid(),
            correlation_id: self.correlation_id,
            causation_id: None,
            actor_department: department,
            actor_region: region.to_owned(),
            actor_id: format!("sim-{}", department.as_str_name().to_ascii_lowercase()),
            now: at_ten_cst(on),
        };
        match self.sink.send::<A>(stream, command, &meta).await? {
            Sent::Accepted(h) => {
                self.stats.commands_accepted += 1;
                self.stats.events_appended += h.events.len() as u64;
                Ok(Some(h))
            }
            Sent::Rejected(r) => {
                self.stats.commands_rejected += 1;
                *self.stats.rejections.entry(r).or_default() += 1;
                Ok(None)
            }
        }
    }
}

/// 10:00 in China Standard Time on `day`, as UTC.
pub fn at_ten_cst(day: NaiveDate) -> DateTime<Utc> {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    let local = day.and_hms_opt(10, 0, 0).expect("10:00 exists");
    cst.from_local_datetime(&local)
        .single()
        .expect("fixed offsets are unambiguous")
        .to_utc()
}

/// Runs the whole programme: employers, then every person's life (bounded
/// concurrency), then the cities' annual reports and the final evaluation.
/// `progress(done, total)` is called as persons finish.
pub async fn run<S: EventStore + Clone>(
    engine: &Engine<S>,
    cfg: &SimConfig,
    progress: impl Fn(usize, usize),
) -> Result<SimStats, SimError> {
    run_with(engine, cfg, progress).await
}

/// [`run`] through any [`CommandSink`]: the same commands, in the same order
/// per actor, sent wherever the sink sends them.
pub async fn run_with<K: CommandSink>(
    sink: &K,
    cfg: &SimConfig,
    progress: impl Fn(usize, usize),
) -> Result<SimStats, SimError> {
    let (employers, mut stats) = setup(sink, cfg.seed, cfg.persons).await?;
    let employers = &employers;
    let mut lives = stream::iter(0..cfg.persons)
        .map(|i| person(sink, cfg.seed, i, employers))
        .buffer_unordered(cfg.concurrency.max(1));
    let mut done = 0;
    while let Some(result) = lives.next().await {
        stats.merge(result?);
        done += 1;
        progress(done, cfg.persons);
    }
    stats.merge(graduates(sink, cfg.seed, &stats.graduates).await?);
    let mut actor = Actor::new(sink, cfg.seed, u64::MAX / 2);
    life::governance(&mut actor, &stats).await?;
    stats.merge(actor.stats);
    Ok(stats)
}

/// The first phase of a run: the training programmes of every city and year,
/// then the employers and public units (as many as `persons` calls for).
/// Person lives place persons with the employers returned.
pub async fn setup<K: CommandSink>(
    sink: &K,
    seed: u64,
    persons: usize,
) -> Result<(Vec<Employer>, SimStats), SimError> {
    let mut stats = SimStats::default();
    let mut actor = Actor::new(sink, seed, u64::MAX / 3);
    life::programmes(&mut actor).await?;
    stats.merge(actor.stats);
    let employer_count = (persons * EMPLOYERS_PER_THOUSAND_PERSONS / 1000).max(13);
    let mut employers = Vec::with_capacity(employer_count);
    // Each employer is its own streams; `buffered` keeps them in index order.
    let tasks: Vec<_> = (0..employer_count)
        .map(|i| employer_task(sink, seed, i))
        .collect();
    let mut registered = stream::iter(tasks).buffered(PHASE_CONCURRENCY);
    while let Some(result) = registered.next().await {
        let (employer, tally) = result?;
        employers.push(employer);
        stats.merge(tally);
    }
    Ok((employers, stats))
}

/// Person `index`'s life (registration, the Four Ones, training, placements,
/// a dibao household's reassessments): its commands depend only on `seed`
/// and `index`.
pub async fn person<K: CommandSink>(
    sink: &K,
    seed: u64,
    index: usize,
    employers: &[Employer],
) -> Result<SimStats, SimError> {
    let mut actor = Actor::new(sink, seed, index as u64);
    life::person(&mut actor, employers).await?;
    Ok(actor.stats)
}

/// Education's graduate cohorts of each plan year (`edu-<year>`) for the
/// registered graduates in `graduates`, their matching, and each matched
/// graduate's ledger. Run once per log: a cohort is received once.
pub async fn graduates<K: CommandSink>(
    sink: &K,
    seed: u64,
    graduates: &BTreeMap<String, Graduate>,
) -> Result<SimStats, SimError> {
    // One cohort per city and year: each is one stream, so its records are
    // sent one after another, but the cohorts go at once.
    let mut cohorts: BTreeMap<(i32, String), Vec<(&String, &Graduate)>> = BTreeMap::new();
    for (person_ref, g) in graduates {
        let city = format!("{}00", &g.residence_region[..4]);
        cohorts
            .entry((g.year, city))
            .or_default()
            .push((person_ref, g));
    }
    let mut stats = SimStats::default();
    // (Futures made by named async fns, not closures: the phase must stay
    // `Send` for any lifetime when a caller spawns it.)
    let tasks: Vec<_> = cohorts
        .iter()
        .enumerate()
        .map(|(i, ((year, city), matched))| cohort_task(sink, seed, i, *year, city, matched))
        .collect();
    let mut sent = stream::iter(tasks).buffer_unordered(PHASE_CONCURRENCY);
    while let Some(result) = sent.next().await {
        stats.merge(result?);
    }
    drop(sent);
    // Then every matched graduate's ledger, each its own stream.
    let tasks: Vec<_> = graduates
        .iter()
        .map(|(person_ref, g)| ledger_task(sink, seed, person_ref, g))
        .collect();
    let mut sent = stream::iter(tasks).buffer_unordered(PHASE_CONCURRENCY);
    while let Some(result) = sent.next().await {
        stats.merge(result?);
    }
    Ok(stats)
}

async fn cohort_task<K: CommandSink>(
    sink: &K,
    seed: u64,
    index: usize,
    year: i32,
    city: &str,
    matched: &[(&String, &Graduate)],
) -> Result<SimStats, SimError> {
    let mut actor = Actor::new(sink, seed, u64::MAX / 4 - index as u64);
    life::cohort(&mut actor, year, city, matched).await?;
    Ok(actor.stats)
}

async fn ledger_task<K: CommandSink>(
    sink: &K,
    seed: u64,
    person_ref: &str,
    g: &Graduate,
) -> Result<SimStats, SimError> {
    let mut actor = Actor::new(sink, seed, stable_hash(person_ref) ^ (u64::MAX / 5));
    life::ledger(&mut actor, person_ref, g).await?;
    Ok(actor.stats)
}

async fn employer_task<K: CommandSink>(
    sink: &K,
    seed: u64,
    index: usize,
) -> Result<(Employer, SimStats), SimError> {
    let mut actor = Actor::new(sink, seed, u64::MAX - index as u64);
    let employer = life::employer(&mut actor, index).await?;
    Ok((employer, actor.stats))
}

/// FNV-1a of `text`: a seed that depends only on the text.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

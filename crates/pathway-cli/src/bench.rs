//! `pathway bench`: throughput and latency of the event log, printed as a
//! table or one JSON object, for `docs/benchmarks.md`.

use anyhow::Context as _;
use pathway_store::bench::{self, BenchConfig, BenchReport};
use serde::Serialize;

use crate::store::{AnyStore, StoreArgs};

#[path = "bench_e2e.rs"]
pub(crate) mod e2e;

/// Most rows timed by the COPY baseline (its rate does not depend on the count).
const COPY_BASELINE_EVENTS_MAX: usize = 200_000;

/// Which store to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StoreKind {
    Embedded,
    Postgres,
}

/// Flags shared by the bench commands.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Store to measure. `embedded` uses a fresh directory under --data-dir;
    /// `postgres` needs --database-url (use a scratch database: the bench writes to it).
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    #[command(flatten)]
    location: StoreArgs,
    /// Concurrent writers.
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// Events to append (or read) in total.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Events per append call.
    #[arg(long, default_value_t = 1)]
    events_per_append: usize,
    /// Payload size of each event in bytes.
    #[arg(long, default_value_t = 300)]
    payload_bytes: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// `pathway bench append|read`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// Append events from concurrent writers; report events/s and latency per append.
    Append(BenchArgs),
    /// Append events (untimed), then time reading the whole log with read_all.
    Read(BenchArgs),
    /// Drive a running `pathway serve` over HTTP with the simulator's commands
    /// from concurrent clients; report commands/s, latency and outcomes.
    E2e(e2e::E2eArgs),
}

#[derive(Serialize)]
struct Output<'a> {
    bench: &'a str,
    store: &'a str,
    writers: usize,
    events_per_append: usize,
    payload_bytes: usize,
    #[serde(flatten)]
    report: BenchReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    copy_baseline_events_per_s: Option<f64>,
}

pub(crate) async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    let (name, args) = match cmd {
        BenchCommand::Append(a) => ("append", a),
        BenchCommand::Read(a) => ("read", a),
        BenchCommand::E2e(a) => return e2e::run(a).await,
    };
    anyhow::ensure!(args.writers > 0, "--writers must be at least 1");
    anyhow::ensure!(args.events > 0, "--events must be at least 1");
    anyhow::ensure!(
        (1..=pathway_store::limits::APPEND_EVENTS_MAX).contains(&args.events_per_append),
        "--events-per-append must be 1..={}",
        pathway_store::limits::APPEND_EVENTS_MAX
    );
    let mut location = args.location.clone();
    match args.store {
        StoreKind::Embedded => {
            location.database_url = None;
            location.data_dir = location
                .data_dir
                .join(format!("bench-{}", uuid::Uuid::new_v4().simple()));
        }
        StoreKind::Postgres => {
            location
                .database_url
                .as_ref()
                .context("--store postgres needs --database-url")?;
        }
    }
    let cfg = BenchConfig {
        writers: args.writers,
        events: args.events,
        events_per_append: args.events_per_append,
        payload_bytes: args.payload_bytes,
    };
    let store = location.open().await?;
    eprintln!(
        "bench {name}: {} events, {} writers, {} per append, {} B payloads",
        cfg.events, cfg.writers, cfg.events_per_append, cfg.payload_bytes
    );
    let report = match &store {
        AnyStore::Embedded(s) => measure(s.clone(), name, &cfg).await?,
        AnyStore::Postgres(s) => measure(s.clone(), name, &cfg).await?,
    };
    let copy_baseline = match (&location.database_url, name) {
        (Some(url), "append") => {
            // The baseline's rows are built in memory before the timed COPY;
            // a bounded sample gives the same rate without holding 1M rows.
            let rows = cfg.events.min(COPY_BASELINE_EVENTS_MAX);
            Some(bench::copy_baseline(url, rows, cfg.payload_bytes).await?)
        }
        _ => None,
    };
    if args.store == StoreKind::Embedded {
        // The scratch directory is ours alone; leave nothing behind.
        drop(store);
        std::fs::remove_dir_all(&location.data_dir).ok();
    }
    let out = Output {
        bench: name,
        store: match args.store {
            StoreKind::Embedded => "embedded",
            StoreKind::Postgres => "postgres",
        },
        writers: cfg.writers,
        events_per_append: cfg.events_per_append,
        payload_bytes: cfg.payload_bytes,
        report,
        copy_baseline_events_per_s: copy_baseline,
    };
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("{:<28}{}", "bench", out.bench);
        println!("{:<28}{}", "store", out.store);
        println!("{:<28}{}", "events", out.report.events);
        println!("{:<28}{:.2}", "seconds", out.report.seconds);
        println!("{:<28}{:.0}", "events_per_s", out.report.events_per_s);
        println!("{:<28}{:.2}", "p50_ms", out.report.p50_ms);
        println!("{:<28}{:.2}", "p99_ms", out.report.p99_ms);
        if let Some(c) = out.copy_baseline_events_per_s {
            println!("{:<28}{:.0}", "copy_baseline_events_per_s", c);
            println!(
                "{:<28}{:.0}%",
                "ratio_to_copy",
                100.0 * out.report.events_per_s / c
            );
        }
    }
    Ok(())
}

/// Runs one bench. `read` first fills the log (untimed), then times reading
/// it back from position 1.
async fn measure<S: pathway_store::EventStore + Clone>(
    store: S,
    name: &str,
    cfg: &BenchConfig,
) -> anyhow::Result<BenchReport> {
    if name == "append" {
        return Ok(bench::bench_append(store, *cfg).await?);
    }
    let head = store.head().await?.position;
    if head < cfg.events as u64 {
        eprintln!("filling the log to {} events (untimed)", cfg.events);
        let fill = BenchConfig {
            events: cfg.events - head as usize,
            ..*cfg
        };
        bench::bench_append(store.clone(), fill).await?;
    }
    Ok(bench::bench_read(store, cfg.events as u64).await?)
}

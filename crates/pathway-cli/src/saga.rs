//! `pathway saga`: look at a saga, or measure the timers.

use std::process::ExitCode;

use anyhow::Context as _;
use pathway_saga::bench::{BenchFigures, RunFigures};

use crate::store::{AnyStore, StoreArgs};

/// `pathway saga …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum SagaCommand {
    /// Print a saga's history (steps, commands, timer changes, firings) and
    /// its timers, e.g. `pathway saga show saga-phaseout-H1`.
    Show(ShowArgs),
    /// Schedule many timers on a scratch log and measure firing throughput
    /// and lag after the due time.
    Bench(SagaBenchArgs),
    /// Run the workflows until interrupted (Ctrl-C): the phase-out, city
    /// annual report and graduate ledger routers, and the timer sweeper.
    /// Several may run at once: one leads (PostgreSQL advisory lock), the
    /// others stand by and take over when it stops.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    location: StoreArgs,
    /// How often the sweeper looks for due timers, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    sweep_interval_ms: u64,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// The saga's stream id (`saga-<kind>-<key>`), or `<kind>-<key>`.
    id: String,
    #[command(flatten)]
    location: StoreArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SagaBenchArgs {
    /// Timers per run (one saga each).
    #[arg(long, default_value_t = 100_000)]
    timers: u64,
    /// Due times per second in the steady run.
    #[arg(long, default_value_t = 10_000)]
    rate_per_s: u64,
    /// Where to write. Use a scratch database or directory: the bench fills
    /// the log. Without --database-url a fresh directory under --data-dir.
    #[command(flatten)]
    location: StoreArgs,
}

pub(crate) async fn run(command: SagaCommand) -> anyhow::Result<ExitCode> {
    match command {
        SagaCommand::Run(args) => {
            let interval = std::time::Duration::from_millis(args.sweep_interval_ms.max(1));
            let store = args.location.open().await?;
            let keyring = args.location.keyring(&store).await?;
            match store {
                AnyStore::Embedded(s) => {
                    let key = args.location.data_dir.display().to_string();
                    let lock = pathway_saga::LeaderLock::in_process(key);
                    run_workflows(s, lock, interval, keyring).await?
                }
                AnyStore::Postgres(s) => {
                    let lock = pathway_saga::LeaderLock::postgres(s.pool().clone());
                    run_workflows(s, lock, interval, keyring).await?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SagaCommand::Show(args) => {
            let id = if args.id.starts_with("saga-") {
                args.id.clone()
            } else {
                format!("saga-{}", args.id)
            };
            let text = match args.location.open().await? {
                AnyStore::Embedded(s) => pathway_saga::show::render(&s, &id).await?,
                AnyStore::Postgres(s) => pathway_saga::show::render(&s, &id).await?,
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        SagaCommand::Bench(args) => {
            let mut location = args.location.clone();
            if location.database_url.is_none() {
                location.data_dir = location
                    .data_dir
                    .join(format!("saga-bench-{}", uuid::Uuid::new_v4().simple()));
            }
            eprintln!(
                "saga bench: {} timers per run, steady rate {}/s",
                args.timers, args.rate_per_s
            );
            let figures = match location.open().await.context("opening the bench log")? {
                AnyStore::Embedded(s) => {
                    pathway_saga::bench::run(s, args.timers, args.rate_per_s).await?
                }
                AnyStore::Postgres(s) => {
                    pathway_saga::bench::run(s, args.timers, args.rate_per_s).await?
                }
            };
            print_figures(&figures);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_figures(f: &BenchFigures) {
    println!("setup (2 × timers scheduled): {:.1} s", f.setup_s);
    println!("index built from the log:     {:.2} s", f.index_build_s);
    row("burst (all due at once)", &f.burst);
    row("steady (due at the rate)", &f.steady);
}

fn row(name: &str, r: &RunFigures) {
    println!(
        "{name:<26} {:>7} fired in {:>6.2} s = {:>8.0}/s; lag p50 {:>8.1} ms, p99 {:>8.1} ms, max {:>8.1} ms",
        r.timers, r.elapsed_s, r.fired_per_s, r.lag_p50_ms, r.lag_p99_ms, r.lag_max_ms
    );
}

/// The three routers and the sweeper ([`pathway_saga::workflows::run`]),
/// led by one process per database, until Ctrl-C or SIGTERM.
async fn run_workflows<S: pathway_store::EventStore + Clone>(
    store: S,
    lock: pathway_saga::LeaderLock,
    sweep_interval: std::time::Duration,
    keyring: pathway_engine::Keyring,
) -> anyhow::Result<()> {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        pathway_server::shutdown_signal().await;
        stop.send(true).ok();
    });
    let options = pathway_saga::WorkflowOptions {
        sweep_interval,
        keyring: Some(keyring),
        ..pathway_saga::WorkflowOptions::default()
    };
    let status = std::sync::Arc::new(pathway_saga::WorkflowStatus::default());
    eprintln!("workflows running (one leader per database); Ctrl-C to stop");
    pathway_saga::workflows::run(store, lock, options, status, shutdown)
        .await
        .context("workflows")
}

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

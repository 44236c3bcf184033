//! `pathway`: the one binary. A thin entry point: parse flags, set up
//! telemetry, dispatch to a command module. Errors are reported with their
//! causes and a non-zero exit code.

mod audit;
mod bench;
mod demo;
mod exchange;
mod import;
mod keys;
mod read;
mod relay;
mod saga;
mod serve;
mod store;
mod subscribe;
mod validate;

use clap::{Parser, Subcommand};

/// Pathway: the event-sourced engine of Heilongjiang's programme to bring
/// persons with disabilities into work.
#[derive(Debug, Parser)]
#[command(name = "pathway", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `pathway_store=debug`.
    #[arg(long, global = true, env = "PATHWAY_LOG", default_value = "warn")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scripted programme scenario through the domain and the event log,
    /// then print what each department would see.
    Demo(demo::DemoArgs),
    /// Check an identifier the way the engine does (resident ID, disability
    /// certificate, unified social credit code, region code).
    Validate(validate::ValidateArgs),
    /// Print the policy parameters in force at a date.
    Policy(validate::PolicyArgs),
    /// List the event types of the wire format (pathway.events.v1).
    Events,
    /// Apply commands from a JSON-lines file, one command per line, each on
    /// its own; rejected lines are reported and the rest go on.
    Import(import::ImportArgs),
    /// Verify the hash chain of the event log.
    Verify(store::VerifyArgs),
    /// Audit the log: verify the hash chain against signed checkpoints, sign
    /// checkpoints, and manage checkpoint keys.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Rebuild a department read model as of a moment into scratch storage
    /// and print it, without touching the live models.
    Replay(audit::ReplayArgs),
    /// Measure the event log: append and read throughput and latency.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Publish the log to NATS JetStream for the departments.
    Relay(relay::RelayArgs),
    /// Print a department's events from NATS as JSON lines (durable consumer).
    Subscribe(subscribe::SubscribeArgs),
    /// Exchange graduate records with Education: cohorts in, outcomes back.
    Exchange(exchange::ExchangeArgs),
    /// Keep read models current, rebuild one, or show their lag.
    #[command(subcommand)]
    Projections(read::ProjectionsCommand),
    /// Process managers: show a saga's history and timers, or bench the timers.
    #[command(subcommand)]
    Saga(saga::SagaCommand),
    /// Print a department's read model (all its tables, or one).
    Query(read::QueryArgs),
    /// The annual monitoring report each city files at year-end, per city and province.
    Report(read::ReportArgs),
    /// Civil Affairs' calendar of active low-income benefit phase-outs, with
    /// those ending in the next 30 days flagged.
    PhaseOuts(read::PhaseOutsArgs),
    /// Serve the department API (commands, read models, health, metrics), or issue a token.
    Serve(serve::ServeArgs),
    /// Erase a person's personal data: record the erasure and destroy their
    /// data key, so every sealed field reads as erased from then on.
    Erase(keys::EraseArgs),
    /// Personal-data keys: generate a master key, rotate the master key.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

/// Exit status of a process whose reader went away (128 + SIGPIPE), as shells
/// report for `pathway query … | head`.
const EXIT_BROKEN_PIPE: i32 = 141;

/// jemalloc: the projector, decoding and row-cache threads allocate and free
/// small strings and rows at a high rate, often on different threads; with
/// it a rebuild takes about a sixth less time than with the system allocator
/// (`docs/benchmarks.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    exit_quietly_on_broken_pipe();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match command {
        Command::Validate(args) => validate::run(args),
        Command::Policy(args) => validate::policy(args).map(|()| ExitCode::SUCCESS),
        Command::Events => {
            for name in pathway_proto::events::v1::EVENT_TYPES {
                println!("{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => runtime()?
            .block_on(demo::run(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Import(args) => runtime()?.block_on(import::run(args)),
        Command::Erase(args) => runtime()?.block_on(keys::erase(args)),
        Command::Keys(cmd) => runtime()?.block_on(keys::keys(cmd)),
        Command::Projections(cmd) => runtime()?
            .block_on(read::projections(cmd))
            .map(|()| ExitCode::SUCCESS),
        Command::Query(args) => runtime()?
            .block_on(read::query(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Report(args) => runtime()?.block_on(read::report(args)),
        Command::PhaseOuts(args) => runtime()?
            .block_on(read::phase_outs(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Saga(cmd) => runtime()?.block_on(saga::run(cmd)),
        Command::Verify(args) => runtime()?.block_on(store::verify(args)),
        Command::Audit(cmd) => runtime()?.block_on(audit::run(cmd)),
        Command::Replay(args) => runtime()?.block_on(audit::replay(args)),
        Command::Serve(args) => runtime()?
            .block_on(serve::run(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Bench(cmd) => runtime()?
            .block_on(bench::run(cmd))
            .map(|()| ExitCode::SUCCESS),
        Command::Relay(args) => runtime()?
            .block_on(relay::run(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Subscribe(args) => runtime()?
            .block_on(subscribe::run(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Exchange(args) => runtime()?
            .block_on(exchange::run(args))
            .map(|()| ExitCode::SUCCESS),
    }
}

/// `println!` panics when stdout is a pipe whose reader has gone (`| head`).
/// That is not an error of ours: end quietly, as Unix tools do.
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(EXIT_BROKEN_PIPE);
        }
        default(info);
    }));
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pathway")
        .build()?)
}

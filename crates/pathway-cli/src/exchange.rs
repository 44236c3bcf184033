//! `pathway exchange run`: the graduate exchange with Education.
//!
//! Reads Education's cohort batches from NATS, applies accepted ones through
//! the engine (matches, ledgers, unmatched records) and answers on
//! `pathway.v1.exchange.education.outcome`; sends each graduate's year-end
//! outcome back as status only. Runs until stopped; see
//! `pathway_bus::exchange_service` and docs/subjects.md.

use anyhow::Context as _;
use pathway_bus::exchange::EXCHANGE_BATCH_BYTES_MAX;
use pathway_bus::exchange_service::ExchangeService;
use pathway_bus::limits::STREAM_MAX_BYTES_DEFAULT;

use crate::relay::NatsArgs;
use crate::store::{AnyStore, StoreArgs};

/// `pathway exchange`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExchangeArgs {
    #[command(subcommand)]
    command: ExchangeCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ExchangeCommand {
    /// Apply Education's cohort batches and send answers and outcomes back
    /// (runs until stopped).
    Run(ExchangeOptions),
}

#[derive(Debug, Clone, clap::Args)]
struct ExchangeOptions {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    nats: NatsArgs,
    /// Largest batch accepted, in bytes (at most 16 MiB; keep it within the
    /// server's max_payload).
    #[arg(long, default_value_t = EXCHANGE_BATCH_BYTES_MAX)]
    batch_bytes_max: usize,
    /// Bound of the exchange stream on disk, in bytes.
    #[arg(long, default_value_t = STREAM_MAX_BYTES_DEFAULT)]
    stream_max_bytes: i64,
    /// Copies of the exchange stream JetStream keeps: 3 on a 3-node cluster
    /// (at most the number of nodes, and 5).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    stream_replicas: u8,
}

pub(crate) async fn run(args: ExchangeArgs) -> anyhow::Result<()> {
    let ExchangeCommand::Run(options) = args.command;
    let client = options.nats.connect(Some("pathway"), None).await?;
    match options.store.open().await? {
        AnyStore::Embedded(store) => drive(service(store, client, &options)).await,
        AnyStore::Postgres(store) => drive(service(store, client, &options)).await,
    }
}

fn service<S: pathway_store::EventStore + Clone>(
    store: S,
    client: pathway_bus::async_nats::Client,
    options: &ExchangeOptions,
) -> ExchangeService<S> {
    ExchangeService::new(store, client)
        .with_batch_bytes_max(options.batch_bytes_max)
        .with_stream_max_bytes(options.stream_max_bytes)
        .with_stream_replicas(options.stream_replicas.into())
}

async fn drive<S: pathway_store::EventStore + Clone>(
    service: ExchangeService<S>,
) -> anyhow::Result<()> {
    tokio::select! {
        result = service.run() => result.context("exchange stopped"),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

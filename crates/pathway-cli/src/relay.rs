//! `pathway relay`: publish the log to NATS JetStream for the departments.
//!
//! `relay run` follows the log from its checkpoint (a table in PostgreSQL, or
//! `relay.sqlite` beside the embedded store) for as long as it runs; several
//! may run against one database, one leads and the others stand by.
//! `relay rebuild --from POS` takes the lead, deletes the streams and
//! republishes from `POS`, then goes on relaying.

use anyhow::Context as _;
use pathway_bus::async_nats;
use pathway_bus::coordinator::{FileCoordinator, PgCoordinator};
use pathway_bus::limits::STREAM_MAX_BYTES_DEFAULT;
use pathway_bus::relay::Relay;

use crate::store::{AnyStore, StoreArgs};

/// How to reach NATS.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct NatsArgs {
    /// NATS server URL.
    #[arg(
        long,
        env = "PATHWAY_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub(crate) nats_url: String,
    /// NATS user (see deploy/nats/pathway.conf).
    #[arg(long, env = "PATHWAY_NATS_USER")]
    pub(crate) nats_user: Option<String>,
    /// NATS password of --nats-user.
    #[arg(long, env = "PATHWAY_NATS_PASSWORD", hide_env_values = true)]
    pub(crate) nats_password: Option<String>,
}

impl NatsArgs {
    /// Connects, retrying in the background when the server is down; a
    /// client waiting for its first connection still accepts work.
    pub(crate) async fn connect(
        &self,
        user: Option<&str>,
        inbox_prefix: Option<&str>,
    ) -> anyhow::Result<async_nats::Client> {
        let user = self.nats_user.as_deref().or(user);
        pathway_bus::connect(
            &self.nats_url,
            user,
            self.nats_password.as_deref(),
            inbox_prefix,
        )
        .await
        .with_context(|| format!("connecting to NATS at {}", self.nats_url))
    }
}

/// `pathway relay`.
#[derive(Debug, clap::Args)]
pub(crate) struct RelayArgs {
    #[command(subcommand)]
    command: RelayCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RelayCommand {
    /// Follow the log and publish every event (runs until stopped).
    Run(RelayOptions),
    /// Delete the streams, republish from --from, then go on relaying.
    Rebuild {
        /// First log position to republish (1-based).
        #[arg(long)]
        from: u64,
        #[command(flatten)]
        options: RelayOptions,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct RelayOptions {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    nats: NatsArgs,
    /// Name of this relay's checkpoint.
    #[arg(long, default_value = "default")]
    name: String,
    /// Bound of each stream on disk, in bytes.
    #[arg(long, default_value_t = STREAM_MAX_BYTES_DEFAULT)]
    stream_max_bytes: i64,
    /// Copies of each stream JetStream keeps: 3 on a 3-node cluster (at most
    /// the number of nodes, and 5).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    stream_replicas: u8,
}

pub(crate) async fn run(args: RelayArgs) -> anyhow::Result<()> {
    let (options, rebuild_from) = match args.command {
        RelayCommand::Run(o) => (o, None),
        RelayCommand::Rebuild { from, options } => (options, Some(from)),
    };
    let client = options.nats.connect(Some("pathway"), None).await?;
    let opened = options.store.open().await?;
    let keyring = options.store.keyring(&opened).await?;
    match opened {
        AnyStore::Embedded(store) => {
            let coordinator = FileCoordinator::new(&options.store.data_dir, &options.name);
            let relay = Relay::new(store, coordinator, client)
                .with_stream_max_bytes(options.stream_max_bytes)
                .with_stream_replicas(options.stream_replicas.into())
                .with_keyring(keyring);
            drive(relay, rebuild_from).await
        }
        AnyStore::Postgres(store) => {
            let coordinator = PgCoordinator::new(store.pool().clone(), &options.name);
            let relay = Relay::new(store, coordinator, client)
                .with_stream_max_bytes(options.stream_max_bytes)
                .with_stream_replicas(options.stream_replicas.into())
                .with_keyring(keyring);
            drive(relay, rebuild_from).await
        }
    }
}

async fn drive<S, C>(mut relay: Relay<S, C>, rebuild_from: Option<u64>) -> anyhow::Result<()>
where
    S: pathway_store::EventStore + Clone,
    C: pathway_bus::coordinator::Coordinator,
{
    if let Some(from) = rebuild_from {
        relay
            .rebuild(from)
            .await
            .context("rebuilding the streams")?;
        eprintln!("streams deleted; republishing from position {from}");
    }
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        pathway_server::shutdown_signal().await;
        stop.send(true).ok();
    });
    relay.run_until(shutdown).await.context("relay stopped")
}

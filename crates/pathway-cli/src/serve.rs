//! `pathway serve`: run the department API (`pathway-server`), and
//! `pathway serve token issue`: print a signed bearer token.
//!
//! Settings are layered defaults → `--config FILE` → `PATHWAY_*` environment
//! → flags; clap merges the last two, `pathway_server::Settings::load` the rest.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use pathway_server::{
    Application, Settings,
    settings::{Overrides, Secret},
    token::{self, Claims},
};

/// `pathway serve [flags] [token issue …]`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ServeArgs {
    #[command(subcommand)]
    action: Option<ServeAction>,
    // Boxed: the flags are many, and `Command` keeps its variants small.
    #[command(flatten)]
    settings: Box<SettingsArgs>,
}

#[derive(Debug, clap::Subcommand)]
enum ServeAction {
    /// Bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Print a signed token for a department (and, for a city office, its city).
    Issue {
        #[command(flatten)]
        settings: Box<SettingsArgs>,
        /// dpf, hrss, civil_affairs, education, sasac, organization, finance, committee or auditor.
        #[arg(long)]
        department: String,
        /// Prefecture code of a city office, e.g. 230100: the token acts and reads only for that city.
        #[arg(long)]
        city: Option<String>,
        /// Lifetime: a number and s, m, h or d.
        #[arg(long, default_value = "8h")]
        ttl: String,
        /// Who holds the token (a pseudonymous user or system id).
        #[arg(long, default_value = "system")]
        subject: String,
    },
}

/// The settings every `serve` form reads.
#[derive(Debug, Clone, clap::Args)]
struct SettingsArgs {
    /// TOML configuration file (keys in docs/security.md, "Running it").
    #[arg(long, env = "PATHWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "PATHWAY_LISTEN")]
    listen: Option<SocketAddr>,
    /// PostgreSQL URL; when absent, the embedded store under --data-dir.
    #[arg(long, env = "PATHWAY_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Directory of the embedded store [default: pathway-data].
    #[arg(long, env = "PATHWAY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Token-signing secret (at least 32 bytes). Prefer the environment to a flag.
    #[arg(long, env = "PATHWAY_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
    /// Master key wrapping the personal-data keys (base64 of 32 bytes, from
    /// `pathway keys generate`). Prefer the environment to a flag.
    #[arg(long, env = "PATHWAY_MASTER_KEY", hide_env_values = true)]
    master_key: Option<String>,
    /// File holding the master key. On the embedded store without a master
    /// key, DATA_DIR/master.key is used (created on first use).
    #[arg(long, env = "PATHWAY_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Authorization policy [default: deploy/policy/authorization.toml].
    #[arg(long, env = "PATHWAY_POLICY_FILE")]
    policy_file: Option<PathBuf>,
    /// File of revoked token ids, one per line, re-read on change.
    #[arg(long, env = "PATHWAY_REVOCATION_FILE")]
    revocation_file: Option<PathBuf>,
    /// Largest request body, in bytes.
    #[arg(long, env = "PATHWAY_REQUEST_BODY_BYTES_MAX")]
    request_body_bytes_max: Option<usize>,
    /// Most commands in one batch request.
    #[arg(long, env = "PATHWAY_COMMANDS_PER_BATCH_MAX")]
    commands_per_batch_max: Option<usize>,
    /// Requests per second per department office.
    #[arg(long, env = "PATHWAY_REQUESTS_PER_SECOND_PER_DEPARTMENT")]
    requests_per_second_per_department: Option<u32>,
    /// Time a request may take, in milliseconds.
    #[arg(long, env = "PATHWAY_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    /// Positions a read model may lag for /readyz to answer 200.
    #[arg(long, env = "PATHWAY_READY_LAG_POSITIONS_MAX")]
    ready_lag_positions_max: Option<u64>,
    /// Do not run the projectors in this process (run `pathway projections run --follow` elsewhere).
    #[arg(long, env = "PATHWAY_NO_PROJECTORS")]
    no_projectors: bool,
    /// Do not run the workflows (saga routers and timer sweeper) in this process.
    #[arg(long, env = "PATHWAY_NO_SAGAS")]
    no_sagas: bool,
    /// Do not run the NATS relay in this process.
    #[arg(long, env = "PATHWAY_NO_RELAY")]
    no_relay: bool,
    /// NATS server URL for the relay; without one the relay is off.
    #[arg(long, env = "PATHWAY_NATS_URL")]
    nats_url: Option<String>,
    /// NATS user of the relay (see deploy/nats/pathway.conf).
    #[arg(long, env = "PATHWAY_NATS_USER")]
    nats_user: Option<String>,
    /// NATS password of --nats-user. Prefer the environment to a flag.
    #[arg(long, env = "PATHWAY_NATS_PASSWORD", hide_env_values = true)]
    nats_password: Option<String>,
    /// Name of the relay's checkpoint [default: default].
    #[arg(long, env = "PATHWAY_RELAY_NAME")]
    relay_name: Option<String>,
    /// Bound of each NATS stream on disk, in bytes [default: 8 GiB].
    #[arg(long, env = "PATHWAY_STREAM_MAX_BYTES")]
    stream_max_bytes: Option<i64>,
    /// Copies of each NATS stream: 3 on a 3-node cluster [default: 1].
    #[arg(long, env = "PATHWAY_STREAM_REPLICAS", value_parser = clap::value_parser!(u8).range(1..=5))]
    stream_replicas: Option<u8>,
    /// Longest a shutdown waits for in-flight requests, and again for the workers, in milliseconds [default: 20000].
    #[arg(long, env = "PATHWAY_DRAIN_TIMEOUT_MS")]
    drain_timeout_ms: Option<u64>,
    /// Pause between two sweeps of the timer sweeper, in milliseconds [default: 1000].
    #[arg(long, env = "PATHWAY_SWEEP_INTERVAL_MS")]
    sweep_interval_ms: Option<u64>,
    /// Age past its due time at which a saga timer counts as overdue, in milliseconds [default: 60000].
    #[arg(long, env = "PATHWAY_TIMER_OVERDUE_AFTER_MS")]
    timer_overdue_after_ms: Option<u64>,
    /// Pause between two tail verifications of the hash chain, in milliseconds; 0 turns it off [default: 60000].
    #[arg(long, env = "PATHWAY_CHAIN_VERIFY_INTERVAL_MS")]
    chain_verify_interval_ms: Option<u64>,
    /// Most positions one tail verification checks [default: 100000].
    #[arg(long, env = "PATHWAY_CHAIN_VERIFY_BATCH_EVENTS_MAX")]
    chain_verify_batch_events_max: Option<u64>,
}

impl SettingsArgs {
    fn load(self) -> anyhow::Result<Settings> {
        let overrides = Overrides {
            listen: self.listen,
            database_url: self.database_url.map(Secret::new),
            data_dir: self.data_dir,
            token_secret: self.token_secret.map(Secret::new),
            master_key: self.master_key.map(Secret::new),
            master_key_file: self.master_key_file,
            policy_file: self.policy_file,
            revocation_file: self.revocation_file,
            request_body_bytes_max: self.request_body_bytes_max,
            commands_per_batch_max: self.commands_per_batch_max,
            requests_per_second_per_department: self.requests_per_second_per_department,
            request_timeout_ms: self.request_timeout_ms,
            ready_lag_positions_max: self.ready_lag_positions_max,
            projectors: self.no_projectors.then_some(false),
            sagas: self.no_sagas.then_some(false),
            relay: self.no_relay.then_some(false),
            nats_url: self.nats_url,
            nats_user: self.nats_user,
            nats_password: self.nats_password.map(Secret::new),
            relay_name: self.relay_name,
            stream_max_bytes: self.stream_max_bytes,
            stream_replicas: self.stream_replicas,
            drain_timeout_ms: self.drain_timeout_ms,
            sweep_interval_ms: self.sweep_interval_ms,
            timer_overdue_after_ms: self.timer_overdue_after_ms,
            chain_verify_interval_ms: self.chain_verify_interval_ms,
            chain_verify_batch_events_max: self.chain_verify_batch_events_max,
        };
        Ok(Settings::load(self.config.as_deref(), overrides)?)
    }
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    match args.action {
        None => {
            let settings = args.settings.load()?;
            tracing::info!(?settings, "starting");
            let app = Application::build(settings)
                .await?
                .mount("/console", Box::new(console));
            eprintln!("listening on port {}", app.port());
            app.run_until_stopped(pathway_server::shutdown_signal())
                .await?;
            Ok(())
        }
        Some(ServeAction::Token(TokenCommand::Issue {
            settings,
            department,
            city,
            ttl,
            subject,
        })) => {
            let settings = settings.load()?;
            let secret = settings.require_token_secret()?;
            let ttl_s = token::parse_ttl(&ttl).map_err(anyhow::Error::msg)?;
            if let Some(city) = &city {
                anyhow::ensure!(
                    city.len() == 6
                        && city.ends_with("00")
                        && city.bytes().all(|b| b.is_ascii_digit()),
                    "--city {city:?}: a prefecture code such as 230100 expected"
                );
            }
            let now = chrono::Utc::now().timestamp();
            let claims = Claims {
                sub: subject,
                dept: department,
                city,
                iat: now,
                exp: now.checked_add(ttl_s).context("--ttl too long")?,
                jti: uuid::Uuid::new_v4().to_string(),
            };
            eprintln!(
                "token id {} for {}{} expires at {}",
                claims.jti,
                claims.dept,
                claims
                    .city
                    .as_deref()
                    .map(|c| format!(" (city {c})"))
                    .unwrap_or_default(),
                chrono::DateTime::from_timestamp(claims.exp, 0)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            );
            println!("{}", token::issue(secret, &claims));
            Ok(())
        }
    }
}

/// The department web console, beside the API at `/console`.
fn console(ctx: pathway_server::MountContext) -> axum::Router {
    use pathway_console::ConsoleContext;
    use pathway_server::OpenedStore;
    use std::sync::Arc;
    let (policy, revocations) = (Arc::new(ctx.policy), Arc::new(ctx.revocations));
    match ctx.store {
        OpenedStore::Embedded(s) => pathway_console::router(ConsoleContext::new(
            s,
            ctx.read_store,
            policy,
            ctx.secret,
            revocations,
        )),
        OpenedStore::Postgres(s) => pathway_console::router(ConsoleContext::new(
            s,
            ctx.read_store,
            policy,
            ctx.secret,
            revocations,
        )),
    }
}

//! Choosing and opening the event log: PostgreSQL when a database URL is
//! given, otherwise the embedded store under a data directory.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use pathway_store::{EventStore, embedded::EmbeddedStore, postgres::PostgresStore};

/// Where the log lives.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// PostgreSQL URL, e.g. postgres://postgres@127.0.0.1:5432/pathway. When
    /// absent, the embedded store under --data-dir is used.
    #[arg(long, env = "PATHWAY_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// Directory of the embedded store (created if missing).
    #[arg(long, env = "PATHWAY_DATA_DIR", default_value = "pathway-data")]
    pub(crate) data_dir: PathBuf,
}

/// An opened log of either kind.
#[derive(Clone)]
pub(crate) enum AnyStore {
    Embedded(EmbeddedStore),
    Postgres(PostgresStore),
}

impl StoreArgs {
    pub(crate) async fn open(&self) -> anyhow::Result<AnyStore> {
        match &self.database_url {
            Some(url) => Ok(AnyStore::Postgres(
                PostgresStore::connect(url)
                    .await
                    .with_context(|| format!("opening the PostgreSQL store at {}", redact(url)))?,
            )),
            None => Ok(AnyStore::Embedded(
                EmbeddedStore::open(&self.data_dir).with_context(|| {
                    format!("opening the embedded store in {}", self.data_dir.display())
                })?,
            )),
        }
    }
}

/// A URL with any password replaced, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `pathway verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// First position to check (1-based).
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Last position to check (default: the head).
    #[arg(long)]
    to: Option<u64>,
}

pub(crate) async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let report = match args.store.open().await? {
        AnyStore::Embedded(s) => s.verify(args.from, args.to).await?,
        AnyStore::Postgres(s) => s.verify(args.from, args.to).await?,
    };
    println!("checked {} events", report.checked);
    println!("head position {}", report.head.position);
    println!("head hash {}", hex::encode(report.head.hash));
    match report.first_break {
        None => {
            println!("chain ok");
            Ok(ExitCode::SUCCESS)
        }
        Some(b) => {
            println!("chain broken at position {}: {}", b.position, b.kind);
            Ok(ExitCode::FAILURE)
        }
    }
}

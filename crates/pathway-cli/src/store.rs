//! Choosing and opening the event log: PostgreSQL when a database URL is
//! given, otherwise the embedded store under a data directory.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use pathway_keys::{Keyring, MasterKey};
use pathway_store::{EventStore, embedded::EmbeddedStore, postgres::PostgresStore};

/// The data directory when none is given: the embedded store and, by
/// default, the master key live there.
pub(crate) const DATA_DIR_DEFAULT: &str = "pathway-data";
/// The variable that sets the data directory.
pub(crate) const DATA_DIR_ENV: &str = "PATHWAY_DATA_DIR";

/// Where the log lives.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// PostgreSQL URL, e.g. postgres://postgres@127.0.0.1:5432/pathway. When
    /// absent, the embedded store under --data-dir is used.
    #[arg(long, env = "PATHWAY_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// Directory of the embedded store (created if missing).
    #[arg(long, env = DATA_DIR_ENV, default_value = DATA_DIR_DEFAULT)]
    pub(crate) data_dir: PathBuf,
    /// File holding the master key (base64 of 32 bytes) that wraps the
    /// personal-data keys. Default: the PATHWAY_MASTER_KEY variable if set,
    /// else DATA_DIR/master.key, created on first use.
    #[arg(long, env = "PATHWAY_MASTER_KEY_FILE")]
    pub(crate) master_key_file: Option<PathBuf>,
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

impl StoreArgs {
    /// The master key: `PATHWAY_MASTER_KEY`, else `--master-key-file`, else
    /// the data directory's `master.key` (created if absent).
    fn master_key(&self) -> anyhow::Result<MasterKey> {
        if let Some(key) = pathway_keys::master_key_from_env()? {
            return Ok(key);
        }
        let path = match &self.master_key_file {
            Some(path) => path.clone(),
            None => {
                std::fs::create_dir_all(&self.data_dir).with_context(|| {
                    format!("creating the data directory {}", self.data_dir.display())
                })?;
                self.data_dir.join(pathway_keys::MASTER_KEY_FILE)
            }
        };
        Ok(MasterKey::load_or_create(&path)?)
    }

    /// [`StoreArgs::keyring`] without the check that every key is wrapped by
    /// the configured master key (for `pathway keys rotate`).
    pub(crate) async fn keyring_unchecked(&self, store: &AnyStore) -> anyhow::Result<Keyring> {
        let master = self.master_key()?;
        Ok(match store {
            AnyStore::Embedded(_) => Keyring::new(
                master,
                pathway_keys::SqliteKeyTable::open(&self.data_dir)
                    .context("opening the personal-data key table")?,
            ),
            AnyStore::Postgres(s) => Keyring::new(
                master,
                pathway_keys::PostgresKeyTable::open(s.pool().clone())
                    .await
                    .context("opening the personal-data key table")?,
            ),
        })
    }

    /// The keyring of `store`: its key table (beside the embedded log, or the
    /// `pathway_keys` schema) and the configured master key.
    pub(crate) async fn keyring(&self, store: &AnyStore) -> anyhow::Result<Keyring> {
        let master = self.master_key()?;
        let keyring = match store {
            AnyStore::Embedded(_) => pathway_keys::embedded_keyring(&self.data_dir, Some(master))
                .await
                .context("opening the personal-data key table")?,
            AnyStore::Postgres(s) => pathway_keys::postgres_keyring(s.pool().clone(), master)
                .await
                .context("opening the personal-data key table")?,
        };
        Ok(keyring)
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

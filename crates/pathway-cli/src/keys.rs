//! `pathway erase` and `pathway keys`: erasure of a person's personal data by
//! destroying their data key, and master key generation.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use pathway_domain::{
    pb,
    person::{EraseData, Person, PersonCommand},
};
use pathway_engine::{CommandMeta, Engine, EngineError, Keyring};
use pathway_keys::MasterKey;
use pathway_store::EventStore;
use uuid::Uuid;

use crate::store::{AnyStore, StoreArgs};

/// Namespace of the default command id of an erasure (UUID v5 of the person
/// ref), so running the same erasure twice is one command.
const ERASE_NAMESPACE: Uuid = Uuid::from_u128(0x5a1c_9e3d_2b7f_4e61_8d0a_c4f2_9b6e_1a37);

/// `pathway erase`.
#[derive(Debug, clap::Args)]
pub(crate) struct EraseArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The person whose personal data is erased (person_ref).
    #[arg(long = "person")]
    person_ref: String,
    /// Why (recorded in the log), e.g. "the person withdrew consent (PIPL Art. 47)".
    #[arg(long)]
    reason: String,
    /// Who authorised the erasure (recorded in the log).
    #[arg(long, default_value = "dpf-data-officer")]
    authorised_by: String,
    /// GB/T 2260 code of the acting DPF office.
    #[arg(long, default_value = "230000")]
    region: String,
    /// Command id (default: derived from the person, so a rerun is the same command).
    #[arg(long)]
    command_id: Option<Uuid>,
}

pub(crate) async fn erase(args: EraseArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!args.reason.trim().is_empty(), "--reason must not be empty");
    let store = args.store.open().await?;
    let keyring = args.store.keyring(&store).await?;
    match store {
        AnyStore::Embedded(s) => erase_on(Engine::new(s, keyring), &args).await,
        AnyStore::Postgres(s) => erase_on(Engine::new(s, keyring), &args).await,
    }
}

async fn erase_on<S: EventStore + Clone>(
    engine: Engine<S>,
    args: &EraseArgs,
) -> anyhow::Result<ExitCode> {
    let command = PersonCommand::EraseData(EraseData {
        person_ref: args.person_ref.clone(),
        key_id: args.person_ref.clone(),
        reason: args.reason.clone(),
        authorised_by: args.authorised_by.clone(),
    });
    let command_id = args
        .command_id
        .unwrap_or_else(|| Uuid::new_v5(&ERASE_NAMESPACE, args.person_ref.as_bytes()));
    let meta = CommandMeta {
        command_id,
        correlation_id: command_id,
        causation_id: None,
        actor_department: pb::Department::Dpf,
        actor_region: args.region.clone(),
        actor_id: args.authorised_by.clone(),
        now: Utc::now(),
    };
    match engine
        .handle::<Person>(&command.stream_id(), &command, &meta)
        .await
    {
        Ok(handled) => {
            let at = handled.append.map(|a| a.last_position).unwrap_or_default();
            println!(
                "erased the personal data of {} (event at position {at}); its data key is destroyed",
                args.person_ref
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(EngineError::Rejected(r)) if r.rule == pathway_domain::person::ERASED_ONCE_RULE => {
            // Erased before, perhaps by a process that stopped before it
            // destroyed the key: make sure the key is gone.
            let keyring: &Keyring = engine.keyring().context("no keyring")?;
            keyring.erase(&args.person_ref, &args.reason).await?;
            println!(
                "the personal data of {} was already erased; its data key is destroyed",
                args.person_ref
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("erasing {}", args.person_ref))),
    }
}

/// `pathway keys`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Print a new random master key (base64), for PATHWAY_MASTER_KEY or a
    /// --master-key-file; store it in your secret store, never in the repository.
    Generate,
    /// Re-wrap every personal-data key under a new master key (the data keys
    /// and the log are unchanged). Stop every other Pathway process first;
    /// restart them with the new key. Safe to run again if interrupted.
    Rotate(RotateArgs),
}

/// `pathway keys rotate`.
#[derive(Debug, clap::Args)]
pub(crate) struct RotateArgs {
    /// The store whose key table is re-wrapped; its current master key as usual
    /// (PATHWAY_MASTER_KEY, --master-key-file or DATA_DIR/master.key).
    #[command(flatten)]
    store: StoreArgs,
    /// File with the new master key (base64, from `pathway keys generate`).
    #[arg(long)]
    new_master_key_file: std::path::PathBuf,
}

pub(crate) async fn keys(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Generate => {
            println!("{}", MasterKey::generate()?.to_base64());
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate(args) => {
            let text = std::fs::read_to_string(&args.new_master_key_file)
                .with_context(|| format!("reading {}", args.new_master_key_file.display()))?;
            let new = MasterKey::from_base64(&text)?;
            let store = args.store.open().await?;
            // No master check here: an interrupted rotation leaves keys under
            // both masters, and running again finishes it.
            let keyring = args.store.keyring_unchecked(&store).await?;
            anyhow::ensure!(
                keyring.master_key_id() != new.id(),
                "the new master key is the current one ({})",
                new.id()
            );
            let n = keyring
                .rotate_master(&new, |n| eprintln!("  re-wrapped {n} keys"))
                .await?;
            println!(
                "re-wrapped {n} data keys from master key {} to {}; configure the new key everywhere",
                keyring.master_key_id(),
                new.id()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! Signed checkpoints of the log's head.
//!
//! A checkpoint states "the log's record at position P has chain hash H", at
//! time T, signed with an Ed25519 key. The signed bytes are
//! `"pathway.checkpoint.v1" ‖ P (u64 BE) ‖ H ‖ T (i64 µs since the Unix epoch, BE)`.
//! It is appended to the log as a `LogCheckpointSigned` event on
//! [`CHECKPOINT_STREAM`](crate::CHECKPOINT_STREAM) and written to a file the
//! auditor keeps outside the system.
//!
//! Later, the log extends the checkpointed one exactly when the chain from
//! position 1 up to P verifies and the record at P still has hash H. Since H
//! covers every record before it, a rewrite of history — even one that
//! recomputes every hash so the chain verifies on its own — cannot keep H
//! without a SHA-256 collision; and it cannot produce a new checkpoint
//! without the private key.
//!
//! Key files are PKCS#8 PEM, created with mode 0600 and refused when group or
//! others may read them (see `docs/security.md`).

use std::{io::Write as _, path::Path};

use chrono::{DateTime, Utc};
use ed25519_dalek::{
    Signature, Signer as _, SigningKey,
    pkcs8::{
        DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _,
        spki::der::pem::LineEnding,
    },
};
use pathway_domain::pb;
use pathway_store::{EventStore, ExpectedVersion, Head, NewEvent};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::{AuditError, CHECKPOINT_STREAM};

pub use ed25519_dalek::{SigningKey as CheckpointKey, VerifyingKey};

/// Domain separation of the signed statement.
const STATEMENT_TAG: &[u8] = b"pathway.checkpoint.v1";
/// `format` of a checkpoint file.
pub const CHECKPOINT_FILE_FORMAT: &str = "pathway.checkpoint.v1";
/// Namespace of checkpoint event ids (UUID v5 of the signed statement).
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_3a52_8d0e_4b7a_9c61_2e5f_a0d4_7b13);

/// A signed statement of the log's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub position: u64,
    pub head_hash: [u8; 32],
    /// Truncated to microseconds (the signed resolution).
    pub signed_at: DateTime<Utc>,
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
    /// Position of the `LogCheckpointSigned` event that records it, once appended.
    pub event_position: Option<u64>,
}

/// The file form of a [`Checkpoint`]: hex strings and RFC 3339 time.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CheckpointFile {
    format: String,
    position: u64,
    head_hash: String,
    signed_at: String,
    public_key: String,
    key_id: String,
    signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_position: Option<u64>,
}

/// The bytes a checkpoint signs.
pub fn statement(position: u64, head_hash: &[u8; 32], signed_at: DateTime<Utc>) -> Vec<u8> {
    let mut s = Vec::with_capacity(STATEMENT_TAG.len() + 8 + 32 + 8);
    s.extend_from_slice(STATEMENT_TAG);
    s.extend_from_slice(&position.to_be_bytes());
    s.extend_from_slice(head_hash);
    s.extend_from_slice(&signed_at.timestamp_micros().to_be_bytes());
    s
}

/// A short, stable name of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(public_key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

impl Checkpoint {
    /// Signs `head` at time `now`.
    pub fn sign(key: &SigningKey, head: Head, now: DateTime<Utc>) -> Checkpoint {
        let signed_at = truncate_micros(now);
        let signature = key.sign(&statement(head.position, &head.hash, signed_at));
        Checkpoint {
            position: head.position,
            head_hash: head.hash,
            signed_at,
            public_key: key.verifying_key().to_bytes(),
            signature: signature.to_bytes(),
            event_position: None,
        }
    }

    /// Whether the signature is valid and made by `trusted`. The key the
    /// checkpoint names is never trusted by itself: anyone can sign with a key
    /// of their own.
    pub fn check_signature(&self, trusted: &VerifyingKey) -> Result<(), String> {
        if self.public_key != trusted.to_bytes() {
            return Err(format!(
                "checkpoint at position {} is signed by key {}, not by the trusted key {}",
                self.position,
                key_id(&self.public_key),
                key_id(&trusted.to_bytes())
            ));
        }
        let signature = Signature::from_bytes(&self.signature);
        trusted
            .verify_strict(
                &statement(self.position, &self.head_hash, self.signed_at),
                &signature,
            )
            .map_err(|_| {
                format!(
                    "checkpoint at position {}: the signature does not match its position, hash and time",
                    self.position
                )
            })
    }

    /// The event recording this checkpoint.
    pub fn to_event(&self) -> pb::LogCheckpointSigned {
        pb::LogCheckpointSigned {
            position: self.position,
            head_hash: self.head_hash.to_vec(),
            signed_at: Some(pathway_proto::Timestamp {
                seconds: self.signed_at.timestamp(),
                nanos: self.signed_at.timestamp_subsec_nanos() as i32,
            }),
            public_key: self.public_key.to_vec(),
            signature: self.signature.to_vec(),
            key_id: key_id(&self.public_key),
        }
    }

    /// The checkpoint an event records (`event_position`: where the event is).
    pub fn from_event(e: &pb::LogCheckpointSigned, event_position: u64) -> Result<Self, String> {
        let signed_at = e
            .signed_at
            .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
            .ok_or("signed_at is missing or out of range")?;
        Ok(Checkpoint {
            position: e.position,
            head_hash: e
                .head_hash
                .as_slice()
                .try_into()
                .map_err(|_| "head_hash is not 32 bytes")?,
            signed_at,
            public_key: e
                .public_key
                .as_slice()
                .try_into()
                .map_err(|_| "public_key is not 32 bytes")?,
            signature: e
                .signature
                .as_slice()
                .try_into()
                .map_err(|_| "signature is not 64 bytes")?,
            event_position: Some(event_position),
        })
    }

    /// Writes the checkpoint file (JSON).
    pub fn write(&self, path: &Path) -> Result<(), AuditError> {
        let file = CheckpointFile {
            format: CHECKPOINT_FILE_FORMAT.to_owned(),
            position: self.position,
            head_hash: hex::encode(self.head_hash),
            signed_at: self
                .signed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            public_key: hex::encode(self.public_key),
            key_id: key_id(&self.public_key),
            signature: hex::encode(self.signature),
            event_position: self.event_position,
        };
        let mut text = serde_json::to_string_pretty(&file).expect("a checkpoint serialises");
        text.push('\n');
        std::fs::write(path, text).map_err(|e| AuditError::io(path, e))
    }

    /// Reads a checkpoint file.
    pub fn read(path: &Path) -> Result<Self, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
        Self::parse(&text).map_err(|detail| AuditError::format(path, detail))
    }

    /// Parses the JSON form written by [`Checkpoint::write`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let f: CheckpointFile =
            serde_json::from_str(text).map_err(|e| format!("not a checkpoint file: {e}"))?;
        if f.format != CHECKPOINT_FILE_FORMAT {
            return Err(format!(
                "format {:?}, expected {CHECKPOINT_FILE_FORMAT:?}",
                f.format
            ));
        }
        fn bytes<const N: usize>(name: &str, hex_text: &str) -> Result<[u8; N], String> {
            let v = hex::decode(hex_text).map_err(|e| format!("{name}: {e}"))?;
            v.as_slice()
                .try_into()
                .map_err(|_| format!("{name}: {} bytes, expected {N}", v.len()))
        }
        Ok(Checkpoint {
            position: f.position,
            head_hash: bytes("head_hash", &f.head_hash)?,
            signed_at: DateTime::parse_from_rfc3339(&f.signed_at)
                .map_err(|e| format!("signed_at: {e}"))?
                .to_utc(),
            public_key: bytes("public_key", &f.public_key)?,
            signature: bytes("signature", &f.signature)?,
            event_position: f.event_position,
        })
    }
}

/// Signs the log's current head at `now`, appends the `LogCheckpointSigned`
/// event and returns the checkpoint (with the event's position).
#[tracing::instrument(skip_all)]
pub async fn checkpoint<S: EventStore>(
    store: &S,
    key: &SigningKey,
    now: DateTime<Utc>,
) -> Result<Checkpoint, AuditError> {
    let head = store.head().await?;
    let mut cp = Checkpoint::sign(key, head, now);
    let event = pb::Event {
        kind: Some(pb::event::Kind::LogCheckpointSigned(cp.to_event())),
    };
    let event_id = Uuid::new_v5(
        &EVENT_ID_NAMESPACE,
        &statement(cp.position, &cp.head_hash, cp.signed_at),
    );
    let new = audit_event(
        event_id,
        &event,
        cp.signed_at,
        &format!("checkpoint-key-{}", key_id(&cp.public_key)),
    );
    let appended = store
        .append(CHECKPOINT_STREAM, ExpectedVersion::Any, vec![new])
        .await?;
    cp.event_position = Some(appended.first_position);
    tracing::info!(
        position = cp.position,
        event_position = appended.first_position,
        "checkpoint signed"
    );
    Ok(cp)
}

/// A stored audit event: the engine's envelope layout, acting as Pathway
/// itself (or the auditor's office, for warrants).
pub(crate) fn audit_event(
    event_id: Uuid,
    event: &pb::Event,
    at: DateTime<Utc>,
    actor_id: &str,
) -> NewEvent {
    let kind = event.kind.as_ref().expect("an audit event has a kind");
    pathway_engine::record(
        event_id,
        kind,
        pathway_engine::Provenance {
            occurred_at: at,
            correlation_id: event_id.to_string(),
            causation_id: event_id.to_string(),
            actor_department: pb::Department::Pathway,
            actor_region: "230000".to_owned(),
            actor_id: actor_id.to_owned(),
            command_id: event_id.to_string(),
        },
    )
}

/// A new random signing key (from the operating system's generator).
pub fn generate_key() -> Result<SigningKey, AuditError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| AuditError::Invalid(format!("no randomness for a key: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `key` as PKCS#8 PEM to a new file readable by its owner only.
/// Never overwrites an existing file.
pub fn write_key(path: &Path, key: &SigningKey) -> Result<(), AuditError> {
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| AuditError::Invalid(format!("encoding the key: {e}")))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| AuditError::io(path, e))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| AuditError::io(path, e))
}

/// Reads a signing key written by [`write_key`], refusing a file that group
/// or others may read.
pub fn read_key(path: &Path) -> Result<SigningKey, AuditError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(|e| AuditError::io(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(AuditError::format(
                path,
                format!(
                    "key file has mode {:o}; it must be readable by its owner only (chmod 600)",
                    mode & 0o777
                ),
            ));
        }
    }
    let pem = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| AuditError::format(path, format!("not a PKCS#8 Ed25519 private key: {e}")))
}

/// A public key given as 64 hex digits, or as a file holding them or a PEM
/// public key.
pub fn parse_public_key(arg: &str) -> Result<VerifyingKey, AuditError> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).map_err(|e| AuditError::io(Path::new(arg), e))?
    } else {
        arg.to_owned()
    };
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(text).map_err(|e| {
            AuditError::format(Path::new(arg), format!("not an Ed25519 public key: {e}"))
        });
    }
    let bytes: [u8; 32] = hex::decode(text)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| {
            AuditError::Invalid(format!(
                "public key {arg:?} is neither 64 hex digits nor a file holding them"
            ))
        })?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| AuditError::Invalid(format!("public key {arg:?}: {e}")))
}

/// What checking the log against a checkpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointFinding {
    /// The log extends the checkpointed one.
    Extended,
    /// The signature is invalid or not by the trusted key.
    BadSignature(String),
    /// The log ends before the checkpointed position.
    Truncated { head: u64 },
    /// The record at the checkpointed position has another hash: history was rewritten.
    Rewritten { stored_hash: [u8; 32] },
    /// The chain is broken at or before the checkpointed position (see the chain finding).
    ChainBroken,
}

impl CheckpointFinding {
    /// A one-line account of the finding for `cp`.
    pub fn describe(&self, cp: &Checkpoint) -> String {
        match self {
            CheckpointFinding::Extended => format!(
                "checkpoint ok: position {} still has hash {} (signed {} by key {}); the log extends it",
                cp.position,
                hex::encode(cp.head_hash),
                cp.signed_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                key_id(&cp.public_key)
            ),
            CheckpointFinding::BadSignature(why) => format!("checkpoint rejected: {why}"),
            CheckpointFinding::Truncated { head } => format!(
                "checkpoint violated: the log ends at position {head}, before the checkpointed position {} (records removed)",
                cp.position
            ),
            CheckpointFinding::Rewritten { stored_hash } => format!(
                "checkpoint violated at position {}: signed hash {}, log now holds {} (history rewritten)",
                cp.position,
                hex::encode(cp.head_hash),
                hex::encode(stored_hash)
            ),
            CheckpointFinding::ChainBroken => format!(
                "checkpoint cannot hold: the chain is broken at or before position {}",
                cp.position
            ),
        }
    }
}

/// Judges `cp` given a verification from position 1 over the log (`chain`),
/// and the stored hash at `cp.position` observed during it (if reached).
pub fn judge(
    cp: &Checkpoint,
    trusted: &VerifyingKey,
    chain: &pathway_store::VerifyReport,
    hash_at_position: Option<[u8; 32]>,
) -> CheckpointFinding {
    if let Err(why) = cp.check_signature(trusted) {
        return CheckpointFinding::BadSignature(why);
    }
    if cp.position == 0 {
        return CheckpointFinding::Extended;
    }
    match (hash_at_position, &chain.first_break) {
        (Some(h), _) if h != cp.head_hash => CheckpointFinding::Rewritten { stored_hash: h },
        (Some(_), _) => CheckpointFinding::Extended,
        (None, Some(b)) if b.position <= cp.position => CheckpointFinding::ChainBroken,
        (None, _) => CheckpointFinding::Truncated {
            head: chain.head.position,
        },
    }
}

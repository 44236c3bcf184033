//! Personal-data protection: every personal (P2/P3) field of an event is
//! sealed with the data key of its data subject before the event is stored,
//! and erasure destroys that key.
//!
//! - **Data keys**: one random 256-bit key per data subject (a person, or a
//!   low-income household), created on first use and kept in a key table
//!   beside the log — never in it — wrapped (XChaCha20-Poly1305) by the
//!   **master key** from configuration. [`KeyTable`] has two backends: a
//!   SQLite file next to the embedded log, and the `pathway_keys` schema in
//!   PostgreSQL.
//! - **Sealing** ([`Keyring::seal`]): each field listed by
//!   [`pathway_domain::personal::personal_fields`] becomes a
//!   `Sealed { key_id, nonce, ciphertext }`. XChaCha20-Poly1305 with a
//!   synthetic nonce (a keyed hash of event id, field number and plaintext),
//!   so a retried command seals to the same bytes and stays idempotent; the
//!   associated data binds the ciphertext to its subject, event and field, so
//!   it cannot be moved to another event.
//! - **Opening** ([`Keyring::open_all`]) replaces sealed values by clear ones
//!   where the key is alive. A destroyed key leaves the value sealed, which
//!   every reader shows as erased; a key that is simply missing is an error.
//! - **Erasure** ([`Keyring::erase`]) destroys the key. The log is untouched,
//!   so its hash chain still verifies, and a replay or rebuild reads the
//!   fields as erased forever.
//!
//! Unwrapped keys are cached (at most [`DATA_KEYS_CACHED_MAX`] of them, each
//! for at most [`DATA_KEY_CACHE_TTL`]), so an erasure made by another process
//! is honoured by this one within that time.

mod table;

use std::{
    num::NonZeroUsize,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine as _;
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use hmac::{Hmac, Mac};
use lru::LruCache;
use pathway_domain::{Event, pb, personal::personal_fields};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use table::{KeyTable, PostgresKeyTable, SQLITE_KEY_FILE, SqliteKeyTable, StoredKey};

/// Unwrapped data keys kept in memory.
pub const DATA_KEYS_CACHED_MAX: usize = 100_000;
/// How long a cached key (or its destruction) is trusted before the key
/// table is asked again: the bound on how late another process's erasure
/// takes effect here.
pub const DATA_KEY_CACHE_TTL: Duration = Duration::from_secs(60);
/// The master key file created in an embedded data directory when no master
/// key is configured.
pub const MASTER_KEY_FILE: &str = "master.key";
/// The environment variable holding the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "PATHWAY_MASTER_KEY";

const NONCE_BYTES: usize = 24;
const KEY_BYTES: usize = 32;

/// Why a key could not be found, made, used or destroyed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key: {0}")]
    MasterKey(String),
    #[error(
        "data key {key_id} was wrapped by master key {stored}, but the configured master key is {configured}"
    )]
    WrongMasterKey {
        key_id: String,
        stored: String,
        configured: String,
    },
    #[error("data key {key_id} does not unwrap with the master key: the key table is corrupt")]
    Unwrap { key_id: String },
    #[error(
        "no data key for {key_id}, but the log holds data sealed with it: the key table is incomplete"
    )]
    Missing { key_id: String },
    #[error(
        "data key {key_id} was destroyed (personal data erased): nothing new can be sealed for it"
    )]
    Destroyed { key_id: String },
    #[error(
        "field {field} of event {event_id} does not open with data key {key_id}: the sealed value was altered"
    )]
    Open {
        key_id: String,
        event_id: Uuid,
        field: u32,
    },
    #[error("key table: {0}")]
    Table(String),
}

/// The key that wraps every data key. Never logged: `Debug` shows its id.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; KEY_BYTES],
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// A master key from its 32 bytes.
    pub fn from_bytes(key: [u8; KEY_BYTES]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"pathway master key id\0")
            .chain_update(key)
            .finalize();
        MasterKey {
            key,
            id: hex::encode(&digest[..8]),
        }
    }

    /// A master key from base64 (standard alphabet, padded) of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| KeyError::MasterKey(format!("not base64: {e}")))?;
        let key: [u8; KEY_BYTES] = bytes.try_into().map_err(|b: Vec<u8>| {
            KeyError::MasterKey(format!("{} bytes, expected {KEY_BYTES}", b.len()))
        })?;
        Ok(Self::from_bytes(key))
    }

    /// A fresh random master key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = [0; KEY_BYTES];
        getrandom::fill(&mut key).map_err(|e| KeyError::MasterKey(e.to_string()))?;
        Ok(Self::from_bytes(key))
    }

    /// The key as base64, for writing it to a secret store.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key)
    }

    /// The key in `path`, created (readable by its owner only) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let err = |what: &str, e: std::io::Error| {
            KeyError::MasterKey(format!("{what} {}: {e}", path.display()))
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text)
                .map_err(|e| KeyError::MasterKey(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                write_private(path, format!("{}\n", key.to_base64()).as_bytes())
                    .map_err(|e| err("writing", e))?;
                tracing::info!(path = %path.display(), master_key_id = %key.id, "created a master key");
                Ok(key)
            }
            Err(e) => Err(err("reading", e)),
        }
    }

    /// A short public identifier of the key (a hash), stored beside every
    /// data key it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn aead(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.key.into())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// An unwrapped data key, split into the AEAD key and the nonce key.
struct DataKey {
    aead: XChaCha20Poly1305,
    nonce_key: [u8; KEY_BYTES],
}

impl DataKey {
    fn new(key: &[u8; KEY_BYTES]) -> Self {
        let derive = |label: &[u8]| -> [u8; KEY_BYTES] {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
            mac.update(label);
            mac.finalize().into_bytes().into()
        };
        DataKey {
            aead: XChaCha20Poly1305::new(&derive(b"pathway personal field aead").into()),
            nonce_key: derive(b"pathway personal field nonce"),
        }
    }
}

#[derive(Clone)]
enum Slot {
    Live(Arc<DataKey>),
    Destroyed,
}

struct Cached {
    slot: Slot,
    at: Instant,
}

struct Inner {
    master: MasterKey,
    table: Arc<dyn KeyTable>,
    cache: Mutex<LruCache<String, Cached>>,
}

/// Seals and opens personal fields; cheap to clone (shared state).
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("master", &self.inner.master)
            .finish_non_exhaustive()
    }
}

/// Plaintext encoding of a personal value: a tag byte, then the value.
const TAG_TEXT: u8 = 1;
const TAG_INTEGER: u8 = 2;

fn plaintext(value: &pb::personal::Value) -> Option<Vec<u8>> {
    match value {
        pb::personal::Value::Text(s) => {
            let mut v = Vec::with_capacity(1 + s.len());
            v.push(TAG_TEXT);
            v.extend_from_slice(s.as_bytes());
            Some(v)
        }
        pb::personal::Value::Integer(i) => {
            let mut v = Vec::with_capacity(9);
            v.push(TAG_INTEGER);
            v.extend_from_slice(&i.to_be_bytes());
            Some(v)
        }
        pb::personal::Value::Sealed(_) => None,
    }
}

fn from_plaintext(bytes: &[u8]) -> Option<pb::personal::Value> {
    match bytes.split_first()? {
        (&TAG_TEXT, rest) => String::from_utf8(rest.to_vec())
            .ok()
            .map(pb::personal::Value::Text),
        (&TAG_INTEGER, rest) => Some(pb::personal::Value::Integer(i64::from_be_bytes(
            rest.try_into().ok()?,
        ))),
        _ => None,
    }
}

/// What a sealed value is bound to: its subject, event and field.
fn associated_data(subject: &str, event_id: Uuid, field: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(subject.len() + 1 + 16 + 4 + 24);
    aad.extend_from_slice(b"pathway.personal.v1\0");
    aad.extend_from_slice(subject.as_bytes());
    aad.push(0);
    aad.extend_from_slice(event_id.as_bytes());
    aad.extend_from_slice(&field.to_be_bytes());
    aad
}

/// Whether `event` has a personal field still in the clear.
fn has_clear(event: &mut Event) -> bool {
    personal_fields(event).is_some_and(|pf| {
        pf.fields
            .iter()
            .any(|(_, p)| matches!(&p.value, Some(v) if plaintext(v).is_some()))
    })
}

/// The subject of `event`'s sealed fields among `chosen` (`None`: all of
/// them), if it has any.
fn sealed_subject(event: &mut Event, chosen: Option<&[u32]>) -> Option<String> {
    if chosen.is_some_and(<[u32]>::is_empty) {
        // Nothing of this event is wanted: not even its fields are listed.
        return None;
    }
    let pf = personal_fields(event)?;
    pf.fields
        .iter()
        .filter(|(number, _)| chosen.is_none_or(|c| c.contains(number)))
        .find_map(|(_, p)| match &p.value {
            Some(pb::personal::Value::Sealed(s)) => Some(s.key_id.clone()),
            _ => None,
        })
}

/// Which personal fields [`Keyring::open_fields`] opens.
#[derive(Debug, Clone, Copy)]
pub enum OpenFields {
    /// Every personal field of every event.
    All,
    /// The field numbers (as in `pathway_domain::personal::PERSONAL_FIELD_NUMBERS`)
    /// a reader needs of each event; the rest stay sealed, and an event
    /// with none is not looked at (no key is fetched for it).
    Only(fn(&Event) -> &'static [u32]),
}

impl OpenFields {
    /// The chosen field numbers of `event`; `None` for all of them.
    fn of(self, event: &Event) -> Option<&'static [u32]> {
        match self {
            OpenFields::All => None,
            OpenFields::Only(choose) => Some(choose(event)),
        }
    }
}

impl Keyring {
    /// A keyring over `table`, wrapping data keys with `master`.
    pub fn new(master: MasterKey, table: impl KeyTable) -> Self {
        Keyring {
            inner: Arc::new(Inner {
                master,
                table: Arc::new(table),
                cache: Mutex::new(LruCache::new(
                    NonZeroUsize::new(DATA_KEYS_CACHED_MAX).expect("non-zero"),
                )),
            }),
        }
    }

    /// Fails if the key table holds live keys wrapped by another master key
    /// than this keyring's: the configured master key is the wrong one, and
    /// new keys wrapped by it would split the table in two.
    pub async fn check_master(&self) -> Result<(), KeyError> {
        let configured = self.master_key_id();
        match self
            .inner
            .table
            .master_ids()
            .await?
            .into_iter()
            .find(|id| id != configured)
        {
            None => Ok(()),
            Some(stored) => Err(KeyError::MasterKey(format!(
                "the key table holds data keys wrapped by master key {stored}, \
                 but the configured master key is {configured}: \
                 configure the master key this deployment was set up with"
            ))),
        }
    }

    /// Re-wraps every data key under `new` (keys and values are unchanged).
    /// Run it with every other Pathway process stopped: a process still
    /// configured with the old master key cannot unwrap re-wrapped keys.
    /// Resumable: a key already re-wrapped is skipped. Returns the number of
    /// keys re-wrapped; `progress(n)` is called after each batch.
    pub async fn rotate_master(
        &self,
        new: &MasterKey,
        progress: impl Fn(u64),
    ) -> Result<u64, KeyError> {
        let old = self.master_key_id().to_owned();
        let mut after = String::new();
        let mut done = 0;
        loop {
            let batch = self
                .inner
                .table
                .wrapped_by(old.clone(), after.clone(), ROTATE_BATCH_KEYS)
                .await?;
            let Some((last, _)) = batch.last() else {
                return Ok(done);
            };
            after = last.clone();
            for (key_id, wrapped) in batch {
                let key = unwrap_bytes(&self.inner.master, &key_id, &wrapped)?;
                let rewrapped = wrap_bytes(new, &key_id, &key)?;
                if self
                    .inner
                    .table
                    .rewrap(key_id, old.clone(), new.id().to_owned(), rewrapped)
                    .await?
                {
                    done += 1;
                }
            }
            progress(done);
        }
    }

    /// The master key's public id.
    pub fn master_key_id(&self) -> &str {
        self.inner.master.id()
    }

    fn cached(&self, key_id: &str) -> Option<Slot> {
        let mut cache = self.inner.cache.lock().expect("key cache lock");
        match cache.get(key_id) {
            Some(c) if c.at.elapsed() < DATA_KEY_CACHE_TTL => Some(c.slot.clone()),
            _ => None,
        }
    }

    fn remember(&self, key_id: &str, slot: Slot) {
        self.inner.cache.lock().expect("key cache lock").put(
            key_id.to_owned(),
            Cached {
                slot,
                at: Instant::now(),
            },
        );
    }

    fn unwrap_key(&self, key_id: &str, stored: StoredKey) -> Result<Slot, KeyError> {
        match stored {
            StoredKey::Destroyed => Ok(Slot::Destroyed),
            StoredKey::Live { master_id, wrapped } => {
                let master = &self.inner.master;
                if master_id != master.id() {
                    return Err(KeyError::WrongMasterKey {
                        key_id: key_id.to_owned(),
                        stored: master_id,
                        configured: master.id().to_owned(),
                    });
                }
                let key = unwrap_bytes(master, key_id, &wrapped)?;
                Ok(Slot::Live(Arc::new(DataKey::new(&key))))
            }
        }
    }

    /// The slots of `key_ids`, from the cache or one read of the table.
    async fn slots(&self, key_ids: Vec<String>) -> Result<Vec<(String, Slot)>, KeyError> {
        let mut found = Vec::with_capacity(key_ids.len());
        let mut missing = Vec::new();
        for id in key_ids {
            match self.cached(&id) {
                Some(slot) => found.push((id, slot)),
                None => missing.push(id),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let stored = self.inner.table.fetch(missing.clone()).await?;
        let mut stored: std::collections::BTreeMap<String, StoredKey> =
            stored.into_iter().collect();
        for id in missing {
            let Some(s) = stored.remove(&id) else {
                return Err(KeyError::Missing { key_id: id });
            };
            let slot = self.unwrap_key(&id, s)?;
            self.remember(&id, slot.clone());
            found.push((id, slot));
        }
        Ok(found)
    }

    /// The live key of `subject`, created if it has none yet.
    async fn key_for_sealing(&self, subject: &str) -> Result<Arc<DataKey>, KeyError> {
        let slot = match self.cached(subject) {
            Some(slot) => slot,
            None => {
                let stored = match self
                    .inner
                    .table
                    .fetch(vec![subject.to_owned()])
                    .await?
                    .pop()
                {
                    Some((_, stored)) => stored,
                    None => self.create(subject).await?,
                };
                let slot = self.unwrap_key(subject, stored)?;
                self.remember(subject, slot.clone());
                slot
            }
        };
        match slot {
            Slot::Live(key) => Ok(key),
            Slot::Destroyed => Err(KeyError::Destroyed {
                key_id: subject.to_owned(),
            }),
        }
    }

    /// Makes and stores a new data key for `subject`; a concurrent creator's
    /// key wins if it was stored first.
    async fn create(&self, subject: &str) -> Result<StoredKey, KeyError> {
        let mut key = [0u8; KEY_BYTES];
        getrandom::fill(&mut key).map_err(|e| KeyError::Table(format!("random key: {e}")))?;
        let master = &self.inner.master;
        let wrapped = wrap_bytes(master, subject, &key)?;
        tracing::debug!(key_id = subject, "creating a data key");
        self.inner
            .table
            .insert_if_absent(subject.to_owned(), master.id().to_owned(), wrapped)
            .await
    }

    /// Seals every personal field of `event` (the `event_id`-th event to be
    /// stored) that is still in the clear. Fails if the subject's key was
    /// destroyed: erased data is never recorded again.
    pub async fn seal(&self, event_id: Uuid, event: &mut Event) -> Result<(), KeyError> {
        if !has_clear(event) {
            return Ok(());
        }
        let subject = personal_fields(event)
            .map(|pf| pf.subject.to_owned())
            .unwrap_or_default();
        let key = self.key_for_sealing(&subject).await?;
        let Some(pf) = personal_fields(event) else {
            return Ok(());
        };
        for (field, personal) in pf.fields {
            let Some(clear) = personal.value.as_ref().and_then(plaintext) else {
                continue;
            };
            let mut mac =
                <Hmac<Sha256> as Mac>::new_from_slice(&key.nonce_key).expect("any key length");
            mac.update(event_id.as_bytes());
            mac.update(&field.to_be_bytes());
            mac.update(&clear);
            let nonce = mac.finalize().into_bytes();
            let nonce = &nonce[..NONCE_BYTES];
            let ciphertext = key
                .aead
                .encrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: &clear,
                        aad: &associated_data(&subject, event_id, field),
                    },
                )
                .map_err(|_| KeyError::Table("sealing failed".into()))?;
            personal.value = Some(pb::personal::Value::Sealed(pb::Sealed {
                key_id: subject.clone(),
                nonce: nonce.to_vec(),
                ciphertext,
            }));
        }
        Ok(())
    }

    /// Opens the sealed fields of each `(event id, event)` whose key is
    /// alive; fields of destroyed keys stay sealed (read as erased).
    pub async fn open_all<'a, I>(&self, events: I) -> Result<(), KeyError>
    where
        I: IntoIterator<Item = (Uuid, &'a mut Event)>,
    {
        self.open_fields(events, OpenFields::All).await
    }

    /// [`Keyring::open_all`] of the chosen `fields` only: a reader that needs
    /// few personal fields neither decrypts nor holds the others in the
    /// clear.
    pub async fn open_fields<'a, I>(&self, events: I, fields: OpenFields) -> Result<(), KeyError>
    where
        I: IntoIterator<Item = (Uuid, &'a mut Event)>,
    {
        // Each event with its chosen fields, worked out once.
        let mut events: Vec<(Uuid, &'a mut Event, String, Option<&'static [u32]>)> = events
            .into_iter()
            .filter_map(|(id, e)| {
                let chosen = fields.of(e);
                sealed_subject(e, chosen).map(|s| (id, e, s, chosen))
            })
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<String> = events.iter().map(|(_, _, s, _)| s.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let slots: std::collections::BTreeMap<String, Slot> =
            self.slots(ids).await?.into_iter().collect();
        for (event_id, event, key_id, chosen) in &mut events {
            let Some(Slot::Live(key)) = slots.get(key_id.as_str()) else {
                continue;
            };
            open_event(key, key_id, *event_id, event, *chosen)?;
        }
        Ok(())
    }

    /// Opens one event's sealed fields (see [`Keyring::open_all`]).
    pub async fn open(&self, event_id: Uuid, event: &mut Event) -> Result<(), KeyError> {
        self.open_all([(event_id, event)]).await
    }

    /// Destroys `subject`'s data key: every value sealed with it reads as
    /// erased from now on, in this process at once and in others within
    /// [`DATA_KEY_CACHE_TTL`]. Returns `false` if it was already destroyed
    /// (or never existed, in which case a destroyed marker is stored so it
    /// can never be created).
    pub async fn erase(&self, subject: &str, reason: &str) -> Result<bool, KeyError> {
        let destroyed = self
            .inner
            .table
            .destroy(subject.to_owned(), reason.to_owned())
            .await?;
        self.remember(subject, Slot::Destroyed);
        tracing::info!(key_id = subject, destroyed, "data key destroyed");
        Ok(destroyed)
    }
}

/// Data keys re-wrapped per batch by [`Keyring::rotate_master`].
const ROTATE_BATCH_KEYS: usize = 1_000;

/// `nonce ‖ ciphertext` of `key` under `master`, bound to `key_id`.
fn wrap_bytes(
    master: &MasterKey,
    key_id: &str,
    key: &[u8; KEY_BYTES],
) -> Result<Vec<u8>, KeyError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|e| KeyError::Table(format!("random nonce: {e}")))?;
    let ciphertext = master
        .aead()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: key,
                aad: &wrap_aad(key_id),
            },
        )
        .map_err(|_| KeyError::Table("wrapping a data key failed".into()))?;
    let mut wrapped = nonce.to_vec();
    wrapped.extend_from_slice(&ciphertext);
    Ok(wrapped)
}

/// The data key in `wrapped` (see [`wrap_bytes`]).
fn unwrap_bytes(
    master: &MasterKey,
    key_id: &str,
    wrapped: &[u8],
) -> Result<[u8; KEY_BYTES], KeyError> {
    let bad = || KeyError::Unwrap {
        key_id: key_id.to_owned(),
    };
    if wrapped.len() <= NONCE_BYTES {
        return Err(bad());
    }
    let (nonce, ciphertext) = wrapped.split_at(NONCE_BYTES);
    let key = master
        .aead()
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &wrap_aad(key_id),
            },
        )
        .map_err(|_| bad())?;
    key.try_into().map_err(|_| bad())
}

fn wrap_aad(key_id: &str) -> Vec<u8> {
    let mut aad = b"pathway.data-key.v1\0".to_vec();
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

/// Opens `event`'s sealed fields among `chosen` (`None`: all of them) with
/// its subject's data key.
fn open_event(
    key: &DataKey,
    key_id: &str,
    event_id: Uuid,
    event: &mut Event,
    chosen: Option<&[u32]>,
) -> Result<(), KeyError> {
    let Some(pf) = personal_fields(event) else {
        return Ok(());
    };
    let subject = pf.subject;
    for (field, personal) in pf.fields {
        if chosen.is_some_and(|c| !c.contains(&field)) {
            continue;
        }
        let Some(pb::personal::Value::Sealed(sealed)) = &personal.value else {
            continue;
        };
        let bad = || KeyError::Open {
            key_id: key_id.to_owned(),
            event_id,
            field,
        };
        if sealed.key_id != key_id || sealed.key_id != subject || sealed.nonce.len() != NONCE_BYTES
        {
            return Err(bad());
        }
        let clear = key
            .aead
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &associated_data(subject, event_id, field),
                },
            )
            .map_err(|_| bad())?;
        personal.value = Some(from_plaintext(&clear).ok_or_else(bad)?);
    }
    Ok(())
}

/// A keyring for an embedded data directory: keys in `keys.sqlite3` beside
/// the log, wrapped by `master`, or by the directory's own `master.key`
/// (created on first use) when none is given. Fails if the table's keys are
/// wrapped by another master key.
pub async fn embedded_keyring(dir: &Path, master: Option<MasterKey>) -> Result<Keyring, KeyError> {
    let master = match master {
        Some(m) => m,
        None => MasterKey::load_or_create(&dir.join(MASTER_KEY_FILE))?,
    };
    let keyring = Keyring::new(master, SqliteKeyTable::open(dir)?);
    keyring.check_master().await?;
    Ok(keyring)
}

/// A keyring whose keys live in PostgreSQL's `pathway_keys` schema (created
/// if absent). Fails if the table's keys are wrapped by another master key.
pub async fn postgres_keyring(
    pool: deadpool_postgres::Pool,
    master: MasterKey,
) -> Result<Keyring, KeyError> {
    let keyring = Keyring::new(master, PostgresKeyTable::open(pool).await?);
    keyring.check_master().await?;
    Ok(keyring)
}

/// The master key from the environment ([`MASTER_KEY_ENV`]), if set.
pub fn master_key_from_env() -> Result<Option<MasterKey>, KeyError> {
    match std::env::var(MASTER_KEY_ENV) {
        Ok(text) => MasterKey::from_base64(&text)
            .map(Some)
            .map_err(|e| KeyError::MasterKey(format!("{MASTER_KEY_ENV}: {e}"))),
        Err(_) => Ok(None),
    }
}

//! Export bundles: a range of the log that verifies on another machine,
//! without database access.
//!
//! A bundle is a directory:
//!
//! | file | content |
//! |---|---|
//! | `events.pb` | every record of the range, in position order, as length-delimited `ExportedRecord` messages carrying all stored columns |
//! | `checkpoints/checkpoint-<event position>.json` | each `LogCheckpointSigned` event of the range, in the checkpoint file format |
//! | `manifest.json` | format, range, the first record's previous hash, the last record's hash, the record count and the SHA-256 of every other file |
//!
//! [`verify_bundle`] checks the manifest (it must be exactly the canonical
//! serialisation of what it states, so no byte of it can change unnoticed),
//! the digest of every file, that the records are the dense range the
//! manifest names, every record's link and hash
//! ([`pathway_store::chain::Verifier`]), that the checkpoint files are
//! exactly the checkpoint events of the range, and every checkpoint's
//! signature and the hash it signs.
//!
//! Both directions stream: export holds one batch of records in memory,
//! verification one record (and the hashes of the checkpointed positions).
//!
//! A bundle proves itself consistent, not authentic: whoever can rewrite a
//! bundle can recompute its hashes. What ties a bundle to the log the
//! auditor saw is a checkpoint signed by the key the auditor trusts (give
//! `--public-key`), or a checkpoint file the auditor kept, whose position and
//! hash the bundle must hold.

use std::{
    collections::BTreeMap,
    io::{BufWriter, Read as _},
    path::{Path, PathBuf},
};

use bytes::Bytes;
use pathway_domain::pb;
use pathway_proto::Message as _;
use pathway_store::{
    EventStore, ReadFilter, RecordedEvent,
    chain::{GENESIS, Verifier},
};
use sha2::{Digest as _, Sha256};

use crate::{
    AuditError, SCAN_BATCH_EVENTS,
    checkpoint::{Checkpoint, VerifyingKey, key_id},
};

/// `format` of a bundle manifest.
pub const BUNDLE_FORMAT: &str = "pathway.bundle.v1";
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The records' file name.
pub const EVENTS_FILE: &str = "events.pb";
/// The directory of the checkpoint files.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Largest encoded record accepted when reading a bundle, in bytes: a
/// damaged length prefix must not make the verifier allocate without bound.
pub const RECORD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Findings listed at most; verification stops at the first chain break.
const FINDINGS_MAX: usize = 100;

/// What a bundle states about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// First position of the range.
    pub from: u64,
    /// Last position of the range.
    pub to: u64,
    /// Records in `events.pb`: `to - from + 1`.
    pub records: u64,
    /// The previous hash of the record at `from` (hex): the stored hash of
    /// the record before the range, zeros when `from` is 1.
    pub first_prev_hash: String,
    /// The stored hash of the record at `to` (hex).
    pub last_hash: String,
    /// SHA-256 (hex) of every file of the bundle but the manifest, by path
    /// relative to the bundle, `/`-separated.
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    /// The canonical bytes: pretty JSON, keys in declaration order, files
    /// sorted, one trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_string_pretty(self).expect("a manifest serialises");
        text.push('\n');
        text.into_bytes()
    }

    /// Writes `manifest.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), AuditError> {
        let path = dir.join(MANIFEST_FILE);
        std::fs::write(&path, self.to_bytes()).map_err(|e| AuditError::io(&path, e))
    }
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    pub manifest: Manifest,
    pub checkpoints: Vec<Checkpoint>,
}

/// Writes positions `from..=to` (`to` = the head when `None`) of `store` as
/// a bundle into `out`, which must not exist or be empty. Streams: memory
/// holds one batch of records and the checkpoints.
#[tracing::instrument(skip_all, fields(from, to))]
pub async fn export<S: EventStore>(
    store: &S,
    from: u64,
    to: Option<u64>,
    out: &Path,
) -> Result<Exported, AuditError> {
    let from = from.max(1);
    let head = store.head().await?.position;
    let to = to.unwrap_or(head);
    if to < from {
        return Err(AuditError::Invalid(format!(
            "empty range: --from {from} is after --to {to}"
        )));
    }
    if to > head {
        return Err(AuditError::Invalid(format!(
            "--to {to} is beyond the head of the log ({head})"
        )));
    }
    prepare_dir(out)?;
    let events_path = out.join(EVENTS_FILE);
    let file = std::fs::File::create(&events_path).map_err(|e| AuditError::io(&events_path, e))?;
    let mut writer = HashingWriter {
        inner: BufWriter::new(file),
        digest: Sha256::new(),
    };
    let mut checkpoints = Vec::new();
    let mut first_prev_hash = None;
    let mut last_hash = GENESIS;
    let mut next = from;
    let mut buf = Vec::new();
    while next <= to {
        let max = SCAN_BATCH_EVENTS.min((to - next + 1) as usize);
        let batch = store.read_all(next, max, &ReadFilter::all()).await?;
        let Some(last) = batch.last() else {
            return Err(AuditError::Invalid(format!(
                "the log ends before position {next}"
            )));
        };
        next = last.position + 1;
        for r in &batch {
            if r.position > to {
                break;
            }
            first_prev_hash.get_or_insert(r.prev_hash);
            last_hash = r.hash;
            buf.clear();
            to_exported(r)
                .encode_length_delimited(&mut buf)
                .expect("a Vec grows");
            writer
                .write_all(&buf)
                .map_err(|e| AuditError::io(&events_path, e))?;
            if r.event_type == "LogCheckpointSigned" {
                checkpoints.push(decode_checkpoint(r.position, &r.payload)?);
            }
        }
    }
    let events_digest = writer
        .finish()
        .map_err(|e| AuditError::io(&events_path, e))?;
    let mut files = BTreeMap::new();
    files.insert(EVENTS_FILE.to_owned(), hex::encode(events_digest));
    if !checkpoints.is_empty() {
        let dir = out.join(CHECKPOINTS_DIR);
        std::fs::create_dir(&dir).map_err(|e| AuditError::io(&dir, e))?;
    }
    for cp in &checkpoints {
        let name = checkpoint_file_name(cp);
        let path = out.join(&name);
        cp.write(&path)?;
        files.insert(name, hex::encode(file_digest(&path)?));
    }
    let manifest = Manifest {
        format: BUNDLE_FORMAT.to_owned(),
        from,
        to,
        records: to - from + 1,
        first_prev_hash: hex::encode(first_prev_hash.unwrap_or(GENESIS)),
        last_hash: hex::encode(last_hash),
        files,
    };
    manifest.write(out)?;
    tracing::info!(from, to, checkpoints = checkpoints.len(), "bundle exported");
    Ok(Exported {
        manifest,
        checkpoints,
    })
}

fn prepare_dir(out: &Path) -> Result<(), AuditError> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(|e| AuditError::io(out, e))?;
        if entries.next().is_some() {
            return Err(AuditError::format(
                out,
                "the bundle directory is not empty; give a new one",
            ));
        }
        Ok(())
    } else {
        std::fs::create_dir_all(out).map_err(|e| AuditError::io(out, e))
    }
}

fn checkpoint_file_name(cp: &Checkpoint) -> String {
    format!(
        "{CHECKPOINTS_DIR}/checkpoint-{}.json",
        cp.event_position.unwrap_or(cp.position)
    )
}

/// The exported form of a stored record.
pub fn to_exported(r: &RecordedEvent) -> pb::ExportedRecord {
    pb::ExportedRecord {
        position: r.position,
        stream_id: r.stream_id.clone(),
        stream_version: r.stream_version,
        event_id: r.event_id.to_string(),
        event_type: r.event_type.clone(),
        schema_version: r.schema_version,
        recorded_at_micros: r.recorded_at.timestamp_micros(),
        metadata: r.metadata.to_vec(),
        payload: r.payload.to_vec(),
        prev_hash: r.prev_hash.to_vec(),
        hash: r.hash.to_vec(),
    }
}

/// The stored record an exported one states.
pub fn from_exported(e: pb::ExportedRecord) -> Result<RecordedEvent, String> {
    let hash32 = |name: &str, v: &[u8]| -> Result<[u8; 32], String> {
        v.try_into()
            .map_err(|_| format!("{name} is {} bytes, expected 32", v.len()))
    };
    Ok(RecordedEvent {
        position: e.position,
        event_id: uuid::Uuid::parse_str(&e.event_id)
            .map_err(|err| format!("event_id {:?}: {err}", e.event_id))?,
        recorded_at: chrono::DateTime::from_timestamp_micros(e.recorded_at_micros)
            .ok_or_else(|| format!("recorded_at {} µs is out of range", e.recorded_at_micros))?,
        prev_hash: hash32("prev_hash", &e.prev_hash)?,
        hash: hash32("hash", &e.hash)?,
        stream_id: e.stream_id,
        stream_version: e.stream_version,
        event_type: e.event_type,
        schema_version: e.schema_version,
        metadata: Bytes::from(e.metadata),
        payload: Bytes::from(e.payload),
    })
}

fn decode_checkpoint(position: u64, payload: &[u8]) -> Result<Checkpoint, AuditError> {
    let err = |detail: String| AuditError::Decode { position, detail };
    match pb::Event::decode(payload)
        .map_err(|e| err(e.to_string()))?
        .kind
    {
        Some(pb::event::Kind::LogCheckpointSigned(e)) => {
            Checkpoint::from_event(&e, position).map_err(|d| err(d.to_owned()))
        }
        _ => Err(err("payload is not a LogCheckpointSigned".into())),
    }
}

/// A writer that hashes what it writes.
struct HashingWriter<W> {
    inner: W,
    digest: Sha256,
}

impl<W: std::io::Write> HashingWriter<W> {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.digest.update(bytes);
        self.inner.write_all(bytes)
    }
}

impl HashingWriter<BufWriter<std::fs::File>> {
    fn finish(self) -> std::io::Result<[u8; 32]> {
        let file = self.inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.digest.finalize().into())
    }
}

fn file_digest(path: &Path) -> Result<[u8; 32], AuditError> {
    let mut file = std::fs::File::open(path).map_err(|e| AuditError::io(path, e))?;
    let mut digest = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| AuditError::io(path, e))?;
        if n == 0 {
            return Ok(digest.finalize().into());
        }
        digest.update(&buf[..n]);
    }
}

/// What [`verify_bundle`] found.
#[derive(Debug, Clone, Default)]
pub struct BundleReport {
    /// The manifest, when it could be read.
    pub manifest: Option<Manifest>,
    /// Records whose link and hash verified.
    pub records_checked: u64,
    /// Checkpoints of the bundle and what was found for each (`Ok` with a
    /// description when it holds).
    pub checkpoints: Vec<(Checkpoint, Result<String, String>)>,
    /// Everything wrong, each naming the file or position and what is wrong.
    pub findings: Vec<String>,
}

impl BundleReport {
    /// Whether the bundle verified.
    pub fn ok(&self) -> bool {
        self.findings.is_empty() && self.checkpoints.iter().all(|(_, r)| r.is_ok())
    }

    fn find(&mut self, finding: String) {
        if self.findings.len() < FINDINGS_MAX {
            self.findings.push(finding);
        }
    }
}

/// Verifies the bundle in `dir`: manifest, file digests, density, chain,
/// checkpoints. With `trusted`, each checkpoint must be signed by that key;
/// without, a checkpoint's signature is checked against the key it names,
/// which shows the bundle intact but not who signed it.
pub fn verify_bundle(dir: &Path, trusted: Option<&VerifyingKey>) -> BundleReport {
    let mut report = BundleReport::default();
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest_bytes = match std::fs::read(&manifest_path) {
        Ok(b) => b,
        Err(e) => {
            report.find(format!("{MANIFEST_FILE}: cannot be read: {e}"));
            return report;
        }
    };
    let manifest: Manifest = match serde_json::from_slice(&manifest_bytes) {
        Ok(m) => m,
        Err(e) => {
            report.find(format!("{MANIFEST_FILE}: not a bundle manifest: {e}"));
            return report;
        }
    };
    if manifest.to_bytes() != manifest_bytes {
        report.find(format!(
            "{MANIFEST_FILE}: altered (its bytes are not the canonical form of what it states)"
        ));
    }
    if manifest.format != BUNDLE_FORMAT {
        report.find(format!(
            "{MANIFEST_FILE}: format {:?}, expected {BUNDLE_FORMAT:?}",
            manifest.format
        ));
    }
    let expected_records = (manifest.to + 1).saturating_sub(manifest.from.max(1));
    if manifest.from == 0 || manifest.records != expected_records {
        report.find(format!(
            "{MANIFEST_FILE}: range {}..={} does not hold {} records",
            manifest.from, manifest.to, manifest.records
        ));
    }
    check_files(dir, &manifest, &mut report);
    let first_prev = hex32(&manifest.first_prev_hash);
    let last_hash = hex32(&manifest.last_hash);
    if first_prev.is_none() {
        report.find(format!(
            "{MANIFEST_FILE}: first_prev_hash {:?} is not 64 lower-case hex digits",
            manifest.first_prev_hash
        ));
    }
    if last_hash.is_none() {
        report.find(format!(
            "{MANIFEST_FILE}: last_hash {:?} is not 64 lower-case hex digits",
            manifest.last_hash
        ));
    }
    if manifest.from == 1 && first_prev.is_some_and(|h| h != GENESIS) {
        report.find(format!(
            "{MANIFEST_FILE}: the range starts at position 1 but first_prev_hash is not the genesis hash"
        ));
    }
    let first_prev = first_prev.unwrap_or(GENESIS);
    // The positions the checkpoint files sign: only their hashes are kept
    // while the records stream by.
    let wanted = manifest
        .files
        .keys()
        .filter(|name| name.starts_with(CHECKPOINTS_DIR))
        .filter_map(|name| Checkpoint::read(&dir.join(name)).ok())
        .map(|cp| cp.position)
        .collect();
    let recorded = check_records(dir, &manifest, first_prev, last_hash, &wanted, &mut report);
    check_checkpoints(dir, &manifest, first_prev, recorded, trusted, &mut report);
    report.manifest = Some(manifest);
    report
}

/// 32 bytes from exactly 64 lower-case hex digits.
fn hex32(text: &str) -> Option<[u8; 32]> {
    let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
    (hex::encode(bytes) == text).then_some(bytes)
}

/// Every file listed has its digest; every file present is listed.
fn check_files(dir: &Path, manifest: &Manifest, report: &mut BundleReport) {
    if !manifest.files.contains_key(EVENTS_FILE) {
        report.find(format!("{MANIFEST_FILE}: does not list {EVENTS_FILE}"));
    }
    for (name, stated) in &manifest.files {
        if !bundle_file_name(name) {
            report.find(format!(
                "{MANIFEST_FILE}: lists {name:?}, which is not a file of a bundle"
            ));
            continue;
        }
        if hex32(stated).is_none() {
            report.find(format!(
                "{MANIFEST_FILE}: the digest of {name}, {stated:?}, is not 64 lower-case hex digits"
            ));
            continue;
        }
        match file_digest(&dir.join(name)) {
            Ok(actual) if hex::encode(actual) == *stated => {}
            Ok(actual) => report.find(format!(
                "{name}: altered (SHA-256 {}, the manifest states {stated})",
                hex::encode(actual)
            )),
            Err(e) => report.find(format!(
                "{MANIFEST_FILE}: lists {name}, which is missing or unreadable ({e})"
            )),
        }
    }
    let mut present = Vec::new();
    list_files(dir, dir, &mut present);
    for name in present {
        if name != MANIFEST_FILE && !manifest.files.contains_key(&name) {
            report.find(format!("{name}: not listed in the manifest"));
        }
    }
}

/// `events.pb` or `checkpoints/checkpoint-<digits>.json`: nothing else
/// belongs in a bundle (and no path leaves it).
fn bundle_file_name(name: &str) -> bool {
    name == EVENTS_FILE
        || name
            .strip_prefix(CHECKPOINTS_DIR)
            .and_then(|n| n.strip_prefix("/checkpoint-"))
            .and_then(|n| n.strip_suffix(".json"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
}

/// Reads and verifies the records; returns the checkpoint events found, and
/// the hash of each checkpointed position reached.
fn check_records(
    dir: &Path,
    manifest: &Manifest,
    first_prev: [u8; 32],
    last_hash: Option<[u8; 32]>,
    wanted: &std::collections::BTreeSet<u64>,
    report: &mut BundleReport,
) -> Recorded {
    let mut recorded = Recorded::default();
    let path = dir.join(EVENTS_FILE);
    let mut reader = match open_records(&path) {
        Ok(r) => r,
        Err(e) => {
            report.find(format!("{EVENTS_FILE}: cannot be read: {e}"));
            return recorded;
        }
    };
    let mut verifier = Verifier::after(manifest.from.saturating_sub(1), first_prev);
    let mut index = 0u64;
    while let Some(next) = reader.next_record() {
        index += 1;
        let at = verifier.last_position + 1;
        let record = match next {
            Ok(r) => r,
            Err(detail) => {
                report.find(format!(
                    "{EVENTS_FILE}: record {index} (expected position {at}) does not decode: {detail}"
                ));
                return recorded;
            }
        };
        if let Err(b) = verifier.check(&record) {
            report.find(format!(
                "{EVENTS_FILE}: chain broken at {}",
                crate::verify::describe(&b)
            ));
            return recorded;
        }
        if record.position > manifest.to {
            report.find(format!(
                "{EVENTS_FILE}: position {} is beyond the manifest's range (to {})",
                record.position, manifest.to
            ));
            return recorded;
        }
        if wanted.contains(&record.position) {
            recorded.hashes.insert(record.position, record.hash);
        }
        if record.event_type == "LogCheckpointSigned" {
            match decode_checkpoint(record.position, &record.payload) {
                Ok(cp) => recorded.checkpoints.push(cp),
                Err(e) => report.find(format!("{EVENTS_FILE}: {e}")),
            }
        }
        report.records_checked = verifier.checked;
    }
    if verifier.last_position < manifest.to {
        report.find(format!(
            "{EVENTS_FILE}: position {}: record missing (the bundle ends at {}, the manifest states {})",
            verifier.last_position + 1,
            verifier.last_position,
            manifest.to
        ));
    } else if let Some(h) = last_hash
        && h != verifier.last_hash
    {
        report.find(format!(
            "{MANIFEST_FILE}: last_hash {} is not the hash of position {} ({})",
            manifest.last_hash,
            manifest.to,
            hex::encode(verifier.last_hash)
        ));
    }
    recorded
}

/// What the records hold for the checkpoints.
#[derive(Default)]
struct Recorded {
    checkpoints: Vec<Checkpoint>,
    /// Stored hash of each position a checkpoint file signs.
    hashes: BTreeMap<u64, [u8; 32]>,
}

/// Reads the length-delimited records of `events.pb` one at a time.
struct RecordReader<R> {
    inner: R,
}

impl<R: std::io::BufRead> RecordReader<R> {
    /// The next record; `None` at a clean end of the file.
    fn next_record(&mut self) -> Option<Result<RecordedEvent, String>> {
        let len = match self.varint() {
            Ok(None) => return None,
            Ok(Some(n)) => n,
            Err(e) => return Some(Err(e)),
        };
        Some(self.body(len).and_then(|body| {
            from_exported(pb::ExportedRecord::decode(body.as_slice()).map_err(|e| e.to_string())?)
        }))
    }

    /// A length prefix; `None` at the end of the file.
    fn varint(&mut self) -> Result<Option<u64>, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let mut byte = [0u8; 1];
            match self.inner.read(&mut byte) {
                Ok(0) if i == 0 => return Ok(None),
                Ok(0) => return Err("the file ends inside a length prefix".into()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
            value |= u64::from(byte[0] & 0x7f) << (7 * i);
            if byte[0] & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Err("a length prefix longer than 10 bytes".into())
    }

    fn body(&mut self, len: u64) -> Result<Vec<u8>, String> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= RECORD_BYTES_MAX)
            .ok_or_else(|| format!("length {len} exceeds {RECORD_BYTES_MAX} bytes"))?;
        let mut body = vec![0u8; len];
        self.inner
            .read_exact(&mut body)
            .map_err(|e| format!("the file ends inside a record of {len} bytes: {e}"))?;
        Ok(body)
    }
}

fn open_records(path: &Path) -> std::io::Result<RecordReader<std::io::BufReader<std::fs::File>>> {
    Ok(RecordReader {
        inner: std::io::BufReader::new(std::fs::File::open(path)?),
    })
}

fn check_checkpoints(
    dir: &Path,
    manifest: &Manifest,
    first_prev: [u8; 32],
    recorded: Recorded,
    trusted: Option<&VerifyingKey>,
    report: &mut BundleReport,
) {
    // The files must be exactly the checkpoint events of the records.
    let mut files: BTreeMap<String, Checkpoint> = BTreeMap::new();
    for name in manifest.files.keys() {
        if !name.starts_with(&format!("{CHECKPOINTS_DIR}/")) {
            continue;
        }
        match Checkpoint::read(&dir.join(name)) {
            Ok(cp) => {
                files.insert(name.clone(), cp);
            }
            Err(e) => report.find(format!("{name}: {e}")),
        }
    }
    for cp in &recorded.checkpoints {
        let name = checkpoint_file_name(cp);
        match files.remove(&name) {
            Some(file) if file == *cp => {}
            Some(_) => report.find(format!(
                "{name}: differs from the checkpoint event at position {}",
                cp.event_position.unwrap_or_default()
            )),
            None => report.find(format!(
                "{name}: missing (the checkpoint event at position {} has no file)",
                cp.event_position.unwrap_or_default()
            )),
        }
    }
    for name in files.keys() {
        report.find(format!(
            "{name}: no checkpoint event in the records matches it"
        ));
    }
    for cp in recorded.checkpoints {
        let verdict = judge_in_bundle(&cp, manifest, first_prev, &recorded.hashes, trusted);
        report.checkpoints.push((cp, verdict));
    }
}

/// A checkpoint of the bundle: its signature, and the hash it signs against
/// the records.
fn judge_in_bundle(
    cp: &Checkpoint,
    manifest: &Manifest,
    first_prev: [u8; 32],
    hashes: &BTreeMap<u64, [u8; 32]>,
    trusted: Option<&VerifyingKey>,
) -> Result<String, String> {
    let signer = match trusted {
        Some(key) => *key,
        None => VerifyingKey::from_bytes(&cp.public_key).map_err(|e| {
            format!(
                "checkpoint at position {}: public key is invalid: {e}",
                cp.position
            )
        })?,
    };
    cp.check_signature(&signer)?;
    let stored = if cp.position + 1 == manifest.from {
        Some(first_prev)
    } else {
        hashes.get(&cp.position).copied()
    };
    let by = if trusted.is_some() {
        format!("the trusted key {}", key_id(&cp.public_key))
    } else {
        format!(
            "key {} (not checked against a trusted key: give --public-key)",
            key_id(&cp.public_key)
        )
    };
    match stored {
        Some(h) if h == cp.head_hash => Ok(format!(
            "checkpoint ok: position {} has the signed hash {}, signed by {by}",
            cp.position,
            hex::encode(cp.head_hash)
        )),
        Some(h) => Err(format!(
            "checkpoint violated at position {}: signed hash {}, bundle holds {}",
            cp.position,
            hex::encode(cp.head_hash),
            hex::encode(h)
        )),
        None if cp.position + 1 < manifest.from => Ok(format!(
            "checkpoint signature ok (signed by {by}); position {} is before the bundle's range",
            cp.position
        )),
        None => Err(format!(
            "checkpoint at position {}: the bundle does not show that position's hash",
            cp.position
        )),
    }
}

/// A checkpoint the auditor kept, against the bundle: the bundle must hold
/// its position with its hash and the signature must be by `trusted`.
pub fn judge_kept_checkpoint(
    dir: &Path,
    cp: &Checkpoint,
    trusted: &VerifyingKey,
) -> Result<String, String> {
    let manifest_path: PathBuf = dir.join(MANIFEST_FILE);
    let manifest: Manifest = std::fs::read(&manifest_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| format!("{MANIFEST_FILE}: cannot be read"))?;
    if cp.position + 1 < manifest.from || cp.position > manifest.to {
        return Err(format!(
            "the checkpoint's position {} is outside the bundle's range {}..={}",
            cp.position, manifest.from, manifest.to
        ));
    }
    let mut hashes = BTreeMap::new();
    if let Ok(mut reader) = open_records(&dir.join(EVENTS_FILE)) {
        while let Some(Ok(r)) = reader.next_record() {
            if r.position == cp.position {
                hashes.insert(r.position, r.hash);
                break;
            }
        }
    }
    let first_prev = hex32(&manifest.first_prev_hash).unwrap_or(GENESIS);
    judge_in_bundle(cp, &manifest, first_prev, &hashes, Some(trusted))
}

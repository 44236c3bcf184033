//! Recomputing the hash chain over a range of the log.
//!
//! Both functions stream: memory stays bounded whatever the size of the log.
//! [`verify_store`] works on any [`EventStore`] through `read_all` batches;
//! [`verify_postgres`] reads the range with one `COPY … TO STDOUT (FORMAT
//! binary)` on a dedicated connection and hashes rows straight from the wire
//! buffer, without building a record per row — the path behind the
//! ≥ 200,000 events/s target.
//!
//! Each record must be the next position, link to the previous record's
//! stored hash, and hash to its own stored hash ([`chain::Canonical`]). The
//! record before the range is taken as given; verifying from position 1
//! anchors the chain at the genesis hash, and a signed checkpoint (see
//! [`crate::checkpoint`]) anchors it against a rewrite that recomputes every
//! hash.

use bytes::{Buf, BytesMut};
use futures::StreamExt;
use pathway_store::{
    ChainBreak, ChainBreakKind, EventStore, Head, ReadFilter, RecordedEvent, VerifyReport,
    chain::{Canonical, GENESIS, Verifier},
    postgres::PostgresStore,
};

use crate::{
    AuditError, SCAN_BATCH_EVENTS,
    checkpoint::{Checkpoint, CheckpointFinding, judge},
};

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01 UTC).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
/// Signature at the start of a binary `COPY` stream.
const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Columns a binary `COPY` row of the log carries.
const COPY_FIELDS: i16 = 11;

/// A verified record, as shown to an observer of the scan.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub position: u64,
    pub stream_id: &'a str,
    pub event_type: &'a str,
    pub payload: &'a [u8],
    pub hash: &'a [u8; 32],
}

/// Verifies positions `from..=to` (`to` = the head when `None`) through the
/// store API, calling `observe` with every record that verified.
#[tracing::instrument(skip_all, fields(from, to))]
pub async fn verify_store<S: EventStore>(
    store: &S,
    from: u64,
    to: Option<u64>,
    observe: &mut dyn FnMut(&Seen<'_>),
) -> Result<VerifyReport, AuditError> {
    let from = from.max(1);
    let to = match to {
        Some(to) => to,
        None => store.head().await?.position,
    };
    let mut verifier = match seed(store, from).await? {
        Ok(v) => v,
        Err(report) => return Ok(report),
    };
    while verifier.last_position < to {
        let max = SCAN_BATCH_EVENTS.min((to - verifier.last_position) as usize);
        let batch = store
            .read_all(verifier.last_position + 1, max, &ReadFilter::all())
            .await?;
        if batch.is_empty() {
            let at = verifier.last_position + 1;
            return Ok(report(
                &verifier,
                Some(broken(at, ChainBreakKind::RecordMissing)),
            ));
        }
        for r in &batch {
            if let Err(b) = verifier.check(r) {
                return Ok(report(&verifier, Some(b)));
            }
            observe(&seen(r));
        }
    }
    Ok(report(&verifier, None))
}

/// The verifier for a range starting at `from`: seeded with the stored hash
/// of the record before it (genesis for position 1), or the finding that
/// that record is missing.
async fn seed<S: EventStore>(
    store: &S,
    from: u64,
) -> Result<Result<Verifier, VerifyReport>, AuditError> {
    if from == 1 {
        return Ok(Ok(Verifier::after(0, GENESIS)));
    }
    let before = store.read_all(from - 1, 1, &ReadFilter::all()).await?;
    Ok(match before.first() {
        Some(r) if r.position == from - 1 => Ok(Verifier::after(r.position, r.hash)),
        _ => Err(VerifyReport {
            checked: 0,
            head: Head {
                position: 0,
                hash: GENESIS,
            },
            first_break: Some(broken(from - 1, ChainBreakKind::RecordMissing)),
        }),
    })
}

fn seen(r: &RecordedEvent) -> Seen<'_> {
    Seen {
        position: r.position,
        stream_id: &r.stream_id,
        event_type: &r.event_type,
        payload: &r.payload,
        hash: &r.hash,
    }
}

fn broken(position: u64, kind: ChainBreakKind) -> ChainBreak {
    ChainBreak { position, kind }
}

fn report(v: &Verifier, first_break: Option<ChainBreak>) -> VerifyReport {
    VerifyReport {
        checked: v.checked,
        head: Head {
            position: v.last_position,
            hash: v.last_hash,
        },
        first_break,
    }
}

/// Verifies positions `from..=to` (`to` = the head when `None`) of a
/// PostgreSQL log with one binary `COPY`, calling `observe` with every record
/// that verified.
#[tracing::instrument(skip_all, fields(from, to))]
pub async fn verify_postgres(
    store: &PostgresStore,
    from: u64,
    to: Option<u64>,
    observe: &mut dyn FnMut(&Seen<'_>),
) -> Result<VerifyReport, AuditError> {
    let from = from.max(1);
    let to = match to {
        Some(to) => to,
        None => store.head().await?.position,
    };
    let mut verifier = match seed(store, from).await? {
        Ok(v) => v,
        Err(report) => return Ok(report),
    };
    if to < from {
        return Ok(report(&verifier, None));
    }
    let client = store.pool().get().await.map_err(|e| {
        AuditError::Store(pathway_store::StoreError::Unavailable(format!(
            "PostgreSQL pool: {e}"
        )))
    })?;
    // Positions are integers we format ourselves: COPY takes no parameters.
    let sql = format!(
        "COPY (SELECT position, stream_id, stream_version, event_id, event_type, \
         schema_version, recorded_at, metadata, payload, prev_hash, hash FROM events \
         WHERE position BETWEEN {from} AND {to} ORDER BY position) TO STDOUT (FORMAT binary)"
    );
    let stream = client.copy_out(sql.as_str()).await.map_err(pg)?;
    let mut stream = Box::pin(stream);
    let mut buf = BytesMut::new();
    let mut header_read = false;
    let mut finding = None;
    'read: while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk.map_err(pg)?);
        if !header_read {
            match parse_header(&buf)? {
                Some(n) => {
                    buf.advance(n);
                    header_read = true;
                }
                None => continue,
            }
        }
        loop {
            match parse_row(&buf, verifier.last_position + 1)? {
                Parsed::Incomplete => break,
                Parsed::Trailer => {
                    buf.clear();
                    break 'read;
                }
                Parsed::Row { row, len } => {
                    if let Err(b) = check(&mut verifier, &row) {
                        finding = Some(b);
                        break 'read;
                    }
                    observe(&Seen {
                        position: row.position,
                        stream_id: row.stream_id,
                        event_type: row.event_type,
                        payload: row.payload,
                        hash: row.hash,
                    });
                    buf.advance(len);
                }
            }
        }
    }
    if finding.is_some() {
        // The COPY is abandoned mid-stream: do not hand the connection back.
        drop(stream);
        drop(deadpool_postgres::Object::take(client));
        return Ok(report(&verifier, finding));
    }
    if verifier.last_position < to {
        let at = verifier.last_position + 1;
        return Ok(report(
            &verifier,
            Some(broken(at, ChainBreakKind::RecordMissing)),
        ));
    }
    Ok(report(&verifier, None))
}

fn pg(e: tokio_postgres::Error) -> AuditError {
    AuditError::Store(pathway_store::StoreError::Unavailable(format!(
        "PostgreSQL: {e}"
    )))
}

/// One row of the `COPY`, borrowed from the buffer.
struct Row<'a> {
    position: u64,
    stream_id: &'a str,
    stream_version: u64,
    event_id: uuid::Uuid,
    event_type: &'a str,
    schema_version: u32,
    recorded_at_micros: i64,
    metadata: &'a [u8],
    payload: &'a [u8],
    prev_hash: &'a [u8; 32],
    hash: &'a [u8; 32],
}

enum Parsed<'a> {
    Incomplete,
    Trailer,
    Row { row: Row<'a>, len: usize },
}

/// The length of the `COPY` header, once it is all in `buf`.
fn parse_header(buf: &[u8]) -> Result<Option<usize>, AuditError> {
    let fixed = COPY_SIGNATURE.len() + 8;
    if buf.len() < fixed {
        return Ok(None);
    }
    if &buf[..COPY_SIGNATURE.len()] != COPY_SIGNATURE {
        return Err(corrupt(
            0,
            "COPY stream does not start with the binary signature",
        ));
    }
    let ext = i32::from_be_bytes(buf[fixed - 4..fixed].try_into().expect("4 bytes"));
    let ext = usize::try_from(ext).map_err(|_| corrupt(0, "negative COPY header extension"))?;
    Ok((buf.len() >= fixed + ext).then_some(fixed + ext))
}

fn corrupt(position: u64, detail: &str) -> AuditError {
    AuditError::Decode {
        position,
        detail: detail.to_owned(),
    }
}

/// The next row in `buf`, if it is all there. `position` (the one expected)
/// only names the place in errors.
fn parse_row(buf: &[u8], position: u64) -> Result<Parsed<'_>, AuditError> {
    let mut at = 0usize;
    let Some(count) = buf.get(..2) else {
        return Ok(Parsed::Incomplete);
    };
    let count = i16::from_be_bytes(count.try_into().expect("2 bytes"));
    if count == -1 {
        return Ok(Parsed::Trailer);
    }
    if count != COPY_FIELDS {
        return Err(corrupt(
            position,
            "COPY row has an unexpected number of columns",
        ));
    }
    at += 2;
    let mut fields: [&[u8]; COPY_FIELDS as usize] = [&[]; COPY_FIELDS as usize];
    for field in &mut fields {
        let Some(len) = buf.get(at..at + 4) else {
            return Ok(Parsed::Incomplete);
        };
        let len = i32::from_be_bytes(len.try_into().expect("4 bytes"));
        let len = usize::try_from(len).map_err(|_| corrupt(position, "NULL column"))?;
        at += 4;
        let Some(bytes) = buf.get(at..at + len) else {
            return Ok(Parsed::Incomplete);
        };
        *field = bytes;
        at += len;
    }
    let int8 = |b: &[u8], name: &str| -> Result<i64, AuditError> {
        Ok(i64::from_be_bytes(b.try_into().map_err(|_| {
            corrupt(position, &format!("column {name} is not 8 bytes"))
        })?))
    };
    let text = |b, name: &str| {
        std::str::from_utf8(b)
            .map_err(|_| corrupt(position, &format!("column {name} is not UTF-8")))
    };
    let row_position = int8(fields[0], "position")?;
    let row = Row {
        position: u64::try_from(row_position)
            .map_err(|_| corrupt(position, "negative position"))?,
        stream_id: text(fields[1], "stream_id")?,
        stream_version: u64::try_from(int8(fields[2], "stream_version")?)
            .map_err(|_| corrupt(position, "negative stream_version"))?,
        event_id: uuid::Uuid::from_slice(fields[3])
            .map_err(|_| corrupt(position, "column event_id is not 16 bytes"))?,
        event_type: text(fields[4], "event_type")?,
        schema_version: u32::try_from(i32::from_be_bytes(
            fields[5]
                .try_into()
                .map_err(|_| corrupt(position, "column schema_version is not 4 bytes"))?,
        ))
        .map_err(|_| corrupt(position, "negative schema_version"))?,
        recorded_at_micros: int8(fields[6], "recorded_at")? + PG_EPOCH_UNIX_MICROS,
        metadata: fields[7],
        payload: fields[8],
        prev_hash: hash32(fields[9], "prev_hash", position)?,
        hash: hash32(fields[10], "hash", position)?,
    };
    Ok(Parsed::Row { row, len: at })
}

fn hash32<'a>(b: &'a [u8], name: &str, position: u64) -> Result<&'a [u8; 32], AuditError> {
    b.try_into()
        .map_err(|_| corrupt(position, &format!("column {name} is not 32 bytes")))
}

/// [`Verifier::check`] on a borrowed row.
fn check(v: &mut Verifier, r: &Row<'_>) -> Result<(), ChainBreak> {
    let expected = v.last_position + 1;
    if r.position != expected {
        let kind = if r.position > expected {
            ChainBreakKind::RecordMissing
        } else {
            ChainBreakKind::OrderChanged
        };
        return Err(broken(expected, kind));
    }
    if *r.prev_hash != v.last_hash {
        return Err(broken(r.position, ChainBreakKind::OrderChanged));
    }
    let canonical = Canonical {
        position: r.position,
        stream_id: r.stream_id,
        stream_version: r.stream_version,
        event_id: &r.event_id,
        event_type: r.event_type,
        schema_version: r.schema_version,
        recorded_at_micros: r.recorded_at_micros,
        metadata: r.metadata,
        payload: r.payload,
    };
    if canonical.hash(r.prev_hash) != *r.hash {
        return Err(broken(r.position, ChainBreakKind::ContentChanged));
    }
    v.last_position = r.position;
    v.last_hash = *r.hash;
    v.checked += 1;
    Ok(())
}

/// A one-line description of a finding, for reports: the position and what
/// is wrong there.
pub fn describe(b: &ChainBreak) -> String {
    let what = match b.kind {
        ChainBreakKind::ContentChanged => {
            "payload, metadata or a stored column changed (the record no longer hashes to its stored hash)"
        }
        ChainBreakKind::RecordMissing => "record missing (a position is absent)",
        ChainBreakKind::OrderChanged => {
            "order changed (the record does not link to the hash of the record before it)"
        }
    };
    format!("position {}: {what}", b.position)
}

/// A log whose chain can be verified: the store API for the embedded store,
/// one binary `COPY` for PostgreSQL.
pub trait ChainSource: EventStore + Clone {
    /// Verifies `from..=to` (`to` = head when `None`), calling `observe` with
    /// every record that verified.
    fn verify_chain<'a>(
        &'a self,
        from: u64,
        to: Option<u64>,
        observe: &'a mut dyn FnMut(&Seen<'_>),
    ) -> impl std::future::Future<Output = Result<VerifyReport, AuditError>> + 'a;
}

impl ChainSource for pathway_store::embedded::EmbeddedStore {
    fn verify_chain<'a>(
        &'a self,
        from: u64,
        to: Option<u64>,
        observe: &'a mut dyn FnMut(&Seen<'_>),
    ) -> impl std::future::Future<Output = Result<VerifyReport, AuditError>> + 'a {
        verify_store(self, from, to, observe)
    }
}

impl ChainSource for PostgresStore {
    fn verify_chain<'a>(
        &'a self,
        from: u64,
        to: Option<u64>,
        observe: &'a mut dyn FnMut(&Seen<'_>),
    ) -> impl std::future::Future<Output = Result<VerifyReport, AuditError>> + 'a {
        verify_postgres(self, from, to, observe)
    }
}

/// What `pathway audit verify` found.
#[derive(Debug, Clone)]
pub struct AuditReport {
    /// The chain over the range asked for.
    pub chain: VerifyReport,
    /// The auditor's checkpoint file, if one was given, and what it found.
    pub checkpoint: Option<(Checkpoint, CheckpointFinding)>,
    /// Checkpoints recorded in the verified range of the log, judged against
    /// the trusted key (only when one was given).
    pub in_log: Vec<(Checkpoint, CheckpointFinding)>,
    /// Time spent verifying.
    pub elapsed: std::time::Duration,
}

impl AuditReport {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.chain.first_break.is_none()
            && self
                .checkpoint
                .iter()
                .chain(&self.in_log)
                .all(|(_, f)| *f == CheckpointFinding::Extended)
    }
}

/// Verifies the chain over `from..=to` and, with a trusted key, the
/// auditor's checkpoint (which needs `from` = 1 and a range reaching its
/// position) and every checkpoint recorded in the range.
pub async fn audit<S: ChainSource>(
    store: &S,
    from: u64,
    to: Option<u64>,
    checkpoint: Option<&Checkpoint>,
    trusted: Option<&ed25519_dalek::VerifyingKey>,
) -> Result<AuditReport, AuditError> {
    if let Some(cp) = checkpoint {
        if trusted.is_none() {
            return Err(AuditError::Invalid(
                "a checkpoint is checked against a trusted public key: give --public-key".into(),
            ));
        }
        if from > 1 {
            return Err(AuditError::Invalid(format!(
                "a checkpoint is proven from position 1; drop --from {from}"
            )));
        }
        if to.is_some_and(|to| to < cp.position) {
            return Err(AuditError::Invalid(format!(
                "the checkpoint is at position {}, beyond --to",
                cp.position
            )));
        }
    }
    let wanted = checkpoint.map(|cp| cp.position);
    let mut hash_at_wanted = None;
    let mut recorded: Vec<Result<Checkpoint, AuditError>> = Vec::new();
    let collect = trusted.is_some();
    let started = std::time::Instant::now();
    let chain = {
        let mut observe = |s: &Seen<'_>| {
            if Some(s.position) == wanted {
                hash_at_wanted = Some(*s.hash);
            }
            if collect && s.event_type == "LogCheckpointSigned" {
                recorded.push(decode_checkpoint(s));
            }
        };
        store.verify_chain(from, to, &mut observe).await?
    };
    let elapsed = started.elapsed();
    let checkpoint = match (checkpoint, trusted) {
        (Some(cp), Some(key)) => Some((cp.clone(), judge(cp, key, &chain, hash_at_wanted))),
        _ => None,
    };
    let mut in_log = Vec::new();
    if let Some(key) = trusted {
        for cp in recorded {
            let cp = cp?;
            let hash = if cp.position >= from && cp.position <= chain.head.position {
                store
                    .read_all(cp.position, 1, &ReadFilter::all())
                    .await?
                    .first()
                    .filter(|r| r.position == cp.position)
                    .map(|r| r.hash)
            } else {
                None
            };
            let finding = judge(&cp, key, &chain, hash);
            in_log.push((cp, finding));
        }
    }
    Ok(AuditReport {
        chain,
        checkpoint,
        in_log,
        elapsed,
    })
}

fn decode_checkpoint(s: &Seen<'_>) -> Result<Checkpoint, AuditError> {
    use pathway_proto::Message as _;
    let err = |detail: String| AuditError::Decode {
        position: s.position,
        detail,
    };
    let event = pathway_domain::pb::Event::decode(s.payload).map_err(|e| err(e.to_string()))?;
    match event.kind {
        Some(pathway_domain::pb::event::Kind::LogCheckpointSigned(e)) => {
            Checkpoint::from_event(&e, s.position).map_err(|d| err(d.to_owned()))
        }
        _ => Err(err("payload is not a LogCheckpointSigned".into())),
    }
}

//! The hash chain: `hash = SHA-256(prev_hash ‖ canonical bytes of the record)`.
//!
//! The canonical bytes are length-prefixed fields in a fixed order, covering
//! the position, stream, version, event id and type, schema version, commit
//! time, metadata and payload exactly as stored, so changing, removing or
//! reordering anything breaks the chain. Encrypted fields are hashed as
//! ciphertext: destroying a key later does not break it.

use sha2::{Digest, Sha256};

use crate::{ChainBreak, ChainBreakKind, RecordedEvent};

/// The previous-hash of position 1.
pub const GENESIS: [u8; 32] = [0; 32];

/// The stream category: the part of a stream id before the first `-`.
pub fn category(stream_id: &str) -> &str {
    stream_id.split_once('-').map_or(stream_id, |(c, _)| c)
}

/// The fields that are hashed, borrowed from a record being written or read.
#[derive(Debug, Clone, Copy)]
pub struct Canonical<'a> {
    pub position: u64,
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub event_id: &'a uuid::Uuid,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub recorded_at_micros: i64,
    pub metadata: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Canonical<'a> {
    /// The canonical view of a stored record.
    pub fn of(r: &'a RecordedEvent) -> Self {
        Canonical {
            position: r.position,
            stream_id: &r.stream_id,
            stream_version: r.stream_version,
            event_id: &r.event_id,
            event_type: &r.event_type,
            schema_version: r.schema_version,
            recorded_at_micros: r.recorded_at.timestamp_micros(),
            metadata: &r.metadata,
            payload: &r.payload,
        }
    }

    /// `SHA-256(prev ‖ canonical bytes)`.
    pub fn hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"pathway.chain.v1");
        h.update(prev);
        h.update(self.position.to_be_bytes());
        put(&mut h, self.stream_id.as_bytes());
        h.update(self.stream_version.to_be_bytes());
        h.update(self.event_id.as_bytes());
        put(&mut h, self.event_type.as_bytes());
        h.update(self.schema_version.to_be_bytes());
        h.update(self.recorded_at_micros.to_be_bytes());
        put(&mut h, self.metadata);
        put(&mut h, self.payload);
        h.finalize().into()
    }
}

fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// Checks records in position order, continuing from a known previous record.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Position of the last record accepted (0 before the first).
    pub last_position: u64,
    /// Stored hash of the last record accepted.
    pub last_hash: [u8; 32],
    /// Records checked so far.
    pub checked: u64,
}

impl Verifier {
    /// A verifier that expects the record after `position`, whose hash is `hash`.
    pub fn after(position: u64, hash: [u8; 32]) -> Self {
        Verifier {
            last_position: position,
            last_hash: hash,
            checked: 0,
        }
    }

    /// Checks the next record; the first break found is returned.
    pub fn check(&mut self, r: &RecordedEvent) -> Result<(), ChainBreak> {
        let expected_position = self.last_position + 1;
        if r.position != expected_position {
            return Err(ChainBreak {
                position: expected_position,
                kind: if r.position > expected_position {
                    ChainBreakKind::RecordMissing
                } else {
                    ChainBreakKind::OrderChanged
                },
            });
        }
        // Linkage first: a record moved to another position still links to
        // its old predecessor, which names the fault better than its hash.
        if r.prev_hash != self.last_hash {
            return Err(ChainBreak {
                position: r.position,
                kind: ChainBreakKind::OrderChanged,
            });
        }
        if Canonical::of(r).hash(&r.prev_hash) != r.hash {
            return Err(ChainBreak {
                position: r.position,
                kind: ChainBreakKind::ContentChanged,
            });
        }
        self.last_position = r.position;
        self.last_hash = r.hash;
        self.checked += 1;
        Ok(())
    }
}

/// Verifies positions `from..=to` (both ≥ 1 after clamping), reading records
/// with `read_range(first, last, max)` — a backend's raw positional read that
/// returns what is stored, holes included. Seeded by the record before the
/// range (or the range's end when the range is empty), whose stored hash is
/// taken as given. Shared by both backends.
pub async fn verify_range<F, Fut>(
    from: u64,
    to: u64,
    mut read_range: F,
) -> Result<crate::VerifyReport, crate::StoreError>
where
    F: FnMut(u64, u64, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<RecordedEvent>, crate::StoreError>>,
{
    use crate::{Head, VerifyReport, limits::VERIFY_BATCH_EVENTS};
    let from = from.max(1);
    let seed_position = (from - 1).min(to);
    let mut verifier = if seed_position == 0 {
        Verifier::after(0, GENESIS)
    } else {
        match read_range(seed_position, seed_position, 1).await?.pop() {
            Some(seed) => Verifier::after(seed.position, seed.hash),
            None => {
                return Ok(VerifyReport {
                    checked: 0,
                    head: Head {
                        position: 0,
                        hash: GENESIS,
                    },
                    first_break: Some(ChainBreak {
                        position: seed_position,
                        kind: ChainBreakKind::RecordMissing,
                    }),
                });
            }
        }
    };
    let mut first_break = None;
    'batches: while verifier.last_position < to {
        let batch = read_range(verifier.last_position + 1, to, VERIFY_BATCH_EVENTS).await?;
        if batch.is_empty() {
            // Below the head (or the `to` asked for) no position may be
            // absent: positions are dense in commit order.
            first_break = Some(ChainBreak {
                position: verifier.last_position + 1,
                kind: ChainBreakKind::RecordMissing,
            });
            break;
        }
        for record in &batch {
            if let Err(chain_break) = verifier.check(record) {
                first_break = Some(chain_break);
                break 'batches;
            }
        }
    }
    if let Some(b) = &first_break {
        tracing::warn!(position = b.position, kind = %b.kind, "hash chain broken");
    }
    Ok(VerifyReport {
        checked: verifier.checked,
        head: Head {
            position: verifier.last_position,
            hash: verifier.last_hash,
        },
        first_break,
    })
}

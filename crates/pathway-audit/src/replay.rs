//! A read model as it stood at a moment, rebuilt from the log into scratch
//! storage.
//!
//! # Which clock
//!
//! An event belongs to the replay when its **business time** — the
//! envelope's `occurred_at`, the time the command was decided at — is at or
//! before the moment asked for ([`Clock::Business`], the default). That is
//! the clock of the plan: a placement dated 2023-12-20 counts toward 2023
//! whether it was keyed in that day or imported from a city's ledger in
//! January, and year-end figures (the cities' reports, the 33,000 target)
//! are defined on it. [`Clock::Recorded`] instead selects by the store's
//! commit time (`recorded_at`), answering "what did Pathway hold at that
//! moment", for reconciling with a report exported then.
//!
//! # How
//!
//! [`AsOf`] is a read-only [`EventStore`] over the selected events in log
//! order, renumbered 1, 2, 3 … so the projector runtime — the same code that
//! builds the live models — reads it as a dense log. [`replay`] runs that
//! runtime into a fresh SQLite directory of the caller's (a temporary one by
//! default), so no live model is read or written.

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pathway_domain::pb;
use pathway_projections::{
    Table, Value, models,
    runtime::{self, ReadStore},
};
use pathway_proto::Message as _;
use pathway_store::{
    AppendResult, EventStore, ExpectedVersion, Head, NewEvent, ReadFilter, RecordedEvent,
    StoreError, VerifyReport, chain::GENESIS,
};
use tokio::sync::watch;

use crate::{AuditError, SCAN_BATCH_EVENTS};

/// Which time selects the events of a replay (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The envelope's `occurred_at`: when the command was decided.
    #[default]
    Business,
    /// The store's `recorded_at`: when the event was committed.
    Recorded,
}

/// The events of a log selected by time, as a dense read-only log.
#[derive(Clone)]
pub struct AsOf<S> {
    inner: S,
    /// Original positions of the selected events, ascending.
    positions: Arc<Vec<u64>>,
    head: Head,
    changes: Arc<watch::Sender<u64>>,
}

impl<S: EventStore + Clone> AsOf<S> {
    /// Selects the events of `inner` (up to its head now) whose `clock` time
    /// is at or before `as_of`.
    pub async fn new(inner: S, as_of: DateTime<Utc>, clock: Clock) -> Result<Self, AuditError> {
        let end = inner.head().await?.position;
        let mut positions = Vec::new();
        let mut head = Head {
            position: 0,
            hash: GENESIS,
        };
        let mut next = 1;
        while next <= end {
            let max = SCAN_BATCH_EVENTS.min((end - next + 1) as usize);
            let batch = inner.read_all(next, max, &ReadFilter::all()).await?;
            let Some(last) = batch.last() else {
                return Err(StoreError::Corrupted {
                    location: format!("position {next}"),
                    detail: "the log ends before its head".into(),
                }
                .into());
            };
            next = last.position + 1;
            for r in &batch {
                if time_of(r, clock)? <= as_of {
                    positions.push(r.position);
                    head = Head {
                        position: positions.len() as u64,
                        hash: r.hash,
                    };
                }
            }
        }
        Ok(AsOf {
            inner,
            positions: Arc::new(positions),
            head,
            changes: Arc::new(watch::Sender::new(head.position)),
        })
    }

    /// The original position of the last selected event (0 when none).
    pub fn last_original_position(&self) -> u64 {
        self.positions.last().copied().unwrap_or(0)
    }
}

/// The time of `r` on `clock`.
pub fn time_of(r: &RecordedEvent, clock: Clock) -> Result<DateTime<Utc>, AuditError> {
    match clock {
        Clock::Recorded => Ok(r.recorded_at),
        Clock::Business => {
            let env =
                pb::EventEnvelope::decode(r.metadata.as_ref()).map_err(|e| AuditError::Decode {
                    position: r.position,
                    detail: format!("envelope: {e}"),
                })?;
            env.occurred_at
                .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
                .ok_or_else(|| AuditError::Decode {
                    position: r.position,
                    detail: "envelope: occurred_at is missing or out of range".into(),
                })
        }
    }
}

fn read_only() -> StoreError {
    StoreError::InvalidInput("a replay is read-only".into())
}

#[async_trait]
impl<S: EventStore + Clone> EventStore for AsOf<S> {
    async fn append(
        &self,
        _stream: &str,
        _expected: ExpectedVersion,
        _events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        Err(read_only())
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Stream versions are kept; only the global positions are renumbered.
        let mut out = Vec::new();
        let mut version = from_version;
        loop {
            let batch = self
                .inner
                .read_stream(stream, version, SCAN_BATCH_EVENTS)
                .await?;
            let n = batch.len();
            for mut r in batch {
                version = r.stream_version + 1;
                if let Ok(i) = self.positions.binary_search(&r.position) {
                    r.position = i as u64 + 1;
                    out.push(r);
                    if out.len() == max {
                        return Ok(out);
                    }
                }
            }
            if n < SCAN_BATCH_EVENTS {
                return Ok(out);
            }
        }
    }

    async fn read_all(
        &self,
        from_position: u64,
        max: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let start = from_position.max(1) as usize - 1;
        let Some(wanted) = self.positions.get(start..) else {
            return Ok(Vec::new());
        };
        let wanted = &wanted[..wanted.len().min(max)];
        let mut out = Vec::with_capacity(wanted.len());
        let mut i = 0;
        while i < wanted.len() {
            let span = (wanted[wanted.len() - 1] - wanted[i] + 1) as usize;
            let batch = self
                .inner
                .read_all(wanted[i], span.min(SCAN_BATCH_EVENTS), &ReadFilter::all())
                .await?;
            if batch.is_empty() {
                return Err(StoreError::Corrupted {
                    location: format!("position {}", wanted[i]),
                    detail: "a selected event is no longer in the log".into(),
                });
            }
            for mut r in batch {
                if i < wanted.len() && r.position == wanted[i] {
                    r.position = (start + i) as u64 + 1;
                    i += 1;
                    if filter.admits(&r.stream_id, &r.event_type) {
                        out.push(r);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn head(&self) -> Result<Head, StoreError> {
        Ok(self.head)
    }

    async fn verify(&self, _from: u64, _to: Option<u64>) -> Result<VerifyReport, StoreError> {
        Err(StoreError::InvalidInput(
            "a replay is a selection of the log: verify the log itself".into(),
        ))
    }

    fn head_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// A read model as it stood at a moment.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub model: &'static str,
    pub as_of: DateTime<Utc>,
    pub clock: Clock,
    /// Events selected (every department's; the model sees only its own).
    pub events: u64,
    /// Original position of the last selected event (0 when none).
    pub last_position: u64,
    /// Every table except the `lookup_` working tables, with its rows (key
    /// first, ordered by key).
    pub tables: Vec<(Table, Vec<Vec<Value>>)>,
}

/// Rebuilds read model `model` from the events of `store` at or before
/// `as_of` on `clock`, into the SQLite directory `scratch` (which must hold
/// no model of that name), and reads it back.
pub async fn replay<S: EventStore + Clone>(
    store: &S,
    model: &str,
    as_of: DateTime<Utc>,
    clock: Clock,
    scratch: &Path,
) -> Result<Replayed, AuditError> {
    replay_with_keys(store, model, as_of, clock, scratch, None).await
}

/// [`replay`], with personal fields opened by `keyring` as the live models
/// open them (fields of persons erased since read as erased).
pub async fn replay_with_keys<S: EventStore + Clone>(
    store: &S,
    model: &str,
    as_of: DateTime<Utc>,
    clock: Clock,
    scratch: &Path,
    keyring: Option<&pathway_engine::Keyring>,
) -> Result<Replayed, AuditError> {
    let projection = models::by_name(model)
        .ok_or_else(|| pathway_projections::ProjectionError::UnknownModel(model.to_owned()))?;
    let selected = AsOf::new(store.clone(), as_of, clock).await?;
    let target = ReadStore::Sqlite {
        dir: scratch.to_path_buf(),
    };
    let options = runtime::ProjectorOptions {
        keyring: keyring.cloned(),
        ..runtime::ProjectorOptions::default()
    };
    runtime::catch_up_with(&selected, &target, projection.clone(), &options).await?;
    let tables = read_tables(&target, projection.name(), projection.tables()).await?;
    Ok(Replayed {
        model: projection.name(),
        as_of,
        clock,
        events: selected.head.position,
        last_position: selected.last_original_position(),
        tables,
    })
}

/// Every non-lookup table of `model` in `target`, rows ordered by key.
pub async fn read_tables(
    target: &ReadStore,
    model: &'static str,
    tables: &'static [Table],
) -> Result<Vec<(Table, Vec<Vec<Value>>)>, AuditError> {
    let target = target.clone();
    tokio::task::spawn_blocking(move || {
        tables
            .iter()
            .filter(|t| !t.name.starts_with("lookup_"))
            .map(|t| Ok((*t, runtime::query(&target, model, t, &[])?)))
            .collect::<Result<Vec<_>, AuditError>>()
    })
    .await
    .map_err(|e| AuditError::Invalid(format!("reading the replayed model: {e}")))?
}

pub use pathway_projections::{Value as CellValue, models::suppressed_columns};

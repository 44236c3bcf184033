//! The event log: Pathway's system of record.
//!
//! One append-only log of events, each in a stream (`person-<uuid>`, …) with a
//! dense 1-based stream version and a dense 1-based global position that
//! follows commit order, so a follower reading "after position N" can never
//! miss an event. Every record carries the previous record's hash and its own
//! SHA-256 (see [`chain`]), so any change, removal or reordering is detected by
//! [`EventStore::verify`].
//!
//! Two backends implement [`EventStore`]: [`embedded::EmbeddedStore`] (SQLite
//! under a data directory, the default, no server needed) and
//! [`postgres::PostgresStore`] (production). Both batch concurrent appends into
//! one durable commit (group commit) while checking each caller's expected
//! version on its own. The store knows nothing of the domain: payloads and
//! metadata are opaque bytes (encoded `pathway.events.v1` messages).

pub mod bench;
pub mod chain;
pub mod embedded;
mod error;
pub mod limits;
pub mod postgres;
mod subscription;
mod types;
mod validate;

pub use error::StoreError;
pub use subscription::Subscription;
pub use types::{
    AppendResult, ChainBreak, ChainBreakKind, ExpectedVersion, Head, NewEvent, ReadFilter,
    RecordParts, RecordRef, RecordedEvent, VerifyReport,
};

use async_trait::async_trait;

/// The log. Implementations are cheap to clone handles (`Arc` inside).
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` atomically (all or none) if the stream's
    /// version matches `expected`. Appending the same event ids again with the
    /// same content is idempotent and returns the original result.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// Events of one stream with version ≥ `from_version` (1-based), at most `max`.
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Events of the whole log with position ≥ `from_position` (1-based), at
    /// most `max`, optionally filtered. Only committed events are returned and
    /// never with a hole below the last one returned.
    async fn read_all(
        &self,
        from_position: u64,
        max: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The whole log from `from_position` (1-based), at most `max` records,
    /// each handed to `map` as it is read: the same records, dense and
    /// committed, as an unfiltered [`EventStore::read_all`], for readers that
    /// turn every record into something else (the projectors decode them).
    /// A backend that reads records in place (the embedded store) maps them
    /// there, without copying each one into a [`RecordedEvent`] first.
    /// With [`RecordParts::WithoutMetadata`] every record's metadata is
    /// empty, and a backend that can skips reading it.
    async fn read_all_mapped<T, F>(
        &self,
        from_position: u64,
        max: usize,
        parts: RecordParts,
        map: F,
    ) -> Result<Vec<T>, StoreError>
    where
        T: Send + 'static,
        F: Fn(RecordRef<'_>) -> T + Send + Sync + 'static,
    {
        let records = self
            .read_all(from_position, max, &ReadFilter::all())
            .await?;
        // Mapping a read (decoding thousands of records) is CPU work: off
        // the async workers, which also serve requests.
        tokio::task::spawn_blocking(move || {
            records
                .iter()
                .map(|r| {
                    let mut record = r.as_record_ref();
                    if parts == RecordParts::WithoutMetadata {
                        record.metadata = &[];
                    }
                    map(record)
                })
                .collect()
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))
    }

    /// The last position and its hash (position 0 and the genesis hash when empty).
    async fn head(&self) -> Result<Head, StoreError>;

    /// Recomputes the hash chain over positions `from..=to` (`to` = head when
    /// `None`) and reports the first bad position, if any.
    async fn verify(&self, from: u64, to: Option<u64>) -> Result<VerifyReport, StoreError>;

    /// A receiver that changes whenever new events are committed (its value
    /// is a recent head position). Used by subscriptions to wait without polling.
    fn head_changes(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// Catch-up then live subscription to the whole log from `from_position`
/// (1-based, inclusive): every event exactly once, in order, no gaps. Pulls a
/// bounded batch at a time, so a slow consumer applies backpressure.
pub fn subscribe_all<S: EventStore + Clone>(store: &S, from_position: u64) -> Subscription<S> {
    Subscription::new(store.clone(), from_position)
}

//! Catch-up then live subscription to the whole log.
//!
//! A subscription reads [`SUBSCRIPTION_BATCH_EVENTS`] events at a time with
//! `read_all` into a small buffer and hands them out one by one, so a slow
//! consumer simply reads less often (backpressure without an unbounded queue).
//! When it has caught up it waits on the store's head watch, re-checking at
//! least every [`SUBSCRIPTION_POLL_INTERVAL_MS`] in case a wake-up is missed
//! (e.g. a commit from another process).
//!
//! Positions are dense, so the subscription asserts that every event it is
//! given has exactly the next position: a gap is reported as
//! [`StoreError::Corrupted`], never skipped.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;

use crate::limits::{SUBSCRIPTION_BATCH_EVENTS, SUBSCRIPTION_POLL_INTERVAL_MS};
use crate::{EventStore, ReadFilter, RecordedEvent, StoreError};

/// A follower of the whole log; see [`crate::subscribe_all`].
pub struct Subscription<S> {
    store: S,
    /// The position of the next event to hand out.
    next_position: u64,
    /// Read but not yet handed out; at most one batch.
    buffer: VecDeque<RecordedEvent>,
    head: watch::Receiver<u64>,
    filter: ReadFilter,
}

impl<S> std::fmt::Debug for Subscription<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("next_position", &self.next_position)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl<S: EventStore> Subscription<S> {
    /// A subscription delivering positions `from_position..` (1-based; 0 is
    /// read as 1).
    pub(crate) fn new(store: S, from_position: u64) -> Self {
        let head = store.head_changes();
        Subscription {
            store,
            next_position: from_position.max(1),
            buffer: VecDeque::with_capacity(SUBSCRIPTION_BATCH_EVENTS),
            head,
            filter: ReadFilter::all(),
        }
    }

    /// The position of the next event [`Subscription::next`] will return.
    pub fn position(&self) -> u64 {
        self.next_position
    }

    /// The next event of the log, waiting for it to be committed if needed.
    ///
    /// Cancel-safe: dropping the future loses nothing, the next call returns
    /// the same event.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        let poll_interval = Duration::from_millis(SUBSCRIPTION_POLL_INTERVAL_MS);
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.next_position = event.position + 1;
                return Ok(event);
            }
            // Mark the current head as seen before reading: a commit after
            // the read changes the watch again, so the wait below cannot
            // sleep through it.
            self.head.borrow_and_update();
            let batch = self
                .store
                .read_all(self.next_position, SUBSCRIPTION_BATCH_EVENTS, &self.filter)
                .await?;
            if !batch.is_empty() {
                check_dense(self.next_position, &batch)?;
                self.buffer.extend(batch);
                continue;
            }
            match tokio::time::timeout(poll_interval, self.head.changed()).await {
                // New commits, or the poll interval passed: read again.
                Ok(Ok(())) | Err(_) => {}
                // The store's committer has stopped; commits by others can
                // still appear, so keep polling at the fallback interval.
                Ok(Err(_)) => tokio::time::sleep(poll_interval).await,
            }
        }
    }
}

/// Every event of `batch` must have the next position in turn, starting at
/// `expected`.
fn check_dense(expected: u64, batch: &[RecordedEvent]) -> Result<(), StoreError> {
    for (offset, event) in (0u64..).zip(batch) {
        let want = expected + offset;
        if event.position != want {
            return Err(StoreError::Corrupted {
                location: format!("position {want}"),
                detail: format!(
                    "subscription read position {} where {want} was next: a gap in the log",
                    event.position
                ),
            });
        }
    }
    Ok(())
}

//! The group committer: one task per store that turns queued appends into
//! one transaction each group (see the parent module for the protocol).
//!
//! The committer owns a dedicated connection (not a pooled one: a failed
//! pipeline can leave a connection mid-transaction, and such a connection is
//! simply dropped and reopened for the next group). Deciding what a group
//! writes — [`plan`] — is a pure function of the group and what the database
//! held under the lock, so it is tested without a server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Statement};
use tracing::Instrument;
use uuid::Uuid;

use super::{APPEND_LOCK_KEY, NOTIFY_CHANNEL, corrupted, decode_head, pg_error, to_i64, to_u64};
use crate::chain::{Canonical, GENESIS};
use crate::{AppendResult, ExpectedVersion, Head, NewEvent, StoreError, limits};

/// Most payload + metadata bytes one group writes, so one statement stays far
/// below PostgreSQL's 1 GiB message limit whatever the events' sizes.
const GROUP_COMMIT_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Longest a group may take from `BEGIN` to `COMMIT` before its connection is
/// dropped (which rolls back anything not yet committed).
const GROUP_COMMIT_TIMEOUT_MS: u64 = 30_000;
/// Times a group is retried after a unique violation: the retry re-reads the
/// state under the lock, so the offending request then fails its checks alone.
const UNIQUE_VIOLATION_RETRIES_MAX: u32 = 1;

/// One caller's append waiting for the committer.
pub(super) struct AppendRequest {
    pub(super) stream: String,
    pub(super) expected: ExpectedVersion,
    pub(super) events: Vec<NewEvent>,
    pub(super) reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

impl AppendRequest {
    fn bytes(&self) -> usize {
        self.events
            .iter()
            .map(|e| e.payload.len() + e.metadata.len())
            .sum()
    }
}

/// Starts the committer; it stops when every sender of `queue` is dropped.
pub(super) fn spawn(
    config: Config,
    queue: mpsc::Receiver<AppendRequest>,
    head_tx: Arc<watch::Sender<u64>>,
) {
    let committer = Committer {
        config,
        connection: None,
        head_tx,
    };
    tokio::spawn(
        committer
            .run(queue)
            .instrument(tracing::info_span!("pg_group_committer")),
    );
}

struct Committer {
    config: Config,
    connection: Option<Connection>,
    head_tx: Arc<watch::Sender<u64>>,
}

/// The committer's connection and its prepared statements.
struct Connection {
    client: Client,
    lock: Statement,
    head: Statement,
    versions: Statement,
    existing: Statement,
    insert: Statement,
    notify: Statement,
}

impl Connection {
    async fn open(config: &Config) -> Result<Self, StoreError> {
        // A process frozen mid-group (not dead: its socket stays open) must not
        // hold the append lock of every process forever: the server ends the
        // session once the transaction idles this long.
        let mut config = config.clone();
        let guard = format!("-c idle_in_transaction_session_timeout={GROUP_COMMIT_TIMEOUT_MS}");
        let options = match config.get_options() {
            Some(given) => format!("{given} {guard}"),
            None => guard,
        };
        config.options(options);
        let (client, connection) = config.connect(NoTls).await.map_err(pg_error)?;
        tokio::spawn(
            async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "committer connection ended");
                }
            }
            .instrument(tracing::info_span!("pg_committer_connection")),
        );
        let (lock, head, versions, existing, insert, notify) = tokio::try_join!(
            client.prepare("SELECT pg_advisory_xact_lock($1)"),
            client.prepare("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"),
            // One index probe per stream for its last version.
            client.prepare(
                "SELECT s.id, (SELECT e.stream_version FROM events e WHERE e.stream_id = s.id \
                 ORDER BY e.stream_version DESC LIMIT 1) \
                 FROM unnest($1::text[]) AS s(id)"
            ),
            client.prepare(
                "SELECT event_id, stream_id, stream_version, position, event_type, schema_version, \
                 metadata, payload FROM events WHERE event_id = ANY($1::uuid[])"
            ),
            client.prepare(
                "INSERT INTO events (position, stream_id, stream_version, event_id, event_type, \
                 schema_version, recorded_at, metadata, payload, prev_hash, hash) \
                 SELECT p, s, v, i, t, sv, $7::timestamptz, m, pl, ph, h FROM unnest(\
                 $1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::int[], \
                 $8::bytea[], $9::bytea[], $10::bytea[], $11::bytea[]) AS r(p, s, v, i, t, sv, m, pl, ph, h)"
            ),
            client.prepare("SELECT pg_notify($1, $2)"),
        )
        .map_err(pg_error)?;
        Ok(Connection {
            client,
            lock,
            head,
            versions,
            existing,
            insert,
            notify,
        })
    }
}

impl Committer {
    async fn run(mut self, mut queue: mpsc::Receiver<AppendRequest>) {
        let mut carried: Option<AppendRequest> = None;
        loop {
            let first = match carried.take() {
                Some(request) => request,
                None => match queue.recv().await {
                    Some(request) => request,
                    None => break,
                },
            };
            // Let callers just answered by the previous group queue their next
            // append first, so they join this group rather than the one after.
            tokio::task::yield_now().await;
            let mut events = first.events.len();
            let mut bytes = first.bytes();
            let mut group = vec![first];
            while let Ok(next) = queue.try_recv() {
                if events + next.events.len() > limits::GROUP_COMMIT_EVENTS_MAX
                    || bytes + next.bytes() > GROUP_COMMIT_BYTES_MAX
                {
                    carried = Some(next);
                    break;
                }
                events += next.events.len();
                bytes += next.bytes();
                group.push(next);
            }
            self.commit_group(group).await;
        }
        tracing::debug!("append queue closed, committer stopping");
    }

    #[tracing::instrument(skip_all, fields(requests = group.len(), head))]
    async fn commit_group(&mut self, group: Vec<AppendRequest>) {
        let mut attempt = 0;
        let outcome = loop {
            let timeout = Duration::from_millis(GROUP_COMMIT_TIMEOUT_MS);
            let result = match tokio::time::timeout(timeout, self.try_commit(&group)).await {
                Ok(result) => result,
                Err(_) => Err(GroupFailure::Other(StoreError::Timeout {
                    operation: "group commit",
                    timeout_ms: GROUP_COMMIT_TIMEOUT_MS,
                })),
            };
            match result {
                Ok(outcome) => break Ok(outcome),
                Err(failure) => {
                    // The connection may be mid-transaction or broken: start afresh.
                    self.connection = None;
                    match failure {
                        GroupFailure::Unique(db) if attempt < UNIQUE_VIOLATION_RETRIES_MAX => {
                            tracing::warn!(constraint = ?db.constraint(), "unique violation, retrying group");
                            attempt += 1;
                        }
                        failure => break Err(failure),
                    }
                }
            }
        };
        match outcome {
            Ok((head, answers)) => {
                tracing::Span::current().record("head", head);
                super::listen::advance(&self.head_tx, head);
                for (request, answer) in group.into_iter().zip(answers) {
                    // A caller that gave up waiting is no error.
                    let _ = request.reply.send(answer);
                }
            }
            Err(failure) => {
                tracing::warn!(error = %failure, "group commit failed");
                for request in group {
                    let answer = match &failure {
                        GroupFailure::Unique(db) => unique_violation(db, &request),
                        GroupFailure::Other(e) => copy_error(e),
                    };
                    let _ = request.reply.send(Err(answer));
                }
            }
        }
    }

    /// One attempt: the whole group in one transaction. On success returns the
    /// new head and each request's answer, in order.
    async fn try_commit(
        &mut self,
        group: &[AppendRequest],
    ) -> Result<(u64, Vec<Result<AppendResult, StoreError>>), GroupFailure> {
        let conn = match self.connection.take() {
            Some(conn) => conn,
            None => Connection::open(&self.config).await?,
        };
        let conn = &*self.connection.insert(conn);
        let client = &conn.client;

        let mut streams: Vec<&str> = group.iter().map(|r| r.stream.as_str()).collect();
        streams.sort_unstable();
        streams.dedup();
        let ids: Vec<Uuid> = group
            .iter()
            .flat_map(|r| r.events.iter().map(|e| e.event_id))
            .collect();

        // Round trip 1: lock, then read the state the checks need.
        let lock_args: [&(dyn ToSql + Sync); 1] = [&APPEND_LOCK_KEY];
        let streams_args: [&(dyn ToSql + Sync); 1] = [&streams];
        let ids_args: [&(dyn ToSql + Sync); 1] = [&ids];
        let (begin, lock, head, versions, existing) = tokio::join!(
            client.batch_execute("BEGIN"),
            client.execute(&conn.lock, &lock_args),
            client.query_opt(&conn.head, &[]),
            client.query(&conn.versions, &streams_args),
            client.query(&conn.existing, &ids_args),
        );
        begin?;
        lock?;
        let head = head?.map_or(
            Ok(Head {
                position: 0,
                hash: GENESIS,
            }),
            |row| decode_head(&row),
        )?;
        let mut current = HashMap::with_capacity(streams.len());
        for row in versions? {
            let stream: String = row.try_get(0).map_err(pg_error)?;
            let version: Option<i64> = row.try_get(1).map_err(pg_error)?;
            let version = match version {
                Some(v) => to_u64(v, "stream_version", format_args!("of stream {stream}"))?,
                None => 0,
            };
            current.insert(stream, version);
        }
        let mut stored = HashMap::new();
        for row in existing? {
            let position = to_u64(row.try_get(3).map_err(pg_error)?, "position", "of an event")?;
            let version = row.try_get(2).map_err(pg_error)?;
            let schema_version: i32 = row.try_get(5).map_err(pg_error)?;
            let record = Stored {
                event_id: row.try_get(0).map_err(pg_error)?,
                stream_id: row.try_get(1).map_err(pg_error)?,
                stream_version: to_u64(version, "stream_version", position)?,
                position,
                event_type: row.try_get(4).map_err(pg_error)?,
                schema_version: u32::try_from(schema_version)
                    .map_err(|_| corrupted(position, "schema_version", schema_version))?,
                metadata: Bytes::copy_from_slice(row.try_get(6).map_err(pg_error)?),
                payload: Bytes::copy_from_slice(row.try_get(7).map_err(pg_error)?),
            };
            stored.insert(record.event_id, record);
        }

        let recorded_at = now_micros();
        let plan = plan(group, head, current, stored, recorded_at);

        // Round trip 2: write, notify, commit.
        if plan.rows.is_empty() {
            client.batch_execute("ROLLBACK").await?;
            return Ok((head.position, plan.answers));
        }
        let rows = &plan.rows;
        let positions: Vec<i64> = rows.iter().map(|r| to_i64(r.position)).collect();
        let streams: Vec<&str> = rows.iter().map(|r| r.stream_id).collect();
        let versions: Vec<i64> = rows.iter().map(|r| to_i64(r.stream_version)).collect();
        let ids: Vec<Uuid> = rows.iter().map(|r| r.event.event_id).collect();
        let types: Vec<&str> = rows.iter().map(|r| r.event.event_type.as_str()).collect();
        let schema_versions: Vec<i32> = rows
            .iter()
            .map(|r| i32::try_from(r.event.schema_version).unwrap_or(i32::MAX))
            .collect();
        let metadata: Vec<&[u8]> = rows.iter().map(|r| &r.event.metadata[..]).collect();
        let payloads: Vec<&[u8]> = rows.iter().map(|r| &r.event.payload[..]).collect();
        let prev_hashes: Vec<&[u8]> = rows.iter().map(|r| &r.prev_hash[..]).collect();
        let hashes: Vec<&[u8]> = rows.iter().map(|r| &r.hash[..]).collect();
        let new_head = plan.head.position.to_string();
        let insert_args: [&(dyn ToSql + Sync); 11] = [
            &positions,
            &streams,
            &versions,
            &ids,
            &types,
            &schema_versions,
            &recorded_at,
            &metadata,
            &payloads,
            &prev_hashes,
            &hashes,
        ];
        let notify_args: [&(dyn ToSql + Sync); 2] = [&NOTIFY_CHANNEL, &new_head];
        let (insert, notify, commit) = tokio::join!(
            client.execute(&conn.insert, &insert_args),
            client.execute(&conn.notify, &notify_args),
            client.batch_execute("COMMIT"),
        );
        // After a failed statement PostgreSQL answers COMMIT with a rollback,
        // so the statements' results decide whether anything was written.
        let inserted = insert?;
        notify?;
        commit?;
        debug_assert_eq!(
            inserted,
            rows.len() as u64,
            "insert wrote {inserted} of {} rows",
            rows.len()
        );
        Ok((plan.head.position, plan.answers))
    }
}

/// Why an attempt at a group failed.
#[derive(Debug)]
enum GroupFailure {
    /// A unique constraint rejected the insert: a writer that skipped the lock.
    Unique(Box<tokio_postgres::error::DbError>),
    Other(StoreError),
}

impl std::fmt::Display for GroupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupFailure::Unique(db) => write!(f, "unique violation: {}", db.message()),
            GroupFailure::Other(e) => e.fmt(f),
        }
    }
}

impl From<tokio_postgres::Error> for GroupFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if db.code() == &SqlState::UNIQUE_VIOLATION => {
                GroupFailure::Unique(Box::new(db.clone()))
            }
            _ => GroupFailure::Other(pg_error(e)),
        }
    }
}

impl From<StoreError> for GroupFailure {
    fn from(e: StoreError) -> Self {
        GroupFailure::Other(e)
    }
}

/// The typed error for a caller whose group kept hitting a unique constraint.
fn unique_violation(db: &tokio_postgres::error::DbError, request: &AppendRequest) -> StoreError {
    match db.constraint() {
        Some("events_stream_version_key") => StoreError::WrongExpectedVersion {
            stream: request.stream.clone(),
            expected: request.expected,
            // The version another writer took; the caller reloads anyway.
            actual: parse_key_number(db.detail()).unwrap_or(0),
        },
        Some("events_event_id_key") => {
            // `Key (event_id)=(<uuid>) already exists.`: name the id if it is this request's.
            let taken = db
                .detail()
                .and_then(|d| d.split_once("=("))
                .and_then(|(_, rest)| {
                    rest.split(')')
                        .next()
                        .and_then(|id| id.parse::<Uuid>().ok())
                });
            match request.events.iter().find(|e| Some(e.event_id) == taken) {
                Some(event) => StoreError::EventIdReused {
                    event_id: event.event_id,
                    stream: request.stream.clone(),
                    // Stored by a writer outside the lock: its version is unknown here.
                    version: 0,
                },
                None => StoreError::Unavailable(format!(
                    "event id taken by a writer outside the append lock, retry: {}",
                    db.message()
                )),
            }
        }
        _ => StoreError::Unavailable(format!(
            "position taken by a writer outside the append lock, retry: {}",
            db.message()
        )),
    }
}

/// The last number in a key detail such as `Key (stream_id, stream_version)=(s, 3) already exists.`
fn parse_key_number(detail: Option<&str>) -> Option<u64> {
    let inside = detail?.rsplit_once("=(")?.1;
    let value = inside.split(')').next()?;
    value.rsplit(", ").next()?.trim().parse().ok()
}

/// The same failure for another caller of the group (`StoreError` is not `Clone`).
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Timeout {
            operation,
            timeout_ms,
        } => StoreError::Timeout {
            operation,
            timeout_ms: *timeout_ms,
        },
        StoreError::Closed => StoreError::Closed,
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Now, truncated to microseconds (what `TIMESTAMPTZ` keeps and the hash covers).
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// An event already in the log, as the idempotency check needs it.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) event_id: Uuid,
    pub(super) stream_id: String,
    pub(super) stream_version: u64,
    pub(super) position: u64,
    pub(super) event_type: String,
    pub(super) schema_version: u32,
    pub(super) metadata: Bytes,
    pub(super) payload: Bytes,
}

impl Stored {
    fn same_content(&self, e: &NewEvent) -> bool {
        self.event_type == e.event_type
            && self.schema_version == e.schema_version
            && self.metadata == e.metadata
            && self.payload == e.payload
    }
}

/// One row to insert.
#[derive(Debug)]
pub(super) struct Row<'a> {
    pub(super) position: u64,
    pub(super) stream_id: &'a str,
    pub(super) stream_version: u64,
    pub(super) event: &'a NewEvent,
    pub(super) prev_hash: [u8; 32],
    pub(super) hash: [u8; 32],
}

/// What a group writes and what each of its callers is told once it commits.
#[derive(Debug)]
pub(super) struct Plan<'a> {
    pub(super) rows: Vec<Row<'a>>,
    pub(super) answers: Vec<Result<AppendResult, StoreError>>,
    /// The head after the rows.
    pub(super) head: Head,
}

/// Checks each request of `group` in order against the state read under the
/// lock — the head, the current version of each stream (absent = 0) and the
/// group's event ids already stored — and assigns the survivors' positions,
/// versions and hashes. Requests earlier in the group count as stored for
/// the ones after them.
pub(super) fn plan<'a>(
    group: &'a [AppendRequest],
    head: Head,
    mut current: HashMap<String, u64>,
    mut stored: HashMap<Uuid, Stored>,
    recorded_at: DateTime<Utc>,
) -> Plan<'a> {
    let recorded_at_micros = recorded_at.timestamp_micros();
    let mut rows: Vec<Row<'a>> = Vec::new();
    let mut last = head;
    let mut answers = Vec::with_capacity(group.len());
    for request in group {
        let answer = check(request, &current, &stored).map(|()| {
            let base = current.get(&request.stream).copied().unwrap_or(0);
            let first_position = last.position + 1;
            for (i, event) in request.events.iter().enumerate() {
                let position = last.position + 1;
                let stream_version = base + 1 + i as u64;
                let canonical = Canonical {
                    position,
                    stream_id: &request.stream,
                    stream_version,
                    event_id: &event.event_id,
                    event_type: &event.event_type,
                    schema_version: event.schema_version,
                    recorded_at_micros,
                    metadata: &event.metadata,
                    payload: &event.payload,
                };
                let hash = canonical.hash(&last.hash);
                rows.push(Row {
                    position,
                    stream_id: &request.stream,
                    stream_version,
                    event,
                    prev_hash: last.hash,
                    hash,
                });
                stored.insert(
                    event.event_id,
                    Stored {
                        event_id: event.event_id,
                        stream_id: request.stream.clone(),
                        stream_version,
                        position,
                        event_type: event.event_type.clone(),
                        schema_version: event.schema_version,
                        metadata: event.metadata.clone(),
                        payload: event.payload.clone(),
                    },
                );
                last = Head { position, hash };
            }
            let stream_version = base + request.events.len() as u64;
            current.insert(request.stream.clone(), stream_version);
            AppendResult {
                first_position,
                last_position: last.position,
                stream_version,
            }
        });
        // An idempotent retry is answered from what is stored.
        let answer = match answer {
            Err(Check::AlreadyStored(result)) => Ok(result),
            Err(Check::Failed(e)) => Err(e),
            Ok(result) => Ok(result),
        };
        answers.push(answer);
    }
    Plan {
        rows,
        answers,
        head: last,
    }
}

/// Why a request is not written.
enum Check {
    /// Every event is stored already, as this request would store it.
    AlreadyStored(AppendResult),
    Failed(StoreError),
}

fn check(
    request: &AppendRequest,
    current: &HashMap<String, u64>,
    stored: &HashMap<Uuid, Stored>,
) -> Result<(), Check> {
    // Relative to the first stored id: where this request's first event
    // would be if it is a retry of one stored append.
    let mut base: Option<(u64, u64)> = None;
    // The first stored id that cannot be part of a retry of this very append.
    let mut reused: Option<StoreError> = None;
    // The first other stored id, named if some id of the request is new.
    let mut first_stored: Option<StoreError> = None;
    let mut new_count = 0usize;
    for (offset, event) in (0u64..).zip(&request.events) {
        let Some(s) = stored.get(&event.event_id) else {
            new_count += 1;
            continue;
        };
        let (base_position, base_version) = *base.get_or_insert((
            s.position.wrapping_sub(offset),
            s.stream_version.wrapping_sub(offset),
        ));
        let in_place = s.stream_id == request.stream
            && s.position == base_position.wrapping_add(offset)
            && s.stream_version == base_version.wrapping_add(offset);
        let error = StoreError::EventIdReused {
            event_id: s.event_id,
            stream: s.stream_id.clone(),
            version: s.stream_version,
        };
        if reused.is_none() && !(in_place && s.same_content(event)) {
            reused = Some(error);
        } else if first_stored.is_none() {
            first_stored = Some(error);
        }
    }
    if let Some((base_position, base_version)) = base {
        if let Some(error) = reused.or(if new_count > 0 { first_stored } else { None }) {
            return Err(Check::Failed(error));
        }
        let last_offset = request.events.len() as u64 - 1;
        return Err(Check::AlreadyStored(AppendResult {
            first_position: base_position,
            last_position: base_position + last_offset,
            stream_version: base_version + last_offset,
        }));
    }
    let actual = current.get(&request.stream).copied().unwrap_or(0);
    if !request.expected.admits(actual) {
        return Err(Check::Failed(StoreError::WrongExpectedVersion {
            stream: request.stream.clone(),
            expected: request.expected,
            actual,
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bytes::Bytes;
    use chrono::{DateTime, Utc};
    use tokio::sync::oneshot;
    use uuid::Uuid;

    use super::{AppendRequest, Stored, plan};
    use crate::chain::{GENESIS, Verifier};
    use crate::{AppendResult, ExpectedVersion, Head, NewEvent, RecordedEvent, StoreError};

    fn event(label: &str) -> NewEvent {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: "$test".to_owned(),
            schema_version: 1,
            metadata: Bytes::new(),
            payload: Bytes::copy_from_slice(label.as_bytes()),
        }
    }

    fn request(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
        AppendRequest {
            stream: stream.to_owned(),
            expected,
            events,
            reply: oneshot::channel().0,
        }
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap()
    }

    /// The answers as short strings: `ok first..last vN` or the error's kind.
    fn summary(answers: &[Result<AppendResult, StoreError>]) -> Vec<String> {
        answers
            .iter()
            .map(|a| match a {
                Ok(r) => format!(
                    "ok {}..{} v{}",
                    r.first_position, r.last_position, r.stream_version
                ),
                Err(StoreError::WrongExpectedVersion { actual, .. }) => {
                    format!("wrong version, actual {actual}")
                }
                Err(StoreError::EventIdReused { version, .. }) => {
                    format!("reused, stored at v{version}")
                }
                Err(e) => e.to_string(),
            })
            .collect()
    }

    #[test]
    fn each_request_is_checked_against_the_ones_before_it() {
        let head = Head {
            position: 10,
            hash: [7; 32],
        };
        let current = HashMap::from([("a".to_owned(), 3)]);
        let group = vec![
            request(
                "a",
                ExpectedVersion::Exact(3),
                vec![event("a4"), event("a5")],
            ),
            request("a", ExpectedVersion::Exact(3), vec![event("loser")]),
            request("b", ExpectedVersion::NoStream, vec![event("b1")]),
            request("a", ExpectedVersion::Exact(5), vec![event("a6")]),
            request("b", ExpectedVersion::StreamExists, vec![event("b2")]),
            request("c", ExpectedVersion::StreamExists, vec![event("c?")]),
        ];
        let plan = plan(&group, head, current, HashMap::new(), at());
        assert_eq!(
            summary(&plan.answers),
            [
                "ok 11..12 v5",
                "wrong version, actual 5",
                "ok 13..13 v1",
                "ok 14..14 v6",
                "ok 15..15 v2",
                "wrong version, actual 0",
            ]
        );
        let rows: Vec<(u64, &str, u64)> = plan
            .rows
            .iter()
            .map(|r| (r.position, r.stream_id, r.stream_version))
            .collect();
        assert_eq!(
            rows,
            [
                (11, "a", 4),
                (12, "a", 5),
                (13, "b", 1),
                (14, "a", 6),
                (15, "b", 2)
            ]
        );
        assert_eq!(plan.head.position, 15);

        // The rows chain from the head read under the lock.
        let mut verifier = Verifier::after(head.position, head.hash);
        for r in &plan.rows {
            let record = RecordedEvent {
                position: r.position,
                stream_id: r.stream_id.to_owned(),
                stream_version: r.stream_version,
                event_id: r.event.event_id,
                event_type: r.event.event_type.clone(),
                schema_version: r.event.schema_version,
                recorded_at: at(),
                metadata: r.event.metadata.clone(),
                payload: r.event.payload.clone(),
                prev_hash: r.prev_hash,
                hash: r.hash,
            };
            verifier.check(&record).unwrap();
        }
        assert_eq!(verifier.last_hash, plan.head.hash);
    }

    #[test]
    fn retries_are_answered_from_the_log_and_from_the_group() {
        let stored_event = event("stored");
        let stored = HashMap::from([(
            stored_event.event_id,
            Stored {
                event_id: stored_event.event_id,
                stream_id: "a".to_owned(),
                stream_version: 1,
                position: 1,
                event_type: stored_event.event_type.clone(),
                schema_version: 1,
                metadata: stored_event.metadata.clone(),
                payload: stored_event.payload.clone(),
            },
        )]);
        let fresh = vec![event("b1"), event("b2")];
        let mut changed = fresh[1].clone();
        changed.payload = Bytes::from_static(b"other");
        let group = vec![
            // A retry of what is stored: its original result, whatever the version now.
            request("a", ExpectedVersion::NoStream, vec![stored_event.clone()]),
            request("b", ExpectedVersion::NoStream, fresh.clone()),
            // The same append twice in one group (a caller retrying after a timeout).
            request("b", ExpectedVersion::NoStream, fresh.clone()),
            request("b", ExpectedVersion::Any, vec![fresh[0].clone(), changed]),
            request(
                "c",
                ExpectedVersion::Any,
                vec![event("new"), stored_event.clone()],
            ),
        ];
        let head = Head {
            position: 1,
            hash: GENESIS,
        };
        let current = HashMap::from([("a".to_owned(), 1)]);
        let plan = plan(&group, head, current, stored, at());
        assert_eq!(
            summary(&plan.answers),
            [
                "ok 1..1 v1",
                "ok 2..3 v2",
                "ok 2..3 v2",
                "reused, stored at v2",
                "reused, stored at v1"
            ]
        );
        assert_eq!(plan.rows.len(), 2);
    }

    #[test]
    fn key_details_name_the_taken_version() {
        let detail = "Key (stream_id, stream_version)=(person-1, 3) already exists.";
        assert_eq!(super::parse_key_number(Some(detail)), Some(3));
        assert_eq!(super::parse_key_number(Some("no key here")), None);
        assert_eq!(super::parse_key_number(None), None);
    }
}

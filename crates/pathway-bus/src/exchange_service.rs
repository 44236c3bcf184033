//! The graduate exchange service: Education's cohort batches in, status-only
//! answers and outcomes back out.
//!
//! Both directions travel on the stream [`EXCHANGE_STREAM`], which holds
//! `pathway.v1.exchange.education.>`:
//!
//! - **Inbound.** A durable pull consumer ([`COHORT_DURABLE`], explicit acks)
//!   reads [`COHORT_SUBJECT`]. Each batch is checked by
//!   [`validate_batch`](crate::exchange::validate_batch) (after a size bound of
//!   this service), then resolved without writing anything: every record's
//!   keyed hash is looked up in its reservation stream `idhmac-<hex>` (the
//!   reservation names the registered person), and every command the batch
//!   will send is decided once in memory on empty state, so a record the
//!   domain would refuse rejects the whole batch before anything is appended.
//!   Only then does the engine receive the cohort (`cohort-<batch_id>`),
//!   record each match (and open the graduate's ledger
//!   `ledger-<person_ref>-<year>`, city from the record's residence) or each
//!   unmatched record (not registered). Command ids are UUID v5 of the batch
//!   id and the record index, so a redelivered or re-sent batch finds its
//!   first result and appends nothing. The answer — a `CohortOutcome` with
//!   counts only, or a `CohortRejected` with the reason — is published on
//!   [`OUTCOME_SUBJECT`], and the batch is acked only after that.
//! - **Outbound.** A second durable consumer ([`OUTCOMES_DURABLE`]) follows
//!   the relay's Education stream, filtered to `GraduateOutcomeRecorded`.
//!   The view carries no person, so the service reads the event at the view's
//!   log position and the person's registration for the keyed hash, and
//!   publishes a [`GraduateOutcomeStatus`] (keyed hash and outcome category,
//!   nothing else) with `Nats-Msg-Id` = the event id. The consumer's acks are
//!   the checkpoint: following the view stream rather than the log needs no
//!   second leader lock or checkpoint file beside the relay's; the cost is
//!   that outcomes flow only while the relay runs, and a relay rebuild (which
//!   deletes the consumer with the stream) sends them again — Education
//!   treats `Nats-Msg-Id` as the idempotency key.
//!
//! Every answer carries [`MESSAGE_TYPE_HEADER`] naming its message, since
//! Education receives all three on one subject.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt as _;
use pathway_domain::graduates::{
    Cohort, CohortCommand, GraduateLedger, GraduateLevel, LedgerCommand, UnmatchedReason,
};
use pathway_domain::policy::PolicyTable;
use pathway_domain::{Aggregate, Context, Event, Rejection, pb};
use pathway_engine::reservation::{Reservation, reservation_stream};
use pathway_engine::{CommandMeta, Engine, EngineError};
use pathway_proto::Message as _;
use pathway_proto::exchange::v1::{
    self as xpb, CohortBatch, CohortOutcome, CohortRejected, GraduateRecord, RejectionReason,
};
use pathway_proto::views::v1::{EducationEvent, education_view};
use pathway_store::{EventStore, ReadFilter, RecordedEvent};
use uuid::Uuid;

use crate::BusError;
use crate::exchange::{EXCHANGE_BATCH_BYTES_MAX, validate_batch};
use crate::limits::{
    CONSUMER_ACK_PENDING_MAX, CONSUMER_ACK_WAIT_S, CONSUMER_PULL_WAIT_MS,
    STREAM_DUPLICATE_WINDOW_S, STREAM_MAX_AGE_DAYS, STREAM_MAX_BYTES_DEFAULT,
};
use crate::subjects::{Department, SUBJECT_ROOT, subject};

/// Where Education publishes its cohort batches.
pub const COHORT_SUBJECT: &str = "pathway.v1.exchange.education.cohort";
/// Where Pathway answers Education: acknowledgements, rejections, outcomes.
pub const OUTCOME_SUBJECT: &str = "pathway.v1.exchange.education.outcome";
/// The stream holding both exchange subjects.
pub const EXCHANGE_STREAM: &str = "PATHWAY_EXCHANGE_EDUCATION";
/// The durable consumer of cohort batches.
pub const COHORT_DURABLE: &str = "pathway-exchange-cohort";
/// The durable consumer of graduate outcomes on the Education view stream.
pub const OUTCOMES_DURABLE: &str = "pathway-exchange-outcomes";
/// The header naming the message an answer carries.
pub const MESSAGE_TYPE_HEADER: &str = "Pathway-Message-Type";
/// [`MESSAGE_TYPE_HEADER`] of a batch's acknowledgement.
pub const COHORT_OUTCOME_TYPE: &str = "pathway.exchange.v1.CohortOutcome";
/// [`MESSAGE_TYPE_HEADER`] of a batch's rejection.
pub const COHORT_REJECTED_TYPE: &str = "pathway.exchange.v1.CohortRejected";
/// [`MESSAGE_TYPE_HEADER`] of one graduate's outcome.
pub const GRADUATE_OUTCOME_TYPE: &str = "pathway.exchange.v1.GraduateOutcomeStatus";

/// Most messages pulled per request: batches are large, so one at a time.
const EXCHANGE_PULL_MESSAGES_MAX: usize = 1;
/// Most outcome messages pulled per request.
const OUTCOMES_PULL_MESSAGES_MAX: usize = 100;
/// Pause after a failed cycle (NATS down, stream missing) before retrying.
const EXCHANGE_RETRY_BACKOFF_MS: u64 = 1_000;
/// Pause before a batch whose engine work failed is delivered again.
const EXCHANGE_NAK_DELAY_MS: u64 = 5_000;
/// How long a publish of an answer waits for JetStream's acknowledgement.
const EXCHANGE_PUBLISH_TIMEOUT_MS: u64 = 5_000;
/// GB/T 2260 code the service acts from: the province.
const ACTOR_REGION: &str = "230000";
/// The actor id in the envelopes of the service's commands.
const ACTOR_ID: &str = "graduate-exchange";
/// Namespace of the UUID v5 command ids ("pathway-exchange" in ASCII).
const COMMAND_ID_NAMESPACE: Uuid = Uuid::from_u128(0x7061_7468_7761_792d_6578_6368_616e_6765);

/// The configuration of [`EXCHANGE_STREAM`]: file storage, limits retention
/// with an explicit age and size, the duplicate window, and `replicas` copies.
pub fn exchange_stream_config(max_bytes: i64, replicas: usize) -> stream::Config {
    stream::Config {
        name: EXCHANGE_STREAM.to_owned(),
        description: Some(
            "Graduate exchange with Education: cohort batches in, status-only answers out".into(),
        ),
        subjects: vec![format!("{SUBJECT_ROOT}.exchange.education.>")],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_age: Duration::from_secs(STREAM_MAX_AGE_DAYS * 24 * 3600),
        max_bytes,
        duplicate_window: Duration::from_secs(STREAM_DUPLICATE_WINDOW_S),
        num_replicas: replicas,
        ..Default::default()
    }
}

fn pull_config(durable: &str, filter_subject: String) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(durable.to_owned()),
        filter_subject,
        deliver_policy: consumer::DeliverPolicy::All,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(CONSUMER_ACK_WAIT_S),
        max_ack_pending: CONSUMER_ACK_PENDING_MAX,
        ..Default::default()
    }
}

/// One graduate's year-end outcome as Education receives it: the keyed hash
/// Education sent and the outcome category, nothing else.
pub use pathway_proto::exchange::v1::GraduateOutcomeStatus;

/// The answer to one batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Applied: counts only.
    Accepted(CohortOutcome),
    /// Nothing applied, and why.
    Rejected(CohortRejected),
}

impl Reply {
    /// The message type header and the encoded message.
    fn encode(&self) -> (&'static str, Vec<u8>) {
        match self {
            Reply::Accepted(o) => (COHORT_OUTCOME_TYPE, o.encode_to_vec()),
            Reply::Rejected(r) => (COHORT_REJECTED_TYPE, r.encode_to_vec()),
        }
    }
}

/// The time source of the service's commands.
type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The exchange service. See the module docs.
pub struct ExchangeService<S> {
    engine: Engine<S>,
    js: jetstream::Context,
    batch_bytes_max: usize,
    stream_max_bytes: i64,
    stream_replicas: usize,
    clock: Clock,
}

impl<S> std::fmt::Debug for ExchangeService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeService")
            .field("batch_bytes_max", &self.batch_bytes_max)
            .field("stream_max_bytes", &self.stream_max_bytes)
            .finish_non_exhaustive()
    }
}

/// One record, resolved against the reservations.
enum Resolved {
    Matched {
        person_ref: String,
        record: CohortCommand,
        ledger: LedgerCommand,
    },
    Unmatched(CohortCommand),
}

impl<S: EventStore + Clone> ExchangeService<S> {
    /// A service writing through an engine over `store`, answering on the
    /// JetStream of `client`.
    pub fn new(store: S, client: async_nats::Client) -> Self {
        ExchangeService {
            engine: Engine::unsealed(store),
            js: jetstream::ContextBuilder::new()
                .timeout(Duration::from_millis(EXCHANGE_PUBLISH_TIMEOUT_MS))
                .build(client),
            batch_bytes_max: EXCHANGE_BATCH_BYTES_MAX,
            stream_max_bytes: STREAM_MAX_BYTES_DEFAULT,
            stream_replicas: crate::relay::STREAM_REPLICAS_DEFAULT,
            clock: Arc::new(Utc::now),
        }
    }

    /// Rejects batches larger than `bytes` (at most
    /// [`EXCHANGE_BATCH_BYTES_MAX`]), e.g. to stay below the server's
    /// `max_payload`.
    pub fn with_batch_bytes_max(mut self, bytes: usize) -> Self {
        self.batch_bytes_max = bytes.min(EXCHANGE_BATCH_BYTES_MAX);
        self
    }

    /// Keeps `replicas` copies of [`EXCHANGE_STREAM`] (on a cluster of at
    /// least that many nodes).
    pub fn with_stream_replicas(mut self, replicas: usize) -> Self {
        self.stream_replicas = replicas.clamp(1, crate::relay::STREAM_REPLICAS_MAX);
        self
    }

    /// Bounds [`EXCHANGE_STREAM`] to `bytes` on disk.
    pub fn with_stream_max_bytes(mut self, bytes: i64) -> Self {
        self.stream_max_bytes = bytes;
        self
    }

    /// Decides the service's commands at the times `clock` gives.
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Creates or updates [`EXCHANGE_STREAM`].
    pub async fn ensure_stream(&self) -> Result<(), BusError> {
        crate::relay::create_stream(
            &self.js,
            exchange_stream_config(self.stream_max_bytes, self.stream_replicas),
        )
        .await
    }

    /// Runs both directions until the task is dropped, retrying every
    /// failure after a pause.
    #[tracing::instrument(name = "exchange", skip_all)]
    pub async fn run(self) -> Result<(), BusError> {
        let inbound = async {
            loop {
                if let Err(e) = self.cohort_cycle().await {
                    tracing::warn!(error = %e, "exchange cohort cycle failed; retrying");
                }
                tokio::time::sleep(Duration::from_millis(EXCHANGE_RETRY_BACKOFF_MS)).await;
            }
        };
        let outbound = async {
            loop {
                if let Err(e) = self.outcome_cycle().await {
                    tracing::warn!(error = %e, "exchange outcome cycle failed; retrying");
                }
                tokio::time::sleep(Duration::from_millis(EXCHANGE_RETRY_BACKOFF_MS)).await;
            }
        };
        tokio::join!(inbound, outbound);
        Ok(())
    }

    async fn cohort_cycle(&self) -> Result<(), BusError> {
        self.ensure_stream().await?;
        let stream = self
            .js
            .get_stream(EXCHANGE_STREAM)
            .await
            .map_err(|e| BusError::nats("get stream", e))?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                COHORT_DURABLE,
                pull_config(COHORT_DURABLE, COHORT_SUBJECT.to_owned()),
            )
            .await
            .map_err(|e| BusError::nats("create consumer", e))?;
        loop {
            let mut batch = consumer
                .batch()
                .max_messages(EXCHANGE_PULL_MESSAGES_MAX)
                .expires(Duration::from_millis(CONSUMER_PULL_WAIT_MS))
                .messages()
                .await
                .map_err(|e| BusError::nats("pull", e))?;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| BusError::nats("pull", e))?;
                match self.handle_batch(&message.payload).await {
                    Ok(reply) => {
                        self.answer(&reply).await?;
                        message
                            .double_ack()
                            .await
                            .map_err(|e| BusError::nats("ack", e))?;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cohort batch not applied; redelivering later");
                        message
                            .ack_with(jetstream::AckKind::Nak(Some(Duration::from_millis(
                                EXCHANGE_NAK_DELAY_MS,
                            ))))
                            .await
                            .map_err(|e| BusError::nats("nak", e))?;
                    }
                }
            }
        }
    }

    /// Publishes the answer to a batch on [`OUTCOME_SUBJECT`] and waits for
    /// the stream to store it.
    async fn answer(&self, reply: &Reply) -> Result<(), BusError> {
        let (kind, payload) = reply.encode();
        let mut headers = HeaderMap::new();
        headers.insert(MESSAGE_TYPE_HEADER, kind);
        self.js
            .publish_with_headers(OUTCOME_SUBJECT, headers, Bytes::from(payload))
            .await
            .map_err(|e| BusError::nats("publish", e))?
            .await
            .map_err(|e| BusError::nats("publish ack", e))?;
        Ok(())
    }

    /// Checks and applies one batch as received; see the module docs. An
    /// `Err` is a failure of the log (retry later), never of the batch.
    #[tracing::instrument(skip_all, fields(bytes = bytes.len()))]
    pub async fn handle_batch(&self, bytes: &[u8]) -> Result<Reply, BusError> {
        if bytes.len() > self.batch_bytes_max {
            return Ok(Reply::Rejected(CohortRejected {
                batch_id: String::new(),
                reason: RejectionReason::Oversized as i32,
                detail: format!(
                    "batch is {} bytes, at most {} are accepted",
                    bytes.len(),
                    self.batch_bytes_max
                ),
            }));
        }
        let batch = match validate_batch(bytes) {
            Ok(batch) => batch,
            Err(rejected) => return Ok(Reply::Rejected(rejected)),
        };
        let now = (self.clock)();
        let resolved = match self.resolve(&batch, now).await? {
            Ok(resolved) => resolved,
            Err(detail) => {
                return Ok(Reply::Rejected(CohortRejected {
                    batch_id: batch.batch_id.clone(),
                    reason: RejectionReason::Malformed as i32,
                    detail,
                }));
            }
        };
        self.apply(&batch, resolved, now).await
    }

    /// Looks every record up and decides every command once in memory, so a
    /// batch the domain would refuse is rejected before anything is written.
    /// The outer `Err` is a failure of the log, the inner one the rejection.
    async fn resolve(
        &self,
        batch: &CohortBatch,
        now: DateTime<Utc>,
    ) -> Result<Result<Vec<Resolved>, String>, BusError> {
        let mut first_of: BTreeMap<&[u8], usize> = BTreeMap::new();
        for (i, r) in batch.records.iter().enumerate() {
            if let Some(j) = first_of.insert(&r.id_hmac, i) {
                return Ok(Err(format!(
                    "record {i}: id_hmac repeats the one of record {j}"
                )));
            }
        }
        let ctx = Context::new(now, PolicyTable::builtin());
        let receive = receive_command(batch);
        let mut cohort = Cohort::default();
        match cohort.decide(&receive, &ctx) {
            Ok(events) => cohort = events.iter().fold(cohort, |c, e| c.evolve(e)),
            Err(r) => return Ok(Err(format!("batch: {}", rejection_detail(&r)))),
        }
        let mut resolved = Vec::with_capacity(batch.records.len());
        for (i, r) in batch.records.iter().enumerate() {
            let (reservation, _) = self
                .engine
                .load::<Reservation>(&reservation_stream(&r.id_hmac))
                .await
                .map_err(engine_failure)?;
            let item = match reservation.holder() {
                Some(person_ref) => {
                    let ledger = LedgerCommand::OpenLedger {
                        ledger_id: command_id(&batch.batch_id, &format!("record/{i}/ledger"))
                            .to_string(),
                        person_ref: person_ref.to_owned(),
                        year: batch.year,
                        city: r.residence_city.clone(),
                        school: r.school.clone(),
                    };
                    if let Err(rej) = GraduateLedger::default().decide(&ledger, &ctx) {
                        return Ok(Err(format!("record {i}: {}", rejection_detail(&rej))));
                    }
                    Resolved::Matched {
                        person_ref: person_ref.to_owned(),
                        record: match_command(person_ref, r),
                        ledger,
                    }
                }
                None => Resolved::Unmatched(CohortCommand::RecordUnmatched {
                    record_hash: hex(&record_hash(r)),
                    reason: UnmatchedReason::NotRegistered,
                }),
            };
            let command = match &item {
                Resolved::Matched { record, .. } => record,
                Resolved::Unmatched(c) => c,
            };
            match cohort.decide(command, &ctx) {
                Ok(events) => cohort = events.iter().fold(cohort, |c, e| c.evolve(e)),
                Err(rej) => return Ok(Err(format!("record {i}: {}", rejection_detail(&rej)))),
            }
            resolved.push(item);
        }
        Ok(Ok(resolved))
    }

    /// Sends the batch's commands through the engine.
    async fn apply(
        &self,
        batch: &CohortBatch,
        resolved: Vec<Resolved>,
        now: DateTime<Utc>,
    ) -> Result<Reply, BusError> {
        let id = &batch.batch_id;
        let cohort_stream = format!("{}-{id}", Cohort::CATEGORY);
        let meta = |key: &str, department: pb::Department| CommandMeta {
            command_id: command_id(id, key),
            correlation_id: command_id(id, ""),
            causation_id: None,
            actor_department: department,
            actor_region: ACTOR_REGION.to_owned(),
            actor_id: ACTOR_ID.to_owned(),
            now,
        };
        let conflict = |e: EngineError| -> Result<Reply, BusError> {
            match e {
                EngineError::Rejected(_) | EngineError::CommandIdReused { .. } => {
                    Ok(Reply::Rejected(CohortRejected {
                        batch_id: id.clone(),
                        reason: RejectionReason::Malformed as i32,
                        detail: format!("batch {id} was received before with other content: {e}"),
                    }))
                }
                e => Err(engine_failure(e)),
            }
        };
        let pathway = pb::Department::Pathway;
        if let Err(e) = self
            .engine
            .handle::<Cohort>(
                &cohort_stream,
                &receive_command(batch),
                &meta("receive", pathway),
            )
            .await
        {
            return conflict(e);
        }
        let mut outcome = CohortOutcome {
            batch_id: id.clone(),
            received: batch.records.len() as u32,
            ..Default::default()
        };
        for (i, item) in resolved.into_iter().enumerate() {
            let record_meta = meta(&format!("record/{i}"), pathway);
            match item {
                Resolved::Matched {
                    person_ref,
                    record,
                    ledger,
                } => {
                    if let Err(e) = self
                        .engine
                        .handle::<Cohort>(&cohort_stream, &record, &record_meta)
                        .await
                    {
                        return conflict(e);
                    }
                    outcome.matched += 1;
                    let stream =
                        format!("{}-{person_ref}-{}", GraduateLedger::CATEGORY, batch.year);
                    let ledger_meta = meta(&format!("record/{i}/ledger"), pb::Department::Dpf);
                    match self
                        .engine
                        .handle::<GraduateLedger>(&stream, &ledger, &ledger_meta)
                        .await
                    {
                        Ok(_) => outcome.ledgers_opened += 1,
                        // Opened before, e.g. from an earlier cohort of the year.
                        Err(EngineError::Rejected(r)) => {
                            tracing::info!(stream, rejection = %r, "ledger not opened")
                        }
                        Err(e) => return conflict(e),
                    }
                }
                Resolved::Unmatched(record) => {
                    if let Err(e) = self
                        .engine
                        .handle::<Cohort>(&cohort_stream, &record, &record_meta)
                        .await
                    {
                        return conflict(e);
                    }
                    outcome.unmatched += 1;
                }
            }
        }
        tracing::info!(
            batch_id = %id,
            received = outcome.received,
            matched = outcome.matched,
            unmatched = outcome.unmatched,
            ledgers_opened = outcome.ledgers_opened,
            "cohort applied"
        );
        Ok(Reply::Accepted(outcome))
    }

    async fn outcome_cycle(&self) -> Result<(), BusError> {
        self.ensure_stream().await?;
        let stream = self
            .js
            .get_stream(Department::Education.stream())
            .await
            .map_err(|e| BusError::nats("get stream", e))?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                OUTCOMES_DURABLE,
                pull_config(
                    OUTCOMES_DURABLE,
                    subject(Department::Education, "GraduateOutcomeRecorded"),
                ),
            )
            .await
            .map_err(|e| BusError::nats("create consumer", e))?;
        loop {
            let mut batch = consumer
                .batch()
                .max_messages(OUTCOMES_PULL_MESSAGES_MAX)
                .expires(Duration::from_millis(CONSUMER_PULL_WAIT_MS))
                .messages()
                .await
                .map_err(|e| BusError::nats("pull", e))?;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| BusError::nats("pull", e))?;
                if let Some((event_id, status)) = self.outcome_status(&message.payload).await? {
                    let mut headers = HeaderMap::new();
                    headers.insert(MESSAGE_TYPE_HEADER, GRADUATE_OUTCOME_TYPE);
                    headers.insert(async_nats::header::NATS_MESSAGE_ID, event_id.as_str());
                    self.js
                        .publish_with_headers(
                            OUTCOME_SUBJECT,
                            headers,
                            Bytes::from(status.encode_to_vec()),
                        )
                        .await
                        .map_err(|e| BusError::nats("publish", e))?
                        .await
                        .map_err(|e| BusError::nats("publish ack", e))?;
                }
                message
                    .double_ack()
                    .await
                    .map_err(|e| BusError::nats("ack", e))?;
            }
        }
    }

    /// The status to send for one Education view message, with its event
    /// id; `None` for a message that is not a graduate's outcome or whose
    /// graduate has no registration to name.
    async fn outcome_status(
        &self,
        payload: &[u8],
    ) -> Result<Option<(String, GraduateOutcomeStatus)>, BusError> {
        let view = EducationEvent::decode(payload).map_err(|e| BusError::BadMessage {
            subject: Department::Education.wildcard(),
            detail: e.to_string(),
        })?;
        if !matches!(
            view.view.as_ref().and_then(|v| v.kind.as_ref()),
            Some(education_view::Kind::Outcome(_))
        ) {
            return Ok(None);
        }
        let store = self.engine.store();
        let record = store
            .read_all(view.position, 1, &ReadFilter::all())
            .await?
            .into_iter()
            .next()
            .filter(|r| r.position == view.position && r.event_id.to_string() == view.event_id);
        let Some(record) = record else {
            return Err(BusError::BadMessage {
                subject: Department::Education.wildcard(),
                detail: format!(
                    "event {} is not at log position {}",
                    view.event_id, view.position
                ),
            });
        };
        let Event::GraduateOutcomeRecorded(outcome) = decode_at(&record)? else {
            return Ok(None);
        };
        let person_stream = format!("person-{}", outcome.person_ref);
        let registration = store.read_stream(&person_stream, 1, 1).await?;
        let id_hmac = match registration.first().map(decode_at).transpose()? {
            Some(Event::PersonRegistered(r)) => r.id_hmac,
            _ => {
                tracing::warn!(
                    stream = person_stream,
                    "graduate outcome for a person without a registration; not sent"
                );
                return Ok(None);
            }
        };
        Ok(Some((
            view.event_id,
            GraduateOutcomeStatus {
                id_hmac,
                outcome: outcome_category(outcome.outcome),
            },
        )))
    }
}

fn decode_at(r: &RecordedEvent) -> Result<Event, BusError> {
    pathway_engine::decode(r).map_err(|e| BusError::Decode {
        position: r.position,
        detail: e.to_string(),
    })
}

/// A failure of the engine that is not the batch's fault.
fn engine_failure(e: EngineError) -> BusError {
    match e {
        EngineError::Store(e) | EngineError::Conflict { source: e, .. } => BusError::Store(e),
        e => BusError::Decode {
            position: 0,
            detail: e.to_string(),
        },
    }
}

/// `GRADUATE_OUTCOME_FURTHER_STUDY` → `further_study`.
fn outcome_category(wire: i32) -> String {
    pb::GraduateOutcome::try_from(wire)
        .unwrap_or(pb::GraduateOutcome::Unspecified)
        .as_str_name()
        .trim_start_matches("GRADUATE_OUTCOME_")
        .to_ascii_lowercase()
}

/// A rejection for a `CohortRejected` detail: the field, problem and rule.
fn rejection_detail(r: &Rejection) -> String {
    r.to_string()
}

/// The command id of step `key` of batch `batch_id`.
fn command_id(batch_id: &str, key: &str) -> Uuid {
    Uuid::new_v5(
        &COMMAND_ID_NAMESPACE,
        format!("{batch_id}/{key}").as_bytes(),
    )
}

fn receive_command(batch: &CohortBatch) -> CohortCommand {
    CohortCommand::ReceiveCohort {
        batch_id: batch.batch_id.clone(),
        year: batch.year,
        record_count: batch.record_count,
    }
}

fn match_command(person_ref: &str, r: &GraduateRecord) -> CohortCommand {
    let level = match xpb::GraduateLevel::try_from(r.level) {
        Ok(xpb::GraduateLevel::JuniorCollege) => GraduateLevel::JuniorCollege,
        Ok(xpb::GraduateLevel::Postgraduate) => GraduateLevel::Postgraduate,
        // validate_batch admits only the three levels.
        _ => GraduateLevel::Bachelor,
    };
    let expected_graduation = r
        .expected_graduation
        .as_ref()
        .and_then(|d| {
            NaiveDate::from_ymd_opt(
                d.year,
                u32::try_from(d.month).ok()?,
                u32::try_from(d.day).ok()?,
            )
        })
        .unwrap_or_default();
    CohortCommand::RecordMatch {
        person_ref: person_ref.to_owned(),
        id_hmac: hex(&r.id_hmac),
        school: r.school.clone(),
        major: r.major.clone(),
        level,
        expected_graduation,
        residence_region: r.residence_city.clone(),
    }
}

/// The hash of a record as sent: SHA-256 of its protobuf encoding, framed
/// as the log's hash chain frames a record (the bus crate's one SHA-256).
fn record_hash(r: &GraduateRecord) -> [u8; 32] {
    let bytes = r.encode_to_vec();
    pathway_store::chain::Canonical {
        position: 0,
        stream_id: "exchange",
        stream_version: 0,
        event_id: &Uuid::nil(),
        event_type: "pathway.exchange.v1.GraduateRecord",
        schema_version: 1,
        recorded_at_micros: 0,
        metadata: &[],
        payload: &bytes,
    }
    .hash(&pathway_store::chain::GENESIS)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graduate_outcome_round_trips() {
        use pathway_proto::Message as _;
        let status = GraduateOutcomeStatus {
            id_hmac: vec![7; 32],
            outcome: "further_study".into(),
        };
        let bytes = status.encode_to_vec();
        assert_eq!(&bytes[..2], &[0x0a, 32]);
        assert_eq!(GraduateOutcomeStatus::decode(bytes.as_slice()), Ok(status));
        assert_eq!(outcome_category(2), "further_study");
    }

    #[test]
    fn command_ids_follow_the_batch_and_record() {
        assert_eq!(command_id("b", "record/1"), command_id("b", "record/1"));
        assert_ne!(command_id("b", "record/1"), command_id("b", "record/2"));
        assert_ne!(command_id("b", "record/1"), command_id("c", "record/1"));
    }
}

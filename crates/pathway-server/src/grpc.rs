//! The gRPC API (`pathway.api.v1.Pathway`, `proto/pathway/api/v1`), served
//! on the same port as the HTTP/JSON API: the tonic service is turned into
//! axum routes (`/pathway.api.v1.Pathway/*`) and merged into the one router,
//! and the listener speaks HTTP/1.1 and HTTP/2 (gRPC uses h2c, prior
//! knowledge; put TLS in front as for HTTP).
//!
//! Every method calls the same handler functions as the HTTP routes
//! ([`api::admit`], [`api::submit`], [`api::query`], [`api::grant_stream`],
//! [`api::history`], [`api::record_access`]), so authentication, the rate,
//! the policy, region scoping, purposes and access events are the same. Only
//! the error mapping differs:
//!
//! | HTTP | gRPC | details |
//! |---|---|---|
//! | 400 `malformed`, `rejected` | `INVALID_ARGUMENT` | `google.rpc.BadRequest` (field, rule) when known |
//! | 401 | `UNAUTHENTICATED` | |
//! | 403 | `PERMISSION_DENIED` | |
//! | 404 | `NOT_FOUND` | |
//! | 409 | `ABORTED` | |
//! | 413 | `INVALID_ARGUMENT` | (`pathway-error: too_large`) |
//! | 429 | `RESOURCE_EXHAUSTED` | `google.rpc.RetryInfo` and `grpc-retry-pushback-ms` |
//! | 503 `timeout` | `DEADLINE_EXCEEDED` | |
//! | 503 `unavailable` | `UNAVAILABLE` | |
//! | 500 | `INTERNAL` | |
//!
//! Every error status carries metadata `pathway-error` with the HTTP API's
//! error code. A request that does not decode as its protobuf message never
//! reaches a handler: the generated server's codec
//! ([`pathway_proto::codec::StrictProstCodec`]) answers it `INVALID_ARGUMENT`
//! (`pathway-error: malformed`), where tonic's own codec says `INTERNAL`.

use std::{collections::BTreeSet, pin::Pin, sync::Arc, time::Duration};

use axum::http::StatusCode;
use futures::{FutureExt as _, Stream};
use pathway_proto::api::v1::{self as api_pb, pathway_server::PathwayServer};
use pathway_store::EventStore;
use prost_reflect::{DescriptorPool, DynamicMessage, Value as Reflected};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, metadata::MetadataValue};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::{
    api::{self, Access, ApiError, AppState, Caller, Channel, StreamGrant},
    policy::{SubjectKind, VIEW_SUBJECT_FIELDS},
};

/// Events read from the log before one access event is recorded for them
/// and they are sent.
pub const STREAM_BATCH_EVENTS_MAX: usize = 256;
/// Responses buffered per stream before the reader waits for the client.
pub const STREAM_BUFFER_MAX: usize = 64;

/// Ends every open `StreamEvents` of one server at shutdown (each stream
/// ends with `UNAVAILABLE` naming the position to resume from), so open
/// streams do not hold up the drain of in-flight requests.
#[derive(Debug, Clone)]
pub struct Streams {
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            stop: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

impl Streams {
    /// Ends the open streams and refuses new ones.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }
}

/// The gRPC service, mounted as axum routes.
pub fn router<S: EventStore + Clone>(state: Arc<AppState<S>>) -> axum::Router {
    let limit = state.limits.request_body_bytes_max;
    let service = PathwayServer::new(GrpcApi { st: state }).max_decoding_message_size(limit);
    // Only the service's own paths: an unknown HTTP path stays a plain 404
    // (tonic's `Routes` would answer it as an unimplemented gRPC call).
    let name = <PathwayServer<GrpcApi<S>> as tonic::server::NamedService>::NAME;
    axum::Router::new().route_service(&format!("/{name}/{{*method}}"), service)
}

/// The `Pathway` service over the shared state.
pub struct GrpcApi<S> {
    st: Arc<AppState<S>>,
}

/// The gRPC status of a refusal.
pub fn status(e: &ApiError) -> Status {
    let code = match e.status {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::InvalidArgument,
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
        StatusCode::NOT_FOUND => tonic::Code::NotFound,
        StatusCode::CONFLICT => tonic::Code::Aborted,
        StatusCode::TOO_MANY_REQUESTS => tonic::Code::ResourceExhausted,
        StatusCode::SERVICE_UNAVAILABLE if e.code == "timeout" => tonic::Code::DeadlineExceeded,
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
        _ => tonic::Code::Internal,
    };
    let mut details = ErrorDetails::new();
    if let Some(field) = &e.field {
        details.add_bad_request_violation(
            field.clone(),
            e.rule.clone().unwrap_or_else(|| e.message.clone()),
        );
    }
    if let Some(s) = e.retry_after_s {
        details.set_retry_info(Some(Duration::from_secs(s)));
    }
    let mut status = Status::with_error_details(code, e.message.clone(), details);
    status
        .metadata_mut()
        .insert("pathway-error", MetadataValue::from_static(e.code));
    if let Some(s) = e.retry_after_s
        && let Ok(v) = MetadataValue::try_from((s * 1_000).to_string())
    {
        status.metadata_mut().insert("grpc-retry-pushback-ms", v);
    }
    status
}

impl<S: EventStore + Clone> GrpcApi<S> {
    /// Authenticates and rate-limits a call, as the HTTP middleware does.
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let headers = request.metadata().clone().into_headers();
        let claims = api::admit(&self.st, &headers).map_err(|e| status(&e))?;
        Caller::new(claims, &headers, Channel::Grpc).map_err(|e| status(&e))
    }

    /// Runs `work` within `request_timeout_ms`.
    async fn timed<T>(&self, work: impl Future<Output = Result<T, ApiError>>) -> Result<T, Status> {
        let limit_ms = self.st.limits.request_timeout_ms;
        match tokio::time::timeout(Duration::from_millis(limit_ms), work).await {
            Ok(result) => result.map_err(|e| status(&e)),
            Err(_) => Err(status(&ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "request took longer than request_timeout_ms {limit_ms}; a command may be retried with the same command id"
                ),
            ))),
        }
    }
}

/// The JSON envelope of a gRPC command, its `command_id` checked against
/// (or filled from) the request's.
fn envelope(command: &api_pb::Command) -> Result<serde_json::Value, ApiError> {
    let mut value: serde_json::Value = serde_json::from_str(&command.envelope_json)
        .map_err(|e| ApiError::malformed(format!("envelope_json is not JSON: {e}")))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| ApiError::malformed("envelope_json is not a JSON object"))?;
    if !command.command_id.is_empty() {
        match object.get("command_id").and_then(|v| v.as_str()) {
            Some(id) if id != command.command_id => {
                return Err(ApiError::invalid(
                    "command_id",
                    "the request's command id is the envelope's",
                    &format!("{} differs from the envelope's {id}", command.command_id),
                ));
            }
            Some(_) => {}
            None => {
                object.insert(
                    "command_id".to_owned(),
                    serde_json::Value::String(command.command_id.clone()),
                );
            }
        }
    }
    Ok(value)
}

fn accepted(a: api::Accepted) -> api_pb::CommandAccepted {
    api_pb::CommandAccepted {
        command_id: a.command_id,
        command: a.command,
        stream: a.stream,
        events: a.events,
        first_position: a.first_position,
        last_position: a.last_position,
        stream_version: a.stream_version,
    }
}

fn failure(e: &ApiError) -> api_pb::Failure {
    api_pb::Failure {
        error: e.code.to_owned(),
        message: e.message.clone(),
        field: e.field.clone().unwrap_or_default(),
        rule: e.rule.clone().unwrap_or_default(),
        code: status(e).code() as i32,
    }
}

/// A JSON value as a `google.protobuf.Value`.
pub fn to_prost_value(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(to_prost_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A JSON object as a `google.protobuf.Struct`.
pub fn to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), to_prost_value(v)))
            .collect(),
    }
}

type EventStream =
    Pin<Box<dyn Stream<Item = Result<api_pb::StreamEventsResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl<S: EventStore + Clone> api_pb::pathway_server::Pathway for GrpcApi<S> {
    async fn submit_command(
        &self,
        request: Request<api_pb::SubmitCommandRequest>,
    ) -> Result<Response<api_pb::SubmitCommandResponse>, Status> {
        use api_pb::{
            submit_command_request::Request as Req, submit_command_response::Response as Resp,
        };
        let caller = self.caller(&request)?;
        let st = &self.st;
        let claims = &caller.claims;
        let response = self
            .timed(async {
                match request.into_inner().request {
                    None => {
                        api::count_malformed(st);
                        Err(ApiError::invalid(
                            "request",
                            "a command or a batch",
                            "is empty",
                        ))
                    }
                    Some(Req::Command(command)) => {
                        let value = envelope(&command).inspect_err(|_| api::count_malformed(st))?;
                        let a = api::submit(st, claims, &value).await?;
                        Ok(Resp::Accepted(accepted(a)))
                    }
                    Some(Req::Batch(batch)) => {
                        api::check_batch(st, batch.commands.len())?;
                        let mut results = Vec::with_capacity(batch.commands.len());
                        for command in &batch.commands {
                            let result = match envelope(command) {
                                Ok(value) => api::submit(st, claims, &value).await,
                                Err(e) => {
                                    api::count_malformed(st);
                                    Err(e)
                                }
                            };
                            results.push(api_pb::BatchItem {
                                outcome: Some(match result {
                                    Ok(a) => api_pb::batch_item::Outcome::Accepted(accepted(a)),
                                    Err(e) => api_pb::batch_item::Outcome::Failure(failure(&e)),
                                }),
                            });
                        }
                        Ok(Resp::Batch(api_pb::BatchResult { results }))
                    }
                }
            })
            .await?;
        Ok(Response::new(api_pb::SubmitCommandResponse {
            response: Some(response),
        }))
    }

    async fn query_model(
        &self,
        request: Request<api_pb::QueryModelRequest>,
    ) -> Result<Response<api_pb::QueryModelResponse>, Status> {
        let caller = self.caller(&request)?;
        let q = request.into_inner();
        let rows = self
            .timed(api::query(
                &self.st,
                &caller,
                &q.model,
                &q.table,
                q.city,
                q.year,
                api::PageRequest {
                    after: Some(q.after).filter(|a| !a.is_empty()),
                    limit: q.limit.map(u64::from),
                },
            ))
            .await?;
        Ok(Response::new(api_pb::QueryModelResponse {
            model: rows.model,
            table: rows.table,
            rows: rows.rows.iter().map(to_struct).collect(),
            next: rows.next.unwrap_or_default(),
        }))
    }

    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        request: Request<api_pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let caller = self.caller(&request)?;
        let q = request.into_inner();
        let grant = api::grant_stream(&self.st, &caller, &q.view).map_err(|e| status(&e))?;
        if *self.st.streams.stopping().borrow() {
            return Err(status(&ApiError::unavailable(
                "the server is shutting down",
            )));
        }
        let (tx, rx) = mpsc::channel(STREAM_BUFFER_MAX);
        let st = self.st.clone();
        tracing::info!(
            subject = %caller.claims.sub,
            department = %caller.claims.dept,
            view = %grant.view_name,
            from = q.from_position,
            "event stream opened"
        );
        tokio::spawn(follow(st, caller, grant, q.from_position, tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn read_stream_history(
        &self,
        request: Request<api_pb::ReadStreamHistoryRequest>,
    ) -> Result<Response<api_pb::ReadStreamHistoryResponse>, Status> {
        use api_pb::read_stream_history_request::Subject;
        let caller = self.caller(&request)?;
        let (person, household, employer) = match request.into_inner().subject {
            Some(Subject::Person(r)) => (Some(r), None, None),
            Some(Subject::Household(r)) => (None, Some(r), None),
            Some(Subject::Employer(r)) => (None, None, Some(r)),
            None => (None, None, None),
        };
        let out = self
            .timed(async {
                let subject = api::history_subject(person, household, employer)?;
                api::history(&self.st, &caller, subject).await
            })
            .await?;
        Ok(Response::new(api_pb::ReadStreamHistoryResponse {
            subject: out.subject,
            through_position: out.through_position,
            warranted: out.warranted,
            entries: out
                .entries
                .iter()
                .filter_map(|e| e.as_object().map(to_struct))
                .collect(),
        }))
    }
}

/// Follows the log from `from` for one stream: each batch of events the
/// department's view holds is recorded as a personal-data read (when the
/// view has personal fields) and then sent, in log order. Ends when the
/// client goes away or the log fails (sent as the stream's last status).
async fn follow<S: EventStore + Clone>(
    st: Arc<AppState<S>>,
    caller: Caller,
    grant: StreamGrant,
    from: u64,
    tx: mpsc::Sender<Result<api_pb::StreamEventsResponse, Status>>,
) {
    let mut subscription = pathway_store::subscribe_all(st.engine.store(), from);
    let message_name = grant.view.message_name();
    let descriptor = published_pool().and_then(|p| p.get_message_by_name(message_name));
    let mut stopping = st.streams.stopping();
    loop {
        let first = tokio::select! {
            next = subscription.next() => next,
            () = tx.closed() => return,
            () = async {
                // The `Ref` it returns must not live across an await.
                let _ = stopping.wait_for(|stop| *stop).await.map(|_| ());
            } => {
                let resume = subscription.position();
                let _ = tx
                    .send(Err(status(&ApiError::unavailable(format!(
                        "the server is shutting down; resume from position {resume}"
                    )))))
                    .await;
                return;
            }
        };
        let mut batch = vec![first];
        while batch.len() < STREAM_BATCH_EVENTS_MAX {
            match subscription.next().now_or_never() {
                Some(next) => batch.push(next),
                None => break,
            }
        }
        let mut out = Vec::new();
        let mut refs = BTreeSet::new();
        let mut fields = BTreeSet::new();
        let mut records = Vec::with_capacity(batch.len());
        for next in batch {
            match next {
                Ok(r) => records.push(r),
                Err(e) => {
                    let _ = tx
                        .send(Err(status(&ApiError::unavailable(e.to_string()))))
                        .await;
                    return;
                }
            }
        }
        // Personal fields opened, so the view carries what the department
        // may see (and nothing of an erased person).
        let opened = pathway_bus::outgoing::outgoing_opened(&records, st.engine.keyring()).await;
        let opened = match opened {
            Ok(m) => m,
            Err(e) => {
                // An outage (e.g. the key table out of reach) the client
                // retries, resuming from its last position, as the relay does.
                let error = if e.is_outage() {
                    ApiError::unavailable(e.to_string())
                } else {
                    ApiError::internal(e.to_string())
                };
                let _ = tx.send(Err(status(&error))).await;
                return;
            }
        };
        for (record, messages) in records.iter().zip(opened) {
            let Some(message) = messages.into_iter().find(|m| m.department == grant.view) else {
                continue;
            };
            if grant.purpose.is_some()
                && let Some(desc) = &descriptor
                && let Ok(decoded) = DynamicMessage::decode(desc.clone(), message.payload.as_ref())
                && let Some(view) = decoded.get_field_by_name("view")
                && let Reflected::Message(view) = view.as_ref()
            {
                walk(view, "", &mut refs, &mut fields);
            }
            out.push(api_pb::StreamEventsResponse {
                position: record.position,
                event_id: record.event_id.to_string(),
                event_type: record.event_type.clone(),
                view: Some(prost_types::Any {
                    type_url: format!("type.googleapis.com/{message_name}"),
                    value: message.payload.to_vec(),
                }),
            });
        }
        if out.is_empty() {
            continue;
        }
        if let Some(purpose) = &grant.purpose {
            let access = Access {
                operation: "StreamEvents",
                resource: format!(
                    "view {} positions {}..={}",
                    grant.view_name,
                    out.first().map_or(0, |o| o.position),
                    out.last().map_or(0, |o| o.position)
                ),
                subject_kind: SubjectKind::Person,
                subject_key: "person_ref",
                subject_refs: refs.into_iter().collect(),
                fields: fields.into_iter().collect(),
                records_returned: out.len() as u64,
            };
            if let Err(e) = api::record_access(&st, &caller, purpose, access).await {
                let _ = tx.send(Err(status(&e))).await;
                return;
            }
        }
        for item in out {
            if tx.send(Ok(item)).await.is_err() {
                return;
            }
        }
    }
}

/// The fields set in a view message (as `variant.field` paths) and the
/// person references it names.
fn walk(
    message: &DynamicMessage,
    path: &str,
    refs: &mut BTreeSet<String>,
    fields: &mut BTreeSet<String>,
) {
    for (field, value) in message.fields() {
        let name = field.name();
        let here = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        let names_person = VIEW_SUBJECT_FIELDS.contains(&name);
        let mut leaf = |v: &Reflected| match v {
            Reflected::Message(m) => walk(m, &here, refs, fields),
            Reflected::String(s) => {
                if names_person {
                    refs.insert(s.clone());
                }
                fields.insert(here.clone());
            }
            _ => {
                fields.insert(here.clone());
            }
        };
        match value {
            Reflected::List(items) => items.iter().for_each(&mut leaf),
            other => leaf(other),
        }
    }
}

fn published_pool() -> Option<&'static DescriptorPool> {
    static POOL: std::sync::OnceLock<Option<DescriptorPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(pathway_proto::PUBLISHED_DESCRIPTOR_SET).ok())
        .as_ref()
}

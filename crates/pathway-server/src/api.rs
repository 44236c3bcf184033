//! The HTTP routes, the request pipeline, the mapping of every failure to
//! a status code with a JSON body `{"error": code, "message": …}` (plus
//! `field` and `rule` for a rejection), and the handler functions both
//! transports call: [`submit`], [`query`], [`grant_stream`], [`history`] and
//! [`record_access`]. The gRPC service ([`crate::grpc`]) is mounted in the
//! same router, so HTTP/1.1 JSON and gRPC (HTTP/2) share one port.
//!
//! Pipeline of a `/v1` request, outermost first: response metrics → timeout
//! (`request_timeout_ms`, 503) → authentication (401) and the rate per
//! department office (429 with `Retry-After`) → body limit (413) → handler
//! (authorization 403, region scope 403, then the engine).
//!
//! | failure | status | `error` |
//! |---|---|---|
//! | body is not JSON or not an envelope | 400 | `malformed` |
//! | a personal-data read without `x-pathway-purpose` | 400 | `malformed` (+ `field`, `rule`) |
//! | the domain rejected the command | 400 | `rejected` (+ `field`, `rule`) |
//! | stream kept changing / command id reused for other content | 409 | `conflict` |
//! | department, policy or region does not allow it | 403 | `forbidden` |
//! | token missing, malformed, forged, expired or revoked | 401 | `unauthenticated` |
//! | department office over its request rate | 429 | `overloaded` |
//! | body or batch over its limit | 413 | `too_large` |
//! | request over its time | 503 | `timeout` |
//! | the log is unavailable | 503 | `unavailable` |
//!
//! Region scoping of a token that carries a city: the envelope's `region`,
//! and any `region`, `residence_region` or `city` field of the command, must
//! lie in that city; a command on an existing person's stream is allowed only
//! while the person resides in that city. A query returns only the city's
//! rows (tables keyed by `city`, or by `region` filtered to the city); a table
//! that cannot be scoped is refused.
//!
//! Personal data: a query of a table about persons (see
//! [`policy::personal_subject`]), an auditor's history or replay, and a
//! stream of a view with personal fields need a purpose
//! ([`PURPOSE_HEADER`]) and append a `PersonalDataAccessed` event (who,
//! which persons, which fields, why) to `audit-access` before the data is
//! returned; if that append fails, nothing is returned.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{MatchedPath, Path, Query, Request, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::Utc;
use pathway_domain::{pb, person::Person};
use pathway_engine::{
    Engine, EngineError,
    json::{self, AnyCommand, Department},
};
use pathway_projections::{Table, Value, models, runtime, runtime::ReadStore, views::city_of};
use pathway_store::{EventStore, ExpectedVersion, StoreError};
use serde::Deserialize;
use serde_json::json;

use crate::{
    metrics::Metrics,
    policy::{self, Policy, SubjectKind},
    rate::RateLimiter,
    settings::{Limits, Secret},
    token::{self, Claims, Revocations, TokenError},
};

/// Everything a request handler reads.
pub struct AppState<S> {
    pub engine: Engine<S>,
    pub read_store: ReadStore,
    pub secret: Secret,
    pub policy: Policy,
    pub revocations: Revocations,
    pub rate: RateLimiter,
    pub limits: Limits,
    pub metrics: Metrics,
    pub ready_lag_positions_max: u64,
    /// Ends open gRPC event streams at shutdown.
    pub streams: crate::grpc::Streams,
}

type Shared<S> = Arc<AppState<S>>;

/// The router of every route.
pub fn router<S: EventStore + Clone>(state: Shared<S>) -> Router {
    let v1 = Router::new()
        .route("/v1/commands", post(post_commands::<S>))
        .route("/v1/models/{model}/{table}", get(get_rows::<S>))
        .route("/v1/audit/replay/{model}", get(get_replay::<S>))
        .route("/v1/audit/history", get(get_history::<S>))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.limits.request_body_bytes_max,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authenticate::<S>,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            time_limit::<S>,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
        .merge(v1)
        .with_state(state.clone())
        .merge(crate::grpc::router(state.clone()))
        .layer(middleware::from_fn_with_state(state, count::<S>))
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A failed request: its status and JSON body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// The `error` of the JSON body: `malformed`, `rejected`, `conflict`, …
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub rule: Option<String>,
    /// Seconds after which a refused request may be sent again (429).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            rule: None,
            retry_after_s: None,
        }
    }
    pub fn malformed(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// Malformed input naming the field and the rule it breaks (400).
    pub fn invalid(field: &str, rule: &str, problem: &str) -> Self {
        ApiError {
            field: Some(field.to_owned()),
            rule: Some(rule.to_owned()),
            ..ApiError::malformed(format!("{field}: {problem} ({rule})"))
        }
    }

    /// The outcome label of `pathway_commands_total`.
    fn outcome(&self) -> &'static str {
        match self.code {
            "rejected" => "rejected",
            "conflict" => "conflict",
            "forbidden" => "forbidden",
            "malformed" | "too_large" => "malformed",
            _ => "failed",
        }
    }

    /// The JSON body of the refusal.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(field) = &self.field {
            body["field"] = json!(field);
        }
        if let Some(rule) = &self.rule {
            body["rule"] = json!(rule);
        }
        body
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Rejected(r) => ApiError {
                field: Some(r.field.to_string()),
                rule: Some(r.rule.to_string()),
                ..ApiError::new(StatusCode::BAD_REQUEST, "rejected", r.to_string())
            },
            e @ (EngineError::CommandIdReused { .. }
            | EngineError::Conflict { .. }
            | EngineError::Store(StoreError::WrongExpectedVersion { .. })
            | EngineError::Store(StoreError::EventIdReused { .. })) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            EngineError::Store(e @ StoreError::InvalidInput(_)) => {
                ApiError::malformed(e.to_string())
            }
            // The log's or the key table's database is out of reach.
            e if e.is_unavailable() => ApiError::unavailable(e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), error = %self.message, "request failed");
        }
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

// ---------------------------------------------------------------------------
// Middleware
// ---------------------------------------------------------------------------

/// Counts every response by route and status.
async fn count<S: EventStore + Clone>(
    State(st): State<Shared<S>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    st.metrics
        .responses
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}

/// Answers 503 when a request takes longer than `request_timeout_ms`. A
/// command cut off here may still commit: retrying it with the same command
/// id is safe and returns its first result.
async fn time_limit<S: EventStore + Clone>(
    State(st): State<Shared<S>>,
    request: Request,
    next: Next,
) -> Response {
    let limit_ms = st.limits.request_timeout_ms;
    match tokio::time::timeout(Duration::from_millis(limit_ms), next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("request took longer than request_timeout_ms {limit_ms}; a command may be retried with the same command id"),
        )
        .into_response(),
    }
}

/// Verifies the bearer token, refuses revoked ones and departments the
/// policy does not know, applies the rate limit, and hands the claims on.
async fn authenticate<S: EventStore + Clone>(
    State(st): State<Shared<S>>,
    mut request: Request,
    next: Next,
) -> Response {
    match admit(&st, request.headers()) {
        Ok(claims) => {
            request.extensions_mut().insert(claims);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// Authenticates a request by its `authorization: Bearer …` header (HTTP) or
/// metadata (gRPC), refuses revoked tokens and unknown departments, and
/// takes one request from the office's rate.
pub fn admit<S>(st: &AppState<S>, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(TokenError::Missing)?;
    let claims = token::verify(&st.secret, bearer.trim(), Utc::now().timestamp())?;
    if st.revocations.is_revoked(&claims.jti) {
        return Err(TokenError::Revoked { jti: claims.jti }.into());
    }
    if !st.policy.knows(&claims.dept) {
        return Err(ApiError::forbidden(format!(
            "department {:?} has no grants in the authorization policy",
            claims.dept
        )));
    }
    let office = match &claims.city {
        Some(city) => format!("{}/{city}", claims.dept),
        None => claims.dept.clone(),
    };
    if let Err(retry_after_s) = st.rate.admit(&office, Instant::now()) {
        return Err(ApiError {
            retry_after_s: Some(retry_after_s),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                format!(
                    "{office}: more than {} requests per second; retry after {retry_after_s} s",
                    st.limits.requests_per_second_per_department
                ),
            )
        });
    }
    Ok(claims)
}

// ---------------------------------------------------------------------------
// The caller
// ---------------------------------------------------------------------------

/// The header (HTTP) or metadata key (gRPC) stating why personal data is read.
pub const PURPOSE_HEADER: &str = "x-pathway-purpose";
/// Longest purpose, in characters.
pub const PURPOSE_CHARS_MAX: usize = 200;
/// Subject references recorded in one `PersonalDataAccessed` event; a read
/// naming more is recorded as several parts (36-byte references keep an
/// event far below `EVENT_BYTES_MAX`).
pub const SUBJECT_REFS_PER_ACCESS_EVENT_MAX: usize = 2_000;
/// Stream of the access events (shared with warranted audit reads).
pub const ACCESS_STREAM: &str = pathway_audit::history::ACCESS_STREAM;

/// Which transport a request came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Http,
    Grpc,
}

/// An authenticated caller: the token's claims, the stated purpose, and the
/// transport.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: Claims,
    pub purpose: Option<String>,
    pub channel: Channel,
}

impl Caller {
    /// The caller of a request with these headers (HTTP headers, or gRPC
    /// metadata as headers). A purpose that is present but unusable is
    /// refused here; a missing one only when personal data is read.
    pub fn new(claims: Claims, headers: &HeaderMap, channel: Channel) -> Result<Caller, ApiError> {
        let purpose = match headers.get(PURPOSE_HEADER) {
            None => None,
            Some(v) => {
                let text = std::str::from_utf8(v.as_bytes())
                    .map_err(|_| {
                        ApiError::invalid(PURPOSE_HEADER, "purpose: UTF-8 text", "is not UTF-8")
                    })?
                    .trim()
                    .to_owned();
                if text.is_empty() {
                    None
                } else if text.chars().count() > PURPOSE_CHARS_MAX
                    || text.chars().any(char::is_control)
                {
                    return Err(ApiError::invalid(
                        PURPOSE_HEADER,
                        "purpose: 1–200 characters, no control characters",
                        "is too long or holds control characters",
                    ));
                } else {
                    Some(text)
                }
            }
        };
        Ok(Caller {
            claims,
            purpose,
            channel,
        })
    }

    /// The stated purpose, required before personal data is read.
    fn require_purpose(&self, what: &str) -> Result<String, ApiError> {
        self.purpose.clone().ok_or_else(|| {
            ApiError::invalid(
                PURPOSE_HEADER,
                "a read of personal data states its purpose",
                &format!("is missing: {what} holds personal data"),
            )
        })
    }
}

// ---------------------------------------------------------------------------
// Access events
// ---------------------------------------------------------------------------

/// One read of personal data, to be recorded before it is returned.
#[derive(Debug, Clone)]
pub struct Access {
    /// `QueryModel`, `StreamEvents`, `ReadStreamHistory`, `ReplayModel`.
    pub operation: &'static str,
    /// What was read: `dpf.persons`, `view dpf`, `person-<ref>`, …
    pub resource: String,
    pub subject_kind: SubjectKind,
    /// The column or field naming the subjects.
    pub subject_key: &'static str,
    /// The subjects whose data is returned (sorted, distinct).
    pub subject_refs: Vec<String>,
    /// The personal fields returned (sorted, distinct).
    pub fields: Vec<String>,
    pub records_returned: u64,
}

/// Appends the `PersonalDataAccessed` event(s) of `access` to
/// [`ACCESS_STREAM`]; the data may be returned only after this succeeded.
/// Returns the position of the last event appended.
pub async fn record_access<S: EventStore + Clone>(
    st: &AppState<S>,
    caller: &Caller,
    purpose: &str,
    access: Access,
) -> Result<u64, ApiError> {
    let now = Utc::now();
    let access_id = uuid::Uuid::new_v4();
    let claims = &caller.claims;
    let department = department(&claims.dept)?;
    let chunks: Vec<&[String]> = if access.subject_refs.is_empty() {
        vec![&[]]
    } else {
        access
            .subject_refs
            .chunks(SUBJECT_REFS_PER_ACCESS_EVENT_MAX)
            .collect()
    };
    let parts = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    let subject_kind = match access.subject_kind {
        SubjectKind::Person => pb::AuditSubjectKind::Person,
        SubjectKind::Household => pb::AuditSubjectKind::Household,
        SubjectKind::Ledger => pb::AuditSubjectKind::Unspecified,
    };
    let events: Vec<_> = chunks
        .into_iter()
        .zip(1u32..)
        .map(|(refs, part)| {
            let kind = pb::event::Kind::PersonalDataAccessed(pb::PersonalDataAccessed {
                access_id: access_id.to_string(),
                accessor_id: claims.sub.clone(),
                department: department as i32,
                city: claims.city.clone().unwrap_or_default(),
                token_id: claims.jti.clone(),
                channel: match caller.channel {
                    Channel::Http => pb::AccessChannel::Http,
                    Channel::Grpc => pb::AccessChannel::Grpc,
                } as i32,
                operation: access.operation.to_owned(),
                resource: access.resource.clone(),
                subject_kind: subject_kind as i32,
                subject_key: access.subject_key.to_owned(),
                subject_refs: refs.to_vec(),
                fields: access.fields.clone(),
                purpose: purpose.to_owned(),
                read_at: Some(prost_types::Timestamp {
                    seconds: now.timestamp(),
                    nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
                }),
                records_returned: access.records_returned,
                part,
                parts,
            });
            pathway_engine::record(
                uuid::Uuid::new_v4(),
                &kind,
                pathway_engine::Provenance {
                    occurred_at: now,
                    correlation_id: access_id.to_string(),
                    causation_id: access_id.to_string(),
                    actor_department: department,
                    actor_region: claims.city.clone().unwrap_or_else(|| "230000".to_owned()),
                    actor_id: claims.sub.clone(),
                    command_id: access_id.to_string(),
                },
            )
        })
        .collect();
    let mut last = 0;
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let batch: Vec<_> = events
            .by_ref()
            .take(pathway_store::limits::APPEND_EVENTS_MAX)
            .collect();
        let appended = st
            .engine
            .store()
            .append(ACCESS_STREAM, ExpectedVersion::Any, batch)
            .await
            .map_err(|e| ApiError::unavailable(format!("recording the access: {e}")))?;
        last = appended.last_position;
    }
    tracing::info!(
        subject = %claims.sub,
        department = %claims.dept,
        operation = access.operation,
        resource = %access.resource,
        subjects = access.subject_refs.len(),
        position = last,
        "personal data read recorded"
    );
    Ok(last)
}

// ---------------------------------------------------------------------------
// Commands (shared by HTTP and gRPC)
// ---------------------------------------------------------------------------

/// What an accepted command did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Accepted {
    pub command_id: String,
    pub command: String,
    pub stream: String,
    pub events: Vec<String>,
    pub first_position: Option<u64>,
    pub last_position: Option<u64>,
    pub stream_version: Option<u64>,
}

/// Refuses a batch over `commands_per_batch_max`.
pub fn check_batch<S>(st: &AppState<S>, commands: usize) -> Result<(), ApiError> {
    if commands > st.limits.commands_per_batch_max {
        st.metrics.commands.with_label_values(&["malformed"]).inc();
        return Err(ApiError::too_large(format!(
            "batch of {commands} commands over commands_per_batch_max {}",
            st.limits.commands_per_batch_max
        )));
    }
    Ok(())
}

/// Counts a command refused before it could be parsed.
pub fn count_malformed<S>(st: &AppState<S>) {
    st.metrics.commands.with_label_values(&["malformed"]).inc();
}

/// One command in the JSON envelope, from either transport: authorization,
/// region scope, then the engine; counted in the metrics.
pub async fn submit<S: EventStore + Clone>(
    st: &AppState<S>,
    claims: &Claims,
    value: &serde_json::Value,
) -> Result<Accepted, ApiError> {
    let result = decide(st, claims, value).await;
    let outcome = match &result {
        Ok(_) => "accepted",
        Err(e) => e.outcome(),
    };
    st.metrics.commands.with_label_values(&[outcome]).inc();
    result
}

/// `POST /v1/commands`: one envelope (answered with its result) or an array
/// of envelopes (each applied in order on its own, answered with one result
/// per envelope, each with its own status).
async fn post_commands<S: EventStore + Clone>(
    State(st): State<Shared<S>>,
    axum::Extension(claims): axum::Extension<Claims>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            count_malformed(&st);
            return ApiError::too_large(format!(
                "request body over request_body_bytes_max {}",
                st.limits.request_body_bytes_max
            ))
            .into_response();
        }
        Err(e) => return ApiError::malformed(e.body_text()).into_response(),
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            count_malformed(&st);
            return ApiError::malformed(format!("body is not JSON: {e}")).into_response();
        }
    };
    match value {
        serde_json::Value::Array(items) => {
            if let Err(e) = check_batch(&st, items.len()) {
                return e.into_response();
            }
            let mut results = Vec::with_capacity(items.len());
            for item in &items {
                let (status, body) = match submit(&st, &claims, item).await {
                    Ok(accepted) => (StatusCode::OK, json!(accepted)),
                    Err(e) => (e.status, e.body()),
                };
                results.push(json!({ "status": status.as_u16(), "body": body }));
            }
            Json(json!({ "results": results })).into_response()
        }
        single => match submit(&st, &claims, &single).await {
            Ok(accepted) => Json(accepted).into_response(),
            Err(e) => e.into_response(),
        },
    }
}

async fn decide<S: EventStore + Clone>(
    st: &AppState<S>,
    claims: &Claims,
    value: &serde_json::Value,
) -> Result<Accepted, ApiError> {
    let parsed = json::parse(&value.to_string()).map_err(ApiError::malformed)?;
    let token_department = department(&claims.dept)?;
    if pb::Department::from(parsed.envelope.department) != token_department {
        return Err(ApiError::forbidden(format!(
            "a {} token cannot send a command as department {:?}",
            claims.dept, parsed.envelope.department
        )));
    }
    if !st.policy.may_issue(&claims.dept, &parsed.name) {
        return Err(ApiError::forbidden(format!(
            "department {} may not issue {}",
            claims.dept, parsed.name
        )));
    }
    if let Some(city) = &claims.city {
        check_region(st, city, value, &parsed).await?;
    }
    let started = Instant::now();
    let handled = json::apply(&st.engine, &parsed).await;
    st.metrics
        .append_seconds
        .with_label_values(&[parsed.envelope.command.category()])
        .observe(started.elapsed().as_secs_f64());
    let handled = handled?;
    let e = &parsed.envelope;
    tracing::info!(
        subject = %claims.sub,
        department = %claims.dept,
        command = %parsed.name,
        command_id = %e.command_id,
        stream_id = %parsed.stream,
        events = handled.events.len(),
        "command accepted"
    );
    Ok(Accepted {
        command_id: e.command_id.to_string(),
        command: parsed.name.clone(),
        stream: parsed.stream.clone(),
        events: handled
            .events
            .iter()
            .map(|ev| ev.event_type().to_owned())
            .collect(),
        first_position: handled.append.as_ref().map(|a| a.first_position),
        last_position: handled.append.as_ref().map(|a| a.last_position),
        stream_version: handled.append.as_ref().map(|a| a.stream_version),
    })
}

/// The envelope's department of a token's `dept`.
fn department(dept: &str) -> Result<pb::Department, ApiError> {
    serde_json::from_value::<Department>(serde_json::Value::String(dept.to_owned()))
        .map(pb::Department::from)
        .map_err(|_| ApiError::forbidden(format!("token department {dept:?} is not a department")))
}

/// Fields of a command that place it in a region.
const REGION_FIELDS: &[&str] = &["region", "residence_region", "city"];

/// A city office acts only in its city and only for its residents.
async fn check_region<S: EventStore + Clone>(
    st: &AppState<S>,
    city: &str,
    value: &serde_json::Value,
    parsed: &json::Parsed,
) -> Result<(), ApiError> {
    let outside = |field: &str, region: &str| {
        ApiError::forbidden(format!(
            "{field} {region} is outside city {city}, the only city this token acts for"
        ))
    };
    if city_of(&parsed.envelope.region) != city {
        return Err(outside("region", &parsed.envelope.region));
    }
    for field in REGION_FIELDS {
        if let Some(region) = value["command"][field].as_str()
            && city_of(region) != city
        {
            return Err(outside(&format!("command.{field}"), region));
        }
    }
    if let AnyCommand::Person(command) = &parsed.envelope.command
        && !matches!(
            command,
            pathway_domain::person::PersonCommand::RegisterPerson(_)
        )
    {
        let (person, _) = st.engine.load::<Person>(&parsed.stream).await?;
        if let Some(registration) = person.registration()
            && city_of(&registration.residence_region) != city
        {
            return Err(ApiError::forbidden(format!(
                "person {} resides outside city {city}, the only city this token acts for",
                command.person_ref()
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Queries (shared by HTTP and gRPC)
// ---------------------------------------------------------------------------

/// Rows of one read-model table, as column name → value objects.
#[derive(Debug, Clone)]
pub struct Rows {
    pub model: String,
    pub table: String,
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Where the next page starts (pass it back as `after`); `None` on the
    /// last page.
    pub next: Option<String>,
}

/// Rows per page of a read-model query when the caller names no limit.
pub const QUERY_PAGE_ROWS_DEFAULT: usize = 1_000;

/// Which page of a read-model query: after the cursor a previous page
/// returned as `next` (from the first row without one), at most `limit`
/// rows (default [`QUERY_PAGE_ROWS_DEFAULT`], at most
/// [`runtime::QUERY_PAGE_ROWS_MAX`]).
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: Option<u64>,
}

/// The cursor of a page that ends at `key`: its values as a JSON array,
/// base64url-encoded (opaque to clients).
fn encode_cursor(key: &[Value]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!(key).to_string())
}

/// The key a cursor from [`encode_cursor`] holds, checked against `table`.
fn decode_cursor(table: &Table, cursor: &str) -> Result<Vec<Value>, ApiError> {
    use base64::Engine as _;
    let bad =
        |why: &str| ApiError::invalid("after", "a `next` cursor from a page of this table", why);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad("is not base64url"))?;
    let key: Vec<Value> = serde_json::from_slice(&bytes).map_err(|_| bad("is not a cursor"))?;
    runtime::check_full_key(table, &key).map_err(|_| bad("does not fit this table's key"))?;
    Ok(key)
}

/// Rows of `model.table_name`, filtered by `city` and `year`, one page at a
/// time in key order: the policy must grant the model, a city token reads
/// only its city, and rows about persons need a purpose and are recorded as
/// read before they are returned. (A table limited to a city through its
/// `region` column is filtered after the page is read, so such a page may
/// hold fewer rows than the limit; `next` still says whether more follow.)
pub async fn query<S: EventStore + Clone>(
    st: &AppState<S>,
    caller: &Caller,
    model: &str,
    table_name: &str,
    city: Option<String>,
    year: Option<i32>,
    page: PageRequest,
) -> Result<Rows, ApiError> {
    let claims = &caller.claims;
    let projection = models::by_name(model)
        .ok_or_else(|| ApiError::not_found(format!("no read model {model:?}")))?;
    if !st.policy.may_read(&claims.dept, model) {
        return Err(ApiError::forbidden(format!(
            "department {} may not read model {model}",
            claims.dept
        )));
    }
    let table = *projection
        .tables()
        .iter()
        .filter(|t| !t.name.starts_with("lookup_"))
        .find(|t| t.name == table_name)
        .ok_or_else(|| ApiError::not_found(format!("model {model} has no table {table_name:?}")))?;
    let has = |c: &str| table.columns().any(|col| col.name == c);
    let city = match (&claims.city, city) {
        (Some(own), Some(asked)) if *own != asked => {
            return Err(ApiError::forbidden(format!(
                "this token reads only city {own}, not {asked}"
            )));
        }
        (Some(own), _) => Some(own.clone()),
        (None, asked) => asked,
    };
    let mut filters: Vec<(&'static str, Value)> = Vec::new();
    let mut region_city = None;
    if let Some(city) = city {
        if has("city") {
            filters.push(("city", Value::Text(city)));
        } else if has("region") {
            region_city = Some(city);
        } else if claims.city.is_some() {
            return Err(ApiError::forbidden(format!(
                "table {model}.{table_name} cannot be limited to a city"
            )));
        } else {
            return Err(ApiError::malformed(format!(
                "table {model}.{table_name} has no city column"
            )));
        }
    }
    if let Some(year) = year {
        if !has("year") {
            return Err(ApiError::malformed(format!(
                "table {model}.{table_name} has no year column"
            )));
        }
        filters.push(("year", Value::Int(year.into())));
    }
    let limit = match page.limit {
        None => QUERY_PAGE_ROWS_DEFAULT,
        Some(n) if (1..=runtime::QUERY_PAGE_ROWS_MAX as u64).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::invalid(
                "limit",
                &format!("1 to {}", runtime::QUERY_PAGE_ROWS_MAX),
                &format!("is {n}"),
            ));
        }
    };
    let after = page
        .after
        .as_deref()
        .map(|cursor| decode_cursor(&table, cursor))
        .transpose()?;
    let personal = policy::personal_subject(&table);
    let purpose = match personal {
        Some(_) => Some(caller.require_purpose(&format!("table {model}.{table_name}"))?),
        None => None,
    };
    let runtime::Page { rows, next } = {
        let (target, model) = (st.read_store.clone(), model.to_owned());
        tokio::task::spawn_blocking(move || {
            suppressed_page(&target, &model, &table, &filters, after.as_deref(), limit)
        })
        .await
        .map_err(|e| ApiError::internal(format!("query task: {e}")))?
        .map_err(|e| ApiError::unavailable(e.to_string()))?
    };
    let region_at = table.columns().position(|c| c.name == "region");
    let rows: Vec<&Vec<Value>> = rows
        .iter()
        .filter(|row| match (&region_city, region_at) {
            (Some(city), Some(i)) => matches!(&row[i], Value::Text(r) if city_of(r) == *city),
            _ => true,
        })
        .collect();
    if let (Some((key, kind)), Some(purpose)) = (personal, purpose)
        && !rows.is_empty()
    {
        let at = table.columns().position(|c| c.name == key);
        let refs: std::collections::BTreeSet<String> = rows
            .iter()
            .filter_map(|row| match at.map(|i| &row[i]) {
                Some(Value::Text(r)) => Some(r.clone()),
                _ => None,
            })
            .collect();
        let fields: std::collections::BTreeSet<String> =
            table.columns().map(|c| c.name.to_owned()).collect();
        record_access(
            st,
            caller,
            &purpose,
            Access {
                operation: "QueryModel",
                resource: format!("{model}.{table_name}"),
                subject_kind: kind,
                subject_key: key,
                subject_refs: refs.into_iter().collect(),
                fields: fields.into_iter().collect(),
                records_returned: rows.len() as u64,
            },
        )
        .await?;
    }
    let rows = rows
        .into_iter()
        .map(|row| {
            table
                .columns()
                .zip(row)
                .map(|(c, v)| (c.name.to_owned(), json!(v)))
                .collect()
        })
        .collect();
    Ok(Rows {
        model: model.to_owned(),
        table: table_name.to_owned(),
        rows,
        next: next.as_deref().map(encode_cursor),
    })
}

#[derive(Debug, Deserialize)]
struct RowsQuery {
    city: Option<String>,
    year: Option<i32>,
    after: Option<String>,
    limit: Option<u64>,
}

/// `GET /v1/models/{model}/{table}?city=&year=&after=&limit=`.
async fn get_rows<S: EventStore + Clone>(
    State(st): State<Shared<S>>,
    axum::Extension(claims): axum::Extension<Claims>,
    headers: HeaderMap,
    Path((model, table_name)): Path<(String, String)>,
    query_string: Result<Query<RowsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query_string.map_err(|e| ApiError::malformed(e.body_text()))?;
    let caller = Caller::new(claims, &headers, Channel::Http)?;
    let page = PageRequest {
        after: q.after,
        limit: q.limit,
    };
    let rows = query(&st, &caller, &model, &table_name, q.city, q.year, page).await?;
    Ok(Json(json!({
        "model": rows.model,
        "table": rows.table,
        "rows": rows.rows,
        "next": rows.next,
    }))
    .into_response())
}

// ---------------------------------------------------------------------------
// Department event streams (gRPC `StreamEvents`)
// ---------------------------------------------------------------------------

/// A granted event stream: which department view, and whether each
/// delivered batch must be recorded as a personal-data read (with the
/// purpose it was asked for).
#[derive(Debug, Clone)]
pub struct StreamGrant {
    pub view: pathway_bus::subjects::Department,
    pub view_name: String,
    pub purpose: Option<String>,
}

/// Checks that the caller may follow `view` (empty: the one model its
/// department reads): the policy must grant the model of the same name, a
/// city-scoped token is refused (views cannot yet be limited to a city), and
/// a view with personal data needs a purpose.
pub fn grant_stream<S>(
    st: &AppState<S>,
    caller: &Caller,
    view: &str,
) -> Result<StreamGrant, ApiError> {
    let claims = &caller.claims;
    let view_name = if view.is_empty() {
        let granted: Vec<&String> = st
            .policy
            .departments
            .get(&claims.dept)
            .map(|g| g.models.iter().collect())
            .unwrap_or_default();
        match granted.as_slice() {
            [one] => (*one).clone(),
            _ => {
                return Err(ApiError::invalid(
                    "view",
                    "name the view when the department reads more or fewer than one",
                    "is empty",
                ));
            }
        }
    } else {
        view.to_owned()
    };
    let department = pathway_bus::subjects::Department::parse(&view_name)
        .filter(|d| *d != pathway_bus::subjects::Department::Audit)
        .ok_or_else(|| ApiError::not_found(format!("no department view {view_name:?}")))?;
    if !st.policy.may_read(&claims.dept, &view_name) {
        return Err(ApiError::forbidden(format!(
            "department {} may not read view {view_name}",
            claims.dept
        )));
    }
    if let Some(city) = &claims.city {
        return Err(ApiError::forbidden(format!(
            "a token scoped to city {city} cannot follow the provincial view {view_name}"
        )));
    }
    let purpose = if policy::PERSONAL_VIEWS.contains(&view_name.as_str()) {
        Some(caller.require_purpose(&format!("view {view_name}"))?)
    } else {
        None
    };
    Ok(StreamGrant {
        view: department,
        view_name,
        purpose,
    })
}

// ---------------------------------------------------------------------------
// Auditors (shared by HTTP and gRPC)
// ---------------------------------------------------------------------------

/// The department whose tokens may use the audit routes.
const AUDITOR_DEPARTMENT: &str = "auditor";

fn auditors_only(claims: &Claims) -> Result<(), ApiError> {
    if claims.dept == AUDITOR_DEPARTMENT {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "department {} may not use the audit routes",
            claims.dept
        )))
    }
}

impl From<pathway_audit::AuditError> for ApiError {
    fn from(e: pathway_audit::AuditError) -> Self {
        match e {
            pathway_audit::AuditError::Invalid(m) => ApiError::malformed(m),
            pathway_audit::AuditError::Projection(
                pathway_projections::ProjectionError::UnknownModel(m),
            ) => ApiError::not_found(format!("no read model {m:?}")),
            other => ApiError::unavailable(other.to_string()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayQuery {
    /// RFC 3339 with an offset, e.g. `2023-12-31T23:59:59+08:00`.
    as_of: chrono::DateTime<chrono::FixedOffset>,
    /// `business` (default: when things happened) or `recorded` (when Pathway stored them).
    #[serde(default)]
    clock: Option<String>,
}

/// `GET /v1/audit/replay/{model}?as_of=…[&clock=recorded]`: the read model
/// rebuilt from the log as it stood at that moment, in scratch space; the
/// live models are not touched. Needs a purpose when the model has tables
/// about persons, and records the persons returned.
async fn get_replay<S: EventStore + Clone>(
    State(st): State<Shared<S>>,
    axum::Extension(claims): axum::Extension<Claims>,
    headers: HeaderMap,
    Path(model): Path<String>,
    query: Result<Query<ReplayQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    auditors_only(&claims)?;
    let caller = Caller::new(claims, &headers, Channel::Http)?;
    let Query(query) = query.map_err(|e| ApiError::malformed(e.body_text()))?;
    let clock = match query.clock.as_deref() {
        None | Some("business") => pathway_audit::replay::Clock::Business,
        Some("recorded") => pathway_audit::replay::Clock::Recorded,
        Some(other) => {
            return Err(ApiError::malformed(format!(
                "clock {other:?}: business or recorded expected"
            )));
        }
    };
    let personal_model = models::by_name(&model).is_some_and(|p| {
        p.tables()
            .iter()
            .any(|t| policy::personal_subject(t).is_some())
    });
    let purpose = if personal_model {
        Some(caller.require_purpose(&format!("model {model}"))?)
    } else {
        None
    };
    let scratch =
        tempfile::tempdir().map_err(|e| ApiError::internal(format!("scratch directory: {e}")))?;
    let replayed = pathway_audit::replay::replay_with_keys(
        st.engine.store(),
        &model,
        query.as_of.to_utc(),
        clock,
        scratch.path(),
        st.engine.keyring(),
    )
    .await?;
    if let Some(purpose) = purpose {
        let mut refs = std::collections::BTreeSet::new();
        let mut fields = std::collections::BTreeSet::new();
        let mut records = 0u64;
        for (table, rows) in &replayed.tables {
            let Some((key, _)) = policy::personal_subject(table) else {
                continue;
            };
            if rows.is_empty() {
                continue;
            }
            records += rows.len() as u64;
            fields.extend(
                table
                    .columns()
                    .map(|c| format!("{}.{}", table.name, c.name)),
            );
            if key == "person_ref"
                && let Some(i) = table.columns().position(|c| c.name == key)
            {
                refs.extend(rows.iter().filter_map(|r| match &r[i] {
                    Value::Text(t) => Some(t.clone()),
                    _ => None,
                }));
            }
        }
        if records > 0 {
            record_access(
                &st,
                &caller,
                &purpose,
                Access {
                    operation: "ReplayModel",
                    resource: format!("replay {model} as of {}", query.as_of.to_rfc3339()),
                    subject_kind: SubjectKind::Person,
                    subject_key: "person_ref",
                    subject_refs: refs.into_iter().collect(),
                    fields: fields.into_iter().collect(),
                    records_returned: records,
                },
            )
            .await?;
        }
    }
    let tables: serde_json::Map<String, serde_json::Value> = replayed
        .tables
        .iter()
        .map(|(table, rows)| {
            let rows: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| {
                    serde_json::Value::Object(
                        table
                            .columns()
                            .zip(row)
                            .map(|(c, v)| (c.name.to_owned(), json!(v)))
                            .collect(),
                    )
                })
                .collect();
            (table.name.to_owned(), serde_json::Value::Array(rows))
        })
        .collect();
    Ok(Json(json!({
        "model": replayed.model,
        "as_of": replayed.as_of.to_rfc3339(),
        "events": replayed.events,
        "last_position": replayed.last_position,
        "tables": tables,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    person: Option<String>,
    household: Option<String>,
    employer: Option<String>,
}

/// A subject's history as returned by both transports.
#[derive(Debug, Clone)]
pub struct HistoryOut {
    pub subject: String,
    pub through_position: u64,
    pub warranted: bool,
    pub entries: Vec<serde_json::Value>,
}

/// Payload keys that name persons in a history entry.
const HISTORY_PERSON_KEYS: &[&str] = &["person_ref", "member_person_refs", "members"];

/// Every event about `subject` in order, with who did it and why; personal
/// fields pseudonymised unless a warrant names this auditor (the token's
/// subject). Auditors only; needs a purpose, and the read (persons named,
/// fields shown) is recorded before the history is returned.
pub async fn history<S: EventStore + Clone>(
    st: &AppState<S>,
    caller: &Caller,
    subject: pathway_audit::history::Subject,
) -> Result<HistoryOut, ApiError> {
    let claims = &caller.claims;
    auditors_only(claims)?;
    let purpose = caller.require_purpose("a subject's history")?;
    let history = pathway_audit::history::history_with_keys(
        st.engine.store(),
        &subject,
        Some(&claims.sub),
        Utc::now(),
        st.engine.keyring(),
    )
    .await?;
    let mut refs = std::collections::BTreeSet::new();
    if subject.kind == pathway_audit::history::SubjectKind::Person {
        refs.insert(subject.reference.clone());
    }
    let mut fields = std::collections::BTreeSet::new();
    for entry in &history.entries {
        if let serde_json::Value::Object(payload) = &entry.payload {
            for (key, value) in payload {
                fields.insert(format!("{}.{key}", entry.event_type));
                if HISTORY_PERSON_KEYS.contains(&key.as_str()) {
                    collect_strings(value, &mut refs);
                }
            }
        }
    }
    if !history.entries.is_empty() {
        record_access(
            st,
            caller,
            &purpose,
            Access {
                operation: "ReadStreamHistory",
                resource: format!(
                    "{}{}",
                    subject.stream_id(),
                    if history.warrant.is_some() {
                        " (in clear under warrant)"
                    } else {
                        " (pseudonymised)"
                    }
                ),
                subject_kind: SubjectKind::Person,
                subject_key: "person_ref",
                subject_refs: refs.into_iter().collect(),
                fields: fields.into_iter().collect(),
                records_returned: history.entries.len() as u64,
            },
        )
        .await?;
    }
    let entries = history
        .entries
        .iter()
        .map(|e| serde_json::to_value(e).map_err(|e| ApiError::internal(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HistoryOut {
        subject: subject.stream_id(),
        through_position: history.through_position,
        warranted: history.warrant.is_some(),
        entries,
    })
}

fn collect_strings(value: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
    match value {
        serde_json::Value::String(s) => {
            out.insert(s.clone());
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// The subject of a history request: exactly one of person, household or
/// employer.
pub fn history_subject(
    person: Option<String>,
    household: Option<String>,
    employer: Option<String>,
) -> Result<pathway_audit::history::Subject, ApiError> {
    use pathway_audit::history::{Subject, SubjectKind as Kind};
    let (kind, reference) = match (person, household, employer) {
        (Some(r), None, None) => (Kind::Person, r),
        (None, Some(r), None) => (Kind::Household, r),
        (None, None, Some(r)) => (Kind::Employer, r),
        _ => {
            return Err(ApiError::malformed(
                "exactly one of person, household or employer is required",
            ));
        }
    };
    Ok(Subject { kind, reference })
}

/// `GET /v1/audit/history?person=REF` (or `household=`, `employer=`).
async fn get_history<S: EventStore + Clone>(
    State(st): State<Shared<S>>,
    axum::Extension(claims): axum::Extension<Claims>,
    headers: HeaderMap,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    auditors_only(&claims)?;
    let caller = Caller::new(claims, &headers, Channel::Http)?;
    let Query(query) = query.map_err(|e| ApiError::malformed(e.body_text()))?;
    let subject = history_subject(query.person, query.household, query.employer)?;
    let out = history(&st, &caller, subject).await?;
    Ok(Json(json!({
        "subject": out.subject,
        "through_position": out.through_position,
        "warranted": out.warranted,
        "entries": out.entries,
    }))
    .into_response())
}

/// One page of rows, with the committee's small cells (persons counts below
/// the policy's minimum, above zero) replaced by `"<N"`, as `pathway query`
/// shows them.
fn suppressed_page(
    target: &ReadStore,
    model: &str,
    table: &Table,
    filters: &[(&str, Value)],
    after: Option<&[Value]>,
    limit: usize,
) -> Result<runtime::Page, pathway_projections::ProjectionError> {
    let mut page = runtime::query_page(target, model, table, filters, after, limit)?;
    models::suppress_small_cells(model, table, &mut page.rows, Utc::now().date_naive());
    Ok(page)
}

// ---------------------------------------------------------------------------
// Health, readiness, metrics
// ---------------------------------------------------------------------------

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when the log answers and every read model is at most
/// `ready_lag_positions_max` positions behind its head; 503 otherwise.
async fn readyz<S: EventStore + Clone>(State(st): State<Shared<S>>) -> Response {
    let store = st.engine.store();
    let head = match store.head().await {
        Ok(h) => h.position,
        Err(e) => {
            return ApiError::unavailable(format!("event log: {e}")).into_response();
        }
    };
    let mut ready = true;
    let mut lags = serde_json::Map::new();
    for p in models::all() {
        match runtime::lag(store, &st.read_store, p.name()).await {
            Ok(lag) => {
                ready &= lag.positions_behind <= st.ready_lag_positions_max;
                lags.insert(p.name().to_owned(), json!(lag.positions_behind));
            }
            Err(e) => {
                ready = false;
                lags.insert(p.name().to_owned(), json!(e.to_string()));
            }
        }
    }
    let body = json!({
        "ready": ready,
        "head_position": head,
        "lag_positions_max": st.ready_lag_positions_max,
        "positions_behind": lags,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics<S: EventStore + Clone>(State(st): State<Shared<S>>) -> Response {
    for p in models::all() {
        if let Ok(lag) = runtime::lag(st.engine.store(), &st.read_store, p.name()).await {
            st.metrics
                .projector_lag_positions
                .with_label_values(&[p.name()])
                .set(i64::try_from(lag.positions_behind).unwrap_or(i64::MAX));
            st.metrics
                .projector_lag_seconds
                .with_label_values(&[p.name()])
                .set(lag.seconds_behind);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        st.metrics.render(),
    )
        .into_response()
}

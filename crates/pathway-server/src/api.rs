//! The HTTP routes, the request pipeline and the mapping of every failure to
//! a status code with a JSON body `{"error": code, "message": …}` (plus
//! `field` and `rule` for a rejection).
//!
//! Pipeline of a `/v1` request, outermost first: response metrics → timeout
//! (`request_timeout_ms`, 503) → authentication (401) and the rate per
//! department office (429 with `Retry-After`) → body limit (413) → handler
//! (authorization 403, region scope 403, then the engine).
//!
//! | failure | status | `error` |
//! |---|---|---|
//! | body is not JSON or not an envelope | 400 | `malformed` |
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
use pathway_domain::{pb, person::Person, policy::PolicyTable};
use pathway_engine::{
    Engine, EngineError,
    json::{self, AnyCommand, Department},
};
use pathway_projections::{Table, Value, models, runtime, runtime::ReadStore, views::city_of};
use pathway_store::{EventStore, StoreError};
use serde::Deserialize;
use serde_json::json;

use crate::{
    metrics::Metrics,
    policy::Policy,
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
        .layer(middleware::from_fn_with_state(state.clone(), count::<S>))
        .with_state(state)
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A failed request: its status and JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    rule: Option<String>,
    retry_after_s: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            rule: None,
            retry_after_s: None,
        }
    }
    fn malformed(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed", message)
    }
    fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
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

    fn body(&self) -> serde_json::Value {
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
            EngineError::Store(
                e @ (StoreError::Unavailable(_) | StoreError::Timeout { .. } | StoreError::Closed),
            ) => ApiError::unavailable(e.to_string()),
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

fn admit<S>(st: &AppState<S>, headers: &HeaderMap) -> Result<Claims, ApiError> {
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
// Commands
// ---------------------------------------------------------------------------

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
            st.metrics.commands.with_label_values(&["malformed"]).inc();
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
            st.metrics.commands.with_label_values(&["malformed"]).inc();
            return ApiError::malformed(format!("body is not JSON: {e}")).into_response();
        }
    };
    match value {
        serde_json::Value::Array(items) => {
            if items.len() > st.limits.commands_per_batch_max {
                st.metrics.commands.with_label_values(&["malformed"]).inc();
                return ApiError::too_large(format!(
                    "batch of {} commands over commands_per_batch_max {}",
                    items.len(),
                    st.limits.commands_per_batch_max
                ))
                .into_response();
            }
            let mut results = Vec::with_capacity(items.len());
            for item in &items {
                let (status, body) = match one_command(&st, &claims, item).await {
                    Ok(body) => (StatusCode::OK, body),
                    Err(e) => (e.status, e.body()),
                };
                results.push(json!({ "status": status.as_u16(), "body": body }));
            }
            Json(json!({ "results": results })).into_response()
        }
        single => match one_command(&st, &claims, &single).await {
            Ok(body) => Json(body).into_response(),
            Err(e) => e.into_response(),
        },
    }
}

async fn one_command<S: EventStore + Clone>(
    st: &AppState<S>,
    claims: &Claims,
    value: &serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    let result = decide(st, claims, value).await;
    let outcome = match &result {
        Ok(_) => "accepted",
        Err(e) => e.outcome(),
    };
    st.metrics.commands.with_label_values(&[outcome]).inc();
    result
}

async fn decide<S: EventStore + Clone>(
    st: &AppState<S>,
    claims: &Claims,
    value: &serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
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
    Ok(json!({
        "command_id": e.command_id,
        "command": parsed.name,
        "stream": parsed.stream,
        "events": handled.events.iter().map(|ev| ev.event_type()).collect::<Vec<_>>(),
        "first_position": handled.append.as_ref().map(|a| a.first_position),
        "last_position": handled.append.as_ref().map(|a| a.last_position),
        "stream_version": handled.append.as_ref().map(|a| a.stream_version),
    }))
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
// Queries
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct RowsQuery {
    city: Option<String>,
    year: Option<i32>,
}

/// `GET /v1/models/{model}/{table}?city=&year=`.
async fn get_rows<S: EventStore + Clone>(
    State(st): State<Shared<S>>,
    axum::Extension(claims): axum::Extension<Claims>,
    Path((model, table_name)): Path<(String, String)>,
    query: Result<Query<RowsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::malformed(e.body_text()))?;
    let projection = models::by_name(&model)
        .ok_or_else(|| ApiError::not_found(format!("no read model {model:?}")))?;
    if !st.policy.may_read(&claims.dept, &model) {
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
    let city = match (&claims.city, query.city) {
        (Some(own), Some(asked)) if *own != asked => {
            return Err(ApiError::forbidden(format!(
                "this token reads only city {own}, not {asked}"
            )));
        }
        (Some(own), _) => Some(own.clone()),
        (None, asked) => asked,
    };
    let mut filters: Vec<(&str, Value)> = Vec::new();
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
    if let Some(year) = query.year {
        if !has("year") {
            return Err(ApiError::malformed(format!(
                "table {model}.{table_name} has no year column"
            )));
        }
        filters.push(("year", Value::Int(year.into())));
    }
    let rows = {
        let (target, model) = (st.read_store.clone(), model.clone());
        let filters: Vec<(&'static str, Value)> = filters
            .into_iter()
            .map(|(c, v)| {
                let name = table
                    .columns()
                    .find(|col| col.name == c)
                    .map_or("", |col| col.name);
                (name, v)
            })
            .collect();
        tokio::task::spawn_blocking(move || suppressed_rows(&target, &model, &table, &filters))
            .await
            .map_err(|e| ApiError::internal(format!("query task: {e}")))?
            .map_err(|e| ApiError::unavailable(e.to_string()))?
    };
    let region_at = table.columns().position(|c| c.name == "region");
    let objects: Vec<serde_json::Value> = rows
        .iter()
        .filter(|row| match (&region_city, region_at) {
            (Some(city), Some(i)) => matches!(&row[i], Value::Text(r) if city_of(r) == *city),
            _ => true,
        })
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
    Ok(Json(json!({ "model": model, "table": table_name, "rows": objects })).into_response())
}

// ---------------------------------------------------------------------------
// Auditors
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
/// live models are not touched.
async fn get_replay<S: EventStore + Clone>(
    State(st): State<Shared<S>>,
    axum::Extension(claims): axum::Extension<Claims>,
    Path(model): Path<String>,
    query: Result<Query<ReplayQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    auditors_only(&claims)?;
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
    let scratch =
        tempfile::tempdir().map_err(|e| ApiError::internal(format!("scratch directory: {e}")))?;
    let replayed = pathway_audit::replay::replay(
        st.engine.store(),
        &model,
        query.as_of.to_utc(),
        clock,
        scratch.path(),
    )
    .await?;
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

/// `GET /v1/audit/history?person=REF` (or `household=`, `employer=`): every
/// event about the subject in order, with who did it and why; personal
/// fields pseudonymised unless a warrant names this auditor (the token's
/// subject), and a warranted read is itself recorded in the log.
async fn get_history<S: EventStore + Clone>(
    State(st): State<Shared<S>>,
    axum::Extension(claims): axum::Extension<Claims>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    use pathway_audit::history::{Subject, SubjectKind};
    auditors_only(&claims)?;
    let Query(query) = query.map_err(|e| ApiError::malformed(e.body_text()))?;
    let subject = match (query.person, query.household, query.employer) {
        (Some(r), None, None) => Subject {
            kind: SubjectKind::Person,
            reference: r,
        },
        (None, Some(r), None) => Subject {
            kind: SubjectKind::Household,
            reference: r,
        },
        (None, None, Some(r)) => Subject {
            kind: SubjectKind::Employer,
            reference: r,
        },
        _ => {
            return Err(ApiError::malformed(
                "exactly one of person, household or employer is required",
            ));
        }
    };
    let history =
        pathway_audit::history::history(st.engine.store(), &subject, Some(&claims.sub), Utc::now())
            .await?;
    Ok(Json(json!({
        "subject": subject.stream_id(),
        "through_position": history.through_position,
        "warranted": history.warrant.is_some(),
        "entries": history.entries,
    }))
    .into_response())
}

/// Rows with the committee's small cells (persons counts below the policy's
/// minimum, above zero) replaced by `"<N"`, as `pathway query` shows them.
fn suppressed_rows(
    target: &ReadStore,
    model: &str,
    table: &Table,
    filters: &[(&str, Value)],
) -> Result<Vec<Vec<Value>>, pathway_projections::ProjectionError> {
    let small = PolicyTable::builtin()
        .at(Utc::now().date_naive())
        .small_cell_min;
    let mut rows = runtime::query(target, model, table, filters)?;
    models::suppress_small_cells(model, table, &mut rows, small);
    Ok(rows)
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

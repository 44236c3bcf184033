//! The departments' web console (issue #11): server-rendered, accessible
//! HTML pages over the read models and the log, in Simplified Chinese by
//! default and English on request.
//!
//! [`router`] builds an `axum::Router` from a [`ConsoleContext`]; `pathway
//! serve` mounts it under `/console` (the context's
//! [`ConsoleOptions::base_path`]). No JavaScript, no CDN: pages are HTML from
//! `maud` templates whose every label comes from the message catalogs in
//! `i18n/` ([`Locale`]), charts are SVG drawn on the server with `plotters`,
//! each with a table beside it, and the one stylesheet is served by the
//! router itself.
//!
//! | route (under the base path) | who | what |
//! |---|---|---|
//! | `GET /` | signed in | the pages this department may open |
//! | `GET /sign-in`, `POST /sign-in`, `POST /sign-out` | anyone | the department bearer token in, an HttpOnly SameSite=Strict cookie out |
//! | `GET /dashboard?year=` | may read `committee` | new employment vs the target by city and year, Four Ones, posts, fund, city reports |
//! | `GET /cases?q=&city=&page=` | may read `dpf` | the city's case list with search |
//! | `GET /cases/{person_ref}` | may read `dpf`, same city | one person's case |
//! | `GET /phase-outs?on=` | may read `civil_affairs` | phase-outs ending within 30 days, overdue ones, overdue reassessments |
//! | `GET /graduates?page=` | may read `education` | graduate outcomes by school and per graduate |
//! | `GET /audit/timeline?person=` | `auditor` | a person's events in order, with actor and cause |
//! | `GET /audit/verification` | `auditor` | the chain verified up to the head, and the last signed checkpoint |
//!
//! Authorization is the API's: the same token verification and revocation
//! list, the same `deploy/policy/authorization.toml` (`Policy::may_read`),
//! the same region scoping (a token with a city sees that city only; a table
//! that cannot be limited to a city is refused), the same small-cell
//! suppression of the committee's counts. A refusal is a 403 page.

mod charts;
mod data;
mod i18n;
mod layout;
mod pages;
mod session;

use std::sync::Arc;

use axum::{
    Router,
    http::{HeaderValue, header},
    response::IntoResponse,
    routing::{get, post},
};
use chrono::{NaiveDate, Utc};
use pathway_projections::runtime::ReadStore;
use pathway_server::{policy::Policy, settings::Secret, token::Revocations};
use pathway_store::EventStore;

pub use i18n::Locale;
pub use pathway_audit::checkpoint::VerifyingKey;

/// Name of the cookie that carries the signed-in department's token.
pub const SESSION_COOKIE: &str = "pathway_console_session";
/// Name of the cookie that remembers the chosen language.
pub const LANG_COOKIE: &str = "pathway_console_lang";
/// Rows on one page of a long table.
pub const PAGE_ROWS_DEFAULT: usize = 50;
/// Phase-outs whose planned end is at most this many days ahead are "ending soon".
pub const PHASE_OUT_WINDOW_DAYS: i64 = 30;
/// A reassessment requested this many days ago and not yet done is overdue.
pub const REASSESSMENT_DUE_DAYS: i64 = 30;
/// Longest search text accepted on the case list, in characters.
pub const SEARCH_CHARS_MAX: usize = 64;

/// How the console is mounted and shown.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// Path the router is mounted under, without a trailing slash
    /// (`/console`); links and cookie paths start with it.
    pub base_path: String,
    /// Mark cookies `Secure` (keep on behind TLS; tests over plain HTTP turn it off).
    pub secure_cookies: bool,
    /// The day pages count from (the phase-out calendar); `None` is today in
    /// China Standard Time. The demo reads as of the end of the plan.
    pub today: Option<NaiveDate>,
    /// Key whose signatures the verification page trusts; without one it
    /// shows a checkpoint's key id but cannot vouch for it.
    pub trusted_checkpoint_key: Option<VerifyingKey>,
    /// Rows per page of long tables.
    pub page_rows: usize,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions {
            base_path: "/console".to_owned(),
            secure_cookies: true,
            today: None,
            trusted_checkpoint_key: None,
            page_rows: PAGE_ROWS_DEFAULT,
        }
    }
}

/// What the console reads: everything `pathway serve` already holds.
pub struct ConsoleContext<S> {
    /// The event log (case pages, audit timeline, verification).
    pub store: S,
    /// The department read models.
    pub read_store: ReadStore,
    /// The authorization policy the API enforces.
    pub policy: Arc<Policy>,
    /// The token-signing secret the API verifies with.
    pub secret: Secret,
    /// The API's revocation list.
    pub revocations: Arc<Revocations>,
    pub options: ConsoleOptions,
}

impl<S> ConsoleContext<S> {
    /// A context with default options (mounted at `/console`, secure cookies).
    pub fn new(
        store: S,
        read_store: ReadStore,
        policy: Arc<Policy>,
        secret: Secret,
        revocations: Arc<Revocations>,
    ) -> Self {
        ConsoleContext {
            store,
            read_store,
            policy,
            secret,
            revocations,
            options: ConsoleOptions::default(),
        }
    }

    /// The same context with other options.
    pub fn with_options(mut self, options: ConsoleOptions) -> Self {
        self.options = options;
        self
    }
}

/// Shared state of the handlers.
pub(crate) struct Console<S> {
    pub(crate) ctx: ConsoleContext<S>,
    /// How far the chain has been verified (the verification page carries
    /// on from here instead of rereading the whole log each time).
    pub(crate) verified: tokio::sync::Mutex<Option<pages::audit::Verified>>,
}

impl<S> Console<S> {
    pub(crate) fn base(&self) -> &str {
        &self.ctx.options.base_path
    }

    /// The day pages count from.
    pub(crate) fn today(&self) -> NaiveDate {
        self.ctx
            .options
            .today
            .unwrap_or_else(|| Utc::now().with_timezone(&i18n::cst()).date_naive())
    }
}

pub(crate) type Shared<S> = Arc<Console<S>>;

/// The console's routes, relative to where they are mounted
/// (`Router::new().nest("/console", pathway_console::router(ctx))`).
pub fn router<S: EventStore + Clone + Send + Sync + 'static>(ctx: ConsoleContext<S>) -> Router {
    let state: Shared<S> = Arc::new(Console {
        ctx,
        verified: tokio::sync::Mutex::new(None),
    });
    Router::new()
        .route("/", get(pages::home::<S>))
        .route(
            "/sign-in",
            get(pages::signin::form::<S>).post(pages::signin::submit::<S>),
        )
        .route("/sign-out", post(pages::signin::sign_out::<S>))
        .route("/dashboard", get(pages::dashboard::page::<S>))
        .route("/cases", get(pages::cases::list::<S>))
        .route("/cases/{person_ref}", get(pages::cases::person::<S>))
        .route("/phase-outs", get(pages::phase_outs::page::<S>))
        .route("/graduates", get(pages::graduates::page::<S>))
        .route("/audit/timeline", get(pages::audit::timeline::<S>))
        .route("/audit/verification", get(pages::audit::verification::<S>))
        .route("/static/console.css", get(stylesheet))
        .fallback(pages::not_found::<S>)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/console.css"),
    )
}

/// Headers on every console response: no framing, no sniffing, no scripts
/// at all, nothing cached of a personal page.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

//! The pages. Each handler reads the request ([`Req`]), refuses what the
//! department may not see (403 page), and renders with [`layout::page`].

pub(crate) mod audit;
pub(crate) mod cases;
pub(crate) mod dashboard;
pub(crate) mod graduates;
pub(crate) mod phase_outs;
pub(crate) mod signin;

use axum::{
    extract::{OriginalUri, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use maud::html;
use pathway_server::token::Claims;
use pathway_store::EventStore;

use crate::{
    Console, Shared,
    data::ConsoleError,
    layout::{self, NAV},
    session::{Need, Req, may},
};

/// The request and its signed-in department, or the response to send
/// instead (a redirect to the sign-in page, or a 403 page when `need` is not held).
pub(crate) fn signed_in<S>(
    console: &Console<S>,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    need: Need,
) -> Result<(Req, Claims), Box<Response>> {
    let req = Req::new(console, uri, headers);
    let Some(claims) = req.claims.clone() else {
        return Err(Box::new(to_sign_in(console, &req)));
    };
    if !may(console, &claims, need) {
        return Err(Box::new(error_page(
            console,
            &req,
            ConsoleError::Forbidden("forbidden.page"),
        )));
    }
    Ok((req, claims))
}

fn to_sign_in<S>(console: &Console<S>, req: &Req) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let location = format!("{}/sign-in?lang={}", console.base(), req.locale.code());
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// A page's answer: the page titled `title_key`, with `rendered` as its
/// body and `nav` as its active navigation entry, or the error page when
/// rendering was refused or failed.
pub(crate) fn respond<S>(
    console: &Console<S>,
    req: &Req,
    title_key: &str,
    nav: &str,
    rendered: Result<maud::Markup, ConsoleError>,
) -> Response {
    match rendered {
        Ok(body) => {
            let title = req.locale.t(title_key);
            req.html(
                console,
                StatusCode::OK,
                layout::page(console, req, &title, Some(nav), body),
            )
        }
        Err(e) => error_page(console, req, e),
    }
}

/// The page for a refusal or failure, with its status.
pub(crate) fn error_page<S>(console: &Console<S>, req: &Req, error: ConsoleError) -> Response {
    let l = req.locale;
    let (status, title, detail) = match &error {
        ConsoleError::Forbidden(why) => (
            StatusCode::FORBIDDEN,
            l.t("error.forbidden_title"),
            l.t(why),
        ),
        ConsoleError::NotFound => (
            StatusCode::NOT_FOUND,
            l.t("error.not_found_title"),
            l.t("error.not_found"),
        ),
        ConsoleError::Unavailable(e) => {
            tracing::error!(error = %e, "console page failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                l.t("error.unavailable_title"),
                l.t("error.unavailable"),
            )
        }
    };
    let body = html! {
        p.notice role="alert" { (detail) }
        p { a href={ (console.base()) "/" } { (l.t("error.back_home")) } }
    };
    req.html(
        console,
        status,
        layout::page(console, req, &title, None, body),
    )
}

/// `GET /`: the pages this department may open.
pub(crate) async fn home<S: EventStore + Clone + Send + Sync + 'static>(
    State(console): State<Shared<S>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let req = Req::new(&console, &uri, &headers);
    let Some(claims) = req.claims.clone() else {
        return to_sign_in(&console, &req);
    };
    let l = req.locale;
    let base = console.base();
    let pages: Vec<_> = NAV
        .iter()
        .filter(|(_, _, need)| may(&console, &claims, *need))
        .collect();
    let body = html! {
        p { (l.tf("home.intro", &[("department", &layout::department(l, &claims.dept, claims.city.as_deref()))])) }
        @if pages.is_empty() {
            p.notice { (l.t("home.none")) }
        } @else {
            ul.page-list {
                @for (path, key, _) in pages {
                    li { a href={ (base) (path) } { (l.t(key)) } }
                }
            }
        }
    };
    req.html(
        &console,
        StatusCode::OK,
        layout::page(&console, &req, &l.t("home.title"), None, body),
    )
}

/// Any other path: a 404 page.
pub(crate) async fn not_found<S: EventStore + Clone + Send + Sync + 'static>(
    State(console): State<Shared<S>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let req = Req::new(&console, &uri, &headers);
    error_page(&console, &req, ConsoleError::NotFound)
}

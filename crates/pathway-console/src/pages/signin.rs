//! Sign-in with the department bearer token, and sign-out.
//!
//! The form posts the token; the server verifies it exactly as the API does
//! (signature, expiry, revocation, a department the policy knows) and sets
//! it as an HttpOnly, SameSite=Strict cookie for the console's path that
//! expires with the token. Every later request verifies it again.

use axum::{
    Form,
    extract::{OriginalUri, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use maud::html;
use pathway_store::EventStore;
use serde::Deserialize;

use crate::{
    Console, Locale, Shared,
    layout::{self, NAV},
    session::{self, Refusal, Req, may},
};

#[derive(Debug, Deserialize)]
pub(crate) struct SignIn {
    #[serde(default)]
    token: String,
    #[serde(default)]
    lang: String,
}

/// `GET /sign-in`.
pub(crate) async fn form<S: EventStore + Clone + Send + Sync + 'static>(
    State(console): State<Shared<S>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let req = Req::new(&console, &uri, &headers);
    render(&console, &req, None)
}

fn render<S>(console: &Console<S>, req: &Req, refusal: Option<Refusal>) -> Response {
    let l = req.locale;
    let described = if refusal.is_some() {
        "token-help token-error"
    } else {
        "token-help"
    };
    let body = html! {
        @if let Some(claims) = &req.claims {
            p.notice { (l.tf("signin.already", &[("department", &layout::department(l, &claims.dept, claims.city.as_deref()))])) }
        }
        p { (l.t("signin.intro")) }
        form.sign-in method="post" action={ (console.base()) "/sign-in" } {
            input type="hidden" name="lang" value=(l.code());
            div.field {
                label for="token" { (l.t("signin.token_label")) }
                p.hint #token-help { (l.t("signin.token_help")) }
                @if let Some(refusal) = refusal {
                    p.error #token-error role="alert" {
                        span aria-hidden="true" { "✗ " }
                        (l.t(refusal.key()))
                    }
                    input #token type="password" name="token" autocomplete="off" spellcheck="false"
                        required aria-describedby=(described) aria-invalid="true";
                } @else {
                    input #token type="password" name="token" autocomplete="off" spellcheck="false"
                        required aria-describedby=(described);
                }
            }
            button type="submit" { (l.t("signin.submit")) }
        }
    };
    let status = if refusal.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    req.html(
        console,
        status,
        layout::page(console, req, &l.t("signin.title"), None, body),
    )
}

/// Whether a form post comes from another site: its `Origin` (sent by
/// browsers on every POST) names another host than the request's `Host`.
/// Such posts are refused, so no other site can sign a browser in or out.
fn cross_site(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

/// `POST /sign-in`.
pub(crate) async fn submit<S: EventStore + Clone + Send + Sync + 'static>(
    State(console): State<Shared<S>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let mut req = Req::new(&console, &uri, &headers);
    if cross_site(&headers) {
        return crate::pages::error_page(
            &console,
            &req,
            crate::data::ConsoleError::Forbidden("forbidden.cross_site"),
        );
    }
    if let Some(l) = Locale::parse(&form.lang) {
        req.locale = l;
    }
    let bearer = form.token.trim();
    let claims = match session::admit(&console, bearer) {
        Ok(c) => c,
        Err(refusal) => {
            tracing::info!(reason = ?refusal, "console sign-in refused");
            req.claims = None;
            return render(&console, &req, Some(refusal));
        }
    };
    tracing::info!(subject = %claims.sub, department = %claims.dept, "console sign-in");
    let first = NAV
        .iter()
        .find(|(_, _, need)| may(&console, &claims, *need))
        .map_or("/", |(path, _, _)| *path);
    let mut response = StatusCode::SEE_OTHER.into_response();
    let location = format!("{}{first}", console.base());
    let cookie = session::session_cookie(&console, bearer, &claims);
    for (name, value) in [(header::LOCATION, location), (header::SET_COOKIE, cookie)] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().append(name, v);
        }
    }
    response
}

/// `POST /sign-out`: clears the cookie and shows the sign-in page.
pub(crate) async fn sign_out<S: EventStore + Clone + Send + Sync + 'static>(
    State(console): State<Shared<S>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    if cross_site(&headers) {
        let req = Req::new(&console, &uri, &headers);
        return crate::pages::error_page(
            &console,
            &req,
            crate::data::ConsoleError::Forbidden("forbidden.cross_site"),
        );
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    let location = format!("{}/sign-in", console.base());
    for (name, value) in [
        (header::LOCATION, location),
        (header::SET_COOKIE, session::clear_session_cookie(&console)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().append(name, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_from_another_site_are_told_apart() {
        let headers = |origin: Option<&'static str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_static(o));
            }
            h
        };
        assert!(!cross_site(&headers(None)));
        assert!(!cross_site(&headers(Some("http://127.0.0.1:8080"))));
        assert!(cross_site(&headers(Some("https://evil.example"))));
        assert!(cross_site(&headers(Some("null"))));
    }
}

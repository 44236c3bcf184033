//! Who is asking and in which language: the session cookie (a department
//! bearer token, verified on every request exactly as the API verifies the
//! `Authorization` header), the language (`?lang=`, then the cookie, then
//! Simplified Chinese), and the page access rules.

use std::collections::BTreeMap;

use axum::{
    extract::Query,
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use maud::Markup;
use pathway_server::token::{self, Claims};

use crate::{Console, LANG_COOKIE, Locale, SESSION_COOKIE};

/// The department whose tokens may open the audit pages (as the API's
/// `/v1/audit` routes).
pub(crate) const AUDITOR_DEPARTMENT: &str = "auditor";

/// One request, as the pages see it.
pub(crate) struct Req {
    pub(crate) locale: Locale,
    /// Set when the request chose a language with `?lang=`: remember it.
    pub(crate) remember_locale: bool,
    /// The signed-in department, if its token still verifies.
    pub(crate) claims: Option<Claims>,
    /// Path as the browser asked for it (with the mount prefix).
    pub(crate) path: String,
    pub(crate) query: BTreeMap<String, String>,
}

impl Req {
    pub(crate) fn new<S>(console: &Console<S>, uri: &Uri, headers: &HeaderMap) -> Req {
        let query = Query::<BTreeMap<String, String>>::try_from_uri(uri)
            .map(|q| q.0)
            .unwrap_or_default();
        let asked = query.get("lang").and_then(|l| Locale::parse(l));
        let remembered = cookie(headers, LANG_COOKIE).and_then(Locale::parse);
        Req {
            locale: asked.or(remembered).unwrap_or(Locale::ZhCn),
            remember_locale: asked.is_some(),
            claims: session(console, headers),
            path: uri.path().to_owned(),
            query,
        }
    }

    /// A query parameter, trimmed; `None` when absent or empty.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// This page in the other language (the language switch's target).
    pub(crate) fn switch_href(&self) -> String {
        let mut query: Vec<(String, String)> = self
            .query
            .iter()
            .filter(|(k, _)| k.as_str() != "lang")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        query.push(("lang".to_owned(), self.locale.other().code().to_owned()));
        format!("{}?{}", self.path, encode_query(&query))
    }

    /// An HTML response, remembering a language chosen with `?lang=`.
    pub(crate) fn html<S>(
        &self,
        console: &Console<S>,
        status: StatusCode,
        page: Markup,
    ) -> Response {
        let mut response = (status, page).into_response();
        if self.remember_locale {
            let cookie = format!(
                "{LANG_COOKIE}={}; Path={}; Max-Age=31536000; SameSite=Strict; HttpOnly{}",
                self.locale.code(),
                cookie_path(console),
                secure(console)
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        response
    }
}

/// The token of the session cookie, if it verifies now, is not revoked and
/// names a department the policy knows.
fn session<S>(console: &Console<S>, headers: &HeaderMap) -> Option<Claims> {
    let bearer = cookie(headers, SESSION_COOKIE)?;
    admit(console, bearer).ok()
}

/// Why a token was not accepted at sign-in (a catalog key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Invalid,
    Expired,
    Revoked,
    UnknownDepartment,
}

impl Refusal {
    pub(crate) fn key(self) -> &'static str {
        match self {
            Refusal::Invalid => "signin.error_invalid",
            Refusal::Expired => "signin.error_expired",
            Refusal::Revoked => "signin.error_revoked",
            Refusal::UnknownDepartment => "signin.error_department",
        }
    }
}

/// Verifies a bearer token as the API does.
pub(crate) fn admit<S>(console: &Console<S>, bearer: &str) -> Result<Claims, Refusal> {
    let ctx = &console.ctx;
    let claims =
        token::verify(&ctx.secret, bearer.trim(), Utc::now().timestamp()).map_err(|e| match e {
            token::TokenError::Expired { .. } => Refusal::Expired,
            _ => Refusal::Invalid,
        })?;
    if ctx.revocations.is_revoked(&claims.jti) {
        return Err(Refusal::Revoked);
    }
    if !ctx.policy.knows(&claims.dept) {
        return Err(Refusal::UnknownDepartment);
    }
    Ok(claims)
}

/// The `Set-Cookie` value of a session for `bearer`, valid until the token expires.
pub(crate) fn session_cookie<S>(console: &Console<S>, bearer: &str, claims: &Claims) -> String {
    let max_age = (claims.exp - Utc::now().timestamp()).max(0);
    format!(
        "{SESSION_COOKIE}={bearer}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        cookie_path(console),
        secure(console)
    )
}

/// The `Set-Cookie` value that ends the session.
pub(crate) fn clear_session_cookie<S>(console: &Console<S>) -> String {
    format!(
        "{SESSION_COOKIE}=; Path={}; Max-Age=0; HttpOnly; SameSite=Strict{}",
        cookie_path(console),
        secure(console)
    )
}

fn cookie_path<S>(console: &Console<S>) -> &str {
    if console.base().is_empty() {
        "/"
    } else {
        console.base()
    }
}

fn secure<S>(console: &Console<S>) -> &'static str {
    if console.ctx.options.secure_cookies {
        "; Secure"
    } else {
        ""
    }
}

/// The value of cookie `name`.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// What a page needs the signed-in department to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// The policy lets the department read this model.
    Model(&'static str),
    /// The department is the auditors'.
    Auditor,
}

/// Whether `claims` may open a page that needs `need`.
pub(crate) fn may<S>(console: &Console<S>, claims: &Claims, need: Need) -> bool {
    match need {
        Need::Model(model) => console.ctx.policy.may_read(&claims.dept, model),
        Need::Auditor => claims.dept == AUDITOR_DEPARTMENT,
    }
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub(crate) fn encode_query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_queries() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; pathway_console_lang=en ; b="),
        );
        assert_eq!(cookie(&headers, LANG_COOKIE), Some("en"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(
            encode_query(&[("q".into(), "哈 尔&".into())]),
            "q=%E5%93%88%20%E5%B0%94%26"
        );
    }
}

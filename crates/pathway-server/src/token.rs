//! Bearer tokens: a small JSON claims set signed with HMAC-SHA256, and the
//! revocation list.
//!
//! ```text
//! token = "pw1." ‖ base64url(claims JSON) ‖ "." ‖ base64url(HMAC-SHA256(secret, "pw1." ‖ base64url(claims JSON)))
//! ```
//!
//! A hand-rolled format over `hmac` + `sha2` rather than JWT: one algorithm,
//! no header to negotiate it (so no `alg: none` or key-confusion class of
//! bugs), and a claims set of exactly the fields the server uses. The MAC is
//! compared in constant time (`Mac::verify_slice`). Time is passed in, never
//! read here.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Mutex,
    time::SystemTime,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::settings::Secret;

const PREFIX: &str = "pw1.";
/// Longest token accepted, in bytes (a claims set is well under 1 KiB).
pub const TOKEN_BYTES_MAX: usize = 2_048;

type HmacSha256 = Hmac<Sha256>;

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The bearer: a pseudonymous user or system id.
    pub sub: String,
    /// The department, as in the command envelope (`dpf`, `hrss`, …).
    pub dept: String,
    /// For a city office (e.g. a city DPF): its prefecture code; the bearer
    /// acts and reads only for that city.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Issued at, seconds since 1970.
    pub iat: i64,
    /// Expires at, seconds since 1970 (refused from this second on).
    pub exp: i64,
    /// Token id, for revocation.
    pub jti: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token (Authorization: Bearer …)")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token {jti} expired at {exp} (now {now})")]
    Expired { jti: String, exp: i64, now: i64 },
    #[error("token {jti} is revoked")]
    Revoked { jti: String },
}

/// Signs `claims` into a token.
pub fn issue(secret: &Secret, claims: &Claims) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signed = format!("{PREFIX}{body}");
    let mac = mac(secret, signed.as_bytes()).finalize().into_bytes();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// Checks a token's signature and expiry at `now` (seconds since 1970); the
/// caller checks revocation.
pub fn verify(secret: &Secret, token: &str, now: i64) -> Result<Claims, TokenError> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(TokenError::Malformed("too long"));
    }
    let rest = token
        .strip_prefix(PREFIX)
        .ok_or(TokenError::Malformed("not a pw1 token"))?;
    let (body, sig) = rest
        .split_once('.')
        .ok_or(TokenError::Malformed("no signature"))?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    let signed = &token[..PREFIX.len() + body.len()];
    mac(secret, signed.as_bytes())
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed("claims are not base64url"))?;
    let claims: Claims =
        serde_json::from_slice(&json).map_err(|_| TokenError::Malformed("claims"))?;
    if now >= claims.exp {
        return Err(TokenError::Expired {
            jti: claims.jti,
            exp: claims.exp,
            now,
        });
    }
    Ok(claims)
}

fn mac(secret: &Secret, data: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(data);
    mac
}

/// Parses a duration such as `8h`, `30m`, `90s` or `7d` into seconds.
pub fn parse_ttl(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("ttl {text:?}: a number and a unit (s, m, h, d) expected"))?;
    let unit_seconds = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("ttl {text:?}: unit {unit:?} is not s, m, h or d")),
    };
    match n.checked_mul(unit_seconds) {
        Some(s) if s > 0 => Ok(s),
        _ => Err(format!(
            "ttl {text:?}: must be positive and not absurdly long"
        )),
    }
}

/// Revoked token ids: those in the configuration, plus a file re-read
/// whenever its modification time or length changes (checked on every use,
/// a `stat` per request).
#[derive(Debug)]
pub struct Revocations {
    configured: BTreeSet<String>,
    file: Option<PathBuf>,
    loaded: Mutex<Loaded>,
}

#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    ids: BTreeSet<String>,
}

impl Revocations {
    pub fn new(configured: &[String], file: Option<PathBuf>) -> Self {
        Revocations {
            configured: configured.iter().map(|s| s.trim().to_owned()).collect(),
            file,
            loaded: Mutex::new(Loaded::default()),
        }
    }

    /// Whether `jti` is revoked. A revocation file that cannot be read keeps
    /// the last list read (and is logged), so a bad edit never un-revokes.
    pub fn is_revoked(&self, jti: &str) -> bool {
        if self.configured.contains(jti) {
            return true;
        }
        let Some(path) = &self.file else {
            return false;
        };
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        refresh(path, &mut loaded);
        loaded.ids.contains(jti)
    }
}

fn refresh(path: &Path, loaded: &mut Loaded) {
    let stamp = match std::fs::metadata(path) {
        Ok(m) => (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "revocation file unreadable, keeping the last list");
            return;
        }
    };
    if loaded.stamp == Some(stamp) {
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(text) => {
            loaded.ids = text
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            loaded.stamp = Some(stamp);
            tracing::info!(path = %path.display(), revoked = loaded.ids.len(), "revocation list loaded");
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "revocation file unreadable, keeping the last list");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("0123456789abcdef0123456789abcdef")
    }

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "worker-1".into(),
            dept: "dpf".into(),
            city: Some("230100".into()),
            iat: 0,
            exp,
            jti: "t1".into(),
        }
    }

    #[test]
    fn round_trips_and_expires() {
        let t = issue(&secret(), &claims(100));
        assert_eq!(verify(&secret(), &t, 99), Ok(claims(100)));
        assert!(matches!(
            verify(&secret(), &t, 100),
            Err(TokenError::Expired { .. })
        ));
    }

    #[test]
    fn tampered_or_foreign_tokens_fail() {
        let t = issue(&secret(), &claims(100));
        let other = Secret::new("another-secret-of-32-bytes-length!");
        assert_eq!(verify(&other, &t, 1), Err(TokenError::BadSignature));
        // Swap the claims for a province-wide set signed by nobody.
        let mut forged = claims(100);
        forged.city = None;
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        let sig = t.rsplit('.').next().expect("sig");
        let forged = format!("{PREFIX}{forged_body}.{sig}");
        assert_eq!(verify(&secret(), &forged, 1), Err(TokenError::BadSignature));
        assert!(matches!(
            verify(&secret(), "Bearer x", 1),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("8h"), Ok(8 * 3600));
        assert_eq!(parse_ttl("30m"), Ok(1800));
        assert_eq!(parse_ttl("2d"), Ok(172_800));
        assert!(parse_ttl("8w").is_err());
        assert!(parse_ttl("0s").is_err());
    }

    #[test]
    fn revocation_file_is_reread_on_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("revoked");
        std::fs::write(&path, "# none yet\n").expect("write");
        let r = Revocations::new(&["cfg".to_owned()], Some(path.clone()));
        assert!(r.is_revoked("cfg"));
        assert!(!r.is_revoked("t1"));
        std::fs::write(&path, "# revoked after a lost laptop\nt1\n").expect("write");
        assert!(r.is_revoked("t1"));
    }
}

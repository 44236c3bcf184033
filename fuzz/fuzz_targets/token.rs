//! Bearer tokens (`pathway_server::token`), the first thing an anonymous
//! client of `pathway serve` reaches: `verify` over arbitrary text, and
//! `issue` → `verify` over claims built from arbitrary values; also the
//! `--ttl` parser of `pathway token issue`.
//!
//! Properties beyond "no panic": a token issued for claims verifies to
//! exactly those claims until `exp` and is `Expired` from then on (or is
//! refused as too long, never accepted with other claims); a token with any
//! one byte changed never verifies to other claims; a token signed with
//! another secret never verifies; `parse_ttl` accepts only positive seconds.
#![no_main]

use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use pathway_server::{
    settings::Secret,
    token::{self, Claims, TOKEN_BYTES_MAX, TokenError},
};

const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fuzz_target!(|data: &[u8]| {
    let secret = Secret::new("fuzz-signing-secret-0123456789abcdef");
    if let Ok(text) = std::str::from_utf8(data) {
        // Arbitrary text is never a valid token without the secret, short of
        // forging HMAC-SHA256.
        if let Ok(claims) = token::verify(&secret, text, NOW) {
            panic!("forged token accepted: {claims:?}");
        }
        if let Ok(seconds) = token::parse_ttl(text) {
            assert!(seconds > 0);
        }
    }
    let mut u = Unstructured::new(data);
    let Ok((sub, dept, city, iat, exp, jti, flip)) =
        u.arbitrary::<(String, String, Option<String>, i64, i64, String, u16)>()
    else {
        return;
    };
    let claims = Claims {
        sub,
        dept,
        city,
        iat,
        exp,
        jti,
    };
    let issued = token::issue(&secret, &claims);
    match token::verify(&secret, &issued, NOW) {
        Ok(back) => {
            assert_eq!(back, claims);
            assert!(NOW < claims.exp);
        }
        Err(TokenError::Expired { jti, exp, now }) => {
            assert_eq!((jti, exp, now), (claims.jti.clone(), claims.exp, NOW));
            assert!(NOW >= claims.exp);
        }
        Err(TokenError::Malformed("too long")) => assert!(issued.len() > TOKEN_BYTES_MAX),
        Err(e) => panic!("an issued token was refused: {e}"),
    }
    let other = Secret::new("another-signing-secret-0123456789abcdef");
    assert!(token::verify(&other, &issued, NOW).is_err());
    // One byte changed (kept UTF-8 by staying ASCII).
    let mut bytes = issued.clone().into_bytes();
    let at = usize::from(flip) % bytes.len();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    if let Ok(tampered) = String::from_utf8(bytes)
        && tampered != issued
        && let Ok(back) = token::verify(&secret, &tampered, NOW)
    {
        assert_eq!(back, claims, "a changed token verified to other claims");
    }
});

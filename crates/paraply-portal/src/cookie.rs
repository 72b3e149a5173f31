//! The session cookie, the secrets behind it and the checks on what a browser sends.

use axum::http::{HeaderMap, HeaderValue, header};
use openidconnect::CsrfToken;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub(crate) const COOKIE_NAME: &str = "paraply_session";

/// 256 random bits, base64url: session ids, CSRF tokens.
pub(crate) fn random_secret() -> String {
    CsrfToken::new_random_len(32).secret().clone()
}

/// The database key of a browser-held secret: its SHA-256, hex. The table never holds a value
/// that could be replayed as a cookie or a `state`.
pub(crate) fn key_of(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The value of the cookie `name` the browser sent, if any.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The value of the session cookie the browser sent, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, COOKIE_NAME).filter(|value| !value.is_empty())
}

/// `Set-Cookie` for a session; `max_age` 0 removes the cookie. `SameSite=Lax` lets the
/// provider's top-level redirect back carry it while cross-site posts do not.
pub(crate) fn set_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    // Only base64url characters and fixed text: always a valid header value.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a posted CSRF token equals the session's, in constant time.
pub(crate) fn csrf_matches(posted: &str, expected: &str) -> bool {
    posted.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// A post from another site: its `Origin` (when the browser sends one) is not ours.
/// `Origin: null` decides nothing: browsers send it for every form post from a page with
/// `Referrer-Policy: no-referrer`, as the portal's pages are; the CSRF token and the
/// `SameSite=Lax` cookie still protect those posts.
pub(crate) fn cross_site(headers: &HeaderMap, origin: &str) -> bool {
    headers
        .get(header::ORIGIN)
        .is_some_and(|value| value.as_bytes() != b"null" && value.as_bytes() != origin.as_bytes())
}

/// A local path to return to after the login, or `None` for anything that could leave the
/// site (`https://…`, `//host`, `/\host`) or smuggle control characters.
pub(crate) fn safe_return_to(path: &str) -> Option<&str> {
    let local = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.chars().any(|c| c.is_control() || c == '\\');
    local.then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_sites_origin_is_cross_site_a_null_origin_decides_nothing() {
        let ours = "https://paraply.example";
        let with = |origin: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ORIGIN, HeaderValue::from_static(origin));
            headers
        };
        assert!(cross_site(&with("https://evil.example"), ours));
        assert!(!cross_site(&with(ours), ours));
        assert!(!cross_site(&with("null"), ours));
        assert!(!cross_site(&HeaderMap::new(), ours));
    }

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_return_to("/min-plan?x=1"), Some("/min-plan?x=1"));
        assert_eq!(safe_return_to("/"), Some("/"));
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/a\r\nSet-Cookie: x",
            "",
        ] {
            assert_eq!(safe_return_to(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cookie_is_found_among_others_and_keys_are_hashes() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; paraply_session=abc; b=2"),
        );
        assert_eq!(session_cookie(&headers), Some("abc"));
        assert_eq!(key_of("abc").len(), 64);
        assert_ne!(key_of("abc"), "abc");
        assert!(csrf_matches("t", "t"));
        assert!(!csrf_matches("t", "u"));
        assert!(!csrf_matches("", "u"));
    }
}

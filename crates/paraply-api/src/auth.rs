//! Who is calling: the bearer token (`Authorization`) and the purpose of use
//! (`X-Purpose-Of-Use`, `X-Purpose-Of-Use-Reason`) of a FHIR request, turned into a
//! [`RequestContext`] — or into the 401/400/503 that refuses it.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use paraply_auth::{AuthError, Authenticator};
use paraply_core::{Purpose, RequestContext};
use paraply_fhir::{Issue, IssueType};

use crate::render::{Rendered, render_issue};

/// How the edge establishes the caller.
#[derive(Clone)]
pub enum EdgeAuth {
    /// `--auth none`: every request runs unrestricted. Development on loopback only.
    Disabled,
    /// Every FHIR request but the public documents needs a bearer token from a trusted issuer.
    Oidc(Arc<Authenticator>),
}

/// The realm in every `WWW-Authenticate` challenge.
const REALM: &str = "paraply";

/// Why a request was refused before it reached the engine.
pub(crate) enum Refusal {
    /// No usable credentials or a rejected token: 401 with a challenge.
    Unauthenticated(AuthFailure),
    /// The purpose-of-use headers make no sense: 400.
    BadPurpose(String),
    /// The token's issuer could not be asked about its keys: 503, the caller is not at fault.
    IssuerUnavailable(String),
}

impl Refusal {
    /// For a failed authentication, what the access log records.
    pub(crate) fn login_failure(&self) -> Option<&str> {
        match self {
            Refusal::Unauthenticated(failure) => Some(failure.reason()),
            _ => None,
        }
    }
}

/// A failed authentication. The one place its reason lives: logged here, and the access log
/// (AuditEvent) will take it from here too.
pub(crate) struct AuthFailure {
    /// `None`: no bearer token was sent at all (RFC 6750 §3.1: then no error code).
    rejected: Option<String>,
}

impl AuthFailure {
    /// What went wrong, safe to show the client and to log: never the token or its claims.
    pub(crate) fn reason(&self) -> &str {
        self.rejected
            .as_deref()
            .unwrap_or("the request carries no bearer token")
    }

    fn challenge(&self) -> String {
        match &self.rejected {
            None => format!("Bearer realm=\"{REALM}\""),
            Some(reason) => format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                quoted_string_safe(reason)
            ),
        }
    }
}

/// The context one FHIR request runs in, or why it may not run.
pub(crate) async fn request_context(
    auth: &EdgeAuth,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<RequestContext, Refusal> {
    let authenticator = match auth {
        EdgeAuth::Disabled => return Ok(RequestContext::unrestricted(request_id)),
        EdgeAuth::Oidc(authenticator) => authenticator,
    };
    let token = bearer_token(headers).map_err(|failure| refuse(failure, request_id))?;
    let principal = match authenticator.authenticate(token).await {
        Ok(principal) => principal,
        Err(error) if error.is_token_rejected() => {
            return Err(refuse(
                AuthFailure {
                    rejected: Some(error.to_string()),
                },
                request_id,
            ));
        }
        Err(error) => {
            tracing::warn!(request_id, %error, "cannot check a bearer token");
            return Err(Refusal::IssuerUnavailable(match error {
                AuthError::Discovery(_) => {
                    "the token's issuer could not be reached to check the token".to_owned()
                }
                other => other.to_string(),
            }));
        }
    };
    let purpose = purpose(headers).map_err(Refusal::BadPurpose)?;
    Ok(RequestContext::authenticated(
        principal, purpose, request_id,
    ))
}

fn refuse(failure: AuthFailure, request_id: &str) -> Refusal {
    tracing::warn!(
        request_id,
        reason = failure.reason(),
        "authentication failed"
    );
    Refusal::Unauthenticated(failure)
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive, RFC 7235).
fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthFailure> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(AuthFailure {
            rejected: headers
                .contains_key(header::AUTHORIZATION)
                .then(|| "the request carries more than one Authorization header".to_owned()),
        });
    };
    let invalid = |reason: &str| AuthFailure {
        rejected: Some(reason.to_owned()),
    };
    let text = value
        .to_str()
        .map_err(|_| invalid("the Authorization header is not ASCII"))?;
    let (scheme, token) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid(
            "the Authorization header must use the Bearer scheme",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(invalid("the Authorization header carries no token"));
    }
    Ok(token)
}

/// `X-Purpose-Of-Use` (v3 ActReason): absent or `TREAT` is ordinary care; `ETREAT` is an
/// emergency and needs `X-Purpose-Of-Use-Reason`, which goes into the access log.
fn purpose(headers: &HeaderMap) -> Result<Purpose, String> {
    let text = |name: &str| -> Result<Option<String>, String> {
        headers
            .get(name)
            .map(|v| {
                // UTF-8, not just ASCII: a reason is written in Swedish (å, ä, ö).
                std::str::from_utf8(v.as_bytes())
                    .map(|s| s.trim().to_owned())
                    .map_err(|_| format!("{name} is not UTF-8 text"))
            })
            .transpose()
    };
    match text("x-purpose-of-use")?.as_deref() {
        None | Some("TREAT") => Ok(Purpose::Treatment),
        Some("ETREAT") => match text("x-purpose-of-use-reason")? {
            Some(reason) if !reason.is_empty() => Ok(Purpose::Emergency { reason }),
            _ => Err(
                "X-Purpose-Of-Use: ETREAT (emergency access) needs the reason in X-Purpose-Of-Use-Reason"
                    .to_owned(),
            ),
        },
        Some(other) => Err(format!(
            "X-Purpose-Of-Use '{other}' is not supported; use TREAT or ETREAT"
        )),
    }
}

/// RFC 7235 quoted-string content: no quotes, backslashes or control characters.
fn quoted_string_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_control() || !c.is_ascii() => ' ',
            c => c,
        })
        .collect()
}

impl Refusal {
    /// The OperationOutcome answer, and the challenge header for a 401.
    pub(crate) fn render(&self) -> (Rendered, Option<HeaderValue>) {
        match self {
            Refusal::Unauthenticated(failure) => (
                render_issue(
                    StatusCode::UNAUTHORIZED,
                    Issue::error(IssueType::Login, failure.reason()),
                ),
                HeaderValue::from_str(&failure.challenge()).ok(),
            ),
            Refusal::BadPurpose(reason) => (
                render_issue(
                    StatusCode::BAD_REQUEST,
                    Issue::error(IssueType::Invalid, reason.clone()),
                ),
                None,
            ),
            Refusal::IssuerUnavailable(reason) => (
                render_issue(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Issue::error(IssueType::Transient, reason.clone()),
                ),
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_token_is_read_whatever_the_scheme_case() {
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer abc.def.ghi")])).ok(),
            Some("abc.def.ghi")
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer  abc ")])).ok(),
            Some("abc")
        );
    }

    #[test]
    fn missing_token_gets_a_bare_challenge_and_a_bad_one_an_invalid_token_challenge() {
        let missing = bearer_token(&headers(&[])).err().unwrap();
        assert_eq!(missing.challenge(), "Bearer realm=\"paraply\"");
        for bad in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   "] {
            let failure = bearer_token(&headers(&[("authorization", bad)]))
                .err()
                .unwrap();
            assert!(
                failure
                    .challenge()
                    .starts_with("Bearer realm=\"paraply\", error=\"invalid_token\""),
                "{bad}"
            );
        }
        let twice = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert!(bearer_token(&twice).err().unwrap().rejected.is_some());
    }

    #[test]
    fn purpose_of_use() {
        assert_eq!(purpose(&headers(&[])), Ok(Purpose::Treatment));
        assert_eq!(
            purpose(&headers(&[("x-purpose-of-use", "TREAT")])),
            Ok(Purpose::Treatment)
        );
        assert_eq!(
            purpose(&headers(&[
                ("x-purpose-of-use", "ETREAT"),
                ("x-purpose-of-use-reason", "unconscious patient"),
            ])),
            Ok(Purpose::Emergency {
                reason: "unconscious patient".into()
            })
        );
        assert!(purpose(&headers(&[("x-purpose-of-use", "ETREAT")])).is_err());
        assert!(
            purpose(&headers(&[
                ("x-purpose-of-use", "ETREAT"),
                ("x-purpose-of-use-reason", "  ")
            ]))
            .is_err()
        );
        assert!(purpose(&headers(&[("x-purpose-of-use", "HPAYMT")])).is_err());
    }

    #[test]
    fn challenge_descriptions_stay_quotable() {
        assert_eq!(quoted_string_safe("a \"b\" \\ c\n"), "a 'b' ' c ");
    }
}

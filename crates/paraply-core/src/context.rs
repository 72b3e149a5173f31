//! Who is asking and why: the context every interaction runs in.

use paraply_auth::Principal;

/// The caller of one request, as the HTTP edge established it.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub caller: Caller,
    /// Why the caller acts (`purposeOfUse`): treatment, or a logged emergency.
    pub purpose: Purpose,
    /// The request id (`X-Request-Id`), carried into AuditEvents.
    pub request_id: String,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The server itself (demo data, start-up tasks) and `--auth none` development mode:
    /// no identity, no access rules, no access log.
    Unrestricted,
    /// A caller proven by a validated bearer token.
    Authenticated(Principal),
}

/// `purposeOfUse` (v3 ActReason) of an access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// `TREAT`: ordinary care.
    Treatment,
    /// `ETREAT`: emergency access across the care relationship and spärr rules, with the
    /// reason the caller gave; allowed, logged and flagged (DOMAIN.md I11, I12).
    Emergency { reason: String },
}

impl RequestContext {
    /// The server acting on its own behalf.
    pub fn unrestricted(request_id: impl Into<String>) -> Self {
        RequestContext {
            caller: Caller::Unrestricted,
            purpose: Purpose::Treatment,
            request_id: request_id.into(),
        }
    }

    pub fn authenticated(
        principal: Principal,
        purpose: Purpose,
        request_id: impl Into<String>,
    ) -> Self {
        RequestContext {
            caller: Caller::Authenticated(principal),
            purpose,
            request_id: request_id.into(),
        }
    }
}

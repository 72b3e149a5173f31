//! The patient portal "Min plan": server-rendered pages over the FHIR engine, and its login —
//! an OpenID Connect relying party (authorization code flow with PKCE S256, `state` and
//! `nonce`) that keeps server-side sessions in the database.
//!
//! The pages (`pages/`, `views.rs`) read and write only through `paraply-core` with a
//! request context made from the session's access token, so the access rules and the access
//! log apply to every page view as to any FHIR request. Words are in `messages/*.ftl`
//! (Swedish, English, lättläst), the one stylesheet in `static/`.
//!
//! [`router`] serves the pages (`/`, `/tider/{id}`, `/planer/{id}`, `/mal`, `/meddelanden`,
//! `/narstaende`, `/valj`, `/logg`, `/plan.pdf`, `/tillganglighet`, `/sprak`,
//! `/static/paraply.css`) and:
//! - `GET /auth/login?login_hint=…&return_to=/path` — starts a login at the provider;
//! - `GET /auth/callback` — the provider's answer: checks `state` (single use, 10 minutes),
//!   `iss` (RFC 9207), exchanges the code and verifies the ID token, then opens a session;
//! - `POST /auth/logout` — form field `csrf`; ends the session and sends the browser to the
//!   provider's end-session endpoint (or `/`);
//! - `GET /auth/session` — who is logged in, as JSON, with the CSRF token for forms.
//!
//! The browser holds only a random 256-bit session id in an `HttpOnly` cookie; the database
//! holds its hash with the user's claims and the access token for the FHIR API
//! ([`paraply_store::SessionStore`]), so any node sharing the database can serve the next
//! request. Errors are OperationOutcomes and store nothing.

mod cookie;
mod error;
mod i18n;
mod oidc;
mod pages;
mod plan;
mod settings;
mod views;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use paraply_auth::Authenticator;
use paraply_core::Fhir;
use paraply_store::{PendingLogin, Session, SessionStore, StoreError};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use error::PortalError;
pub use oidc::UserClaims;
pub use pages::not_found;
pub use settings::PortalSettings;

use crate::cookie::{
    cross_site, csrf_matches, key_of, random_secret, safe_return_to, session_cookie, set_cookie,
};
use crate::oidc::RelyingParty;
use crate::settings::Config;

/// How long a login may take at the provider before its `state` is forgotten.
const LOGIN_TIMEOUT: time::Duration = time::Duration::minutes(10);

pub(crate) struct Portal {
    /// Invalid settings answer every request with an error instead of panicking at start;
    /// the server should call [`PortalSettings::validate`] first.
    rp: Result<RelyingParty, String>,
    sessions: Arc<dyn SessionStore>,
    /// The engine the FHIR API uses: the pages' only way to the data.
    fhir: Fhir,
    /// Checks the session's access token as the FHIR API checks a bearer token; `None`
    /// when the server runs without logins (`--auth none`), where no page can be shown.
    authenticator: Option<Arc<Authenticator>>,
    accessibility_contact: Option<String>,
}

impl Portal {
    fn rp(&self) -> Result<&RelyingParty, PortalError> {
        self.rp
            .as_ref()
            .map_err(|message| PortalError::Settings(message.clone()))
    }
}

/// The portal: its pages and the `/auth/*` routes, every answer with the security headers.
/// `http` must not follow redirects (the provider's answers are read, not followed). Paths
/// nothing serves are for the caller's fallback ([`not_found`]).
pub fn router(
    settings: PortalSettings,
    sessions: Arc<dyn SessionStore>,
    http: reqwest::Client,
    fhir: Fhir,
    authenticator: Option<Arc<Authenticator>>,
) -> Router {
    let policy = content_security_policy(&settings.issuer);
    let accessibility_contact = settings.accessibility_contact.clone();
    let rp = Config::from_settings(&settings)
        .map(|config| RelyingParty::new(config, http))
        .map_err(|e| e.to_string());
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .route("/auth/session", get(session_info))
        .merge(pages::routes())
        .with_state(Arc::new(Portal {
            rp,
            sessions,
            fhir,
            authenticator,
            accessibility_contact,
        }))
        .layer(axum::middleware::map_response(move |response: Response| {
            let policy = policy.clone();
            async move { with_security_headers(response, &policy) }
        }))
}

/// Nothing but this site's own stylesheet loads, nothing runs, nothing frames the portal;
/// forms post here, and the logout form's redirect may reach the provider.
fn content_security_policy(issuer: &str) -> HeaderValue {
    let provider = url::Url::parse(issuer)
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_default();
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' {provider}; frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static(BASE_POLICY))
}

/// The policy of pages with no form leaving the site.
pub(crate) const BASE_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn with_security_headers(mut response: Response, policy: &HeaderValue) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Pages carry patient data: no cache keeps them, unless a route chose otherwise.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The live session a request's cookie names, for routes outside the portal that act on the
/// user's behalf (its `access_token` is the bearer token for the FHIR API).
pub async fn current_session(
    headers: &HeaderMap,
    sessions: &dyn SessionStore,
) -> Result<Option<Session>, StoreError> {
    match session_cookie(headers) {
        Some(secret) => {
            sessions
                .get_session(&key_of(secret), OffsetDateTime::now_utc())
                .await
        }
        None => Ok(None),
    }
}

#[derive(Deserialize)]
struct LoginParams {
    login_hint: Option<String>,
    return_to: Option<String>,
}

async fn login(
    State(portal): State<Arc<Portal>>,
    Query(params): Query<LoginParams>,
) -> Result<Response, PortalError> {
    let rp = portal.rp()?;
    let return_to = match params.return_to.as_deref() {
        None => "/",
        Some(path) => safe_return_to(path).ok_or_else(|| {
            PortalError::BadRequest("return_to must be a path on this site".into())
        })?,
    };
    let now = OffsetDateTime::now_utc();
    // Logins are where sessions begin, so they also sweep the ended ones: no scheduler needed.
    if let Err(error) = portal.sessions.delete_expired(now).await {
        tracing::warn!(%error, "removing expired portal sessions failed");
    }
    let authorization = rp.authorize(params.login_hint.as_deref()).await?;
    portal
        .sessions
        .put_login(&PendingLogin {
            key: key_of(&authorization.state),
            pkce_verifier: authorization.pkce_verifier,
            nonce: authorization.nonce,
            return_to: return_to.to_owned(),
            expires: now + LOGIN_TIMEOUT,
        })
        .await?;
    Ok(redirect(authorization.url.as_str(), None))
}

#[derive(Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Result<Response, PortalError> {
    let rp = portal.rp()?;
    let now = OffsetDateTime::now_utc();
    let state = params
        .state
        .ok_or_else(|| PortalError::BadRequest("the login answer has no state".into()))?;
    // Taken (deleted) before anything else: whatever happens next, this state is spent.
    let pending = portal
        .sessions
        .take_login(&key_of(&state), now)
        .await?
        .ok_or_else(|| {
            PortalError::BadRequest("unknown or expired login; please log in again".into())
        })?;
    if let Some(error) = params.error {
        let detail = params.error_description.unwrap_or_default();
        return Err(PortalError::LoginFailed(format!(
            "the identity provider refused the login: {error} {detail}"
        )));
    }
    rp.check_response_issuer(params.iss.as_deref()).await?;
    let code = params
        .code
        .ok_or_else(|| PortalError::BadRequest("the login answer has no code".into()))?;
    let login = rp
        .finish(code, pending.pkce_verifier, pending.nonce)
        .await?;

    // A new id for every login: a session id planted before the login is never promoted.
    if let Some(old) = session_cookie(&headers) {
        portal.sessions.delete_session(&key_of(old)).await?;
    }
    let secret = random_secret();
    let lifetime = rp.config().session_lifetime;
    let claims = serde_json::to_string(&login.claims)
        .map_err(|_| PortalError::LoginFailed("the user's claims cannot be stored".into()))?;
    portal
        .sessions
        .put_session(&Session {
            key: key_of(&secret),
            issuer: rp.config().issuer.as_str().to_owned(),
            subject: login.subject,
            claims,
            access_token: login.access_token,
            access_token_expires: login.access_token_expires,
            id_token: login.id_token,
            csrf_token: random_secret(),
            created: now,
            expires: now + lifetime,
        })
        .await?;
    let cookie = set_cookie(&secret, lifetime.as_secs(), rp.config().secure_cookie);
    Ok(redirect(&pending.return_to, Some(cookie)))
}

async fn logout(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PortalError> {
    let rp = portal.rp()?;
    if cross_site(&headers, &rp.config().origin) {
        return Err(PortalError::Forbidden("cross-site logout refused".into()));
    }
    let clear = set_cookie("", 0, rp.config().secure_cookie);
    let Some(session) = current_session(&headers, portal.sessions.as_ref()).await? else {
        return Ok(redirect("/", Some(clear)));
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let posted = form.get("csrf").map(String::as_str).unwrap_or_default();
    if !csrf_matches(posted, &session.csrf_token) {
        return Err(PortalError::Forbidden(
            "the form's CSRF token is missing or wrong".into(),
        ));
    }
    portal.sessions.delete_session(&session.key).await?;
    let target = rp
        .logout_url(&session.id_token)
        .await
        .unwrap_or_else(|| "/".into());
    Ok(redirect(&target, Some(clear)))
}

async fn session_info(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
) -> Result<Response, PortalError> {
    let Some(session) = current_session(&headers, portal.sessions.as_ref()).await? else {
        return Ok(error::json_outcome(
            StatusCode::UNAUTHORIZED,
            "login",
            "not logged in",
        ));
    };
    let claims: UserClaims = serde_json::from_str(&session.claims)
        .map_err(|_| StoreError::Corrupt("stored session claims".into()))?;
    let time = |at: OffsetDateTime| at.format(&Rfc3339).ok();
    let body = serde_json::json!({
        "issuer": session.issuer,
        "subject": session.subject,
        "claims": claims,
        "expires": time(session.expires),
        "accessTokenExpires": session.access_token_expires.and_then(time),
        "csrf": session.csrf_token,
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response())
}

/// `303 See Other` (a GET at the target whatever the method was), optionally setting a cookie.
pub(crate) fn redirect(location: &str, cookie: Option<axum::http::HeaderValue>) -> Response {
    let mut response = (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location.to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

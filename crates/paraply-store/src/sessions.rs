//! Server-side storage of portal logins: the sessions of logged-in users and the logins still
//! waiting for the identity provider's answer.
//!
//! Both live in the database, not in memory, because several stateless Paraply nodes share one
//! database and a browser's next request may reach any of them. The store never sees a secret
//! a browser holds: sessions and pending logins are keyed by the SHA-256 of the cookie value or
//! the `state` parameter, computed by the caller, so a leaked table cannot be replayed as a
//! cookie.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::StoreError;

/// A logged-in user's session.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// Hex SHA-256 of the session cookie's value.
    pub key: String,
    /// The issuer that authenticated the user.
    pub issuer: String,
    /// The user's `sub` at that issuer.
    pub subject: String,
    /// The ID token's claims the portal keeps (a JSON object as text).
    pub claims: String,
    /// The access token for the FHIR API, sent as a bearer token on the user's behalf.
    pub access_token: String,
    pub access_token_expires: Option<OffsetDateTime>,
    /// The raw ID token, the `id_token_hint` of the logout at the identity provider.
    pub id_token: String,
    /// The value forms must post back (see the portal's CSRF check).
    pub csrf_token: String,
    pub created: OffsetDateTime,
    pub expires: OffsetDateTime,
}

// Manual: a session's tokens must never reach a log through `{:?}`.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("issuer", &self.issuer)
            .field("created", &self.created)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// An authorization request sent to the identity provider and not yet answered.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// Hex SHA-256 of the `state` parameter.
    pub key: String,
    /// The PKCE code verifier.
    pub pkce_verifier: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The relative path to return to after the login.
    pub return_to: String,
    pub expires: OffsetDateTime,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("return_to", &self.return_to)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Sessions and pending logins, shared by all nodes through the database.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a pending login (its key is new: a random `state`).
    async fn put_login(&self, login: &PendingLogin) -> Result<(), StoreError>;

    /// Removes and returns the pending login with this key if it has not expired at `now`.
    /// Removal and read are one statement, so a login completes at most once even when two
    /// nodes receive the same callback.
    async fn take_login(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<PendingLogin>, StoreError>;

    /// Stores a new session.
    async fn put_session(&self, session: &Session) -> Result<(), StoreError>;

    /// The session with this key, unless it has expired at `now`.
    async fn get_session(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError>;

    /// Ends a session; `false` if there was none.
    async fn delete_session(&self, key: &str) -> Result<bool, StoreError>;

    /// Removes sessions and pending logins that expired before `now`; returns how many.
    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

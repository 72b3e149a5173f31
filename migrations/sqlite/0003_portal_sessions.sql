-- Portal logins (paraply-portal). Rows are keyed by the hex SHA-256 of the browser's secret
-- (the session cookie, the OAuth `state`), never the secret itself. Times are unix seconds.

-- A logged-in user's session; the tokens are sent to the FHIR API on the user's behalf.
CREATE TABLE portal_session (
    key                  TEXT    NOT NULL PRIMARY KEY,
    issuer               TEXT    NOT NULL,
    subject              TEXT    NOT NULL,
    claims               TEXT    NOT NULL, -- JSON object
    access_token         TEXT    NOT NULL,
    access_token_expires INTEGER,
    id_token             TEXT    NOT NULL,
    csrf_token           TEXT    NOT NULL,
    created              INTEGER NOT NULL,
    expires              INTEGER NOT NULL
) WITHOUT ROWID;

-- Cleaning up expired sessions.
CREATE INDEX portal_session_expires ON portal_session (expires);

-- An authorization request waiting for the identity provider's answer; taken (deleted) once.
CREATE TABLE portal_login (
    key           TEXT    NOT NULL PRIMARY KEY,
    pkce_verifier TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    return_to     TEXT    NOT NULL,
    expires       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX portal_login_expires ON portal_login (expires);

//! The portal login end to end against the real OpenID provider in `tests/idp`, with the
//! sessions in SQLite (always) and PostgreSQL (when `PARAPLY_TEST_DATABASE_URL` is set).

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, header};
use paraply_core::Fhir;
use paraply_idp_harness::{Idp, idp_available};
use paraply_portal::{PortalSettings, current_session};
use paraply_store::{SessionStore, Store};
use paraply_store_sql::testing::PostgresTestDatabase;
use paraply_store_sql::{StoreSettings, open_store_with_sessions};
use reqwest::StatusCode;
use reqwest::redirect::Policy;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("paraply-portal-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The real provider of `tests/idp`, trusting this portal's callback.
fn start_idp(portal: &str) -> Idp {
    assert!(
        idp_available(),
        "the portal login is tested against the real provider: install Node 20+ and run `npm ci --prefix tests/idp`"
    );
    Idp::start(
        &format!("{portal}/fhir"),
        &format!("--redirect '{portal}/auth/callback'"),
    )
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `paraply_session` Set-Cookie line of a response, if any.
fn session_set_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("paraply_session="))
}

/// `/auth/login` → the IdP's redirects → the callback URL the IdP sends the browser to.
async fn login_until_callback(browser: &reqwest::Client, portal: &str, query: &str) -> String {
    let response = browser
        .get(format!("{portal}/auth/login?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{query}");
    let mut url = location(&response);
    while !url.starts_with(&format!("{portal}/auth/callback")) {
        let response = browser.get(&url).send().await.unwrap();
        assert!(
            response.status().is_redirection(),
            "{url}: {}",
            response.status()
        );
        url = reqwest::Url::parse(&url)
            .unwrap()
            .join(&location(&response))
            .unwrap()
            .to_string();
    }
    url
}

async fn session_json(browser: &reqwest::Client, portal: &str) -> (StatusCode, serde_json::Value) {
    let response = browser
        .get(format!("{portal}/auth/session"))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn cookie_headers(set_cookie: &str) -> HeaderMap {
    let pair = set_cookie.split(';').next().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
    headers
}

async fn scenario(store: Arc<dyn Store>, sessions: Arc<dyn SessionStore>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let portal = format!("http://{}", listener.local_addr().unwrap());
    let idp = start_idp(&portal);
    let settings: PortalSettings = toml::from_str(&format!(
        r#"issuer = "{}"
client_id = "paraply-portal"
client_secret = "paraply-portal-secret"
public_url = "{portal}""#,
        idp.citizen
    ))
    .unwrap();
    settings.validate().unwrap();
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    // The login alone: no token checks, so no page past the login is served here.
    let app = paraply_portal::router(settings, sessions.clone(), http, Fhir::new(store), None);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // Not logged in: a 401 OperationOutcome.
    let tolvan = browser();
    let (status, body) = session_json(&tolvan, &portal).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["resourceType"], "OperationOutcome");

    // Tolvan logs in end to end and lands where she asked to.
    let callback =
        login_until_callback(&tolvan, &portal, "login_hint=tolvan&return_to=%2Fmin-plan").await;
    assert!(
        callback.contains("iss="),
        "RFC 9207 iss expected: {callback}"
    );
    let response = tolvan.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/min-plan");
    let cookie = session_set_cookie(&response).expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "no Secure on loopback http: {cookie}"
    );

    let (status, body) = session_json(&tolvan, &portal).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["claims"]["personnummer"], "191212121212");
    assert_eq!(body["claims"]["name"], "Tolvan Tolvansson");
    assert_eq!(body["issuer"], idp.citizen.as_str());
    assert!(body["expires"].is_string() && body["accessTokenExpires"].is_string());
    let csrf = body["csrf"].as_str().unwrap().to_owned();
    assert!(
        body.get("accessToken").is_none(),
        "tokens never reach the browser"
    );

    // The access token for the FHIR API is stored with the session, not the cookie value.
    let stored = current_session(&cookie_headers(&cookie), sessions.as_ref())
        .await
        .unwrap()
        .expect("the session is in the database");
    assert_eq!(
        stored.access_token.split('.').count(),
        3,
        "a JWT access token"
    );
    let cookie_value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("paraply_session=");
    assert_ne!(stored.key, cookie_value, "the id is stored hashed");

    // The same answer again (replay), or an invented state: refused, no cookie set.
    let replay = tolvan.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(session_set_cookie(&replay).is_none());
    let forged = browser()
        .get(format!(
            "{portal}/auth/callback?code=abc&state=made-up&iss={}",
            idp.citizen
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(session_set_cookie(&forged).is_none());

    // The provider refuses an unknown user: a clear 401, no session.
    let stranger = browser();
    let refused = login_until_callback(&stranger, &portal, "login_hint=nobody").await;
    assert!(refused.contains("error=access_denied"), "{refused}");
    let response = stranger.get(&refused).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(session_set_cookie(&response).is_none());
    assert_eq!(
        session_json(&stranger, &portal).await.0,
        StatusCode::UNAUTHORIZED
    );

    // RFC 9207: an answer naming another issuer is refused, and its state is spent.
    let mixup = browser();
    let genuine = login_until_callback(&mixup, &portal, "login_hint=tolvan").await;
    let mut forged = reqwest::Url::parse(&genuine).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "iss" {
                "http://127.0.0.1:1".into()
            } else {
                v
            };
            (k.into_owned(), v.into_owned())
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let response = mixup.get(forged).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(session_set_cookie(&response).is_none());
    let response = mixup.get(&genuine).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "state spent");

    // Open redirects are refused before anything is sent to the provider.
    for evil in ["https%3A%2F%2Fevil.example", "%2F%2Fevil.example"] {
        let response = browser()
            .get(format!("{portal}/auth/login?return_to={evil}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{evil}");
    }

    // Karin, in another browser, gets her own session; Tolvan's is untouched.
    let karin = browser();
    let callback = login_until_callback(&karin, &portal, "login_hint=karin").await;
    let response = karin.get(&callback).send().await.unwrap();
    assert_eq!(location(&response), "/");
    let karin_cookie = session_set_cookie(&response).unwrap();
    assert_ne!(karin_cookie, cookie);
    let (_, body) = session_json(&karin, &portal).await;
    assert_eq!(body["claims"]["personnummer"], "197001011233");
    assert_ne!(body["csrf"].as_str().unwrap(), csrf);
    let (_, body) = session_json(&tolvan, &portal).await;
    assert_eq!(body["claims"]["personnummer"], "191212121212");

    // Logout without the CSRF token, with Karin's, or from another site: refused.
    let logout = |csrf: Option<String>, origin: &str| {
        let form: Vec<(&str, String)> = csrf.into_iter().map(|t| ("csrf", t)).collect();
        tolvan
            .post(format!("{portal}/auth/logout"))
            .header(header::ORIGIN, origin)
            .form(&form)
            .send()
    };
    let karin_csrf = body_csrf(&karin, &portal).await;
    for (csrf, origin) in [
        (None, portal.as_str()),
        (Some(karin_csrf), portal.as_str()),
        (Some(csrf.clone()), "https://evil.example"),
    ] {
        let response = logout(csrf, origin).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(session_json(&tolvan, &portal).await.0, StatusCode::OK);

    // With it: the session ends here and the browser goes on to the provider's logout.
    let response = logout(Some(csrf), &portal).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(&response);
    assert!(target.starts_with(&idp.citizen), "{target}");
    assert!(target.contains("id_token_hint="), "{target}");
    assert!(session_set_cookie(&response).unwrap().contains("Max-Age=0"));
    assert_eq!(
        session_json(&tolvan, &portal).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        current_session(&cookie_headers(&cookie), sessions.as_ref())
            .await
            .unwrap()
            .is_none(),
        "the session is gone from the database"
    );
    assert_eq!(session_json(&karin, &portal).await.0, StatusCode::OK);

    server.abort();
    drop(idp);
}

async fn body_csrf(browser: &reqwest::Client, portal: &str) -> String {
    let (_, body) = session_json(browser, portal).await;
    body["csrf"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn login_with_sqlite_sessions() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.0.join("paraply.db").display());
    let (store, sessions, _, _) = open_store_with_sessions(&url, &StoreSettings::with_pool_size(2))
        .await
        .unwrap();
    scenario(store, sessions).await;
}

#[tokio::test]
async fn login_with_postgres_sessions() {
    let Some(db) = PostgresTestDatabase::create().await else {
        return;
    };
    let (store, sessions, _, _) =
        open_store_with_sessions(&db.url, &StoreSettings::with_pool_size(2))
            .await
            .unwrap();
    let outcome = tokio::spawn(scenario(store, sessions)).await;
    db.remove().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

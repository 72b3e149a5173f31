//! The `paraply` binary's library half: settings, logging, wiring and
//! [`run`] (serve on a bound listener until a shutdown signal), so tests start the real
//! server on `127.0.0.1:0`. Only this crate reads the environment and files.
//!
//! It also decides how callers authenticate: the trusted issuers of the settings behind one
//! [`paraply_auth::Authenticator`], or nobody with `--auth none`; and, for `paraply demo`
//! only, a built-in demo OpenID provider ([`DemoIdp`]).

pub mod config;
mod demo;
mod demo_idp;

use std::future::Future;
use std::sync::Arc;

use paraply_api::{ApiSettings, EdgeAuth, Metrics, router};
use paraply_auth::{Authenticator, TrustedIssuer};
use paraply_core::{Fhir, Operation};
use paraply_export::Exports;
use paraply_store::{ExportStore, OutboxStore, SessionStore, Store};
use tokio::net::TcpListener;

pub use config::{AuthMode, Config, ConfigError};
pub use demo::load_demo_data;
pub use demo_idp::DemoIdp;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database {url}: {reason}")]
    Database { url: String, reason: String },
    #[error("search index of {url}: {reason}")]
    Reindex { url: String, reason: String },
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("demo data: {0}")]
    Demo(String),
    #[error("trusted issuers: {0}")]
    Auth(String),
    #[error("synth: {0}")]
    Synth(String),
    #[error("audit: {0}")]
    Audit(String),
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
}

/// The database behind one server: FHIR resources, and the portal's sessions (same pools).
#[derive(Clone)]
pub struct Stores {
    pub resources: Arc<dyn Store>,
    pub sessions: Arc<dyn SessionStore>,
    /// The subscription outbox, for the notification worker.
    pub outbox: Arc<dyn OutboxStore>,
    /// Bulk export jobs.
    pub exports: Arc<dyn ExportStore>,
}

/// Opens (creating and migrating) the configured database and brings its search index up
/// to date with this version's search parameters, before anything is served.
pub async fn open_stores(config: &Config) -> Result<Stores, ServerError> {
    let settings = paraply_store_sql::StoreSettings {
        pool_size: config.file.database_pool_size,
        sqlite_synchronous: config.file.storage.sqlite_synchronous,
        sqlite_max_size_bytes: config
            .file
            .storage
            .sqlite_max_size_mb
            .map(|mb| mb.saturating_mul(1024 * 1024)),
    };
    open_indexed(&config.database_url, &settings).await
}

/// `paraply reindex`: [`open_stores`] without serving.
pub async fn reindex_database(url: &str) -> Result<(), ServerError> {
    // The reindex reads and writes on one connection at a time.
    open_indexed(url, &paraply_store_sql::StoreSettings::with_pool_size(2))
        .await
        .map(drop)
}

async fn open_indexed(
    url: &str,
    settings: &paraply_store_sql::StoreSettings,
) -> Result<Stores, ServerError> {
    let (resources, sessions, outbox, exports) =
        paraply_store_sql::open_store_with_sessions(url, settings)
            .await
            .map_err(|e| ServerError::Database {
                url: redact(url),
                reason: e.to_string(),
            })?;
    let done = paraply_core::reindex(&*resources)
        .await
        .map_err(|e| ServerError::Reindex {
            url: redact(url),
            reason: e.to_string(),
        })?;
    let types: Vec<&str> = done
        .iter()
        .filter(|t| t.resources > 0)
        .map(|t| t.resource_type.as_str())
        .collect();
    let resources_walked: u64 = done.iter().map(|t| t.resources).sum();
    tracing::info!(
        reindexed = %types.join(","),
        resources = resources_walked,
        "search index is up to date"
    );
    let patients = paraply_patientkontrakt::record_missing_followup(&*resources)
        .await
        .map_err(|e| ServerError::Reindex {
            url: redact(url),
            reason: format!("recording the follow-up facts: {e}"),
        })?;
    if patients > 0 {
        tracing::info!(
            patients,
            "follow-up facts recorded for a database that had none"
        );
    }
    Ok(Stores {
        resources,
        sessions,
        outbox,
        exports,
    })
}

/// `paraply audit verify`: walks the access log's hash chains of the database `url`.
pub async fn verify_audit_log(url: &str) -> Result<paraply_store::Verification, ServerError> {
    let store = open_for_audit(url).await?;
    store
        .verify_access_log()
        .await
        .map_err(|e| ServerError::Audit(e.to_string()))
}

/// `paraply audit purge`: deletes what is older than `retention_years` (see
/// [`paraply_core::purge_access_log`]).
pub async fn purge_audit_log(
    url: &str,
    retention_years: u32,
) -> Result<paraply_store::Purge, ServerError> {
    let store = open_for_audit(url).await?;
    paraply_core::purge_access_log(&*store, retention_years)
        .await
        .map_err(|e| ServerError::Audit(e.to_string()))
}

async fn open_for_audit(url: &str) -> Result<Arc<dyn Store>, ServerError> {
    paraply_store_sql::open_store(url, 2)
        .await
        .map_err(|e| ServerError::Database {
            url: redact(url),
            reason: e.to_string(),
        })
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            let credentials = &url[start + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..start + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Serves on `listener` until `shutdown` completes; in-flight requests finish first.
pub async fn run(
    listener: TcpListener,
    stores: Stores,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    serve(listener, stores, config, None, shutdown).await
}

/// [`run`] with the demo OpenID provider mounted under `/demo-idp` and trusted, and the
/// portal logging in through it unless `[portal]` names another provider.
pub async fn run_demo(
    listener: TcpListener,
    stores: Stores,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let idp = DemoIdp::new(listener.local_addr()?)?;
    tracing::warn!(
        issuers = %format!("{0}/citizen, {0}/staff", idp.root()),
        "DEMO login service enabled: anyone can log in as the demo people and its signing key is public; never use it for real data"
    );
    serve(listener, stores, config, Some(idp), shutdown).await
}

async fn serve(
    listener: TcpListener,
    stores: Stores,
    config: &Config,
    demo: Option<DemoIdp>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // No redirects: issuer documents are fetched from the exact URLs they publish, the
    // portal reads the provider's answers instead of following them, and a webhook that
    // answers 3xx has not accepted its notification.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ServerError::Auth(e.to_string()))?;
    let mut issuers = config.file.issuer.clone();
    if let Some(idp) = &demo {
        issuers.extend(idp.trusted_issuers());
    }
    let auth = edge_auth(config.auth, issuers, http.clone())?;
    let metrics = Metrics::new().map_err(|e| ServerError::Metrics(e.to_string()))?;
    let public_base_url = config.public_base_url(listener.local_addr()?);
    let exports = Exports::new(
        stores.exports,
        stores.resources.clone(),
        config.file.export.settings(),
        &public_base_url,
    );
    let fhir = engine_with(
        stores.resources,
        config,
        paraply_export::operations(&exports),
    )
    .with_base_url(&public_base_url);
    // Export jobs stop being worked with the server; another node (or the next start)
    // takes an unfinished one over when its lease runs out.
    let (stop_exporting, export_stopped) = tokio::sync::oneshot::channel::<()>();
    let exporter = tokio::spawn(paraply_export::run(
        exports.clone(),
        fhir.clone(),
        async move {
            let _ = export_stopped.await;
        },
    ));
    // Notifications stop with the server; what is not delivered yet stays queued.
    let (stop_notifying, notify_stopped) = tokio::sync::oneshot::channel::<()>();
    let notifier = tokio::spawn(paraply_notify::run(
        fhir.clone(),
        stores.outbox,
        config.file.subscriptions.settings(listener.local_addr()?),
        http.clone(),
        async move {
            let _ = notify_stopped.await;
        },
    ));
    let authenticator = match &auth {
        EdgeAuth::Oidc(authenticator) => Some(authenticator.clone()),
        EdgeAuth::Disabled => None,
    };
    let mut app = router(
        fhir.clone(),
        exports,
        ApiSettings {
            max_body_bytes: config.file.max_body_bytes,
            public_base_url,
        },
        metrics,
        auth,
    );
    let portal = config
        .file
        .portal
        .clone()
        .or_else(|| demo.as_ref().map(DemoIdp::portal_settings));
    if let Some(settings) = portal {
        settings
            .validate()
            .map_err(|e| ServerError::Auth(format!("[portal]: {e}")))?;
        app = app
            .merge(paraply_portal::router(
                settings,
                stores.sessions,
                http,
                fhir,
                authenticator,
            ))
            .fallback(paraply_portal::not_found);
    }
    if let Some(idp) = demo {
        app = app.merge(idp.router());
    }
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_notifying.send(());
    let _ = notifier.await;
    let _ = stop_exporting.send(());
    let _ = exporter.await;
    served?;
    Ok(())
}

/// The FHIR engine with the patientkontrakt plugged in: every request, the demo load and
/// the server's own writes use this one.
pub fn engine(store: Arc<dyn Store>, config: &Config) -> Fhir {
    engine_with(store, config, Vec::new())
}

/// [`engine`] with further operations (the serving engine's `$export`, which needs the
/// node's export jobs).
fn engine_with(
    store: Arc<dyn Store>,
    config: &Config,
    operations: Vec<Arc<dyn Operation>>,
) -> Fhir {
    let mut extensions =
        paraply_patientkontrakt::extensions(config.file.patientkontrakt.settings());
    extensions
        .checks
        .push(Arc::new(paraply_notify::SubscriptionCheck::new(Arc::new(
            config.file.subscriptions.policy(config.listen),
        ))));
    extensions.operations.extend(operations);
    Fhir::with_access(store, config.file.access.settings()).extended(extensions)
}

/// How the HTTP edge authenticates callers.
fn edge_auth(
    mode: AuthMode,
    issuers: Vec<TrustedIssuer>,
    http: reqwest::Client,
) -> Result<EdgeAuth, ServerError> {
    match mode {
        AuthMode::None => {
            tracing::warn!(
                "AUTHENTICATION IS OFF (--auth none): every request runs unrestricted, with no access rules and no access log; development on this machine only"
            );
            Ok(EdgeAuth::Disabled)
        }
        AuthMode::Oidc => {
            if issuers.is_empty() {
                return Err(ConfigError::NoIssuers.into());
            }
            for issuer in &issuers {
                tracing::info!(issuer = %issuer.issuer, kind = ?issuer.kind, "trusting issuer");
            }
            let authenticator =
                Authenticator::new(issuers, http).map_err(|e| ServerError::Auth(e.to_string()))?;
            Ok(EdgeAuth::Oidc(Arc::new(authenticator)))
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}

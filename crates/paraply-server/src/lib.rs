//! The `paraply` binary's library half: settings, logging, wiring and
//! [`run`] (serve on a bound listener until a shutdown signal), so tests start the real
//! server on `127.0.0.1:0`. Only this crate reads the environment and files.

pub mod config;
mod demo;

use std::future::Future;
use std::sync::Arc;

use paraply_api::{ApiSettings, Metrics, router};
use paraply_core::Fhir;
use paraply_store::Store;
use tokio::net::TcpListener;

pub use config::{Config, ConfigError};
pub use demo::load_demo_data;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database {url}: {reason}")]
    Database { url: String, reason: String },
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("demo data: {0}")]
    Demo(String),
    #[error("synth: {0}")]
    Synth(String),
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens (creating and migrating) the configured database.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, ServerError> {
    paraply_store_sql::open_store(&config.database_url, config.file.database_pool_size)
        .await
        .map_err(|e| ServerError::Database {
            url: redact(&config.database_url),
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
    store: Arc<dyn Store>,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let metrics = Metrics::new().map_err(|e| ServerError::Metrics(e.to_string()))?;
    let app = router(
        Fhir::new(store),
        ApiSettings {
            max_body_bytes: config.file.max_body_bytes,
        },
        metrics,
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
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

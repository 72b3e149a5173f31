//! Subscription notifications (FHIR R4 `Subscription`, rest-hook), delivered from a
//! durable outbox: what this crate owns.
//!
//! - [`SubscriptionCheck`]: the check on every Subscription write (criteria a valid search,
//!   rest-hook only, an allowed endpoint ([`EndpointPolicy`]), a signing secret).
//! - [`run`]: the worker every node runs. Every committed version is queued by its own write
//!   transaction (`paraply-store-sql`); the dispatcher (one node at a time, by lease)
//!   matches queued changes against the active subscriptions with their own search and
//!   numbers the notifications per subscription; the deliverer sends each subscription's
//!   notifications in order, one node at a time per subscription, signed
//!   (`X-Paraply-Signature`), retried with backoff; failures show in `Subscription.status`
//!   and `error`, and the subscription is turned `off` after a set number in a row. A
//!   subscription written as `requested` gets a handshake, and becomes `active` once its
//!   endpoint accepts it.
//!
//! Notifications are id-only by default (no health data leaves the server); a
//! full-resource subscription gets the changed version only where its care provider may
//! read it at delivery time under the access rules.

mod check;
mod endpoint;
mod notification;
mod subscription;
mod worker;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use paraply_core::Fhir;
use paraply_store::OutboxStore;

pub use check::SubscriptionCheck;
pub use endpoint::EndpointPolicy;
pub use notification::{SIGNATURE_HEADER, signature};
pub use subscription::{MIN_SECRET_LENGTH, PAYLOAD_CONTENT_EXTENSION, SIGNING_SECRET_EXTENSION};

use worker::Worker;

/// How the worker delivers.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub policy: Arc<EndpointPolicy>,
    /// Failed deliveries in a row after which a subscription is turned `off`.
    pub max_failures: i64,
    /// How long one delivery may take.
    pub timeout: Duration,
    /// The wait after the first failure; it doubles with each further one (at most 5 min).
    pub retry_base: Duration,
    /// How often an idle worker looks for work.
    pub poll_interval: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            policy: Arc::new(EndpointPolicy::default()),
            max_failures: 10,
            timeout: Duration::from_secs(5),
            retry_base: Duration::from_secs(1),
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// Runs the dispatcher and the deliverer of this node until `shutdown` completes. `fhir`
/// is the engine requests use (its store, base URL and write path); `http` must follow no
/// redirects: an endpoint that answers 3xx has not accepted the notification, and
/// following it could lead anywhere the allowed-host check did not look.
pub async fn run(
    fhir: Fhir,
    outbox: Arc<dyn OutboxStore>,
    settings: NotifySettings,
    http: reqwest::Client,
    shutdown: impl Future<Output = ()> + Send,
) {
    let worker = Worker {
        fhir,
        outbox,
        settings: Arc::new(settings),
        http,
        node: Arc::from(uuid::Uuid::new_v4().to_string()),
    };
    let dispatcher = worker.clone();
    tokio::select! {
        () = shutdown => {}
        () = repeat("dispatch", &worker, || dispatcher.dispatch()) => {}
        () = repeat("delivery", &worker, || worker.deliver()) => {}
    }
}

/// Runs `round` again and again: at once while it finds work, after the poll interval when
/// it finds none, after ten when it fails (logged).
async fn repeat<F, Fut>(what: &str, worker: &Worker, round: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<usize, worker::WorkerError>>,
{
    let poll = worker.settings.poll_interval;
    loop {
        match round().await {
            Ok(0) => tokio::time::sleep(poll).await,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "subscription {what} failed; trying again");
                tokio::time::sleep(poll * 10).await;
            }
        }
    }
}

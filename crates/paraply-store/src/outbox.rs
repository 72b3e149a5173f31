//! The subscription outbox: what the notification worker (`paraply-notify`) reads and
//! writes. Every committed resource version is queued by its own write transaction
//! ([`StoreTx::commit`](crate::StoreTx::commit) commits the queue row with the version), so a
//! crash between a commit and its notification loses nothing; the dispatcher turns queued
//! changes into numbered notifications per subscription, and deliverers send them.
//!
//! Several nodes may share one database: one dispatcher at a time holds a lease, and each
//! subscription is delivered by one node at a time under a lease of its own, oldest
//! notification first, so notifications arrive in order per subscription.

use async_trait::async_trait;
use paraply_fhir::{ResourceId, ResourceType, VersionId};
use time::OffsetDateTime;

use crate::StoreError;

/// A committed version waiting for the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedChange {
    /// Its place in the queue (the version's row), the key to [`OutboxStore::dispatch`] it.
    pub seq: i64,
    pub resource_type: ResourceType,
    pub id: ResourceId,
    pub version_id: VersionId,
    pub deleted: bool,
}

/// What kind of notification a subscription gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    /// The check, when a subscription is requested, that its endpoint answers.
    Handshake,
    /// A change that matches its criteria.
    Event,
}

impl NotificationKind {
    /// The code of the Subscriptions Backport IG's notification type.
    pub fn code(self) -> &'static str {
        match self {
            NotificationKind::Handshake => "handshake",
            NotificationKind::Event => "event-notification",
        }
    }

    pub fn from_code(code: &str) -> Option<NotificationKind> {
        match code {
            "handshake" => Some(NotificationKind::Handshake),
            "event-notification" => Some(NotificationKind::Event),
            _ => None,
        }
    }
}

/// A notification the dispatcher queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub subscription_id: ResourceId,
    pub kind: NotificationKind,
    /// `Type/id/_history/version` of the change; `None` for a handshake.
    pub focus: Option<String>,
}

/// A queued notification, numbered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub seq: i64,
    pub subscription_id: ResourceId,
    /// Events since the subscription started, this one included; 0 for a handshake.
    pub event_number: i64,
    pub kind: NotificationKind,
    pub focus: Option<String>,
    pub created: OffsetDateTime,
}

/// A subscription a node may deliver now: its oldest waiting notifications, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryClaim {
    pub subscription_id: ResourceId,
    /// Failed attempts in a row before this claim.
    pub failures: i64,
    pub notifications: Vec<Notification>,
}

#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Takes, or renews, the dispatcher lease for `node` until `until`; `false` while another
    /// node holds it.
    async fn claim_dispatcher(
        &self,
        node: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// The oldest queued changes, at most `limit`, oldest first.
    async fn queued_changes(&self, limit: u32) -> Result<Vec<QueuedChange>, StoreError>;

    /// In one transaction, only while `node` still holds the dispatcher lease (else
    /// `false`, nothing written): numbers and queues `notifications` in the order given,
    /// after each subscription's earlier ones, and removes the changes `done` (their seqs)
    /// from the queue.
    async fn dispatch(
        &self,
        node: &str,
        now: OffsetDateTime,
        notifications: &[NewNotification],
        done: &[i64],
    ) -> Result<bool, StoreError>;

    /// Claims for `node` until `until` at most `limit` subscriptions that have
    /// notifications due (`next_attempt` passed) and no other node's live lease, with their
    /// oldest `per_subscription` notifications.
    async fn claim_deliveries(
        &self,
        node: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
        per_subscription: u32,
    ) -> Result<Vec<DeliveryClaim>, StoreError>;

    /// The notifications `seqs` were delivered: they leave the queue and the failures
    /// count starts again. One statement for a claim's run of deliveries: a node that dies
    /// before it records them sends them again (at least once, with their numbers).
    async fn delivered(&self, subscription_id: &ResourceId, seqs: &[i64])
    -> Result<(), StoreError>;

    /// An attempt failed: counts it and waits until `next_attempt`; returns the failures in
    /// a row.
    async fn delivery_failed(
        &self,
        subscription_id: &ResourceId,
        next_attempt: OffsetDateTime,
    ) -> Result<i64, StoreError>;

    /// Gives up `node`'s lease on the subscription.
    async fn release(&self, node: &str, subscription_id: &ResourceId) -> Result<(), StoreError>;

    /// Drops every waiting notification of a subscription that is off or gone.
    async fn discard(&self, subscription_id: &ResourceId) -> Result<(), StoreError>;
}

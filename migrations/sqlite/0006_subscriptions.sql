-- Subscription delivery (paraply-notify): an outbox in two steps, so no notification is lost
-- across a crash and each is delivered by one node at a time. Times are unix microseconds.

-- Every committed resource version, queued by the write's own transaction: what commits is
-- queued, what rolls back is not. The dispatcher matches them against the subscriptions and
-- deletes them.
CREATE TABLE subscription_change (
    version_seq INTEGER NOT NULL PRIMARY KEY -- resource_version.seq
);

-- Notifications waiting for delivery, oldest first per subscription. `event_number` is the
-- subscription's events-since-subscription-start (0 for a handshake).
CREATE TABLE subscription_notification (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT    NOT NULL,
    event_number    INTEGER NOT NULL,
    kind            TEXT    NOT NULL, -- handshake | event-notification
    focus           TEXT,             -- Type/id/_history/version of the change; NULL for a handshake
    created         INTEGER NOT NULL
);
CREATE INDEX subscription_notification_subscription
    ON subscription_notification (subscription_id, seq);

-- Per subscription: events numbered so far, failed attempts in a row, when to try next, and
-- which node delivers (a lease, so a node that dies hands over when it runs out).
CREATE TABLE subscription_delivery (
    subscription_id TEXT    NOT NULL PRIMARY KEY,
    events          INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    next_attempt    INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- The one dispatcher at a time, by lease.
CREATE TABLE subscription_dispatcher (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    lease_owner TEXT,
    lease_until INTEGER NOT NULL
);
INSERT INTO subscription_dispatcher (id, lease_owner, lease_until) VALUES (1, NULL, 0);

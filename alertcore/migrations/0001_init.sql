-- alertcore state, schema version 1.
-- Timestamps are integer Unix milliseconds.

-- Per-service policy state (alertcore::ServiceState as JSON: fields are only ever added).
CREATE TABLE services (
    name       TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);

-- Failure history of each service's current streak; deleted when the streak ends.
CREATE TABLE failures (
    id             INTEGER PRIMARY KEY,
    service        TEXT NOT NULL,
    ts_ms          INTEGER NOT NULL,
    service_result TEXT NOT NULL,
    exit_code      TEXT,
    exit_status    TEXT,
    invocation_id  TEXT,
    severity       TEXT NOT NULL,
    host           TEXT NOT NULL,
    message        TEXT,
    notifiers      TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX failures_by_service ON failures (service, id);

-- Every notification: written as 'pending' before it is sent, then 'delivered' or 'failed'.
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    service     TEXT NOT NULL,
    notifier    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    streak      INTEGER NOT NULL,
    sequence    INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    finished_ms INTEGER
);
CREATE INDEX notifications_by_service ON notifications (service, id);

-- Counters, e.g. the per-host alert sequence number.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- alertcore state, schema version 2: the notification log becomes the outbox.
--
-- status: 'pending' (waiting to be sent or retried), 'delivered', 'failed' (given up or
-- a permanent error), 'dropped' (by an operator).
ALTER TABLE notifications ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
-- When a pending row is due (again); NULL once it is finished.
ALTER TABLE notifications ADD COLUMN next_attempt_ms INTEGER;
-- A sender claimed the row until then (it is being sent).
ALTER TABLE notifications ADD COLUMN lease_ms INTEGER;
-- Opaque JSON the sender needs to send the row again; the store only keeps it.
ALTER TABLE notifications ADD COLUMN payload TEXT;
-- The failure history as of the event (JSON), so the row can be sent again after the
-- streak has ended and its failures were deleted.
ALTER TABLE notifications ADD COLUMN history TEXT;

-- Version 1 rows that finished were attempted once.
UPDATE notifications SET attempts = 1 WHERE status IN ('delivered', 'failed');

-- A version 1 'pending' row is an alert whose sender died before recording the outcome.
-- It has no payload, so nothing can send it again: it failed. Its recipient in the
-- service state (serde's compact JSON) is failed too, or the policy would wait on it
-- forever; failed lets the next event alert again.
UPDATE notifications
SET status = 'failed',
    error = 'interrupted before alertcore had an outbox',
    finished_ms = CAST(strftime('%s', 'now') AS INTEGER) * 1000
WHERE status = 'pending';
UPDATE services
SET state = replace(state, '"outcome":"pending"', '"outcome":"failed"')
WHERE instr(state, '"outcome":"pending"') > 0;

-- The open rows: due ones (status = 'pending' AND next_attempt_ms <= now) and those an
-- operator lists. Partial, so that it stays a few pages however long the log grows and a
-- delivery only takes its row out (queries that use it repeat the WHERE term verbatim,
-- which is how SQLite knows the partial index covers them).
CREATE INDEX notifications_due ON notifications (status, next_attempt_ms)
WHERE status IN ('pending', 'failed');

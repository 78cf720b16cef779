-- alertcore state, schema version 3: the pending rows by notifier.
--
-- A claim takes a notifier's due rows in the order they fell due, up to its free slots,
-- and only the oldest pending row of each notifier, service and streak; it counts the
-- notifier's rows in flight first. A new row asks whether an older one of its group is
-- pending. With these two indexes each of those reads walks only the rows it returns,
-- so the hundreds of rows a burst leaves behind a busy notifier cost nothing. Both
-- hold every column their queries need (`status` too, or SQLite looks it up in the
-- table). Partial: a finished row leaves them.

-- By notifier and lease (NULL: not being sent), then due time: the queue of each
-- notifier, and its rows in flight (lease_ms >= now).
CREATE INDEX notifications_queue
ON notifications (notifier, lease_ms, next_attempt_ms, id, service, streak, status)
WHERE status = 'pending';

-- By notifier, service and streak: is an older row of the group pending?
CREATE INDEX notifications_pending
ON notifications (notifier, service, streak, id, status)
WHERE status = 'pending';

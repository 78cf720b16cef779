-- alertcore state, schema version 3: the pending rows by notifier and incident.
--
-- A claim keeps only the oldest pending row of each notifier, service and streak, and
-- counts a notifier's rows in flight; a new row asks whether an older one of its group
-- is pending. This index answers all three without reading the table: it holds every
-- column they need (`status` too, or SQLite looks it up), in the order the claim
-- partitions by. A claim reads only the rows of notifiers with a free slot, so the
-- hundreds of rows a burst leaves behind a busy notifier cost nothing. Partial: a
-- finished row leaves it.
CREATE INDEX notifications_pending
ON notifications (notifier, service, streak, id, next_attempt_ms, lease_ms, status)
WHERE status = 'pending';

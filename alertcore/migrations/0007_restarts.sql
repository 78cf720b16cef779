-- alertcore state, schema version 7: restart loops and run triggers.
--
-- A failure of a run that systemd restarts by itself (`Restart=`) is marked, so an
-- alert can say "restarting (n times in 5m)" and the recovery how many restarts it
-- took; `started_by` is what started the failed run (`timer`, `boot`, `other`), when
-- known, for rules with `trigger`.
ALTER TABLE failures ADD COLUMN restarting INTEGER NOT NULL DEFAULT 0;
ALTER TABLE failures ADD COLUMN started_by TEXT;

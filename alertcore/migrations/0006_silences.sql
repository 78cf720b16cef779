-- alertcore state, schema version 6: silences.
--
-- One row per `alertctl silence add`: what it covers (JSON matchers: service and host
-- patterns, a severity), when it starts and ends, why and who. `silence expire` sets
-- its end to the time it was expired. Alerts an event would send while one covers it
-- are held; the engine reads the ones not yet ended at each event.
CREATE TABLE silences (
    id         INTEGER PRIMARY KEY,
    matchers   TEXT    NOT NULL,
    starts_ms  INTEGER NOT NULL,
    ends_ms    INTEGER NOT NULL,
    comment    TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX silences_by_end ON silences (ends_ms);

-- alertcore state, schema version 5: signals the watched things send.
--
-- One row per signal a heartbeat received (a success, a start, a failure, an exit
-- status, a log line), in the order they arrived, with its time, the run id that pairs
-- a start with its finish, and the request body or log text (capped by the caller).
-- The deadlines, "3 failures in 1h", "finished too fast" and "ran too early" are all
-- read from here; each source keeps its newest signals only.
CREATE TABLE signals (
    id          INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    exit_status INTEGER,
    rid         TEXT,
    at_ms       INTEGER NOT NULL,
    body        TEXT
);
CREATE INDEX signals_by_source ON signals (source, id);

-- alertcore state, schema version 4: the latest state of what the daemon watches.
--
-- One row per watched thing (a polling check, later a heartbeat or a journal chain):
-- its kind, its name and one JSON document the source reads back at start (its last
-- result, how many runs in a row failed, when it runs next). A source writes it when
-- something changes and at checkpoints, not at every run.
CREATE TABLE sources (
    kind       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;

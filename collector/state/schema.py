"""The database schema, one migration per version, applied in order when a store opens."""

from __future__ import annotations

import sqlite3

from collector.core.states import IncidentState, StepScope, sql_check

SCHEMA_VERSION = 5

_SCHEMA = """
CREATE TABLE log_cursors (
    router TEXT PRIMARY KEY,
    fingerprints TEXT NOT NULL,         -- collector.detect.cursor.LogCursor.to_text()
    last_seq INTEGER,
    last_device_time TEXT,
    last_line_hash TEXT,
    buffer_size INTEGER,
    messages_logged INTEGER,
    read_at TEXT NOT NULL
);
CREATE TABLE events (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    router TEXT NOT NULL,
    key TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('poll', 'syslog', 'qfp')),
    raw TEXT NOT NULL,
    device_time TEXT,
    received_at TEXT NOT NULL,
    incident_id TEXT
);
CREATE INDEX events_by_event_id ON events (event_id);
CREATE INDEX events_by_key ON events (key, received_at);
CREATE INDEX events_by_router ON events (router, received_at);
CREATE TABLE flows (                    -- open tracker windows, per tracker (playbook)
    tracker TEXT NOT NULL,
    key TEXT NOT NULL,
    ord INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    count INTEGER NOT NULL,
    repeated INTEGER NOT NULL,
    pair TEXT,
    PRIMARY KEY (tracker, key)
);
CREATE TABLE cooldowns (
    tracker TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('flow', 'pair')),
    key TEXT NOT NULL,
    until TEXT NOT NULL,
    PRIMARY KEY (tracker, kind, key)
);
CREATE TABLE seen_events (
    tracker TEXT NOT NULL,
    event_id TEXT NOT NULL,
    ord INTEGER NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (tracker, event_id)
);
CREATE TABLE pending_transients (
    tracker TEXT NOT NULL,
    ord INTEGER NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (tracker, ord)
);
CREATE TABLE trackers (
    tracker TEXT PRIMARY KEY,
    saved_at TEXT NOT NULL
);
CREATE TABLE incidents (
    incident_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    playbook TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('armed', 'capturing', 'captured', 'transient', 'failed', 'skipped')),
    reason TEXT NOT NULL,
    bundle_path TEXT,
    routers TEXT NOT NULL,              -- JSON list
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX incidents_by_state ON incidents (state);
CREATE TABLE armed_steps (
    incident_id TEXT NOT NULL,
    router TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('exec', 'config')),
    do TEXT NOT NULL,                   -- JSON list of commands
    undo TEXT NOT NULL,                 -- JSON list of commands
    why TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'applied', 'undone', 'failed')),
    error TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, router, step_index)
);
CREATE INDEX armed_steps_by_router ON armed_steps (router, status);
CREATE TABLE qfp_counters (
    router TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    read_at TEXT NOT NULL,
    PRIMARY KEY (router, name)
);
CREATE TABLE addresses (
    router TEXT NOT NULL,
    address TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (router, address)
);
CREATE INDEX addresses_by_address ON addresses (address);
"""

# Version 2: incident states and step statuses come from the enums of collector.core.states
# (SQLite cannot alter a CHECK, so the incidents table is rebuilt); an incident says
# whether it was armed only after its flow had repeated (`armed_late`), and a step whom it
# serves (`scope`), so nothing has to be recognised by reading prose or command text.
_SCHEMA_2 = f"""
CREATE TABLE incidents_v2 (
    incident_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    playbook TEXT NOT NULL,
    state TEXT NOT NULL {sql_check("state", IncidentState)},
    reason TEXT NOT NULL,
    bundle_path TEXT,
    routers TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    armed_late INTEGER NOT NULL DEFAULT 0,
    armed_at TEXT                        -- every end armed (and the receiver's log marked) at
);
INSERT INTO incidents_v2 (incident_id, key, playbook, state, reason, bundle_path, routers, created_at, updated_at)
    SELECT incident_id, key, playbook, state, reason, bundle_path, routers, created_at, updated_at FROM incidents;
DROP TABLE incidents;
ALTER TABLE incidents_v2 RENAME TO incidents;
CREATE INDEX incidents_by_state ON incidents (state);
ALTER TABLE armed_steps ADD COLUMN scope TEXT NOT NULL DEFAULT 'router' {sql_check("scope", StepScope)};
CREATE TABLE unknown_sources (           -- invalid-SPI lines from no inventory router or peer
    router TEXT NOT NULL,
    src TEXT NOT NULL,
    lines INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (router, src)
);
"""

# Version 3: a commit counter, compared at open with the copy kept beside the file.
_SCHEMA_3 = """
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta VALUES ('commits', 0);
"""

# Version 4: the router work of each incident done through site workers (`--broker`): which
# site's worker armed, captured and disarmed which router, for `collector incidents`.
_SCHEMA_4 = """
CREATE TABLE incident_work (
    incident_id TEXT NOT NULL,
    router TEXT NOT NULL,
    action TEXT NOT NULL,               -- arm, join, capture, disarm, hand-over, emergency-disarm
    site TEXT NOT NULL,                 -- the site whose worker did it (or was asked and did not answer)
    worker TEXT,                        -- that worker's node name, NULL when none answered
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX incident_work_by_incident ON incident_work (incident_id, at)
"""

# Version 5: when each router's buffer was last read whole, so that a cron run (a new
# process every few minutes) reads it whole only when that is due, not at every start.
_SCHEMA_5 = """
ALTER TABLE log_cursors ADD COLUMN whole_read_at TEXT
"""

# Each schema change is one entry; `_migrate` applies them in order.
MIGRATIONS: dict[int, str] = {1: _SCHEMA, 2: _SCHEMA_2, 3: _SCHEMA_3, 4: _SCHEMA_4, 5: _SCHEMA_5}


_REFERENCE_TABLES: dict[str, tuple[str, ...]] | None = None


def reference_tables() -> dict[str, tuple[str, ...]]:
    """Table name -> column names of this collector's schema (built once, in memory)."""
    global _REFERENCE_TABLES
    if _REFERENCE_TABLES is None:
        conn = sqlite3.connect(":memory:")
        for target in range(1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                            " AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        _REFERENCE_TABLES = {n: tuple(r[1] for r in conn.execute(f'PRAGMA table_info("{n}")')) for n in names}
        conn.close()
    return _REFERENCE_TABLES

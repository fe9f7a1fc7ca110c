"""Which site did each step: the store's `incident_work` table (schema 4), and a schema-3
store brought up to it on open with nothing lost."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

from collector.state import SCHEMA_VERSION, StateStore, WorkRecord
from collector.state.schema import MIGRATIONS

AT = datetime(2026, 12, 6, 4, 0, tzinfo=timezone.utc)


def test_work_is_kept_per_incident_in_order(tmp_path):
    with StateStore(tmp_path / "state.db") as store:
        store.record_work(WorkRecord("inc1", "hub1", "arm", "east", "east@jump1", True, "hub1: armed", AT))
        store.record_work(WorkRecord("inc2", "spoke9", "arm", "west", None, False, "site west did not answer",
                                     AT))
        store.record_work(WorkRecord("inc1", "spoke1", "arm", "west", "west@jump2", True, "spoke1: armed", AT))
        assert [(w.router, w.site, w.worker) for w in store.work("inc1")] == [
            ("hub1", "east", "east@jump1"), ("spoke1", "west", "west@jump2")]
        [dark] = store.work("inc2")
        assert dark.ok is False and dark.worker is None and dark.to_json()["at"] == AT.isoformat()


def test_a_schema_3_store_gains_the_work_table_and_keeps_its_incidents(tmp_path):
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    for version in (1, 2, 3):
        for statement in MIGRATIONS[version].split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("INSERT INTO incidents (incident_id, key, playbook, state, reason, routers, created_at, updated_at)"
                 " VALUES ('old', 'k', 'p', 'captured', '', '[]', ?, ?)", (AT.isoformat(), AT.isoformat()))
    conn.execute("PRAGMA user_version=3")
    conn.commit()
    conn.close()
    with StateStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION >= 4
        assert [r.incident_id for r in store.incidents()] == ["old"]
        assert store.work("old") == []
        store.record_work(WorkRecord("old", "hub1", "disarm", "east", "east@jump1", True, "clean", AT))
        assert len(store.work()) == 1

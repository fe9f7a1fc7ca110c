"""Pre-arm logs staged once per read: flows joined to one router at once share one read
of its log, and each incident's staging folder gets it, redacted once."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from ipaddress import ip_address

import collector.agent.contexts as contexts_module
from collector.agent.contexts import IncidentContext, IncidentContexts
from collector.core.results import LogSnapshot
from collector.detect.events import Flow
from collector.inventory import Inventory
from collector.state import StateStore

SECRET_LINE = ("*Dec  6 09:59:00.000: %PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:username bob "
               "password 0 Sesame-Pw1\n")
READ_AT = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)


def _contexts(tmp_path) -> IncidentContexts:
    inventory = Inventory(hosts={}, groups={}, source=[], digest="")
    return IncidentContexts(inventory=inventory, store=StateStore(tmp_path / "state.db"), bundle_root=tmp_path / "b")


def _context(n: int, snapshot: LogSnapshot) -> IncidentContext:
    flow = Flow("hub1", ip_address("10.0.0.2"), ip_address("10.0.0.1"), 0x1000 + n, 50)
    return IncidentContext(f"inc-{n}", flow, "hub1", None, pre_arm={"hub1": snapshot})


def test_one_read_shared_by_five_incidents_is_redacted_once_and_staged_in_each(tmp_path, monkeypatch):
    contexts = _contexts(tmp_path)
    snapshot = LogSnapshot("hub1", "Log Buffer (100000 bytes):\n" + SECRET_LINE * 500, READ_AT)
    redactions = []
    real = contexts_module.redact_pieces
    monkeypatch.setattr(contexts_module, "redact_pieces",
                        lambda pieces, secrets=(): redactions.append(1) or real(pieces, secrets))
    held = [contexts.start(_context(n, snapshot)) for n in range(5)]
    threads = [threading.Thread(target=contexts.save, args=(c,)) for c in held]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    assert len(redactions) == 1
    texts = {(contexts.folder(c.incident_id) / "hub1.pre-arm.log").read_text() for c in held}
    (text,) = texts  # the same in every folder
    assert "Sesame-Pw1" not in text and text.count("logged command:username bob") == 500
    assert all(c.pre_arm == {} and c.pre_arm_staged == {"hub1": READ_AT} for c in held)


def test_a_copy_whose_first_folder_is_gone_is_written_again(tmp_path):
    contexts = _contexts(tmp_path)
    snapshot = LogSnapshot("hub1", SECRET_LINE, READ_AT)
    first = contexts.start(_context(1, snapshot))
    contexts.save(first)
    contexts.forget(first.incident_id)  # sealed and gone
    second = contexts.start(_context(2, snapshot))
    contexts.save(second)
    text = (contexts.folder(second.incident_id) / "hub1.pre-arm.log").read_text()
    assert "logged command:username bob" in text and "Sesame-Pw1" not in text


def test_different_reads_are_each_redacted(tmp_path):
    contexts = _contexts(tmp_path)
    one = contexts.start(_context(1, LogSnapshot("hub1", "first read\n", READ_AT)))
    two = contexts.start(_context(2, LogSnapshot("hub1", "second read\n", READ_AT)))
    contexts.save(one)
    contexts.save(two)
    assert (contexts.folder("inc-2") / "hub1.pre-arm.log").read_text() == "second read\n"
    assert (contexts.folder("inc-1") / "hub1.pre-arm.log").read_text() == "first read\n"

"""The whole agent (tests/unit/test_agent_loop.World: scripted routers, a real state store
and bundle folder) when its disk fails it, and when a line's source is the receiver itself
or an address two routers hold.

Disk faults: the state store refuses every write (SQLite's own read-only refusal, or its
disk-full error; tests/store_faults.py), or the bundle folder is a file (the OS refuses
every write under it). In each case the routers end with nothing of the tool's on them and
the operator's own debugs as they were, what could not be written is said, and nothing
raises or logs a traceback.
"""

from __future__ import annotations

import os
from ipaddress import ip_address

import pytest

from collector.core.states import IncidentState
from collector.timeutil import utcnow
from tests.scripted_router import Box, StubProfile
from tests.store_faults import FAULTS, unwritable, writable
from tests.unit.test_agent_loop import HUB, SPOKE, World, host, line, world_factory  # noqa: F401

OPERATOR = {"debugs": {"ipsec"}, "conditions": ["192.0.2.99"], "other_debugs": {"IP OSPF adjacency"}}


def _tolerant(w: World) -> World:
    """The world's agent, allowed to arm beside the operator's own debugs."""
    w.agent.close()
    w.book = w.book.model_copy(update={"guards": w.book.guards.model_copy(update={"refuse_if_foreign_debugs": False})})
    w.agent = w.new_agent()
    return w


def _nothing_of_the_tools(w: World) -> bool:
    return (w.hub.applets == {} and w.spoke.applets == {} and w.spoke.debugs == set() and w.spoke.conditions == []
            and w.hub.buffered_line == "logging buffered 16384 informational"
            and w.spoke.buffered_line == "logging buffered 16384 informational")


def _operators_untouched(w: World) -> bool:
    return (w.hub.debugs == {"ipsec"} and w.hub.conditions == ["192.0.2.99"]
            and w.hub.other_debugs == {"IP OSPF adjacency"})


def _no_traceback(caplog) -> bool:
    return not any(record.exc_info for record in caplog.records)


def _bundle_folder_refuses_writes(w: World) -> None:
    """The bundle folder becomes a file: every write under it fails in the OS (as root,
    a mode would not stop this process; a file in the folder's place does)."""
    w.bundles.rename(w.bundles.with_name("bundles.before"))
    w.bundles.write_text("not a folder\n")


# ---------------------------------------------------------------------- the state store cannot be written


@pytest.mark.parametrize("fault", FAULTS)
def test_the_window_ends_with_the_store_unwritable_and_both_ends_are_disarmed(world_factory, caplog, fault):
    w = _tolerant(world_factory(hub_lines=[line(0)], **OPERATOR))
    w.poll()
    (incident,) = w.incidents()
    assert w.hub.applets and w.spoke.debugs == {"isakmp", "ipsec"}
    unwritable(w.store, fault)
    w.later(w.book.arm_window.total_seconds() / 60 + 1)  # no repeat: the window ends
    assert _nothing_of_the_tools(w) and _operators_untouched(w)
    assert not w.agent.holds("hub1") and not w.agent.holds("spoke1")
    said = "\n".join(w.messages)
    assert said.count("the state store cannot be written") == 1  # said once, not per write
    assert "readonly database" in said or "the disk is full" in said
    ended = next(m for m in w.messages if m.startswith(f"incident {incident.incident_id} ended transient"))
    assert "hub1: clean" in ended and "spoke1: clean" in ended
    assert "could not be recorded in the state store" in ended and "not recorded in the state store yet" in ended
    # the store still says armed; nothing is sent to the routers again for it
    sent = {name: len(w.routers.sent(name)) for name in ("hub1", "spoke1")}
    assert w.agent.sweep_orphans() == [] and sent == {n: len(w.routers.sent(n)) for n in sent}
    w.agent.close()  # still refused at the end: said, with what the next start will do
    assert any(m.startswith("not written to the state store") and "undo step(s) of hub1, spoke1" in m
               and "the end of 1 incident(s)" in m for m in w.messages)
    assert _no_traceback(caplog)


def test_what_the_store_refused_is_written_once_it_takes_writes_again(world_factory):
    w = world_factory(hub_lines=[line(0)])
    w.poll()
    unwritable(w.store, "full")
    w.later(w.book.arm_window.total_seconds() / 60 + 1)
    (incident,) = w.incidents()
    assert incident.state is IncidentState.ARMED and w.store.armed_steps()  # the store could not follow
    writable(w.store)
    w.agent.sweep_orphans()  # the daemon's 30 s disarm retry
    (incident,) = w.incidents()
    assert incident.state is IncidentState.TRANSIENT and w.store.armed_steps() == []
    assert w.hub.applets == {} and w.spoke.applets == {}


@pytest.mark.parametrize("fault", FAULTS)
def test_sigterm_with_the_store_unwritable_disarms_every_end(world_factory, caplog, fault):
    w = _tolerant(world_factory(hub_lines=[line(0)], **OPERATOR))
    w.poll()
    unwritable(w.store, fault)
    w.agent.stop("agent stopped")  # what `watch` does on SIGTERM
    assert _nothing_of_the_tools(w) and _operators_untouched(w)
    assert any("the state store cannot be written" in m for m in w.messages)
    assert _no_traceback(caplog)


# ---------------------------------------------------------------------- the bundle folder cannot be written


def test_sigterm_with_the_bundle_folder_unwritable_disarms_and_says_what_was_not_written(world_factory, caplog):
    w = _tolerant(world_factory(hub_lines=[line(0)], **OPERATOR))
    w.poll()
    _bundle_folder_refuses_writes(w)
    w.agent.stop("agent stopped")
    assert _nothing_of_the_tools(w) and _operators_untouched(w)
    (incident,) = w.incidents()
    assert incident.state is IncidentState.STOPPED
    assert any("could not stage releases.jsonl" in r.getMessage() for r in caplog.records)
    assert _no_traceback(caplog)


def test_a_capture_with_the_bundle_folder_unwritable_disarms_and_says_no_bundle_was_written(world_factory, caplog):
    w = _tolerant(world_factory(hub_lines=[line(0)], **OPERATOR))
    w.poll()
    _bundle_folder_refuses_writes(w)
    w.hub.log(line(1))
    w.poll()
    assert _nothing_of_the_tools(w) and _operators_untouched(w)
    assert w.agent.bundles == []
    (incident,) = w.incidents()
    assert "the capture could not be kept on disk" in incident.reason and "Not a directory" in incident.reason
    assert any(m.startswith(f"incident {incident.incident_id} ended") and "the bundle could not be written" in m
               for m in w.messages)
    assert _no_traceback(caplog)


@pytest.mark.parametrize("fault", ["a file", "full"])
def test_no_room_for_the_bundle_refuses_to_arm_and_sends_nothing(world_factory, monkeypatch, fault):
    w = world_factory(hub_lines=[line(0), line(1)])
    if fault == "a file":
        w.bundles.write_text("not a folder\n")
    else:
        real = os.statvfs

        def nearly_full(path):
            found = real(path)
            return os.statvfs_result((found.f_bsize, found.f_frsize, found.f_blocks, found.f_bfree, 10,
                                      found.f_files, found.f_ffree, found.f_favail, found.f_flag, found.f_namemax))

        monkeypatch.setattr(os, "statvfs", nearly_full)
    w.poll()
    for name in ("hub1", "spoke1"):
        assert [c for c in w.routers.sent(name) if not c.startswith("show ")] == [], name
    assert w.hub.applets == {} and w.spoke.applets == {} and w.hub.debugs == set() and w.spoke.debugs == set()
    (incident,) = w.incidents()
    assert incident.state is not IncidentState.ARMED
    why = "not a folder" if fault == "a file" else "a capture needs"
    assert f"hub1: not armed: no room for the bundle: bundle folder {w.bundles}: " in incident.reason
    assert why in incident.reason


# ---------------------------------------------------------------------- who sent it


def test_a_flow_from_the_receivers_own_address_arms_nothing_and_says_so(world_factory):
    own = line(0, src=HUB)
    w = world_factory(hub_lines=[own, own.replace("10:00:00", "10:01:00")])
    w.poll()
    assert w.incidents() == [] and w.hub.applets == {} and w.spoke.applets == {}
    for name in ("hub1", "spoke1"):
        assert [c for c in w.routers.sent(name) if not c.startswith("show ")] == []
    assert any(f"from {HUB}: not arming: srcaddr {HUB} is hub1's own address" in m for m in w.messages)


def test_an_address_two_routers_hold_arms_the_receiver_only_and_the_bundle_says_why(world_factory):
    w = world_factory(hub_lines=[line(0)])
    other = Box(w.routers, "spoke2", log_lines=[])
    w.inventory.hosts["spoke2"] = host("spoke2", "10.0.0.3")
    w.agent.responder._profiles["spoke2"] = StubProfile()
    w.store.save_addresses("spoke2", [ip_address(SPOKE)], utcnow())  # found on spoke2 too
    w.poll()
    (incident,) = w.incidents()
    assert incident.state is IncidentState.ARMED and tuple(incident.routers) == ("hub1",)
    assert w.hub.debugs == {"isakmp", "ipsec"} and w.spoke.debugs == set() and other.debugs == set()
    assert "more than one inventory router" in incident.reason
    w.hub.log(line(1))
    w.poll()
    import json
    manifest = json.loads((w.agent.bundles[0] / "manifest.json").read_text())
    assert any("more than one inventory router" in note and "only the receiving end" in note
               for note in manifest["notes"])
    assert w.hub.applets == {} and w.hub.debugs == set()

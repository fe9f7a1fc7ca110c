"""The disarm when things go wrong half-way: a state store that stops taking writes, an
undo that times out. Through scripted routers (tests/scripted_router.Box): what each
router is left with is checked, not only what was sent.
"""

from __future__ import annotations

import pytest

from collector.sessions import CommandTimeout
from tests.fakes import FakeRouters
from tests.scripted_router import Box
from tests.store_faults import FAULTS, unwritable, writable
from tests.unit.test_responder import PEER_A, PEER_B, WINDOW, host, playbook, registry, responder, store  # noqa: F401

OPERATOR = {"debugs": {"ipsec"}, "conditions": ["192.0.2.99"], "other_debugs": {"IP OSPF adjacency"}}
TOLERANT = {"refuse_if_foreign_debugs": False}  # arm beside the operator's own debugs


def _operator_untouched(box: Box) -> bool:
    return box.debugs == {"ipsec"} and box.conditions == ["192.0.2.99"] and box.other_debugs == {"IP OSPF adjacency"}


def _undo_commands(routers: FakeRouters) -> list[str]:
    return [c for c in routers.sent("hub1") if c.startswith(("no ", "logging "))]


# ---------------------------------------------------------------------- a store that cannot be written


@pytest.mark.parametrize("fault", FAULTS)
def test_every_undo_is_sent_when_the_store_cannot_record_them_and_they_are_written_later(store, registry, fault):
    routers = FakeRouters()
    box = Box(routers, "hub1", **OPERATOR)
    r = responder(store, routers, registry, book=playbook(**TOLERANT))
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    recorded = len(store.armed_steps("hub1", "inc-1"))
    assert recorded >= 4 and box.applets and box.buffer_size == 1_000_000
    unwritable(store, fault)
    done = r.disarm(host(), "inc-1")
    # every undo went through: nothing of the tool's is left, the operator's own are as they were
    assert done.clean and done.error is None, done.summary()
    assert box.applets == {} and box.buffered_line == "logging buffered 16384 informational"
    assert _operator_untouched(box)
    assert len(done.changes) == recorded and all(str(c.status) == "undone" for c in done.changes)
    said = "could not be recorded in the state store"
    assert said in done.summary()
    assert "readonly database" in r.unrecorded.problem or "the disk is full" in r.unrecorded.problem
    # the store still says armed; this process knows better and sends nothing again
    assert len(store.armed_steps("hub1", "inc-1")) == recorded
    sent_before = len(routers.sent("hub1"))
    again = r.disarm(host(), "inc-1")
    assert again.nothing_armed and len(routers.sent("hub1")) == sent_before
    assert r.unrecorded.write(store) == recorded  # still refused: still held
    writable(store)
    assert r.unrecorded.write(store) == 0 and store.armed_steps("hub1", "inc-1") == []
    assert said not in r.disarm(host(), "inc-1").summary()


def test_a_held_undo_is_written_by_the_next_disarm_once_the_store_takes_writes(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    unwritable(store, "full")
    assert r.disarm(host(), "inc-1").clean and box.debugs == set()
    writable(store)
    assert r.arm(host(), PEER_B, "inc-2", WINDOW).armed  # a new incident: the held ones are written first
    done = r.disarm(host(), "inc-2")
    assert done.clean and store.armed_steps("hub1") == [] and r.unrecorded.count() == 0
    assert box.debugs == set() and box.applets == {}


# ---------------------------------------------------------------------- an undo that times out


def _slow(box: Box, command: str, *, runs: bool):
    """`command` times out the first time it is sent (having run, or not); then answers."""
    left = {"n": 1}

    def answer(sent: str):
        if sent == command and left["n"]:
            left["n"] -= 1
            if runs:
                box.answer(sent)
            return CommandTimeout("hub1", f"no prompt after 30s for {sent!r}")
        return box.answer(sent)

    return answer


@pytest.mark.parametrize("runs", [True, False], ids=["ran-late", "never-ran"])
@pytest.mark.parametrize("command", ["no debug crypto isakmp", "no debug crypto condition peer ipv4 10.0.0.2"])
def test_a_timed_out_undo_is_not_resent_the_router_is_swept_from_its_applet(store, registry, command, runs):
    routers = FakeRouters()
    box = Box(routers, "hub1", **OPERATOR)
    r = responder(store, routers, registry, book=playbook(**TOLERANT))
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    [applet] = box.applets
    opened = routers.router("hub1").opened
    start = len(routers.sent("hub1"))
    routers.router("hub1").default = _slow(box, command, runs=runs)
    done = r.disarm(host(), "inc-1")
    sent = routers.sent("hub1")[start:]
    after = sent[sent.index(command) + 1:]
    # no blind resend: the next thing asked is what the router's own applet says to undo
    assert after[0] == "show running-config | section event manager applet COLLECTOR_DEADMAN_"
    assert after.count(command) == 1  # sent again once, as the applet's own line
    assert routers.router("hub1").opened - opened == 2  # the timed-out session and the sweep's, no third try
    timeouts = routers.router("hub1").read_timeouts[start + sent.index(command) + 1:]
    assert timeouts and all(t is not None and t >= 60 for t in timeouts)  # the sweep waits longer
    assert done.clean and done.error is None, done.summary()
    assert "an undo timed out" in done.summary() and "emergency sweep from its dead-man applet: clean" in done.summary()
    assert box.applets == {} and box.buffered_line == "logging buffered 16384 informational"
    assert _operator_untouched(box)  # the sweep never touches what the tool did not set
    assert store.armed_steps("hub1") == []


def test_a_sweep_that_cannot_put_the_router_back_leaves_the_steps_recorded_and_says_so(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    box.condition_removal_works = False  # the router keeps its condition whoever asks
    routers.router("hub1").default = _slow(box, "no debug crypto condition peer ipv4 10.0.0.2", runs=False)
    done = r.disarm(host(), "inc-1")
    assert not done.clean and "an undo timed out" in done.error and "dead-man applet will finish it" in done.error
    assert "condition peer 10.0.0.2" in done.leftovers
    assert store.armed_steps("hub1", "inc-1")  # not marked undone: the retry and the next start still know


def test_a_timed_out_undo_on_a_router_another_incident_holds_is_not_swept(store, registry):
    """The sweep would take the other incident's debugs and applet: the flow's own undo is
    retried on a new session instead (the old bounded retry)."""
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry, ike={PEER_B: "isakmp"})
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    assert r.join(host(), PEER_B, "inc-2", WINDOW, holder_incident_id="inc-1").armed
    routers.router("hub1").default = _slow(box, "no debug crypto condition peer ipv4 10.0.0.3", runs=False)
    done = r.disarm(host(), "inc-2")
    assert done.clean and "emergency sweep" not in done.summary()
    assert box.conditions == ["10.0.0.2"] and box.debugs == {"isakmp", "ipsec"} and len(box.applets) == 1
    assert store.armed_steps("hub1", "inc-1") and store.armed_steps("hub1", "inc-2") == []

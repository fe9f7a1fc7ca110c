"""Faults during an incident, on the lab over real SSH.

Each test makes the desync tunnel log its first line (the agent arms both ends), sets a
transport fault on one end, makes the flow repeat (the agent captures), and then checks
what an engineer would check: the agent is still running, the bundle says it is
incomplete and why, the state store has nothing left to undo, and both routers, read
over SSH afterwards, have no debug, no debug condition and no dead-man applet left.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from reliability_lab import (
    agent_running,
    armed_by_router,
    both_armed,
    bundles,
    desync_ends,
    first_line,
    incident_states,
    manifest,
    repeat_line,
    router_leftovers,
    wait_for,
)

from collector.demo import demo_playbook
from collector.hostkeys import KnownHosts
from collector.inventory import load_inventory
from collector.lab.runner import running_lab
from collector.sessions import (
    AuthenticationFailed,
    ConnectFailed,
    HostKeyRejected,
    LinesBusy,
    SessionDropped,
    SessionPool,
)

pytestmark = pytest.mark.e2e


def _finish(lab, tmp_path, agent, ends) -> dict:
    """The common end of every fault test: the agent survived, nothing is left armed."""
    assert wait_for(lambda: bundles(tmp_path / "bundles"), 90), (agent.messages, incident_states(tmp_path / "state"))
    agent.stop.set()
    agent.thread.join(timeout=120)
    assert agent.error is None, repr(agent.error)
    found = bundles(tmp_path / "bundles")
    assert len(found) == 1
    data = manifest(found[0])
    assert armed_by_router(tmp_path / "state") == {}, "the state store still has steps to undo"
    for router in ends:
        assert router_leftovers(lab, router) == [], f"{router} is still armed"
    return data


def test_session_dropped_in_the_middle_of_outputs_is_retried_then_reported(tmp_path):
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        receiver, sender = desync_ends(lab)
        with agent_running(lab, tmp_path) as agent:
            first_line(lab)
            assert wait_for(lambda: both_armed(tmp_path / "state"), 60), (agent.messages, agent.error)
            # From now on the sender closes the session after 1500 bytes of any output.
            lab.control.fault(sender, drop_after_bytes=1500)
            repeat_line(lab)
            data = _finish(lab, tmp_path, agent, (receiver, sender))
    assert data["complete"] is False
    reasons = " ".join(data["incomplete_reasons"])
    assert f"{sender}:" in reasons and "session closed during 'show logging'" in reasons
    routers = {r["name"]: r for r in data["routers"]}
    assert routers[receiver]["error"] is None
    sender_commands = [c for c in data["commands"] if c["router"] == sender]
    # The failed command was tried twice (two reopenings), then the capture went on:
    # short outputs after it were still collected.
    assert any(c["status"] == "ok" and c["command"] == "show processes cpu | include CPU" for c in sender_commands)
    assert any(c["status"] == "failed" and c["command"] == "show logging" for c in sender_commands)
    assert data["disarm_verification"][sender].startswith("clean")


def test_router_refusing_new_sessions_is_left_out_and_named(tmp_path):
    """All vty lines busy on the sender: the receiver is still armed and captured."""
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        receiver, sender = desync_ends(lab)
        lab.control.fault(sender, vty_limit=0)
        with agent_running(lab, tmp_path) as agent:
            first_line(lab)
            assert wait_for(lambda: any(s == "armed" and sender in r for s, r in incident_states(tmp_path / "state")),
                            60), (agent.messages, incident_states(tmp_path / "state"))
            repeat_line(lab)
            data = _finish(lab, tmp_path, agent, (receiver, sender))
    assert data["complete"] is False
    assert any(r.startswith(f"{sender}: connection refused") for r in data["incomplete_reasons"]), data
    assert any(note.startswith(f"{sender}: arming failed") for note in data["notes"]), data["notes"]
    assert data["disarm_verification"] == {receiver: data["disarm_verification"][receiver], sender: "nothing armed"}
    assert data["disarm_verification"][receiver].startswith("clean")
    assert any(f"{sender}: log poll failed" in m for m in agent.messages)


def test_slow_router_is_waited_for_and_the_capture_is_complete(tmp_path):
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        receiver, sender = desync_ends(lab)
        lab.control.fault(sender, slow_seconds=0.2)  # every output 0.2 s late, from the first login on
        with agent_running(lab, tmp_path) as agent:
            first_line(lab)
            assert wait_for(lambda: both_armed(tmp_path / "state"), 90), (agent.messages, agent.error)
            repeat_line(lab)
            data = _finish(lab, tmp_path, agent, (receiver, sender))
    assert data["complete"] is True, data["incomplete_reasons"]
    assert data["armed_before_repeat"] is True
    assert all(c["status"] == "ok" for c in data["commands"])


def test_authentication_failure_on_one_end_is_not_retried_and_is_reported(tmp_path):
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        receiver, sender = desync_ends(lab)
        lab.control.fault(sender, wrong_password=True)
        with agent_running(lab, tmp_path) as agent:
            first_line(lab)
            assert wait_for(lambda: any(s == "armed" and "authentication failed" in r
                                        for s, r in incident_states(tmp_path / "state")), 60), (agent.messages, agent.error)
            repeat_line(lab)
            data = _finish(lab, tmp_path, agent, (receiver, sender))
    assert data["complete"] is False
    # the reason says how many tries were used (bounded: accounts lock on TACACS)
    assert any(r.startswith(f"{sender}: authentication failed (username or password refused)")
               for r in data["incomplete_reasons"]), data["incomplete_reasons"]
    assert data["disarm_verification"][receiver].startswith("clean")


def test_reboot_during_capture_loses_the_debugs_and_the_bundle_says_so(tmp_path):
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        receiver, sender = desync_ends(lab)
        with agent_running(lab, tmp_path) as agent:
            first_line(lab)
            assert wait_for(lambda: both_armed(tmp_path / "state"), 60), (agent.messages, agent.error)
            lab.control.fault(sender, slow_seconds=0.4)  # a capture long enough to reboot in the middle of
            repeat_line(lab)
            assert wait_for(lambda: any(s == "capturing" for s, _r in incident_states(tmp_path / "state")), 60)
            lab.control.reboot(sender)  # its SSH sessions drop; debugs, condition and applet are gone
            data = _finish(lab, tmp_path, agent, (receiver, sender))
    assert data["complete"] is False
    reasons = " ".join(data["incomplete_reasons"])
    assert f"{sender}: " in reasons and "no longer on at capture" in reasons, reasons
    # The undo list still ran on the rebooted router (harmless there) and it verified clean.
    assert all(a["status"].startswith("undone") for a in data["router_changes"])
    assert data["disarm_verification"][sender].startswith("clean")


def test_reboot_while_armed_before_the_repeat_ends_disarmed(tmp_path):
    """The reload renegotiates the tunnel, so the flow never repeats: the window ends,
    the agent disarms both ends (the rebooted one has nothing left) and records why."""
    book = demo_playbook().model_copy(update={"within": timedelta(seconds=10), "window": timedelta(seconds=10)})
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        receiver, sender = desync_ends(lab)
        with agent_running(lab, tmp_path, book) as agent:
            first_line(lab)
            assert wait_for(lambda: both_armed(tmp_path / "state"), 60), (agent.messages, agent.error)
            lab.control.reboot(receiver)
            assert wait_for(lambda: any(s == "transient" for s, _r in incident_states(tmp_path / "state")), 60), \
                (agent.messages, incident_states(tmp_path / "state"))
        assert agent.error is None, repr(agent.error)
        assert armed_by_router(tmp_path / "state") == {}
        (state, reason), = [(s, r) for s, r in incident_states(tmp_path / "state") if s == "transient"]
        assert f"{receiver}: clean" in reason and f"{sender}: clean" in reason
        assert not bundles(tmp_path / "bundles")
        for router in (receiver, sender):
            assert router_leftovers(lab, router) == []


# -- connection retries are bounded ------------------------------------------------------------


@pytest.fixture(scope="module")
def quiet_lab(tmp_path_factory):
    with running_lab(routers=4, state_dir=tmp_path_factory.mktemp("lab")) as lab:
        yield lab


def _attempt(lab, router: str, tmp_path):
    """One `pool.session()` as the agent opens it; returns (exception, accepted, refused) counts."""
    host = load_inventory(lab.inventory_path).hosts[router]
    before = lab.listener_stats(router)
    with SessionPool(KnownHosts(tmp_path / "known_hosts")) as pool:
        try:
            with pool.session(host) as session:
                session.run("show clock")
            error = None
        except Exception as exc:  # the type is what the test looks at
            error = exc
    after = lab.listener_stats(router)
    return error, after.accepted - before.accepted, after.refused - before.refused, host.options.retries


def test_refused_connections_are_retried_a_bounded_number_of_times(quiet_lab, tmp_path):
    router = quiet_lab.routers[0]
    quiet_lab.control.fault(router, refuse_connections=True)
    try:
        error, accepted, refused, retries = _attempt(quiet_lab, router, tmp_path)
    finally:
        quiet_lab.control.fault(router, refuse_connections=False)
    assert isinstance(error, (ConnectFailed, LinesBusy)), repr(error)
    assert accepted == 0 and refused == retries + 1


def test_wrong_password_is_tried_once_only(quiet_lab, tmp_path):
    router = quiet_lab.routers[1]
    quiet_lab.control.fault(router, wrong_password=True)
    try:
        error, accepted, refused, _retries = _attempt(quiet_lab, router, tmp_path)
    finally:
        quiet_lab.control.fault(router, wrong_password=False)
    assert isinstance(error, AuthenticationFailed), repr(error)
    assert accepted == 1 and refused == 0  # no retry storm that could lock a TACACS account


def test_changed_host_key_is_tried_once_only(quiet_lab, tmp_path):
    router = quiet_lab.routers[2]
    assert _attempt(quiet_lab, router, tmp_path)[0] is None  # trust on first use
    quiet_lab.control.fault(router, changed_host_key=True)
    try:
        error, accepted, _refused, _retries = _attempt(quiet_lab, router, tmp_path)
    finally:
        quiet_lab.control.fault(router, changed_host_key=False)
    assert isinstance(error, HostKeyRejected), repr(error)
    assert accepted == 1


def test_dropped_session_is_reported_as_dropped_and_the_next_one_is_fresh(quiet_lab, tmp_path):
    router = quiet_lab.routers[3]
    host = load_inventory(quiet_lab.inventory_path).hosts[router]
    with SessionPool(KnownHosts(tmp_path / "known_hosts")) as pool:
        quiet_lab.control.fault(router, drop_after_bytes=200)
        try:
            with pytest.raises(SessionDropped) as dropped:
                with pool.session(host) as session:
                    session.run("show running-config")
        finally:
            quiet_lab.control.fault(router, drop_after_bytes=None)
        assert dropped.value.output  # what arrived before the cut is kept
        with pool.session(host) as session:
            assert "Building configuration" in session.run("show running-config").text


def test_a_disarm_that_cannot_reach_the_router_is_retried_until_it_can(tmp_path):
    """The sender cuts every output longer than 20 bytes: its capture and its disarm both
    fail. Once it answers normally again, the daemon's disarm retry finishes the job."""
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        receiver, sender = desync_ends(lab)
        with agent_running(lab, tmp_path) as agent:
            first_line(lab)
            assert wait_for(lambda: both_armed(tmp_path / "state"), 60), (agent.messages, agent.error)
            lab.control.fault(sender, drop_after_bytes=20)
            repeat_line(lab)
            assert wait_for(lambda: bundles(tmp_path / "bundles"), 90), (agent.messages, agent.error)
            data = manifest(bundles(tmp_path / "bundles")[0])
            assert data["disarm_verification"][sender].startswith("disarm incomplete"), data["disarm_verification"]
            assert sender in armed_by_router(tmp_path / "state")  # owed, and the store knows it
            lab.control.fault(sender, drop_after_bytes=None)
            assert wait_for(lambda: armed_by_router(tmp_path / "state") == {}, 60), (agent.messages, agent.error)
            # the retry records each undo as it goes and reports once its sweep returns: wait for that too
            assert wait_for(lambda: any(m.startswith(f"disarm retry: {sender}: clean") for m in agent.messages),
                            10), (agent.messages, agent.error)
        assert agent.error is None
        for router in (receiver, sender):
            assert router_leftovers(lab, router) == []


def test_an_internal_error_after_arming_disarms_at_once(tmp_path, monkeypatch):
    """A bug that raises after both ends were armed (here: right after the worker armed
    them, before it answered the core) must not leave them armed until a retry or the
    dead-man applet: the incident disarms at once."""
    from collector.agent.worker import Worker

    original = Worker.arm

    def arm_then_fail(self, action):
        original(self, action)
        raise RuntimeError("simulated bug after arming")

    monkeypatch.setattr(Worker, "arm", arm_then_fail)
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        receiver, sender = desync_ends(lab)
        with agent_running(lab, tmp_path) as agent:
            first_line(lab)
            assert wait_for(lambda: any(s == "failed" for s, _r in incident_states(tmp_path / "state")), 60), \
                agent.messages
        assert agent.error is None
        (reason,) = [r for s, r in incident_states(tmp_path / "state") if s == "failed"]
        assert reason.startswith("internal error") and f"{receiver}: clean" in reason and f"{sender}: clean" in reason
        assert "simulated bug after arming" in reason
        assert not any(m.startswith("disarm retry:") for m in agent.messages)
        assert armed_by_router(tmp_path / "state") == {}
        for router in (receiver, sender):
            assert router_leftovers(lab, router) == []

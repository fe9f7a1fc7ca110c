"""The Responder through scripted routers (tests/fakes.py): no socket, milliseconds each.

`Box` is a small stateful router model on top of FakeRouters: it keeps debugs, crypto
conditions, dead-man applets and the log buffer line, so what the Responder leaves behind
can be checked, not only what it sent.
"""

from __future__ import annotations

import re
from datetime import timedelta
from ipaddress import ip_address

import pytest

from collector.inventory import Host, SshOptions
from collector.parsing import default_registry
from collector.playbook import load_playbook
from collector.resources import playbooks_dir
from collector.respond.sending import runs_sent_together
from collector.respond.facts import LOG_HEADER_COMMAND, PREFLIGHT_READS, ike_from_session
from collector.respond.responder import Responder, peer_of_outbound_spi
from collector.sessions import SessionDropped
from collector.state import StateStore
from tests.fakes import FakeRouters
from tests.scripted_router import Box, StubProfile

PEER_A = ip_address("10.0.0.2")
PEER_B = ip_address("10.0.0.3")
WINDOW = timedelta(minutes=10)


def host(name="hub1") -> Host:
    return Host(name=name, hostname="127.0.0.1", port=22, platform="cisco_xe", username="u", password=None,
                secret=None, groups=(), site=None, data={}, addresses=(), options=SshOptions())


@pytest.fixture(scope="module")
def registry():
    return default_registry()


@pytest.fixture
def store(tmp_path):
    with StateStore(tmp_path / "state.db") as s:
        for incident in ("inc-1", "inc-2"):
            s.create_incident(incident, f"key-{incident}", "invalid-spi", routers=["hub1"])
        yield s


def playbook(**guards):
    book = load_playbook(playbooks_dir() / "invalid-spi.yaml")
    return book.model_copy(update={"guards": book.guards.model_copy(update=guards)}) if guards else book


def responder(store, routers, registry, *, book=None, ike=None, configured=True) -> Responder:
    r = Responder(playbook=book or playbook(), store=store, sessions=routers, registry=registry)
    r._profiles["hub1"] = StubProfile(ike, configured=configured)
    return r


def changes_sent(routers: FakeRouters, name="hub1") -> list[str]:
    return [c for c in routers.sent(name) if not c.startswith("show ")]


# ---------------------------------------------------------------------- arm / disarm


def test_arm_reads_the_whole_log_before_any_change_then_disarm_is_clean(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry)
    result = r.arm(host(), PEER_A, "inc-1", WINDOW)
    assert result.armed and not result.refused and result.error is None
    assert result.pre_arm_log is not None and "RECVD_PKT_INV_SPI" in result.pre_arm_log.text
    sent = routers.sent("hub1")
    assert sent.index("show logging") < sent.index("configure terminal")
    assert box.debugs == {"isakmp", "ipsec"} and box.conditions == ["10.0.0.2"]
    assert len(box.applets) == 1 and box.buffer_size == 1_000_000
    assert [str(c.status) for c in result.changes] == ["applied"] * len(result.changes)
    done = r.disarm(host(), "inc-1")
    assert done.clean and not done.leftovers and not done.foreign and done.error is None
    assert box.debugs == set() and box.conditions == [] and box.applets == {}
    assert box.buffered_line == "logging buffered 16384 informational"


def test_restore_reenters_the_exact_running_config_line_with_its_discriminator(store, registry):
    routers = FakeRouters()
    line = "logging buffered discriminator KEEPCRYPTO 16384 informational"
    box = Box(routers, "hub1", buffered_line=line)
    r = responder(store, routers, registry)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    assert r.disarm(host(), "inc-1").clean
    assert box.buffered_line == line
    assert line in routers.sent("hub1")


def test_a_large_buffer_at_debugging_is_not_resized(store, registry):
    routers = FakeRouters()
    Box(routers, "hub1", buffered_line="logging buffered 10000000 debugging", buffer_size=10_000_000,
        buffer_level="debugging")
    r = responder(store, routers, registry)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    assert not any(c.startswith("logging buffered") for c in routers.sent("hub1"))


REPEAT = ("*Dec  6 10:01:00.000: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
          "destaddr=10.0.0.1, prot=50, spi=0x1234ABCD(305441741), srcaddr=10.0.0.2, input interface=Tunnel0")


def repeat_while_arming(routers: FakeRouters, box: Box) -> None:
    """The flow's next line arrives the moment `debug crypto isakmp` is on (with its debug line)."""
    def answer(command: str) -> str:
        out = box.answer(command)
        if command == "debug crypto isakmp":
            box.log(REPEAT)
        return out
    routers.router(box.name).default = answer


def test_a_buffer_arming_leaves_alone_is_read_after_the_debugs_are_on_and_cut_back_to_before(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1", buffered_line="logging buffered 10000000 debugging", buffer_size=10_000_000,
              buffer_level="debugging")
    repeat_while_arming(routers, box)
    result = responder(store, routers, registry).arm(host(), PEER_A, "inc-1", WINDOW)
    assert result.armed and result.notes == ()
    sent = routers.sent("hub1")
    # the debugs went on first; the whole buffer was read once, after them
    assert sent.count("show logging") == 1 and sent.index("debug crypto isakmp") < sent.index("show logging")
    assert sent.index(LOG_HEADER_COMMAND) < sent.index("configure terminal")
    before = result.pre_arm_log.text
    assert "srcaddr=10.0.0.2, input interface=Tunnel0" in before  # the line that was there
    # what arming's own moments logged is not in the copy of before: the config exit, the
    # repeat and its debug line
    for later in ("%SYS-5-CONFIG_I", REPEAT, "ISAKMP-ERROR"):
        assert later not in before and any(later in line for line in box.log_lines), later
    assert result.pre_arm_log.clock_text is not None


@pytest.mark.parametrize("buffered_line, size, level, why", [
    ("logging buffered 16384 informational", 16384, "informational", "resized: IOS empties it"),
    ("logging buffered discriminator QUIET 10000000 debugging", 10_000_000, "debugging", "discriminator"),
])
def test_a_buffer_arming_empties_or_filters_is_read_before_the_first_change(store, registry, buffered_line,
                                                                             size, level, why):
    routers = FakeRouters()
    box = Box(routers, "hub1", buffered_line=buffered_line, buffer_size=size, buffer_level=level)
    repeat_while_arming(routers, box)
    result = responder(store, routers, registry).arm(host(), PEER_A, "inc-1", WINDOW)
    assert result.armed, why
    sent = routers.sent("hub1")
    assert sent.count("show logging") == 1 and sent.index("show logging") < sent.index("configure terminal"), why
    assert REPEAT not in result.pre_arm_log.text and "RECVD_PKT_INV_SPI" in result.pre_arm_log.text


def test_a_log_whose_count_went_back_after_arming_is_kept_whole_and_said_so(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1", buffered_line="logging buffered 10000000 debugging", buffer_size=10_000_000,
              buffer_level="debugging")

    def answer(command: str) -> str:
        out = box.answer(command)
        if command == "debug crypto isakmp":
            box.logged = 3  # counters reset under us: the read after cannot be cut at the old count
        return out
    routers.router("hub1").default = answer
    result = responder(store, routers, registry).arm(host(), PEER_A, "inc-1", WINDOW)
    assert result.armed and "RECVD_PKT_INV_SPI" in result.pre_arm_log.text
    assert any("could not be cut back" in note and "(10 messages logged)" in note for note in result.notes)


def test_an_invalid_logging_line_from_the_device_refuses_the_arm(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1", buffered_line="logging buffered 16384 informational ; reload")
    result = responder(store, routers, registry).arm(host(), PEER_A, "inc-1", WINDOW)
    assert not result.armed and result.refused and "logging buffered" in result.error
    assert changes_sent(routers) == [] and box.debugs == set()


# ---------------------------------------------------------------------- someone else's debugs


def test_foreign_debug_refuses_when_the_guard_is_on(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1", debugs={"ipsec"})
    result = responder(store, routers, registry).arm(host(), PEER_A, "inc-1", WINDOW)
    assert result.refused and not result.armed and "debug ipsec" in result.error
    assert changes_sent(routers) == [] and box.debugs == {"ipsec"}


def test_ikev2_default_form_is_seen_as_a_foreign_debug(store, registry):
    routers = FakeRouters()
    Box(routers, "hub1", debugs={"ikev2"})
    result = responder(store, routers, registry).arm(host(), PEER_A, "inc-1", WINDOW)
    assert result.refused and "debug ikev2" in result.error


def test_foreign_debugs_and_conditions_survive_arm_and_disarm(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1", debugs={"ipsec"}, conditions=["10.9.9.9"], other_debugs={"IP packet"})
    r = responder(store, routers, registry, book=playbook(refuse_if_foreign_debugs=False))
    result = r.arm(host(), PEER_A, "inc-1", WINDOW)
    assert result.armed and any("debug crypto ipsec" in s for s in result.skipped)
    assert "debug crypto ipsec" not in routers.sent("hub1")
    applet = box.applet_commands(next(iter(box.applets)))
    assert "no debug crypto ipsec" not in applet
    assert not any("condition reset" in c for c in applet)
    assert "no debug crypto condition peer ipv4 10.0.0.2" in applet
    done = r.disarm(host(), "inc-1")
    assert done.clean
    assert set(done.foreign) == {"debug ipsec", "debug ip packet", "condition peer 10.9.9.9"}
    assert box.debugs == {"ipsec"} and box.conditions == ["10.9.9.9"]
    sent = routers.sent("hub1")
    assert "no debug crypto ipsec" not in sent and "undebug all" not in sent
    assert not any("condition reset" in c for c in sent)


def test_our_condition_left_on_is_a_leftover_whatever_the_wording(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    box.condition_removal_works = False  # the router ignores the removal
    done = r.disarm(host(), "inc-1")
    assert not done.clean and done.leftovers == ("condition peer 10.0.0.2",)


# ---------------------------------------------------------------------- AAA


def test_a_denied_condition_stops_the_arm_and_undoes_what_was_applied(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1", aaa=True, deny=[r"^debug crypto condition"])
    r = responder(store, routers, registry)
    result = r.arm(host(), PEER_A, "inc-1", WINDOW)
    assert not result.armed and not result.refused
    assert "authorization failed" in result.error and "undone" in result.error
    sent = routers.sent("hub1")
    assert "debug crypto isakmp" not in sent and "debug crypto ipsec" not in sent
    assert box.debugs == set() and box.applets == {} and box.buffered_line == "logging buffered 16384 informational"
    assert store.armed_steps("hub1") == []
    assert "failed" in [str(c.status) for c in result.changes]


def test_applet_gets_authorization_bypass_under_aaa(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1", aaa=True, eem_version="4.00")
    assert responder(store, routers, registry).arm(host(), PEER_A, "inc-1", WINDOW).armed
    (body,) = box.applets.values()
    assert body[0].endswith(" authorization bypass")


def test_no_arm_when_the_applet_could_not_run_under_aaa(store, registry):
    routers = FakeRouters()
    Box(routers, "hub1", aaa=True, eem_version="2.40")
    result = responder(store, routers, registry).arm(host(), PEER_A, "inc-1", WINDOW)
    assert result.refused and "dead-man applet could not run" in result.error
    assert "allow_arm_without_deadman" in result.error and changes_sent(routers) == []


def test_arm_without_the_applet_when_the_playbook_allows_it(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1", aaa=True, eem_version="2.40")
    r = responder(store, routers, registry, book=playbook(allow_arm_without_deadman=True))
    result = r.arm(host(), PEER_A, "inc-1", WINDOW)
    assert result.armed and box.applets == {} and any("without it" in n for n in result.notes)
    assert r.disarm(host(), "inc-1").clean


def test_a_cli_username_lets_the_applet_run_without_bypass(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1", aaa=True, eem_version="2.40", cli_username="eemuser")
    assert responder(store, routers, registry).arm(host(), PEER_A, "inc-1", WINDOW).armed
    (body,) = box.applets.values()
    assert not body[0].endswith("bypass")


# ---------------------------------------------------------------------- the dead-man applet


def test_no_arm_without_a_free_vty_line_for_the_applet(store, registry):
    routers = FakeRouters()
    Box(routers, "hub1", vty=(0, 4), vty_used=5)
    result = responder(store, routers, registry).arm(host(), PEER_A, "inc-1", WINDOW)
    assert result.refused and "5 of 5 vty lines in use" in result.error


def test_stale_applets_are_reported_and_emergency_replays_and_removes_them(store, registry):
    routers = FakeRouters()
    stale = "COLLECTOR_DEADMAN_OLDRUN"
    body = [f"event manager applet {stale}", " event timer countdown time 720 maxrun 120",
            ' action 001 cli command "enable"', ' action 002 cli command "no debug crypto isakmp"',
            ' action 003 cli command "no debug crypto condition peer ipv4 10.0.0.7"',
            ' action 004 cli command "configure terminal"',
            ' action 005 cli command "logging buffered 16384 informational"',
            f' action 006 cli command "no event manager applet {stale}"', ' action 007 cli command "end"']
    box = Box(routers, "hub1", debugs={"isakmp"}, conditions=["10.0.0.7"], applets={stale: body,
              "OPERATOR_APPLET": ["event manager applet OPERATOR_APPLET"]},
              other_debugs={"IP packet"})
    r = responder(store, routers, registry, book=playbook(refuse_if_foreign_debugs=False))
    plan = r.plan_only(host(), PEER_A, "inc-1", WINDOW)
    assert plan.steps and changes_sent(routers) == []  # a dry run sends nothing
    result = r.emergency_disarm(host())
    assert result.clean and stale not in box.applets and "OPERATOR_APPLET" in box.applets
    assert box.debugs == set() and box.conditions == []
    assert result.foreign == ("debug ip packet",) and box.other_debugs == {"IP packet"}
    assert "undebug all" not in routers.sent("hub1")


def test_every_step_is_recorded_before_the_first_is_sent_and_a_stopped_arm_leaves_no_unsent_record(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry)
    seen_at_first_change: list[tuple[int, str]] = []
    normal = box.answer

    def watching(command):
        if command == "configure terminal" and not seen_at_first_change:
            seen_at_first_change.extend((a.index, str(a.status)) for a in store.armed_steps("hub1", "inc-1"))
        if command == "debug crypto isakmp":
            return SessionDropped("hub1", "session lost")  # the arming stops here
        return normal(command)

    routers.router("hub1").default = watching
    plan = r.plan_only(host(), PEER_A, "inc-1", WINDOW)
    result = r.arm(host(), PEER_A, "inc-1", WINDOW)
    assert seen_at_first_change == [(i, "pending") for i in range(len(plan.steps))]
    assert not result.armed and "session lost" in result.error
    # the session was lost in the run of debugs typed ahead together: any of them may be on
    run = next(r for r in runs_sent_together(list(enumerate(plan.steps))) if any(
        step.do == ("debug crypto isakmp",) for _i, step in r))
    stopped = run[-1][0]
    assert len(run) >= 2
    recorded = {a.index for a in store.armed_steps("hub1", "inc-1", include_undone=True)}
    assert recorded == set(range(stopped + 1))  # the steps after that run were never sent: no record
    assert box.debugs == set() and box.conditions == [] and box.applets == {}  # and what was sent is undone


def _hub_to_arm(store, registry):
    """A scripted hub (16 KB informational buffer: arming resizes it), its responder and
    the plan an arm of it for PEER_A runs."""
    routers = FakeRouters()
    box = Box(routers, "hub1", buffered_line="logging buffered 16384 informational", buffer_size=16384,
              buffer_level="informational")
    r = responder(store, routers, registry)
    return routers, box, r, r.plan_only(host(), PEER_A, "inc-1", WINDOW)


def _config_steps(plan) -> list[int]:
    return [i for i, step in enumerate(plan.steps) if step.mode == "config"]


def test_consecutive_configuration_steps_go_in_one_configuration_session(store, registry):
    """Across a WAN every `end` and `configure terminal` between two steps is a round trip:
    the arming's configuration steps (logging, the dead-man applet) share one session."""
    routers, box, r, plan = _hub_to_arm(store, registry)
    config = _config_steps(plan)
    assert len(config) >= 2 and config == list(range(config[0], config[-1] + 1))  # one run of them
    before = len(routers.sent("hub1"))
    result = r.arm(host(), PEER_A, "inc-1", WINDOW)
    assert result.armed
    sent = routers.sent("hub1")[before:]
    assert sent.count("configure terminal") == 1 and sent.count("end") == 1
    lines = [line for i in config for line in plan.steps[i].do]
    start = sent.index("configure terminal")
    assert sent[start + 1:start + 1 + len(lines)] == lines and sent[start + 1 + len(lines)] == "end"
    assert {a.index: str(a.status) for a in store.armed_steps("hub1", "inc-1")} == {
        i: "applied" for i in range(len(plan.steps))}
    assert box.applets and box.debugs


def test_a_refused_line_in_a_run_of_configuration_steps_stops_there_and_what_was_sent_is_undone(store, registry):
    routers, box, r, plan = _hub_to_arm(store, registry)
    first, refused_step = _config_steps(plan)[:2]
    refused_line = plan.steps[refused_step].do[0]
    assert plan.steps[first].do[0].startswith("logging buffered") and refused_line.startswith("event manager applet")
    normal = box.answer
    ledger: dict[int, str] = {}

    def refusing(command):
        if command == refused_line:
            ledger.update({a.index: str(a.status) for a in store.armed_steps("hub1", "inc-1")})
            return "% Invalid input detected at '^' marker.\n"
        return normal(command)

    routers.router("hub1").default = refusing
    result = r.arm(host(), PEER_A, "inc-1", WINDOW)
    assert not result.armed and f"router refused {refused_line!r}" in result.error
    sent = routers.sent("hub1")
    assert ledger == {i: "pending" for i in range(len(plan.steps))}  # all recorded before the first was sent
    assert sent[:sent.index(refused_line)].count("configure terminal") == 1  # one session for the run
    assert not any(line in sent for line in plan.steps[refused_step].do[1:])  # nothing after the refused line
    assert not any(c.startswith("debug crypto") for c in sent)
    assert [(c.step, c.status) for c in result.changes[:2]] == [(first, "applied"), (refused_step, "failed")]
    assert box.applets == {} and box.debugs == set()
    assert box.buffered_line == "logging buffered 16384 informational"  # the first step's undo ran
    assert store.armed_steps("hub1", "inc-1") == []


def test_a_session_lost_at_the_end_of_a_run_of_configuration_steps_fails_its_last_step(store, registry):
    """Every line went through, `end` did not: the last step is the one whose session
    failed (its undo runs with the others')."""
    routers, box, r, plan = _hub_to_arm(store, registry)
    config = _config_steps(plan)
    normal = box.answer
    ends = []

    def dropping(command):
        if command == "end":
            ends.append(command)
            if len(ends) == 1:
                return SessionDropped("hub1", "session lost")
        return normal(command)

    routers.router("hub1").default = dropping
    result = r.arm(host(), PEER_A, "inc-1", WINDOW)
    assert not result.armed and "session lost" in result.error
    assert [(c.step, c.status) for c in result.changes[:len(config)]] == (
        [(i, "applied") for i in config[:-1]] + [(config[-1], "failed")])
    assert box.applets == {} and store.armed_steps("hub1", "inc-1") == []


def test_the_debugs_are_typed_ahead_together_once_their_condition_is_seen_accepted(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry, ike={PEER_A: "ikev2"}, configured=False)
    before = len(routers.router("hub1").batches)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    debugs = [b for b in routers.router("hub1").batches[before:] if b[0].startswith("debug crypto")]
    assert len(debugs) == 1 and sorted(debugs[0]) == ["debug crypto ikev2", "debug crypto ipsec", "debug crypto isakmp"]
    sent = routers.sent("hub1")
    condition = sent.index(f"debug crypto condition peer ipv4 {PEER_A}")
    assert condition < sent.index("debug crypto isakmp")  # answered before the debugs were typed
    assert box.debugs == {"isakmp", "ikev2", "ipsec"}


def test_a_refused_debug_typed_ahead_stops_the_arming_and_every_debug_sent_is_undone(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry, configured=False)
    normal = box.answer

    def refusing(command):
        if command == "debug crypto ikev2":
            return "% Invalid input detected at '^' marker.\n"
        return normal(command)

    routers.router("hub1").default = refusing
    result = r.arm(host(), PEER_A, "inc-1", WINDOW)
    assert not result.armed and "router refused 'debug crypto ikev2'" in result.error
    status: dict[str, str] = {}
    for change in result.changes:  # the arming's record of each (the undo's come after)
        if change.do and change.do[0].startswith("debug crypto"):
            status.setdefault(change.do[0], change.status)
    # ipsec was typed after the refused one: sent, accepted, recorded, and undone with the rest
    assert status["debug crypto isakmp"] == "applied" and status["debug crypto ikev2"] == "failed"
    assert status["debug crypto ipsec"] == "applied"
    assert box.debugs == set() and box.conditions == [] and box.applets == {}
    assert store.armed_steps("hub1", "inc-1") == []


def test_stale_applet_is_listed_by_arm(store, registry):
    routers = FakeRouters()
    Box(routers, "hub1", applets={"COLLECTOR_DEADMAN_OLDRUN": ["event manager applet COLLECTOR_DEADMAN_OLDRUN"]})
    result = responder(store, routers, registry).arm(host(), PEER_A, "inc-1", WINDOW)
    assert result.armed and result.stale_applets == ("COLLECTOR_DEADMAN_OLDRUN",)


def test_join_extends_the_countdown_adds_the_other_ike_debug_and_hand_over_keeps_the_router(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry, ike={PEER_B: "ikev2"})
    assert r.arm(host(), PEER_A, "inc-1", timedelta(minutes=2)).armed
    (name,) = box.applets
    first = box.applet_countdown(name)
    joined = r.join(host(), PEER_B, "inc-2", WINDOW, holder_incident_id="inc-1")
    assert joined.armed and joined.joined
    assert joined.pre_arm_log is not None and "Log Buffer" in joined.pre_arm_log.text
    sent = routers.sent("hub1")
    counted = len(sent) - 1 - sent[::-1].index(LOG_HEADER_COMMAND)
    condition = sent.index("debug crypto condition peer ipv4 10.0.0.3")
    assert counted < condition < sent.index("show logging", condition)  # counted before the changes, read after
    # cut back to the count: none of the lines the join made the router log (one per `end`)
    logged_by_join = sent[counted:].count("end")
    assert logged_by_join >= 1
    assert joined.pre_arm_log.text.count("%SYS-5-CONFIG_I") == \
        sum("%SYS-5-CONFIG_I" in ln for ln in box.log_lines) - logged_by_join
    assert box.debugs == {"isakmp", "ikev2", "ipsec"} and box.conditions == ["10.0.0.2", "10.0.0.3"]
    assert "debug crypto ipsec" not in changes_sent(routers)[-5:]  # already on: not sent again
    assert list(box.applets) == [name] and box.applet_countdown(name) > first
    commands = box.applet_commands(name)
    for undo in ("no debug crypto ikev2", "no debug crypto condition peer ipv4 10.0.0.3",
                 "no debug crypto isakmp", "no debug crypto condition peer ipv4 10.0.0.2"):
        assert undo in commands
    assert commands[-2:] == [f"no event manager applet {name}", "end"]

    over = r.hand_over(host(), "inc-1", "inc-2")
    assert over.clean and over.handed_over_to == "inc-2" and over.foreign == ()  # the heir's are ours
    assert box.conditions == ["10.0.0.3"] and box.debugs == {"isakmp", "ikev2", "ipsec"} and name in box.applets
    assert store.armed_steps("hub1", "inc-1") == []
    done = r.disarm(host(), "inc-2")
    assert done.clean and box.debugs == set() and box.conditions == [] and box.applets == {}
    assert box.buffered_line == "logging buffered 16384 informational"


def test_a_join_for_the_worker_leaves_the_log_to_read_and_one_read_serves_every_count(store, registry):
    """With `log_later` the join only counts the log; the worker reads it once for every
    incident armed on the router at once, each copy cut back to its own count."""
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry, ike={PEER_B: "ikev2"})
    first = r.arm(host(), PEER_A, "inc-1", WINDOW)
    assert first.armed
    for second in (1, 2):  # the router goes on logging between the two flows
        box.log_lines.append(f"*Dec  6 10:00:0{second}.500: %LINEPROTO-5-UPDOWN: Line protocol on Interface "
                             f"Tunnel{second}, changed state to up")
        box.logged += 1
    before = len(routers.sent("hub1"))
    joined = r.join(host(), PEER_B, "inc-2", WINDOW, holder_incident_id="inc-1", log_later=True)
    assert joined.armed and joined.pre_arm_log is None and joined.log_due_as_of is not None
    assert "show logging" not in routers.sent("hub1")[before:]
    earlier = joined.log_due_as_of - 1  # an incident whose pre-flight counted one message fewer
    before = len(routers.sent("hub1"))
    (late, _), (older, _) = r.logs_as_they_were(host(), [joined.log_due_as_of, earlier])
    assert routers.sent("hub1")[before:].count("show logging") == 1
    lines = [ln for ln in late.text.splitlines() if ln.startswith("*")]
    assert len(lines) >= 2 and [ln for ln in older.text.splitlines() if ln.startswith("*")] == lines[:-1]
    assert len(box.log_lines) > len(lines)  # the lines the join made the router log are cut


@pytest.mark.parametrize("header_count, buffered", [
    (False, "logging buffered 100000 debugging"),
    (True, "logging buffered discriminator NOISE 100000 debugging"),
])
def test_a_join_reads_the_log_first_where_a_count_cannot_cut_it(store, registry, header_count, buffered):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry, ike={PEER_B: "ikev2"})
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    r._profiles["hub1"] = StubProfile({PEER_B: "ikev2"}, running_config=buffered + "\n")
    if not header_count:
        box.header = lambda: "Syslog logging: enabled\n    Buffer logging:  level debugging, xml disabled,\nLog Buffer (100000 bytes):\n"
    before = len(routers.sent("hub1"))
    joined = r.join(host(), PEER_B, "inc-2", WINDOW, holder_incident_id="inc-1", log_later=True)
    sent = routers.sent("hub1")[before:]
    assert joined.armed and joined.log_due_as_of is None and joined.pre_arm_log is not None
    assert sent.index("show logging") < sent.index("debug crypto condition peer ipv4 10.0.0.3")


def test_a_failed_join_undoes_only_the_joiners_steps(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry, ike={PEER_B: "ikev2"})
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    box.deny = [re.compile(r"^debug crypto ikev2")]
    joined = r.join(host(), PEER_B, "inc-2", WINDOW, holder_incident_id="inc-1")
    assert not joined.armed and "authorization failed" in joined.error
    assert box.conditions == ["10.0.0.2"] and box.debugs == {"isakmp", "ipsec"}
    assert store.armed_steps("hub1", "inc-2") == [] and store.armed_steps("hub1", "inc-1")


PEER_C = ip_address("10.0.0.4")
PEER_D = ip_address("10.0.0.5")


def _join_requests(store, *peers):
    from collector.respond.joining import JoinRequest

    requests = []
    for n, peer in enumerate(peers, start=2):
        if store.incident(f"inc-{n}") is None:
            store.create_incident(f"inc-{n}", f"key-inc-{n}", "invalid-spi", routers=["hub1"])
        requests.append(JoinRequest(peer, f"inc-{n}", "inc-1"))
    return requests


def test_flows_joining_at_once_share_one_log_read_and_one_applet_reentry(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry, ike={PEER_B: "ikev2", PEER_C: "ikev2"})
    assert r.arm(host(), PEER_A, "inc-1", timedelta(minutes=2)).armed
    (name,) = box.applets
    first, opened, before = box.applet_countdown(name), routers.router("hub1").opened, len(routers.sent("hub1"))
    results = r.join_many(host(), _join_requests(store, PEER_B, PEER_C, PEER_D), WINDOW)

    assert [(x.armed, x.joined) for x in results] == [(True, True)] * 3
    sent = routers.sent("hub1")[before:]
    assert routers.router("hub1").opened - opened <= 1  # one session for the three
    assert sent.count("show logging") == 1 and sent.count(f"event manager applet {name}") == 1
    assert sent.count("debug crypto ikev2") == 1  # two flows need it: sent once, by the first
    # counted once before the first change, read once after the last, cut back to the count
    assert sent.index(LOG_HEADER_COMMAND) < sent.index("debug crypto condition peer ipv4 10.0.0.3")
    assert sent.index("debug crypto condition peer ipv4 10.0.0.5") < sent.index("show logging")
    assert box.conditions == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]
    assert box.debugs == {"isakmp", "ikev2", "ipsec"} and box.applet_countdown(name) > first
    for result, peer in zip(results, ("10.0.0.3", "10.0.0.4", "10.0.0.5")):
        assert any(f"debug crypto condition peer ipv4 {peer}" in c.do for c in result.changes)
        assert result.pre_arm_log is results[0].pre_arm_log  # one read: nothing of theirs was on before it
    commands = box.applet_commands(name)
    for undo in ("no debug crypto ikev2", "no debug crypto condition peer ipv4 10.0.0.3",
                 "no debug crypto condition peer ipv4 10.0.0.4", "no debug crypto condition peer ipv4 10.0.0.5",
                 "no debug crypto condition peer ipv4 10.0.0.2"):
        assert undo in commands

    # the ledger holds each flow's steps under its own incident: the hand-overs and the last
    # disarm take everything back
    for holder, heir in (("inc-1", "inc-2"), ("inc-2", "inc-3"), ("inc-3", "inc-4")):
        assert r.hand_over(host(), holder, heir).clean
    assert box.conditions == ["10.0.0.5"]
    done = r.disarm(host(), "inc-4")
    assert done.clean and box.debugs == set() and box.conditions == [] and box.applets == {}


def test_a_refused_flow_of_a_joint_join_fails_alone(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    box.deny = [re.compile(r"^debug crypto condition peer ipv4 10\.0\.0\.4$")]
    results = r.join_many(host(), _join_requests(store, PEER_B, PEER_C, PEER_D), WINDOW)
    assert [x.armed for x in results] == [True, False, True]
    assert "authorization failed" in results[1].error
    assert box.conditions == ["10.0.0.2", "10.0.0.3", "10.0.0.5"]
    assert store.armed_steps("hub1", "inc-3") == [] and store.armed_steps("hub1", "inc-4")


def test_two_flows_of_one_peer_joining_at_once_set_its_condition_once(store, registry):
    """Two SAs with one peer (two flows, one condition): typed once, for the first flow;
    the second holds it once the first is armed, as a join one flow at a time did."""
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    results = r.join_many(host(), _join_requests(store, PEER_B, PEER_B, PEER_C), WINDOW)
    assert [x.armed for x in results] == [True, True, True]
    assert routers.sent("hub1").count(f"debug crypto condition peer ipv4 {PEER_B}") == 1
    assert box.conditions == [str(PEER_A), str(PEER_B), str(PEER_C)]


def test_a_debug_two_joining_flows_need_is_not_taken_as_sent_when_the_first_flow_failed_on_it(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry, ike={PEER_B: "ikev2", PEER_C: "ikev2"})
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed  # isakmp: the hub has no ikev2 debug yet
    box.deny = [re.compile(r"^debug crypto ikev2$")]
    results = r.join_many(host(), _join_requests(store, PEER_B, PEER_C), WINDOW)
    # the second flow sends the debug itself (refused again), not "armed" without it
    assert [x.armed for x in results] == [False, False]
    assert all("authorization failed" in x.error for x in results)
    assert "ikev2" not in box.debugs and box.conditions == ["10.0.0.2"]


def test_a_flow_failing_after_an_earlier_flow_sent_a_debug_they_share_leaves_that_debug_on(store, registry):
    """Every flow's steps are recorded at once, before the first is sent: a step the first
    flow sends is not recorded for the second too, or the second's undo would switch off
    the debug the first still needs."""
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry, ike={PEER_B: "ikev2", PEER_C: "ikev2"})
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    box.deny = [re.compile(r"^debug crypto condition peer ipv4 10\.0\.0\.4$")]
    results = r.join_many(host(), _join_requests(store, PEER_B, PEER_C), WINDOW)
    assert [x.armed for x in results] == [True, False]
    assert "no debug crypto ikev2" not in routers.sent("hub1") and "ikev2" in box.debugs
    assert box.conditions == ["10.0.0.2", "10.0.0.3"]
    assert store.armed_steps("hub1", "inc-3") == []
    assert {s.step.do for s in store.armed_steps("hub1", "inc-2")} >= {("debug crypto ikev2",)}


def test_a_flow_failing_in_a_joint_join_drops_its_unsent_steps_before_its_undo(store, registry):
    """A flow's steps are all recorded before the first is sent: when one is refused, the
    ones after it were never sent, and its undo must not send theirs."""
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry, ike={PEER_C: "ikev2"})
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    box.deny = [re.compile(r"^debug crypto condition peer ipv4 10\.0\.0\.4$")]
    results = r.join_many(host(), _join_requests(store, PEER_B, PEER_C), WINDOW)
    assert [x.armed for x in results] == [True, False]
    sent = routers.sent("hub1")
    assert "debug crypto ikev2" not in sent and "no debug crypto ikev2" not in sent
    assert store.armed_steps("hub1", "inc-3") == []


def test_a_join_batch_writes_the_step_ledger_twice_whatever_its_size(store, registry):
    """One write records every flow's steps (and the applet's re-entry) pending before the
    first is sent, one marks them applied (two writes a flow, before, made the tenth flow
    of a hub's batch wait on the state store for the nine before it)."""
    routers = FakeRouters()
    Box(routers, "hub1")
    r = responder(store, routers, registry, ike={PEER_B: "ikev2"})
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    peers = [ip_address(f"10.0.1.{n}") for n in range(1, 11)]
    writes = []
    for name in ("begin_steps_of", "steps_applied_of", "forget_steps_of", "set_step_status"):
        real = getattr(store, name)
        setattr(store, name, lambda *a, _real=real, _name=name, **k: writes.append(_name) or _real(*a, **k))
    results = r.join_many(host(), _join_requests(store, PEER_B, *peers), WINDOW)
    assert all(x.armed for x in results) and len(results) == 11
    assert writes == ["begin_steps_of", "steps_applied_of"]
    steps = [s for n in range(2, 13) for s in store.armed_steps("hub1", f"inc-{n}")]
    assert len(steps) == 1 + 11 + 1 and {s.status for s in steps} == {"applied"}  # applet, conditions, ikev2


def test_a_join_batch_reads_the_router_in_one_round_trip_and_sets_its_conditions_in_one(store, registry):
    """The log's header, the debugs, the conditions and the live session toward every
    peer whose IKE version the configuration does not tell (a DMVPN hub's spokes) in one
    typed-ahead read, then every flow's condition in one write: across a WAN each is a
    round trip."""
    routers = FakeRouters()
    Box(routers, "hub1")
    r = responder(store, routers, registry, configured=False)
    def session_toward(command: str) -> str:  # an IKEv2 SA toward the odd spokes, none toward the even ones
        peer = command.split()[-1]
        return ("Interface: Tunnel0\nSession status: UP-ACTIVE\n"
                + (f"  IKEv2 SA: local 10.0.0.1/500 remote {peer}/500 Active\n" if int(peer[-1]) % 2 else ""))
    routers.on("hub1", r"^show crypto session remote ", session_toward)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    peers = [ip_address(f"10.0.1.{n}") for n in range(1, 6)]
    before = len(routers.router("hub1").batches)
    results = r.join_many(host(), _join_requests(store, *peers), WINDOW)
    assert all(x.armed for x in results)
    batches = routers.router("hub1").batches[before:]
    assert batches == [[LOG_HEADER_COMMAND, "show debugging", "show crypto debug-condition",
                        *[f"show crypto session remote {peer}" for peer in peers]],
                       [f"debug crypto condition peer ipv4 {peer}" for peer in peers]]
    sent = routers.sent("hub1")
    # each read once, even where it named no IKE SA (both debugs are then armed, as before)
    assert all(sent.count(f"show crypto session remote {peer}") == 1 for peer in peers)
    assert "debug crypto ikev2" in sent  # what the sessions said is what was armed


def test_a_joint_join_whose_holder_armed_nothing_arms_that_flow_on_its_own(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry)
    results = r.join_many(host(), _join_requests(store, PEER_B), WINDOW)  # inc-1 never armed hub1
    assert results[0].armed and not results[0].joined
    assert box.conditions == ["10.0.0.3"] and len(box.applets) == 1


# ---------------------------------------------------------------------- sessions failing


def test_disarm_retries_after_a_dropped_session(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    drops = {"left": 1}
    normal = box.answer

    def flaky(command):
        if command == "no debug crypto isakmp" and drops["left"]:
            drops["left"] -= 1
            return SessionDropped("hub1", "session lost")
        return normal(command)

    routers.router("hub1").default = flaky
    done = r.disarm(host(), "inc-1")
    assert done.clean and box.debugs == set() and box.applets == {}


def test_disarm_that_cannot_connect_reports_and_keeps_the_steps(store, registry):
    routers = FakeRouters()
    Box(routers, "hub1")
    r = responder(store, routers, registry)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    routers.router("hub1").open_error = SessionDropped("hub1", "no route")
    done = r.disarm(host(), "inc-1")
    assert not done.clean and "dead-man" in done.error and store.armed_steps("hub1", "inc-1")


def test_nothing_armed(store, registry):
    done = responder(store, FakeRouters(), registry).disarm(host(), "inc-1")
    assert done.nothing_armed and done.clean


# ---------------------------------------------------------------------- capture and NAT-T


def test_capture_records_commands_and_notices_debugs_switched_off(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    capture = r.capture(host(), PEER_A, "receiver", "inc-1")
    assert capture.error is None and capture.output("show logging") is not None
    assert capture.clock_offset is not None
    box.debugs.clear()  # someone's `undebug all`
    capture = r.capture(host(), PEER_A, "receiver", "inc-1")
    assert "no longer on" in capture.error and "isakmp" in capture.error


SA_TEXT = """interface: Tunnel1
    Crypto map tag: Tunnel1-head-0, local addr 192.0.2.1

   current_peer 198.51.100.7 port 4500
     current outbound spi: 0xAAAA0001(2863267841)
   current_peer 203.0.113.9 port 4500
     current outbound spi: 0x1234ABCD(305441741)
"""


def test_find_sender_peer_by_current_outbound_spi(store, registry):
    routers = FakeRouters({"spoke1": {"show crypto ipsec sa": SA_TEXT}})
    r = responder(store, routers, registry)
    assert r.find_sender_peer(host("spoke1"), "0x1234ABCD") == ip_address("203.0.113.9")
    assert r.find_sender_peer(host("spoke1"), "1234abcd") == ip_address("203.0.113.9")
    assert r.find_sender_peer(host("spoke1"), "0xDEADBEEF") is None
    assert peer_of_outbound_spi("   current_peer not-an-address port 500\n current outbound spi: 0x1(1)\n", 1) is None


def test_a_denied_undo_keeps_the_step_and_says_not_clean(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    box.deny = [re.compile(r"^no debug crypto isakmp$")]  # the TACACS policy changed meanwhile
    done = r.disarm(host(), "inc-1")
    assert not done.clean and "debug crypto isakmp" in done.leftovers
    (left,) = store.armed_steps("hub1", "inc-1")
    assert left.step.do == ("debug crypto isakmp",) and "authorization failed" in left.error
    assert box.debugs == {"isakmp"} and box.conditions == [] and box.applets == {}


def test_a_hub_whose_config_names_no_spoke_reads_the_ike_version_live(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    routers.router("hub1").script["show crypto session remote 10.0.0.3"] = (
        "Interface: Tunnel0\nSession status: UP-ACTIVE\nPeer: 10.0.0.3 port 500\n"
        "  Session ID: 7\n  IKEv2 SA: local 10.0.0.1/500 remote 10.0.0.3/500 Active\n")
    routers.router("hub1").script["show crypto session remote 10.0.0.2"] = (
        "Peer: 10.0.0.2 port 500\n  IKEv1 SA: local 10.0.0.1/500 remote 10.0.0.2/500 Active\n")
    r = responder(store, routers, registry, configured=False)  # the config would guess isakmp
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    assert box.debugs == {"isakmp", "ipsec"}
    # read in the pre-flight's round trip, once
    assert [*PREFLIGHT_READS, f"show crypto session remote {PEER_A}"] in routers.router("hub1").batches
    assert routers.sent("hub1").count(f"show crypto session remote {PEER_A}") == 1
    assert r.join(host(), PEER_B, "inc-2", WINDOW, holder_incident_id="inc-1").armed
    assert box.debugs == {"isakmp", "ikev2", "ipsec"}
    capture = r.capture(host(), PEER_B, "receiver", "inc-2")
    commands = [c.command for c in capture.commands]
    assert "show crypto ikev2 sa detailed" in commands and "show crypto isakmp sa detail" not in commands


def test_an_unknown_ike_version_arms_and_captures_both(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")  # no crypto session to the peer (desynchronised, no IKE SA)
    r = responder(store, routers, registry, configured=False)
    assert r.arm(host(), PEER_A, "inc-1", WINDOW).armed
    assert box.debugs == {"isakmp", "ikev2", "ipsec"}
    commands = [c.command for c in r.capture(host(), PEER_A, "receiver", "inc-1").commands]
    assert "show crypto ikev2 sa detailed" in commands and "show crypto isakmp sa detail" in commands
    assert r.disarm(host(), "inc-1").clean and box.debugs == set()


@pytest.mark.parametrize(("text", "ike"), [
    ("  IKEv1 SA: local 10.0.0.1/500 remote 10.0.0.3/500 Active\n", "isakmp"),
    ("  IKEv2 SA: local 10.0.0.1/4500 remote 10.0.0.3/4500 Active\n", "ikev2"),
    ("  IKE SA: local 10.0.0.1/500 remote 10.0.0.3/500 Active\n", None),  # old images: no version
    ("Session status: DOWN\n", None),
])
def test_ike_version_from_crypto_session(text, ike):
    assert ike_from_session(text) == ike


def test_a_join_without_the_holders_steps_arms_fully(store, registry):
    routers = FakeRouters()
    box = Box(routers, "hub1")
    r = responder(store, routers, registry)
    result = r.join(host(), PEER_B, "inc-2", WINDOW, holder_incident_id="inc-1")  # inc-1 never armed hub1
    assert result.armed and not result.joined and any("not armed by incident inc-1" in n for n in result.notes)
    assert box.buffer_size == 1_000_000 and len(box.applets) == 1  # logging and the dead-man, like an arm
    assert r.disarm(host(), "inc-2").clean and box.applets == {} and box.debugs == set()


# ---------------------------------------------------------------------- runs sent together

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from collector.core.steps import Step  # noqa: E402

_STEPS = [Step(do=("logging buffered 100000 debugging",), undo=("logging buffered 16384",), mode="config", why="x"),
          Step(do=("event manager applet A", " event none"), undo=("no event manager applet A",), mode="config",
               why="x"),
          Step(do=("debug crypto condition peer ipv4 10.0.0.2",), undo=("no debug crypto condition peer ipv4 10.0.0.2",),
               mode="exec", why="x"),
          Step(do=("debug crypto isakmp",), undo=("no debug crypto isakmp",), mode="exec", why="x"),
          Step(do=("debug crypto ipsec",), undo=("no debug crypto ipsec",), mode="exec", why="x"),
          Step(do=("show clock",), undo=(), mode="exec", why="x"),
          Step(do=("debug ip packet",), undo=("no debug ip packet",), mode="exec", why="x")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_STEPS), max_size=12))
def test_runs_keep_the_order_and_never_type_a_debug_with_a_condition(picked):
    steps = list(enumerate(picked))
    runs = runs_sent_together(steps)
    assert [item for run in runs for item in run] == steps
    for run in runs:
        commands = [c for _i, step in run for c in step.do]
        if len(run) > 1:
            modes = {step.mode for _i, step in run}
            conditions = [c for c in commands if c.startswith("debug crypto condition")]
            assert modes == {"config"} or (modes == {"exec"} and (
                len(conditions) == len(commands) or (not conditions and all(
                    c in ("debug crypto isakmp", "debug crypto ipsec") for c in commands))))
    # consecutive configuration steps always share one session
    assert not any(a[-1][1].mode == "config" and b[0][1].mode == "config" for a, b in zip(runs, runs[1:]))

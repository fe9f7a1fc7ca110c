"""The store-less sweep: routers restored from the tool's own dead-man applets, strictly."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from collector.respond.deadman import build_applet
from collector.respond.sweep import (
    APPLETS_COMMAND,
    Ownership,
    accept_command,
    parse_applets,
    sweep_router,
    sweep_routers,
)
from collector.sessions import AuthenticationFailed
from tests.fakes import FakeRouters

NAME = "COLLECTOR_DEADMAN_1A2B3C4D"
UNDO = [
    ("exec", ("no debug crypto ipsec", "no debug crypto isakmp", "no debug crypto condition peer ipv4 10.0.0.2")),
    ("config", ("logging monitor debugging", "logging console informational", "logging buffered 8192 warnings")),
]


def applet_text(name: str = NAME, undo=UNDO) -> str:
    return "\n".join(build_applet(name, 720, undo).config_lines) + "\n"


class Router:
    """Just enough of a router for the sweep: logging, crypto debugs, conditions, applets."""

    def __init__(self, applets: str, *, buffered=(1000000, "debugging"), console=None, monitor=None,
                 debugs=("ISAKMP", "IPSEC"), conditions=("10.0.0.2",), refuse=()):
        self.applets, self.buffered, self.console, self.monitor = applets, buffered, console, monitor
        self.debugs, self.conditions, self.refuse = set(debugs), list(conditions), set(refuse)
        self.sent: list[str] = []

    def install(self, routers: FakeRouters, name: str) -> None:
        routers.on(name, r".", self.answer)

    def answer(self, command: str) -> str:
        self.sent.append(command)
        if command in self.refuse:
            return "% Invalid input detected at '^' marker."
        if command == APPLETS_COMMAND:
            return self.applets
        if command == "show logging":
            def level(v):
                return f"level {v}, 10 messages logged" if v else "disabled"
            b = self.buffered
            return (f"Syslog logging: enabled\n    Console logging: {level(self.console)}\n"
                    f"    Monitor logging: {level(self.monitor)}\n"
                    f"    Buffer logging:  {level(b[1] if b else None)}\n"
                    + (f"\nLog Buffer ({b[0]} bytes):\n" if b else ""))
        if command == "show debugging":
            return "Cryptographic Subsystem:\n" + "".join(f"  Crypto {d} debugging is on\n" for d in sorted(self.debugs))
        if command == "show crypto debug-condition":
            return "IKE peer IP address filters:\n" + "".join(f"{a}\n" for a in self.conditions) if self.conditions else ""
        if m := re.fullmatch(r"no debug crypto (isakmp|ikev2|ipsec)", command):
            self.debugs.discard(m.group(1).upper() if m.group(1) != "ikev2" else "IKEv2")
        elif m := re.fullmatch(r"no debug crypto condition peer ipv[46] (\S+)", command):
            self.conditions = [a for a in self.conditions if a != m.group(1)]
        elif m := re.fullmatch(r"logging buffered (\d+) (\w+)", command):
            self.buffered = (int(m.group(1)), m.group(2))
        elif m := re.fullmatch(r"logging (console|monitor) (\w+)", command):
            setattr(self, m.group(1), m.group(2))
        elif m := re.fullmatch(r"no logging (console|monitor|buffered)", command):
            setattr(self, m.group(1), None)
        elif m := re.fullmatch(r"no event manager applet (\S+)", command):
            self.applets = ""
        return ""


def _sweep(router: Router, name: str = "hub1"):
    routers = FakeRouters()
    router.install(routers, name)
    with routers.session(SimpleNamespace(name=name)) as session:
        return sweep_router(session, name)


def test_a_router_armed_by_the_tool_is_restored_from_its_applet():
    router = Router(applet_text())
    result = _sweep(router)
    assert result.clean, result.line()
    assert (router.buffered, router.console, router.monitor) == ((8192, "warnings"), "informational", "debugging")
    assert not router.debugs and not router.conditions and router.applets == ""
    # the applet's removal is the last thing sent: a sweep cut short keeps the countdown
    changes = [c for c in router.sent if not c.startswith("show") and c not in ("configure terminal", "end")]
    assert changes[-1] == f"no event manager applet {NAME}"
    assert result.line().startswith("clean: applets COLLECTOR_DEADMAN_1A2B3C4D; restored: no debug crypto ipsec")


def test_never_clean_while_logging_differs_from_what_the_applet_says():
    router = Router(applet_text(), refuse={"logging buffered 8192 warnings"})
    result = _sweep(router)
    assert not result.clean
    line = result.line()
    assert line.startswith("NOT clean")
    assert "router refused 'logging buffered 8192 warnings'" in line
    assert "logging buffered is 1000000 debugging, the applet says it was 8192 warnings" in line


def test_a_buffered_line_without_a_level_is_restored_and_checked_on_its_size():
    """IOS omits the default level (debugging) from running-config: the responder restores
    `logging buffered 100000` as it was, and the sweep must send it too, not refuse it."""
    undo = [("exec", ("no debug crypto ipsec",)), ("config", ("logging buffered 100000",))]
    router = Router(applet_text(undo=undo), debugs=("IPSEC",), conditions=())
    router.answer = _also_bare_size(router)
    result = _sweep(router)
    assert result.clean, result.line()
    assert router.buffered == (100000, "debugging") and "logging buffered 100000" in result.restored


def test_a_buffered_line_without_a_size_is_checked_on_its_level_only():
    undo = [("config", ("logging buffered warnings",))]
    router = Router(applet_text(undo=undo), debugs=(), conditions=(), buffered=(1000000, "debugging"))
    result = _sweep(router)  # the fake router ignores the level-only form: the level stays wrong
    assert not result.clean
    assert "the applet says it was default size warnings" in result.line()


def _also_bare_size(router: Router):
    answer = router.answer

    def patched(command: str) -> str:
        if m := re.fullmatch(r"logging buffered (\d+)", command):
            router.sent.append(command)
            router.buffered = (int(m.group(1)), "debugging")
            return ""
        return answer(command)
    return patched


def test_logging_switched_off_before_arming_is_switched_off_again():
    router = Router(applet_text(undo=[("config", ("no logging buffered",)), ("exec", ("no debug crypto ipsec",))]),
                    debugs=("IPSEC",), conditions=())
    result = _sweep(router)
    assert result.clean, result.line()
    assert router.buffered is None


def test_someone_elses_debug_and_condition_are_left_on_and_named_not_a_failure():
    router = Router(applet_text(), debugs=("ISAKMP", "IPSEC", "Engine"), conditions=("10.0.0.2", "10.9.9.9"))
    result = _sweep(router)
    assert result.clean, result.line()
    assert result.still_on == [] and result.not_ours == ["debug crypto engine", "condition peer 10.9.9.9"]
    assert result.line().endswith("left on (no applet or record of the tool names them): "
                                  "debug crypto engine, condition peer 10.9.9.9")
    assert router.debugs == {"Engine"} and router.conditions == ["10.9.9.9"]
    assert not any("engine" in c or "10.9.9.9" in c for c in router.sent if not c.startswith("show"))


def test_a_debug_of_the_tools_still_on_after_its_undo_is_never_clean():
    router = Router(applet_text(), refuse={"no debug crypto isakmp", "no debug crypto condition peer ipv4 10.0.0.2"})
    result = _sweep(router)
    assert not result.clean
    assert result.still_on == ["debug crypto isakmp", "condition peer 10.0.0.2"]
    assert "still on: debug crypto isakmp, condition peer 10.0.0.2" in result.line()


def test_what_the_store_recorded_counts_as_the_tools_even_without_an_applet():
    router = Router("", debugs=("IPSEC", "ISAKMP"), conditions=("10.0.0.2",))
    routers = FakeRouters()
    router.install(routers, "hub1")
    with routers.session(SimpleNamespace(name="hub1")) as session:
        result = sweep_router(session, "hub1", Ownership(frozenset({"isakmp"}), frozenset({"10.0.0.2"})))
    assert not result.clean
    assert result.still_on == ["debug crypto isakmp", "condition peer 10.0.0.2"]
    assert result.not_ours == ["debug ipsec"]


def test_an_unreadable_debug_state_is_not_verified_when_the_tool_had_set_something():
    router = Router(applet_text(), refuse={"show debugging", "show crypto debug-condition"})
    result = _sweep(router)
    assert not result.clean
    assert "`show debugging` refused: debugs not verified" in result.still_on
    assert "`show crypto debug-condition` refused: conditions not verified" in result.still_on


def test_no_applet_and_nothing_on_is_clean_without_a_change():
    router = Router("", debugs=(), conditions=())
    result = _sweep(router)
    assert result.clean
    assert "no COLLECTOR_DEADMAN_* applet" in result.line()
    assert all(c.startswith("show") for c in router.sent)


HOSTILE = [
    "clear crypto sa",
    "no debug crypto condition",  # all conditions, not the tool's own
    "debug crypto condition reset",
    "no debug crypto condition peer ipv4 10.0.0.300",
    "no debug crypto condition peer ipv4 2001:db8::1",
    "no debug crypto condition peer ipv6 10.0.0.1",
    "no debug crypto ipsec ; reload",
    "logging buffered 100 debugging",
    "logging buffered 8192 loud",
    "logging host 203.0.113.9",
    "no logging host 203.0.113.9",
    "no logging",
    "no event manager applet SOMEONE_ELSES",
    "username admin privilege 15 secret x",
    "reload",
    "undebug all",
]


@pytest.mark.parametrize("command", HOSTILE)
def test_anything_but_a_known_undo_form_is_refused(command):
    assert accept_command(command, "exec") is None and accept_command(command, "config") is None


@pytest.mark.parametrize("command, mode", [
    ("no debug crypto ipsec", "exec"), ("no debug crypto ikev2", "exec"), ("no debug crypto isakmp", "exec"),
    ("no debug crypto condition peer ipv4 192.0.2.7", "exec"), ("no debug crypto condition peer ipv6 2001:db8::7", "exec"),
    ("logging buffered 4096 debugging", "config"), ("logging buffered 65536 7", "config"),
    ("logging buffered 65536 informational discriminator CRYPTO", "config"),
    # running-config lines restored verbatim: defaults omitted, a discriminator or xml kept
    ("logging buffered 100000", "config"), ("logging buffered informational", "config"),
    ("logging buffered discriminator NOFLAP 10000000 debugging", "config"), ("logging buffered xml 65536", "config"),
    ("logging console critical", "config"), ("logging monitor 6", "config"),
    ("no logging console", "config"), ("no logging monitor", "config"), ("no logging buffered", "config"),
    (f"no event manager applet {NAME}", "config"),
])
def test_every_known_undo_form_is_accepted_in_its_mode_only(command, mode):
    assert accept_command(command, mode) is not None
    assert accept_command(command, "config" if mode == "exec" else "exec") is None


def test_a_tampered_applet_sends_only_what_is_known_and_says_what_it_refused():
    text = applet_text() + "\n".join([
        f"event manager applet {NAME[:-1]}X",
        " event timer countdown time 60",
        ' action 001 cli command "enable"',
        ' action 002 cli command "clear crypto sa"',
        ' action 003 syslog msg "hello"',
        ' action 004 cli command "configure terminal"',
        ' action 005 cli command "logging host 203.0.113.9"',
        ' action 006 cli command "logging buffered 8192 warnings"',
        ' action 007 cli command "end"',
        ' action 008 cli command "no debug crypto isakmp"',
        ' action 009 cli command "configure terminal"',
        ' action 010 cli command "no debug crypto ipsec"',   # exec command in config mode: refused
    ]) + "\n"
    router = Router(text)
    result = _sweep(router)
    assert "clear crypto sa" not in router.sent and "logging host 203.0.113.9" not in router.sent
    assert any("'clear crypto sa'" in r for r in result.refused)
    assert any("'action 003 syslog msg \"hello\"'" in r for r in result.refused)
    assert any("'no debug crypto ipsec'" in r for r in result.refused)
    assert not result.clean  # a refused logging command leaves logging unknown
    assert f"no event manager applet {NAME[:-1]}X" in router.sent


def test_labels_are_ordered_as_eem_orders_them():
    text = "\n".join([
        f"event manager applet {NAME}",
        " event timer countdown time 60 maxrun 120",
        ' action 2 cli command "configure terminal"',
        ' action 10 cli command "logging console debugging"',  # "10" < "2": runs before the mode switch
        ' action 3 cli command "logging monitor debugging"',
    ])
    (applet,) = parse_applets(text)
    assert [c.command for c in applet.commands] == ["logging monitor debugging"]
    assert applet.refused == ("logging console debugging",)


def test_unreachable_and_refused_logins_are_reported_per_router():
    routers = FakeRouters()
    Router(applet_text()).install(routers, "ok1")
    routers.router("down1").open_error = AuthenticationFailed("down1", "authentication failed")
    results = sweep_routers(routers, [SimpleNamespace(name="ok1"), SimpleNamespace(name="down1")], workers=2)
    assert [r.router for r in results] == ["ok1", "down1"]
    assert results[0].clean and not results[1].clean
    assert results[1].line() == "NOT clean: authentication failed"


def test_a_session_lost_half_way_says_what_was_restored_before():
    router = Router(applet_text())
    routers = FakeRouters()

    def answer(command):
        if command == "logging console informational":
            from collector.sessions import SessionDropped
            return SessionDropped("hub1", "session dropped")
        return router.answer(command)

    routers.on("hub1", r".", answer)
    with routers.session(SimpleNamespace(name="hub1")) as session:
        result = sweep_router(session, "hub1")
    assert not result.clean
    assert result.line().startswith("NOT clean: session dropped; before that restored: no debug crypto ipsec")
    assert router.applets  # the applet is still there: its countdown will finish the job



def test_applets_on_reads_without_changing_anything():
    from collector.respond.sweep import applets_on

    router = Router(applet_text())
    routers = FakeRouters()
    router.install(routers, "hub1")
    with routers.session(SimpleNamespace(name="hub1")) as session:
        (applet,) = applets_on(session)
    assert applet.name == NAME and router.sent == [APPLETS_COMMAND]

"""CliSession: one user's view of a router's CLI (modes, prompts, enable, errors, filters).

Commands are parsed with the keyword tree of clitree.py, so every keyword can be
abbreviated to a unique prefix (`sh cry ips sa`, `conf t`, `sh ip int br`). Errors read
like IOS: `% Invalid input detected at '^' marker.` under a caret line (its column counts
the prompt, because the transport has already echoed prompt + command above it),
`% Incomplete command.`, `% Ambiguous command:  "..."`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from collector.lab import render
from collector.lab.aaa import AUTHORIZATION_FAILED
from collector.lab.clitree import Grammar, Match, ParseError, parse, tokenize
from collector.lab.eem import AppletSyntaxError
from collector.lab.filters import FilterError, apply_filters, split_filters

if TYPE_CHECKING:
    from collector.lab.router import Router

MAX_ENABLE_TRIES = 3
# IOS shows the hostname whole in EXEC mode, its first 20 characters in configuration modes
CONFIG_PROMPT_HOSTNAME = 20


@dataclass(frozen=True, slots=True)
class Command:
    handler: Callable[[CliSession, tuple], str]
    authorize: bool = True  # False: mode changes (enable, exit, end) and `do`, whose line is authorized itself


def _cmd(fn: Callable[[CliSession, tuple], str]) -> Command:
    return Command(fn)


def _free(fn: Callable[[CliSession, tuple], str]) -> Command:
    """A command never sent for authorization."""
    return Command(fn, authorize=False)


# -- handlers --------------------------------------------------------------------------
# Each takes (session, args) and returns the output text ("" for silence).


def _enable(s: CliSession, a: tuple) -> str:
    if s.mode != "user":
        return ""
    if s.internal:
        s.mode = "priv"
        return ""
    s._ask_password(1)
    return ""


def _disable(s: CliSession, a: tuple) -> str:
    s.mode = "user"
    return ""


def _exit_exec(s: CliSession, a: tuple) -> str:
    s.close()
    return ""


def _terminal_length(s: CliSession, a: tuple) -> str:
    s.terminal_length = a[0]
    return ""


def _terminal_width(s: CliSession, a: tuple) -> str:
    s.terminal_width = a[0]
    return ""


def _terminal_monitor(on: bool) -> Command:
    def run(s: CliSession, a: tuple) -> str:
        s.set_monitor(on)
        return ""

    return Command(run)


def _configure(s: CliSession, a: tuple) -> str:
    s.mode = "config"
    return "Enter configuration commands, one per line.  End with CNTL/Z.\n"


def _end(s: CliSession, a: tuple) -> str:
    s.leave_config()
    return ""


def _exit_config(s: CliSession, a: tuple) -> str:
    if s.mode == "config":
        s.leave_config()
    else:
        s.router.config_submode_done(s)
        s.mode = "config"
        s.submode_target = None
    return ""


def _do(s: CliSession, a: tuple) -> str:
    return s.run_exec_line(a[0])


def _show(fn: Callable[..., str]) -> Command:
    return Command(lambda s, a: fn(s.router, *a))


def _router_call(method: str, *fixed: object) -> Command:
    """A command that calls router.<method>(session, *fixed, *args)."""
    return Command(lambda s, a: getattr(s.router, method)(s, *fixed, *a))


def _interface(s: CliSession, a: tuple) -> str:
    name = s.router.resolve_interface(a[0])
    if name is None:
        raise InvalidToken(1)
    s.mode = "config-if"
    s.submode_target = name
    return ""


def _applet(s: CliSession, a: tuple) -> str:
    name = a[0]
    options = " ".join(a[1:])
    s.router.applet_begin(s, name, options)
    s.mode = "config-applet"
    s.submode_target = name
    return ""


def _applet_event(s: CliSession, a: tuple) -> str:
    s.router.applet_event(s, s.submode_target, a[0])
    return ""


def _applet_action(s: CliSession, a: tuple) -> str:
    s.router.applet_action(s, s.submode_target, a[0])
    return ""


def _applet_no_action(s: CliSession, a: tuple) -> str:
    s.router.applet_remove_action(s, s.submode_target, a[0])
    return ""


def _applet_description(s: CliSession, a: tuple) -> str:
    s.router.applet_description(s, s.submode_target, a[0])
    return ""


def _line_vty(s: CliSession, a: tuple) -> str:
    if a[1] < a[0]:
        raise InvalidToken(3)
    s.router.cfg_line_vty(s, a[0], a[1])
    s.mode = "config-line"
    s.submode_target = f"vty {a[0]} {a[1]}"
    return ""


def _if_description(s: CliSession, a: tuple) -> str:
    s.router.set_description(s, s.submode_target, a[0] if a else None)
    return ""


class InvalidToken(Exception):
    """Raised by a handler to report an invalid token (index into the tokens)."""

    def __init__(self, token_index: int):
        super().__init__(token_index)
        self.token_index = token_index


# -- grammars ----------------------------------------------------------------------------


def _user_grammar() -> Grammar:
    g = Grammar()
    g.add("enable", _free(_enable))
    g.add("disable", _free(_disable))
    for word in ("exit", "logout", "quit"):
        g.add(word, _free(_exit_exec))
    g.add("show users", _router_call("show_users"))
    g.add("show privilege", _cmd(lambda s, a: f"Current privilege level is {1 if s.mode == 'user' else 15}\n"))
    g.add("terminal length <int:0-512>", _cmd(_terminal_length))
    g.add("terminal width <int:0-512>", _cmd(_terminal_width))
    g.add("terminal monitor", _terminal_monitor(True))
    g.add("terminal no monitor", _terminal_monitor(False))
    g.add("show version", _show(render.show_version))
    g.add("show clock", _show(render.show_clock))
    g.add("show clock detail", _show(lambda r: render.show_clock(r, detail=True)))
    g.add("show ip interface brief", _show(render.show_ip_interface_brief))
    g.add("show ip nhrp", _show(render.show_ip_nhrp))  # a user-mode command too (real capture: `R15>sh ip nhrp`)
    g.add("show processes cpu", _show(render.show_processes_cpu))
    g.add("show processes cpu sorted", _show(lambda r: render.show_processes_cpu(r, sort=True)))
    return g


def _priv_grammar(xe: bool) -> Grammar:
    g = _user_grammar()
    g.add("configure terminal", _cmd(_configure))
    g.add("show running-config", _show(render.show_running_config))
    g.add("show dmvpn", _show(render.show_dmvpn))  # real captures in tests/fixtures/real/show_dmvpn
    g.add("show startup-config", _show(render.show_startup_config))
    g.add("show logging", _show(render.show_logging))
    g.add("show crypto isakmp sa", _show(render.show_crypto_isakmp_sa))
    g.add("show crypto isakmp sa detail", _show(lambda r: render.show_crypto_isakmp_sa(r, detail=True)))
    g.add("show crypto ikev2 sa", _show(render.show_crypto_ikev2_sa))
    g.add("show crypto ikev2 sa detailed", _show(lambda r: render.show_crypto_ikev2_sa(r, detailed=True)))
    g.add("show crypto ipsec sa", _show(render.show_crypto_ipsec_sa))
    g.add("show crypto ipsec sa detail", _show(lambda r: render.show_crypto_ipsec_sa(r, detail=True)))
    g.add("show crypto ipsec sa peer <ip>", _show(lambda r, ip: render.show_crypto_ipsec_sa(r, peer=ip)))
    g.add(
        "show crypto ipsec sa peer <ip> detail",
        _show(lambda r, ip: render.show_crypto_ipsec_sa(r, peer=ip, detail=True)),
    )
    g.add("show crypto session", _show(render.show_crypto_session))
    g.add("show crypto session detail", _show(lambda r: render.show_crypto_session(r, detail=True)))
    g.add("show crypto session remote <ip>", _show(lambda r, ip: render.show_crypto_session(r, remote=ip)))
    g.add(
        "show crypto session remote <ip> detail",
        _show(lambda r, ip: render.show_crypto_session(r, remote=ip, detail=True)),
    )
    g.add(
        "show crypto session detail remote <ip>",
        _show(lambda r, ip: render.show_crypto_session(r, remote=ip, detail=True)),
    )
    g.add("show crypto map", _show(render.show_crypto_map))
    g.add("show crypto debug-condition", _show(render.show_crypto_debug_condition))
    g.add("show debugging", _show(render.show_debugging))
    g.add("show event manager policy registered", _show(render.show_event_manager_policy_registered))
    g.add("show event manager version", _show(render.show_event_manager_version))
    if xe:
        g.add("show platform hardware qfp active statistics drop", _show(render.show_qfp_drops))
        g.add(
            "show platform hardware qfp active statistics drop all",
            _show(lambda r: render.show_qfp_drops(r, all_rows=True)),
        )
        g.add("show platform hardware qfp active feature ipsec datapath drops", _show(render.show_qfp_ipsec_drops))
        g.add(
            "show platform hardware qfp active feature ipsec datapath drops all",
            _show(lambda r: render.show_qfp_ipsec_drops(r, all_rows=True)),
        )
    else:
        g.add("show platform", _show(render.show_platform_classic))
    for kind in ("isakmp", "ikev2", "ipsec"):
        g.add(f"debug crypto {kind}", _router_call("debug_set", kind, True))
        g.add(f"no debug crypto {kind}", _router_call("debug_set", kind, False))
        g.add(f"undebug crypto {kind}", _router_call("debug_set", kind, False))
    g.add("debug crypto condition peer ipv4 <ip>", _router_call("debug_condition", True))
    g.add("no debug crypto condition peer ipv4 <ip>", _router_call("debug_condition", False))
    g.add("debug crypto condition reset", _router_call("debug_condition_reset"))
    g.add("no debug all", _router_call("debug_all_off"))
    g.add("undebug all", _router_call("debug_all_off"))
    g.add("clear logging", _router_call("clear_logging"))
    g.add("clear crypto sa", _router_call("clear_crypto", None))
    g.add("clear crypto sa peer <ip>", _router_call("clear_crypto"))
    g.add("clear crypto isakmp", _router_call("clear_crypto", None))
    g.add("clear crypto session", _router_call("clear_crypto", None))
    g.add("clear crypto session remote <ip>", _router_call("clear_crypto"))
    g.add("write memory", _router_call("write_memory"))
    g.add("copy running-config startup-config", _router_call("copy_run_start"))
    g.add("more <word>", _router_call("more_file"))
    g.add("dir flash:", _router_call("dir_flash"))
    g.add("delete <word>", _router_call("delete_file", False))
    g.add("delete /force <word>", _router_call("delete_file", True))
    return g


def _config_grammar(eem_bypass: bool = True) -> Grammar:
    """Global configuration; `eem_bypass`: EEM 3.1 or later (`authorization bypass` on applets)."""
    g = Grammar()
    g.add("end", _free(_end))
    g.add("exit", _free(_exit_config))
    g.add("do <line>", _free(_do))
    g.add("hostname <word>", _router_call("cfg_hostname"))
    g.add("no hostname", Command(lambda s, a: s.router.cfg_hostname(s, "Router")))
    g.add("aaa authorization commands <int:0-15> default <line>", _router_call("cfg_aaa_commands"))
    g.add(
        "no aaa authorization commands <int:0-15> default",
        Command(lambda s, a: s.router.cfg_aaa_commands(s, a[0], None)),
    )
    g.add("aaa new-model", Command(lambda s, a: ""))
    g.add("aaa authorization config-commands", _router_call("cfg_aaa_config_commands", True))
    g.add("no aaa authorization config-commands", _router_call("cfg_aaa_config_commands", False))
    g.add("line vty <int:0-98> <int:0-98>", _cmd(_line_vty))
    g.add("logging buffered", _router_call("cfg_logging_buffered", None, None))
    g.add("logging buffered <int:4096-2147483647>", Command(lambda s, a: s.router.cfg_logging_buffered(s, a[0], None)))
    g.add("logging buffered <level>", Command(lambda s, a: s.router.cfg_logging_buffered(s, None, a[0])))
    g.add(
        "logging buffered <int:4096-2147483647> <level>",
        Command(lambda s, a: s.router.cfg_logging_buffered(s, a[0], a[1])),
    )
    # `logging buffered discriminator NAME [SIZE] [LEVEL]` (keyword before the size: Cisco command
    # reference, "logging buffered discriminator buffer1 critical"); how the running-config shows it
    g.add("logging buffered discriminator <word>",
          Command(lambda s, a: s.router.cfg_logging_buffered(s, None, None, discriminator=a[0])))
    g.add("logging buffered discriminator <word> <int:4096-2147483647>",
          Command(lambda s, a: s.router.cfg_logging_buffered(s, a[1], None, discriminator=a[0])))
    g.add("logging buffered discriminator <word> <int:4096-2147483647> <level>",
          Command(lambda s, a: s.router.cfg_logging_buffered(s, a[1], a[2], discriminator=a[0])))
    g.add("no logging buffered", _router_call("cfg_logging_off", "buffered"))
    for dest in ("console", "monitor"):
        g.add(f"logging {dest}", _router_call("cfg_logging_level", dest, "debugging"))
        g.add(f"logging {dest} <level>", _router_call("cfg_logging_level", dest))
        g.add(f"no logging {dest}", _router_call("cfg_logging_off", dest))
    g.add("logging trap <level>", _router_call("cfg_logging_level", "trap"))
    g.add("no logging trap", _router_call("cfg_logging_level", "trap", "informational"))
    g.add("logging host <ip>", Command(lambda s, a: s.router.cfg_logging_host(s, a[0], 514, True)))
    g.add(
        "logging host <ip> transport udp port <int:1-65535>",
        Command(lambda s, a: s.router.cfg_logging_host(s, a[0], a[1], True)),
    )
    g.add("logging <ip>", Command(lambda s, a: s.router.cfg_logging_host(s, a[0], 514, True)))
    g.add("no logging host <ip>", Command(lambda s, a: s.router.cfg_logging_host(s, a[0], 514, False)))
    g.add("no logging <ip>", Command(lambda s, a: s.router.cfg_logging_host(s, a[0], 514, False)))
    g.add("crypto isakmp invalid-spi-recovery", _router_call("cfg_invalid_spi_recovery", True))
    g.add("no crypto isakmp invalid-spi-recovery", _router_call("cfg_invalid_spi_recovery", False))
    g.add("crypto isakmp keepalive <int:10-3600>", _router_call("cfg_keepalive"))
    g.add("crypto isakmp keepalive <int:10-3600> <int:2-60>", _router_call("cfg_keepalive"))
    for mode in ("periodic", "on-demand"):
        g.add(
            f"crypto isakmp keepalive <int:10-3600> {mode}",
            Command(lambda s, a, m=mode: s.router.cfg_keepalive(s, a[0], None, m)),
        )
        g.add(
            f"crypto isakmp keepalive <int:10-3600> <int:2-60> {mode}",
            Command(lambda s, a, m=mode: s.router.cfg_keepalive(s, a[0], a[1], m)),
        )
    g.add("no crypto isakmp keepalive", _router_call("cfg_keepalive_off"))
    g.add("event manager applet <word>", _cmd(_applet))
    if eem_bypass:
        g.add(
            "event manager applet <word> authorization bypass",
            Command(lambda s, a: _applet(s, (a[0], "authorization", "bypass"))),
        )
    g.add("no event manager applet <word>", _router_call("applet_remove"))
    g.add("event manager session cli username <word>", _router_call("cfg_eem_username"))
    g.add("no event manager session cli username", Command(lambda s, a: s.router.cfg_eem_username(s, None)))
    g.add("interface <word>", _cmd(_interface))
    g.add("service timestamps <line>", _router_call("cfg_timestamps", True))
    g.add("no service timestamps", Command(lambda s, a: s.router.cfg_timestamps(s, False, "")))
    g.add("no service timestamps <line>", _router_call("cfg_timestamps", False))
    g.add("service sequence-numbers", _router_call("cfg_sequence_numbers", True))
    g.add("no service sequence-numbers", _router_call("cfg_sequence_numbers", False))
    return g


def _applet_grammar() -> Grammar:
    g = Grammar()
    g.add("end", _free(_end))
    g.add("exit", _free(_exit_config))
    g.add("event <line>", _cmd(_applet_event))
    g.add("action <line>", _cmd(_applet_action))
    g.add("no action <word>", _cmd(_applet_no_action))
    g.add("description <line>", _cmd(_applet_description))
    g.add("do <line>", _free(_do))
    return g


def _interface_grammar() -> Grammar:
    g = Grammar()
    g.add("end", _free(_end))
    g.add("exit", _free(_exit_config))
    g.add("description <line>", _cmd(_if_description))
    g.add("no description", _cmd(_if_description))
    g.add("do <line>", _free(_do))
    return g


def _line_grammar() -> Grammar:
    g = Grammar()
    g.add("end", _free(_end))
    g.add("exit", _free(_exit_config))
    g.add("transport input ssh", Command(lambda s, a: ""))
    g.add("do <line>", _free(_do))
    return g


_GRAMMARS: dict[str, Grammar] = {
    "user": _user_grammar(),
    "priv-xe": _priv_grammar(True),
    "priv-ios": _priv_grammar(False),
    "config": _config_grammar(),
    # 12.4(24)T has EEM 3.0: no `authorization bypass` (EEM 3.1 and later, docs/real-routers.md)
    "config-eem30": _config_grammar(eem_bypass=False),
    "config-applet": _applet_grammar(),
    "config-if": _interface_grammar(),
    "config-line": _line_grammar(),
}

_PROMPT_SUFFIX = {
    "user": ">",
    "priv": "#",
    "config": "(config)#",
    "config-if": "(config-if)#",
    "config-applet": "(config-applet)#",
    "config-line": "(config-line)#",
}


class CliSession:
    """One CLI session (an SSH vty, or EEM's internal session)."""

    def __init__(
        self,
        router: Router,
        *,
        user: str | None = None,
        line: str = "vty0",
        source: str = "127.0.0.1",
        internal: str | None = None,
    ):
        self.router = router
        self.mode = "user"
        self.submode_target: str | None = None
        self.user = router.username if user is None else user
        self.line = line
        self.source = source
        self.internal = internal  # EEM applet name for sessions an applet opened
        self.closed = False
        self.terminal_length = 24
        self.terminal_width = 80
        self.monitor = False
        self.monitor_lines: deque[str] = deque(maxlen=5000)
        self._password_try = 0
        self._pending: Callable[[str], str] | None = None
        self._pending_prompt = ""
        self._pending_echo = True

    # -- what the transport shows --------------------------------------------------

    @property
    def prompt(self) -> str:
        if self._pending is not None:
            return self._pending_prompt
        hostname = self.router.hostname
        if self.mode.startswith("config"):
            hostname = hostname[:CONFIG_PROMPT_HOSTNAME]
        return hostname + _PROMPT_SUFFIX[self.mode]

    @property
    def echo(self) -> bool:
        return self._pending is None or self._pending_echo

    def drain_monitor(self) -> list[str]:
        """Log lines for `terminal monitor` (the transport may print them between commands)."""
        out = list(self.monitor_lines)
        self.monitor_lines.clear()
        return out

    # -- input ---------------------------------------------------------------------

    def execute(self, line: str) -> str:
        if self.closed:
            return ""
        with self.router.lock:
            self.router.advance()
            self.router.command_started(self)
            if self._pending is not None:
                handler, self._pending = self._pending, None
                return handler(line)
            if self.mode in ("user", "priv"):
                return self.run_exec_line(line)
            return self._run_config_line(line)

    def run_exec_line(self, line: str) -> str:
        grammar = (
            _GRAMMARS["user"] if self.mode == "user" else _GRAMMARS["priv-xe" if self.router.is_xe else "priv-ios"]
        )
        if not line.strip():
            return ""
        try:
            command, filters = split_filters(line)
        except FilterError as exc:
            return self._error(exc.kind, exc.column, line)
        tokens = tokenize(command)
        result = parse(grammar, command, tokens)
        if isinstance(result, ParseError):
            if (
                result.kind == "invalid"
                and result.token_index == 0
                and len(tokens) == 1
                and not filters
                and self.mode in ("user", "priv")
            ):
                # a lone unknown word is taken as a host name to telnet to (no ip domain lookup)
                return (
                    f'Translating "{tokens[0].text}"\n'
                    "% Unknown command or computer name, or unable to find computer address\n"
                )
            return self._error(result.kind, result.column, line)
        if not self._authorized(result, command):
            return AUTHORIZATION_FAILED
        output = self._run(result, tokens, line)
        if filters:
            output = apply_filters(output, filters, self.router.write_file)
        return output

    def _run_config_line(self, line: str) -> str:
        stripped = line.strip()
        if not stripped or stripped.startswith("!"):
            return ""
        grammar = _GRAMMARS[self._config_grammar_name(self.mode)]
        tokens = tokenize(line)
        result = parse(grammar, line, tokens)
        if isinstance(result, ParseError) and self.mode != "config":
            # IOS falls back to global configuration for lines the sub-mode does not know
            fallback = parse(_GRAMMARS[self._config_grammar_name("config")], line, tokens)
            if isinstance(fallback, Match):
                self.router.config_submode_done(self)
                self.mode, self.submode_target = "config", None
                result = fallback
        if isinstance(result, ParseError):
            return self._error(result.kind, result.column, line)
        if result.action.authorize and not self.router.authorized(self, result.expanded, None):
            return AUTHORIZATION_FAILED
        return self._run(result, tokens, line)

    def _config_grammar_name(self, mode: str) -> str:
        return "config-eem30" if mode == "config" and self.router.family == "ios124" else mode

    def _authorized(self, match: Match, command: str) -> bool:
        """EXEC commands: level 1 if user EXEC has them, else 15 (what IOS sends for each)."""
        if not match.action.authorize:
            return True
        level = 1 if self.mode == "user" or isinstance(parse(_GRAMMARS["user"], command), Match) else 15
        return self.router.authorized(self, match.expanded, level)

    def _run(self, match: Match, tokens: list, line: str) -> str:
        try:
            return match.action.handler(self, match.args)
        except InvalidToken as exc:
            col = tokens[exc.token_index].start if exc.token_index < len(tokens) else len(line)
            return self._error("invalid", col, line)
        except AppletSyntaxError as exc:
            # the applet parser reports a column inside the text after `event `/`action `
            return self._error("invalid", tokens[1].start + exc.column if len(tokens) > 1 else len(line), line)

    def _error(self, kind: str, column: int, line: str) -> str:
        if kind == "incomplete":
            return "% Incomplete command.\n\n"
        if kind == "ambiguous":
            return f'% Ambiguous command:  "{line.strip()}"\n'
        return " " * (len(self.prompt) + column) + "^\n% Invalid input detected at '^' marker.\n\n"

    # -- mode changes ---------------------------------------------------------------

    def _ask_password(self, attempt: int) -> None:
        self._password_try = attempt
        self._pending = self._check_password
        self._pending_prompt = "Password: "
        self._pending_echo = False

    def _check_password(self, secret: str) -> str:
        if secret == self.router.enable_secret:
            self.mode = "priv"
            return ""
        if self._password_try >= MAX_ENABLE_TRIES:
            return "% Bad secrets\n\n"
        self._ask_password(self._password_try + 1)
        return "% Access denied\n\n"

    def confirm(self, prompt: str, on_yes: Callable[[], str]) -> None:
        """Ask `prompt`; Enter or y/yes runs on_yes, anything else aborts."""

        def answer(text: str) -> str:
            if text.strip().lower() in ("", "y", "yes"):
                return on_yes()
            return ""

        self._pending = answer
        self._pending_prompt = prompt
        self._pending_echo = True

    def leave_config(self) -> None:
        if self.mode in ("config-if", "config-applet", "config-line"):
            self.router.config_submode_done(self)
        if self.mode.startswith("config"):
            self.mode = "priv"
            self.submode_target = None
            self.router.config_session_done(self)

    def set_monitor(self, on: bool) -> None:
        self.monitor = on
        self.router.monitor_changed(self)

    def close(self) -> None:
        if not self.closed:
            if self.mode == "config-applet":
                self.router.config_submode_done(self)  # a dropped session still commits its applet
            self.closed = True
            if self.monitor:
                self.set_monitor(False)

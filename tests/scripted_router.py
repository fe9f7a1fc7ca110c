"""A small stateful IOS router on top of tests/fakes.py, for unit tests without a socket.

`Box` keeps debugs, crypto conditions, dead-man applets, the logging settings and a log
buffer, and answers the commands the responder and the agent send, so what they leave
behind can be checked, not only what they sent. `StubProfile` stands in for the slow
facts (`show version`, running-config) the responder caches per router.
"""

from __future__ import annotations

import re

from collector.respond.facts import CONFIG_LINES_COMMAND, LOG_HEADER_COMMAND
from tests.fakes import FakeRouters

_LABEL = {"isakmp": "Crypto ISAKMP debugging is on", "ipsec": "Crypto IPSEC debugging is on",
          "ikev2": "IKEv2 default debugging is on"}
AUTH_FAILED = "Command authorization failed.\n"


class Box:
    """One router's crypto debug state, answering through FakeRouters."""

    def __init__(self, routers: FakeRouters, name: str, *, debugs=(), conditions=(), other_debugs=(),
                 buffered_line="logging buffered 16384 informational", buffer_size=16384, buffer_level="informational",
                 aaa=False, eem_version="4.00", cli_username=None, vty=(0, 4), vty_used=1, deny=(),
                 applets=None, ipsec_sa="", log_lines=("*Dec  6 10:00:00.000: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC "
                                          "packet has invalid spi for destaddr=10.0.0.1, prot=50, spi=0x1234ABCD(305441741), "
                                          "srcaddr=10.0.0.2, input interface=Tunnel0",)):
        self.name = name
        self.debugs = set(debugs)
        self.other_debugs = set(other_debugs)
        self.conditions = [str(c) for c in conditions]
        self.buffered_line = buffered_line
        self.buffer_size, self.buffer_level = buffer_size, buffer_level
        self.aaa, self.eem_version, self.cli_username = aaa, eem_version, cli_username
        self.vty, self.vty_used = vty, vty_used
        self.deny = [re.compile(d) for d in deny]
        self.applets: dict[str, list[str]] = dict(applets or {})
        self.log_lines = list(log_lines)
        self.logged = max(10, len(self.log_lines))  # the header's "N messages logged"
        self.condition_removal_works = True
        self.ipsec_sa = ipsec_sa  # `show crypto ipsec sa` (the SA blocks; a NAT-T sender's current_peer)
        self._applet: str | None = None
        routers.router(name).default = self.answer

    # -- rendering -----------------------------------------------------------------------

    def show_debugging(self) -> str:
        lines = []
        if self.debugs:
            lines.append("Cryptographic Subsystem:")
            lines += [f"  {_LABEL[d]}" for d in sorted(self.debugs)]
        lines += [f"{d} debugging is on" for d in sorted(self.other_debugs)]
        return "\n".join(lines) + "\n"

    def show_condition(self) -> str:
        # a made-up wording: the Responder must find the addresses whatever the text around them
        head = f"Crypto conditional debug is {'ON' if self.conditions else 'OFF'}\n"
        return head + "".join(f"  peer filter -> {c} (set)\n" for c in self.conditions)

    def config_lines(self) -> str:
        lines = [self.buffered_line] if self.buffered_line else []
        if self.aaa:
            lines.append("aaa authorization commands 15 default group tacacs+ local")
        for name, body in self.applets.items():
            lines.append(body[0] if body else f"event manager applet {name}")
        if self.cli_username:
            lines.append(f"event manager session cli username {self.cli_username}")
        lines.append(f"line vty {self.vty[0]} {self.vty[1]}")
        return "\n".join(lines) + "\n"

    def show_users(self) -> str:
        rows = ["    Line       User       Host(s)              Idle       Location"]
        rows += [f"{'*' if i == 0 else ' '}{866 + i:>3} vty {i}     admin      idle                 00:00:00 10.9.0.{i}"
                 for i in range(self.vty_used)]
        rows += ["", "  Interface    User               Mode         Idle     Peer Address"]
        return "\n".join(rows) + "\n"

    def header(self) -> str:
        return ("Syslog logging: enabled (0 messages dropped, 0 messages rate-limited)\n"
                "    Console logging: disabled\n    Monitor logging: disabled\n"
                f"    Buffer logging:  level {self.buffer_level}, {self.logged} messages logged, xml disabled,\n"
                f"Log Buffer ({self.buffer_size} bytes):\n")

    # -- the router ----------------------------------------------------------------------

    def answer(self, command: str) -> str:
        if any(d.search(command) for d in self.deny):
            return AUTH_FAILED
        if command.startswith(" ") and self._applet:
            body = self.applets[self._applet]
            if command.startswith(" event "):  # one event per applet: a new one replaces it
                body[:] = [line for line in body if not line.startswith(" event ")]
            body.append(command)
            return ""
        self._applet = None
        fixed = {
            "show processes cpu | include CPU": "CPU utilization for five seconds: 5%/0%; one minute: 4%; five minutes: 3%\n",
            "show debugging": self.show_debugging(),
            "show crypto debug-condition": self.show_condition(),
            CONFIG_LINES_COMMAND: self.config_lines(),
            "show users": self.show_users(),
            "show event manager version": f"Embedded Event Manager Version {self.eem_version}\nComponent Versions:\n",
            "show logging": self.header() + "\n" + "\n".join(self.log_lines) + "\n",
            LOG_HEADER_COMMAND: self.header(),
            "configure terminal": "",
            "show clock": "*10:00:05.000 UTC Sun Dec 6 2026\n",
            "show crypto ipsec sa": self.ipsec_sa,
        }
        if command in fixed:
            return fixed[command]
        if command == "end":  # IOS logs leaving configuration mode
            self.log_lines.append("*Dec  6 10:00:06.000: %SYS-5-CONFIG_I: Configured from console by lab on vty0")
            self.logged += 1
            return ""
        if command.startswith("show logging | include "):  # IOS `include` takes a regex, as Python's here
            pattern = re.compile(command.removeprefix("show logging | include "))
            return "".join(f"{ln}\n" for ln in fixed["show logging"].splitlines() if pattern.search(ln))
        if m := re.fullmatch(r"(no )?debug crypto (isakmp|ikev2|ipsec)", command):
            (self.debugs.discard if m.group(1) else self.debugs.add)(m.group(2))
            return "" if m.group(1) else _LABEL[m.group(2)] + "\n"
        if m := re.fullmatch(r"(no )?debug crypto condition peer ipv4 (\S+)", command):
            if not m.group(1):
                self.conditions.append(m.group(2))
            elif self.condition_removal_works and m.group(2) in self.conditions:
                self.conditions.remove(m.group(2))
            return ""
        if m := re.fullmatch(r"event manager applet (\S+)( authorization bypass)?", command):
            self._applet = m.group(1)
            body = self.applets.setdefault(self._applet, [command])
            body[0] = command
            return ""
        if m := re.fullmatch(r"no event manager applet (\S+)", command):
            return "" if self.applets.pop(m.group(1), None) is not None else "% applet not found\n"
        if m := re.fullmatch(r"show running-config \| section event manager applet (\S+)", command):
            # `| section` keeps every section whose header matches: a name prefix finds them all
            return "".join("\n".join(body) + "\n" for name, body in self.applets.items() if name.startswith(m.group(1)))
        if m := re.fullmatch(r"logging buffered (\d+) (\w+)", command):
            if int(m.group(1)) != self.buffer_size:  # IOS empties the buffer when its size changes
                self.log_lines = []
            self.buffer_size, self.buffer_level = int(m.group(1)), m.group(2)
            self.buffered_line = command
            return ""
        if command.startswith("logging buffered"):
            self.buffered_line = command
            return ""
        if command.startswith("show "):
            return ""
        return "% Invalid input detected at '^' marker.\n"

    def log(self, line: str) -> None:
        """The router logs `line`; with crypto debugs on, a delete-notify debug line follows
        (the IOS-XE form of the real capture in shared/real/debug)."""
        self.log_lines.append(line)
        self.logged += 1
        if self.debugs:
            self.log_lines.append("ISAKMP-ERROR: (0):ignoring request to send delete notify (no ISAKMP sa) "
                                  "src 10.0.0.1 dst 10.0.0.2 for SPI 0x1234ABCD")
            self.logged += 1

    def applet_countdown(self, name: str) -> int:
        line = next(line for line in self.applets[name] if "countdown" in line)
        return int(re.search(r"time (\d+)", line).group(1))

    def applet_commands(self, name: str) -> list[str]:
        commands = {}
        for line in self.applets[name]:
            if m := re.match(r'^ action (\d+) cli command "(.*)"$', line):
                commands[m.group(1)] = m.group(2)
            elif m := re.match(r"^ no action (\d+)$", line):
                commands.pop(m.group(1), None)
        return [commands[k] for k in sorted(commands)]


class StubProfile:
    """The cached router facts the Responder uses: OS family and the IKE version per peer."""

    def __init__(self, ike=None, os_family="iosxe", configured=True, dmvpn=False, running_config=""):
        self.os_family = os_family
        self.running_config = running_config
        self.dmvpn = dmvpn
        self._ike = {str(k): v for k, v in (ike or {}).items()}
        self.configured = configured  # False: a DMVPN hub whose config names no spoke

    def knows_ike_toward(self, peer) -> bool:
        return self.configured

    def ike_toward(self, peer) -> str:
        return self._ike.get(str(peer), "isakmp")

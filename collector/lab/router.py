"""Router: one simulated router, tying its plan, configuration, logs, debugs, EEM and SAs together.

The CLI (shell.py) calls the `cfg_*`, `debug_*` and housekeeping methods below; the SA
model (ipsec.py) calls the `debug_*` event hooks and `log_message`; the transport calls
the public API of lab-contract.md (open_session, syslog_targets, drain_syslog, reboot).
"""

from __future__ import annotations

import ipaddress
import re
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from collector.lab import debug as dbg
from collector.lab import vty
from collector.lab.aaa import TacacsPolicy, parse_policy
from collector.lab.config import (
    ConfigState,
    EndView,
    config_secrets,
    render_running_config,
)
from collector.lab.debug import DebugState
from collector.lab.eem import Applet, parse_action, parse_event, run_variable_action, substitute
from collector.lab.logbuf import DISCRIMINATORS, LEVELS, RouterLog, TimestampFormat
from collector.lab.shell import CliSession, InvalidToken
from collector.lab.topology import UNDER_WAY_SECONDS, Credentials, DpdSetting, RouterSpec

if TYPE_CHECKING:
    from collector.lab.fleet import Fleet
    from collector.lab.ipsec import SaGeneration, TunnelRuntime


@dataclass
class Faults:
    refuse_connections: bool = False  # TCP accepted then closed at once (transport)
    changed_host_key: bool = False  # present a different host key (transport)
    slow_seconds: float = 0.0  # delay before each command's output (transport)
    drop_after_bytes: int | None = None  # close the channel after N bytes of one command's output (transport)
    vty_limit: int = 5  # usable vty lines (set to the `line vty` count at start; lower takes lines away)
    high_cpu: bool = False  # `show processes cpu` reports ~95% (model)
    wrong_password: bool = False  # reject the correct password too (transport)
    vty_held: int = 0  # vty lines held by other people's idle sessions (model, see vty.py)
    tacacs: dict[str, Any] | None = None  # the TACACS+ server's policy (aaa.parse_policy); None: permit all


_IF_TYPES = ("GigabitEthernet", "FastEthernet", "Tunnel", "Loopback", "Virtual-Template", "TenGigabitEthernet")


class Router:
    def __init__(self, spec: RouterSpec, credentials: Credentials, fleet: Fleet):
        self.spec = spec
        self.fleet = fleet
        self.name = spec.name
        self.role = spec.role
        self.site = spec.site
        self.platform = spec.platform.device_type
        self.model = spec.platform.model
        self.username = credentials.username
        self.password = credentials.password
        self.enable_secret = credentials.enable_secret
        self.addresses: list[str] = spec.addresses
        self.syslog_source = spec.syslog_source
        self.faults = Faults()
        self.lock: threading.RLock = fleet.lock
        self.tunnels: list[tuple[TunnelRuntime, int]] = []
        self.ends: list[EndView] = []
        self.flash: dict[str, str] = {}  # flash:NAME -> content (`| append flash:NAME`, more, dir, delete)
        self.flash_written: dict[str, datetime] = {}
        self._sessions: weakref.WeakSet[CliSession] = weakref.WeakSet()
        self._vty = 0
        self.vty_pool = vty.VtyPool()
        self._policy_cache: tuple[Any, TacacsPolicy | None] = (None, None)
        self.eem_runs: list[dict[str, Any]] = []  # what each applet run did (tests, control `state`)
        self._extra_targets: list[tuple[str, int]] = []
        self.reloads = 0
        self._boot(-spec.boot_age, ConfigState.initial(spec))
        self.startup = self.state.copy()
        self.faults.vty_limit = self.state.vty_lines  # the fault can only take lines away
        # someone's own debugging, left on before the lab started (realism "operator-debug")
        for kind in spec.operator_debugs:
            self.debug.on(kind)
        for peer in spec.operator_conditions:
            self.debug.add_peer(peer)

    # -- life cycle --------------------------------------------------------------

    def _boot(self, at: float, state: ConfigState) -> None:
        self.boot_at = at
        self.state = state
        self.debug = DebugState()
        self.log = self._new_log()
        self._conn = 2000 + (self.spec.index * 37) % 500
        self._ike = 1000 + (self.spec.index * 13) % 50
        self._session_no = 0
        self._dpd_seq = 0
        self._eem_depth = 0
        for applet in self.state.applets.values():
            self._register_applet(applet, at)

    def _new_log(self) -> RouterLog:
        s = self.state
        return RouterLog(
            buffer_size=s.buffered_size,
            buffer_level=s.buffered_level,
            console_level=s.console_level,
            monitor_level=s.monitor_level,
            trap_level=s.trap_level,
            hosts=s.hosts,
            log_format=s.log_format,
            debug_format=s.debug_format,
            sequence_numbers=s.sequence_numbers,
            ntp_synced=self.spec.ntp_synced,
            doubled_colon=self.spec.platform.is_xe and self.spec.platform.xe_major >= 17 and s.log_format.show_timezone,
            boot_time=self.fleet.clock.at(self.boot_at),
            xe=self.spec.platform.is_xe,
            discriminator=s.discriminator,
            zone=self.spec.zone,
        )

    def seed_history(self) -> None:
        """Messages a router that has been up for weeks already holds in its buffer."""
        p = self.spec.platform
        b = self.boot_at
        events: list[tuple[float, int, str]] = [
            (b + 38.2, 5, "%SYS-5-RESTART: System restarted --\n" + self._banner_line()),
            (b + 40.1, 3, f"%LINK-3-UPDOWN: Interface {p.wan_if}, changed state to up"),
            (b + 41.1, 5, f"%LINEPROTO-5-UPDOWN: Line protocol on Interface {p.wan_if}, changed state to up"),
            (b + 41.6, 3, f"%LINK-3-UPDOWN: Interface {p.lan_if}, changed state to up"),
            (b + 42.6, 5, f"%LINEPROTO-5-UPDOWN: Line protocol on Interface {p.lan_if}, changed state to up"),
        ]
        if any(t.spec.ike_version == 1 for t, _ in self.tunnels):
            events.append((b + 44.0, 6, "%CRYPTO-6-ISAKMP_ON_OFF: ISAKMP is ON"))
        seen: set[str] = set()
        for tunnel, end in self.tunnels:
            ifname = tunnel.spec.ends[end].tunnel_if
            if ifname and ifname not in seen and not ifname.startswith("Virtual-Template"):
                seen.add(ifname)
                events.append(
                    (
                        b + 60.0 + len(seen),
                        5,
                        f"%LINEPROTO-5-UPDOWN: Line protocol on Interface {ifname}, changed state to up",
                    )
                )
        if self.state.hosts:
            events.append(
                (
                    b + 45.0,
                    6,
                    # worded as the real line in tests/fixtures/real/syslog/ossec_relay_cisco_ios.txt
                    f"%SYS-6-LOGGINGHOST_STARTSTOP: Logging to host {self.state.hosts[0][0]} "
                    "started - CLI initiated",
                )
            )
        change = -3600.0 * (2 + self.spec.index % 40)
        if change > b + 120:
            events.append((change, 5, "%SYS-5-CONFIG_I: Configured from console by admin on vty0 (10.255.255.5)"))
        if self.spec.logging.prefill_bytes:
            # weeks of a busy router's ordinary traffic (traffic.py), up to a few seconds before start
            # (it ends before a desync-under-way began; the fleet's scheduler writes the rest in order)
            span_start = max(b + 300.0, -14 * 86400.0)
            span_end = -UNDER_WAY_SECONDS - 60.0
            events += self.fleet.traffic[self.name].history(span_start, span_end, self.spec.logging.prefill_bytes, self.at)
        for t, severity, text in sorted(events):
            self.log.emit(self.at(t), severity, text)
        self.log.drain_syslog()  # history was sent long ago, not to this lab's collectors
        if self.spec.background:
            self._schedule_background(-UNDER_WAY_SECONDS - 50.0)
        if self.spec.scanned:
            self._schedule_scan(-UNDER_WAY_SECONDS - 50.0)

    def _schedule_scan(self, t: float) -> None:
        self.fleet.scheduler.at(t + self.fleet.traffic[self.name].scan_interval(), self._scan)

    def _scan(self, t: float) -> None:
        """Internet scanners hit the public address: RECVD_PKT_INV_SPI from sources that are no peer."""
        for offset, severity, text in self.fleet.traffic[self.name].scan():
            self.fleet.scheduler.at(t + offset, lambda t2, sv=severity, tx=text: self.log_message(t2, sv, tx))
        self._schedule_scan(t)

    def _schedule_background(self, t: float) -> None:
        traffic = self.fleet.traffic[self.name]
        when = t + traffic.interval()
        self.fleet.scheduler.at(when, self._background)

    def _background(self, t: float) -> None:
        """One ordinary event (a flap, a BGP/OSPF change, a login...), then the next one."""
        for offset, severity, text in self.fleet.traffic[self.name].event(self.at(t)):
            self.fleet.scheduler.at(t + offset, lambda t2, sv=severity, tx=text: self.log_message(t2, sv, tx))
        self._schedule_background(t)

    def reboot(self) -> None:
        """Reload: running-config back to startup, debugs/conditions/log gone, all SAs renegotiate."""
        with self.lock:
            self.advance()
            t = self.now()
            for session in list(self._sessions):
                session.close()
            self.reloads += 1
            self._boot(t, self.startup.copy())
            self.log.emit(self.at(t), 5, "%SYS-5-RESTART: System restarted --\n" + self._banner_line())
            for tunnel, end in self.tunnels:
                tunnel.lose_end(t, end)
                epoch = tunnel.epoch
                self.fleet.scheduler.at(
                    t + 5.0, lambda t2, tn=tunnel, ep=epoch: ep == tn.epoch and tn.renegotiate(t2, "reboot")
                )

    def _banner_line(self) -> str:
        p = self.spec.platform
        return f"Cisco IOS Software, {p.software} ({p.image_name}), Version {p.version}, RELEASE SOFTWARE (fc1)"

    # -- time ---------------------------------------------------------------------

    def now(self) -> float:
        return self.fleet.clock.elapsed()

    def at(self, t: float) -> datetime:
        return self.fleet.clock.at(t)

    def advance(self) -> None:
        self.fleet.tick()

    @property
    def hostname(self) -> str:
        """The device's `hostname` (prompts, running-config); `name` stays the lab's key for it."""
        return self.state.hostname or self.name

    @property
    def is_xe(self) -> bool:
        return self.spec.platform.is_xe

    @property
    def family(self) -> str:
        return self.spec.platform.family

    # -- contract API -------------------------------------------------------------

    def open_session(
        self, *, user: str | None = None, source: str = "127.0.0.1", vty_line: int | None = None
    ) -> CliSession:
        """A CLI session; `vty_line` is the line the transport took with vty_take (else none is held)."""
        with self.lock:
            if vty_line is None:
                name = f"vty{self._vty}"
                self._vty = (self._vty + 1) % 5
            else:
                name = f"vty{vty_line}"
            session = CliSession(self, user=user, line=name, source=source)
            holder = self.vty_pool.lines.get(vty_line) if vty_line is not None else None
            if holder is not None:
                holder.user, holder.location, holder.session = session.user, source, session
                holder.last_input = self.now()
            self._sessions.add(session)
            return session

    # -- vty lines -------------------------------------------------------------------

    def vty_capacity(self) -> int:
        """Lines usable now: `line vty 0 N`, fewer if the vty_limit fault says so."""
        return max(0, min(self.state.vty_lines, self.faults.vty_limit))

    def _vty_sync(self) -> int:
        capacity = self.vty_capacity()
        self.vty_pool.sync_held(capacity, self.faults.vty_held, self.now())
        return capacity

    def vty_take(self, kind: str, user: str = "", location: str = "") -> int | None:
        """Hold a free vty line (SSH accept, EEM cli); None when every line is held."""
        with self.lock:
            capacity = self._vty_sync()
            return self.vty_pool.take(capacity, vty.Holder(kind, user, location, self.now()))

    def vty_release(self, line: int) -> None:
        with self.lock:
            self.vty_pool.release(line)
            self._vty_sync()

    def vty_free(self) -> int:
        with self.lock:
            return self.vty_pool.free(self._vty_sync())

    def show_users(self, session: CliSession) -> str:
        self._vty_sync()
        return vty.show_users(self.vty_pool, session, self.now())

    def command_started(self, session: CliSession) -> None:
        """Idle time in `show users` counts from a session's last command."""
        for holder in self.vty_pool.lines.values():
            if holder.session is session:
                holder.last_input = self.now()

    # -- AAA ----------------------------------------------------------------------------

    def tacacs_policy(self) -> TacacsPolicy | None:
        raw = self.faults.tacacs
        cached_raw, policy = self._policy_cache
        if raw is not cached_raw:
            policy = parse_policy(raw)
            self._policy_cache = (raw, policy)
        return policy

    def authorized(self, session: CliSession, command: str, level: int | None) -> bool:
        """Would the TACACS+ server let this session run `command` (level None: a config command)?"""
        aaa = self.state.aaa
        if not (aaa.authorizes_config() if level is None else aaa.asks_server(level)):
            return True
        if session.internal:
            applet = self.state.applets.get(session.internal)
            if applet is not None and "bypass" in applet.header_options.split():
                return True
        if not session.user:
            return False  # EEM with no `event manager session cli username`: nobody to authorize
        policy = self.tacacs_policy()
        return policy is None or policy.permits(session.user, command)

    def syslog_targets(self) -> list[tuple[str, int]]:
        """Loopback `logging host` entries plus targets the lab added; never anything else."""
        out: list[tuple[str, int]] = []
        for host, port in [*self.state.hosts, *self._extra_targets, *self.fleet.syslog_targets]:
            if ipaddress.ip_address(host).is_loopback and (host, port) not in out:
                out.append((host, port))
        return out

    def add_syslog_target(self, host: str, port: int) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"lab syslog target {host} is not a loopback address")
        if (host, port) not in self._extra_targets:
            self._extra_targets.append((host, port))

    def drain_syslog(self) -> list[str]:
        with self.lock:
            return self.log.drain_syslog()

    def drain_syslog_timed(self) -> list[tuple[datetime, str]]:
        with self.lock:
            return self.log.drain_syslog_timed()

    def secrets(self) -> list[str]:
        """Every secret in this router's running-config (tests check that bundles redact them)."""
        return config_secrets(self.spec, self.ends)

    def state_snapshot(self) -> dict[str, Any]:
        with self.lock:
            self._vty_sync()
            return {
                "name": self.name,
                "debug": self.debug.snapshot(),
                "logging": self.log.snapshot_settings(),
                "invalid_spi_recovery": self.state.invalid_spi_recovery,
                "isakmp_keepalive": self.state.isakmp_keepalive,
                "applets": sorted(self.state.applets),
                "hostname": self.hostname,
                "vty_lines": self.state.vty_lines,
                "vty_in_use": sorted(self.vty_pool.lines),
                "eem_runs": list(self.eem_runs[-20:]),
                "flash": sorted(self.flash),
                "reloads": self.reloads,
            }

    # control.py looks for `debug_snapshot` / `state`
    debug_snapshot = state_snapshot

    # -- logging --------------------------------------------------------------------

    def log_message(self, t: float, severity: int, text: str) -> None:
        self.log.emit(self.at(t), severity, text)
        # messages logged while an applet runs are not fed back to syslog detectors (EEM)
        if text.startswith("%") and self.state.applets and self._eem_depth == 0:
            self._syslog_applets(t, text)

    def emit_debug(self, t: float, peer: str, lines: list[tuple[str, str]]) -> None:
        """Print the lines whose debug is armed for `peer` (conditions apply)."""
        if not self.debug.armed:
            return
        step = 0
        for kind, text in lines:
            if self.debug.wants(kind, peer, text):
                self.log.emit(self.at(t + step * 0.001), 7, text, debug=True)
                step += 1

    def monitor_changed(self, session: CliSession) -> None:
        sinks = [s.monitor_lines for s in self._sessions if s.monitor and not s.closed]
        self.log.monitor_sinks = sinks

    def write_file(self, path: str, text: str, append: bool) -> None:
        path = _flash_path(path)
        self.flash[path] = (self.flash.get(path, "") if append else "") + text
        self.flash_written[path] = self.at(self.now())

    def delete_file(self, session: CliSession, force: bool, path: str) -> str:
        name = _flash_path(path)
        if name not in self.flash:
            return f"%Error deleting {path} (No such file or directory)\n"

        def do() -> str:
            self.flash.pop(name, None)
            self.flash_written.pop(name, None)
            return ""

        if force:
            return do()
        short = name.removeprefix("flash:")

        def confirm_file() -> str:
            session.confirm(f"Delete flash:/{short}? [confirm]", do)
            return ""

        session.confirm(f"Delete filename [{short}]? ", confirm_file)
        return ""

    # -- ids --------------------------------------------------------------------------

    def alloc_conn_id(self) -> int:
        self._conn += 1
        return self._conn

    def alloc_ike_id(self) -> int:
        self._ike += 1
        return self._ike

    def alloc_session_id(self) -> int:
        self._session_no += 1
        return self._session_no

    # -- SA model hooks ------------------------------------------------------------------

    def _peer(self, tunnel: TunnelRuntime, end: int) -> str:
        return tunnel.spec.ends[1 - end].public_addr

    def _port(self, tunnel: TunnelRuntime) -> int:
        return 4500 if tunnel.spec.nat_t else 500

    def debug_rekey(
        self, t: float, tunnel: TunnelRuntime, end: int, initiator: bool, old: SaGeneration | None, gen: SaGeneration
    ) -> None:
        if not self.debug.armed:
            return
        state = tunnel.ends[end]
        ike = state.ike
        lines = dbg.rekey_lines(
            self.family,
            tunnel.spec.ike_version,
            initiator=initiator,
            conn=ike.conn[end] if ike else 0,
            session=ike.session[end] if ike else 0,
            node=tunnel.rng.getrandbits(32),
            local=tunnel.spec.ends[end].local_addr,
            peer=self._peer(tunnel, end),
            port=self._port(tunnel),
            interface=tunnel.spec.ends[end].interface,
            spi_in=gen.spi_in[end],
            spi_out=gen.spi_in[1 - end],
            old_spi_in=old.spi_in[end] if old else None,
        )
        self.emit_debug(t, self._peer(tunnel, end), lines)

    def debug_renegotiate(self, t: float, tunnel: TunnelRuntime, end: int, reason: str, gen: SaGeneration) -> None:
        if not self.debug.armed:
            return
        ike = tunnel.ends[end].ike
        initiator = ike is not None and ike.initiator == end
        lines = dbg.renegotiate_lines(
            self.family,
            tunnel.spec.ike_version,
            initiator=initiator,
            conn=ike.conn[end] if ike else 0,
            session=ike.session[end] if ike else 0,
            local=tunnel.spec.ends[end].local_addr,
            peer=self._peer(tunnel, end),
            port=self._port(tunnel),
            interface=tunnel.spec.ends[end].interface,
            spi_in=gen.spi_in[end],
        )
        if reason == "invalid-spi-recovery" and initiator and tunnel.spec.ike_version == 1:
            lines = lines[3:]  # the recovery lines already showed Main Mode starting
        self.emit_debug(t, self._peer(tunnel, end), lines)

    def debug_no_ike_sa(self, t: float, tunnel: TunnelRuntime, end: int, spi: int) -> None:
        lines = dbg.no_ike_sa_lines(
            self.family, tunnel.spec.ike_version, tunnel.spec.ends[end].local_addr, self._peer(tunnel, end), spi
        )
        self.emit_debug(t, self._peer(tunnel, end), lines)

    def debug_recovery(self, t: float, tunnel: TunnelRuntime, end: int, spi: int) -> None:
        lines = dbg.recovery_lines(
            self.family, tunnel.spec.ends[end].local_addr, self._peer(tunnel, end), self._port(tunnel), spi
        )
        self.emit_debug(t, self._peer(tunnel, end), lines)

    def debug_sender_chatter(self, t: float, tunnel: TunnelRuntime, end: int, spi_out: int) -> None:
        if not self.debug.armed:
            return
        state = tunnel.ends[end]
        ike = state.ike
        self._dpd_seq += 1
        lines = dbg.sender_chatter_lines(
            self.family,
            tunnel.spec.ike_version,
            conn=ike.conn[end] if ike else 0,
            session=ike.session[end] if ike else 0,
            peer=self._peer(tunnel, end),
            port=self._port(tunnel),
            spi_out=spi_out,
            remaining=state.sa.remaining(t) if state.sa else 0,
            dpd=tunnel.dpd_of(end) is not None,
            seq=self._dpd_seq,
        )
        self.emit_debug(t, self._peer(tunnel, end), lines)

    def debug_dpd_teardown(self, t: float, tunnel: TunnelRuntime, end: int) -> None:
        ike = tunnel.ends[end].ike
        lines = dbg.dpd_teardown_lines(
            self.family,
            tunnel.spec.ike_version,
            conn=ike.conn[end] if ike else 0,
            session=ike.session[end] if ike else 0,
            peer=self._peer(tunnel, end),
        )
        self.emit_debug(t, self._peer(tunnel, end), lines)

    # -- CLI: debug ---------------------------------------------------------------------

    def debug_set(self, session: CliSession, kind: str, on: bool) -> str:
        return self.debug.on(kind) if on else self.debug.off(kind)

    def debug_condition(self, session: CliSession, on: bool, peer: str) -> str:
        return self.debug.add_peer(peer) if on else self.debug.remove_peer(peer)

    def debug_condition_reset(self, session: CliSession) -> str:
        return self.debug.reset()

    def debug_all_off(self, session: CliSession) -> str:
        return self.debug.all_off()

    # -- CLI: exec housekeeping ---------------------------------------------------------------

    def clear_logging(self, session: CliSession) -> str:
        def do() -> str:
            self.log.clear()
            return ""

        session.confirm("Clear logging buffer [confirm]", do)
        return ""

    def clear_crypto(self, session: CliSession, peer: str | None) -> str:
        t = self.now()
        for tunnel, end in self.tunnels:
            if peer is None or tunnel.spec.ends[1 - end].public_addr == peer:
                tunnel.renegotiate(t + 1.0, "clear")
        return ""

    def write_memory(self, session: CliSession) -> str:
        self.startup = self.state.copy()
        return "Building configuration...\n[OK]\n"

    def copy_run_start(self, session: CliSession) -> str:
        def do() -> str:
            self.startup = self.state.copy()
            return "Building configuration...\n[OK]\n"

        session.confirm("Destination filename [startup-config]? ", do)
        return ""

    def more_file(self, session: CliSession, path: str) -> str:
        if _flash_path(path) not in self.flash:
            return f"%Error opening {path} (File not found)\n"
        return self.flash[_flash_path(path)]

    def running_config(self) -> str:
        return render_running_config(self.spec, self.state, self.ends, username=self.username, now=self.at(self.now()))

    def startup_config(self) -> str:
        return render_running_config(
            self.spec, self.startup, self.ends, username=self.username, now=self.at(self.now()), startup=True
        )

    # -- CLI: configuration ------------------------------------------------------------------

    def _changed(self, session: CliSession) -> None:
        self.state.last_change = self.at(self.now()).replace(microsecond=0)
        self.state.last_change_by = session.user if not session.internal else ""

    def config_session_done(self, session: CliSession) -> None:
        who = f"console by {session.user} on {session.line} ({session.source})"
        if session.internal:
            who = f"console by {session.user} on {session.line} (EEM:{session.internal})"
        self.log_message(self.now(), 5, f"%SYS-5-CONFIG_I: Configured from {who}")

    def config_submode_done(self, session: CliSession) -> None:
        if session.mode == "config-applet" and session.submode_target in self.state.applets:
            self._register_applet(self.state.applets[session.submode_target], self.now())

    def resolve_interface(self, text: str) -> str | None:
        names = {self.spec.platform.wan_if, self.spec.platform.lan_if, "Loopback0"}
        names |= {e.me.tunnel_if for e in self.ends if e.me.tunnel_if}
        lower = text.lower()
        for name in names:
            if name.lower() == lower:
                return name
        for prefix in _IF_TYPES:
            for i in range(2, len(prefix) + 1):
                if lower.startswith(prefix[:i].lower()) and lower[i : i + 1].isdigit():
                    candidate = prefix + text[i:]
                    if candidate in names:
                        return candidate
        return None

    def set_description(self, session: CliSession, interface: str | None, text: str | None) -> str:
        if interface is None:
            return ""
        if text is None:
            self.state.descriptions[interface] = ""
        else:
            self.state.descriptions[interface] = text
        self._changed(session)
        return ""

    def _sync_log_settings(self) -> None:
        s, log = self.state, self.log
        log.console.level = None if s.console_level is None else _lvl(s.console_level)
        log.monitor.level = None if s.monitor_level is None else _lvl(s.monitor_level)
        log.trap.level = _lvl(s.trap_level)
        log.hosts = list(s.hosts)
        log.log_format = s.log_format
        log.debug_format = s.debug_format
        log.sequence_numbers = s.sequence_numbers

    def cfg_logging_buffered(
        self, session: CliSession, size: int | None, level: str | None, discriminator: str | None = None
    ) -> str:
        """`logging buffered [discriminator NAME] [SIZE] [LEVEL]`: the line is replaced whole,
        so a command without `discriminator` drops the filter (as IOS does)."""
        self.log.set_buffered(size, level)
        self.log.discriminator = discriminator
        self.log.discriminator_drops = DISCRIMINATORS.get(discriminator or "")
        self.state.discriminator = discriminator
        self.state.buffered_size = self.log.buffer_size
        self.state.buffered_level = level or "debugging"
        self._changed(session)
        return ""

    def cfg_logging_off(self, session: CliSession, dest: str) -> str:
        if dest == "buffered":
            self.log.disable_buffered()
            self.state.buffered_level = None
        elif dest == "console":
            self.state.console_level = None
        elif dest == "monitor":
            self.state.monitor_level = None
        self._sync_log_settings()
        self._changed(session)
        return ""

    def cfg_logging_level(self, session: CliSession, dest: str, level: str) -> str:
        setattr(self.state, f"{dest}_level", level)
        self._sync_log_settings()
        self._changed(session)
        return ""

    def cfg_logging_host(self, session: CliSession, host: str, port: int, add: bool) -> str:
        hosts = [(h, p) for h, p in self.state.hosts if h != host]
        if add:
            hosts.append((host, port))
        self.state.hosts = hosts
        self._sync_log_settings()
        self._changed(session)
        return ""

    def cfg_invalid_spi_recovery(self, session: CliSession, on: bool) -> str:
        self.state.invalid_spi_recovery = on
        self._changed(session)
        return ""

    def cfg_keepalive(
        self, session: CliSession, interval: int, retries: int | None = None, mode: str | None = None
    ) -> str:
        self.state.isakmp_keepalive = DpdSetting(interval, retries if retries is not None else 2, mode or "on-demand")
        self._changed(session)
        return ""

    def cfg_keepalive_off(self, session: CliSession) -> str:
        self.state.isakmp_keepalive = None
        self._changed(session)
        return ""

    def cfg_hostname(self, session: CliSession, name: str) -> str:
        if len(name) > MAX_HOSTNAME:
            raise InvalidToken(1)  # reconstructed: no public capture of a too-long name
        self.state.hostname = name
        self._changed(session)
        # Real captures (`host 1`, `hostname IT@L3`): IOS warns and still takes the name.
        return "" if HOSTNAME_RE.fullmatch(name) else "% Hostname contains one or more illegal characters.\n\n"

    def cfg_aaa_commands(self, session: CliSession, level: int, methods: str | None) -> str:
        if methods is None:
            self.state.aaa.commands.pop(level, None)
        else:
            self.state.aaa.commands[level] = " ".join(methods.split())
        self._changed(session)
        return ""

    def cfg_aaa_config_commands(self, session: CliSession, on: bool) -> str:
        self.state.aaa.config_commands = on
        self._changed(session)
        return ""

    def cfg_line_vty(self, session: CliSession, first: int, last: int) -> str:
        # `line vty 0 N` adds lines; IOS never removes lines this way, and neither does the lab
        if first == 0 and last + 1 > self.state.vty_lines:
            if self.faults.vty_limit == self.state.vty_lines:
                self.faults.vty_limit = last + 1
            self.state.vty_lines = last + 1
            self._changed(session)
        return ""

    def dir_flash(self, session: CliSession) -> str:
        files = sorted(self.flash.items())
        out = ["Directory of flash:/", ""]
        for n, (name, text) in enumerate(files, 1):
            written = self.flash_written.get(name) or self.at(self.now())
            stamp = f"{written:%b} {written.day} {written:%Y %H:%M:%S} +00:00"
            out.append(f"{n:>5}  -rw-{len(text.encode()):>12}  {stamp}  {name.removeprefix('flash:')}")
        used = sum(len(t.encode()) for _, t in files)
        out += ["", f"{FLASH_BYTES} bytes total ({FLASH_BYTES - used} bytes free)", ""]
        return "\n".join(out)

    def cfg_eem_username(self, session: CliSession, user: str | None) -> str:
        self.state.eem_cli_username = user
        self._changed(session)
        return ""

    def cfg_sequence_numbers(self, session: CliSession, on: bool) -> str:
        self.state.sequence_numbers = on
        self._sync_log_settings()
        self._changed(session)
        return ""

    def cfg_timestamps(self, session: CliSession, on: bool, text: str) -> str:
        words = text.split()
        which_all = ("debug", "log")
        if not words:
            targets = which_all
        else:
            match = [w for w in which_all if w.startswith(words[0].lower())]
            if len(match) != 1:
                raise InvalidToken(2 if on else 3)
            targets = (match[0],)
        if not on:
            for which in targets:
                setattr(self.state, f"{which}_format", TimestampFormat("none"))
        else:
            if len(targets) != 1 or len(words) < 2:
                return "% Incomplete command.\n\n"
            kind_words = [k for k in ("datetime", "uptime") if k.startswith(words[1].lower())]
            if len(kind_words) != 1:
                raise InvalidToken(3)
            if kind_words[0] == "uptime":
                fmt = TimestampFormat("uptime")
            else:
                opts: set[str] = set()
                for i, w in enumerate(words[2:]):
                    found = [o for o in ("msec", "localtime", "show-timezone", "year") if o.startswith(w.lower())]
                    if len(found) != 1:
                        raise InvalidToken(4 + i)
                    opts.add(found[0])
                fmt = TimestampFormat(
                    "datetime",
                    msec="msec" in opts,
                    localtime="localtime" in opts,
                    show_timezone="show-timezone" in opts,
                    year="year" in opts,
                )
            setattr(self.state, f"{targets[0]}_format", fmt)
        self._sync_log_settings()
        self._changed(session)
        return ""

    # -- EEM --------------------------------------------------------------------------

    def applet_begin(self, session: CliSession, name: str, options: str) -> None:
        applet = self.state.applets.get(name)
        if applet is None:
            applet = Applet(name, options)
            self.state.applets[name] = applet
        elif options:
            applet.header_options = options
        self._changed(session)

    def applet_event(self, session: CliSession, name: str | None, text: str) -> None:
        applet = self.state.applets[name or ""]
        applet.event = parse_event(text)
        self._changed(session)

    def applet_action(self, session: CliSession, name: str | None, text: str) -> None:
        applet = self.state.applets[name or ""]
        action = parse_action(text)
        applet.actions[action.label] = action
        self._changed(session)

    def applet_remove_action(self, session: CliSession, name: str | None, label: str) -> None:
        applet = self.state.applets[name or ""]
        applet.actions.pop(label, None)
        self._changed(session)

    def applet_description(self, session: CliSession, name: str | None, text: str) -> None:
        self.state.applets[name or ""].description = text
        self._changed(session)

    def applet_remove(self, session: CliSession, name: str) -> str:
        applet = self.state.applets.pop(name, None)
        if applet is not None:
            applet.due = None
        self._changed(session)
        return ""

    def _register_applet(self, applet: Applet, t: float) -> None:
        """(Re)arm an applet's countdown when it is committed (leaving applet mode, boot)."""
        event = applet.event
        if event is None or event.countdown is None:
            applet.due = None
            return
        due = t + event.countdown
        applet.due = due
        self.fleet.scheduler.at(due, lambda t2, a=applet, d=due: self._countdown_fired(t2, a, d))

    def _countdown_fired(self, t: float, applet: Applet, due: float) -> None:
        if applet.due != due or self.state.applets.get(applet.name) is not applet:
            return  # re-registered, removed, or lost in a reboot
        applet.due = None
        self.run_applet(t, applet)

    def _syslog_applets(self, t: float, text: str) -> None:
        for applet in list(self.state.applets.values()):
            event = applet.event
            if event is None or event.pattern is None:
                continue
            if not re.search(event.pattern, text):
                continue
            applet.matches.append(t)
            if event.period is not None:
                applet.matches = [m for m in applet.matches if m > t - event.period]
            if len(applet.matches) >= event.occurs:
                applet.matches.clear()
                self.run_applet(t, applet, {"_syslog_msg": text})

    def run_applet(self, t: float, applet: Applet, variables: dict[str, str] | None = None) -> None:
        """Run the actions in label order; cli actions share one session on a vty line of the pool.

        The session starts in user EXEC as `event manager session cli username` (or nobody);
        with no vty line free the first cli action fails and the applet stops there.
        """
        user = self.state.eem_cli_username or ""
        variables = dict(variables or {})
        session: CliSession | None = None
        line: int | None = None
        run: dict[str, Any] = {"applet": applet.name, "at": self.at(t).isoformat(), "actions": [], "error": None}
        self.eem_runs.append(run)
        del self.eem_runs[:-100]
        self._eem_depth += 1
        try:
            for action in applet.ordered_actions():
                if action.kind == "cli" and action.argument is not None:
                    if session is None:
                        line = self.vty_take("eem", user, "")
                        if line is None:
                            self._eem_cli_failed(t, applet, action.label, run)
                            return
                        session = CliSession(self, user=user, line=f"vty{line}", internal=applet.name)
                        run["vty_line"] = line
                        self.vty_pool.lines[line].session = session
                    command = substitute(action.argument, variables)
                    output = session.execute(command)
                    variables["_cli_result"] = output
                    run["actions"].append({"label": action.label, "cli": command, "output": output})
                elif action.kind == "syslog" and action.argument is not None:
                    message = substitute(action.argument, variables)
                    self.log_message(t, 6, f"%HA_EM-6-LOG: {applet.name}: {message}")
                    run["actions"].append({"label": action.label, "syslog": message})
                else:
                    run_variable_action(action, variables)
            if session is not None and session.mode.startswith("config"):
                session.leave_config()
        finally:
            self._eem_depth -= 1
            if line is not None:
                self.vty_release(line)

    def _eem_cli_failed(self, t: float, applet: Applet, label: str, run: dict[str, Any]) -> None:
        # Reconstructed wording (no public capture): the CLI library could not get a tty line.
        run["error"] = "no vty line free"
        self.log_message(
            t, 3, "%HA_EM-3-FMPD_CLI_CONNECT: Unable to establish CLI session: no tty lines available"
        )
        self.log_message(t, 3, f"%HA_EM-3-FMPD_ERROR: Error executing applet {applet.name} statement {label}")


def _lvl(name: str) -> int:
    return LEVELS[name]


MAX_HOSTNAME = 63
# letters, digits, dashes and dots; a letter first (a digit first draws IOS's warning: `host 1`)
HOSTNAME_RE = re.compile(r"[A-Za-z]([A-Za-z0-9.-]*[A-Za-z0-9])?")
FLASH_BYTES = 256_487_424


def _flash_path(path: str) -> str:
    """`flash:x`, `flash:/x` and `flash:/x` are one file."""
    if path.lower().startswith("flash:"):
        return "flash:" + path[6:].lstrip("/")
    return path

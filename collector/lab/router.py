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
from collector.lab.config import (
    ConfigState,
    EndView,
    config_secrets,
    render_running_config,
)
from collector.lab.debug import DebugState
from collector.lab.eem import Applet, parse_action, parse_event
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
    vty_limit: int = 5  # concurrent SSH sessions; beyond -> refused like IOS (transport)
    high_cpu: bool = False  # `show processes cpu` reports ~95% (model)
    wrong_password: bool = False  # reject the correct password too (transport)


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
        self.flash: dict[str, str] = {}
        self._sessions: weakref.WeakSet[CliSession] = weakref.WeakSet()
        self._vty = 0
        self._extra_targets: list[tuple[str, int]] = []
        self.reloads = 0
        self._boot(-spec.boot_age, ConfigState.initial(spec))
        self.startup = self.state.copy()
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
                    f"%SYS-6-LOGGINGHOST_STARTSTOP: Logging to host {self.state.hosts[0][0]} "
                    "port 514 started - CLI initiated",
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
    def is_xe(self) -> bool:
        return self.spec.platform.is_xe

    @property
    def family(self) -> str:
        return self.spec.platform.family

    # -- contract API -------------------------------------------------------------

    def open_session(self, *, user: str | None = None, source: str = "127.0.0.1") -> CliSession:
        with self.lock:
            session = CliSession(self, user=user, line=f"vty{self._vty}", source=source)
            self._vty = (self._vty + 1) % 5
            self._sessions.add(session)
            return session

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

    def secrets(self) -> list[str]:
        """Every secret in this router's running-config (tests check that bundles redact them)."""
        return config_secrets(self.spec, self.ends)

    def state_snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "name": self.name,
                "debug": self.debug.snapshot(),
                "logging": self.log.snapshot_settings(),
                "invalid_spi_recovery": self.state.invalid_spi_recovery,
                "isakmp_keepalive": self.state.isakmp_keepalive,
                "applets": sorted(self.state.applets),
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
        self.flash[path] = (self.flash.get(path, "") if append else "") + text

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
        if path not in self.flash:
            return f"%Error opening {path} (File not found)\n"
        return self.flash[path]

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
            who = f"console by  on {session.line} (EEM:{session.internal})"
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
                self.run_applet(t, applet)

    def run_applet(self, t: float, applet: Applet) -> None:
        """Run the actions in label order; cli actions share one fresh session."""
        session = CliSession(self, user="", line="vty0", internal=applet.name)
        self._eem_depth += 1
        try:
            for action in applet.ordered_actions():
                if action.kind == "cli" and action.argument is not None:
                    session.execute(action.argument)
                elif action.kind == "syslog" and action.argument is not None:
                    self.log_message(t, 6, f"%HA_EM-6-LOG: {applet.name}: {action.argument}")
            if session.mode.startswith("config"):
                session.leave_config()
        finally:
            self._eem_depth -= 1


def _lvl(name: str) -> int:
    return LEVELS[name]

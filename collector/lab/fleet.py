"""Fleet: the routers of one lab, their shared clock and the event queue that drives them.

The model advances lazily: `tick()` runs every scheduled event whose lab time has come
(rekeys, desync log lines, DPD, EEM countdowns), in time order across the whole fleet,
with each event stamped with its own lab time. Stepping the clock by 120 s and ticking
once therefore yields exactly the log lines of those two lab minutes.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from collector.lab.clock import LabClock
from collector.lab.config import EndView
from collector.lab.ipsec import TunnelRuntime
from collector.lab.router import Faults, Router
from collector.lab.traffic import Traffic
from collector.lab.topology import (
    CONFIG_ONLY_KINDS,
    FleetPlan,
    ScenarioSpec,
    TunnelInfo,
    build_plan,
    parse_scenarios,
    tunnel_info,
)

__all__ = ["Fleet", "Faults", "Router", "ScenarioSpec", "TunnelInfo", "parse_scenarios"]


class Scheduler:
    """A min-heap of (lab seconds, callback(t))."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = itertools.count()

    def at(self, when: float, callback: Callable[[float], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), callback))

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> tuple[float, Callable[[float], None]] | None:
        if self._heap and self._heap[0][0] <= now:
            when, _, cb = heapq.heappop(self._heap)
            return when, cb
        return None

    def __len__(self) -> int:
        return len(self._heap)


class Fleet:
    def __init__(self, plan: FleetPlan, clock: LabClock):
        self.plan = plan
        self.clock = clock
        self.lock = threading.RLock()
        self.scheduler = Scheduler()
        self.syslog_targets: list[tuple[str, int]] = []
        self._ticking = False
        self.routers: dict[str, Router] = {}
        self.traffic: dict[str, Traffic] = {}
        for spec in plan.routers:
            self.routers[spec.name] = Router(spec, plan.credentials, self)
        self.tunnels: dict[str, TunnelRuntime] = {}
        config_only: list[tuple[str, EndView]] = []
        for t in plan.tunnels:
            if t.kind in CONFIG_ONLY_KINDS:  # configuration and NHRP cache only, no SAs
                config_only += [(e.router, EndView(t, end)) for end, e in enumerate(t.ends)]
                continue
            a, b = (self.routers[e.router] for e in t.ends)
            runtime = TunnelRuntime(t, (a, b), self.scheduler, plan.seed)
            self.tunnels[t.id] = runtime
            for end, router in enumerate((a, b)):
                router.tunnels.append((runtime, end))
                router.ends.append(EndView(t, end))
        # after every modelled end: `router.ends[:len(router.tunnels)]` pairs with `router.tunnels`
        for name, view in config_only:
            self.routers[name].ends.append(view)
        for router in self.routers.values():
            self.traffic[router.name] = Traffic(router.spec, [(t.spec, e) for t, e in router.tunnels], plan.seed)
            router.seed_history()
        # what happened in the minutes before start (a desync under way, ordinary traffic)
        # is in the buffers now; its syslog was sent back then, not to this lab's collectors
        self.tick()
        for router in self.routers.values():
            router.log.drain_syslog()

    @classmethod
    def build(
        cls,
        routers: int = 6,
        scenarios: list[str] | None = None,
        *,
        seed: int = 0,
        time_scale: float = 1.0,
        start: datetime | None = None,
        realism: str | frozenset[str] | None = None,
    ) -> Fleet:
        """Plan and build a lab. ValueError (one clear line) for impossible requests.

        `realism`: None = topology.DEFAULT_REALISM; "all", "none" or a comma list.
        """
        plan = build_plan(routers, list(scenarios or []), seed, realism)
        return cls(plan, LabClock(start, time_scale))

    # -- running -----------------------------------------------------------------

    def tick(self) -> None:
        """Run every event due by clock.now(); cheap when nothing is due."""
        now = self.clock.elapsed()
        due = self.scheduler.next_due()
        if due is None or due > now:
            return
        with self.lock:
            if self._ticking:  # an EEM applet's CLI session ticks while we are ticking
                return
            self._ticking = True
            try:
                while True:
                    item = self.scheduler.pop_due(now)
                    if item is None:
                        break
                    when, callback = item
                    callback(when)
            finally:
                self._ticking = False

    # -- for tests, the control API and the transport -------------------------------------

    def pairs(self) -> list[TunnelInfo]:
        return [tunnel_info(t, self.plan.by_name) for t in self.plan.tunnels if t.kind not in CONFIG_ONLY_KINDS]

    def add_syslog_target(self, host: str, port: int) -> None:
        """A loopback UDP target every router sends its syslog to (lab --syslog-to)."""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"lab syslog target {host} is not a loopback address")
        if (host, port) not in self.syslog_targets:
            self.syslog_targets.append((host, port))

    def inventory_data(
        self, host: str = "127.0.0.1", ports: dict[str, int] | None = None, base_port: int | None = None
    ) -> dict[str, dict[str, Any]]:
        """Inventory entries per router name. Port rule: router i (0-based, insertion order) -> base_port + i.
        With `ports`, only the routers it names (a lab process serving one site)."""
        if ports is None:
            if base_port is None:
                raise ValueError("inventory_data needs ports or base_port")
            ports = {name: base_port + i for i, name in enumerate(self.routers)}
        out: dict[str, dict[str, Any]] = {}
        for name, r in self.routers.items():
            if name not in ports:
                continue
            out[name] = {
                "hostname": host,
                "port": ports[name],
                "platform": r.platform,
                "username": r.username,
                "password": r.password,
                "secret": r.enable_secret,
                "groups": ["lab", "hubs" if r.role == "hub" else "spokes"],
                "site": r.site,
                "addresses": [*r.addresses, r.syslog_source],
                "data": {"model": r.model, "role": r.role},
            }
        return out

    def tunnel(self, tunnel_id: str) -> TunnelRuntime:
        return self.tunnels[tunnel_id]

"""Count occurrences per flow, EEM style: `occurs N within T`, anchored at the first one.

The tracker is the arithmetic behind the 116005 design (docs/domain.md §1): the first
occurrence of a flow opens a window of length `within` and is the moment to ARM (the
debugs must already be running when the cause repeats); the N-th occurrence inside that
window is the moment to CAPTURE. A window that closes below N was a rekey transient.

Keys are any hashable value the agent chooses: a `Flow` for invalid-SPI, a tuple of
validated field values for other playbooks. `encode_key`/`decode_key` turn both into text
for the state store.

The tracker is a plain value machine: no I/O, no clock, no locks. The caller passes the
time, serialises access (one agent thread owns it) and persists `snapshot()` through
`collector.state`. Memory is bounded: event ids are forgotten after `dedupe_horizon`
and beyond `max_event_ids`; flows are dropped when their window ends and the oldest
window is evicted beyond `max_flows`.
"""

from __future__ import annotations

import enum
import json
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from ipaddress import ip_address
from typing import Hashable, TypeAlias

from collector.detect.events import Flow

#: A tracker key: a Flow, or a tuple of plain field values (str/int) for generic playbooks.
TrackerKey: TypeAlias = Hashable
#: The two routers at the ends of a tunnel (inventory names), unordered.
Pair: TypeAlias = frozenset[str]


class Decision(enum.Enum):
    """What the agent should do with one observation."""

    FIRST = "first"  # first occurrence in a new window: arm now
    COUNTED = "counted"  # inside an open window, below N (or already REPEATED): nothing new
    REPEATED = "repeated"  # reached N inside the window: capture now (returned once per window)
    DUPLICATE = "duplicate"  # this event id was already observed (same line via poll and syslog)
    COOLDOWN = "cooldown"  # the flow or its tunnel pair was captured recently: ignore


@dataclass(frozen=True, slots=True)
class FlowWindow:
    """One open window for one key."""

    key: TrackerKey
    first_seen: datetime
    last_seen: datetime
    count: int
    repeated: bool  # REPEATED was already returned for this window
    pair: Pair | None


@dataclass(frozen=True, slots=True)
class TrackerSnapshot:
    """Everything a tracker knows, as plain values (see `FlowTracker.snapshot`)."""

    windows: tuple[FlowWindow, ...]
    flow_cooldowns: tuple[tuple[TrackerKey, datetime], ...]  # key -> cooldown ends
    pair_cooldowns: tuple[tuple[Pair, datetime], ...]  # pair -> cooldown ends
    seen_events: tuple[tuple[str, datetime], ...]  # event id -> when observed, oldest first
    pending_transients: tuple[TrackerKey, ...]  # closed windows not yet handed out by expire()


def _require_aware(at: datetime) -> None:
    # Mixing naive and aware datetimes raises deep inside comparisons; fail at the door.
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"tracker times must be timezone-aware, got {at!r}")


class FlowTracker:
    """`occurs` within `within` per key, with de-duplication and cooldowns.

    Rules, in the order `observe` applies them:
      1. an event id already seen -> DUPLICATE (nothing else changes);
      2. the key or its pair is in cooldown -> COOLDOWN;
      3. no open window (or the open one ended before `at`) -> open one, FIRST
         (a window that ended below N is queued as a transient for `expire`);
      4. otherwise count it; the count reaching `occurs` -> REPEATED (once), else COUNTED.
    With `occurs == 1` the first observation is REPEATED: there is nothing to arm ahead.
    """

    def __init__(
        self,
        occurs: int,
        within: timedelta,
        cooldown_flow: timedelta,
        cooldown_pair: timedelta,
        *,
        dedupe_horizon: timedelta | None = None,
        max_event_ids: int = 100_000,
        max_flows: int = 10_000,
    ) -> None:
        if occurs < 1:
            raise ValueError("occurs must be at least 1")
        if within <= timedelta(0):
            raise ValueError("within must be positive")
        if cooldown_flow < timedelta(0) or cooldown_pair < timedelta(0):
            raise ValueError("cooldowns must not be negative")
        if max_event_ids < 1 or max_flows < 1:
            raise ValueError("max_event_ids and max_flows must be at least 1")
        self.occurs = occurs
        self.within = within
        self.cooldown_flow = cooldown_flow
        self.cooldown_pair = cooldown_pair
        # The same line reaches us by poll and by syslog minutes apart at most; a window
        # length is a generous bound for that and keeps the id set small.
        self.dedupe_horizon = dedupe_horizon if dedupe_horizon is not None else within
        self.max_event_ids = max_event_ids
        self.max_flows = max_flows
        self._windows: OrderedDict[TrackerKey, FlowWindow] = OrderedDict()  # oldest first
        self._flow_cooldowns: dict[TrackerKey, datetime] = {}
        self._pair_cooldowns: dict[Pair, datetime] = {}
        self._seen: OrderedDict[str, datetime] = OrderedDict()  # insertion = observation order
        self._transients: list[TrackerKey] = []

    # ------------------------------------------------------------------ observing

    def observe(
        self, key: TrackerKey, at: datetime, event_id: str, pair: Pair | None = None
    ) -> Decision:
        """Record one occurrence of `key` at `at` and say what to do about it."""
        _require_aware(at)
        if event_id in self._seen:
            return Decision.DUPLICATE
        self._remember_event(event_id, at)

        if self._in_cooldown(key, pair, at):
            return Decision.COOLDOWN

        window = self._windows.get(key)
        if window is not None and at > self._window_end(window):
            self._close(key, window)
            window = None
        if window is None:
            opened = FlowWindow(key, at, at, 1, self.occurs == 1, pair)
            self._windows[key] = opened
            self._evict_excess_flows()
            return Decision.REPEATED if self.occurs == 1 else Decision.FIRST

        # Late or out-of-order lines (poll and syslog race) still count inside the window.
        counted = replace(
            window,
            count=window.count + 1,
            last_seen=max(window.last_seen, at),
            pair=window.pair if window.pair is not None else pair,
        )
        if counted.count >= self.occurs and not window.repeated:
            self._windows[key] = replace(counted, repeated=True)
            return Decision.REPEATED
        self._windows[key] = counted
        return Decision.COUNTED

    def window(self, key: TrackerKey) -> FlowWindow | None:
        """The open window of `key`, if any (first_seen, count, pair...)."""
        return self._windows.get(key)

    def window_end(self, key: TrackerKey) -> datetime | None:
        """When the open window of `key` closes (first_seen + within), if one is open."""
        window = self._windows.get(key)
        return None if window is None else self._window_end(window)

    def open_windows(self) -> tuple[FlowWindow, ...]:
        return tuple(self._windows.values())

    def open_count(self) -> int:
        """How many windows are open (without copying them)."""
        return len(self._windows)

    # ------------------------------------------------------------------ ending windows

    def expire(self, now: datetime) -> list[TrackerKey]:
        """Close windows that ended by `now`; return the keys that never reached N.

        Those are transients (a single line at rekey): the agent disarms them. Windows
        that did reach N are dropped silently (their capture owns the incident). Also
        forgets event ids and cooldowns that no longer matter.
        """
        _require_aware(now)
        for key, window in list(self._windows.items()):
            if now >= self._window_end(window):
                self._close(key, window)
        transients, self._transients = self._transients, []
        self._forget_events(now)
        self._flow_cooldowns = {k: t for k, t in self._flow_cooldowns.items() if t > now}
        self._pair_cooldowns = {p: t for p, t in self._pair_cooldowns.items() if t > now}
        return transients

    def mark_captured(self, key: TrackerKey, pair: Pair | None, at: datetime) -> None:
        """A capture for `key` finished (or was abandoned) at `at`: close it, start cooldowns."""
        _require_aware(at)
        self._windows.pop(key, None)
        if self.cooldown_flow > timedelta(0):
            self._flow_cooldowns[key] = at + self.cooldown_flow
        if pair is not None and self.cooldown_pair > timedelta(0):
            self._pair_cooldowns[pair] = at + self.cooldown_pair

    def forget(self, key: TrackerKey) -> None:
        """Drop the open window of `key` without a verdict (e.g. arming was refused)."""
        self._windows.pop(key, None)

    def in_cooldown(self, key: TrackerKey, pair: Pair | None, at: datetime) -> bool:
        _require_aware(at)
        return self._in_cooldown(key, pair, at)

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> TrackerSnapshot:
        return TrackerSnapshot(
            windows=tuple(self._windows.values()),
            flow_cooldowns=tuple(self._flow_cooldowns.items()),
            pair_cooldowns=tuple(self._pair_cooldowns.items()),
            seen_events=tuple(self._seen.items()),
            pending_transients=tuple(self._transients),
        )

    def restore(self, snapshot: TrackerSnapshot) -> None:
        """Replace this tracker's state with `snapshot` (limits of this tracker apply)."""
        # Snapshots keep insertion order (oldest first), which eviction relies on.
        self._windows = OrderedDict((w.key, w) for w in snapshot.windows)
        self._flow_cooldowns = dict(snapshot.flow_cooldowns)
        self._pair_cooldowns = dict(snapshot.pair_cooldowns)
        self._seen = OrderedDict(snapshot.seen_events)
        self._transients = list(snapshot.pending_transients)
        while len(self._seen) > self.max_event_ids:
            self._seen.popitem(last=False)
        self._evict_excess_flows()

    def to_json(self) -> str:
        """The snapshot as JSON text (keys via `encode_key`)."""
        return snapshot_to_json(self.snapshot())

    def load_json(self, text: str) -> None:
        self.restore(snapshot_from_json(text))

    # ------------------------------------------------------------------ internals

    def _window_end(self, window: FlowWindow) -> datetime:
        return window.first_seen + self.within

    def _close(self, key: TrackerKey, window: FlowWindow) -> None:
        del self._windows[key]
        if not window.repeated:
            self._transients.append(key)

    def _in_cooldown(self, key: TrackerKey, pair: Pair | None, at: datetime) -> bool:
        until = self._flow_cooldowns.get(key)
        if until is not None and at < until:
            return True
        if pair is not None:
            until = self._pair_cooldowns.get(pair)
            if until is not None and at < until:
                return True
        return False

    def _remember_event(self, event_id: str, at: datetime) -> None:
        self._seen[event_id] = at
        while len(self._seen) > self.max_event_ids:
            self._seen.popitem(last=False)

    def _forget_events(self, now: datetime) -> None:
        horizon = now - self.dedupe_horizon
        # Insertion order is observation order, close enough to time order: stop at the
        # first recent id; stragglers are bounded by max_event_ids anyway.
        while self._seen:
            oldest_id, seen_at = next(iter(self._seen.items()))
            if seen_at >= horizon:
                break
            del self._seen[oldest_id]

    def _evict_excess_flows(self) -> None:
        # A flood of distinct flows (e.g. spoofed SPIs) must not grow memory without bound;
        # the oldest windows go first and count as transients, which they most likely are.
        while len(self._windows) > self.max_flows:
            key, window = self._windows.popitem(last=False)
            if not window.repeated:
                self._transients.append(key)


# ---------------------------------------------------------------------- key codec


def encode_key(key: TrackerKey) -> str:
    """Stable JSON text for a key: a Flow, or a tuple of str/int values."""
    if isinstance(key, Flow):
        return json.dumps(
            {
                "flow": {
                    "router": key.router,
                    "src": str(key.src),
                    "dst": str(key.dst),
                    "spi": key.spi,
                    "prot": key.prot,
                }
            },
            sort_keys=True,
        )
    if isinstance(key, tuple) and all(
        isinstance(item, (str, int)) and not isinstance(item, bool) for item in key
    ):
        return json.dumps({"tuple": list(key)})
    raise TypeError(f"cannot encode tracker key {key!r}: use a Flow or a tuple of str/int")


def decode_key(text: str) -> TrackerKey:
    data = json.loads(text)
    if "flow" in data:
        f = data["flow"]
        return Flow(
            router=str(f["router"]),
            src=ip_address(f["src"]),
            dst=ip_address(f["dst"]),
            spi=int(f["spi"]),
            prot=int(f["prot"]),
        )
    if "tuple" in data:
        return tuple(data["tuple"])
    raise ValueError(f"not a tracker key: {text!r}")


def encode_pair(pair: Pair) -> str:
    return json.dumps(sorted(pair))


def decode_pair(text: str) -> Pair:
    return frozenset(str(name) for name in json.loads(text))


def snapshot_to_json(snapshot: TrackerSnapshot) -> str:
    return json.dumps(
        {
            "version": 1,
            "windows": [
                {
                    "key": encode_key(w.key),
                    "first_seen": w.first_seen.isoformat(),
                    "last_seen": w.last_seen.isoformat(),
                    "count": w.count,
                    "repeated": w.repeated,
                    "pair": None if w.pair is None else encode_pair(w.pair),
                }
                for w in snapshot.windows
            ],
            "flow_cooldowns": [[encode_key(k), t.isoformat()] for k, t in snapshot.flow_cooldowns],
            "pair_cooldowns": [[encode_pair(p), t.isoformat()] for p, t in snapshot.pair_cooldowns],
            "seen_events": [[e, t.isoformat()] for e, t in snapshot.seen_events],
            "pending_transients": [encode_key(k) for k in snapshot.pending_transients],
        }
    )


def snapshot_from_json(text: str) -> TrackerSnapshot:
    data = json.loads(text)
    if data.get("version") != 1:
        raise ValueError(f"unknown tracker snapshot version {data.get('version')!r}")
    ts = datetime.fromisoformat
    return TrackerSnapshot(
        windows=tuple(
            FlowWindow(
                key=decode_key(w["key"]),
                first_seen=ts(w["first_seen"]),
                last_seen=ts(w["last_seen"]),
                count=int(w["count"]),
                repeated=bool(w["repeated"]),
                pair=None if w["pair"] is None else decode_pair(w["pair"]),
            )
            for w in data["windows"]
        ),
        flow_cooldowns=tuple((decode_key(k), ts(t)) for k, t in data["flow_cooldowns"]),
        pair_cooldowns=tuple((decode_pair(p), ts(t)) for p, t in data["pair_cooldowns"]),
        seen_events=tuple((str(e), ts(t)) for e, t in data["seen_events"]),
        pending_transients=tuple(decode_key(k) for k in data["pending_transients"]),
    )

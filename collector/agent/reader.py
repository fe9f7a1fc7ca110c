"""Reading: every way a line reaches the agent ends as `LineSeen` values for `decide`.

A poll over SSH, a syslog hint confirmed over SSH, a QFP counter that grew, and the reads
around arming all go through `LogReader.poll`: read the router's log, keep only the lines
not read before (the cursor in the state store), parse the invalid-SPI ones and say who
their source is (an inventory router, a configured peer, the receiver itself, nobody we
know). Each read of a router gets a number, taken while the router's session is held, so
"read after the arming mark" is an order the decision core can rely on.

Nothing here decides or changes a router; the reader writes only cursors and addresses.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from collector.agent.pending import PendingWrites
from collector.agent.sources import LineSources
from collector.agent.warm import SessionWants
from collector.core.decide import LineSeen, SourceKind
from collector.core.observers import AgentEvents
from collector.detect.cursor import fingerprint
from collector.detect.logread import LogPosition, poll_log
from collector.detect.events import Flow
from collector.detect.logline import parse_invalid_spi, parse_syslog_datagram
from collector.detect.syslog_receiver import SyslogHint
from collector.inventory import Host, Inventory
from collector.parsing import TemplateRegistry
from collector.playbook import Playbook
from collector.respond.facts import interface_addresses
from collector.sessions import SessionError, SessionSource
from collector.state import EventRecord, LogCursorRecord, StateStore
from collector.timeutil import utcnow

log = logging.getLogger(__name__)

QFP_COUNTERS = ("IN_US_V4_PKT_SA_NOT_FOUND_SPI", "IN_US_V6_PKT_SA_NOT_FOUND_SPI", "IpsecInput")
ADDRESS_REFRESH = timedelta(hours=1)  # addresses learnt from `show ip interface brief` are trusted this long
SYSLOG_CONFIRM_INTERVAL = 5.0  # seconds between syslog-triggered SSH log reads of one router
WATCHED = ("CRYPTO-4-RECVD_PKT_INV_SPI",)  # the messages a poll reads (besides the header)
# A router's whole buffer is read at least this often when it prints no sequence numbers: a
# filtered read cannot see a `clear logging` followed by as many identical watched lines as
# it removed (detect/logread; with sequence numbers the filtered read is exact). Time, not
# a poll count: a 10 MB buffer every tenth one-second poll would be a read a second. Kept in
# the state store, so a cron run does not read every buffer whole at each start. An hour:
# at 10,000 routers a whole read of each 10 MB buffer takes the agent's cores for most of
# a 15-minute backstop interval, for a case that needs a clear and a refill to coincide.
FULL_READ_INTERVAL = timedelta(hours=1)
# Whole-buffer reads at once, across all routers: each holds a copy or two of the buffer
# (10 MB on a busy router) while it is read and walked; at the first poll every router
# needs one, and the poll threads (20) would otherwise all hold theirs together. Walking
# a buffer is Python work: more at once would not be faster on the agent's cores.
WHOLE_READS_AT_ONCE = 4


# Lines whose source an arming may follow at once: both ends (another inventory router) or
# the receiver (a configured peer, an address of several routers). The rest go in the other
# lane: the receiver's own address (never armed), a source outside the inventory and its
# peers (armed only if the playbook allows it, and only once its flow repeats), and a
# source not classified yet (the receiver's peers not read: it may be a configured peer's,
# confirmed in that lane at once unless a sweep fills it).
MAY_ARM = frozenset((SourceKind.INVENTORY, SourceKind.PEER, SourceKind.AMBIGUOUS))


@dataclass(frozen=True)
class HintOutcome:
    """What a syslog hint asks of the agent: the router to confirm it on now (None: not
    now) and in which lane (`urgent`: its line may be armed for), the sender whose session
    to ready (None: none), and the flow whose source is still to be counted
    (`LogReader.count_syslog_source`; None: counted)."""

    confirm: Host | None = None
    sender: Host | None = None
    uncounted: Flow | None = None
    urgent: bool = True


@dataclass(frozen=True)
class DueConfirmation:
    """A confirmation held back by the interval and due now, in its lane."""

    host: Host
    urgent: bool


class LogReader:
    """Reads routers' logs and QFP counters into `LineSeen` events.

    Thread-safe: polls of different routers run in parallel; reads of one router are
    serialised by its session (the session source hands a router to one thread at a
    time), and the read number is taken inside that session."""

    def __init__(self, inventory: Inventory, playbook: Playbook, store: StateStore, sessions: SessionSource,
                 registry: TemplateRegistry, observers: AgentEvents):
        self.inventory = inventory
        self.playbook = playbook
        self.store = store
        self.sessions = sessions
        self.registry = registry
        self.observers = observers
        self.sources = LineSources(inventory, store, sessions)
        self._lock = threading.Lock()
        self._reads: dict[str, int] = {}
        # per (router, lane): a scanner's line must not hold back the confirmation of a
        # flow's line logged just after it on the same router by SYSLOG_CONFIRM_INTERVAL
        self._confirm_after: dict[tuple[str, bool], float] = {}
        self._confirm_due: set[tuple[str, bool]] = set()
        self._full_next: set[str] = set()  # routers whose buffer the tool's disarm resized: read it whole next
        # syslog lines kept as evidence: written by the confirmations and a check every second
        self._hint_events: PendingWrites[EventRecord] = PendingWrites(lambda records: self.store.record_events(records))
        self.wants = SessionWants()  # routers whose session the pool keeps: an arming may be near
        self._whole_reads = threading.BoundedSemaphore(WHOLE_READS_AT_ONCE)

    # -- reading a log ------------------------------------------------------------

    def poll(self, host: Host) -> tuple[list[LineSeen], int]:
        """Read `host`'s log now: its new invalid-SPI lines and the number of this read.

        New lines are found by the router's own counters and buffer order
        (collector.detect.logread): N identical lines are N events. Most polls read only
        the header and the watched lines; the whole buffer when that cannot be exact, at
        a router's first read, after the agent resized its buffer, and every
        FULL_READ_INTERVAL where the router prints no sequence numbers.

        Raises:
            SessionError: the router could not be read (nothing is changed then)."""
        started = time.monotonic()
        timeout = max(host.options.read_timeout, 120.0)
        try:
            with self.sessions.session(host) as session:
                record = self.store.log_cursor(host.name)
                previous = LogPosition.from_text(record.fingerprints) if record else None
                number = self._next_read(host.name)
                with self._lock:
                    resized_by_us = host.name in self._full_next
                    self._full_next.discard(host.name)
                full = previous is None or resized_by_us or _whole_read_due(record, previous, utcnow())
                read = poll_log(lambda command: session.run(command, read_timeout=timeout).text, previous, WATCHED,
                                full=full, only_watched=True,  # only invalid-SPI lines become events
                                whole_buffer=self._whole_reads)
                received = utcnow()
                events = [(new, event) for new in read.new_lines
                          if (event := parse_invalid_spi(new.text, router=host.name, source="poll",
                                                         received_at=received, year=received.year)) is not None]
                if any(self.sources.owners(event.flow.src) - {host.name} for _new, event in events):
                    self.wants.want(host.name)  # a peer's line: said before the session goes back to the pool
                if self._addresses_stale(host.name):  # a flow's sender is found beyond inventory `addresses`
                    brief = session.run("show ip interface brief").text
                    self.store.save_addresses(host.name, interface_addresses(self.registry, host.platform, brief),
                                              utcnow())
        except SessionError as exc:
            self.observers.polled(host.name, ok=False, lines=0, seconds=time.monotonic() - started,
                                  error_kind=exc.kind)
            raise
        seen = []
        for new, event in events:
            kind, sender, dst_owned = self.sources.classify(event.flow)
            self.observers.event_seen(host.name, "poll", known_source=kind is not SourceKind.UNKNOWN)
            seen.append(LineSeen(flow=event.flow, event_id=f"{host.name}|{new.key}", at=received, read=number,
                                 raw=event.raw, sender=sender, source=kind, dst_owned=dst_owned))
        position = read.position
        self.store.save_log_cursor(LogCursorRecord(
            router=host.name, fingerprints=position.to_text(), last_seq=position.seq, last_device_time=None,
            last_line_hash=position.tail[-1] if position.tail else None, buffer_size=position.buffer_bytes,
            messages_logged=position.logged, read_at=received,
            whole_read_at=received if read.whole else record.whole_read_at if record else None))
        if read.gap:
            # Restoring the buffer's size empties it on IOS: say so, or the operator hunts a cause that is ours.
            ours = " (the tool's own disarm restored the buffer's size)" if resized_by_us else ""
            self.observers.problem(host.name, f"log lines may have been lost since the last read: {read.gap}{ours}")
        self.observers.polled(host.name, ok=True, lines=len(seen), seconds=time.monotonic() - started)
        return seen, number

    def read_whole_buffer_next(self, router: str) -> None:
        """The router's buffer was resized (disarming restores its size, which empties it on
        IOS): a filtered read could not tell, so the next read takes the whole buffer."""
        with self._lock:
            self._full_next.add(router)

    def _next_read(self, router: str) -> int:
        with self._lock:
            self._reads[router] = self._reads.get(router, 0) + 1
            return self._reads[router]

    def _addresses_stale(self, router: str) -> bool:
        known = self.store.addresses(router)
        return not known or utcnow() - min(a.seen_at for a in known) > ADDRESS_REFRESH

    # -- syslog hints ---------------------------------------------------------------

    def syslog_hint(self, hint: SyslogHint) -> HintOutcome:
        """Record a UDP line as evidence; say which router to read over SSH now, if any,
        and the line's sender when it is another inventory router not readied in the last
        SESSION_WANTED_FOR seconds (its session is opened beside the read: `warm`).

        A datagram is only a hint: it is confirmed by reading the router's own log, at most
        once per SYSLOG_CONFIRM_INTERVAL per router and lane (a flood must not become a
        burst of SSH reads); hints inside the interval are read by `due_confirmations`.
        The lane: a line whose source may be armed for (MAY_ARM) is urgent; others (a
        scanner sweeping the fleet's public addresses logs on thousands of routers in the
        same second) are confirmed in a lane of their own, so they do not take the logins
        and cores a flow's confirmation needs.

        Nothing here reads a router or writes to disk: the hints are handled one after
        another, and a read of a new receiver's configured peers (0.1 s or more) held up
        every hint behind it, and so their confirmations. A line from outside the inventory
        whose receiver's peers are not known yet is counted later, off this thread
        (`count_syslog_source`); the line is kept as evidence and written with others
        (`write_hint_events`), not in a synced write of its own."""
        line = parse_syslog_datagram(hint.data)
        if line is None:
            return HintOutcome()
        now = utcnow()
        event = parse_invalid_spi(line.raw, router=hint.router, source="syslog", received_at=now, year=now.year)
        if event is None:
            return HintOutcome()
        self._hint_events.add(EventRecord.from_invalid_spi(event, f"syslog|{fingerprint(line.raw)}"))
        kind, sender, _dst_owned = self.sources.classify(event.flow, read_peers=False)
        if kind is not None:
            self.observers.event_seen(hint.router, "syslog", known_source=kind is not SourceKind.UNKNOWN)
        uncounted = event.flow if kind is None else None
        urgent = kind in MAY_ARM
        host = self.inventory.hosts.get(hint.router)
        confirm = host if host is not None and self._claim_confirmation(host.name, urgent) else None
        if kind is not SourceKind.INVENTORY or sender not in self.inventory.hosts:
            return HintOutcome(confirm, None, uncounted, urgent)
        # Every flow's sender, not only the one whose line a confirmation reads: flows
        # logged together by one hub each arm their own sender, whose login (ten round
        # trips across a WAN) would otherwise start only when its turn comes. Once a
        # want lasts: a flood from one sender readies it once.
        ready = not self.wants.wanted(sender)
        self.wants.want(sender)
        return HintOutcome(confirm, self.inventory.hosts[sender] if ready else None, uncounted, urgent)

    def write_hint_events(self) -> None:
        """Write the syslog lines kept as evidence since the last call, in one transaction.

        Raises:
            StateStoreError: they could not be written (they are dropped)."""
        self._hint_events.flush()

    def count_syslog_source(self, flow: Flow) -> None:
        """Count a syslog line from outside the inventory as a configured peer's or an
        unknown source's, reading its receiver's configured peers if need be."""
        kind, _sender, _dst_owned = self.sources.classify(flow)
        self.observers.event_seen(flow.router, "syslog", known_source=kind is not SourceKind.UNKNOWN)

    def _claim_confirmation(self, name: str, urgent: bool) -> bool:
        key, now = (name, urgent), time.monotonic()
        with self._lock:
            if now < self._confirm_after.get(key, 0.0):
                self._confirm_due.add(key)
                return False
            self._confirm_after[key] = now + SYSLOG_CONFIRM_INTERVAL
            self._confirm_due.discard(key)
            return True

    def due_confirmations(self) -> list[DueConfirmation]:
        now = time.monotonic()
        with self._lock:
            due = [key for key in self._confirm_due if now >= self._confirm_after.get(key, 0.0)]
        return [DueConfirmation(self.inventory.hosts[name], urgent) for name, urgent in due
                if name in self.inventory.hosts and self._claim_confirmation(name, urgent)]

    # -- QFP drop counters ------------------------------------------------------------

    def qfp_growth(self, host: Host) -> str | None:
        """Read the IOS-XE invalid-SPI drop counters; a text of what grew, or None.

        Raises:
            SessionError: the router could not be read."""
        counters: dict[str, int] = {}
        with self.sessions.session(host) as session:
            for spec in self.playbook.sources.qfp.commands:
                for line in session.run(spec.command).text.splitlines():
                    parts = line.split()
                    for name in QFP_COUNTERS:
                        if name in parts:
                            numbers = [p for p in parts[parts.index(name) + 1:] if p.isdigit()]
                            if numbers:
                                counters[name] = int(numbers[0])
        now = utcnow()
        before = self.store.qfp_counters(host.name)
        self.store.save_qfp_counters(host.name, counters, now)
        if before is None:
            return None
        grown = {k: v - before.counters.get(k, 0) for k, v in counters.items() if v > before.counters.get(k, 0)}
        if not grown:
            return None
        text = ", ".join(f"{k} +{v}" for k, v in grown.items())
        self.store.record_event(EventRecord(event_id=f"{host.name}|qfp|{now.isoformat()}", router=host.name, key="",
                                            source="qfp", raw=text, device_time=None, received_at=now))
        self.observers.event_seen(host.name, "qfp", known_source=True)
        return text


def _whole_read_due(record: LogCursorRecord | None, previous: LogPosition | None, now) -> bool:
    """Is the periodic whole read of this buffer due? Never with sequence numbers (the
    filtered read is exact); otherwise once FULL_READ_INTERVAL has passed since the last."""
    if previous is not None and previous.seq is not None:
        return False
    return record is None or record.whole_read_at is None or now - record.whole_read_at >= FULL_READ_INTERVAL

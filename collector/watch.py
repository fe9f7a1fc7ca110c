"""`collector watch`: the agent as a cron pass (`--once`) or a daemon (APScheduler 3.11).

Jobs are built from the playbook at start (the scheduler's job store is memory, never
shared: APScheduler 3.x must not share a store between processes). Every job coalesces
missed runs and never overlaps itself; jobs only read routers and put events in the
agent's inbox, and the agent's loop (this thread) decides. A lock file in the state folder
keeps a cron run and the daemon, or two cron runs, from working on the same routers.

`--dry-run` works on a scratch copy of the state store, thrown away at the end: it reads
the routers and prints the plan, and a real run after it behaves as if it never happened.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from collector.agent import Agent, StateLock
from collector.agent.loop import keeps_session
from collector.core.observers import AgentEvents
from collector.detect.syslog_receiver import SyslogReceiver
from collector.hostkeys import KnownHosts
from collector.inventory import Inventory
from collector.parsing import default_registry
from collector.playbook import Playbook
from collector.sessions import SessionPool
from collector.state import StateStore
from collector.timeutil import utcnow

log = logging.getLogger(__name__)

# Hints waiting for the agent: a datagram is at most 8 KiB, so this caps the queue near
# 16 MiB under a flood; anything dropped is still found by the next SSH log poll.
SYSLOG_QUEUE = 2000
# Steps of ended incidents that could not be undone are tried again this often (the on-box
# dead-man applet is the last resort if the router stays unreachable).
DISARM_RETRY_SECONDS = 30
# Polls this far apart or more log in for each read (a backstop behind syslog): an idle
# kept session costs its transport thread's wake-ups, about 27 us of CPU a second, and a
# login about 5 ms (bench/watch_loop.py, docs/performance.md), so keeping one open beyond
# ~3 minutes costs more than logging in again; it also holds a vty line and a thread, and
# 10,000 of them do not fit one process. Then only the routers of an open incident keep
# theirs (arming, capture and disarm must not wait for a login).
RECONNECT_POLLS_FROM = timedelta(minutes=3)
# Sessions beyond --workers for incident work (a syslog line's confirmation, arming,
# capture, disarm): a poll uses at most --workers (its thread pool), so a poll of the
# whole fleet never makes an incident wait for a free session.
INCIDENT_SESSIONS = 10


@dataclass(frozen=True)
class WatchOptions:
    state_dir: Path
    bundle_root: Path
    once: bool = False
    dry_run: bool = False
    syslog: tuple[str, int] | None = None
    workers: int = 20
    max_seconds: float | None = None  # stop a daemon after this long (demo, tests)
    observers: AgentEvents | None = None
    broker: str | None = None  # redis://...: router work goes to site workers (collector.scaleout)


@contextlib.contextmanager
def _state(options: WatchOptions) -> Iterator[StateStore]:
    path = options.state_dir / "state.db"
    if not options.dry_run:
        with StateStore(path) as store:
            yield store
        return
    with tempfile.TemporaryDirectory(prefix="collector-dry-run-") as scratch:
        copy = Path(scratch) / "state.db"
        if path.exists():  # the real store is read, never written
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
            finally:
                source.close()
                target.close()
        with StateStore(copy) as store:
            yield store


@contextlib.contextmanager
def open_agent(inventory: Inventory, playbook: Playbook, options: WatchOptions, report) -> Iterator[Agent]:
    new_store = not (options.state_dir / "state.db").exists()
    with StateLock(options.state_dir), _state(options) as store, \
            SessionPool(KnownHosts.default(), max_sessions=options.workers + INCIDENT_SESSIONS) as pool:
        agent = Agent(inventory, playbook, store, sessions=pool, registry=default_registry(),
                      bundle_root=options.bundle_root, dry_run=options.dry_run, workers=options.workers,
                      report=report, observers=options.observers)
        if reconnects(playbook):
            pool.keep_open_for(functools.partial(keeps_session, agent))
        client = None
        if options.broker:  # the correlator: every router's work goes to its site's worker
            from collector.scaleout.remote import SiteClient, attach_remote
            client = SiteClient(options.broker)
            attach_remote(agent, client)
        try:
            if new_store and not options.dry_run and not options.broker:
                # a new store knows nothing armed: the routers' own dead-man applets may say otherwise
                for line in agent.startup.applets_unknown_to_the_store():
                    report(f"start-up: {line}")
            yield agent
        finally:
            agent.close()
            if client is not None:
                client.close()


def run_once(inventory: Inventory, playbook: Playbook, options: WatchOptions, report) -> Agent:
    """One pass for cron: adopt what the last run armed, poll, decide, act, wait for it."""
    with open_agent(inventory, playbook, options, report) as agent:
        for line in agent.resume():
            report(f"start-up: {line}")
        agent.run_until_idle()
        if playbook.sources.qfp.enabled:
            agent.poll_qfp()
        agent.poll_all()
        agent.run_until_idle()
        agent.tick()
        agent.run_until_idle()
        if options.dry_run:  # nothing stays open after a dry run: end what it opened
            agent.stop("dry run")
        agent.prune()
        return agent


def run_daemon(inventory: Inventory, playbook: Playbook, options: WatchOptions, report,
               stop: threading.Event) -> Agent:
    """Until `stop` is set (SIGTERM/SIGINT): scheduled polls, syslog hints, window expiry.
    On the way out everything armed is disarmed, and each router's verdict reported."""
    with open_agent(inventory, playbook, options, report) as agent:
        for line in agent.reconcile():
            report(f"start-up reconcile: {line}")
        scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1,
                                                      "misfire_grace_time": None})
        sources = playbook.sources
        if sources.poll.enabled:
            scheduler.add_job(agent.poll_all, "interval", seconds=sources.poll.interval.total_seconds(),
                              id="poll-logs", next_run_time=utcnow())
        if sources.qfp.enabled:
            scheduler.add_job(agent.poll_qfp, "interval", seconds=sources.qfp.interval.total_seconds(),
                              id="poll-qfp", next_run_time=utcnow())
        tick = max(0.5, min(5.0, playbook.within.total_seconds() / 20))
        scheduler.add_job(agent.tick, "interval", seconds=tick, id="expire-windows")
        scheduler.add_job(agent.prune, "interval", hours=1, id="prune-events", next_run_time=utcnow())
        scheduler.add_job(lambda: [report(f"disarm retry: {line}") for line in agent.sweep_orphans()],
                          "interval", seconds=DISARM_RETRY_SECONDS, id="retry-disarms")
        if reconnects(playbook) and isinstance(agent.reader.sessions, SessionPool):  # an ended incident's sessions
            scheduler.add_job(agent.reader.sessions.close_unneeded, "interval", seconds=DISARM_RETRY_SECONDS,
                              id="close-sessions")
        receiver = None
        syslog_metrics = getattr(options.observers, "syslog_receiver", None)  # Prometheus, with --metrics
        if options.syslog and sources.syslog.enabled:
            receiver = SyslogReceiver(options.syslog[0], options.syslog[1], _owner_lookup(inventory),
                                      agent.on_syslog_hint, queue_size=SYSLOG_QUEUE).start()
            scheduler.add_job(agent.confirm_pending, "interval", seconds=1, id="confirm-syslog")
            if syslog_metrics is not None:
                scheduler.add_job(lambda: syslog_metrics(receiver.stats), "interval", seconds=5, id="syslog-metrics")
            report(f"syslog receiver on {receiver.address[0]}:{receiver.address[1]}")
            if (warning := receiver.buffer_warning()) is not None:
                report(warning)
        relay = None
        if options.broker and sources.syslog.enabled:  # what the site workers receive (`worker --syslog`)
            from collector.scaleout.syslog_relay import SyslogRelay
            relay = SyslogRelay(options.broker, inventory, agent.on_syslog_hint).start()
            if receiver is None:
                scheduler.add_job(agent.confirm_pending, "interval", seconds=1, id="confirm-syslog")
        agent.reader.registry.load_indexes()  # not on the first incident's way to arming
        scheduler.start()
        timer = threading.Timer(options.max_seconds, stop.set) if options.max_seconds else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            agent.serve(stop)
        finally:
            scheduler.shutdown(wait=True)
            if timer is not None:
                timer.cancel()
            if relay is not None:
                relay.stop()
                report(f"syslog from the sites: {relay.stats.delivered} hints taken, "
                       f"{relay.stats.refused} refused (not from a router of the forwarding site)")
            if receiver is not None:
                receiver.stop()
                stats = receiver.stats
                if syslog_metrics is not None:
                    syslog_metrics(stats)
                report(f"syslog receiver: {stats.received} datagrams, {stats.foreign} invalid-SPI from unknown senders, "
                       f"{stats.ignored} not invalid-SPI, {stats.queued} queued, {stats.dropped_full} dropped (queue full), "
                       f"{stats.lost} lost before they were read (socket buffer full)")
            agent.run_until_idle()
            open_before = set(agent.core.incidents)
            agent.stop("agent stopped")
            for line in agent.verdicts(open_before):
                report(f"stopped, disarmed {line}")
        return agent


def reconnects(playbook: Playbook) -> bool:
    """Polls log in each time; only an open incident's routers keep their sessions."""
    poll = playbook.sources.poll
    return not poll.enabled or poll.interval >= RECONNECT_POLLS_FROM


def _owner_lookup(inventory: Inventory):
    def owner(ip: str) -> str | None:
        host = inventory.owner_of(ip)
        return host.name if host is not None else None

    return owner

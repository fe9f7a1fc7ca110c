"""The correlator's side: router work sent to the router's site queue.

`attach_remote(agent, client)` gives an ordinary Agent a reader and a responder whose
router calls become Celery tasks on `site.<host.site>`; the agent's Worker is rebuilt on
them, so arming, capture, hand-over and the bundle are the same code as on one host.
Both ends of an incident are worked on in parallel by the Worker (`ends` threads), each
through its own site's queue. The correlator never logs into a router itself.

A site that does not answer within `timeout` counts as dark: the call fails with the
reason (`SiteDark`), which the Worker turns into a failed arm, an incomplete capture or
an unclean disarm, as for an unreachable router; the router's dead-man applet disarms
it if the site stays dark.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from ipaddress import ip_address
from typing import Any

import redis
from kombu.exceptions import KombuError

from collector.agent.reader import LogReader
from collector.agent.worker import Worker
from collector.core.decide import LineSeen, Release
from collector.core.observers import NullEvents
from collector.core.results import ArmResult, DisarmResult
from collector.inventory import Host
from collector.evidence import RouterCapture
from collector.respond.plan import PlanError
from collector.respond.responder import Responder
from collector.scaleout.app import make_app, queue_of, task_name
from collector.scaleout.codec import from_json, to_json
from collector.errors import StateStoreError
from collector.sessions import SessionError
from collector.state import WorkRecord
from collector.timeutil import utcnow

log = logging.getLogger(__name__)


class SiteDark(SessionError):
    kind = "site-dark"


@dataclass(frozen=True, slots=True)
class WorkedBy:
    """The site worker that answered a task (its own word, in the answer)."""

    site: str
    worker: str | None


# Publishing raises kombu's errors, waiting for the answer redis-py's.
BROKER_ERRORS = (redis.RedisError, KombuError, OSError)


class SiteClient:
    """Sends one router's work to its site's queue and waits for the answer."""

    def __init__(self, broker: str, *, timeout: float = 120.0, observers=None):
        self.broker = broker
        self.timeout = timeout
        self.observers = observers or NullEvents()  # per-site task counts (metrics)
        self.app = make_app(broker)
        self.redis = redis.Redis.from_url(broker)

    def call(self, host: Host, task: str, *args, timeout: float | None = None):
        """Run `task` on `host`'s site; its answer, or SessionError (SiteDark: no answer)."""
        return self.call_by(host, task, *args, timeout=timeout)[0]

    def call_by(self, host: Host, task: str, *args, timeout: float | None = None) -> tuple[Any, WorkedBy]:
        """`call`, and which worker answered; a SessionError it raised carries that in `by`."""
        started = time.monotonic()
        result = "dark"
        try:
            answer = self._call_by(host, task, *args, timeout=timeout)
            result = "ok"
            return answer
        except SiteDark:
            raise
        except Exception:  # the worker answered with a failure (or an answer we cannot read)
            result = "error"
            raise
        finally:
            self.observers.site_task(host.site or "", task, result=result, seconds=time.monotonic() - started)

    def _call_by(self, host: Host, task: str, *args, timeout: float | None = None) -> tuple[Any, WorkedBy]:
        if not host.site:
            raise SessionError(host.name, "has no `site` in the inventory: with --broker every router needs one")
        reply = f"collector:reply:{uuid.uuid4().hex}"
        wait = timeout or self.timeout
        try:
            self.app.send_task(task_name(task), args=[*args, reply], queue=queue_of(host.site))
            got = self._wait(reply, wait)
        except BROKER_ERRORS as exc:  # down or restarting: this call fails, the next one reconnects
            raise SiteDark(host.name, f"broker unreachable: {exc}") from None
        if got is None:
            raise SiteDark(host.name, f"site {host.site} did not answer {task} within {wait:.0f}s "
                                      "(its worker is down or the site is dark)")
        message = json.loads(got[1])
        by = WorkedBy(str(message.get("by", {}).get("site", host.site)), message.get("by", {}).get("worker"))
        if "error" in message:
            error = SessionError(host.name, message["error"]["reason"])
            error.by = by
            raise error
        return from_json(message["ok"]), by

    def ping(self, site: str, *, timeout: float = 5.0) -> bool:
        """Whether a worker of `site` answers within `timeout` seconds."""
        reply = f"collector:reply:{uuid.uuid4().hex}"
        try:
            self.app.send_task(task_name("ping"), args=[reply], queue=queue_of(site), expires=timeout)
            return self._wait(reply, timeout) is not None
        except BROKER_ERRORS:
            return False

    def _wait(self, reply: str, timeout: float):
        """BLPOP in short slices: the client's socket timeout (5 s) is shorter than a task."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            got = self.redis.blpop([reply], timeout=max(0.1, min(left, 2.0)))
            if got is not None:
                return got

    def close(self) -> None:
        self.redis.close()


class _NoSessions:
    """The correlator has no SSH sessions: anything that asks for one is a bug, said so."""

    @contextmanager
    def session(self, host: Host):
        raise SessionError(host.name, "the correlator does not log into routers (--broker): a site worker does")
        yield  # pragma: no cover


class RemoteReader(LogReader):
    """LogReader whose reads run on the router's site worker. Read numbers are the
    correlator's own, taken under a per-router lock around the remote read, so "read
    after the arming mark" keeps its meaning across worker restarts."""

    def __init__(self, *args, client: SiteClient, **kwargs):
        super().__init__(*args, **kwargs)
        self.client = client
        self._router_locks: dict[str, threading.Lock] = {}

    def _router_lock(self, router: str) -> threading.Lock:
        with self._lock:
            return self._router_locks.setdefault(router, threading.Lock())

    def poll(self, host: Host) -> tuple[list[LineSeen], int]:
        started = time.monotonic()
        try:
            with self._router_lock(host.name):
                answer = self.client.call(host, "poll", host.name)
                number = self._next_read(host.name)
        except SessionError as exc:
            self.observers.polled(host.name, ok=False, lines=0, seconds=time.monotonic() - started,
                                  error_kind=exc.kind)
            raise
        lines = [replace(line, read=number) for line in answer["lines"]]
        self.observers.polled(host.name, ok=True, lines=len(lines), seconds=time.monotonic() - started)
        return lines, number

    def qfp_growth(self, host: Host) -> str | None:
        return None  # QFP counters are not read through the broker (yet): log polls and syslog are


class RemoteResponder(Responder):
    """Responder whose router work runs on the router's site worker; each piece of work of
    an incident is recorded in the correlator's store with the site and worker that did it."""

    def __init__(self, *args, client: SiteClient, **kwargs):
        super().__init__(*args, **kwargs)
        self.client = client

    def _work(self, host: Host, task: str, *args):
        """(answer or None, what went wrong or None, who answered) of one task."""
        try:
            answer, by = self.client.call_by(host, task, *args)
            return answer, None, by
        except SessionError as exc:
            return None, exc.reason, getattr(exc, "by", None) or WorkedBy(host.site or "", None)

    def _did(self, host: Host, incident_id: str | None, action: str, by: WorkedBy, ok: bool, detail: str) -> None:
        if self.store is None or not incident_id:
            return
        try:
            self.store.record_work(WorkRecord(incident_id, host.name, action, by.site, by.worker, ok, detail,
                                              utcnow()))
        except StateStoreError as exc:  # a report line lost; the work itself is in the site's ledger
            log.warning("%s: %s of incident %s not recorded: %s", host.name, action, incident_id, exc)

    def profile(self, host: Host, *, refresh: bool = False):
        raise SessionError(host.name, "device profiles are read by the site worker")

    def _arm(self, host: Host, peer, incident_id: str, window: timedelta, holder: str | None) -> ArmResult:
        action = "join" if holder else "arm"
        result, error, by = self._work(host, "arm", incident_id, host.name, str(peer),
                                       window.total_seconds(), holder)
        if result is None:
            result = ArmResult(host.name, False, error=f"arming through site {host.site}: {error}")
        self._did(host, incident_id, action, by, result.armed, result.summary())
        return result

    def arm(self, host: Host, peer, incident_id: str, window: timedelta, *, log_later: bool = False,
            before_resize=None) -> ArmResult:
        if before_resize is not None:  # the site's plan is not known here: read what is unread first
            before_resize()
        return self._arm(host, peer, incident_id, window, None)  # the site reads the pre-arm log itself

    def join(self, host: Host, peer, incident_id: str, window: timedelta, *, holder_incident_id: str) -> ArmResult:
        return self._arm(host, peer, incident_id, window, holder_incident_id)

    def join_many(self, host: Host, requests, window: timedelta, *, log_later: bool = False) -> list[ArmResult]:
        # each join is the site worker's, with its own session, ledger and pre-arm log
        return [self.join(host, r.peer, r.incident_id, window, holder_incident_id=r.holder_incident_id)
                for r in requests]

    def plan_only(self, host: Host, peer, incident_id: str, window: timedelta):
        raise PlanError("--dry-run is not available with --broker: run it on the site's jump host")

    def capture(self, host: Host, peer, role: str, incident_id: str | None = None, *,
                on_plan=None, on_record=None) -> RouterCapture:
        # The site runs the commands; the agent stages the whole capture when it returns.
        capture, error, by = self._work(host, "capture", incident_id or "", host.name, str(peer), role)
        if capture is None:
            capture = RouterCapture(host.name, role, host.platform, str(peer), (), None,
                                    error=f"capture through site {host.site}: {error}")
        capture = replace(capture, site=by.site, worker=by.worker)
        self._did(host, incident_id, "capture", by, capture.error is None,
                  capture.error or f"{len(capture.commands)} commands captured")
        return capture

    def _release(self, host: Host, incident_id: str | None, heir: str | None) -> DisarmResult:
        action = "hand-over" if heir else "disarm"
        result, error, by = self._work(host, "release", to_json(Release(incident_id or "", host.name, heir)))
        if result is None:
            result = DisarmResult(host.name, clean=False, error=f"through site {host.site}: {error}")
        self._did(host, incident_id, action, by, result.clean or result.nothing_armed, result.summary())
        return result

    def disarm(self, host: Host, incident_id: str | None = None, *, verify: bool = True) -> DisarmResult:
        return self._release(host, incident_id, None)

    def hand_over(self, host: Host, incident_id: str, heir_incident_id: str) -> DisarmResult:
        return self._release(host, incident_id, heir_incident_id)

    def emergency_disarm(self, host: Host) -> DisarmResult:
        result, error, _by = self._work(host, "emergency_disarm", host.name)
        return result if result is not None else DisarmResult(host.name, clean=False,
                                                              error=f"through site {host.site}: {error}")

    def find_sender_peer(self, host: Host, spi_hex: str):
        found = self.client.call(host, "find_peer", host.name, spi_hex)
        return ip_address(found) if found else None


def collect_remote(hosts: list[Host], commands: list[str], client: SiteClient, *, workers: int = 20,
                   on_host_done=None):
    """`collector collect --broker`: each host's commands run on its site's worker; one
    CollectionRun, written as one bundle by the caller like a local collect."""
    from collector.collect import require_read_only, run_per_host
    from collector.command_results import HostOutcome

    require_read_only(commands)

    def one(host: Host) -> HostOutcome:
        try:
            return client.call(host, "collect", host.name, list(commands))
        except SessionError as exc:
            return HostOutcome(host.name, (), error=exc.reason, error_kind=exc.kind)

    return run_per_host(hosts, commands, one, workers=workers, on_host_done=on_host_done)


def attach_remote(agent, client: SiteClient) -> None:
    """Make `agent` send all router work through `client` (before it reads anything)."""
    client.observers = agent.observers
    registry = agent.reader.registry
    agent.reader = RemoteReader(agent.inventory, agent.playbook, agent.store, _NoSessions(), registry,
                                agent.observers, client=client)
    agent.responder = RemoteResponder(playbook=agent.playbook, store=agent.store, sessions=_NoSessions(),
                                      registry=registry, client=client)
    agent.worker = Worker(inventory=agent.inventory, playbook=agent.playbook, store=agent.store,
                          responder=agent.responder, reader=agent.reader, bundle_root=agent.bundle_root,
                          ends=agent._ends, dry_run=agent.dry_run, report=agent.report)
    agent.resume = _resume_through_sites(agent)


def _resume_through_sites(agent):
    """The agent's `resume`, plus: an incident the last correlator left while arming has its
    steps in the sites' ledgers, not in this store, so its routers are released through
    their sites here (on one host `sweep_orphans` finds them in the store)."""
    from collector.core.states import IncidentState

    local_resume = agent.resume

    def resume() -> list[str]:
        arming = [r for r in agent.store.incidents(states=[IncidentState.ARMED, IncidentState.CAPTURING])
                  if r.armed_at is None]
        said = local_resume()
        for record in arming:
            for name in record.routers:
                host = agent.inventory.hosts.get(name)
                if host is None:
                    continue
                result = agent.responder.disarm(host, record.incident_id)
                said.append(f"{name}: incident {record.incident_id} was arming when the last correlator "
                            f"stopped: {result.summary()}")
        return said

    return resume

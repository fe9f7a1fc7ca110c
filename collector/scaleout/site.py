"""`collector worker --site NAME`: one site's jump host, serving its site's queue.

The worker holds the SSH sessions to its site's routers (logins limited per site by a
token bucket in Redis) and their step ledger (its own state store), and carries out
one router's work per task: `poll`, `arm` (or join), `capture`, `release` (disarm or
hand over), `emergency_disarm`, `find_peer`, `collect`. Arguments and answers are values
(collector.scaleout.codec); each answer goes onto the Redis list the sender named.

Delivery is at-least-once, so every task is idempotent:
- a task that already answered (its id is marked done) is not run again;
- a task still running elsewhere (its id is marked running, a short lease renewed while
  it runs) is not run twice at once;
- an `arm` found with steps of its incident already in the ledger was interrupted (the
  worker died half-way): no step is applied again; what is left is undone (its undo runs)
  and the answer says so.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import redis

from collector.agent.reader import LogReader
from collector.core.observers import NullEvents
from collector.core.results import ArmResult, DisarmResult
from collector.hostkeys import KnownHosts
from collector.inventory import Host, Inventory
from collector.parsing import TemplateRegistry
from collector.playbook import Playbook
from collector.respond.responder import Responder
from collector.scaleout.app import make_app, queue_of, task_name
from collector.scaleout.codec import from_json, to_json
from collector.scaleout.guards import LeaseKeeper, LoginBucket, RouterGuards
from collector.sessions import ConnectFailed, SessionError, SessionPool
from collector.state import StateStore

log = logging.getLogger(__name__)

DONE = "collector:done:"  # task id -> answered (kept a day: redeliveries come within the visibility timeout)
RUNNING = "collector:running:"  # task id -> running now (lease renewed while it runs)
RUNNING_LEASE_MS = 10_000
DONE_KEEP_S = 86_400
ARM_FINISHED = "collector:arm-finished:"  # router:incident -> its arm or join of the router has finished
JOIN_WAIT_S = 60.0  # a join waits this long at most for its holder's arm of the same router
REPLY_KEEP_S = 3_600
RESTART_DELAY_S = 1.0  # before the Celery worker is started again after it stopped on an error


class StillRunning(Exception):
    """The first delivery of this task is still running: deliver it again later."""


class SitePool(SessionPool):
    """A session pool whose every new login first takes a token of the site's bucket."""

    def __init__(self, known_hosts: KnownHosts, bucket: LoginBucket, *, max_wait: float = 30.0, **kwargs):
        super().__init__(known_hosts, **kwargs)
        self._bucket = bucket
        self._max_wait = max_wait

    def _check_auth_budget(self, name: str) -> None:  # called just before each new login
        super()._check_auth_budget(name)
        if not self._bucket.take(max_wait=self._max_wait):
            raise ConnectFailed(name, f"site login rate limit ({self._bucket.rate:g}/s, burst {self._bucket.burst}): "
                                      f"no login allowed within {self._max_wait:.0f}s; not logging in now")


class SiteRuntime:
    """What one site worker holds, and the body of each task."""

    def __init__(self, site: str, inventory: Inventory, playbook: Playbook, store: StateStore, sessions: SessionPool,
                 registry: TemplateRegistry, client: redis.Redis, guards: RouterGuards):
        self.site = site
        self.node = f"{site}@{socket.gethostname()}"  # as Celery names this worker: said in every answer
        self.inventory = inventory
        self.store = store
        self.client = client
        self.guards = guards
        self.responder = Responder(playbook=playbook, store=store, sessions=sessions, registry=registry)
        # the whole inventory is known (a sender in another site is named), only this site is reached
        self.reader = LogReader(inventory, playbook, store, sessions, registry, NullEvents())

    def host(self, router: str) -> Host:
        host = self.inventory.hosts.get(router)
        if host is None or host.site != self.site:
            raise SessionError(router, f"not a router of site {self.site} in this worker's inventory")
        return host

    def held(self) -> set[tuple[str, str]]:
        """(router, incident) of every step still to undo: their locks stay renewed."""
        return {(s.router, s.incident_id) for s in self.store.armed_steps()}

    # -- task bodies ------------------------------------------------------------------

    def poll(self, router: str) -> dict:
        lines, number = self.reader.poll(self.host(router))
        return {"lines": lines, "read": number}

    def arm(self, router: str, incident_id: str, peer: str, window_seconds: float, holder: str | None) -> ArmResult:
        host = self.host(router)
        if self.store.armed_steps(router, incident_id, include_undone=True):
            return self._interrupted_arm(host, incident_id)
        answer = self.guards.acquire(router, incident_id, holder=holder)
        if not answer.granted:
            return ArmResult(router, False, refused=True, error=f"not armed: {answer.reason}")
        window = timedelta(seconds=window_seconds)
        try:
            if holder is not None:
                self._wait_for_arm(router, holder)
                result = self.responder.join(host, ip_address(peer), incident_id, window, holder_incident_id=holder)
            else:
                result = self.responder.arm(host, ip_address(peer), incident_id, window)
        finally:  # a later join through this incident may go ahead now
            self.client.set(f"{ARM_FINISHED}{router}:{incident_id}", "1", ex=DONE_KEEP_S)
        if not result.armed and not self.store.armed_steps(router):
            self.guards.release(router, incident_id)
        return result

    def _wait_for_arm(self, router: str, holder: str) -> None:
        """Tasks of one router may run in any order (threads, several workers): a join must
        not run before its holder's arm, whose pre-flight would take the joined flow's
        debugs for someone else's and refuse."""
        deadline = time.monotonic() + JOIN_WAIT_S
        key = f"{ARM_FINISHED}{router}:{holder}"
        while not self.client.exists(key) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _interrupted_arm(self, host: Host, incident_id: str) -> ArmResult:
        """The arm of this incident ran here before and did not finish (the worker died):
        apply nothing again; undo what is left."""
        changes: tuple = ()
        error = "arming was interrupted (its worker stopped); nothing was applied twice"
        if self.store.armed_steps(host.name, incident_id):
            undo = self.responder.disarm(host, incident_id, verify=False)
            changes = undo.changes
            error += "; what it applied is undone" if undo.error is None else f"; undo incomplete: {undo.error}"
        if not self.store.armed_steps(host.name):
            self.guards.release(host.name, incident_id)
        return ArmResult(host.name, False, error=error, changes=changes)

    def capture(self, router: str, peer: str, role: str, incident_id: str):
        return self.responder.capture(self.host(router), ip_address(peer), role, incident_id)

    def release(self, router: str, incident_id: str, heir: str | None) -> DisarmResult:
        host = self.host(router)
        if heir is not None:
            result = self.responder.hand_over(host, incident_id, heir)
            self.guards.transfer(router, incident_id, heir)
            return result
        result = self.responder.disarm(host, incident_id)
        if not self.store.armed_steps(router):  # steps left (an undo failed): the lock stays, renewed
            self.guards.release(router, incident_id)
        return result

    def emergency_disarm(self, router: str) -> DisarmResult:
        """`collector disarm --broker`: every recorded undo step of the router, then the
        tool's leftover dead-man applets; the router lock is freed when nothing is left."""
        host = self.host(router)
        holders = {s.incident_id for s in self.store.armed_steps(router)}
        result = self.responder.emergency_disarm(host)
        if not self.store.armed_steps(router):
            for incident_id in holders | {self.guards.holder(router) or ""}:
                if incident_id:
                    self.guards.release(router, incident_id)
        return result

    def find_peer(self, router: str, spi_hex: str) -> str | None:
        found = self.responder.find_sender_peer(self.host(router), spi_hex)
        return str(found) if found is not None else None

    def collect(self, router: str, commands: list[str]):
        from collector.collect import collect_host, require_read_only

        require_read_only(commands)  # a site worker runs show commands only, whoever asks
        return collect_host(self.host(router), commands, pool=self.responder.sessions, registry=self.reader.registry)

    # -- delivery ---------------------------------------------------------------------

    def answer(self, task_id: str, reply: str, body: Callable[[], Any]) -> None:
        """Run `body` once per task id and push its answer (or its SessionError) to `reply`."""
        if self.client.exists(DONE + task_id):
            return  # answered before; this is a redelivery after the answer went out
        if not self.client.set(RUNNING + task_id, "1", nx=True, px=RUNNING_LEASE_MS):
            raise StillRunning(task_id)  # its worker is alive, or died less than a lease ago
        stop = threading.Event()
        keeper = threading.Thread(target=self._keep_running, args=(task_id, stop), daemon=True)
        keeper.start()
        try:
            try:
                message = {"ok": to_json(body())}
            except SessionError as exc:
                message = {"error": {"kind": exc.kind, "reason": exc.reason}}
            except Exception as exc:  # the correlator waits for an answer: a crash is one too
                log.exception("task %s failed", task_id)
                message = {"error": {"kind": "internal", "reason": f"internal error on the site worker: {exc}"}}
            message["by"] = {"site": self.site, "worker": self.node}
            with self.client.pipeline(transaction=True) as pipe:
                pipe.rpush(reply, json.dumps(message))
                pipe.expire(reply, REPLY_KEEP_S)
                pipe.set(DONE + task_id, "1", ex=DONE_KEEP_S)
                pipe.delete(RUNNING + task_id)
                pipe.execute()
        finally:
            stop.set()

    def _keep_running(self, task_id: str, stop: threading.Event) -> None:
        while not stop.wait(RUNNING_LEASE_MS / 3000):
            try:
                self.client.pexpire(RUNNING + task_id, RUNNING_LEASE_MS)
            except redis.RedisError:
                pass


def register_tasks(app, runtime: SiteRuntime) -> None:
    """The site's tasks; each runs its body once per task id (see SiteRuntime.answer)."""
    options = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "ignore_result": True,
               "max_retries": None}

    def run(task, reply, body):
        try:
            runtime.answer(task.request.id, reply, body)
        except StillRunning:  # same task id again: answered once, by whichever delivery finishes
            raise task.retry(countdown=RUNNING_LEASE_MS / 1000) from None

    @app.task(name=task_name("poll"), **options)
    def poll(task, router, reply):
        run(task, reply, lambda: runtime.poll(router))

    @app.task(name=task_name("arm"), **options)
    def arm(task, incident_id, router, peer, window_seconds, holder, reply):
        run(task, reply, lambda: runtime.arm(router, incident_id, peer, window_seconds, holder))

    @app.task(name=task_name("capture"), **options)
    def capture(task, incident_id, router, peer, role, reply):
        run(task, reply, lambda: runtime.capture(router, peer, role, incident_id))

    @app.task(name=task_name("release"), **options)
    def release(task, action, reply):
        release = from_json(action)
        run(task, reply, lambda: runtime.release(release.router, release.incident_id, release.heir))

    @app.task(name=task_name("emergency_disarm"), **options)
    def emergency_disarm(task, router, reply):
        run(task, reply, lambda: runtime.emergency_disarm(router))

    @app.task(name=task_name("find_peer"), **options)
    def find_peer(task, router, spi_hex, reply):
        run(task, reply, lambda: runtime.find_peer(router, spi_hex))

    @app.task(name=task_name("ping"), **options)
    def ping(task, reply):
        run(task, reply, lambda: runtime.site)

    @app.task(name=task_name("collect"), **options)
    def collect(task, router, commands, reply):
        run(task, reply, lambda: runtime.collect(router, list(commands)))


def run_worker(site: str, broker: str, inventory: Inventory, playbook: Playbook, state_dir: Path, *,
               concurrency: int = 8, logins_per_second: float = 2.0, login_burst: int = 10,
               lease_seconds: float = 60.0, max_armed: int | None = None,
               syslog: tuple[str, int] | None = None) -> None:
    """Serve queue `site.<site>` until stopped (SIGTERM/SIGINT: Celery's warm shutdown).
    With `syslog` (host, port), also receive the site's routers' syslog there and forward
    their invalid-SPI hints to the correlator (collector.scaleout.syslog_relay)."""
    from collector.agent import StateLock
    from collector.errors import UserInputError
    from collector.parsing import default_registry
    from collector.scaleout.syslog_relay import site_receiver

    client = redis.Redis.from_url(broker)
    guards = RouterGuards(client, cap=max_armed or playbook.guards.max_armed_routers, lease_seconds=lease_seconds)
    bucket = LoginBucket(client, site, rate=logins_per_second, burst=login_burst)
    with StateLock(state_dir), StateStore(state_dir / "state.db") as store, \
            SitePool(KnownHosts.default(), bucket, max_sessions=concurrency, keep_open=True) as pool:
        runtime = SiteRuntime(site, inventory, playbook, store, pool, default_registry(), client, guards)
        for router, incident_id in runtime.held():  # a restart: keep holding what the ledger holds
            guards.acquire(router, incident_id)
        receiver = forwarder = None
        if syslog is not None and not playbook.sources.syslog.enabled:
            log.warning("site %s: the playbook's syslog source is disabled: --syslog is not used", site)
        elif syslog is not None:
            try:
                receiver, forwarder = site_receiver(syslog[0], syslog[1], inventory, site, client)
            except (OSError, ValueError) as exc:
                client.close()
                raise UserInputError(f"--syslog {syslog[0]}:{syslog[1]}: cannot listen there: "
                                     f"{getattr(exc, 'strerror', None) or exc}") from None
            log.warning("site %s: receiving syslog on %s:%s", site, *receiver.address)
            if (warning := receiver.buffer_warning()) is not None:
                log.warning("site %s: %s", site, warning)
        keeper = LeaseKeeper(guards, runtime.held).start()
        try:
            _serve_until_asked_to_stop(site, broker, runtime, concurrency)
        finally:
            keeper.stop()
            if receiver is not None:
                receiver.stop()
                stats = receiver.stats
                log.warning("site %s syslog: %d datagrams, %d invalid-SPI not from a router of this site, %d not "
                            "invalid-SPI, %d forwarded, %d not forwarded (broker down), %d dropped (queue full), "
                            "%d lost before they were read (socket buffer full)",
                            site, stats.received, stats.foreign, stats.ignored, forwarder.stats.forwarded,
                            forwarder.stats.failed, stats.dropped_full, stats.lost)
            client.close()


def _serve_until_asked_to_stop(site: str, broker: str, runtime: SiteRuntime, concurrency: int) -> None:
    """Run the Celery worker until SIGTERM/SIGINT. Celery's Redis transport can stop the
    worker with an "unrecoverable error" when the broker goes away while a task is running
    (it cannot acknowledge it); that is a broker restart, not a reason for the site to go
    dark: start the worker again (with a fresh app), keeping the sessions, the ledger and
    the lease keeper, as systemd would restart the process."""
    from celery import signals

    asked = threading.Event()

    def shutting_down(**_kwargs) -> None:
        asked.set()

    signals.worker_shutting_down.connect(shutting_down, weak=False)
    delay = RESTART_DELAY_S
    while True:
        app = make_app(broker)
        register_tasks(app, runtime)
        started = time.monotonic()
        app.worker_main(["worker", "-Q", queue_of(site), "-P", "threads", "-c", str(concurrency),
                         "-n", f"{site}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
                         "-l", "WARNING"])
        if asked.is_set():
            return
        if time.monotonic() - started > 60:  # it had been serving: not a crash loop
            delay = RESTART_DELAY_S
        log.warning("site %s: the Celery worker stopped on an error (above); starting it again in %.0fs",
                    site, delay)
        if asked.wait(delay):
            return
        delay = min(delay * 2, 30.0)

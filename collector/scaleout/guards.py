"""Cluster-wide guards in Redis: per-router incident lock, armed-router cap, login rate.

- Router lock `collector:lock:<router>`: the incident that holds the router (armed it,
  or took it over in a hand-over). Another incident may only join it through its holder
  (the correlator's own join), never arm it anew. The lock has a lease; the site worker
  that armed the router renews it while the router's steps are in its ledger, so a
  worker that died lets it lapse rather than blocking the router forever.
- Armed-router cap: the sorted set `collector:armed` (member: router, score: lease end),
  counted in the same script that takes a lock, so two correlators cannot both take the
  last place.
- Login rate per site: a token bucket `collector:logins:<site>`, taken before every new
  SSH login, so a reconnect storm cannot lock accounts on the site's TACACS servers.

Each operation is one Lua script: atomic on the Redis server, whoever calls.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)

LOCK = "collector:lock:"
ARMED = "collector:armed"
LOGINS = "collector:logins:"
RETRY_SECONDS = 0.5  # the lease keeper's pace while the broker does not answer

# Every script reads the Redis server's clock: workers and correlators on other hosts
# disagree about the time, and a lease or a token must not depend on who asks.
_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# ARGV: incident, lease ms, cap, holder ('' when none), router
_ACQUIRE = _NOW + """
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local owner = redis.call('GET', KEYS[1])
if owner then
  if owner == ARGV[1] or (ARGV[4] ~= '' and owner == ARGV[4]) then
    redis.call('PEXPIRE', KEYS[1], lease)
    redis.call('ZADD', KEYS[2], now + lease, ARGV[5])
    return {1, owner}
  end
  return {0, owner}
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return {-1, tostring(redis.call('ZCARD', KEYS[2]))}
end
-- a join that arrives before its holder's own arm: the router is taken for the holder
local taker = ARGV[1]
if ARGV[4] ~= '' then taker = ARGV[4] end
redis.call('SET', KEYS[1], taker, 'PX', lease)
redis.call('ZADD', KEYS[2], now + lease, ARGV[5])
return {1, taker}
"""

# ARGV: incident, lease ms, router
_RENEW = _NOW + """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3])
  return 1
end
return 0
"""

# ARGV: incident, heir, lease ms, router
_TRANSFER = _NOW + """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] or owner == ARGV[2] or not owner then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
  return 1
end
return 0
"""

_RELEASE = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] or not owner then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

_COUNT = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""

# tokens refill at ARGV[1] per second up to ARGV[2]; returns 0 (taken) or ms to wait
_TAKE_TOKEN = _NOW + """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""


@dataclass(frozen=True, slots=True)
class LockAnswer:
    granted: bool
    reason: str = ""  # why not: the holder, or the cap


class RouterGuards:
    """The per-router lock and the armed-router cap (shared by every site and correlator)."""

    def __init__(self, client: redis.Redis, *, cap: int, lease_seconds: float = 60.0):
        self.client = client
        self.cap = cap
        self.lease_ms = int(lease_seconds * 1000)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._transfer = client.register_script(_TRANSFER)
        self._release = client.register_script(_RELEASE)
        self._count = client.register_script(_COUNT)

    def acquire(self, router: str, incident_id: str, *, holder: str | None = None) -> LockAnswer:
        """Take `router` for `incident_id` (again: a retried task), or join it through
        `holder`, the incident that holds it; refused when another incident holds it or
        the cap is reached."""
        code, said = self._acquire(keys=[LOCK + router, ARMED],
                                   args=[incident_id, self.lease_ms, self.cap, holder or "", router])
        said = said.decode() if isinstance(said, bytes) else str(said)
        if code == 1:
            return LockAnswer(True)
        if code == 0:
            return LockAnswer(False, f"{router} is held by incident {said} (one incident at a time per router)")
        return LockAnswer(False, f"armed-router cap reached across all sites ({said} of {self.cap} armed)")

    def renew(self, router: str, incident_id: str) -> bool:
        return bool(self._renew(keys=[LOCK + router, ARMED], args=[incident_id, self.lease_ms, router]))

    def transfer(self, router: str, incident_id: str, heir: str) -> bool:
        return bool(self._transfer(keys=[LOCK + router, ARMED], args=[incident_id, heir, self.lease_ms, router]))

    def release(self, router: str, incident_id: str) -> bool:
        return bool(self._release(keys=[LOCK + router, ARMED], args=[incident_id, router]))

    def holder(self, router: str) -> str | None:
        value = self.client.get(LOCK + router)
        return value.decode() if value is not None else None

    def armed_count(self) -> int:
        return int(self._count(keys=[ARMED]))


class LoginBucket:
    """At most `rate` new logins per second per site, `burst` at once."""

    def __init__(self, client: redis.Redis, site: str, *, rate: float, burst: int):
        self.client = client
        self.key = LOGINS + site
        self.rate = rate
        self.burst = burst
        self._take = client.register_script(_TAKE_TOKEN)

    def take(self, *, max_wait: float = 30.0) -> bool:
        """Wait for a token; False when none came within `max_wait` seconds."""
        deadline = time.monotonic() + max_wait
        while True:
            wait_ms = int(self._take(keys=[self.key], args=[self.rate, self.burst]))
            if wait_ms == 0:
                return True
            if time.monotonic() + wait_ms / 1000 > deadline:
                return False
            time.sleep(wait_ms / 1000)


class LeaseKeeper:
    """Renews the locks of the routers this worker armed, while their steps are held.

    A broker restarted without persistence has forgotten every lock and the armed set: the
    keeper notices (the server's run_id changed) and takes its routers again at once, so the
    guards hold across the restart as long as the steps are on the routers."""

    def __init__(self, guards: RouterGuards, held, *, every: float | None = None):
        self.guards = guards
        self.held = held  # callable -> iterable of (router, incident_id) still in the ledger
        self.every = every or max(0.2, guards.lease_ms / 3000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self._server: str | None = None  # run_id of the Redis server the locks were taken on

    def start(self) -> LeaseKeeper:
        try:
            self._server = self._run_id()
        except redis.RedisError:
            pass
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run_id(self) -> str:
        return str(self.guards.client.info("server").get("run_id", ""))

    def _run(self) -> None:
        wait = self.every
        while not self._stop.wait(wait):
            try:
                server = self._run_id()
                if server != self._server:
                    self.retake()
                    self._server = server
                for router, incident_id in self.held():
                    self.guards.renew(router, incident_id)
                wait = self.every
            except redis.RedisError:
                wait = min(self.every, RETRY_SECONDS)  # down: look again soon, to retake at once

    def retake(self) -> list[tuple[str, str]]:
        """Take again the routers whose steps this worker holds (after a broker restart)."""
        taken = []
        for router, incident_id in self.held():
            if self.guards.acquire(router, incident_id).granted:
                taken.append((router, incident_id))
        still = set(self.held())  # a disarm that finished meanwhile: do not keep its router
        for router, incident_id in taken:
            if (router, incident_id) not in still:
                self.guards.release(router, incident_id)
        if taken:
            log.warning("broker restarted: took again the locks of %s", ", ".join(r for r, _i in taken))
        return taken

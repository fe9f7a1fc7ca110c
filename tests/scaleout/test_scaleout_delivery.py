"""At-least-once delivery made safe, on a real Redis server and a real state store:
one answer per task id, a redelivered arm applies nothing twice, a dark site is an answer,
the site's login bucket is taken before every login."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis

from collector.core.results import ArmResult, DisarmResult
from collector.core.states import StepStatus
from collector.core.steps import Step
from collector.hostkeys import KnownHosts
from collector.inventory import Host, Inventory, SshOptions
from collector.parsing import default_registry
from collector.playbook import load_playbook
from collector.resources import playbooks_dir
from collector.scaleout.guards import LoginBucket, RouterGuards
from collector.scaleout.remote import RemoteResponder, SiteClient, SiteDark
from collector.scaleout.site import RUNNING, SitePool, SiteRuntime, StillRunning
from collector.sessions import ConnectFailed, SessionError
from collector.state import StateStore


def host(name: str, site: str | None) -> Host:
    return Host(name=name, hostname="127.0.0.1", port=9, platform="cisco_ios", username="u", password=None,
                secret=None, groups=(), site=site, data={}, addresses=(), options=SshOptions())


class StubResponder:
    """Records what the site asked of the router; never talks to one."""

    def __init__(self, store: StateStore):
        self.store = store
        self.calls: list[tuple] = []

    def arm(self, host, peer, incident_id, window):
        self.calls.append(("arm", host.name, incident_id))
        return ArmResult(host.name, True)

    def disarm(self, host, incident_id=None, *, verify=True):
        self.calls.append(("disarm", host.name, incident_id))
        for step in self.store.armed_steps(host.name, incident_id):
            self.store.set_step_status(incident_id, host.name, step.index, StepStatus.UNDONE)
        return DisarmResult(host.name, clean=True)


@pytest.fixture
def runtime(tmp_path, redis_url):
    client = redis.Redis.from_url(redis_url)
    inventory = Inventory(hosts={"hub1": host("hub1", "east"), "spoke1": host("spoke1", "west")}, groups={},
                          source=(), digest="")
    book = load_playbook(playbooks_dir() / "invalid-spi.yaml")
    with StateStore(tmp_path / "state.db") as store:
        site = SiteRuntime("east", inventory, book, store, None, default_registry(), client,
                           RouterGuards(client, cap=4))
        site.responder = StubResponder(store)
        yield site
    client.close()


def replies(runtime, key: str) -> list[dict]:
    return [json.loads(m) for m in runtime.client.lrange(key, 0, -1)]


def test_a_task_delivered_twice_runs_once_and_answers_once(runtime):
    runs = []
    for _ in range(3):
        runtime.answer("task-1", "reply-1", lambda: runs.append(1) or "done")
    assert runs == [1]
    assert replies(runtime, "reply-1") == [{"ok": "done", "by": {"site": "east", "worker": runtime.node}}]
    assert runtime.node.startswith("east@")  # the worker names itself in every answer


def test_a_redelivery_while_the_first_still_runs_is_deferred_not_dropped(runtime):
    runtime.client.set(RUNNING + "task-2", "1", px=10_000)
    with pytest.raises(StillRunning):
        runtime.answer("task-2", "reply-2", lambda: pytest.fail("ran twice at once"))
    assert replies(runtime, "reply-2") == []


def test_a_router_failure_is_an_answer_with_its_reason(runtime):
    def fails():
        raise SessionError("hub1", "connection refused")
    runtime.answer("task-3", "reply-3", fails)
    assert replies(runtime, "reply-3") == [{"error": {"kind": "error", "reason": "connection refused"},
                                            "by": {"site": "east", "worker": runtime.node}}]


def test_only_the_sites_own_routers_are_worked_on(runtime):
    with pytest.raises(SessionError, match="not a router of site east"):
        runtime.poll("spoke1")


def test_an_arm_found_half_done_in_the_ledger_applies_nothing_again_and_undoes_it(runtime):
    store = runtime.store
    steps = [Step(("logging buffered 1000000",), ("no logging buffered",), "config", "buffer"),
             Step(("debug crypto ipsec",), ("no debug crypto ipsec",), "exec", "ipsec")]
    store.begin_step("inc1", "hub1", 0, steps[0])
    store.set_step_status("inc1", "hub1", 0, StepStatus.APPLIED)
    store.begin_step("inc1", "hub1", 1, steps[1])  # pending: the worker died here
    runtime.guards.acquire("hub1", "inc1")

    result = runtime.arm("hub1", "inc1", "192.0.2.3", 600, None)

    assert result.armed is False and "interrupted" in result.error and "undone" in result.error
    assert runtime.responder.calls == [("disarm", "hub1", "inc1")]  # no arm: nothing applied twice
    assert {s.status for s in store.armed_steps("hub1", "inc1", include_undone=True)} == {StepStatus.UNDONE}
    assert runtime.guards.holder("hub1") is None  # nothing left: the router is free
    again = runtime.arm("hub1", "inc1", "192.0.2.3", 600, None)  # and a third delivery
    assert again.armed is False and runtime.responder.calls == [("disarm", "hub1", "inc1")]


def test_a_fresh_arm_takes_the_router_lock_and_a_second_incident_is_refused(runtime):
    assert runtime.arm("hub1", "incA", "192.0.2.3", 600, None).armed
    refused = runtime.arm("hub1", "incB", "192.0.2.3", 600, None)
    assert refused.refused and "held by incident incA" in refused.error
    assert [c[0] for c in runtime.responder.calls] == ["arm"]


def test_a_dark_site_is_a_failed_arm_and_an_incomplete_capture_with_the_reason(tmp_path, redis_url):
    from collector.metrics import PrometheusEvents

    metrics = PrometheusEvents()
    client = SiteClient(redis_url, timeout=0.5, observers=metrics)  # no worker serves site `west`
    book = load_playbook(playbooks_dir() / "invalid-spi.yaml")
    with StateStore(tmp_path / "state.db") as store:
        remote = RemoteResponder(playbook=book, store=store, sessions=None, registry=default_registry(),
                                 client=client)
        spoke = host("spoke1", "west")
        armed = remote.arm(spoke, "198.51.100.1", "inc1", timedelta(minutes=10))
        captured = remote.capture(spoke, "198.51.100.1", "sender", "inc1")
        released = remote.disarm(spoke, "inc1")
        # each step is recorded as asked of site west, which no worker answered
        assert [(w.action, w.site, w.worker, w.ok) for w in store.work("inc1")] == [
            ("arm", "west", None, False), ("capture", "west", None, False), ("disarm", "west", None, False)]
    assert captured.site == "west" and captured.worker is None
    for task in ("arm", "capture", "release"):  # the per-site metric counts the dark answers
        assert metrics.registry.get_sample_value("collector_site_tasks_total",
                                                 {"site": "west", "task": task, "result": "dark"}) == 1
    assert not armed.armed and "site west did not answer" in armed.error
    assert captured.error and "site west did not answer" in captured.error
    assert not released.clean and "did not answer" in released.error
    with pytest.raises(SiteDark):
        client.call(spoke, "poll", "spoke1", timeout=0.3)
    with pytest.raises(SessionError, match="no `site`"):
        client.call(host("lost", None), "poll", "lost")
    client.close()


def test_every_new_login_takes_a_token_of_the_sites_bucket(redis_url):
    client = redis.Redis.from_url(redis_url)
    bucket = LoginBucket(client, "east", rate=0.01, burst=1)
    assert bucket.take(max_wait=0)  # the site's one login is used up
    pool = SitePool(KnownHosts.default(), bucket, max_wait=0.2)
    with pytest.raises(ConnectFailed, match="site login rate limit"):
        with pool.session(host("hub1", "east")):
            pass
    client.close()


def test_a_join_waits_for_its_holders_arm_of_the_same_router(runtime):
    """Tasks of one router run in any order: the join must not go before the holder's arm."""
    import threading

    order: list[str] = []
    runtime.responder.join = lambda host, peer, incident_id, window, *, holder_incident_id: \
        order.append("join") or ArmResult(host.name, True, joined=True)
    arm = runtime.responder.arm

    def slow_arm(host, peer, incident_id, window):
        import time
        time.sleep(0.3)
        order.append("arm")
        return arm(host, peer, incident_id, window)

    runtime.responder.arm = slow_arm
    joiner = threading.Thread(target=lambda: runtime.arm("hub1", "incB", "192.0.2.9", 600, "incA"))
    joiner.start()  # the join task runs first
    holder = threading.Thread(target=lambda: runtime.arm("hub1", "incA", "192.0.2.3", 600, None))
    holder.start()
    joiner.join(timeout=30)
    holder.join(timeout=30)
    assert order == ["arm", "join"]
    assert runtime.guards.holder("hub1") == "incA"

"""The cluster-wide guards on a real Redis server: router lock, cap, lease, login bucket.

Two correlators are two clients (own connections) asking at the same moment."""

from __future__ import annotations

import threading
import time

import redis

from collector.scaleout.guards import LoginBucket, RouterGuards


def race(calls):
    """Run the calls at the same moment from separate threads and connections."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def one(i, call):
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def guards(url, **kwargs) -> RouterGuards:
    return RouterGuards(redis.Redis.from_url(url), **{"cap": 4, "lease_seconds": 60, **kwargs})


def test_two_correlators_asking_for_one_router_at_once_only_one_gets_it(redis_url):
    for attempt in range(20):
        a, b = guards(redis_url, cap=100), guards(redis_url, cap=100)
        router = f"hub{attempt}"
        first, second = race([lambda: a.acquire(router, "incA"), lambda: b.acquire(router, "incB")])
        assert sorted([first.granted, second.granted]) == [False, True]
        loser = first if not first.granted else second
        winner = "incA" if first.granted else "incB"
        assert f"held by incident {winner}" in loser.reason
        assert a.holder(router) == winner


def test_the_cap_holds_across_correlators_racing_for_different_routers(redis_url):
    clients = [guards(redis_url, cap=2) for _ in range(6)]
    answers = race([lambda c=c, i=i: c.acquire(f"r{i}", f"inc{i}") for i, c in enumerate(clients)])
    assert sum(a.granted for a in answers) == 2
    assert all("cap reached" in a.reason for a in answers if not a.granted)
    assert clients[0].armed_count() == 2


def test_join_through_the_holder_and_retry_of_the_same_incident_are_allowed(redis_url):
    g = guards(redis_url, cap=1)
    assert g.acquire("hub1", "incA").granted
    assert g.acquire("hub1", "incA").granted  # a redelivered task
    assert g.acquire("hub1", "incB", holder="incA").granted  # joins, does not take a second place
    assert not g.acquire("hub1", "incC", holder="incX").granted
    assert g.armed_count() == 1


def test_a_join_that_comes_before_its_holders_arm_takes_the_router_for_the_holder(redis_url):
    g = guards(redis_url)
    assert g.acquire("hub2", "incB", holder="incA").granted  # the two arm tasks raced
    assert g.holder("hub2") == "incA"
    assert g.acquire("hub2", "incA").granted  # the holder's own arm is not refused
    assert not g.acquire("hub2", "incC").granted


def test_only_the_holder_releases_and_a_hand_over_moves_the_lock(redis_url):
    g = guards(redis_url)
    g.acquire("hub1", "incA")
    assert not g.release("hub1", "incB")
    assert g.holder("hub1") == "incA"
    assert g.transfer("hub1", "incA", "incB")
    assert g.holder("hub1") == "incB"
    assert g.release("hub1", "incB")
    assert g.holder("hub1") is None and g.armed_count() == 0


def test_a_lease_nobody_renews_lapses_and_a_renewed_one_stays(redis_url):
    g = guards(redis_url, lease_seconds=0.3)
    g.acquire("dead", "incA")
    g.acquire("alive", "incB")
    for _ in range(6):
        time.sleep(0.1)
        assert g.renew("alive", "incB")
    assert g.holder("dead") is None  # its worker died: the router is free again
    assert g.holder("alive") == "incB"
    assert g.armed_count() == 1
    assert guards(redis_url).acquire("dead", "incC").granted


def test_login_bucket_allows_a_burst_then_refuses_until_refilled(redis_url):
    client = redis.Redis.from_url(redis_url)
    east = LoginBucket(client, "east", rate=0.5, burst=3)
    west = LoginBucket(client, "west", rate=0.5, burst=3)
    assert [east.take(max_wait=0) for _ in range(4)] == [True, True, True, False]
    assert west.take(max_wait=0)  # one bucket per site


def test_login_bucket_is_shared_by_every_worker_of_the_site(redis_url):
    buckets = [LoginBucket(redis.Redis.from_url(redis_url), "east", rate=0.01, burst=5) for _ in range(10)]
    taken = race([lambda b=b: b.take(max_wait=0) for b in buckets])
    assert sum(taken) == 5


def test_the_bucket_and_the_leases_keep_the_servers_time_not_the_callers(redis_url, monkeypatch):
    """Workers on other hosts disagree about the time: a caller whose clock is an hour
    behind neither loses tokens nor shortens a lease."""
    client = redis.Redis.from_url(redis_url)
    bucket = LoginBucket(client, "skewed", rate=0.5, burst=3)
    assert bucket.take(max_wait=0) and bucket.take(max_wait=0)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    assert bucket.take(max_wait=0)  # the third token of the burst is still there
    skewed = guards(redis_url, cap=1, lease_seconds=60)
    assert skewed.acquire("r-skew", "inc-1").granted
    monkeypatch.setattr(time, "time", real)
    assert guards(redis_url, cap=1).armed_count() == 1  # the lease did not end an hour ago
    assert guards(redis_url, cap=1).release("r-skew", "inc-1")

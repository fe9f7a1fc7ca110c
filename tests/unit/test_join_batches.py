"""Flows joining one armed router: their turns (`RouterTurns`'s shared tickets) and their
meeting in one batch (`RouterBatches`), with threads, no router."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from collector.agent.dispatch import RouterTurns
from collector.agent.batches import RouterBatches
from collector.core.results import ArmResult
from collector.respond.joining import JoinRequest
from tests.unit.test_responder import PEER_A, host

WINDOW = timedelta(minutes=10)


def _runner(turns: RouterTurns, order: list, gate: dict[int, threading.Event]):
    def run(number, ticket):
        turns.wait(ticket)
        order.append(("start", number))
        gate[number].wait(5)
        order.append(("end", number))
        turns.done(ticket)
    return run


def test_joins_queued_behind_an_arm_run_together_and_what_follows_waits_for_all_of_them():
    turns, order = RouterTurns(), []
    gate = {n: threading.Event() for n in range(1, 6)}
    # the hub: arm (1), three joins (2, 3, 4), a release (5); join 3 also arms its own spoke
    tickets = {1: turns.take(["hub"]), 2: turns.take(["hub", "spoke2"], shared=("hub",)),
               3: turns.take(["hub", "spoke3"], shared=("hub",)), 4: turns.take(["hub"], shared=("hub",)),
               5: turns.take(["hub"])}
    run = _runner(turns, order, gate)
    threads = [threading.Thread(target=run, args=(n, tickets[n])) for n in range(1, 6)]
    for t in threads:
        t.start()

    def started() -> set[int]:
        return {n for kind, n in list(order) if kind == "start"}

    assert _eventually(lambda: started() == {1})
    gate[1].set()  # the arm ends: the three joins start side by side
    assert _eventually(lambda: started() == {1, 2, 3, 4})
    gate[2].set()
    gate[3].set()
    assert not _eventually(lambda: 5 in started(), seconds=0.3)  # the release waits for the last join
    gate[4].set()
    gate[5].set()
    for t in threads:
        t.join(5)
    assert order.index(("start", 5)) > order.index(("end", 4))


def test_a_join_behind_an_exclusive_ticket_waits_for_it():
    turns = RouterTurns()
    arm = turns.take(["hub"])
    join = turns.take(["hub"], shared=("hub",))
    later_arm = turns.take(["hub"])
    queue = turns._queues["hub"]
    assert [turns._may_run(queue, t[0]) for t in (arm, join, later_arm)] == [True, False, False]
    turns.done(arm)
    queue = turns._queues["hub"]
    assert [turns._may_run(queue, t[0]) for t in (join, later_arm)] == [True, False]


def test_an_arm_that_shares_its_turn_lets_the_joins_behind_it_start_and_still_holds_off_the_rest():
    """An arm said armed and still staging its logs shares its turn: the joins queued
    behind it start beside it; a release or a new arm of the router still waits for it."""
    turns, order = RouterTurns(), []
    gate = {n: threading.Event() for n in range(1, 5)}
    tickets = {1: turns.take(["hub", "spoke1"]), 2: turns.take(["hub", "spoke2"], shared=("hub",)),
               3: turns.take(["hub"], shared=("hub",)), 4: turns.take(["hub"])}
    run = _runner(turns, order, gate)
    threads = [threading.Thread(target=run, args=(n, tickets[n])) for n in range(1, 5)]
    for t in threads:
        t.start()

    def started() -> set[int]:
        return {n for kind, n in list(order) if kind == "start"}

    assert _eventually(lambda: started() == {1})
    assert not _eventually(lambda: started() != {1}, seconds=0.3)  # not shared yet: the joins wait
    turns.share(tickets[1])
    assert _eventually(lambda: started() == {1, 2, 3})
    gate[2].set()
    gate[3].set()
    assert _eventually(lambda: ("end", 3) in order and ("end", 2) in order)
    assert not _eventually(lambda: 4 in started(), seconds=0.3)  # the release waits for the arm itself
    gate[1].set()
    gate[4].set()
    for t in threads:
        t.join(5)
    assert order.index(("start", 4)) > order.index(("end", 1))


def test_a_poll_waits_for_an_arm_until_it_is_said_armed_and_no_longer():
    """`wait_for_arms`: a backstop poll's reads yield to an arming until it is said armed
    (its turn shared), or until the timeout; other router work does not hold them."""
    import queue

    from collector.agent.dispatch import RouterWork
    from collector.core.decide import Arm, Release

    work = RouterWork(queue.Queue(), workers=2)
    said, release = threading.Event(), threading.Event()

    def arm(_action):
        said.wait(5)
        work.share_turn()  # "armed": what is left (the staging) does not hold the polls
        release.wait(5)
        return []

    work.submit(lambda _a: release.wait(5) and [], Release("inc-0", "hub9", None), ("hub9",))
    assert work.wait_for_arms(0.05)  # a release is no arming
    work.submit(arm, Arm("inc-1", _flow(), "hub1", "spoke1", ()), ("hub1", "spoke1"))
    assert not work.wait_for_arms(0.2)
    said.set()
    assert work.wait_for_arms(2)
    release.set()
    work.shutdown()



def test_an_armed_flows_evidence_reads_yield_to_arms_elsewhere_but_never_to_work_waiting_for_it():
    """`yield_to_arms`, called by an Arm once it is said armed: it waits while another
    flow's Arm on other routers is on its way to armed; it stops waiting at once when
    work is queued behind its own turn (an Arm of its hub, which would otherwise wait for
    it to the timeout) or waits for a pool thread (armed flows yielding in every thread
    would hold back the Arms they wait for)."""
    import queue
    import time

    from collector.agent.dispatch import RouterWork
    from collector.core.decide import Arm

    yielding = threading.Event()

    def arm_that_yields(work, waited, go_on):
        def arm(_action):
            work.share_turn()  # "armed"
            started = time.monotonic()
            yielding.set()
            ended = work.yield_to_arms(3.0)
            waited.append((ended, time.monotonic() - started, time.monotonic()))
            go_on.wait(5)
            return []
        return arm

    def slow_arm(said):
        def arm(_action):
            said.wait(5)
            return []
        return arm

    def stopped_yielding_at_once(work, waited, said, go_on) -> None:
        deadline = time.monotonic() + 2
        while not waited and time.monotonic() < deadline:
            time.sleep(0.01)
        said.set()
        go_on.set()
        assert waited and waited[0][0] is False and waited[0][1] < 1.0, waited
        work.shutdown()

    # another flow's arm, elsewhere: yielded to until it is armed
    work, waited, go_on, said = RouterWork(queue.Queue(), workers=3), [], threading.Event(), threading.Event()
    work.submit(slow_arm(said), Arm("inc-2", _flow(), "hub2", "spoke2", ()), ("hub2", "spoke2"))
    work.submit(arm_that_yields(work, waited, go_on), Arm("inc-1", _flow(), "hub1", "spoke1", ()), ("hub1", "spoke1"))
    assert yielding.wait(5)
    time.sleep(0.3)
    assert waited == []
    released = time.monotonic()
    said.set()
    go_on.set()
    work.shutdown()
    assert waited and waited[0][0] is True and released <= waited[0][2] and waited[0][1] < 2.5

    # an Arm queued behind its turn on the hub (a pool thread to spare): not waited for
    work, waited, go_on, said = RouterWork(queue.Queue(), workers=4), [], threading.Event(), threading.Event()
    work.submit(slow_arm(said), Arm("inc-2", _flow(), "hub2", "spoke2", ()), ("hub2", "spoke2"))
    work.submit(arm_that_yields(work, waited, go_on), Arm("inc-1", _flow(), "hub1", "spoke1", ()), ("hub1", "spoke1"))
    time.sleep(0.2)

    def arm_in_turn(_action):  # as an Arm's work does: each router once it is its turn
        for _name in work.each_in_turn(["hub1", "spoke3"]):
            pass
        return []

    work.submit(arm_in_turn, Arm("inc-3", _flow(), "hub1", "spoke3", ()), ("hub1", "spoke3"))
    stopped_yielding_at_once(work, waited, said, go_on)

    # work waiting for a pool thread (one thread each: the slow arm, the yielding one): not waited for
    work, waited, go_on, said = RouterWork(queue.Queue(), workers=2), [], threading.Event(), threading.Event()
    work.submit(slow_arm(said), Arm("inc-2", _flow(), "hub2", "spoke2", ()), ("hub2", "spoke2"))
    work.submit(arm_that_yields(work, waited, go_on), Arm("inc-1", _flow(), "hub1", "spoke1", ()), ("hub1", "spoke1"))
    time.sleep(0.2)
    assert waited == []
    work.submit(slow_arm(said), Arm("inc-3", _flow(), "hub3", "spoke3", ()), ("hub3", "spoke3"))
    stopped_yielding_at_once(work, waited, said, go_on)


def test_a_poll_waits_for_a_confirmation_from_its_submission_to_its_end():
    """`ahead_of_polls`: a syslog line's confirmation (or the readying of its ends) holds a
    backstop poll's reads as an Arm does, queued behind a busy pool too, and no longer
    than it runs; one that raises lets them go all the same."""
    import queue
    from concurrent.futures import ThreadPoolExecutor

    from collector.agent.dispatch import RouterWork

    work = RouterWork(queue.Queue(), workers=2)
    confirms = ThreadPoolExecutor(max_workers=1)
    busy, confirmed = threading.Event(), threading.Event()
    confirms.submit(busy.wait, 5)  # the one confirm thread is taken: the next waits in the queue
    queued = work.ahead_of_polls(confirms, confirmed.wait, 5)
    assert not work.wait_for_arms(0.2)  # queued, not started: the poll waits already
    busy.set()
    assert not work.wait_for_arms(0.2)  # running
    confirmed.set()
    queued.result(5)
    assert work.wait_for_arms(2)

    def fails():
        raise RuntimeError("router gone")

    failed = work.ahead_of_polls(confirms, fails)
    assert isinstance(failed.exception(5), RuntimeError)
    assert work.wait_for_arms(2)
    confirms.shutdown()
    work.shutdown()


def _flow():
    from ipaddress import ip_address

    from collector.detect.events import Flow

    return Flow("hub1", ip_address("10.0.0.2"), ip_address("10.0.0.1"), 0x1234, 50)


def test_requests_that_come_while_a_batch_runs_are_joined_together_in_the_next():
    calls: list[list[str]] = []
    first_running, release_first = threading.Event(), threading.Event()

    def join_many(h, requests, window):
        calls.append([r.incident_id for r in requests])
        if len(calls) == 1:
            first_running.set()
            release_first.wait(5)
        return [ArmResult(h.name, True, joined=True, notes=(r.incident_id,)) for r in requests]

    batches = RouterBatches(lambda h, requests: join_many(h, requests, WINDOW))
    results: dict[str, ArmResult] = {}

    def join(incident):
        results[incident] = batches.submit(host(), JoinRequest(PEER_A, incident, "inc-1"))

    leader = threading.Thread(target=join, args=("inc-2",))
    leader.start()
    assert first_running.wait(5)
    followers = [threading.Thread(target=join, args=(f"inc-{n}",)) for n in (3, 4, 5)]
    for t in followers:
        t.start()
    assert _eventually(lambda: len(batches._waiting.get("hub1", [])) == 3)
    release_first.set()
    for t in [leader, *followers]:
        t.join(5)
    assert calls[0] == ["inc-2"] and sorted(calls[1]) == ["inc-3", "inc-4", "inc-5"] and len(calls) == 2
    assert {incident: r.notes for incident, r in results.items()} == {f"inc-{n}": (f"inc-{n}",) for n in (2, 3, 4, 5)}
    assert batches._leading == set() and batches._waiting == {}


def test_a_batch_waits_for_the_requests_said_to_be_on_their_way_and_one_run_serves_them_all():
    """The log read of a hub's first arm waits for the flows joining it, which read the
    log after their own steps: one run of the batch for all of them."""
    calls: list[list[str]] = []
    batches = RouterBatches(lambda h, requests: calls.append(list(requests)) or [r.upper() for r in requests])
    results: dict[str, str] = {}

    def submit(request, **kw):
        results[request] = batches.submit(host(), request, **kw)

    first = threading.Thread(target=submit, args=("arm",), kwargs={"expect": 2, "within": 5.0})
    first.start()
    assert not _eventually(lambda: calls, seconds=0.3)  # waits for the two joins
    joins = [threading.Thread(target=submit, args=(name,), kwargs={"expect": 1 if name == "join1" else 0, "within": 5.0})
             for name in ("join1", "join2")]
    for t in joins:
        t.start()
    for t in [first, *joins]:
        t.join(5)
    assert len(calls) == 1 and sorted(calls[0]) == ["arm", "join1", "join2"]
    assert results == {"arm": "ARM", "join1": "JOIN1", "join2": "JOIN2"}
    assert batches._leading == set() and batches._waiting == {} and batches._expected == {}


def test_a_batch_waits_for_expected_requests_no_longer_than_it_was_told():
    """A join that failed reads nothing: the batch runs without it once `within` is over."""
    import time

    calls: list[list[str]] = []
    batches = RouterBatches(lambda h, requests: calls.append(list(requests)) or list(requests))
    started = time.monotonic()
    assert batches.submit(host(), "arm", expect=1, within=0.3) == "arm"
    assert 0.25 <= time.monotonic() - started < 3 and calls == [["arm"]]
    assert batches.submit(host(), "later") == "later"  # no expectation left behind
    assert calls == [["arm"], ["later"]]


def test_joins_said_to_start_together_are_joined_in_one_batch_though_the_first_comes_alone():
    """An arm said armed lets the joins behind it start, and says how many (`expect`): the
    first to come waits for the others, and one batch joins them all. Without it the first
    made a batch of its own, and the rest a second one after it."""
    calls: list[list[str]] = []
    batches = RouterBatches(lambda h, requests: calls.append(list(requests)) or list(requests))
    batches.expect("hub1", 3, within=5.0)
    results: dict[str, str] = {}

    def submit(request):
        results[request] = batches.submit(host(), request)

    first = threading.Thread(target=submit, args=("join1",))
    first.start()
    assert not _eventually(lambda: calls, seconds=0.3)  # the first waits for the other two
    rest = [threading.Thread(target=submit, args=(name,)) for name in ("join2", "join3")]
    for t in rest:
        t.start()
    for t in [first, *rest]:
        t.join(5)
    assert len(calls) == 1 and sorted(calls[0]) == ["join1", "join2", "join3"]
    assert batches._expected == {} and batches._leading == set()


def test_sharing_a_turn_says_how_many_joins_start_behind_it_on_each_router():
    turns = RouterTurns()
    arm = turns.take(["hub", "spoke1"])
    turns.take(["hub", "spoke2"], shared=("hub",))
    turns.take(["hub"], shared=("hub",))
    turns.take(["hub"])  # a release: what comes after it does not start now
    turns.take(["hub"], shared=("hub",))
    assert turns.share(arm) == {"hub": 2, "spoke1": 0}
    join = turns.take(["hub2", "spoke3"], shared=("hub2",))
    turns.take(["hub2"], shared=("hub2",))
    assert turns.share(join) == {"hub2": 0, "spoke3": 0}  # joins behind a join: its arm counted them


def test_a_batch_that_raises_raises_in_every_caller_and_the_next_batch_still_runs():
    def join_many(h, requests, window):
        if any(r.incident_id == "inc-2" for r in requests):
            raise RuntimeError("state store lost")
        return [ArmResult(h.name, True, joined=True) for _ in requests]

    batches = RouterBatches(lambda h, requests: join_many(h, requests, WINDOW))
    with pytest.raises(RuntimeError):
        batches.submit(host(), JoinRequest(PEER_A, "inc-2", "inc-1"))
    assert batches.submit(host(), JoinRequest(PEER_A, "inc-3", "inc-1")).armed
    assert batches._leading == set()


def _eventually(check, seconds: float = 5.0) -> bool:
    done = threading.Event()
    deadline = seconds
    step = 0.01
    while deadline > 0:
        if check():
            return True
        done.wait(step)
        deadline -= step
    return check()


@pytest.mark.parametrize("seed", range(12))
def test_arms_that_take_their_routers_one_by_one_never_share_a_router_and_all_end(seed):
    """Arms wait for each router apart (`each_in_turn`), other work for all of its routers
    at once, joins share a router with joins only: in any mix, no router is ever held by
    two pieces of work that may not share it, and every piece ends (no two wait on each
    other)."""
    import queue
    import random
    import time

    from collector.agent.dispatch import RouterWork
    from collector.core.decide import Arm, Release

    rng = random.Random(seed)
    work = RouterWork(queue.Queue(), workers=6)
    lock, holders, clashes, ended = threading.Lock(), {}, [], []

    def hold(n: int, router: str, shared: bool) -> None:
        with lock:
            others = holders.setdefault(router, {})
            if others and not (shared and all(others.values())):
                clashes.append((n, router, dict(others)))
            others[n] = shared

    def run(n: int, routers: list[str], shared: tuple[str, ...], one_by_one: bool):
        def fn(_action):
            for router in (work.each_in_turn(routers) if one_by_one else routers):
                hold(n, router, router in shared)
                time.sleep(rng.random() / 500)
            time.sleep(rng.random() / 500)
            with lock:
                for router in routers:
                    del holders[router][n]
                ended.append(n)
            return []
        return fn

    for n in range(30):
        routers = rng.sample(["hub1", "hub2", "spoke1", "spoke2", "spoke3"], rng.choice((1, 2)))
        one_by_one = len(routers) == 2 and rng.random() < 0.7
        shared = (routers[0],) if one_by_one and rng.random() < 0.4 else ()
        action = (Arm(f"inc-{n}", _flow(), routers[0], routers[-1], ()) if one_by_one
                  else Release(f"inc-{n}", routers[0], None))
        work.submit(run(n, routers, shared, one_by_one), action, tuple(routers), shared)
    assert _eventually(lambda: len(ended) == 30, 20), f"{30 - len(ended)} pieces of work never ended"
    work.shutdown()
    assert clashes == []

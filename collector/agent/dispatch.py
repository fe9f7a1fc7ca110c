"""Router work off the loop thread: in turn per router, answered through the inbox.

The loop hands each piece of router work (an Arm, a Capture, a Release, a Close) to
`RouterWork`; a pool thread carries it out when every router it touches has finished
the work asked for before it, and puts the events it returns in the loop's inbox. Work
that raises is answered all the same, so the core never waits for ever.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from collector.core.decide import Arm, ArmDone, Capture, CaptureDone, Event, Release, ReleaseDone
from collector.timeutil import utcnow

log = logging.getLogger(__name__)

# The longest a backstop poll's read, a later-lane confirmation or an armed flow's evidence
# read waits for the armings under way.
ARMS_FIRST_S = 2.0


class RouterTurns:
    """Router work runs in the order the core asked for it, router by router.

    The loop takes a ticket for each router an action touches when it submits the action;
    the worker thread waits until each of its tickets is the oldest of its router. An arm
    and a join of one hub, or a hand-over and the heir's disarm, never overlap or reorder.
    Tickets are taken in one global order, so no two actions can wait on each other.

    A ticket taken as `shared` (a flow joining an armed router) may run beside the shared
    tickets just ahead of it: joins queued behind one arm of a hub start together once
    that arm is done, so the worker can join them in one session (`RouterBatches`); any
    other ticket still waits for all of them, and they for every other ticket before them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queues: dict[str, list[tuple[int, bool]]] = {}  # router -> (ticket, shared), oldest first
        self._next = 0

    def take(self, routers, shared=()) -> tuple[int, tuple[str, ...]]:
        with self._cond:
            self._next += 1
            names = tuple(sorted(set(routers)))
            for name in names:
                self._queues.setdefault(name, []).append((self._next, name in shared))
            return self._next, names

    def wait(self, ticket: tuple[int, tuple[str, ...]]) -> None:
        number, names = ticket
        with self._cond:
            self._cond.wait_for(lambda: all(self._may_run(self._queues[n], number) for n in names))

    def wait_any(self, ticket: tuple[int, tuple[str, ...]], names) -> str:
        """Wait until it is this ticket's turn on one of `names` (some of its routers), and
        return that one (the first of `names` when several are). Its turn on a router lasts
        until the ticket is done: no older ticket can queue behind it, so work that holds
        one router while it waits for another never waits on work that waits for it."""
        number = ticket[0]
        with self._cond:
            return self._cond.wait_for(lambda: next(
                (n for n in names if self._may_run(self._queues[n], number)), None))

    @staticmethod
    def _may_run(queue: list[tuple[int, bool]], number: int) -> bool:
        """Its turn on this router: first in line, or shared behind shared tickets only."""
        for position, (ahead, shared) in enumerate(queue):
            if ahead == number:
                return position == 0 or shared
            if not shared:
                return False
        return False

    def share(self, ticket: tuple[int, tuple[str, ...]]) -> dict[str, int]:
        """Let the shared tickets behind this one (joins) run beside it from now on; any
        other ticket still waits for it to be done. Returns how many joins, per router,
        are queued right behind it and start now; none behind a join (they start with it,
        behind the router's arm, which counts them)."""
        number, names = ticket
        behind: dict[str, int] = {}
        with self._cond:
            for name in names:
                joining = any(n == number and shared for n, shared in self._queues[name])
                queue = self._queues[name] = [(n, shared or n == number) for n, shared in self._queues[name]]
                after = [shared for n, shared in queue if n > number]
                behind[name] = 0 if joining else next((i for i, shared in enumerate(after) if not shared), len(after))
            self._cond.notify_all()
        return behind

    def holds_back(self, ticket: tuple[int, tuple[str, ...]]) -> bool:
        """Some other work waits for this ticket to be done: a ticket not shared (not a
        join running beside it) is queued behind it on one of its routers. Work that waits
        for this one through other routers' turns has such a ticket at the end of its chain."""
        number, names = ticket
        with self._cond:
            return any(n > number and not shared for name in names for n, shared in self._queues.get(name, ()))

    def done(self, ticket: tuple[int, tuple[str, ...]]) -> None:
        number, names = ticket
        with self._cond:
            for name in names:
                self._queues[name] = [entry for entry in self._queues[name] if entry[0] != number]
                if not self._queues[name]:
                    del self._queues[name]
            self._cond.notify_all()


def routers_of(action) -> tuple[str, ...]:
    """The routers an Arm or a Release touches (a Capture's come from its incident)."""
    if isinstance(action, Arm):
        return tuple(r for r in (action.receiver, action.sender) if r)
    if isinstance(action, Release):
        return (action.router,)
    return ()


def joined_routers(action) -> tuple[str, ...]:
    """The routers an Arm joins (armed by another incident): its shared tickets."""
    return tuple(router for router, _holder in action.joins) if isinstance(action, Arm) else ()


class RouterWork:
    """Runs router work in a thread pool, router by router, and posts its answers to the inbox.

    Threads: `submit` and `idle` are called from the agent's loop thread; the work runs
    in pool threads ("work-N"), which only put events in the inbox. `_pending` counts
    work submitted and not yet answered, under `_pending_lock`.

    Invariants: the count is raised before the work is queued and lowered only after its
    answer is in the inbox, so `idle()` is never true while an answer is still to come.
    Every piece of work gets an answer: its own events, or `_failure_answer` if it raised."""

    def __init__(self, inbox: queue.Queue, *, workers: int):
        self.inbox = inbox
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="work")
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._turns = RouterTurns()
        self._current = threading.local()  # the ticket of the work this pool thread runs
        self._arming: set[int] = set()  # tickets of Arms not yet said armed (nor done), under _arming_cond
        self._before_arms = 0  # confirmations and readyings submitted, not ended (`ahead_of_polls`), same
        self._workers = workers
        self._in_pool = 0  # work submitted whose pool thread has not ended it (more than workers: some waits), same
        self._arming_cond = threading.Condition()

    def submit(self, fn, action, routers: tuple[str, ...], shared: tuple[str, ...] = ()) -> None:
        """Run `fn(action)` once each of `routers` is free of work asked for earlier (of
        `shared` routers: free of all but other shared work, see `RouterTurns`). An Arm's
        `fn` starts at once and waits for each router's turn itself (`each_in_turn`): its
        sender need not wait for the arm of a hub that is its receiver."""
        with self._pending_lock:
            self._pending += 1
        ticket = self._turns.take(routers, shared)
        with self._arming_cond:
            if isinstance(action, Arm):
                self._arming.add(ticket[0])
            self._in_pool += 1
            self._arming_cond.notify_all()  # work that yields to arms (`yield_to_arms`) may hold this back
        future = self._pool.submit(self._in_turn, ticket, fn, action, isinstance(action, Arm))
        future.add_done_callback(lambda f, a=action: self._done(f, a))

    def idle(self) -> bool:
        """No work in flight and nothing in the inbox."""
        with self._pending_lock:
            return self._pending == 0 and self.inbox.empty()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)

    def share_turn(self) -> dict[str, int]:
        """Called by the work running in this thread: what is left of it may run beside
        joins of its routers (an arm said armed, still staging its logs); a capture or a
        release of them still waits for it (`RouterTurns.share`). Returns the joins, per
        router, that start now."""
        ticket = getattr(self._current, "ticket", None)
        if ticket is None:
            return {}
        behind = self._turns.share(ticket)
        self._armed(ticket)
        return behind

    def each_in_turn(self, routers) -> Iterator[str]:
        """Called by an Arm's work, in its own thread (see `submit`): each of `routers` (of
        its own) as soon as it is this work's turn on it, in the order the turns come.
        Arming across a WAN, a flow's sender is armed while its receiver, a hub, is still
        being armed for the flow ahead (a second or more), instead of after it."""
        ticket = self._current.ticket
        waiting = list(routers)
        while waiting:
            name = self._turns.wait_any(ticket, waiting)
            waiting.remove(name)
            yield name

    def wait_for_arms(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until no Arm is on its way to "armed", and no work
        that comes before one is under way (`ahead_of_polls`): a backstop poll yields the
        jump host and the routers to them. False: one still is."""
        with self._arming_cond:
            return self._arming_cond.wait_for(self._arms_ended, timeout)

    def after_arms(self, fn: Callable[..., object], *args: object) -> object:
        """`fn(*args)` once no arming is under way (`wait_for_arms`, at most ARMS_FIRST_S):
        for work no arming waits for (a backstop poll's read, a later-lane confirmation)."""
        self.wait_for_arms(ARMS_FIRST_S)
        return fn(*args)

    def yield_to_arms(self, timeout: float) -> bool:
        """Called by work that said its Arm armed (`share_turn`) and has evidence left to
        read: wait (at most `timeout` s) as `wait_for_arms` does, but not while other work
        waits for this one: for its turns (an Arm queued behind it on a hub would then wait
        for it to end, until the timeout) or for a pool thread, every one being in use
        (armed flows yielding in every thread would hold back the Arms they wait for).
        False: it stopped waiting before the arms ended."""
        ticket = getattr(self._current, "ticket", None)
        if ticket is None:
            return self.wait_for_arms(timeout)
        with self._arming_cond:
            self._arming_cond.wait_for(lambda: self._arms_ended() or self._in_pool > self._workers
                                       or self._turns.holds_back(ticket), timeout)
            return self._arms_ended()

    def _arms_ended(self) -> bool:  # under _arming_cond
        return not self._arming and not self._before_arms

    def ahead_of_polls(self, pool: Executor, fn: Callable[..., object], *args: object) -> Future:
        """`pool.submit(fn, *args)` for work an arming may wait for (a syslog line's
        confirmation, the readying of its ends): from its submission to its end, a
        backstop poll's reads wait for it as they wait for an Arm. With logins no longer
        waiting on delayed acknowledgements, 20 poll threads keep both cores busy, and a
        confirmation met by a poll shared them."""
        with self._arming_cond:
            self._before_arms += 1

        def run() -> object:
            try:
                return fn(*args)
            finally:
                self._before_arm_ended()

        try:
            return pool.submit(run)
        except BaseException:
            self._before_arm_ended()
            raise

    def _before_arm_ended(self) -> None:
        with self._arming_cond:
            self._before_arms -= 1
            self._arming_cond.notify_all()

    def _armed(self, ticket) -> None:
        with self._arming_cond:
            if ticket[0] in self._arming:
                self._arming.discard(ticket[0])
                self._arming_cond.notify_all()

    def _in_turn(self, ticket, fn, action, router_by_router: bool):
        if not router_by_router:
            self._turns.wait(ticket)
        self._current.ticket = ticket
        try:
            return fn(action)
        finally:
            with self._arming_cond:
                self._in_pool -= 1
            self._current.ticket = None
            self._turns.done(ticket)
            self._armed(ticket)

    def _done(self, future: Future, action) -> None:
        try:
            for event in future.result() or ():
                self.inbox.put(event)
        except OSError as exc:  # a full or read-only disk under the bundles is no bug: one line, no traceback
            log.error("router work %s of incident %s: could not write: %s", type(action).__name__,
                      getattr(action, "incident_id", "-"), exc)
            for event in _failure_answer(action, exc):
                self.inbox.put(event)
        except Exception as exc:  # the core waits for an answer: a crash in the worker is one too
            log.exception("router work %r failed", action)
            for event in _failure_answer(action, exc):
                self.inbox.put(event)
        finally:
            with self._pending_lock:
                self._pending -= 1


def _failure_answer(action, exc: BaseException) -> list[Event]:
    """What the core is told when router work raised: an answer all the same, so the
    incident moves on (and its routers are released) instead of waiting for ever."""
    now = utcnow()
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, OSError) and isinstance(action, Capture):
        return [CaptureDone(action.incident_id, now, complete=False,
                            problem=f"the capture could not be kept on disk ({exc}); nothing of it is in a bundle")]
    if isinstance(action, Arm):
        return [ArmDone(action.incident_id, now, frozenset(), internal_error=what)]
    if isinstance(action, Capture):
        return [CaptureDone(action.incident_id, now, complete=False,
                            problem=f"internal error during the capture ({what}), see the agent log")]
    if isinstance(action, Release):
        return [ReleaseDone(action.incident_id, action.router, now, clean=False,
                            summary="internal error while disarming; the dead-man applet and the next start remain")]
    return []


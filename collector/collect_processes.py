"""`collect` spread over processes, so that a big collect uses more than one core.

Why: a collect's own work is CPU under one GIL (paramiko's packet handling in Python,
the prompt reader, TextFSM), so a collect of a few hundred routers is bound by one core
whatever `--workers` says: measured on 200 lab routers, its wall time equals its CPU time
(docs/performance.md, section 14). On a jump host with more cores the routers are shared
among child processes, each running `collect` with its share of the workers; each host's
outcome comes back through a pipe as soon as it is done, and the caller writes the bundle
in this process as before (`on_host_done`).

The children are forked, not spawned: they inherit the imports, the inventory, the
parsed templates and the known_hosts file already read, so none of the start-up is paid
again. They are forked before this process starts any thread (a fork copies only the
calling thread, so locks held by other threads would stay locked in the child forever),
and only where fork exists; elsewhere the collect runs in this process, as it does for
small collects, where another process costs more than it saves.

A child that dies (killed, out of memory) loses only the hosts it had not finished:
each is reported failed with the reason, the others' outcomes are kept, and the run's
bundle says it is incomplete.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone
from multiprocessing.connection import Connection, wait

from collector.collect import collect, require_read_only
from collector.command_results import CollectionRun, CommandResult, HostOutcome
from collector.hostkeys import KnownHosts
from collector.inventory import Host
from collector.parsing import TemplateRegistry
from collector.sessions import SessionPool
from collector.timeutil import utcnow

# Fewer routers than this per process, and another process is not worth having. A fork of
# the loaded command is cheap (an empty child started and gone: about 2 ms); measured as a
# whole `collector collect` on 2 cores, two processes against one: 8 routers 0.71 s vs 0.80 s (within the spread), 20 routers 0.73 s
# vs 0.83 s, 50 routers 1.01 s vs 1.22 s, 100 routers 1.32 s vs 1.59 s (medians of 4-5).
HOSTS_PER_PROCESS_AT_LEAST = 10


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, as a container or taskset sets it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def process_count(hosts: int, workers: int, *, asked: int = 0, cores: int | None = None,
                  threads: int | None = None) -> int:
    """How many processes a collect of `hosts` routers with `workers` at once uses.

    `asked` (`--processes`, 0 for the default): at most that many. The default: one per
    usable core, keeping HOSTS_PER_PROCESS_AT_LEAST routers each, on Linux (a jump host's
    system; macOS's own libraries are not safe to fork, which is why Python spawns there).
    Never more than the workers or the routers, and 1 where fork does not exist or where
    this process already runs other threads (a fork would copy their locks, not them).
    `cores` and `threads`: this process's, unless given."""
    threads = threading.active_count() if threads is None else threads
    if not hasattr(os, "fork") or threads > 1:
        return 1
    if asked:
        return max(1, min(asked, workers, hosts))
    if not sys.platform.startswith("linux"):
        return 1
    cores = usable_cores() if cores is None else cores
    return max(1, min(cores, workers, hosts // HOSTS_PER_PROCESS_AT_LEAST))


def collect_from_here(hosts: Sequence[Host], commands: Sequence[str], *, known_hosts: KnownHosts,
                      registry: TemplateRegistry, workers: int, processes: int = 0,
                      on_host_done: Callable[[HostOutcome], None] | None = None,
                      alongside: AbstractContextManager = nullcontext()) -> CollectionRun:
    """`collect` from this jump host (`collector collect`, `collector audit`): over forked
    processes where `process_count` says so (`processes` as `--processes`), else in this
    one; either way each router's session is closed when its commands are done.
    `alongside` is entered once the children are forked: a progress bar, whose thread
    must not be running at the fork.

    Raises:
        CommandNotReadOnly: a command is not a read-only show command; nothing was sent."""
    count = process_count(len(hosts), workers, asked=processes)
    if count > 1:
        with ForkedCollect(hosts, commands, known_hosts=known_hosts, registry=registry, workers=workers,
                           processes=count) as forked, alongside:
            return forked.gather(on_host_done)
    with SessionPool(known_hosts, max_sessions=workers, keep_open=False) as pool, alongside:
        return collect(hosts, commands, pool=pool, registry=registry, workers=workers, on_host_done=on_host_done)


class ForkedCollect:
    """`collect` over `processes` forked children, `workers` routers at once in all.

    Made (the children forked) before this process starts any thread of its own, such as
    a progress bar's; `gather` then takes the outcomes as they come. Used as a context
    manager, so that an error or a Ctrl-C in this process stops every child."""

    def __init__(self, hosts: Sequence[Host], commands: Sequence[str], *, known_hosts: KnownHosts,
                 registry: TemplateRegistry, workers: int, processes: int):
        """Raises:
            CommandNotReadOnly: a command is not a read-only show command; nothing was sent."""
        require_read_only(commands)
        sys.stdout.flush(), sys.stderr.flush()  # or a child's exit writes this process's pending output again
        self.hosts = list(hosts)
        self.run = CollectionRun(tuple(commands), datetime.now(timezone.utc))
        shares = [share for share in (self.hosts[i::processes] for i in range(processes)) if share]  # round robin
        context = multiprocessing.get_context("fork")
        self._children: dict[Connection, tuple[multiprocessing.process.BaseProcess, list[Host]]] = {}
        try:
            for index, share in enumerate(shares):
                # `workers` shared out: the first children get the remainder, each at least one
                child_workers = max(1, workers // len(shares) + (index < workers % len(shares)))
                receiving, sending = context.Pipe(duplex=False)
                child = context.Process(target=_collect_share, name=f"collect-{index + 1}", daemon=True,
                                        args=(sending, share, commands, known_hosts, registry, child_workers,
                                              os.getpid()))
                child.start()
                sending.close()  # the child's end: EOF here when the child exits, however it exits
                self._children[receiving] = (child, share)
        except BaseException:
            self.stop()
            raise

    def gather(self, on_host_done: Callable[[HostOutcome], None] | None = None) -> CollectionRun:
        """Every host's outcome, `on_host_done` called in this thread as each arrives; one
        CollectionRun in inventory order."""
        run = self.run
        while self._children:
            for connection in wait(list(self._children)):
                child, share = self._children[connection]
                try:
                    outcome: HostOutcome = connection.recv()
                except EOFError:  # the child is gone: what it had not sent was not read
                    del self._children[connection]
                    child.join()
                    done = {o.host for o in run.outcomes}
                    for host in share:
                        if host.name not in done:
                            _record(run, _not_read(host, run.commands, child.exitcode), on_host_done)
                    continue
                _record(run, outcome, on_host_done)
        order = {h.name: i for i, h in enumerate(self.hosts)}
        run.outcomes.sort(key=lambda o: order[o.host])
        run.ended = datetime.now(timezone.utc)
        return run

    def stop(self) -> None:
        """No child goes on reading routers (they only read: nothing is left half-done)."""
        for child, _share in self._children.values():
            child.terminate()
        for child, _share in self._children.values():
            child.join()
        self._children.clear()

    def __enter__(self) -> "ForkedCollect":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _record(run: CollectionRun, outcome: HostOutcome, on_host_done: Callable[[HostOutcome], None] | None) -> None:
    run.outcomes.append(outcome)
    if on_host_done:
        on_host_done(outcome)


def _not_read(host: Host, commands: tuple[str, ...], exitcode: int | None) -> HostOutcome:
    """A host whose child died before sending it: each command "not run", as for a router
    whose session died (collect_host), so every printer and the bundle list them."""
    how = f"was killed by signal {-exitcode}" if exitcode and exitcode < 0 else f"exited (code {exitcode})"
    reason = f"not read: the collect process it was given to {how} first"
    now = utcnow()
    results = tuple(CommandResult(host.name, command, None, now, now, error=reason, error_kind="skipped")
                    for command in commands)
    return HostOutcome(host.name, results, error=reason, error_kind="process-died")


def _collect_share(sending: Connection, hosts: list[Host], commands: Sequence[str], known_hosts: KnownHosts,
                   registry: TemplateRegistry, workers: int, parent: int) -> None:
    """In the child: collect its share, sending each host's outcome as it is done."""
    # A Ctrl-C reaches the whole process group: the parent alone answers it (it stops the
    # children and gives the bundle up), so no child prints a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with(parent)

    lock = threading.Lock()  # the worker threads share one pipe; a message is written whole

    def send(outcome: HostOutcome) -> None:
        with lock:
            sending.send(outcome)

    with SessionPool(known_hosts, max_sessions=workers, keep_open=False) as pool:
        collect(hosts, commands, pool=pool, registry=registry, workers=workers, on_host_done=send)
    sending.close()


def _end_with(parent: int) -> None:
    """A parent killed outright (SIGKILL, out of memory) cannot stop its children: on
    Linux the kernel sends this child a SIGTERM when the parent goes (PR_SET_PDEATHSIG),
    instead of letting it read routers for nobody. (Strictly, when the thread that forked
    it ends: the only thread, as `process_count` forks nowhere else.) Elsewhere the child
    finishes its share and exits on the broken pipe."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it went before the request was made
        os._exit(1)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

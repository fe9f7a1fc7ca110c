"""On-demand collection: run show commands on many routers, parse, keep everything.

A host's failure never stops the others; a command's failure never stops the host's next
command, unless the session itself died. Every result keeps the raw text, so a parse
failure or a refused command is still evidence.

Only read-only commands are run: `collect()` refuses anything else before it talks to any
router, whoever calls it (the command line, a playbook, the audit), by the one rule in
collector/readonly.py that the playbook's checks use too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from collector.bundle import BundleWriter, slug
from collector.command_results import CollectionRun, CommandResult, HostOutcome
from collector.errors import SafetyRefusal, UserInputError
from collector.inventory import Host, Inventory
from collector.parsing import TemplateRegistry
from collector.readonly import read_only_refusal
from collector.sessions import CommandRefused, CommandTimeout, SessionError, SessionSource
from collector.timeutil import utcnow


class CommandNotReadOnly(UserInputError, SafetyRefusal):
    """A command given to `collect` could change the router or write a file on it."""


def require_read_only(commands: Sequence[str]) -> None:
    """Refuse the lot if any command is not read-only (the rule of collector.readonly).

    Raises:
        CommandNotReadOnly: naming the first command that is not read-only, and why."""
    for command in commands:
        reason = read_only_refusal(command)
        if reason is not None:
            raise CommandNotReadOnly(f"refusing to run {command!r}: {reason}")


def collect_host(host: Host, commands: Sequence[str], *, pool: SessionSource, registry: TemplateRegistry) -> HostOutcome:
    """Run `commands` on one router through the pool; never raises for a device problem.
    The commands must have passed `require_read_only` (`collect` does it)."""
    t0 = time.perf_counter()
    results: list[CommandResult] = []

    def failed(command: str, started: datetime, exc: SessionError) -> CommandResult:
        return CommandResult(host.name, command, exc.output, started, utcnow(), error=exc.reason, error_kind=exc.kind)

    try:
        with pool.session(host) as session:
            for command in commands:
                started = utcnow()
                try:
                    output = session.run(command)
                except CommandRefused as exc:  # the router's answer is kept as evidence
                    results.append(failed(command, started, exc))
                    continue
                except CommandTimeout as exc:  # the next command first waits for the prompt to return
                    results.append(failed(command, started, exc))
                    continue
                except SessionError as exc:  # dropped: the session is gone
                    results.append(failed(command, started, exc))
                    raise
                parsed = registry.parse(host.platform, command, output.text)
                error, kind = (f"parse: {parsed.error}", "parse") if parsed.error and parsed.template else (None, None)
                # no template at all is not a failure: the raw text is kept
                results.append(replace(output, parsed=parsed.records if parsed.template else None,
                                       template=parsed.template, error=error, error_kind=kind))
    except SessionError as exc:
        done = {r.command for r in results}
        now = utcnow()
        for command in (c for c in commands if c not in done):
            results.append(CommandResult(host.name, command, None, now, now, error=f"not run: {exc.reason}",
                                         error_kind="skipped"))
        return HostOutcome(host.name, tuple(results), exc.reason, exc.kind, time.perf_counter() - t0)
    return HostOutcome(host.name, tuple(results), seconds=time.perf_counter() - t0)


def collect(
    hosts: Sequence[Host],
    commands: Sequence[str],
    *,
    pool: SessionSource,
    registry: TemplateRegistry,
    workers: int = 10,
    on_host_done: Callable[[HostOutcome], None] | None = None,
) -> CollectionRun:
    """Run `commands` on every host, `workers` at a time.

    Raises:
        CommandNotReadOnly: a command is not a read-only show command; nothing was sent."""
    require_read_only(commands)
    return run_per_host(hosts, commands, lambda h: collect_host(h, commands, pool=pool, registry=registry),
                        workers=workers, on_host_done=on_host_done)


def run_per_host(hosts: Sequence[Host], commands: Sequence[str], one: Callable[[Host], HostOutcome], *,
                 workers: int, on_host_done: Callable[[HostOutcome], None] | None = None) -> CollectionRun:
    """`one(host)` for every host, `workers` at a time, as one CollectionRun in inventory
    order (a local collect, or one through the site workers).

    `on_host_done(outcome)` runs in the worker thread that read the host, as soon as it is
    done (so it must be thread-safe): its work (a bundle's files) overlaps the other
    workers' network waits instead of queueing on one thread behind them."""
    def one_and_done(host: Host) -> HostOutcome:
        outcome = one(host)
        if on_host_done:
            on_host_done(outcome)
        return outcome

    run = CollectionRun(tuple(commands), datetime.now(timezone.utc))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="collect") as executor:
        for future in as_completed([executor.submit(one_and_done, h) for h in hosts]):
            run.outcomes.append(future.result())
    order = {h.name: i for i, h in enumerate(hosts)}
    run.outcomes.sort(key=lambda o: order[o.host])
    run.ended = datetime.now(timezone.utc)
    return run


# results.json: each command's outcome without its texts (asdict would deep-copy them first)
_RESULT_SUMMARY = ("command", "template", "error", "error_kind", "seconds")


class CollectionBundle:
    """A collect's bundle, written while the collection runs: each router's raw and parsed
    files as soon as it is done (`add`, from `collect(on_host_done=...)`: in the worker
    thread that read it, while the others are still being read), results.json and the
    manifest when sealed."""

    def __init__(self, out_root: Path, inventory: Inventory, started: datetime | None = None):
        stamp = (started or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
        self.inventory = inventory
        self.writer = BundleWriter(out_root, f"{stamp}_collect", secrets=inventory.secret_values())

    @property
    def redaction_memo(self) -> dict[str, str]:
        """What the bundle redacted (text -> redacted), for printing the same results."""
        return self.writer.redaction_memo

    def add(self, outcome: HostOutcome) -> None:
        for index, result in enumerate(outcome.results, start=1):
            stem = f"{outcome.host}/{index:02d}_{slug(result.command)}"
            if result.text is not None:
                self.writer.write_text(f"{stem}.txt", result.text)
            if result.parsed is not None:
                self.writer.write_json(f"{stem}.json", result.parsed)

    def seal(self, run: CollectionRun) -> Path:
        """results.json and manifest.json; the folder moves into place."""
        self.writer.write_json("results.json", [
            {"host": o.host, "ok": o.ok, "error": o.error, "error_kind": o.error_kind, "seconds": round(o.seconds, 3),
             "commands": [{k: getattr(r, k) for k in _RESULT_SUMMARY} for r in o.results]}
            for o in run.outcomes
        ])
        inventory = self.inventory
        manifest = {
            "kind": "collect",
            "complete": not run.failed,
            "incomplete_reasons": [f"{o.host}: {o.reason}" for o in run.failed],
            "inventory": {"sources": [str(p) for p in inventory.source], "sha256": inventory.digest},
            "commands": list(run.commands),
            "hosts": [o.host for o in run.outcomes],
            "started": run.started.isoformat(),
            "ended": (run.ended or run.started).isoformat(),
        }
        return self.writer.finish(manifest, tarball=False)

    def abandon(self) -> None:
        """The collection did not finish: drop the folder lock; an empty folder is removed,
        one with files is left for `recover_partial_bundles` to seal as incomplete."""
        self.writer.release()
        try:
            self.writer.work.rmdir()
        except OSError:
            pass


def write_collection_bundle(run: CollectionRun, *, out_root: Path, inventory: Inventory) -> Path:
    """raw and parsed output per host and command, results.json and manifest.json."""
    bundle = CollectionBundle(out_root, inventory, run.started)
    for outcome in run.outcomes:
        bundle.add(outcome)
    return bundle.seal(run)

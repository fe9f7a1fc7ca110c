"""The fleet audit's part that talks to routers: collect `AUDIT_COMMANDS` from each host
(read-only, through `collect()`), then hand the outputs to the pure audit in
collector/diagnose/audit.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from collector.collect import collect
from collector.collect_processes import ForkedCollect, process_count
from collector.command_results import HostOutcome
from collector.diagnose.audit import AUDIT_COMMANDS, FleetAudit, audit_run
from collector.hostkeys import KnownHosts
from collector.inventory import Host
from collector.parsing import TemplateRegistry
from collector.sessions import SessionPool, SessionSource


def audit_hosts(hosts: Sequence[Host], *, pool: SessionSource, registry: TemplateRegistry, workers: int = 10,
                on_host_done: Callable[[HostOutcome], None] | None = None, inventory: str | None = None) -> FleetAudit:
    """Collect the audit commands from `hosts` and audit them. A router that cannot be
    read is a row of the audit (`read` false), not a raise."""
    run = collect(hosts, AUDIT_COMMANDS, pool=pool, registry=registry, workers=workers, on_host_done=on_host_done)
    return audit_run(run, {h.name: h.platform for h in hosts}, inventory)


def audit_fleet(hosts: Sequence[Host], *, known_hosts: KnownHosts, registry: TemplateRegistry, workers: int = 20,
                processes: int = 0, inventory: str | None = None) -> FleetAudit:
    """`collector audit` from this jump host: its collection shared among forked processes
    as a collect's is (`processes` as `collect --processes`: 0 decides), else through one
    session pool."""
    processes = process_count(len(hosts), workers, asked=processes)
    if processes > 1:
        with ForkedCollect(hosts, AUDIT_COMMANDS, known_hosts=known_hosts, registry=registry, workers=workers,
                           processes=processes) as forked:
            run = forked.gather()
        return audit_run(run, {h.name: h.platform for h in hosts}, inventory)
    with SessionPool(known_hosts, max_sessions=workers) as pool:
        return audit_hosts(hosts, pool=pool, registry=registry, workers=workers, inventory=inventory)

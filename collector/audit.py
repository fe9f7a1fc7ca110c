"""The fleet audit's part that talks to routers: collect `AUDIT_COMMANDS` from each host
(read-only, through `collect_from_here`), then hand the outputs to the pure audit in
collector/diagnose/audit.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from collector.collect_processes import collect_from_here
from collector.diagnose.audit import AUDIT_COMMANDS, FleetAudit, audit_run
from collector.hostkeys import KnownHosts
from collector.inventory import Host
from collector.parsing import TemplateRegistry


def audit_fleet(hosts: Sequence[Host], *, known_hosts: KnownHosts, registry: TemplateRegistry, workers: int = 20,
                processes: int = 0, inventory: str | None = None) -> FleetAudit:
    """Collect the audit commands from `hosts` from this jump host (over forked processes
    as a collect's, `processes` as `--processes`) and audit them. A router that cannot be
    read is a row of the audit (`read` false), not a raise."""
    run = collect_from_here(hosts, AUDIT_COMMANDS, known_hosts=known_hosts, registry=registry, workers=workers,
                            processes=processes)
    return audit_run(run, {h.name: h.platform for h in hosts}, inventory)

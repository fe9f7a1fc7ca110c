"""The inventory YAML a running lab writes for the agent (Nornir SimpleInventory-like, one file).

Deterministic for a given fleet, seed and ports (no timestamps), so the repository's
committed inventory.yaml for the default lab (seed 0, 6 routers, base port 20001)
stays byte-identical to what `collector lab up` writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

LAB_HOST = "127.0.0.1"


def _scalar(value: Any) -> str:
    """One YAML scalar, quoted only when plain style would change its meaning."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[: -len("...")].strip()
    return text


def _flow_list(values: list[Any]) -> str:
    return "[" + ", ".join(_scalar(v) for v in values) + "]"


def inventory_text(fleet: Any, ports: Mapping[str, int], *, seed: int = 0) -> str:
    """The YAML text; per-host facts come from the model's `Fleet.inventory_data()`."""
    hosts = fleet.inventory_data(host=LAB_HOST, ports=dict(ports))
    if not hosts:
        raise ValueError("a lab inventory needs at least one router")
    first = next(iter(hosts.values()))
    defaults = {key: first[key] for key in ("username", "password", "secret")}
    roles: list[str] = []
    for host in hosts.values():
        role = host["data"].get("role")
        if role and role not in roles:
            roles.append(role)

    out = [
        f"# written by `collector lab up` (seed {seed}, {len(hosts)} routers, "
        f"base port {min(ports.values())}); lab credentials, not real ones",
        "defaults:",
        *(f"  {key}: {_scalar(value)}" for key, value in defaults.items()),
        "  connection_options: {host_key_policy: tofu}",
        "groups:",
        "  lab: {site: lab}",
    ]
    out += [f"  {role}s: {{data: {{role: {_scalar(role)}}}}}" for role in roles]
    out.append("hosts:")
    for name, host in hosts.items():
        out += [
            f"  {name}:",
            f"    hostname: {_scalar(host['hostname'])}",
            f"    port: {int(host['port'])}",
            f"    platform: {_scalar(host['platform'])}",
            f"    groups: {_flow_list(list(host['groups']))}",
            f"    addresses: {_flow_list([str(a) for a in host['addresses']])}",
            f"    data: {{model: {_scalar(host['data']['model'])}}}",
        ]
        # a router whose credentials differ from the first one carries its own
        out += [f"    {key}: {_scalar(host[key])}" for key, value in defaults.items() if host[key] != value]
    return "\n".join(out) + "\n"


def write_inventory(fleet: Any, ports: Mapping[str, int], path: Path, *, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(inventory_text(fleet, ports, seed=seed))
    os.replace(tmp, path)

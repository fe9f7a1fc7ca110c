"""The inventory YAML a running lab writes for the agent (Nornir SimpleInventory-like, one file).

Deterministic for a given fleet, seed and ports (no timestamps), so the repository's
committed inventory.yaml for the default lab (seed 0, 6 routers, base port 20001)
stays byte-identical to what `collector lab up` writes.
"""

from __future__ import annotations

import os
import re
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


def router_role(router: Any) -> str | None:
    """The router's role (hub, spoke, ...): from the model if it says, else from its name."""
    role = getattr(router, "role", None)
    if isinstance(role, str) and role:
        return role
    match = re.fullmatch(r"([a-z]+)\d+", router.name)
    return match.group(1) if match and match.group(1) in ("hub", "spoke") else None


def router_addresses(router: Any) -> list[str]:
    """Addresses the agent may see for this router: modelled WAN/tunnel sources and its syslog source."""
    addresses = [str(a) for a in router.addresses]
    if router.syslog_source not in addresses:
        addresses.append(router.syslog_source)
    return addresses


def inventory_text(fleet: Any, ports: Mapping[str, int], *, seed: int = 0) -> str:
    routers = list(fleet.routers.values())
    if not routers:
        raise ValueError("a lab inventory needs at least one router")
    first = routers[0]
    defaults = {"username": first.username, "password": first.password, "secret": first.enable_secret}
    roles: list[str] = []
    for router in routers:
        role = router_role(router)
        if role is not None and role not in roles:
            roles.append(role)

    out = [
        f"# written by `collector lab up` (seed {seed}, {len(routers)} routers, "
        f"base port {min(ports.values())}); lab credentials, not real ones",
        "defaults:",
        f"  username: {_scalar(defaults['username'])}",
        f"  password: {_scalar(defaults['password'])}",
        f"  secret: {_scalar(defaults['secret'])}",
        "  connection_options: {host_key_policy: tofu}",
        "groups:",
        "  lab: {site: lab}",
    ]
    out += [f"  {role}s: {{data: {{role: {_scalar(role)}}}}}" for role in roles]
    out.append("hosts:")
    for router in routers:
        role = router_role(router)
        groups = ["lab"] + ([f"{role}s"] if role else [])
        out += [
            f"  {router.name}:",
            f"    hostname: {LAB_HOST}",
            f"    port: {ports[router.name]}",
            f"    platform: {_scalar(router.platform)}",
            f"    groups: {_flow_list(groups)}",
            f"    addresses: {_flow_list(router_addresses(router))}",
            f"    data: {{model: {_scalar(router.model)}}}",
        ]
        # Routers whose credentials differ from the first one carry their own.
        for key, value in (
            ("username", router.username),
            ("password", router.password),
            ("secret", router.enable_secret),
        ):
            if value != defaults[key]:
                out.append(f"    {key}: {_scalar(value)}")
    return "\n".join(out) + "\n"


def write_inventory(fleet: Any, ports: Mapping[str, int], path: Path, *, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(inventory_text(fleet, ports, seed=seed))
    os.replace(tmp, path)

"""Inventories written for other tools, read into the collector's own shape.

Ansible (no ansible dependency): an INI or YAML inventory file, with the `group_vars/` and
`host_vars/` folders next to it, becomes the one-file form of `collector.inventory`
(defaults, groups, hosts), which is then validated and resolved exactly like a native
file. Errors name the Ansible file and line.

What is read:

    INI   `host key=value ...` lines under `[group]` (or before any section: ungrouped),
          `[group:vars]`, `[group:children]`, numeric ranges `rtr[01:20]`
    YAML  `all:` (or top-level groups) with `hosts:`, `vars:` and `children:`
    vars  ansible_host -> hostname, ansible_port -> port, ansible_user -> username,
          ansible_password / ansible_ssh_pass -> password, ansible_become_password /
          ansible_become_pass / ansible_enable_pass -> secret (enable), ansible_network_os
          (cisco.ios.ios, ios) -> platform, ansible_ssh_private_key_file
          -> netmiko key_file; `collector_<key>` sets the collector's own key (addresses,
          site, platform, port...); every other variable lands in `data`.
    `{{ lookup('env', 'VAR') }}` becomes `${VAR}` (resolved like any credential);
    any other Jinja expression and `!vault` values are refused with file and line: the
    agent cannot run Ansible's templating or vault.

Precedence follows Ansible's: host vars, then the host's groups deepest first (and, at one
depth, the alphabetically later group first, as Ansible lets it override), their parents,
then `all` (the defaults).
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from collector.yamlfile import LocatedYaml

log = logging.getLogger(__name__)

__all__ = ["AnsibleInventoryError", "LocatedData", "is_ansible_inventory", "load_ansible"]

_SECTION = re.compile(r"^\[(?P<name>[^\]:\s]+)(?::(?P<kind>vars|children))?\]\s*$")
_RANGE = re.compile(r"\[(?P<a>\d+):(?P<b>\d+)(?::(?P<step>\d+))?\]")
_ENV_LOOKUP = re.compile(r"""^\s*\{\{\s*lookup\(\s*['"]env['"]\s*,\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\)\s*\}\}\s*$""")
_ANSIBLE_KEYS = {"hosts", "children", "vars"}

# ansible_network_os (short and collection names) -> the collector's platform.
NETWORK_OS = {
    # cisco.ios.ios serves IOS and IOS-XE alike: set `collector_platform: cisco_xe` on
    # IOS-XE hosts or groups (some commands differ).
    "ios": "cisco_ios",
    "cisco.ios.ios": "cisco_ios",
}
_VAR_TO_KEY = {
    "ansible_host": "hostname",
    "ansible_ssh_host": "hostname",
    "ansible_port": "port",
    "ansible_ssh_port": "port",
    "ansible_user": "username",
    "ansible_ssh_user": "username",
    "ansible_password": "password",
    "ansible_ssh_pass": "password",
    "ansible_become_password": "secret",
    "ansible_become_pass": "secret",
    "ansible_enable_pass": "secret",
    "ansible_network_os": "platform",
}
# Connection plumbing with no meaning for the collector (it always uses SSH CLI).
_IGNORED = {"ansible_connection", "ansible_become", "ansible_become_method", "ansible_python_interpreter",
            "ansible_command_timeout", "ansible_network_cli_ssh_type", "ansible_host_key_checking"}
_OWN_KEYS = {"hostname", "port", "username", "password", "secret", "platform", "device_type", "site", "addresses",
             "data"}
_COLLECTOR_PLATFORMS = ("cisco_ios", "cisco_xe")


class AnsibleInventoryError(Exception):
    def __init__(self, message: str, path: Path, line: int | None):
        self.message, self.path, self.line = message, path, line
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


@dataclass(frozen=True)
class LocatedData(LocatedYaml):
    """Plain data built from a non-YAML source, with the source line of each part."""

    lines: Mapping[tuple, int] = field(default_factory=dict)
    sources: tuple[Path, ...] = ()  # other files read (group_vars/, host_vars/)

    def line_of(self, loc: tuple[str | int, ...]) -> int | None:
        steps = tuple(s for s in loc if not (isinstance(s, str) and "[" in s))
        for k in range(len(steps), -1, -1):
            line = self.lines.get(steps[:k])
            if line is not None:
                return line
        return None


# --------------------------------------------------------------------------- detection


def is_ansible_inventory(path: Path) -> bool:
    """An Ansible INI file, or a YAML file whose top level is groups (hosts/children/vars)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return False
    if path.suffix.lower() in (".ini", ".cfg") or (path.suffix.lower() not in (".yaml", ".yml", ".json")
                                                   and _looks_ini(text)):
        return True
    if path.suffix.lower() not in (".yaml", ".yml"):
        return False
    try:  # libyaml when present: this look is made before every inventory load
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe loader
    except yaml.YAMLError:
        # `!vault` values make safe_load fail: the shape decides, read without tags
        data = _shape_only(text)
    except (ValueError, OverflowError):
        return False  # a malformed timestamp and the like: the inventory loader names its line
    if not isinstance(data, dict) or not data or set(data) & {"defaults", "groups"}:
        return False
    if "hosts" in data and not set(data) - {"hosts", "vars", "children"}:
        return False  # a one-file inventory (ours or Nornir's) with only hosts:
    return all(v is None or (isinstance(v, dict) and set(v) <= _ANSIBLE_KEYS and v) for v in data.values()) \
        and any(isinstance(v, dict) for v in data.values())


def _looks_ini(text: str) -> bool:
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        return bool(_SECTION.match(line)) or ("=" in line and ":" not in line.split("=")[0])
    return False


def _shape_only(text: str) -> Any:
    class Loose(yaml.SafeLoader):
        pass

    Loose.add_multi_constructor("!", lambda loader, suffix, node: None)
    try:
        return yaml.load(text, Loader=Loose)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError:
        return None


# --------------------------------------------------------------------------- the model


@dataclass
class _Var:
    value: Any
    line: int
    path: Path


@dataclass
class _Group:
    name: str
    line: int
    vars: dict[str, _Var] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


@dataclass
class _Model:
    path: Path
    groups: dict[str, _Group] = field(default_factory=dict)
    hosts: dict[str, dict[str, _Var]] = field(default_factory=dict)
    host_lines: dict[str, int] = field(default_factory=dict)

    def group(self, name: str, line: int) -> _Group:
        if name not in self.groups:
            self.groups[name] = _Group(name, line)
        return self.groups[name]

    def host(self, name: str, line: int) -> dict[str, _Var]:
        if name not in self.hosts:
            self.hosts[name] = {}
            self.host_lines[name] = line
        return self.hosts[name]


class _Vault:
    """An `!vault` value: refused with its line."""


# --------------------------------------------------------------------------- INI


def _ini_value(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, (int, float, bool, list, dict)) else text


def _split_pairs(text: str, path: Path, line: int) -> list[tuple[str, Any]]:
    """`a=1 b="x y" c='z'` as pairs; a quoted value may hold spaces."""
    import shlex

    try:
        tokens = shlex.split(text, comments=True, posix=True)
    except ValueError as exc:
        raise AnsibleInventoryError(f"cannot read this line: {exc}", path, line) from None
    pairs = []
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq or not key:
            raise AnsibleInventoryError(f"expected key=value, got {token!r}", path, line)
        pairs.append((key, _ini_value(value)))
    return pairs


def _expand_range(pattern: str, path: Path, line: int) -> list[str]:
    m = _RANGE.search(pattern)
    if m is None:
        return [pattern]
    a, b = m.group("a"), m.group("b")
    step = int(m.group("step") or 1)
    if int(b) < int(a) or step < 1 or (int(b) - int(a)) // step > 10_000:
        raise AnsibleInventoryError(f"bad host range {m.group(0)}", path, line)
    width = len(a) if a.startswith("0") else 0
    names = []
    for n in range(int(a), int(b) + 1, step):
        names.extend(_expand_range(pattern[: m.start()] + str(n).zfill(width) + pattern[m.end():], path, line))
    return names


def _read_ini(path: Path, text: str) -> _Model:
    model = _Model(path)
    model.group("all", 1)
    section, kind = "ungrouped", None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = _SECTION.match(line)
        if m:
            section, kind = m.group("name"), m.group("kind")
            model.group(section, number)
            continue
        if line.startswith("["):
            raise AnsibleInventoryError(f"not a section header: {line!r}", path, number)
        group = model.group(section, number)
        if kind == "vars":
            key, eq, value = line.partition("=")
            if not eq:
                raise AnsibleInventoryError(f"expected key=value in [{section}:vars], got {line!r}", path, number)
            group.vars[key.strip()] = _Var(_ini_value(value), number, path)
        elif kind == "children":
            child = line.split()[0]
            model.group(child, number)
            group.children.append(child)
        else:
            name, _, rest = line.partition(" ")
            pairs = _split_pairs(rest, path, number) if rest.strip() else []
            for host in _expand_range(name, path, number):
                hvars = model.host(host, number)
                for key, value in pairs:
                    hvars[key] = _Var(value, number, path)
                if host not in group.hosts:
                    group.hosts.append(host)
    return model


# --------------------------------------------------------------------------- YAML


def _yaml_loader(text: str) -> yaml.SafeLoader:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!vault", lambda loader, node: _Vault())
    Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    return Loader(text)


def _read_yaml(path: Path, text: str) -> _Model:
    loader = _yaml_loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise AnsibleInventoryError(exc.problem or "bad YAML", path, mark.line + 1 if mark else None) from None
    model = _Model(path)
    model.group("all", 1)
    if not isinstance(root, MappingNode):
        raise AnsibleInventoryError("expected groups at the top level (all:, or group names)", path, 1)
    for key, value in root.value:
        _yaml_group(model, loader, str(loader.construct_object(key)), key.start_mark.line + 1, value, path)
    return model


def _yaml_group(model: _Model, loader, name: str, line: int, node: Node, path: Path) -> None:
    group = model.group(name, line)
    if _is_null(node):
        return
    if not isinstance(node, MappingNode):
        raise AnsibleInventoryError(f"group {name}: expected hosts:, vars: or children:", path, line)
    for key, value in node.value:
        what = loader.construct_object(key)
        at = key.start_mark.line + 1
        if what == "hosts":
            if _is_null(value):
                continue
            if not isinstance(value, MappingNode):
                raise AnsibleInventoryError(f"group {name}: hosts: must be a mapping of host names", path, at)
            for hkey, hvalue in value.value:
                hline = hkey.start_mark.line + 1
                for host in _expand_range(str(loader.construct_object(hkey)), path, hline):
                    hvars = model.host(host, hline)
                    hvars.update(_yaml_vars(loader, hvalue, path, f"host {host}"))
                    if host not in group.hosts:
                        group.hosts.append(host)
        elif what == "vars":
            group.vars.update(_yaml_vars(loader, value, path, f"group {name}"))
        elif what == "children":
            if _is_null(value):
                continue
            if not isinstance(value, MappingNode):
                raise AnsibleInventoryError(f"group {name}: children: must be a mapping of groups", path, at)
            for ckey, cvalue in value.value:
                child = str(loader.construct_object(ckey))
                _yaml_group(model, loader, child, ckey.start_mark.line + 1, cvalue, path)
                if child not in group.children:
                    group.children.append(child)
        else:
            raise AnsibleInventoryError(f"group {name}: unknown key {what!r} (expected hosts, vars, children)", path, at)


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _yaml_vars(loader, node: Node, path: Path, owner: str) -> dict[str, _Var]:
    if _is_null(node):
        return {}
    if not isinstance(node, MappingNode):
        raise AnsibleInventoryError(f"{owner}: expected a mapping of variables", path, node.start_mark.line + 1)
    out = {}
    for key, value in node.value:
        out[str(loader.construct_object(key))] = _Var(loader.construct_object(value, deep=True),
                                                      key.start_mark.line + 1, path)
    return out


def _vars_file(path: Path, read: list[Path]) -> dict[str, _Var]:
    """A group_vars / host_vars YAML file (its top level is the variables)."""
    read.append(path)
    text = path.read_text(encoding="utf-8-sig")
    loader = _yaml_loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise AnsibleInventoryError(exc.problem or "bad YAML", path, mark.line + 1 if mark else None) from None
    if root is None:
        return {}
    return _yaml_vars(loader, root, path, "variables")


def _side_vars(folder: Path, name: str, read: list[Path]) -> dict[str, _Var]:
    """group_vars/NAME.yml, group_vars/NAME.yaml, group_vars/NAME (file) or group_vars/NAME/*.yml."""
    out: dict[str, _Var] = {}
    for candidate in (folder / name, folder / f"{name}.yml", folder / f"{name}.yaml"):
        if candidate.is_file():
            out.update(_vars_file(candidate, read))
        elif candidate.is_dir():
            for part in sorted(candidate.iterdir()):
                if part.suffix in (".yml", ".yaml") and part.is_file():
                    out.update(_vars_file(part, read))
    return out


# --------------------------------------------------------------------------- to the collector's shape


def load_ansible(path: Path) -> LocatedData:
    """The Ansible inventory at `path` as collector one-file inventory data."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    ini = path.suffix.lower() in (".ini", ".cfg") or (path.suffix.lower() not in (".yaml", ".yml") and _looks_ini(text))
    model = _read_ini(path, text) if ini else _read_yaml(path, text)
    # group_vars/ and host_vars/ files override the inventory's own variables (as in Ansible).
    group_vars, host_vars = path.parent / "group_vars", path.parent / "host_vars"
    read: list[Path] = []
    if group_vars.is_dir():
        for name, group in model.groups.items():
            group.vars.update(_side_vars(group_vars, name, read))
    if host_vars.is_dir():
        for name, hvars in model.hosts.items():
            hvars.update(_side_vars(host_vars, name, read))
    doc = _to_collector(model)
    return LocatedData(doc.path, doc.data, None, lines=doc.lines, sources=tuple(read))


def _depths(model: _Model) -> dict[str, int]:
    parents: dict[str, list[str]] = {}
    for g in model.groups.values():
        for child in g.children:
            parents.setdefault(child, []).append(g.name)
    depth: dict[str, int] = {}

    def of(name: str, trail: tuple[str, ...] = ()) -> int:
        if name in depth:
            return depth[name]
        if name in trail:
            return 0  # a cycle: the collector's own check reports it
        ps = [p for p in parents.get(name, []) if p != "all"]
        depth[name] = 1 + max((of(p, trail + (name,)) for p in ps), default=0)
        return depth[name]

    for name in model.groups:
        of(name)
    return depth


def _to_collector(model: _Model) -> LocatedData:
    lines: dict[tuple, int] = {(): 1}
    depth = _depths(model)
    parents: dict[str, list[str]] = {}
    for g in model.groups.values():
        for child in g.children:
            if g.name != "all":
                parents.setdefault(child, []).append(g.name)

    def order(names: list[str]) -> list[str]:
        # Ansible: deeper groups override shallower; at one depth, the later name wins.
        # Here the first listed wins, so: deepest first, then reverse alphabetical.
        return sorted(names, key=lambda n: (-depth.get(n, 0), [-ord(c) for c in n]))

    # `ungrouped` (hosts before any section) is a group only when it carries something.
    skip = {"all"}
    bare = model.groups.get("ungrouped")
    if bare is not None and not bare.vars and not bare.children:
        skip.add("ungrouped")
    groups: dict[str, dict] = {}
    membership: dict[str, list[str]] = {}
    for name, g in model.groups.items():
        if name in skip:
            continue
        entry = _entry(g.vars, ("groups", name), lines, model.path, f"group {name}")
        if parents.get(name):
            entry["groups"] = order(parents[name])
        groups[name] = entry
        lines[("groups", name)] = g.line
        for host in g.hosts:
            membership.setdefault(host, []).append(name)
    hosts: dict[str, dict] = {}
    for name, hvars in model.hosts.items():
        platform = _effective(model, name, membership, parents, order)
        if platform not in _COLLECTOR_PLATFORMS:
            # Ansible inventories list jump hosts, servers and other vendors' devices too.
            log.info("%s: host %s skipped: not an IOS/IOS-XE router (ansible_network_os %s)",
                        model.path, name, platform or "not set")
            continue
        entry = _entry(hvars, ("hosts", name), lines, model.path, f"host {name}")
        if membership.get(name):
            entry["groups"] = order(membership[name])
        hosts[name] = entry
        lines[("hosts", name)] = model.host_lines[name]
    defaults = _entry(model.groups["all"].vars, ("defaults",), lines, model.path, "group all")
    data: dict[str, Any] = {"hosts": hosts}
    if groups:
        data["groups"] = groups
    if defaults:
        data["defaults"] = defaults
    return LocatedData(model.path, data, None, lines=lines)


def _effective(model: _Model, host: str, membership: dict[str, list[str]], parents: dict[str, list[str]],
               order) -> str | None:
    """The platform the host ends up with (collector_platform over ansible_network_os, host
    over groups over all), as a collector platform name when it is one."""
    from collector.inventory import PLATFORM_ALIASES

    chain: list[dict[str, _Var]] = [model.hosts[host]]
    seen: list[str] = []

    def walk(name: str) -> None:
        if name in seen:
            return
        seen.append(name)
        for parent in order(parents.get(name, [])):
            walk(parent)

    for name in order(membership.get(host, [])):
        walk(name)
    chain += [model.groups[g].vars for g in seen] + [model.groups["all"].vars]
    for key in ("collector_device_type", "collector_platform", "ansible_network_os"):
        for variables in chain:
            if key in variables:
                value = str(variables[key].value).strip().lower()
                if key == "ansible_network_os":
                    return NETWORK_OS.get(value, value)
                return PLATFORM_ALIASES.get(value, value)
    return None


def _entry(variables: dict[str, _Var], prefix: tuple, lines: dict, path: Path, owner: str) -> dict:
    entry: dict[str, Any] = {}
    data: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    # `collector_<key>` is the more specific word: applied after the ansible_ variables.
    for var, item in sorted(variables.items(), key=lambda kv: kv[0].startswith("collector_")):
        value = item.value
        if isinstance(value, _Vault):
            raise AnsibleInventoryError(f"{owner}: {var} is vault-encrypted; the collector cannot decrypt Ansible "
                                        "vault: use ${ENV_VAR} or keyring:SERVICE/USER", item.path, item.line)
        if isinstance(value, str) and "{{" in value:
            m = _ENV_LOOKUP.match(value)
            if m is None:
                raise AnsibleInventoryError(f"{owner}: {var} is a Jinja expression; only "
                                            "{{ lookup('env', 'VAR') }} is understood (as ${VAR})", item.path, item.line)
            value = "${" + m.group(1) + "}"
        if var == "ansible_ssh_private_key_file":
            extras.update({"key_file": str(Path(str(value)).expanduser()), "use_keys": True})
            lines[prefix + ("connection_options", "netmiko", "extras")] = item.line
            continue
        if var in _IGNORED:
            continue
        key = _VAR_TO_KEY.get(var)
        if key is None and var.startswith("collector_") and var[len("collector_"):] in _OWN_KEYS:
            key = var[len("collector_"):]
        if key is None:
            data[var] = value
            lines[prefix + ("data", var)] = item.line
            continue
        if key == "platform" and var == "ansible_network_os":
            value = NETWORK_OS.get(str(value).lower(), value)
        if key == "data" and isinstance(value, dict):
            data.update(value)
            continue
        entry[key] = value
        lines[prefix + (key,)] = item.line
    if data:
        entry["data"] = data
    if extras:
        entry["connection_options"] = {"netmiko": {"extras": extras}}
    return entry

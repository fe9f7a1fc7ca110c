"""The inventory: which routers exist, how to reach them, with which credentials.

The format is Nornir's SimpleInventory, so an engineer's existing Nornir files load as
they are. Three ways to give it:

* one file with top-level `defaults:`, `groups:` and `hosts:` sections;
* a folder with `hosts.yaml` (required), `groups.yaml` and `defaults.yaml` (optional),
  or the path of such a `hosts.yaml` (its neighbours are picked up);
* explicit paths, with `load_inventory_files(hosts, groups, defaults)`;
* an Ansible inventory (INI or YAML, with its group_vars/ and host_vars/), or a folder
  holding one: read by `collector.inventory_sources` into this same shape.

`platform` (or netmiko's `device_type`) also takes the names Nornir, NAPALM, netmiko and
Ansible users write (`ios`, `iosxe`, `cisco_ios_ssh`, `cisco_iosxe`, `cisco.ios.ios`, ...):
see PLATFORM_ALIASES.

Keys of a host (groups and defaults take the same keys, except `addresses` which is
per host, and `groups` which defaults do not have):

    hostname            address or DNS name (default: the host's name)
    port                SSH port (default 22)
    username, password  credentials: plain, ${ENV_VAR}, keyring:SERVICE/USER or prompt
    secret              enable secret (same syntaxes)
    platform            cisco_ios | cisco_xe (an ASR1000 or any IOS-XE router is cisco_xe)
    groups              list of group names (groups may have parent `groups:` too)
    site                free text, e.g. the data centre
    data                free-form mapping, never validated
    addresses           IP addresses the router owns (tunnel sources, loopbacks), used to
                        find the other end of a flow
    connection_options  conn_timeout, read_timeout, banner_timeout, auth_timeout (seconds),
                        retries, host_key_policy (tofu | strict | accept-any),
                        ssh_config_file, proxy_jump ([user@]jumphost[:port]),
                        and Nornir's per-plugin sections: `netmiko:` with hostname, port,
                        username, password, platform and extras (secret, conn_timeout, ...)

Inheritance, per key: the host, then its groups in the order listed (each group before
its own parents, depth first), then defaults; the first that sets a key wins. `data` is
merged key by key the same way. As in Nornir, a value under `connection_options.netmiko`
(on any level) wins over the plain key (on any level): `platform: ios` for NAPALM on the
host and `connection_options: {netmiko: {platform: cisco_ios}}` in defaults gives
cisco_ios.

Every mistake is one line naming the file and line, or the host.
"""

from __future__ import annotations

import functools

import hashlib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from collector.credentials import MASK, CredentialError, CredentialResolver, Secret
from collector.errors import UserInputError
from collector.yamlfile import LocatedYaml, YamlError, load_yaml, validation_error

__all__ = [
    "PLATFORMS",
    "HOST_KEY_POLICIES",
    "InventoryError",
    "SshOptions",
    "Host",
    "Group",
    "Inventory",
    "load_inventory",
    "load_inventory_files",
]

PLATFORMS = ("cisco_ios", "cisco_xe")
HOST_KEY_POLICIES = ("tofu", "strict", "accept-any")
# Platform names as Nornir, NAPALM, netmiko and Ansible users write them. NAPALM's `ios`
# driver serves IOS and IOS-XE alike; it is taken as cisco_ios (write iosxe/cisco_xe for
# IOS-XE routers: some commands differ).
PLATFORM_ALIASES = {
    "ios": "cisco_ios",
    "cisco_ios_ssh": "cisco_ios",
    "cisco.ios.ios": "cisco_ios",
    "iosxe": "cisco_xe",
    "ios-xe": "cisco_xe",
    "ios_xe": "cisco_xe",
    "cisco_iosxe": "cisco_xe",
    "cisco_ios_xe": "cisco_xe",
    "cisco_xe_ssh": "cisco_xe",
    # NetBox platform slugs as commonly created (nornir_netbox with use_platform_slug)
    "cisco-ios": "cisco_ios",
    "cisco-ios-xe": "cisco_xe",
    "cisco-iosxe": "cisco_xe",
}
_PLATFORM_HINTS = {
    "asr1000": "cisco_xe",
    "asr1k": "cisco_xe",
    "csr1000v": "cisco_xe",
    "cisco_ios_xe": "cisco_xe",
}
# Host names become parts of file names in bundles and state: keep them tame.
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,62}))*\.?$")
_JUMP = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_.\-]*@)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?::\d{1,5})?$")
# netmiko keyword arguments (Nornir `extras`) that map onto our own options.
_EXTRAS_TO_OPTIONS = {
    "conn_timeout": "conn_timeout",
    "banner_timeout": "banner_timeout",
    "auth_timeout": "auth_timeout",
    "read_timeout_override": "read_timeout",
    "ssh_config_file": "ssh_config_file",
}
_SECRET_WORDS = ("pass", "secret", "key")  # extras whose values masked() hides


class InventoryError(UserInputError):
    """A mistake in the inventory; `str()` is one line: `path:line: message` or
    `host NAME: message`."""

    def __init__(self, message: str, *, path: Path | None = None, line: int | None = None):
        self.path, self.line = path, line
        self.message = " ".join(message.split())
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + self.message)


# ---------------------------------------------------------------------------------------
# What the files may contain (validated with pydantic; unknown keys are errors)


def _to_text(value: Any) -> Any:
    # `password: 12345` is an int to YAML; a credential is text.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _check_hostname(value: str) -> str:
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        pass
    if not _DNS_NAME.match(value):
        raise ValueError(f"{value!r} is neither an IP address nor a DNS name")
    return value


def _check_address(value: Any) -> str:
    if not isinstance(value, str):
        value = str(value)
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


Text = Annotated[str, BeforeValidator(_to_text)]
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0, le=3600)]
Hostname = Annotated[str, pydantic.AfterValidator(_check_hostname)]
Address = Annotated[str, BeforeValidator(_check_address)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NornirConnection(_Strict):
    """Nornir's per-plugin connection options (`connection_options: {netmiko: ...}`)."""

    hostname: Hostname | None = None
    port: Port | None = None
    username: Text | None = None
    password: Text | None = None
    platform: str | None = None
    extras: dict[str, Any] | None = None


class ConnectionOptionsEntry(_Strict):
    conn_timeout: Seconds | None = None
    read_timeout: Seconds | None = None
    banner_timeout: Seconds | None = None
    auth_timeout: Seconds | None = None
    retries: Annotated[int, Field(ge=0, le=10)] | None = None
    host_key_policy: Literal["tofu", "strict", "accept-any"] | None = None
    ssh_config_file: str | None = None
    proxy_jump: str | None = None
    netmiko: NornirConnection | None = None
    # Sections for other Nornir plugins are accepted (existing files have them) and unused.
    napalm: NornirConnection | None = None
    scrapli: NornirConnection | None = None
    paramiko: NornirConnection | None = None
    netconf: NornirConnection | None = None
    scrapli_netconf: NornirConnection | None = None
    ncclient: NornirConnection | None = None

    @pydantic.field_validator("proxy_jump")
    @classmethod
    def _one_jump(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "," in value:
            raise ValueError("only one jump host is supported (netmiko's ProxyJump limit); use ssh_config_file for chains")
        if not _JUMP.match(value):
            raise ValueError(f"{value!r} is not [user@]host[:port]")
        return value


class DefaultsEntry(_Strict):
    hostname: Hostname | None = None
    port: Port | None = None
    username: Text | None = None
    password: Text | None = None
    secret: Text | None = None
    platform: str | None = None
    device_type: str | None = None  # netmiko's name for the platform; wins over platform on one level
    site: Text | None = None
    data: dict[str, Any] | None = None
    connection_options: ConnectionOptionsEntry | None = None


class GroupEntry(DefaultsEntry):
    groups: Annotated[list[str], BeforeValidator(_as_list)] | None = None


class HostEntry(GroupEntry):
    addresses: Annotated[list[Address], BeforeValidator(_as_list)] | None = None


class InventoryFile(_Strict):
    """The one-file form."""

    defaults: DefaultsEntry | None = None
    groups: dict[str, GroupEntry | None] | None = None
    hosts: dict[str, HostEntry | None] | None = None


_HOSTS = pydantic.TypeAdapter(dict[str, HostEntry | None])
_GROUPS = pydantic.TypeAdapter(dict[str, GroupEntry | None])
_DEFAULTS = pydantic.TypeAdapter(DefaultsEntry | None)


# ---------------------------------------------------------------------------------------
# Resolved values (what the rest of the program uses)


@dataclass(frozen=True)
class SshOptions:
    conn_timeout: float = 10.0
    read_timeout: float = 30.0  # default per-command read timeout
    banner_timeout: float = 15.0
    auth_timeout: float = 20.0
    retries: int = 2
    host_key_policy: str = "tofu"
    ssh_config_file: Path | None = None  # the file netmiko reads (generated when proxy_jump is set)
    proxy_jump: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)  # other netmiko keyword arguments from Nornir extras


@dataclass(frozen=True)
class Host:
    name: str
    hostname: str
    port: int
    platform: str
    username: str | None
    password: Secret | None
    secret: Secret | None
    groups: tuple[str, ...]  # as listed on the host
    site: str | None
    data: Mapping[str, Any]
    addresses: tuple[str, ...]
    options: SshOptions
    member_of: tuple[str, ...] = ()  # all groups, parents included, in inheritance order

    def __repr__(self) -> str:
        return f"Host(name={self.name!r}, hostname={self.hostname!r}, port={self.port}, platform={self.platform!r})"


@dataclass(frozen=True)
class Group:
    name: str
    groups: tuple[str, ...]  # parent groups
    site: str | None
    platform: str | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Inventory:
    hosts: dict[str, Host]
    groups: dict[str, Group]
    source: list[Path]
    digest: str  # sha256 of the source files' bytes, in `source` order

    def select(self, *, hosts: list[str] | None = None, group: str | None = None, platform: str | None = None) -> list[Host]:
        """Hosts matching every filter given, in inventory order. Membership of a group
        includes membership through child groups. Unknown names are errors."""
        if hosts is not None:
            unknown = [h for h in hosts if h not in self.hosts]
            if unknown:
                raise InventoryError(f"unknown host{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        if group is not None and group not in self.groups:
            raise InventoryError(f"unknown group: {group}")
        if platform is not None and platform not in PLATFORMS:
            raise InventoryError(f"unknown platform: {platform} (expected {' or '.join(PLATFORMS)})")
        wanted = set(hosts) if hosts is not None else None
        return [
            h
            for h in self.hosts.values()
            if (wanted is None or h.name in wanted)
            and (group is None or group in h.member_of)
            and (platform is None or h.platform == platform)
        ]

    def owner_of(self, address: str) -> Host | None:
        """The host whose `addresses` include `address` (any textual IP form)."""
        try:
            wanted = ipaddress.ip_address(str(address).strip()).compressed
        except ValueError:
            return None
        return self._owners().get(wanted)

    def _owners(self) -> dict[str, Host]:
        # Built once (the hosts do not change once loaded): a syslog receiver asks for each
        # new source address, and 10,000 routers have 40,000 addresses.
        index = self.__dict__.get("_owner_index")
        if index is None:
            index = {a: h for h in self.hosts.values() for a in h.addresses}
            object.__setattr__(self, "_owner_index", index)  # a cache, not a field of this frozen record
        return index

    def secret_values(self) -> list[str]:
        """Every credential text (passwords, enable secrets), for redaction, longest first."""
        # Made once, as `_owners`: an incident's staging asks at every save (100 times in a
        # burst of 50 flows, 2 ms each on 200 routers).
        known = self.__dict__.get("_secret_values")
        if known is None:
            known = self._collect_secret_values()
            object.__setattr__(self, "_secret_values", known)
        return list(known)

    def _collect_secret_values(self) -> tuple[str, ...]:
        values: set[str] = set()
        for h in self.hosts.values():
            for s in (h.password, h.secret):
                if s:
                    values.add(s.reveal())
            for key, value in h.options.extras.items():
                if _looks_secret(key) and isinstance(value, str) and value:
                    values.add(value)
        return tuple(sorted(values, key=lambda v: (-len(v), v)))

    def masked(self) -> dict:
        """The resolved inventory as plain data with every secret shown as ********."""
        return {
            "source": [str(p) for p in self.source],
            "digest": self.digest,
            "hosts": {name: _masked_host(h) for name, h in self.hosts.items()},
            "groups": {
                name: {"groups": list(g.groups), "site": g.site, "platform": g.platform, "data": dict(g.data)}
                for name, g in self.groups.items()
            },
        }


def _looks_secret(key: str) -> bool:
    low = key.lower()
    return any(word in low for word in _SECRET_WORDS) and not low.endswith(("_file", "_filename"))


def _masked_host(h: Host) -> dict:
    o = h.options
    return {
        "hostname": h.hostname,
        "port": h.port,
        "platform": h.platform,
        "username": h.username,
        "password": MASK if h.password is not None else None,
        "secret": MASK if h.secret is not None else None,
        "groups": list(h.groups),
        "member_of": list(h.member_of),
        "site": h.site,
        "data": dict(h.data),
        "addresses": list(h.addresses),
        "options": {
            "conn_timeout": o.conn_timeout,
            "read_timeout": o.read_timeout,
            "banner_timeout": o.banner_timeout,
            "auth_timeout": o.auth_timeout,
            "retries": o.retries,
            "host_key_policy": o.host_key_policy,
            "ssh_config_file": str(o.ssh_config_file) if o.ssh_config_file else None,
            "proxy_jump": o.proxy_jump,
            "extras": {k: (MASK if _looks_secret(k) else v) for k, v in o.extras.items()},
        },
    }


# ---------------------------------------------------------------------------------------
# Loading


def load_inventory(
    path: Path,
    *,
    resolve_credentials: bool = True,
    prompt: Callable[[str], str] | None = None,
    environ: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> Inventory:
    """Load an inventory file or Nornir folder (see the module doc).

    With `resolve_credentials=False`, credential values are kept as written (wrapped in
    Secret) and nothing is looked up: for validation without secrets at hand.
    `state_dir` receives the ssh config files generated for `proxy_jump` (default
    $COLLECTOR_STATE or ~/.local/state/collector)."""
    path = Path(path)
    ansible = _ansible_file(path)
    if ansible is not None:
        return _load_ansible(ansible, resolve_credentials, prompt, environ, state_dir)
    if path.is_dir():
        hosts = _first_existing(path, "hosts")
        if hosts is None:
            raise InventoryError("no hosts.yaml in this folder", path=path)
        return load_inventory_files(
            hosts, _first_existing(path, "groups"), _first_existing(path, "defaults"),
            resolve_credentials=resolve_credentials, prompt=prompt, environ=environ, state_dir=state_dir,
        )
    if path.name in ("hosts.yaml", "hosts.yml"):
        folder = path.parent
        return load_inventory_files(
            path, _first_existing(folder, "groups"), _first_existing(folder, "defaults"),
            resolve_credentials=resolve_credentials, prompt=prompt, environ=environ, state_dir=state_dir,
        )
    doc = _load(path)
    data = doc.data
    if data is None:
        raise InventoryError("the inventory is empty (expected hosts:, and optionally groups: and defaults:)", path=path)
    if not isinstance(data, dict):
        raise InventoryError("the inventory must be a mapping with hosts:, groups:, defaults:", path=path, line=doc.line_of(()))
    if "hosts" not in data and not set(data) & {"groups", "defaults"}:
        raise InventoryError(
            "no hosts: section (is this a Nornir hosts file? name it hosts.yaml or give its folder)",
            path=path, line=doc.line_of(()),
        )
    try:
        parsed = InventoryFile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _from_yaml(validation_error(doc, exc)) from None
    hosts = _Section(doc, ("hosts",), parsed.hosts or {})
    groups = _Section(doc, ("groups",), parsed.groups or {})
    defaults = _Level("defaults", "defaults", parsed.defaults or DefaultsEntry(), doc, ("defaults",))
    if not parsed.hosts:
        raise InventoryError("no hosts defined", path=path, line=doc.line_of(("hosts",)))
    return _build(hosts, groups, defaults, [path], resolve_credentials, prompt, environ, state_dir)


def _ansible_file(path: Path) -> Path | None:
    """The Ansible inventory file `path` is (or, for a folder, holds), if any."""
    from collector.inventory_sources import is_ansible_inventory

    if path.is_dir():
        if _first_existing(path, "hosts") is not None and not is_ansible_inventory(_first_existing(path, "hosts")):
            return None
        for name in ("hosts", "hosts.ini", "inventory", "inventory.ini", "hosts.yml", "hosts.yaml", "inventory.yml",
                     "inventory.yaml"):
            candidate = path / name
            if candidate.is_file() and is_ansible_inventory(candidate):
                return candidate
        return None
    return path if is_ansible_inventory(path) else None


def _load_ansible(path, resolve_credentials, prompt, environ, state_dir) -> Inventory:
    from collector.inventory_sources import AnsibleInventoryError, load_ansible

    try:
        doc = load_ansible(path)
    except AnsibleInventoryError as exc:
        raise InventoryError(exc.message, path=exc.path, line=exc.line) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read: {exc}", path=path) from None
    try:
        parsed = InventoryFile.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        raise _from_yaml(validation_error(doc, exc)) from None
    if not parsed.hosts:
        raise InventoryError("no hosts in this Ansible inventory", path=path)
    hosts = _Section(doc, ("hosts",), parsed.hosts)
    groups = _Section(doc, ("groups",), parsed.groups or {})
    defaults = _Level("defaults", "defaults", parsed.defaults or DefaultsEntry(), doc, ("defaults",))
    return _build(hosts, groups, defaults, [path, *doc.sources], resolve_credentials, prompt, environ, state_dir)


def load_inventory_files(
    hosts_file: Path,
    groups_file: Path | None = None,
    defaults_file: Path | None = None,
    *,
    resolve_credentials: bool = True,
    prompt: Callable[[str], str] | None = None,
    environ: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> Inventory:
    """Load Nornir SimpleInventory files given one by one."""
    hosts_doc = _load(Path(hosts_file))
    hosts_map = _validate(_HOSTS, hosts_doc, "host names to host settings")
    if not hosts_map:
        raise InventoryError("no hosts defined", path=hosts_doc.path)
    sources = [hosts_doc.path]
    groups_map: dict = {}
    groups_doc = None
    if groups_file is not None:
        groups_doc = _load(Path(groups_file))
        groups_map = _validate(_GROUPS, groups_doc, "group names to group settings")
        sources.append(groups_doc.path)
    defaults_entry = DefaultsEntry()
    defaults_doc = None
    if defaults_file is not None:
        defaults_doc = _load(Path(defaults_file))
        defaults_entry = _validate(_DEFAULTS, defaults_doc, "default settings") or DefaultsEntry()
        sources.append(defaults_doc.path)
    hosts = _Section(hosts_doc, (), hosts_map)
    groups = _Section(groups_doc or hosts_doc, (), groups_map)
    defaults = _Level("defaults", "defaults", defaults_entry, defaults_doc or hosts_doc, ())
    return _build(hosts, groups, defaults, sources, resolve_credentials, prompt, environ, state_dir)


def _first_existing(folder: Path, stem: str) -> Path | None:
    for suffix in (".yaml", ".yml"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _load(path: Path) -> LocatedYaml:
    try:
        return load_yaml(path)
    except YamlError as exc:
        raise _from_yaml(exc) from None


def _from_yaml(exc: YamlError) -> InventoryError:
    return InventoryError(exc.message, path=exc.path, line=exc.line)


def _validate(adapter: pydantic.TypeAdapter, doc: LocatedYaml, what: str) -> Any:
    data = doc.data
    if data is None:
        return adapter.validate_python({} if adapter is not _DEFAULTS else None)
    if not isinstance(data, dict):
        raise InventoryError(f"expected a mapping of {what}", path=doc.path, line=doc.line_of(()))
    try:
        return adapter.validate_python(data)
    except pydantic.ValidationError as exc:
        raise _from_yaml(validation_error(doc, exc)) from None


@dataclass(frozen=True)
class _Section:
    """Host or group entries and where they are written."""

    doc: LocatedYaml
    prefix: tuple[str, ...]
    entries: Mapping[str, Any]

    def level(self, kind: str, name: str) -> "_Level":
        entry = self.entries.get(name)
        if entry is None:
            entry = HostEntry() if kind == "host" else GroupEntry()
        return _Level(kind, f"{kind} {name}", entry, self.doc, self.prefix + (name,))

    def where(self, name: str, *loc: str | int) -> tuple[Path, int | None]:
        return self.doc.path, self.doc.line_of(self.prefix + (name,) + loc)


@dataclass(frozen=True)
class _Level:
    """One step of inheritance: a host, a group or the defaults."""

    kind: str  # "host" | "group" | "defaults"
    label: str  # "host r1", "group hub", "defaults"
    entry: DefaultsEntry
    doc: LocatedYaml
    prefix: tuple[str, ...]

    def line(self, *loc: str | int) -> int | None:
        return self.doc.line_of(self.prefix + loc)

    def error(self, message: str, *loc: str | int) -> InventoryError:
        return InventoryError(message, path=self.doc.path, line=self.line(*loc))


@dataclass(frozen=True)
class _Found:
    value: Any
    level: _Level
    loc: tuple[str | int, ...]


def _build(
    hosts: _Section,
    groups: _Section,
    defaults: _Level,
    sources: list[Path],
    resolve_credentials: bool,
    prompt: Callable[[str], str] | None,
    environ: Mapping[str, str] | None,
    state_dir: Path | None,
) -> Inventory:
    _check_group_graph(groups)
    resolver = CredentialResolver(prompt=prompt, environ=environ) if resolve_credentials else None
    resolved_hosts: dict[str, Host] = {}
    owners: dict[str, str] = {}
    for name in hosts.entries:
        path, line = hosts.where(name)
        if not _HOST_NAME.match(name):
            raise InventoryError(
                f"host name {name!r}: use letters, digits, '.', '_' and '-' only (names become file names)",
                path=path, line=line,
            )
        host = _resolve_host(name, hosts, groups, defaults, resolver, state_dir)
        for i, address in enumerate(host.addresses):
            if address in owners and owners[address] != name:
                path, line = hosts.where(name, "addresses", i)
                raise InventoryError(f"host {name}: address {address} is already owned by host {owners[address]}", path=path, line=line)
            owners[address] = name
        resolved_hosts[name] = host
    resolved_groups = {
        gname: Group(
            name=gname,
            groups=tuple(entry.groups or ()) if entry else (),
            site=entry.site if entry else None,
            platform=_platform_name(entry.device_type or entry.platform) if entry else None,
            data=dict(entry.data or {}) if entry else {},
        )
        for gname, entry in groups.entries.items()
    }
    return Inventory(resolved_hosts, resolved_groups, list(sources), _digest(sources))


def _digest(sources: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sources:
        h.update(path.read_bytes())
    return h.hexdigest()


def _check_group_graph(groups: _Section) -> None:
    """Parents must exist; no group may be its own ancestor."""
    for name, entry in groups.entries.items():
        for i, parent in enumerate((entry.groups or []) if entry else []):
            if parent not in groups.entries:
                path, line = groups.where(name, "groups", i)
                raise InventoryError(f"group {name}: parent group {parent!r} is not defined", path=path, line=line)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = trail[trail.index(name):] + [name]
            path, line = groups.where(cycle[0], "groups")
            raise InventoryError(f"group cycle: {' -> '.join(cycle)}", path=path, line=line)
        state[name] = 1
        entry = groups.entries.get(name)
        for parent in (entry.groups or []) if entry else []:
            visit(parent, trail + [name])
        state[name] = 2

    for name in groups.entries:
        visit(name, [])


def _lineage(names: list[str], groups: _Section) -> list[str]:
    """Groups in inheritance order: each group, then its parents depth first."""
    order: list[str] = []

    def walk(name: str) -> None:
        if name in order:
            return
        order.append(name)
        entry = groups.entries.get(name)
        for parent in (entry.groups or []) if entry else []:
            walk(parent)

    for name in names:
        walk(name)
    return order


def _resolve_host(
    name: str,
    hosts: _Section,
    groups: _Section,
    defaults: _Level,
    resolver: CredentialResolver | None,
    state_dir: Path | None,
) -> Host:
    host_level = hosts.level("host", name)
    entry: HostEntry = host_level.entry  # type: ignore[assignment]
    for i, gname in enumerate(entry.groups or []):
        if gname not in groups.entries:
            raise host_level.error(f"host {name}: group {gname!r} is not defined", "groups", i)
    member_of = _lineage(list(entry.groups or []), groups)
    chain = [host_level] + [groups.level("group", g) for g in member_of] + [defaults]

    def plain(key: str) -> _Found | None:
        for level in chain:
            value = getattr(level.entry, key, None)
            if value is not None:
                return _Found(value, level, (key,))
        return None

    def netmiko(key: str) -> _Found | None:
        for level in chain:
            opts = level.entry.connection_options
            nm = opts.netmiko if opts else None
            value = getattr(nm, key, None) if nm else None
            if value is not None:
                return _Found(value, level, ("connection_options", "netmiko", key))
        return None

    def extra(key: str) -> _Found | None:
        for level in chain:
            opts = level.entry.connection_options
            extras = opts.netmiko.extras if opts and opts.netmiko else None
            if extras and extras.get(key) is not None:
                return _Found(extras[key], level, ("connection_options", "netmiko", "extras", key))
        return None

    def option(key: str) -> _Found | None:
        for level in chain:
            opts = level.entry.connection_options
            value = getattr(opts, key, None) if opts else None
            if value is not None:
                return _Found(value, level, ("connection_options", key))
        return None

    def pick(*found: _Found | None) -> _Found | None:
        return next((f for f in found if f is not None), None)

    def platform_key() -> _Found | None:
        for level in chain:
            for key in ("device_type", "platform"):
                value = getattr(level.entry, key, None)
                if value is not None:
                    return _Found(value, level, (key,))
        return None

    hostname = pick(netmiko("hostname"), plain("hostname"))
    port = pick(netmiko("port"), plain("port"))
    platform = pick(netmiko("platform"), platform_key())
    if platform is not None:
        platform = _Found(_platform_name(platform.value), platform.level, platform.loc)
    username = pick(netmiko("username"), plain("username"))
    password = pick(netmiko("password"), plain("password"))
    secret = pick(extra("secret"), plain("secret"))

    if platform is None:
        raise host_level.error(f"host {name}: no platform (set platform: cisco_ios or cisco_xe on the host, a group or defaults)")
    if platform.value not in PLATFORMS:
        hint = _PLATFORM_HINTS.get(str(platform.value).lower())
        advice = f"use {hint}" if hint else "expected cisco_ios or cisco_xe; an ASR1000 or other IOS-XE router is cisco_xe"
        raise platform.level.error(f"host {name}: platform {platform.value!r} is not supported ({advice})", *platform.loc)
    if username is None:
        raise host_level.error(f"host {name}: no username (set username: on the host, a group or defaults)")

    def credential(found: _Found | None, field_name: str, hidden: bool = True) -> str | None:
        if found is None:
            return None
        text = _to_text(found.value)
        if not isinstance(text, str):
            raise found.level.error(f"host {name}: {field_name} must be text", *found.loc)
        if resolver is None:
            return text
        try:
            return resolver.resolve(text, field=field_name, owner=found.level.label, hidden=hidden)
        except CredentialError as exc:
            origin = "" if found.level.kind == "host" else f" (from {found.level.label})"
            raise found.level.error(f"host {name}: {field_name}{origin}: {exc}", *found.loc) from None

    options = _resolve_options(name, hostname.value if hostname else name, port.value if port else 22,
                               option, extra, chain, state_dir)
    data: dict[str, Any] = {}
    for level in reversed(chain):
        data.update(level.entry.data or {})
    site = plain("site")
    password_text = credential(password, "password")
    secret_text = credential(secret, "secret")
    return Host(
        name=name,
        hostname=_hostname_value(name, hostname, host_level),
        port=port.value if port else 22,
        platform=platform.value,
        username=credential(username, "username", hidden=False),
        password=Secret(password_text) if password_text is not None else None,
        secret=Secret(secret_text) if secret_text is not None else None,
        groups=tuple(entry.groups or ()),
        site=site.value if site else None,
        data=data,
        addresses=tuple(entry.addresses or ()),
        options=options,
        member_of=tuple(member_of),
    )


def _platform_name(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return PLATFORM_ALIASES.get(value.strip().lower(), value)


def _hostname_value(name: str, found: _Found | None, host_level: _Level) -> str:
    if found is not None:
        return found.value
    try:
        return _check_hostname(name)
    except ValueError:
        raise host_level.error(f"host {name}: no hostname, and the name is not a usable address") from None


@functools.cache
def _seconds_adapter() -> "pydantic.TypeAdapter":
    return pydantic.TypeAdapter(Seconds)  # building one costs about a millisecond: once, not per host


def _resolve_options(
    name: str,
    hostname: str,
    port: int,
    option: Callable[[str], _Found | None],
    extra: Callable[[str], _Found | None],
    chain: list[_Level],
    state_dir: Path | None,
) -> SshOptions:
    values: dict[str, Any] = {}
    seconds = _seconds_adapter()
    for key in ("conn_timeout", "read_timeout", "banner_timeout", "auth_timeout", "ssh_config_file"):
        extra_key = next((k for k, v in _EXTRAS_TO_OPTIONS.items() if v == key), None)
        found = (extra(extra_key) if extra_key else None) or option(key)
        if found is None:
            continue
        value = found.value
        if key != "ssh_config_file":
            try:
                value = seconds.validate_python(value)
            except pydantic.ValidationError as exc:
                raise found.level.error(f"host {name}: {'.'.join(map(str, found.loc))}: {exc.errors()[0]['msg']}", *found.loc) from None
        else:
            value = _config_file(name, str(value), found)
        values[key] = value
    for key in ("retries", "host_key_policy", "proxy_jump"):
        found = option(key)
        if found is not None:
            values[key] = found.value
    extras: dict[str, Any] = {}
    for level in reversed(chain):
        opts = level.entry.connection_options
        if opts and opts.netmiko and opts.netmiko.extras:
            extras.update({k: v for k, v in opts.netmiko.extras.items() if k not in _EXTRAS_TO_OPTIONS and k != "secret"})
    if values.get("proxy_jump"):
        values["ssh_config_file"] = _write_jump_config(hostname, port, values["proxy_jump"], values.get("ssh_config_file"), state_dir)
    return SshOptions(**values, extras=extras)


def _config_file(name: str, text: str, found: _Found) -> Path:
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():  # relative to the inventory file, not to wherever we run
        path = found.level.doc.path.parent / path
    if not path.is_file():
        raise found.level.error(f"host {name}: ssh_config_file {text!r} not found ({path})", *found.loc)
    return path


def jump_config_text(hostname: str, proxy_jump: str, base: str = "") -> str:
    """An OpenSSH config that sends `hostname` through `proxy_jump`; `base` (the user's
    own ssh_config_file) follows, so its settings still apply (first match wins)."""
    text = f"# generated by collector for proxy_jump\nHost {hostname}\n    ProxyJump {proxy_jump}\n"
    if base:
        text += "\n" + base
    return text


def _write_jump_config(hostname: str, port: int, proxy_jump: str, base_file: Path | None, state_dir: Path | None) -> Path:
    base = base_file.read_text(encoding="utf-8") if base_file else ""
    text = jump_config_text(hostname, proxy_jump, base)
    folder = (state_dir or _default_state_dir()) / "ssh_config"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = folder / f"{hostname}_{port}_{digest}"
    if not path.is_file():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".tmp{os.getpid()}")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise InventoryError(f"cannot write the ssh config for proxy_jump: {exc}", path=folder) from None
    return path


def _default_state_dir() -> Path:
    from collector.hostkeys import default_state_dir

    return default_state_dir()


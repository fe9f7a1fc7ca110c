"""Settings of a lab and the files it keeps in its state directory.

Kept apart from runner.py so `lab down` and `lab ctl` start without loading the SSH stack.

State directory (default .lab/): lab.pid (the lab process), control.json (written last,
once every listener accepts: pid, control port, router ports, inventory path),
lab.log (output of a detached lab) and, by default, inventory.yaml.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from collector.lab.control import LabControl

DEFAULT_ROUTERS = 6
# `collector lab up` / `demo` read the realism traits from here until the CLI has an option
# (topology.parse_realism: "all", "none", "default" or a comma list, "-trait" removes one).
REALISM_ENV = "COLLECTOR_LAB_REALISM"
DEFAULT_BASE_PORT = 20001
DEFAULT_STATE_DIR = Path(".lab")
PID_FILE = "lab.pid"
CONTROL_FILE = "control.json"
INVENTORY_FILE = "inventory.yaml"
LOG_FILE = "lab.log"


class LabError(Exception):
    """A lab could not start; the message is one line for the user."""


@dataclass(frozen=True)
class LabSettings:
    routers: int = DEFAULT_ROUTERS
    scenarios: tuple[str, ...] = ()
    seed: int = 0
    time_scale: float = 1.0
    base_port: int | None = DEFAULT_BASE_PORT  # None: pick a free random range
    control_port: int | None = None  # None: base_port - 1
    syslog_to: tuple[str, int] | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    inventory_out: Path | None = None  # None: <state_dir>/inventory.yaml
    faults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    faults_where: Mapping[str, str] = field(default_factory=dict)  # router -> "FILE:LINE"
    realism: str | None = field(default_factory=lambda: os.environ.get(REALISM_ENV) or None)
    # Name patterns (shell style) of the routers this process serves (SSH, syslog, inventory);
    # empty: all. The others are still modelled, as the far ends of their tunnels: one site of
    # a multi-site lab per process, each with the whole (seeded, identical) topology.
    serve: tuple[str, ...] = ()

    def served(self, names: list[str]) -> list[str]:
        """The routers (of `names`, in order) this process serves; LabError for a pattern
        that matches none."""
        if not self.serve:
            return list(names)
        for pattern in self.serve:
            if not fnmatch.filter(names, pattern):
                raise LabError(f"--serve {pattern}: matches no router of this lab ({', '.join(names[:6])} ...)")
        return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in self.serve)]

    @property
    def inventory_path(self) -> Path:
        return self.inventory_out if self.inventory_out is not None else self.state_dir / INVENTORY_FILE


@dataclass(frozen=True)
class FaultsFile:
    """`--faults FILE`: router -> {fault field: value}, and where each router's entry starts."""

    faults: dict[str, dict[str, Any]]
    where: dict[str, str]  # router -> "FILE:LINE", for error messages


def load_faults_file(path: Path) -> FaultsFile:
    """Read a faults YAML file; router names and field values are checked when the lab starts."""
    try:
        text = path.read_text()
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise LabError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise LabError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return FaultsFile({}, {})
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise LabError(f"{path}:1: expected a mapping of router name -> {{fault: value}}")
    where = {str(key.value): f"{path}:{key.start_mark.line + 1}" for key, _ in root.value}
    for name, fields in data.items():
        if not isinstance(fields, dict):
            raise LabError(f"{where.get(str(name), path)}: {name}: expected a mapping of fault: value")
    return FaultsFile({str(k): dict(v) for k, v in data.items()}, where)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def read_control_file(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / CONTROL_FILE).read_text())
    except (OSError, ValueError):
        return None


def control_for(state_dir: Path) -> LabControl:
    """A client for the lab whose control.json is in `state_dir`."""
    info = read_control_file(state_dir)
    if info is None:
        raise LabError(f"no running lab in {state_dir} (no {CONTROL_FILE})")
    return LabControl(info.get("host", "127.0.0.1"), int(info["control_port"]))


def remove_state_files(state_dir: Path) -> None:
    """Remove pid file and control.json, but only if they belong to this process."""
    pid_file = state_dir / PID_FILE
    try:
        owner = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        owner = None
    if owner is not None and owner != os.getpid():
        return  # another lab took over this state directory
    for path in (state_dir / CONTROL_FILE, pid_file):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

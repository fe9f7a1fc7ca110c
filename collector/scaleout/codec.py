"""Events, actions and router results as JSON values, for Celery tasks and their replies.

A value is written as plain JSON with tags for what JSON lacks (times, addresses,
tuples, frozensets, enums) and `__type` naming one of the dataclasses listed here. Only
those are ever rebuilt on the way in: a message cannot make the receiver construct
anything else.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from enum import Enum
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from collector.core.decide import (
    Arm,
    ArmDone,
    Capture,
    CaptureDone,
    LineSeen,
    Release,
    ReleaseDone,
    SourceKind,
)
from collector.core.results import ArmResult, DisarmResult, LogSnapshot, RouterChange
from collector.command_results import CommandResult, HostOutcome
from collector.core.states import IncidentState, StepStatus
from collector.detect.events import Flow
from collector.evidence import RouterCapture


class CodecError(ValueError):
    """A message that is not one of ours."""


_TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    Flow, LineSeen, ArmDone, CaptureDone, ReleaseDone, Arm, Capture, Release,
    ArmResult, DisarmResult, LogSnapshot, RouterChange, RouterCapture, CommandResult, HostOutcome,
)}
_ENUMS: dict[str, type[Enum]] = {cls.__name__: cls for cls in (SourceKind, StepStatus, IncidentState)}


def to_json(value: Any) -> Any:
    """A JSON-able form of `value` (one of the listed dataclasses, or plain data)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Enum):  # before str: these enums are str enums
        name = type(value).__name__
        if name not in _ENUMS:
            raise CodecError(f"enum {name} is not shipped")
        return {"__enum": name, "v": value.value}
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return {"__dt": value.isoformat()}
    if isinstance(value, timedelta):
        return {"__td": value.total_seconds()}
    if isinstance(value, (IPv4Address, IPv6Address)):
        return {"__ip": str(value)}
    if isinstance(value, frozenset):
        return {"__fset": sorted((to_json(v) for v in value), key=repr)}
    if isinstance(value, tuple):
        return {"__tuple": [to_json(v) for v in value]}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise CodecError("only string keys are shipped")
        return {"__dict": {k: to_json(v) for k, v in value.items()}}
    name = type(value).__name__
    if dataclasses.is_dataclass(value) and _TYPES.get(name) is type(value):
        fields = {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type": name, **fields}
    raise CodecError(f"cannot ship a {name}")


def from_json(data: Any) -> Any:
    """The value `to_json` wrote."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [from_json(v) for v in data]
    if not isinstance(data, dict):
        raise CodecError(f"not a shipped value: {type(data).__name__}")
    try:
        if "__type" in data:
            cls = _TYPES.get(data["__type"])
            if cls is None:
                raise CodecError(f"unknown type {data['__type']!r}")
            names = {f.name for f in dataclasses.fields(cls)}
            given = {k: from_json(v) for k, v in data.items() if k != "__type"}
            if not set(given) <= names:
                raise CodecError(f"{cls.__name__}: unknown fields {sorted(set(given) - names)}")
            return cls(**given)
        if "__enum" in data:
            enum = _ENUMS.get(data["__enum"])
            if enum is None:
                raise CodecError(f"unknown enum {data['__enum']!r}")
            return enum(data["v"])
        if "__dt" in data:
            return datetime.fromisoformat(data["__dt"])
        if "__td" in data:
            return timedelta(seconds=data["__td"])
        if "__ip" in data:
            return ip_address(data["__ip"])
        if "__fset" in data:
            return frozenset(from_json(v) for v in data["__fset"])
        if "__tuple" in data:
            return tuple(from_json(v) for v in data["__tuple"])
        if "__dict" in data:
            return {k: from_json(v) for k, v in data["__dict"].items()}
    except (TypeError, ValueError) as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f"malformed value: {exc}") from None
    raise CodecError("untagged object")

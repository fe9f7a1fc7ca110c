"""Control API of a running lab: JSON lines over TCP on 127.0.0.1.

One request per line, one response per line:

    -> {"op": "step", "seconds": 60}
    <- {"ok": true, "result": {"now": "2023-11-27T10:42:07.123000"}}
    <- {"ok": false, "error": "unknown router 'hub9'"}

Ops: step {seconds}, now, fault {router, set: {field: value}}, reboot {router},
state {router}, pairs, config {router, lines: [...]}, routers.
Every op runs on the lab's event loop, the only thread that touches the model.
`LabControl` is the blocking client used by tests, `collector lab ctl` and e2e tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

log = logging.getLogger(__name__)

CONTROL_HOST = "127.0.0.1"
_MAX_LINE = 16 * 1024 * 1024


class LabControlError(RuntimeError):
    """The lab refused a control request (bad op, unknown router, bad value)."""


class BadFault(ValueError):
    """A fault field or value that the lab cannot apply."""


# -- faults ------------------------------------------------------------------------


def _non_negative_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise BadFault(f"fault {name} must be a number >= 0, not {value!r}")
    return float(value)


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadFault(f"fault {name} must be an integer >= 0, not {value!r}")
    return value


def _optional_non_negative_int(name: str, value: Any) -> int | None:
    return None if value is None else _non_negative_int(name, value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadFault(f"fault {name} must be true or false, not {value!r}")
    return value


def _tacacs_policy(name: str, value: Any) -> Any:
    from collector.lab.aaa import BadPolicy, parse_policy

    try:
        parse_policy(value)
    except BadPolicy as exc:
        raise BadFault(f"fault {name}: {exc}") from None
    return value


_FAULT_VALUES: dict[str, Callable[[str, Any], Any]] = {
    "refuse_connections": _flag,
    "changed_host_key": _flag,
    "slow_seconds": _non_negative_number,
    "drop_after_bytes": _optional_non_negative_int,
    "vty_limit": _non_negative_int,
    "high_cpu": _flag,
    "wrong_password": _flag,
    "vty_held": _non_negative_int,
    "tacacs": _tacacs_policy,
}


def checked_faults(faults: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validate {field: value} against a router's Faults object; nothing is applied here."""
    known = {f.name for f in dataclasses.fields(faults)} if dataclasses.is_dataclass(faults) else set(_FAULT_VALUES)
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in known:
            raise BadFault(f"unknown fault {name!r} (known: {', '.join(sorted(known))})")
        check = _FAULT_VALUES.get(name)
        if check is not None:
            checked[name] = check(name, value)
        elif isinstance(getattr(faults, name), bool):
            checked[name] = _flag(name, value)
        else:
            checked[name] = value
    return checked


# -- JSON ----------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Model values (dataclasses, datetimes, enums, sets, addresses) as plain JSON data."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(value)
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return str(value)


# -- server side --------------------------------------------------------------------


class ControlOps:
    """The operations behind the control API, applied to a fleet on the lab's loop.

    The runtime passes hooks for effects outside the model: a listener must re-read
    vty_limit after a fault change, a reboot drops the router's SSH sessions, and a
    clock step should push the resulting syslog at once.
    """

    def __init__(
        self,
        fleet: Any,
        *,
        faults_changed: Callable[[str], None] = lambda name: None,
        rebooted: Callable[[str], None] = lambda name: None,
        stepped: Callable[[], None] = lambda: None,
        transport_state: Callable[[str], Mapping[str, Any]] = lambda name: {},
        ports: Mapping[str, int] | None = None,
    ):
        self.fleet = fleet
        self._faults_changed = faults_changed
        self._rebooted = rebooted
        self._stepped = stepped
        self._transport_state = transport_state
        self._ports = dict(ports or {})

    def dispatch(self, request: Mapping[str, Any]) -> Any:
        op = request.get("op")
        handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            raise LabControlError(f"unknown op {op!r}")
        args = {k: v for k, v in request.items() if k not in ("op", "id")}
        try:
            return handler(**args)
        except TypeError as exc:
            raise LabControlError(f"bad arguments for op {op!r}: {exc}") from None

    def _router(self, name: Any) -> Any:
        try:
            return self.fleet.routers[name]
        except (KeyError, TypeError):
            raise LabControlError(f"unknown router {name!r}") from None

    def op_now(self) -> dict[str, Any]:
        return {"now": self.fleet.clock.now().isoformat()}

    def op_step(self, seconds: Any) -> dict[str, Any]:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise LabControlError(f"step seconds must be a number >= 0, not {seconds!r}")
        self.fleet.clock.step(float(seconds))
        self.fleet.tick()
        self._stepped()
        return self.op_now()

    def op_fault(self, router: Any, set: Any) -> dict[str, Any]:  # noqa: A002 - the wire name
        target = self._router(router)
        if not isinstance(set, Mapping):
            raise LabControlError("fault needs set: {field: value}")
        try:
            changes = checked_faults(target.faults, set)
        except BadFault as exc:
            raise LabControlError(str(exc)) from None
        for name, value in changes.items():
            setattr(target.faults, name, value)
        self._faults_changed(target.name)
        return jsonable(target.faults)

    def op_reboot(self, router: Any) -> dict[str, Any]:
        target = self._router(router)
        target.reboot()
        self._rebooted(target.name)
        return {"rebooted": target.name}

    def op_state(self, router: Any) -> dict[str, Any]:
        target = self._router(router)
        state: dict[str, Any] = {}
        snapshot = getattr(target, "debug_snapshot", None) or getattr(target, "state", None)
        if callable(snapshot):
            state.update(jsonable(snapshot()))
        state["faults"] = jsonable(target.faults)
        state["transport"] = jsonable(self._transport_state(target.name))
        return state

    def op_pairs(self) -> list[Any]:
        return jsonable(self.fleet.pairs())

    def op_routers(self) -> list[dict[str, Any]]:
        return [
            {
                "name": r.name,
                "port": self._ports.get(r.name),
                "platform": r.platform,
                "model": r.model,
                "syslog_source": r.syslog_source,
            }
            for r in self.fleet.routers.values()
        ]

    def op_config(self, router: Any, lines: Any) -> dict[str, Any]:
        target = self._router(router)
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise LabControlError("config needs lines: [str, ...]")
        return {"output": apply_config_lines(target, lines)}


def apply_config_lines(router: Any, lines: list[str]) -> str:
    """Type `lines` into a fresh privileged session in configuration mode, as an engineer would."""
    cli = router.open_session()
    cli.execute("enable")
    if not cli.echo or cli.prompt.rstrip().endswith("Password:"):
        cli.execute(router.enable_secret)
    if not cli.prompt.endswith("#"):
        raise LabControlError(f"{router.name}: could not enter privileged mode")
    cli.execute("configure terminal")
    outputs = [cli.execute(line) for line in lines]
    cli.execute("end")
    return "\n".join(out.rstrip("\n") for out in outputs if out)


class ControlServer:
    """asyncio TCP server speaking the JSON-lines protocol."""

    def __init__(self, ops: ControlOps):
        self._ops = ops
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self.port: int | None = None

    async def start(self, port: int, host: str = CONTROL_HOST) -> None:
        self._server = await asyncio.start_server(
            self._serve_client, host, port, limit=_MAX_LINE, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(b'{"ok": false, "error": "request line too long"}\n')
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                writer.write(self._answer(line))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def _answer(self, line: bytes) -> bytes:
        request_id = None
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise LabControlError("a request is a JSON object")
            request_id = request.get("id")
            response: dict[str, Any] = {"ok": True, "result": self._ops.dispatch(request)}
        except json.JSONDecodeError as exc:
            response = {"ok": False, "error": f"not JSON: {exc}"}
        except LabControlError as exc:
            response = {"ok": False, "error": str(exc)}
        except Exception as exc:  # a model bug must not take the control server down
            log.exception("lab control request failed: %r", line[:200])
            response = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
        if request_id is not None:
            response["id"] = request_id
        return json.dumps(response).encode() + b"\n"

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._clients):
            writer.close()


# -- client side --------------------------------------------------------------------


class LabControl:
    """Blocking client of the control API; one TCP connection, reopened when needed.

    Thread-safe: calls from several threads are serialised.
    """

    def __init__(self, host: str = CONTROL_HOST, port: int = 20000, timeout: float = 30.0):
        self.host = host
        self.port = port
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LabControl({self.host!r}, {self.port})"

    def __enter__(self) -> LabControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._buffer = b""

    def call(self, op: str, **args: Any) -> Any:
        """Send one request; return its result or raise LabControlError."""
        payload = json.dumps({"op": op, **args}).encode() + b"\n"
        with self._lock:
            reused = self._sock is not None
            try:
                response = self._round_trip(payload)
            except ConnectionError:
                self._drop()
                if not reused:
                    raise
                # A kept connection died (the lab restarted): the request never reached a lab.
                response = self._round_trip(payload)
            except BaseException:
                self._drop()
                raise
        if not response.get("ok"):
            raise LabControlError(response.get("error", "unknown error"))
        return response.get("result")

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._buffer = b""

    def _round_trip(self, payload: bytes) -> dict[str, Any]:
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self._sock.sendall(payload)
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("lab control connection closed")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    # one method per op

    def step(self, seconds: float) -> datetime:
        """Move the lab clock forward; returns the new lab time."""
        return datetime.fromisoformat(self.call("step", seconds=seconds)["now"])

    def now(self) -> datetime:
        return datetime.fromisoformat(self.call("now")["now"])

    def fault(self, router: str, **fields: Any) -> dict[str, Any]:
        """Set fault fields (e.g. slow_seconds=2); returns the router's faults afterwards."""
        return self.call("fault", router=router, set=fields)

    def reboot(self, router: str) -> None:
        self.call("reboot", router=router)

    def state(self, router: str) -> dict[str, Any]:
        return self.call("state", router=router)

    def pairs(self) -> list[dict[str, Any]]:
        return self.call("pairs")

    def routers(self) -> list[dict[str, Any]]:
        return self.call("routers")

    def config(self, router: str, lines: list[str]) -> str:
        """Apply configuration lines as if typed in `configure terminal`; returns their output."""
        if isinstance(lines, str):
            raise TypeError("config lines must be a list of strings, not one string")
        return self.call("config", router=router, lines=list(lines))["output"]

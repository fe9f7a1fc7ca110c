"""How the agent's log lines look: text for people, JSON lines for journald and log pipelines.

`configure_logging(verbosity, fmt)` is called once by the CLI (and may be called again: it
replaces its own handler, never anyone else's). With `fmt="json"` every record is one
JSON object on one line:

    {"ts": "2026-12-06T01:02:03.456Z", "level": "info", "logger": "collector.agent",
     "message": "armed hub and spoke", "router": "hub", "incident": "20261206-010203-hub-1a2b",
     "flow": "hub|10.0.0.2|10.0.0.1|0x1A2B3C4D|50"}

Context fields come from `extra=` on the logging call (`log.info("armed", extra={"router":
name, "incident": iid, "flow": flow.key()})`); every extra field is kept, not only these
three, so a pipeline can filter on whatever the agent attaches.

Verbosity: 0 warnings, 1 (-v) info, 2 (-vv) debug. Chatty libraries (APScheduler's "job
executed" lines, paramiko, asyncssh) stay at warnings below -vv.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import TextIO

__all__ = ["JsonFormatter", "TEXT_FORMAT", "LOG_FORMATS", "configure_logging", "CONTEXT_FIELDS"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
#: The fields a log pipeline will look for first; they lead every JSON object that has them.
CONTEXT_FIELDS = ("router", "incident", "flow")
# Libraries whose INFO lines are about themselves, not about the routers.
_QUIET_BELOW_DEBUG = ("apscheduler", "paramiko", "asyncssh", "netmiko")

# Attributes every LogRecord has: anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        for key in CONTEXT_FIELDS:
            if extras.get(key) is not None:
                out[key] = _plain(extras.pop(key))
        for key, value in extras.items():
            if key not in out:
                out[key] = _plain(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def _plain(value: object) -> object:
    """JSON-ready: keep JSON types, text for the rest (addresses, paths, enums, flows)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    key = getattr(value, "key", None)
    if callable(key):  # a Flow: its stable text key, as the state store writes it
        try:
            return str(key())
        except Exception:  # noqa: BLE001 - a formatter never raises
            pass
    return str(value)


class _OurHandler(logging.StreamHandler):
    """Marks the handler configure_logging installed, so a second call replaces only it."""


def configure_logging(verbosity: int = 0, fmt: str = "text", *, stream: TextIO | None = None) -> logging.Handler:
    """Install the one stderr handler of the program; returns it."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(LOG_FORMATS)}")
    verbosity = max(0, int(verbosity))
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _OurHandler):
            root.removeHandler(handler)
    handler = _OurHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.WARNING - 10 * min(verbosity, 2))
    for name in _QUIET_BELOW_DEBUG:
        logging.getLogger(name).setLevel(logging.NOTSET if verbosity >= 2 else logging.WARNING)
    if verbosity < 2:
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # its tracebacks are ours to report
        # "Execution of job ... skipped: maximum number of running instances reached" every
        # second while a slow poll runs: the agent reports slow and failed polls itself
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
    return handler


def hoist_global_options(argv: list[str]) -> list[str]:
    """`collector watch -vv --log-format json ...` as `collector -vv --log-format json watch ...`.

    Click takes group options only before the subcommand; people put -v at the end. Only
    exact verbosity flags (-v, -vv, -vvv, --verbose) and --log-format are moved, and
    nothing after `--`."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            rest.extend(argv[i:])
            break
        if token in ("--verbose",) or (token.startswith("-v") and len(token) > 1 and set(token[1:]) == {"v"}):
            front.append(token)
        elif token == "--log-format" and i + 1 < len(argv):
            front.extend(argv[i:i + 2])
            i += 1
        elif token.startswith("--log-format="):
            front.append(token)
        else:
            rest.append(token)
        i += 1
    return front + rest

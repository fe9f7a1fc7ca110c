"""Read a systemd `EnvironmentFile=` so a cron run sees what the service sees.

The cron line and the systemd unit load the same file (credentials named in the
inventory as `${VAR}`, `COLLECTOR_STATE`). Sourcing it with a shell would expand `$` and
backquotes inside passwords; this reads it the way systemd.exec(5) describes: `KEY=VALUE`
lines, `#` or `;` comments, a value optionally in single quotes (literal) or double quotes
(backslash escapes `\\"`, `\\\\`, `\\$`), a trailing backslash continuing the line.
"""

from __future__ import annotations

import re
from pathlib import Path

from collector.errors import UserInputError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EnvFileError(UserInputError):
    """A line of the environment file that is not KEY=VALUE."""


def read_env_file(path: str | Path) -> dict[str, str]:
    """The variables of `path`, in order.

    Raises:
        EnvFileError: the file cannot be read, or a line is not `KEY=VALUE` (one line).
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise EnvFileError(f"{path}: not a regular file")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"{path}: cannot read ({exc})") from None
    values: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index]
        index += 1
        while line.endswith("\\") and index < len(lines):  # continuation
            line, index = line[:-1] + lines[index], index + 1
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise EnvFileError(f"{path}:{number}: not KEY=VALUE")
        values[key] = _unquote(value.strip(), path, number)
    return values


def _unquote(value: str, path: Path, number: int) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r'\\(["\\$`])', r"\1", value[1:-1])
    if value[:1] in ("'", '"'):
        raise EnvFileError(f"{path}:{number}: unterminated quote")
    return value

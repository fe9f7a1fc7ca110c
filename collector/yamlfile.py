"""YAML files that remember where each value came from.

Inventory and playbooks are written by hand, so every mistake in them must be reported
as `file:line: message`. `load_yaml` keeps the composed node tree next to the plain data;
`LocatedYaml.line_of` walks it to find the line of any key or list item, and
`validation_error` turns a pydantic error into such a one-line message.

Duplicate mapping keys are rejected (PyYAML silently keeps the last one, which hides a
typo such as two `hosts:` sections).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from collector.errors import UserInputError

if TYPE_CHECKING:  # pydantic is only needed by callers that validate
    import pydantic

__all__ = ["YamlError", "LocatedYaml", "load_yaml", "validation_error"]

_MERGE_TAG = "tag:yaml.org,2002:merge"
# pydantic puts validator names such as `function-after[check(), Host]` into error
# locations; they are not keys of the document.
_PYDANTIC_STEP = re.compile(r"^[\w-]+\[.*\]$")


class YamlError(UserInputError):
    """A problem in a YAML file; `str()` is one line: `path:line: message`."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path = Path(path)
        self.line = line
        self.message = " ".join(str(message).split())  # always one line
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {self.message}")


@dataclass(frozen=True)
class LocatedYaml:
    """The plain data of a YAML file plus the lines its keys and items are on."""

    path: Path
    data: object
    _root: Node | None = field(default=None, repr=False, compare=False)
    # mapping node id -> {key text: (line, value node)}: line_of is asked once per host,
    # and a linear scan of a 60,000-host mapping each time would be quadratic
    _index: dict = field(default_factory=dict, repr=False, compare=False)

    def line_of(self, loc: tuple[str | int, ...]) -> int | None:
        """1-based line of the key (or list item) at `loc`, e.g. ("hosts", "r1", "port").

        When `loc` goes deeper than the document (a missing key), the line of the deepest
        part that exists is returned; None only for an empty document."""
        node = self._root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for step in loc:
            if isinstance(step, str) and _PYDANTIC_STEP.match(step):
                continue
            found = self._child(node, step)
            if found is None:
                break
            line, node = found
        return line

    def _child(self, node: Node, step: str | int) -> tuple[int, Node] | None:
        if isinstance(node, MappingNode):
            index = self._index.get(id(node))
            if index is None:
                index = {}
                # Last match wins: after `<<:` merging, the merged pairs come first and
                # the mapping's own keys (which override them) after.
                for key_node, value_node in node.value:
                    if isinstance(key_node, ScalarNode):
                        index[key_node.value] = (key_node.start_mark.line + 1, value_node)
                self._index[id(node)] = index
            return index.get(str(step))
        return _child(node, step)


def _child(node: Node, step: str | int) -> tuple[int, Node] | None:
    """(line of the key or item, value node) for one step down from `node`."""
    if isinstance(node, MappingNode):
        # Last match wins: after `<<:` merging, the merged pairs come first and the
        # mapping's own keys (which override them) after.
        for key_node, value_node in reversed(node.value):
            if isinstance(key_node, ScalarNode) and _key_matches(key_node, step):
                return key_node.start_mark.line + 1, value_node
        return None
    if isinstance(node, SequenceNode) and isinstance(step, int) and not isinstance(step, bool):
        if 0 <= step < len(node.value):
            item = node.value[step]
            return item.start_mark.line + 1, item
    return None


def _key_matches(key_node: ScalarNode, step: str | int) -> bool:
    # Compare as text: pydantic reports dict keys as str, YAML may have parsed them as int.
    return key_node.value == str(step)


def load_yaml(path: Path) -> LocatedYaml:
    """Read and parse one YAML document; YamlError (one line, with the line number when
    there is one) for a missing or unreadable file, bad syntax, or a duplicate key."""
    path = Path(path)
    try:
        raw = read_regular_file(path)
        text = raw.decode("utf-8-sig")
    except YamlError:
        raise
    except FileNotFoundError:
        raise YamlError(path, None, "file not found") from None
    except IsADirectoryError:
        raise YamlError(path, None, "is a directory, not a YAML file") from None
    except PermissionError:
        raise YamlError(path, None, "permission denied") from None
    except UnicodeDecodeError as exc:
        raise YamlError(path, raw[: exc.start].count(b"\n") + 1, "not UTF-8 text") from None
    except OSError as exc:
        raise YamlError(path, None, f"cannot read: {exc.strerror or exc}") from None

    try:
        yaml.reader.Reader(text)  # rejects control characters, with their position
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise YamlError(path, line, f"control character {exc.character!r} is not allowed in YAML") from None
    loader = _LOADER(text)  # libyaml when present: a 60,000-host inventory parses in seconds
    try:
        root = loader.get_single_node()
        if root is None:
            return LocatedYaml(path, None, None)
        _reject_duplicate_keys(path, loader, root)
        _bound_expansion(path, root)
        data = _construct(path, loader, root)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(path, exc) from None
    except yaml.YAMLError as exc:
        raise YamlError(path, None, f"YAML error: {exc}") from None
    except RecursionError:
        raise YamlError(path, None, "YAML nesting too deep") from None
    finally:
        loader.dispose()
    return LocatedYaml(path, data, root)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_FILE_BYTES = 64 * 1024 * 1024  # an inventory of 100,000 hosts is a few MB
MAX_ALIAS_EXPANSION = 200_000  # values added by expanding aliases; stops "billion laughs"


def read_regular_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of `path`, which must be a regular file of at most `limit` bytes.

    A FIFO is opened without blocking and a device (`/dev/zero`) is refused before any
    read, so neither can hang or exhaust memory. Raises YamlError (one line) for those,
    OSError for the usual failures (missing, permission)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(info.st_mode):
            raise YamlError(path, None, "not a regular file (a device, FIFO or socket); give a YAML file")
        if info.st_size > limit:
            raise YamlError(path, None, f"{info.st_size} bytes is more than the {limit // (1024 * 1024)} MB a YAML "
                            "file may have here")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:  # grew while being read
                raise YamlError(path, None, f"more than the {limit // (1024 * 1024)} MB a YAML file may have here")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _construct(path: Path, loader: yaml.SafeLoader, root: Node) -> object:
    """`construct_document`, with the line of a value PyYAML cannot build (a timestamp
    such as 2024-02-30 or 2024-13-01 raises a bare ValueError)."""
    try:
        return loader.construct_document(root)
    except (ValueError, OverflowError) as exc:
        for node in _scalars(root):
            try:
                _construct_scalar(node)
            except (ValueError, OverflowError, yaml.YAMLError):
                kind = node.tag.rsplit(":", 1)[-1]
                raise YamlError(path, node.start_mark.line + 1,
                                f"{node.value!r} is not a valid {kind} ({exc}); quote it to keep it as text") from None
        raise YamlError(path, None, f"a value cannot be read ({exc})") from None


def _construct_scalar(node: ScalarNode) -> object:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node)
    finally:
        loader.dispose()


def _scalars(root: Node) -> Iterator[ScalarNode]:
    stack, visited = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, ScalarNode):
            yield node
        elif isinstance(node, MappingNode):
            stack.extend(v for kv in reversed(node.value) for v in reversed(kv))
        elif isinstance(node, SequenceNode):
            stack.extend(reversed(node.value))


def _bound_expansion(path: Path, root: Node) -> None:
    """Aliases are shared in memory but expand when the data is printed or walked: refuse a
    document that refers to itself or whose aliases would add unreasonably many values.
    A large document without aliases is never refused here."""
    seen = 0
    distinct: set[int] = set()
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        if id(node) in on_path:
            raise YamlError(path, node.start_mark.line + 1, "an alias refers to the value that contains it")
        seen += 1
        distinct.add(id(node))
        if seen - len(distinct) > MAX_ALIAS_EXPANSION:
            raise YamlError(path, node.start_mark.line + 1,
                            f"aliases expand to more than {MAX_ALIAS_EXPANSION} extra values")
        if isinstance(node, (MappingNode, SequenceNode)):
            on_path.add(id(node))
            stack.append((node, True))
            children = [v for kv in node.value for v in kv] if isinstance(node, MappingNode) else node.value
            stack.extend((child, False) for child in children)


def _syntax_error(path: Path, exc: yaml.MarkedYAMLError) -> YamlError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = exc.problem or "syntax error"
    if exc.context and exc.context_mark is not None and exc.problem_mark is not None:
        problem = f"{problem} ({exc.context} at line {exc.context_mark.line + 1})"
    return YamlError(path, line, f"YAML syntax error: {problem}")


def _reject_duplicate_keys(path: Path, loader: yaml.SafeLoader, root: Node) -> None:
    for mapping in _mappings(root):
        seen: dict[object, int] = {}
        for key_node, _ in mapping.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *anchor` may repeat and may be overridden
                continue
            try:
                key = loader.construct_object(key_node, deep=True)
                hash(key)
            except (yaml.YAMLError, TypeError):
                continue  # complex keys: construct_document reports what is wrong with them
            line = key_node.start_mark.line + 1
            if key in seen:
                raise YamlError(path, line, f"duplicate key {key!r} (first defined at line {seen[key]})")
            seen[key] = line


def _mappings(root: Node) -> Iterator[MappingNode]:
    """Every mapping node once, aliases and recursive anchors included."""
    stack, visited = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, MappingNode):
            yield node
            for key_node, value_node in node.value:
                stack.append(key_node)
                stack.append(value_node)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def validation_error(doc: LocatedYaml, err: "pydantic.ValidationError", *, prefix: tuple[str | int, ...] = ()) -> YamlError:
    """The first error of a pydantic validation as `path:line: a.b.c: message`.

    `prefix` is prepended to the error location when the validated value sits below the
    document root (e.g. validating only `doc.data["hosts"]`)."""
    errors = err.errors(include_url=False)
    if not errors:
        return YamlError(doc.path, None, str(err))
    first = errors[0]
    loc = tuple(prefix) + tuple(first.get("loc", ()))
    shown = ".".join(str(step) for step in loc if not (isinstance(step, str) and _PYDANTIC_STEP.match(step)))
    message = _message(first)
    more = len(errors) - 1
    if more:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return YamlError(doc.path, doc.line_of(loc), f"{shown}: {message}" if shown else message)


def _message(error: dict) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(error.get("msg", "invalid value"))
    # pydantic prefixes messages of ValueError raised in validators with "Value error, ".
    for noise in ("Value error, ", "Assertion failed, "):
        if msg.startswith(noise):
            msg = msg[len(noise):]
    return msg

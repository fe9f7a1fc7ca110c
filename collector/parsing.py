"""The only code that runs TextFSM.

A template is found by platform + command: the project's own `templates/` first (its
`index` uses the CliTable syntax, `sh[[ow]]` completion included), then the index that
ships with ntc-templates. Output modifiers (`| include X`, `| section Y` ...) are tried as
written first (a template may be made for a filtered command) and then stripped, because a
filter only removes lines. `cisco_xe` falls back to `cisco_ios` (ntc has no cisco_xe).

Templates are read once; TextFSM objects are stateful, so each thread keeps its own
compiled copy (reset before every use). A failure of any kind is a `ParseResult` with
`error` set, never an exception: device text is untrusted and the caller keeps the raw.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import textfsm
from textfsm import clitable

from collector.resources import templates_dir

INDEX_FILE = "index"
_LOOKUP_CACHE_MAX = 4096

# netmiko device types -> the platform names the indexes use, most specific first.
_PLATFORM_FALLBACK: dict[str, tuple[str, ...]] = {
    "cisco_xe": ("cisco_ios",),
}
_TRANSPORT_SUFFIX = re.compile(r"_(?:ssh|telnet|serial)$")

# Output modifiers that only drop lines: a template for the plain command still fits.
_LINE_FILTERS = ("include", "exclude", "begin", "section", "tee")
# Modifiers that change or swallow the output: no template fits.
_OTHER_MODIFIERS = ("count", "redirect", "append", "format", "utility")


@dataclass(frozen=True)
class ParseResult:
    records: list[dict[str, object]]  # lower-case field names; List values kept as lists
    template: str | None  # template file name used, None if none found
    error: str | None  # parse/lookup error text; a failure never raises

    @property
    def ok(self) -> bool:
        return self.error is None and self.template is not None


@dataclass(frozen=True)
class _IndexRow:
    platform: re.Pattern[str] | None
    command: re.Pattern[str]
    templates: tuple[str, ...]


class _TemplateIndex:
    """One CliTable-style index file, read into plain tuples so lookups are thread-safe."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # Read on first use: ntc-templates' index (a thousand rows of regexes, ~0.3 s) is
        # only needed when the own templates have no match, often never in a `collect`.
        self._rows: tuple[_IndexRow, ...] | None = None
        self._error: str | None = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._rows is not None:
                return
            path = self.directory / INDEX_FILE
            rows: tuple[_IndexRow, ...] = ()
            if path.is_file():
                try:
                    rows = self._read(path)
                except Exception as exc:  # noqa: BLE001 - a bad index is reported by parse(), not raised
                    self._error = f"{path}: {type(exc).__name__}: {exc}"
            self._rows = rows

    @property
    def rows(self) -> tuple[_IndexRow, ...]:
        if self._rows is None:
            self._load()
        return self._rows  # type: ignore[return-value]

    @property
    def error(self) -> str | None:
        if self._rows is None:
            self._load()
        return self._error

    @staticmethod
    def _read(path: Path) -> tuple[_IndexRow, ...]:
        table = clitable.IndexTable(_expand_completion, _no_compile_for_template, str(path))
        rows = []
        for row in table.index:
            command = row["Command"]
            if not command:
                continue
            platform = row["Platform"] if "Platform" in row.header else ""
            rows.append(_IndexRow(
                platform=re.compile(platform, re.I) if platform else None,
                # IOS keywords are case-insensitive; arguments keep their case in `text`.
                # The match must end where a word ends: `sh[[ow]] st[[andby]]` matches the
                # `show st` of `show startup-config`, which is not `show standby`.
                command=re.compile(f"(?:{command})(?=\\s|$)", re.I),
                templates=tuple(t.strip() for t in row["Template"].split(":") if t.strip()),
            ))
        return tuple(rows)

    def match(self, platforms: Iterable[str], command: str) -> tuple[str, ...] | None:
        # CliTable semantics: first row wins, regexes anchored at the start only.
        for platform in platforms:
            for row in self.rows:
                if row.platform is not None and not row.platform.match(platform):
                    continue
                if row.command.match(command):
                    return row.templates
        return None


def _expand_completion(column: str, value: str) -> str:
    """`sh[[ow]]` -> `sh(o(w)?)?`, as textfsm's CliTable does for the Command column."""
    if column != "Command":
        return value
    return re.sub(r"\[\[(.+?)\]\]", lambda m: "(" + "(".join(m.group(1)) + ")?" * len(m.group(1)), value)


def _no_compile_for_template(column: str, value: str) -> str | None:
    return None if column == "Template" else value


@dataclass(frozen=True)
class _Found:
    directory: Path
    names: tuple[str, ...]

    @property
    def label(self) -> str:
        return ":".join(self.names)


def _ntc_templates_dir() -> Path | None:
    try:
        import ntc_templates  # noqa: PLC0415 - optional at run time
    except ImportError:
        return None
    path = Path(ntc_templates.__file__).resolve().parent / "templates"
    return path if (path / INDEX_FILE).is_file() else None


class TemplateRegistry:
    """Template lookup + parsing. Safe to share between threads."""

    def __init__(self, own_dir: Path | None = None, use_ntc: bool = True) -> None:
        self.own_dir = Path(own_dir) if own_dir is not None else templates_dir()
        self._indexes: list[_TemplateIndex] = [_TemplateIndex(self.own_dir)]
        if use_ntc and (ntc := _ntc_templates_dir()) is not None:
            self._indexes.append(_TemplateIndex(ntc))
        self._lookup_cache: dict[tuple[str, str], _Found | None] = {}
        self._sources: dict[Path, str] = {}
        self._sources_lock = threading.Lock()
        self._local = threading.local()

    def load_indexes(self) -> None:
        """Read every template index now, for a long-running agent: its first incident must
        not wait for ntc-templates' index (read on first use, 0.3-0.4 s)."""
        for index in self._indexes:
            index.rows  # noqa: B018 - the property reads the index

    # ---------------------------------------------------------------- lookup

    def find(self, platform: str, command: str) -> str | None:
        """Path of the template for `command` on `platform`, or None."""
        found = self._find(platform, command)
        return str(found.directory / found.names[0]) if found is not None else None

    def _find(self, platform: str, command: str) -> _Found | None:
        key = (platform, command)
        if key in self._lookup_cache:
            return self._lookup_cache[key]
        found = self._resolve(platform, command)
        if len(self._lookup_cache) >= _LOOKUP_CACHE_MAX:  # commands come from playbooks: few
            self._lookup_cache.clear()
        self._lookup_cache[key] = found  # idempotent: a race only computes it twice
        return found

    def _resolve(self, platform: str, command: str) -> _Found | None:
        platforms = platform_chain(platform)
        written = " ".join(str(command).split())
        plain = strip_line_filters(written)
        own, *others = self._indexes
        attempts: list[tuple[_TemplateIndex, str]] = [(own, written)]
        if plain is not None and plain != written:
            attempts.append((own, plain))
        if plain is not None:
            attempts.extend((index, plain) for index in others)
        for index, cmd in attempts:
            names = index.match(platforms, cmd)
            if names:
                return _Found(index.directory, names)
        return None

    # ---------------------------------------------------------------- parsing

    def parse(self, platform: str, command: str, text: str) -> ParseResult:
        """Parse `text`, the output of `command` on `platform`; never raises."""
        try:
            found = self._find(platform, command)
        except Exception as exc:  # noqa: BLE001 - a broken index is reported, not raised
            return ParseResult([], None, f"template lookup failed: {exc}")
        if found is None:
            broken = "; ".join(i.error for i in self._indexes if i.error)
            return ParseResult([], None, f"no template for {command!r} on platform {platform!r}"
                               + (f" (unreadable index: {broken})" if broken else ""))
        return self._parse_found(found, text)

    def parse_with(self, template: str, text: str) -> ParseResult:
        """Parse with a named template of the own directory (or a path), skipping the index;
        for commands with more than one useful shape (`show logging`: header or records)."""
        path = Path(template)
        if not path.is_absolute():
            path = self.own_dir / template
        if not path.is_file():
            return ParseResult([], None, f"template {template!r} not found")
        return self._parse_found(_Found(path.parent, (path.name,)), text)

    def _parse_found(self, found: _Found, text: str) -> ParseResult:
        if not isinstance(text, str):
            return ParseResult([], found.label, f"output is {type(text).__name__}, not text")
        try:
            if len(found.names) == 1:
                header, rows, list_names = self._run(found.directory / found.names[0], text)
            else:
                (header, rows), list_names = _run_merged(found, text), frozenset()
        except (textfsm.TextFSMError, textfsm.TextFSMTemplateError, clitable.CliTableError) as exc:
            return ParseResult([], found.label, f"{found.label}: {exc}")
        except Exception as exc:  # noqa: BLE001
            return ParseResult([], found.label, f"{found.label}: {type(exc).__name__}: {exc}")
        names = [h.lower() for h in header]
        records = [dict(zip(names, row)) for row in rows]
        if found.directory == self.own_dir:
            enrich = _ENRICHERS.get(found.names[0])
            if enrich is not None:
                records = [enrich(r) for r in records]
            expand = _EXPANDERS.get(found.names[0])
            if expand is not None:
                if not records:  # keep the template's fields, empty, for the expander to carry
                    records = [{n: [] if n.upper() in list_names else "" for n in names}]
                try:
                    records = expand(records, text)
                except Exception as exc:  # noqa: BLE001 - device text never raises
                    return ParseResult(records, found.label, f"{found.label}: {type(exc).__name__}: {exc}")
        return ParseResult(records, found.label, None)

    def _run(self, path: Path, text: str) -> tuple[list[str], list[list[object]], frozenset[str]]:
        fsms: dict[Path, textfsm.TextFSM] | None = getattr(self._local, "fsms", None)
        if fsms is None:
            fsms = self._local.fsms = {}
        fsm = fsms.get(path)
        if fsm is None:
            fsm = fsms[path] = textfsm.TextFSM(io.StringIO(self._source(path)))
        else:
            fsm.Reset()
        # After a TextFSMError the FSM is mid-state; the Reset() above on next use clears it.
        rows = fsm.ParseText(text)
        list_names = frozenset(v.name for v in fsm.values if "List" in v.OptionNames())
        return list(fsm.header), rows, list_names

    def _source(self, path: Path) -> str:
        source = self._sources.get(path)
        if source is None:
            with self._sources_lock:
                source = self._sources.get(path)
                if source is None:
                    source = self._sources[path] = path.read_text(encoding="utf-8")
        return source


def _run_merged(found: _Found, text: str) -> tuple[list[str], list[list[object]]]:
    # Rare multi-template index rows (ntc `show module`): let CliTable merge them by Key.
    table = clitable.CliTable(INDEX_FILE, str(found.directory))
    table.ParseCmd(text, templates=":".join(found.names))
    return list(table.header), [list(row) for row in table]


def platform_chain(platform: str) -> tuple[str, ...]:
    """`cisco_xe_ssh` -> ("cisco_xe", "cisco_ios"): the platform names to try, in order."""
    name = _TRANSPORT_SUFFIX.sub("", str(platform).strip().lower())
    return (name, *_PLATFORM_FALLBACK.get(name, ()))


def strip_line_filters(command: str) -> str | None:
    """The command without `| include/exclude/begin/section/tee ...` modifiers (each may be
    abbreviated, as IOS accepts); None when a modifier changes the output (`| count`).

    A `|` inside an include regex (`| include A|B`) is alternation, not a new modifier:
    only a `|` followed by a modifier keyword starts one."""
    base, sep, rest = command.partition("|")
    if not sep:
        return command.strip()
    for segment in _split_modifiers(rest):
        words = segment.split()
        if not words or not _is_modifier(words[0], _LINE_FILTERS):
            return None
    return base.strip()


def _is_modifier(word: str, names: tuple[str, ...]) -> bool:
    word = word.lower()
    return any(name.startswith(word) for name in names)


def _split_modifiers(rest: str) -> list[str]:
    pieces = rest.split("|")
    segments = [pieces[0]]
    for piece in pieces[1:]:
        words = piece.split()
        if words and _is_modifier(words[0], _LINE_FILTERS + _OTHER_MODIFIERS):
            segments.append(piece)
        else:
            segments[-1] += "|" + piece  # part of the previous modifier's regex
    return segments


# --------------------------------------------------------------------------- enrichment
# TextFSM can only capture text that is in the output. Facts that are a judgement over
# several captured fields (IOS vs IOS-XE, ASR1000 or not) are derived here, in one place,
# for the own template that captures their evidence.

_XE_IMAGE = re.compile(r"_LINUX_IOSD|IOS-XE|IOS XE|Virtual XE", re.I)
_ASR1K = re.compile(r"\bASR1\d{3}\b|\basr1\d{3}[a-z0-9]*-", re.I)
# Only what the image and hardware say; never the hostname (`asr1001-edge` may be a 1801).
_VERSION_EVIDENCE = ("image_family", "image_id", "model", "system_image")


def _enrich_show_version(record: dict[str, object]) -> dict[str, object]:
    evidence = " ".join(str(record.get(k) or "") for k in _VERSION_EVIDENCE)
    is_asr = bool(_ASR1K.search(evidence))
    is_xe = bool(record.get("xe_version")) or bool(_XE_IMAGE.search(evidence)) or is_asr
    out = dict(record)
    out["os_family"] = "IOS-XE" if is_xe else "IOS"
    out["is_asr1000"] = is_asr
    return out


_ENRICHERS: dict[str, Callable[[dict[str, object]], dict[str, object]]] = {
    "cisco_ios_show_version_family.textfsm": _enrich_show_version,
}


# --------------------------------------------------------------------------- show logging
# The header comes from the TextFSM template; the records of the buffer from
# collector.detect.logline, the detector's own reader (every stamp form, continuation
# lines joined, years filled in), so `collector parse`, `collect` and the agent see the
# same records. A 10 MB buffer is ~100,000 records: TextFSM would take ten times longer.

LOG_RECORD_FIELDS = (
    "sequence", "flag", "timestamp", "month", "day", "year", "time", "timezone", "uptime",
    "hostname", "facility", "severity", "mnemonic", "message", "raw",
    "destaddr", "prot", "spi", "spi_dec", "srcaddr", "interface",
)
_MONTH_NAMES = frozenset(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))


def _show_logging_records(header_records: list[dict[str, object]], text: str) -> list[dict[str, object]]:
    """One record per log record of the buffer, each carrying the header's fields (as
    TextFSM's Filldown would) and LOG_RECORD_FIELDS ("" when absent; the invalid-SPI
    fields only on a `%CRYPTO-4-RECVD_PKT_INV_SPI` record, unvalidated). An empty buffer
    gives the header alone, with every log field "", so the header is never lost."""
    from collector.detect.logline import invalid_spi_fields, iter_log_records  # noqa: PLC0415

    header = header_records[0] if header_records else {}
    out = []
    for line in iter_log_records(text):
        record = dict(header)
        record.update(_log_fields(line, invalid_spi_fields(line)))
        out.append(record)
    if not out:
        if not any(header.values()):
            return []  # neither a header nor a record: not a `show logging` output
        empty = dict(header)
        empty.update(dict.fromkeys(LOG_RECORD_FIELDS, ""))
        out.append(empty)
    return out


def _log_fields(line, spi_fields: dict[str, str] | None) -> dict[str, object]:
    fields: dict[str, object] = dict.fromkeys(LOG_RECORD_FIELDS, "")
    stamp = line.timestamp_text or ""
    if stamp:
        fields["timestamp"] = stamp
        at = line.raw.find(stamp)
        if at > 0 and line.raw[at - 1] in "*.":
            fields["flag"] = line.raw[at - 1]
        words = stamp.split()
        if words[0] in _MONTH_NAMES and len(words) >= 3:
            fields["month"], fields["day"] = words[0], words[1]
            rest = words[2:]
            if rest and len(rest[0]) == 4 and rest[0].isdigit():
                fields["year"], rest = rest[0], rest[1:]
            if rest:
                fields["time"], rest = rest[0], rest[1:]
            if rest:
                fields["timezone"] = rest[0]
        elif ":" in stamp or stamp[-1:] in "wdh" and len(words) == 1:
            fields["uptime"] = stamp
    if line.seq is not None:
        fields["sequence"] = str(line.seq)
    if line.hostname:
        fields["hostname"] = line.hostname
    if line.mnemonic:
        facility, severity, name = line.mnemonic.rsplit("-", 2)
        fields["facility"], fields["severity"], fields["mnemonic"] = facility, severity, name
    fields["message"] = line.message
    fields["raw"] = line.raw
    if spi_fields:
        fields.update(spi_fields)
    return fields


_EXPANDERS: dict[str, Callable[[list[dict[str, object]], str], list[dict[str, object]]]] = {
    "cisco_ios_show_logging_header.textfsm": _show_logging_records,
}


# --------------------------------------------------------------------------- process-wide

_default: TemplateRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> TemplateRegistry:
    """The process-wide registry (own templates + ntc-templates), built on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = TemplateRegistry()
    return _default

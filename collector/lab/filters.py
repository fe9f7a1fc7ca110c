"""IOS output modifiers: `| include`, `| exclude`, `| begin`, `| section`, `| count`, `| append`.

The first `|` that starts a word ends the command; the rest is one or more modifiers
(IOS-XE accepts several). A modifier's regex is everything up to the next ` | ` that is
followed by another modifier keyword, so `| include A|B` keeps its alternation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

FILTER_KEYWORDS = ("append", "begin", "count", "exclude", "format", "include", "redirect", "section", "tee")


@dataclass(frozen=True, slots=True)
class OutputFilter:
    keyword: str
    argument: str
    column: int  # where the keyword starts in the input line


class FilterError(Exception):
    def __init__(self, kind: str, column: int):
        super().__init__(kind)
        self.kind = kind  # "invalid" | "incomplete" | "ambiguous"
        self.column = column


def split_filters(line: str) -> tuple[str, list[OutputFilter]]:
    """Command text and its modifiers; raises FilterError like IOS would complain."""
    pipe = _first_pipe(line)
    if pipe < 0:
        return line, []
    command = line[:pipe]
    filters: list[OutputFilter] = []
    rest_start = pipe + 1
    pieces: list[tuple[str, int]] = []
    # split the tail on '|' that is followed by a modifier keyword (XE allows chaining)
    pos = rest_start
    current_start = rest_start
    while True:
        nxt = line.find("|", pos)
        if nxt < 0:
            pieces.append((line[current_start:], current_start))
            break
        after = line[nxt + 1 :].lstrip()
        word = after.split(" ", 1)[0].lower() if after else ""
        if word and any(k.startswith(word) for k in FILTER_KEYWORDS) and line[nxt - 1 : nxt] == " ":
            pieces.append((line[current_start:nxt].rstrip(), current_start))  # the blank before `|` separates
            current_start = nxt + 1
        pos = nxt + 1
    for text, offset in pieces:
        stripped = text.lstrip()
        column = offset + (len(text) - len(stripped))
        if not stripped.strip():
            raise FilterError("incomplete", len(line))
        word, _, arg = stripped.partition(" ")
        lower = word.lower()
        matches = [k for k in FILTER_KEYWORDS if k.startswith(lower)]
        if lower in FILTER_KEYWORDS:
            matches = [lower]
        if not matches:
            raise FilterError("invalid", column)
        if len(matches) > 1:
            raise FilterError("ambiguous", column)
        keyword = matches[0]
        arg = arg.strip() if keyword in ("append", "redirect", "tee") else arg.lstrip()
        if keyword == "section":
            sub, _, rest = arg.partition(" ")
            if sub.lower() in ("include", "exclude") and rest.strip():
                keyword = "section-exclude" if sub.lower() == "exclude" else "section"
                arg = rest.lstrip()
        if not arg and keyword != "format":
            raise FilterError("incomplete", len(line))
        if keyword not in ("append", "redirect", "tee"):
            try:
                re.compile(arg)
            except re.error:
                raise FilterError("invalid", column + len(word) + 1) from None
        filters.append(OutputFilter(keyword, arg, column))
    return command, filters


def _first_pipe(line: str) -> int:
    in_quote = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_quote = not in_quote
        elif ch == "|" and not in_quote:
            return i
    return -1


def _sections(lines: list[str]) -> list[list[str]]:
    sections: list[list[str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and sections:
            sections[-1].append(line)
        else:
            sections.append([line])
    return sections


def _including(text: str, pattern: str) -> list[str]:
    """The lines of text holding a match of pattern, found by searching the whole text and
    widening each match to its line: a router filters its 10 MB buffer at C speed, and a
    lab process serving 200 routers must not stall them all for one hub's `| include`.

    A plain alternation (`A.B|C|D`) is searched branch by branch: `re` finds a branch's
    literal prefix fast, but tries every branch at every character of an alternation."""
    plain = not any(c in pattern for c in "()[]\\")  # no group, class or escape: no match spans lines
    branches = pattern.split("|") if plain and "|" in pattern else [pattern]
    spans: dict[int, int] = {}
    for branch in branches:
        spans.update(_matching_lines(text, branch))
    return [text[start:spans[start]] for start in sorted(spans)]


def _matching_lines(text: str, pattern: str) -> dict[int, int]:
    """{start: stop} of each line (or run of lines) holding a match of pattern."""
    rx = re.compile(pattern, re.M)
    found: dict[int, int] = {}
    pos, end = 0, len(text)
    while pos <= end:
        m = rx.search(text, pos)
        if m is None:
            break
        start = text.rfind("\n", 0, m.start()) + 1
        stop = text.find("\n", m.end())
        if stop < 0:
            stop = end
        if start < end:
            found[start] = stop
        pos = stop + 1
    return found


def apply_filters(text: str, filters: list[OutputFilter], write_file: Callable[[str, str, bool], None]) -> str:
    """Run the modifiers in order; `append`/`redirect`/`tee` write through write_file(path, text, append)."""
    for f in filters:
        if f.keyword in ("append", "redirect", "tee"):
            write_file(f.argument, text, f.keyword == "append")
            if f.keyword != "tee":
                text = ""
            continue
        if f.keyword == "format":
            continue
        if f.keyword == "include":
            lines = _including(text, f.argument)
            text = "\n".join(lines) + ("\n" if lines else "")
            continue
        lines = text.split("\n")
        if text.endswith("\n"):
            lines = lines[:-1]
        rx = re.compile(f.argument)
        if f.keyword == "exclude":
            lines = [ln for ln in lines if not rx.search(ln)]
        elif f.keyword == "begin":
            for i, ln in enumerate(lines):
                if rx.search(ln):
                    lines = lines[i:]
                    break
            else:
                lines = []
        elif f.keyword == "count":
            n = sum(1 for ln in lines if rx.search(ln))
            text = f"Number of lines which match regexp = {n}\n"
            continue
        elif f.keyword in ("section", "section-exclude"):
            keep: list[str] = []
            for sec in _sections(lines):
                hit = any(rx.search(ln) for ln in sec)
                if hit == (f.keyword == "section"):
                    keep.extend(sec)
            lines = keep
        text = "\n".join(lines) + ("\n" if lines else "")
    return text

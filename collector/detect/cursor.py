"""Fallback only: which log lines are new, by their text, where the router gives no counter.

The reader is collector/detect/logread.py: it identifies records by the buffer's
`messages logged` count, sequence numbers and buffer order. This module is used there only
for output whose header carries no count (a platform that does not print one).

Text is a weak identity: with `service timestamps log uptime` or no time stamps every line
of one flow is byte-identical. Fingerprints are therefore kept with their multiplicity: a
line is new when the buffer now holds more copies of it than at the last read. What this
cannot see: a wrap that drops k copies while k identical ones arrive reports nothing new.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

MAX_REMEMBERED = 20_000  # far above what a filtered buffer can hold; bounds memory per router


def fingerprint(line: str) -> str:
    return hashlib.blake2b(line.strip().encode("utf-8", "replace"), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class LogCursor:
    """Fingerprints (with multiplicity) of the lines seen at the last read."""

    seen: tuple[tuple[str, int], ...] = ()

    def to_text(self) -> str:
        return ",".join(f"{fp}:{n}" for fp, n in self.seen)

    @classmethod
    def from_text(cls, text: str | None) -> "LogCursor":
        if not text:
            return cls()
        pairs = []
        for item in text.split(","):
            fp, _, count = item.partition(":")
            if fp and count.isdigit():
                pairs.append((fp, int(count)))
        return cls(tuple(pairs))


def new_lines(cursor: LogCursor, lines: Iterable[str]) -> tuple[list[str], LogCursor]:
    """The lines not seen at the last read, in buffer order, and the cursor to keep."""
    previous = Counter(dict(cursor.seen))
    current: Counter[str] = Counter()
    fresh: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        fp = fingerprint(line)
        current[fp] += 1
        if current[fp] > previous.get(fp, 0):
            fresh.append(line)
    kept = tuple(current.items())[-MAX_REMEMBERED:]
    return fresh, LogCursor(kept)

"""Which log lines are new since the last read of a router's buffer.

Sequence numbers and timestamps cannot be trusted alone: not every router prints
sequence numbers, `clear logging` and a reload restart them, the buffer wraps, and clocks
jump (NTP, a `*` unsynchronised clock after boot). What is reliable is the text of the
lines themselves: each line carries its own timestamp (and sequence number where
configured), so the same text seen again is the same event. The cursor therefore keeps
fingerprints of the matching lines present in the buffer at the last read; a line whose
fingerprint is not among them is new. Wrap drops old fingerprints naturally; a cleared
buffer makes every line new, which is right.

One subtle case: a line with no timestamp and no sequence number repeats verbatim. Lines
are counted per fingerprint, so a second identical line is still reported as new.
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

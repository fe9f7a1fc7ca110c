"""The lines of a big text one at a time.

`text.splitlines()` makes every line of a 10 MB `show logging` at once (about 12 MB of
line objects for 69,000 lines on top of the text); a reader that looks at one line at a
time needs only the line it is at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Every boundary str.splitlines() knows: \r\n first, then the single characters.
LINE_SEPARATORS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
LINE_END = re.compile("\r\n|[" + LINE_SEPARATORS + "]")
# What must never reach a router inside a command: C0 controls (line breaks included) and DEL.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")


def has_control_character(text: str) -> bool:
    """A C0 control character (a line break, a tab, an escape) or DEL anywhere in `text`."""
    return _CONTROL_CHARACTER.search(text) is not None


def iter_lines(text: str, *, start: int = 0, chunk: int = 1 << 16) -> Iterator[str]:
    """The lines of `text` as `text.splitlines()` gives them, made a chunk of about `chunk`
    characters at a time (a few hundred lines at C speed, not the whole text's at once).
    From `start` on, which must be where a line begins (`text[start:]`, not copied).

    A chunk ends just after a "\n", which ends a line whatever came before it ("\r\n"
    stays whole), so each chunk splits exactly as it would within the whole text."""
    size = len(text)
    while start < size:
        end = text.find("\n", start + chunk - 1)
        end = size if end < 0 else end + 1
        yield from text[start:end].splitlines()
        start = end

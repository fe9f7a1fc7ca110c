"""The lines of a big text one at a time.

`text.splitlines()` makes every line of a 10 MB `show logging` at once (about 12 MB of
line objects for 69,000 lines on top of the text); a reader that looks at one line at a
time needs only the line it is at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Every boundary str.splitlines() knows: \r\n first, then the single characters.
_LINE_END = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def iter_lines(text: str) -> Iterator[str]:
    """The lines of `text` as `text.splitlines()` gives them, made one at a time."""
    start = 0
    for end in _LINE_END.finditer(text):
        yield text[start:end.start()]
        start = end.end()
    if start < len(text):
        yield text[start:]

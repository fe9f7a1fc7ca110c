"""The read-only rule for commands sent to routers outside an arm plan: one `show`
command, whose output may only be filtered, never written to a file or piped into
something that runs. `collect()` (every collection: the command line, a site worker, a
playbook's capture list) and the playbook's own checks use this one rule.
"""

from __future__ import annotations

import re

from collector.textlines import has_control_character

# Output filters that only select lines. Modifiers that write files (`redirect`,
# `append`, `tee`) or run something (`format`, `utility`) are refused, abbreviated or not.
_LINE_FILTERS = ("include", "exclude", "begin", "section", "count")
_WRITING_MODIFIERS = ("redirect", "append", "tee", "format", "utility")
_PIPE = re.compile(r"\|\s*(\S*)")


def read_only_refusal(command: str) -> str | None:
    """Why `command` is not a read-only show command, or None when it is.

    `show` may be abbreviated down to `sh`; every `|` is looked at, also a `|` inside an
    include regex, so no abbreviation of a writing modifier slips through anywhere."""
    if not isinstance(command, str) or not command.strip():
        return "an empty command"
    if has_control_character(command):
        return "a line break or control character in the command"
    words = command.split()
    first = words[0].lower()
    if len(first) < 2 or not "show".startswith(first):
        return f"{words[0]!r} is not 'show' (only read-only show commands are run)"
    head, _, _ = command.partition("|")
    if ">" in head:
        return "output redirection with '>' writes a file on the router"
    for index, match in enumerate(_PIPE.finditer(command)):
        verb = match.group(1).lower()
        if verb and any(m.startswith(verb) for m in _WRITING_MODIFIERS):
            return f"'| {match.group(1)}' writes or runs something on the router"
        if index == 0 and (not verb or not any(f.startswith(verb) for f in _LINE_FILTERS)):
            return f"'| {match.group(1)}' is not an output filter ({', '.join(_LINE_FILTERS)})"
    return None

"""`collect --print`: outputs shown the way Nornir's `print_result` shows a task's results,
so a Nornir user reads them at a glance.

    collect ************************************************************************
    * hub1 ** changed : False ******************************************************
    vvvv show clock ** changed : False vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv INFO
    *10:21:07.123 UTC Sun Dec 6 2026
    ^^^^ END show clock ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

`changed` is always False: collect only runs show commands. A failed command is marked
ERROR with its error; a host that could not be reached gets one ERROR block. With
`parsed=True` the template records are shown (as JSON) instead of the raw text, where a
template exists. Secrets of the inventory are masked in everything printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

WIDTH = 80


def _bar(text: str, fill: str, suffix: str = "") -> str:
    line = text + " " + fill * max(3, WIDTH - len(text) - 1 - (len(suffix) + 1 if suffix else 0))
    return line + (" " + suffix if suffix else "")


def result_lines(run, *, parsed: bool = False, secrets: Sequence[str] = (), color: bool = False) -> Iterator[str]:
    """The lines of the print-out of a `collect()` run, host by host in run order."""
    from collector.redact import redact, redact_data, redact_values

    def redact_text(text: str, values: list[str]) -> str:
        return redact_values(redact(text), values)

    def paint(text: str, fg: str, bold: bool = False) -> str:
        if not color:
            return text
        import click

        return click.style(text, fg=fg, bold=bold)

    yield paint(_bar("collect", "*"), "cyan", bold=True)
    for outcome in run.outcomes:
        state = "" if outcome.ok else " ** FAILED"
        yield paint(_bar(f"* {outcome.host} ** changed : False{state}", "*"), "blue" if outcome.ok else "red",
                    bold=True)
        if outcome.error and all(r.error is not None for r in outcome.results):
            # not connected (or lost before any command ran): one block, as Nornir shows the exception
            yield paint(_bar(f"vvvv {outcome.host} ** changed : False", "v", "ERROR"), "red", bold=True)
            yield redact_text(f"{outcome.error_kind or 'error'}: {outcome.error}", list(secrets))
            yield paint(_bar(f"^^^^ END {outcome.host}", "^"), "red", bold=True)
            continue
        for r in outcome.results:
            level, fg = ("INFO", "green") if r.error is None else ("ERROR", "red")
            yield paint(_bar(f"vvvv {r.command} ** changed : False", "v", level), fg, bold=True)
            if r.error is not None:
                body = f"{r.error_kind or 'error'}: {r.error}"
            elif parsed and r.parsed is not None:
                yield json.dumps(redact_data(r.parsed, list(secrets)), indent=2, default=str)
                yield paint(_bar(f"^^^^ END {r.command}", "^"), fg, bold=True)
                continue
            else:
                body = (r.text or "").rstrip("\n")
            yield redact_text(body, list(secrets))
            yield paint(_bar(f"^^^^ END {r.command}", "^"), fg, bold=True)

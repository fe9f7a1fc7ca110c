"""How an arming's steps reach a router: in runs, each run in as few round trips as is safe.

Across a WAN every exchange with a router is a round trip (20-150 ms): an arming of a few
configuration steps and three or four debugs, sent one line at a time with a `configure
terminal` and an `end` around each configuration step, cost some twenty of them. Here
consecutive configuration steps share one configuration session (a refused line still
stops what follows it), and consecutive debugs, or consecutive debug conditions, are typed
ahead in one write, each step judged by its own answer. A debug is never typed ahead with
the condition it needs: that condition is seen accepted first.
"""

from __future__ import annotations

from collector.core.steps import Step
from collector.respond.facts import refusal_in, refusal_of
from collector.respond.plan import condition_named_by, debug_named_by
from collector.sessions import CommandRefused, RouterSession, SessionError


def runs_sent_together(steps: list[tuple[int, Step]]) -> list[list[tuple[int, Step]]]:
    """Steps in the groups they are sent in, in order: consecutive configuration steps in
    one configuration session; consecutive exec steps that each set a debug condition, or
    each turn a crypto debug on, typed ahead in one write; any other step alone. A debug
    is never typed ahead together with a condition: the condition is seen accepted first
    (a refused condition under typed-ahead debugs would leave them unconditioned)."""
    runs: list[list[tuple[int, Step]]] = []
    last_kind = None
    for item in steps:
        kind = _run_kind(item[1])
        if runs and kind is not None and kind == last_kind:
            runs[-1].append(item)
        else:
            runs.append([item])
        last_kind = kind
    return runs


def said_note(texts: list[str]) -> str | None:
    """What the router said to a step's lines beyond its prompt, as one note (None: nothing)."""
    return "; ".join(text for text in texts if text)[:500] or None


def sets_a_condition(step: Step) -> bool:
    """Every command of `step` sets a debug condition (a join's first steps)."""
    return _run_kind(step) == "condition"


def _run_kind(step: Step) -> str | None:
    if step.mode == "config":
        return "config"
    if step.do and all(condition_named_by(command) for command in step.do):
        return "condition"
    if step.do and all(debug_named_by(command) for command in step.do):
        return "debug"
    return None


def typed_ahead_steps(session: RouterSession, steps: list[tuple[str, ...]]) -> list[tuple[str | None, str | None]]:
    """Exec steps (each its commands) typed ahead in one write: (what the router said, why
    it refused) for each, from its own answers.

    Raises:
        SessionError: the session failed (any step may have been applied)."""
    answers = iter(session.run_many([command for step in steps for command in step]))
    outcomes: list[tuple[str | None, str | None]] = []
    for step in steps:
        texts, failure = [], None
        for command in step:
            out = next(answers)
            refused = refusal_of(out.text)
            if refused and failure is None:
                failure = f"router refused {command!r}: {refused}"
            texts.append(out.text.strip())
        outcomes.append((said_note(texts), failure))
    return outcomes


class StepsStopped(Exception):
    """`configure_steps` stopped: `done` steps were applied whole, the next one failed
    (refused, or its session failed: possibly half-applied), the rest were not sent."""

    def __init__(self, done: int, error: SessionError):
        super().__init__(error.reason)
        self.done = done
        self.error = error


def configure_steps(session: RouterSession, steps: list[tuple[str, ...]]) -> list[str | None]:
    """Configuration steps (each its lines) in one configuration session: `configure
    terminal`, every step's lines in order, `end`. Across a WAN each `end` and `configure
    terminal` between two steps is a round trip (and a `%SYS-5-CONFIG_I` line): arming
    sends three or four such steps. A refused line still stops what follows it. Returns
    what the router said to each step beyond its prompt, if anything.

    Raises:
        StepsStopped: a line was refused (`% ...` or AAA) or the session failed."""
    lines = [line for step in steps for line in step]
    try:
        outputs = session.configure(lines)
    except SessionError as exc:
        raise StepsStopped(_step_of(steps, exc.command), exc) from None
    for out in outputs:  # AAA's refusal, when the session did not raise it
        refused = refusal_in(out.text)
        if refused:
            raise StepsStopped(_step_of(steps, out.command), CommandRefused(
                session.host.name, f"router refused {out.command!r}: {refused}", output=out.text)) from None
    said = iter(outputs[1:])  # after `configure terminal`; each line's answer in order, then `end`
    notes = []
    for step in steps:
        texts = [next(said).text.strip() for _line in step]
        notes.append(said_note(texts))
    return notes


def _step_of(steps: list[tuple[str, ...]], command: str | None) -> int:
    """The step a failed line belongs to. `configure terminal`: the first (nothing sent);
    `end`, or no line named: the last (all sent). A line found in several steps counts as
    the last of them: the steps before it are then taken as applied, so their undo runs
    (undoing a step that was never sent changes nothing) and none is forgotten."""
    if command == "configure terminal":
        return 0
    found = [i for i, step in enumerate(steps) if command is not None and command in step]
    return found[-1] if found else len(steps) - 1

"""EEM applets as configured in `event manager applet NAME` mode, and when they fire.

Only what the lab needs is executed: a countdown timer fires once when lab time passes
it, then its `cli command` actions run in a fresh internal CLI session and its
`syslog msg` actions log `%HA_EM-6-LOG: NAME: text`. A `event syslog pattern` applet
fires when a matching message is logged (`occurs N period S` honoured). Other event and
action types are stored and shown, not executed.

Action labels are ordered as strings, as EEM does (docs/domain.md §1.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from collector.lab.clitree import tokenize

EVENT_TYPES = ("timer", "syslog", "none", "cli", "snmp", "interface", "track", "counter", "tag", "ipsla")
ACTION_TYPES = (
    "cli",
    "syslog",
    "wait",
    "puts",
    "regexp",
    "set",
    "comment",
    "info",
    "string",
    "append",
    "if",
    "else",
    "elseif",
    "end",
    "while",
    "foreach",
    "break",
    "continue",
    "increment",
    "decrement",
    "add",
    "subtract",
    "divide",
    "multiply",
    "file",
    "mail",
    "reload",
    "counter",
    "context",
    "handle-error",
    "policy",
    "gets",
    "publish-event",
    "force-switchover",
    "cns-event",
    "track",
    "snmp-trap",
)


class AppletSyntaxError(ValueError):
    """A line that IOS would reject in applet mode; carries the caret column."""

    def __init__(self, column: int):
        super().__init__(column)
        self.column = column


@dataclass(frozen=True, slots=True)
class Action:
    label: str
    kind: str  # "cli", "syslog", ...
    text: str  # the configuration line after ` action LABEL `
    argument: str | None  # the quoted command / message for cli and syslog


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # "timer countdown", "syslog", ...
    text: str  # line after ` event `
    countdown: float | None = None  # seconds, for timer countdown
    pattern: str | None = None  # regex, for syslog
    occurs: int = 1
    period: float | None = None


@dataclass
class Applet:
    name: str
    header_options: str = ""  # e.g. "authorization bypass"
    description: str | None = None
    event: Event | None = None
    actions: dict[str, Action] = field(default_factory=dict)
    # runtime: when a countdown is due (lab seconds); syslog match history
    due: float | None = None
    matches: list[float] = field(default_factory=list)

    def ordered_actions(self) -> list[Action]:
        return [self.actions[k] for k in sorted(self.actions)]

    def config_lines(self) -> list[str]:
        head = f"event manager applet {self.name}"
        if self.header_options:
            head += f" {self.header_options}"
        lines = [head]
        if self.description:
            lines.append(f" description {self.description}")
        if self.event is not None:
            lines.append(f" event {self.event.text}")
        lines.extend(f" action {a.label} {a.text}" for a in self.ordered_actions())
        return lines

    def copy(self) -> Applet:
        return Applet(self.name, self.header_options, self.description, self.event, dict(self.actions))


def _option(words: list[str], name: str) -> str | None:
    for i, word in enumerate(words[:-1]):
        if word.lower() == name:
            return words[i + 1]
    return None


def parse_event(text: str) -> Event:
    """Parse the part after ` event `; raises AppletSyntaxError at the offending word."""
    tokens = tokenize(text)
    if not tokens:
        raise AppletSyntaxError(0)
    kind = tokens[0].text.lower()
    full = [t for t in EVENT_TYPES if t.startswith(kind)]
    if len(full) != 1:
        raise AppletSyntaxError(tokens[0].start)
    kind = full[0]
    words = [t.text for t in tokens]
    if kind == "timer":
        if len(tokens) < 2:
            raise AppletSyntaxError(len(text))
        sub = [t for t in ("countdown", "watchdog", "absolute", "cron") if t.startswith(tokens[1].text.lower())]
        if len(sub) != 1:
            raise AppletSyntaxError(tokens[1].start)
        time_text = _option(words, "time")
        if sub[0] in ("countdown", "watchdog"):
            if time_text is None:
                raise AppletSyntaxError(len(text))
            try:
                seconds = float(time_text)
            except ValueError:
                raise AppletSyntaxError(text.rfind(time_text)) from None
            return Event(f"timer {sub[0]}", text, countdown=seconds if sub[0] == "countdown" else None)
        return Event(f"timer {sub[0]}", text)
    if kind == "syslog":
        pattern = None
        for i, t in enumerate(tokens[:-1]):
            if t.text.lower() == "pattern" and not t.quoted:
                pattern = tokens[i + 1].text
        if pattern is None:
            raise AppletSyntaxError(len(text))
        try:
            re.compile(pattern)
        except re.error:
            raise AppletSyntaxError(text.find(pattern)) from None
        occurs = _option(words, "occurs")
        period = _option(words, "period")
        try:
            return Event(
                "syslog",
                text,
                pattern=pattern,
                occurs=int(occurs) if occurs else 1,
                period=float(period) if period else None,
            )
        except ValueError:
            raise AppletSyntaxError(len(text)) from None
    return Event(kind, text)


def parse_action(text: str) -> Action:
    """Parse the part after ` action `: LABEL TYPE ..."""
    tokens = tokenize(text)
    if len(tokens) < 2:
        raise AppletSyntaxError(len(text))
    label = tokens[0].text
    kind_text = tokens[1].text.lower()
    kinds = [k for k in ACTION_TYPES if k.startswith(kind_text)]
    if kind_text in ACTION_TYPES:
        kinds = [kind_text]
    if len(kinds) != 1:
        raise AppletSyntaxError(tokens[1].start)
    kind = kinds[0]
    rest = text[tokens[1].start :].split(None, 1)
    body = f"{kind} {rest[1]}" if len(rest) > 1 else kind
    argument = None
    if kind in ("cli", "syslog"):
        sub = "command" if kind == "cli" else "msg"
        if len(tokens) < 4 or not sub.startswith(tokens[2].text.lower()):
            raise AppletSyntaxError(tokens[2].start if len(tokens) > 2 else len(text))
        argument = tokens[3].text
        trailing = " ".join(f'"{t.text}"' if t.quoted else t.text for t in tokens[4:])
        body = f'{kind} {sub} "{argument}"' + (f" {trailing}" if trailing else "")
    return Action(label, kind, body, argument)


# -- variables: `$_syslog_msg`, `regexp ... match VAR`, `set VAR VALUE` ------------------

_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def substitute(text: str, variables: dict[str, str]) -> str:
    """`$name` -> its value; names not set are left as typed (EEM would fail the action)."""
    return _VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), text)


def run_variable_action(action: Action, variables: dict[str, str]) -> None:
    """Apply a `regexp` or `set` action to the applet's variables (other kinds: nothing)."""
    tokens = tokenize(action.text)
    if action.kind == "set" and len(tokens) >= 3:
        variables[tokens[1].text] = substitute(action.text[tokens[2].start :].strip().strip('"'), variables)
    elif action.kind == "regexp" and len(tokens) >= 3:
        pattern, subject = tokens[1].text, substitute(tokens[2].text, variables)
        try:
            found = re.search(pattern, subject)
        except re.error:
            found = None
        variables["_regexp_result"] = "1" if found else "0"
        # `regexp PATTERN INPUT [MATCH [SUB1 [SUB2 ...]]]`: the whole match, then the groups
        if found:
            groups = [found.group(0), *found.groups()]
            for name, value in zip((t.text for t in tokens[3:]), groups, strict=False):
                variables[name] = value or ""

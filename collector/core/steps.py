"""One change to a router with its undo: what the arm plan builds and the state store keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from collector.core.states import StepScope

Mode = Literal["exec", "config"]


@dataclass(frozen=True, slots=True)
class Step:
    """One change to a router and the commands that take it back.

    `scope` says whom the change serves: ROUTER (logging, the crypto debugs, the dead-man
    applet: shared by every flow armed on that router) or FLOW (one flow's own debug
    condition: undone when that flow's incident ends even if the router stays armed)."""

    do: tuple[str, ...]
    undo: tuple[str, ...]
    mode: Mode  # exec, or config (sent inside configure terminal ... end)
    why: str
    scope: StepScope = StepScope.ROUTER

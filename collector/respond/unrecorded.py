"""Undo outcomes the state store could not take: held in memory, written again later.

Decide first, then record: a disarm sends every undo whatever the store answers when the
outcome is written down (a full disk, a read-only file). An undo that went through but
could not be marked `undone` is held here, so this process does not send it again (a
second `no debug ...` could switch off a debug someone else turned on since), and it is
written to the store at each later chance (the next disarm, the agent's disarm retry, the
agent's stop) until the store takes it.
"""

from __future__ import annotations

import logging
import threading

from collector.core.states import StepStatus
from collector.errors import StateStoreError
from collector.state import ArmedStep, StateStore

log = logging.getLogger(__name__)

Key = tuple[str, str, int]  # (incident, router, step index)


class UnrecordedSteps:
    """Undone steps the store has not recorded yet (any thread: one lock, held only
    around the dict, never while the store or a router is used)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Key, str | None] = {}  # -> the note the store should get
        self.problem: str | None = None  # the store's last refusal, for what the agent says

    def keep(self, armed: ArmedStep, note: str | None, problem: str) -> None:
        with self._lock:
            self._held[(armed.incident_id, armed.router, armed.index)] = note
            self.problem = problem

    def record_undone(self, store: StateStore, armed: ArmedStep, note: str | None) -> None:
        """Decide first, then record: the undo went through whatever the store says now."""
        try:
            store.set_step_status(armed.incident_id, armed.router, armed.index, StepStatus.UNDONE, note)
        except StateStoreError as exc:
            if armed.router not in self.routers():  # once per router, not per step
                log.warning("%s: undo steps went through but the state store did not record them (%s); "
                            "held in memory, written again later", armed.router, exc)
            self.keep(armed, note, str(exc))

    def note_for(self, router: str) -> tuple[str, ...]:
        """What a disarm result says when `router` has undone steps held here."""
        if router not in self.routers():
            return ()
        return ("its undo steps went through but could not be recorded in the state store (held in memory, "
                "written again at the next disarm or retry)",)

    def without_held(self, steps: list[ArmedStep]) -> list[ArmedStep]:
        """`steps` (read from the store) less those this process knows are undone."""
        with self._lock:
            held = set(self._held)
        return [s for s in steps if (s.incident_id, s.router, s.index) not in held]

    def routers(self) -> list[str]:
        with self._lock:
            return sorted({router for _incident, router, _index in self._held})

    def count(self) -> int:
        with self._lock:
            return len(self._held)

    def write(self, store: StateStore) -> int:
        """Write what is held; returns how many are still held (the store still refuses)."""
        with self._lock:
            pending = dict(self._held)
        for key, note in pending.items():
            incident_id, router, index = key
            try:
                store.set_step_status(incident_id, router, index, StepStatus.UNDONE, note)
            except StateStoreError as exc:
                with self._lock:
                    self.problem = str(exc)
                continue
            with self._lock:
                self._held.pop(key, None)
        return self.count()


def note_step_error(store: StateStore, armed: ArmedStep, error: str) -> None:
    """Note why an undo failed, if the store takes it (only a note: the step stays to undo)."""
    try:
        store.note_step_error(armed.incident_id, armed.router, armed.index, error)
    except StateStoreError as exc:
        log.warning("%s: could not note an undo error in the state store: %s", armed.router, exc)

"""The value a diagnosis check produces: one `Finding`, with the evidence that backs it.

Findings travel from `checks.py` to the report writer (report.md / report.json), so every
field is a plain value and `to_dict()` gives JSON-ready data without any custom encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Severity(str, Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Higher is worse; reports sort on this, not on the text value."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


@dataclass(frozen=True, slots=True)
class EvidenceRef:
    """One line of evidence: which bundle file, which 1-based line (None when the fact is
    a value read from the file rather than one line of it), and the text (secrets masked)."""

    file: str
    line: int | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "text": self.text}


@dataclass(frozen=True, slots=True)
class Finding:
    """One conclusion of the diagnosis.

    `id` is stable across runs and releases (reports and tests key on it); `router` names the
    inventory router the finding is about, None when it is about the flow as a whole.
    """

    id: str
    severity: Severity
    title: str
    detail: str
    evidence: tuple[EvidenceRef, ...] = ()
    recommendation: str = ""
    router: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity.value,
            "router": self.router,
            "title": self.title,
            "detail": self.detail,
            "evidence": [e.to_dict() for e in self.evidence],
            "recommendation": self.recommendation,
        }


def lines_as_evidence(file: str, text: str) -> tuple[EvidenceRef, ...]:
    """Number the lines of a captured file (1-based) so checks can cite them."""
    return tuple(EvidenceRef(file, n, line) for n, line in enumerate(text.splitlines(), start=1))

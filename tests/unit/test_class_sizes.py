"""Issue 10's size rule: no class above 250 lines anywhere in `collector/` but the lab."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "collector"
LIMIT = 250


def test_no_class_above_the_limit_outside_the_lab():
    sizes = {}
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "lab":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                sizes[f"{path.relative_to(PACKAGE)}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert {"respond/responder.py:Responder", "agent/loop.py:Agent", "sessions/device.py:DeviceSession"} <= set(sizes)
    assert {name: size for name, size in sizes.items() if size > LIMIT} == {}

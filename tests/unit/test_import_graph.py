"""The layout the architecture guide promises, checked on the real import graph:
`diagnose/` is pure (it never pulls in a router session, directly or through another
module), and the command-line faces are imported by nothing but their entry points."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "collector"

SESSION_STACK = ("collector.sessions", "collector.collect", "collector.audit", "netmiko", "paramiko", "asyncssh")


def _modules(folder: Path) -> list[str]:
    return sorted("collector." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
                  for p in folder.rglob("*.py") if p.name != "__init__.py")


def test_diagnose_imports_no_session_code_even_indirectly():
    modules = _modules(PACKAGE / "diagnose")
    assert "collector.diagnose.audit" in modules and "collector.diagnose.incident" in modules
    probe = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
             f"print(','.join(m for m in {SESSION_STACK!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"collector.diagnose pulls in {done.stdout.strip()}"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_entry_points_import_the_cli_package():
    importers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                       if p.parent.name != "cli" and p.name != "__main__.py"
                       and any(n == "collector.cli" or n.startswith("collector.cli.") for n in _imports(p)))
    assert importers == []

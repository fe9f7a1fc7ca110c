"""The layout the architecture guide promises, checked on the real import graph:
`diagnose/` is pure (it never pulls in a router session, directly or through another
module), the command-line faces are imported by nothing but their entry points, and no
import loop joins the packages of `collector/` (lazy imports inside functions count)."""

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


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """`collector.respond.plan` -> `collector.respond`: a package, or a top-level module."""
    return ".".join(module.split(".")[:2])


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__main__.py":  # entry points may import any face
            continue
        source = _unit(_module_name(path))
        for target in (_unit(n) for n in _imports(path) if n.startswith("collector.")):
            if target != source:
                edges.setdefault(source, set()).add(target)
    return edges


def _cycle_through(edges: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def test_no_import_loop_between_packages():
    edges = _graph()
    packages = sorted(_unit(_module_name(p)) for p in PACKAGE.glob("*/__init__.py"))
    assert len(packages) >= 6  # the walk found the tree (agent, core, detect, diagnose, ...)
    loops = [" -> ".join(c) for c in (_cycle_through(edges, p) for p in packages) if c]
    assert loops == []


def test_the_loop_finder_finds_a_loop():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle_through(edges, "a") == ["a", "b", "c", "a"]
    assert _cycle_through(edges, "d") is None

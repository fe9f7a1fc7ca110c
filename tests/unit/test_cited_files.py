"""Every repository file the README, the docs, the playbooks and the code's own comments
cite exists (a reader following a reference must find it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOP = ("collector", "deploy", "bench", "docs", "tests", "templates", "playbooks")
# `dir/...` paths written in prose or code spans, and relative Markdown links.
_PATH = re.compile(r"(?<![\w./-])((?:%s)/[A-Za-z0-9_./-]*[A-Za-z0-9_/])" % "|".join(TOP))
_LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)#\s]+)")
# Names that are patterns or examples, not files (bundle layout, user folders), and
# ntc-templates' own test folders (tests/cisco_ios/...), cited as public sources.
_PATTERN = re.compile(r"[<>*{}]|NN_|/\.\.\.|YYYY|^tests/cisco_(ios|xe)/")


def _sources() -> list[Path]:
    # docs/domain.md is excluded: its `dir/file` texts are files of the public repositories it cites
    docs = [p for p in sorted((REPO / "docs").glob("*.md")) if p.name != "domain.md"]
    files = [REPO / "README.md", *docs, *sorted((REPO / "playbooks").glob("*.yaml")), *sorted((REPO / "bench").glob("*.md"))]
    files += sorted(p for p in (REPO / "collector").rglob("*.py"))
    return [f for f in files if f.is_file()]


def _cited(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    found = {m.group(1).rstrip("./") for m in _PATH.finditer(text)
             if not text[max(0, m.start() - 8):m.start()].endswith("keyring:")}  # keyring:SERVICE/USER
    if path.suffix == ".md":
        for m in _LINK.finditer(text):
            target = (path.parent / m.group(1)).resolve()
            found.add(str(target.relative_to(REPO)) if target.is_relative_to(REPO) else m.group(1))
    return {f for f in found if not _PATTERN.search(f)}


@pytest.mark.parametrize("source", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_cited_file_exists(source):
    # a document may be named without its extension ("see docs/architecture")
    missing = sorted(f for f in _cited(source) if not (REPO / f).exists() and not (REPO / f"{f}.md").exists())
    assert missing == [], f"{source.relative_to(REPO)} cites files that are not in the repository"


def test_the_scan_finds_citations():
    # guard against a pattern that silently matches nothing
    assert "docs/domain.md" in _cited(REPO / "playbooks" / "collect-crypto.yaml")
    assert "docs/performance.md" in _cited(REPO / "README.md")

"""Where the shipped templates and playbooks are, in a checkout and after `pip install .`."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE / "_data" / name  # wheel layout (see pyproject force-include)
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name  # source checkout / editable install


def templates_dir() -> Path:
    return _data_dir("templates")


def playbooks_dir() -> Path:
    return _data_dir("playbooks")

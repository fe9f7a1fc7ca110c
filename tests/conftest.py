"""Shared test set-up: every test gets its own tool state folder (known_hosts etc.)."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_tool_state(tmp_path_factory, monkeypatch):
    # The tool's own known_hosts lives under $COLLECTOR_STATE; never touch the user's.
    monkeypatch.setenv("COLLECTOR_STATE", str(tmp_path_factory.mktemp("tool-state")))

"""Shared test set-up: every test gets its own tool state folder (known_hosts etc.)."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_tool_state(tmp_path_factory, monkeypatch):
    # The tool's own known_hosts lives under $COLLECTOR_STATE; never touch the user's.
    monkeypatch.setenv("COLLECTOR_STATE", str(tmp_path_factory.mktemp("tool-state")))


# Tests that fail for a real gap named in a closing note: they run and are reported as
# XFAIL until fixed (strict=False: one that starts passing shows as XPASS). Empty since
# the memory work bounded the agent's RSS under load (the last two, tests/reliability/
# test_load.py, pass). Keep it empty.
KNOWN_FAILING: dict[str, str] = {}


def pytest_collection_modifyitems(config, items):
    for item in items:
        reason = KNOWN_FAILING.get(item.nodeid)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))

"""A command is matched to a template only word by word: `show startup-config` is not an
abbreviation of `show standby`, though CliTable's prefix regex `sh[[ow]] st[[andby]]`
accepts its first letters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.parsing import default_registry


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def _name(path: str | None) -> str | None:
    return Path(path).name if path else None


@pytest.mark.parametrize("command, other", [
    ("show startup-config", "standby"),
    ("show stacks", "standby"),
    ("show inventory-x", "inventory"),
    ("show clocks", "clock"),
    ("show versionx", "version"),
    ("show ip routex", "ip_route"),
])
def test_a_longer_word_is_not_taken_for_another_commands_abbreviation(registry, command, other):
    found = _name(registry.find("cisco_ios", command))
    assert found is None or other not in found, found


@pytest.mark.parametrize("command, template", [
    ("show standby", "cisco_ios_show_standby.textfsm"),
    ("sh stan", "cisco_ios_show_standby.textfsm"),
    ("SHOW STANDBY", "cisco_ios_show_standby.textfsm"),
    ("show standby brief", "cisco_ios_show_standby_brief.textfsm"),
    ("sh ip int br", "cisco_ios_show_ip_interface_brief.textfsm"),
    ("show crypto session remote 192.0.2.1 detail", "cisco_ios_show_crypto_session.textfsm"),
    ("show logging | include CRYPTO", "cisco_ios_show_logging_header.textfsm"),
])
def test_real_abbreviations_and_arguments_still_find_their_template(registry, command, template):
    assert _name(registry.find("cisco_ios", command)) == template


def _ntc_index_rows():
    ntc = pytest.importorskip("ntc_templates")
    index = Path(ntc.__file__).parent / "templates" / "index"
    for line in index.read_text().splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4 or fields[2] != "cisco_ios":
            continue
        template, command = fields[0], fields[3]
        if re.search(r"[\\()|.*+?{}^$]", command.replace("[[", "").replace("]]", "")):
            continue  # rows with regex arguments: no single full spelling
        yield template, re.sub(r"\[\[(.+?)\]\]", r"\1", command)


def test_no_ntc_command_matches_a_row_by_the_start_of_its_last_word(registry):
    """For every cisco_ios command of ntc-templates' index: the full command finds its own
    template, and the same command with its last word lengthened finds another or none."""
    rows = list(_ntc_index_rows())
    assert len(rows) > 100
    wrong = []
    for template, command in rows:
        longer = command + "qz"
        found = _name(registry.find("cisco_ios", longer))
        if found is not None and found in template.split(":"):
            wrong.append((longer, found))
    assert not wrong, wrong[:10]

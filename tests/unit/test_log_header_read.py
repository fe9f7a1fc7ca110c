"""Pre-flight's read of the `show logging` header: the settings and count it needs, and
not the buffer. `include [Ll]og` also returned every `%SEC_LOGIN` "Login Success" line,
1.7 MB on a lab hub logged into every minute (real routers with `login on-success log`
log one per SSH login, the tool's own included)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from collector.detect.logread import split_show_logging
from collector.lab.filters import apply_filters, split_filters
from collector.lab.fleet import Fleet
from collector.respond.facts import LOG_HEADER_COMMAND, parse_logging_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WITH_HEADER = sorted(p for folder in ("real/show_logging", "outputs") for p in (FIXTURES / folder).glob("*.txt")
                     if p.name.startswith(("show_logging", "ios", "xe")) and "Buffer logging" in p.read_text())


def _ios_filter(text: str) -> str:
    """`| include` as the lab applies it (each line matched by IOS regex, here Python's)."""
    return apply_filters(text, split_filters(LOG_HEADER_COMMAND)[1], lambda *_: None)


def test_there_are_real_headers_to_check():
    assert len(WITH_HEADER) >= 5, WITH_HEADER


@pytest.mark.parametrize("path", WITH_HEADER, ids=lambda p: p.name)
def test_the_filtered_header_gives_what_the_whole_output_gives(path):
    whole = path.read_text()
    filtered = _ios_filter(whole)
    assert parse_logging_settings(filtered) == parse_logging_settings(whole)
    head, _ = split_show_logging(filtered)
    whole_head, _ = split_show_logging(whole)
    assert (head.logged, head.buffer_bytes) == (whole_head.logged, whole_head.buffer_bytes)


def test_a_buffer_full_of_logins_is_not_read_with_the_header():
    fleet = Fleet.build(2, [], seed=0, time_scale=0.0, start=datetime(2026, 12, 6, 10, 0), realism="none")
    router = fleet.routers["hub1"]
    for i in range(3000):
        router.log.emit(router.at(i), 5, f"%SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: netops] "
                                         f"[Source: 192.0.2.{i % 250}] [localport: 22] at 10:{i // 60 % 60:02d}:{i % 60:02d} UTC")
    cli = router.open_session()
    cli.execute("enable")
    if cli.prompt.rstrip().endswith("Password:"):
        cli.execute(router.enable_secret)
    cli.execute("terminal length 0")
    whole = cli.execute("show logging")
    header = cli.execute(LOG_HEADER_COMMAND)

    assert whole.count("Login Success") > 100  # as many as the buffer holds
    assert "Login Success" not in header and len(header) < 1000, len(header)
    assert parse_logging_settings(header) == parse_logging_settings(whole)
    assert split_show_logging(header)[0].logged == split_show_logging(whole)[0].logged >= 3000

"""`collect --print` layout (Nornir print_result style) and secret masking."""

from __future__ import annotations

from datetime import datetime, timezone

from collector.command_results import CollectionRun, CommandResult, HostOutcome
from collector.cli.print_result import result_lines

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)


def run_of(*outcomes: HostOutcome) -> CollectionRun:
    return CollectionRun(commands=("show running-config",), started=datetime.now(timezone.utc),
                         outcomes=list(outcomes))


def test_blocks_per_host_and_command_with_secrets_masked():
    config = "hostname r1\nusername admin secret 5 $1$abcd$xyz\ncrypto isakmp key S3cretKey address 0.0.0.0\n"
    ok = HostOutcome("r1", (CommandResult("r1", "show running-config", config, NOW, NOW, parsed=[{"hostname": "r1"}],
                                          template="t"),))
    lines = list(result_lines(run_of(ok), secrets=["S3cretKey"]))
    assert lines[0] == "collect " + "*" * 72
    assert lines[1] == "* r1 ** changed : False " + "*" * 56
    assert lines[2].startswith("vvvv show running-config ** changed : False vvv") and lines[2].endswith(" INFO")
    assert all(len(line) == 80 for line in (lines[0], lines[1], lines[2], lines[-1]))
    body = "\n".join(lines[3:-1])
    assert "S3cretKey" not in body and "$1$abcd$xyz" not in body and "hostname r1" in body
    assert lines[-1].startswith("^^^^ END show running-config ^^^")
    parsed = list(result_lines(run_of(ok), parsed=True))
    assert '"hostname": "r1"' in "\n".join(parsed)


def test_unreachable_host_is_one_error_block():
    down = HostOutcome("r2", (CommandResult("r2", "show clock", None, NOW, NOW, error="not run: timed out",
                                            error_kind="skipped"),),
                       error="timed out after 10 s", error_kind="timeout")
    lines = list(result_lines(run_of(down)))
    assert lines[1].startswith("* r2 ** changed : False ** FAILED ***")
    assert lines[2].startswith("vvvv r2 ** changed : False vvv") and lines[2].endswith(" ERROR")
    assert lines[3] == "timeout: timed out after 10 s"
    assert lines[4].startswith("^^^^ END r2 ^^^") and len(lines) == 5

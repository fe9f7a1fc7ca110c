"""The staging folder as the place where a capture's outputs wait for the seal."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from collector.agent.staging import CaptureStage
from collector.bundle import STREAM_CHARS
from collector.command_results import CommandResult
from collector.evidence import RouterCapture
from collector.redact import redact, redact_values

AT = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)
SECRET = "hunter2secret"


def _big_log() -> str:
    lines = [f'*Dec  6 10:00:{i % 60:02d}: %SYS-5-CONFIG_I: line {i} "quoted" \\ back {SECRET} é ☃ 😀'
             for i in range(30000)]
    lines.insert(100, "*Dec  6 10:00:00: %PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:username bob "
                      "password 0 sesame")
    return "\n".join(lines) + "\n"


def test_a_big_output_is_staged_redacted_and_read_back_whole(tmp_path):
    """A 10 MB `show logging` is written redacted a piece at a time: it reads back as the
    redaction of the whole text, with the record's other fields."""
    text = _big_log()
    assert len(text) > STREAM_CHARS
    stage = CaptureStage(tmp_path, (SECRET,))
    stage.plan("hub1", "receiver", "cisco_ios", "192.0.2.1", ["show clock", "show logging"])
    assert stage.record(CommandResult("hub1", "show clock", f"10:00:00.000 UTC {SECRET}", AT, AT))
    assert stage.record(CommandResult("hub1", "show logging", text, AT, AT, parsed=[{"k": SECRET}], error="e"))
    capture = RouterCapture("hub1", "receiver", "cisco_ios", "192.0.2.1",
                            (CommandResult("hub1", "show clock", "x", AT, AT),
                             CommandResult("hub1", "show logging", text, AT, AT, error="e")), 0.5, site="paris")
    assert stage.done(capture)
    restored = stage.restore(CaptureStage.without_outputs(capture))
    log = restored.commands[1]
    assert log.text == redact_values(redact(text), (SECRET,)) and "sesame" not in log.text and SECRET not in log.text
    assert log.parsed == [{"k": "<removed>"}] and log.error == "e"
    assert restored.site == "paris" and restored.clock_offset == 0.5  # what memory held stays as it was
    assert restored.commands[0].text == "10:00:00.000 UTC <removed>"


def test_a_capture_the_folder_does_not_hold_is_not_restored_from_it(tmp_path):
    capture = RouterCapture("hub1", "receiver", "cisco_ios", "192.0.2.1",
                            (CommandResult("hub1", "show logging", "log", AT, AT),), None)
    stage = CaptureStage(tmp_path)
    with pytest.raises(OSError):
        stage.restore(CaptureStage.without_outputs(capture))
    stage.plan("hub1", "receiver", "cisco_ios", "192.0.2.1", ["show logging"])
    with pytest.raises(OSError):  # planned, never recorded
        stage.restore(replace(capture, commands=(replace(capture.commands[0], text=None),)))

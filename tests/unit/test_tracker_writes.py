"""The tracker's state is written at most once a second while lines come, and whenever the
loop's inbox runs dry: per line, thousands of open windows (scanners on a large fleet)
kept the loop busy for minutes while arms waited."""

from __future__ import annotations

import collector.agent.loop as loop
from collector.agent.loop import TRACKER_SAVE_EVERY, TrackerWrites


def test_a_burst_of_lines_is_written_once_per_period_and_the_rest_at_the_flush(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(loop.time, "monotonic", lambda: now[0])
    writes: list[float] = []
    tracker = TrackerWrites(lambda: writes.append(now[0]))
    for i in range(1000):  # 1,000 lines in 0.999 s
        now[0] = 100.0 + i / 1000
        tracker.changed()
    assert writes == [100.0]  # the first line of the burst, then nothing until a period has passed
    now[0] = 100.0 + TRACKER_SAVE_EVERY
    tracker.changed()
    assert writes == [100.0, 100.0 + TRACKER_SAVE_EVERY]
    now[0] += 0.1
    tracker.changed()
    tracker.flush()  # the inbox ran dry: the last change is written now
    assert len(writes) == 3
    tracker.flush()  # nothing changed since: no write
    assert len(writes) == 3

"""Records kept in memory and written together (`PendingWrites`)."""

from __future__ import annotations

import pytest

from collector.agent.pending import KEPT_AT_MOST, PendingWrites


def test_items_are_written_together_when_flushed_or_once_the_bound_is_reached():
    writes: list[list[int]] = []
    pending = PendingWrites(writes.append)
    for n in range(KEPT_AT_MOST - 1):
        pending.add(n)
    pending.flush()
    pending.flush()  # nothing kept: no write
    assert writes == [list(range(KEPT_AT_MOST - 1))]
    for n in range(KEPT_AT_MOST):
        pending.add(n)
    assert writes[1:] == [list(range(KEPT_AT_MOST))]  # the add that reached the bound wrote them


def test_a_failed_write_goes_to_the_caller_and_its_items_are_not_kept_again():
    def refuse(items):
        raise OSError("disk full")

    pending = PendingWrites(refuse)
    pending.add(1)
    with pytest.raises(OSError):
        pending.flush()
    writes: list[list[int]] = []
    pending._write = writes.append
    pending.add(2)
    pending.flush()
    assert writes == [[2]]

"""A router's listener against vty lines that change while it reopens its socket.

In-process on one event loop, so the interleaving that made the listener stay open with
no free lines (a CI failure of test_ssh_faults) is produced exactly, not hoped for.
"""

from __future__ import annotations

import asyncio

from collector.lab.sshserver import RouterListener
from collector.scaleout.redis_server import free_port
from tests.lab.test_model_helpers import build


def _listening_after(change_during_reopen) -> bool:
    """Whether the listener listens once a reopen, with `change_during_reopen` run inside it, ends."""
    router = build(routers=2).routers["spoke1"]

    async def scenario() -> bool:
        listener = RouterListener(router, free_port(), seed=0, before_command=lambda: None,
                                  loop=asyncio.get_running_loop())
        listener.refresh()  # lines free, no socket: the reopen starts as a task
        # Runs after the task's first step, which is inside create_server, listening but
        # not yet handed back to the listener.
        asyncio.get_running_loop().call_soon(change_during_reopen, router, listener)
        await listener._resume_task
        listening = listener.listening
        listener.close()
        return listening

    return asyncio.run(scenario())


def _take_every_line(router, listener: RouterListener) -> None:
    router.faults.vty_limit = 0
    listener.refresh()


def _nothing(router, listener: RouterListener) -> None:
    pass


def test_lines_taken_away_while_the_socket_reopens_leave_the_router_not_listening() -> None:
    assert _listening_after(_take_every_line) is False


def test_a_reopen_with_lines_still_free_ends_listening() -> None:
    assert _listening_after(_nothing) is True

"""Which sessions `collector watch` keeps open: all of them while it polls often, only an
open incident's routers when its polls are a backstop behind syslog."""

from __future__ import annotations

from datetime import timedelta

from collector.playbook import load_playbook
from collector.resources import playbooks_dir
from collector.watch import RECONNECT_POLLS_FROM, reconnects


def _book(interval: timedelta | None = None, enabled: bool = True):
    book = load_playbook(playbooks_dir() / "invalid-spi.yaml")
    update = {"enabled": enabled} | ({"interval": interval} if interval else {})
    poll = book.sources.poll.model_copy(update=update)
    return book.model_copy(update={"sources": book.sources.model_copy(update={"poll": poll})})


def test_the_shipped_one_minute_poll_keeps_sessions_open():
    assert _book().sources.poll.interval == timedelta(minutes=1)
    assert not reconnects(_book())


def test_a_backstop_poll_logs_in_each_time():
    assert reconnects(_book(timedelta(minutes=15)))
    assert reconnects(_book(RECONNECT_POLLS_FROM))
    assert not reconnects(_book(RECONNECT_POLLS_FROM - timedelta(seconds=1)))


def test_syslog_alone_keeps_no_session_but_an_incidents():
    assert reconnects(_book(enabled=False))

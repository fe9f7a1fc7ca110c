"""A syslog line confirmed over SSH before it counts, and both ends of a peer's line
readied for the arming that may follow (`Agent` is the class to use; this is its part).

A UDP datagram can be forged: an invalid-SPI line heard by syslog becomes an event only
once the router's own log shows it (`_confirm`, on a confirm thread, so a poll of the
whole fleet does not hold it up). When the line's sender is another inventory router,
both ends are readied on threads of their own (a backstop poll of the whole fleet would
hold them up on a poll thread, and they would hold up confirmations on a confirm thread):
sessions opened and the facts their arming reads first read ahead (`warm`). A backstop
poll's reads wait for both, as for an arming (`RouterWork.ahead_of_polls`).

Confirmations go in two lanes. A line whose source may be armed for (another inventory
router, a configured peer) is confirmed on `_confirms`; the rest (an internet scanner's
random SPI, a source not classified yet) on the few threads of `_confirms_later`, which
polls do not wait for, and which waits for the armings under way (as a poll's read
does, at most `ARMS_FIRST_S`). A scanner sweeping the fleet's public addresses makes
thousands of routers log at once: in one lane, their logins took the cores from the
confirmation of the flows logged in the same second; in a lane of their own that does not
wait, they still took a share of both cores (the agent's and the routers' SSH work) from
the armings that followed. Little in the later lane can be armed for soon: a source
outside the inventory and its peers only once its flow repeats (IOS logs a flow at most
once a minute), the receiver's own address never; a source not classified yet (its
receiver's peers not read) may be a configured peer's, and waits at most the bound.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from collector.agent.warm import warm
from collector.errors import StateStoreError
from collector.inventory import Host
from collector.sessions import SessionError

log = logging.getLogger(__name__)


class SyslogConfirmations:
    """The syslog-confirmation part of `Agent` (a mixin: its attributes are the agent's)."""

    def start_confirmations(self, workers: int) -> None:
        """The thread pools of both lanes and of readying (`workers`: the agent's)."""
        # not queued behind a poll of the whole fleet, nor a burst of flows behind each
        # other (a quarter of 20 workers confirmed 11 flows in three waves)
        self._confirms = ThreadPoolExecutor(max_workers=max(2, workers // 2), thread_name_prefix="confirm")
        self._confirms_later = ThreadPoolExecutor(max_workers=max(2, workers // 10), thread_name_prefix="confirm-later")
        # both ends of a peer's line readied ahead of arming: not behind a poll, nor a confirmation
        self._readies = ThreadPoolExecutor(max_workers=max(2, workers // 2), thread_name_prefix="ready")

    def finish_confirmations(self) -> None:
        """Wait for every confirmation and readying submitted; take no more."""
        for pool in (self._confirms, self._confirms_later, self._readies):
            pool.shutdown(wait=True)

    def on_syslog_hint(self, hint) -> None:
        outcome = self.reader.syslog_hint(hint)
        if outcome.confirm is not None:
            self._confirm_in_lane(outcome.confirm, outcome.urgent)
        if outcome.sender is not None:  # its arming may follow: have it ready
            self.work.ahead_of_polls(self._readies, warm, self.reader.sessions, outcome.sender, self.responder)
        if outcome.uncounted is not None:  # after the confirmation: that poll reads the same peers
            self._confirms_later.submit(self.work.after_arms, self._count_syslog_source, outcome.uncounted)

    def _confirm_in_lane(self, host: Host, urgent: bool) -> None:
        if urgent:
            self.work.ahead_of_polls(self._confirms, self._confirm, host)
        else:
            self._confirms_later.submit(self.work.after_arms, self._confirm, host)

    def _count_syslog_source(self, flow) -> None:
        try:
            self.reader.count_syslog_source(flow)
        except Exception:  # noqa: BLE001 - a count must not vanish silently in the pool
            log.exception("%s: could not count the source of a syslog line", flow.router)

    def confirm_pending(self) -> None:
        self.write_hint_events()
        for due in self.reader.due_confirmations():
            self._confirm_in_lane(due.host, due.urgent)

    def write_hint_events(self) -> None:
        """Write the syslog lines the hints kept as evidence (a write for all of them, off
        the hint thread: a synced write per datagram bounded how many hints a second it
        took on a disk whose sync takes milliseconds). A store that refuses is said once."""
        try:
            self.reader.write_hint_events()
        except StateStoreError as exc:
            self.recorder.refused(exc)

    def _confirm(self, host: Host) -> None:
        self.write_hint_events()
        try:
            lines, _n = self.reader.poll(host)
        except SessionError as exc:
            self.observers.problem(host.name, f"could not confirm a syslog line over SSH: {exc.reason}")
            return
        for line in lines:
            self.submit(line)
        if lines and self.reader.wants.wanted(host.name):  # a peer's line: its arming may follow
            self.work.ahead_of_polls(self._readies, warm, self.reader.sessions, host, self.responder)

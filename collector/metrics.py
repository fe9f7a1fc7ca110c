"""Prometheus metrics of the agent: an `AgentEvents` observer that counts what it is told.

`collector watch --metrics HOST:PORT` builds one with `serve_metrics`; the agent passes it
every event (collector.core.observers), the syslog receiver and the session pool call the
extra methods below (`syslog_datagram`, `session_opened`, `flows_tracked`). Nothing here
changes what the agent does, and nothing here raises into the agent (FanOut guards it too).

Each instance has its own registry, so several agents (or tests) in one process do not
share counters. Label values are bounded: router names come from the inventory, sources
and kinds from small fixed sets; no address or SPI from a log line becomes a label.

The names, for dashboards and alert rules (all prefixed `collector_`):

    polls_total{router}                          log reads (and QFP counter reads) finished
    poll_failures_total{router,kind}             of those, failed; kind = error class
    poll_duration_seconds                        histogram of one read
    log_lines_read_total{router}                 log lines read by polls
    invalid_spi_events_total{source}             invalid-SPI lines (or counter growth): poll, syslog, qfp
    unknown_source_lines_total{source}           invalid-SPI lines whose sender is no inventory router
    flows_tracked                                flows the tracker holds now (gauge)
    incidents_total{state}                       incidents opened (armed/skipped) and ended, by state
    incidents_open                               incidents armed or capturing now (gauge)
    routers_armed                                routers with the tool's debugs on now (gauge)
    router_armed_since_timestamp_seconds{router} when each armed router was armed (unix time)
    router_disarm_deadline_timestamp_seconds{router}  when it must be disarmed by (armed + window)
    arm_window_seconds                           the playbook's longest arming window (gauge)
    arm_duration_seconds, capture_duration_seconds, disarm_duration_seconds   histograms
    arm_failures_total{router}                   routers that could not be armed
    disarm_unclean_total{router}                 disarms that left something or could not finish
    bundles_total{complete}                      bundles sealed ("true"/"false")
    session_opens_total{router}, session_failures_total{kind}   SSH sessions
    syslog_datagrams_total{result,reason}        datagrams accepted / dropped (reason of the drop)
    problems_total                               lines written for an operator to read
    site_tasks_total{site,task,result}           tasks sent to site workers (--broker): ok, error, dark
    site_task_duration_seconds{site}             histogram of one task, sent to answered
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from collector.core.observers import NullEvents
from collector.core.states import IncidentState

__all__ = ["PrometheusEvents", "serve_metrics", "METRIC_PREFIX"]

log = logging.getLogger(__name__)

METRIC_PREFIX = "collector_"
# Arming talks to two routers over SSH (seconds); capture reads long outputs (tens of s).
_STEP_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_POLL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class PrometheusEvents(NullEvents):
    """Counts agent events into a registry of its own (`self.registry`)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, window_seconds: float | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        self._lock = threading.Lock()
        self._armed: dict[str, set[str]] = {}  # router -> incidents holding it armed
        self._incident_routers: dict[str, set[str]] = {}
        self._window = window_seconds
        self._syslog_seen: dict[tuple[str, str], int] = {}  # the receiver's counts already added
        r, p = self.registry, METRIC_PREFIX

        self.polls = Counter(p + "polls", "Log reads (and QFP counter reads) finished.", ["router"], registry=r)
        self.poll_failures = Counter(p + "poll_failures", "Log reads that failed.", ["router", "kind"], registry=r)
        self.poll_duration = Histogram(p + "poll_duration_seconds", "Time of one log read.",
                                       buckets=_POLL_BUCKETS, registry=r)
        self.lines_read = Counter(p + "log_lines_read", "Log lines read by polls.", ["router"], registry=r)
        self.invalid_spi = Counter(p + "invalid_spi_events", "Invalid-SPI lines (or QFP counter growth).",
                                   ["source"], registry=r)
        self.unknown_source = Counter(p + "unknown_source_lines",
                                      "Invalid-SPI lines whose sender is no inventory router.", ["source"], registry=r)
        self.flows = Gauge(p + "flows_tracked", "Flows the tracker holds now.", registry=r)
        self.incidents = Counter(p + "incidents", "Incidents opened and ended, by state.", ["state"], registry=r)
        self.incidents_open = Gauge(p + "incidents_open", "Incidents armed or capturing now.", registry=r)
        self.routers_armed = Gauge(p + "routers_armed", "Routers with the tool's debugs on now.", registry=r)
        self.armed_since = Gauge(p + "router_armed_since_timestamp_seconds", "When an armed router was armed.",
                                 ["router"], registry=r)
        self.deadline = Gauge(p + "router_disarm_deadline_timestamp_seconds",
                              "When an armed router must be disarmed by (armed + window).", ["router"], registry=r)
        self.window = Gauge(p + "arm_window_seconds", "The playbook's longest arming window.", registry=r)
        self.arm_duration = Histogram(p + "arm_duration_seconds", "Arming both ends of a flow.",
                                      buckets=_STEP_BUCKETS, registry=r)
        self.capture_duration = Histogram(p + "capture_duration_seconds", "Capturing an incident's evidence.",
                                          buckets=_STEP_BUCKETS, registry=r)
        self.disarm_duration = Histogram(p + "disarm_duration_seconds", "Disarming an incident's routers.",
                                         buckets=_STEP_BUCKETS, registry=r)
        self.arm_failures = Counter(p + "arm_failures", "Routers that could not be armed.", ["router"], registry=r)
        self.disarm_unclean = Counter(p + "disarm_unclean", "Disarms that left something or could not finish.",
                                      ["router"], registry=r)
        self.bundles = Counter(p + "bundles", "Bundles sealed.", ["complete"], registry=r)
        self.session_opens = Counter(p + "session_opens", "SSH sessions opened.", ["router"], registry=r)
        self.session_failures = Counter(p + "session_failures", "SSH sessions that failed, by kind.", ["kind"],
                                        registry=r)
        self.datagrams = Counter(p + "syslog_datagrams", "Syslog datagrams accepted and dropped.",
                                 ["result", "reason"], registry=r)
        self.problems = Counter(p + "problems", "Lines written for an operator to read.", registry=r)
        self.site_tasks = Counter(p + "site_tasks", "Tasks sent to site workers, by result (ok, error, dark).",
                                  ["site", "task", "result"], registry=r)
        self.site_task_duration = Histogram(p + "site_task_duration_seconds", "One task on a site worker.",
                                            ["site"], buckets=_STEP_BUCKETS, registry=r)
        if window_seconds is not None:
            self.window.set(window_seconds)

    # ------------------------------------------------------------------ AgentEvents

    def polled(self, router, *, ok, lines, seconds, error_kind=None) -> None:
        self.polls.labels(router).inc()
        self.poll_duration.observe(max(0.0, seconds))
        if ok:
            self.lines_read.labels(router).inc(max(0, lines))
        else:
            self.poll_failures.labels(router, error_kind or "error").inc()

    def event_seen(self, router, source, *, known_source) -> None:
        self.invalid_spi.labels(source).inc()
        if not known_source:
            self.unknown_source.labels(source).inc()

    def incident_opened(self, incident_id, router, flow, *, state) -> None:
        state = IncidentState(state)
        self.incidents.labels(state.value).inc()
        if state.is_open:
            with self._lock:
                self._incident_routers.setdefault(incident_id, set())
                self.incidents_open.set(len(self._incident_routers))

    def armed(self, incident_id, results: Sequence, seconds) -> None:
        self.arm_duration.observe(max(0.0, seconds))
        now = time.time()
        with self._lock:
            held = self._incident_routers.setdefault(incident_id, set())
            for result in results:
                if not result.armed:
                    if not result.refused:
                        self.arm_failures.labels(result.router).inc()
                    continue
                held.add(result.router)
                holders = self._armed.setdefault(result.router, set())
                if not holders:  # the first incident to arm it sets the clock
                    since = result.armed_at.timestamp() if result.armed_at is not None else now
                    self.armed_since.labels(result.router).set(since)
                    if self._window is not None:
                        self.deadline.labels(result.router).set(since + self._window)
                holders.add(incident_id)
            self._publish()

    def captured(self, incident_id, bundle: Path, *, complete, seconds) -> None:
        self.capture_duration.observe(max(0.0, seconds))
        self.bundles.labels("true" if complete else "false").inc()

    def disarmed(self, incident_id, results: Sequence, state, seconds) -> None:
        self.disarm_duration.observe(max(0.0, seconds))
        self.incidents.labels(IncidentState(state).value).inc()
        with self._lock:
            for result in results:
                if result.error or result.leftovers:
                    self.disarm_unclean.labels(result.router).inc()
            for router in self._incident_routers.pop(incident_id, set()):
                holders = self._armed.get(router)
                if holders is None:
                    continue
                holders.discard(incident_id)
                if not holders:
                    del self._armed[router]
                    self.armed_since.remove(router)
                    if self._window is not None:
                        self.deadline.remove(router)
            self._publish()

    def problem(self, router, message) -> None:
        self.problems.inc()

    def site_task(self, site, task, *, result, seconds) -> None:
        self.site_tasks.labels(site, task, result).inc()
        self.site_task_duration.labels(site).observe(max(0.0, seconds))

    # ------------------------------------------------------------------ beyond the protocol

    def syslog_receiver(self, stats) -> None:
        """Bring the counters up to the syslog receiver's running counts (`ReceiverStats`),
        read every few seconds: accepted (handed on as hints), and dropped as not invalid-SPI,
        from an unknown sender, at the full hint queue, or by the kernel at the full socket
        buffer (never read: only the next log poll finds what they held)."""
        counts = {("accepted", ""): stats.queued, ("dropped", "not_invalid_spi"): stats.ignored,
                  ("dropped", "unknown_sender"): stats.foreign, ("dropped", "queue_full"): stats.dropped_full,
                  ("dropped", "socket_buffer_full"): stats.lost}
        with self._lock:
            for labels, count in counts.items():
                grown = count - self._syslog_seen.get(labels, 0)
                if grown > 0:
                    self.datagrams.labels(*labels).inc(grown)
                    self._syslog_seen[labels] = count

    def syslog_datagram(self, *, accepted: bool, reason: str = "") -> None:
        """The syslog receiver's verdict on one datagram; `reason` of a drop is one of a
        few fixed words (malformed, oversized, unknown_sender, rate_limited, queue_full)."""
        if accepted:
            self.datagrams.labels("accepted", "").inc()
        else:
            self.datagrams.labels("dropped", reason or "other").inc()

    def session_opened(self, router: str, *, ok: bool, kind: str | None = None) -> None:
        """One SSH session open attempt; `kind` of a failure: auth, timeout, refused, hostkey..."""
        if ok:
            self.session_opens.labels(router).inc()
        else:
            self.session_failures.labels(kind or "error").inc()

    def flows_tracked(self, count: int) -> None:
        self.flows.set(count)

    def set_window(self, seconds: float) -> None:
        """The playbook's longest arming window (`max_window`): the alert's yardstick."""
        with self._lock:
            self._window = seconds
            self.window.set(seconds)

    def _publish(self) -> None:
        self.routers_armed.set(len(self._armed))
        self.incidents_open.set(len(self._incident_routers))


def serve_metrics(host: str, port: int, *, window_seconds: float | None = None) -> PrometheusEvents:
    """Start the /metrics HTTP server on host:port (a thread of its own) and return the
    observer that feeds it. `port` 0 picks a free port: see `.port` on the result."""
    events = PrometheusEvents(window_seconds=window_seconds)
    server, thread = start_http_server(port, addr=host, registry=events.registry)
    events.server, events.thread = server, thread
    events.port = server.server_address[1]
    log.info("metrics on http://%s:%d/metrics", host, events.port)
    return events


def stop_metrics(events: PrometheusEvents) -> None:
    server = getattr(events, "server", None)
    if server is not None:
        server.shutdown()
        server.server_close()

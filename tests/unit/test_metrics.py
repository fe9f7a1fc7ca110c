"""Prometheus metrics: the observer fed with agent events, scraped over real HTTP; the
dashboard and alert rules in deploy/ name only metrics that exist."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from collector.core.observers import FanOut, NullEvents
from collector.core.results import ArmResult, DisarmResult
from collector.core.states import IncidentState
from collector.metrics import PrometheusEvents, serve_metrics, stop_metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture
def served():
    events = serve_metrics("127.0.0.1", 0, window_seconds=600)
    yield events
    stop_metrics(events)


def scrape(events) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{events.port}/metrics", timeout=5) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_polls_events_and_syslog_counted_per_label(served):
    served.polled("rtr1", ok=True, lines=120, seconds=0.05)
    served.polled("rtr1", ok=False, lines=0, seconds=10.0, error_kind="timeout")
    served.polled("rtr2", ok=True, lines=3, seconds=0.02)
    served.event_seen("rtr1", "syslog", known_source=True)
    served.event_seen("rtr1", "poll", known_source=True)
    served.event_seen("rtr2", "syslog", known_source=False)
    served.syslog_datagram(accepted=True)
    served.syslog_datagram(accepted=True)
    served.syslog_datagram(accepted=False, reason="unknown_sender")
    served.session_opened("rtr1", ok=True)
    served.session_opened("rtr2", ok=False, kind="auth")
    served.flows_tracked(7)
    s = scrape(served)
    assert value(s, "collector_polls_total", router="rtr1") == 2
    assert value(s, "collector_poll_failures_total", router="rtr1", kind="timeout") == 1
    assert value(s, "collector_poll_failures_total", router="rtr2", kind="timeout") is None
    assert value(s, "collector_log_lines_read_total", router="rtr1") == 120
    assert value(s, "collector_poll_duration_seconds_count") == 3
    assert value(s, "collector_poll_duration_seconds_bucket", le="0.05") == 2
    assert value(s, "collector_invalid_spi_events_total", source="syslog") == 2
    assert value(s, "collector_invalid_spi_events_total", source="poll") == 1
    assert value(s, "collector_unknown_source_lines_total", source="syslog") == 1
    assert value(s, "collector_syslog_datagrams_total", result="accepted", reason="") == 2
    assert value(s, "collector_syslog_datagrams_total", result="dropped", reason="unknown_sender") == 1
    assert value(s, "collector_session_opens_total", router="rtr1") == 1
    assert value(s, "collector_session_failures_total", kind="auth") == 1
    assert value(s, "collector_flows_tracked") == 7
    assert value(s, "collector_arm_window_seconds") == 600


def test_the_syslog_receivers_running_counts_become_counters_by_their_growth(served):
    from collector.detect.syslog_receiver import ReceiverStats

    stats = ReceiverStats(received=1000, foreign=2, ignored=990, queued=7, dropped_full=1, lost=0)
    served.syslog_receiver(stats)
    stats.received, stats.ignored, stats.queued, stats.lost = 21000, 20950, 12, 4000
    served.syslog_receiver(stats)
    served.syslog_receiver(stats)  # read again, nothing new: nothing added
    s = scrape(served)
    assert value(s, "collector_syslog_datagrams_total", result="accepted", reason="") == 12
    assert value(s, "collector_syslog_datagrams_total", result="dropped", reason="not_invalid_spi") == 20950
    assert value(s, "collector_syslog_datagrams_total", result="dropped", reason="unknown_sender") == 2
    assert value(s, "collector_syslog_datagrams_total", result="dropped", reason="queue_full") == 1
    assert value(s, "collector_syslog_datagrams_total", result="dropped", reason="socket_buffer_full") == 4000


def test_arm_capture_disarm_lifecycle_through_fanout(served):
    events = FanOut(NullEvents(), served)  # as the agent holds its observers
    t0 = datetime(2026, 12, 6, 1, 0, tzinfo=timezone.utc)
    events.incident_opened("i1", "hub", "hub|10.0.0.2|10.0.0.1|0x00000042|50", state=IncidentState.ARMED)
    events.armed("i1", [ArmResult("hub", armed=True, armed_at=t0), ArmResult("spoke", armed=True, armed_at=t0)], 1.4)
    # a second flow on the hub: the hub is shared, the other end could not be armed
    events.incident_opened("i2", "hub", "hub|10.0.0.3|10.0.0.1|0x00000043|50", state=IncidentState.ARMED)
    events.armed("i2", [ArmResult("hub", armed=True, joined=True),
                        ArmResult("spoke2", armed=False, error="auth failed")], 0.7)
    events.incident_opened("i3", "hub", "hub|198.51.100.9|10.0.0.1|0x00000044|50", state=IncidentState.SKIPPED)
    s = scrape(served)
    assert value(s, "collector_routers_armed") == 2
    assert value(s, "collector_incidents_open") == 2
    assert value(s, "collector_incidents_total", state="armed") == 2
    assert value(s, "collector_incidents_total", state="skipped") == 1
    assert value(s, "collector_arm_failures_total", router="spoke2") == 1
    assert value(s, "collector_router_armed_since_timestamp_seconds", router="hub") == t0.timestamp()
    assert value(s, "collector_router_disarm_deadline_timestamp_seconds", router="spoke") == t0.timestamp() + 600
    assert value(s, "collector_arm_duration_seconds_count") == 2
    assert value(s, "collector_arm_duration_seconds_sum") == pytest.approx(2.1)

    events.captured("i1", Path("/tmp/b1"), complete=True, seconds=12.0)
    events.disarmed("i1", [DisarmResult("hub", clean=True, handed_over_to="i2"), DisarmResult("spoke", clean=True)],
                    IncidentState.CAPTURED, 2.5)
    s = scrape(served)
    assert value(s, "collector_routers_armed") == 1  # the hub still serves i2
    assert value(s, "collector_router_armed_since_timestamp_seconds", router="spoke") is None
    assert value(s, "collector_router_armed_since_timestamp_seconds", router="hub") == t0.timestamp()
    assert value(s, "collector_bundles_total", complete="true") == 1
    assert value(s, "collector_capture_duration_seconds_bucket", le="20.0") == 1
    assert value(s, "collector_incidents_total", state="captured") == 1

    events.disarmed("i2", [DisarmResult("hub", clean=False, leftovers=("debug crypto ipsec",))],
                    IncidentState.NOT_CAPTURED, 1.0)
    s = scrape(served)
    assert value(s, "collector_routers_armed") == 0 and value(s, "collector_incidents_open") == 0
    assert value(s, "collector_router_disarm_deadline_timestamp_seconds", router="hub") is None
    assert value(s, "collector_disarm_unclean_total", router="hub") == 1
    assert value(s, "collector_disarm_duration_seconds_count") == 2


def test_instances_do_not_share_counters():
    a, b = PrometheusEvents(), PrometheusEvents()
    a.polled("r", ok=True, lines=1, seconds=0.1)
    assert a.registry.get_sample_value("collector_polls_total", {"router": "r"}) == 1
    assert b.registry.get_sample_value("collector_polls_total", {"router": "r"}) is None


# ----------------------------------------------------------------------- deploy/ files


def _exposed_families() -> set[str]:
    events = PrometheusEvents(window_seconds=60)
    names = set()
    for metric in events.registry.collect():
        names.add(metric.name)
        for s in metric.samples:
            names.add(s.name)
    # labelled counters expose samples only once used: add their documented sample names
    for metric in events.registry.collect():
        if metric.type == "counter":
            names.add(metric.name + "_total")
        if metric.type == "histogram":
            names.update(metric.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def _metric_names(text: str) -> set[str]:
    return set(re.findall(r"\bcollector_[a-z_]+", text))


def test_dashboard_queries_name_existing_metrics():
    dashboard = json.loads((DEPLOY / "grafana-collector.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(dashboard["panels"]) >= 10 and all(exprs)
    used = set().union(*(_metric_names(e) for e in exprs))
    assert used - _exposed_families() == set()
    assert {"collector_routers_armed", "collector_invalid_spi_events_total", "collector_poll_failures_total"} <= used
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"


def test_alert_rules_shape_and_metrics():
    doc = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    rules = {r["alert"]: r for g in doc["groups"] for r in g["rules"]}
    assert {"CollectorRouterArmedTooLong", "CollectorPollFailing"} <= set(rules)
    for name, rule in rules.items():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, name
        assert isinstance(rule["expr"], str) and rule["expr"].strip(), name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"], name
    used = set().union(*(_metric_names(r["expr"]) for r in rules.values()))
    assert used and used - _exposed_families() == set()


def _promtool() -> str | None:
    return os.environ.get("PROMTOOL") or shutil.which("promtool")


@pytest.mark.skipif(_promtool() is None, reason="promtool not installed (Debian: package prometheus)")
def test_alert_rules_pass_promtool_check_and_unit_tests():
    promtool = _promtool()
    check = subprocess.run([promtool, "check", "rules", "prometheus-alerts.yml"], cwd=DEPLOY,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    # the alerts fire on the series they should, and not on the others
    tested = subprocess.run([promtool, "test", "rules", "prometheus-alerts.test.yml"], cwd=DEPLOY,
                            capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr

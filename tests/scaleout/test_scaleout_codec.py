"""Round trips of every value a Celery task or its reply carries (collector.scaleout.codec)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from ipaddress import ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.command_results import CommandResult, HostOutcome
from collector.core.decide import Arm, ArmDone, Capture, CaptureDone, LineSeen, Release, ReleaseDone, SourceKind
from collector.core.results import ArmResult, DisarmResult, LogSnapshot, RouterChange
from collector.core.states import StepStatus
from collector.detect.events import Flow
from collector.evidence import RouterCapture
from collector.scaleout.codec import CodecError, from_json, to_json

T0 = datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=timezone.utc)
FLOW = Flow("hub1", ip_address("192.0.2.3"), ip_address("198.51.100.1"), 0x1A2B3C4D, 50)
FLOW6 = Flow("hub2", ip_address("2001:db8::3"), ip_address("2001:db8::1"), 7, 51)


def wire(value):
    """Through JSON text, as the broker carries it."""
    return from_json(json.loads(json.dumps(to_json(value))))


CHANGE = RouterChange("hub1", "inc1", 2, "ike debug", ("debug crypto isakmp",), ("no debug crypto isakmp",),
                      StepStatus.APPLIED, T0, note=None)
RECORD = CommandResult("hub1", "show debugging", "Crypto ISAKMP debugging is on", T0, T0 + timedelta(seconds=1),
                       parsed=[{"a": "b"}])

VALUES = [
    FLOW, FLOW6,
    LineSeen(FLOW, "hub1|12:3", T0, 4, "%CRYPTO-4-RECVD_PKT_INV_SPI: ...", sender="spoke1",
             source=SourceKind.INVENTORY, dst_owned=None, logged_at=T0 - timedelta(seconds=3)),
    ArmDone("inc1", T0, frozenset({"hub1", "spoke1"}), (("spoke2", "timed out"),), refused=False, mark=7),
    CaptureDone("inc1", T0, complete=False, problem="spoke1: lost"),
    ReleaseDone("inc1", "hub1", T0, clean=True, summary="clean"),
    Arm("inc1", FLOW, "hub1", "spoke1", (("hub1", "inc0"),), ("a note",)),
    Capture("inc1", armed_before_repeat=True),
    Release("inc1", "hub1", None),
    Release("inc1", "hub1", "inc2"),
    ArmResult("hub1", True, changes=(CHANGE,), armed_at=T0, pre_arm_log=LogSnapshot("hub1", "log\ntext", T0),
              skipped=("debug crypto ipsec",), notes=("cpu not checked",)),
    DisarmResult("hub1", clean=False, leftovers=("debug crypto ipsec",), changes=(CHANGE,), error="lost"),
    RouterCapture("hub1", "receiver", "cisco_xe", "192.0.2.3", (RECORD,), -0.25, error=None),
    {"lines": [T0], "read": 3},
    HostOutcome("hub1", (CommandResult("hub1", "show ip interface brief", "raw", T0, T0 + timedelta(seconds=0.25),
                                       parsed=[{"intf": "Gi1", "ip": "1.2.3.4"}], template="tmpl", error="parse: x",
                                       error_kind="parse"),), error=None, error_kind=None, seconds=0.5),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_round_trip_gives_an_equal_value_of_the_same_type(value):
    back = wire(value)
    assert back == value
    assert type(back) is type(value)


def test_enums_and_addresses_keep_their_types():
    back = wire(VALUES[2])
    assert back.source is SourceKind.INVENTORY
    assert back.flow.src == ip_address("192.0.2.3") and back.flow.src.version == 4
    assert back.at.tzinfo is not None


@given(st.integers(0, 2**32 - 1), st.sampled_from([50, 51]), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_any_flow_round_trips(spi, prot, src, dst):
    flow = Flow("r1", ip_address(src), ip_address(dst), spi, prot)
    assert wire(flow) == flow


@pytest.mark.parametrize("message", [
    {"__type": "Popen", "args": ["sh"]},  # only the listed dataclasses are built
    {"__type": "Flow", "router": "r", "src": {"__ip": "192.0.2.1"}, "dst": {"__ip": "192.0.2.2"}, "spi": 1,
     "prot": 50, "shell": True},  # an unknown field
    {"__enum": "Signals", "v": 9},
    {"__ip": "not an address"},
    {"plain": "object"},
])
def test_foreign_messages_are_refused(message):
    with pytest.raises(CodecError):
        from_json(message)


def test_values_of_other_types_are_not_shipped():
    with pytest.raises(CodecError):
        to_json(object())

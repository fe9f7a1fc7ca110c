"""Control API over its TCP socket, and what its ops do to the routers seen over SSH."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from netmiko import ConnectHandler

from collector.lab.control import LabControl, LabControlError
from collector.lab.runner import RunningLab, running_lab


@pytest.fixture(scope="module")
def lab() -> Iterator[RunningLab]:
    # time_scale 0: the lab clock only moves when a test steps it
    with running_lab(routers=4, seed=0, time_scale=0.0) as running:
        yield running


def test_step_moves_the_lab_clock(lab: RunningLab) -> None:
    before = lab.control.now()
    after = lab.control.step(90)
    assert after - before == timedelta(seconds=90)
    assert lab.control.now() == after
    with ConnectHandler(**lab.connect_params("hub1")) as conn:
        shown = conn.send_command("show clock")
    zone = lab.fleet.routers["hub1"].spec.zone  # realism "timezones": hub1 shows CET/CEST
    local = zone.local(after)[0] if zone is not None else after
    assert local.strftime("%H:%M:%S") in shown


def test_fault_sets_fields_and_rejects_bad_ones(lab: RunningLab) -> None:
    faults = lab.control.fault("spoke2", slow_seconds=0.25, high_cpu=True)
    assert faults["slow_seconds"] == 0.25 and faults["high_cpu"] is True
    assert lab.call(lambda: lab.fleet.routers["spoke2"].faults.slow_seconds) == 0.25
    assert lab.control.state("spoke2")["faults"]["high_cpu"] is True
    lab.control.fault("spoke2", slow_seconds=0, high_cpu=False)
    with pytest.raises(LabControlError, match="unknown fault 'nonsense'"):
        lab.control.fault("spoke2", nonsense=1)
    with pytest.raises(LabControlError, match="vty_limit"):
        lab.control.fault("spoke2", vty_limit=-1)
    with pytest.raises(LabControlError, match="refuse_connections"):
        lab.control.fault("spoke2", refuse_connections="yes")
    with pytest.raises(LabControlError, match="unknown router 'spoke99'"):
        lab.control.fault("spoke99", slow_seconds=1)


def test_high_cpu_fault_shows_in_show_processes_cpu(lab: RunningLab) -> None:
    with ConnectHandler(**lab.connect_params("hub2")) as conn:
        normal = conn.send_command("show processes cpu | include CPU")
        lab.control.fault("hub2", high_cpu=True)
        try:
            busy = conn.send_command("show processes cpu | include CPU")
        finally:
            lab.control.fault("hub2", high_cpu=False)
    assert normal != busy
    assert "five seconds: 9" in busy


def test_state_reports_model_and_transport(lab: RunningLab) -> None:
    with ConnectHandler(**lab.connect_params("hub1")):
        state = lab.control.state("hub1")
    assert state["transport"]["sessions_in_use"] == 1
    assert state["transport"]["port"] == lab.ports["hub1"]
    assert state["faults"]["vty_limit"] == 5


def test_pairs_name_both_ends_of_every_tunnel(lab: RunningLab) -> None:
    pairs = lab.control.pairs()
    assert pairs
    assert json.loads(json.dumps(pairs)) == pairs


def test_config_applies_lines_as_typed(lab: RunningLab) -> None:
    output = lab.control.config("spoke1", ["logging host 127.0.0.1 transport udp port 5599", "no such command"])
    assert "% Invalid input" in output  # what the router printed for the bad line
    with ConnectHandler(**lab.connect_params("spoke1")) as conn:
        conn.enable()
        running = conn.send_command("show running-config")
    assert "logging host 127.0.0.1 transport udp port 5599" in running
    assert "127.0.0.1:5599" in str(lab.control.state("spoke1")["logging"])
    with pytest.raises(LabControlError):
        lab.control.call("config", router="spoke1", lines="not a list")


def test_reboot_through_control(lab: RunningLab) -> None:
    lab.control.reboot("spoke1")
    with pytest.raises(LabControlError, match="unknown router"):
        lab.control.reboot("nope")


def test_raw_protocol_answers_errors_in_band(lab: RunningLab) -> None:
    with socket.create_connection(("127.0.0.1", lab.control_port), timeout=10) as sock:
        reader = sock.makefile("rb")
        sock.sendall(b'{"op": "now", "id": 7}\n')
        reply = json.loads(reader.readline())
        assert reply["ok"] is True and reply["id"] == 7 and "now" in reply["result"]
        sock.sendall(b"this is not json\n")
        reply = json.loads(reader.readline())
        assert reply["ok"] is False and "not JSON" in reply["error"]
        sock.sendall(b'{"op": "explode"}\n')
        reply = json.loads(reader.readline())
        assert reply == {"ok": False, "error": "unknown op 'explode'"}
        sock.sendall(b'{"op": "step"}\n')
        assert json.loads(reader.readline())["ok"] is False


def test_a_second_client_works_alongside(lab: RunningLab) -> None:
    with LabControl("127.0.0.1", lab.control_port) as other:
        assert other.now() == lab.control.now()
        assert [r["name"] for r in other.routers()] == lab.routers

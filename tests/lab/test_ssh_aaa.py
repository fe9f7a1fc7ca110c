"""AAA command authorization, EEM under AAA and the vty pool, over real SSH to a running lab."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from netmiko import ConnectHandler

from collector.lab.control import LabControlError
from collector.lab.runner import RunningLab, running_lab

AAA_LINES = ["aaa new-model", "aaa authorization commands 15 default group tacacs+"]
PEER = "10.99.0.1"


@pytest.fixture
def lab() -> Iterator[RunningLab]:
    with running_lab(routers=2, seed=0) as running:
        yield running


def _lab_user(lab: RunningLab) -> str:
    return lab.connect_params("hub1")["username"]


def test_denied_command_over_ssh_prints_the_refusal_and_arms_nothing(lab: RunningLab) -> None:
    assert lab.control.config("hub1", AAA_LINES) == ""
    lab.control.fault("hub1", tacacs={_lab_user(lab): {"deny": ["debug crypto condition"]}})
    with ConnectHandler(**lab.connect_params("hub1", "cisco_ios")) as conn:
        conn.enable()
        assert conn.send_command("debug crypto isakmp").strip() == "Crypto ISAKMP debugging is on"
        refused = conn.send_command(f"debug crypto condition peer ipv4 {PEER}")
        assert refused.strip() == "Command authorization failed."
        assert "%" not in refused
        assert PEER not in conn.send_command("show crypto debug-condition")
        assert "aaa authorization commands 15 default group tacacs+" in conn.send_command("show running-config")
    debug = lab.control.state("hub1")["debug"]
    assert PEER not in debug["peers"] and "isakmp" in str(debug["flags"])


def test_a_bad_policy_is_refused_by_the_control_api(lab: RunningLab) -> None:
    with pytest.raises(LabControlError, match="tacacs"):
        lab.control.fault("hub1", tacacs={"lab": {"permit": "show"}})
    assert lab.control.state("hub1")["faults"]["tacacs"] is None

"""The Responder over real SSH to lab routers: an operator's debugs are never the tool's."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_address

import pytest
from netmiko import ConnectHandler

from collector.hostkeys import KnownHosts
from collector.inventory import load_inventory
from collector.lab.runner import running_lab
from collector.parsing import default_registry
from collector.playbook import load_playbook
from collector.resources import playbooks_dir
from collector.respond.responder import Responder
from collector.sessions import SessionPool
from collector.state import StateStore
from test_agent_lab import router_leftovers

pytestmark = pytest.mark.e2e

PEER = ip_address("192.0.2.4")


def test_an_operators_debug_and_condition_survive_an_incident(tmp_path):
    book = load_playbook(playbooks_dir() / "invalid-spi.yaml")
    lenient = book.model_copy(update={"guards": book.guards.model_copy(update={"refuse_if_foreign_debugs": False})})
    with running_lab(routers=6, state_dir=tmp_path / "lab") as lab:
        with ConnectHandler(**lab.connect_params("hub1")) as conn:  # an engineer is debugging hub1
            conn.enable()
            conn.send_command("debug crypto ipsec")
            conn.send_command("debug crypto condition peer ipv4 192.0.2.99")
        before = router_leftovers(lab, "hub1")
        host = load_inventory(lab.inventory_path).hosts["hub1"]
        with StateStore(tmp_path / "state.db") as store, SessionPool(KnownHosts.default()) as pool:
            store.create_incident("inc-1", "k1", book.name, routers=["hub1"])
            strict = Responder(playbook=book, store=store, sessions=pool, registry=default_registry())
            refused = strict.arm(host, PEER, "inc-1", timedelta(minutes=5))
            assert refused.refused and "debug ipsec" in refused.error and "192.0.2.99" in refused.error
            assert router_leftovers(lab, "hub1") == before

            responder = Responder(playbook=lenient, store=store, sessions=pool, registry=default_registry())
            armed = responder.arm(host, PEER, "inc-1", timedelta(minutes=5))
            assert armed.armed, armed.error
            assert armed.pre_arm_log is not None and "Log Buffer" in armed.pre_arm_log.text
            assert any("debug crypto ipsec" in s for s in armed.skipped)
            armed_now = router_leftovers(lab, "hub1")
            assert "Crypto ISAKMP debugging is on" in armed_now and "192.0.2.4" in armed_now
            done = responder.disarm(host, "inc-1")
            assert done.clean, done.leftovers
            assert "debug ipsec" in done.foreign and "condition peer 192.0.2.99" in done.foreign
        left = router_leftovers(lab, "hub1")
        assert "Crypto IPSEC debugging is on" in left and "192.0.2.99" in left
        assert not any("ISAKMP" in line or "192.0.2.4" in line or "DEADMAN" in line for line in left)

"""`collector eem render` on the lab over real SSH: the rendered applets are pasted on both
ends of a desync flow, the lab's EEM runs them, the flash files hold the debugs, and the
countdowns leave no debug, condition or applet behind, with logging as it was."""

from __future__ import annotations

import pytest
from netmiko import ConnectHandler

from collector.respond.debugstate import parse_debug_state
from collector.lab.runner import running_lab
from collector.respond.facts import parse_logging_settings

from test_agent_modes import cli

pytestmark = pytest.mark.e2e

DISARM_AFTER = 15 * 60


def _send(lab, router: str, command: str) -> str:
    with ConnectHandler(**lab.connect_params(router)) as conn:
        conn.enable()
        return conn.send_command(command, read_timeout=60)


def _save_state(lab, router: str, path) -> None:
    """What the operator saves before pasting: the logging header and buffered lines."""
    with ConnectHandler(**lab.connect_params(router)) as conn:
        conn.enable()
        text = conn.send_command("show logging | include [Ll]og")
        text += "\n" + conn.send_command("show running-config | include ^logging buffered")
    path.write_text(text)


def _debug_state(lab, router: str):
    with ConnectHandler(**lab.connect_params(router)) as conn:
        conn.enable()
        return parse_debug_state(conn.send_command("show debugging"), conn.send_command("show crypto debug-condition"))


def _paste(lab, router: str, text: str) -> None:
    with ConnectHandler(**lab.connect_params(router)) as conn:
        conn.enable()
        out = conn.send_config_set(text.splitlines(), read_timeout=60)
    assert "Invalid input" not in out and "Incomplete" not in out, out


def _applets(lab, router: str) -> list[str]:
    return [a for a in lab.control.state(router)["applets"] if a.startswith("COLLECTOR_EEM_")]


def test_rendered_applets_capture_the_debugs_into_flash_and_disarm(tmp_path):
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        pair = next(p for p in lab.control.pairs() if p["scenario"] == "desync")
        rx, tx = pair["receiver"], pair["sender"]
        before = {}
        for router in (rx, tx):
            _save_state(lab, router, tmp_path / f"{router}.state")
            before[router] = parse_logging_settings(_send(lab, router, "show logging | include [Ll]og"))
        out = tmp_path / "applets"
        proc = cli("eem", "render", "--receiver", rx, "--sender", tx, "-i", str(lab.inventory_path),
                   "--receiver-state", str(tmp_path / f"{rx}.state"), "--sender-state", str(tmp_path / f"{tx}.state"),
                   "--disarm-after", f"{DISARM_AFTER}s", "--out", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        # the inventory's first addresses are the ones the lab's routers know each other by
        rx_text, tx_text = (out / f"{rx}.eem.txt").read_text(), (out / f"{tx}.eem.txt").read_text()
        assert f"srcaddr={pair['sender_addr']}".replace(".", r"\.") in rx_text
        _paste(lab, tx, tx_text)
        _paste(lab, rx, rx_text)
        assert len(_applets(lab, rx)) == 3 and len(_applets(lab, tx)) == 2

        lab.control.step(10)  # the ARM countdowns fire: debugs armed ahead of the repeat
        for router, peer in ((rx, pair["sender_addr"]), (tx, pair["receiver_addr"])):
            state = _debug_state(lab, router)
            assert {"isakmp", "ipsec"} <= state.debugs and peer in state.peer_conditions, router
            assert parse_logging_settings(_send(lab, router, "show logging | include [Ll]og")).buffered_level \
                == "debugging"

        flash = f"collector-eem-{rx}.txt"
        for _ in range(8):  # the receiver logs the flow once a lab minute
            if flash in _send(lab, rx, "dir flash:"):
                break
            lab.control.step(30)
        captured = _send(lab, rx, f"more flash:{flash}")
        assert f"srcaddr={pair['sender_addr']}" in captured and "%CRYPTO-4-RECVD_PKT_INV_SPI" in captured
        # debug lines of the receiver's conditional debugs, logged before the repeat fired
        debug = [ln for ln in captured.splitlines() if "for SPI 0x" in ln and pair["sender_addr"] in ln]
        assert debug, captured[:3000]
        # the capture disarmed the receiver at once: nothing left, logging as it was
        state = _debug_state(lab, rx)
        assert not state.any_crypto, state
        assert _applets(lab, rx) == []
        assert parse_logging_settings(_send(lab, rx, "show logging | include [Ll]og")) == before[rx]

        # the sender stays armed until its countdown, then captures and disarms
        assert _applets(lab, tx)
        assert f"collector-eem-{tx}.txt" not in _send(lab, tx, "dir flash:")
        lab.control.step(DISARM_AFTER)
        sent = _send(lab, tx, f"more flash:collector-eem-{tx}.txt")
        chatter = [ln for ln in sent.splitlines() if "IPSEC(sa_aging): outbound SA" in ln and pair["receiver_addr"] in ln]
        assert chatter, sent[:3000]
        state = _debug_state(lab, tx)
        assert not state.any_crypto, state
        assert _applets(lab, tx) == []
        assert parse_logging_settings(_send(lab, tx, "show logging | include [Ll]og")) == before[tx]
        runs = [r for r in lab.control.state(tx)["eem_runs"] if r["applet"].startswith("COLLECTOR_EEM_")]
        assert all(r["error"] is None for r in runs) and len(runs) == 2

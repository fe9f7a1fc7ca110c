"""An on-box capture applet over real SSH: syslog trigger, `| append flash:`, `dir flash:`, `more`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from netmiko import ConnectHandler
from test_model_eem import CAPTURE

from collector.lab.runner import RunningLab, running_lab


@pytest.fixture
def lab() -> Iterator[RunningLab]:
    with running_lab(routers=2, scenarios=["desync"], seed=0) as running:
        yield running


def test_capture_applet_fills_a_flash_file_read_back_over_ssh(lab: RunningLab) -> None:
    pair = next(p for p in lab.control.pairs() if p["scenario"] == "desync")
    receiver, sender_addr = pair["receiver"], pair["sender_addr"]
    with ConnectHandler(**lab.connect_params(receiver, "cisco_ios")) as conn:
        conn.enable()
        conn.send_config_set(CAPTURE)
        assert "inv_spi_rx.txt" not in conn.send_command("dir flash:")
        lab.control.step(130)
        listing = conn.send_command("dir flash:")
        text = conn.send_command("more flash:inv_spi_rx.txt")
        log = conn.send_command("show logging | include HA_EM")
    assert "Directory of flash:/" in listing
    row = next(line for line in listing.splitlines() if line.endswith(" inv_spi_rx.txt"))
    stored = lab.call(lambda: lab.fleet.routers[receiver].flash["flash:inv_spi_rx.txt"])
    assert int(row.split()[2]) == len(stored.encode())
    assert text == stored.rstrip("\n")
    assert "%CRYPTO-4-RECVD_PKT_INV_SPI" in text and f"srcaddr={sender_addr}" in text
    assert f"%HA_EM-6-LOG: INV_SPI_RX: INV_SPI data collected for peer {sender_addr}" in log

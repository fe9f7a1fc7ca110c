"""Own templates: QFP drop counters, IPsec datapath drops, CPU, clock, show version."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.parsing import default_registry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "outputs"


def parse(command: str, fixture: str, platform: str = "cisco_xe") -> list[dict]:
    result = default_registry().parse(platform, command, (FIXTURES / fixture).read_text())
    assert result.error is None, result.error
    return result.records


def test_qfp_statistics_drop_skips_prompt_timestamp() -> None:
    recs = parse("show platform hardware qfp active statistics drop", "show_platform_qfp_statistics_drop.txt")
    assert [(r["drop_name"], r["packets"], r["octets"]) for r in recs] == [
        ("Ipv4NoAdj", "7", "296"), ("IpsecInput", "64574", "9686100"), ("IpsecInvalidSa", "12", "1440"),
        ("UidbNotCfgd", "466391", "29312827"),
    ]


def test_qfp_statistics_drop_detail_with_id_column() -> None:
    text = ("-------------------------------------------------------------------------\n"
            "ID  Global Drop Stats                         Packets                  Octets\n"
            "-------------------------------------------------------------------------\n"
            "  8  Ipv4NoAdj                                       7                     296\n"
            " 60  IpsecInput                                     12                    1440\n")
    result = default_registry().parse("cisco_xe", "show platform hardware qfp active statistics drop detail", text)
    assert [(r["drop_id"], r["drop_name"], r["packets"]) for r in result.records] == [
        ("8", "Ipv4NoAdj", "7"), ("60", "IpsecInput", "12")]


@pytest.mark.parametrize(("command", "fixture", "expected"), [
    ("show platform hardware qfp active feature ipsec datapath drops", "show_platform_qfp_ipsec_datapath_drops.txt",
     [("4", "IN_US_V4_PKT_SA_NOT_FOUND_SPI", "64574"), ("19", "IN_OCT_ANTI_REPLAY_FAIL", "342"),
      ("32", "OUT_V4_PKT_HIT_INVALID_SA", "28583")]),
    ("show platform hardware qfp active feature ipsec data drop", "show_platform_qfp_ipsec_datapath_drops.txt",
     [("4", "IN_US_V4_PKT_SA_NOT_FOUND_SPI", "64574"), ("19", "IN_OCT_ANTI_REPLAY_FAIL", "342"),
      ("32", "OUT_V4_PKT_HIT_INVALID_SA", "28583")]),
])
def test_ipsec_datapath_drops(command, fixture, expected) -> None:
    recs = parse(command, fixture)
    assert [(r["drop_type"], r["drop_name"], r["packets"]) for r in recs] == expected


def test_ipsec_datapath_drops_all_with_gaps_and_headers() -> None:
    recs = parse("show platform hardware qfp active feature ipsec datapath drops all",
                 "show_platform_qfp_ipsec_datapath_drops_all.txt")
    assert len(recs) == 13
    by_name = {r["drop_name"]: (r["drop_type"], r["packets"]) for r in recs}
    assert by_name["IN_US_V4_PKT_SA_NOT_FOUND_SPI"] == ("4", "118")
    assert by_name["CD_IN_PKT_OUT_OF_WINDOW"] == ("116", "0")
    assert "Drop" not in by_name and "Name" not in by_name


@pytest.mark.parametrize(("command", "fixture", "expected"), [
    ("show processes cpu | include CPU", "show_processes_cpu_include_cpu.txt", ("4", "0", "6", "5")),
    ("show processes cpu sorted", "show_processes_cpu_full.txt", ("71", "12", "64", "38")),
    ("show processes cpu platform", "show_processes_cpu_platform.txt", ("3", "", "2", "2")),
])
def test_cpu(command, fixture, expected) -> None:
    (rec,) = parse(command, fixture, "cisco_ios")
    assert (rec["cpu_usage_5_sec"], rec["cpu_interruption_5_sec"], rec["cpu_usage_1_min"],
            rec["cpu_usage_5_min"]) == expected


@pytest.mark.parametrize(("command", "fixture", "expected"), [
    ("show clock", "show_clock_not_authoritative.txt",
     ("*", "18:22:10.706", "UTC", "Mon", "Mar", "12", "2018", "")),
    ("sh clock", "show_clock_not_synchronised.txt",
     (".", "09:15:01.002", "EDT", "Wed", "Jan", "8", "2025", "")),
    ("show clock detail", "show_clock_detail_ntp_prompt_timestamp.txt",
     ("", "07:47:11.319", "EST", "Thu", "Sep", "8", "2016", "NTP")),
])
def test_clock(command, fixture, expected) -> None:
    (rec,) = parse(command, fixture)
    keys = ("flag", "time", "timezone", "dayweek", "month", "day", "year", "time_source")
    assert tuple(rec[k] for k in keys) == expected


VERSION_CASES = [
    ("show_version_ios15_c1900.txt", "IOS", False, "15.1(4)M8", "", "C1900", "CISCO1941/K9", "C1900"),
    ("show_version_ios15_iosv.txt", "IOS", False, "15.8(3)M2", "", "IOSv", "IOSv", "spoke1"),
    # hostname contains "asr1001": must not count as evidence
    ("show_version_ios124_c180x.txt", "IOS", False, "12.4(6)T2", "", "C180X", "1801", "branch-asr1001"),
    ("show_version_iosxe3_asr1001.txt", "IOS-XE", True, "15.3(2)S1", "03.09.01.S", "IOS-XE", "ASR1001", "hub-edge-1"),
    ("show_version_iosxe16_isr4k.txt", "IOS-XE", False, "16.6.5", "16.06.05", "ISR", "ISR4331/K9", "branch-7"),
    ("show_version_iosxe16_asr1006.txt", "IOS-XE", True, "16.3.20160527:073311",
     "BLD_V163_MR_THROTTLE_LATEST_20160527_070044", "ASR1000", "ASR1006", "core-asr"),
    ("show_version_iosxe17_csr1000v.txt", "IOS-XE", False, "17.3.4a", "17.03.04a", "Virtual XE", "CSR1000V",
     "csr-lab-2"),
]


@pytest.mark.parametrize(("fixture", "family", "asr", "version", "xe_version", "image_family", "model", "host"),
                         VERSION_CASES)
def test_version_family_and_asr1000(fixture, family, asr, version, xe_version, image_family, model, host) -> None:
    (rec,) = parse("show version", fixture)
    assert rec["os_family"] == family and rec["is_asr1000"] is asr
    assert (rec["version"], rec["xe_version"], rec["image_family"], rec["model"], rec["hostname"]) == (
        version, xe_version, image_family, model, host)
    assert rec["image_id"] and rec["system_image"] and rec["config_register"].startswith("0x")


def test_version_asr_from_image_name_alone() -> None:
    text = 'System image file is "bootflash:asr1002x-universalk9.03.16.08.S.155-3.S8-ext.SPA.bin"\n'
    (rec,) = default_registry().parse("cisco_xe", "show version", text).records
    assert (rec["os_family"], rec["is_asr1000"]) == ("IOS-XE", True)

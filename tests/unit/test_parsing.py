"""collector.parsing: template lookup, ntc fallback, failures as values, thread safety."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.parsing import (
    ParseResult,
    TemplateRegistry,
    default_registry,
    platform_chain,
    strip_line_filters,
)
from collector.resources import templates_dir

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "outputs"
OWN_TEMPLATES = sorted(p.name for p in templates_dir().glob("*.textfsm"))


def name_of(path: str | None) -> str | None:
    return Path(path).name if path else None


def is_ntc(path: str | None) -> bool:
    return path is not None and "ntc_templates" in Path(path).parts


@pytest.fixture(scope="module")
def reg() -> TemplateRegistry:
    return TemplateRegistry()


# --------------------------------------------------------------------------- lookup


@pytest.mark.parametrize(("platform", "command", "template"), [
    ("cisco_ios", "show crypto ipsec sa", "cisco_ios_show_crypto_ipsec_sa.textfsm"),
    ("cisco_ios", "sh cry ips sa", "cisco_ios_show_crypto_ipsec_sa.textfsm"),
    ("cisco_ios", "sh  cry   ipsec sa   det", "cisco_ios_show_crypto_ipsec_sa.textfsm"),
    ("cisco_xe", "show crypto ipsec sa peer 1.2.3.4 detail", "cisco_ios_show_crypto_ipsec_sa.textfsm"),
    ("cisco_xe", "show crypto ipsec sa peer 203.0.113.77", "cisco_ios_show_crypto_ipsec_sa.textfsm"),
    ("cisco_xe", "show crypto ipsec sa peer 2001:db8::1 detail", "cisco_ios_show_crypto_ipsec_sa.textfsm"),
    ("cisco_ios", "show crypto ipsec sa interface Tunnel1", "cisco_ios_show_crypto_ipsec_sa.textfsm"),
    ("cisco_ios", "sh ver", "cisco_ios_show_version_family.textfsm"),
    ("CISCO_XE", "SHOW VERSION", "cisco_ios_show_version_family.textfsm"),
    ("cisco_ios", "show processes cpu | include CPU", "cisco_ios_show_processes_cpu_utilization.textfsm"),
    ("cisco_xe", "sh proc cpu | i CPU", "cisco_ios_show_processes_cpu_utilization.textfsm"),
    ("cisco_ios", "show crypto isakmp sa", "cisco_ios_show_crypto_isakmp_sa.textfsm"),
    ("cisco_ios", "sh cry isa sa det", "cisco_ios_show_crypto_isakmp_sa_detail.textfsm"),
    ("cisco_ios", "show crypto ikev2 sa detailed", "cisco_ios_show_crypto_ikev2_sa.textfsm"),
    ("cisco_ios", "show crypto session", "cisco_ios_show_crypto_session.textfsm"),
    ("cisco_ios", "show crypto session remote 1.1.1.1 detail", "cisco_ios_show_crypto_session.textfsm"),
    ("cisco_ios", "show crypto debug-condition", "cisco_ios_show_crypto_debug_condition.textfsm"),
    ("cisco_xe", "show platform hardware qfp active statistics drop",
     "cisco_ios_show_platform_hardware_qfp_statistics_drop.textfsm"),
    ("cisco_xe", "show platform hardware qfp active feature ipsec datapath drops all",
     "cisco_ios_show_platform_hardware_qfp_ipsec_datapath_drops.textfsm"),
    ("cisco_xe", "show platform hardware qfp active feature ipsec data drop",
     "cisco_ios_show_platform_hardware_qfp_ipsec_datapath_drops.textfsm"),
    ("cisco_ios", "show debugging", "cisco_ios_show_debugging.textfsm"),
    ("cisco_ios", "show debug | inc Crypto", "cisco_ios_show_debugging.textfsm"),
    ("cisco_ios_telnet", "show clock detail", "cisco_ios_show_clock_status.textfsm"),
    ("cisco_ios", "show logging", "cisco_ios_show_logging_header.textfsm"),
    ("cisco_ios", "show logging | include RECVD_PKT_INV_SPI", "cisco_ios_show_logging_invalid_spi.textfsm"),
    ("cisco_ios", "sh log | i INV_SPI|delete notify", "cisco_ios_show_logging_invalid_spi.textfsm"),
])
def test_own_templates_found(reg, platform, command, template) -> None:
    path = reg.find(platform, command)
    assert name_of(path) == template
    assert not is_ntc(path)


@pytest.mark.parametrize(("platform", "command", "template"), [
    ("cisco_ios", "show ip interface brief", "cisco_ios_show_ip_interface_brief.textfsm"),
    ("cisco_xe", "sh ip int br", "cisco_ios_show_ip_interface_brief.textfsm"),
    ("cisco_xe", "show ip int brief | exclude unassigned", "cisco_ios_show_ip_interface_brief.textfsm"),
])
def test_ntc_templates_reached_with_cisco_xe_fallback(reg, platform, command, template) -> None:
    path = reg.find(platform, command)
    assert name_of(path) == template and is_ntc(path)


def test_ntc_show_version_and_crypto_session_detail_reached_when_own_has_none(tmp_path) -> None:
    # An own directory without those templates: the ntc ones must be found (and work).
    reg = TemplateRegistry(own_dir=tmp_path)
    version = reg.parse("cisco_xe", "show version", (FIXTURES / "show_version_iosxe3_asr1001.txt").read_text())
    assert version.template == "cisco_ios_show_version.textfsm" and version.error is None
    assert version.records[0]["version"] == "15.3(2)S1"
    assert "os_family" not in version.records[0]  # enrichment is for the own template only
    session = reg.parse("cisco_ios", "show crypto session detail",
                        (FIXTURES / "show_crypto_session_detail.txt").read_text())
    assert session.template == "cisco_ios_show_crypto_session_detail.textfsm"
    # ntc's template aborts on a line it does not know; the fixture has one. A value, not a raise.
    assert session.records == [] and session.error and "Error" in session.error


def test_use_ntc_false_and_empty_own_dir_find_nothing(tmp_path) -> None:
    reg = TemplateRegistry(own_dir=tmp_path, use_ntc=False)
    assert reg.find("cisco_ios", "show ip interface brief") is None
    result = reg.parse("cisco_ios", "show ip interface brief", "Interface IP-Address OK? Method Status Protocol")
    assert result == ParseResult([], None, "no template for 'show ip interface brief' on platform 'cisco_ios'")


def test_own_template_shadows_ntc_of_same_command(reg) -> None:
    assert not is_ntc(reg.find("cisco_ios", "show version"))
    assert not is_ntc(reg.find("cisco_ios", "show crypto session detail"))


@pytest.mark.parametrize("command", [
    "show foo bar",
    "show crypto ipsec sa identity",
    "show crypto session brief",
    "show crypto session summary",
    "show logging | count INV_SPI",
    "show version | redirect flash:v.txt",
    "show version |",
])
def test_no_template(reg, command) -> None:
    assert reg.find("cisco_ios", command) is None
    result = reg.parse("cisco_ios", command, "whatever\n")
    assert result.records == [] and result.template is None and result.error
    assert not result.ok


def test_unknown_platform_without_ntc_template(reg) -> None:
    result = reg.parse("no_such_os", "show crypto ipsec sa", "interface: Tunnel0\n")
    assert result.template is None and "no_such_os" in (result.error or "")


def test_platform_chain_and_filters() -> None:
    assert platform_chain("cisco_xe") == ("cisco_xe", "cisco_ios")
    assert platform_chain("cisco_xe_ssh") == ("cisco_xe", "cisco_ios")
    assert platform_chain("Cisco_IOS_telnet") == ("cisco_ios",)
    assert strip_line_filters("show version") == "show version"
    assert strip_line_filters("show log | i A|B | e C") == "show log"
    assert strip_line_filters("show run | s crypto | b map") == "show run"
    assert strip_line_filters("show log | count X") is None
    assert strip_line_filters("show log | append flash:x") is None


# --------------------------------------------------------------------------- parsing


def test_parse_result_shape_lowercase_and_lists(reg) -> None:
    result = reg.parse("cisco_ios", "show crypto session", (FIXTURES / "show_crypto_session.txt").read_text())
    assert result.ok and result.error is None and result.template == "cisco_ios_show_crypto_session.textfsm"
    rec = result.records[1]
    assert all(k == k.lower() for k in rec)
    assert rec["ike_status"] == ["Active", "Inactive"]


def test_parse_with_named_template(reg) -> None:
    text = (FIXTURES / "show_logging_debug_ios_xe.txt").read_text()
    header = reg.parse("cisco_ios", "show logging", text)
    spis = reg.parse_with("cisco_ios_show_logging_invalid_spi.textfsm", text)
    # `show logging`: one record per log record, each carrying the header's fields
    assert {r["buffer_size"] for r in header.records} == {"10000000"}
    assert [r["spi"] for r in header.records if r["mnemonic"] == "RECVD_PKT_INV_SPI"] == ["0x3EA71AED"] * 2
    assert [r["spi_hex"] for r in spis.records] == ["0x3EA71AED", "0x3EA71AED"]
    missing = reg.parse_with("no_such.textfsm", text)
    assert missing.template is None and missing.error


def test_ntc_template_error_is_a_value(reg) -> None:
    result = reg.parse("cisco_ios", "show processes cpu history", "this is not a cpu table\n")
    assert result.records == [] and result.error and is_ntc(reg.find("cisco_ios", "show processes cpu history"))


def test_non_text_output_is_a_value(reg) -> None:
    result = reg.parse("cisco_ios", "show version", None)  # type: ignore[arg-type]
    assert result.error and result.records == []


def test_broken_template_is_a_value(tmp_path) -> None:
    (tmp_path / "index").write_text("Template, Hostname, Platform, Command\n\nbroken.textfsm, .*, cisco_ios, show broken\n")
    (tmp_path / "broken.textfsm").write_text("Value X (\\d+\n\nStart\n  ^${X} -> Record\n")
    result = TemplateRegistry(own_dir=tmp_path, use_ntc=False).parse("cisco_ios", "show broken", "1\n")
    assert result.template == "broken.textfsm" and result.error and result.records == []


def test_index_in_a_copied_directory_is_used(tmp_path) -> None:
    own = tmp_path / "templates"
    shutil.copytree(templates_dir(), own)
    reg = TemplateRegistry(own_dir=own, use_ntc=False)
    assert Path(reg.find("cisco_xe", "sh cry ips sa")).parent == own


def test_registry_is_thread_safe_and_reuses_compiled_templates(reg) -> None:
    jobs = [("show crypto ipsec sa", "show_crypto_ipsec_sa_unindented_csr.txt"),
            ("show crypto isakmp sa detail", "show_crypto_isakmp_sa_detail.txt"),
            ("show crypto session detail", "show_crypto_session_detail.txt"),
            ("show version", "show_version_iosxe16_asr1006.txt")] * 25
    texts = {name: (FIXTURES / name).read_text() for _, name in jobs}
    expected = {cmd: reg.parse("cisco_xe", cmd, texts[name]).records for cmd, name in jobs}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: (job[0], reg.parse("cisco_xe", job[0], texts[job[1]])), jobs))
    for cmd, result in results:
        assert result.error is None and result.records == expected[cmd]


def test_default_registry_is_one_object() -> None:
    assert default_registry() is default_registry()
    assert default_registry().find("cisco_xe", "show clock") is not None


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=600))
def test_property_garbage_text_never_raises(text: str) -> None:
    reg = default_registry()
    for name in OWN_TEMPLATES:
        result = reg.parse_with(name, text)
        assert isinstance(result, ParseResult) and result.template == name
        assert isinstance(result.records, list)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120), st.sampled_from(["cisco_ios", "cisco_xe", "", "x" * 50]))
def test_property_any_command_lookup_never_raises(command: str, platform: str) -> None:
    reg = default_registry()
    found = reg.find(platform, command)
    assert found is None or Path(found).is_file()
    assert isinstance(reg.parse(platform, command, "x\n"), ParseResult)


def test_unreadable_own_index_is_reported_not_raised(tmp_path) -> None:
    (tmp_path / "index").write_text("Template, Hostname, Platform, Command\n\nx.textfsm, .*, cisco_ios, show (broken\n")
    reg = TemplateRegistry(own_dir=tmp_path)  # does not raise
    result = reg.parse("cisco_ios", "show broken", "1\n")
    assert result.template is None and "unreadable index" in (result.error or "")
    assert reg.find("cisco_ios", "show ip interface brief") is not None  # ntc still works

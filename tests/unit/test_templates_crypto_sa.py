"""Own templates: show crypto isakmp sa [detail], show crypto ikev2 sa [detailed]."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.parsing import default_registry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "outputs"


def parse(command: str, fixture: str, platform: str = "cisco_xe") -> list[dict]:
    result = default_registry().parse(platform, command, (FIXTURES / fixture).read_text())
    assert result.error is None, result.error
    return result.records


def pick(records: list[dict], *keys: str) -> list[tuple]:
    return [tuple(r[k] for k in keys) for r in records]


# --------------------------------------------------------------------------- isakmp sa


def test_isakmp_sa_ios15_with_deleted_row() -> None:
    recs = parse("show crypto isakmp sa", "show_crypto_isakmp_sa_ios15.txt", "cisco_ios")
    assert pick(recs, "address_family", "dst", "src", "state", "conn_id", "slot", "status", "deleted") == [
        ("IPv4", "100.0.10.2", "100.13.220.2", "QM_IDLE", "29609", "", "ACTIVE", ""),
        ("IPv4", "100.0.10.2", "100.12.82.2", "MM_NO_STATE", "29188", "", "ACTIVE", "deleted"),
        ("IPv4", "203.0.113.1", "203.0.113.10", "QM_IDLE", "1001", "", "ACTIVE", ""),
    ]


def test_isakmp_sa_old_slot_column() -> None:
    recs = parse("sh cry isa sa", "show_crypto_isakmp_sa_slot_ios124.txt", "cisco_ios")
    assert pick(recs, "dst", "src", "state", "conn_id", "slot", "status", "deleted") == [
        ("10.1.0.11", "10.0.0.2", "QM_IDLE", "1051", "0", "ACTIVE", ""),
        ("20.0.0.10", "20.0.0.14", "MM_NO_STATE", "1002", "0", "ACTIVE", "deleted"),
    ]


def test_isakmp_sa_ipv6_three_line_rows() -> None:
    recs = parse("show crypto isakmp sa", "show_crypto_isakmp_sa_ipv6.txt")
    assert pick(recs, "address_family", "dst", "src", "state", "conn_id", "status", "deleted") == [
        ("IPv4", "192.168.122.221", "192.168.122.55", "QM_IDLE", "1001", "ACTIVE", ""),
        ("IPv6", "2001:DB8:32:86::252", "2001:DB8:44:1::A", "QM_IDLE", "1003", "ACTIVE", ""),
        ("IPv6", "2001:DB8:32:86::252", "2001:DB8:72:1::B", "MM_NO_STATE", "1004", "ACTIVE", "deleted"),
    ]


def test_isakmp_sa_empty_tables() -> None:
    text = "IPv4 Crypto ISAKMP SA\ndst             src             state          conn-id status\n\nIPv6 Crypto ISAKMP SA\n\n"
    result = default_registry().parse("cisco_ios", "show crypto isakmp sa", text)
    assert result.error is None and result.records == []


def test_isakmp_sa_detail() -> None:
    recs = parse("show crypto isakmp sa detail", "show_crypto_isakmp_sa_detail.txt")
    assert pick(recs, "address_family", "conn_id", "local", "remote", "ivrf", "status", "encryption", "hash",
                "auth", "dh_group", "lifetime", "capabilities", "engine_id", "engine_conn_id") == [
        ("IPv4", "1001", "25.0.0.1", "15.0.0.1", "", "ACTIVE", "aes", "sha", "psk", "5", "23:25:03", "", "SW", "1"),
        ("IPv4", "29609", "100.0.10.2", "100.13.220.2", "RED", "ACTIVE", "aes", "sha", "psk", "16", "00:01:47",
         "D", "SW", "12609"),
        ("IPv4", "29493", "100.0.10.2", "100.12.134.2", "", "ACTIVE", "aes", "sha256", "rsig", "14", "00:01:12",
         "DN", "????", ""),
        ("IPv6", "29610", "2001:DB8:10::2", "2001:DB8:220::2", "BLUE", "ACTIVE", "aes", "sha", "psk", "16",
         "00:01:47", "D", "SW", "12610"),
    ]


# --------------------------------------------------------------------------- ikev2 sa

IKEV2_KEYS = ("address_family", "tunnel_id", "local", "local_port", "remote", "remote_port", "fvrf", "ivrf", "status")


def test_ikev2_sa_one_row_layout() -> None:
    recs = parse("show crypto ikev2 sa", "show_crypto_ikev2_sa_columns.txt")
    assert pick(recs, *IKEV2_KEYS) == [
        ("IPv4", "1", "66.66.66.1", "500", "66.66.66.2", "500", "none", "none", "READY"),
        ("IPv4", "3", "30.30.30.30", "4500", "20.20.20.20", "4500", "none", "none", "IN-NEG"),
    ]
    assert pick(recs, "encryption", "keysize", "prf", "hash", "dh_group", "auth_sign", "auth_verify",
                "lifetime", "active_time") == [
        ("AES-CBC", "128", "SHA1", "SHA96", "16", "PSK", "PSK", "86400", "735"),
        ("AES-CBC", "256", "SHA256", "SHA256", "19", "RSA", "RSA", "86400", "12"),
    ]
    assert all(r["session_id"] == "" and r["local_spi"] == "" for r in recs)


def test_ikev2_sa_split_layout_ipv6_with_pqc() -> None:
    recs = parse("sh cry ikev2 sa", "show_crypto_ikev2_sa_split_ipv6.txt")
    assert pick(recs, *IKEV2_KEYS) == [
        ("IPv6", "1", "2001:DB8:1101::131", "500", "2001:DB8:1201::122", "500", "none", "none", "READY"),
        ("IPv6", "2", "2001:DB8:1101::131", "500", "2001:DB8:1202::123", "500", "none", "blue", "READY"),
    ]
    assert pick(recs, "pqc_key_exchange", "ce_id", "session_id", "local_spi", "remote_spi", "hash") == [
        ("ML-KEM-1024", "0", "3", "4CF87E32B25302C0", "96254131FD306002", "SHA512"),
        ("", "0", "4", "DE66CA8E9F3AB6BD", "DB3CED85555E739D", "None"),
    ]


def test_ikev2_sa_detailed() -> None:
    recs = parse("show crypto ikev2 sa detailed", "show_crypto_ikev2_sa_detailed.txt")
    assert pick(recs, "tunnel_id", "ivrf", "ce_id", "session_id", "status_description", "local_spi", "remote_spi",
                "local_id", "remote_id", "dpd_interval", "dpd_retry", "nat_t", "initiator") == [
        ("973", "121", "76468", "17155", "Negotiation done", "000D3669857A0F82", "E0419B1DB02DE6AE",
         "user2621@example.com", "22.1.1.2", "60", "3", "not detected", "Yes"),
        ("974", "none", "76470", "17160", "Negotiation done", "11D3669857A0F823", "A0419B1DB02DE6AF",
         "92.1.121.1", "198.51.100.7", "10", "", "detected outside", "No"),
    ]
    # the remote-subnet lines of the first SA are not taken for an SA row
    assert [r["remote"] for r in recs] == ["22.1.1.2", "198.51.100.7"]


@pytest.mark.parametrize("command", ["show crypto ikev2 sa", "show crypto isakmp sa", "show crypto isakmp sa detail"])
def test_sa_templates_ignore_prompt_timestamp_lines(command: str) -> None:
    text = "Load for five secs: 2%/1%; one minute: 9%; five minutes: 8%\nTime source is NTP, 07:47:11.317 EST Thu Sep 8 2016\n"
    result = default_registry().parse("cisco_xe", command, text)
    assert result.error is None and result.records == []

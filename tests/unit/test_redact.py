from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.redact import REDACTED, redact, redact_data, redact_values, redaction_patterns

# In these samples «...» marks a secret: the original text keeps what is inside, the
# expected redacted text has <removed> instead. Everything else must come out unchanged.
MARK = re.compile(r"«([^»]*)»")


def original(template: str) -> str:
    return MARK.sub(lambda m: m.group(1), template)


def expected(template: str) -> str:
    return MARK.sub(REDACTED, template)


HUB_IOS = """\
Building configuration...

Current configuration : 9135 bytes
!
! Last configuration change at 10:12:31 UTC Tue Mar 12 2024 by admin
!
version 15.4
service timestamps debug datetime msec localtime
service password-encryption
!
hostname HUB1
!
enable secret 5 «$1$mERr$hx5rVt7rPNoS4wqbXKX7m0»
enable password 7 «0822455D0A16»
!
aaa new-model
aaa group server radius RAD-GRP
 server-private 192.0.2.11 auth-port 1645 acct-port 1646 key 7 «045802150C2E»
!
aaa server radius dynamic-author
 client 192.0.2.12 server-key 7 «094F471A1A0A»
 server-key «DynAuthKey»
!
username admin privilege 15 secret 9 «$9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM»
username backup password 7 «121A0C041104»
username oper privilege 5 algorithm-type scrypt secret «Oper Pass 1»
username secret password 0 «secret»
username noauth nopassword
!
key chain OSPF-KEYS
 key 1
  key-string 7 «110A1016141D»
 key 2
  key-string «Plain Key With Spaces»
!
key config-key password-encrypt «MasterKey123»
password encryption aes
!
crypto keyring KR-SPOKES
  pre-shared-key address 0.0.0.0 0.0.0.0 key «SpokePSK1»
  pre-shared-key hostname spoke7.example.net key 6 «FFMD_ZFDdDVJc]SAUdB\\gEWfBMK^NcAAB»
!
crypto isakmp policy 10
 encr aes 256
 authentication pre-share
 group 14
crypto isakmp key «cisco123» address 0.0.0.0 0.0.0.0
crypto isakmp key 6 «ZZ[L[]RcU_fEPcBL[^AHgBBIZBMRN» address 198.51.100.2
crypto isakmp key «6» address 198.51.100.3
crypto isakmp keepalive 10 2 periodic
crypto isakmp invalid-spi-recovery
crypto isakmp profile ISAKMP-SPOKES
   keyring KR-SPOKES
   match identity address 0.0.0.0
!
crypto isakmp client configuration group VPNCLIENTS
 key «EzGroupKey»
 pool EZPOOL
!
crypto ikev2 keyring IKEV2-KR
 peer ANY
  address 0.0.0.0 0.0.0.0
  pre-shared-key local «LocalPSK»
  pre-shared-key remote 6 «RemotePSKenc»
 peer SITE-B
  address 203.0.113.9
  pre-shared-key «BothWays»
!
crypto ikev2 profile IKEV2-PROF
 match identity remote address 0.0.0.0
 authentication remote pre-share key «RemoteKey2»
 authentication local pre-share key 6 «LocalKey2enc»
 authentication remote pre-share
 keyring local IKEV2-KR
 dpd 10 2 on-demand
!
crypto ipsec transform-set TS esp-aes 256 esp-sha256-hmac
 mode tunnel
!
crypto ipsec profile DMVPN
 set transform-set TS
 set isakmp-profile ISAKMP-SPOKES
!
crypto ipsec client ezvpn EZ-REMOTE
 connect auto
 group EZGROUP key «EzClientKey»
 mode network-extension
 peer 198.51.100.1
 username ezuser password «EzUserPass»
!
crypto map CMAP 10 ipsec-isakmp
 set peer 198.51.100.2
 set transform-set TS
 match address VPN-ACL
!
interface Tunnel0
 ip address 10.0.0.1 255.255.255.0
 no ip redirects
 ip nhrp authentication «NhrpKey»
 ip nhrp map multicast dynamic
 ip nhrp network-id 100
 ip ospf message-digest-key 1 md5 7 «045802150C2E»
 ip ospf authentication-key «OspfPlain»
 tunnel source GigabitEthernet0/0
 tunnel mode gre multipoint
 tunnel key 100
 tunnel protection ipsec profile DMVPN shared
!
interface GigabitEthernet0/1
 ip address 192.0.2.1 255.255.255.0
 standby 1 ip 192.0.2.254
 standby 1 authentication md5 key-string 7 «0822455D0A16» timeout 30
 standby 2 authentication md5 key-chain HSRP-CHAIN
 standby 3 authentication «HsrpText»
 vrrp 5 authentication text «VrrpText»
 glbp 7 authentication md5 key-string «GlbpKey»
 crypto map CMAP
!
interface GigabitEthernet0/2
 ipv6 ospf authentication ipsec spi 500 md5 «1234567890ABCDEF1234567890ABCDEF»
 ospfv3 1 encryption ipsec spi 1001 esp aes-cbc 128 «0123456789ABCDEF0123456789ABCDEF» sha1 «0123456789ABCDEF0123456789ABCDEF01234567»
 isis password «IsisIfPass»
!
interface Serial0/0/0
 encapsulation ppp
 ppp chap hostname HUB1
 ppp chap password 7 «13061E010803»
 ppp pap sent-username hub1 password 0 «PapPass1»
!
interface Dot11Radio0
 ssid CORP
  wpa-psk ascii 7 «05080F1C2243»
!
router eigrp CORE
 address-family ipv4 unicast autonomous-system 100
  af-interface default
   authentication mode hmac-sha-256 7 «0822455D0A16»
!
router ospf 1
 area 0 authentication message-digest
 area 1 virtual-link 10.255.0.2 message-digest-key 1 md5 «VlinkKey»
!
router isis CORE
 area-password «IsisArea»
 domain-password «IsisDomain»
!
router bgp 65000
 neighbor 198.51.100.9 remote-as 65001
 neighbor 198.51.100.9 password 7 «020700560208»
 neighbor IBGP peer-group
 neighbor IBGP password «bgp pass with spaces»
!
mpls ldp neighbor 10.255.0.9 password «LdpPass»
!
ip ftp username backup
ip ftp password 7 «00071A150754»
ip http client password «HttpClientPw»
!
snmp-server community «N3tw0rkRO» RO 10
snmp-server community «N3tw0rkRW» RW
snmp-server user monitor MONGRP v3 auth sha «AuthPass1» priv aes 128 «PrivPass1»
snmp-server host 192.0.2.50 version 2c «N3tw0rkTrap»
snmp-server host 192.0.2.51 vrf MGMT informs version 2c «InfComm» udp-port 1162
snmp-server host 192.0.2.52 «V1Comm»
snmp-server host 192.0.2.53 version 3 priv monitor
snmp-server enable traps ipsec cryptomap attach
!
tacacs-server host 192.0.2.10 key 7 «0822455D0A16»
tacacs-server key «Legacy Tac Key»
tacacs server TAC1
 address ipv4 192.0.2.13
 key 7 «045802150C2E»
tacacs server TAC2
 address ipv4 192.0.2.14
 key «TacPlain»
radius-server host 192.0.2.15 auth-port 1812 acct-port 1813 key «RadLegacy»
radius-server key 7 «110A1016141D»
radius server RAD1
 address ipv4 192.0.2.16 auth-port 1812 acct-port 1813
 key 6 «RadAesKeyEnc»
 pac key 7 «05080F1C2243»
!
ntp authentication-key 1 md5 «104D000A0618» 7
ntp authenticate
ntp trusted-key 1
!
vpdn-group L2TP
 l2tp tunnel password 0 «L2tpPass1»
!
line con 0
 password 7 «02050D480809»
 logging synchronous
line vty 0 4
 password «VtyPlain»
 transport input ssh
!
end
"""


def test_running_config_every_form_and_nothing_else():
    assert redact(original(HUB_IOS)) == expected(HUB_IOS)


SHOW_OUTPUTS = """\
HUB1#show crypto isakmp key
Keyring      Hostname/Address                            Preshared Key

default      198.51.100.2                                «cisco123»
default      0.0.0.0        [0.0.0.0        ]            «wildcard-key»
KR-SPOKES    spoke7.example.net                          «SpokePSK2»

HUB1#show key chain
Key-chain OSPF-KEYS:
    key 1 -- text "«cisco»"
        accept lifetime (always valid) - (always valid) [valid now]
        send lifetime (always valid) - (always valid) [valid now]
    key 2 -- text "«two words»"
        accept lifetime (always valid) - (always valid) [valid now]
HUB1#show snmp community

Community name: «ILMI»
Community Index: «cisco0»
Community SecurityName: «ILMI»
storage-type: read-only	 active

Community name: «N3tw0rkRO»
Community Index: «cisco1»
Community SecurityName: «N3tw0rkRO»
storage-type: nonvolatile	 active access-list: 10

HUB1#show logging | include CFGLOG
Mar 12 10:12:31.117: %PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:username tech privilege 15 secret 0 «Tech Pass»
Mar 12 10:12:40.552: %PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:crypto isakmp key «NewKey99» address 203.0.113.5
Mar 12 10:12:41.001: %PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:interface Tunnel0
HUB1#show archive log config all
 idx   sess           user@line      Logged command
    1     1        admin@vty0     |  logging buffered 1000000
    2     1        admin@vty0     |  enable secret 0 «NewEnable»
    3     1        admin@vty0     |  tacacs-server key «NewTacKey»
HUB1#
"""


def test_show_outputs_and_logged_commands():
    assert redact(original(SHOW_OUTPUTS)) == expected(SHOW_OUTPUTS)


def test_crypto_maps_and_classification_lines_survive():
    """The lines the config classifier keys on must come out byte for byte."""
    redacted = redact(original(HUB_IOS))
    for line in (
        "crypto isakmp invalid-spi-recovery",
        "crypto isakmp keepalive 10 2 periodic",
        "crypto map CMAP 10 ipsec-isakmp",
        " tunnel protection ipsec profile DMVPN shared",
        " tunnel mode gre multipoint",
        " ip nhrp map multicast dynamic",
        " set isakmp-profile ISAKMP-SPOKES",
        " dpd 10 2 on-demand",
        " authentication remote pre-share",
        " key 1",
        " tunnel key 100",
        "password encryption aes",
        " standby 2 authentication md5 key-chain HSRP-CHAIN",
        "snmp-server host 192.0.2.53 version 3 priv monitor",
        "username noauth nopassword",
    ):
        assert line in redacted.splitlines(), line


def test_no_secret_survives():
    secrets = [m.group(1) for m in MARK.finditer(HUB_IOS + SHOW_OUTPUTS)]
    redacted = redact(original(HUB_IOS + SHOW_OUTPUTS))
    ordinary = expected(HUB_IOS + SHOW_OUTPUTS)
    checked = [s for s in secrets if s not in ordinary]  # "secret", "6", "ILMI" also occur as plain words
    assert len(checked) >= 75
    for secret in checked:
        assert secret not in redacted, secret


def test_idempotent_on_samples():
    for template in (HUB_IOS, SHOW_OUTPUTS):
        once = redact(original(template))
        assert redact(once) == once


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_line_breaks_are_kept(newline):
    text = original(HUB_IOS).replace("\n", newline)
    assert redact(text) == expected(HUB_IOS).replace("\n", newline)


def test_every_pattern_example_is_redacted():
    for pattern in redaction_patterns:
        if pattern.parent is not None:
            sample = "tacacs server T\n" + pattern.example
        else:
            sample = pattern.example
        assert REDACTED in redact(sample), pattern.name


def test_block_key_only_inside_server_blocks():
    text = "tacacs server T\n key plainkey\nkey chain K\n key 1\n  key-string x\nrouter bgp 1\n key notasecret\n"
    assert redact(text) == (
        "tacacs server T\n key <removed>\nkey chain K\n key 1\n  key-string <removed>\nrouter bgp 1\n key notasecret\n"
    )


def test_key_table_ends_at_the_blank_line_after_its_rows():
    text = (
        "Keyring      Hostname/Address                            Preshared Key\n"
        "\n"
        "default      192.0.2.1                                   k1\n"
        "\n"
        "some other output  with columns\n"
    )
    assert redact(text).splitlines() == [
        "Keyring      Hostname/Address                            Preshared Key",
        "",
        "default      192.0.2.1                                   <removed>",
        "",
        "some other output  with columns",
    ]


def test_free_text_and_json_are_left_alone():
    prose = "The enable secret was rotated; see the password policy. Use key 7 wisely.\n"
    assert redact(prose) == prose
    doc = json.dumps({"raw": original(HUB_IOS)}, indent=2)
    assert redact(doc) == doc  # inside JSON strings line starts are escaped: use redact_data


def test_redact_data_walks_json_like_values():
    data = {
        "host": "hub1",
        "outputs": [{"command": "show running-config", "raw": original(HUB_IOS)}],
        "pair": ("snmp-server community xyz RO", 3),
        "n": 5,
    }
    cleaned = redact_data(data, secrets=["hub1-password"])
    assert cleaned["outputs"][0]["raw"] == expected(HUB_IOS)
    assert cleaned["host"] == "hub1" and cleaned["n"] == 5
    assert cleaned["pair"] == ("snmp-server community <removed> RO", 3)
    assert data["outputs"][0]["raw"] == original(HUB_IOS)  # a copy; the input is untouched
    assert redact_data("pw is hub1-password", ["hub1-password"]) == "pw is <removed>"


# -- exact values --------------------------------------------------------------------------


def test_redact_values_everywhere():
    text = "login as netops/Lab-Pass-1 ok\nDEBUG sent 'Lab-Pass-1' and En@ble$9\n"
    assert redact_values(text, ["Lab-Pass-1", "En@ble$9"]) == (
        "login as netops/<removed> ok\nDEBUG sent '<removed>' and <removed>\n"
    )


def test_redact_values_longest_first_and_regex_safe():
    assert redact_values("a.b*c+ and a.b", ["a.b", "a.b*c+"]) == "<removed> and <removed>"
    assert redact_values("x(1|2)y", ["(1|2)"]) == "x<removed>y"


def test_short_values_only_as_whole_words():
    assert redact_values("ab is the password, not abc or cab", ["ab"]) == "<removed> is the password, not abc or cab"
    assert redact_values("password='ab'", ["ab"]) == "password='<removed>'"


def test_redact_values_ignores_empty_and_is_idempotent():
    assert redact_values("text", ["", None]) == "text"  # type: ignore[list-item]
    once = redact_values("the pass is remo and removed", ["remo", "removed"])
    assert once == "the pass is <removed> and <removed>"
    assert redact_values(once, ["remo", "removed"]) == once


# -- properties ----------------------------------------------------------------------------

_WORDS = [
    "enable", "secret", "password", "username", "key", "key-string", "crypto", "isakmp", "address", "hostname",
    "pre-shared-key", "local", "remote", "snmp-server", "community", "host", "version", "2c", "3", "informs",
    "tacacs-server", "radius-server", "tacacs", "radius", "server", "server-key", "server-private", "ppp", "chap",
    "ip", "ospf", "message-digest-key", "md5", "neighbor", "ntp", "authentication-key", "group", "wpa-psk",
    "ascii", "nhrp", "authentication", "standby", "text", "0", "5", "6", "7", "9", "1", "<removed>", "--",
    "\"x\"", "logged command:", "|", "admin@vty0", "Keyring", "Hostname/Address", "Preshared Key", "HUB1#",
    "Community", "name:", "pac", "level", "15", "encryption", "a b", "$9$abc", "0.0.0.0", "vrf", "M",
]
_config_like = st.lists(
    st.tuples(st.sampled_from(["", " ", "  ", "\t"]), st.lists(st.sampled_from(_WORDS), max_size=8)),
    max_size=12,
).map(lambda lines: "\n".join(indent + " ".join(words) for indent, words in lines))


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises(text):
    result = redact(text)
    assert isinstance(result, str)
    assert result.count("\n") == text.count("\n")


@settings(max_examples=300, deadline=None)
@given(_config_like)
def test_idempotent_and_line_preserving_on_config_like_text(text):
    once = redact(text)
    assert redact(once) == once
    assert len(once.split("\n")) == len(text.split("\n"))


@settings(max_examples=200, deadline=None)
@given(st.text(), st.lists(st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=12), max_size=4))
def test_redact_values_never_raises_and_removes_long_values(text, secrets):
    result = redact_values(text, secrets)
    for secret in secrets:
        if len(secret) >= 4:
            assert secret not in result.replace(REDACTED, "\x00")


def test_block_keys_cut_from_their_block_are_redacted():
    # `show running-config | include key` drops the block headers
    text = "crypto isakmp key <removed> address 0.0.0.0 0.0.0.0\n key 7 0822455D0A16\n key GroupKey123\n key 1\n"
    assert redact(text) == (
        "crypto isakmp key <removed> address 0.0.0.0 0.0.0.0\n key 7 <removed>\n key <removed>\n key 1\n"
    )


# ---------------------------------------------------------------- secrets in log records

HOSTILE_SECRETS = ["it's", 'say "hi"', "back\\slash", "$9$dollar", "with spaces in", "all 'of' \"them\" \\ $x",
                   "tab\there", "ünï cödé'\\"]


def _log_lines(emit) -> str:
    import io
    import logging

    from collector.redact import install_secret_filter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    library = logging.getLogger("netmiko")  # the CLI quietens it below -vv: this test wants every line
    root.addHandler(handler)
    old_level, old_library = root.level, library.level
    root.setLevel(logging.DEBUG)
    library.setLevel(logging.DEBUG)
    try:
        install_secret_filter()
        emit(library)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        library.setLevel(old_library)
    return stream.getvalue()


@pytest.mark.parametrize("secret", HOSTILE_SECRETS)
def test_no_escaped_or_quoted_form_of_a_secret_reaches_a_log(secret):
    import shlex
    from urllib.parse import quote, quote_plus

    from collector.redact import register_secret

    register_secret(secret)

    def emit(log):
        log.debug("write_channel: %s", str((secret + "\n").encode()))  # netmiko's own debug line
        log.debug("sent %r", secret)
        log.debug("kwargs %r", {"password": secret, "secret": secret.encode()})
        log.debug("repr of repr %s", repr(repr(secret)))
        log.debug("json %s", json.dumps({"p": secret}))
        log.debug("json ascii-free %s", json.dumps({"p": secret}, ensure_ascii=False))
        log.debug("shell: sshpass -p %s", shlex.quote(secret))
        log.debug("url ssh://u:%s@h / %s", quote(secret, safe=""), quote_plus(secret, safe=""))
        log.info(f"f-string {secret}")
        try:
            raise RuntimeError(f"auth failed for {secret!r}")
        except RuntimeError:
            log.exception("with traceback")

    text = _log_lines(emit)
    assert text.count(REDACTED) >= 12
    forms = {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1], json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1], shlex.quote(secret), quote(secret, safe=""),
             quote_plus(secret, safe=""), repr(repr(secret))[1:-1]}
    leaks = [f for f in forms if len(f) >= 4 and f in text]
    assert not leaks, (leaks, text)


def test_the_filter_keeps_records_without_secrets_as_they_were():
    def emit(log):
        log.warning("poll of %s took %.1f s", "hub1", 1.25)

    assert _log_lines(emit).strip() == "poll of hub1 took 1.2 s"


# --------------------------------------------------------------------------------------
# A big text redacted a piece at a time (bundle writer, staging) gives the whole text's
# redaction: lines split over pieces, CRLF split between two pieces, key tables and
# config blocks spanning pieces, values of any length.

_PIECE_LINES = [p.example for p in redaction_patterns] + [
    "Keyring      Hostname/Address                            Preshared Key", "",
    "default      192.0.2.1                                   cisco123", "r1#", "crypto isakmp key 0 K address 1.1.1.1",
    "tacacs server T1", " key 7 0822455D0A16", "username u password 0 pw", "a plain line", "hunter2 said ab",
    "  indented ab and hunter2x"]


@settings(max_examples=1500)
@given(st.lists(st.tuples(st.sampled_from(_PIECE_LINES), st.sampled_from(["\n", "\r\n", "\r"])), max_size=30),
       st.integers(1, 60), st.booleans())
def test_a_text_redacted_in_pieces_is_redacted_as_the_whole_text(lines, size, final_newline):
    from collector.redact import redact_pieces, text_pieces

    text = "".join(line + end for line, end in lines)
    if not final_newline:
        text = text.rstrip("\r\n")
    secrets = ("hunter2", "ab")
    assert "".join(redact_pieces(text_pieces(text, size), secrets)) == redact_values(redact(text), secrets)


# -- the fast walk (only lines that can start a secret form) against the walk of every line --

from collector.redact import _LEAD_AT_START, _LineWalk, _redact_every_line, _redact_leading_lines  # noqa: E402

_EXAMPLES = [p.example for p in redaction_patterns]
_HEADERS = ["tacacs server T1", "radius server R1", "crypto isakmp client configuration group G", "router ospf 1",
            "key chain K", "interface Tunnel0", "Crypto map tag: M, local addr 10.0.0.1", "aaa server radius dynamic-author"]
_example_words = sorted({w for e in _EXAMPLES for w in e.split()} | set(_WORDS))
_line = st.one_of(
    st.sampled_from(_EXAMPLES).map(str.strip),
    st.sampled_from(_HEADERS),
    st.lists(st.sampled_from(_example_words), max_size=8).map(" ".join),
).flatmap(lambda line: st.sampled_from([" ", "  ", "\t", " \t"]).map(lambda blanks: line.replace(" ", blanks)))
_ascii_config = st.lists(
    st.tuples(st.sampled_from(["", " ", "  ", "\t", " \x0b", "\x0c"]), _line, st.booleans()),
    max_size=14,
).map(lambda lines: "\n".join(indent + (text.upper() if shout else text) for indent, text, shout in lines))


@settings(max_examples=400, deadline=None)
@given(_ascii_config)
def test_the_fast_walk_removes_what_the_walk_of_every_line_removes(text):
    if not text.isascii() or "preshared" in text.lower():
        return  # redact() gives these to the walk of every line
    assert _redact_leading_lines(text, text.lower()) == _redact_every_line(text)


@settings(max_examples=300, deadline=None)
@given(_ascii_config, st.sampled_from(_HEADERS))
def test_the_fast_walk_of_a_piece_under_a_block_header_removes_what_the_walk_of_every_line_removes(text, header):
    """A piece of a bigger text (`redact_pieces`), one line or more, starting inside a
    config block: the block's header comes from the piece before."""
    if not text.isascii() or "preshared" in text.lower():
        return
    walk = _LineWalk()
    walk.header = header
    assert _redact_leading_lines(text, text.lower(), header) == "\n".join(walk.line(ln) for ln in text.split("\n"))


@pytest.mark.parametrize("indent", ["", " ", "  ", "\t"])
@pytest.mark.parametrize("example", _EXAMPLES)
def test_every_example_is_a_line_the_fast_walk_looks_at(example, indent):
    line = indent + example.strip()
    assert _LEAD_AT_START.match(line.lower())
    text = f"tacacs server T1\n{line}\ninterface Tunnel0 crypto\n"
    assert _redact_leading_lines(text, text.lower()) == _redact_every_line(text) != text


def test_a_crypto_output_goes_through_the_fast_walk_unchanged():
    sa = ("interface: Tunnel0\n    Crypto map tag: Tunnel0-head-0, local addr 10.250.0.1\n"
          "   protected vrf: (none)\n   local crypto endpt.: 198.51.100.1, remote crypto endpt.: 192.0.2.7\n"
          "   plaintext mtu 1438, path mtu 1500, ip mtu 1500, ip mtu idb GigabitEthernet1\n"
          "     inbound esp sas:\n      spi: 0x1A2B3C4D(439041101)\n        in use settings ={Tunnel, }\n")
    assert redact(sa) == sa == _redact_every_line(sa)
    # of its 8 lines 6 hold a needle (`crypto`, `ip`), none a lead: `crypto map tag` is not
    # `crypto isakmp` nor `crypto pki`
    assert [line for line in sa.lower().split("\n") if _LEAD_AT_START.match(line)] == []


def test_the_fast_walk_finds_the_block_header_lines_above():
    # only `block-key` (server blocks) takes a two-word key; its header is 3 lines up, past
    # lines the fast walk skips
    text = ("tacacs server T1\n address ipv4 192.0.2.1\n timeout 5\n key my secret\n"
            "router ospf 1\n passive-interface default\n key my secret\n")
    want = text.replace(" key my secret\nrouter", " key <removed>\nrouter", 1)
    assert _redact_every_line(text) == want
    assert _redact_leading_lines(text, text.lower()) == want


# -- redacted_view: the data itself when nothing changes, a redacted copy otherwise -------------

from collector.redact import RedactionMemo, redacted_view  # noqa: E402


def test_clean_data_is_handed_back_itself_and_a_secret_gets_a_copy():
    clean = [{"interface": "Tunnel0", "pkts": ["1", "2"], "n": 3, "up": True, "x": None}, ("a", 1)]
    assert redacted_view(clean, ["hunter22"], memo={}) is clean
    dirty = [{"interface": "Tunnel0", "note": "key hunter22"}, {"config": "enable secret 5 $1$abc"}]
    view = redacted_view(dirty, ["hunter22"], memo={})
    assert view == [{"interface": "Tunnel0", "note": "key <removed>"}, {"config": "enable secret 5 <removed>"}]
    assert dirty[0]["note"] == "key hunter22"  # the original is left as it was


class _Text(str):
    pass


def test_a_str_subclass_is_copied_as_redact_data_does():
    data = {"k": _Text("plain")}
    view = redacted_view(data, [], memo={})
    assert view == redact_data(data) and view is not data


_leaf = st.one_of(st.sampled_from(_EXAMPLES + ["Tunnel0", "UP-ACTIVE", "s3cr3tvalue", "", "x\nenable secret 0 ab"]),
                  st.integers(), st.none(), st.booleans())
_json_like = st.recursive(_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["a", "key", "s3cr3tvalue", "password 7 x"]), inner,
                                                  max_size=4)), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_json_like)
def test_redacted_view_equals_redact_data(data):
    memo: dict[str, str] = {}
    assert redacted_view(data, ["s3cr3tvalue"], memo=memo) == redact_data(data, ["s3cr3tvalue"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_json_like, max_size=6))
def test_one_redaction_memo_over_many_views_gives_what_redact_data_gives_each(items):
    # What the memo learnt from one record (its clean texts, keys above all) serves the
    # next: a text once found clean must never let a secret through later.
    memo = RedactionMemo()
    for data in items:
        assert redacted_view(data, ["s3cr3tvalue"], memo=memo) == redact_data(data, ["s3cr3tvalue"])
    assert all(redact_values(redact(text), ["s3cr3tvalue"]) == text for text in memo.clean)


@settings(max_examples=400, deadline=None)
@given(_ascii_config, st.integers(1, 80))
def test_pieces_of_an_ascii_config_take_the_fast_walk_and_give_the_whole_texts_redaction(text, size):
    # `\n` endings only and no key table: each piece goes through the fast walk, starting in
    # the config block the piece before it ended in
    from collector.redact import redact_pieces, text_pieces

    secrets = ("s3cr3tvalue",)
    assert "".join(redact_pieces(text_pieces(text, size), secrets)) == redact_values(redact(text), secrets)


@pytest.mark.parametrize("size", range(1, 40))
def test_a_block_key_pieces_away_from_its_header_is_still_removed(size):
    # `key my secret` is a secret only inside a server block, whose header is pieces before it
    from collector.redact import redact_pieces, text_pieces

    text = ("tacacs server T1\n address ipv4 192.0.2.1\n timeout 5\n key my secret\n"
            "router ospf 1\n passive-interface default\n key my secret\n")
    want = text.replace(" key my secret\nrouter", " key <removed>\nrouter", 1)
    assert "".join(redact_pieces(text_pieces(text, size))) == want == redact(text)

"""Crypto configuration classification against Cisco 115801's table (the seed note)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.cryptoconfig import (
    CryptoProfile,
    Recovery,
    TunnelConfig,
    TunnelKind,
    classify_config,
    config_blocks,
    parse_crypto_sessions,
    recovery_for,
    redact_secrets,
    refine_with_session,
)

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs"


def load(name: str) -> str:
    return (CONFIGS / name).read_text()


def line_of(text: str, exact: str, nth: int = 0) -> int:
    """1-based number of the nth line whose stripped text is `exact` (computed, not hard-coded)."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if line.strip() == exact]
    assert len(hits) > nth, f"{exact!r} not in fixture"
    return hits[nth]


def summary(t: TunnelConfig) -> tuple:
    return (t.kind, t.name, t.peers, t.ike_version, t.recovery, t.dpd)


K, R = TunnelKind, Recovery

# fixture -> every tunnel as (kind, name, peers, IKE version, recovery, dpd), in config order
EXPECTED = {
    "static_map.cfg": [(K.STATIC_CRYPTO_MAP, "map VPN-MAP 10", ("10.10.1.2",), "IKEv1", R.YES, False)],
    "static_map_redacted.cfg": [(K.STATIC_CRYPTO_MAP, "map VPN-MAP 10", ("10.10.1.2",), "IKEv1", R.YES, True)],
    "dynamic_map.cfg": [(K.DYNAMIC_CRYPTO_MAP, "map VPN-MAP 65535", (), "IKEv1", R.NO, True)],
    "gre_p2p.cfg": [(K.GRE_P2P_TUNNEL_PROTECTION, "Tunnel0", ("198.51.100.2",), "IKEv1", R.YES, False)],
    "mgre_static_spoke.cfg": [(K.MGRE_STATIC_NHRP, "Tunnel0", ("203.0.113.1",), "IKEv1", R.YES, False)],
    "mgre_static_spoke_nbma.cfg": [(K.MGRE_STATIC_NHRP, "Tunnel0", ("203.0.113.1",), "IKEv1", R.YES, False)],
    "mgre_dynamic_hub.cfg": [(K.MGRE_DYNAMIC_NHRP, "Tunnel0", (), "IKEv1", R.NO, False)],
    "svti.cfg": [(K.SVTI, "Tunnel1", ("192.0.2.2",), "IKEv1", R.YES, True)],
    "dvti.cfg": [(K.DYNAMIC_VTI, "Virtual-Template1", (), "IKEv1", R.NO, False)],
    "ezvpn_client.cfg": [(K.EZVPN_CLIENT, "EZ", ("209.165.200.225",), "IKEv1", R.NOT_APPLICABLE, False)],
    "flexvpn_ikev2_svti.cfg": [(K.SVTI, "Tunnel10", ("103.1.1.1",), "IKEv2", R.UNKNOWN_IKEV2, True)],
    "flexvpn_client.cfg": [
        (K.GRE_P2P_TUNNEL_PROTECTION, "Tunnel1", ("198.51.100.10",), "IKEv2", R.UNKNOWN_IKEV2, False)
    ],
    "flexvpn_hub_dvti.cfg": [(K.DYNAMIC_VTI, "Virtual-Template1", (), "IKEv2", R.UNKNOWN_IKEV2, True)],
    "mixed_router.cfg": [
        (K.STATIC_CRYPTO_MAP, "map WAN-MAP 10", ("10.20.20.1",), "IKEv1", R.YES, True),
        (K.STATIC_CRYPTO_MAP, "map WAN-MAP 20", ("10.30.30.1", "10.30.30.2"), "IKEv1", R.YES, True),
        (K.DYNAMIC_CRYPTO_MAP, "map WAN-MAP 65535", (), "IKEv1", R.NO, True),
        (K.GRE_P2P_TUNNEL_PROTECTION, "Tunnel0", ("198.51.100.2",), "IKEv1", R.YES, True),
        (K.SVTI, "Tunnel9", ("192.0.2.9",), "IKEv2", R.UNKNOWN_IKEV2, False),
    ],
    "mixed_redacted_xe.cfg": [
        (K.STATIC_CRYPTO_MAP, "map PARTNER 10", ("103.1.1.1",), "IKEv1", R.YES, True),
        (K.MGRE_DYNAMIC_NHRP, "Tunnel100", (), "IKEv1", R.NO, False),
    ],
}


def test_every_fixture_is_covered():
    assert sorted(EXPECTED) == sorted(p.name for p in CONFIGS.glob("*.cfg"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_classification(name):
    profile = classify_config(load(name))
    assert [summary(t) for t in profile.tunnels] == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_evidence_lines_point_at_the_quoted_text(name):
    text = load(name)
    lines = text.splitlines()
    profile = classify_config(text)
    cited = [e for t in profile.tunnels for e in (*t.evidence, *t.dpd_evidence)]
    cited += [e for e in (profile.invalid_spi_recovery, profile.isakmp_keepalive, profile.nat_keepalive) if e]
    cited += [*profile.ikev2_dpd, *profile.isakmp_profile_keepalives]
    assert cited
    for e in cited:
        assert redact_secrets(lines[e.line - 1].strip()) == e.text


def test_seed_table_exactly():
    seed = {
        K.STATIC_CRYPTO_MAP: R.YES,
        K.DYNAMIC_CRYPTO_MAP: R.NO,
        K.GRE_P2P_TUNNEL_PROTECTION: R.YES,
        K.MGRE_STATIC_NHRP: R.YES,
        K.MGRE_DYNAMIC_NHRP: R.NO,
        K.SVTI: R.YES,
        K.EZVPN_CLIENT: R.NOT_APPLICABLE,
        K.DYNAMIC_VTI: R.NO,  # not in the table: treated like a dynamic map
    }
    assert set(seed) == set(TunnelKind)
    for kind, answer in seed.items():
        assert recovery_for(kind, "IKEv1") is answer
        assert recovery_for(kind, "unknown") is answer
        expected_v2 = R.NOT_APPLICABLE if kind is K.EZVPN_CLIENT else R.UNKNOWN_IKEV2
        assert recovery_for(kind, "IKEv2") is expected_v2


def test_static_map_evidence_names_map_peer_and_interface():
    text = load("static_map.cfg")
    tunnel = classify_config(text).tunnels[0]
    lines = {e.line for e in tunnel.evidence}
    assert {
        line_of(text, "crypto map VPN-MAP 10 ipsec-isakmp"),
        line_of(text, "set peer 10.10.1.2"),
        line_of(text, "interface GigabitEthernet0/0"),
        line_of(text, "crypto map VPN-MAP"),
    } <= lines
    assert tunnel.interfaces == ("GigabitEthernet0/0",)
    assert [e.line for e in tunnel.evidence] == sorted(e.line for e in tunnel.evidence)


def test_secrets_never_reach_evidence_or_dict():
    secrets = ["Sup3rS3cret", "WildCardKey", "cisco123", "DMVPNkey", "vtiKey!", "EzGroupKey", "PartnerA",
               "PartnerB", "RoadWarriors", "GreKey", "LocalSecret", "RemoteSecret", "NHRPkey"]
    for path in CONFIGS.glob("*.cfg"):
        dumped = json.dumps(classify_config(path.read_text()).to_dict())
        for secret in secrets:
            assert secret not in dumped, (path.name, secret)


def test_static_map_evidence_masks_the_key_line():
    text = load("static_map.cfg")
    tunnel = classify_config(text).tunnels[0]
    key_line = line_of(text, "crypto isakmp key Sup3rS3cret address 10.10.1.2")
    cited = {e.line: e.text for e in tunnel.evidence}
    assert cited[key_line] == "crypto isakmp key <removed> address 10.10.1.2"


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("crypto isakmp key 6 AbC address 1.1.1.1", "crypto isakmp key 6 <removed> address 1.1.1.1"),
        ("pre-shared-key address 0.0.0.0 0.0.0.0 key s3cr3t", "pre-shared-key address 0.0.0.0 0.0.0.0 key <removed>"),
        ("pre-shared-key local LocalSecret", "pre-shared-key local <removed>"),
        ("pre-shared-key cisco", "pre-shared-key <removed>"),
        ("group REMOTES key EzGroupKey", "group REMOTES key <removed>"),
        ("username admin privilege 15 password 0 pw", "username admin privilege 15 password 0 <removed>"),
        ("ip nhrp authentication NHRPkey", "ip nhrp authentication <removed>"),
        ("crypto isakmp key <removed> address 1.1.1.1", "crypto isakmp key <removed> address 1.1.1.1"),
        ("crypto isakmp keepalive 10 3 periodic", "crypto isakmp keepalive 10 3 periodic"),
        ("keyring local KR-V2", "keyring local KR-V2"),
    ],
)
def test_redact_secrets(raw, masked):
    assert redact_secrets(raw) == masked


def test_redacted_and_clear_configs_agree():
    clear = load("static_map_redacted.cfg").replace("<removed>", "RealKey123")
    assert [summary(t) for t in classify_config(clear).tunnels] == EXPECTED["static_map_redacted.cfg"]


def test_banner_body_is_not_config():
    ez = classify_config(load("ezvpn_client.cfg"))
    assert [t.name for t in ez.tunnels] == ["EZ"]  # not the Tunnel99 / crypto map inside the banner
    xe = classify_config(load("mixed_redacted_xe.cfg"))
    assert xe.invalid_spi_recovery is None  # the only occurrence is inside `banner login`


def test_global_settings_and_notes():
    text = load("mixed_router.cfg")
    profile = classify_config(text)
    assert profile.hostname == "R-MIXED"
    assert profile.invalid_spi_recovery.line == line_of(text, "crypto isakmp invalid-spi-recovery")
    assert profile.isakmp_keepalive.line == line_of(text, "crypto isakmp keepalive 10 3 periodic")
    assert profile.nat_keepalive.line == line_of(text, "crypto isakmp nat keepalive 20")
    assert profile.uses_isakmp and profile.uses_ikev2
    assert any("UNUSED" in note for note in profile.notes)  # unapplied map: noted, not a tunnel
    assert "Tunnel50" not in [t.name for t in profile.tunnels]  # plain GRE without protection


def test_flexvpn_client_is_ikev2_even_with_a_custom_ipsec_profile():
    text = load("flexvpn_client.cfg").replace(" tunnel protection ipsec profile default",
                                              " tunnel protection ipsec profile FLEX")
    text += "crypto ipsec profile FLEX\n set transform-set T\n"
    (tunnel,) = classify_config(text).tunnels
    assert (tunnel.ike_version, tunnel.recovery, tunnel.peers) == ("IKEv2", R.UNKNOWN_IKEV2, ("198.51.100.10",))
    assert "FlexVPN client FLEX-CLIENT" in tunnel.ike_reason


def test_gre_keepalive_is_not_dpd():
    text = load("gre_p2p.cfg")
    tunnel = classify_config(text).tunnels[0]
    assert tunnel.dpd is False
    assert tunnel.gre_keepalive.line == line_of(text, "keepalive 5 10")


def test_profile_no_keepalive_overrides_global():
    text = load("mixed_redacted_xe.cfg").replace(
        "crypto isakmp policy 10", "crypto isakmp keepalive 10 3\ncrypto isakmp policy 10")
    profile = classify_config(text)
    hub = next(t for t in profile.tunnels if t.name == "Tunnel100")
    partner = next(t for t in profile.tunnels if t.name == "map PARTNER 10")
    assert hub.dpd is False and [e.text for e in hub.dpd_evidence] == ["no keepalive"]
    assert partner.dpd is True and [e.text for e in partner.dpd_evidence] == ["keepalive 10 retry 3"]


def test_dpd_evidence_points_at_the_deciding_line():
    text = load("svti.cfg")
    tunnel = classify_config(text).tunnels[0]
    assert [e.line for e in tunnel.dpd_evidence] == [line_of(text, "keepalive 10 retry 3")]
    v2 = classify_config(load("flexvpn_hub_dvti.cfg")).tunnels[0]
    assert [e.text for e in v2.dpd_evidence] == ["dpd 120 3 periodic"]  # profile wins over global


SKELETON = """hostname T
crypto isakmp policy 10
 authentication pre-share
{extra}
interface GigabitEthernet1
 ip address 10.0.0.1 255.255.255.0
{ifc}
end
"""


def classify_skeleton(extra: str = "", ifc: str = "") -> CryptoProfile:
    return classify_config(SKELETON.format(extra=extra, ifc=ifc))


def test_ike_version_from_tunnel_protection_option():
    profile = classify_skeleton(
        "crypto ikev2 profile P2\n match identity remote address 192.0.2.1 255.255.255.255\n"
        "crypto ipsec profile IP\n set transform-set T\n"
        "interface Tunnel5\n tunnel source GigabitEthernet1\n tunnel destination 192.0.2.1\n"
        " tunnel protection ipsec profile IP ikev2-profile P2\n"
    )
    (tunnel,) = profile.tunnels
    assert (tunnel.kind, tunnel.ike_version, tunnel.recovery, tunnel.ike_profile) == (
        K.GRE_P2P_TUNNEL_PROTECTION, "IKEv2", R.UNKNOWN_IKEV2, "P2")


def test_ike_version_from_crypto_map_set_ikev2_profile():
    profile = classify_skeleton(
        "crypto ikev2 profile P2\n match identity remote address 0.0.0.0\n dpd 10 3 on-demand\n"
        "crypto map M 10 ipsec-isakmp\n set peer 192.0.2.7\n set ikev2-profile P2\n",
        " crypto map M",
    )
    (tunnel,) = profile.tunnels
    assert (tunnel.kind, tunnel.ike_version, tunnel.recovery, tunnel.dpd) == (
        K.STATIC_CRYPTO_MAP, "IKEv2", R.UNKNOWN_IKEV2, True)


def test_ike_version_ambiguous_is_unknown_and_falls_back_to_table():
    profile = classify_skeleton(
        "crypto isakmp key k address 192.0.2.7\n"
        "crypto ikev2 profile P2\n match identity remote address 192.0.2.7 255.255.255.255\n"
        "crypto map M 10 ipsec-isakmp\n set peer 192.0.2.7\n",
        " crypto map M",
    )
    (tunnel,) = profile.tunnels
    assert tunnel.ike_version == "unknown"
    assert tunnel.recovery is R.YES
    assert "not determined" in tunnel.recovery_reason


def test_ikev2_profile_matching_the_peer_means_ikev2():
    text = ("crypto ikev2 profile P2\n match identity remote address 192.0.2.0 255.255.255.0\n"
            "crypto map M 10 ipsec-isakmp\n set peer 192.0.2.7\n"
            "interface Gi1\n crypto map M\n")
    (tunnel,) = classify_config(text).tunnels
    assert (tunnel.ike_version, tunnel.ike_profile, tunnel.recovery) == ("IKEv2", "P2", R.UNKNOWN_IKEV2)


def test_no_ike_config_is_unknown():
    (tunnel,) = classify_config("crypto map M 10 ipsec-isakmp\n set peer 192.0.2.7\ninterface Gi1\n crypto map M\n").tunnels
    assert tunnel.ike_version == "unknown"


def test_mgre_without_any_nhrp_mapping_is_dynamic():
    profile = classify_skeleton(
        "crypto ipsec profile D\n set transform-set T\n"
        "interface Tunnel1\n tunnel source Gi1\n tunnel mode gre multipoint\n tunnel protection ipsec profile D\n"
    )
    assert [summary(t)[:1] for t in profile.tunnels] == [(K.MGRE_DYNAMIC_NHRP,)]


def test_static_map_with_several_entries_and_ipv6_peer():
    text = ("crypto isakmp policy 1\n"
            "crypto map ipv6 V6 10 ipsec-isakmp\n set peer 2001:db8::2\n"
            "crypto map ipv6 V6 20 ipsec-isakmp\n set peer 2001:db8::3\n"
            "interface Gi1\n ipv6 crypto map V6\n")
    profile = classify_config(text)
    assert [(t.name, t.peers) for t in profile.tunnels] == [
        ("map V6 10", ("2001:db8::2",)), ("map V6 20", ("2001:db8::3",))]


def test_ipsec_manual_map_is_noted_not_classified():
    profile = classify_config("crypto map M 10 ipsec-manual\n set peer 1.1.1.1\ninterface Gi1\n crypto map M\n")
    assert profile.tunnels == ()
    assert any("ipsec-manual" in note for note in profile.notes)


def test_crlf_and_tabs():
    text = load("svti.cfg").replace("\n", "\r\n")
    assert [summary(t) for t in classify_config(text).tunnels] == EXPECTED["svti.cfg"]


def test_config_blocks_tree_and_line_numbers():
    text = "hostname A\n!\ncrypto isakmp profile P\n   keyring K\n   match identity address 1.1.1.1\n!\nend\n"
    nodes = config_blocks(text)
    assert [(n.line, n.text) for n in nodes] == [(1, "hostname A"), (3, "crypto isakmp profile P"), (7, "end")]
    assert [(c.line, c.text) for c in nodes[1].children] == [(4, "keyring K"), (5, "match identity address 1.1.1.1")]


def test_config_blocks_nested_levels():
    text = "crypto ikev2 keyring KR\n peer A\n  address 1.1.1.1\n  pre-shared-key x\n peer B\n  address 2.2.2.2\n"
    (root,) = config_blocks(text)
    assert [c.text for c in root.children] == ["peer A", "peer B"]
    assert [g.line for g in root.children[0].children] == [3, 4]


def test_unterminated_banner_does_not_swallow_the_config():
    text = "banner motd #\ncrypto isakmp invalid-spi-recovery\n"
    assert classify_config(text).invalid_spi_recovery is not None
    assert classify_config("banner motd #hello#\ncrypto isakmp invalid-spi-recovery\n").invalid_spi_recovery.line == 2


def test_to_dict_is_json_ready():
    data = classify_config(load("mixed_router.cfg")).to_dict()
    again = json.loads(json.dumps(data))
    assert again["tunnels"][0]["kind"] == "static-crypto-map"
    assert again["tunnels"][0]["recovery"] == "yes"
    assert again["tunnels"][0]["evidence"][0].keys() == {"line", "text"}


# --- refine_with_session -------------------------------------------------------------------

SESSION_DETAIL = """Crypto session current status

Code: C - IKE Configuration mode, D - Dead Peer Detection
K - Keepalives, N - NAT-traversal, T - cTCP encapsulation

Interface: GigabitEthernet1
Session status: UP-ACTIVE
Peer: 192.0.2.7 port 500
  IKEv2 SA: local 10.0.0.1/500 remote 192.0.2.7/500 Active
  IPSEC FLOW: permit ip 10.1.0.0/255.255.0.0 10.2.0.0/255.255.0.0
        Active SAs: 2, origin: crypto map

Interface: Virtual-Access3
Session status: UP-ACTIVE
Peer: 198.51.100.77 port 4500
  IKEv1 SA: local 10.0.0.1/4500 remote 198.51.100.77/4500 Active
"""


def test_parse_crypto_sessions():
    sessions = parse_crypto_sessions(SESSION_DETAIL)
    assert [(s.interface, s.peer, s.ike_version, s.status) for s in sessions] == [
        ("GigabitEthernet1", "192.0.2.7", "IKEv2", "UP-ACTIVE"),
        ("Virtual-Access3", "198.51.100.77", "IKEv1", "UP-ACTIVE"),
    ]


def test_refine_resolves_unknown_ike_version_and_notes_virtual_access():
    profile = classify_config(
        "crypto isakmp key k address 192.0.2.7\n"
        "crypto ikev2 profile P2\n match identity remote address 192.0.2.7 255.255.255.255\n"
        "crypto map M 10 ipsec-isakmp\n set peer 192.0.2.7\ninterface GigabitEthernet1\n crypto map M\n")
    assert profile.tunnels[0].ike_version == "unknown"
    refined = refine_with_session(profile, SESSION_DETAIL)
    tunnel = refined.tunnels[0]
    assert (tunnel.ike_version, tunnel.recovery) == ("IKEv2", R.UNKNOWN_IKEV2)
    assert tunnel.observed_peers == ("192.0.2.7",)
    assert any("Virtual-Access3" in note for note in refined.notes)


def test_refine_records_peers_of_dynamic_tunnels_and_keeps_known_versions():
    profile = classify_config(load("dvti.cfg"))
    refined = refine_with_session(profile, SESSION_DETAIL)
    (tunnel,) = refined.tunnels
    assert tunnel.observed_peers == ("198.51.100.77",)
    assert tunnel.ike_version == "IKEv1" and tunnel.recovery is R.NO
    assert refined.notes == profile.notes  # a DVTI explains the Virtual-Access session


# --- robustness ----------------------------------------------------------------------------

_ALL_LINES = [line for p in sorted(CONFIGS.glob("*.cfg")) for line in p.read_text().splitlines()]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_classify_never_raises_on_arbitrary_text(text):
    profile = classify_config(text)
    json.dumps(profile.to_dict())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_ALL_LINES), st.integers(0, 3), st.integers(0, 4)), max_size=60))
def test_classify_never_raises_on_shuffled_config_lines(parts):
    # real config lines, re-indented and truncated at random: every partial shape the parser can meet
    text = "\n".join(" " * indent + " ".join(line.split()[: len(line.split()) - cut])
                     for line, indent, cut in parts)
    profile = classify_config(text)
    for tunnel in profile.tunnels:
        assert tunnel.recovery is recovery_for(tunnel.kind, tunnel.ike_version)
    json.dumps(profile.to_dict())

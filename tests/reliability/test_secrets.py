"""No secret leaves the routers: not in a bundle, an archive, the state store, a log, a
process listing. Bundle files are 0600 and folders 0700.

The secrets are the lab's own: the inventory's login password and enable secret, and
every key, password, community and hash in each lab router's running-config (pre-shared
keys of every tunnel type, `enable secret`, user secrets, SNMP communities, TACACS keys,
NHRP and EzVPN group keys), as the lab model lists them (`Router.secrets()`).
"""

from __future__ import annotations

import io
import os
import signal
import stat
import tarfile
from pathlib import Path

import pytest
from reliability_lab import (
    both_armed,
    bundles,
    desync_ends,
    fast_playbook,
    first_line,
    incident_states,
    repeat_line,
    run_cli,
    start_watch,
    wait_for,
    watch_args,
)

from collector.bundle import BundleWriter
from collector.lab.fleet import Fleet
from collector.lab.runner import running_lab
from collector.redact import REDACTED, redact

SHOW_WITH_SECRETS = ("show running-config", "show startup-config", "show crypto isakmp key",
                     "show running-config | section crypto", "show running-config | section server")


def _lab_secrets(fleet) -> set[str]:
    found = {fleet.routers[name].password for name in fleet.routers}
    found |= {fleet.routers[name].enable_secret for name in fleet.routers}
    for router in fleet.routers.values():
        found.update(router.secrets())
    assert all(len(s) >= 6 for s in found), "a secret this short would match by accident"
    return found


def _cli_output(router, command: str) -> str:
    cli = router.open_session()
    cli.execute("enable")
    cli.execute(router.enable_secret)
    return cli.execute(command)


def test_every_secret_form_of_every_lab_config_type_is_redacted():
    """50 routers with every scenario: all tunnel config types (crypto maps, static and
    dynamic VTI, GRE, DMVPN hub/spoke, FlexVPN, EzVPN), read as a bundle would store them."""
    fleet = Fleet.build(50, ["mix", "mix"], seed=3)
    types = {t.spec.ends[e].config_type for router in fleet.routers.values() for t, e in router.tunnels}
    assert len(types) >= 8, types
    writer_secrets = sorted({r.password for r in fleet.routers.values()} | {r.enable_secret for r in fleet.routers.values()})
    for router in fleet.routers.values():
        secrets = set(router.secrets())
        assert secrets, router.name
        for command in SHOW_WITH_SECRETS:
            shown = _cli_output(router, command)
            scrubbed = _scrub(shown, writer_secrets)
            leaked = [s for s in secrets if s in scrubbed]
            assert not leaked, (router.name, command, leaked)
        config = router.running_config()
        assert any(s in config for s in secrets)  # the test would see a leak
        assert redact(config).count(REDACTED) >= len([s for s in secrets if s in config]) - 1
        # Redaction keeps the config readable: only tokens go, every line stays.
        assert len(redact(config).splitlines()) == len(config.splitlines())


def test_server_and_group_keys_are_redacted_without_their_block():
    fleet = Fleet.build(50, ["mix", "mix"], seed=3)
    leaked = []
    for router in fleet.routers.values():
        shown = _cli_output(router, "show running-config | include key|password|secret|community")
        scrubbed = _scrub(shown, [])
        leaked += [(router.name, s) for s in router.secrets() if s in scrubbed]
    assert not leaked, leaked[:5]


def _scrub(text: str, secrets: list[str]) -> str:
    writer = BundleWriter.__new__(BundleWriter)  # only the redaction of the writer, no folder
    writer._secrets = tuple(secrets)
    return writer.scrub(text)


IOS_FORMS = """\
enable secret 9 $9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM
enable secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0
enable password 7 0822455D0A16
enable password PlainEnable1
username admin privilege 15 secret 9 $9$AdminHash$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG
username oper password 7 094F471A1A0A0B
username ro privilege 1 password 0 RoPass-11
key config-key password-encrypt MasterKey123
crypto isakmp key 0 IsakmpKey-1 address 0.0.0.0 0.0.0.0
crypto isakmp key 6 IsakmpKey6xx hostname peer.example.net
crypto keyring KR
 pre-shared-key address 192.0.2.1 key KeyringKey-2
 pre-shared-key hostname spoke.example.net key 7 KeyringKey7x
crypto ikev2 keyring IKR
 peer ANY
  address 0.0.0.0 0.0.0.0
  pre-shared-key Ikev2Psk-3
  pre-shared-key local Ikev2Local-4
  pre-shared-key remote 6 Ikev2Remote-5
crypto ikev2 profile PROF
 authentication remote pre-share key ProfileKey-6
 authentication local pre-share key 0 ProfileKey-7
crypto isakmp client configuration group VPNGROUP
 key GroupKey-8
crypto ipsec client ezvpn EZ
 group EZGROUP key EzGroupKey-9
tacacs server TAC1
 address ipv4 192.0.2.10
 key 7 TacacsKey7x0
radius server RAD1
 key RadiusKey-10
 pac key PacKey-11
tacacs-server host 192.0.2.10 key OldTacKey-12
radius-server key 7 OldRadKey7x
aaa server radius dynamic-author
 client 192.0.2.12 server-key DynAuthKey-13
aaa group server radius GRP
 server-private 192.0.2.11 auth-port 1645 acct-port 1646 key 7 PrivKey7xx
snmp-server community N3tw0rkRO RO 10
snmp-server community N3tw0rkRW RW
snmp-server host 192.0.2.50 version 2c TrapComm-14
snmp-server user mon MONGRP v3 auth sha AuthPass-15 priv aes 128 PrivPass-16
interface Tunnel0
 ip nhrp authentication NhrpKey1
 ip ospf message-digest-key 1 md5 OspfMd5-17
 ip ospf authentication-key 7 121A0C041104
 standby 1 authentication md5 key-string HsrpKey-18
 vrrp 2 authentication text VrrpKey-19
 ppp chap password 0 ChapPass-20
 ppp pap sent-username user1 password 0 PapPass-21
key chain KC
 key 1
  key-string 7 045802150C2E1D
  key-string KeyString-22
router bgp 65000
 neighbor 192.0.2.2 password 7 020700560208
 neighbor 192.0.2.3 password BgpPass-23
router eigrp NAMED
 address-family ipv4 autonomous-system 1
  af-interface default
   authentication mode hmac-sha-256 EigrpKey-24
ntp authentication-key 1 md5 NtpKey-25 7
crypto pki import TP pkcs12 flash:tp.p12 password Export-26
line vty 0 4
 password 7 094F471A1A0A
 password LinePass-27
ip ftp password 7 0822455D0A1x
ip http client password HttpPass-28
l2tp tunnel password 0 L2tpPass-29
"""
IOS_SECRETS = [
    "$9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM", "$1$mERr$hx5rVt7rPNoS4wqbXKX7m0", "0822455D0A16",
    "PlainEnable1", "$9$AdminHash$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "094F471A1A0A0B", "RoPass-11",
    "MasterKey123", "IsakmpKey-1", "IsakmpKey6xx", "KeyringKey-2", "KeyringKey7x", "Ikev2Psk-3", "Ikev2Local-4",
    "Ikev2Remote-5", "ProfileKey-6", "ProfileKey-7", "GroupKey-8", "EzGroupKey-9", "TacacsKey7x0", "RadiusKey-10",
    "PacKey-11", "OldTacKey-12", "OldRadKey7x", "DynAuthKey-13", "PrivKey7xx", "N3tw0rkRO", "N3tw0rkRW",
    "TrapComm-14", "AuthPass-15", "PrivPass-16", "NhrpKey1", "OspfMd5-17", "121A0C041104", "HsrpKey-18",
    "VrrpKey-19", "ChapPass-20", "PapPass-21", "045802150C2E1D", "KeyString-22", "020700560208", "BgpPass-23",
    "EigrpKey-24", "NtpKey-25", "Export-26", "094F471A1A0A", "LinePass-27", "0822455D0A1x", "HttpPass-28",
    "L2tpPass-29",
]


@pytest.mark.parametrize("wrap", ["config", "logged-command", "archive-log", "crlf", "json"])
def test_every_ios_secret_form_is_redacted_wherever_it_is_printed(wrap, tmp_path):
    lines = IOS_FORMS.splitlines()
    if wrap == "config":
        text = IOS_FORMS
    elif wrap == "logged-command":
        text = "\n".join(f"*Nov 27 10:00:00.000: %PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:{line.strip()}"
                         for line in lines)
    elif wrap == "archive-log":
        text = "\n".join(f"   {n}    1  admin@vty0     |{line.strip()}" for n, line in enumerate(lines, 1))
    elif wrap == "crlf":
        text = IOS_FORMS.replace("\n", "\r\n")
    else:
        text = IOS_FORMS
    writer = BundleWriter(tmp_path / "b", "probe")
    if wrap == "json":
        writer.write_json("config.json", {"config": text, "show": [{"command": "show running-config", "text": text}]})
    else:
        writer.write_text("config.txt", text)
    final = writer.finish({"kind": "probe"}, tarball=True)
    stored = "\n".join(p.read_text() for p in final.rglob("*") if p.is_file())
    flat_lines = [line.strip() for line in lines]
    top_level = {line.split()[0] for line in flat_lines if line}
    if wrap in ("logged-command", "archive-log"):
        # Block lines (e.g. ` key 7 ...` under `tacacs server`) lose their block there;
        # the forms that stand alone on a line must still go.
        expected = [s for s in IOS_SECRETS if _line_of(s).startswith(tuple(top_level - {"interface", "line"}))
                    and not _line_of(s).startswith((" ", "key 1"))]
    else:
        expected = IOS_SECRETS
    leaked = [s for s in expected if s in stored]
    assert not leaked, leaked
    with __import__("tarfile").open(str(final) + ".tar.gz") as archive:
        for member in archive.getmembers():
            if member.isfile():
                body = archive.extractfile(member).read().decode()
                assert not [s for s in expected if s in body], member.name


def _line_of(secret: str) -> str:
    return next(line for line in IOS_FORMS.splitlines() if secret in line)


# -- a full run: search every byte the tool wrote ------------------------------------------------


def _readable(path: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of a file, and of every member when it is a .tar.gz."""
    body = path.read_bytes()
    out = [(str(path), body)]
    if path.name.endswith(".tar.gz"):
        with tarfile.open(fileobj=io.BytesIO(body)) as archive:
            for member in archive.getmembers():
                if member.isfile():
                    out.append((f"{path}!{member.name}", archive.extractfile(member).read()))
    return out


def _all_cmdlines() -> list[str]:
    lines = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return lines


@pytest.mark.e2e
def test_after_a_full_run_no_secret_is_anywhere_and_modes_are_private(tmp_path):
    playbook = fast_playbook(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        secrets = _lab_secrets(lab.fleet)
        inventory_text = lab.inventory_path.read_text()
        assert any(s in inventory_text for s in secrets)  # the agent's input does hold them
        receiver, sender = desync_ends(lab)
        args = watch_args(lab, work, playbook)
        agent = start_watch(args, work, work / "agent.log", "-vv")  # debug logging: the most it ever prints
        listings = []
        try:
            assert wait_for(lambda: (work / "state" / "state.db").exists(), 60)
            first_line(lab)
            assert wait_for(lambda: both_armed(work / "state"), 60), (work / "agent.log").read_text()[-3000:]
            listings += _all_cmdlines()
            repeat_line(lab)
            # The incident's end recorded as captured: its bundle and archive are written by
            # then (the bundle's folder alone appears before its archive and its record).
            assert wait_for(lambda: any(s == "captured" for s, _ in incident_states(work / "state")), 180), \
                (work / "agent.log").read_text()[-3000:]
            listings += _all_cmdlines()
        finally:
            agent.terminate()
            agent.wait(timeout=120)
        assert agent.returncode == 128 + signal.SIGTERM, (work / "agent.log").read_text()[-3000:]  # the daemon's code
        collected = run_cli("-vv", "collect", "-i", str(lab.inventory_path), "-c", "show running-config", "-c",
                            "show crypto isakmp key", "--out", str(work / "collected"), cwd=work)
        # exit 1: no TextFSM template for `show running-config` counts as a failed host
        assert collected.returncode in (0, 1) and "bundle: " in collected.stderr, collected.stderr[-2000:]
        shown = run_cli("inventory", "--json", "-i", str(lab.inventory_path), cwd=work)
        assert shown.returncode == 0, shown.stderr
    (work / "collect.out").write_text(collected.stdout + collected.stderr + shown.stdout + shown.stderr)

    # Every file the tool wrote: bundles and their archives, the state store (with its WAL),
    # known_hosts, the logs of both commands.
    files = [p for p in work.rglob("*") if p.is_file()] + [p for p in Path(os.environ["COLLECTOR_STATE"]).rglob("*")
                                                           if p.is_file()]
    assert any(p.name.endswith(".tar.gz") for p in files) and any(p.name == "state.db" for p in files)
    assert len(bundles(work / "bundles")) == 1
    leaks = [(name, s) for path in files for name, body in _readable(path) for s in secrets if s.encode() in body]
    assert not leaks, leaks[:10]
    assert not [(line, s) for line in listings for s in secrets if s in line], "a secret on a command line"

    # Bundles: files 0600, folders 0700 (also the routers' sub-folders), archives 0600.
    for root in (work / "bundles", work / "collected"):
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            if path.is_dir() and path != root:
                assert mode == 0o700, (path, oct(mode))
            elif path.is_file():
                assert mode == 0o600, (path, oct(mode))
    state = work / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for path in state.glob("state.db*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

"""From a capture (or a bundle on disk) to a diagnosis: the inputs of the checks, rebuilt
from the raw outputs, then the report.

Two ways in, one path:

* `diagnose_capture(result)` — the agent calls it with the `CaptureResult` right before
  `write_incident_bundle(..., report=...)`; it never raises (a broken diagnosis must not
  lose a capture).
* `diagnose_bundle(path)` — `collector report` reads a sealed bundle (manifest.json and the
  raw files it lists), rebuilds the same `CaptureResult`, and runs the same code.

Evidence cites bundle files by the names `write_incident_bundle` gives them
(`<router>/NN_<command-slug>.txt`), so a report made before the bundle exists still points
at the right lines.

What is read from each end:
  show running-config          -> crypto profile (classify_config), refined by show crypto session
  show crypto ipsec sa ...     -> SA table (read_ipsec_sa: template records, else regex)
  show logging                 -> invalid-SPI occurrences (receiver) and debug lines (both)
  show platform ... qfp ...    -> drop counters (before/after when run twice)
  show version                 -> software version and platform family
  show ip nhrp / show dmvpn    -> NHRP cache: a DMVPN flow's mapping, static or dynamic (nhrp.py)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

from collector.bundle import slug
from collector.detect.events import Flow, InvalidSpiEvent
from collector.detect.logline import buffer_start, parse_invalid_spi, parse_log_line
from collector.diagnose.checks import DiagnosisInputs, RouterSide, run_checks, side_tunnels
from collector.cryptoconfig import classify_config, refine_with_session
from collector.nhrp import NhrpEntry, parse_nhrp
from collector.diagnose.findings import EvidenceRef
from collector.diagnose.report import (
    IncidentDiagnosis,
    IncidentMeta,
    SaBlock,
    SaEntry,
    SaTable,
    failed_report,
    render_report,
)
from collector.command_results import CommandResult
from collector.core.results import LogSnapshot
from collector.evidence import CaptureResult, RouterCapture, ambiguous_time_notes, build_timeline, clock_tracks

__all__ = [
    "BundleError",
    "LoadedBundle",
    "RouterContext",
    "bundle_file_name",
    "context_from_profile",
    "build_inputs",
    "diagnose",
    "diagnose_bundle",
    "diagnose_capture",
    "load_bundle",
    "parse_qfp_counters",
    "read_ipsec_sa",
    "read_version",
]

# How close before the first message an SA install counts as "at a rekey" (the message
# fires when the sender switches to the new SA before the receiver installed it).
REKEY_WINDOW_BEFORE = timedelta(seconds=60)
REKEY_WINDOW_AFTER = timedelta(seconds=2)


class BundleError(Exception):
    """The given path is not a readable incident bundle; the message is one line."""


@dataclass(frozen=True)
class RouterContext:
    """What the agent may know about a router beyond the capture (its cached profile).
    Used only when the capture itself lacks the output; the bundle then does not hold
    the evidence, so offline `collector report` cannot repeat those findings."""

    running_config: str | None = None
    software_version: str | None = None
    platform_family: str | None = None  # "IOS", "IOS-XE", "ASR1000"
    qfp_baseline: Mapping[str, int] | None = None


def context_from_profile(profile: Any, qfp_baseline: Mapping[str, int] | None = None) -> RouterContext:
    """A RouterContext from the agent's cached `collector.respond.facts.DeviceProfile`
    (duck-typed: running_config, version, os_family "ios"/"iosxe", is_asr1000)."""
    family = ("ASR1000" if getattr(profile, "is_asr1000", False)
              else "IOS-XE" if getattr(profile, "os_family", None) == "iosxe" else "IOS")
    return RouterContext(running_config=getattr(profile, "running_config", None),
                         software_version=getattr(profile, "version", None), platform_family=family,
                         qfp_baseline=qfp_baseline)


# --------------------------------------------------------------------------------------------
# Which output is which command (abbreviations accepted, as IOS does)


def _split(command: str) -> tuple[list[str], bool]:
    base, pipe, _ = command.partition("|")
    return base.split(), bool(pipe)


def command_matches(command: str, canonical: str, *, args: bool = False, filtered: bool = False) -> bool:
    """`sh run` matches `show running-config`; each typed word must be a prefix (2+ letters)
    of the canonical word. With `args`, extra words after it are allowed; with `filtered`,
    an output modifier (`| include ...`) is allowed."""
    words, piped = _split(command.lower())
    want = canonical.lower().split()
    if (piped and not filtered) or len(words) < len(want) or (len(words) > len(want) and not args):
        return False
    return all(len(w) >= min(2, len(c)) and c.startswith(w) for w, c in zip(words, want))


_QFP_COMMANDS = (
    "show platform hardware qfp active statistics drop",
    "show platform hardware qfp active feature ipsec datapath drops",
)


def bundle_file_name(router: str, index: int, command: str) -> str:
    """The raw-output file name `write_incident_bundle` uses (index is 1-based)."""
    return f"{router}/{index:02d}_{slug(command)}.txt"


@dataclass(frozen=True)
class _Output:
    command: str
    text: str
    parsed: list[dict] | None
    file: str


def _outputs(capture: RouterCapture, files: Mapping[tuple[str, int], str] | None) -> list[_Output]:
    out = []
    for index, record in enumerate(capture.commands, start=1):
        if record.text is None:
            continue
        name = (files or {}).get((capture.router, index)) or bundle_file_name(capture.router, index, record.command)
        out.append(_Output(record.command, record.text, record.parsed, name))
    return out


def _last(outputs: Sequence[_Output], canonical: str, *, args: bool = False, filtered: bool = False) -> _Output | None:
    found = [o for o in outputs if command_matches(o.command, canonical, args=args, filtered=filtered)]
    return found[-1] if found else None


# --------------------------------------------------------------------------------------------
# show crypto ipsec sa — the ONE place SA tables are read (swap the template or regex here)


def read_ipsec_sa(text: str, records: Sequence[Mapping[str, Any]] | None = None, *,
                  file: str = "show crypto ipsec sa", command: str = "show crypto ipsec sa") -> SaTable:
    """Blocks and SAs of a `show crypto ipsec sa [peer X] [detail]` output.

    Template records (collector's `cisco_ios_show_crypto_ipsec_sa.textfsm`, or ntc's
    field names) are preferred; the regex reading of the raw text is used when there are
    no usable records, or when it finds more SAs than the records hold (a template that
    silently skipped lines must not hide an SPI)."""
    from_records = _sa_from_records(records) if records else ()
    from_text = _sa_from_text(text or "")
    if from_records and _sa_count(from_records) >= _sa_count(from_text):
        return SaTable(file, command, from_records, "template")
    return SaTable(file, command, from_text, "regex")


def _sa_count(blocks: Sequence[SaBlock]) -> int:
    return sum(len(b.entries) + (b.current_outbound_spi is not None) for b in blocks)


def _int(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _spi(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value in (None, ""):
        return None
    text = str(value).strip().lower()
    try:
        spi = int(text, 16)
    except ValueError:
        return None
    return spi if 0 <= spi <= 0xFFFFFFFF else None


def _first(record: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = record.get(name)
        if value not in (None, "", []):
            return value
    return None


def _sa_from_records(records: Sequence[Mapping[str, Any]]) -> tuple[SaBlock, ...]:
    if not any(("current_outbound_spi" in r or "current_outbound_spi_hex" in r) for r in records):
        return ()
    blocks: dict[tuple, dict[str, Any]] = {}
    for r in records:
        local = "/".join(str(r.get(k, "")) for k in ("local_ident_addr", "local_ident_mask", "local_ident_prot",
                                                      "local_ident_port")).strip("/") or None
        remote = "/".join(str(r.get(k, "")) for k in ("remote_ident_addr", "remote_ident_mask", "remote_ident_prot",
                                                       "remote_ident_port")).strip("/") or None
        key = (r.get("interface"), r.get("crypto_map_tag"), local, remote, r.get("current_peer"))
        block = blocks.get(key)
        if block is None:
            block = blocks[key] = {
                "interface": _first(r, "interface"), "map_tag": _first(r, "crypto_map_tag"),
                "local_addr": _first(r, "local_addr"), "peer": _first(r, "current_peer"),
                "peer_port": _int(_first(r, "current_peer_port", "port")), "local_ident": local,
                "remote_ident": remote,
                "current_outbound_spi": _spi(_first(r, "current_outbound_spi", "current_outbound_spi_hex")),
                "invalid_sa_rcv": _int(_first(r, "pkts_invalid_sa_rcv", "pkts_invalid_sa")),
                "entries": [],
            }
        spi = _spi(_first(r, "spi", "sa_spi_hex"))
        direction = str(_first(r, "direction", "sa_orientation") or "").lower()
        protocol = str(_first(r, "protocol", "sa_type") or "").lower()
        if spi is None or direction not in ("inbound", "outbound") or protocol not in ("esp", "ah", "pcp"):
            continue
        kb, sec = _int(r.get("remaining_kb")), _int(r.get("remaining_sec"))
        lifetime = f"{kb} KB / {sec} s" if kb is not None and sec is not None else _first(r, "remaining_lifetime")
        block["entries"].append(SaEntry(
            direction=direction, protocol=protocol, spi=spi, status=_first(r, "status", "sa_status"),
            lifetime=str(lifetime) if lifetime else None,
            udp_encaps="udp-encaps" in str(r.get("in_use_settings", "")).lower(),
        ))
    return tuple(SaBlock(**{**b, "entries": tuple(b["entries"])}) for b in blocks.values())


_SA_IFACE = re.compile(r"^\s*interface:\s*(\S+)", re.I)
_SA_MAPTAG = re.compile(r"^\s*Crypto map tag:\s*([^,\s]+)\s*,\s*local addr\.?\s+(\S+)", re.I)
_SA_LOCAL = re.compile(r"^\s*local\s+ident\s+\([^)]*\):\s*\(([^)]*)\)", re.I)
_SA_REMOTE = re.compile(r"^\s*remote\s+ident\s+\([^)]*\):\s*\(([^)]*)\)", re.I)
_SA_PEER = re.compile(r"^\s*current_peer:?\s+(\S+)(?:\s+port\s+(\d+))?", re.I)
_SA_INVALID = re.compile(r"#pkts\s+invalid\s+sa\s+\(rcv\):?\s*(\d+)", re.I)
_SA_CURRENT_OUT = re.compile(r"^\s*current\s+outbound\s+spi:\s*0x([0-9A-Fa-f]{1,8})\b", re.I)
_SA_SECTION = re.compile(r"^\s*(inbound|outbound)\s+(esp|ah|pcp)\s+sas:", re.I)
_SA_SPI = re.compile(r"^\s*spi:\s*0x([0-9A-Fa-f]{1,8})\b", re.I)
_SA_STATUS = re.compile(r"^\s*Status:\s*(\S+)")
_SA_LIFE_KS = re.compile(r"remaining key lifetime\s*\(k/sec\):\s*\((\d+)/(\d+)\)", re.I)
_SA_LIFE = re.compile(r"remaining key lifetime\s+(\S.*\S)", re.I)
_SA_IN_USE = re.compile(r"in use settings\s*=\s*\{([^}]*)\}", re.I)


def _sa_from_text(text: str) -> tuple[SaBlock, ...]:
    blocks: list[dict[str, Any]] = []
    context: dict[str, Any] = {"interface": None, "map_tag": None, "local_addr": None}
    block: dict[str, Any] | None = None
    section: tuple[str, str] | None = None
    entry: dict[str, Any] | None = None

    def open_block() -> dict[str, Any]:
        nonlocal block, section, entry
        block = {**context, "peer": None, "peer_port": None, "local_ident": None, "remote_ident": None,
                 "current_outbound_spi": None, "invalid_sa_rcv": None, "entries": []}
        blocks.append(block)
        section, entry = None, None
        return block

    for line in text.splitlines():
        if m := _SA_IFACE.match(line):
            context = {"interface": m.group(1), "map_tag": None, "local_addr": None}
            block, section, entry = None, None, None
        elif m := _SA_MAPTAG.match(line):
            context["map_tag"], context["local_addr"] = m.group(1), m.group(2)
        elif m := _SA_LOCAL.match(line):
            open_block()["local_ident"] = m.group(1)
        elif m := _SA_REMOTE.match(line):
            (block or open_block())["remote_ident"] = m.group(1)
        elif m := _SA_PEER.match(line):
            peer, port = m.group(1), m.group(2)
            if port is None and peer.count(":") == 1:  # `current_peer: 1.2.3.4:500`
                peer, _, port = peer.partition(":")
            target = block or open_block()
            target["peer"], target["peer_port"] = peer.rstrip(":"), int(port) if port else None
        elif m := _SA_CURRENT_OUT.match(line):
            (block or open_block())["current_outbound_spi"] = int(m.group(1), 16)
        elif m := _SA_SECTION.match(line):
            section, entry = (m.group(1).lower(), m.group(2).lower()), None
            if block is None:
                open_block()
                section = (m.group(1).lower(), m.group(2).lower())
        elif (m := _SA_SPI.match(line)) and section is not None and block is not None:
            entry = {"direction": section[0], "protocol": section[1], "spi": int(m.group(1), 16),
                     "status": None, "lifetime": None, "udp_encaps": False}
            block["entries"].append(entry)
        elif entry is not None and (m := _SA_STATUS.match(line)):
            entry["status"] = m.group(1)
        elif entry is not None and (m := _SA_LIFE_KS.search(line)):
            entry["lifetime"] = f"{m.group(1)} KB / {m.group(2)} s"
        elif entry is not None and (m := _SA_LIFE.search(line)):
            entry["lifetime"] = m.group(1)
        elif entry is not None and (m := _SA_IN_USE.search(line)):
            entry["udp_encaps"] = "udp-encaps" in m.group(1).lower()
        elif m := _SA_INVALID.search(line):
            (block or open_block())["invalid_sa_rcv"] = int(m.group(1))
    return tuple(SaBlock(**{**b, "entries": tuple(SaEntry(**e) for e in b["entries"])}) for b in blocks)


# --------------------------------------------------------------------------------------------
# QFP drop counters and show version

_QFP_GLOBAL_ROW = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s+(\d+)\s+(\d+)\s*$")  # name packets octets
_QFP_IPSEC_ROW = re.compile(r"^\s*(\d+)\s+([A-Za-z][A-Za-z0-9_]*)\s+(\d+)\s*$")  # type name packets


def parse_qfp_counters(text: str) -> dict[str, int]:
    """Counter name -> packets from either QFP drop command (docs/domain.md §2.7, §2.8)."""
    counters: dict[str, int] = {}
    for line in text.splitlines():
        if m := _QFP_IPSEC_ROW.match(line):
            counters[m.group(2)] = int(m.group(3))
        elif m := _QFP_GLOBAL_ROW.match(line):
            counters[m.group(1)] = int(m.group(2))
    return counters


_XE_VERSION = re.compile(r"IOS XE Version:\s*(\S+)|Cisco IOS XE Software,\s*Version\s+([^\s,]+)", re.I)
_IOS_VERSION = re.compile(r"Cisco IOS Software.*?,\s*(?:Experimental\s+)?Version\s+([^\s,]+)", re.I)
_XE_MARK = re.compile(r"IOS[ -]XE|X86_64_LINUX_IOSD|PPC_LINUX_IOSD|ARMV8EB_LINUX_IOSD", re.I)
_ASR_MARK = re.compile(r"ASR1000 Software|\bcisco ASR1\d{3}|\basr1\d{3}[a-z]*-", re.I)


def read_version(text: str, records: Sequence[Mapping[str, Any]] | None = None) -> tuple[str | None, str | None]:
    """(software version, platform family "IOS" | "IOS-XE" | "ASR1000") from `show version`."""
    record = records[0] if records else {}
    version = _first(record, "xe_version", "version") if record else None
    if isinstance(version, list):
        version = version[0] if version else None
    if version is None:
        m = _XE_VERSION.search(text)
        version = (m.group(1) or m.group(2)) if m else None
    if version is None and (m := _IOS_VERSION.search(text)):
        version = m.group(1)
    if record.get("is_asr1000") in (True, "True", "true") or _ASR_MARK.search(text):
        family = "ASR1000"
    elif str(record.get("os_family", "")).upper() == "IOS-XE" or _XE_MARK.search(text):
        family = "IOS-XE"
    elif text.strip():
        family = "IOS"
    else:
        family = None
    return (str(version) if version else None), family


# --------------------------------------------------------------------------------------------
# show logging: occurrences of the flow, debug lines


def _same_flow(event: InvalidSpiEvent, flow: Flow) -> bool:
    f = event.flow
    return (f.src, f.dst, f.spi, f.prot) == (flow.src, flow.dst, flow.spi, flow.prot)


@dataclass(frozen=True)
class _Occurrences:
    count: int
    times: tuple[datetime, ...]  # device times (naive, the receiver's clock)
    refs: tuple[EvidenceRef, ...]


def _occurrences(flow: Flow, log: _Output | None, trigger_lines: Sequence[str], received_at: datetime) -> _Occurrences:
    seen: dict[object, InvalidSpiEvent] = {}
    refs: list[EvidenceRef] = []
    if log is not None:
        for n, line in enumerate(log.text.splitlines(), start=1):
            if "RECVD_PKT_INV_SPI" not in line:
                continue
            event = parse_invalid_spi(line.strip(), router=flow.router, source="poll", received_at=received_at)
            if event is not None and _same_flow(event, flow):
                seen.setdefault(_event_key(event), event)
                refs.append(EvidenceRef(log.file, n, line.strip()))
    for line in trigger_lines:
        event = parse_invalid_spi(line, router=flow.router, source="syslog", received_at=received_at)
        if event is not None and _same_flow(event, flow):
            key = _event_key(event)
            if key not in seen:
                seen[key] = event
                refs.append(EvidenceRef("manifest.json (trigger_lines)", None, line.strip()))
    times = tuple(sorted(e.device_time for e in seen.values() if e.device_time is not None))
    return _Occurrences(len(seen), times, tuple(refs))


def _event_key(event: InvalidSpiEvent) -> object:
    # The same message polled from the buffer and received over syslog carries the same
    # router time stamp (the message is rate-limited to one a minute, so a stamp is unique
    # per flow); without one, only identical text counts as the same message.
    if event.device_time is not None:
        return ("t", event.device_time)
    return ("raw", event.raw.split("%CRYPTO-4-RECVD_PKT_INV_SPI", 1)[-1].strip())


def _debug_lines(log: _Output, year: int) -> list[tuple[EvidenceRef, datetime | None]]:
    """Physical lines of `show logging` that belong to debug output (records without a
    %MNEMONIC, and their continuation lines), numbered as in the file, with their stamps."""
    out: list[tuple[EvidenceRef, datetime | None]] = []
    lines = log.text.splitlines()
    start = buffer_start(log.text, lines)[0]
    in_debug = False
    stamp: datetime | None = None
    for n in range(start, len(lines)):
        line = lines[n]
        if not line.strip():
            continue
        record = parse_log_line(line, year=year) if line[0] not in " \t" else None
        if record is not None:
            in_debug = record.mnemonic is None
            stamp = record.timestamp
        if in_debug:
            out.append((EvidenceRef(log.file, n + 1, line.rstrip()), stamp))
    return out


_REKEY_MARK = re.compile(r"create_sa|installed IPSEC SA|QM Responder gets spi|IKE_QM_|CREATE_CHILD_SA|rekey", re.I)


# --------------------------------------------------------------------------------------------
# Building the inputs


def _armed(router: str, actions: Iterable[Mapping[str, Any]]) -> bool:
    for action in actions:
        if action.get("router") == router and any("debug crypto" in str(c) for c in action.get("do", ())):
            return True
    return False


def _qfp(outputs: Sequence[_Output], baseline: Mapping[str, int] | None) -> tuple[dict[str, int] | None, dict[str, int] | None, str | None]:
    readings = {c: [o for o in outputs if command_matches(o.command, c, args=True)] for c in _QFP_COMMANDS}
    all_found = [o for found in readings.values() for o in found]
    if not all_found:
        return None, None, None
    twice = [found for found in readings.values() if len(found) >= 2]
    if twice:
        before: dict[str, int] = {}
        after: dict[str, int] = {}
        for found in twice:
            before.update(parse_qfp_counters(found[0].text))
            after.update(parse_qfp_counters(found[-1].text))
        return before, after, twice[0][-1].file
    after = {}
    for o in all_found:
        after.update(parse_qfp_counters(o.text))
    return (dict(baseline) if baseline is not None else None), after, all_found[-1].file


@dataclass(frozen=True)
class _SideFacts:
    side: RouterSide
    sa: SaTable | None
    debug_times: tuple[tuple[EvidenceRef, datetime | None], ...]
    log: _Output | None
    session_text: str | None


def _side(name: str, capture: RouterCapture | None, peer: IPv4Address | IPv6Address, *, armed: bool,
          year: int, files: Mapping[tuple[str, int], str] | None, context: RouterContext | None,
          registry) -> _SideFacts:
    context = context or RouterContext()
    outputs = _outputs(capture, files) if capture is not None else []
    config = _last(outputs, "show running-config")
    config_text = config.text if config is not None else context.running_config
    config_file = config.file if config is not None else (f"{name}: show running-config (agent cache, not in bundle)"
                                                          if context.running_config is not None else None)
    session = _last(outputs, "show crypto session", args=True)
    profile = None
    if config_text is not None:
        profile = classify_config(config_text)
        if session is not None:
            profile = refine_with_session(profile, session.text)

    sa_out = _last(outputs, "show crypto ipsec sa", args=True)
    sa_table = None
    if sa_out is not None:
        records = sa_out.parsed
        if records is None and registry is not None and capture is not None:
            parsed = registry.parse(capture.platform, sa_out.command, sa_out.text)
            records = parsed.records if parsed.template else None
        sa_table = read_ipsec_sa(sa_out.text, records, file=sa_out.file, command=sa_out.command).toward(str(peer))

    log = _last(outputs, "show logging") or _last(outputs, "show logging", filtered=True)
    debug = _debug_lines(log, year) if log is not None else []
    debug_file = log.file if log is not None and (armed or debug) else None

    version_out = _last(outputs, "show version")
    version, family = (read_version(version_out.text, version_out.parsed) if version_out is not None else (None, None))
    version = version or context.software_version
    family = family or context.platform_family
    if family is None and capture is not None:
        family = {"cisco_xe": "IOS-XE", "cisco_ios": "IOS"}.get(capture.platform)

    before, after, qfp_file = _qfp(outputs, context.qfp_baseline)
    nhrp_out, nhrp_entries = _nhrp(outputs)
    side = RouterSide(
        name=name,
        config_text=config_text,
        config_file=config_file,
        profile=profile,
        ipsec_sa_file=sa_table.file if sa_table is not None else None,
        outbound_spis=sa_table.outbound_spis if sa_table is not None else None,
        inbound_spis=sa_table.inbound_spis if sa_table is not None else None,
        debug_file=debug_file,
        debug_lines=tuple(ref for ref, _ in debug) if debug_file else (),
        qfp_file=qfp_file,
        qfp_before=before,
        qfp_after=after,
        software_version=version,
        platform_family=family,
        nhrp_file=nhrp_out.file if nhrp_out is not None else None,
        nhrp_entries=nhrp_entries,
    )
    return _SideFacts(side, sa_table, tuple(debug), log, session.text if session is not None else None)


_DEVICE_REFUSAL = re.compile(r"^\s*(?:% |Command authorization failed)", re.M)


def _nhrp(outputs: Sequence[_Output]) -> tuple[_Output | None, tuple[NhrpEntry, ...] | None]:
    """The NHRP cache as captured: `show ip nhrp [detail]` or `show dmvpn`. An output the
    router refused (`% Invalid input`, authorization failed) counts as not captured, so the
    report never says "no entry" about a table it did not see."""
    found = [o for o in outputs
             if command_matches(o.command, "show ip nhrp") or command_matches(o.command, "show ip nhrp detail")
             or command_matches(o.command, "show dmvpn")]
    if not found or _DEVICE_REFUSAL.search(found[-1].text):
        return None, None
    return found[-1], parse_nhrp(found[-1].text)


def _rekey_near(first: datetime | None, sides: Sequence[tuple[_SideFacts, float | None]],
                rx_offset: float | None) -> bool:
    """An SA was created/installed on either end shortly before the first message
    (compared on the agent's clock, each router's debug stamps shifted by its offset)."""
    if first is None:
        return False
    first_agent = first - timedelta(seconds=rx_offset or 0.0)
    for facts, offset in sides:
        for ref, stamp in facts.debug_times:
            if stamp is None or not _REKEY_MARK.search(ref.text):
                continue
            agent = stamp - timedelta(seconds=offset or 0.0)
            if first_agent - REKEY_WINDOW_BEFORE <= agent <= first_agent + REKEY_WINDOW_AFTER:
                return True
    return False


def _nat_t(tables: Iterable[SaTable | None], sessions: Iterable[str | None]) -> bool | None:
    answers = [t.nat_t for t in tables if t is not None and t.nat_t is not None]
    if answers:
        return any(answers)
    texts = [s for s in sessions if s]
    if texts:
        return any(re.search(r"^\s*Peer:\s*\S+\s+port\s+4500\b", s, re.M) for s in texts)
    return None


def _sender_peer(capture: RouterCapture | None, flow: Flow) -> IPv4Address | IPv6Address | None:
    """The receiver's address as the sender's capture named it, when it is not destaddr
    (NAT-T: the agent found it from the sender's SA with the logged SPI)."""
    try:
        peer = ip_address(capture.peer) if capture is not None and capture.peer else None
    except ValueError:
        return None
    return peer if peer is not None and peer != flow.dst else None


def build_inputs(result: CaptureResult, *, contexts: Mapping[str, RouterContext] | None = None,
                 registry=None, files: Mapping[tuple[str, int], str] | None = None,
                 ) -> tuple[DiagnosisInputs, dict[str, SaTable | None]]:
    """The checks' inputs from a capture, and both ends' SA tables (towards each other)."""
    flow = result.flow
    contexts = contexts or {}
    by_role = {c.role: c for c in result.captures}
    rx_capture = by_role.get("receiver") or next((c for c in result.captures if c.router == flow.router), None)
    tx_capture = by_role.get("sender")
    if tx_capture is None and result.sender is not None:
        tx_capture = next((c for c in result.captures if c.router == result.sender), None)
    year = result.captured_at.year
    rx_name = flow.router
    tx_name = result.sender or (tx_capture.router if tx_capture else f"{flow.src} (not in inventory)")
    rx = _side(rx_name, rx_capture, flow.src, armed=_armed(rx_name, result.actions), year=year, files=files,
               context=contexts.get(rx_name), registry=registry)
    sender_peer = _sender_peer(tx_capture, flow)
    tx = _side(tx_name, tx_capture, sender_peer or flow.dst, armed=_armed(tx_name, result.actions), year=year,
               files=files, context=contexts.get(tx_name), registry=registry)
    occ = _occurrences(flow, rx.log, result.trigger_lines, result.captured_at)
    offsets = {c.router: c.clock_offset for c in result.captures}
    over_gre = _over_gre(rx.sa, tx.sa)
    rx_side, tx_side = replace(rx.side, flow_over_gre=over_gre), replace(tx.side, flow_over_gre=over_gre)
    rx_side = replace(rx_side, peer_ike=_one_ike(side_tunnels(tx_side, sender_peer or flow.dst)[0]))
    tx_side = replace(tx_side, peer_ike=_one_ike(side_tunnels(rx_side, flow.src)[0]))
    inputs = DiagnosisInputs(
        flow=flow,
        receiver=rx_side,
        sender=tx_side,
        occurrences=occ.count,
        occurrence_times=occ.times,
        log_file=rx.log.file if rx.log is not None else None,
        log_lines=occ.refs,
        nat_t=_nat_t((rx.sa, tx.sa), (rx.session_text, tx.session_text)),
        armed_before_repeat=result.armed_before_repeat if result.armed_at is not None else None,
        rekey_near_event=_rekey_near(occ.times[0] if occ.times else None,
                                     ((rx, offsets.get(rx_name)), (tx, offsets.get(tx_name))), offsets.get(rx_name)),
        sender_peer=sender_peer,
    )
    return inputs, {"receiver": rx.sa, "sender": tx.sa}


def _one_ike(tunnels) -> str | None:
    versions = {t.ike_version for t in tunnels} - {"unknown"}
    return versions.pop() if len(versions) == 1 else None


def _over_gre(*tables: SaTable | None) -> bool | None:
    """Whether the SAs between the two ends protect GRE: the protocol field of their proxy
    identities (`198.51.100.1/255.255.255.255/47/0`); None when no table shows one."""
    protocols = [ident.split("/")[2] for table in tables if table is not None for block in table.blocks
                 for ident in (block.local_ident, block.remote_ident) if ident and ident.count("/") == 3]
    return ("47" in protocols) if protocols else None


def diagnose(result: CaptureResult, *, source: str = "capture", contexts: Mapping[str, RouterContext] | None = None,
             registry=None, files: Mapping[tuple[str, int], str] | None = None,
             integrity_problems: Sequence[str] = ()) -> IncidentDiagnosis:
    inputs, tables = build_inputs(result, contexts=contexts, registry=registry, files=files)
    timeline = build_timeline(result.captures, year=result.captured_at.year, pre_arm=result.pre_arm,
                              pre_arm_lines=False)
    meta = IncidentMeta(
        incident_id=result.incident_id,
        source=source,
        captured_at=result.captured_at.isoformat(),
        armed_at=result.armed_at.isoformat() if result.armed_at else None,
        armed_ends={router: at.isoformat() for router, at in result.armed_ends.items()},
        complete=result.complete,
        incomplete_reasons=tuple(result.problems()),
        notes=tuple(result.notes) + tuple(
            f"{router}: {sentence}" for router, track in clock_tracks(result.captures, result.pre_arm).items()
            if (sentence := track.disagreement())) + tuple(ambiguous_time_notes(timeline)),
        sender_in_inventory=result.sender is not None,
        capture_errors={c.router: c.error for c in result.captures if c.error},
        integrity_problems=tuple(integrity_problems),
        disarm=dict(result.disarm),
    )
    return IncidentDiagnosis(inputs, tuple(run_checks(inputs)), tables, timeline, meta)


def diagnose_capture(result: CaptureResult, *, contexts: Mapping[str, RouterContext] | None = None,
                     registry=None) -> tuple[str, dict[str, Any]]:
    """(report.md, report.json data) for `write_incident_bundle(..., report=...)`.

    Never raises: if the diagnosis breaks, the returned report says so and the capture is
    still written. `contexts` (router name -> RouterContext) fills in what the capture
    lacks (e.g. the running-config the agent already read)."""
    try:
        return render_report(diagnose(result, contexts=contexts, registry=registry))
    except Exception as exc:  # noqa: BLE001 - the bundle matters more than its report
        return failed_report(result.incident_id, "capture", f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------------------------
# Bundles on disk


@dataclass(frozen=True)
class LoadedBundle:
    path: Path
    result: CaptureResult
    files: dict[tuple[str, int], str]  # (router, 1-based command index) -> raw file in the bundle
    integrity_problems: tuple[str, ...]


def _inside(root: Path, relpath: str) -> Path | None:
    target = (root / relpath).resolve()
    return target if target.is_relative_to(root) and target.is_file() else None


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _armed_ends(value: Any) -> dict[str, datetime]:
    """The manifest's `armed_ends` (absent from bundles written before it was kept)."""
    ends = {}
    for router, text in (value or {}).items() if isinstance(value, dict) else ():
        try:
            ends[str(router)] = _time(text)
        except ValueError:
            continue  # a hand-edited time: that end's mark is left out, nothing else
    return {router: at for router, at in ends.items() if at is not None}


def load_bundle(path: Path) -> LoadedBundle:
    """Read an incident bundle folder back into the `CaptureResult` it was written from.
    BundleError (one line, naming the path) when it is not a readable incident bundle."""
    path = Path(path)
    root = path.resolve()
    manifest_path = root / "manifest.json"
    if not root.exists():
        raise BundleError(f"{path}: does not exist")
    if not root.is_dir():
        raise BundleError(f"{path}: not a directory (give the bundle folder, not the .tar.gz)")
    if not manifest_path.is_file():
        raise BundleError(f"{path}: not a bundle (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{manifest_path}: unreadable manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "invalid-spi":
        kind = manifest.get("kind") if isinstance(manifest, dict) else None
        raise BundleError(f"{path}: not an invalid-SPI incident bundle (kind: {kind!r})")
    try:
        return _read_bundle(path, root, manifest)
    except BundleError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{manifest_path}: malformed manifest ({type(exc).__name__}: {exc})") from None


def _read_bundle(path: Path, root: Path, manifest: dict[str, Any]) -> LoadedBundle:
    problems: list[str] = []
    for entry in manifest.get("files", []):
        rel = str(entry.get("path", ""))
        target = _inside(root, rel)
        if target is None:
            problems.append(f"{rel}: listed in the manifest but missing")
            continue
        if entry.get("sha256") and hashlib.sha256(target.read_bytes()).hexdigest() != entry["sha256"]:
            problems.append(f"{rel}: changed since the bundle was sealed (sha256 differs)")

    def read_text(rel: str | None) -> str | None:
        if not rel:
            return None
        target = _inside(root, rel)
        return target.read_text(encoding="utf-8", errors="replace") if target is not None else None

    def read_json(rel: str | None) -> list[dict] | None:
        text = read_text(rel)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, list) else None

    f = manifest["flow"]
    flow = Flow(router=str(f["receiver"]), src=ip_address(f["srcaddr"]), dst=ip_address(f["destaddr"]),
                spi=int(f["spi_decimal"]), prot=int(f["prot"]))
    per_router: dict[str, list[CommandResult]] = {}
    files: dict[tuple[str, int], str] = {}
    captured_at = _time(manifest.get("captured_at")) or datetime.now(timezone.utc)
    for c in manifest.get("commands", []):
        router = str(c["router"])
        started = _time(c.get("started")) or captured_at
        record = CommandResult(router=router, command=str(c["command"]), text=read_text(c.get("raw")),
                               parsed=read_json(c.get("parsed")), template=c.get("template"), error=c.get("error"),
                               started=started, ended=_time(c.get("ended")) or started)
        per_router.setdefault(router, []).append(record)
        if c.get("raw"):
            files[(router, len(per_router[router]))] = str(c["raw"])
    captures = []
    sender = None
    for r in manifest.get("routers", []):
        name = str(r["name"])
        if r.get("role") == "sender":
            sender = name
        captures.append(RouterCapture(router=name, role=str(r.get("role", "")), platform=str(r.get("platform", "")),
                                      peer=str(r.get("peer") or r.get("debug_condition_peer") or ""),
                                      commands=tuple(per_router.get(name, ())),
                                      clock_offset=r.get("clock_offset_seconds"), error=r.get("error"),
                                      site=r.get("site"), worker=r.get("site_worker")))
    result = CaptureResult(
        incident_id=str(manifest.get("incident", path.name)),
        flow=flow,
        trigger_lines=tuple(str(x) for x in manifest.get("trigger_lines", [])),
        captures=tuple(captures),
        armed_at=_time(manifest.get("armed_at")),
        armed_ends=_armed_ends(manifest.get("armed_ends")),
        captured_at=captured_at,
        armed_before_repeat=bool(manifest.get("armed_before_repeat")),
        sender=sender if manifest.get("sender_in_inventory", sender is not None) else None,
        notes=tuple(str(x) for x in manifest.get("notes", [])),
        actions=tuple(a for a in manifest.get("router_changes", []) if isinstance(a, dict)),
        disarm={str(k): str(v) for k, v in (manifest.get("disarm_verification") or {}).items()},
        incomplete=tuple(str(x) for x in manifest.get("incomplete_reasons", [])),
        pre_arm=tuple(_pre_arm_reads(manifest, read_text)),
    )
    return LoadedBundle(path, result, files, tuple(problems))


def _pre_arm_reads(manifest: dict[str, Any], read_text) -> list[LogSnapshot]:
    """Each router's log (and clock) as read before arming, where the bundle holds it."""
    snapshots = []
    for item in manifest.get("pre_arm_reads") or []:
        text = read_text(item.get("file")) if isinstance(item, dict) else None
        read_at = _time(item.get("read_at")) if text is not None else None
        if read_at is not None:
            snapshots.append(LogSnapshot.read_back(str(item.get("router")), text, read_at, item.get("clock")))
    return snapshots


def diagnose_bundle(path: Path, *, registry=None) -> tuple[str, dict[str, Any]]:
    """(report.md, report.json data) for a bundle folder, read offline. Raises BundleError
    for a path that is not an incident bundle; the bundle is only read."""
    loaded = load_bundle(path)
    diagnosis = diagnose(loaded.result, source=f"bundle {loaded.path.name}", registry=registry, files=loaded.files,
                         integrity_problems=loaded.integrity_problems)
    return render_report(diagnosis)

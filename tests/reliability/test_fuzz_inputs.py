"""Bad input, fuzzed with hypothesis: files an engineer writes, lines a network sends,
outputs a router prints. Nothing crashes; nothing unvalidated reaches a router command.

* inventory and playbook YAML: any text gives either a loaded object or one clear line
  (`file:line: message`), never a traceback, also through the `collector` command;
* syslog datagrams and log lines: parsed or dropped, never raised on; whatever survives
  parsing is typed (ipaddress objects, a 32-bit SPI, ESP/AH) and the arm plan built from
  it holds only commands of a fixed grammar;
* device output: the session reader survives garbage, truncation, a `--More--` pager and
  prompts it did not expect (a timeout, not a hang); the facts read before arming either
  come out valid or refuse to arm.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import sys
import time
from datetime import datetime, timedelta, timezone
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from collector import sessions
from collector.demo import demo_playbook
from collector.detect.logline import (
    parse_invalid_spi,
    parse_log_line,
    parse_syslog_datagram,
)
from collector.detect.syslog_receiver import MAX_DATAGRAM, SyslogReceiver
from collector.hostkeys import KnownHosts
from collector.inventory import InventoryError, load_inventory
from collector.parsing import default_registry
from collector.playbook import PlaybookError, load_playbook
from collector.resources import playbooks_dir
from collector.respond.facts import (
    PreflightRefused,
    parse_logging_settings,
    preflight,
    read_profile,
)
from collector.respond.plan import (
    LEVELS,
    PlanError,
    RouterFacts,
    build_arm_plan,
    logging_steps,
)
from collector.clocks import clock_offset
from collector.command_results import CommandResult
from collector.sessions import (
    CommandTimeout,
    SessionDropped,
    SessionError,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2024, 11, 27, 10, 0, tzinfo=timezone.utc)

VALID_INVENTORY = """\
defaults:
  username: lab
  password: lab-secret-1
  secret: en-secret-1
  connection_options: {host_key_policy: tofu, retries: 1}
groups:
  hubs: {data: {role: hub}}
hosts:
  hub1:
    hostname: 127.0.0.1
    port: 20001
    platform: cisco_xe
    groups: [hubs]
    addresses: [198.51.100.1, 10.255.0.1]
  spoke1:
    hostname: 127.0.0.1
    port: 20002
    platform: cisco_ios
    addresses: [192.0.2.3]
"""
VALID_PLAYBOOK = (playbooks_dir() / "invalid-spi.yaml").read_text()
VALID_LINE = ("*Nov 27 10:00:00.123: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
              "destaddr=198.51.100.1, prot=50, spi=0xB4251D61(3022331233), srcaddr=192.0.2.3")

# Every command the agent may send while arming, with typed values in the slots.
_LEVEL = "(?:" + "|".join(LEVELS) + ")"
_IP = r"[0-9A-Fa-f.:]+"
# Disarming restores the router's own `logging buffered` line as running-config shows it
# (issue 16 item 2): size and level may each be absent, a discriminator or xml may be there.
_LEVEL_OR_NUMBER = "(?:" + "|".join(LEVELS) + "|[0-7])"
_BUFFERED = rf"logging buffered(?: xml| discriminator [A-Za-z0-9_-]{{1,32}})?(?: \d+)?(?: {_LEVEL_OR_NUMBER})?"
COMMAND_GRAMMAR = re.compile(
    "|".join((
        _BUFFERED, r"no logging buffered", rf"(?:no )?logging (?:console|monitor)(?: {_LEVEL})?",
        r"event manager applet COLLECTOR_DEADMAN_[A-Z0-9]{1,14}",
        r" event timer countdown time \d+ maxrun \d+",
        r' action \d{3} cli command "(?:enable|configure terminal|end|no event manager applet COLLECTOR_DEADMAN_[A-Z0-9]{1,14}'
        rf'|{_BUFFERED}|no logging buffered|logging (?:console|monitor) {_LEVEL}'
        rf'|no debug crypto (?:isakmp|ikev2|ipsec)|no debug crypto condition peer ipv[46] {_IP}'
        r')"',
        r"no event manager applet COLLECTOR_DEADMAN_[A-Z0-9]{1,14}",
        rf"(?:no )?debug crypto condition peer ipv[46] {_IP}", r"(?:no )?debug crypto (?:isakmp|ikev2|ipsec)",
    ))
)


def _one_line_naming(message: str, path: Path) -> None:
    assert "\n" not in message and message.strip() == message and message
    assert message.startswith(str(path)) or message.startswith("host "), message
    assert "Traceback" not in message


def _cli(*argv: str) -> tuple[int, str]:
    """`collector ...` in this process, as `main()` runs it: (exit status, stderr)."""
    from collector.cli import main

    err = io.StringIO()
    old = sys.argv
    sys.argv = ["collector", *argv]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    return code, err.getvalue()


# -- text edits that turn a valid file into a broken one ---------------------------------------

_edit = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 40)),
    st.tuples(st.just("insert"), st.integers(0, 10_000),
              st.sampled_from([":", "-", " ", "\t", "\n", "[", "{", "}", "'", '"', "&a", "*a", "!!python/object:os.system",
                               "\ufeff", "%", "@", "? ", "|", ">", "0x", "999999999999999999999", "\udcff"])),
    st.tuples(st.just("dup"), st.integers(0, 10_000), st.integers(1, 5)),
)


def _apply(text: str, edits: list[tuple]) -> str:
    for kind, at, arg in edits:
        at %= max(1, len(text))
        if kind == "delete":
            text = text[:at] + text[at + arg:]
        elif kind == "insert":
            text = text[:at] + arg + text[at:]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                i = at % len(lines)
                text = "".join(lines[: i + 1] + lines[i: i + arg] + lines[i + 1:])
    return text


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["cisco_ios", "cisco_xe", "tofu", "127.0.0.1", "::1",
                                                           "${HOME}", "keyring:a/b", "prompt", "999.1.1.1"]))
_tree = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                     max_leaves=20)
_keys = st.sampled_from(["hosts", "groups", "defaults", "hostname", "port", "platform", "username", "password",
                         "secret", "groups", "addresses", "connection_options", "data", "site", "retries",
                         "host_key_policy", "proxy_jump", "netmiko", "extras", "r1", "hub1"])
_shaped = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(_keys, inner, max_size=5)), max_leaves=25)


def _write(folder: Path, name: str, body: str | bytes) -> Path:
    path = folder / name
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    path.write_bytes(body)
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# -- inventory ---------------------------------------------------------------------------------


@FUZZ
@given(edits=st.lists(_edit, min_size=1, max_size=4))
def test_inventory_edits_load_or_fail_with_one_clear_line(work, edits):
    path = _write(work, "inventory.yaml", _apply(VALID_INVENTORY, edits))
    try:
        load_inventory(path, resolve_credentials=False)
    except InventoryError as exc:
        _one_line_naming(str(exc), path)


@FUZZ
@given(doc=st.one_of(_shaped, st.dictionaries(st.sampled_from(["hosts", "groups", "defaults"]), _shaped, min_size=1)))
def test_inventory_of_any_shape_loads_or_fails_with_one_clear_line(work, doc):
    path = _write(work, "shaped.yaml", yaml.safe_dump(doc, allow_unicode=False))
    try:
        load_inventory(path, resolve_credentials=False)
    except InventoryError as exc:
        _one_line_naming(str(exc), path)


def _yaml_printable(body: bytes) -> bool:
    """PyYAML refuses control characters before parsing starts; that case has its own test."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return True  # reported as "not UTF-8 text"
    return not re.search("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]", text)


@FUZZ
@given(body=st.binary(max_size=300))
def test_inventory_of_random_bytes_fails_cleanly(work, body):
    assume(_yaml_printable(body))
    path = _write(work, "bytes.yaml", body)
    try:
        load_inventory(path, resolve_credentials=False)
    except InventoryError as exc:
        _one_line_naming(str(exc), path)


@settings(max_examples=25, deadline=None)
@given(edits=st.lists(_edit, min_size=1, max_size=3))
def test_inventory_check_command_never_prints_a_traceback(work, edits):
    path = _write(work, "cli-inventory.yaml", _apply(VALID_INVENTORY, edits))
    code, err = _cli("inventory", "--check", "-i", str(path))
    assert "Traceback" not in err
    if code != 0:
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("collector: error: "), err


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f"], ids=["NUL", "BEL", "ESC", "DEL"])
@pytest.mark.parametrize("kind", ["inventory", "playbook"])
def test_a_control_character_in_a_file_is_one_clear_line(work, kind, char):
    if kind == "inventory":
        path = _write(work, f"ctl-{ord(char)}.yaml", VALID_INVENTORY.replace("hub1:", "hub1" + char + ":"))
        code, err = _cli("inventory", "--check", "-i", str(path))
    else:
        path = _write(work, f"ctl-{ord(char)}-pb.yaml", VALID_PLAYBOOK.replace("name: invalid-spi", "name: x" + char))
        inventory = _write(work, "ctl-inventory.yaml", VALID_INVENTORY)
        code, err = _cli("watch", "--once", "-i", str(inventory), "--playbook", str(path),
                         "--state", str(work / "ctl-state"), "--out", str(work / "ctl-out"))
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(path) in err


# -- playbook ----------------------------------------------------------------------------------


@FUZZ
@given(edits=st.lists(_edit, min_size=1, max_size=4))
def test_playbook_edits_load_or_fail_with_one_clear_line(work, edits):
    path = _write(work, "playbook.yaml", _apply(VALID_PLAYBOOK, edits))
    try:
        load_playbook(path)
    except PlaybookError as exc:
        _one_line_naming(str(exc), path)


@FUZZ
@given(doc=_shaped, name=st.sampled_from(["trigger", "arm", "capture", "guards", "sources", "occurs", "within",
                                           "window", "remediate", "logging", "cooldown", "verify"]))
def test_playbook_sections_of_any_shape_fail_cleanly(work, doc, name):
    data = yaml.safe_load(VALID_PLAYBOOK)
    data[name] = doc
    path = _write(work, "shaped-playbook.yaml", yaml.safe_dump(data))
    try:
        load_playbook(path)
    except PlaybookError as exc:
        _one_line_naming(str(exc), path)


@settings(max_examples=25, deadline=None)
@given(edits=st.lists(_edit, min_size=1, max_size=3))
def test_watch_with_a_broken_playbook_exits_with_one_line(work, edits):
    playbook = _write(work, "cli-playbook.yaml", _apply(VALID_PLAYBOOK, edits))
    inventory = _write(work, "cli-good-inventory.yaml", VALID_INVENTORY)
    try:
        load_playbook(playbook)
    except PlaybookError:
        pass
    else:
        assume(False)  # still valid: running it would start a real agent
    code, err = _cli("watch", "--once", "-i", str(inventory), "--playbook", str(playbook),
                     "--state", str(work / "cli-state"), "--out", str(work / "cli-out"))
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and str(playbook) in err, err


# -- syslog datagrams and log lines --------------------------------------------------------------

HOSTILE = [
    VALID_LINE.replace("srcaddr=192.0.2.3", "srcaddr=10.0.0.1; reload"),
    VALID_LINE.replace("srcaddr=192.0.2.3", "srcaddr=10.0.0.1\nreload"),
    VALID_LINE.replace("srcaddr=192.0.2.3", "srcaddr=10.0.0.1\r\nconfigure terminal"),
    VALID_LINE.replace("srcaddr=192.0.2.3", "srcaddr=10.0.0.1 | include x"),
    VALID_LINE.replace("srcaddr=192.0.2.3", "srcaddr=$(reload)"),
    VALID_LINE.replace("srcaddr=192.0.2.3", "srcaddr=999.0.2.3"),
    VALID_LINE.replace("srcaddr=192.0.2.3", "srcaddr=0.0.0.0"),
    VALID_LINE.replace("srcaddr=192.0.2.3", "srcaddr=224.0.0.5"),
    VALID_LINE.replace("srcaddr=192.0.2.3", "srcaddr=fe80::1%eth0"),
    VALID_LINE.replace("srcaddr=192.0.2.3", 'srcaddr=192.0.2.3"'),
    VALID_LINE.replace("spi=0xB4251D61(3022331233)", "spi=0x" + "9" * 200 + "(" + "9" * 200 + ")"),
    VALID_LINE.replace("spi=0xB4251D61(3022331233)", "spi=0x1FFFFFFFF(8589934591)"),
    VALID_LINE.replace("spi=0xB4251D61(3022331233)", "spi=0xB4251D61(12)"),
    VALID_LINE.replace("prot=50", "prot=6"),
    VALID_LINE.replace("prot=50", "prot=50; reload"),
    VALID_LINE.replace("destaddr=198.51.100.1", "destaddr=198.51.100.1 reload"),
    VALID_LINE + ", input interface=Tunnel0; reload",
    VALID_LINE.replace("srcaddr=192.0.2.3", "srcaddr=192.0.2.3\x00reload"),
    VALID_LINE + " " * 5000 + "x",
    VALID_LINE.replace("10:00:00.123", "10:00:00.123" + "0" * 100_000),
]


def _check_event_is_typed(event, line: str) -> None:
    flow = event.flow
    assert isinstance(flow.src, (IPv4Address, IPv6Address)) and isinstance(flow.dst, (IPv4Address, IPv6Address))
    assert 0 <= flow.spi <= 0xFFFFFFFF and flow.prot in (50, 51)
    assert ip_address(str(flow.src)) == flow.src
    for address in (flow.src, flow.dst):
        assert not (address.is_unspecified or address.is_multicast)
    # Whatever plan is built from it holds only commands of the fixed grammar.
    book = demo_playbook()
    for os_family, ike in (("ios", "isakmp"), ("iosxe", "ikev2")):
        facts = RouterFacts("hub1", "cisco_xe", os_family, ike, parse_logging_settings(
            "Buffer logging:  level informational, 12 messages logged\nLog Buffer (8192 bytes):"))
        plan = build_arm_plan(book, facts, flow.src, "20241127T100000abcdef", timedelta(minutes=10))
        for step in plan.steps:
            for command in (*step.do, *step.undo):
                assert COMMAND_GRAMMAR.fullmatch(command), command
        for command in plan.capture:
            assert command.startswith("show ") and ";" not in command and "\n" not in command


@pytest.mark.parametrize("line", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_invalid_spi_lines_are_refused(line):
    assert parse_invalid_spi(line, router="hub1", source="poll", received_at=NOW, year=2024) is None
    datagram = ("<164>12: " + line).encode("utf-8", "replace")
    parsed = parse_syslog_datagram(datagram)
    if parsed is not None:
        assert parse_invalid_spi(parsed.raw, router="hub1", source="syslog", received_at=NOW, year=2024) is None


def test_the_valid_line_passes_and_is_typed():
    event = parse_invalid_spi(VALID_LINE, router="hub1", source="poll", received_at=NOW, year=2024)
    assert event is not None and str(event.flow.src) == "192.0.2.3" and event.flow.spi == 0xB4251D61
    _check_event_is_typed(event, VALID_LINE)


_fields = st.fixed_dictionaries({
    "dst": st.one_of(st.ip_addresses().map(str), st.text(max_size=50)),
    "src": st.one_of(st.ip_addresses().map(str), st.text(max_size=50)),
    "prot": st.one_of(st.sampled_from(["50", "51"]), st.text(max_size=6)),
    "hex": st.one_of(st.integers(0, 2**40).map(lambda n: f"{n:X}"), st.text(max_size=12)),
    "dec": st.one_of(st.integers(0, 2**40).map(str), st.text(max_size=12)),
    "tail": st.one_of(st.just(""), st.text(max_size=40)),
})


@FUZZ
@given(f=_fields)
@example(f={"dst": "198.51.100.1", "src": "192.0.2.3", "prot": "50", "hex": "B4251D61", "dec": "3022331233", "tail": ""})
def test_any_invalid_spi_line_is_parsed_into_typed_values_or_dropped(f):
    line = ("*Nov 27 10:00:00.123: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
            f"destaddr={f['dst']}, prot={f['prot']}, spi=0x{f['hex']}({f['dec']}), srcaddr={f['src']}{f['tail']}")
    event = parse_invalid_spi(line, router="hub1", source="poll", received_at=NOW, year=2024)
    if event is not None:
        _check_event_is_typed(event, line)
        assert int(f["hex"], 16) == int(f["dec"]) == event.flow.spi


@FUZZ
@given(data=st.one_of(st.binary(max_size=MAX_DATAGRAM + 100),
                      st.text(max_size=400).map(lambda t: ("<13>" + t).encode("utf-8", "surrogatepass")),
                      st.binary(max_size=200).map(lambda b: VALID_LINE.encode()[:60] + b + VALID_LINE.encode()[60:])))
def test_any_datagram_is_parsed_or_dropped_never_raised(data):
    line = parse_syslog_datagram(data)
    if line is not None:
        event = parse_invalid_spi(line.raw, router="hub1", source="syslog", received_at=NOW, year=2024)
        if event is not None:
            _check_event_is_typed(event, line.raw)


@FUZZ
@given(text=st.text(max_size=2000))
def test_any_log_text_is_parsed_or_dropped(text):
    parse_log_line(text, year=2024)
    parse_invalid_spi(text, router="hub1", source="poll", received_at=NOW, year=2024)


def test_receiver_survives_hostile_datagrams_and_hands_over_bounded_hints():
    """Binary, oversized, non-UTF-8 and forged datagrams through a real UDP socket."""
    hints = []
    receiver = SyslogReceiver("127.0.0.1", 0, lambda ip: "hub1" if ip == "127.0.0.1" else None, hints.append,
                              queue_size=50).start()
    try:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        payloads = [b"\xff\xfe" * 2000, b"", b"\x00" * 100, (VALID_LINE * 200).encode(), *(
            line.encode("utf-8", "replace") for line in HOSTILE)]
        payloads += [b"RECVD_PKT_INV_SPI" + bytes(range(256)) * 200]  # > MAX_DATAGRAM: truncated by the receiver
        for payload in payloads:
            sender.sendto(payload[:65000], receiver.address)
        sender.close()
        assert _wait(lambda: receiver.stats.received >= len(payloads) - 1, 10)
    finally:
        receiver.stop()
    assert all(len(h.data) <= MAX_DATAGRAM for h in hints)
    assert receiver.stats.queued + receiver.stats.dropped_full + receiver.stats.ignored <= receiver.stats.received


def _wait(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# -- device output -----------------------------------------------------------------------------


class _FakeChannel:
    """The paramiko channel a router session reads from, scripted per command."""

    def __init__(self, script):
        self.script = script  # command -> list of byte chunks (the echo is added here)
        self.sent: list[bytes] = []
        self.queue: list[bytes] = []
        self.closed = False
        self._timeout = 0.0

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)
        for command in data.decode().split("\n")[:-1]:  # lines typed ahead are answered one by one
            self.queue += [command.encode() + b"\r\n", *self.script(command)]

    def settimeout(self, seconds: float) -> None:
        self._timeout = seconds

    def recv(self, size: int) -> bytes:
        if self.queue:
            chunk = self.queue.pop(0)
            if chunk is _CLOSE:
                self.closed = True
                return b""
            return chunk
        time.sleep(min(self._timeout, 0.005))
        raise socket.timeout()

    def recv_ready(self) -> bool:
        return bool(self.queue) and self.queue[0] is not _CLOSE

    def get_transport(self):
        return self if not self.closed else None

    def is_active(self) -> bool:
        return not self.closed

    def close(self) -> None:
        self.closed = True


_CLOSE = object()


def _scripted_session(monkeypatch, script, prompt_name: str = "R1"):
    """A DeviceSession whose netmiko connection is replaced by a scripted channel. The login
    (first prompt, `terminal width`, `terminal length`) is answered with the bare prompt;
    every other command by `script`."""
    def answer(command):
        if command in ("terminal width 511", "terminal length 0"):
            return [f"{prompt_name}#".encode()]
        return script(command)

    channel = _FakeChannel(answer)
    channel.queue.append(f"\r\n{prompt_name}#".encode())  # the first prompt after login

    class _Driver:
        def __init__(self, *args, **kwargs):
            self.base_prompt = prompt_name
            self.remote_conn = channel

        def check_enable_mode(self):
            return True

        def _modify_connection_params(self):  # the session opens the channel itself (no netmiko sleeps)
            pass

        def establish_connection(self):
            pass

        def disconnect(self):
            channel.close()

    monkeypatch.setattr(sessions.device, "_HostKeyCheckedIos", _Driver)
    inventory = load_inventory(_write(Path(_scripted_session.folder), "inv.yaml", VALID_INVENTORY))
    host = inventory.hosts["hub1"]
    session = sessions.DeviceSession(host, KnownHosts(Path(_scripted_session.folder) / "kh"))
    session.open()
    return session, channel


@pytest.fixture(autouse=True)
def _scripted_folder(work):
    _scripted_session.folder = str(work)


_chunking = st.lists(st.integers(1, 64), min_size=1, max_size=30)


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at, i = [], 0, 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        out.append(data[at:at + size])
        at += size
        i += 1
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.text(st.characters(blacklist_categories=["Cc", "Cs"]), max_size=60), max_size=20),
       pages=st.lists(st.integers(0, 19), max_size=4), sizes=_chunking)
def test_output_with_pager_and_any_chunking_comes_back_whole(monkeypatch, lines, pages, sizes):
    body = ""
    for i, line in enumerate(lines):
        body += line + "\r\n"
        if i in pages:
            body += " --More-- \x08\x08\x08\x08\x08\x08\x08\x08\x08\x08          \x08\x08\x08\x08\x08\x08\x08\x08\x08\x08"
    wire = (body + "R1#").encode()
    session, channel = _scripted_session(monkeypatch, lambda c: _split(wire, sizes))
    text = session.run("show logging", read_timeout=0.5).text
    assert "--More--" not in text
    expected = "".join(line.strip(" ") + "\n" for line in lines)
    assert [l.strip(" ") for l in text.splitlines()] == [l.strip(" ") for l in expected.splitlines()]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=3000), sizes=_chunking, ending=st.sampled_from(
    [b"R1#", b"R1(config)#", b"R1(config-if)#", b"", b"Password: ", b"[confirm]", b"R2#", b"\r\nR1>"]))
def test_garbage_and_unexpected_prompts_end_in_output_or_a_session_error(monkeypatch, garbage, sizes, ending):
    session, channel = _scripted_session(monkeypatch, lambda c: _split(garbage + ending, sizes))
    try:
        out = session.run("show crypto ipsec sa", read_timeout=0.15, check=False)
    except SessionError as exc:
        assert isinstance(exc, (CommandTimeout, SessionDropped)), repr(exc)
        assert exc.output is not None
    else:
        assert isinstance(out.text, str)


def test_output_cut_by_a_closed_session_is_a_dropped_error_with_what_arrived(monkeypatch):
    session, channel = _scripted_session(monkeypatch, lambda c: [b"Crypto ISAKMP debugging is on\r\n", b"Crypto IP", _CLOSE])
    with pytest.raises(SessionDropped) as dropped:
        session.run("show debugging", read_timeout=2)
    assert "Crypto ISAKMP debugging is on" in dropped.value.output
    assert not session.is_open


class _ScriptedShow:
    """A read-only session for the pre-flight readers: every command prints `text`."""

    def __init__(self, text: str):
        self.text = text
        self.host = type("H", (), {"name": "hub1"})()
        self.sent: list[str] = []

    def run(self, command: str, *, read_timeout=None, check: bool = True) -> CommandResult:
        self.sent.append(command)
        return CommandResult(self.host.name, command, self.text, NOW, NOW)

    def run_many(self, commands, *, read_timeout=None) -> list[CommandResult]:
        return [self.run(command, check=False) for command in commands]


_device_text = st.one_of(
    st.text(max_size=1500),
    st.sampled_from(["Buffer logging:  level informational, 1 messages logged\nLog Buffer (0 bytes):",
                     "Buffer logging:  level reload; informational\nLog Buffer (4096 bytes):",
                     "Buffer logging:  level debugging, 1 messages logged\nLog Buffer (99999999999999999999 bytes):",
                     "Console logging: level informational; reload\nMonitor logging: level debugging",
                     "CPU utilization for five seconds: 999%/0%; one minute: 5%; five minutes: 7%",
                     "Crypto ISAKMP debugging is on\nIP routing debugging is on",
                     "*10:00:00.000 UTC Wed Feb 31 2024", "25:61:61.9999 UTC Mon Xyz 99 0000"]),
    st.lists(st.sampled_from(["Console logging: level debugging", "Monitor logging: disabled",
                              "Buffer logging:  level warnings, 5 messages logged", "Log Buffer (16384 bytes):",
                              "Log Buffer (1 bytes):", "Buffer logging: level emergencies", "garbage \x00\xff",
                              "CPU utilization for five seconds: 3%/1%; one minute: 2%; five minutes: 61%",
                              "Cisco IOS XE Software, Version 17.3.4a", "cisco ISR4451-X/K9 (2RU) processor"]),
             max_size=10).map("\n".join),
)


@FUZZ
@given(text=_device_text)
def test_preflight_readers_give_valid_facts_or_refuse(text):
    try:
        settings_ = parse_logging_settings(text)
    except PlanError:
        settings_ = None
    if settings_ is not None:
        for step in logging_steps(demo_playbook(), settings_) if settings_.buffered_level is None or \
                settings_.buffered_size is not None else ():
            for command in (*step.do, *step.undo):
                assert COMMAND_GRAMMAR.fullmatch(command), command
    try:
        checked = preflight(_ScriptedShow(text), cpu_max_percent=60, cpu_measure="five_minutes", refuse_foreign=True)
    except (PreflightRefused, PlanError):
        pass
    else:
        assert checked.cpu_percent["five_minutes"] <= 60
    offset = clock_offset(text, NOW, NOW)
    assert offset is None or isinstance(offset, float)


@settings(max_examples=60, deadline=None)
@given(text=_device_text)
def test_profile_reader_survives_any_output(text):
    profile = read_profile(_ScriptedShow(text), default_registry(), platform="cisco_xe")
    assert profile.os_family in ("ios", "iosxe")
    assert all(isinstance(a, (IPv4Address, IPv6Address)) for a in profile.addresses)
    assert profile.ike_toward(ip_address("192.0.2.3")) in ("isakmp", "ikev2")


# -- on the lab: hostile lines in a router's log and on the syslog port ------------------------


@pytest.mark.e2e
def test_hostile_lines_on_the_lab_never_reach_a_router_command(tmp_path, monkeypatch):
    """Hostile invalid-SPI lines are written into the receiver's own log buffer (so the SSH
    poll reads them) and also arrive as syslog datagrams from its address; the real
    desync flow is handled at the same time. Every command the agent sends is recorded."""
    from reliability_lab import (
        agent_running,
        both_armed,
        bundles,
        desync_ends,
        first_line,
        repeat_line,
        wait_for,
    )

    from collector.lab.runner import running_lab

    sent: list[tuple[str, str]] = []
    read: list[str] = []
    original = sessions.DeviceSession.run

    def spy(self, command, **kwargs):
        sent.append((self.host.name, command))
        out = original(self, command, **kwargs)
        if command == "show logging":
            read.append(out.text)
        return out

    monkeypatch.setattr(sessions.DeviceSession, "run", spy)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    # The message part, without the time stamp. A line with a newline in it would become
    # two records in the router's buffer, the first of them a well-formed line: left out.
    hostile = [line.split(": ", 1)[1] for line in HOSTILE[:17] if "\n" not in line]
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab", syslog_to=("127.0.0.1", port)) as lab:
        receiver, sender = desync_ends(lab)
        model = lab.fleet.routers[receiver]

        def log_hostile() -> None:
            for text in hostile:
                model.log.emit(model.at(model.now()), 4, text)

        with agent_running(lab, tmp_path, syslog=("127.0.0.1", port)) as agent:
            assert wait_for(lambda: any("syslog receiver on" in m for m in agent.messages), 30)
            lab.call(log_hostile)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((model.syslog_source, 0))
            for line in HOSTILE:
                udp.sendto(("<164>99: " + line).encode("utf-8", "replace")[:60000], ("127.0.0.1", port))
            udp.close()
            first_line(lab)
            assert wait_for(lambda: both_armed(tmp_path / "state"), 60), (agent.messages, agent.error)
            lab.call(log_hostile)
            repeat_line(lab)
            # the receiver of the default lab is the hub with a full 10 MB buffer: the capture
            # reads it whole and disarming restores it, which takes over a minute on a loaded machine
            assert wait_for(lambda: bundles(tmp_path / "bundles"), 150), (agent.messages, agent.error)
        assert agent.error is None
    assert any("srcaddr=$(reload)" in text and "9" * 200 in text for text in read), "the poll never read them"
    peers = {str(a) for name in (receiver, sender) for a in lab.fleet.routers[name].addresses}
    for router, command in sent:
        assert "reload" not in command and "$(" not in command and "9" * 20 not in command, command
        assert ";" not in command and "\x00" not in command, command
        if "condition peer" in command:
            assert command.split()[-1].strip('"') in peers, command
        if not command.startswith(("show ", "configure terminal", "end")):
            assert COMMAND_GRAMMAR.fullmatch(command), command
    with StateStoreFor(tmp_path) as store:
        keys = {i.key for i in store.incidents()}
        assert len(keys) == 1, keys  # only the real flow
        assert all("10.0.0.1" not in e.key and "999" not in e.key for e in store.events())


def StateStoreFor(tmp_path: Path):
    from collector.state import StateStore

    return StateStore(tmp_path / "state" / "state.db")


# -- special files, huge values, huge inventories: one line, exit 2, never a hang ------------------

SIMPLE_INVENTORY = "defaults: {username: u, password: p, platform: cisco_ios}\nhosts:\n  r1: {hostname: 127.0.0.1, port: 9}\n"


def _special(kind: str, folder: Path) -> Path:
    """A path of the given kind: a device that never ends, a FIFO nobody writes, a path
    this user may not read (root reads any file: then a /proc file the kernel refuses)."""
    import os

    if kind == "dev-zero":
        return Path("/dev/zero")
    if kind == "fifo":
        path = folder / f"fifo-{time.monotonic_ns()}"
        os.mkfifo(path)
        return path
    if kind == "folder":
        path = folder / f"dir-{time.monotonic_ns()}"
        path.mkdir()
        return path
    path = folder / f"unreadable-{time.monotonic_ns()}.yaml"
    path.write_text(SIMPLE_INVENTORY)
    path.chmod(0)
    return path if not os.access(path, os.R_OK) else Path("/proc/1/mem")


def _one_line_exit_2(argv: list[str], seconds: float = 30) -> str:
    started = time.monotonic()
    code, err = _cli(*argv)
    assert time.monotonic() - started < seconds, "took too long: a hang on a special file?"
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "folder", "unreadable"])
@pytest.mark.parametrize("role", ["inventory", "playbook"])
def test_a_special_file_as_inventory_or_playbook_is_one_line(work, kind, role):
    path = _special(kind, work)
    inventory = _write(work, "simple.yaml", SIMPLE_INVENTORY)
    argv = (["inventory", "--check", "-i", str(path)] if role == "inventory" else
            ["watch", "--once", "--dry-run", "-i", str(inventory), "--playbook", str(path),
             "--state", str(work / "st"), "--out", str(work / "out")])
    line = _one_line_exit_2(argv)
    assert str(path) in line
    assert any(w in line for w in ("not a regular file", "directory", "permission denied", "no hosts.yaml")), line


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "file", "unwritable"])
@pytest.mark.parametrize("command", ["watch", "incidents", "disarm"])
def test_a_state_path_that_is_not_a_usable_folder_is_one_line(work, kind, command):
    import os

    if kind == "file":
        path = _write(work, "a-file", "x")
    elif kind == "unwritable":
        path = work / f"ro-{time.monotonic_ns()}"
        path.mkdir()
        path.chmod(0o500)
        if os.access(path, os.W_OK):  # root: a folder the kernel will not let even root write
            path = Path("/proc/1/fdinfo")
    else:
        path = _special(kind, work)
    inventory = _write(work, "simple.yaml", SIMPLE_INVENTORY)
    argv = {"watch": ["watch", "--once", "-i", str(inventory), "--state", str(path), "--out", str(work / "out")],
            "incidents": ["incidents", "--state", str(path)],
            "disarm": ["disarm", "--all", "-i", str(inventory), "--state", str(path)]}[command]
    line = _one_line_exit_2(argv)
    assert line.startswith(f"collector: error: --state {path}: not "), line


@pytest.mark.parametrize("value", ["100000000000h", "99999999999999999999999m", "9000h", "31622401s",
                                   "999999999999999999999999999999h59m59s"])
@pytest.mark.parametrize("key", ["within", "window", "max_window"])
def test_a_huge_duration_is_one_line_naming_its_line(work, key, value):
    text = (playbooks_dir() / "invalid-spi.yaml").read_text()
    text = re.sub(rf"^{key}: .*$", f"{key}: {value}", text, count=1, flags=re.M)
    playbook = _write(work, f"huge-{key}.yaml", text)
    line = _one_line_exit_2(["watch", "--once", "--dry-run", "-i", str(_write(work, "simple.yaml", SIMPLE_INVENTORY)),
                             "--playbook", str(playbook), "--state", str(work / "st"), "--out", str(work / "out")])
    assert line.startswith(f"collector: error: {playbook}:") and "longer than 366 days" in line, line


@pytest.mark.parametrize("stamp", ["2024-02-30", "2024-13-01", "2023-02-29T10:00:00Z", "2024-01-01 25:00:00",
                                   "0000-01-01", "2024-04-31t23:59:59.5+02:00"])
@pytest.mark.parametrize("where", ["inventory", "playbook"])
def test_a_malformed_yaml_timestamp_is_one_line_naming_its_line(work, stamp, where):
    if where == "inventory":
        path = _write(work, "ts-inv.yaml", SIMPLE_INVENTORY.replace("port: 9}", "port: 9, data: {since: " + stamp + "}}"))
        argv, line_no = ["inventory", "--check", "-i", str(path)], 3
    else:
        text = (playbooks_dir() / "invalid-spi.yaml").read_text()
        text = text.replace("name: invalid-spi\n", f"name: invalid-spi\nreviewed: {stamp}\n", 1)
        path = _write(work, "ts-pb.yaml", text)
        line_no = text.splitlines().index(f"reviewed: {stamp}") + 1
        argv = ["watch", "--once", "--dry-run", "-i", str(_write(work, "simple.yaml", SIMPLE_INVENTORY)),
                "--playbook", str(path), "--state", str(work / "st"), "--out", str(work / "out")]
    line = _one_line_exit_2(argv)
    assert line == f"collector: error: {path}:{line_no}: {stamp!r} is not a valid timestamp " + line.split("timestamp ", 1)[1]
    assert "quote it to keep it as text" in line


def test_a_60000_host_inventory_loads(work):
    """No talk of aliases the file does not have, and no quadratic look-up of host lines."""
    lines = ["defaults: {username: u, password: p, platform: cisco_ios}", "hosts:"]
    lines += [f"  r{i}: {{hostname: 10.{i // 65536}.{i // 256 % 256}.{i % 256}}}" for i in range(60000)]
    path = _write(work, "huge-inventory.yaml", "\n".join(lines) + "\n")
    code, err = _cli("inventory", "--check", "-i", str(path))
    assert code == 0, err


def test_a_60000_host_inventory_with_an_error_names_its_line(work):
    lines = ["defaults: {username: u, password: p, platform: cisco_ios}", "hosts:"]
    lines += [f"  r{i}: {{hostname: 10.{i // 65536}.{i // 256 % 256}.{i % 256}}}" for i in range(60000)]
    lines[59_000] = "  r58998: {hostname: 10.0.0.1, port: 99999}"
    path = _write(work, "huge-bad-inventory.yaml", "\n".join(lines) + "\n")
    line = _one_line_exit_2(["inventory", "--check", "-i", str(path)], seconds=120)
    assert line.startswith(f"collector: error: {path}:59001: ") and "alias" not in line, line

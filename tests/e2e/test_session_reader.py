"""The session layer's reader on a real SSH channel: long outputs come back whole, a
prompt-looking line inside an output does not end it, a pager is paged through, and a
refused command is a distinct error."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import sys
import threading
from collections.abc import Iterator

import asyncssh
import paramiko
import pytest
from tiny_ios import typed_lines

from collector.hostkeys import KnownHosts
from collector.inventory import Host, SshOptions
from collector.credentials import Secret
from collector.sessions import CommandRefused, SessionPool

pytestmark = pytest.mark.e2e

BIG_LINES = 120_000  # about 10 MB
LINE = "*Nov 27 10:00:00.000: ISAKMP: (1001):received packet from 192.0.2.3 dport 500 sport 500 Global (R) QM_IDLE\n"


def reply(command: str) -> str:
    if command == "show big":
        middle = BIG_LINES // 2
        body = LINE * middle + "R1#\n" + LINE * (BIG_LINES - middle)  # a prompt-looking line inside
        return body + "end-of-output\n"
    if command == "show paged":
        return "first page\n --More-- " + "\b" * 9 + "second page\n"
    if command.startswith("sh"):
        return f"output of {command}\n"
    if command.strip() == "":
        return ""
    return f"{command}\n  ^\n% Invalid input detected at '^' marker.\n"


class TinyRouter(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return password == "pw"


async def shell(process: asyncssh.SSHServerProcess) -> None:
    process.stdout.write("\r\nR1#")
    async for command in typed_lines(process.stdin):
        if command.strip() == " ":
            continue
        process.stdout.write(command + "\r\n" + reply(command.strip()).replace("\n", "\r\n") + "R1#")
    process.exit(0)


@pytest.fixture(scope="module")
def tiny_router() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    started: dict = {}
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start():
            key = asyncssh.generate_private_key("ssh-ed25519")
            server = await asyncssh.create_server(TinyRouter, "127.0.0.1", 0, server_host_keys=[key],
                                                  process_factory=shell, encoding="utf-8", line_editor=False)
            started["port"] = server.sockets[0].getsockname()[1]
            started["server"] = server

        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    yield started["port"]
    loop.call_soon_threadsafe(loop.stop)


def host(port: int) -> Host:
    return Host(name="r1", hostname="127.0.0.1", port=port, platform="cisco_ios", username="u",
                password=Secret("pw"), secret=None, groups=(), site=None, data={}, addresses=(),
                options=SshOptions(read_timeout=60.0), member_of=())


def test_long_output_with_a_prompt_like_line_inside_comes_back_whole(tiny_router, tmp_path):
    with SessionPool(KnownHosts(tmp_path / "kh")) as pool, pool.session(host(tiny_router)) as session:
        out = session.run("show big", read_timeout=120)
    lines = out.text.splitlines()
    assert len(lines) == BIG_LINES + 2
    assert lines[BIG_LINES // 2] == "R1#"
    assert lines[-1] == "end-of-output"
    assert len(out.text) > 10_000_000


def test_pager_is_paged_through_and_session_is_reused(tiny_router, tmp_path):
    with SessionPool(KnownHosts(tmp_path / "kh")) as pool:
        with pool.session(host(tiny_router)) as session:
            first = session
            paged = session.run("show paged")
        assert "first page" in paged.text and "second page" in paged.text and "--More--" not in paged.text
        with pool.session(host(tiny_router)) as session:
            assert session is first  # kept open between uses
            assert session.run("show clock").text == "output of show clock\n"


def test_refused_command_is_a_distinct_error_and_keeps_the_session(tiny_router, tmp_path):
    with SessionPool(KnownHosts(tmp_path / "kh")) as pool:
        with pytest.raises(CommandRefused) as refused:
            with pool.session(host(tiny_router)) as session:
                session.run("bogus command")
        assert "Invalid input" in refused.value.reason
        assert "% Invalid input detected" in refused.value.output
        with pool.session(host(tiny_router)) as again:
            assert again is session and again.is_open



def _transport_socket(session):
    return session._channel.get_transport().sock


def test_the_session_socket_has_nagle_off(tiny_router, tmp_path):
    # With Nagle on (paramiko's default), the handshake's back-to-back messages each waited
    # for the router's delayed acknowledgement: 80 of the 90 ms of a lab login.
    with SessionPool(KnownHosts(tmp_path / "kh")) as pool, pool.session(host(tiny_router)) as session:
        sock = _transport_socket(session)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert session.run("show clock").text == "output of show clock\n"


RELAY = """
import socket, sys, threading
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def up():
    while data := sys.stdin.buffer.read1(65536):
        sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while data := sock.recv(65536):
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
"""


def test_a_proxy_command_from_ssh_config_carries_the_session(tiny_router, tmp_path):
    # A jump host's ProxyCommand gives paramiko its stream: it is used as it is.
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    config = tmp_path / "ssh_config"
    config.write_text(f"Host 127.0.0.1\n  Port {tiny_router}\n  ProxyCommand {sys.executable} {relay} %h %p\n")
    proxied = dataclasses.replace(host(tiny_router),
                                  options=SshOptions(read_timeout=60.0, ssh_config_file=config))
    with SessionPool(KnownHosts(tmp_path / "kh")) as pool, pool.session(proxied) as session:
        assert isinstance(_transport_socket(session), paramiko.ProxyCommand)
        assert session.run("show clock").text == "output of show clock\n"


# -- IOS prompts, banners, enable, AAA: a tiny IOS-like router -----------------------

from tiny_ios import TinyIos, tiny_ios  # noqa: E402

from collector.sessions import (AuthenticationFailed, CommandTimeout, CommandUnauthorized,  # noqa: E402
                                DeviceSession, SessionDropped)


def ios_host(router: TinyIos, *, secret: str | None = "en-secret", password: str = "pw", read_timeout: float = 10.0,
             retries: int = 0) -> Host:
    return Host(name="tiny", hostname="127.0.0.1", port=router.port, platform="cisco_ios", username="u",
                password=Secret(password), secret=Secret(secret) if secret else None, groups=(), site=None, data={},
                addresses=(), options=SshOptions(read_timeout=read_timeout, retries=retries, host_key_policy="accept-any"),
                member_of=())


def opened(router: TinyIos, tmp_path, **kwargs) -> DeviceSession:
    session = DeviceSession(ios_host(router, **kwargs), KnownHosts(tmp_path / "kh"))
    session.open()
    return session


NAMES = {
    16: "core-rtr-par-001",
    17: "core-rtr-par-0001",
    20: "edge.rtr-paris-00001",
    21: "edge.rtr-paris-000001",
    30: "dc1-wan-edge-router.paris-0042",
    63: "a" * 20 + "-very.long-hostname-of-a-router." + "b" * 11,
}


@pytest.mark.parametrize("length", sorted(NAMES))
def test_any_hostname_length_works_in_exec_and_config_mode(length, tmp_path):
    name = NAMES[length]
    assert len(name) == length
    with tiny_ios(TinyIos(hostname=name)) as router:
        session = opened(router, tmp_path)
        try:
            assert session.prompt_name == name
            assert session.run("show clock").text == "output of show clock\n"
            outputs = session.configure(["interface Loopback0", "description x", "exit", "logging buffered 64000"])
            assert [o.command for o in outputs] == ["configure terminal", "interface Loopback0", "description x",
                                                    "exit", "logging buffered 64000", "end"]
            assert session.run("show version").text == "output of show version\n"
        finally:
            session.close()


def test_a_prompt_like_line_of_a_short_prefix_does_not_end_an_exec_output(tmp_path):
    name = NAMES[30]
    with tiny_ios(TinyIos(hostname=name)) as router:
        session = opened(router, tmp_path)
        try:
            # The 20-character form only counts with a mode in parentheses.
            assert not session._prompt.search("\n" + name[:20] + "#")
            assert session._prompt.search("\n" + name[:20] + "(config-if)#")
            assert not session._prompt.search("\n" + name[:16] + "#")
        finally:
            session.close()


@pytest.mark.parametrize("new_name", ["short", "a-new-name-longer-than-twenty.example"])
def test_hostname_change_in_configure_is_followed(new_name, tmp_path):
    with tiny_ios(TinyIos(hostname="old-name-of-the-router-01")) as router:
        session = opened(router, tmp_path)
        try:
            session.configure([f"hostname {new_name}", "logging buffered 64000"])
            assert session.prompt_name == new_name
            assert session.run("show clock").text == "output of show clock\n"
            session.configure(["logging buffered 64000"])
        finally:
            session.close()


BANNER = "\n" + "#" * 40 + "\n# Authorised access only #\n" + "#" * 40 + "\n"


@pytest.mark.parametrize("banner, writes", [
    ("", ["terminal width 511\nterminal length 0\nenable\n", "en-secret\n"]),
    # The banner's last `#` line, read as the first prompt, keeps `enable` from being typed
    # ahead; the router's own `>` prompt, learned after, asks for it. It is not the prompt.
    (BANNER, ["terminal width 511\nterminal length 0\n", "enable\n", "en-secret\n"]),
])
def test_the_login_types_its_lines_ahead_never_the_secret_and_a_banner_line_is_no_prompt(banner, writes, tmp_path):
    with tiny_ios(TinyIos(hostname="rtr-typed-login", banner=banner, banner_pause=0.3 if banner else 0)) as router:
        session = opened(router, tmp_path)
        try:
            assert (session.prompt_name, session.prompt) == ("rtr-typed-login", "rtr-typed-login#")
            assert router.writes == writes
            assert session.run("show clock").text == "output of show clock\n"
        finally:
            session.close()


def test_the_shell_gets_its_terminal_and_a_router_refusing_one_still_gives_the_shell(tmp_path):
    with tiny_ios(TinyIos(hostname="rtr-pty")) as router:
        opened(router, tmp_path).close()
        assert router.terminal == ("vt100", 511)  # netmiko's terminal, asked for without waiting
    with tiny_ios(TinyIos(hostname="rtr-no-pty", refuse_pty=True)) as router:
        session = opened(router, tmp_path)
        try:
            assert router.terminal == (None, 0)
            assert session.prompt == "rtr-no-pty#"
            assert session.run("show clock").text == "output of show clock\n"
        finally:
            session.close()


def test_enable_with_secret_and_without(tmp_path):
    with tiny_ios(TinyIos(hostname="rtr-enable")) as router:
        session = opened(router, tmp_path)
        try:
            assert session.prompt == "rtr-enable#"
            assert "en-secret" not in router.received  # never echoed, and not a command either
            session.configure(["logging buffered 64000"])  # only possible in enable mode
        finally:
            session.close()
        session = opened(router, tmp_path, secret=None)
        try:
            assert session.prompt == "rtr-enable>"
        finally:
            session.close()


def test_a_wrong_enable_secret_is_an_authentication_failure(tmp_path):
    with tiny_ios(TinyIos(hostname="rtr-enable")) as router:
        with pytest.raises(AuthenticationFailed, match="enable secret refused"):
            opened(router, tmp_path, secret="wrong")


def test_aaa_refusal_is_unauthorized_and_stops_configure(tmp_path):
    denied = (r"^debug crypto condition",)
    with tiny_ios(TinyIos(hostname="hub-with-tacacs", denied=denied)) as router:
        session = opened(router, tmp_path)
        try:
            with pytest.raises(CommandUnauthorized) as err:
                session.configure(["logging buffered 64000", "debug crypto condition peer ipv4 192.0.2.1",
                                   "debug crypto isakmp"])
            assert err.value.kind == "unauthorized" and err.value.command.startswith("debug crypto condition")
            assert "Command authorization failed" in err.value.reason
            sent = router.received[router.received.index("configure terminal"):]
            assert sent == ["configure terminal", "logging buffered 64000",
                            "debug crypto condition peer ipv4 192.0.2.1", "end"]  # isakmp never sent
            with pytest.raises(CommandUnauthorized):
                session.run("debug crypto condition peer ipv4 192.0.2.1")
            assert session.run("show clock").text == "output of show clock\n"  # still in exec mode, usable
        finally:
            session.close()


def test_an_applets_lines_are_typed_ahead_and_each_answer_is_its_own(tmp_path):
    """The indented lines under `event manager applet` go in one write (16 at most): the
    router still takes them one by one, and each result holds only its own answer."""
    body = [" event timer countdown time 720 maxrun 120"] + [f' action {n:03d} cli command "enable"' for n in range(20)]
    with tiny_ios(TinyIos(hostname="rtr-applet-typed-ahead.example.net")) as router:
        session = opened(router, tmp_path)
        try:
            sends = []
            real_send = session._send
            session._send = lambda data, what, command=None: (sends.append(data), real_send(data, what, command))[1]
            outputs = session.configure(["logging buffered 64000", "event manager applet DEADMAN", *body,
                                         "logging console critical"])
            assert [o.command for o in outputs] == ["configure terminal", "logging buffered 64000",
                                                    "event manager applet DEADMAN", *body, "logging console critical",
                                                    "end"]
            assert all(o.text == "" for o in outputs[3:-2])
            start = router.received.index("event manager applet DEADMAN")
            # in order, each once (the tiny router drops the indentation, as IOS ignores it)
            assert router.received[start + 1:start + 1 + len(body)] == [line.strip() for line in body]
            assert len(sends) == 5 + 2  # conf t, logging, applet, 16 + 5 body lines in two writes, console, end
            assert session.run("show clock").text == "output of show clock\n"  # in step after the paste
        finally:
            session.close()


def test_reads_typed_ahead_go_in_one_write_and_each_answer_is_its_own(tmp_path):
    """`run_many`: one write for all, and each result what `run` gives for that command,
    a refused one and an output holding prompt-looking lines (one with a command typed
    after it, just not the next line typed) included."""
    reads = ["show banner-like", "bogus read", "show clock", "show users"]
    with tiny_ios(TinyIos(hostname="rtr-reads-typed-ahead.example.net", denied=(r"^show clock$",))) as router:
        session = opened(router, tmp_path)
        try:
            one_by_one = [session.run(command, check=False).text for command in reads]
            before = len(router.writes)
            results = session.run_many(reads)
            assert router.writes[before:] == ["".join(r + "\n" for r in reads)]
            assert [r.command for r in results] == reads
            assert [r.text for r in results] == one_by_one
            assert "#show users" in results[0].text and "Invalid input" in results[1].text
            assert results[2].text == "Command authorization failed.\n"
            assert session.run("show clock", check=False).text == "Command authorization failed.\n"  # in step after
        finally:
            session.close()


def test_many_reads_typed_ahead_go_sixteen_to_a_write(tmp_path):
    """A join batch of many flows reads as many peers' sessions: a paste IOS's typeahead
    takes whole is TYPED_AHEAD_LINES lines at most (as the applet's)."""
    reads = [f"show crypto session remote 192.0.2.{n}" for n in range(1, 21)]
    with tiny_ios(TinyIos(hostname="rtr-many-reads")) as router:
        session = opened(router, tmp_path)
        try:
            before = len(router.writes)
            results = session.run_many(reads)
            assert [r.text for r in results] == [f"output of {command}\n" for command in reads]
            assert router.writes[before:] == ["".join(r + "\n" for r in reads[:16]),
                                              "".join(r + "\n" for r in reads[16:])]
        finally:
            session.close()


def test_reads_typed_ahead_that_time_out_close_the_session(tmp_path):
    """The router may still be answering the reads after the slow one: the session is
    given up rather than read out of step."""
    with tiny_ios(TinyIos(hostname="rtr-reads-slow")) as router:
        session = opened(router, tmp_path)
        with pytest.raises(SessionDropped, match="session closed") as dropped:
            session.run_many(["show slow 2", "show clock"], read_timeout=0.3)
        assert dropped.value.command == "show slow 2"
        assert not session.is_open


APPLET = ["event manager applet DEADMAN", " event none", ' action 001 cli command "enable"']


@pytest.mark.parametrize("lines, writes", [
    # an applet's body last: `end` in its write, one round trip less
    (["logging buffered 64000", *APPLET], ["configure terminal\n", "logging buffered 64000\n", f"{APPLET[0]}\n",
                                           "".join(f"{line}\n" for line in APPLET[1:]) + "end\n"]),
    # a refused line in that body: named, and `end` was typed all the same
    ([*APPLET[:2], " bogus line"], ["configure terminal\n", f"{APPLET[0]}\n", " event none\n bogus line\nend\n"]),
    # a single line last: `end` in a write of its own (a timeout stays a CommandTimeout)
    (["logging buffered 64000", "logging console critical"],
     ["configure terminal\n", "logging buffered 64000\n", "logging console critical\n", "end\n"]),
])
def test_end_is_typed_with_a_last_paste_whatever_its_answers(lines, writes, tmp_path):
    """`end` goes in the write of an applet's body that ends the configuration: one
    round trip less for an arming or a join. A refused line in it is still named, and the
    session is back in exec mode either way."""
    with tiny_ios(TinyIos(hostname="rtr-end-typed-ahead")) as router:
        session = opened(router, tmp_path)
        try:
            before = len(router.writes)
            if "bogus" in lines[-1]:
                with pytest.raises(CommandRefused, match="Invalid input detected") as err:
                    session.configure(lines)
                assert err.value.command == " bogus line"
            else:
                outputs = session.configure(lines)
                assert [o.command for o in outputs] == ["configure terminal", *lines, "end"]
                assert session.prompt == "rtr-end-typed-ahead#"
            assert router.writes[before:] == writes
            assert router.received[-1] == "end"
            assert session.run("show clock").text == "output of show clock\n"  # exec mode, in step
        finally:
            session.close()


def test_a_refused_line_typed_ahead_is_named_and_stops_what_follows_the_paste(tmp_path):
    body = [" event timer countdown time 720 maxrun 120", " action 001 cli command \"enable\"", " bogus line",
            " action 002 cli command \"no debug all\""]
    with tiny_ios(TinyIos(hostname="rtr-applet-refused")) as router:
        session = opened(router, tmp_path)
        try:
            with pytest.raises(CommandRefused, match="Invalid input detected") as err:
                session.configure(["event manager applet DEADMAN", *body, "logging console critical"])
            assert err.value.command == " bogus line" and "^" in err.value.output
            assert "logging console critical" not in router.received  # after the paste: not sent
            assert router.received[-2:] == ["action 002 cli command \"no debug all\"", "end"]
            assert session.run("show clock").text == "output of show clock\n"
        finally:
            session.close()


def test_a_line_typed_ahead_is_one_line_as_any_command_is(tmp_path):
    """A line of an applet holding a line break would type a second command: refused
    before anything of the paste is sent, as `run` refuses it."""
    with tiny_ios(TinyIos(hostname="rtr-applet-one-line")) as router:
        session = opened(router, tmp_path)
        try:
            with pytest.raises(ValueError, match="one command line at a time"):
                session.configure(["event manager applet DEADMAN", " event none",
                                   ' action 001 cli command "enable"\nreload'])
            assert "event none" not in router.received and "reload" not in router.received
            assert router.received[-1] == "end"
        finally:
            session.close()


@pytest.mark.parametrize("line, refusal", [("bogus line", "Invalid input detected"),
                                           ("incomplete", "Incomplete command")])
def test_config_mode_refusals_stop_configure(line, refusal, tmp_path):
    with tiny_ios(TinyIos(hostname="rtr-cfg")) as router:
        session = opened(router, tmp_path)
        try:
            with pytest.raises(CommandRefused, match=refusal) as err:
                session.configure(["logging buffered 64000", line, "logging buffered 8192"])
            assert not isinstance(err.value, CommandUnauthorized)
            assert router.received[-2:] == [line, "end"]
        finally:
            session.close()


def test_a_timed_out_command_is_settled_before_the_next_one(tmp_path):
    with tiny_ios(TinyIos(hostname="rtr-slow")) as router:
        session = opened(router, tmp_path)
        try:
            with pytest.raises(CommandTimeout):
                session.run("show slow 1.5", read_timeout=0.5)
            # Not resent, not mixed with the next output: the late answer is read first.
            assert session.run("show clock").text == "output of show clock\n"
            assert router.received.count("show slow 1.5") == 1
            with pytest.raises(CommandTimeout):
                session.run("show slow 3", read_timeout=0.3)
            assert "output of show slow 3" in session.settle(timeout=10)
        finally:
            session.close()


def test_a_timed_out_command_that_never_settles_closes_the_session(tmp_path):
    with tiny_ios(TinyIos(hostname="rtr-stuck")) as router:
        session = opened(router, tmp_path)
        with pytest.raises(CommandTimeout):
            session.run("show slow 5", read_timeout=0.2)
        with pytest.raises(SessionDropped, match="after a timed-out command"):
            session.settle(timeout=0.3)
        assert not session.is_open


def test_refused_password_is_tried_a_bounded_number_of_times(tmp_path):
    with tiny_ios(TinyIos(hostname="rtr-auth")) as router:
        host = ios_host(router, password="wrong")
        with SessionPool(KnownHosts(tmp_path / "kh"), max_auth_failures=2, auth_backoff=0.0) as pool:
            for attempt in (1, 2):
                with pytest.raises(AuthenticationFailed, match=f"try {attempt} of 2"):
                    with pool.session(host):
                        pass
            tried = router.logins
            with pytest.raises(AuthenticationFailed, match=r"authentication failed \(username or password refused\), 2 times in a row; not tried again"):
                with pool.session(host):
                    pass
            assert router.logins == tried  # no further login attempt reached the router


def test_after_a_refused_password_the_next_try_waits_for_the_backoff(tmp_path):
    with tiny_ios(TinyIos(hostname="rtr-auth")) as router:
        with SessionPool(KnownHosts(tmp_path / "kh"), max_auth_failures=3, auth_backoff=60.0) as pool:
            with pytest.raises(AuthenticationFailed, match="try 1 of 3, next try not before 60s"):
                with pool.session(ios_host(router, password="wrong")):
                    pass
            tried = router.logins
            with pytest.raises(AuthenticationFailed, match=r"authentication failed .*, 1 of 3 tries used; not tried again for \d+s"):
                with pool.session(ios_host(router)):
                    pass
            assert router.logins == tried


def test_a_router_that_waits_for_a_return_before_its_first_prompt(tmp_path):
    with tiny_ios(TinyIos(hostname="rtr-quiet", prompt_after_return=True)) as router:
        session = opened(router, tmp_path)
        try:
            assert session.prompt == "rtr-quiet#"
            assert session.run("show clock").text == "output of show clock\n"
        finally:
            session.close()


def test_a_timed_out_configuration_line_is_not_resent_and_config_mode_is_left(tmp_path):
    with tiny_ios(TinyIos(hostname="rtr-slow-config")) as router:
        session = opened(router, tmp_path)
        try:
            with pytest.raises(CommandTimeout) as err:
                session.configure(["logging buffered 64000", "show slow 1", "logging buffered 8192"], read_timeout=0.3)
            assert err.value.command == "show slow 1"
            assert router.received[-3:] == ["logging buffered 64000", "show slow 1", "end"]
            assert session.prompt == "rtr-slow-config#"
            assert session.run("show clock").text == "output of show clock\n"
        finally:
            session.close()


def test_a_refused_connection_to_a_router_reached_before_is_lines_busy(tmp_path):
    from collector.sessions import ConnectFailed, LinesBusy

    with SessionPool(KnownHosts(tmp_path / "kh"), keep_open=False) as pool:
        with tiny_ios(TinyIos(hostname="rtr-full")) as router:
            host = ios_host(router)
            with pool.session(host) as session:
                session.run("show clock")
        with pytest.raises(LinesBusy, match="vty lines are busy"):  # its port now refuses connections
            with pool.session(host):
                pass
        with pytest.raises(ConnectFailed, match="port closed, or all vty lines busy"):  # never reached: both said
            with pool.session(Host(**{**host.__dict__, "name": "never-reached"})):
                pass


def test_a_keep_open_rule_keeps_only_the_sessions_it_names(tmp_path):
    wanted = {"rtr-kept"}
    with SessionPool(KnownHosts(tmp_path / "kh")) as pool, tiny_ios(TinyIos(hostname="rtr-kept")) as router:
        pool.keep_open_for(lambda name: name in wanted)
        host = Host(**{**ios_host(router).__dict__, "name": "rtr-kept"})
        other = Host(**{**host.__dict__, "name": "rtr-other"})  # the same router under a name the rule does not hold
        with pool.session(host) as first:
            first.run("show clock")
        with pool.session(host) as again:
            assert again is first and again.is_open  # kept
        with pool.session(other) as once:
            once.run("show clock")
        assert not once.is_open  # closed when released
        assert pool.close_unneeded() == 0  # the kept one is still wanted
        wanted.clear()  # its incident ended
        assert pool.close_unneeded() == 1 and not first.is_open
        with pool.session(host) as fresh:
            assert fresh is not first
        assert not fresh.is_open

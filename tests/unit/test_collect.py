"""`collect()`: read-only show commands only, whoever calls it; timeouts and dropped sessions per host."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes import FakeRouters  # noqa: E402

from collector.collect import CommandNotReadOnly, collect, read_only_refusal  # noqa: E402
from collector.errors import SafetyRefusal, UserInputError  # noqa: E402
from collector.inventory import Host, SshOptions  # noqa: E402
from collector.parsing import default_registry  # noqa: E402
from collector.playbook import PlaybookError, load_playbook  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def host(name: str) -> Host:
    return Host(name=name, hostname="127.0.0.1", port=22, platform="cisco_ios", username="u", password=None,
                secret=None, groups=(), site=None, data={}, addresses=(), options=SshOptions(), member_of=())


@pytest.mark.parametrize("command", [
    "show version", "sh run", "sho crypto session", "show logging | include CRYPTO|ISAKMP",
    "show running-config | section crypto", "show logging | i SPI", "show ip int brief | exclude unassigned",
    "show crypto ipsec sa | count spi", "show run | begin line vty",
])
def test_read_only_commands_pass(command):
    assert read_only_refusal(command) is None


@pytest.mark.parametrize("command, why", [
    ("show run | redirect flash:x", "redirect"),
    ("show run | red flash:x", "red"),
    ("show run | append flash:x", "append"),
    ("show run | tee flash:x", "tee"),
    ("show run | t flash:x", "| t"),
    ("show run | include hostname | redirect tftp://192.0.2.1/x", "redirect"),
    ("show tech | format flash:spec.odm", "format"),
    ("show run > flash:x", "'>'"),
    ("show run | frobnicate", "not an output filter"),
    ("show run |", "not an output filter"),
    ("copy running-config flash:x", "'copy' is not 'show'"),
    ("clear crypto sa", "'clear' is not 'show'"),
    ("debug crypto isakmp", "is not 'show'"),
    ("configure terminal", "is not 'show'"),
    ("reload", "is not 'show'"),
    ("s run", "is not 'show'"),
    ("show run\nreload", "control character"),
    ("   ", "empty"),
])
def test_anything_else_is_refused_with_the_reason(command, why):
    reason = read_only_refusal(command)
    assert reason is not None and why in reason


def test_collect_refuses_before_talking_to_any_router():
    routers = FakeRouters()
    with pytest.raises(CommandNotReadOnly) as err:
        collect([host("r1"), host("r2")], ["show version", "show run | redirect flash:x"], pool=routers,
                registry=default_registry())
    message = str(err.value)
    assert "\n" not in message and "'show run | redirect flash:x'" in message
    assert isinstance(err.value, UserInputError) and isinstance(err.value, SafetyRefusal)
    assert routers.sent("r1") == [] and routers.router("r1").opened == 0


def test_collect_runs_read_only_commands_through_any_session_source():
    routers = FakeRouters({"r1": {"show clock": "*10:00:00.000 UTC Sun Dec 6 2026\n"}})
    run = collect([host("r1")], ["show clock"], pool=routers, registry=default_registry())
    assert routers.sent("r1") == ["show clock"]
    assert run.outcomes[0].ok and run.outcomes[0].results[0].text.startswith("*10:00:00.000")


def test_a_timed_out_command_does_not_stop_the_next_ones():
    from collector.sessions import CommandTimeout

    routers = FakeRouters({"r1": {"show slow": CommandTimeout("r1", "no prompt after 30s", output="partial"),
                                  "show clock": "clock\n"}})
    run = collect([host("r1")], ["show slow", "show clock"], pool=routers, registry=default_registry())
    slow, clock = run.outcomes[0].results
    assert slow.error_kind == "timeout" and slow.text == "partial"
    assert clock.error is None and clock.text == "clock\n"
    assert routers.sent("r1") == ["show slow", "show clock"]


def test_a_dropped_session_skips_the_rest_of_that_host_only():
    from collector.sessions import SessionDropped

    routers = FakeRouters({"r1": {"show a": SessionDropped("r1", "session closed")}, "r2": {"show a": "a\n"}})
    run = collect([host("r1"), host("r2")], ["show a", "show b"], pool=routers, registry=default_registry())
    r1, r2 = run.outcomes
    assert r1.error_kind == "dropped" and [r.error_kind for r in r1.results] == ["dropped", "skipped"]
    assert routers.sent("r1") == ["show a"]
    assert r2.ok and routers.sent("r2") == ["show a", "show b"]


@pytest.mark.parametrize("command", ["show run | redirect flash:x", "show run > flash:x", "conf t"])
def test_the_collect_command_refuses_with_the_same_rule_before_any_router(tmp_path, command):
    listener = socket.create_server(("127.0.0.1", 0))  # the "router": nothing may connect to it
    listener.setblocking(False)
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("defaults: {username: u, password: p, platform: cisco_ios}\n"
                         f"hosts:\n  r1: {{hostname: 127.0.0.1, port: {listener.getsockname()[1]}}}\n")
    with listener:
        done = subprocess.run([sys.executable, "-m", "collector", "collect", "-i", str(inventory), "-c", "show version",
                               "-c", command, "--out", str(tmp_path / "b")], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"collector: error: refusing to run {command!r}: {read_only_refusal(command)}"]
    assert not (tmp_path / "b").exists()


def test_a_playbook_refuses_what_collect_refuses(tmp_path):
    path = tmp_path / "book.yaml"
    path.write_text("name: t\ncapture:\n  - show running-config > flash:x\n")
    with pytest.raises(PlaybookError, match="'>' writes a file"):
        load_playbook(path)
    assert read_only_refusal("show running-config > flash:x") is not None


def test_one_result_type_from_the_session_to_the_bundle():
    from collector.command_results import CommandResult

    routers = FakeRouters({"r1": {"show clock": "*10:00:00.000 UTC Sun Dec 6 2026\n"}})
    with routers.session(host("r1")) as session:
        said = session.run("show clock")
    run = collect([host("r1")], ["show clock"], pool=routers, registry=default_registry())
    kept = run.outcomes[0].results[0]
    assert type(said) is CommandResult and type(kept) is CommandResult
    assert (kept.router, kept.command, kept.text) == ("r1", "show clock", said.text)
    assert kept.started <= kept.ended and kept.seconds >= 0
    assert set(kept.summary()) == {"router", "command", "status", "error", "started", "ended", "template"}


# -- how many processes a collect uses (collector/collect_processes.py) ------------------

def test_process_count_default_is_one_per_core_with_enough_routers_each():
    from collector.collect_processes import HOSTS_PER_PROCESS_AT_LEAST as EACH, process_count

    assert process_count(200, 20, cores=2, threads=1) == 2
    assert process_count(200, 20, cores=8, threads=1) == 8
    assert process_count(5 * EACH, 20, cores=8, threads=1) == 5  # as many as keep EACH routers each
    assert process_count(2 * EACH - 1, 20, cores=8, threads=1) == 1  # a second process would have too few
    assert process_count(10_000, 3, cores=8, threads=1) == 3  # never more processes than workers
    assert process_count(0, 20, cores=8, threads=1) == 1


def test_process_count_as_asked_within_workers_and_routers():
    from collector.collect_processes import process_count

    assert process_count(200, 20, asked=1, cores=8, threads=1) == 1
    assert process_count(200, 20, asked=4, cores=2, threads=1) == 4  # asked for more than the cores: the operator's call
    assert process_count(3, 20, asked=8, cores=8, threads=1) == 3
    assert process_count(200, 2, asked=8, cores=8, threads=1) == 2


def test_process_count_is_one_where_this_process_runs_other_threads():
    # A fork copies only the calling thread: a lock another thread held would stay locked
    # in the child. So no fork once a thread runs, asked or not.
    import threading

    from collector.collect_processes import process_count

    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert process_count(200, 20, cores=8) == 1
        assert process_count(200, 20, asked=2, cores=8) == 1
    finally:
        release.set()
        thread.join()


def test_process_count_forks_by_default_on_linux_only(monkeypatch):
    # macOS's system libraries are not safe to fork (Python spawns there): one process
    # unless asked; asked, fork is used wherever it exists.
    from collector.collect_processes import process_count

    monkeypatch.setattr(sys, "platform", "darwin")
    assert process_count(200, 20, cores=8, threads=1) == 1
    assert process_count(200, 20, asked=2, cores=8, threads=1) == 2
    monkeypatch.setattr(sys, "platform", "linux")
    assert process_count(200, 20, cores=8, threads=1) == 8

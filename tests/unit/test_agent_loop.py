"""The whole agent (reader, decision core, worker, responder, bundle) through scripted routers.

No socket: routers are `tests/scripted_router.Box` instances behind the session fake, so
each test runs in milliseconds to a second and checks what the routers are left with and
what the bundle says, against the lines the routers logged.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from collector.agent import Agent
from collector.core.decide import ArmDone
from collector.core.states import IncidentState
from collector.inventory import Host, Inventory, SshOptions
from collector.parsing import default_registry
from collector.playbook import load_playbook
from collector.resources import playbooks_dir
from collector.state import StateStore
from collector.timeutil import utcnow
from tests.fakes import FakeRouters
from tests.scripted_router import Box, StubProfile

HUB, SPOKE = "10.0.0.1", "10.0.0.2"


def line(n: int, src: str = SPOKE, spi: str = "0x1234ABCD(305441741)") -> str:
    return (f"*Dec  6 10:{n:02d}:00.000: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi "
            f"for destaddr={HUB}, prot=50, spi={spi}, srcaddr={src}, input interface=Tunnel0")


def host(name: str, address: str) -> Host:
    return Host(name=name, hostname="127.0.0.1", port=22, platform="cisco_xe", username="u", password=None,
                secret=None, groups=(), site=None, data={}, addresses=(address,), options=SshOptions())


class World:
    def __init__(self, tmp_path: Path, *, hub_lines=(), dry_run=False, observers=None, spokes=1, **box):
        self.routers = FakeRouters()
        self.hub = Box(self.routers, "hub1", log_lines=list(hub_lines), **box)
        self.spoke = Box(self.routers, "spoke1", log_lines=[])
        for n in range(2, spokes + 1):  # spokeN at 10.0.0.N+1
            Box(self.routers, f"spoke{n}", log_lines=[])
        self.inventory = Inventory(hosts={"hub1": host("hub1", HUB), **{
            f"spoke{n}": host(f"spoke{n}", f"10.0.0.{n + 1}") for n in range(1, spokes + 1)}}, groups={},
                                   source=[], digest="")
        book = load_playbook(playbooks_dir() / "invalid-spi.yaml")
        self.book = book.model_copy(update={"sources": book.sources.model_copy(
            update={"qfp": book.sources.qfp.model_copy(update={"enabled": False})})})
        self.store = StateStore(tmp_path / "state.db")
        self.bundles = tmp_path / "bundles"
        self.messages: list[str] = []
        self.tmp_path = tmp_path
        self.dry_run = dry_run
        self.observers = observers
        self.agent = self.new_agent()

    def new_agent(self) -> Agent:
        agent = Agent(self.inventory, self.book, self.store, sessions=self.routers, registry=default_registry(),
                      bundle_root=self.bundles, dry_run=self.dry_run, workers=4, report=self.messages.append,
                      observers=self.observers)
        for name in self.inventory.hosts:
            agent.responder._profiles[name] = StubProfile()
        return agent

    def poll(self) -> None:
        self.agent.poll_all()
        self.agent.run_until_idle()

    def later(self, minutes: float) -> None:
        """Let the windows of open incidents run out (as if `minutes` had passed)."""
        from collector.core.decide import Tick
        self.agent.submit(Tick(utcnow() + timedelta(minutes=minutes)))
        self.agent.run_until_idle()

    def incidents(self):
        return self.store.incidents()

    def changes(self, box: Box) -> list[str]:
        return [c for c in self.routers.sent(box.name) if not c.startswith("show ")]

    def close(self):
        self.agent.close()
        self.store.close()


@pytest.fixture
def world_factory(tmp_path):
    made = []

    def make(**kw) -> World:
        made.append(World(tmp_path, **kw))
        return made[-1]

    yield make
    for world in made:
        world.close()


def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def test_first_line_arms_both_ends_and_a_repeat_logged_after_arming_is_captured(world_factory):
    w = world_factory(hub_lines=[line(0)])
    w.poll()
    assert w.hub.debugs == {"isakmp", "ipsec"} and w.spoke.debugs == {"isakmp", "ipsec"}
    assert [i.state for i in w.incidents()] == [IncidentState.ARMED]
    # the operator hears at once that the tool changed routers
    [incident] = w.incidents()
    assert f"incident {incident.incident_id}: debugs armed on hub1, spoke1; waiting for a repeat" in w.messages
    w.hub.log(line(1))
    w.poll()
    assert len(w.agent.bundles) == 1
    m = manifest(w.agent.bundles[0])
    assert m["armed_before_repeat"] is True and m["complete"] is True
    assert m["debug_lines_after_arming"]["hub1"] >= 1
    assert w.hub.debugs == set() and w.hub.conditions == [] and w.hub.applets == {}
    assert w.spoke.debugs == set() and w.spoke.applets == {}
    assert [i.state for i in w.incidents()] == [IncidentState.CAPTURED]


def test_router_logs_wait_for_the_seal_on_disk_not_in_memory(world_factory, monkeypatch):
    """Armed and waiting for the repeat, the incident holds no router log in memory (each
    end's pre-arm read is in the staging folder); after the capture it holds the commands
    without their outputs; the bundle has every output whole."""
    from collector.agent import contexts as contexts_module

    w = world_factory(hub_lines=[line(0)])
    w.poll()
    (incident,) = w.incidents()
    context = w.agent.worker.contexts.get(incident.incident_id)
    assert context.pre_arm == {} and set(context.pre_arm_staged) == {"hub1", "spoke1"}
    staged = w.agent.worker.contexts.folder(incident.incident_id)
    assert line(0) in (staged / "hub1.pre-arm.log").read_text()

    held = {}
    real = contexts_module.IncidentContexts.for_bundle

    def for_bundle(self, ctx):
        held.update({c.router: [r.text for r in c.commands] for c in ctx.captures})
        return real(self, ctx)

    monkeypatch.setattr(contexts_module.IncidentContexts, "for_bundle", for_bundle)
    w.hub.log(line(1))
    w.poll()
    assert set(held) == {"hub1", "spoke1"} and all(t is None for texts in held.values() for t in texts)
    bundle = w.agent.bundles[0]
    m = manifest(bundle)
    assert m["complete"] is True and not m["incomplete_reasons"]
    logging = next(c for c in m["commands"] if c["router"] == "hub1" and c["command"] == "show logging")
    assert line(1) in (bundle / logging["raw"]).read_text()
    assert line(0) in (bundle / "hub1" / "00_pre-arm_show_logging.txt").read_text()


def test_a_logged_secret_is_redacted_in_the_staged_pre_arm_log_and_listed_once_in_the_timeline(world_factory):
    """A config change logged with its password sits in the buffer before arming and at
    capture: the staged pre-arm read holds it redacted (as the staged capture does), and
    the timeline lists it once, seen by both reads. (The hub's buffer is already as big as
    the capture needs: arming leaves its size, so the buffer is not emptied.)"""
    logged = ("*Dec  6 09:59:00.000: %PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:username bob "
              "password 0 Sesame-Pw1")
    w = world_factory(hub_lines=[logged, line(0)], buffered_line="logging buffered 10000000 debugging",
                      buffer_size=10_000_000, buffer_level="debugging")
    w.poll()
    (incident,) = w.incidents()
    staged = w.agent.worker.contexts.folder(incident.incident_id) / "hub1.pre-arm.log"
    assert "Sesame-Pw1" not in staged.read_text() and "logged command:username bob" in staged.read_text()
    w.hub.log(line(1))
    w.poll()
    bundle = w.agent.bundles[0]
    rows = [json.loads(x) for x in (bundle / "timeline.jsonl").read_text().splitlines()]
    mine = [r for r in rows if "logged command" in r["line"]]
    assert len(mine) == 1 and mine[0]["seen_in"] == ["pre-arm read", "capture"], mine
    assert not any("Sesame-Pw1" in p.read_text() for p in bundle.rglob("*") if p.is_file())


def test_an_armed_incident_holds_both_ends_until_it_ends(world_factory):
    # what `collector watch` keeps sessions open for when its polls reconnect
    w = world_factory(hub_lines=[line(0)])
    assert not w.agent.holds("hub1") and not w.agent.holds("spoke1")
    w.poll()
    assert w.agent.holds("hub1") and w.agent.holds("spoke1") and not w.agent.holds("spoke9")
    w.later(w.book.arm_window.total_seconds() / 60 + 1)
    assert w.incidents()[0].state is IncidentState.TRANSIENT
    assert not w.agent.holds("hub1") and not w.agent.holds("spoke1")


def test_a_flow_already_repeating_at_start_waits_for_a_line_logged_after_arming(world_factory):
    w = world_factory(hub_lines=[line(0), line(1), line(2)])
    w.poll()
    assert w.agent.bundles == []  # three old lines: armed, nothing captured yet
    record = w.incidents()[0]
    assert record.state is IncidentState.ARMED and record.armed_late and record.armed_at is not None
    w.hub.log(line(3))
    w.poll()
    m = manifest(w.agent.bundles[0])
    assert m["armed_before_repeat"] is False
    assert m["debug_lines_after_arming"]["hub1"] >= 1
    timeline = [json.loads(x) for x in (w.agent.bundles[0] / "timeline.jsonl").read_text().splitlines()]
    triggers = [row for row in timeline if row["source"] == "trigger"]
    assert len(triggers) == 4  # three logged before the agent started, one after arming
    assert sum("pre-arm read" in row["seen_in"] for row in triggers) == 3  # the pre-arm read held the old three
    assert any(row["source"] == "capture" and row["mnemonic"] is None for row in timeline)  # a debug line
    report = (w.agent.bundles[0] / "report.md").read_text()
    assert "after the repeat (they show the aftermath only)" in report
    assert "before the repeat" not in report


def test_a_flow_already_repeating_with_no_new_line_ends_not_captured_and_disarmed(world_factory):
    w = world_factory(hub_lines=[line(0), line(1)])
    w.poll()
    w.later(w.book.arm_window.total_seconds() / 60 + 1)
    record = w.incidents()[0]
    assert record.state is IncidentState.NOT_CAPTURED and "stopped before a capture" in record.reason
    assert w.hub.debugs == set() and w.spoke.debugs == set() and w.hub.applets == {}
    assert w.agent.bundles == []


def test_a_single_line_never_repeated_is_a_transient(world_factory):
    w = world_factory(hub_lines=[line(0)])
    w.poll()
    w.later(w.book.arm_window.total_seconds() / 60 + 1)
    assert w.incidents()[0].state is IncidentState.TRANSIENT
    assert w.hub.debugs == set() and w.spoke.debugs == set()


def test_a_cron_run_after_the_arming_run_captures_the_next_line(world_factory):
    w = world_factory(hub_lines=[line(0), line(1), line(2)])
    w.poll()
    w.agent.close()  # the first cron run ends; its routers stay armed
    w.hub.log(line(3))
    w.agent = w.new_agent()
    w.agent.resume()
    w.poll()
    assert len(w.agent.bundles) == 1
    m = manifest(w.agent.bundles[0])
    assert m["armed_before_repeat"] is False and m["pre_arm_reads"]
    assert (w.agent.bundles[0] / "hub1" / "00_pre-arm_show_logging.txt").exists()
    assert w.hub.debugs == set() and w.spoke.debugs == set()


def test_the_clock_read_before_arming_stays_with_the_staged_log_into_the_bundle(world_factory):
    """The pre-arm log is kept on disk, not in memory; the `show clock` read right after it
    stays beside it (context.json), survives a cron restart, and reaches the manifest's
    `pre_arm_reads` and `collector report`'s reading of the bundle (clocks.ClockTrack)."""
    from collector.diagnose.incident import load_bundle

    w = world_factory(hub_lines=[line(0), line(1), line(2)])
    w.poll()
    (incident,) = w.incidents()
    context = w.agent.worker.contexts.get(incident.incident_id)
    assert context.pre_arm == {} and set(context.pre_arm_clocks) == {"hub1", "spoke1"}
    saved = json.loads((w.agent.worker.contexts.folder(incident.incident_id) / "context.json").read_text())
    clock = saved["pre_arm"]["hub1"]["clock"]
    assert clock["show_clock"] == "*10:00:05.000 UTC Sun Dec 6 2026\n" and len(clock["asked"]) == 2
    w.agent.close()  # the first cron run ends; the next one reads the context back
    w.hub.log(line(3))
    w.agent = w.new_agent()
    w.agent.resume()
    w.poll()
    (bundle,) = w.agent.bundles
    reads = {r["router"]: r for r in manifest(bundle)["pre_arm_reads"]}
    assert reads["hub1"]["clock"] == clock and reads["spoke1"]["clock"]["show_clock"] == clock["show_clock"]
    snapshots = {s.router: s for s in load_bundle(bundle).result.pre_arm}
    assert snapshots["hub1"].clock_text == clock["show_clock"]
    assert [t.isoformat() for t in snapshots["hub1"].clock_asked] == clock["asked"]
    assert line(0) in snapshots["hub1"].text


def test_each_ends_arm_time_survives_a_cron_restart_into_the_manifest(world_factory):
    w = world_factory(hub_lines=[line(0), line(1), line(2)])
    w.poll()
    (incident,) = w.incidents()
    context = w.agent.worker.contexts.get(incident.incident_id)
    ends = dict(context.armed_ends)
    assert set(ends) == {"hub1", "spoke1"} and all(at <= context.armed_at for at in ends.values())
    w.agent.close()
    w.hub.log(line(3))
    w.agent = w.new_agent()
    w.agent.resume()
    w.poll()
    (bundle,) = w.agent.bundles
    assert manifest(bundle)["armed_ends"] == {router: at.isoformat() for router, at in ends.items()}


def test_a_dry_run_changes_no_router(world_factory):
    w = world_factory(hub_lines=[line(0), line(1)], dry_run=True)
    w.poll()
    w.agent.stop("dry run")
    assert w.changes(w.hub) == [] and w.changes(w.spoke) == []
    assert any("dry run: nothing was changed" in m for m in w.messages)


def test_an_operators_debug_survives_an_incident(world_factory):
    w = world_factory(hub_lines=[line(0)], debugs={"ipsec"}, conditions=["192.0.2.99"])
    w.agent.playbook = w.book  # the shipped playbook refuses foreign debugs; allow them here
    w.agent.responder.playbook = w.book.model_copy(update={"guards": w.book.guards.model_copy(
        update={"refuse_if_foreign_debugs": False})})
    w.poll()
    w.hub.log(line(1))
    w.poll()
    assert w.agent.bundles
    assert w.hub.debugs == {"ipsec"} and w.hub.conditions == ["192.0.2.99"]


def test_a_refused_condition_arms_nothing_and_leaves_nothing(world_factory):
    w = world_factory(hub_lines=[line(0)], deny=[r"^debug crypto condition"])
    w.poll()
    record = next(i for i in w.incidents())
    assert record.state in (IncidentState.SKIPPED, IncidentState.FAILED)
    assert "Command authorization failed" in record.reason
    assert w.hub.debugs == set() and w.spoke.debugs == set() and w.hub.applets == {} and w.spoke.applets == {}


def test_a_scanner_arms_nothing_and_is_listed(world_factory):
    w = world_factory(hub_lines=[line(0, src="125.240.132.86", spi="0x77B40000(2008285184)"),
                                 line(1, src="125.240.132.86", spi="0x77B40000(2008285184)")])
    w.poll()
    assert w.changes(w.hub) == [] and w.changes(w.spoke) == []
    assert [(u["src"], u["lines"]) for u in w.store.unknown_sources()] == [("125.240.132.86", 2)]


NAT_T_SA = """interface: Tunnel0
    Crypto map tag: Tunnel0-head-0, local addr 10.0.0.2

   current_peer 198.51.100.7 port 500
     current outbound spi: 0xAAAA0001(2863267841)
   current_peer 203.0.113.7 port 4500
     current outbound spi: 0x1234ABCD(305441741)
"""


def test_a_natted_receivers_sender_is_conditioned_and_queried_by_the_address_it_uses(world_factory):
    """The hub sits behind NAT: it logs its inside address (10.0.0.1) as destaddr, which the
    spoke never sees; the spoke's SA whose current outbound SPI is the logged one names the
    hub's public address, and that is what the spoke is conditioned and queried by."""
    w = world_factory(hub_lines=[line(0)])
    w.spoke.ipsec_sa = NAT_T_SA
    w.poll()
    assert w.spoke.conditions == ["203.0.113.7"] and w.hub.conditions == [SPOKE]
    w.hub.log(line(1))
    w.poll()
    m = manifest(w.agent.bundles[0])
    sender = next(r for r in m["routers"] if r["role"] == "sender")
    assert sender["name"] == "spoke1" and sender["debug_condition_peer"] == "203.0.113.7"
    queried = [c for c in w.routers.sent("spoke1") if c.startswith(("show crypto ipsec sa peer", "show crypto session remote"))]
    assert queried and all("203.0.113.7" in c for c in queried), queried
    assert w.spoke.conditions == [] and w.spoke.debugs == set()


def test_a_sender_without_an_sa_of_the_logged_spi_is_conditioned_by_destaddr(world_factory):
    w = world_factory(hub_lines=[line(0)])
    w.spoke.ipsec_sa = NAT_T_SA.replace("0x1234ABCD(305441741)", "0xBBBB0002(3149594626)")
    w.poll()
    assert w.spoke.conditions == [HUB]


def test_stop_disarms_an_armed_incident_and_records_it_stopped(world_factory):
    w = world_factory(hub_lines=[line(0)])
    w.poll()
    w.agent.stop()
    assert w.incidents()[0].state is IncidentState.STOPPED
    assert w.hub.debugs == set() and w.spoke.debugs == set()


@pytest.mark.parametrize("stamp", ["8w0d: ", "1d02h: ", ""])
def test_identical_lines_are_separate_events_and_a_new_identical_line_captures(world_factory, stamp):
    """With uptime stamps (or none) every line of a flow is byte-identical: the router's
    own count of logged messages tells the repeat from the old line."""
    same = stamp + line(0).split(": ", 1)[1]
    w = world_factory(hub_lines=[same, same])
    w.poll()
    assert w.incidents()[0].armed_late  # two lines already: it had repeated before arming
    w.poll()
    assert w.agent.bundles == []  # read again, nothing new: no capture on the old lines
    w.hub.log(same)
    w.poll()
    assert len(w.agent.bundles) == 1
    m = manifest(w.agent.bundles[0])
    assert len(m["trigger_lines"]) == 3 and m["armed_before_repeat"] is False


def test_metrics_follow_an_incident_from_arm_to_bundle(world_factory):
    from collector.metrics import PrometheusEvents

    events = PrometheusEvents(window_seconds=600)
    w = world_factory(hub_lines=[line(0)], observers=events)
    value = events.registry.get_sample_value
    w.poll()
    assert value("collector_routers_armed") == 2
    assert value("collector_invalid_spi_events_total", {"source": "poll"}) == 1
    w.hub.log(line(1))
    w.poll()
    assert value("collector_routers_armed") == 0
    assert value("collector_bundles_total", {"complete": "true"}) == 1
    assert value("collector_incidents_total", {"state": "captured"}) == 1


# -- a run stopped in the middle: internal errors, kills during the capture and the sealing ----


def test_an_internal_error_after_arming_disarms_every_end_at_once(world_factory, monkeypatch):
    w = world_factory(hub_lines=[line(0)])
    original = w.agent.worker.arm

    def arm_then_fail(action):
        original(action)
        raise RuntimeError("simulated bug after arming")

    monkeypatch.setattr(w.agent.worker, "arm", arm_then_fail)
    w.poll()
    (record,) = w.incidents()
    assert record.state is IncidentState.FAILED
    assert record.reason.startswith("internal error while arming (RuntimeError: simulated bug after arming)")
    assert "hub1: clean" in record.reason and "spoke1: clean" in record.reason
    assert w.hub.debugs == set() and w.spoke.debugs == set() and w.hub.applets == {} and w.spoke.applets == {}
    assert w.store.armed_steps() == []


def test_an_ended_incident_says_what_each_routers_disarm_found(world_factory):
    w = world_factory(hub_lines=[line(0)])
    w.poll()
    w.spoke.condition_removal_works = False  # the spoke keeps its condition: its disarm is not clean
    w.later(w.book.arm_window.total_seconds() / 60 + 1)
    (record,) = w.incidents()
    assert record.state is IncidentState.TRANSIENT
    assert "hub1: clean" in record.reason
    assert "spoke1: NOT clean" in record.reason or "spoke1: disarm incomplete" in record.reason


def _staging(w: World) -> Path:
    return w.bundles / ".staging"


def test_a_run_killed_during_the_capture_leaves_what_it_had_and_the_next_keeps_the_finished_end(world_factory):
    """The receiver's capture finished, the sender's was cut by the kill: the next run keeps
    the receiver's, captures the sender again, and the bundle says the run was stopped."""
    import threading

    w = world_factory(hub_lines=[line(0)])
    w.poll()
    gate, calls = threading.Event(), []

    def slow_log(command: str) -> str:  # the killed run's sender capture hangs here
        if threading.current_thread().name.startswith("end"):  # a capture (log polls run in "poll" threads)
            calls.append(command)
            if len(calls) == 1:
                gate.wait(30)
        return w.spoke.answer(command)

    w.routers.on("spoke1", r"^show logging$", slow_log)
    w.hub.log(line(1))
    killed = w.agent
    killed.poll_all()
    while not calls:  # process until the capture is under way (the "kill" comes then)
        try:
            killed.process(killed.inbox.get(timeout=5))
        except Exception:
            break
    (incident,) = [i for i in w.incidents() if i.state is IncidentState.CAPTURING]
    folder = _staging(w) / incident.incident_id / "captures"
    import time
    deadline = time.monotonic() + 10
    while not (folder / "hub1" / "done.json").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (folder / "hub1" / "done.json").exists(), "the finished end is staged when it finishes"
    assert not (folder / "spoke1" / "done.json").exists()
    staged = (folder / "spoke1" / "records.jsonl").read_text().splitlines()
    assert staged and "show logging" in (folder / "spoke1" / "plan.json").read_text()  # outputs as they arrive

    w.agent = w.new_agent()  # the next run (cron): the killed one never answers
    said = w.agent.resume()
    w.agent.run_until_idle()
    assert any("stopped during capture, captured again at start-up" in s for s in said), said
    assert len(calls) == 2  # only the sender was captured again
    (bundle,) = w.agent.bundles
    m = manifest(bundle)
    assert m["complete"] is False and any("stopped" in r for r in m["incomplete_reasons"])
    assert any("captured again at the next start (spoke1)" in n and "hub1 had finished" in n for n in m["notes"])
    assert {r["name"]: r["error"] for r in m["routers"]} == {"hub1": None, "spoke1": None}
    assert m["debug_lines_after_arming"]["hub1"] >= 1
    assert w.hub.debugs == set() and w.spoke.debugs == set() and w.hub.applets == {} and w.spoke.applets == {}
    assert [i.state for i in w.incidents()] == [IncidentState.CAPTURED]
    gate.set()
    killed.close()


class _Killed(BaseException):
    """Stands for SIGKILL: nothing in the agent catches it."""


def test_a_run_killed_while_writing_the_bundle_is_sealed_whole_from_the_staging_folder(world_factory, monkeypatch):
    from collector.agent import sealing as sealing_module
    from collector.bundle import BundleWriter
    from collector.evidence import bundle_name

    w = world_factory(hub_lines=[line(0)])
    w.poll()

    def write_then_die(result, root, **_kw):
        writer = BundleWriter(root, bundle_name(result))
        writer.write_text("hub1/01_show_clock.txt", "cut short")
        writer.release()  # the kernel drops a killed writer's lock
        raise _Killed()

    monkeypatch.setattr(sealing_module, "write_incident_bundle", write_then_die)
    w.hub.log(line(1))
    w.poll()
    assert w.agent.bundles == [] and w.hub.debugs == set() and w.spoke.debugs == set()  # disarmed first
    assert [i.state for i in w.incidents()] == [IncidentState.CAPTURING]
    assert [p for p in w.bundles.iterdir() if p.name.endswith(".partial")]
    monkeypatch.undo()

    w.agent.close()
    w.agent = w.new_agent()
    said = w.agent.resume()
    w.agent.run_until_idle()
    assert any("sealed at start-up from the capture it had kept (NOT complete)" in s for s in said), said
    assert not [p for p in w.bundles.iterdir() if p.name.endswith(".partial")]  # replaced, not sealed apart
    (bundle,) = w.agent.bundles
    m = manifest(bundle)
    assert m["complete"] is False and any("stopped" in r for r in m["incomplete_reasons"])
    assert {r["name"] for r in m["routers"]} == {"hub1", "spoke1"} and all(r["error"] is None for r in m["routers"])
    # what the stopped run's disarm did and found, not this run's "nothing armed"
    assert m["router_changes"] and all(a["status"].startswith("undone") for a in m["router_changes"])
    assert all(v.startswith("clean") for v in m["disarm_verification"].values()), m["disarm_verification"]
    (record,) = w.incidents()
    assert record.state is IncidentState.CAPTURED and "stopped" in record.reason
    assert not (_staging(w) / record.incident_id).exists()
    assert oct(_staging(w).stat().st_mode & 0o777) == "0o700"  # it holds router outputs


def test_staged_outputs_hold_no_secret(world_factory):
    from collector.agent.staging import CaptureStage
    from collector.command_results import CommandResult

    w = world_factory()
    stage = CaptureStage(w.tmp_path / "stage", ("S3cr3t-Value",))
    now = utcnow()
    stage.plan("hub1", "receiver", "cisco_xe", HUB, ["show running-config", "show clock"])
    stage.record(CommandResult("hub1", "show running-config", "crypto isakmp key IsakmpKey-1 address 0.0.0.0\n"
                               "username a password S3cr3t-Value\n", now, now))
    text = (w.tmp_path / "stage" / "captures" / "hub1" / "records.jsonl").read_text()
    assert "IsakmpKey-1" not in text and "S3cr3t-Value" not in text
    staged = stage.captures()["hub1"]
    assert not staged.finished and staged.capture.commands[0].command == "show running-config"
    assert staged.not_run == ("show clock",)


def test_a_new_store_is_told_of_the_tools_applets_left_on_routers(world_factory, tmp_path):
    """A store that was lost (or another agent's folder) knows nothing armed: the routers'
    own dead-man applets say otherwise, and the start-up names each, changing nothing."""
    w = world_factory(hub_lines=[line(0)])
    w.poll()
    assert w.hub.applets and w.spoke.applets
    assert w.agent.startup.applets_unknown_to_the_store() == []  # this store knows them
    fresh = StateStore(tmp_path / "lost" / "state.db")
    try:
        other = Agent(w.inventory, w.book, fresh, sessions=w.routers, registry=default_registry(),
                      bundle_root=tmp_path / "other-bundles", workers=2, report=w.messages.append)
        said = other.startup.applets_unknown_to_the_store()
        other.close()
    finally:
        fresh.close()
    assert [line.split(":")[0] for line in said] == ["hub1", "spoke1"]
    assert all(name in text for name, text in zip((next(iter(w.hub.applets)), next(iter(w.spoke.applets))), said))
    assert all("left to its countdown" in text for text in said)
    assert w.hub.debugs == {"isakmp", "ipsec"} and w.hub.applets  # read only: nothing was changed


def test_one_flow_skipped_twice_in_a_second_is_two_skipped_incidents(tmp_path):
    """Two lines of one flow in one poll while the armed-router cap is reached: two skips
    within the same second (their ids once collided and stopped the agent)."""
    from ipaddress import ip_address

    from collector.agent.records import IncidentRecorder
    from collector.core.decide import Skip
    from collector.core.observers import NullEvents
    from collector.detect.events import Flow

    store = StateStore(tmp_path / "state.db")
    recorder = IncidentRecorder(store=store, playbook=load_playbook(playbooks_dir() / "invalid-spi.yaml"),
                                observers=NullEvents(), dry_run=False)
    flow = Flow(router="hub1", src=ip_address(SPOKE), dst=ip_address(HUB), spi=0x1234ABCD, prot=50)
    for _ in range(2):
        recorder.skip(Skip(flow, "armed-router cap reached (4 of 4 armed)", record=True))
    skipped = [i for i in store.incidents() if i.state is IncidentState.SKIPPED]
    assert len(skipped) == 2 and len({i.incident_id for i in skipped}) == 2
    store.close()


def test_whole_buffer_reads_run_a_few_at_a_time(tmp_path):
    """At the first poll every router's whole buffer is read; the poll threads take them
    at most WHOLE_READS_AT_ONCE at a time (each holds a copy or two of a buffer of up to
    10 MB), and that many do run together."""
    import threading
    import time as _time
    from concurrent.futures import ThreadPoolExecutor

    from collector.agent.reader import WHOLE_READS_AT_ONCE, LogReader
    from collector.core.observers import NullEvents

    names = [f"r{i}" for i in range(12)]
    inventory = Inventory(hosts={n: host(n, f"10.1.0.{i + 1}") for i, n in enumerate(names)}, groups={}, source=[],
                          digest="")
    lock, running, most = threading.Lock(), [0], [0]

    def whole(command: str) -> str:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        _time.sleep(0.2)
        with lock:
            running[0] -= 1
        return "Buffer logging: level debugging, 1 messages logged\nLog Buffer (4096 bytes):\n" + line(0) + "\n"

    routers = FakeRouters()
    for name in names:
        routers.router(name).script["show logging"] = whole
    store = StateStore(tmp_path / "state.db")
    reader = LogReader(inventory, load_playbook(playbooks_dir() / "invalid-spi.yaml"), store, routers,
                       default_registry(), NullEvents())
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = list(pool.map(lambda n: reader.poll(inventory.hosts[n]), names))
    store.close()
    assert all(len(seen) == 1 for seen, _n in results)  # every router's line read
    assert most[0] == WHOLE_READS_AT_ONCE


def test_lines_lost_to_the_tools_own_restore_of_the_buffer_size_are_said_to_be_so(world_factory):
    """Arming raises the 16 KB buffers and disarming restores them; IOS empties a buffer
    whose size changes, so what the routers logged after the last read is gone. The next
    read says the lines may be lost and that the tool's own restore did it, once."""
    w = world_factory(hub_lines=[line(0)])
    w.poll()
    assert w.hub.buffer_size > 16384  # raised for the capture
    w.hub.log(line(1))
    w.poll()
    assert len(w.agent.bundles) == 1 and w.hub.buffer_size == 16384
    w.hub.log("*Dec  6 10:05:00.000: %SYS-5-CONFIG_I: Configured from console by admin on vty0")
    w.messages.clear()
    w.poll()
    lost = [m for m in w.messages if "may have been lost" in m]
    assert {m.split(":")[0] for m in lost} == {"hub1", "spoke1"}
    assert all("resized from" in m and m.endswith("(the tool's own disarm restored the buffer's size)") for m in lost)
    w.hub.log("*Dec  6 10:06:00.000: %SYS-5-CONFIG_I: Configured from console by admin on vty1")
    w.messages.clear()
    w.poll()
    assert not [m for m in w.messages if "may have been lost" in m]


def test_a_sender_refused_by_the_cpu_guard_leaves_the_bundle_incomplete_with_the_reason(world_factory):
    w = world_factory(hub_lines=[line(0)])
    spoke_answer = w.spoke.answer

    def busy(command: str) -> str:  # the sender's CPU is above the playbook's guard
        if command == "show processes cpu | include CPU":
            return "CPU utilization for five seconds: 97%/3%; one minute: 96%; five minutes: 95%\n"
        return spoke_answer(command)
    w.routers.router("spoke1").default = busy
    w.poll()
    assert w.hub.debugs == {"isakmp", "ipsec"} and w.spoke.debugs == set() and w.spoke.applets == {}
    w.hub.log(line(1))
    w.poll()
    [bundle] = w.agent.bundles
    m = manifest(bundle)
    # the receiver's debug lines alone would make it look complete: the missing end says otherwise
    assert m["debug_lines_after_arming"]["hub1"] >= 1
    assert m["complete"] is False
    [reason] = [r for r in m["incomplete_reasons"] if r.startswith("spoke1: not armed")]
    assert "CPU" in reason and "no debug output" in reason


def test_an_end_that_was_not_armed_stays_incomplete_across_a_cron_run(world_factory):
    w = world_factory(hub_lines=[line(0)])
    spoke_answer = w.spoke.answer
    w.routers.router("spoke1").default = lambda c: (
        "CPU utilization for five seconds: 97%/3%; one minute: 96%; five minutes: 95%\n"
        if c == "show processes cpu | include CPU" else spoke_answer(c))
    w.poll()
    w.agent.close()
    w.agent = w.new_agent()  # the next cron run picks the incident up from the store and staging
    w.agent.resume()
    w.hub.log(line(1))
    w.poll()
    [bundle] = w.agent.bundles
    m = manifest(bundle)
    assert m["complete"] is False and any(r.startswith("spoke1: not armed") for r in m["incomplete_reasons"])


def test_a_buffer_is_read_whole_at_first_then_once_an_hour_across_cron_runs_and_never_with_sequence_numbers(tmp_path):
    """The whole read that bounds the filtered read's blind spot is kept in the state store:
    a cron run (a new reader) reads the buffer whole only when the hour since the last one
    has passed, not at each start; a router printing sequence numbers is never read whole
    again (the filtered read is exact there)."""
    from collector.agent.reader import FULL_READ_INTERVAL, LogReader
    from collector.core.observers import NullEvents

    def reader_with(store, routers, inventory):
        return LogReader(inventory, load_playbook(playbooks_dir() / "invalid-spi.yaml"), store, routers,
                         default_registry(), NullEvents())

    def whole_reads(routers, name) -> int:
        return routers.sent(name).count("show logging")

    routers = FakeRouters()
    hub = Box(routers, "hub1", log_lines=[line(0)])
    seq = Box(routers, "spoke1", log_lines=[f"000041: {line(0)}"])
    inventory = Inventory(hosts={"hub1": host("hub1", HUB), "spoke1": host("spoke1", SPOKE)}, groups={}, source=[],
                          digest="")
    store = StateStore(tmp_path / "state.db")
    for run in range(3):  # three cron runs, each a new reader
        reader = reader_with(store, routers, inventory)
        hub.log(line(run + 1))
        seq.log(f"{42 + run:06d}: {line(run + 1)}")
        expected = 2 if run == 0 else 1  # the first read also finds the line already there
        assert [len(reader.poll(inventory.hosts[n])[0]) for n in ("hub1", "spoke1")] == [expected, expected]
    assert whole_reads(routers, "hub1") == 1 and whole_reads(routers, "spoke1") == 1  # the first read only

    for name in ("hub1", "spoke1"):  # an hour and a minute later
        cursor = store.log_cursor(name)
        store.save_log_cursor(replace(cursor, whole_read_at=cursor.whole_read_at - FULL_READ_INTERVAL
                                      - timedelta(minutes=1)))
    reader = reader_with(store, routers, inventory)
    hub.log(line(9))
    seq.log(f"000050: {line(9)}")
    assert [len(reader.poll(inventory.hosts[n])[0]) for n in ("hub1", "spoke1")] == [1, 1]
    assert whole_reads(routers, "hub1") == 2 and whole_reads(routers, "spoke1") == 1
    assert utcnow() - store.log_cursor("hub1").whole_read_at < timedelta(minutes=1)
    store.close()


def test_a_router_whose_log_just_showed_a_peers_line_keeps_its_session_and_a_scanners_does_not(world_factory):
    """The session pool keeps a router's session while `keeps_session` says so: held for an
    incident, or its log just showed a line from another inventory router (the arming that
    follows then needs no new login). A scanner's line alone keeps nothing open."""
    from collector.agent.loop import keeps_session

    w = world_factory(hub_lines=[line(0, src="203.0.113.77")])
    reader = w.agent.reader
    reader.poll(w.inventory.hosts["hub1"])
    assert not reader.wants.wanted("hub1") and not keeps_session(w.agent, "hub1")
    w.hub.log(line(1))  # from spoke1
    reader.poll(w.inventory.hosts["hub1"])
    assert reader.wants.wanted("hub1") and keeps_session(w.agent, "hub1")
    assert not keeps_session(w.agent, "spoke1")  # nothing held, nothing found there


def test_a_syslog_hint_from_a_peer_readies_the_senders_session_beside_the_confirmation(world_factory):
    """A syslog line names its sender: when that is another inventory router, its session
    is opened while the receiver's log is read (the arming that may follow needs both),
    and kept. A scanner's line readies nothing."""
    from collector.agent.loop import keeps_session
    from collector.detect.syslog_receiver import SyslogHint

    w = world_factory()
    spoke = w.routers.router("spoke1")
    w.agent.on_syslog_hint(SyslogHint("hub1", HUB, f"<188>42: {line(0, src='203.0.113.77')}".encode()))
    w.agent.finish_confirmations()  # the confirmation is done, and any readying
    assert spoke.opened == 0 and not keeps_session(w.agent, "spoke1")

    w = world_factory()
    spoke = w.routers.router("spoke1")
    w.agent.on_syslog_hint(SyslogHint("hub1", HUB, f"<188>42: {line(0)}".encode()))
    w.agent.finish_confirmations()
    assert spoke.opened == 1 and keeps_session(w.agent, "spoke1")
    assert "show logging" not in " ".join(spoke.sent)  # only readied: nothing read or sent there


def test_every_sender_a_hub_logs_at_once_is_readied_though_one_read_confirms_them_all(world_factory):
    """Flows logged together by one hub: one confirmation read for the hub's lines, but
    each flow's sender readied from its own line (its login would otherwise wait for the
    flow's turn: ten round trips across a WAN). A sender named again is not readied again."""
    from collector.agent.loop import keeps_session
    from collector.detect.syslog_receiver import SyslogHint

    w = world_factory(spokes=3)
    outcomes = [w.agent.reader.syslog_hint(SyslogHint("hub1", HUB, f"<188>{n}: {line(n, src=src)}".encode()))
                for n, src in enumerate(["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.3"])]
    assert [o.confirm is not None for o in outcomes] == [True, False, False, False]
    assert [o.sender.name if o.sender else None for o in outcomes] == ["spoke1", "spoke2", "spoke3", None]

    w = world_factory(spokes=3)  # through the agent: each sender's session opened once, and kept
    for n, src in enumerate(["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.3"]):
        w.agent.on_syslog_hint(SyslogHint("hub1", HUB, f"<188>{n}: {line(n, src=src)}".encode()))
    w.agent.finish_confirmations()
    assert [w.routers.router(f"spoke{n}").opened for n in (1, 2, 3)] == [1, 1, 1]
    assert all(keeps_session(w.agent, f"spoke{n}") for n in (1, 2, 3))


def test_a_scanner_sweep_does_not_hold_up_the_confirmation_of_a_flows_line(world_factory):
    """A scanner sweeping the fleet's public addresses makes many routers log at once. Their
    confirmations go in a lane of their own: with every thread of it held by slow reads of
    scanned routers, a line between two inventory routers is still confirmed at once, and
    the scanned routers are read once their turn comes (nothing is dropped)."""
    import threading
    import time

    from collector.detect.syslog_receiver import SyslogHint

    w = world_factory(spokes=6)
    release = threading.Event()
    scanned = [f"spoke{n}" for n in range(2, 7)]  # more than both lanes' threads together (workers=4)
    for name in scanned:
        w.routers.on(name, r"^show logging", lambda _command: "" if release.wait(10) else TimeoutError("held"))
    for n, name in enumerate(scanned):
        w.agent.on_syslog_hint(SyslogHint(name, HUB, f"<188>{n}: {line(n, src=f'203.0.113.{n + 1}')}".encode()))
    w.agent.on_syslog_hint(SyslogHint("hub1", HUB, f"<188>9: {line(9)}".encode()))  # from spoke1
    deadline = time.monotonic() + 5
    while not any(c.startswith("show logging") for c in w.routers.sent("hub1")) and time.monotonic() < deadline:
        time.sleep(0.01)
    read_meanwhile = [name for name in scanned if any(c.startswith("show logging") for c in w.routers.sent(name))]
    release.set()
    assert any(c.startswith("show logging") for c in w.routers.sent("hub1")), "the flow's line waited for the sweep"
    assert len(read_meanwhile) <= 2  # the sweep's lane: its own threads, not the flow's
    w.agent.finish_confirmations()
    assert all(any(c.startswith("show logging") for c in w.routers.sent(name)) for name in scanned)


def test_a_scanners_line_is_confirmed_after_the_flows_confirmation_under_way_not_beside_it(world_factory,
                                                                                           monkeypatch):
    """The later lane waits for the work an arming may follow (here a flow's confirmation,
    held by a slow read): a sweep's logins would take both cores' share from it. The wait
    is bounded (`ARMS_FIRST_S`), so a stream of flows cannot starve the lane."""
    import threading
    import time

    from collector.agent import dispatch
    from collector.detect.syslog_receiver import SyslogHint

    def reads_of(w, name):
        return sum(c.startswith("show logging") for c in w.routers.sent(name))

    def wait_until(predicate, seconds=5.0):
        deadline = time.monotonic() + seconds
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.01)
        return predicate()

    w = world_factory(spokes=3)
    release = threading.Event()
    w.routers.on("hub1", r"^show logging", lambda _command: "" if release.wait(10) else TimeoutError("held"))
    w.agent.on_syslog_hint(SyslogHint("hub1", HUB, f"<188>1: {line(1)}".encode()))  # a flow's line, from spoke1
    assert wait_until(lambda: reads_of(w, "hub1") == 1)
    w.agent.on_syslog_hint(SyslogHint("spoke2", HUB, f"<188>2: {line(2, src='203.0.113.9')}".encode()))
    time.sleep(0.5)
    assert reads_of(w, "spoke2") == 0, "the scanner's line was read beside the flow's confirmation"
    release.set()
    assert wait_until(lambda: reads_of(w, "spoke2") == 1), "the scanner's line was not read once the flow's was"
    w.agent.finish_confirmations()

    monkeypatch.setattr(dispatch, "ARMS_FIRST_S", 0.3)  # held past the bound: read all the same
    w = world_factory(spokes=3)
    release = threading.Event()
    w.routers.on("hub1", r"^show logging", lambda _command: "" if release.wait(10) else TimeoutError("held"))
    w.agent.on_syslog_hint(SyslogHint("hub1", HUB, f"<188>1: {line(1)}".encode()))
    assert wait_until(lambda: reads_of(w, "hub1") == 1)
    w.agent.on_syslog_hint(SyslogHint("spoke2", HUB, f"<188>2: {line(2, src='203.0.113.9')}".encode()))
    read_while_held = wait_until(lambda: reads_of(w, "spoke2") == 1, seconds=3.0)
    release.set()
    w.agent.finish_confirmations()
    assert read_while_held, "a held arming starved the later lane"


def test_a_scanners_line_does_not_hold_back_a_flows_line_logged_after_it_on_the_same_router(world_factory,
                                                                                            monkeypatch):
    """A router's syslog lines are confirmed at most once per interval, per lane: a
    scanner's line just before a flow's on the same router would otherwise have held the
    flow's confirmation back by the whole interval. Lines inside the interval of their own
    lane wait for it and are confirmed then, in that lane."""
    from types import SimpleNamespace

    from collector.agent import reader as reader_module
    from collector.detect.syslog_receiver import SyslogHint

    clock = [1000.0]
    monkeypatch.setattr(reader_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    w = world_factory()
    reader = w.agent.reader

    def hint(n: int, src: str = SPOKE):
        return reader.syslog_hint(SyslogHint("hub1", HUB, f"<188>{n}: {line(n, src=src)}".encode()))

    scan, flow = hint(0, src="203.0.113.77"), hint(1)
    assert (scan.confirm.name, scan.urgent) == ("hub1", False)
    assert (flow.confirm.name, flow.urgent) == ("hub1", True)
    assert hint(2).confirm is None and hint(3, src="203.0.113.78").confirm is None  # each inside its lane's interval
    assert reader.due_confirmations() == []
    clock[0] += reader_module.SYSLOG_CONFIRM_INTERVAL
    due = reader.due_confirmations()
    assert sorted((d.host.name, d.urgent) for d in due) == [("hub1", False), ("hub1", True)]
    assert reader.due_confirmations() == []  # claimed: not twice


def test_a_syslog_line_from_outside_the_inventory_is_counted_without_a_read_in_the_receivers_thread(world_factory):
    """Hints are handled one after another: a read of a new receiver's configured peers
    there (0.1 s or more over SSH) held up every hint behind it, and their confirmations.
    A line from a source outside the inventory is counted on a confirm thread instead,
    once the receiver's peers are read there (once, though the confirmation reads too)."""
    from collector.detect.syslog_receiver import SyslogHint
    from collector.metrics import PrometheusEvents

    events = PrometheusEvents(window_seconds=600)
    w = world_factory(observers=events)
    value = events.registry.get_sample_value
    hint = SyslogHint("hub1", HUB, f"<188>42: {line(0, src='203.0.113.77')}".encode())

    outcome = w.agent.reader.syslog_hint(hint)
    assert "show running-config" not in w.routers.sent("hub1")
    assert str(outcome.uncounted.src) == "203.0.113.77" and outcome.confirm is not None
    assert value("collector_unknown_source_lines_total", {"source": "syslog"}) is None

    w.agent.on_syslog_hint(SyslogHint("hub1", HUB, f"<188>43: {line(1, src='203.0.113.77')}".encode()))
    w.agent.finish_confirmations()
    assert value("collector_unknown_source_lines_total", {"source": "syslog"}) == 1
    assert w.routers.sent("hub1").count("show running-config") == 1
    # now the receiver's peers are known: the next line is counted in the receiver's thread
    assert w.agent.reader.syslog_hint(SyslogHint("hub1", HUB, f"<188>44: {line(2, src='203.0.113.77')}".encode())
                                      ).uncounted is None
    assert value("collector_unknown_source_lines_total", {"source": "syslog"}) == 2


def test_lines_counted_in_a_burst_are_written_together_and_before_their_incident_links_them(world_factory):
    """A synced write for each line counted held the loop, and every writer queued behind
    it, through a burst: the lines and unknown sources of one poll go in a write or two,
    and the incident they open still finds its trigger line in the store."""
    scanners = [line(n, src=f"203.0.113.{n + 1}", spi=f"0x{0x100 + n:08X}({0x100 + n})") for n in range(20)]
    w = world_factory(hub_lines=scanners + [line(30)])
    calls = []
    real = w.store.record_seen
    w.store.record_seen = lambda events, unknown=(): calls.append((len(events), len(unknown))) or real(events, unknown)
    w.poll()
    assert sum(n for n, _ in calls) == 21 and sum(u for _, u in calls) == 20 and len(calls) <= 2  # every line is evidence
    assert sum(u["lines"] for u in w.store.unknown_sources()) == 20
    (incident,) = w.incidents()
    assert [e.raw for e in w.store.events(incident_id=incident.incident_id)] == [line(30)]


def test_syslog_lines_are_kept_as_evidence_and_written_together_off_the_hint_thread(world_factory):
    """The hint thread writes nothing: a synced write per datagram bounded how many hints a
    second it took on a disk whose sync takes milliseconds. The lines are written in one
    transaction by the next confirmation or the check every second, and at close."""
    from collector.detect.syslog_receiver import SyslogHint

    w = world_factory()
    writes = []
    real = w.store.record_events
    w.store.record_events = lambda events: writes.append(len(events)) or real(events)
    for n in range(5):
        w.agent.reader.syslog_hint(SyslogHint("hub1", HUB, f"<188>{n}: {line(n)}".encode()))
    assert writes == [] and [e for e in w.store.events() if e.source == "syslog"] == []
    w.agent.confirm_pending()
    assert writes == [5] and len([e for e in w.store.events() if e.source == "syslog"]) == 5
    w.agent.reader.syslog_hint(SyslogHint("hub1", HUB, f"<188>9: {line(9)}".encode()))
    w.agent.close()
    assert writes == [5, 1]


@pytest.mark.parametrize("src, readied", [("203.0.113.77", False), (SPOKE, True)])
def test_a_syslog_hint_from_a_peer_has_both_ends_facts_read_before_any_arming(world_factory, src, readied):
    """The facts an arming reads first (version, config, addresses) are read ahead for
    the sender named by a peer's syslog line, and for the receiver once its log confirms
    it; not for a scanner's line (each profile holds a running-config in memory)."""
    from collector.detect.syslog_receiver import SyslogHint

    w = world_factory(hub_lines=[line(0, src=src)])
    w.agent.responder._profiles.clear()  # not stubbed: read from the scripted routers
    w.agent.on_syslog_hint(SyslogHint("hub1", HUB, f"<188>42: {line(0, src=src)}".encode()))
    w.agent.finish_confirmations()
    assert ("show version" in w.routers.sent("spoke1")) is readied  # the first of the facts read
    assert ("show version" in w.routers.sent("hub1")) is readied
    assert set(w.agent.responder._profiles) == ({"hub1", "spoke1"} if readied else set())
    assert not any(c.startswith(("configure", "debug")) for n in ("hub1", "spoke1") for c in w.routers.sent(n))


def test_the_incident_is_marked_armed_before_the_logs_as_they_were_are_read(world_factory):
    """Reading a whole buffer (10 MB on a busy router) takes seconds: once both ends are
    armed, the receiver's log is marked and the incident said armed first; each end's log
    as it stood before arming is read after that, cut back to the pre-flight's count, and
    still reaches the staging folder (and the bundle)."""
    w = world_factory(hub_lines=[line(0)])
    w.poll()
    sent = w.routers.sent("hub1")
    armed = max(i for i, c in enumerate(sent) if c == "debug crypto ipsec")
    mark = next(i for i in range(armed, len(sent)) if sent[i].startswith("show logging | include"))
    whole = next(i for i in range(armed, len(sent)) if sent[i] == "show logging")
    assert armed < mark < whole
    (incident,) = w.incidents()
    context = w.agent.worker.contexts.get(incident.incident_id)
    assert set(context.pre_arm_staged) == {"hub1", "spoke1"}
    staged = (w.agent.worker.contexts.folder(incident.incident_id) / "hub1.pre-arm.log").read_text()
    assert line(0) in staged


def test_an_armed_flows_logs_as_they_were_are_read_once_another_flows_arm_is_done(world_factory):
    """The whole-buffer read of an armed flow's ends is evidence, not arming: it waits for
    another flow's Arm still on its way (elsewhere, so it waits for nothing of this one),
    and is read once that one is done."""
    import threading
    import time
    from ipaddress import ip_address

    from collector.core.decide import Arm
    from collector.detect.events import Flow

    w = world_factory(hub_lines=[line(0)], buffer_size=10_000_000, buffered_line="logging buffered 10000000 debugging",
                      buffer_level="debugging", spokes=3)  # not resized: its log is read after arming
    other = threading.Event()
    other_flow = Flow("spoke2", ip_address("10.0.0.4"), ip_address("10.0.0.3"), 0x55, 50)
    w.agent.work.submit(lambda _action: [] if other.wait(10) else [], Arm("inc-other", other_flow, "spoke2", "spoke3", ()),
                        ("spoke2", "spoke3"))
    seen = {}

    def whole_read_after_arming() -> bool:  # the first poll read the whole buffer too
        sent = w.routers.sent("hub1")
        return "show logging" in sent[sent.index("debug crypto ipsec"):]

    def watch() -> None:
        deadline = time.monotonic() + 10
        while [i.state for i in w.store.incidents()] != [IncidentState.ARMED] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # a read that did not wait would be sent within this
        seen["armed"] = [i.state for i in w.store.incidents()]
        seen["whole read"] = whole_read_after_arming()
        other.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    w.poll()
    watcher.join()
    assert seen == {"armed": [IncidentState.ARMED], "whole read": False}
    assert whole_read_after_arming()  # read once the other arm was done
    (incident,) = w.incidents()
    assert line(0) in (w.agent.worker.contexts.folder(incident.incident_id) / "hub1.pre-arm.log").read_text()


def test_an_arm_shares_its_routers_turn_once_armed_is_said_and_before_its_logs_are_read(world_factory):
    """Flows joining the hub need not wait while the first arm reads and stages the logs
    as they stood before arming: its turn is shared once "armed" is in the inbox."""
    w = world_factory(hub_lines=[line(0)], buffer_size=10_000_000, buffered_line="logging buffered 10000000 debugging",
                      buffer_level="debugging")  # not resized: its log is read after arming
    seen = []
    real_share = w.agent.worker.share_turn

    def share_turn():
        posted = list(w.agent.inbox.queue)
        seen.append((any(isinstance(e, ArmDone) and e.armed for e in posted), list(w.routers.sent("hub1"))))
        return real_share()

    w.agent.worker.share_turn = share_turn
    w.poll()
    [(armed_posted, sent)] = seen
    assert armed_posted
    armed = max(i for i, c in enumerate(sent) if c == "debug crypto ipsec")
    assert any(c.startswith("show logging | include") for c in sent[armed:])  # the mark is read
    assert "show logging" not in sent[armed:]  # the log as it was is read after the turn is shared
    assert "show logging" in w.routers.sent("hub1")[len(sent):]
    assert [i.state for i in w.incidents()] == [IncidentState.ARMED]


def test_one_read_marks_every_incident_armed_on_a_receiver_at_once_and_hands_its_lines_on_once(world_factory):
    w = world_factory(hub_lines=[line(0)])
    reads_before = w.routers.sent("hub1").count("show logging")
    (first_lines, first), (other_lines, other) = w.agent.worker._mark_read(w.inventory.hosts["hub1"], ["a", "b"])
    assert first == other and len(first_lines) == 1 and other_lines == []
    assert w.routers.sent("hub1").count("show logging") == reads_before + 1  # one read for both


@pytest.mark.parametrize("buffer_size, read_before_resize", [(16384, True), (10_000_000, False)])
def test_what_was_logged_while_arming_began_is_read_before_a_step_empties_the_buffer(
        world_factory, buffer_size, read_before_resize):
    """Arming raises a small buffer, which empties it on IOS: what the router logged since
    the last read is read first (it counts as logged before arming). A buffer already large
    enough is not resized, and not read again for that."""
    w = world_factory(hub_lines=[line(0)], buffer_size=buffer_size,
                      buffered_line=f"logging buffered {buffer_size} debugging", buffer_level="debugging")
    answer = w.hub.answer

    def logs_during_preflight(command):
        if command == "show processes cpu | include CPU" and not getattr(logs_during_preflight, "done", False):
            logs_during_preflight.done = True
            w.hub.log(line(1))  # while the agent is deciding how to arm
        return answer(command)

    w.routers.router("hub1").default = logs_during_preflight
    w.poll()
    filtered = [c for c in w.routers.sent("hub1") if c.startswith("show logging | include Log")]
    recorded = {e.raw for e in w.store.events(router="hub1")}
    if read_before_resize:
        assert any(line(1).split(": ", 1)[1] in raw for raw in recorded)  # read before the resize emptied it
        assert len(filtered) == 2  # before the resize, and the mark (the first poll read the buffer whole)
    else:
        assert len(filtered) == 1  # the mark alone (it finds the line: the buffer kept it)
        assert any(line(1).split(": ", 1)[1] in raw for raw in recorded)


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_poll_the_state_store_refuses_is_said_in_one_line_and_read_again_when_it_takes_writes(world_factory, fault):
    from collector.core.observers import NullEvents
    from tests.store_faults import unwritable, writable

    problems = []

    class Problems(NullEvents):
        def problem(self, router, message):
            problems.append((router, message))

    w = world_factory(hub_lines=[line(0)], observers=Problems())
    unwritable(w.store, fault)
    assert w.agent.poll_all() == 0  # nothing handed on that could not be recorded; no traceback
    assert "hub1" in {r for r, _m in problems}
    assert all(m.startswith("log poll failed: the state store refused it") for _r, m in problems)
    writable(w.store)
    assert w.agent.poll_all() == 1  # the cursor did not move: the line is read again


def test_a_flows_sender_is_armed_while_its_receiver_is_still_being_armed_for_the_flow_ahead(world_factory):
    """Two flows into one hub at once: the second waits for the first's arm of the hub
    (one router, one action at a time), but its sender, free, is armed meanwhile instead
    of after it; across a WAN that arm of the hub takes a second or more."""
    from tests.unit.test_join_batches import _eventually

    w = world_factory(spokes=2, hub_lines=[line(0), line(0, src="10.0.0.3", spi="0x5678ABCD(1450748877)")])
    answer, spoke2 = w.hub.answer, w.routers.router("spoke2")
    seen: list[bool] = []

    def hub_arms_slowly(command):
        if command.startswith("debug crypto condition") and not seen:  # the first flow's arm of the hub
            seen.append(_eventually(lambda: any(c.startswith("debug crypto condition") for c in spoke2.sent), 3))
        return answer(command)

    w.routers.router("hub1").default = hub_arms_slowly
    w.poll()
    assert seen == [True]  # spoke2 armed while hub1 was being armed for spoke1's flow
    assert sorted(i.state for i in w.incidents()) == [IncidentState.ARMED, IncidentState.ARMED]
    assert all(any(c == "debug crypto ipsec" for c in w.routers.sent(n)) for n in ("hub1", "spoke1", "spoke2"))

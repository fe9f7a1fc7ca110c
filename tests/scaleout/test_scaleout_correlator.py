"""The correlator's wiring: an agent whose router work goes through a site client."""

from __future__ import annotations

from collector.agent import Agent
from collector.core.decide import Release
from collector.core.results import DisarmResult
from collector.core.states import IncidentState
from collector.inventory import Host, Inventory, SshOptions
from collector.parsing import default_registry
from collector.playbook import load_playbook
from collector.resources import playbooks_dir
from collector.scaleout.remote import RemoteReader, RemoteResponder, WorkedBy, attach_remote
from collector.state import StateStore


def host(name: str, site: str) -> Host:
    return Host(name=name, hostname="127.0.0.1", port=9, platform="cisco_ios", username="u", password=None,
                secret=None, groups=(), site=site, data={}, addresses=(), options=SshOptions())


class RecordingClient:
    """Stands in for the broker: records each task and answers as a site would."""

    def __init__(self):
        self.calls: list[tuple] = []

    def call_by(self, h, task, *args, timeout=None):
        self.calls.append((h.site, task, args))
        if task == "release":
            return DisarmResult(h.name, clean=True), WorkedBy(h.site, f"{h.site}@jump")
        raise AssertionError(f"unexpected task {task}")

    def call(self, h, task, *args, timeout=None):
        return self.call_by(h, task, *args, timeout=timeout)[0]


def test_an_incident_left_arming_by_the_last_correlator_is_released_through_its_sites(tmp_path):
    inventory = Inventory(hosts={"hub1": host("hub1", "east"), "spoke1": host("spoke1", "west")}, groups={},
                          source=(), digest="")
    book = load_playbook(playbooks_dir() / "invalid-spi.yaml")
    with StateStore(tmp_path / "state.db") as store:
        store.create_incident("inc1", "hub1|192.0.2.3|198.51.100.1|0x00000001|50", book.name, IncidentState.ARMED,
                              routers=["hub1", "spoke1"])
        agent = Agent(inventory, book, store, sessions=None, registry=default_registry(),
                      bundle_root=tmp_path / "bundles", workers=2)
        client = RecordingClient()
        try:
            attach_remote(agent, client)
            assert isinstance(agent.reader, RemoteReader) and isinstance(agent.responder, RemoteResponder)
            assert agent.worker.responder is agent.responder and agent.worker.reader is agent.reader
            said = agent.resume()
        finally:
            agent.close()
        assert store.incident("inc1").state == IncidentState.FAILED
        # each release is recorded with the site and worker that did it
        assert sorted((w.router, w.action, w.site, w.worker, w.ok) for w in store.work("inc1")) == [
            ("hub1", "disarm", "east", "east@jump", True), ("spoke1", "disarm", "west", "west@jump", True)]
    releases = sorted((site, args[0]) for site, task, args in client.calls if task == "release")
    assert [site for site, _ in releases] == ["east", "west"]
    from collector.scaleout.codec import from_json
    assert {from_json(a) for _, a in releases} == {Release("inc1", "hub1", None), Release("inc1", "spoke1", None)}
    assert any("was arming when the last correlator stopped" in line for line in said)

"""Start-up: what an earlier run left behind, taken over or undone before the loop runs.

An incident spans cron runs (armed in one, captured in the next), and a run can be
killed at any point: the state store still holds its open incidents and the steps
applied on routers, the staging folder what it had captured, the bundle root any
bundle it had begun. `StartUp.resume` adopts what can go on, re-captures what was being
captured, and undoes what nobody holds any more.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from collector.bundle import recover_partial_bundles
from collector.core.decide import Capture, Incident, Phase
from collector.core.states import IncidentState
from collector.detect.tracker import decode_key
from collector.state import IncidentRecord

if TYPE_CHECKING:
    from collector.agent.loop import Agent


class StartUp:
    """Resumes an earlier run's incidents into an agent, and sweeps orphaned router steps.

    Threads: `resume` runs in the agent's loop thread before the loop runs: it puts
    adopted incidents into the decision state directly (`CoreState.adopt`), which is safe
    only there. `sweep_orphans` also runs in the daemon's scheduler thread (the disarm
    retry); there it only takes a copy of the open incident ids, after reading the steps
    (an incident is open before its first step is recorded, so no open one is undone).

    Invariants: it never calls `decide`; a capture it restarts goes through the agent's
    `act`, as if the core had asked for it, so it is recorded and worked on in turn like
    any other. Every step in the store belongs, after `resume`, either to an adopted
    incident or to one whose disarm was attempted (`sweep_orphans`) or reported as
    needing a hand (its router left the inventory). It reads the agent's worker and
    responder when it runs, not when it is made: scale-out swaps them after the agent is
    built (`collector.scaleout.remote.attach_remote`)."""

    def __init__(self, agent: "Agent"):
        self.agent = agent

    def resume(self) -> list[str]:
        """Adopt incidents an earlier run left open (cron: an incident spans runs), capture
        again what was being captured, and undo steps of incidents nobody holds any more."""
        agent, store = self.agent, self.agent.store
        said = []
        for record in store.incidents(states=[IncidentState.ARMED, IncidentState.CAPTURING]):
            incident = self._incident_from(record)
            if incident is None or record.armed_at is None:
                reason = ("agent stopped while arming; disarmed at start-up" if incident is not None
                          else "its routers are no longer in the inventory")
                store.update_incident(record.incident_id, state=IncidentState.FAILED, reason=reason)
                said.append(f"incident {record.incident_id}: {reason}")
                continue
            agent.core.adopt(incident)
            if incident.phase is Phase.CAPTURING:  # the repeat was seen; its bundle was not sealed
                said += self._capture_again(record, incident)
        said += self.sweep_orphans()
        said += recover_partial_bundles(agent.bundle_root) if agent.bundle_root.is_dir() else []
        return said

    def _capture_again(self, record: IncidentRecord, incident: Incident) -> list[str]:
        """Capture what is still armed, keep what the stopped run finished; with neither,
        the incident waits armed for a new line like any other."""
        worker = self.agent.worker
        armed = self.agent.store.armed_steps(incident_id=record.incident_id)
        staged = worker.staged_captures(record.incident_id)
        if not (armed or staged):
            incident.phase = Phase.ARMED
            return []
        worker.context(record.incident_id).resumed = True
        self.agent.act(Capture(record.incident_id, armed_before_repeat=not record.armed_late))
        finished = {name for name, s in staged.items() if s.finished}
        if finished >= set(record.routers):
            worker.discard_stopped_bundle(record.incident_id)
            return [f"incident {record.incident_id}: stopped before its bundle was sealed; "
                    "sealed at start-up from the capture it had kept (NOT complete)"]
        return [f"incident {record.incident_id}: stopped during capture, captured again at start-up"]

    def _incident_from(self, record: IncidentRecord) -> Incident | None:
        try:
            flow = decode_key(record.key)
        except ValueError:
            return None
        if flow.router not in self.agent.inventory.hosts:
            return None
        others = [r for r in record.routers if r != flow.router]
        phase = Phase.CAPTURING if record.state is IncidentState.CAPTURING else Phase.ARMED
        return Incident(record.incident_id, flow, flow.router, others[0] if others else None, record.created_at,
                        phase=phase, routers=set(record.routers), armed_at=record.armed_at, mark=0,
                        lines_before_arming=2 if record.armed_late else 1,
                        repeated_before_arming=record.armed_late)

    def sweep_orphans(self) -> list[str]:
        """Undo steps recorded for incidents that are not open (a crash, a disarm that could
        not reach its router). Steps of open incidents are left alone."""
        agent = self.agent
        agent.recorder.write_held()  # first what the store refused before, now it may have room
        agent.responder.unrecorded.write(agent.store)
        stale: dict[str, set[str]] = {}
        # read before the open set (an incident is open first); steps undone but not recorded are not sent again
        for step in agent.responder.unrecorded.without_held(agent.store.armed_steps()):
            stale.setdefault(step.router, set()).add(step.incident_id)
        open_ids = set(agent.core.incidents)
        said = []
        for name, incident_ids in sorted(stale.items()):
            left = sorted(incident_ids - open_ids)
            if not left:
                continue
            host = agent.inventory.hosts.get(name)
            if host is None:
                said.append(f"{name}: armed in state but not in the inventory; disarm it by hand")
                continue
            results = [agent.responder.disarm(host, incident_id) for incident_id in left]
            said.append(f"{name}: {'; '.join(dict.fromkeys(r.summary() for r in results))}")
        return said

    def write_held(self, report) -> None:
        """At the agent's end: write what the store refused (undone steps, incident ends),
        and say what it still refuses and what the next start will do about it."""
        agent = self.agent
        steps = agent.responder.unrecorded.write(agent.store)
        ends = agent.recorder.write_held()
        if steps or ends:
            routers = ", ".join(agent.responder.unrecorded.routers())
            report(f"not written to the state store ({agent.responder.unrecorded.problem or 'see above'}): "
                   + "; ".join(([f"{steps} undo step(s) of {routers} that went through"] if steps else [])
                               + ([f"the end of {ends} incident(s)"] if ends else []))
                   + ". The next start finds them recorded as armed or open, and sends those undo commands again")

    def applets_unknown_to_the_store(self) -> list[str]:
        """Ask every router for the tool's own dead-man applets and name those this store
        does not know (a lost or replaced store, or another agent's state folder): a new
        store cannot hide an armed router. Read only: each is left to its countdown (the
        other agent may be alive), and `collector disarm --from-routers` puts it back now.
        A router that cannot be read is named too."""
        from collector.respond.deadman import applet_name
        from collector.respond.sweep import applets_on
        from collector.sessions import SessionError

        agent = self.agent
        known = {applet_name(i.incident_id) for i in agent.store.incidents()}

        def check(item) -> str | None:
            name, host = item
            try:
                with agent.responder.sessions.session(host) as session:
                    applets = applets_on(session)
            except SessionError as exc:
                return f"{name}: could not check for the tool's dead-man applets ({exc.reason})"
            unknown = [a.name for a in applets if a.name not in known]
            if not unknown:
                return None
            return (f"{name}: the tool's dead-man applet {', '.join(unknown)} is on the router but not in "
                    "this state store (a lost store, or another agent's): left to its countdown; "
                    f"`collector disarm --from-routers --hosts {name}` puts the router back now")

        hosts = sorted(agent.inventory.hosts.items())
        with ThreadPoolExecutor(max_workers=max(1, min(20, len(hosts))), thread_name_prefix="startup") as pool:
            return [line for line in pool.map(check, hosts) if line]

    def verdicts(self, incidents: set[str]) -> list[str]:
        """`router: verdict` for each router released for one of `incidents`."""
        return [f"{router}: {verdict}" for incident, router, verdict in self.agent.worker.released
                if incident in incidents]

"""Joining flows to a router that another incident already armed: the flow's own peer
condition (and the IKE debug of its version), with the dead-man applet re-entered to
undo them too. Several flows waiting for one router join in one session (`join_many`):
one log read, one applet re-entry and their conditions, instead of one of each per flow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from collector.core.results import ArmResult, LogSnapshot, RouterChange
from collector.core.states import StepScope
from collector.core.steps import Step
from collector.inventory import Host
from collector.detect.logread import split_show_logging
from collector.respond.arming import Arming, ArmStopped, count_cuts_log, log_before_arming, log_timeout
from collector.respond.base import NO_LOGGING, VERIFY_CONDITIONS, VERIFY_DEBUGS, is_applet_step
from collector.respond.deadman import DeadmanError, build_applet
from collector.respond.debugstate import parse_debug_state
from collector.respond.facts import (LOG_HEADER_COMMAND, DeviceProfile, PeerAddress, checked_result, read_pre_arm_log,
                                     unless_refused)
from collector.respond.plan import ArmPlan, PlanError, build_arm_plan
from collector.respond.sending import sets_a_condition, typed_ahead_steps
from collector.sessions import RouterSession, SessionError
from collector.timeutil import utcnow


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """One flow to join to a router armed by incident `holder_incident_id`."""

    peer: PeerAddress
    incident_id: str
    holder_incident_id: str


class _JoinLedger:
    """The step ledger's part of one join batch on one router. Every flow's steps are
    recorded `pending` in one write before the first is sent (two writes a flow made the
    tenth flow of a busy hub's batch wait on the state store for the nine before it), and
    the sent ones marked `applied` in one write at the end (`settle`), which also drops
    what was recorded and not sent. A flow that fails has its unsent steps dropped first
    (`drop_unsent`): its undo must touch only what it sent.

    Threads: one batch, one thread (the batch's leader)."""

    def __init__(self, store, router: str):
        self.store = store
        self.router = router
        self._recorded: dict[str, set[int]] = {}  # incident -> indexes recorded pending
        self._sent: dict[str, list[int]] = {}  # incident -> indexes sent, in order

    def record_batch(self, requests: dict[int, JoinRequest], numbered: dict[int, list[tuple[int, Step]]],
                     applet: tuple[int, Step] | None) -> None:
        """Record each flow's steps but those an earlier flow of the batch sends (a flow
        that fails leaves its steps to the next: `record_also`), and the applet's re-entry."""
        rows: list[tuple[str, int, Step]] = []
        if applet is not None:
            rows.append((requests[applet[0]].incident_id, 0, applet[1]))
        earlier: set[Step] = set()
        for n, steps in numbered.items():
            rows += [(requests[n].incident_id, index, step) for index, step in steps if step not in earlier]
            earlier.update(step for _index, step in steps)
        self._write(rows)

    def record_also(self, incident_id: str, steps: list[tuple[int, Step]]) -> None:
        """Record those of `steps` not recorded yet (a step a failed flow left to this one)."""
        mine = self._recorded.get(incident_id, set())
        self._write([(incident_id, index, step) for index, step in steps if index not in mine])

    def sent_by(self, incident_id: str) -> list[int]:
        """The list `_send_recorded` adds this incident's sent steps to."""
        return self._sent.setdefault(incident_id, [])

    def drop_unsent(self, incident_id: str) -> None:
        self._forget_unsent([incident_id])

    def settle(self) -> None:
        self.store.steps_applied_of(self.router, [(i, index) for i, sent in self._sent.items() for index in sent])
        self._forget_unsent(list(self._recorded))
        self._sent.clear()

    def _forget_unsent(self, incidents: list[str]) -> None:
        unsent = [(incident_id, index) for incident_id in incidents
                  for index in sorted(self._recorded.pop(incident_id, set()) - set(self._sent.get(incident_id, ())))]
        if unsent:
            self.store.forget_steps_of(self.router, unsent)

    def _write(self, rows: list[tuple[str, int, Step]]) -> None:
        if rows:
            self.store.begin_steps_of(self.router, rows)
            for incident_id, index, _step in rows:
                self._recorded.setdefault(incident_id, set()).add(index)


class Joining(Arming):
    """`join` and `join_many` (see the module's docstring); arming itself is `Arming`'s."""

    def join(self, host: Host, peer: PeerAddress, incident_id: str, window: timedelta, *,
             holder_incident_id: str, log_later: bool = False) -> ArmResult:
        """Arm a router that incident `holder_incident_id` already armed, for one more flow.

        Sends only what this flow lacks: its `debug crypto condition peer` and the IKE
        debug of its tunnel when the router was armed for the other IKE version (ikev2 on
        a hub armed for isakmp, and the reverse). First the dead-man applet is re-entered
        with a countdown that covers this flow's window and with the undo of the new steps
        (re-entering `event manager applet NAME` edits it and re-registers the countdown).
        The log as it stood before (`pre_arm_log`: debug lines already there were printed
        for the other flow, before this one was armed) is read after the steps and cut back
        to the header's count read before them; read first when that count cannot cut it
        (as `arm`). `log_later`: as `arm`'s, the count is left in `log_due_as_of`.
        When nothing of the holder's is recorded on the router, it arms fully (`arm`) and
        says so in `notes` (`joined` False). The caller must not run an arm and a join of
        one router at the same time.
        Failure undoes this flow's steps; never raises for a router problem.

        Raises:
            StateStoreError: as `arm`.
        """
        return self.join_many(host, [JoinRequest(peer, incident_id, holder_incident_id)], window,
                              log_later=log_later)[0]

    def _arm_on_its_own(self, host: Host, request: JoinRequest, window: timedelta) -> ArmResult:
        # Nothing of the holder's is recorded here (its arm failed, was refused, or has
        # not started): joining would arm debugs without the logging change and the
        # dead-man applet. Arm fully instead.
        result = self.arm(host, request.peer, request.incident_id, window)
        note = f"{host.name} was not armed by incident {request.holder_incident_id}: armed for this flow on its own"
        return replace(result, joined=False, notes=result.notes + (note,))

    def join_many(self, host: Host, requests: Sequence[JoinRequest], window: timedelta, *,
                  log_later: bool = False) -> list[ArmResult]:
        """`join` for several flows at once, one result per request in order.

        In one session: the log's count read once (every flow's `pre_arm_log` is the log
        as it stood then: nothing of theirs was on), the router's debugs and conditions
        read once, each flow's steps planned against them and the steps planned before it (a debug two flows
        need is sent once, by the first), the dead-man applet re-entered once with the
        undo of all of them, then each flow's steps. A flow whose step is refused has its
        own steps undone and fails alone; a lost session fails those not yet armed. A
        flow whose holder recorded nothing here is armed on its own first.

        Raises:
            StateStoreError: as `arm`.
        """
        results: dict[int, ArmResult] = {}
        batch = {}
        for n, request in enumerate(requests):
            if self.store.armed_steps(host.name, request.holder_incident_id):
                batch[n] = request
            else:
                results[n] = self._arm_on_its_own(host, request, window)
        if batch:
            results.update(self._join_in_one_session(host, batch, window, log_later))
        return [results[n] for n in range(len(requests))]

    def _join_in_one_session(self, host: Host, requests: dict[int, JoinRequest],
                             window: timedelta, log_later: bool) -> dict[int, ArmResult]:
        results: dict[int, ArmResult] = {}
        applied: dict[int, list[RouterChange]] = {}
        # flows a step of which the router refused: undone once its session is given back
        # (the pool lends a router's session to one holder at a time; an undo asking for
        # it from inside waited for ever, and the hub with it)
        refused: dict[int, tuple[str, list[RouterChange]]] = {}
        log = _PreJoinLog(log_later)
        ledger = _JoinLedger(self.store, host.name)
        try:
            profile = self.profile(host)
            with self.sessions.session(host) as session:
                # the header first (its count marks the moment before the steps), and every
                # peer's live IKE session the configuration does not tell, in one round trip
                header, debugging, conditions, *ike = session.run_many(
                    (LOG_HEADER_COMMAND, VERIFY_DEBUGS, VERIFY_CONDITIONS,
                     *self._ike_reads(host, profile, [r.peer for r in requests.values()])))
                log.start(session, host, profile, checked_result(session, header).text)
                state = parse_debug_state(checked_result(session, debugging).text,
                                          conditions.text if unless_refused(conditions) else None)
                self._learn_ike_from(host, ike)
                plans = self._plan_joins(host, profile, requests, window, state, results)
                every = list(dict.fromkeys(step for plan in plans.values() for step in plan.steps))
                applet = self._reentered_applet(host, every, window + self.playbook.guards.deadman_grace) \
                    if every else None
                first = next(iter(plans), None)
                # each flow's steps, numbered after the applet's (index 0 of the first flow:
                # its undo is empty, the holder's install step removes the applet)
                numbered = {n: list(enumerate(plan.steps, 1 if (applet is not None and n == first) else 0))
                            for n, plan in plans.items()}
                ledger.record_batch(requests, numbered, (first, applet) if applet is not None else None)
                if applet is not None and first is not None:
                    applied[first] = self._send_recorded(session, host, requests[first].incident_id, [(0, applet)],
                                                         ledger.sent_by(requests[first].incident_id))
                on: list[Step] = []  # sent for a flow now armed: the next flows need not send it again
                numbered = self._conditions_at_once(session, host, requests, numbered, ledger, applied, refused, on)
                for n, steps in numbered.items():
                    # chosen now, not when planned: a failed flow's steps are to be undone, so a
                    # later flow that needs one of them sends it itself
                    steps = [(index, step) for index, step in steps if step not in on]
                    incident_id = requests[n].incident_id
                    try:
                        ledger.record_also(incident_id, steps)
                        applied.setdefault(n, []).extend(
                            self._send_recorded(session, host, incident_id, steps, ledger.sent_by(incident_id)))
                    except ArmStopped as exc:
                        ledger.drop_unsent(incident_id)  # its undo must touch only what it sent
                        refused[n] = (exc.reason, applied.pop(n, []) + exc.changes)
                        continue
                    on += [step for _index, step in steps]
                    notes = () if applet is not None or not steps else (
                        f"no dead-man applet of incident {requests[n].holder_incident_id} recorded on {host.name}: "
                        "countdown not extended",)
                    results[n] = ArmResult(host.name, True, joined=True, changes=tuple(applied[n]), armed_at=utcnow(),
                                           skipped=plans[n].skipped, notes=notes)
                ledger.settle()
                log.finish(session, host)
        except PlanError as exc:  # the applet could not be built: nothing was sent
            for n in requests:
                results.setdefault(n, ArmResult(host.name, False, joined=True, refused=True,
                                                error=f"not armed: {exc}"))
            return log.given_to(results)
        except ArmStopped as exc:  # the applet's re-entry: nothing of any flow was sent after it
            reason = exc.reason
            applied.setdefault(first, []).extend(exc.changes)
        except SessionError as exc:
            reason = exc.reason
        else:
            self._undo_refused(host, requests, refused, results)
            return log.given_to(results)
        ledger.settle()  # what was sent stays recorded (and is undone below); the rest is dropped
        self._undo_refused(host, requests, refused, results)
        for n, request in requests.items():
            if n not in results:
                results[n] = self._join_failed(host, request, reason, applied.get(n, []))
        return log.given_to(results)

    def _conditions_at_once(self, session: RouterSession, host: Host, requests: dict[int, JoinRequest],
                            numbered: dict[int, list[tuple[int, Step]]], ledger: "_JoinLedger",
                            applied: dict[int, list[RouterChange]],
                            refused: dict[int, tuple[str, list[RouterChange]]],
                            on: list[Step]) -> dict[int, list[tuple[int, Step]]]:
        """Every flow's debug conditions (the steps each flow's list starts with), typed ahead
        in one write: one round trip for the batch, not one a flow. A condition only narrows
        what the debugs print, so none waits for another's answer; the debugs a flow adds
        after them go in its own turn, once its condition was seen accepted. A flow whose
        condition the router refused goes to `refused`. Returns each remaining flow's
        steps still to send.

        Raises:
            SessionError: the session failed (the conditions sent are marked failed first:
                any may be on, and their undo must run)."""
        leading: dict[int, list[tuple[int, Step]]] = {}
        taken: set[Step] = set(on)  # a condition two flows need goes once, for the first (the other's turn
        for n, steps in numbered.items():  # skips it once on, or sends it itself if the first failed)
            leading[n] = [item for item in _leading(steps, sets_a_condition) if item[1] not in taken]
            taken.update(step for _index, step in leading[n])
        typed = [(n, item) for n, items in leading.items() for item in items]
        if len(typed) < 2:
            return numbered
        try:
            outcomes = typed_ahead_steps(session, [step.do for _n, (_index, step) in typed])
            lost = None
        except SessionError as exc:
            outcomes, lost = [(None, exc.reason)] * len(typed), exc
        answers = iter(outcomes)
        rest: dict[int, list[tuple[int, Step]]] = {}
        for n, items in leading.items():
            incident_id = requests[n].incident_id
            failure = self._record_run(host, incident_id, items, [next(answers) for _item in items],
                                       ledger.sent_by(incident_id), applied.setdefault(n, []))
            if failure is not None:
                ledger.drop_unsent(incident_id)  # its undo must touch only what it sent
                refused[n] = (failure, applied.pop(n, []))
                continue
            on += [step for _index, step in items]
            rest[n] = [item for item in numbered[n] if item not in items]
        if lost is not None:
            raise lost
        return rest

    def _undo_refused(self, host: Host, requests: dict[int, JoinRequest],
                      refused: dict[int, tuple[str, list[RouterChange]]], results: dict[int, ArmResult]) -> None:
        """Undo the flows the router refused a step of, the batch's session given back. A
        step a later flow of the batch holds too stays on (the undo leaves other incidents'
        steps alone)."""
        for n, (reason, changes) in refused.items():
            results[n] = self._join_failed(host, requests[n], reason, changes)

    def _plan_joins(self, host: Host, profile, requests: dict[int, JoinRequest],
                    window: timedelta, state, results: dict[int, ArmResult]) -> dict[int, ArmPlan]:
        """Each flow's plan against the router's debugs before the batch; a flow that
        cannot be planned gets its refusal in `results`."""
        plans = {}
        for n, request in requests.items():
            # no session: every peer's live IKE session was read for the batch (`_ike_reads`)
            facts, also = self._facts(host, request.peer, profile, NO_LOGGING)
            try:
                plan = build_arm_plan(self.playbook, facts, request.peer, request.incident_id, window,
                                      already_on=state, with_deadman=False, include_logging=False, also_ike=also)
            except PlanError as exc:
                results[n] = ArmResult(host.name, False, joined=True, refused=True, error=f"not armed: {exc}")
                continue
            plans[n] = plan
        return plans

    def _join_failed(self, host: Host, request: JoinRequest, reason: str, changes: list[RouterChange]) -> ArmResult:
        failed = self._arm_failed(host, request.incident_id, reason, changes, None)
        return ArmResult(host.name, False, joined=True, error=failed.error, changes=failed.changes)

    def _reentered_applet(self, host: Host, new_steps: list[Step], cover: timedelta) -> Step | None:
        """The step that re-enters the router's dead-man applet: a countdown lasting until
        the later of its current deadline and now + `cover`, and the undo of `new_steps`
        first, then that of every step recorded on the router. None when no applet is
        recorded (armed without one). Its undo is empty: removing the applet is the
        original install step's undo.

        Raises:
            PlanError: the applet cannot be built."""
        recorded = self.store.armed_steps(host.name)
        applets = [a for a in recorded if is_applet_step(a.step)]
        if not applets:
            return None
        latest = max(applets, key=lambda a: a.updated_at)
        header = latest.step.do[0]
        name = header.split()[3]
        previous_actions = sum(1 for line in latest.step.do if line.startswith(" action "))
        others = sorted((a for a in recorded if not is_applet_step(a.step) and a.step.undo),
                        key=lambda a: (a.incident_id, a.index), reverse=True)
        undo = [(s.mode, s.undo) for s in reversed(new_steps)] + [(a.step.mode, a.step.undo) for a in others]
        now = utcnow()
        with self._lock:
            deadline = max(self._deadlines.get(host.name, now), now + cover)
            self._deadlines[host.name] = deadline
        countdown = math.ceil((deadline - now).total_seconds())
        try:
            applet = build_applet(name, countdown, undo, authorization_bypass=header.endswith("authorization bypass"),
                                  replaces_actions=previous_actions)
        except DeadmanError as exc:
            raise PlanError(str(exc)) from None
        return Step(do=applet.config_lines, undo=(), mode="config", scope=StepScope.ROUTER,
                    why=f"dead-man switch re-entered: fires in {countdown}s, also undoes this flow's steps")


def _leading(steps: list[tuple[int, Step]], test) -> list[tuple[int, Step]]:
    """The steps at the head of `steps` that pass `test`."""
    head = []
    for item in steps:
        if not test(item[1]):
            break
        head.append(item)
    return head


class _PreJoinLog:
    """The log as it stood before a batch of joins, for each of them: the header's count
    read before the first step and the whole log read after the last, cut back to it (a
    10 MB buffer read first held every flow of the batch back by that read); read whole
    first when the count cannot cut it (no count, or a buffer behind a discriminator)."""

    def __init__(self, log_later: bool) -> None:
        self.log_later = log_later  # the caller reads the log (`ArmResult.log_due_as_of`)
        self.snapshot: LogSnapshot | None = None
        self.count: int | None = None  # read after the steps: the cut
        self.notes: tuple[str, ...] = ()

    def start(self, session: RouterSession, host: Host, profile: DeviceProfile, header: str) -> None:
        """`header`: the log's header, read just before."""
        count = split_show_logging(header)[0].logged
        buffered = [ln for ln in profile.running_config.splitlines() if ln.startswith("logging buffered")]
        if count_cuts_log(count, buffered):
            self.count = count
        else:
            self.snapshot = read_pre_arm_log(session, log_timeout(host))

    def finish(self, session: RouterSession, host: Host) -> None:
        """After the steps: the log read now, unless the caller reads it (`log_later`)."""
        if self.count is not None and not self.log_later:
            self.snapshot, self.notes = log_before_arming(session, host, self.count)
            self.count = None

    def given_to(self, results: dict[int, ArmResult]) -> dict[int, ArmResult]:
        """Each result with the log, or (armed ones) with the count it is still due at."""
        return {n: replace(r, pre_arm_log=self.snapshot, notes=r.notes + self.notes,
                           log_due_as_of=self.count if r.armed and self.log_later else None)
                for n, r in results.items()}

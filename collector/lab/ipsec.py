"""The IKE/IPsec SA model of one tunnel: SPIs, lifetimes, counters, rekeys and faults.

Both ends of a tunnel share SA generation objects: an end "has" an SA when it holds the
generation, so the inbound SPI of one end is by construction the outbound SPI of the
other. Faults are expressed by one end dropping what it holds:

* desync (and the silent variants): the receiver loses its IKE and IPsec SAs; the sender
  keeps encrypting with its stale outbound SPI. The receiver logs
  `%CRYPTO-4-RECVD_PKT_INV_SPI` once per lab minute (IOS rate limit) until recovery:
  invalid-spi-recovery where Cisco 115801's table says it applies (IKEv1 only), DPD on
  the sender (interval * retries), or the sender's SA reaching its rekey time.
* rekey-transient: at its first rekey the sender uses the new SPI a moment before the
  receiver has installed it: exactly one log line, then healthy.

Counters are linear in time between state changes (RateCounter), so nothing needs to be
computed per tick; only discrete events go through the fleet's scheduler.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from collector.lab.topology import (
    DESYNC_AT,
    FAULT_SCENARIOS,
    RECOVERY_APPLIES,
    UNDER_WAY_SECONDS,
    DpdSetting,
    TunnelSpec,
)

if TYPE_CHECKING:
    from collector.lab.router import Router

SOFT_LIFETIME = 0.9  # rekey at 90 % of the lifetime
LINGER_SECONDS = 10.0  # old SAs stay listed this long after a rekey
RECOVERY_DELAY = 1.5  # seconds from the invalid-SPI line to the new SAs
LOG_INTERVAL = 60.0  # IOS logs RECVD_PKT_INV_SPI at most once a minute per flow
CHATTER_OFFSETS = (20.0, 40.0)  # debug lines (not rate limited) between two syslog lines
KB_LIFETIME = 4608000
PACKET_BYTES = 420


class Scheduler(Protocol):
    def at(self, when: float, callback: object) -> None: ...


class RateCounter:
    """value(t) = base + rate * (t - since), with the rate changed at state changes."""

    __slots__ = ("base", "rate", "since")

    def __init__(self, base: float = 0.0, rate: float = 0.0, since: float = 0.0):
        self.base, self.rate, self.since = base, rate, since

    def value(self, t: float) -> int:
        return int(self.base + self.rate * max(0.0, t - self.since))

    def set_rate(self, t: float, rate: float) -> None:
        self.base += self.rate * max(0.0, t - self.since)
        self.since = t
        self.rate = rate

    def bump(self, n: int) -> None:
        self.base += n


@dataclass(eq=False)
class SaGeneration:
    """One IPsec SA pair: spi_in[e] is what end e receives on (= the other end's outbound)."""

    spi_in: tuple[int, int]
    established: float
    lifetime: int
    conn: tuple[int, int]

    def remaining(self, t: float) -> int:
        return max(0, int(self.lifetime - (t - self.established)))


@dataclass(eq=False)
class IkeSa:
    established: float
    lifetime: int
    initiator: int
    conn: tuple[int, int]  # C-id / conn-id at each end
    spi_i: str
    spi_r: str
    session: tuple[int, int]

    def remaining(self, t: float) -> int:
        return max(0, int(self.lifetime - (t - self.established)))


@dataclass(eq=False)
class EndState:
    ike: IkeSa | None = None
    sa: SaGeneration | None = None
    old: list[tuple[SaGeneration, float]] = field(default_factory=list)
    up_since: float = 0.0
    encaps: RateCounter = field(default_factory=RateCounter)
    decaps: RateCounter = field(default_factory=RateCounter)
    invalid: RateCounter = field(default_factory=RateCounter)  # #pkts invalid sa (rcv)

    def sas(self, t: float) -> list[SaGeneration]:
        """Current SA first, then lingering old ones not yet deleted."""
        out = [self.sa] if self.sa is not None else []
        out += [g for g, until in self.old if until > t]
        return out


class TunnelRuntime:
    """Live SA state of one tunnel between two Router objects."""

    def __init__(self, spec: TunnelSpec, routers: tuple[Router, Router], sched: Scheduler, seed: int):
        self.spec = spec
        self.routers = routers
        self.sched = sched
        self.rng = random.Random(f"{seed}:sa:{spec.id}")
        self.ends = (EndState(), EndState())
        self.epoch = 0  # bumped on every renegotiation; stale scheduled events check it
        self.fault: str | None = None  # "desync" while the receiver has lost its SAs
        self.fault_since = 0.0
        self.fault_epoch = 0
        self.dpd_scheduled = False
        self.transient_done = False
        self.inv_spi_lines = 0
        self.recoveries: list[tuple[float, str]] = []  # (lab time, reason) for tests
        t_ipsec = -spec.ipsec_age
        t_ike = -spec.ike_age
        ike = self._new_ike(t_ike, initiator=0)
        gen = self._new_generation(t_ipsec)
        for e in (0, 1):
            self.ends[e].ike = ike
            self.ends[e].sa = gen
            self.ends[e].up_since = t_ike
            # counters start as if traffic had flowed since the session came up
            self.ends[e].encaps = RateCounter(spec.rate_pps[e] * spec.ike_age * 0.6, 0.0, 0.0)
            self.ends[e].decaps = RateCounter(spec.rate_pps[1 - e] * spec.ike_age * 0.6, 0.0, 0.0)
        self._update_rates(0.0)
        self._schedule_rekey(gen)
        if spec.scenario in FAULT_SCENARIOS:
            # spread faults of different tunnels over the same second, as real flows are;
            # a desync-under-way began before the lab did (its lines are in the buffer at start)
            start = -UNDER_WAY_SECONDS if spec.scenario == "desync-under-way" else DESYNC_AT
            sched.at(start + (spec.index % 7) * 0.131, lambda t, ep=self.epoch: self._start_desync(t, ep))

    # -- helpers -----------------------------------------------------------------

    @property
    def sender(self) -> int:
        return self.spec.sender

    @property
    def receiver(self) -> int:
        return self.spec.receiver

    def _spi(self) -> int:
        while True:
            value = self.rng.getrandbits(32)
            if 0x1000 < value < 0xFF000000:  # CSCvp16730: never start with 0xFF
                return value

    def _new_generation(self, t: float) -> SaGeneration:
        conn = (self.routers[0].alloc_conn_id(), self.routers[1].alloc_conn_id())
        return SaGeneration((self._spi(), self._spi()), t, self.spec.ipsec_lifetime, conn)

    def _new_ike(self, t: float, initiator: int) -> IkeSa:
        conn = (self.routers[0].alloc_ike_id(), self.routers[1].alloc_ike_id())
        session = (self.routers[0].alloc_session_id(), self.routers[1].alloc_session_id())
        return IkeSa(
            t,
            self.spec.ike_lifetime,
            initiator,
            conn,
            f"{self.rng.getrandbits(64):016X}",
            f"{self.rng.getrandbits(64):016X}",
            session,
        )

    def _update_rates(self, t: float) -> None:
        rate = self.spec.rate_pps
        for e in (0, 1):
            o = 1 - e
            me, other = self.ends[e], self.ends[o]
            me.encaps.set_rate(t, rate[e] if me.sa is not None else 0.0)
            if other.sa is not None and me.sa is other.sa:
                me.decaps.set_rate(t, rate[o])
                me.invalid.set_rate(t, 0.0)
            elif other.sa is not None:
                me.decaps.set_rate(t, 0.0)
                me.invalid.set_rate(t, rate[o])
            else:
                me.decaps.set_rate(t, 0.0)
                me.invalid.set_rate(t, 0.0)

    def _schedule_rekey(self, gen: SaGeneration) -> None:
        when = gen.established + SOFT_LIFETIME * gen.lifetime
        epoch = self.epoch
        self.sched.at(when, lambda t: self._rekey_due(t, epoch, gen))
        ike = self.ends[0].ike or self.ends[1].ike
        if ike is not None:
            self.sched.at(ike.established + SOFT_LIFETIME * ike.lifetime, lambda t: self._ike_rekey_due(t, epoch, ike))

    def dpd_of(self, end: int) -> DpdSetting | None:
        router = self.routers[end]
        return router.state.isakmp_keepalive if self.spec.ike_version == 1 else router.spec.ikev2_dpd

    def recovery_applies(self) -> bool | None:
        """Does the receiver's invalid-spi-recovery (as configured now) resync this tunnel?"""
        applies = RECOVERY_APPLIES[self.spec.ends[self.receiver].config_type]
        if applies is None or self.spec.ike_version != 1:
            return None
        return bool(applies and self.routers[self.receiver].state.invalid_spi_recovery)

    # -- rekeys ------------------------------------------------------------------

    def _rekey_due(self, t: float, epoch: int, gen: SaGeneration) -> None:
        if epoch != self.epoch or not any(self.ends[e].sa is gen for e in (0, 1)):
            return
        if self.fault is not None:
            # the sender's SA reached its lifetime: it negotiates afresh and the peers resync
            self.renegotiate(t, "sender SA lifetime expired")
            return
        self._rekey(t)

    def _rekey(self, t: float) -> None:
        old = self.ends[0].sa
        gen = self._new_generation(t)
        initiator = self.sender if self.spec.scenario == "rekey-transient" else self.rng.randrange(2)
        for e in (0, 1):
            if old is not None:
                self.ends[e].old.append((old, t + LINGER_SECONDS))
            self.ends[e].sa = gen
        self._update_rates(t)
        self._schedule_rekey(gen)
        self.sched.at(t + LINGER_SECONDS + 0.001, self._purge_old)
        for e in (0, 1):
            self.routers[e].debug_rekey(t, self, e, initiator == e, old, gen)
        if self.spec.scenario == "rekey-transient" and not self.transient_done:
            # the sender switched to the new SPI a moment before the receiver installed it
            self.transient_done = True
            rx = self.receiver
            self.ends[rx].invalid.bump(3)
            self._log_inv_spi(t + 0.004, gen.spi_in[rx])

    def _ike_rekey_due(self, t: float, epoch: int, ike: IkeSa) -> None:
        if epoch != self.epoch or self.fault is not None:
            return
        if not all(self.ends[e].ike is ike for e in (0, 1)):
            return
        new = self._new_ike(t, initiator=self.rng.randrange(2))
        for e in (0, 1):
            self.ends[e].ike = new
        self.sched.at(
            new.established + SOFT_LIFETIME * new.lifetime, lambda t2, ep=self.epoch: self._ike_rekey_due(t2, ep, new)
        )

    def _purge_old(self, t: float) -> None:
        for end in self.ends:
            end.old = [(g, until) for g, until in end.old if until > t]

    def renegotiate(self, t: float, reason: str) -> None:
        """Both ends build new IKE and IPsec SAs (recovery, DPD restart, clear, reboot)."""
        self.epoch += 1
        ike = self._new_ike(t, initiator=self.receiver if reason == "invalid-spi-recovery" else self.sender)
        gen = self._new_generation(t)
        for e in (0, 1):
            end = self.ends[e]
            end.ike = ike
            end.sa = gen
            end.old = []
            end.up_since = t
        was_fault = self.fault
        self.fault = None
        self.dpd_scheduled = False
        self._update_rates(t)
        self._schedule_rekey(gen)
        if was_fault:
            self.recoveries.append((t, reason))
        for e in (0, 1):
            self.routers[e].debug_renegotiate(t, self, e, reason, gen)

    def lose_end(self, t: float, end: int) -> None:
        """One end forgets every SA it had (reload); the other keeps its own."""
        state = self.ends[end]
        state.ike = None
        state.sa = None
        state.old = []
        self.epoch += 1
        self._update_rates(t)

    # -- desync ------------------------------------------------------------------

    def _start_desync(self, t: float, epoch: int) -> None:
        if epoch != self.epoch:
            return
        rx = self.ends[self.receiver]
        rx.ike = None
        rx.sa = None
        rx.old = []
        self.fault = "desync"
        self.fault_since = t
        self.fault_epoch = self.epoch
        self._update_rates(t)
        self._check_dpd(t)
        self._inv_spi_due(t + 0.25, self.epoch)

    def _check_dpd(self, t: float) -> None:
        dpd = self.dpd_of(self.sender)
        if dpd is None or self.dpd_scheduled:
            return
        self.dpd_scheduled = True
        epoch = self.epoch
        when = max(t, self.fault_since + dpd.teardown_after)
        self.sched.at(when, lambda t2: self._dpd_fired(t2, epoch))

    def _dpd_fired(self, t: float, epoch: int) -> None:
        if epoch != self.epoch or self.fault is None:
            return
        if self.dpd_of(self.sender) is None:  # DPD was removed meanwhile
            self.dpd_scheduled = False
            return
        self.routers[self.sender].debug_dpd_teardown(t, self, self.sender)
        self.renegotiate(t + 0.5, "DPD")

    def _inv_spi_due(self, t: float, epoch: int) -> None:
        """One invalid-SPI event for the flow; reschedules itself every LOG_INTERVAL."""
        if epoch != self.epoch or self.fault is None:
            return
        self.sched.at(t, lambda t2: self._inv_spi_event(t2, epoch))

    def _inv_spi_event(self, t: float, epoch: int) -> None:
        if epoch != self.epoch or self.fault is None:
            return
        tx = self.ends[self.sender]
        if tx.sa is None:
            return
        spi = tx.sa.spi_in[self.receiver]  # the sender's outbound SPI
        silent = self.spec.scenario in ("asr-silent", "nat-t-silent")
        if not silent:
            self._log_inv_spi(t, spi)
        self.routers[self.sender].debug_sender_chatter(t + 0.8, self, self.sender, spi)
        self._check_dpd(t)
        if not silent and self.recovery_applies():
            self.routers[self.receiver].debug_recovery(t + 0.01, self, self.receiver, spi)
            self.sched.at(t + RECOVERY_DELAY, lambda t2: self._recover(t2, epoch))
            return
        if not silent:
            self.routers[self.receiver].debug_no_ike_sa(t + 0.001, self, self.receiver, spi)
        # Between the rate-limited syslog lines the packets keep coming: debugs (not rate
        # limited) show the receiver's failed notifies and the sender's unchanged SA.
        for offset in CHATTER_OFFSETS:
            self.sched.at(t + offset, lambda t2: self._chatter(t2, epoch, spi, silent))
        self.sched.at(t + LOG_INTERVAL, lambda t2: self._inv_spi_event(t2, epoch))

    def _chatter(self, t: float, epoch: int, spi: int, silent: bool) -> None:
        if epoch != self.epoch or self.fault is None:
            return
        if not silent:
            self.routers[self.receiver].debug_no_ike_sa(t, self, self.receiver, spi)
        self.routers[self.sender].debug_sender_chatter(t + 0.8, self, self.sender, spi)

    def _recover(self, t: float, epoch: int) -> None:
        if epoch == self.epoch and self.fault is not None:
            self.renegotiate(t, "invalid-spi-recovery")

    def _log_inv_spi(self, t: float, spi: int) -> None:
        rx_spec = self.spec.ends[self.receiver]
        tx_spec = self.spec.ends[self.sender]
        router = self.routers[self.receiver]
        # real/syslog/inv_spi_variants.txt 1-3, 6: `input interface=` on some images only
        text = (
            "%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
            f"destaddr={rx_spec.local_addr}, prot=50, spi=0x{spi:08X}({spi}), srcaddr={tx_spec.public_addr}"
        )
        if router.spec.inv_spi_interface:
            text += f", input interface={router.spec.platform.wan_if}"
        self.inv_spi_lines += 1
        router.log_message(t, 4, text)

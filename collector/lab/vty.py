"""A router's vty lines: who holds each, and `show users`.

SSH sessions hold a line from TCP accept to close, EEM applets hold one while their
`action cli` commands run, and the `vty_held` fault holds lines for sessions of other
people (an operator's idle sessions). A router has `line vty 0 4` (5 lines) unless its
configuration says more; with every line held, new SSH connections are refused and an
applet's CLI actions fail (docs/real-routers.md).

`show users` layout from a real capture: ntc-templates
tests/cisco_ios/show_users/cisco_ios_show_users.raw (header, `* 10 vty 0     arm        idle
                 00:00:00 81.95.35.222`, blank line, the `Interface ... Peer Address` header).
The line number is the absolute tty number: con 0 is 0, aux 0 is 1, vty 0 is 2 (ISR layout).
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_VTY_TTY = 2
# the lines other people hold (`vty_held` fault): who they are, as show users prints them
HELD_USER = "noc"
HELD_LOCATION = "192.0.2.{n}"  # documentation addresses: shown, never contacted


@dataclass
class Holder:
    kind: str  # "ssh" | "eem" | "held"
    user: str = ""
    location: str = ""
    last_input: float = 0.0  # lab seconds of the last command (idle time)
    session: object | None = None  # the CliSession on this line, once it has one


class VtyPool:
    def __init__(self) -> None:
        self.lines: dict[int, Holder] = {}

    def take(self, capacity: int, holder: Holder) -> int | None:
        """The lowest free line below `capacity`, now held by `holder`; None when all are held."""
        for index in range(capacity):
            if index not in self.lines:
                self.lines[index] = holder
                return index
        return None

    def release(self, index: int) -> None:
        self.lines.pop(index, None)

    def free(self, capacity: int) -> int:
        return max(0, capacity - sum(1 for i in self.lines if i < capacity))

    def sync_held(self, capacity: int, wanted: int, now: float) -> None:
        """Hold `wanted` lines for other people (as many as are free), releasing the surplus."""
        held = sorted(i for i, h in self.lines.items() if h.kind == "held")
        while len(held) > wanted:
            self.release(held.pop())
        while len(held) < wanted:
            n = len(held) + 1
            index = self.take(capacity, Holder("held", HELD_USER, HELD_LOCATION.format(n=n), now - 600.0 * n))
            if index is None:
                break
            held.append(index)


def _idle(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def show_users(pool: VtyPool, current: object | None, now: float) -> str:
    """`show users`: one row per held vty line, `*` on the asking session's own line."""
    out = ["    Line       User       Host(s)              Idle       Location"]
    for index in sorted(pool.lines):
        holder = pool.lines[index]
        mark = "*" if current is not None and holder.session is current else " "
        line = f"vty {index}"
        out.append(
            f"{mark}{FIRST_VTY_TTY + index:>3} {line:<10}{holder.user:<11}{'idle':<21}"
            f"{_idle(now - holder.last_input):>8} {holder.location}".rstrip()
        )
    out += ["", "  Interface    User               Mode         Idle     Peer Address", ""]
    return "\n".join(out)

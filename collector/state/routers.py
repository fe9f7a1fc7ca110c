"""What the store knows of routers beside incidents: unknown sources, QFP baselines, addresses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address, ip_address

from collector.state.database import Database
from collector.state.records import QfpReading, RouterAddress, ts


class RouterTables(Database):
    """Per-router facts the agent learns while it runs."""

    # -- unknown sources -----------------------------------------------------------

    def note_unknown_source(self, router: str, src: str, reason: str, at: datetime) -> None:
        """Count a line whose srcaddr is no inventory router and no configured peer.

        Raises:
            ValueError: `src` is not an IP address.
            StateStoreError: the file cannot be written, or `at` has no time zone.
        """
        with self._write() as conn:
            self._count_unknown_sources(conn, [(router, src, reason, at)])

    @staticmethod
    def _count_unknown_sources(conn, lines: Iterable[tuple[str, str, str, datetime]]) -> None:
        """Within a write transaction: count each (router, src, reason, at) line, in order.

        Raises:
            ValueError: a src is not an IP address.
            StateStoreError: an `at` has no time zone."""
        for router, src, reason, at in lines:
            conn.execute(
                "INSERT INTO unknown_sources VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (router, src) DO UPDATE"
                " SET lines = lines + 1, last_seen = excluded.last_seen, reason = excluded.reason",
                (router, str(ip_address(src)), ts(at), ts(at), reason))

    def unknown_sources(self) -> list[dict]:
        """Sources of invalid-SPI lines that are no inventory router and no configured peer, latest first.

        Raises:
            StateStoreError: the file cannot be read.
        """
        rows = self._read("SELECT * FROM unknown_sources ORDER BY last_seen DESC, router, src")
        return [{"router": r["router"], "src": r["src"], "lines": r["lines"], "first_seen": r["first_seen"],
                 "last_seen": r["last_seen"], "reason": r["reason"]} for r in rows]

    # -- QFP counters -----------------------------------------------------------------

    def qfp_counters(self, router: str) -> QfpReading | None:
        """The router's last QFP drop counter values, None before the first reading.

        Raises:
            StateStoreError: the file cannot be read.
        """
        rows = self._read("SELECT name, value, read_at FROM qfp_counters WHERE router = ?", (router,))
        if not rows:
            return None
        return QfpReading(
            router=router,
            counters={r["name"]: r["value"] for r in rows},
            read_at=max(datetime.fromisoformat(r["read_at"]) for r in rows),
        )

    def save_qfp_counters(self, router: str, counters: Mapping[str, int], at: datetime) -> None:
        """Replace the router's last counter values (the baseline for the next delta).

        Raises:
            StateStoreError: the file cannot be written, or `at` has no time zone.
        """
        with self._write() as conn:
            conn.execute("DELETE FROM qfp_counters WHERE router = ?", (router,))
            conn.executemany(
                "INSERT INTO qfp_counters VALUES (?, ?, ?, ?)",
                [(router, name, int(value), ts(at)) for name, value in counters.items()],
            )

    # -- discovered addresses -------------------------------------------------------------

    def save_addresses(self, router: str, addresses: Iterable[IPv4Address | IPv6Address], at: datetime) -> None:
        """Replace what is known of `router`'s own addresses (used to find a flow's other end).

        Raises:
            ValueError: one of `addresses` is not an IP address (nothing replaced).
            StateStoreError: the file cannot be written, or `at` has no time zone.
        """
        checked = sorted({str(ip_address(str(a))) for a in addresses})
        with self._write() as conn:
            conn.execute("DELETE FROM addresses WHERE router = ?", (router,))
            conn.executemany("INSERT INTO addresses VALUES (?, ?, ?)", [(router, a, ts(at)) for a in checked])

    def addresses(self, router: str | None = None) -> list[RouterAddress]:
        """What is known of the routers' own addresses (one router's, or all).

        Raises:
            StateStoreError: the file cannot be read.
        """
        sql, params = "SELECT * FROM addresses", []
        if router is not None:
            sql, params = sql + " WHERE router = ?", [router]
        return [
            RouterAddress(r["router"], ip_address(r["address"]), datetime.fromisoformat(r["seen_at"]))
            for r in self._read(sql + " ORDER BY router, address", params)
        ]

    def routers_with_address(self, address: IPv4Address | IPv6Address) -> list[str]:
        """Which routers own `address` (normally one; more means an overlap to report).

        Raises:
            ValueError: `address` is not an IP address.
            StateStoreError: the file cannot be read.
        """
        rows = self._read(
            "SELECT router FROM addresses WHERE address = ? ORDER BY router", (str(ip_address(str(address))),)
        )
        return [r[0] for r in rows]


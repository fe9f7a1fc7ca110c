"""The flow tracker's tables: its open windows, cooldowns, remembered event ids and
pending transients, per tracker (one per playbook).

A save writes what changed since the save before it, when the caller passes what that one
returned (`SavedTracker`): rewriting every window and event id took 0.11-0.19 s of the
loop thread, the one that decides arms, with the 5,580 open windows of a 10,000-router
fleet's scanners (one-line flows), once a second through a burst of lines. Without it,
the tracker is written whole (the first save of a process: what it restored is not known
to be what the store holds).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from collector.detect.tracker import FlowWindow, TrackerSnapshot, decode_key, decode_pair, encode_key, encode_pair
from collector.state.database import Database
from collector.state.records import now, ts

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class SavedTracker:
    """What the store holds of one tracker after a save: each window (with its key as
    stored) and each event id, with the `ord` that gives their order on load."""

    windows: dict[Hashable, tuple[int, FlowWindow]]
    window_keys: dict[Hashable, str]  # key -> its text in the table (encoded once)
    events: dict[str, tuple[int, datetime]]
    next_ord: int  # above every ord held


@dataclass(frozen=True)
class _Rows:
    write: list  # (key, value, ord)
    delete: list  # keys
    held: dict  # key -> (ord, value)
    next_ord: int


def _ordered_rows(held: dict[K, tuple[int, V]], items: Iterable[tuple[K, V]], next_ord: int,
                  same: Callable[[V, V], bool]) -> _Rows:
    """The rows to write and delete so that the table holds `items` in their order (by
    `ord`), given what it `held`. A row keeps its ord while it comes after the last row
    kept; a new item, or one closed and opened again since (it moved to the end), takes
    the next ord. Every item after such a one was added after it, so it is new too: no
    row is rewritten only to keep the order."""
    write, now_held, last = [], {}, -1
    for key, value in items:
        old = held.get(key)
        if old is not None and old[0] > last:
            position = old[0]
            if not same(old[1], value):
                write.append((key, value, position))
        else:
            position, next_ord = next_ord, next_ord + 1
            write.append((key, value, position))
        last = position
        now_held[key] = (position, value)
    return _Rows(write, [key for key in held if key not in now_held], now_held, next_ord)


def _same_window(a: FlowWindow, b: FlowWindow) -> bool:
    return a is b or a == b  # the tracker replaces a window it changes: mostly the same object


def _window_row(tracker: str, key_text: str, w: FlowWindow, position: int) -> tuple:
    return (tracker, key_text, position, ts(w.first_seen), ts(w.last_seen), w.count, int(w.repeated),
            None if w.pair is None else encode_pair(w.pair))


class TrackerTables(Database):
    """What each playbook's flow tracker remembers across runs."""

    def save_tracker(self, tracker: str, snapshot: TrackerSnapshot, since: SavedTracker | None = None
                     ) -> SavedTracker:
        """Store `snapshot` as the state of tracker `tracker`, atomically: only what changed
        since the save that returned `since`, or whole when `since` is None. Returns what
        the store now holds, for the next save.

        Raises:
            StateStoreError: the file cannot be written, or a time has no time zone;
                then the previous state stays (and `since` still describes it).
        """
        held = since or SavedTracker({}, {}, {}, 0)
        windows = _ordered_rows(held.windows, ((w.key, w) for w in snapshot.windows), held.next_ord, _same_window)
        events = _ordered_rows(held.events, snapshot.seen_events, windows.next_ord, lambda a, b: a == b)
        keys = dict(held.window_keys)  # a copy at C speed: only the keys of rows that change are touched
        for key in windows.delete:
            del keys[key]
        for key, _window, _position in windows.write:
            if key not in keys:
                keys[key] = encode_key(key)
        with self._write() as conn:
            if since is None:
                for table in ("flows", "seen_events"):
                    conn.execute(f"DELETE FROM {table} WHERE tracker = ?", (tracker,))
            conn.executemany("DELETE FROM flows WHERE tracker = ? AND key = ?",
                             [(tracker, held.window_keys[key]) for key in windows.delete])
            conn.executemany("INSERT OR REPLACE INTO flows VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             [_window_row(tracker, keys[key], w, position) for key, w, position in windows.write])
            conn.executemany("DELETE FROM seen_events WHERE tracker = ? AND event_id = ?",
                             [(tracker, event_id) for event_id in events.delete])
            conn.executemany("INSERT OR REPLACE INTO seen_events VALUES (?, ?, ?, ?)",
                             [(tracker, event_id, position, ts(at)) for event_id, at, position in events.write])
            # few: written whole each time
            for table in ("cooldowns", "pending_transients"):
                conn.execute(f"DELETE FROM {table} WHERE tracker = ?", (tracker,))
            conn.executemany("INSERT INTO cooldowns VALUES (?, 'flow', ?, ?)",
                             [(tracker, encode_key(k), ts(t)) for k, t in snapshot.flow_cooldowns])
            conn.executemany("INSERT INTO cooldowns VALUES (?, 'pair', ?, ?)",
                             [(tracker, encode_pair(p), ts(t)) for p, t in snapshot.pair_cooldowns])
            conn.executemany("INSERT INTO pending_transients VALUES (?, ?, ?)",
                             [(tracker, i, encode_key(k)) for i, k in enumerate(snapshot.pending_transients)])
            conn.execute("INSERT OR REPLACE INTO trackers VALUES (?, ?)", (tracker, ts(now())))
        return SavedTracker(windows.held, keys, events.held, events.next_ord)

    def load_tracker(self, tracker: str) -> TrackerSnapshot | None:
        """The last saved state of `tracker`, None if it was never saved.

        Raises:
            StateStoreError: the file cannot be read.
        """
        conn = self._connection()
        conn.execute("BEGIN")  # one consistent read across the tables
        try:
            if not conn.execute("SELECT 1 FROM trackers WHERE tracker = ?", (tracker,)).fetchall():
                return None
            flows = conn.execute("SELECT * FROM flows WHERE tracker = ? ORDER BY ord", (tracker,)).fetchall()
            cools = conn.execute("SELECT * FROM cooldowns WHERE tracker = ?", (tracker,)).fetchall()
            seen = conn.execute("SELECT * FROM seen_events WHERE tracker = ? ORDER BY ord", (tracker,)).fetchall()
            pending = conn.execute(
                "SELECT key FROM pending_transients WHERE tracker = ? ORDER BY ord", (tracker,)
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        return TrackerSnapshot(
            windows=tuple(
                FlowWindow(
                    key=decode_key(r["key"]),
                    first_seen=datetime.fromisoformat(r["first_seen"]),
                    last_seen=datetime.fromisoformat(r["last_seen"]),
                    count=r["count"],
                    repeated=bool(r["repeated"]),
                    pair=None if r["pair"] is None else decode_pair(r["pair"]),
                )
                for r in flows
            ),
            flow_cooldowns=tuple(
                (decode_key(r["key"]), datetime.fromisoformat(r["until"])) for r in cools if r["kind"] == "flow"
            ),
            pair_cooldowns=tuple(
                (decode_pair(r["key"]), datetime.fromisoformat(r["until"])) for r in cools if r["kind"] == "pair"
            ),
            seen_events=tuple((r["event_id"], datetime.fromisoformat(r["seen_at"])) for r in seen),
            pending_transients=tuple(decode_key(r["key"]) for r in pending),
        )

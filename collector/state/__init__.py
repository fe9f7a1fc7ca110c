"""The agent's memory: one SQLite file, written before the agent acts.

What lives here, and why it must survive a crash or a restart:
  * log cursors per router: where the last read of `show logging` ended, so the next
    poll takes only new lines, even across buffer wrap, `clear logging` or a clock jump;
  * every event received (poll, syslog, QFP), verbatim; the lines an agent's loop counts
    are written in batches, at the latest once it has no event left to process: a crash
    loses the batch in hand (lines the router's own log still holds);
  * the flow tracker's state per playbook, so `--once` runs keep counting across runs;
  * armed steps per router, each written BEFORE it runs: at start-up `armed_routers()`
    says which routers a crashed run left armed, and `armed_steps()` what to undo;
  * incidents and their outcome; QFP counter baselines; discovered addresses per router;
  * with `--broker`, which site's worker armed, captured and disarmed each router.

`StateStore` is the whole interface; SQLite (stdlib `sqlite3`, WAL, synchronous=FULL)
is an implementation detail, so Redis or PostgreSQL can replace it later. It is safe
for a daemon's threads: one connection per thread, writes in `BEGIN IMMEDIATE`
transactions, a busy timeout for the rare writer collision. The folder is created
0700 and the file 0600 (it holds raw log lines and addresses).

A store that cannot be trusted must stop the agent, not make it forget armed routers:
`open_state_store()` refuses a file that is not a regular file, is corrupt (`PRAGMA
quick_check`), has a foreign schema, is locked by another process, or has lost commits
(its write-ahead log deleted). Lost commits are found two ways: the `-shm` index still
names WAL frames that are gone, or the commit counter kept beside the database
(`state.db.commits`, rewritten after every write that records an armed step or an
incident) is ahead of the counter inside it. Every SQLite failure, a full disk included,
becomes a one-line `StateStoreError` naming the file and what to do.
"""

from collector.state.database import COMMITS_SUFFIX, commits_path
from collector.state.opening import OPEN_LOCK_TIMEOUT, STATE_FILE, default_state_dir, open_state_store
from collector.state.problems import RECOVER_HINT
from collector.state.records import (
    EVENT_SOURCES,
    INCIDENT_STATES,
    STEP_STATUSES,
    ArmedStep,
    EventRecord,
    EventSource,
    IncidentRecord,
    LogCursorRecord,
    QfpReading,
    RouterAddress,
    StateError,
    WorkRecord,
)
from collector.state.schema import SCHEMA_VERSION
from collector.state.store import StateStore

__all__ = [
    "COMMITS_SUFFIX", "EVENT_SOURCES", "INCIDENT_STATES", "OPEN_LOCK_TIMEOUT", "RECOVER_HINT", "SCHEMA_VERSION",
    "STATE_FILE", "STEP_STATUSES", "ArmedStep", "EventRecord", "EventSource", "IncidentRecord", "LogCursorRecord",
    "QfpReading", "RouterAddress", "StateError", "StateStore", "WorkRecord", "commits_path", "default_state_dir",
    "open_state_store",
]

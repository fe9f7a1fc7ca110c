"""How a long-running agent's C allocator (glibc malloc) keeps memory that was freed.

The agent reads whole router logs (a 10 MB `show logging` is a 10 MB string, twice while
it is cleaned) from many threads, one router after another. With glibc's defaults two
things keep such memory in the process after it is freed:

* the mmap threshold is dynamic: it rises to the size of the largest block freed (up to
  32 MiB), so after the first 10 MB output every later one is carved out of a heap and,
  once freed, stays there instead of going back to the system;
* each thread may get a heap (arena) of its own, up to 8 per core: reads of the same
  router ran on different threads, and each heap kept its own freed copy.

`limit_retained_memory()` fixes the threshold at 256 KiB (blocks that size or larger get
pages of their own, unmapped when freed) and allows two arenas (Python allocates under
its global lock: more arenas buy no speed). Measured, the code otherwise the same: in
tests/reliability/test_load.py's lab (200 routers, three incidents on the router with a
full 10 MB buffer) the agent's peak resident memory was 232 MiB without these two
settings and 142 MiB with them; with 20 full 10 MB routers (bench/agent_memory.py),
328 MiB without and 191-194 MiB with. Call it once at the start, before any thread. A
value the operator set in the environment (MALLOC_MMAP_THRESHOLD_, MALLOC_ARENA_MAX) is
left as it is. Linux with glibc only: elsewhere nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 256 * 1024  # bytes: blocks this size or larger are mapped alone and unmapped when freed
ARENA_MAX = 2

# mallopt(3) parameter numbers (glibc malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def limit_retained_memory() -> dict[str, int]:
    """Set the mmap threshold and the arena count for this process (see the module text);
    returns what was set (empty when nothing could be)."""
    if not sys.platform.startswith("linux"):
        return {}
    mallopt = _mallopt()
    if mallopt is None:
        return {}
    done: dict[str, int] = {}
    for env, param, value in (("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                              ("MALLOC_ARENA_MAX", _M_ARENA_MAX, ARENA_MAX)):
        if os.environ.get(env):
            continue  # the operator's own setting
        if mallopt(param, value) == 1:
            done[env] = value
    log.debug("malloc settings: %s", done or "none changed")
    return done


def _mallopt():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt), or no libc found
        return None
    if not hasattr(libc, "gnu_get_libc_version"):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt

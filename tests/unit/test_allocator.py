"""`limit_retained_memory`: a freed 10 MB router output goes back to the system (glibc)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

_PROBE = r'''
import json
from collector.allocator import limit_retained_memory

def rss_mib():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:")) / 1024

done = limit_retained_memory()
base = rss_mib()
for n in range(4):  # one output after another, as the agent reads them
    text = chr(ord("a") + n) * (10 << 20)
    cleaned = text.replace("a", "b")
    del text, cleaned
print(json.dumps({"done": done, "grew_mib": rss_mib() - base}))
'''


def _probe(**env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.update(env, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=environ, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's; elsewhere the function changes nothing")
def test_freed_10_mb_outputs_do_not_stay_in_the_process():
    result = _probe()
    assert result["done"] == {"MALLOC_MMAP_THRESHOLD_": 256 * 1024, "MALLOC_ARENA_MAX": 2}
    assert result["grew_mib"] < 3, result  # glibc's defaults keep the second and later ones (10-20 MiB)


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's; elsewhere the function changes nothing")
def test_the_operators_own_setting_is_left_alone():
    result = _probe(MALLOC_ARENA_MAX="4")
    assert result["done"] == {"MALLOC_MMAP_THRESHOLD_": 256 * 1024}

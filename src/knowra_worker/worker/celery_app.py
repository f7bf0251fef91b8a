"""One Celery app, built from settings. `app` serves `celery -A knowra_worker.celery_app`.

Broker and queue settings favour never losing a task: late acks, a task whose worker
process died is rejected back to the queue, one message prefetched per process, JSON only.
Celery's result backend is unused: task state lives in the TaskStore.
"""

from __future__ import annotations

import logging

from celery import Celery

from knowra_worker.settings import Settings, get_settings

log = logging.getLogger(__name__)

TASK_NAME = "knowra.parse_document"
PART_TASK_NAME = "knowra.parse_part"


def create_celery(settings: Settings, broker_url: str | None = None) -> Celery:
    url = broker_url or settings.redis_url or "redis://127.0.0.1:6379/0"
    app = Celery("knowra_worker", broker=url, include=["knowra_worker.worker.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_soft_time_limit=settings.task_time_limit_s,
        task_time_limit=settings.hard_time_limit_s,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.queues[0],
        task_create_missing_queues=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": int(settings.visibility_timeout_s),
            "priority_steps": list(range(10)),
            "queue_order_strategy": "priority",
            "global_keyprefix": f"{settings.key_prefix}celery:",
        },
        worker_hijack_root_logger=False,
        # Task events cost every task a few publishes even when nobody listens; Flower
        # turns them on in the workers when it starts (`enable_events`).
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
    )
    return app


def warm_producer(app: Celery) -> None:
    """Make Celery import and connect what sending a message needs (kombu's transport,
    the producer pool, the backend stub, the events dispatcher): done lazily on the
    first message, it would hold the first tasks back by tens of milliseconds. The API
    process sends the tasks' messages, a pool process those of a split task's parts (a
    forked process makes its own producer pool)."""
    import celery.events.dispatcher  # noqa: F401 - imported by the first send otherwise

    app.backend  # noqa: B018 - each property builds and caches its part
    app.amqp.router  # noqa: B018
    app.events  # noqa: B018
    try:
        with app.producer_or_acquire() as producer:
            producer.connection.default_channel  # noqa: B018
            app.amqp.create_task_message("warm-up", TASK_NAME, (), {})
    except Exception as exc:  # the first real message connects again, and says why
        log.warning("could not connect the task producer yet: %s", exc)


app = create_celery(get_settings())

"""Telling the caller a task is over: POST its final status to the task's callback_url.

Best effort and bounded: a few attempts with backoff, a short timeout, and never any effect
on the task itself. The body is the task status as GET /worker/task_status answers it.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request

from knowra_worker.models import TaskStatus

log = logging.getLogger(__name__)
ATTEMPTS = 3
TIMEOUT_S = 10.0


def send(url: str, status: TaskStatus, attempts: int = ATTEMPTS, backoff_s: float = 1.0) -> bool:
    """POST the status to url; True when the receiver answered 2xx."""
    body = status.model_dump_json().encode()
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "knowra-worker"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
                if 200 <= response.status < 300:
                    return True
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("callback for task %s, attempt %d: %s", status.task_id, attempt, exc)
        if attempt < attempts:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    log.error(
        "callback for task %s to %s failed %d times; giving up", status.task_id, url, attempts
    )
    return False

"""Durability as the API and the recovery sweep show it, against a real Redis with no worker
consuming: the recovery re-sends a message only when none is waiting, with the task's own
priority; listings follow a task re-created under another knowledge base; a watched task
that disappears ends its event stream with an error; task_result pages name their run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from knowra_worker.store import TaskStore

from .conftest import body, make_client


def _store(client: TestClient) -> TaskStore:
    return client.app.state.instance.store  # type: ignore[attr-defined,no-any-return]


def _waiting(store: TaskStore) -> list[tuple[str, int]]:
    """(task id, Celery priority) of every message waiting in the queues."""
    out = []
    for key in store.keys.celery_queue_lists("knowra"):
        for raw in store.r.lrange(key, 0, -1):
            message = json.loads(raw)
            out.append((message["headers"]["argsrepr"], message["properties"]["priority"]))
    return sorted(out)


def _age(store: TaskStore, task_id: str, seconds: float) -> None:
    store.r.hset(store.keys.task(task_id), "updated_at", time.time() - seconds)


def test_recovery_resends_only_missing_messages_once_with_their_priority(
    redis_url: str, key_prefix: str, root: Path
) -> None:
    with make_client(redis_url, key_prefix, [root], requeue_queued_after_s=60) as c:
        store, inst = _store(c), c.app.state.instance  # type: ignore[attr-defined]
        ids = [c.post("/worker/start_task", json=body(root, priority=p)).json()["task_id"]
               for p in (1, 5, 9)]  # fmt: skip
        for task_id in ids:
            _age(store, task_id, 600)
        assert len(_waiting(store)) == 3
        store.r.delete(store.keys.recovery)
        assert inst.recover() == []  # queued long, but their messages wait: nothing is sent
        assert len(_waiting(store)) == 3
        for key in store.keys.celery_queue_lists("knowra"):
            store.r.delete(key)  # the broker lost them
        store.r.delete(store.keys.recovery)
        assert sorted(inst.recover()) == sorted(ids)
        assert _waiting(store) == sorted([(repr([ids[0]]), 8), (repr([ids[1]]), 4),
                                          (repr([ids[2]]), 0)])  # fmt: skip
        for task_id in ids:
            _age(store, task_id, 600)
        store.r.delete(store.keys.recovery)
        assert inst.recover() == []  # one waits for each: no second copy
        assert len(_waiting(store)) == 3


def test_a_task_recreated_under_another_kb_leaves_the_old_listing(
    client: TestClient, root: Path
) -> None:
    b = body(root, kb_id="kbOld")
    client.post("/worker/start_task", json=b)
    store = _store(client)
    store.r.delete(store.keys.task(b["task_id"]))  # expired
    assert client.post("/worker/start_task", json={**b, "kb_id": "kbNew"}).status_code == 202
    assert client.get("/worker/tasks", params={"kb_id": "kbOld"}).json() == []
    listed = client.get("/worker/tasks", params={"kb_id": "kbNew"}).json()
    assert [t["task_id"] for t in listed] == [b["task_id"]]
    assert store.r.zrange(store.keys.kb_tasks("kbOld"), 0, -1) == []


def test_the_event_stream_says_when_its_task_disappears(client: TestClient, root: Path) -> None:
    b = body(root)
    client.post("/worker/start_task", json=b)
    store = _store(client)
    events: list[tuple[str, Any]] = []
    with client.stream("GET", "/worker/task_events", params={"task_id": b["task_id"]}) as s:
        kind = ""
        for line in s.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
                store.r.delete(store.keys.task(b["task_id"]))
    assert [kind for kind, _ in events] == ["status", "error"]
    assert events[-1][1]["error"]["code"] == "TASK_NOT_FOUND"


def test_task_result_pages_name_their_generation(client: TestClient, root: Path) -> None:
    b = body(root)
    client.post("/worker/start_task", json=b)
    store = _store(client)
    k = store.keys
    # as the scripts leave a task whose first run succeeded and whose re-run succeeded too
    store.r.hset(k.task(b["task_id"]), mapping={"state": "succeeded", "gen": 1, "pub": "1"})
    store.r.hset(k.chunks(b["task_id"], 1), "0", json.dumps({
        "chunk_id": "c", "seq": 0, "text": "x", "metadata": {
            "kb_id": "kb1", "task_id": b["task_id"], "source": "doc.txt",
            "mime_type": "text/plain", "char_start": 0, "char_end": 1}}))  # fmt: skip
    params = {"task_id": b["task_id"]}
    page = client.get("/worker/task_result", params=params).json()
    assert page["generation"] == 1 and page["total"] == 1
    assert client.get("/worker/task_result", params={**params, "generation": 1}).status_code == 200
    stale = client.get("/worker/task_result", params={**params, "generation": 0})
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "GENERATION_CHANGED"
    status = client.get("/worker/task_status", params=params).json()
    assert (status["generation"], status["result_generation"]) == (1, 1)


def test_a_page_far_beyond_the_end_is_empty(client: TestClient, root: Path) -> None:
    b = body(root)
    client.post("/worker/start_task", json=b)
    far = 33836140166691887775744  # past any 64-bit integer
    params = {"task_id": b["task_id"], "offset": far, "limit": 222}
    page = client.get("/worker/task_result", params=params).json()
    assert page["chunks"] == [] and page["offset"] == far

"""The HTTP contract against a real Redis, with no worker consuming: validation, errors,
idempotency, listing, authentication. (Parsing itself is exercised in tests/e2e.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from knowra_worker.parsers import supported_formats

from ..conftest import CallbackSink
from .conftest import body, make_client


def test_start_task_answers_202_and_a_queued_status(client: TestClient, root: Path) -> None:
    r = client.post("/worker/start_task", json=body(root, task_id="task_123"))
    assert r.status_code == 202
    status = r.json()
    assert status["task_id"] == "task_123" and status["state"] == "queued"
    assert status["progress"]["percent"] == 0 and status["error"] is None
    assert client.get("/worker/task_status", params={"task_id": "task_123"}).json() == status


def test_simultaneous_submissions_to_two_instances_make_one_task(
    redis_url: str, key_prefix: str, root: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with (
        make_client(redis_url, key_prefix, [root]) as one,
        make_client(redis_url, key_prefix, [root]) as two,
    ):

        def submit(pair: tuple[TestClient, dict[str, object]]) -> int:
            return pair[0].post("/worker/start_task", json=pair[1]).status_code

        for _ in range(10):
            b = body(root)
            with ThreadPoolExecutor(4) as pool:
                codes = sorted(pool.map(submit, [(c, b) for c in (one, two, one, two)]))
            assert codes == [200, 200, 200, 202]
        tasks = one.get("/worker/tasks", params={"kb_id": "kb1"}).json()
        assert len(tasks) == len({t["task_id"] for t in tasks}) == 10


def test_same_task_again_is_idempotent_and_other_parameters_conflict(
    client: TestClient, root: Path
) -> None:
    b = body(root)
    assert client.post("/worker/start_task", json=b).status_code == 202
    again = client.post("/worker/start_task", json={**b, "priority": 9, "metadata": {"x": 1}})
    assert again.status_code == 200 and again.json()["task_id"] == b["task_id"]
    r = client.post("/worker/start_task", json={**b, "chunk_size": 800})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "TASK_CONFLICT"


@pytest.mark.parametrize(
    "bad",
    [
        {"chunk_overlap": 500},
        {"chunk_overlap": 600},
        {"chunk_size": 0},
        {"chunk_size": 10**7},
        {"chunk_overlap": -1},
        {"kb_id": ""},
        {"task_id": "has space"},
        {"unknown": 1},
        {"callback_url": "ftp://example.org/x"},
        {"callback_url": "file:///etc/passwd"},
    ],
)
def test_invalid_parameters_are_422(client: TestClient, root: Path, bad: dict) -> None:
    r = client.post("/worker/start_task", json=body(root, **bad))
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("missing", ["task_id", "file_path", "kb_id"])
def test_missing_fields_are_422(client: TestClient, root: Path, missing: str) -> None:
    b = body(root)
    del b[missing]
    assert client.post("/worker/start_task", json=b).status_code == 422


def test_paths_outside_the_roots_are_403(client: TestClient, root: Path, tmp_path: Path) -> None:
    sibling = Path(str(root) + "2")  # "/x/root2" is not inside "/x/root"
    sibling.mkdir()
    (sibling / "doc.txt").write_text("secret")
    (root / "escape.txt").symlink_to(sibling / "doc.txt")
    for path in [
        sibling / "doc.txt",
        root / "escape.txt",
        Path("/etc/passwd"),
        root / ".." / "root2" / "doc.txt",
    ]:
        r = client.post("/worker/start_task", json=body(root, file_path=str(path)))
        assert r.status_code == 403, path
        assert r.json()["error"]["code"] == "PATH_NOT_ALLOWED"
    relative = client.post("/worker/start_task", json=body(root, file_path="doc.txt"))
    assert relative.status_code == 403


def test_missing_file_is_400_and_nothing_is_queued(client: TestClient, root: Path) -> None:
    b = body(root, file_path=str(root / "nope.pdf"))
    r = client.post("/worker/start_task", json=b)
    assert r.status_code == 400 and r.json()["error"]["code"] == "FILE_NOT_FOUND"
    r = client.post("/worker/start_task", json=body(root, file_path=str(root)))
    assert r.status_code == 400 and r.json()["error"]["code"] == "FILE_NOT_FOUND"
    assert client.get("/worker/task_status", params={"task_id": b["task_id"]}).status_code == 404


def test_malformed_requests_get_an_error_body(client: TestClient) -> None:
    r = client.post(
        "/worker/pause_task", content=b"\xff\x00{", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "BAD_REQUEST"
    r = client.put("/worker/tasks")
    assert r.status_code == 405 and r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert r.headers["allow"] == "GET"
    assert client.get("/worker/task_status", params={"task_id": ""}).status_code == 422


def test_unknown_task_is_404_with_an_error_body(client: TestClient) -> None:
    for path in ["/worker/task_status", "/worker/task_result"]:
        r = client.get(path, params={"task_id": "nope"})
        assert r.status_code == 404
        assert r.json() == {"error": {"code": "TASK_NOT_FOUND", "message": "no task 'nope'"}}


def test_task_result_limits(client: TestClient, root: Path) -> None:
    b = body(root)
    client.post("/worker/start_task", json=b)
    r = client.get("/worker/task_result", params={"task_id": b["task_id"]})
    assert r.json() == {
        "task_id": b["task_id"],
        "kb_id": "kb1",
        "state": "queued",
        "generation": 0,
        "total": 0,
        "offset": 0,
        "chunks": [],
    }
    for limit in (0, 1001):
        r = client.get("/worker/task_result", params={"task_id": b["task_id"], "limit": limit})
        assert r.status_code == 422


def test_tasks_lists_newest_first_by_kb_and_state(client: TestClient, root: Path) -> None:
    ids = [
        client.post("/worker/start_task", json=body(root, kb_id=kb)).json()["task_id"]
        for kb in ("kbA", "kbB", "kbA")
    ]
    listed = client.get("/worker/tasks", params={"kb_id": "kbA"}).json()
    assert [t["task_id"] for t in listed] == [ids[2], ids[0]]
    assert client.get("/worker/tasks", params={"kb_id": "kbA", "state": "running"}).json() == []
    assert len(client.get("/worker/tasks", params={"limit": 2}).json()) == 2
    store = client.app.state.instance.store  # type: ignore[attr-defined]
    store.r.delete(store.keys.task(ids[2]))  # as when a finished task's TTL runs out
    assert [t["task_id"] for t in client.get("/worker/tasks", params={"kb_id": "kbA"}).json()] == [
        ids[0]
    ]
    assert store.r.zrange(store.keys.kb_tasks("kbA"), 0, -1) == [ids[0]]


def test_transitions_of_a_task_no_worker_has_taken(client: TestClient, root: Path) -> None:
    b = body(root)
    client.post("/worker/start_task", json=b)

    def act(action: str) -> tuple[int, str]:
        r = client.post(f"/worker/{action}", json={"task_id": b["task_id"]})
        return r.status_code, r.json()["state"] if r.status_code == 200 else r.json()["error"]

    assert act("pause_task") == (200, "paused")
    assert act("pause_task") == (200, "paused")
    assert act("resume_task") == (200, "queued")
    assert act("resume_task") == (200, "queued")
    assert act("cancel_task") == (200, "cancelled")
    assert act("cancel_task") == (200, "cancelled")
    for action in ("pause_task", "resume_task"):
        code, error = act(action)
        assert code == 409 and error["code"] == "INVALID_TRANSITION"
        assert "cancelled" in error["message"]
    status = client.get("/worker/task_status", params={"task_id": b["task_id"]}).json()
    assert status["finished_at"] is not None and status["progress"]["chunks"] == 0
    for action in ("pause_task", "resume_task", "cancel_task"):
        assert client.post(f"/worker/{action}", json={"task_id": "nope"}).status_code == 404


def test_force_runs_a_finished_task_again_and_only_a_finished_one(
    client: TestClient, root: Path
) -> None:
    b = body(root)
    client.post("/worker/start_task", json=b)
    r = client.post("/worker/start_task", json={**b, "force": True})
    assert r.status_code == 409 and r.json()["error"]["code"] == "INVALID_TRANSITION"
    client.post("/worker/cancel_task", json={"task_id": b["task_id"]})
    r = client.post("/worker/start_task", json={**b, "force": True})
    assert r.status_code == 200 and r.json()["state"] == "queued"
    assert r.json()["finished_at"] is None and r.json()["attempts"] == 0


def test_register_heartbeat_workers_docs_metrics(client: TestClient) -> None:
    reg = client.get("/worker/register").json()
    assert reg["broker"]["mode"] == "configured"
    assert reg["formats"] == supported_formats()
    assert reg["worker_id"] in [w["worker_id"] for w in client.get("/worker/workers").json()]
    beat = client.get("/worker/heartbeat").json()
    assert beat["broker"]["ok"] is True and beat["worker_id"] == reg["worker_id"]
    assert client.get("/docs").status_code == 200 and client.get("/redoc").status_code == 200
    assert "/worker/start_task" in client.get("/openapi.json").json()["paths"]


def test_metrics_count_submissions_and_active_tasks(client: TestClient, root: Path) -> None:
    b = body(root)
    client.post("/worker/start_task", json=b)
    client.post("/worker/start_task", json=b)
    client.post("/worker/start_task", json=body(root))
    client.post("/worker/pause_task", json={"task_id": b["task_id"]})
    text = client.get("/metrics").text
    assert 'knowra_tasks_submitted_total{outcome="created"} 2.0' in text
    assert 'knowra_tasks_submitted_total{outcome="existing"} 1.0' in text
    assert 'knowra_task_controls_total{action="pause"} 1.0' in text
    assert 'knowra_active_tasks{state="queued"} 1.0' in text
    assert 'knowra_active_tasks{state="paused"} 1.0' in text
    assert "knowra_instances 1.0" in text


def test_api_keys_are_enforced(redis_url: str, key_prefix: str, root: Path) -> None:
    with make_client(redis_url, key_prefix, [root], api_keys=["s3cret"]) as c:
        r = c.get("/worker/tasks")
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
        assert c.get("/worker/tasks", headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.get("/worker/tasks", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/worker/tasks", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/worker/register").status_code == 401
        assert c.get("/worker/heartbeat").status_code == 200  # liveness probes need no key


def test_redis_url_in_register_hides_the_password() -> None:
    from knowra_worker.broker import redact

    assert redact("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


def test_cancelling_a_queued_task_calls_its_callback(
    client: TestClient, root: Path, callback_sink: CallbackSink
) -> None:
    b = body(root, callback_url=callback_sink.url)
    client.post("/worker/start_task", json=b)
    client.post("/worker/pause_task", json={"task_id": b["task_id"]})
    assert callback_sink.received == []  # paused is not final
    client.post("/worker/cancel_task", json={"task_id": b["task_id"]})
    [posted] = callback_sink.wait(1)
    assert posted["task_id"] == b["task_id"] and posted["state"] == "cancelled"

"""Routes under /worker. Each one validates, calls the store or the Celery client, answers."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from knowra_worker import callbacks
from knowra_worker.api.deps import InstanceDep, StoreDep, require_api_key
from knowra_worker.api.errors import documented
from knowra_worker.errors import StoreUnavailable, TaskNotFound
from knowra_worker.instance import Instance
from knowra_worker.lifecycle import Action
from knowra_worker.models import (
    StartTaskRequest,
    State,
    TaskRef,
    TaskResult,
    TaskStatus,
)
from knowra_worker.paths import check_readable_file, resolve_allowed
from knowra_worker.store import TaskStore

router = APIRouter(prefix="/worker", tags=["tasks"], dependencies=[Depends(require_api_key)])
instance_router = APIRouter(
    prefix="/worker", tags=["instance"], dependencies=[Depends(require_api_key)]
)
open_router = APIRouter(prefix="/worker", tags=["instance"])  # liveness probes need no key


def _status(store: TaskStore, task_id: str) -> TaskStatus:
    status = store.get_status(task_id)
    if status is None:
        raise TaskNotFound(f"no task {task_id!r}")
    return status


def _enqueue(inst: Instance, status: TaskStatus) -> None:
    try:
        inst.enqueue(status.task_id, status.priority)
    except Exception as exc:
        raise StoreUnavailable(f"could not queue the task: {exc}") from exc


TaskId = Annotated[str, Query(min_length=1, max_length=200)]
CONTROL_ERRORS = documented(400, 401, 404, 409, 503)
OVERLAP_422 = (
    "Validation Error: a field out of its range, `chunk_overlap` not below `chunk_size`, or a "
    '`tokenizer` without `"length_unit": "tokens"` (rules between two fields that JSON '
    "Schema cannot state)"
)
_SSE_EVENT = {  # one event, as OpenAPI 3.2's itemSchema (and FastAPI's own SSE) describe it
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["status", "error"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/TaskStatus"},
                    {"$ref": "#/components/schemas/ErrorBody"},
                ]
            },
        },
    },
}
EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`: an `event: status` whose data is the task status "
        "(JSON) per change of state or progress, until a final state; `event: error` if the "
        "task disappears meanwhile",
        "content": {"text/event-stream": {"itemSchema": _SSE_EVENT}},
    }
}


@router.post(
    "/start_task",
    status_code=202,
    response_model=TaskStatus,
    responses={
        200: {"model": TaskStatus, "description": "the task exists with these parameters"},
        **documented(400, 401, 403, 409, 503),
    },
    openapi_extra={"responses": {"422": {"description": OVERLAP_422}}},
)
def start_task(req: StartTaskRequest, inst: InstanceDep, response: Response) -> TaskStatus:
    """Queue a document for parsing. The same task_id with the same parameters is
    idempotent (200 and the existing task) unless `force` asks to run a finished task again;
    with other parameters it is 409."""
    path = resolve_allowed(req.file_path, inst.settings.allowed_roots)
    check_readable_file(path, req.file_path)
    created, status = inst.store.create_task(req)
    outcome = "created"
    if not created:
        response.status_code = 200
        outcome = "existing"
        if req.force:
            inst.store.rerun(req.task_id)
            status, outcome = _status(inst.store, req.task_id), "rerun"
    inst.metrics.submitted.labels(outcome).inc()
    if status.state is State.QUEUED:
        # A re-submission of a queued task re-sends its message: a lost one is healed,
        # and a duplicate is harmless (the worker claims a task only once).
        _enqueue(inst, status)
    return status


@router.get("/task_status", response_model=TaskStatus, responses=documented(401, 404, 503))
def task_status(task_id: TaskId, store: StoreDep) -> TaskStatus:
    return _status(store, task_id)


@router.get("/task_result", response_model=TaskResult, responses=documented(401, 404, 409, 503))
def task_result(
    task_id: TaskId,
    store: StoreDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    generation: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """The task's chunks in seq order, a page at a time (complete once `succeeded`). A
    forced re-run's chunks replace the previous run's only when it succeeds: every page
    carries the `generation` it comes from; pass it back with the next page, and a page of a
    generation that is no longer current answers 409 (read again from offset 0)."""
    status = _status(store, task_id)
    page = store.get_chunk_page(task_id, offset, limit, generation)
    head = json.dumps({  # not orjson: `offset` may be any size a client sends
        "task_id": task_id, "kb_id": status.kb_id, "state": status.state.value,
        "generation": page.generation, "total": page.total, "offset": offset,
    }, separators=(",", ":"), ensure_ascii=False).encode()  # fmt: skip
    # the chunks as stored: encoded once by the worker, never decoded and encoded again
    body = head[:-1] + b',"chunks":[' + ",".join(page.chunks).encode() + b"]}"
    return Response(content=body, media_type="application/json")


@router.get("/tasks", response_model=list[TaskStatus], responses=documented(401, 503))
def list_tasks(
    store: StoreDep,
    kb_id: str | None = None,
    state: State | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TaskStatus]:
    """Tasks, newest first, optionally of one knowledge base and in one state."""
    return store.list_tasks(kb_id=kb_id, state=state, limit=limit)


def _control(inst: Instance, task_id: str, action: Action, tasks: BackgroundTasks) -> TaskStatus:
    state, changed = inst.store.control(task_id, action)
    if changed:
        inst.metrics.controls.labels(action).inc()
    status = _status(inst.store, task_id)
    if changed and state == State.QUEUED:
        _enqueue(inst, status)
    if changed and state == State.CANCELLED:  # final without a worker: the API tells
        url = inst.store.callback_url(task_id)
        if url:
            tasks.add_task(callbacks.send, url, status)
    return status


@router.post("/pause_task", response_model=TaskStatus, responses=CONTROL_ERRORS)
def pause_task(ref: TaskRef, inst: InstanceDep, tasks: BackgroundTasks) -> TaskStatus:
    """A queued task becomes `paused` at once; a running one `pausing`, then `paused` at
    its next unit boundary, after its checkpoint."""
    return _control(inst, ref.task_id, Action.PAUSE, tasks)


@router.post("/resume_task", response_model=TaskStatus, responses=CONTROL_ERRORS)
def resume_task(ref: TaskRef, inst: InstanceDep, tasks: BackgroundTasks) -> TaskStatus:
    """A paused task is queued again and goes on from its checkpoint; a `pausing` one
    stays `running`. A task stopped by its time limit (LIMIT_EXCEEDED) resumes too."""
    return _control(inst, ref.task_id, Action.RESUME, tasks)


@router.post("/cancel_task", response_model=TaskStatus, responses=CONTROL_ERRORS)
def cancel_task(ref: TaskRef, inst: InstanceDep, tasks: BackgroundTasks) -> TaskStatus:
    """A queued or paused task is `cancelled` at once; a running one `cancelling` until its
    next unit boundary. A cancelled task has no chunks and never runs again."""
    return _control(inst, ref.task_id, Action.CANCEL, tasks)


@router.get(
    "/task_events",
    response_class=StreamingResponse,
    responses={**EVENT_STREAM, **documented(401, 404, 503)},
)
async def task_events(task_id: TaskId, store: StoreDep) -> StreamingResponse:
    """Server-sent events: one `status` event per change of state or progress, until a
    final state."""
    first = await run_in_threadpool(_status, store, task_id)
    return StreamingResponse(
        _events(store, first), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


async def _events(store: TaskStore, status: TaskStatus) -> AsyncIterator[str]:
    task_id, last = status.task_id, None
    current: TaskStatus | None = status
    while current is not None:
        body = current.model_dump_json(exclude={"updated_at"})
        if body != last:
            last = body
            yield f"event: status\ndata: {current.model_dump_json()}\n\n"
        if current.state.is_final:
            return
        await asyncio.sleep(0.25)
        current = await run_in_threadpool(store.get_status, task_id)
    # the task expired or was removed while watched: say so rather than end silently
    gone = {"error": {"code": "TASK_NOT_FOUND", "message": f"task {task_id!r} no longer exists"}}
    yield f"event: error\ndata: {json.dumps(gone)}\n\n"


@open_router.get("/heartbeat")
def heartbeat(inst: InstanceDep) -> dict[str, Any]:
    """Liveness of this instance, its broker and its Celery worker, and its load."""
    try:
        broker_ok = inst.store.ping()
        ready = inst.celery_worker_ready()
    except StoreUnavailable:
        broker_ok = ready = False
    worker_ok = ready or not inst.settings.embedded_worker
    return {
        "status": "ok" if broker_ok and worker_ok else "degraded",
        "worker_id": inst.instance_id,
        "time": time.time(),
        "broker": {**inst.broker.describe(), "ok": broker_ok},
        "worker": {
            "embedded": inst.settings.embedded_worker,
            "alive": inst.celery_worker_alive(),
            "ready": ready,
            "pid": inst.celery_worker_pid,
            "concurrency": inst.settings.concurrency,
        },
        "load": {"loadavg": list(os.getloadavg()), "cpus": os.cpu_count()},
    }


@instance_router.get("/register", responses=documented(401))
def register(inst: InstanceDep) -> dict[str, Any]:
    """This instance's registration, as the cluster sees it in /worker/workers."""
    return inst.registration()


@instance_router.get("/workers", responses=documented(401, 503))
def workers(store: StoreDep) -> list[dict[str, Any]]:
    """Every live instance of the cluster."""
    return store.list_instances()

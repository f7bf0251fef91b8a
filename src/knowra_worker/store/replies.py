"""Every script reply, decoded into a typed result in one place.

Scripts answer a JSON object whose `outcome` says what happened:

    ok         the action took effect (or was allowed and changed nothing: `changed` false)
    created / exists / conflict   CREATE only
    missing    no such task
    invalid    a caller's action the state does not allow (409), or a malformed worker call
    busy       CLAIM: another live worker holds the task
    skip       CLAIM: not runnable now (paused, final); `state` says why
    exhausted  CLAIM: the task failed WORKER_CRASHED instead of starting another attempt
    stale      a worker's write with an epoch that is no longer the task's: it lost the task
    refused    SETTLE: the action is not allowed in the state (e.g. stop after a resume)
    diverged   the store does not hold the checkpoint the worker extends (it lost writes)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from knowra_worker.lifecycle import State


class Outcome(StrEnum):
    OK = "ok"
    CREATED = "created"
    EXISTS = "exists"
    CONFLICT = "conflict"
    MISSING = "missing"
    INVALID = "invalid"
    BUSY = "busy"
    SKIP = "skip"
    EXHAUSTED = "exhausted"
    STALE = "stale"
    REFUSED = "refused"
    DIVERGED = "diverged"


@dataclass(frozen=True, slots=True)
class Reply:
    outcome: Outcome
    state: State | None = None
    changed: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def diverged(self) -> bool:
        return self.outcome is Outcome.DIVERGED

    @property
    def refused(self) -> bool:
        return self.outcome is Outcome.REFUSED


@dataclass(frozen=True, slots=True)
class Claim(Reply):
    """CLAIM's answer; with `ok` the caller now runs the task from `checkpoint`."""

    epoch: int = 0
    attempts: int = 0
    checkpoint: dict[str, Any] | None = None
    units_done: int = 0
    chunks: int = 0
    repaired: bool = False  # the store had lost chunks: the run starts over
    task: dict[str, str] | None = None  # the task's fields (its parameters and status)


def decode(raw: str | bytes) -> Reply:
    data = json.loads(raw)
    return Reply(Outcome(data["outcome"]), _state(data), bool(data.get("changed", False)))


def decode_claim(raw: str | bytes) -> Claim:
    data = json.loads(raw)
    checkpoint = data.get("checkpoint") or ""
    return Claim(
        outcome=Outcome(data["outcome"]),
        state=_state(data),
        epoch=int(data.get("epoch", 0)),
        attempts=int(data.get("attempts", 0)),
        checkpoint=json.loads(checkpoint) if checkpoint else None,
        units_done=int(data.get("units_done", 0)),
        chunks=int(data.get("chunks", 0)),
        repaired=bool(data.get("repaired", False)),
        task=_fields(data.get("task")),
    )


@dataclass(frozen=True, slots=True)
class Part:
    """A page range [start, end) of a split task; `next` is the first unit not yet parsed."""

    start: int
    end: int
    next: int
    done: bool


def decode_split(raw: str | bytes) -> tuple[Reply, list[Part]]:
    data = json.loads(raw)
    reply = Reply(Outcome(data["outcome"]), _state(data))
    rows = data.get("parts") or []
    return reply, [Part(int(a), int(b), int(c), bool(int(d))) for a, b, c, d in rows]


@dataclass(frozen=True, slots=True)
class PartClaim(Reply):
    """PART_CLAIM's answer; with `ok` the caller parses units next..end-1 of the part."""

    epoch: int = 0
    next: int = 0
    end: int = 0
    file_path: str = ""


def decode_part_claim(raw: str | bytes) -> PartClaim:
    data = json.loads(raw)
    return PartClaim(
        outcome=Outcome(data["outcome"]),
        state=_state(data),
        epoch=int(data.get("epoch", 0)),
        next=int(data.get("next", 0)),
        end=int(data.get("stop", 0)),
        file_path=str(data.get("file_path", "")),
    )


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a task's readable chunks; `total` -1: another generation was asked for."""

    generation: int
    total: int
    chunks: list[str]


def decode_page(raw: list[Any]) -> Page:
    return Page(int(raw[0]), int(raw[1]), [str(v) for v in raw[2:] if v is not None])


def _fields(value: Any) -> dict[str, str] | None:
    """A hash's fields as cjson gives them (an empty Lua table encodes as a list)."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {} if value == [] else None


def _state(data: dict[str, Any]) -> State | None:
    value = data.get("state")
    return State(value) if isinstance(value, str) and value else None

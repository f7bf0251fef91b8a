"""The task state machine: every (state, action) and what it leads to, in one table.

    queued ──claim──> running ──succeed──> succeeded
      │                 │ ├──fail──────> failed
      │pause            │ ├──yield/retry─> queued        (hand-back; transient error)
      v                 │ ├──pause─────> pausing ──stop/yield──> paused ──resume──> queued
    paused <────────────┘ └──cancel────> cancelling ──(any worker action)──> cancelled

A caller acts with pause, resume, cancel and rerun; a worker with claim (a queued task),
take_over (a task whose worker died: its lease lapsed), commit (a checkpoint: the state stays),
succeed, fail, stop (leave at a pause or cancel seen at a commit), yield (hand the task back:
shutting down, or the store diverged), retry (a transient error) and part (a worker parsing
a page range of a split task claims it or stores what it parsed: only while the task runs).
`TABLE` is the only place where these rules are written: the store's Lua scripts are
generated from it (`store/scripts.py`), and tests drive every pair of it through the real
scripts.

Attempts count only deaths and transient errors. A task carries a *charge* flag: set while a
worker runs it and by retry, cleared by a clean stop (pause, hand-back). A claim or take-over
of a charged task starts a new attempt; past `KNOWRA_MAX_ATTEMPTS` the task fails with
WORKER_CRASHED instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_held(self) -> bool:
        """A worker holds the task (under a lease) in this state."""
        return self in HELD_STATES


FINAL_STATES = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})
HELD_STATES = frozenset({State.RUNNING, State.PAUSING, State.CANCELLING})


class Action(StrEnum):
    # a caller's
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RERUN = "rerun"
    # a worker's
    CLAIM = "claim"
    TAKE_OVER = "take_over"
    COMMIT = "commit"
    SUCCEED = "succeed"
    FAIL = "fail"
    STOP = "stop"
    YIELD = "yield"
    RETRY = "retry"
    PART = "part"  # a worker parsing a page range of a split task claims it or stores units

    @property
    def by_worker(self) -> bool:
        return self not in CALLER_ACTIONS


CALLER_ACTIONS = frozenset({Action.PAUSE, Action.RESUME, Action.CANCEL, Action.RERUN})


class Guard(StrEnum):
    """A condition a transition needs besides the state, checked by the script."""

    NONE = ""
    RESUMABLE_ERROR = "resumable_error"  # the task failed with LIMIT_EXCEEDED at a checkpoint


class Charge(StrEnum):
    """What a transition does to the attempt charge (see the module docstring)."""

    KEEP = ""
    SET = "1"  # the next claim starts a new attempt
    CLEAR = "0"  # the next claim goes on with the same attempt


@dataclass(frozen=True, slots=True)
class Rule:
    to: State  # the state reached (the same state: allowed, nothing changes)
    guard: Guard = Guard.NONE
    charge: Charge = Charge.KEEP


Q, R, PG, PD, CG = State.QUEUED, State.RUNNING, State.PAUSING, State.PAUSED, State.CANCELLING
S, F, C = State.SUCCEEDED, State.FAILED, State.CANCELLED
A = Action

# Pairs missing from the table are refused: a caller gets 409 INVALID_TRANSITION, a worker
# learns it no longer owns the task.
TABLE: dict[tuple[State, Action], Rule] = {
    (Q, A.PAUSE): Rule(PD),
    (Q, A.RESUME): Rule(Q),
    (Q, A.CANCEL): Rule(C),
    (Q, A.CLAIM): Rule(R, charge=Charge.SET),
    (R, A.PAUSE): Rule(PG),
    (R, A.RESUME): Rule(R),
    (R, A.CANCEL): Rule(CG),
    (R, A.TAKE_OVER): Rule(R, charge=Charge.SET),
    (R, A.COMMIT): Rule(R),
    (R, A.SUCCEED): Rule(S),
    (R, A.FAIL): Rule(F),
    (R, A.YIELD): Rule(Q, charge=Charge.CLEAR),
    (R, A.RETRY): Rule(Q, charge=Charge.SET),
    (R, A.PART): Rule(R),  # parts are parsed only while the task runs
    (PG, A.PAUSE): Rule(PG),
    (PG, A.RESUME): Rule(R),
    (PG, A.CANCEL): Rule(CG),
    (PG, A.TAKE_OVER): Rule(PD, charge=Charge.SET),
    (PG, A.COMMIT): Rule(PG),
    (PG, A.SUCCEED): Rule(S),  # the pause came after the last unit: too late
    (PG, A.FAIL): Rule(F),
    (PG, A.STOP): Rule(PD, charge=Charge.CLEAR),
    (PG, A.YIELD): Rule(PD, charge=Charge.CLEAR),
    (PG, A.RETRY): Rule(PD, charge=Charge.SET),
    (PD, A.PAUSE): Rule(PD),
    (PD, A.RESUME): Rule(Q),
    (PD, A.CANCEL): Rule(C),
    (CG, A.CANCEL): Rule(CG),
    (CG, A.TAKE_OVER): Rule(C),
    (CG, A.COMMIT): Rule(CG),
    (CG, A.SUCCEED): Rule(C),  # a cancel wins over a run that finished meanwhile
    (CG, A.FAIL): Rule(C),
    (CG, A.STOP): Rule(C),
    (CG, A.YIELD): Rule(C),
    (CG, A.RETRY): Rule(C),
    (S, A.RERUN): Rule(Q, charge=Charge.SET),
    (F, A.RESUME): Rule(Q, guard=Guard.RESUMABLE_ERROR, charge=Charge.CLEAR),
    (F, A.RERUN): Rule(Q, charge=Charge.SET),
    (C, A.CANCEL): Rule(C),
    (C, A.RERUN): Rule(Q, charge=Charge.SET),
}


def rule(state: State, action: Action) -> Rule | None:
    """The rule for `action` in `state`, or None when the action is refused there."""
    return TABLE.get((state, action))


@dataclass(frozen=True, slots=True)
class Position:
    """Where a run stands in the store: units done, chunks stored, chunks staged (held apart
    until the commit that ends their unit). Every write of a worker names the position it
    extends; a store holding another one has lost writes."""

    units_done: int
    chunks: int
    staged: int = 0

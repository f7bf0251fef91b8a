"""Where task state, progress, checkpoints and chunks live: Redis, under one key prefix."""

from knowra_worker.store.keys import Keys
from knowra_worker.store.replies import Claim, Outcome, Reply
from knowra_worker.store.task_store import Orphan, TaskStore

__all__ = ["Claim", "Keys", "Orphan", "Outcome", "Reply", "TaskStore"]

"""Where task state, progress, checkpoints and chunks live: Redis, under one key prefix."""

from knowra_worker.store.keys import Keys
from knowra_worker.store.redis import Claim, TaskStore

__all__ = ["Claim", "Keys", "TaskStore"]

"""Runs one task: file -> parser units -> chunker -> store, with a checkpoint after each unit.

`chunk_stream` is the pure part (also used by `knowra-worker parse`); `TaskRunner` adds
ownership (claim, lease, fencing epoch), checkpoints, pause/cancel checks and error
classification around it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from billiard.exceptions import SoftTimeLimitExceeded

from knowra_worker.chunking import Chunker, ChunkerState, RawChunk
from knowra_worker.document import Document, Unit
from knowra_worker.errors import (
    EmptyDocument,
    InternalError,
    KnowraError,
    LimitExceeded,
    PermanentError,
    SourceIOError,
    TransientError,
    WorkerCrashed,
)
from knowra_worker.models import State
from knowra_worker.parsers import registry
from knowra_worker.paths import check_readable_file, resolve_allowed

if TYPE_CHECKING:  # the CLI's parse path needs neither Redis nor the settings
    from knowra_worker.settings import Settings
    from knowra_worker.store import TaskStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChunkContext:
    """What every chunk of one task shares: ids and metadata."""

    task_id: str
    kb_id: str
    source: str
    mime_type: str
    chunk_size: int
    chunk_overlap: int
    extra: dict[str, Any] = field(default_factory=dict)

    def chunk_id(self, raw: RawChunk) -> str:
        key = "\x00".join(
            [
                self.kb_id,
                self.task_id,
                str(self.chunk_size),
                str(self.chunk_overlap),
                str(raw.seq),
                raw.text,
            ]
        )
        return str(uuid.UUID(bytes=hashlib.sha256(key.encode()).digest()[:16], version=5))

    def record(self, raw: RawChunk) -> dict[str, Any]:
        metadata = {
            **self.extra,
            "kb_id": self.kb_id,
            "task_id": self.task_id,
            "source": self.source,
            "mime_type": self.mime_type,
            "page_start": raw.page_start,
            "page_end": raw.page_end,
            "headings": list(raw.headings),
            "char_start": raw.char_start,
            "char_end": raw.char_end,
            "content_type": raw.content_type,
        }
        return {
            "chunk_id": self.chunk_id(raw),
            "seq": raw.seq,
            "text": raw.text,
            "metadata": metadata,
        }


def chunk_stream(
    doc: Document, chunker: Chunker, start_unit: int = 0
) -> Iterator[tuple[Unit, list[RawChunk]]]:
    """Each unit from start_unit on, with the chunks it completed."""
    for unit in doc.units(start_unit):
        yield unit, chunker.feed_all(unit.blocks)


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    RETRY = "queued"  # back in the queue (transient error, hand-back): send another message
    SKIPPED = "skipped"  # not ours to run (final, paused, running elsewhere, missing)
    LOST = "lost"  # another worker took the task over (stale epoch)


class _Stop(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class _Lease:
    """Renews the task's lease from a background thread while the task runs."""

    def __init__(self, runner: TaskRunner, task_id: str, epoch: int) -> None:
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(
            target=self._loop, args=(runner, task_id, epoch), daemon=True, name="lease"
        )

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self, runner: TaskRunner, task_id: str, epoch: int) -> None:
        while not self._stop.wait(runner.settings.heartbeat_interval_s):
            try:
                if not runner.store.renew_lease(task_id, epoch, runner.worker_id, runner.lease_ms):
                    self.lost = True
                    return
            except TransientError:
                log.warning("task %s: lease renewal failed; will try again", task_id)


def _never() -> bool:
    return False


class TaskRunner:
    """Runs claimed tasks. `should_yield` is asked at every checkpoint: when it answers
    True (the instance is going away) the task is handed back to the queue right there."""

    def __init__(
        self,
        store: TaskStore,
        settings: Settings,
        worker_id: str,
        should_yield: Callable[[], bool] = _never,
    ) -> None:
        self.store = store
        self.settings = settings
        self.worker_id = worker_id
        self.should_yield = should_yield
        self.lease_ms = int(settings.lease_ttl_s * 1000)

    def run(self, task_id: str) -> Outcome:
        gave_up = WorkerCrashed(
            f"the task's worker died {self.settings.max_attempts} times while running it"
        )
        claim = self.store.claim(
            task_id, self.worker_id, self.lease_ms, self.settings.max_attempts, gave_up
        )
        if claim.outcome != "ok":
            log.info("task %s not run: %s (%s)", task_id, claim.outcome, claim.state)
            return Outcome.FAILED if claim.outcome == "exhausted" else Outcome.SKIPPED
        log.info("task %s: attempt %d, epoch %d", task_id, claim.attempts, claim.epoch)
        with _Lease(self, task_id, claim.epoch) as lease:
            own = _Owned(self, task_id, claim.epoch, lease)
            return self._run_owned(own, claim.attempts, claim.checkpoint)

    def _run_owned(self, own: _Owned, attempts: int, checkpoint: dict[str, Any] | None) -> Outcome:
        task_id, epoch = own.task_id, own.epoch
        try:
            self._parse(own, checkpoint or {})
            return Outcome.SUCCEEDED
        except _Stop as stop:
            return stop.outcome
        except PermanentError as exc:
            return self._fail(task_id, epoch, exc)
        except SoftTimeLimitExceeded:
            limit = self.settings.task_time_limit_s
            return self._fail(
                task_id,
                epoch,
                LimitExceeded(
                    f"the task ran longer than {limit:.0f} s (KNOWRA_TASK_TIME_LIMIT_S); it "
                    "stopped at its last checkpoint and goes on from there when resumed"
                ),
            )
        except TransientError as exc:
            if attempts >= self.settings.max_attempts:
                return self._fail(task_id, epoch, exc)
            log.warning("task %s: transient error, will retry: %s", task_id, exc.message)
            self._settle_quietly(task_id, epoch, State.QUEUED, {"error": _json(exc)})
            return Outcome.RETRY
        except Exception:
            log.exception("task %s: unexpected error", task_id)
            return self._fail(task_id, epoch, InternalError("unexpected error while parsing"))

    def _parse(self, own: _Owned, checkpoint: dict[str, Any]) -> None:
        raw = own.params()
        path = resolve_allowed(raw["file_path"], self.settings.allowed_roots)
        check_readable_file(path, raw["file_path"], self.settings.max_file_size_bytes)
        own.source = _signature(path)
        restart = bool(checkpoint) and checkpoint.get("source") != own.source
        if restart:
            log.warning(
                "task %s: the file changed since the last checkpoint; starting over", own.task_id
            )
            checkpoint = {}
        with registry.open_document(path) as doc:
            ctx = ChunkContext(
                task_id=raw["task_id"],
                kb_id=raw["kb_id"],
                source=path.name,
                mime_type=doc.mime_type,
                chunk_size=int(raw["chunk_size"]),
                chunk_overlap=int(raw["chunk_overlap"]),
                extra=raw["metadata"],
            )
            saved = checkpoint.get("chunker")
            chunker = Chunker(
                ctx.chunk_size, ctx.chunk_overlap, ChunkerState.from_dict(saved) if saved else None
            )
            own.start(doc, restart)
            next_unit = int(checkpoint.get("next_unit", 0))
            self._parse_units(own, doc, chunker, ctx, next_unit)

    def _parse_units(
        self, own: _Owned, doc: Document, chunker: Chunker, ctx: ChunkContext, next_unit: int
    ) -> None:
        batch: list[dict[str, Any]] = []
        parsed = 0
        for unit, raws in chunk_stream(doc, chunker, next_unit):
            batch.extend(ctx.record(r) for r in raws)
            parsed, next_unit = parsed + 1, unit.index + 1
            if chunker.state.seq > self.settings.max_chunks:
                raise LimitExceeded(
                    f"the document makes more than {self.settings.max_chunks} "
                    "chunks (KNOWRA_MAX_CHUNKS)"
                )
            if parsed % self.settings.checkpoint_every_units == 0:
                own.checkpoint(batch, next_unit, chunker, doc, parsed, final=False)
                batch, parsed = [], 0
                if self.should_yield():
                    log.warning(
                        "task %s: this instance is going away; handing the task back at unit %d",
                        own.task_id,
                        next_unit,
                    )
                    raise _Stop(own.hand_back())
        batch.extend(ctx.record(r) for r in chunker.finish())
        if chunker.state.seq == 0:
            raise EmptyDocument(
                "the document contains no extractable text "
                "(a scanned PDF needs OCR, which this service does not do)"
            )
        own.checkpoint(batch, next_unit, chunker, doc, parsed, final=True)
        own.settle(State.SUCCEEDED, {"error": ""})

    def _fail(self, task_id: str, epoch: int, exc: KnowraError) -> Outcome:
        log.info("task %s failed: %s %s", task_id, exc.code, exc.message)
        self._settle_quietly(task_id, epoch, State.FAILED, {"error": _json(exc)})
        return Outcome.FAILED

    def _settle_quietly(
        self, task_id: str, epoch: int, target: State, fields: dict[str, Any]
    ) -> None:
        try:
            self.store.settle(task_id, epoch, target, fields)
        except TransientError:
            log.warning("task %s: could not record %s; its lease will lapse", task_id, target)


class _Owned:
    """Writes of a task this worker holds: each carries the epoch and may end the run."""

    def __init__(self, runner: TaskRunner, task_id: str, epoch: int, lease: _Lease) -> None:
        self.runner, self.task_id, self.epoch, self.lease = runner, task_id, epoch, lease
        self.store = runner.store
        self.source = ""  # the file's signature, kept in the checkpoint

    def params(self) -> dict[str, Any]:
        status = self.store.get_status(self.task_id)
        if status is None:
            raise _Stop(Outcome.LOST)
        return status.model_dump()

    def start(self, doc: Document, restart: bool) -> None:
        fields: dict[str, Any] = {
            "mime_type": doc.mime_type,
            "unit": doc.unit_name,
            "units_total": doc.units_total,
        }
        if restart:
            fields.update(checkpoint="", units_done=0, chunks=0)
        self._obey(self._commit(fields, [], 0, restart))

    def checkpoint(
        self,
        chunks: list[dict[str, Any]],
        next_unit: int,
        chunker: Chunker,
        doc: Document,
        parsed: int,
        final: bool,
    ) -> None:
        units_total = next_unit if final else max(doc.units_total, next_unit)
        if not doc.units_total_exact and not final:
            units_total = max(units_total, next_unit + 1)
        cp = {"next_unit": next_unit, "chunker": chunker.state.to_dict(), "source": self.source}
        fields = {
            "checkpoint": _dumps(cp),
            "units_done": next_unit,
            "units_total": units_total,
            "chunks": chunker.state.seq,
        }
        state = self._commit(fields, chunks, parsed)
        if not final:
            self._obey(state)

    def _obey(self, state: str) -> None:
        """Stop here if a pause or a cancel was asked for (the checkpoint is committed)."""
        if state == State.PAUSING:
            raise _Stop(self._settle(State.PAUSED))
        if state == State.CANCELLING:
            raise _Stop(self._settle(State.CANCELLED))

    def hand_back(self) -> Outcome:
        """Back to the queue from the checkpoint just committed (or paused, if asked)."""
        return self._settle(State.QUEUED)

    def settle(self, target: State, fields: dict[str, Any]) -> None:
        outcome = self._settle(target, fields)
        if outcome is not Outcome(target.value):
            raise _Stop(outcome)

    def _settle(self, target: State, fields: dict[str, Any] | None = None) -> Outcome:
        reached = self.store.settle(self.task_id, self.epoch, target, fields)
        return Outcome.LOST if reached is None else Outcome(reached)

    def _commit(
        self,
        fields: dict[str, Any],
        chunks: list[dict[str, Any]],
        parsed: int,
        restart: bool = False,
    ) -> str:
        if self.lease.lost:
            raise _Stop(Outcome.LOST)
        state = self.store.commit(
            self.task_id,
            self.epoch,
            self.runner.worker_id,
            self.runner.lease_ms,
            {**fields, "updated_at": time.time()},
            chunks,
            parsed,
            restart,
        )
        if state is None:
            log.warning("task %s: taken over by another worker; stopping", self.task_id)
            raise _Stop(Outcome.LOST)
        return state


def _signature(path: Path) -> str:
    """Size and modification time: a resumed task must parse the file it started on."""
    try:
        st = path.stat()
    except OSError as exc:
        raise SourceIOError(f"cannot read the file: {exc.strerror}") from exc
    return f"{st.st_size}:{st.st_mtime_ns}"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _json(exc: KnowraError) -> str:
    return _dumps(exc.to_dict())


def parse_file(
    path: Path, chunk_size: int, chunk_overlap: int, task_id: str = "local", kb_id: str = "local"
) -> Iterator[tuple[Document, Unit, list[dict[str, Any]]]]:
    """Parse one local file without any server: (document, unit, finished chunk records).

    After the last unit, one more item carries the chunks flushed at the end (unit index -1).
    """
    check_readable_file(path, str(path))
    with registry.open_document(path) as doc:
        ctx = ChunkContext(task_id, kb_id, path.name, doc.mime_type, chunk_size, chunk_overlap)
        chunker = Chunker(chunk_size, chunk_overlap)
        for unit, raws in chunk_stream(doc, chunker):
            yield doc, unit, [ctx.record(r) for r in raws]
        yield doc, Unit(index=-1), [ctx.record(r) for r in chunker.finish()]
        if chunker.state.seq == 0:
            raise EmptyDocument("the document contains no extractable text")

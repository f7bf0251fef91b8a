"""Runs one task: file -> parser units -> chunker -> store, with a checkpoint after each unit.

`chunk_stream` is the pure part (also used by `knowra-worker parse`); `TaskRunner` adds
ownership (claim, lease, fencing epoch), checkpoints, pause/cancel checks and error
classification around it.

Every commit names the checkpoint it extends (`lifecycle.Position`: units done, chunks,
staged); a store that holds another one has lost writes (a Redis restarted from an older AOF,
a failover to a lagging replica), and the worker hands the task back instead of going on from
its own memory: the next claim resumes from what the store really has.
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

import orjson
from billiard.exceptions import SoftTimeLimitExceeded

from knowra_worker import parts
from knowra_worker.chunking import Chunker, ChunkerState, RawChunk
from knowra_worker.document import Document, SharesFacts, TextFormat, Unit
from knowra_worker.errors import (
    EmptyDocument,
    InternalError,
    KnowraError,
    LimitExceeded,
    PermanentError,
    TransientError,
    WorkerCrashed,
)
from knowra_worker.lifecycle import Action, Position, State
from knowra_worker.parsers import registry
from knowra_worker.parts import JoinedDocument
from knowra_worker.paths import check_readable_file, resolve_allowed, signature

if TYPE_CHECKING:  # the CLI's parse path needs neither Redis nor the settings
    from knowra_worker.settings import Settings
    from knowra_worker.store import Reply, TaskStore

log = logging.getLogger(__name__)

STAGE_CHUNKS = 500  # a unit making more chunks than this commits them in parts
STAGE_BYTES = 1 << 20  # ... or more encoded bytes than this
STAGE_TTL_MS = 24 * 3600 * 1000  # parts of a unit whose worker died are dropped after this
MAX_WARNINGS = 200


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
            [self.kb_id, self.task_id, str(self.chunk_size), str(self.chunk_overlap),
             str(raw.seq), raw.text]
        )  # fmt: skip
        return str(uuid.UUID(bytes=hashlib.sha256(key.encode()).digest()[:16], version=5))

    def record(self, raw: RawChunk) -> dict[str, Any]:
        metadata = {
            **self.extra,
            "kb_id": self.kb_id, "task_id": self.task_id, "source": self.source,
            "mime_type": self.mime_type, "page_start": raw.page_start,
            "page_end": raw.page_end, "headings": list(raw.headings),
            "char_start": raw.char_start, "char_end": raw.char_end,
            "content_type": raw.content_type, "header_chars": raw.header_chars,
        }  # fmt: skip
        return {"chunk_id": self.chunk_id(raw), "seq": raw.seq, "text": raw.text,
                "metadata": metadata}  # fmt: skip

    def encoded(self, raw: RawChunk) -> tuple[int, str]:
        """(seq, the chunk's JSON): encoded once, stored as is, served as is."""
        return raw.seq, orjson.dumps(self.record(raw)).decode()


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
    RETRY = "queued"  # back in the queue after a transient error: send again after a backoff
    REQUEUED = "requeued"  # handed back (shutdown, store diverged): send again at once
    SKIPPED = "skipped"  # not ours to run (final, paused, running elsewhere, missing)
    LOST = "lost"  # another worker took the task over (stale epoch)


_REACHED = {
    State.SUCCEEDED: Outcome.SUCCEEDED,
    State.FAILED: Outcome.FAILED,
    State.PAUSED: Outcome.PAUSED,
    State.CANCELLED: Outcome.CANCELLED,
}


class _Stop(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class _Lease:
    """The lease of a task this process runs, renewed by the process's _Leases while the
    task runs; `lost` once the store refused a renewal (another epoch holds the task)."""

    def __init__(self, runner: TaskRunner, task_id: str, epoch: int) -> None:
        self.runner, self.task_id, self.epoch = runner, task_id, epoch
        self.lost = False
        self.due = time.monotonic() + runner.settings.heartbeat_interval_s  # next renewal

    def __enter__(self) -> _Lease:
        self.runner.leases.hold(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.leases.release(self)

    def renew(self) -> None:
        runner = self.runner
        try:
            if not runner.store.renew_lease(
                self.task_id, self.epoch, runner.instance_id, runner.lease_ms
            ):
                self.lost = True  # never renewed again: the task is another epoch's
                return
        except Exception as exc:  # the store is out of reach: the next renewal tries again
            log.warning("task %s: lease renewal failed (%s); will try again", self.task_id, exc)
        self.due = time.monotonic() + runner.settings.heartbeat_interval_s


class _Leases:
    """Renews the leases of the tasks a process runs, each every heartbeat interval, from
    one background thread: started with a lease, it ends once no lease has been held for
    _IDLE_S (a thread per task cost every task a thread's start and join). A renewal holds
    the lock, so none is sent for a lease after its release returns (RENEW would set the
    lease key of a task that has ended)."""

    _IDLE_S = 30.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: set[_Lease] = set()
        self._thread: threading.Thread | None = None

    def hold(self, lease: _Lease) -> None:
        with self._cond:
            self._held.add(lease)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True, name="leases")
                self._thread.start()
            self._cond.notify()

    def release(self, lease: _Lease) -> None:
        with self._cond:
            self._held.discard(lease)

    def _loop(self) -> None:
        with self._cond:
            while True:
                live = [lease for lease in self._held if not lease.lost]
                if not live:
                    if not self._cond.wait(self._IDLE_S) and not self._held:
                        self._thread = None  # the next lease starts another
                        return
                    continue
                wait = min(lease.due for lease in live) - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                for lease in live:
                    if lease.due <= time.monotonic():
                        lease.renew()


def _never() -> bool:
    return False


class TaskRunner:
    """Runs claimed tasks for the instance `instance_id`. `should_yield` is asked at every
    checkpoint: when it answers True (the instance is going away) the task is handed back to
    the queue right there."""

    def __init__(
        self,
        store: TaskStore,
        settings: Settings,
        instance_id: str,
        should_yield: Callable[[], bool] = _never,
        enqueue_part: Callable[[str, int, str, int], None] | None = None,
    ) -> None:
        """`enqueue_part(task_id, part, source, priority)` sends the message that makes some
        worker parse a part of a split task; without it this worker parses every part."""
        self.store = store
        self.enqueue_part = enqueue_part
        self.settings = settings
        self.instance_id = instance_id
        self.should_yield = should_yield
        self.lease_ms = int(settings.lease_ttl_s * 1000)
        self.leases = _Leases()
        self.callback_url: str | None = None  # of the task run last, if it is to be told

    def run(self, task_id: str) -> Outcome:
        from knowra_worker.store.replies import Outcome as ReplyOutcome  # loaded with the store

        gave_up = WorkerCrashed(
            f"the task's worker died {self.settings.max_attempts} times while running it"
        )
        self.callback_url = None
        claim = self.store.claim(
            task_id, self.instance_id, self.lease_ms, self.settings.max_attempts, gave_up
        )
        if not claim.ok:
            log.info("task %s not run: %s (%s)", task_id, claim.outcome, claim.state)
            if claim.outcome is ReplyOutcome.EXHAUSTED:  # failed by this claim: tell the caller
                self.callback_url = self.store.callback_url(task_id)
            return Outcome.FAILED if claim.state is State.FAILED else Outcome.SKIPPED
        if claim.repaired:
            log.warning("task %s: the store had lost chunks of this run; starting over", task_id)
        log.info("task %s: attempt %d, epoch %d", task_id, claim.attempts, claim.epoch)
        self.callback_url = (claim.task or {}).get("callback_url") or None
        with _Lease(self, task_id, claim.epoch) as lease:
            start = Position(claim.units_done, claim.chunks)
            own = _Owned(self, task_id, claim.epoch, lease, start, claim.task)
            return self._run_owned(own, claim.attempts, claim.checkpoint)

    def _run_owned(self, own: _Owned, attempts: int, checkpoint: dict[str, Any] | None) -> Outcome:
        try:
            self._parse(own, checkpoint or {})
            return Outcome.SUCCEEDED
        except _Stop as stop:
            return stop.outcome
        except PermanentError as exc:
            return own.fail(exc)
        except SoftTimeLimitExceeded:
            limit = self.settings.task_time_limit_s
            return own.fail(
                LimitExceeded(
                    f"the task ran longer than {limit:.0f} s (KNOWRA_TASK_TIME_LIMIT_S); it "
                    "stopped at its last checkpoint and goes on from there when resumed"
                )
            )
        except TransientError as exc:
            if attempts >= self.settings.max_attempts:
                return own.fail(exc)
            log.warning("task %s: transient error, will retry: %s", own.task_id, exc.message)
            return own.leave(Action.RETRY, {"error": _json(exc)})
        except Exception:
            log.exception("task %s: unexpected error", own.task_id)
            return own.fail(InternalError("unexpected error while parsing"))

    def _parse(self, own: _Owned, checkpoint: dict[str, Any]) -> None:
        raw = own.params()
        path = resolve_allowed(raw["file_path"], self.settings.allowed_roots)
        check_readable_file(path, raw["file_path"], self.settings.max_file_size_bytes)
        own.source = signature(path)
        restart = bool(checkpoint) and checkpoint.get("source") != own.source
        if restart:
            log.warning(
                "task %s: the file changed since the last checkpoint; starting over",
                own.task_id,
            )
            checkpoint = {}
        with registry.open_document(path) as doc:
            ctx = ChunkContext(
                task_id=raw["task_id"], kb_id=raw["kb_id"], source=path.name,
                mime_type=doc.mime_type, chunk_size=int(raw["chunk_size"]),
                chunk_overlap=int(raw["chunk_overlap"]), extra=raw["metadata"],
            )  # fmt: skip
            saved = checkpoint.get("chunker")
            chunker = Chunker(
                ctx.chunk_size, ctx.chunk_overlap, ChunkerState.from_dict(saved) if saved else None,
                text_format=raw["text_format"], tokenizer=raw["tokenizer"],
            )  # fmt: skip
            next_unit = int(checkpoint.get("next_unit", 0))
            own.warnings = list(checkpoint.get("warnings", []))
            own.start(doc, next_unit, int(raw["progress"]["units_total"]), restart)
            if self._splits(doc):
                joined = self._join(own, path, doc, next_unit, int(raw["priority"]))
                self._parse_units(own, joined, chunker, ctx, next_unit)
            else:
                self._parse_units(own, doc, chunker, ctx, next_unit)

    def _splits(self, doc: Document) -> bool:
        """Whether a document is long enough to be parsed as parts by several workers."""
        pages = self.settings.split_pages
        return bool(pages) and doc.units_total_exact and doc.units_total > pages

    def _join(
        self, own: _Owned, path: Path, doc: Document, next_unit: int, priority: int
    ) -> JoinedDocument:
        """Split the task into parts (once), send a message for each part other workers may
        take, and answer the units in page order, wherever they are parsed."""
        spans = parts.ranges(doc.units_total, self.settings.part_pages)
        facts = self._shared_facts(path) if isinstance(doc, SharesFacts) else ""
        reply, made = self.store.split(own.task_id, own.epoch, own.source, next_unit, spans, facts)
        own.check(reply)
        if self.enqueue_part is not None:
            for number, part in enumerate(made):
                if not part.done and part.start > next_unit:
                    self.enqueue_part(own.task_id, number, own.source, priority)
        holder = parts.holder(self.instance_id)
        return JoinedDocument(self.store, own.task_id, path, own.source, doc, made, holder,
                              self.settings, own.between_units, self.should_yield,
                              facts)  # fmt: skip

    @staticmethod
    def _shared_facts(path: Path) -> str:
        """The facts every part needs (see SharesFacts), decided here once, before any part's
        message: the parts' workers take them. From a document opened for this alone and
        closed at once: pdfium keeps what it loaded to reach the sampled pages (the page tree
        up to the last one) for as long as the document is open, and the task's own document
        stays open for the whole run."""
        with registry.open_document(path) as whole:
            return whole.shared_facts() if isinstance(whole, SharesFacts) else ""

    def _parse_units(
        self, own: _Owned, doc: Document, chunker: Chunker, ctx: ChunkContext, next_unit: int
    ) -> None:
        batch: list[tuple[int, str]] = []
        fed = parsed = 0  # units since the last checkpoint: fed to the chunker, parsed here
        every, interval = self.settings.checkpoint_every_units, self.settings.checkpoint_interval_s
        last = time.monotonic()
        for unit, raws in chunk_stream(doc, chunker, next_unit):
            own.warn(unit.warnings)
            batch.extend(ctx.encoded(r) for r in raws)
            fed, parsed, next_unit = fed + 1, parsed + _parsed_here(doc), unit.index + 1
            if chunker.state.seq > self.settings.max_chunks:
                raise LimitExceeded(
                    f"the document makes more than {self.settings.max_chunks} "
                    "chunks (KNOWRA_MAX_CHUNKS)"
                )
            # a checkpoint per unit would cost a store round trip per page: they are batched
            # by time, so that pauses and cancels are still seen within `interval`
            if fed >= every or time.monotonic() - last >= interval:
                own.checkpoint(batch, next_unit, chunker, doc, parsed, final=False)
                batch, fed, parsed, last = [], 0, 0, time.monotonic()
                if self.should_yield():
                    log.warning(
                        "task %s: this instance is going away; handing the task back at unit %d",
                        own.task_id,
                        next_unit,
                    )
                    raise _Stop(own.leave(Action.YIELD))
        batch.extend(ctx.encoded(r) for r in chunker.finish())
        if chunker.state.seq == 0:
            raise EmptyDocument(
                "the document contains no extractable text (nor any that OCR could read)"
            )
        own.checkpoint(batch, next_unit, chunker, doc, parsed, final=True)


class _Owned:
    """Writes of a task this worker holds: each carries the epoch and the checkpoint it
    extends, and may end the run."""

    def __init__(
        self,
        runner: TaskRunner,
        task_id: str,
        epoch: int,
        lease: _Lease,
        base: Position,
        task: dict[str, str] | None = None,
    ) -> None:
        self.runner, self.task_id, self.epoch, self.lease = runner, task_id, epoch, lease
        self.store = runner.store
        self.task = task  # the task's fields as the claim answered them
        self.pending: dict[str, Any] = {}  # fields that go with the next commit
        self.base = base  # the checkpoint the store holds, as far as this worker knows
        self.source = ""  # the file's signature, kept in the checkpoint
        self.warnings: list[str] = []  # what was skipped or OCR'd so far, kept likewise

    def params(self) -> dict[str, Any]:
        """The task's parameters and status: from the claim, without another read."""
        status = self.store.status_of(self.task) if self.task else None
        status = status or self.store.get_status(self.task_id)
        if status is None:
            raise _Stop(Outcome.LOST)
        return status.model_dump()

    def start(self, doc: Document, next_unit: int, known_total: int, restart: bool) -> None:
        total = doc.units_total
        if not doc.units_total_exact:  # an estimate: never below what is already known
            total = max(total, known_total, next_unit + 1)
        fields: dict[str, Any] = {
            "mime_type": doc.mime_type, "unit": doc.unit_name, "units_total": total,
        }  # fmt: skip
        if not restart:
            self.pending = fields  # they go with the first checkpoint: one write less
            return
        fields.update(checkpoint="", warnings="[]")
        self.warnings = []
        self._obey(self._commit(fields, [], Position(0, 0), 0, reset=True))

    def checkpoint(
        self,
        chunks: list[tuple[int, str]],
        next_unit: int,
        chunker: Chunker,
        doc: Document,
        parsed: int,
        final: bool,
    ) -> None:
        units_total = next_unit if final else max(doc.units_total, next_unit)
        if not doc.units_total_exact and not final:
            units_total = max(units_total, next_unit + 1)
        cp = {"next_unit": next_unit, "chunker": chunker.state.to_dict(), "source": self.source,
              "warnings": self.warnings}  # fmt: skip
        fields = {"checkpoint": _dumps(cp), "units_total": units_total,
                  "warnings": _dumps(self.warnings)}  # fmt: skip
        rest = self._stage(chunks)
        reached = Position(next_unit, chunker.state.seq)
        state = self._commit(fields, rest, reached, parsed, finish=final)
        if not final:
            self._obey(state)
        elif state is not State.SUCCEEDED:  # a cancel asked for meanwhile won
            raise _Stop(_REACHED.get(state, Outcome.LOST))

    def warn(self, warnings: list[str]) -> None:
        """Keep a unit's warnings (at most MAX_WARNINGS, then one line says how many more)."""
        for warning in warnings:
            if len(self.warnings) < MAX_WARNINGS:
                self.warnings.append(warning)
            elif len(self.warnings) == MAX_WARNINGS:
                self.warnings.append("more warnings were left out")

    def _stage(self, chunks: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """Send all but the last part of a large unit's chunks ahead; the rest goes with
        the commit, which makes the staged ones visible atomically with the checkpoint."""
        parts = _parts(chunks)
        for part in parts[:-1]:
            reply = self.store.stage(self.task_id, self.epoch, self.base, part, STAGE_TTL_MS)
            self._check(reply)
            self.base = Position(
                self.base.units_done, self.base.chunks, self.base.staged + len(part)
            )
        return parts[-1] if parts else []

    def _obey(self, state: State) -> None:
        """Stop here if a pause or a cancel was asked for (the checkpoint is committed)."""
        if state in (State.PAUSING, State.CANCELLING):
            reply = self.store.settle(self.task_id, self.epoch, Action.STOP)
            if reply.refused:
                return  # the pause was withdrawn meanwhile: go on
            raise _Stop(self._ended(reply))

    def fail(self, exc: KnowraError) -> Outcome:
        log.info("task %s failed: %s %s", self.task_id, exc.code, exc.message)
        return self._leave_quietly(Action.FAIL, {"error": _json(exc)}, Outcome.FAILED)

    def leave(self, action: Action, fields: dict[str, Any] | None = None) -> Outcome:
        """Hand the task back (yield) or to a later retry; a pending pause or cancel wins."""
        requeued = Outcome.RETRY if action is Action.RETRY else Outcome.REQUEUED
        return self._leave_quietly(action, fields or {}, requeued)

    def _leave_quietly(self, action: Action, fields: dict[str, Any], fallback: Outcome) -> Outcome:
        """Settle; when the store cannot be reached, `fallback` (the lease lapses and the
        task is taken over from its checkpoint, or the retry's claim finds it)."""
        try:
            reply = self.store.settle(self.task_id, self.epoch, action, fields)
        except TransientError:
            log.warning("task %s: could not record %s; its lease will lapse", self.task_id, action)
            return fallback
        requeued = fallback if fallback is not Outcome.FAILED else Outcome.REQUEUED
        return self._ended(reply, requeued)

    def _ended(self, reply: Reply, requeued: Outcome = Outcome.REQUEUED) -> Outcome:
        """The outcome of a settle's reply; a diverged store sends the task back."""
        if reply.diverged:
            return self._diverged()
        if not reply.ok or reply.state is None:
            return Outcome.LOST
        if reply.state is State.QUEUED:
            return requeued
        return _REACHED.get(reply.state, Outcome.LOST)

    def _commit(
        self,
        fields: dict[str, Any],
        chunks: list[tuple[int, str]],
        reached: Position,
        parsed: int,
        reset: bool = False,
        finish: bool = False,
    ) -> State:
        if self.lease.lost:
            raise _Stop(Outcome.LOST)
        fields = {**self.pending, **fields, "updated_at": time.time()}
        reply = self.store.commit(
            self.task_id, self.epoch, self.runner.instance_id, self.runner.lease_ms, self.base,
            reached, fields, chunks, parsed, reset, finish,
        )  # fmt: skip
        self.pending = {}
        self._check(reply)
        self.base = reached
        assert reply.state is not None
        return reply.state

    def between_units(self, state: State | None) -> None:
        """While waiting for a unit another worker parses: stop for a pause, a cancel, a
        lost task or an instance going away, as at a checkpoint."""
        if self.lease.lost or state is None or not state.is_held:
            raise _Stop(Outcome.LOST)
        if state in (State.PAUSING, State.CANCELLING):
            self._obey(state)
        if self.runner.should_yield():
            raise _Stop(self.leave(Action.YIELD))

    def check(self, reply: Reply) -> None:
        self._check(reply)

    def _check(self, reply: Reply) -> None:
        if reply.ok:
            return
        if reply.diverged:
            raise _Stop(self._diverged())
        log.warning("task %s: taken over by another worker; stopping", self.task_id)
        raise _Stop(Outcome.LOST)

    def _diverged(self) -> Outcome:
        log.warning(
            "task %s: the store does not hold this worker's last checkpoint (it lost writes); "
            "handing the task back to resume from what the store has",
            self.task_id,
        )
        reply = self.store.settle(self.task_id, self.epoch, Action.YIELD)
        if not reply.ok or reply.state is None:
            return Outcome.LOST
        return Outcome.REQUEUED if reply.state is State.QUEUED else _REACHED[reply.state]


def _parsed_here(doc: Document) -> int:
    """Units parsed by this worker for the last unit it fed: one, or for a split task those
    it parsed itself (not another worker's stored units)."""
    return doc.take_parsed_here() if isinstance(doc, JoinedDocument) else 1


def _parts(chunks: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """Chunks cut into parts of at most STAGE_CHUNKS chunks and about STAGE_BYTES bytes."""
    parts: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    size = 0
    for chunk in chunks:
        if current and (len(current) >= STAGE_CHUNKS or size + len(chunk[1]) > STAGE_BYTES):
            parts.append(current)
            current, size = [], 0
        current.append(chunk)
        size += len(chunk[1])
    if current:
        parts.append(current)
    return parts


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _json(exc: KnowraError) -> str:
    return _dumps(exc.to_dict())


def parse_file(
    path: Path,
    chunk_size: int,
    chunk_overlap: int,
    task_id: str = "local",
    kb_id: str = "local",
    text_format: TextFormat = "markdown",
    tokenizer: str | None = None,
) -> Iterator[tuple[Document, Unit, list[dict[str, Any]]]]:
    """Parse one local file without any server: (document, unit, finished chunk records).

    After the last unit, one more item carries the chunks flushed at the end (unit index -1).
    """
    check_readable_file(path, str(path))
    with registry.open_document(path) as doc:
        ctx = ChunkContext(task_id, kb_id, path.name, doc.mime_type, chunk_size, chunk_overlap)
        chunker = Chunker(chunk_size, chunk_overlap, text_format=text_format, tokenizer=tokenizer)
        for unit, raws in chunk_stream(doc, chunker):
            yield doc, unit, [ctx.record(r) for r in raws]
        yield doc, Unit(index=-1), [ctx.record(r) for r in chunker.finish()]
        if chunker.state.seq == 0:
            raise EmptyDocument("the document contains no extractable text")

"""A long paginated document parsed as page-range parts by several worker processes.

The worker that claims such a task (the *joiner*) splits it into parts of
`KNOWRA_PART_PAGES` pages, the last ones smaller (`ranges`; store: SPLIT), sends one message
per part, and then feeds its chunker every unit in page order: a unit a part's worker has
parsed and stored, or, when the unit's part is held by nobody (not started yet, or its
worker died), units it parses itself (taking the part over). While the next unit's part is
another worker's and not stored yet, the joiner does not wait idle: it takes a later part
nobody holds and parses it as that part's worker would, storing its units for when it gets
there. The chunker therefore sees exactly the unit sequence of an unsplit run, so the chunks
are identical to an unsplit run's (seq, text, metadata, ids), whichever process parsed which
page; chunking, checkpoints, pause, cancel and crash recovery of the task are the joiner's
and work as for any task. A part's worker stores units only while the task runs: a pause, a
cancel or a stopped instance stops it at its next store, and the part goes on from its own
checkpoint (its next unit) when the task runs again.

What every page needs from the whole document (a PDF's running heads and outline: see
document.SharesFacts) is decided once, by the joiner before it sends the part messages, and
kept with the parts; each part's worker takes it rather than deciding it again.

Memory stays bounded: stored units are deleted as the joiner commits them, and the document
is opened afresh for each part (pdfium keeps per-document state that grows with the pages
loaded; reopening bounds it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from knowra_worker.document import Block, BlockKind, Document, SharesFacts, Unit
from knowra_worker.errors import KnowraError, PermanentError, TransientError
from knowra_worker.lifecycle import State
from knowra_worker.parsers import registry

if TYPE_CHECKING:
    from knowra_worker.settings import Settings
    from knowra_worker.store import TaskStore
    from knowra_worker.store.replies import Part

log = logging.getLogger(__name__)

_BLOCK_FIELDS = tuple(f.name for f in dataclasses.fields(Block))
STORE_EVERY_S = 0.1  # a part's worker stores what it parsed at least this often
_WAIT_S = (0.002, 0.02)  # the joiner's first and longest wait for a unit another worker parses
_READ_UNITS = 32  # stored units the joiner reads in one call
_TAIL_PARTS = 4  # the last two parts' worth of pages is cut in this many parts
_MIN_TAIL_PAGES = 10


def ranges(total: int, part_pages: int) -> list[tuple[int, int]]:
    """[start, end) unit ranges of at most part_pages units covering 0..total-1, the last
    ones smaller: workers that take the last parts finish close together, none left parsing
    a whole part while the others have nothing to do. Parts of part_pages run until at most
    two parts' worth is left; that is cut in four (each of at least _MIN_TAIL_PAGES pages, or
    in two when parts are that small)."""
    spans, first = [], 0
    while total - first > 2 * part_pages:
        spans.append((first, first + part_pages))
        first += part_pages
    left = total - first
    pieces = max(-(-left // part_pages), min(_TAIL_PARTS, left // _MIN_TAIL_PAGES))
    for piece in range(pieces):
        end = first + (left * (piece + 1)) // pieces - (left * piece) // pieces
        spans.append((first, end))
        first = end
    return spans


def holder(instance_id: str) -> str:
    """Who holds a part: this pool process of this instance."""
    return f"{instance_id}:{os.getpid()}"


def give_up(store: TaskStore, task_id: str, number: int, holder: str) -> None:
    """Release a part this process held and will not finish: whoever needs it takes it at
    once (a store that cannot be reached lets the lease lapse instead)."""
    with contextlib.suppress(KnowraError):
        store.renew_part(task_id, number, holder, 0)


@contextlib.contextmanager
def open_part(path: Path, facts: str) -> Iterator[Document]:
    """The document, opened afresh for one part, with the facts the task's worker decided
    for it (see document.SharesFacts) when there are any."""
    with registry.open_document(path) as doc:
        if facts and isinstance(doc, SharesFacts):
            doc.adopt_facts(facts)
        yield doc


def encode_unit(unit: Unit) -> str:
    """A parsed unit as JSON (each block's fields in order; tuples and the kind as orjson
    writes them: arrays and the kind's value)."""
    blocks = [[getattr(block, name) for name in _BLOCK_FIELDS] for block in unit.blocks]
    return orjson.dumps({"b": blocks, "w": unit.warnings}).decode()


def encode_error(exc: KnowraError) -> str:
    """A unit a part's worker could not read: the joiner fails the task with it there."""
    return json.dumps({"error": exc.to_dict(), "class": type(exc).__name__})


def decode_unit(index: int, raw: str) -> Unit:
    data = orjson.loads(raw)
    if "error" in data:
        raise _error(data)
    blocks = [_block(dict(zip(_BLOCK_FIELDS, values, strict=True))) for values in data["b"]]
    return Unit(index, blocks, list(data["w"]))


def _block(values: dict[str, Any]) -> Block:
    values["kind"] = BlockKind(values["kind"])
    values["rows"] = tuple(tuple(row) for row in values.get("rows") or ())
    return Block(**values)


def _error(data: dict[str, Any]) -> KnowraError:
    from knowra_worker import errors

    cls = getattr(errors, data.get("class", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, PermanentError)):
        cls = errors.CorruptFile
    return cls(str(data["error"].get("message", "unreadable page")))


class JoinedDocument:
    """The units of a split task in page order, from the parts' workers or parsed here.

    `between_units(state)` is called while waiting for another worker: it stops the run (by
    raising) when the task is to pause, cancel or be handed back.
    """

    def __init__(
        self,
        store: TaskStore,
        task_id: str,
        path: Path,
        source: str,
        shape: Any,
        parts: list[Part],
        holder: str,
        settings: Settings,
        between_units: Callable[[State | None], None],
        should_yield: Callable[[], bool] = lambda: False,
        facts: str = "",
    ) -> None:
        self.store, self.task_id, self.path, self.source = store, task_id, path, source
        self.mime_type, self.unit_name = shape.mime_type, shape.unit_name
        self.units_total, self.units_total_exact = shape.units_total, True
        self.parts, self.holder, self.settings = parts, holder, settings
        self.between_units, self.should_yield = between_units, should_yield
        self.facts = facts  # the document's, decided once for every part (SharesFacts)
        self.lease_ms = int(settings.lease_ttl_s * 1000)
        self.parsed_here = 0  # units this worker parsed itself (not taken from a part's)
        self.finished = {number for number, part in enumerate(parts) if part.done}

    def take_parsed_here(self) -> int:
        count, self.parsed_here = self.parsed_here, 0
        return count

    def units(self, start: int = 0) -> Iterator[Unit]:
        index, waited = start, 0
        while index < self.units_total:
            stored = self.store.parsed_units(self.task_id, index, _READ_UNITS)
            if stored[0] is not None:
                for raw in stored:
                    if raw is None:
                        break
                    yield decode_unit(index, raw)
                    index += 1
                waited = 0
                continue
            parsed = yield from self._parse_here(index)
            if parsed:
                index, waited = parsed, 0
                continue
            if self._work_ahead(index):
                waited = 0
                continue
            waited += 1
            time.sleep(min(_WAIT_S[0] * 2**waited, _WAIT_S[1]))

    def _part_of(self, index: int) -> tuple[int, Part]:
        for number, part in enumerate(self.parts):
            if part.start <= index < part.end:
                return number, part
        raise IndexError(index)

    def _parse_here(self, index: int) -> Generator[Unit, None, int]:
        """Parse the rest of `index`'s part here if no live worker holds it; the next index
        (0 when another worker does: the caller waits)."""
        number, part = self._part_of(index)
        claim = self.store.claim_part(self.task_id, number, self.holder, self.lease_ms, self.source)
        if not claim.ok:  # the claim tells the task's state too: a pause or a cancel stops here
            self.between_units(claim.state)
            if claim.outcome.value == "busy":
                return 0
        # not claimed otherwise: done (parsed here before, not stored) or made for another
        # version of the file; parsed here, nothing stored
        epoch = claim.epoch if claim.ok else 0
        yield from self._parse_range(index, part.end, number if epoch else None)
        if epoch:  # done: no other worker parses this part again
            self.store.store_units(
                self.task_id, number, epoch, self.holder, self.lease_ms, [], finished=True
            )
        return part.end

    def _work_ahead(self, index: int) -> bool:
        """While `index`'s part is another worker's and not stored yet: parse a later part
        that nobody holds, storing its units as a part's worker would, instead of waiting.
        Whether a part was parsed (or the search should start again)."""
        current, _ = self._part_of(index)
        for number in range(current + 1, len(self.parts)):
            if number in self.finished:
                continue
            claim = self.store.claim_part(
                self.task_id, number, self.holder, self.lease_ms, self.source
            )
            if not claim.ok:  # held by a live worker, done, or the task does not run
                self.between_units(claim.state)
                if claim.outcome.value == "skip":
                    self.finished.add(number)
                continue
            worker = PartWorker(self.store, self.task_id, number, claim.epoch, self.holder,
                                self.lease_ms, self.should_yield)  # fmt: skip
            outcome = "stopped"
            try:
                outcome = worker.parse(self.path, claim.next, claim.end, self.facts)
                if outcome == "done":
                    self.finished.add(number)
            finally:
                if outcome != "done":
                    give_up(self.store, self.task_id, number, self.holder)
            return True
        return False

    def _parse_range(self, first: int, end: int, held: int | None) -> Iterator[Unit]:
        renewed, finished = time.monotonic(), False
        try:
            with open_part(self.path, self.facts) as doc:
                # one unit per page: the page after the range is never read
                for unit in itertools.islice(doc.units(first), end - first):
                    self.parsed_here += 1
                    yield unit
                    if held is not None and time.monotonic() - renewed > 1.0:
                        self.store.renew_part(self.task_id, held, self.holder, self.lease_ms)
                        renewed = time.monotonic()
            finished = True
        finally:
            if held is not None and not finished:  # stopped early
                give_up(self.store, self.task_id, held, self.holder)

    def close(self) -> None:
        """Nothing to release: each part's document is closed when the part is done."""

    def __enter__(self) -> JoinedDocument:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PartRunner:
    """Parses one part of a split task for its message: the units next..end-1, stored as it
    goes; stops at once when the task does not run (paused, cancelled, handed back) or the
    part was taken over."""

    def __init__(
        self,
        store: TaskStore,
        settings: Settings,
        instance_id: str,
        should_yield: Callable[[], bool],
    ) -> None:
        self.store, self.settings, self.should_yield = store, settings, should_yield
        self.holder = holder(instance_id)
        self.lease_ms = int(settings.lease_ttl_s * 1000)
        self.source = ""

    def run(self, task_id: str, number: int, source: str) -> str:
        self.source = source
        claim = self.store.claim_part(task_id, number, self.holder, self.lease_ms, source)
        if not claim.ok:
            return claim.outcome.value
        outcome = "stopped"
        try:
            outcome = self._parse(task_id, number, claim.epoch, claim.next, claim.end,
                                  Path(claim.file_path))  # fmt: skip
        except TransientError as exc:
            log.warning("task %s part %d: stopped by %s; it will be taken over", task_id,
                        number, exc.message)  # fmt: skip
        finally:
            if outcome != "done":
                give_up(self.store, task_id, number, self.holder)
        return outcome

    def _parse(self, task_id: str, number: int, epoch: int, first: int, end: int,
               path: Path) -> str:  # fmt: skip
        from knowra_worker.paths import resolve_allowed, signature

        path = resolve_allowed(str(path), self.settings.allowed_roots)
        if signature(path) != self.source:
            return "stale"  # the file changed: the task's own worker starts over
        worker = PartWorker(self.store, task_id, number, epoch, self.holder, self.lease_ms,
                            self.should_yield)  # fmt: skip
        return worker.parse(path, first, end, self.store.part_facts(task_id, self.source))


class PartWorker:
    """Parses the units first..end-1 of one claimed part and stores them as it goes (at
    least every STORE_EVERY_S, and at once when the instance is going away). It stops at
    the first store the task refuses (paused, cancelled, handed back, part taken over); the
    part then goes on from the last unit stored. An unreadable page is stored as an error
    at its place: the joiner fails the task when it gets there."""

    def __init__(self, store: TaskStore, task_id: str, number: int, epoch: int, holder: str,
                 lease_ms: int, should_yield: Callable[[], bool]) -> None:  # fmt: skip
        self.store, self.task_id, self.number, self.epoch = store, task_id, number, epoch
        self.holder, self.lease_ms, self.should_yield = holder, lease_ms, should_yield

    def parse(self, path: Path, first: int, end: int, facts: str = "") -> str:
        """'done', or 'stopped' when a store was refused. `facts`: the document's, as the
        task's worker decided them (see document.SharesFacts)."""
        batch: list[tuple[int, str]] = []
        next_index, last_store = first, time.monotonic()
        try:
            with open_part(path, facts) as doc:
                for unit in itertools.islice(doc.units(first), end - first):
                    batch.append((unit.index, encode_unit(unit)))
                    next_index = unit.index + 1
                    if time.monotonic() - last_store >= STORE_EVERY_S or self.should_yield():
                        if not self._store(batch):
                            return "stopped"
                        batch, last_store = [], time.monotonic()
        except PermanentError as exc:  # this page is unreadable: the task fails there
            batch.append((next_index, encode_error(exc)))
        return "done" if self._store(batch) else "stopped"

    def _store(self, batch: list[tuple[int, str]]) -> bool:
        if not batch:
            return True
        reply = self.store.store_units(
            self.task_id, self.number, self.epoch, self.holder, self.lease_ms, batch
        )
        if not reply.ok:
            log.info("task %s part %d: stopping (%s, task %s)", self.task_id, self.number,
                     reply.outcome, reply.state)  # fmt: skip
        return reply.ok

"""The durability rig: a real store on the suite's Redis with its own key prefix, real runners
sharing it, and a hook at the parser boundary where a test interrupts a run exactly where it
wants (between units, or a unit parsed but not yet committed)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from knowra_worker import pipeline
from knowra_worker.document import SharesFacts, Unit
from knowra_worker.models import StartTaskRequest
from knowra_worker.parsers import registry
from knowra_worker.pipeline import Outcome, TaskRunner
from knowra_worker.settings import Settings
from knowra_worker.store import Keys, TaskStore

from ..harness import DATA

DOCS = {"multi-column.pdf": 13, "multi_page.pdf": 5}


class Crash(BaseException):
    """Stands for the worker process dying: nothing in the pipeline may catch it."""


class Rig:
    """A store with its own key prefix, and runners that share it."""

    def __init__(self, redis_url: str) -> None:
        self.settings = Settings(
            redis_url=redis_url,
            key_prefix=f"d{uuid.uuid4().hex[:8]}:",
            allowed_roots=[DATA],
            heartbeat_interval_s=60,
            checkpoint_interval_s=0,  # a checkpoint per unit: tests stop runs at any unit
        )
        self.store = TaskStore.from_url(redis_url, Keys(self.settings.key_prefix), 3600)
        self.hook: Callable[[int], None] = lambda index: None
        self.mid_unit = False
        self.warn_every_unit = False  # units then carry a warning naming them

    def runner(self, instance_id: str = "w1") -> TaskRunner:
        return TaskRunner(self.store, self.settings, instance_id)

    def new_task(self, name: str) -> str:
        return self.new_task_at(DATA / name)

    def new_task_at(self, path: Path, size: int = 300, overlap: int = 60) -> str:
        task_id = f"t-{uuid.uuid4().hex[:8]}"
        req = StartTaskRequest(
            task_id=task_id, file_path=str(path), kb_id="kb", chunk_size=size,
            chunk_overlap=overlap,
        )  # fmt: skip
        self.store.create_task(req)
        return task_id

    def chunks(self, task_id: str) -> list[dict[str, Any]]:
        """Every readable chunk, a page at a time as a client reads them, from one generation."""
        page, chunks = self.store.get_chunks(task_id, 0, 1000)
        while len(chunks) < page.total:
            more = self.store.get_chunks(task_id, len(chunks), 1000, page.generation)[1]
            assert more
            chunks.extend(more)
        assert page.total == len(chunks)
        assert [c["seq"] for c in chunks] == list(range(len(chunks)))
        return chunks

    def lapse_lease(self, task_id: str) -> None:
        self.store.r.delete(self.store.keys.lease(task_id))

    @contextmanager
    def hooked(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
        real_open = registry.open_document

        def open_document(path: Path) -> Any:
            return _Hooked(real_open(path), self)

        monkeypatch.setattr(pipeline.registry, "open_document", open_document)
        yield self


class _Hooked:
    """A parsed document whose unit stream calls the rig's hook at each unit."""

    def __init__(self, doc: Any, rig: Rig) -> None:
        self.doc, self.rig = doc, rig
        self.mime_type, self.unit_name = doc.mime_type, doc.unit_name
        self.units_total, self.units_total_exact = doc.units_total, doc.units_total_exact

    def units(self, start: int = 0) -> Iterator[Unit]:
        for unit in self.doc.units(start):
            if self.rig.warn_every_unit:
                unit.warnings.append(f"unit {unit.index}: something was skipped")
            if not self.rig.mid_unit:
                self.rig.hook(unit.index)  # before the unit is handed over: between units
            yield unit
            if self.rig.mid_unit:
                self.rig.hook(unit.index)  # the unit parsed, its chunks not yet committed

    def shared_facts(self) -> str:  # those of the parsed document, when it has any
        return self.doc.shared_facts() if isinstance(self.doc, SharesFacts) else ""

    def adopt_facts(self, facts: str) -> None:
        if isinstance(self.doc, SharesFacts):
            self.doc.adopt_facts(facts)

    def close(self) -> None:
        self.doc.close()

    def __enter__(self) -> _Hooked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def rig(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    r = Rig(redis_url)
    with r.hooked(monkeypatch):
        yield r
    r.store.close()


_baselines: dict[str, list[dict[str, Any]]] = {}


def baseline(rig: Rig, name: str) -> list[dict[str, Any]]:
    """Chunks of an uninterrupted run, with the task id blanked out for comparison."""
    if name not in _baselines:
        task_id = rig.new_task(name)
        assert rig.runner().run(task_id) is Outcome.SUCCEEDED
        _baselines[name] = normalize(rig.chunks(task_id), task_id)
    return _baselines[name]


def normalize(chunks: list[dict[str, Any]], task_id: str) -> list[dict[str, Any]]:
    """Chunk ids derive from the task id: compare them through a task-free recomputation."""
    out = []
    for c in chunks:
        meta = {**c["metadata"], "task_id": "-"}
        out.append(
            {
                "seq": c["seq"],
                "text": c["text"],
                "metadata": meta,
                "id_is_stable": c["chunk_id"] == _expected_id(c, task_id),
            }
        )
    return out


def _expected_id(chunk: dict[str, Any], task_id: str) -> str:
    from knowra_worker.chunking import RawChunk

    m = chunk["metadata"]
    ctx = pipeline.ChunkContext(task_id, m["kb_id"], m["source"], m["mime_type"], 300, 60)
    raw = RawChunk(
        chunk["seq"],
        chunk["text"],
        m["char_start"],
        m["char_end"],
        m["page_start"],
        m["page_end"],
        tuple(m["headings"]),
        m["content_type"],
    )
    return ctx.chunk_id(raw)


def status(rig: Rig, task_id: str) -> Any:
    s = rig.store.get_status(task_id)
    assert s is not None
    return s


def pause_at(rig: Rig, task_id: str, at: int) -> None:
    def hook(index: int) -> None:
        if index == at:
            rig.store.control(task_id, "pause")

    rig.hook = hook


def crash_at(rig: Rig, at: int) -> None:
    def hook(index: int) -> None:
        if index == at:
            raise Crash()

    rig.hook = hook

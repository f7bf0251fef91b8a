"""A long document split into page-range parts: whatever worker parses which part, and
whatever pauses, crashes and cancels come in between, the joined chunks are exactly those of
an unsplit run. Real Redis, real parsers, real TaskRunner and PartRunner; the parts' workers
run where the test says (inside the hook at a unit of the task's own worker)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from knowra_worker import parts
from knowra_worker.errors import CorruptFile
from knowra_worker.lifecycle import State
from knowra_worker.parts import PartRunner
from knowra_worker.pipeline import Outcome, TaskRunner

from .conftest import Crash, Rig, baseline, normalize, status

DOC, PAGES = "multi-column.pdf", 13


class Split:
    """The rig set to split DOC into parts of 3 pages, with a record of the part messages
    the task's worker sends, and part workers to run them."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.expected = baseline(rig, DOC)  # unsplit
        rig.settings = rig.settings.model_copy(update={"split_pages": 4, "part_pages": 3})
        self.messages: list[tuple[str, int, str]] = []
        self.task_id = rig.new_task(DOC)

    def joiner(self) -> TaskRunner:
        def enqueue(task_id: str, part: int, source: str, priority: int) -> None:
            self.messages.append((task_id, part, source))

        return TaskRunner(self.rig.store, self.rig.settings, "w1", enqueue_part=enqueue)

    def run_parts(self, instance: str = "w2") -> list[str]:
        """Each part message sent so far, run by a part worker (as a queue would deliver)."""
        worker = PartRunner(self.rig.store, self.rig.settings, instance, lambda: False)
        sent, self.messages = self.messages, []
        return [worker.run(*message) for message in sent]

    def check(self) -> Any:
        final = status(self.rig, self.task_id)
        assert final.state is State.SUCCEEDED, final
        assert normalize(self.rig.chunks(self.task_id), self.task_id) == self.expected
        k = self.rig.store.keys
        assert not self.rig.store.r.exists(k.parts(self.task_id), k.units(self.task_id))
        return final


@pytest.fixture
def split(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> Iterator[Split]:
    monkeypatch.setattr(parts, "STORE_EVERY_S", 0.0)  # parts store every unit they parse
    yield Split(rig)


def once(action: Any) -> Any:
    done: list[bool] = []

    def hook(index: int) -> None:
        if not done:
            done.append(True)
            action(index)

    return hook


@pytest.mark.parametrize("part_pages", [1, 2, 3, 10, 50, 100])
def test_parts_cover_every_page_once_in_order_and_end_smaller(part_pages: int) -> None:
    for total in range(1, 1000):
        spans = parts.ranges(total, part_pages)
        assert spans[0][0] == 0 and spans[-1][1] == total
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        assert all(0 < end - start <= part_pages for start, end in spans)
        if total > 2 * part_pages >= 8 * parts._MIN_TAIL_PAGES:  # the last two parts' worth
            *whole, a, b, c, d = [end - start for start, end in spans]
            assert set(whole) == {part_pages}
            assert max(a, b, c, d) <= (2 * part_pages + 3) // 4  # is cut in four


def test_a_split_task_its_worker_parses_alone_gives_the_unsplit_chunks(split: Split) -> None:
    assert split.joiner().run(split.task_id) is Outcome.SUCCEEDED
    assert [part for _, part, _ in split.messages] == [1, 2, 3, 4]  # nobody took them
    assert split.check().units_parsed == PAGES
    assert split.run_parts() == ["refused"] * 4  # late messages: the task is over


def test_parts_parsed_by_other_workers_are_joined_in_page_order(split: Split) -> None:
    outcomes: list[str] = []
    split.rig.hook = once(lambda index: outcomes.extend(split.run_parts()))
    assert split.joiner().run(split.task_id) is Outcome.SUCCEEDED
    assert outcomes == ["done"] * 4
    assert split.check().units_parsed == PAGES  # every page parsed exactly once


def test_the_parts_workers_take_the_documents_facts_and_do_not_decide_them_again(
    split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task's worker decides the running heads and outline once and keeps them with the
    parts; the parts' workers read every page of theirs alike without sampling the document
    (the joined chunks are the unsplit ones), and a part made for another version of the
    file is given none."""
    from knowra_worker.parsers.pdf import PdfDocument

    real, sampled = PdfDocument._sample, []

    def counted(doc: PdfDocument) -> Any:
        sampled.append(doc.units_total)
        return real(doc)

    monkeypatch.setattr(PdfDocument, "_sample", counted)
    by_parts: list[int] = []
    kept: list[str] = []

    def run_parts(index: int) -> None:
        source = split.messages[0][2]
        kept.extend(split.rig.store.part_facts(split.task_id, s) for s in (source, "other"))
        before = len(sampled)
        assert split.run_parts() == ["done"] * 4
        by_parts.append(len(sampled) - before)

    split.rig.hook = once(run_parts)
    assert split.joiner().run(split.task_id) is Outcome.SUCCEEDED
    assert sampled == [PAGES] and by_parts == [0]  # the joiner's sample, none in the parts
    assert kept[0].startswith('{"v": 1') and kept[1] == ""  # none for another version
    split.check()


def test_the_joiner_parses_later_parts_while_another_worker_holds_the_next(
    split: Split,
) -> None:
    """Part 1 (pages 3-5) is held by a worker that never stores: the joiner does not wait
    for it idle but parses the later parts, storing them; when the holder's lease lapses it
    takes part 1 over. Every page parsed once, by the joiner, and the unsplit chunks."""
    rig = split.rig
    parsed: list[int] = []

    def hook(index: int) -> None:
        if index == 0 and not parsed:
            source = rig.store.r.hget(rig.store.keys.parts(split.task_id), "source")
            claim = rig.store.claim_part(split.task_id, 1, "w9:1", 400, str(source))
            assert claim.ok  # another worker holds part 1 for 0.4 s, then dies silently
        parsed.append(index)

    rig.hook = hook
    assert split.joiner().run(split.task_id) is Outcome.SUCCEEDED
    assert split.check().units_parsed == PAGES
    assert parsed == [0, 1, 2, *range(6, PAGES), 3, 4, 5]  # later parts first, then part 1


def test_a_pause_stops_the_parts_and_a_resume_goes_on(split: Split) -> None:
    rig = split.rig

    def hook(index: int) -> None:
        if index == 1:
            rig.store.control(split.task_id, "pause")
            assert split.run_parts() == ["refused"] * 4  # pausing: parts wait

    rig.hook = hook
    assert split.joiner().run(split.task_id) is Outcome.PAUSED
    assert status(rig, split.task_id).state is State.PAUSED
    rig.store.control(split.task_id, "resume")
    rig.hook = once(lambda index: split.run_parts())
    assert split.joiner().run(split.task_id) is Outcome.SUCCEEDED
    assert split.check().units_parsed == PAGES


def test_a_part_whose_worker_died_is_taken_over_from_its_last_unit(split: Split) -> None:
    rig = split.rig
    killed: list[int] = []

    def crash_in_a_part(index: int) -> None:
        if index == 7 and not killed:  # in part 2 (pages 7-9), its first page stored
            killed.append(index)
            raise Crash()

    def joiner_hook(index: int) -> None:
        if index == 0:
            rig.hook = crash_in_a_part
            with pytest.raises(Crash):
                split.run_parts()
            rig.hook = lambda i: None
            rig.store.r.delete(rig.store.keys.part_lease(split.task_id, 2))  # lease lapses
            split.run_parts()  # the messages after the dead one

    rig.hook = joiner_hook
    assert split.joiner().run(split.task_id) is Outcome.SUCCEEDED
    final = split.check()
    assert final.units_parsed == PAGES  # page 7 was never stored: parsed once, by the joiner


def test_a_cancel_drops_the_parts_and_what_they_parsed(split: Split) -> None:
    rig = split.rig

    def hook(index: int) -> None:
        if index == 0:
            split.run_parts()
        if index == 1:
            rig.store.control(split.task_id, "cancel")

    rig.hook = hook
    assert split.joiner().run(split.task_id) is Outcome.CANCELLED
    k = rig.store.keys
    assert not rig.store.r.exists(k.parts(split.task_id), k.units(split.task_id))
    assert rig.chunks(split.task_id) == []


def test_a_page_a_part_cannot_read_fails_the_task_there(split: Split) -> None:
    rig = split.rig

    def broken(index: int) -> None:
        if index == 10:
            raise CorruptFile("page 11 is damaged")

    def joiner_hook(index: int) -> None:
        if index == 0:
            rig.hook = broken
            split.run_parts()
            rig.hook = lambda i: None

    rig.hook = joiner_hook
    assert split.joiner().run(split.task_id) is Outcome.FAILED
    final = status(rig, split.task_id)
    assert final.error is not None and final.error.code == "CORRUPT_FILE"
    assert "page 11 is damaged" in final.error.message
    assert final.progress.units_done == 10  # every page before it was joined


def test_a_split_task_stopped_by_its_time_limit_keeps_what_its_parts_parsed(
    split: Split,
) -> None:
    from billiard.exceptions import SoftTimeLimitExceeded

    rig = split.rig

    def hook(index: int) -> None:
        if index == 0:
            split.run_parts()  # every other part parsed and stored
        if index == 2:
            raise SoftTimeLimitExceeded()

    rig.hook = hook
    assert split.joiner().run(split.task_id) is Outcome.FAILED
    stopped = status(rig, split.task_id)
    assert stopped.error is not None and stopped.error.code == "LIMIT_EXCEEDED"
    k = rig.store.keys
    assert rig.store.r.hlen(k.units(split.task_id)) == PAGES - 3  # kept, with the task's TTL
    assert rig.store.r.ttl(k.units(split.task_id)) > 0
    rig.hook = lambda index: None
    assert rig.store.control(split.task_id, "resume") == ("queued", True)
    assert rig.store.r.ttl(k.units(split.task_id)) == -1
    assert split.joiner().run(split.task_id) is Outcome.SUCCEEDED
    assert split.check().units_parsed == PAGES  # no page parsed twice

"""The worker's soft time limit (a signal) never lands inside a pdfium call: it is held back
to the end of the section, then raised as usual."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from knowra_worker.parsers.pdf import pdfium_section

from .conftest import DATA, read_units


class Limit(Exception):
    pass


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Limit()


@pytest.fixture
def soft_limit_handler() -> Iterator[None]:
    """The handler as a pool process has it, and another thread running (as the lease's
    renewal does), which the kernel may hand the signal to."""
    previous = signal.signal(signal.SIGUSR1, _raise)
    done = threading.Event()
    other = threading.Thread(target=done.wait, daemon=True)
    other.start()
    yield
    done.set()
    other.join()
    signal.signal(signal.SIGUSR1, previous)


def test_the_signal_waits_for_the_end_of_the_section(soft_limit_handler: None) -> None:
    reached = []
    with pytest.raises(Limit):
        with pdfium_section():
            os.kill(os.getpid(), signal.SIGUSR1)
            reached.append("after the signal, still inside")
        reached.append("never: raised on leaving the section")
    assert reached == ["after the signal, still inside"]


def test_a_limit_between_pages_leaves_pdfium_whole(
    soft_limit_handler: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted while reading, the process still reads the same document right after."""
    expected = read_units(DATA / "multi_page.pdf")
    from knowra_worker.parsers import pdf

    pdf.forget_documents()  # every read below reads its pages, none served from the last
    real = pdf._read_page

    def read_then_interrupted(*args: object) -> object:
        os.kill(os.getpid(), signal.SIGUSR1)
        return real(*args)

    monkeypatch.setattr(pdf, "_read_page", read_then_interrupted)
    with pytest.raises(Limit):
        read_units(DATA / "multi_page.pdf")
    monkeypatch.setattr(pdf, "_read_page", real)
    pdf.forget_documents()
    assert read_units(DATA / "multi_page.pdf") == expected

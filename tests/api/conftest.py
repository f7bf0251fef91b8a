"""The API under test: an app on the suite's Redis with no worker consuming, a root with one
small document, and request bodies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from knowra_worker.main import create_app
from knowra_worker.settings import Settings


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root").mkdir()
    doc = tmp_path / "root" / "doc.txt"
    doc.write_text("Hello world.\n\nSecond paragraph.\n")
    return tmp_path / "root"


def make_client(redis_url: str, key_prefix: str, roots: list[Path], **extra: object) -> TestClient:
    settings = Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        allowed_roots=roots,
        embedded_worker=False,
        **extra,
    )
    return TestClient(create_app(settings))


@pytest.fixture
def client(redis_url: str, key_prefix: str, root: Path) -> Iterator[TestClient]:
    with make_client(redis_url, key_prefix, [root]) as c:
        yield c


def body(root: Path, **over: object) -> dict[str, object]:
    b: dict[str, object] = {
        "task_id": f"t-{uuid.uuid4().hex[:8]}",
        "kb_id": "kb1",
        "file_path": str(root / "doc.txt"),
        "chunk_size": 500,
        "chunk_overlap": 50,
    }
    b.update(over)
    return b

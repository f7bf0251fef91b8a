"""All configuration, from environment variables prefixed KNOWRA_ (and a .env file).

One frozen Settings object is built per process by get_settings() and passed down; nothing
mutates it. Every field is documented in the README with its default.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from knowra_worker.parsers._ocr import OcrConfig

_OCR = OcrConfig()  # the OCR defaults, owned by the module that reads them


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "knowra-worker"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KNOWRA_", env_file=".env", extra="ignore", frozen=True
    )

    redis_url: str | None = Field(
        default=None,
        description="Redis URL. Unset: 127.0.0.1:6379 if it answers, else an embedded server.",
    )
    redis_mode: Literal["auto", "embedded"] = Field(
        default="auto",
        description="auto: the URL, else local 6379, else embedded; embedded: always embedded.",
    )
    key_prefix: str = Field(default="knowra:", description="Prefix of every Redis key.")
    host: str = Field(default="0.0.0.0", description="Address the HTTP API binds to.")
    port: int = Field(default=8001, ge=1, le=65535, description="HTTP port.")
    advertise_host: str = Field(
        default_factory=socket.gethostname, description="Host name this instance announces."
    )
    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API processes of `serve`, in front of one instance (uvicorn --workers).",
    )
    concurrency: int = Field(
        default=2, ge=1, le=256, description="Pool processes of the instance's Celery worker."
    )
    queues: Annotated[list[str], NoDecode] = Field(
        default=["knowra"], description="Queues this instance consumes (comma separated)."
    )
    embedded_worker: bool = Field(
        default=True, description="Start a Celery worker with the API (serve)."
    )
    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=lambda: [Path.cwd()],
        description="Directories files may be read from, separated by ':'.",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Local state: the embedded Redis AOF, uploads.",
    )
    max_file_size_mb: float = Field(default=200.0, gt=0, description="Largest file accepted.")
    result_ttl_days: float = Field(
        default=7.0, gt=0, description="Days finished tasks and their chunks are kept."
    )
    log_level: str = Field(default="INFO", description="Log level of API and worker.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default=[], description="Accepted X-API-Key values (comma separated); empty: no auth."
    )
    max_chunks: int = Field(default=200_000, ge=1, description="Most chunks one task may make.")
    checkpoint_every_units: int = Field(
        default=100, ge=1, description="Most units parsed between two checkpoints."
    )
    checkpoint_interval_s: float = Field(
        default=0.05,
        ge=0,
        description="Least seconds between two checkpoints: the units parsed in between are "
        "committed together (0: a checkpoint after every unit). A pause or cancel is seen at "
        "the next checkpoint.",
    )
    split_pages: int = Field(
        default=200,
        ge=0,
        description="A paginated document of more pages than this is parsed as page-range "
        "parts by several worker processes (0: never split).",
    )
    part_pages: int = Field(
        default=100, ge=1, description="Pages of one part of a split task (the last are smaller)."
    )
    heartbeat_interval_s: float = Field(
        default=5.0, gt=0, description="Seconds between two renewals of a running task's lease."
    )
    lease_ttl_s: float = Field(
        default=30.0, gt=0, description="A running task's lease; it lapses when its worker dies."
    )
    max_attempts: int = Field(
        default=5, ge=1, le=100, description="Attempts per task (transient errors, crashes)."
    )
    retry_backoff_s: float = Field(
        default=2.0, gt=0, description="First retry delay; doubles each attempt, with jitter."
    )
    task_time_limit_s: float = Field(
        default=3600.0,
        gt=0,
        description="A task running longer stops at its checkpoint with LIMIT_EXCEEDED.",
    )
    visibility_timeout_s: float = Field(
        default=7200.0,
        gt=0,
        description="Broker redelivers an unacknowledged message after this; must exceed "
        "the task time limit.",
    )
    recovery_interval_s: float = Field(
        default=10.0, gt=0, description="How often an instance looks for orphaned tasks."
    )
    requeue_queued_after_s: float = Field(
        default=300.0,
        gt=0,
        description="A task queued this long without starting gets its message sent again.",
    )
    shutdown_grace_s: float = Field(
        default=20.0, ge=0, description="Seconds the worker gets to stop before it is killed."
    )
    retry_backoff_max_s: float = Field(default=120.0, gt=0, description="Longest retry delay.")
    # Read by the parsers from the environment (parsers/_ocr.py), in the worker and in
    # `knowra-worker parse` alike; declared here so that a bad value stops the service's start.
    ocr_engine: Literal["rapidocr", "tesseract", "none"] = Field(
        default="rapidocr",
        description="Text recognition for scanned PDF pages and images: rapidocr (bundled "
        "models), tesseract (needs the tesseract program) or none.",
    )
    ocr_dpi: int = Field(
        default=_OCR.dpi, ge=36, le=600, description="Resolution scanned PDF pages are read at."
    )
    ocr_threads: int = Field(
        default=_OCR.threads,
        ge=0,
        description="Threads of the OCR engine per worker process (0: the runtime's choice).",
    )
    ocr_languages: str = Field(
        default=_OCR.languages, description="Tesseract's languages, e.g. eng+deu."
    )
    max_image_pixels: int = Field(
        default=_OCR.max_image_pixels,
        ge=1,
        description="Largest image (width x height) read; larger ones fail LIMIT_EXCEEDED.",
    )

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, v: object) -> object:
        if isinstance(v, str):
            return [p for p in v.split(":") if p.strip()]
        return v

    @field_validator("queues", "api_keys", mode="before")
    @classmethod
    def _split_commas(cls, v: object) -> object:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @model_validator(mode="after")
    def _tesseract_installed(self) -> Settings:
        if self.ocr_engine == "tesseract":
            from knowra_worker.parsers._ocr import tesseract_available

            if not tesseract_available():
                raise ValueError(
                    "KNOWRA_OCR_ENGINE=tesseract needs the tesseract program and pytesseract "
                    "(pip install 'knowra-worker[tesseract]')"
                )
        return self

    @model_validator(mode="after")
    def _visibility_beyond_time_limit(self) -> Settings:
        if self.visibility_timeout_s <= self.hard_time_limit_s:
            raise ValueError(
                f"KNOWRA_VISIBILITY_TIMEOUT_S ({self.visibility_timeout_s:.0f}) must exceed the "
                f"task time limit plus 60 s ({self.hard_time_limit_s:.0f}), or the broker would "
                "hand a running task to a second worker"
            )
        return self

    @property
    def hard_time_limit_s(self) -> float:
        """Celery kills a task this long after it started: the soft limit plus a margin."""
        return self.task_time_limit_s + 60

    @property
    def max_file_size_bytes(self) -> int:
        return int(self.max_file_size_mb * 1024 * 1024)

    @property
    def result_ttl_seconds(self) -> int:
        return int(self.result_ttl_days * 86400)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

"""Schemas of the HTTP API and of the task status."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from knowra_worker.document import TextFormat
from knowra_worker.lifecycle import State  # the state machine lives in lifecycle.py

CHUNK_SIZE_MIN, CHUNK_SIZE_MAX = 50, 100_000
LengthUnit = Literal["chars", "tokens"]
Tokenizer = Literal["cl100k_base", "o200k_base"]  # as tokens.TOKENIZERS


class StartTaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:\-]+$")
    file_path: str = Field(min_length=1, max_length=4096)
    kb_id: str = Field(min_length=1, max_length=200)
    chunk_size: int = Field(default=1000, ge=CHUNK_SIZE_MIN, le=CHUNK_SIZE_MAX)
    chunk_overlap: int = Field(default=200, ge=0, le=CHUNK_SIZE_MAX)
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://",
        description="Receives a POST of the task status once the task is final.",
    )
    priority: int = Field(default=5, ge=0, le=9)
    metadata: dict[str, Any] = Field(default_factory=dict)
    text_format: TextFormat = Field(
        default="markdown",
        description="Chunk text as Markdown (headings, lists, pipe tables, links, fenced code) "
        "or as plain text.",
    )
    length_unit: LengthUnit = Field(
        default="chars",
        description="What chunk_size and chunk_overlap count: characters or tokens "
        "(of `tokenizer`). Offsets always count characters.",
    )
    tokenizer: Tokenizer | None = Field(
        default=None,
        description="The tiktoken encoding tokens are counted with; only with length_unit "
        "tokens (default there: cl100k_base).",
    )
    force: bool = Field(
        default=False,
        description="Run a finished task (same task_id and parameters) again from the start; "
        "its chunks are replaced when the new run succeeds.",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> StartTaskRequest:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self

    @model_validator(mode="after")
    def _tokenizer_counts_tokens(self) -> StartTaskRequest:
        if self.tokenizer is not None and self.length_unit != "tokens":
            raise ValueError('tokenizer is only for "length_unit": "tokens"')
        if self.length_unit == "tokens" and self.tokenizer is None:
            self.tokenizer = "cl100k_base"
        return self


class TaskRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1, max_length=200)


class Progress(BaseModel):
    percent: float = 0.0
    units_done: int = 0
    units_total: int = 0
    unit: str = "unit"
    chunks: int = 0


class ErrorInfo(BaseModel):
    code: str
    message: str
    retryable: bool = False


class TaskStatus(BaseModel):
    task_id: str
    kb_id: str
    state: State
    progress: Progress
    error: ErrorInfo | None = None
    attempts: int = 0
    units_parsed: int = Field(
        default=0, description="Units parsed over all attempts; a resumed task skips parsed ones."
    )
    worker_id: str | None = None
    worker_pid: int | None = Field(default=None, description="Worker process of the last attempt.")
    created_at: float
    started_at: float | None = None
    updated_at: float
    finished_at: float | None = None
    file_path: str
    chunk_size: int
    chunk_overlap: int
    text_format: TextFormat = "markdown"
    length_unit: LengthUnit = "chars"
    tokenizer: Tokenizer | None = None
    mime_type: str | None = None
    priority: int = 5
    metadata: dict[str, Any] = Field(default_factory=dict)
    generation: int = Field(
        default=0, description="The run: 0 for the first, one more for each forced re-run."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What could not be read and was skipped, and which pages were read by OCR.",
    )
    result_generation: int = Field(
        default=0,
        description="The run whose chunks task_result serves: the last one that succeeded, "
        "else the current one.",
    )


class ChunkMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    kb_id: str
    task_id: str
    source: str
    mime_type: str
    page_start: int | None = None
    page_end: int | None = None
    headings: list[str] = Field(default_factory=list)
    char_start: int
    char_end: int
    content_type: str = "text"
    header_chars: int = Field(
        default=0,
        description="Leading characters of the text that repeat a split table's header row "
        "and separator; char_start/char_end cover the rest.",
    )


class Chunk(BaseModel):
    chunk_id: str
    seq: int
    text: str
    metadata: ChunkMetadata


class TaskResult(BaseModel):
    task_id: str
    kb_id: str
    state: State
    generation: int = Field(
        description="The run these chunks come from; pass it back with the next page's "
        "request: a page of a run that is no longer current answers 409."
    )
    total: int
    offset: int
    chunks: list[Chunk]


class TaskList(BaseModel):
    tasks: list[TaskStatus]


class ErrorBody(BaseModel):
    error: ErrorInfo

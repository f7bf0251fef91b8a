"""Schemathesis hooks for test_openapi.py (loaded by `st run` through SCHEMATHESIS_HOOKS).

Two rules of the API relate two fields, which JSON Schema cannot state (422 otherwise, as the
schema's 422 answer of start_task says): `chunk_overlap` must be below `chunk_size`, and a
`tokenizer` is given only with `"length_unit": "tokens"`. The generator learns them here: a
*positive* start_task case that breaks the first gets the largest overlap the rule allows (so
the boundary itself is still sent), one that breaks the second counts in tokens. Negative
cases and every check stay as schemathesis makes them.
"""

from __future__ import annotations

from typing import Any

import schemathesis

DEFAULT_CHUNK_SIZE = 1000
DEFAULT_CHUNK_OVERLAP = 200


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    if case.operation.path != "/worker/start_task" or not _positive(case):
        return case
    body = case.body
    if not isinstance(body, dict):
        return case
    size = body.get("chunk_size", DEFAULT_CHUNK_SIZE)
    overlap = body.get("chunk_overlap", DEFAULT_CHUNK_OVERLAP)
    if _number(size) and _number(overlap) and overlap >= size:
        body = {**body, "chunk_overlap": size - 1}
    if body.get("tokenizer") is not None and body.get("length_unit") != "tokens":
        body = {**body, "length_unit": "tokens"}
    case.body = body
    return case


def _positive(case: Any) -> bool:
    return case.meta is not None and bool(case.meta.generation.mode.is_positive)


def _number(value: object) -> bool:
    """JSON Schema's integers include 599.0, which the API reads as 599."""
    return isinstance(value, int | float) and not isinstance(value, bool)

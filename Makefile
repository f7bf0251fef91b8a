# Two commands set everything up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: serve test lint bench bench-quality bench-perf clean

$(BIN)/knowra-worker: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## Install, then run one instance (API on port 8001 and its Celery worker).
serve: $(BIN)/knowra-worker
	$(BIN)/knowra-worker serve

## Install, lint, then run the whole test suite (it starts its own Redis-compatible server,
## builds the wheel and installs it without extras into a fresh venv).
test: lint
	$(BIN)/python -m pytest

## ruff (lint and formatting) and mypy; the venv holds the dev extra.
lint: $(BIN)/knowra-worker
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

## Throughput and memory, beside raw pypdfium2, on the PDFs of ../shared/corpus.
bench: $(BIN)/knowra-worker
	$(BIN)/python -m bench.throughput

## Word F1 of our text against the corpus ground truth, beside the plain libraries and markitdown.
bench-quality: $(BIN)/knowra-worker
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.quality

## The performance suite: each performance target beside its baseline, measured in one run.
bench-perf: $(BIN)/knowra-worker
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.perf

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

"""Command line: serve (API and its worker), worker (a Celery worker alone), parse (no server)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from knowra_worker import logs
from knowra_worker.errors import KnowraError
from knowra_worker.models import (
    CHUNK_SIZE_MAX,
    CHUNK_SIZE_MIN,
    LengthUnit,
    TextFormat,
    Tokenizer,
)

if TYPE_CHECKING:
    from knowra_worker.settings import Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    help="Knowra Worker: parse documents into chunks for knowledge bases.",
)


def _die(message: str, code: int = 2) -> None:
    typer.echo(f"knowra-worker: {message}", err=True)
    raise typer.Exit(code)


def _listen(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound before anything starts so that a busy port is a
    one-line error, and the instance registers the port it really got (--port 0 too)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        _die(
            f"port {port} on {host} is already in use; stop what uses it or pick "
            "another with --port (or KNOWRA_PORT)"
        )
    return sock


@app.command()
def serve(
    port: Annotated[
        int | None, typer.Option(help="HTTP port [default: KNOWRA_PORT or 8001]")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address [default: 0.0.0.0]")] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="pool processes of the Celery worker")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="API processes in front of the instance [default: KNOWRA_API_WORKERS]"),
    ] = None,
) -> None:
    """Run one instance: the HTTP API on --port and its own Celery worker."""
    from knowra_worker.settings import Settings

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "port": port,
            "host": host,
            "concurrency": concurrency,
            "api_workers": workers,
        }.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValueError as exc:
        _die(f"invalid setting: {exc}")
    logs.setup(settings.log_level)
    if settings.api_workers > 1:
        _serve_processes(settings, overrides)
    else:
        _serve_one(settings)


def _serve_one(settings: Settings) -> None:
    """One API process that owns the instance, started before serving so that start-up
    errors are one line on stderr."""
    import uvicorn

    from knowra_worker.broker import StartupError
    from knowra_worker.instance import Instance
    from knowra_worker.main import create_app

    sock = _listen(settings.host, settings.port)
    try:
        instance = Instance.start(settings, int(sock.getsockname()[1]))
    except StartupError as exc:
        sock.close()
        _die(str(exc))
    config = uvicorn.Config(
        create_app(settings, instance), log_level=settings.log_level.lower(), log_config=None
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        instance.stop()
    if not server.started:
        raise typer.Exit(1)


def _serve_processes(settings: Settings, overrides: dict[str, Any]) -> None:
    """KNOWRA_API_WORKERS processes under uvicorn's supervisor, on one socket; they elect
    the one that owns the instance (see instance.py). What would stop the instance from
    starting is checked here first, to be reported once rather than by every process."""
    import uvicorn

    from knowra_worker import broker
    from knowra_worker.instance import check_roots

    _listen(settings.host, settings.port).close()
    try:
        check_roots(settings)
        broker.preflight(settings)
    except broker.StartupError as exc:
        _die(str(exc))
    for name, value in overrides.items():  # the processes read their settings anew
        os.environ[f"KNOWRA_{name.upper()}"] = str(value)
    uvicorn.run(
        "knowra_worker.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.api_workers,
        log_level=settings.log_level.lower(),
        log_config=None,
    )


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="pool processes")] = None,
) -> None:
    """Run a Celery worker alone (no API), on KNOWRA_REDIS_URL or the local Redis."""
    import uuid

    from knowra_worker.worker.celery_app import app as celery

    # one instance id for the Celery worker and its pool processes (they inherit it)
    own_id = f"{socket.gethostname()}-worker-{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("KNOWRA_INSTANCE_ID", own_id)
    args = ["worker", "--loglevel", os.environ.get("KNOWRA_LOG_LEVEL", "INFO")]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    celery.worker_main(args)


def _write_chunks(out: TextIO, chunks: list[dict[str, Any]]) -> None:
    for chunk in chunks:
        out.write(json.dumps(chunk, ensure_ascii=False) + "\n")


@app.command()
def parse(
    file: Annotated[Path, typer.Argument(help="the document to parse")],
    chunk_size: Annotated[int, typer.Option(min=CHUNK_SIZE_MIN, max=CHUNK_SIZE_MAX)] = 1000,
    chunk_overlap: Annotated[int, typer.Option(min=0)] = 200,
    out: Annotated[
        Path | None, typer.Option(help="write chunks here (JSONL) instead of stdout")
    ] = None,
    progress: Annotated[bool, typer.Option(help="progress bar (on a terminal)")] = True,
    task_id: Annotated[str, typer.Option(help="task id the chunk ids derive from")] = "local",
    kb_id: Annotated[str, typer.Option(help="knowledge base id put in the metadata")] = "local",
    text_format: Annotated[
        TextFormat, typer.Option(help="chunk text as markdown or plain text")
    ] = "markdown",
    length_unit: Annotated[
        LengthUnit, typer.Option(help="what --chunk-size and --chunk-overlap count")
    ] = "chars",
    tokenizer: Annotated[
        Tokenizer | None, typer.Option(help="tiktoken encoding (with --length-unit tokens)")
    ] = None,
) -> None:
    """Parse one local file without any server; chunks as JSON lines."""
    from knowra_worker.pipeline import parse_file

    if chunk_overlap >= chunk_size:
        _die("--chunk-overlap must be smaller than --chunk-size")
    if tokenizer and length_unit != "tokens":
        _die("--tokenizer needs --length-unit tokens")
    counted_with = (tokenizer or "cl100k_base") if length_unit == "tokens" else None
    sink = out.open("w", encoding="utf-8") if out else sys.stdout
    show = progress and sys.stderr.isatty()
    total = 0
    try:
        with _Progress(show, file.name) as bar:
            for doc, unit, chunks in parse_file(
                file.resolve(), chunk_size, chunk_overlap, task_id, kb_id, text_format, counted_with
            ):
                _write_chunks(sink, chunks)
                total += len(chunks)
                bar.update(unit.index + 1, doc.units_total, doc.unit_name, total)
    except KnowraError as exc:
        _die(f"{exc.code}: {exc.message}", code=1)
    finally:
        if out:
            sink.close()
    typer.echo(f"{total} chunks from {file.name}", err=True)


class _Progress:
    """A rich progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, show: bool, name: str) -> None:
        self.bar: Any = None
        if show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self.task = self.bar.add_task(name, total=None, info="")

    def __enter__(self) -> _Progress:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def update(self, done: int, total: int, unit: str, chunks: int) -> None:
        if self.bar and done > 0:
            self.bar.update(
                self.task, completed=done, total=max(total, done), info=f"{unit}s, {chunks} chunks"
            )


def main() -> None:
    """`python -m knowra_worker` with no arguments serves, like `knowra-worker serve`."""
    if len(sys.argv) == 1:
        sys.argv.append("serve")
    app(prog_name="knowra-worker")

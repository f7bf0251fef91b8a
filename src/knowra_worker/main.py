"""The FastAPI application: create_app(settings) and `app` for uvicorn.

The lifespan owns the instance (broker, store, embedded Celery worker) and closes it on
exit; a background loop keeps this instance's registration fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from knowra_worker import __version__, logs
from knowra_worker.api import errors
from knowra_worker.api.routes import instance_router, open_router, router
from knowra_worker.broker import StartupError
from knowra_worker.errors import TransientError
from knowra_worker.instance import REGISTRATION_TTL_S, Instance
from knowra_worker.settings import Settings, get_settings

log = logging.getLogger(__name__)


async def _every(seconds: float, job: Callable[[], object], what: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(job)
        except TransientError as exc:
            log.warning("%s failed: %s", what, exc.message)
        except Exception:
            log.exception("%s failed", what)


def _check_worker(inst: Instance) -> None:
    if inst.settings.embedded_worker and not inst.worker_alive():
        log.error("the Celery worker of this instance has exited")


def create_app(settings: Settings | None = None, instance: Instance | None = None) -> FastAPI:
    """The app; it starts its instance in the lifespan unless given one already started
    (as `knowra-worker serve` does, to report start-up errors before serving)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.setup(settings.log_level)
        try:
            # In this thread, not a pool thread: the children's parent-death signal fires
            # when the thread that started them exits.
            inst = instance or Instance.start(settings)
        except StartupError as exc:
            log.error("cannot start: %s", exc)
            raise
        app.state.instance = inst
        loops = [
            asyncio.create_task(_every(REGISTRATION_TTL_S / 3, inst.register, "registration")),
            asyncio.create_task(
                _every(REGISTRATION_TTL_S / 3, lambda: _check_worker(inst), "worker check")
            ),
            asyncio.create_task(_every(settings.recovery_interval_s, inst.recover, "recovery")),
        ]
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            await run_in_threadpool(inst.stop)

    app = FastAPI(
        title="Knowra Worker",
        version=__version__,
        description="Parses documents into chunks for knowledge bases.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(router)
    app.include_router(instance_router)
    app.include_router(open_router)
    app.add_route("/metrics", _metrics, include_in_schema=False)
    return app


async def _metrics(request: Request) -> Response:
    inst: Instance = request.app.state.instance
    body = await run_in_threadpool(generate_latest, inst.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def __getattr__(name: str) -> FastAPI:
    # `uvicorn knowra_worker.main:app`: built on first access, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)

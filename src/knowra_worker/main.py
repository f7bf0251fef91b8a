"""The FastAPI application: create_app(settings) and `app` for uvicorn.

The lifespan takes this process's seat in front of an instance (broker, store, Celery
worker): it starts and owns the instance, or, when several API processes serve one port,
follows the one that owns it (see instance.py). It closes what it owns on exit; background
loops keep the registration fresh and the recovery going.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import Task
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response

from knowra_worker import __version__, logs
from knowra_worker.api import deps, errors
from knowra_worker.api.routes import instance_router, open_router, router
from knowra_worker.broker import StartupError
from knowra_worker.errors import TransientError
from knowra_worker.instance import REGISTRATION_TTL_S, Instance, PortLock, Seat, listening_port
from knowra_worker.settings import Settings, get_settings

log = logging.getLogger(__name__)
TEND_INTERVAL_S = 1.0  # how often a follower looks at the owner of its port
LISTEN_WAIT_S = 10.0  # how long a single uvicorn process may take to bind after startup
JOIN_TIMEOUT_S = 60.0  # how long a follower waits for the owner to publish its instance


async def _every(seconds: float, job: Callable[[], object], what: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(job)
        except TransientError as exc:
            log.warning("%s failed: %s", what, exc.message)
        except Exception:
            log.exception("%s failed", what)


async def _tend(seat: Seat) -> None:
    """A follower's watch over the owner of its port (on this thread: a takeover starts
    processes that must die with this thread)."""
    while True:
        await asyncio.sleep(TEND_INTERVAL_S)
        try:
            seat.tend()
        except Exception:
            log.exception("following the owner of this port failed")


async def _launch_when_listening(inst: Instance) -> None:
    """A single uvicorn process binds its socket after the app's startup: wait for it, take
    its port, then start the Celery worker and register."""
    deadline = time.monotonic() + LISTEN_WAIT_S
    port = listening_port()
    while port is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        port = listening_port()
    if port is None:
        log.warning("found no listening TCP socket; registering port %d", inst.port)
    else:
        inst.move_to(port)
    try:
        inst.launch()
    except Exception:
        log.exception("cannot start the instance")


async def _take_seat(settings: Settings, instance: Instance | None) -> tuple[Seat, list[Task]]:
    """This process's seat, and the tasks that keep it: alone on its port (the socket is
    not bound yet, or `knowra-worker serve` started the instance), or one of the API
    processes sharing an inherited socket, which elect the owner of their instance."""
    if instance is not None:
        return Seat.alone(settings, instance), []
    port = listening_port(or_about_to=True)
    if port is None:
        inst = Instance.open(settings, settings.port)
        inst.register()  # until the real port is known; replaced as soon as it is
        return Seat.alone(settings, inst), [asyncio.create_task(_launch_when_listening(inst))]
    seat = Seat(settings, PortLock(settings, port))
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while not seat.try_join():
        if time.monotonic() > deadline:
            raise StartupError(
                f"no API process of port {port} started its instance in {JOIN_TIMEOUT_S:.0f} s"
            )
        await asyncio.sleep(0.1)
    return seat, [asyncio.create_task(_tend(seat))]


class AppState(State):
    """app.state, typed: the seat the lifespan took, and the instance it serves now."""

    seat: Seat

    @property
    def instance(self) -> Instance:
        return self.seat.current()


def create_app(settings: Settings | None = None, instance: Instance | None = None) -> FastAPI:
    """The app; it starts its instance in the lifespan unless given one already started
    (as `knowra-worker serve` does, to report start-up errors before serving)."""
    settings = settings or get_settings()
    state = AppState()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.setup(settings.log_level)
        try:
            # In this thread, not a pool thread: the children's parent-death signal fires
            # when the thread that started them exits.
            seat, loops = await _take_seat(settings, instance)
        except StartupError as exc:
            log.error("cannot start: %s", exc)
            raise
        state.seat = seat
        loops += [
            asyncio.create_task(
                _every(REGISTRATION_TTL_S / 3, lambda: seat.current().register(), "registration")
            ),
            asyncio.create_task(
                _every(
                    REGISTRATION_TTL_S / 3,
                    lambda: seat.current().check_celery_worker(),
                    "Celery worker check",
                )
            ),
            asyncio.create_task(
                _every(settings.recovery_interval_s, lambda: seat.current().recover(), "recovery")
            ),
        ]
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            await run_in_threadpool(seat.stop)

    app = FastAPI(
        title="Knowra Worker",
        version=__version__,
        description="Parses documents into chunks for knowledge bases.",
        lifespan=lifespan,
    )
    app.state = state
    errors.install(app)
    app.include_router(router)
    app.include_router(instance_router)
    app.include_router(open_router)
    deps.document_security(app, keys_required=bool(settings.api_keys))
    app.add_route("/metrics", _metrics, include_in_schema=False)
    return app


async def _metrics(request: Request) -> Response:
    inst: Instance = request.app.state.instance  # 503 while the instance starts
    body = await run_in_threadpool(generate_latest, inst.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def __getattr__(name: str) -> FastAPI:
    # `uvicorn knowra_worker.main:app`: built on first access, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)

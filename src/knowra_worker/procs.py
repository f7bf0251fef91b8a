"""Child processes that live and die with this one."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send `sig` to this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def _child_setup(sig: int) -> Callable[[], None]:
    def setup() -> None:
        die_with_parent(sig)

    return setup


def spawn(
    args: list[str],
    env: dict[str, str] | None = None,
    sig: int = signal.SIGTERM,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[bytes]:
    """Start a child that inherits our stdout/stderr (so its output reaches our log) and
    gets `sig` if we die without stopping it; `pass_fds` stay open in it (a lock it holds
    as long as it lives).

    Linux sends the parent-death signal when the *thread* that forked the child ends: call
    this from a thread that lives as long as the child should (the main thread)."""
    return subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        pass_fds=pass_fds,
        preexec_fn=_child_setup(sig),  # noqa: PLW1509
        start_new_session=False,
    )


def stop(
    proc: subprocess.Popen[bytes], name: str, grace_s: float, then: int = signal.SIGKILL
) -> None:
    """SIGTERM, wait up to grace_s, then `then` (default SIGKILL) and reap."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
        return
    except subprocess.TimeoutExpired:
        log.warning(
            "%s did not stop within %.0f s; sending %s", name, grace_s, signal.Signals(then).name
        )
    proc.send_signal(then)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

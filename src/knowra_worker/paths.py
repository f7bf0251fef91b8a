"""Where a task may read from: the allowed roots, symlinks resolved."""

from __future__ import annotations

import os
from pathlib import Path

from knowra_worker.errors import FileNotFound, FileTooLarge, PathNotAllowed, SourceIOError


def resolve_allowed(file_path: str, roots: list[Path]) -> Path:
    """The real path of file_path if it lies under one of roots, else PathNotAllowed.

    Symlinks are resolved before the check, so a link inside a root that points outside it
    is refused; "/data2/x" is not inside "/data" (whole path components are compared).
    """
    if "\x00" in file_path:
        raise PathNotAllowed("the path contains a NUL byte")
    path = Path(file_path)
    if not path.is_absolute():
        raise PathNotAllowed(f"the path must be absolute: {file_path!r}")
    real = Path(os.path.realpath(path))
    for root in roots:
        real_root = Path(os.path.realpath(root))
        if real == real_root or real.is_relative_to(real_root):
            return real
    shown = ":".join(str(r) for r in roots)
    raise PathNotAllowed(f"{file_path!r} is outside the allowed roots ({shown})")


def check_readable_file(path: Path, shown: str, max_bytes: int | None = None) -> int:
    """The file's size; FileNotFound unless it is an existing regular file."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise FileNotFound(f"no such file: {shown!r}") from exc
    except OSError as exc:
        raise FileNotFound(f"cannot access {shown!r}: {exc.strerror}") from exc
    if not path.is_file():
        raise FileNotFound(f"not a regular file: {shown!r}")
    if not os.access(path, os.R_OK):
        raise FileNotFound(f"the file is not readable by the service: {shown!r}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise FileTooLarge(
            f"{shown!r} is {st.st_size / 1048576:.1f} MiB; the limit is "
            f"{max_bytes / 1048576:.1f} MiB (KNOWRA_MAX_FILE_SIZE_MB)"
        )
    return st.st_size


def signature(path: Path) -> str:
    """Size and modification time of a file: a resumed task, and every part of a split one,
    must parse the file the task started on."""
    try:
        st = path.stat()
    except OSError as exc:
        raise SourceIOError(f"cannot read the file: {exc.strerror}") from exc
    return f"{st.st_size}:{st.st_mtime_ns}"

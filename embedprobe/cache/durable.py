"""Durable file operations: fsync, atomic rename, whole-file commits, create-if-absent."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import Any

from .schema import TMP_PREFIX


def fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: Path, final: Path) -> None:
    """Make a finished temp file durable, then atomically give it its final name."""
    fsync_path(tmp)
    os.replace(tmp, final)
    fsync_path(final.parent, directory=True)


def commit_bytes(data: Any, tmp: Path, final: Path) -> None:
    """Write ``data`` (a buffer, or a list of buffers written one after the other) to ``tmp``, fsync
    it and atomically give it its final name (``commit``).

    Plain ``writev``/``write`` calls straight from the buffers (numpy arrays are not copied): a
    full disk is a clean ``OSError`` here. The caller removes ``tmp`` if this raises.
    """
    views = [memoryview(b) for b in (data if isinstance(data, (list, tuple)) else [data])]
    views = [v.cast("B") for v in views if v.nbytes]
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        _write_all(fd, views)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_path(final.parent, directory=True)


_IOV_MAX = 512  # buffers per writev call (POSIX guarantees at least 16; Linux takes 1024)


def _write_all(fd: int, views: list[memoryview]) -> None:
    at = 0
    while at < len(views):
        if hasattr(os, "writev"):
            done = os.writev(fd, views[at:at + _IOV_MAX])
        else:  # pragma: no cover - platforms without writev
            done = os.write(fd, views[at])
        if done <= 0:
            raise OSError(errno.EIO, "the disk accepted no bytes")
        while done:  # drop what was written (a partial write ends inside a buffer)
            if done >= views[at].nbytes:
                done -= views[at].nbytes
                at += 1
            else:
                views[at] = views[at][done:]
                done = 0


def write_text_if_absent(path: Path, text: str) -> bool:
    """Atomically create ``path`` with ``text`` unless it exists (``link`` fails on an existing name)."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(3)}")
    try:
        tmp.write_text(text)
        fsync_path(tmp)
    except BaseException:
        unlink_quiet(tmp)
        raise
    try:
        os.link(tmp, path)
        created = True
    except FileExistsError:
        created = False
    except OSError:  # a filesystem without hard links: atomic, but the last of two racers wins
        created = not path.exists()
        if created:
            os.replace(tmp, path)
    finally:
        unlink_quiet(tmp)
    fsync_path(path.parent, directory=True)
    return created


def unlink_quiet(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

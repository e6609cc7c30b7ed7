"""Durable file operations: fsync, atomic rename, whole-file commits, create-if-absent."""

from __future__ import annotations

import contextlib
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


def commit_bytes(data: bytes | memoryview, tmp: Path, final: Path) -> None:
    """Write ``data`` to ``tmp``, fsync it and atomically give it its final name (``commit``).

    One plain ``write`` loop: a full disk is a clean ``OSError`` here, never a half-flushed
    HDF5 file. The caller removes ``tmp`` if this raises.
    """
    view = memoryview(data).cast("B")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_path(final.parent, directory=True)


def file_image(fill: Any, size_hint: int = 0) -> bytes:
    """The bytes of a new HDF5 file built in memory by ``fill(f)`` (core driver, no disk IO).

    A batch's part file is built this way and written with ``commit_bytes``: HDF5 never
    writes to the disk itself, so a full disk cannot leave it in a failing state. ``size_hint``:
    the bytes the file will hold, about.
    """
    import h5py

    # The in-memory file grows by ``block_size``: sized to the expected file, it is allocated once
    # instead of being reallocated (and copied) every 64 KiB.
    block = max(64 << 10, size_hint + (256 << 10))
    f = h5py.File(f"embedprobe-part-{secrets.token_hex(6)}.h5", "w", driver="core", backing_store=False,
                  locking=False, block_size=block)
    try:
        fill(f)
        f.flush()
        return f.id.get_file_image()
    finally:
        f.close()


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

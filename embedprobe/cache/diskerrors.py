"""A full disk or a read-only folder under a cache: one sentence that says what to do, never a
traceback, and nothing committed is lost.

``disk_errors(folder, doing, need)`` turns ``ENOSPC``/``EDQUOT`` into ``CacheDiskFullError``
(naming the free space and how much is needed, and that re-running resumes) and
``EROFS``/``EACCES``/``EPERM`` into ``CacheReadOnlyError``; other errors pass through. Callers
remove their temporary file before the error leaves them, so a failed commit leaves the cache
exactly as it was. ``check_free`` refuses a large copy (a merge) before it starts, because HDF5
can fail late, while closing, once the disk is full.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from embedprobe.errors import CacheError

FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
MARGIN = 1 << 20  # HDF5 metadata and the directory entries on top of the data


class CacheDiskFullError(CacheError):
    """The disk under a cache is full; re-running after freeing space resumes."""


class CacheReadOnlyError(CacheError):
    """The folder of a cache cannot be written."""


def size_text(n: float) -> str:
    """``1536000`` -> ``"1.5 MB"``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the filesystem of ``folder`` (or of its nearest existing parent)."""
    p = Path(folder).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _need_text(need: int | None) -> str:
    return f"free at least {size_text(need)} there" if need else "free some space there"


def full_error(folder: Path, doing: str, need: int | None, why: str = "",
               before: bool = False) -> CacheDiskFullError:
    free = free_bytes(folder)
    have = "" if free is None else f" ({size_text(free)} free)"
    state = "has too little space" if before else "is full"
    return CacheDiskFullError(
        f"The disk holding {folder} {state}{have} for {doing}; nothing committed before is lost. "
        f"Fix: {_need_text(need)}{why}, or use another --out, and re-run the same command; it "
        "resumes.")


def read_only_error(folder: Path, doing: str, e: OSError) -> CacheReadOnlyError:
    return CacheReadOnlyError(
        f"The cache folder {folder} cannot be written ({e.strerror or e}) while {doing}: a cache "
        "writer creates its lock and part files there. Fix: pass a writable --out (or copy the "
        "cache to a writable folder); `embedprobe info` and `probe` read it where it is.")


@contextlib.contextmanager
def disk_errors(folder: Path, doing: str, need: int | Callable[[], int | None] | None = None,
                why: str = "") -> Iterator[None]:
    """Translate a full disk or a read-only folder raised inside into one-sentence cache errors.

    ``need`` (bytes, or a function computing them once the error happened) is the free space
    that would let the whole run finish; ``why`` explains it.
    """
    try:
        yield
    except OSError as e:
        if e.errno in FULL:
            n = need() if callable(need) else need
            raise full_error(Path(folder), doing, n, why) from None
        if e.errno in READ_ONLY:
            raise read_only_error(Path(folder), doing, e) from None
        raise


def check_free(folder: Path, need: int, doing: str, why: str = "") -> None:
    """Refuse to start writing ``need`` bytes into ``folder`` when the disk has less free."""
    free = free_bytes(folder)
    if free is not None and free < need + MARGIN:
        raise full_error(Path(folder), doing, need + MARGIN, why, before=True)

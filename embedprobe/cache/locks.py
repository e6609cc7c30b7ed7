"""Advisory ``flock`` locks for cache writers, released by the kernel when their process dies.

Two lock files sit beside a cache ``X.h5``:

- ``X.h5.lock``: a plain writer and a merge hold it exclusively; each shard writer holds it
  shared, so shard writers run side by side but never next to a plain writer or a merge.
- ``X.h5.shard-<k>of<N>.lock``: held exclusively by the writer of shard ``k`` of ``N``.

The holder writes ``{"pid", "host", "since", "role"}`` into the lock file so a refused writer
can say who holds it. ``flock`` locks belong to the open file, so a second writer object in the
same process is refused too, and ``kill -9`` never leaves a stale lock. On NFS, Linux emulates
``flock`` with byte-range locks, which are shared across machines.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any


class FileLock:
    """One non-blocking ``flock`` on one lock file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None
        self.mode: str | None = None  # "shared" | "exclusive"

    def acquire(self, *, shared: bool = False) -> bool:
        """Take (or convert to) the lock without waiting; ``False`` if someone else holds it.

        A failed conversion leaves this object holding nothing (the kernel drops the old lock
        first), so callers re-acquire or give up.
        """
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            # Linux drops the old lock before a conversion, so a failed one leaves none.
            os.close(self._fd)
            self._fd = None
            self.mode = None
            return False
        self.mode = "shared" if shared else "exclusive"
        return True

    def write_info(self, role: str) -> None:
        """Record this process as the holder (exclusive holders only; shared ones would race)."""
        assert self._fd is not None
        blob = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "since": time.strftime("%Y-%m-%d %H:%M:%S"), "role": role}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, blob, 0)

    def release(self, *, clear_info: bool = False) -> None:
        if self._fd is None:
            return
        try:
            if clear_info and self.mode == "exclusive":
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None
            self.mode = None

    @property
    def held(self) -> bool:
        return self._fd is not None and self.mode is not None


def read_info(path: str | Path) -> dict[str, Any] | None:
    """The holder a lock file names, or ``None`` if it names none (or a dead local process)."""
    try:
        info = json.loads(Path(path).read_text() or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    if info.get("host") == socket.gethostname():
        try:
            os.kill(int(info.get("pid", -1)), 0)
        except ProcessLookupError:
            return None
        except (PermissionError, ValueError, OverflowError):
            pass
    return info


def describe_holders(paths: list[Path]) -> str:
    """``"pid 123 on host h (writer, since ...)"`` for every live holder recorded in ``paths``."""
    out = []
    for p in paths:
        info = read_info(p)
        if info:
            out.append(f"pid {info.get('pid')} on host {info.get('host')} "
                       f"({info.get('role')}, since {info.get('since')}; lock file {p})")
    return "; ".join(out) if out else "a process that has not recorded itself yet"

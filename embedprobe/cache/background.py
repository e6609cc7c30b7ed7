"""A background thread that commits batches while the caller computes the next ones."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from embedprobe.errors import CacheError

from .schema import ClipResult
from .writer import CacheWriter

_STOP = object()


class AsyncWriter:
    """Runs ``CacheWriter.write`` in a thread, one batch at a time.

    ``write`` hands the batch over and returns at once if no earlier batch is still being
    committed; otherwise it first waits for that commit. So model inference and disk writes
    overlap, and at most ``max_pending`` (default 1) handed-over batches are uncommitted at any
    moment: a ``kill -9`` loses at most that batch plus the clips the caller has computed for
    the next one (fewer than two batches), however slow the disk. Do not modify arrays after
    handing them over. A failure in the thread is re-raised by the next ``write``, by
    ``close`` and by ``finalize``; batches queued after a failure are dropped (not committed),
    so resuming re-extracts them.

    Example:
        >>> # SKIP: needs an extractor and a cache writer (see pipeline/extract.py)
        >>> with CacheWriter(path, **kw) as w, AsyncWriter(w) as aw:   # doctest: +SKIP
        ...     for batch in batches:
        ...         aw.write(embed(batch))
        ...     aw.finalize()
    """

    def __init__(self, writer: CacheWriter, max_pending: int = 1):
        self.writer = writer
        self.max_pending = max(1, max_pending)
        self._slots = threading.BoundedSemaphore(self.max_pending)  # freed when a batch is committed
        self._q: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"cache-writer:{writer.path.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is _STOP:
                    return
                if self._error is None:
                    self.writer.write(*item)
            except BaseException as e:  # re-raised in the caller's thread
                self._error = e
            finally:
                if item is not _STOP:
                    self._slots.release()
                self._q.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    @property
    def done_ids(self) -> frozenset[str]:
        """Clips committed so far (batches still queued are not included)."""
        return self.writer.done_ids

    def write(self, results: Sequence[ClipResult], errors: Iterable[tuple[str, str, str]] = ()) -> None:
        """Hand one batch over (after the previous one is committed); raises the error of an
        earlier batch if one failed."""
        if self._closed:
            raise CacheError(f"The background writer of {self.writer.path} is closed.")
        self._raise()
        self._slots.acquire()
        if self._error is not None:
            self._slots.release()
            self._raise()
        self._q.put((list(results), list(errors)))

    def flush(self) -> None:
        """Wait until every queued batch is committed; raise if one failed."""
        self._q.join()
        self._raise()

    def close(self) -> None:
        """Commit what is queued, stop the thread, and raise if a batch failed."""
        if not self._closed:
            self._closed = True
            self._q.put(_STOP)
            self._thread.join()
        self._raise()

    def finalize(self) -> Path:
        """``close()`` then ``CacheWriter.finalize()``."""
        self.close()
        return self.writer.finalize()

    def __enter__(self) -> AsyncWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # keep the caller's exception; still commit what was queued
            try:
                self.close()
            except BaseException:
                pass

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

    A Ctrl-C (``KeyboardInterrupt``) at any point of ``write`` leaves the writer usable, so the
    caller's clean-up can hand over its last batch and close. Python raises it at the first
    check after a C call returns, so a lock taken inside a Python-level ``with`` (a semaphore, a
    ``queue.Queue``'s condition) can be left held: the clean-up's next ``write`` then waited
    forever. Here the two threads share only C-level ``SimpleQueue``s and counters each written
    by one thread, and the caller counts a batch after queueing it (an interrupt between the two
    can only undercount, never block).

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
        self._q: queue.SimpleQueue = queue.SimpleQueue()  # batches to commit, then _STOP
        self._wake: queue.SimpleQueue = queue.SimpleQueue()  # a token after each batch is committed
        self._handed = 0  # batches queued (the caller's thread writes it)
        self._committed = 0  # batches committed or dropped (the writer's thread writes it)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"cache-writer:{writer.path.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _STOP:
                return
            try:
                if self._error is None:
                    self.writer.write(*item)
            except BaseException as e:  # re-raised in the caller's thread
                self._error = e
            finally:
                self._committed += 1
                self._wake.put(None)

    def _wait(self, pending: int) -> None:
        """Until at most ``pending`` handed-over batches are uncommitted (or one failed)."""
        while self._handed - self._committed > pending and self._error is None:
            try:  # the timeout only guards against a token taken by an interrupted earlier wait
                self._wake.get(timeout=0.5)
            except queue.Empty:
                pass

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
        self._wait(self.max_pending - 1)
        self._raise()
        self._q.put((list(results), list(errors)))
        self._handed += 1

    def flush(self) -> None:
        """Wait until every queued batch is committed; raise if one failed."""
        self._wait(0)
        self._raise()

    def close(self) -> None:
        """Commit what is queued, stop the thread, and raise if a batch failed."""
        if not self._closed:
            self._q.put(_STOP)  # then closed: interrupted between the two, close() queues another
            self._closed = True
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

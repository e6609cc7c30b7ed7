"""Ctrl-C during HDF5 work: taken at a safe point instead of inside h5py.

A ``KeyboardInterrupt`` raised while h5py is closing or freeing objects is swallowed
("Exception ignored in ... __dealloc__") or leaves a half-closed file, so a Ctrl-C during the
final merge sometimes did nothing and sometimes skipped the "interrupted" line. Inside
``deferred_interrupts()`` SIGINT only sets a flag; long loops call ``check_interrupt()``
between blocks, which raises ``KeyboardInterrupt`` there (the caller removes its temporary
file and the cache stays as it was), and leaving the block raises it if it is still pending.
Outside the main thread (the background writer) this does nothing: signals only reach the main
thread.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_pending = threading.Event()
_depth = 0


def check_interrupt() -> None:
    """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived inside ``deferred_interrupts()``."""
    if _pending.is_set():
        _pending.clear()
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT as a flag while the block runs (nested blocks share the outer one)."""
    global _depth
    if threading.current_thread() is not threading.main_thread() or _depth:
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):  # ignored by the caller (or not set from Python): leave it
        yield
        return
    signal.signal(signal.SIGINT, lambda signum, frame: _pending.set())
    _depth += 1
    ok = False
    try:
        yield
        ok = True
    finally:
        _depth -= 1
        signal.signal(signal.SIGINT, previous)
        if _pending.is_set():
            _pending.clear()
            if ok:  # deliver it to the handler the caller had (Python's raises KeyboardInterrupt)
                signal.raise_signal(signal.SIGINT)

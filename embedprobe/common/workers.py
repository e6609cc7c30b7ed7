"""Helpers for embedprobe's worker processes (extraction replicas, bench jobs)."""

from __future__ import annotations

import os


def exit_with_parent(code: int = 1) -> None:
    """End this (spawned) worker process as soon as the process that started it dies.

    A ``ProcessPoolExecutor`` worker holds both ends of its task queue, so after a kill -9 of
    the parent it would never see end-of-file there and would wait (or keep writing) forever;
    a daemon thread blocks on the parent's sentinel instead and exits with ``code``. No-op in
    a process that was not started by ``multiprocessing``.
    """
    import multiprocessing as mp
    import threading
    from multiprocessing.connection import wait

    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(code)

    threading.Thread(target=watch, name="embedprobe-parent-watch", daemon=True).start()

"""Where bench tasks run: a process pool (``jobs`` > 1) or the current process, one result each.

``Executor.run(phase, [(key, fn, arg, cost)], view, say, commit=)`` runs the tasks of one phase
(extraction, probe jobs, report sections); an error inside a task becomes a failed
``TaskResult`` (one line, the traceback kept for the log) instead of stopping the grid.
``commit(key, result)``, when given, runs in this (the driver's) process on each task's result
as it arrives: the bench writes the probe jobs' results files there, so whatever runs the tasks
(this pool, or ``bench.ray_executor`` on a cluster) the files are written the same way.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Any

from rich.markup import escape

from embedprobe.common.workers import exit_with_parent
from embedprobe.errors import EmbedprobeError


@dataclass
class TaskResult:
    """What one task (extraction, probe job, report section) did."""

    kind: str
    key: str
    status: str  # done | skipped | failed | unsupported | blocked
    seconds: float = 0.0
    path: str | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- workers
def init_worker() -> None:
    """Worker set-up: one torch thread, no nested progress bars, exit when the bench dies."""
    os.environ["EMBEDPROBE_NO_PROGRESS"] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    exit_with_parent(3)  # a killed bench must not leave workers writing results behind it


def guard(fn: Callable[[Any], dict[str, Any]], arg: Any) -> dict[str, Any]:
    """Run a task; an error becomes a result (one line, plus the traceback for the log)."""
    t0 = time.perf_counter()
    try:
        out = fn(arg)
        return {"status": "done", "seconds": time.perf_counter() - t0, **out}
    except EmbedprobeError as e:
        return {"status": "failed", "error": str(e), "seconds": time.perf_counter() - t0}
    except Exception as e:  # noqa: BLE001 - one broken job must not stop the grid
        return {"status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(),
                "seconds": time.perf_counter() - t0}


Commit = Callable[[str, dict[str, Any]], dict[str, Any]]


class Executor:
    """A process pool (``jobs`` > 1) or the current process (``jobs`` == 1) running tasks."""

    engine = "local"

    def __init__(self, jobs: int):
        self.jobs = jobs
        self._pool: cf.ProcessPoolExecutor | None = None

    def prepare_extract(self, ecfg: Any) -> Any:
        """The ExtractConfig one extraction task runs: with parallel jobs, no worker replicas."""
        return replace(ecfg, procs=1) if self.jobs > 1 and ecfg.procs is None else ecfg

    def __enter__(self) -> Executor:
        if self.jobs > 1:
            self._pool = cf.ProcessPoolExecutor(self.jobs, mp_context=mp.get_context("spawn"),
                                                initializer=init_worker)
        else:
            import torch

            self._threads = torch.get_num_threads()
            torch.set_num_threads(1)  # the same numbers whatever --jobs is
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=exc_type is None, cancel_futures=True)
        else:
            import torch

            torch.set_num_threads(self._threads)

    def run(self, phase: str, tasks: list[tuple[str, Callable, Any, float]], view: Any,
            say: Callable[[str], None], done_before: int = 0, commit: Commit | None = None,
            ) -> dict[str, TaskResult]:
        """Run ``(key, fn, arg, cost)`` tasks; returns key -> TaskResult, in task order."""
        out: dict[str, TaskResult] = {}
        if not tasks:
            return out
        view.phase(phase, [(k, c) for k, _, _, c in tasks], done_before)
        if self._pool is None:
            for key, fn, arg, _ in tasks:
                view.started(key)
                out[key] = finish(phase, key, guard(fn, arg), view, say, commit)
            return out
        try:
            futures = {self._pool.submit(guard, fn, arg): key for key, fn, arg, _ in tasks}
        except BrokenProcessPool:  # a worker died in an earlier phase: start afresh
            self._pool.shutdown(wait=False, cancel_futures=True)
            self.__enter__()
            futures = {self._pool.submit(guard, fn, arg): key for key, fn, arg, _ in tasks}
        pending = set(futures)
        while pending:
            finished, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
            for f in finished:
                key = futures[f]
                try:
                    res = f.result()
                except BrokenProcessPool as e:
                    res = {"status": "failed", "error": f"worker process died ({e}); re-run to resume"}
                out[key] = finish(phase, key, res, view, say, commit)
            for f in pending:
                if f.running():
                    view.started(futures[f])
        return {k: out[k] for k, *_ in tasks}


def finish(phase: str, key: str, res: dict[str, Any], view: Any, say: Callable[[str], None],
           commit: Commit | None = None) -> TaskResult:
    """A task's result dict -> ``TaskResult`` (committed first), shown in the view and by ``say``."""
    if commit is not None and res["status"] == "done":
        done = guard(lambda r: commit(key, r), res)  # an error here fails the task like one inside it
        res = {**res, **{k: v for k, v in done.items() if k != "seconds"}}
    res.pop("record", None)
    info = {k: v for k, v in res.items() if k not in ("status", "seconds", "path", "error")}
    r = TaskResult(phase, key, res["status"], float(res.get("seconds") or 0.0), res.get("path"),
                   res.get("error"), info)
    view.finished(key, r.status)
    if r.status == "failed":
        say(f"[red]failed[/] {phase} {esc(key)}: {esc(r.error)}")
    elif phase != "extract" or info.get("n_new"):
        say(f"[green]{r.status}[/] {phase} {esc(key)} ({r.seconds:.1f} s)")
    return r


def esc(text: Any) -> str:
    return escape(str(text))

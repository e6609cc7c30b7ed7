"""Model replicas in worker processes: clips are decoded and embedded in parallel on a CPU.

Extractors that compute on one thread whatever the core count (opensmile's eGeMAPS, the GE2E
LSTM: ``Extractor.replicate_on_cpu``) use every core only as one copy per core. Measured with
``embedprobe extract`` on EmoDB (535 clips), 2 cores: eGeMAPS 28.8 s -> 17.1 s, GE2E 23.8 s
-> 13.4 s with 2 workers (start-up included). The torch models thread well in one process
and gain nothing here (WavLM-Large bf16, 64 clips: 7.9 audio-s/s in one process on 2 threads,
6.9 with 2 workers including their ~7 s start-up, 8.0 without it), so they use workers only
when asked (``--procs N``, e.g. on CPUs with many cores, where one process's threads share
ever smaller matrices).

``ReplicaPool`` starts ``procs`` spawned processes (safe after torch has started threads),
each of which unpickles the run's ``ClipEmbedder`` (so loads its own copy of the model),
sets its torch thread count, and then decodes and embeds the clips it is given. Results
come back to the extracting process, which alone writes the cache: crash safety and resume
are unchanged. Workers ignore SIGINT, so Ctrl-C reaches the extracting process only, which
commits what has arrived and stops the workers. Workers do not re-run the calling script
(the extracting process's ``__main__`` is hidden while they start), so a script that calls
``extract`` needs no ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from embedprobe.common.threads import cpu_cores  # affinity and CPU quota
from embedprobe.common.workers import exit_with_parent
from embedprobe.errors import BadValueError, EmbedprobeError

# auto: replicas only for runs with at least this many clips to embed (starting a worker
# costs seconds: importing torch and loading the model) and at most this many replicas
# (each holds its own copy of the weights).
MIN_CLIPS_FOR_REPLICAS = 200
MAX_AUTO_PROCS = 4

_EMBEDDER: Any = None  # the worker process's ClipEmbedder
_INIT_ERROR: str | None = None  # why it could not be built (reported by ``_ready``)


class ReplicaError(EmbedprobeError):
    """A worker process died (killed, out of memory); what was committed stays in the cache."""


def resolve_procs(requested: int | None, *, device: str, replicate: bool, n_todo: int,
                  cores: int | None = None) -> int:
    """How many worker processes to run (1 means: embed in the extracting process).

    ``requested`` (``--procs``) wins when given. ``None`` is auto: one process per core, at
    most ``MAX_AUTO_PROCS``, when the run is on a CPU, the extractor computes on one thread
    (``Extractor.replicate_on_cpu``) and at least ``MIN_CLIPS_FOR_REPLICAS`` clips are to
    be embedded; else 1.
    """
    if requested is not None:
        if requested < 1:
            raise BadValueError("procs", requested, None, fix="Use 1 (no worker processes) or more.")
        return max(1, min(requested, n_todo))
    cores = cpu_cores() if cores is None else cores
    if str(device).startswith("cuda") or not replicate or cores < 2 or n_todo < MIN_CLIPS_FOR_REPLICAS:
        return 1
    return min(cores, MAX_AUTO_PROCS)


def threads_per_proc(procs: int, cores: int | None = None) -> int:
    """torch threads for each of ``procs`` workers: the cores shared out, at least one."""
    return max(1, (cpu_cores() if cores is None else cores) // procs)


def picklable(obj: Any) -> str | None:
    """``None`` if ``obj`` pickles, else why not (one line)."""
    try:
        pickle.dumps(obj)
    except Exception as e:  # noqa: BLE001 - any failure means: run in-process
        return f"{type(e).__name__}: {e}"
    return None


def _init_worker(embedder_bytes: bytes, threads: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the extracting process's to handle
    exit_with_parent()
    os.environ.setdefault("EMBEDPROBE_NO_PROGRESS", "1")
    import torch

    torch.set_num_threads(threads)
    global _EMBEDDER, _INIT_ERROR
    try:
        _EMBEDDER = pickle.loads(embedder_bytes)
        _EMBEDDER.ext.load()
    except Exception as e:  # noqa: BLE001 - reported to the extracting process by _ready
        _INIT_ERROR = str(e) if isinstance(e, EmbedprobeError) else f"{type(e).__name__}: {e}"


def _ready() -> tuple[dict[str, Any], str | None]:
    """The loaded extractor's runtime record and weights revision (what the cache identity needs)."""
    if _INIT_ERROR is not None:
        raise ReplicaError(_INIT_ERROR)
    ext = _EMBEDDER.ext
    return dict(ext.runtime_config()), ext.weights_revision()


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """Start spawned processes without them importing the caller's script as ``__mp_main__``.

    ``multiprocessing``'s spawn re-runs a script-run ``__main__`` in every child (which, in an
    unguarded script, would call ``extract`` again); the workers need only embedprobe's modules.
    """
    main = sys.modules.get("__main__")
    hide = main is not None and getattr(main, "__spec__", None) is None and hasattr(main, "__file__")
    saved = main.__dict__.pop("__file__") if hide else None
    try:
        yield
    finally:
        if hide:
            main.__file__ = saved


def _work(job: tuple[Any, str, list[str], float]) -> Any:
    clip, path, targets, max_eager_s = job
    return _EMBEDDER.run_path(clip, path, targets, max_eager_s)  # the embedder decodes with its own config


class ReplicaPool:
    """``procs`` worker processes, each with a copy of ``embedder``'s model.

    Args:
        embedder: the run's ``ClipEmbedder`` (pickled once, rebuilt in each worker).
        procs: number of worker processes.
        threads: torch threads in each worker.

    Use as a context manager. Entering starts the workers and waits until each has loaded its
    model; ``runtime`` and ``weights_revision`` are then what the workers loaded. ``map``
    yields each clip's ``Outcome`` as it finishes (any order).
    """

    def __init__(self, embedder: Any, procs: int, threads: int):
        self.procs, self.threads = procs, threads
        self._payload = pickle.dumps(embedder)
        self._pool: Any = None
        self.runtime: dict[str, Any] = {}
        self.weights_revision: str | None = None

    def __enter__(self) -> ReplicaPool:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(
            max_workers=self.procs, mp_context=mp.get_context("spawn"),
            initializer=_init_worker, initargs=(self._payload, self.threads))
        try:
            with _main_hidden():  # one submit per worker starts them all now, main hidden
                started = [self._pool.submit(_ready) for _ in range(self.procs)]
            self.runtime, self.weights_revision = [fut.result() for fut in started][0]
        except BaseException as e:
            self.close(kill=True)
            if isinstance(e, Exception) and not isinstance(e, EmbedprobeError):
                raise ReplicaError(f"the extraction worker processes did not start ({type(e).__name__}: "
                                   f"{e}); use --procs 1 to extract in this process") from None
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(kill=exc_type is not None)

    def close(self, kill: bool = False) -> None:
        """Stop the workers (``kill``: at once, dropping clips in flight; else after their clip)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)

    def map(self, jobs: Iterable[tuple[Any, str, list[str], float]]) -> Iterator[Any]:
        """Run ``jobs`` (clip, path, stored ids, max eager seconds), at most
        two per worker in flight (bounded memory), yielding results as they complete."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        it = iter(jobs)
        pending: set[Any] = set()
        limit = 2 * self.procs
        while True:
            for job in it:
                pending.add(self._pool.submit(_work, job))
                if len(pending) >= limit:
                    break
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    raise ReplicaError(
                        "an extraction worker process died (killed, or out of memory?); the clips "
                        "committed so far are in the cache - re-run the same command to resume, "
                        "with --procs 1 if memory is short") from None

"""Bench tasks on a Ray cluster (``embedprobe bench CONFIG --engine ray``).

``RayExecutor`` has the interface of ``bench.executor.Executor``: ``run(phase, tasks, view, say,
commit=)`` submits each ``(key, fn, arg, cost)`` as one Ray task and hands the results, as they
arrive, to the same ``finish`` (and ``commit``) the local engine uses, so results files are
written by this (the driver's) process exactly as the local engine writes them, and resume works
as before: the runner never submits a finished job.

Resources: every task asks for ``cpus_per_task`` CPUs and sets torch's threads to that number
(Ray sets ``OMP_NUM_THREADS=1`` in its workers; with the default of one CPU the numbers are the
local engine's, which runs its tasks on one torch thread too); extraction tasks also ask for
``gpus_per_extract`` GPUs and then run on ``cuda`` (the GPU Ray gives them). A task whose worker
process or node dies is retried by Ray (``MAX_RETRIES``); an error raised inside a task is
reported like the local engine reports it (one line, the traceback kept for the log).

Files: tasks read and write under the bench's folders (corpora, ``cache_dir``, ``out``), so on a
cluster of several machines those must be on a filesystem every node mounts at the same path;
``with_absolute_paths`` resolves relative paths before the tasks leave this process.

Ray is imported only when a ``RayExecutor`` is entered (``common.raycluster.connected``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from embedprobe.bench.executor import Commit, TaskResult, finish, guard
from embedprobe.bench.spec import BenchConfig, EngineSpec
from embedprobe.common.raycluster import alive_nodes, connected, fits, require_ray
from embedprobe.errors import EmbedprobeError

#: Ray re-runs a task this many times when its worker process or node dies (not on an error
#: raised by the task: that is a result, as with the local engine).
MAX_RETRIES = 3


def run_task(fn: Callable[[Any], dict[str, Any]], arg: Any, cpus: int) -> dict[str, Any]:
    """What one Ray task runs: threads from its CPU allocation, no nested progress bars."""
    os.environ["EMBEDPROBE_NO_PROGRESS"] = "1"
    import torch

    torch.set_num_threads(cpus)
    return guard(fn, arg)


def with_absolute_paths(cfg: BenchConfig) -> BenchConfig:
    """``cfg`` with its folders made absolute (Ray workers may start in another folder)."""
    def absolute(p: str | None) -> str | None:
        return None if p is None else str(Path(p).expanduser().resolve())

    corpora = tuple(replace(c, root=absolute(c.root)) for c in cfg.corpora)
    extract = replace(cfg.extract, cache_dir=absolute(cfg.extract.cache_dir),
                      weights={m: absolute(w) for m, w in cfg.extract.weights.items()})
    return replace(cfg, out=absolute(cfg.out), corpora=corpora, extract=extract)


class RayExecutor:
    """Runs bench tasks as Ray tasks on the cluster of ``spec.address`` (see the module docstring)."""

    engine = "ray"
    jobs = 1  # the runner's ``jobs`` knob is the local pool's; Ray schedules by resources

    def __init__(self, spec: EngineSpec, device: str = "cpu"):
        self.spec = spec
        self.cpus = spec.cpus_per_task
        default_gpus = 1.0 if str(device).startswith("cuda") else 0.0
        self.gpus = default_gpus if spec.gpus_per_extract is None else spec.gpus_per_extract
        self._ray: Any = None
        self._cm: Any = None
        self._remote: Any = None

    def __enter__(self) -> RayExecutor:
        require_ray()  # the pip command first, whatever else is wrong
        self._cm = connected(self.spec.address)
        try:
            self._ray = self._cm.__enter__()
        except (ConnectionError, RuntimeError, ValueError) as e:  # Ray's ways of saying "no cluster there"
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EmbedprobeError(f"Could not join the Ray cluster at {self.spec.address or 'this machine'}: "
                                  f"{first}. Fix: check --address, and that ray start ran on the head node.") from None
        self._remote = self._ray.remote(max_retries=MAX_RETRIES)(run_task)
        return self

    def __exit__(self, *exc: object) -> None:
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(*exc)

    def prepare_extract(self, ecfg: Any) -> Any:
        """One model copy per task, on the task's CPUs (and GPU: ``cuda`` is the one Ray gives)."""
        ecfg = replace(ecfg, procs=1 if ecfg.procs is None else ecfg.procs,
                       threads=self.cpus if ecfg.threads is None else ecfg.threads)
        if self.gpus > 0:
            ecfg = replace(ecfg, device="cuda")
        return ecfg

    def run(self, phase: str, tasks: list[tuple[str, Callable, Any, float]], view: Any,
            say: Callable[[str], None], done_before: int = 0, commit: Commit | None = None,
            ) -> dict[str, TaskResult]:
        """Submit ``(key, fn, arg, cost)`` tasks, collect them as they finish; key -> TaskResult."""
        out: dict[str, TaskResult] = {}
        if not tasks:
            return out
        gpus = self.gpus if phase == "extract" else 0.0
        slots = self._check_resources(gpus)
        view.phase(phase, [(k, c) for k, _, _, c in tasks], done_before)
        options = {"num_cpus": self.cpus, "num_gpus": gpus}
        refs = {self._remote.options(**options).remote(fn, arg, self.cpus): key for key, fn, arg, _ in tasks}
        pending = list(refs)
        try:
            while pending:
                for ref in pending[:slots]:  # Ray does not say when a task starts: the first ones fit
                    view.started(refs[ref])
                ready, pending = self._ray.wait(pending, num_returns=len(pending), timeout=0.5)
                for ref in ready:
                    out[refs[ref]] = finish(phase, refs[ref], self._result(ref), view, say, commit)
        except BaseException:  # Ctrl-C or a failing commit: stop what was submitted
            for ref in pending:
                self._ray.cancel(ref, force=True)
            raise
        return {k: out[k] for k, *_ in tasks}

    def _result(self, ref: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayError as e:  # its worker or node died MAX_RETRIES + 1 times
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return {"status": "failed", "seconds": time.perf_counter() - t0,
                    "error": f"the Ray task failed ({type(e).__name__}: {first}); re-run to resume"}

    def _check_resources(self, gpus: float) -> int:
        """How many tasks run at once; one sentence if no node can ever run one."""
        nodes = alive_nodes(self._ray)
        where = self.spec.address or "this machine"
        most_cpus = max((r.get("CPU", 0.0) for r in nodes), default=0.0)
        if most_cpus < self.cpus:
            raise EmbedprobeError(
                f"--cpus-per-task {self.cpus} is more than any node of the Ray cluster ({where}) has "
                f"(at most {most_cpus:g} CPUs). Fix: use --cpus-per-task {max(1, int(most_cpus))} or fewer.")
        if gpus > 0:
            most = max((r.get("GPU", 0.0) for r in nodes), default=0.0)
            if most < gpus:
                raise EmbedprobeError(
                    f"Extraction tasks ask for {gpus:g} GPU(s) each but the nodes of the Ray cluster ({where}) "
                    f"have at most {most:g}. Fix: join Ray nodes that have GPUs (ray start "
                    "finds them), or extract on CPUs with --gpus-per-extract 0 and [extract] device = \"cpu\".")
        return max(1, sum(fits(r, {"CPU": self.cpus, "GPU": gpus}) for r in nodes))

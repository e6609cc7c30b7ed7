"""Extraction on a Ray cluster (``embedprobe extract ... --engine ray``).

``RayEngine`` starts ``--workers`` Ray actors (``num_cpus=--cpus-per-worker``,
``num_gpus=--gpus-per-worker``). Each actor unpickles the run's ``ClipEmbedder`` once (the
extractor built the way the local engine builds it, precision included), loads the model, sets
its torch and BLAS threads to its CPU allocation (Ray starts workers with
``OMP_NUM_THREADS=1``) and then decodes and embeds the clips it is sent, from their paths: the
audio must be visible to every node at the same path (a shared filesystem); the cache need not
be, because the extracting process (the driver) is its only writer.

The driver keeps at most ``IN_FLIGHT`` tasks (a few clips each) queued per actor and yields
each clip's ``Outcome`` as its task finishes (``ray.wait``); ``pipeline.extract`` batches and
commits them as the local engine does, so a killed driver leaves what was committed, and the
same command resumes. A task whose actor died (process killed, node removed, out of memory) has
its clips queued again, one clip per task, for the live actors; Ray restarts the lost actor
(``MAX_RESTARTS``) and it takes work again once it answers. Since outcomes are only yielded
from finished tasks, no clip is lost or written twice. A clip whose worker died
``MAX_ATTEMPTS`` times is recorded as a per-clip error (tried again on the next run).

Why actors and not Ray Data's ``map_batches``: the cache's contract needs one writer that
commits each result as it arrives and knows exactly which clips a lost worker held; with
actors, the driver owns that bookkeeping (resume = the clips not committed, re-queue = the
clips of the failed task), and the work unit (a clip, decoded by the actor from its path) stays
the one the local engine and its long-clip chunking use. Ray Data would add a dataset layer
whose block retries and output ordering the writer would have to second-guess.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from embedprobe.audio.prefetch import decode_iter
from embedprobe.common.raycluster import alive_nodes, connected, fits, lost_worker_errors, node_fits
from embedprobe.common.replicas import ReplicaError
from embedprobe.common.threads import limit_threads
from embedprobe.corpora.base import Clip
from embedprobe.errors import BadValueError, EmbedprobeError
from embedprobe.pipeline.clip_embedder import ClipEmbedder, Outcome
from embedprobe.pipeline.extract_config import RUNTIME_NOT_IDENTITY, ExtractConfig

IN_FLIGHT = 2  # tasks queued per actor: one running, one ready to start
MAX_RESTARTS = 3  # Ray restarts a lost actor this many times
MAX_ATTEMPTS = 3  # a clip whose worker died this many times is recorded as an error
DECODE_THREADS = 1  # an actor decodes its next clip while it embeds one (hides a shared filesystem's latency)
TASKS_PER_ACTOR = 4  # clips per task: at most --batch-size, small enough to share the tail

Job = tuple[Clip, str, list[str], float]  # clip, audio path, stored ids, max eager seconds


class ClipActor:
    """One Ray worker: the run's model, loaded once, embedding the clips it is sent."""

    def __init__(self, embedder: ClipEmbedder, threads: int, audio_root: str):
        os.environ["EMBEDPROBE_NO_PROGRESS"] = "1"
        self.embedder, self.error = embedder, None
        self._threads = contextlib.ExitStack()
        self.audio_visible = os.path.isdir(audio_root)
        try:
            embedder.ext.load()
            self._threads.enter_context(limit_threads(threads))  # after load(): torch is imported
        except Exception as e:  # noqa: BLE001 - reported to the driver by ready()
            self.error = str(e) if isinstance(e, EmbedprobeError) else f"{type(e).__name__}: {e}"

    def ready(self) -> dict[str, Any]:
        """What the driver checks before sending work: the loaded runtime, or why there is none."""
        import ray

        ext = self.embedder.ext
        ok = self.error is None
        gpus = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
        return {"error": self.error, "audio_visible": self.audio_visible, "host": socket.gethostname(),
                "device": ext.device, "gpus": list(gpus),
                "pid": os.getpid(), "runtime": dict(ext.runtime_config()) if ok else {},
                "revision": ext.weights_revision() if ok else None}

    def embed(self, jobs: list[Job]) -> list[Outcome]:
        """The task's clips, each decoded in a thread while the one before is embedded."""
        out: list[Outcome] = []
        items = [job[1] for job in jobs]
        for i, decoded in decode_iter(items, self.embedder.audio_cfg, workers=DECODE_THREADS, prefetch=1,
                                      max_eager_s=jobs[0][3] if jobs else 0.0):
            clip, path, targets, _ = jobs[i]
            out.append(self.embedder.run(clip, path, decoded, targets))
        return out


@dataclass
class _Task:
    actor: int
    jobs: list[Job] | None  # None: a readiness ping


class RayEngine:
    """The actors of one run; a context manager (entering starts them, leaving ends them).

    Args:
        embedder: the run's ``ClipEmbedder`` (its extractor not loaded here).
        cfg: the run's configuration (``address``, ``ray_workers``, ``cpus_per_worker``,
            ``gpus_per_worker``, ``batch_size``).
        audio_root: the folder the clip paths are under; every node must see it.
        n_clips: clips of the run (no more actors than clips).

    After entering, ``runtime`` and ``weights_revision`` are what the first actor loaded (the
    cache identity); ``outcomes(jobs)`` yields each clip's ``Outcome``; ``retried`` counts the
    clips sent again after their worker was lost.
    """

    def __init__(self, embedder: ClipEmbedder, cfg: ExtractConfig, audio_root: str, n_clips: int):
        self.embedder, self.cfg, self.audio_root, self.n_clips = embedder, cfg, audio_root, n_clips
        self._stack = contextlib.ExitStack()
        self._ray: Any = None
        self.actors: list[Any] = []
        self.live: set[int] = set()
        self.runtime: dict[str, Any] = {}
        self.weights_revision: str | None = None
        self.retried = 0
        self._identity: dict[str, Any] | None = None
        self._inflight: dict[Any, _Task] = {}
        self._pings_failed: dict[int, int] = {}
        self.devices: set[str] = set()  # each started actor's device and the GPUs Ray gave it

    # -- start and stop --------------------------------------------------------------------------
    def __enter__(self) -> RayEngine:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Kill the actors (clips in flight are dropped: they were not committed) and disconnect."""
        ray, self._ray = self._ray, None
        if ray is not None:
            for actor in self.actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor, no_restart=True)
        self._inflight.clear()
        self._stack.close()

    def _start(self) -> None:
        cfg = self.cfg
        ray = self._ray = self._stack.enter_context(connected(cfg.address))
        n = self._workers(ray)
        actor_cls = ray.remote(ClipActor)
        opts = {"num_cpus": cfg.cpus_per_worker, "num_gpus": cfg.gpus_per_worker,
                "max_restarts": MAX_RESTARTS, "max_task_retries": 0, "scheduling_strategy": "SPREAD"}
        self.actors = [actor_cls.options(**opts).remote(self.embedder, cfg.cpus_per_worker, self.audio_root)
                       for _ in range(n)]
        for k in range(n):
            self._ping(k)
        # work starts with the first actor that has loaded its model; the others join as they come
        while not self.live:
            if not self._inflight:
                raise ReplicaError("no Ray worker started: every one died while loading the model "
                                   "(out of memory?); try fewer --workers or more --cpus-per-worker")
            self._next()

    def _workers(self, ray: Any) -> int:
        """``--workers``, or as many actors as the cluster's free resources hold (at least one)."""
        cfg = self.cfg
        nodes = alive_nodes(ray)
        need = {"CPU": cfg.cpus_per_worker, "GPU": cfg.gpus_per_worker}
        if not any(node_fits(res, need) for res in nodes):
            most = {key: max((res.get(key, 0) for res in nodes), default=0) for key in need}
            raise BadValueError(
                "worker size", f"{cfg.cpus_per_worker} CPUs, {cfg.gpus_per_worker:g} GPUs", None,
                fix=f"No node of the Ray cluster has that much (the largest: {most['CPU']:g} CPUs, "
                    f"{most['GPU']:g} GPUs); lower --cpus-per-worker or --gpus-per-worker.")
        if cfg.ray_workers is not None:
            n = cfg.ray_workers
        else:
            n = fits(ray.available_resources(), need)
        return max(1, min(n, self.n_clips))

    def _joined(self, k: int, info: dict[str, Any]) -> None:
        """Actor ``k`` answered its ping: check it can work on this run, then give it work."""
        if info["error"] is not None:
            raise ReplicaError(f"a Ray worker on {info['host']} could not load the model: {info['error']}")
        if not info["audio_visible"]:
            raise BadValueError("audio folder", self.audio_root, None,
                                fix=f"The Ray worker on {info['host']} does not see it: put the corpus on a "
                                    "filesystem every node mounts at the same path.")
        identity = {key: v for key, v in info["runtime"].items() if key not in RUNTIME_NOT_IDENTITY}
        if self._identity is None:
            self._identity, self.runtime, self.weights_revision = identity, info["runtime"], info["revision"]
        elif identity != self._identity or info["revision"] != self.weights_revision:
            diff = sorted(key for key in identity.keys() | self._identity.keys()
                          if identity.get(key) != self._identity.get(key)) or ["weights revision"]
            raise BadValueError(
                "worker set-up", f"{info['host']}: {', '.join(diff)}", None,
                fix="Ray workers on different nodes resolved the model differently (one cache holds "
                    "one set-up); give --precision explicitly or use nodes of one kind.")
        self.devices.add(info["device"] if not info["gpus"] else f"{info['device']} (GPU {','.join(info['gpus'])})")
        self.live.add(k)

    def describe(self) -> dict[str, Any]:
        """The engine's record in the cache provenance (runtime, not identity)."""
        cfg = self.cfg
        return {"engine": "ray", "ray": {
            "address": cfg.address, "workers": len(self.actors), "cpus_per_worker": cfg.cpus_per_worker,
            "gpus_per_worker": cfg.gpus_per_worker, "threads_per_worker": cfg.cpus_per_worker,
            "devices": sorted(self.devices),
            "nodes": sum(1 for node in self._ray.nodes() if node.get("Alive"))}}

    # -- work ------------------------------------------------------------------------------------
    def outcomes(self, jobs: list[Job]) -> Iterator[Outcome]:
        """Each job's ``Outcome`` as its task finishes (any order); lost workers' jobs run again."""
        per_task = max(1, min(self.cfg.batch_size, math.ceil(len(jobs) / (TASKS_PER_ACTOR * len(self.actors)))))
        queue: deque[list[Job]] = deque(jobs[i:i + per_task] for i in range(0, len(jobs), per_task))
        attempts: dict[str, int] = {}
        while queue or any(t.jobs is not None for t in self._inflight.values()):
            self._submit(queue)
            if not self._inflight:
                raise ReplicaError("every Ray worker died and none could be restarted; the clips "
                                   "committed so far are in the cache - re-run the same command to resume")
            task, value = self._next()
            if task.jobs is None:
                continue
            if value is None:
                yield from self._requeue(task.jobs, queue, attempts)
            else:
                yield from value

    def _next(self) -> tuple[_Task, Any]:
        """Wait for the next task to finish: (task, its value, or ``None`` if its worker was lost).

        A ping's answer makes its actor live; a lost worker is pinged until Ray has restarted it.
        """
        ray = self._ray
        [ref], _ = ray.wait(list(self._inflight), num_returns=1)
        task = self._inflight.pop(ref)
        try:
            value = ray.get(ref)
        except lost_worker_errors():
            self._lost(task.actor, ping=task.jobs is None)
            return task, None
        except ray.exceptions.RayTaskError as e:
            raise ReplicaError(f"a Ray worker failed: {_one_line(e)}") from None
        if task.jobs is None:
            self._pings_failed[task.actor] = 0
            self._joined(task.actor, value)
        return task, value

    def _ping(self, k: int) -> None:
        self._inflight[self.actors[k].ready.remote()] = _Task(k, None)

    def _submit(self, queue: deque[list[Job]]) -> None:
        """Give every live actor work up to ``IN_FLIGHT`` tasks."""
        busy: dict[int, int] = {}
        for task in self._inflight.values():
            busy[task.actor] = busy.get(task.actor, 0) + 1
        for k in sorted(self.live, key=lambda k: busy.get(k, 0)):
            while queue and busy.get(k, 0) < IN_FLIGHT:
                jobs = queue.popleft()
                self._inflight[self.actors[k].embed.remote(jobs)] = _Task(k, jobs)
                busy[k] = busy.get(k, 0) + 1

    def _lost(self, k: int, *, ping: bool) -> None:
        """Actor ``k`` died: no work for it until Ray has restarted it and it answers a ping.

        A ping waits for the restart; a second failed ping in a row means it is gone for good
        (its restarts are used up, or it dies while loading).
        """
        if ping:
            self._pings_failed[k] = self._pings_failed.get(k, 0) + 1
            if self._pings_failed[k] < 2:
                self._ping(k)
        elif k in self.live:
            self.live.discard(k)
            self._ping(k)

    def _requeue(self, jobs: list[Job], queue: deque[list[Job]], attempts: dict[str, int]) -> Iterator[Outcome]:
        """Queue a lost task's clips again, one per task (first), or record a clip that keeps failing."""
        for job in reversed(jobs):
            clip, path, targets, _ = job
            attempts[clip.id] = attempts.get(clip.id, 0) + 1
            if attempts[clip.id] >= MAX_ATTEMPTS:
                reason = (f"its Ray worker died {MAX_ATTEMPTS} times while embedding it "
                          "(out of memory? a crash in the model?)")
                yield Outcome(errors=[(cid, path, reason) for cid in targets])
            else:
                if attempts[clip.id] == 1:
                    self.retried += 1
                queue.appendleft([job])


def _one_line(e: BaseException) -> str:
    """The cause of a Ray task error, as its last line (``ValueError: ...``)."""
    cause = getattr(e, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}".splitlines()[0]
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[-1] if lines else type(e).__name__

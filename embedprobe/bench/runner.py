"""Running a bench: corpora -> caches -> probe jobs in parallel processes -> report.

``run_bench(cfg)`` is what ``embedprobe bench CONFIG.toml`` calls:

1. writes the synthetic corpora of the config (once; a marker records their parameters);
2. extracts every (model, corpus) cache that is missing or incomplete (``extraction.extract``
   resumes by itself), see ``bench.caches`` for where caches live;
3. expands the grid into jobs (``bench.grid``) and skips every job whose results JSON exists
   with the same job fingerprint and the same cache fingerprints: a killed bench resumes
   where it stopped, and a changed config or cache re-runs exactly the jobs it touches;
4. runs the remaining jobs in a ``ProcessPoolExecutor`` of ``jobs`` workers (one torch thread
   each), or as Ray tasks with ``engine = "ray"`` (``bench.ray_executor``); each job's record
   comes back to this process, which writes it atomically (``report.results.write_results``) as
   it arrives, under one progress view with ETA;
5. runs the optional acoustics and domain-gap sections, then writes ``bench.json``,
   ``bench.csv`` and ``report.html`` (``bench.collect``, ``report.html``) from every finished job.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedprobe.bench import extras
from embedprobe.bench.caches import (
    CacheInfo,
    cache_info,
    common_layers,
    corpus_roots,
    default_layers,
    extract_config,
    is_finished,
    link_alias,
)
from embedprobe.bench.collect import write_outputs
from embedprobe.bench.executor import Executor, TaskResult
from embedprobe.bench.grid import Job, expand, job_fingerprint, probe_config, resolve_layers
from embedprobe.bench.progress import GridProgress
from embedprobe.bench.ray_executor import RayExecutor, with_absolute_paths
from embedprobe.bench.spec import BenchConfig
from embedprobe.cache import open_cache
from embedprobe.cache.locks import FileLock, describe_holders
from embedprobe.errors import EmbedprobeError
from embedprobe.pipeline.extract import extract
from embedprobe.pipeline.probe import probe
from embedprobe.provenance import fingerprint, to_jsonable
from embedprobe.report.results import write_results


@dataclass
class BenchRun:
    """The outcome of ``run_bench``: every task and where the outputs are."""

    config: BenchConfig
    out: Path
    jobs: list[Job]
    results: dict[str, TaskResult]
    extractions: list[TaskResult]
    extras: list[TaskResult]
    seconds: float
    caches: dict[tuple[str, str], CacheInfo] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    report: Path | None = None
    csv: Path | None = None
    json: Path | None = None

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results.values())


def _extract_task(ecfg: Any) -> dict[str, Any]:
    s = extract(ecfg, progress=False)
    return {"path": str(s.cache), "n_clips": s.n_clips, "n_new": s.n_new, "n_errors": s.n_errors,
            "complete": s.complete, "seconds": round(s.seconds, 3)}


def _probe_task(task: dict[str, Any]) -> dict[str, Any]:
    """One probe job, where a worker runs it: its results record, for the driver to write."""
    partial = Path(task["results_dir"]) / ".partial" / task["job_id"]
    shutil.rmtree(partial, ignore_errors=True)
    path = probe(task["probe_config"], progress=False)  # writes into ``partial``
    rec = json.loads(Path(path).read_text())
    shutil.rmtree(partial, ignore_errors=True)
    rec["bench"] = {"job_id": task["job_id"], "job_fingerprint": task["fingerprint"],
                    "job": task["job"], "bench": task["bench"], "config_source": task["source"]}
    return {"record": rec, "seconds": rec.get("seconds")}


def _writer(results_dir: Path) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    """The commit step of probe jobs, in the driver: write the record as it arrives."""
    def commit(job_id: str, res: dict[str, Any]) -> dict[str, Any]:
        return {"path": str(write_results(res.pop("record"), results_dir, job_id))}

    return commit


def make_executor(cfg: BenchConfig) -> Executor | RayExecutor:
    """The local process pool of ``cfg.jobs``, or the Ray executor of ``cfg.engine``."""
    if cfg.engine.engine == "ray":
        return RayExecutor(cfg.engine, device=str(cfg.extract.params.get("device", "cpu")))
    return Executor(cfg.jobs)


# ------------------------------------------------------------------------------------- driver
def run_bench(cfg: BenchConfig, *, progress: bool = True, write: bool = True,
              on_event: Callable[[str], None] | None = None) -> BenchRun:
    """Run (or resume) the whole bench of ``cfg``; see the module docstring.

    Args:
        cfg: the bench.
        progress: show the progress view.
        write: write ``bench.json``, ``bench.csv`` and ``report.html`` at the end.
        on_event: called with a one-line message (rich markup) per finished task; the CLI
            prints them.
    """
    t0 = time.perf_counter()
    if cfg.engine.engine == "ray":
        cfg = with_absolute_paths(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / ".bench.lock")
    if not lock.acquire():
        raise EmbedprobeError(f"Another bench is running in {out}: {describe_holders([lock.path])}. "
                              "Fix: wait for it to finish, or give this one another [bench] out.")
    lock.write_info("bench")
    say = on_event or (lambda _m: None)
    try:
        phases: dict[str, float] = {}
        with make_executor(cfg) as ex, GridProgress(progress, cfg.name) as view:
            t = time.perf_counter()
            roots = corpus_roots(cfg)
            extractions = _extract_all(cfg, roots, ex, view, say)
            infos, blocked = _cache_infos(cfg, extractions, say)
            phases["corpora_and_caches"], t = time.perf_counter() - t, time.perf_counter()
            layers = {m: common_layers(m, infos) for m in cfg.extract.models
                      if any(k[0] == m for k in infos)}
            jobs = expand(cfg, {m: ls for m, ls in layers.items() if ls}, default_layers(infos))
            results = _probe_all(cfg, jobs, infos, blocked, ex, view, say)
            phases["probes"], t = time.perf_counter() - t, time.perf_counter()
            extras = _extras(cfg, roots, infos, layers, ex, view, say)
            phases["sections"] = time.perf_counter() - t
        run = BenchRun(cfg, out, jobs, results, extractions, extras, time.perf_counter() - t0, infos,
                       {k: round(v, 3) for k, v in phases.items()})
        if write:
            write_outputs(run)
        shutil.rmtree(out / "results" / ".partial", ignore_errors=True)
        return run
    finally:
        lock.release(clear_info=True)


def _extract_all(cfg, roots, ex, view, say) -> list[TaskResult]:
    aug_jobs = [j for j in expand(cfg) if j.augment_rate > 0]
    needs_aug = bool(cfg.extract.augmented) and bool(aug_jobs)
    train_keys = {c for j in aug_jobs for c in (*j.train, *j.scramble)}  # scrambled: trained alone too
    tasks, done = [], {}
    for model in cfg.extract.models:
        for c in cfg.corpora:
            todo = [(f"{c.key}__{model}", extract_config(cfg, c.key, model, roots[c.key]), 1.0)]
            if needs_aug and c.key in train_keys:
                todo.append((f"{c.key}__{model}__augmented",
                             extract_config(cfg, c.key, model, roots[c.key], augmented=True), 2.0))
            for key, ecfg, cost in todo:
                if is_finished(ecfg):
                    done[key] = TaskResult("extract", key, "skipped", path=str(ecfg.cache_path()))
                else:
                    tasks.append((key, _extract_task, ex.prepare_extract(ecfg), cost))
    done.update(ex.run("extract", tasks, view, say, done_before=len(done)))
    for model in cfg.extract.models:
        for c in cfg.corpora:
            if done[f"{c.key}__{model}"].status in ("done", "skipped"):
                link_alias(cfg, c.key, model)
    return list(done.values())


def _cache_infos(cfg, extractions, say=None) -> tuple[dict[tuple[str, str], CacheInfo], dict[tuple[str, str], str]]:
    infos, blocked = {}, {}
    failed = {r.key: r.error for r in extractions if r.status == "failed"}
    for model in cfg.extract.models:
        for c in cfg.corpora:
            k = f"{c.key}__{model}"
            if k + "__augmented" in failed:  # blocks the jobs with augmentation only
                blocked[(model, c.key, "augmented")] = (f"extraction of augmented copies of {c.key} with "
                                                        f"{model} failed: {failed[k + '__augmented']}")
            if k in failed:
                blocked[(model, c.key)] = f"extraction of {c.key} with {model} failed: {failed[k]}"
                continue
            info = infos[(model, c.key)] = cache_info(cfg, c.key, model)
            if info.n_pending:
                what = (f"the cache {info.path} is incomplete: {info.n_pending} of {info.n_manifest} clips are "
                        "missing")
                if not cfg.probe.allow_incomplete:
                    blocked[(model, c.key)] = (f"{what}. Fix: re-run the bench (its extraction resumes), or set "
                                               "[probe] allow_incomplete = true (--allow-incomplete)")
                elif say:
                    say(f"incomplete: {what}; its jobs use the {info.n_labelled} labelled clips it has "
                        "(--allow-incomplete).")
    return infos, blocked


def _cost(job: Job, infos: dict[tuple[str, str], CacheInfo], max_folds: int | None) -> float:
    """Rough relative cost of a job (clips x folds x seeds of every training it runs)."""
    def one(train: tuple[str, ...]) -> float:
        ii = [infos.get((job.model, c)) for c in train]
        n = sum(i.n_labelled for i in ii if i)
        folds = max((i.n_folds for i in ii if i), default=1)
        return (n + 200) * min(folds, max_folds or folds)

    total = one(job.train) + sum(one((s,)) for s in job.scramble if (s,) != job.train)
    return total * len(job.seeds)


def _probe_all(cfg, jobs, infos, blocked, ex, view, say) -> dict[str, TaskResult]:
    results: dict[str, TaskResult] = {}
    fps_now: dict[str, str | None] = {}
    todo = []
    results_dir = (Path(cfg.out) / "results").resolve()
    for job in jobs:
        keys = [(job.model, c) for c in {*job.train, *job.tests}]
        if job.augment_rate > 0:
            keys += [(job.model, c, "augmented") for c in {*job.train, *job.scramble}]
        missing = [blocked[k] for k in keys if k in blocked]
        if missing:
            results[job.id] = TaskResult("probe", job.id, "blocked", error=missing[0])
            continue
        fp = job_fingerprint(cfg, job)
        path = results_dir / f"{job.id}.json"
        if _finished(path, fp, {c: infos[(job.model, c)].fingerprint for c in {*job.train, *job.tests}},
                     fps_now):
            results[job.id] = TaskResult("probe", job.id, "skipped", path=str(path))
            continue
        task = {"job_id": job.id, "fingerprint": fp, "job": to_jsonable(job), "bench": cfg.name,
                "source": cfg.source, "results_dir": str(results_dir),
                "probe_config": probe_config(cfg, job, results_dir / ".partial" / job.id)}
        todo.append((job.id, _probe_task, task, _cost(job, infos, cfg.probe.max_folds)))
    if results:
        n_skip = sum(r.status == "skipped" for r in results.values())
        say(f"{n_skip} of {len(jobs)} jobs already finished (skipped); {len(todo)} to run")
    results.update(ex.run("probe", todo, view, say, done_before=sum(
        r.status == "skipped" for r in results.values()), commit=_writer(results_dir)))
    for r in results.values():
        if r.status == "failed":
            tb = r.info.get("traceback")
            results_dir.mkdir(parents=True, exist_ok=True)  # every job may have failed
            (results_dir / f"{r.key}.error.txt").write_text(r.error + ("\n\n" + tb if tb else "") + "\n")
    return {j.id: results[j.id] for j in jobs}


def _finished(path: Path, fp: str, caches: dict[str, str], fps_now: dict[str, str | None]) -> bool:
    """The job's results exist, from the same job config and the same caches (augmented too)."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if rec.get("bench", {}).get("job_fingerprint") != fp:
        return False
    got = {k: v.get("fingerprint") for k, v in rec.get("caches", {}).items()}
    if not all(got.get(k) == v for k, v in caches.items()):
        return False
    for v in rec.get("caches", {}).values():
        aug = v.get("augmented")
        if isinstance(aug, dict) and aug.get("path"):
            if aug["path"] not in fps_now:
                fps_now[aug["path"]] = _fingerprint_of(aug["path"])
            if fps_now[aug["path"]] != aug.get("fingerprint"):
                return False
    return True


def _fingerprint_of(path: str) -> str | None:
    try:
        with open_cache(path) as r:
            return r.fingerprint
    except (EmbedprobeError, OSError):
        return None


def _extras(cfg, roots, infos, layers, ex, view, say) -> list[TaskResult]:
    tasks, out = [], []
    for kind, spec in (("acoustics", cfg.acoustics), ("domain", cfg.domain)):
        if not spec.enabled:
            continue
        if kind == "acoustics":
            args = [(f"acoustics:{c.key}", extras.run_acoustics, extras.acoustics_task(cfg, c.key, roots[c.key]))
                    for c in cfg.corpora]
        else:
            args = []
            for model in cfg.extract.models:
                keys = [c.key for c in cfg.corpora if (model, c.key) in infos]
                fps = {k: infos[(model, k)].fingerprint for k in keys}
                use = (resolve_layers(cfg.grid.layers, layers.get(model), model, default_layers(infos).get(model))
                       if layers.get(model) else None)
                args.append((f"domain:{model}", extras.run_domain,
                             extras.domain_task(cfg, model, keys, fps, use)))
        for key, fn, arg in args:
            if extras.is_current(arg):
                out.append(TaskResult("report", key, "skipped", path=arg["marker"]))
            else:
                tasks.append((key, fn, arg, 3.0))
    return out + list(ex.run("report", tasks, view, say).values())


def plan_summary(cfg: BenchConfig) -> dict[str, Any]:
    """What a bench would run, without running anything (``embedprobe bench --dry-run``)."""
    layers, defaults = {}, {}
    for model in cfg.extract.models:  # name layers as a run would, when the caches exist already
        try:
            infos = {(model, c.key): cache_info(cfg, c.key, model) for c in cfg.corpora}
        except (EmbedprobeError, OSError):
            continue
        layers[model] = common_layers(model, infos)
        defaults.update(default_layers(infos))
    jobs = expand(cfg, layers, defaults)
    results = Path(cfg.out) / "results"
    rows = []
    for j in jobs:
        path = results / f"{j.id}.json"
        state = "results exist" if path.exists() else "to run"
        rows.append({"id": j.id, "role": j.role, "state": state, "fingerprint": job_fingerprint(cfg, j),
                     "note": None})
    return {"name": cfg.name, "out": cfg.out, "n_jobs": len(jobs), "jobs": rows,
            "config_fingerprint": fingerprint(to_jsonable(cfg))}

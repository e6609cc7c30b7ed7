"""Acoustic profile of a corpus (paper Figure 4): per-clip blind measures, cached, compared.

``profile(corpus, root, out_dir=...)`` decodes every clip (or a seeded subset), optionally
makes ``copies`` augmented versions of it, measures them with
:func:`embedprobe.augment.acoustics.measure` (DNSMOS P.835, T60, C50, WADA-SNR, loudness)
and appends the values to one CSV per (corpus, augmentation, seed)::

    <out_dir>/acoustics__<corpus>.csv                   raw clips
    <out_dir>/acoustics__<corpus>__aug-<name>-s<seed>.csv  augmented copies
    <same path>.json                                    provenance sidecar

The CSV has one row per (clip, copy): ``id, copy, speaker, label, native_label,
duration_s``, one column per measure, ``error`` (why a clip has no values) and
``aug_params`` (the JSON parameters the augmentation drew, enough to replay it). Rows are
appended in batches with one ``write`` + ``fsync``; a crash can leave at most one torn last
line, which the next run cuts off before resuming, so it loses at most one batch. A re-run
measures only the (clip, copy) pairs that are missing; asking for other measures, another
augmentation or seed in the same file is refused (:class:`CacheMismatchError`). The sidecar
records the identity, every run (config, seconds, counts), package and code versions, and
the full augmentation spec. The store itself (paths, append, resume, read) is
:mod:`embedprobe.pipeline.acoustics_store`; ``load_profile`` and ``read_meta`` are re-exported here.

``compare(folder)`` loads every profile of a folder, draws Figure 4 (``acoustics.png``:
row "raw" with the raw profiles, one row per augmentation with the augmented profile of each
corpus, or its raw one if it has none, as in the paper) and returns the distances between
all profiles (:func:`embedprobe.augment.acoustics.distribution_distances`).

Cost: DNSMOS dominates (~0.55 CPU-s per 2 s clip, one onnxruntime thread); T60 ~10 ms,
WADA-SNR and loudness ~1 ms. ``workers`` runs clips in that many processes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.audio import decode as audio
from embedprobe.augment import acoustics
from embedprobe.augment import augment as run_augment
from embedprobe.augment.acoustics import MEASURES, distribution_distances
from embedprobe.augment.base import resolve
from embedprobe.augment.plots import plot_distributions
from embedprobe.cache.locks import FileLock, describe_holders
from embedprobe.common import checks
from embedprobe.common.progress import Progress
from embedprobe.corpora import scan
from embedprobe.errors import (
    AudioError,
    BadValueError,
    CacheError,
    CacheLockedError,
    MissingDependencyError,
)
from embedprobe.pipeline.acoustics_store import (
    append_rows,
    done_pairs,
    load_profile,
    open_profile,
    profile_path,
    read_meta,
    sidecar_path,
)
from embedprobe.provenance import atomic_write_json, code_version, made_by, to_jsonable

SAMPLE_RATE = 16000  # DNSMOS' rate; T60 analyses at 8 kHz, loudness at any rate


def select_clips(clips: list, max_clips: int | None, subset_seed: int = 0) -> list:
    """The first ``max_clips`` clips in a seeded hash order, returned in manifest order.

    The order is SHA-256 of ``"<subset_seed>:<clip id>"``, so subsets are nested (the 150
    clips of ``max_clips=150`` are among those of ``max_clips=200``), the same for raw and
    augmented profiles, and independent of the augmentation seed.
    """
    if max_clips is not None and (isinstance(max_clips, bool) or not isinstance(max_clips, int) or max_clips < 1):
        raise BadValueError("max_clips", max_clips, fix="Use a positive number of clips.")
    if max_clips is None or max_clips >= len(clips):
        return list(clips)
    key = {c.id: hashlib.sha256(f"{subset_seed}:{c.id}".encode()).hexdigest() for c in clips}
    keep = set(sorted(key, key=key.get)[:max_clips])
    return [c for c in clips if c.id in keep]


def profile(
    corpus: str,
    root: str | Path,
    *,
    out_dir: str | Path,
    augment: str | None = None,
    copies: int = 1,
    seed: int = 0,
    max_clips: int | None = None,
    subset_seed: int = 0,
    which: Iterable[str] | None = None,
    labelled_only: bool = False,
    workers: int = 1,
    threads: int = 1,
    batch_size: int = 16,
    overwrite: bool = False,
    progress: bool = True,
    corpus_options: dict[str, Any] | None = None,
) -> Path:
    """Measure (and cache) the acoustic profile of one corpus, resuming a previous run.

    Args:
        corpus: registered corpus name (``embedprobe list corpora``).
        root: corpus root.
        out_dir: folder of the profile CSVs.
        augment: augmentation name from ``AUGMENTATIONS`` (e.g. ``"paper"``), or ``None``.
        copies: augmented copies per clip (ignored without ``augment``).
        seed: augmentation seed (copy ``k`` of clip ``c`` is reproducible from it).
        max_clips: measure a seeded subset of this many clips (see :func:`select_clips`).
        subset_seed: the subset's seed.
        which: measures (default: every measure whose dependencies are installed).
        labelled_only: only clips in the 4-class set.
        workers: processes measuring clips in parallel (1: in this process). Workers are
            spawned, so a script calling this with ``workers > 1`` needs the usual
            ``if __name__ == "__main__":`` guard. On 2 busy cores, 2 workers took 0.75x the
            time of 1 (24 EmoDB clips); more onnxruntime ``threads`` did not help.
        threads: onnxruntime threads per process for DNSMOS.
        batch_size: rows per atomic append.
        overwrite: start the profile over.
        progress: show a rich progress bar with ETA.
        corpus_options: reader options (``embedprobe.corpora.scan``).

    Returns:
        The profile CSV path (read it with :func:`load_profile`).

    Raises:
        CacheMismatchError: the existing profile was made with other measures, corpus,
            augmentation or seed.
        CacheLockedError: another process is writing the same profile.
        MissingDependencyError: a measure or augmentation needs an optional extra.
        KeyboardInterrupt: re-raised after the rows measured so far are saved.
    """
    measures = tuple(acoustics.available()) if which is None else acoustics._check_which(which)
    _check_measures_installed(measures)
    spec = _augment_spec(augment)
    for what, value in (("copies", copies), ("workers", workers), ("threads", threads), ("batch_size", batch_size)):
        checks.count(what.replace("_", " "), value, option=f"--{what.replace('_', '-')}")
    if max_clips is not None:
        checks.count("max clips", max_clips, option="--max-clips")
    checks.count("augmentation seed", seed, low=0, option="--seed")
    if not augment and (copies != 1 or seed != 0):
        raise BadValueError("option without effect", "--copies" if copies != 1 else "--seed",
                            fix="It only applies with --augment NAME; add it or drop the option.")
    checks.count("subset seed", subset_seed, low=0, option="--subset-seed")
    copies = int(copies) if augment else 1
    manifest = scan(corpus, root, **(corpus_options or {}))
    clips = manifest.labelled() if labelled_only else list(manifest.clips)
    clips = select_clips(clips, max_clips, subset_seed)
    path = profile_path(out_dir, corpus, augment, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    identity = {
        "corpus": corpus, "corpus_options": to_jsonable(corpus_options or {}),
        "measures": list(measures), "sample_rate": SAMPLE_RATE, "augmentation": None if spec is None
        else {"name": augment, "fingerprint": spec.fingerprint(), "seed": int(seed)},
    }
    lock = FileLock(str(path) + ".lock")
    if not lock.acquire():
        raise CacheLockedError(f"The profile {path} is being written by another process: "
                               f"{describe_holders([lock.path])}. Fix: wait for it, or use another --out.")
    lock.write_info("acoustics")
    try:
        meta = open_profile(path, identity, measures, overwrite)
        done = done_pairs(path)
        todo = [(c, [k for k in range(copies) if (c.id, k) not in done]) for c in clips]
        todo = [(c, ks) for c, ks in todo if ks]
        run = {"started_unix": time.time(), "code_version": code_version(), "n_selected": len(clips),
               "copies": copies, "max_clips": max_clips, "subset_seed": subset_seed, "workers": workers,
               "threads": threads, "labelled_only": labelled_only, "n_done_before": len(done)}
        meta.update(identity=identity, **made_by(),
                    augmentation=None if spec is None else {"name": augment, "seed": int(seed),
                                                            "config": spec.config()})
        t0 = time.perf_counter()
        n_new, n_err, interrupted = 0, 0, False
        root_dir = Path(manifest.root)
        tasks = [(str(root_dir / c.path), c.id, c.speaker, c.label or "", c.native_label, ks, augment,
                  int(seed), measures, threads) for c, ks in todo]
        total = sum(len(ks) for _, ks in todo)
        label = f"acoustics {corpus}" + (f"+{augment}" if augment else "")
        with Progress(progress and total > 0, total + len(done), label, completed=len(done), unit="clips",
                      rate_digits=2) as tick, open(path, "a", newline="") as f:
            batch: list[dict[str, Any]] = []
            try:
                for rows in _run(tasks, workers):
                    batch.extend(rows)
                    n_new += len(rows)
                    n_err += sum(bool(r["error"]) for r in rows)
                    tick(advance=len(rows))
                    if len(batch) >= batch_size:
                        append_rows(f, batch, measures)
                        batch = []
            except KeyboardInterrupt:
                interrupted = True
            append_rows(f, batch, measures)
        run.update(seconds=round(time.perf_counter() - t0, 3), n_new=n_new, n_errors=n_err,
                   interrupted=interrupted)
        meta.setdefault("runs", []).append(run)
        n_rows = len(done_pairs(path))
        meta.update(n_rows=n_rows, complete=not interrupted and n_new == total)
        atomic_write_json(sidecar_path(path), meta)
    finally:
        lock.release(clear_info=True)
    if interrupted:
        raise KeyboardInterrupt
    return path


# --- measuring -------------------------------------------------------------------------------

def _measure_clip(task: tuple) -> list[dict[str, Any]]:
    """Decode one clip, augment each missing copy, measure; one row per copy (errors too)."""
    path, clip_id, speaker, label, native, copies, augment, seed, measures, threads = task
    base = {"id": clip_id, "speaker": speaker, "label": label, "native_label": native}
    try:
        wav = audio.load(path, audio.AudioConfig(sample_rate=SAMPLE_RATE))
    except AudioError as e:
        return [{**base, "copy": k, "duration_s": float("nan"), "error": e.reason, "aug_params": ""}
                for k in copies]
    rows = []
    for k in copies:
        x, params = wav, ""
        try:
            if augment:
                out = run_augment(wav, SAMPLE_RATE, augment, seed=seed, clip_id=clip_id, copy=k)
                x, params = out.wav, json.dumps(out.params, separators=(",", ":"))
            values = acoustics.measure(x, SAMPLE_RATE, which=measures, threads=threads)
        except MissingDependencyError:
            raise
        except Exception as e:  # noqa: BLE001 - one bad clip must not end a long run
            rows.append({**base, "copy": k, "duration_s": len(x) / SAMPLE_RATE, "aug_params": params,
                         "error": f"measure failed: {type(e).__name__}: {e}".replace("\n", " ")})
            continue
        rows.append({**base, "copy": k, "duration_s": len(x) / SAMPLE_RATE, **values, "error": "",
                     "aug_params": params})
    return rows


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent saves and stops the pool


def _run(tasks: list[tuple], workers: int):
    """Yield the rows of each task; in ``workers`` spawned processes when > 1 (any order)."""
    if workers == 1 or len(tasks) <= 1:
        for t in tasks:
            yield _measure_clip(t)
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_ignore_sigint)
    pending: set = set()
    it = iter(tasks)
    try:
        for t in it:
            pending.add(pool.submit(_measure_clip, t))
            if len(pending) >= 2 * workers:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(pool.submit(_measure_clip, nxt))
                yield fut.result()
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _augment_spec(name: str | None):
    if not name:
        return None
    return resolve(name)


def _check_measures_installed(measures: tuple[str, ...]) -> None:
    have = set(acoustics.available())
    for m in measures:
        if m not in have:
            raise MissingDependencyError(acoustics.OPTIONAL[m], "acoustics", f"the measure {m!r}")



# --- comparing profiles ----------------------------------------------------------------------

def profile_label(meta: dict[str, Any]) -> str:
    """``"emodb"`` for a raw profile, ``"emodb+paper"`` (``-s<seed>`` if seed != 0) augmented."""
    ident = meta["identity"]
    aug = ident.get("augmentation")
    if not aug:
        return ident["corpus"]
    return f"{ident['corpus']}+{aug['name']}" + (f"-s{aug['seed']}" if aug["seed"] else "")


def load_profiles(paths: str | Path | Iterable[str | Path], *, paired: bool = False
                  ) -> dict[str, dict[str, Any]]:
    """``{label: {"path", "meta", "ids", "values": {measure: values}}}`` for profile CSVs
    given as a list or found in a folder (``acoustics__*.csv``).

    With ``paired``, the profiles of one corpus (raw and augmented) keep only the clips that
    every one of them measured, so a raw profile of all clips and an augmented one of a
    ``max_clips`` subset are compared on the same clips.
    """
    if isinstance(paths, (str, Path)) and Path(paths).is_dir():
        files = sorted(Path(paths).glob("acoustics__*.csv"))
        if not files:
            raise CacheError(f"No acoustic profiles (acoustics__*.csv) in {paths}. Fix: run "
                             f"`embedprobe acoustics --corpus C --root PATH --out {paths}`.")
    else:
        files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    out: dict[str, dict[str, Any]] = {}
    for f in files:
        meta = read_meta(f)
        label = profile_label(meta)
        if label in out:
            label = f"{label} ({f.parent.name}/{f.stem})"
        cols = load_profile(f)
        out[label] = {"path": f, "meta": meta, "ids": cols["id"],
                      "values": {m: cols[m] for m in MEASURES if m in cols}}
    if paired:
        for corpus in {p["meta"]["identity"]["corpus"] for p in out.values()}:
            mine = [p for p in out.values() if p["meta"]["identity"]["corpus"] == corpus]
            shared = set.intersection(*(set(p["ids"]) for p in mine))
            for p in mine:
                keep = np.isin(p["ids"], list(shared))
                p["ids"] = p["ids"][keep]
                p["values"] = {m: v[keep] for m, v in p["values"].items()}
    return out


def medians(profiles: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per profile and measure: ``n`` finite values, median, 25th and 75th percentiles."""
    rows = []
    for label, p in profiles.items():
        for m, x in p["values"].items():
            x = x[np.isfinite(x)]
            q = np.percentile(x, [25, 50, 75]) if len(x) else [np.nan] * 3
            rows.append({"profile": label, "measure": m, "n": int(len(x)), "q25": float(q[0]),
                         "median": float(q[1]), "q75": float(q[2])})
    return rows


def compare(paths: str | Path | Iterable[str | Path], *, figure: str | Path | None = None,
            measures: Iterable[str] | None = None, paired: bool = True
            ) -> tuple[list[dict[str, Any]], Path | None]:
    """Distances between every pair of profiles, and the Figure-4 plot.

    Args:
        paths: a folder of profiles or a list of profile CSVs.
        figure: PNG path (default ``<folder of the first profile>/acoustics.png``).
        measures: restrict to these measures.
        paired: compare the profiles of one corpus on their shared clips only (see
            :func:`load_profiles`); the ``n_a``/``n_b`` of the rows say how many were used.

    Returns:
        ``(rows, figure_path)``: the rows of
        :func:`~embedprobe.augment.acoustics.distribution_distances` between all profiles
        (``corpus_a``/``corpus_b`` are profile labels, e.g. ``emodb`` and ``emodb+paper``).
    """
    profiles = load_profiles(paths, paired=paired)
    values = {label: p["values"] for label, p in profiles.items()}
    ms = list(measures) if measures is not None else None
    rows = distribution_distances(values, measures=ms)
    raw = {lab: p for lab, p in profiles.items() if not p["meta"]["identity"].get("augmentation")}
    conditions: dict[str, dict[str, Any]] = {}
    if raw:
        conditions["raw"] = {lab: values[lab] for lab in raw}
    for aug in sorted({p["meta"]["identity"]["augmentation"]["name"] for p in profiles.values()
                       if p["meta"]["identity"].get("augmentation")}):
        row: dict[str, Any] = {}
        for corpus in dict.fromkeys(p["meta"]["identity"]["corpus"] for p in profiles.values()):
            mine = [lab for lab, p in profiles.items() if p["meta"]["identity"]["corpus"] == corpus
                    and (p["meta"]["identity"].get("augmentation") or {}).get("name") == aug]
            for lab in mine or [lab for lab, p in raw.items() if p["meta"]["identity"]["corpus"] == corpus]:
                row[lab] = values[lab]
        conditions[f"augm. ({aug})"] = row
    path = Path(figure) if figure else next(iter(profiles.values()))["path"].parent / "acoustics.png"
    import matplotlib.pyplot as plt

    fig = plot_distributions(conditions, measures=ms, path=path)
    plt.close(fig)
    return rows, path

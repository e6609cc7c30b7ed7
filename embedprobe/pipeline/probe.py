"""``embedprobe probe``: caches -> probe-ready arrays -> cross-corpus matrix -> results files.

``probe(ProbeConfig(...))`` finds the cache of each corpus for one model, loads the 4-class
clips of each with their split protocol, runs ``eval.runner.run_matrix`` and writes one JSON
(full config, versions, seeds, cache fingerprints, every cell with its confidence figures)
plus a tidy CSV into the results folder.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.augment.copies import augmented_tag, copy_id
from embedprobe.cache import open_cache
from embedprobe.cache.naming import cache_file, safe_model
from embedprobe.common import checks
from embedprobe.common.progress import Progress
from embedprobe.common.threads import check_threads, describe
from embedprobe.corpora.base import CANONICAL_LABELS
from embedprobe.errors import BadValueError, CacheError, EmbedprobeError
from embedprobe.eval.confidence import AGGREGATES
from embedprobe.eval.data import CorpusData, scramble, training_split
from embedprobe.eval.runner import (
    MatrixSpec,
    fragmentation,
    n_trainings,
    relative_matrix,
    run_matrix,
    set_name,
)
from embedprobe.eval.split_checks import SplitIssue, check_run, raise_if_stopping
from embedprobe.pipeline.corpus_data import (
    available_corpora,
    completeness,
    load_corpus,
)
from embedprobe.probes import create, tune
from embedprobe.probes.registry import PROBES
from embedprobe.provenance import artifact_header
from embedprobe.report.results import write_results

RESULTS_FORMAT = 1

__all__ = ["POOLINGS", "RESULTS_FORMAT", "ProbeConfig", "SplitWarning", "available_corpora", "cache_file",
           "check_config", "completeness", "load_copies", "load_corpus", "load_results", "plan", "probe",
           "quiet_numpy"]


@dataclass(frozen=True)
class ProbeConfig:
    """One probing run.

    Args:
        model: extractor name whose caches are probed.
        cache_dir: folder holding ``<corpus>__<model>.h5`` caches.
        train: training sets; each item is one corpus or a ``+``/``,``-joined union.
        test: corpora to test on; ``("all",)`` = every corpus with a cache for ``model``.
        probe: ``linear`` or ``mlp``.
        layer: cache layer (default: the cache's default layer, the model's last hidden layer).
        pooling: ``mean`` or ``meanstd`` of the cached frames statistics.
        frames: train on frame-level features (needed by frame masking / feature mixing).
        seeds: seeds (one training per seed and fold).
        scramble: corpora whose labels are swapped (angry<->happy, sad<->neutral).
        protocols: corpus -> split protocol (default: each corpus's default); ``loso`` (leave one
            speaker out, validating on other training speakers) for every corpus with speaker ids.
        aggregate: ``mean`` (each fold scored, the folds averaged) or ``pooled`` (each metric once
            over the test predictions of all folds, as nkululeko and EmoBox report).
        baselines: also train each test corpus alone, for the relative matrix.
        probe_params: extra probe parameters (frame_mask, mix_prob, noise_std, lr, ...).
        n_bootstrap: bootstrap resamples per cell.
        max_folds: use at most this many folds per protocol (quick runs).
        tune: light validation-only search of learning rate and batch size first.
        augment_rate: the paper's augmentation rate (0, 0.2, 0.5, 0.7, 1.0): the probability that
            a training clip drawn into a batch is replaced by one of its augmented copies, read
            from ``<corpus>__<model>__aug-<augment>-s<augment_seed>.h5`` (made by ``embedprobe
            extract ... --augment paper --copies K``).
        augment, augment_seed: which augmented caches to read.
        domain_gap: with >= 2 corpora, the callers that compose ``probe`` with
            :func:`embedprobe.pipeline.domain.domain_gap_for` (the ``probe`` command) also measure
            their Fréchet distance and corpus identifiability on the same caches and layer
            (``domain__<model>.json``); ``probe`` itself never does.
        out: results folder.
        tag: results file name suffix.
        allow_incomplete: probe a cache that misses clips (still being written, interrupted, or
            a part file lost) instead of refusing it; the shortfall is recorded in the results.
        threads: torch / BLAS threads for the probes, metrics and bootstrap (>= 1); None lets
            each choose from its work size: one thread for small probes (see
            :mod:`embedprobe.common.threads`). The counts used are recorded in the results.
        allow_degenerate: run even when a fold cannot measure (a part lacks a class, speakers and
            labels are confounded; :mod:`embedprobe.eval.split_checks`) instead of stopping with
            one sentence; the problems are recorded in the results (``split_checks``) either way.
    """

    model: str
    cache_dir: str
    train: tuple[str, ...]
    test: tuple[str, ...] = ("all",)
    probe: str = MatrixSpec.probe  # the runner's defaults, written once there
    layer: str | None = None
    pooling: str = "mean"
    frames: bool = False
    seeds: tuple[int, ...] = MatrixSpec.seeds
    scramble: tuple[str, ...] = ()
    protocols: dict[str, str] = field(default_factory=dict)
    aggregate: str = MatrixSpec.aggregate
    baselines: bool = True
    probe_params: dict[str, Any] = field(default_factory=dict)
    n_bootstrap: int = MatrixSpec.n_bootstrap
    max_folds: int | None = None
    tune: bool = False
    out: str = "results"
    tag: str | None = None
    domain_gap: bool = True
    augment_rate: float = 0.0
    augment: str = "paper"
    augment_seed: int = 0
    allow_incomplete: bool = False
    threads: int | None = None
    allow_degenerate: bool = False


POOLINGS = ("mean", "meanstd")


def load_copies(cfg: ProbeConfig, corpus: str, data: CorpusData,
                layer: str) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The ``K`` cached augmented copies of ``data``'s clips, pooled like the probe's input.

    A clip whose copy is missing (failed augmentation) keeps its original features there; the
    count is recorded.
    """
    path = cache_file(cfg.cache_dir, corpus, cfg.model, augmented_tag(cfg.augment, cfg.augment_seed))
    if not path.exists() and not Path(str(path) + ".parts").exists():
        raise CacheError(
            f"Augmentation rate {cfg.augment_rate} needs augmented copies of {corpus}, but {path} does not "
            f"exist. Fix: run `embedprobe extract --model {cfg.model} --corpus {corpus} --root PATH --out "
            f"{cfg.cache_dir} --augment {cfg.augment} --copies 4 --augment-seed {cfg.augment_seed}`.")
    frames_pool = cfg.probe_params.get("pooling", "mean") == "mean+std"
    stat = "meanstd" if (cfg.pooling == "meanstd" if not cfg.frames else frames_pool) else "mean"
    with open_cache(path) as r:
        incomplete = completeness(r, allow_incomplete=cfg.allow_incomplete)
        copies = int((r.identity.get("augment") or {}).get("copies", 0))
        have = set(r.ids)
        out, missing = [], 0
        base = data.X if isinstance(data.X, np.ndarray) else data.X.pool(
            "mean+std" if frames_pool else "mean").numpy()
        for k in range(copies):
            ids = [copy_id(i, k) for i in data.ids]
            ok = np.array([i in have for i in ids])
            x = base.copy()
            if ok.any():
                x[ok] = r.pooled(layer, stat, [i for i, o in zip(ids, ok, strict=True) if o])
            missing += int((~ok).sum())
            out.append(x)
        record = {"path": str(path), "fingerprint": r.fingerprint, "copies": copies,
                  "n_missing": missing, "augment": r.identity.get("augment"), "incomplete": incomplete}
    if not out:
        raise CacheError(f"{path} holds no augmented copies. Fix: re-extract with --augment and --copies.")
    return out, record


def _train_sets(items: tuple[str, ...]) -> list[tuple[str, ...]]:
    out = []
    for item in items:
        parts = tuple(p.strip() for p in item.replace(",", "+").split("+") if p.strip())
        if parts:
            out.append(parts)
    return out


def plan(cfg: ProbeConfig) -> tuple[list[tuple[str, ...]], list[str]]:
    """Resolve the training sets and test corpora (``all``, baselines) of a config."""
    available = available_corpora(cfg.cache_dir, cfg.model)
    if not available:
        raise CacheError(f"No cache for model {cfg.model!r} in {cfg.cache_dir}. Fix: run `embedprobe "
                         f"extract --model {cfg.model} --corpus C --root PATH --out {cfg.cache_dir}` first.")
    train_sets = _train_sets(cfg.train)
    if not train_sets:
        raise BadValueError("--train", cfg.train, available)
    tests = available if "all" in cfg.test else list(dict.fromkeys(cfg.test))
    for name in {c for t in train_sets for c in t} | set(tests) | set(cfg.scramble):
        if name not in available:
            raise BadValueError(f"corpus (no cache for {cfg.model} in {cfg.cache_dir})", name, available)
    if cfg.baselines:
        for t in tests:
            if (t,) not in train_sets:
                train_sets.append((t,))
    for s in cfg.scramble:  # the fragmentation summary compares joint training with s alone
        if (s,) not in train_sets:
            train_sets.append((s,))
    return train_sets, tests


def probe(cfg: ProbeConfig, *, progress: bool = True, on_note: Callable[[str], None] | None = None,
          on_split: Callable[[SplitIssue], None] | None = None) -> Path:
    """Run the cross-corpus matrix of ``cfg``; returns the path of the results JSON.

    ``on_note`` receives one sentence per incomplete cache used (with ``allow_incomplete``).
    ``on_split`` receives each split problem found before training (once each; without it they
    are issued as :class:`SplitWarning`). Numpy's RuntimeWarnings (means of empty slices in
    degenerate cells) never reach the caller: such cells read as missing values.

    Raises:
        DegenerateSplitError: a fold cannot measure and ``allow_degenerate`` is false; nothing
            is written.
    """
    t0 = time.perf_counter()
    check_config(cfg)
    check_threads(cfg.threads)
    train_sets, tests = plan(cfg)
    needed = sorted({c for t in train_sets for c in t} | set(tests))
    data, caches = {}, {}
    for name in needed:
        d, rec = load_corpus(cache_file(cfg.cache_dir, name, cfg.model), layer=cfg.layer,
                             pooling=cfg.pooling, frames=cfg.frames,
                             protocol=cfg.protocols.get(name), allow_incomplete=cfg.allow_incomplete)
        if cfg.augment_rate > 0 and any(name in t for t in train_sets):
            d.X_aug, rec["augmented"] = load_copies(cfg, name, d, rec["layer"])
        data[name] = scramble(d) if name in cfg.scramble else d
        caches[name] = rec
    incomplete = {}
    for n, c in caches.items():
        for key, inc in ((n, c["incomplete"]), (f"{n} (augmented)", (c.get("augmented") or {}).get("incomplete"))):
            if inc:
                incomplete[key] = inc
    for note in (i["note"] for i in incomplete.values()):
        if on_note:
            on_note(note)
    issues = check_run(data, train_sets, tests, cfg.max_folds)
    raise_if_stopping(issues, allow=cfg.allow_degenerate)
    for issue in issues:
        if on_split:
            on_split(issue)
        else:
            warnings.warn(issue.message, SplitWarning, stacklevel=2)
    params = dict(cfg.probe_params)
    if cfg.threads is not None:
        params["n_threads"] = cfg.threads
    tuned = None
    if cfg.tune:
        with quiet_numpy():
            tuned = _tune(cfg, data, train_sets[0], params)
        params.update(tuned["best_params"])
    spec = MatrixSpec(train_sets=tuple(train_sets), tests=tuple(tests), probe=cfg.probe,
                      probe_params=params, seeds=tuple(cfg.seeds), n_bootstrap=cfg.n_bootstrap,
                      max_folds=cfg.max_folds, aug_rate=cfg.augment_rate, threads=cfg.threads,
                      aggregate=cfg.aggregate)
    thread_record = describe(cfg.threads)
    with Progress(progress, n_trainings(data, spec), "probe") as tick, quiet_numpy():
        cells = run_matrix(data, spec, on_training=tick)
        relative, frag = relative_matrix(cells, "wf1"), fragmentation(cells, tuple(cfg.scramble))
    record = {
        **artifact_header("embedprobe.probe", RESULTS_FORMAT, cfg, started=t0),
        "resolved": {"train_sets": [list(t) for t in train_sets], "tests": tests,
                     "probe_params": params, "tuned": tuned, "aggregate": cfg.aggregate,
                     "protocols": {n: c["protocol"] for n, c in caches.items()}},
        "classes": list(CANONICAL_LABELS),
        "seeds": list(cfg.seeds),
        "caches": caches,
        "cells": cells,
        "threads": thread_record | _threads_used(cells),
        "relative_wf1": relative,
        "fragmentation": frag,
        "incomplete_caches": incomplete,
        "split_checks": [i.record() for i in issues],
    }
    return write_results(record, Path(cfg.out), _run_name(cfg, train_sets))


class SplitWarning(UserWarning):
    """A fold that measures less than it seems to (few clips of a class, a random fallback split)."""


@contextlib.contextmanager
def quiet_numpy() -> Iterator[None]:
    """Keep numpy's RuntimeWarnings (empty slices, 0/0 in degenerate cells) from the user."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def check_config(cfg: ProbeConfig) -> None:
    """Refuse values that would otherwise run as something else (no seeds, an unknown parameter)."""
    PROBES.get(cfg.probe)  # an unknown probe lists the registered ones
    if cfg.tune and not {"lr", "batch_size"} <= set(PROBES.get(cfg.probe).cls().get_params()):
        raise BadValueError("--tune with probe", cfg.probe, fix="--tune searches lr and batch_size, which "
                            f"{cfg.probe} has not (logreg and svm choose C on validation themselves): drop --tune.")
    checks.choice("pooling", cfg.pooling, POOLINGS)
    checks.choice("aggregate (--aggregate)", cfg.aggregate, AGGREGATES, fix="mean averages the folds' scores; "
                  "pooled scores the predictions of all folds at once.")
    if cfg.frames and cfg.pooling != "mean":
        raise BadValueError("pooling with frame-level input", cfg.pooling, fix="With --frames the probe pools "
                            "the frames itself: use --param pooling=mean+std instead of --pooling meanstd.")
    if not cfg.seeds:
        raise BadValueError("seeds", cfg.seeds, fix="Use at least one seed (--seeds 1 or more).")
    for seed in cfg.seeds:
        checks.count("seed", seed, low=0)
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise BadValueError("seeds", cfg.seeds, fix="Give each seed once.")
    checks.count("number of bootstrap resamples", cfg.n_bootstrap, low=0, option="--bootstrap")
    if cfg.max_folds is not None:
        checks.count("maximum number of folds", cfg.max_folds, option="--max-folds")
    checks.number("augmentation rate", cfg.augment_rate, low=0, high=1, option="--augment-rate")
    checks.count("augmentation seed", cfg.augment_seed, low=0, option="--augment-seed")
    if cfg.tag:
        checks.name_for_path("results tag", cfg.tag)
    if "device" in cfg.probe_params:
        checks.device(cfg.probe_params["device"])
    named = {c for t in _train_sets(cfg.train) for c in t} | set(cfg.test) | set(cfg.scramble)
    if "all" in named:
        named |= set(available_corpora(cfg.cache_dir, cfg.model))
    unknown = sorted(set(cfg.protocols) - named)
    if unknown:
        raise BadValueError("corpus in --protocol", unknown[0], fix="Name a corpus that this run trains or tests on.")
    estimator = create(cfg.probe)
    allowed = sorted(set(estimator.get_params()) - {"random_state"})
    for key in cfg.probe_params:
        if key not in allowed:
            raise BadValueError(f"parameter of the {cfg.probe} probe", key, allowed,
                                fix="random_state comes from --seeds." if key == "random_state" else
                                "Pass it as --param KEY=VALUE.")
    try:
        estimator.set_params(**cfg.probe_params)._check_params()
    except EmbedprobeError:
        raise
    except (TypeError, ValueError):
        raise BadValueError(f"parameters of the {cfg.probe} probe", cfg.probe_params,
                            fix="A value has the wrong type: give numbers as numbers (e.g. lr=0.001).") from None
def _threads_used(cells: list[dict[str, Any]]) -> dict[str, list[int]]:
    """The thread counts the cells' probes (``fit``, ``predict``) and metrics used, as sorted lists."""
    used: dict[str, set[int]] = {"fit": set(), "predict": set(), "metrics": set()}
    for c in cells:
        for k, v in c["threads"].items():
            used[k].update(v if isinstance(v, list) else [v])
    return {k: sorted(v) for k, v in used.items()}


def _run_name(cfg: ProbeConfig, train_sets: list[tuple[str, ...]]) -> str:
    name = f"{safe_model(cfg.model)}__{cfg.probe}__train-{set_name(train_sets[0])}"
    if cfg.scramble:
        name += "__scrambled-" + "-".join(cfg.scramble)
    if cfg.augment_rate > 0:
        name += f"__aug{round(100 * cfg.augment_rate)}"
    for corpus, protocol in sorted(cfg.protocols.items()):  # runs on other protocols keep their own files
        name += f"__{corpus}-{protocol}"
    if cfg.aggregate != MatrixSpec.aggregate:
        name += f"__{cfg.aggregate}"
    if cfg.tag:
        name += f"__{cfg.tag}"
    return name


def _tune(cfg: ProbeConfig, data: dict[str, CorpusData], corpora: tuple[str, ...],
          params: dict[str, Any]) -> dict[str, Any]:
    split = training_split([data[c] for c in corpora], 0)
    estimator = create(cfg.probe, random_state=cfg.seeds[0], **params)
    return tune(estimator, split.X, split.y, X_val=split.X_val, y_val=split.y_val).to_dict()


def load_results(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())

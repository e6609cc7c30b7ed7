"""The domain gap between corpora for one extractor: caches in, JSON and Markdown out.

``domain_gap_for(model, cache_dir)`` loads the mean-pooled embeddings of the 4-class clips of
every corpus cached for ``model`` (the clips the emotion probes use, via
:func:`embedprobe.pipeline.corpus_data.read_corpus`; each cache is opened once), and per layer
computes the Fréchet distance of every corpus pair and the corpus-identifiability probe (:mod:`embedprobe.eval.domain`). It writes
``<out>/domain__<model>.json`` (config, cache fingerprints, versions, every number) and
``<out>/domain__<model>.md`` (two small tables to put next to the emotion matrices).

Example:
    >>> # SKIP: needs caches of several corpora (tests/pipeline/test_domain_report.py builds them)
    >>> rec = domain_gap_for("logmel-128", "cache", out="results")   # doctest: +SKIP
    >>> rec["frechet"][0]["frechet_norm"], rec["identifiability"]["mel"]["balanced_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.cache import CacheReader, open_cache
from embedprobe.cache.naming import cache_file, safe_model
from embedprobe.common.threads import check_threads, choose_threads, describe, limit_threads
from embedprobe.errors import BadValueError, CacheError
from embedprobe.eval.domain import SHRINKAGE, check_probe, domain_gap, identifiability
from embedprobe.pipeline.corpus_data import available_corpora, read_corpus
from embedprobe.provenance import artifact_header, atomic_write_json, atomic_write_text
from embedprobe.report.domain import markdown

DOMAIN_FORMAT = 1


def _name(model: str) -> str:
    return safe_model(model)


def _layers(readers: dict[str, CacheReader], asked: Iterable[str] | None) -> list[str]:
    per = {corpus: list(r.layers) for corpus, r in readers.items()}
    first = next(iter(per.values()))
    common = [layer for layer in first if all(layer in v for v in per.values())]
    if not common:
        raise CacheError(f"The caches share no layer: {per}. Fix: extract every corpus with the same "
                         "--layers.")
    if asked is None:
        return common
    asked = list(asked)
    for layer in asked:
        if layer not in common:
            raise BadValueError("layer (present in every cache)", layer, common)
    return asked


def domain_gap_for(
    model: str,
    cache_dir: str | Path,
    *,
    layers: Iterable[str] | None = None,
    corpora: Iterable[str] | None = None,
    out: str | Path | None = "results",
    seed: int = 0,
    probe: str = "logistic",
    shrinkage: str | float = "auto",
    speaker_disjoint: bool = True,
    allow_incomplete: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """Fréchet distances and corpus identifiability between the corpora cached for ``model``.

    Args:
        model: extractor name whose caches are read.
        cache_dir: folder of ``<corpus>__<model>.h5`` caches.
        layers: layers to analyse (default: every layer present in all caches).
        corpora: corpora to compare (default: every corpus cached for ``model``; >= 2).
        out: folder for ``domain__<model>.json`` / ``.md``; ``None`` writes nothing.
        seed: identifiability split and probe seed.
        probe: identifiability probe (``logistic``, ``linear``, ``mlp``; ``embedprobe list domain-probes``).
        shrinkage: covariance estimator of the Fréchet distance (``auto``, ``ledoit-wolf``,
            ``none`` or a float).
        speaker_disjoint: hold out speakers (not clips) in the identifiability probe, when
            every corpus has >= 2 speakers.
        allow_incomplete: use caches that miss clips (recorded per cache as ``incomplete``)
            instead of refusing them with ``CacheIncompleteError``.
        threads: torch / BLAS threads (>= 1); None chooses per step from its work size (the
            covariance square roots of wide layers may use every free core, the probe one).

    Returns:
        The record written to JSON: ``frechet`` (rows with ``layer, a, b, frechet,
        frechet_norm, ...``), ``identifiability`` (``{layer: result}``), ``caches``
        (path, fingerprint, clip counts per corpus), config, versions; plus ``files`` when
        ``out`` is given.
    """
    t0 = time.perf_counter()
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise BadValueError("seed", seed, fix="Use an integer >= 0.")
    check_probe(probe)  # before any cache is read
    if isinstance(shrinkage, str) and shrinkage not in SHRINKAGE or (
            not isinstance(shrinkage, str) and not 0.0 <= float(shrinkage) <= 1.0):
        raise BadValueError("covariance shrinkage", shrinkage, fix=f"Use one of {list(SHRINKAGE)} or a "
                            "number in [0, 1].")
    check_threads(threads)
    thread_record = describe(threads) | {"frechet": [], "identifiability": []}
    have = available_corpora(cache_dir, model)
    names = list(dict.fromkeys(corpora)) if corpora else have
    for c in names:
        if c not in have:
            raise BadValueError(f"corpus (no cache for {model} in {cache_dir})", c, have)
    if len(names) < 2:
        raise CacheError(f"The domain gap needs caches of >= 2 corpora for {model!r} in {cache_dir}; "
                         f"found {have}. Fix: run `embedprobe extract --model {model} --corpus C --root "
                         f"PATH --out {cache_dir}` for another corpus.")
    paths = {c: cache_file(cache_dir, c, model) for c in names}
    with ExitStack() as stack:  # each cache is opened once, whatever the number of layers
        readers = {c: stack.enter_context(open_cache(p)) for c, p in paths.items()}
        use = _layers(readers, layers)
        frechet, ident, caches = [], {}, {}
        for layer in use:
            feats, groups = {}, {}
            for c, r in readers.items():
                data, rec = read_corpus(r, layer=layer, pooling="mean", frames=False,
                                        allow_incomplete=allow_incomplete, path=paths[c])
                feats[c], groups[c] = np.asarray(data.X, dtype=np.float64), data.speakers
                caches.setdefault(c, {k: rec[k] for k in ("path", "fingerprint", "complete", "n_clips",
                                                          "n_4class", "incomplete")}
                                  | {"n_speakers": len(set(data.speakers))})
            dim = next(iter(feats.values())).shape[1]
            with limit_threads(choose_threads(10.0 * dim**3, requested=threads)) as n:  # eigh / sqrtm of D x D
                frechet += [{"layer": layer, **row} for row in domain_gap(feats, shrinkage=shrinkage)]
            n_all = sum(len(x) for x in feats.values())
            disjoint = speaker_disjoint and all(len(set(g)) >= 2 for g in groups.values())
            with limit_threads(choose_threads(4.0 * n_all * dim * len(feats), requested=threads)) as m:
                ident[layer] = identifiability(feats, groups=groups if disjoint else None, seed=seed,
                                               probe=probe, threads=threads)
            thread_record["frechet"].append(n)
            thread_record["identifiability"].append(m)
    config = {"cache_dir": str(cache_dir), "seed": seed, "probe": probe, "shrinkage": shrinkage,
              "speaker_disjoint": speaker_disjoint, "pooling": "mean", "clips": "4-class",
              "allow_incomplete": allow_incomplete}
    record = {
        **artifact_header("embedprobe.domain", DOMAIN_FORMAT, config, started=t0),
        "model": model,
        "corpora": names,
        "layers": use,
        "caches": caches,
        "threads": thread_record,
        "frechet": frechet,
        "identifiability": ident,
    }
    if out is not None:
        folder = Path(out)
        jpath, mpath = folder / f"domain__{_name(model)}.json", folder / f"domain__{_name(model)}.md"
        atomic_write_json(jpath, record)
        atomic_write_text(mpath, markdown(record))
        record["files"] = {"json": str(jpath), "markdown": str(mpath)}
    return record

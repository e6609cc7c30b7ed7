"""Numbers the bench report shows that are not read straight from a results file.

The bench computes, the report formats: every number in ``report.html`` is in ``bench.json``.
This module holds the computations ``collect.summarize`` adds to the summary:

* ``acoustic_numbers(values)``: per condition, corpus and measure the quartiles and count of
  the per-clip acoustic values, and per condition the distances between corpora
  (Wasserstein-1 over the pooled std, Kolmogorov-Smirnov statistic);
* ``counts``: how many jobs the bench and each group have, and how many finished.

``upgrade_summary(summary, acoustics=...)`` is the one compatibility function for a
``bench.json`` written before these fields existed: it adds what is missing (the acoustic
numbers only when the per-clip values are given; without them the report says so).

Example:
    >>> nums = acoustic_numbers({"raw": {"a": {"snr": [1.0, 2.0, 3.0]}, "b": {"snr": [2.0, 3.0, 4.0]}}})
    >>> nums["quartiles"][0]["median"], nums["quartiles"][0]["n"], nums["distances"][0]["ks"]
    (2.0, 3, 0.3333333333333333)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedprobe.augment.acoustics import distribution_distances

#: The first summary format (``bench.json`` "format") with every number of the report; older
#: summaries are upgraded on read.
COMPLETE_FORMAT = 2


def acoustic_numbers(values: dict[str, dict[str, dict[str, Any]]] | None) -> dict[str, Any] | None:
    """Quartiles per (condition, corpus, measure) and distances per (condition, pair, measure).

    Args:
        values: ``{condition: {corpus: {measure: per-clip values}}}`` (``extras.load_acoustics``).

    Returns:
        ``{"measures": [...], "quartiles": [{condition, corpus, measure, q25, median, q75, n}],
        "distances": [{condition, corpus_a, corpus_b, measure, wasserstein_std, ks}]}``; None
        without values. A measure with no finite value has ``n = 0`` and ``None`` quartiles.
    """
    if not values:
        return None
    measures = list(dict.fromkeys(m for by in values.values() for ms in by.values() for m in ms))
    quartiles = []
    for cond, by_corpus in values.items():
        for corpus, ms in by_corpus.items():
            for m in measures:
                x = np.asarray(ms.get(m, []), dtype=float)
                x = x[np.isfinite(x)]
                q = np.percentile(x, [25, 50, 75]).tolist() if x.size else [None, None, None]
                quartiles.append({"condition": cond, "corpus": corpus, "measure": m, "q25": q[0],
                                  "median": q[1], "q75": q[2], "n": int(x.size)})
    distances = []
    for cond, by_corpus in values.items():
        if len(by_corpus) < 2:
            continue
        for r in distribution_distances(by_corpus):
            distances.append({"condition": cond, "corpus_a": r["corpus_a"], "corpus_b": r["corpus_b"],
                              "measure": r["measure"], "wasserstein_std": _num(r["wasserstein_std"]),
                              "ks": _num(r["ks"])})
    return {"measures": measures, "quartiles": quartiles, "distances": distances}


def job_counts(summary: dict[str, Any]) -> None:
    """Add ``n_jobs`` to the summary and ``n_jobs``/``n_finished`` to each group (in place)."""
    summary["n_jobs"] = len(summary["jobs"])
    for g in summary["groups"]:
        g["n_jobs"], g["n_finished"] = len(g["jobs"]), len(g["finished"])
    for p in summary["provenance"].values():
        for c in p["caches"].values():
            c["n_folds"] = len(c.get("folds") or [])


def upgrade_summary(summary: dict[str, Any], *,
                    acoustics: dict[str, dict[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """A summary (``bench.json``) of any format with every field the report reads.

    Fields added since the first format are computed here from what the old file holds; the
    acoustic numbers need the per-clip ``acoustics`` values (without them the section says
    that no values were found). Returns a new dict in the current format; the input is left
    as it is.
    """
    s = dict(summary)
    if s.get("format", 1) >= COMPLETE_FORMAT:
        return s
    s["groups"] = [dict(g) for g in s["groups"]]
    s["provenance"] = {k: {**p, "caches": {c: dict(v) for c, v in p["caches"].items()}}
                       for k, p in s["provenance"].items()}
    job_counts(s)
    if s.get("acoustics"):
        s["acoustics"] = {**s["acoustics"], "numbers": acoustic_numbers(acoustics)}
    s["format"] = COMPLETE_FORMAT
    return s


def _num(v: Any) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None

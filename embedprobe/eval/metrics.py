"""The classification metrics, kept importable here for existing callers.

They live in :mod:`embedprobe.common.metrics` (one layer below ``probes``, whose online
training monitors them, and below ``eval``, ``report`` and ``bench``); import them from there.
"""

from __future__ import annotations

from embedprobe.common.metrics import (
    METRICS,
    acc,
    all_metrics,
    auroc,
    auroc_batch,
    auroc_per_class,
    avprec,
    avprec_batch,
    confusion,
    confusion_batch,
    f1,
    from_confusion,
    metrics_batch,
    uacc,
    wf1,
)

__all__ = [
    "METRICS",
    "acc",
    "all_metrics",
    "auroc",
    "auroc_batch",
    "auroc_per_class",
    "avprec",
    "avprec_batch",
    "confusion",
    "confusion_batch",
    "f1",
    "from_confusion",
    "metrics_batch",
    "uacc",
    "wf1",
]

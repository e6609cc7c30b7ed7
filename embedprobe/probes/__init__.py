"""Probes: scikit-learn-compatible torch classifiers trained online on frozen embeddings.

Light to import: the estimator classes (which need scikit-learn) and torch load on first use.

Example:
    >>> from embedprobe.probes import create, PROBES
    >>> sorted(PROBES)
    ['linear', 'logreg', 'mlp', 'svm']
"""

from __future__ import annotations

from typing import Any

from embedprobe.probes.registry import PROBES, create, get_class, register

_LAZY = {
    "LinearProbe": "embedprobe.probes.linear",
    "MLPProbe": "embedprobe.probes.mlp",
    "TorchProbe": "embedprobe.probes.base",
    "fit_together": "embedprobe.probes.base",
    "FrameSet": "embedprobe.probes.features",
    "POSTER_AUGMENT": "embedprobe.probes.augment",
    "tune": "embedprobe.probes.tuning",
    "TuneResult": "embedprobe.probes.tuning",
}

__all__ = ["PROBES", "create", "get_class", "register", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embedprobe.probes' has no attribute {name!r}")

"""The one probe registry: name -> estimator class, filled by the probe modules themselves.

A probe module registers its class at the end (``register("mlp", MLPProbe, "one line")``);
the registry imports every module of :mod:`embedprobe.probes` on its first lookup, so a new
probe is one new file. Discovery skips the training machinery (:data:`NOT_PLUGINS`: modules
that import torch at module level and register nothing), so ``embedprobe list probes`` and
``--probe`` checks import scikit-learn (the probe base class) but never torch.
``create("mlp", random_state=0)`` builds an unfitted estimator.

Example:
    >>> sorted(PROBES.names())  # registration order follows import order
    ['linear', 'logreg', 'mlp', 'svm']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embedprobe.registry import Registry, Row

NOT_PLUGINS = ("batches", "nets", "stacked", "training", "tuning")
"""Modules of :mod:`embedprobe.probes` that discovery does not import (torch at module level, no probes)."""


@dataclass(frozen=True)
class ProbeEntry:
    """A registered probe: its name, estimator class and a one-line summary."""

    name: str
    cls: type
    summary: str

    @property
    def target(self) -> str:
        """The class's import path, ``"package.module:Class"``."""
        return f"{self.cls.__module__}:{self.cls.__qualname__}"

    def load(self) -> type:
        return self.cls


def describe_probe(name: str, entry: ProbeEntry) -> Row:
    """One ``embedprobe list probes`` row."""
    return {"name": name, "class": entry.target, "about": entry.summary}


PROBES: Registry[ProbeEntry] = Registry(
    "probe", package="embedprobe.probes", skip=NOT_PLUGINS, describe=describe_probe,
    about="emotion probes trained on frozen embeddings (--probe NAME)")


def register(name: str, cls: type, summary: str = "") -> ProbeEntry:
    """Register the estimator class ``cls`` as probe ``name`` (summary: its docstring's first line).

    ``cls`` follows the scikit-learn estimator contract (``fit`` returns self, ``predict_proba``
    columns follow ``classes_``, ``random_state``) and accepts the options the matrix runner
    passes (``n_threads``, ``X_val``/``y_val`` in ``fit``, ``history_``; see ``TorchProbe``).
    """
    if not summary:
        lines = (cls.__doc__ or "").strip().splitlines()
        summary = lines[0] if lines else ""
    entry = ProbeEntry(name, cls, summary)
    PROBES.add(name, entry)
    return entry


def get_class(name: str) -> type:
    """The estimator class registered as ``name`` (unknown names list the valid ones)."""
    return PROBES.get(name).cls


def create(name: str, **params: Any) -> Any:
    """An unfitted probe ``name`` with ``params`` (e.g. ``random_state=0``)."""
    return get_class(name)(**params)

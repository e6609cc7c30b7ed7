"""The one probe registry: name -> estimator class, imported on first use.

Entries are import paths so ``embedprobe list probes`` and ``--probe`` choices never import
scikit-learn or torch. ``create("mlp", random_state=0)`` builds an unfitted estimator.

Example:
    >>> PROBES.names()
    ['linear', 'mlp']
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from embedprobe.registry import Registry


@dataclass(frozen=True)
class ProbeEntry:
    """A registered probe: its name, ``"module:Class"`` import path and a one-line summary."""

    name: str
    target: str
    summary: str

    def load(self) -> type:
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)


PROBES: Registry[ProbeEntry] = Registry("probe")


def register(name: str, target: str, summary: str) -> ProbeEntry:
    """Register a probe class by import path (``"package.module:Class"``)."""
    entry = ProbeEntry(name, target, summary)
    PROBES.add(name, entry)
    return entry


def get_class(name: str) -> type:
    """The estimator class registered as ``name`` (unknown names list the valid ones)."""
    return PROBES.get(name).load()


def create(name: str, **params: Any) -> Any:
    """An unfitted probe ``name`` with ``params`` (e.g. ``random_state=0``)."""
    return get_class(name)(**params)


register("linear", "embedprobe.probes.linear:LinearProbe",
         "linear classifier on standardised pooled embeddings")
register("mlp", "embedprobe.probes.mlp:MLPProbe",
         "MLP 128x256 (ReLU, dropout) on standardised pooled embeddings")

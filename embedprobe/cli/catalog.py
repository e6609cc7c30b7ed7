"""Rows for ``embedprobe list KIND``: every registry in :data:`embedprobe.registry.REGISTRIES`.

Each registry describes its own items (``Registry.rows()``, through the ``describe`` function
its package gives it), so a new kind needs no edit here: importing the packages below creates
their registries, and every registry they create is a KIND.
"""

from __future__ import annotations

# Importing these packages creates their registries (extractors, prefixes, corpora, probes,
# augmentations, domain-probes); their plugins are discovered on the first lookup.
from embedprobe import augment, corpora, extractors, probes  # noqa: F401
from embedprobe.errors import BadValueError
from embedprobe.eval import domain_probes  # noqa: F401
from embedprobe.registry import REGISTRIES, Row


def kinds() -> list[Row]:
    """One row per listable kind: ``embedprobe list`` without a KIND."""
    return [{"name": plural, "kind": reg.kind, "about": reg.about} for plural, reg in REGISTRIES.items()]


def rows(kind: str | None = None) -> list[Row]:
    """The rows of ``embedprobe list KIND`` (no KIND: the kinds)."""
    if kind is None:
        return kinds()
    if kind not in REGISTRIES:
        raise BadValueError("kind", kind, list(REGISTRIES), fix="Run 'embedprobe list' to see them.")
    return REGISTRIES[kind].rows()

"""The one extractor registry: name -> (spec, class). It drives ``--model``, ``list`` and the contract tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedprobe.extractors.base import Extractor, ExtractorSpec
from embedprobe.registry import Registry


@dataclass(frozen=True)
class ExtractorEntry:
    spec: ExtractorSpec
    cls: type[Extractor]


EXTRACTORS: Registry[ExtractorEntry] = Registry("extractor")


def register(spec: ExtractorSpec, cls: type[Extractor]) -> ExtractorSpec:
    """Register one variant. Family modules call this once per spec at import time."""
    EXTRACTORS.add(spec.name, ExtractorEntry(spec, cls))
    return spec


# Prefixed names ("hf:<model-id>") build their entry on demand from the model's own config.
PrefixFactory = Callable[[str, "Path | None"], ExtractorEntry]
_PREFIXES: dict[str, PrefixFactory] = {}


def register_prefix(prefix: str, factory: PrefixFactory) -> None:
    """Let names ``"<prefix>:<rest>"`` resolve through ``factory(rest, weights) -> ExtractorEntry``."""
    if prefix in _PREFIXES:
        raise ValueError(f"extractor prefix {prefix!r} is registered twice")
    _PREFIXES[prefix] = factory


def prefixes() -> list[str]:
    """The registered name prefixes, e.g. ``["hf"]`` (``embedprobe list`` shows them as ``hf:<id>``)."""
    return sorted(_PREFIXES)


def get_entry(name: str, *, weights: str | Path | None = None) -> ExtractorEntry:
    """The entry of a registered name, or of a prefixed name such as ``"hf:microsoft/wavlm-large"``."""
    head, sep, rest = name.partition(":")
    if sep and head in _PREFIXES and name not in EXTRACTORS:
        return _PREFIXES[head](rest, Path(weights) if weights is not None else None)
    return EXTRACTORS.get(name)


def get_spec(name: str, *, weights: str | Path | None = None) -> ExtractorSpec:
    return get_entry(name, weights=weights).spec


def create(
    name: str, *, device: str = "cpu", weights: str | Path | None = None, trust_pickle: bool = False,
    **options: Any,
) -> Extractor:
    """Build (but do not load) the extractor registered as ``name`` (or a prefixed ``hf:<id>``).

    ``trust_pickle`` lets its weights load with the full unpickler when they pickle data classes
    beyond the safe allow-list (``--trust-pickle``; see ``safeload``). ``options`` are
    family-specific keyword arguments (e.g. ``precision="fp32"`` for the transformers
    families); a family that takes none rejects them with a ``TypeError``.
    """
    entry = get_entry(name, weights=weights)
    ext = entry.cls(entry.spec, device=device, weights=weights, **options)
    if trust_pickle:
        ext.trust_pickle = True
    return ext

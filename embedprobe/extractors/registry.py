"""The extractor registries: name -> (spec, class), and name prefix -> factory.

They drive ``--model``, ``embedprobe list extractors|prefixes`` and the contract tests. Both
discover the modules of :mod:`embedprobe.extractors` on first lookup, so a family module
registers itself (``register(spec, cls)``, ``register_prefix("hf", factory, summary)``) and
a new family is one new file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedprobe.common.extras import installed, pip_hint
from embedprobe.extractors.base import Extractor, ExtractorSpec
from embedprobe.registry import Registry, Row


@dataclass(frozen=True)
class ExtractorEntry:
    spec: ExtractorSpec
    cls: type[Extractor]


def _layers(names: tuple[str, ...]) -> str:
    if len(names) <= 3:
        return ",".join(names)
    return f"{names[0]}..{names[-1]} ({len(names)})"


def describe_extractor(name: str, entry: ExtractorEntry) -> Row:
    """One ``embedprobe list extractors`` row; ``weights`` says present / missing / none needed."""
    spec = entry.spec
    try:
        present = entry.cls(spec, device="cpu").weights_present()
    except Exception:  # noqa: BLE001 - listing must not fail on one plugin
        present = False
    return {
        "name": spec.name,
        "dim": spec.dim if not spec.param("layer_dims") else
        f"{spec.dim} ({', '.join(f'{k}: {v}' for k, v in spec.param('layer_dims'))})",
        "rate": spec.sample_rate,
        "hop_s": "clip" if spec.hop_s is None else f"{spec.hop_s:g}",
        "layers": _layers(spec.layers),
        "licence": spec.licence,
        "weights": "none needed" if present is None else ("present" if present else "missing"),
        "extra": spec.extra or "-",
        "installed": "yes" if installed(spec.extra) else pip_hint(spec.extra),
    }


EXTRACTORS: Registry[ExtractorEntry] = Registry(
    "extractor", package="embedprobe.extractors", describe=describe_extractor,
    about="frozen audio embedding models (--model NAME)")


def register(spec: ExtractorSpec, cls: type[Extractor]) -> ExtractorSpec:
    """Register one variant. Family modules call this once per spec at import time."""
    EXTRACTORS.add(spec.name, ExtractorEntry(spec, cls))
    return spec


# Prefixed names ("hf:<model-id>") build their entry on demand from the model's own config.
PrefixFactory = Callable[[str, "Path | None"], ExtractorEntry]


@dataclass(frozen=True)
class PrefixEntry:
    """A name prefix: ``"<prefix>:<rest>"`` resolves through ``factory(rest, weights)``."""

    prefix: str
    factory: PrefixFactory
    summary: str = ""
    placeholder: str = "id"  # what follows the colon, for ``embedprobe list prefixes``


def describe_prefix(name: str, entry: PrefixEntry) -> Row:
    """One ``embedprobe list prefixes`` row: the name pattern and what it builds."""
    return {"name": f"{name}:<{entry.placeholder}>", "about": entry.summary}


PREFIXES: Registry[PrefixEntry] = Registry(
    "extractor prefix", "prefixes", package="embedprobe.extractors", describe=describe_prefix,
    about="extractor name prefixes: --model PREFIX:ID builds an extractor on demand")


def register_prefix(prefix: str, factory: PrefixFactory, summary: str = "", *, placeholder: str = "id") -> PrefixEntry:
    """Let names ``"<prefix>:<rest>"`` resolve through ``factory(rest, weights) -> ExtractorEntry``."""
    entry = PrefixEntry(prefix, factory, summary, placeholder)
    PREFIXES.add(prefix, entry)
    return entry


def prefixes() -> list[str]:
    """The registered name prefixes, e.g. ``["hf"]`` (``embedprobe list prefixes`` shows them as ``hf:<id>``)."""
    return sorted(PREFIXES.names())


def get_entry(name: str, *, weights: str | Path | None = None) -> ExtractorEntry:
    """The entry of a registered name, or of a prefixed name such as ``"hf:microsoft/wavlm-large"``."""
    head, sep, rest = name.partition(":")
    if sep and head in PREFIXES and name not in EXTRACTORS:
        return PREFIXES.get(head).factory(rest, Path(weights) if weights is not None else None)
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

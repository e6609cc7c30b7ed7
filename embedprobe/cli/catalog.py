"""Rows for ``embedprobe list``: what each registered extractor, corpus, probe and augmentation is."""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

EXTRA_MODULES = {  # extra -> a module whose presence means the extra is installed
    "egemaps": "opensmile",
    "ge2e": "resemblyzer",
    "hf": "transformers",
    "cdpam": "cdpam",
    "acoustics": "speechmos",
    "augment": "pedalboard",
}


def _layers(names: tuple[str, ...]) -> str:
    if len(names) <= 3:
        return ",".join(names)
    return f"{names[0]}..{names[-1]} ({len(names)})"


def _installed(extra: str | None) -> bool:
    if not extra:
        return True
    mod = EXTRA_MODULES.get(extra, extra)
    return importlib.util.find_spec(mod) is not None


def list_extractors() -> list[dict[str, Any]]:
    """One row per registered extractor; ``weights`` says present / missing / none."""
    from embedprobe.extractors import EXTRACTORS, create

    rows = []
    for name in EXTRACTORS:
        spec = EXTRACTORS.get(name).spec
        try:
            present = create(name).weights_present()
        except Exception:  # noqa: BLE001 - listing must not fail on one plugin
            present = False
        weights = "none needed" if present is None else ("present" if present else "missing")
        rows.append({
            "name": spec.name,
            "dim": spec.dim,
            "rate": spec.sample_rate,
            "hop_s": "clip" if spec.hop_s is None else f"{spec.hop_s:g}",
            "layers": _layers(spec.layers),
            "licence": spec.licence,
            "weights": weights,
            "extra": spec.extra or "-",
            "installed": "yes" if _installed(spec.extra) else f"pip install 'embedprobe[{spec.extra}]'",
        })
    return rows


def list_corpora() -> list[dict[str, Any]]:
    """One row per registered corpus reader."""
    from embedprobe.corpora import CORPORA

    rows = []
    for name in CORPORA:
        cls = CORPORA.get(name)
        module = inspect.getmodule(cls)
        doc = (module.__doc__ or cls.__doc__ or "").strip().splitlines()
        rows.append({
            "name": name,
            "default_protocol": getattr(cls, "default_protocol", ""),
            "about": doc[0] if doc else "",
        })
    return rows


def list_probes() -> list[dict[str, Any]]:
    """One row per registered probe (``--probe`` choices), read without importing torch."""
    from embedprobe.probes.registry import PROBES

    return [{"name": name, "class": entry.target, "about": entry.summary} for name, entry in PROBES.items()]


def list_augmentations() -> list[dict[str, Any]]:
    """One row per registered augmentation (``--augment`` choices): single ones and chains."""
    from embedprobe.augment import AUGMENTATIONS

    rows = []
    for name, spec in AUGMENTATIONS.items():
        doc = (type(spec).__doc__ or "").strip().splitlines()
        steps = getattr(spec, "steps", None)
        about = ("chain: " + ", ".join(s.spec.kind for s in steps)) if steps else (doc[0] if doc else "")
        rows.append({"name": name, "kind": spec.kind or type(spec).__name__, "about": about})
    return rows


#: ``embedprobe list KIND`` -> the function giving its rows (every registry a hint names).
LISTINGS = {
    "extractors": list_extractors,
    "corpora": list_corpora,
    "probes": list_probes,
    "augmentations": list_augmentations,
}

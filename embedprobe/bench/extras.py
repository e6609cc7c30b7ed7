"""Optional bench sections: acoustic conditions per corpus and the domain gap per model.

Both call the pipeline directly (``embedprobe.pipeline.acoustics.profile``,
``embedprobe.pipeline.domain.domain_gap_for``). Each task writes a marker JSON with a fingerprint
of its inputs, so a re-run skips sections already made.

Acoustics: ``pipeline.acoustics.profile`` writes per-clip values into ``<out>/acoustics/<key>/``
(``acoustics__<reader>.csv``, and ``acoustics__<reader>__aug-<name>-s<seed>.csv`` when
``[acoustics] options`` name an ``augment``); the report reads them per corpus key, plots them
with ``augment.plots.plot_distributions`` (the paper's Figure 4: a raw row and one row per
augmentation) and tabulates distances between corpora with
``augment.acoustics.distribution_distances``.

Domain gap: ``pipeline.domain.domain_gap_for(model, cache_dir, layers=..., corpora=...)``
(Fréchet distances per corpus pair and layer, corpus identifiability) for the grid's layers,
written to ``<out>/domain/`` (its own JSON and Markdown) and kept in ``<out>/domain/<model>.json``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.augment.acoustics import MEASURES
from embedprobe.bench.spec import BenchConfig
from embedprobe.cache.naming import safe_model
from embedprobe.errors import BadValueError
from embedprobe.pipeline.acoustics import load_profile, profile
from embedprobe.pipeline.domain import domain_gap_for
from embedprobe.provenance import atomic_write_json, fingerprint, to_jsonable

#: The function behind each section, and the parameters the bench sets itself.
SECTION_CALLS = {
    "acoustics": (profile, ("corpus", "root", "out_dir", "max_clips", "subset_seed", "progress",
                            "corpus_options")),
    "domain": (domain_gap_for, ("model", "cache_dir", "layers", "corpora", "out", "seed")),
}


def acoustics_task(cfg: BenchConfig, key: str, root: Path) -> dict[str, Any]:
    c = cfg.corpus(key)
    spec = {"reader": c.reader, "root": str(Path(root).resolve()), "options": to_jsonable(c.options),
            "max_clips": cfg.acoustics.max_clips, "seed": cfg.acoustics.seed,
            "extra": to_jsonable(cfg.acoustics.options)}
    folder = Path(cfg.out).resolve() / "acoustics" / key
    return {"kind": "acoustics", "key": key, "spec": spec, "fingerprint": fingerprint(spec),
            "out_dir": str(folder), "marker": str(folder / "profile.json")}


def domain_task(cfg: BenchConfig, model: str, keys: list[str], cache_fps: dict[str, str],
                layers: list[str] | None) -> dict[str, Any]:
    spec = {"model": model, "corpora": keys, "layers": layers, "caches": cache_fps,
            "seed": cfg.domain.seed, "extra": to_jsonable(cfg.domain.options)}
    folder = Path(cfg.out).resolve() / "domain"
    safe = safe_model(model)
    return {"kind": "domain", "key": model, "spec": spec, "fingerprint": fingerprint(spec),
            "cache_dir": str(Path(cfg.extract.cache_dir).resolve()), "out_dir": str(folder / safe),
            "marker": str(folder / f"{safe}.json")}


def is_current(task: dict[str, Any]) -> bool:
    """The section's output exists and was made from the same inputs."""
    try:
        return json.loads(Path(task["marker"]).read_text()).get("fingerprint") == task["fingerprint"]
    except (OSError, ValueError):
        return False


def run_acoustics(task: dict[str, Any]) -> dict[str, Any]:
    """Profile one corpus's acoustic conditions, raw and (if asked) augmented (a worker task)."""
    s = task["spec"]
    out = Path(task["out_dir"])
    opts = dict(s["extra"])
    kw = dict(corpus=s["reader"], root=s["root"], out_dir=str(out), max_clips=s["max_clips"],
              subset_seed=s["seed"], progress=False, corpus_options=s["options"])
    paths = [profile(**kw, **{k: v for k, v in opts.items() if k not in ("augment", "copies", "seed")})]
    if opts.get("augment"):
        paths.append(profile(**kw, **opts))
    _write_marker(task, {"result": {"profiles": [str(p) for p in paths]},
                         "files": sorted(p.name for p in out.glob("*"))})
    return {"path": task["marker"]}


def run_domain(task: dict[str, Any]) -> dict[str, Any]:
    """Domain-gap figures of one model's caches (a worker task)."""
    s = task["spec"]
    result = domain_gap_for(s["model"], task["cache_dir"], layers=s["layers"], corpora=s["corpora"],
                                out=task["out_dir"], seed=s["seed"], **s["extra"])
    _write_marker(task, {"result": result})  # made JSON-safe by atomic_write_json
    return {"path": task["marker"]}


def check_options(kind: str, options: dict[str, Any]) -> None:
    """Refuse ``[acoustics|domain] options`` the section's function does not take."""
    if not options:
        return
    fn, own = SECTION_CALLS[kind]
    allowed = [n for n in inspect.signature(fn).parameters if n not in own]
    for k in options:
        if k not in allowed:
            raise BadValueError(f"key in [{kind}] options", k, allowed,
                                fix=f"These are the parameters of {fn.__module__}.{fn.__name__}.")


def _write_marker(task: dict[str, Any], body: dict[str, Any]) -> None:
    atomic_write_json(task["marker"], {"fingerprint": task["fingerprint"], "spec": task["spec"], **body})


# ------------------------------------------------------------------------------- for the report
def load_acoustics(out: Path, keys: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{condition: {corpus key: {measure: per-clip values}}}`` from the profiles of a bench.

    ``raw`` holds each corpus's raw profile; each augmentation found adds a row
    ``augm. (<name>)`` with the augmented profile of each corpus that has one and the raw
    profile of the others (as the paper's Figure 4 does).
    """
    raw: dict[str, dict[str, Any]] = {}
    aug: dict[str, dict[str, dict[str, Any]]] = {}
    for key in keys:
        for path in sorted((out / "acoustics" / key).glob("acoustics__*.csv")):
            cols = load_profile(path)
            values = {m: cols[m] for m in MEASURES if m in cols and np.isfinite(cols[m]).any()}
            if not values:  # a profile whose run failed before measuring anything
                continue
            parts = path.stem.split("__")
            if len(parts) > 2 and parts[2].startswith("aug-"):
                aug.setdefault(parts[2][4:], {})[key] = values
            else:
                raw[key] = values
    conditions: dict[str, dict[str, dict[str, Any]]] = {"raw": raw} if raw else {}
    for name, by in aug.items():
        conditions[f"augm. ({name})"] = {k: by.get(k, raw.get(k)) for k in keys if k in by or k in raw}
    return conditions


def load_marker(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None

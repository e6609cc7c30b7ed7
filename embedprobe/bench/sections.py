"""Checking each table of a bench TOML (``[corpora]``, ``[extract]``, ``[grid]``, ``[probe]``,
``[acoustics]``/``[domain]``, ``[report]``) into its spec dataclass; errors name the bad key.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from embedprobe.bench.checks import Checker, ConfigError
from embedprobe.bench.extras import check_options
from embedprobe.bench.spec import (
    STATISTICS,
    CorpusSpec,
    EngineSpec,
    ExtractSpec,
    ExtraSpec,
    GridSpec,
    ProbeSpec,
    ReportSpec,
)
from embedprobe.common.checks import name_for_path
from embedprobe.common.metrics import METRICS
from embedprobe.common.raycluster import ENGINES
from embedprobe.corpora import CORPORA
from embedprobe.corpora.splits import LOSO
from embedprobe.corpora.synthetic import DEFAULTS
from embedprobe.errors import BadValueError
from embedprobe.eval.confidence import AGGREGATES
from embedprobe.extractors import EXTRACTORS
from embedprobe.pipeline.extract_config import ExtractConfig, check_config
from embedprobe.probes import PROBES
from embedprobe.probes.registry import get_class

#: ExtractConfig fields the bench sets itself (per corpus / model), so ``[extract]`` may not.
_AUGMENT_KEYS = ("augment", "copies", "augment_seed")
_EXTRACT_OWN = ("model", "corpus", "root", "out", "corpus_options", "weights", "overwrite",
                "shard", "n_shards", "tag",
                # the bench's own engine ([bench] engine, [ray]) runs each extraction as one task
                "engine", "address", "ray_workers", "gpus_per_worker", "cpus_per_worker")
_SYNTH_KEYS = ("n_speakers", "clips_per_class", "extra_per_speaker", "seed", "sample_rate",
               "duration_s", "channel")


def _path_safe(name: str) -> bool:
    try:
        name_for_path("name", name)
    except BadValueError:
        return False
    return True


def corpora_section(chk: Checker, table: dict[str, Any]) -> tuple[CorpusSpec, ...]:
    if not table:
        raise ConfigError(chk.source, "[corpora]", {}, fix="Add at least one [corpora.NAME] table "
                          "with root = PATH (or synthetic = LAYOUT).")
    out = []
    for key, spec in table.items():
        sec = f"corpora.{key}"
        if "+" in key or "," in key or key == "all":
            raise ConfigError(chk.source, "corpus name", key, fix="Corpus names may not contain "
                                "'+' or ',' (they join training sets) nor be 'all'.")
        if not _path_safe(key):  # it names folders and cache files under the bench's out folder
            raise ConfigError(chk.source, "corpus name", key, fix="It becomes a folder and file name: use "
                              "letters, digits and '.', '_', '-' only, starting with a letter or digit, "
                              "no '..' (e.g. synth-iemocap).")
        if not isinstance(spec, dict):
            raise ConfigError(chk.where(sec), "table", spec, fix=f"Write it as a table: [{sec}] root = PATH.")
        chk.keys(spec, ("root", "reader", "synthetic", "options", "protocol", *_SYNTH_KEYS), sec)
        synthetic = chk.str_(spec, sec, "synthetic", None)
        root = chk.str_(spec, sec, "root", None)
        if synthetic is not None:
            chk.choice(synthetic, sorted(DEFAULTS), sec, "synthetic")
            if root is not None:
                raise ConfigError(chk.where(sec), "key", "root", fix="Give either root (a real "
                                    "corpus) or synthetic (written into the bench's out folder), not both.")
        elif root is None:
            raise ConfigError(chk.where(sec), "table", spec, fix="Add root = PATH (the corpus folder) "
                                f"or synthetic = one of {sorted(DEFAULTS)}.")
        else:
            bad = [k for k in _SYNTH_KEYS if k in spec]
            if bad:
                raise ConfigError(chk.where(sec), "key", bad[0],
                                    fix="Synthetic-corpus keys need synthetic = LAYOUT.")
        default_reader = synthetic or key
        reader = chk.str_(spec, sec, "reader", default_reader if default_reader in CORPORA else None)
        if reader is None:
            raise ConfigError(chk.where(sec), "reader", None, CORPORA.names(),
                                fix=f"{key!r} is not a corpus reader name: add reader = NAME.")
        chk.choice(reader, CORPORA.names(), sec, "reader")
        synth = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items() if k in _SYNTH_KEYS}
        out.append(CorpusSpec(key=key, reader=reader, root=root, synthetic=synthetic, synth=synth,
                              options=chk.dict_(spec, sec, "options"), protocol=_protocol(chk, spec, sec)))
    return tuple(out)


def _protocol(chk: Checker, spec: dict[str, Any], sec: str) -> str | None:
    """``protocol`` of a corpus: a protocol name (whether the reader offers it is checked against
    the cache's manifest when the bench runs: ``bench.caches.cache_info``)."""
    proto = chk.str_(spec, sec, "protocol", None)
    if proto is not None and not _path_safe(proto):
        raise ConfigError(chk.where(sec), "protocol", proto, fix=f"Name a split protocol of the reader, e.g. "
                          f"protocol = \"{LOSO}\" (leave one speaker out) or its default (`embedprobe info CACHE` "
                          "lists them); leave the key out for the default.")
    return proto


def _check_extract_params(chk: Checker, model: str, cache_dir: str, params: dict[str, Any],
                          augmented: dict[str, Any]) -> None:
    """The [extract] values as ``embedprobe extract`` checks them, when the config is read."""
    for extra in ({}, dict(augmented) if augmented else None):
        if extra is None:
            continue
        try:
            check_config(ExtractConfig(model=model, corpus="-", root="", out=cache_dir, **params, **extra))
        except BadValueError as e:
            raise ConfigError(chk.where("extract"), "value", e.value, fix=str(e)) from None
        except TypeError:
            raise ConfigError(chk.where("extract"), "values", {**params, **extra},
                              fix="A value has the wrong type: counts and seconds are numbers.") from None


def extract_section(chk: Checker, t: dict[str, Any], out: str) -> ExtractSpec:
    own = {f.name for f in fields(ExtractConfig)} - set(_EXTRACT_OWN) - set(_AUGMENT_KEYS)
    for k in _AUGMENT_KEYS:
        if k in t:
            raise ConfigError(chk.where("extract"), "key", k, fix="Augmented caches are made next to the "
                              "clean ones: put augment, copies and augment_seed in [extract.augmented].")
    chk.keys(t, ("models", "cache_dir", "weights", "augmented", *sorted(own)), "extract")
    models = chk.str_list(t, "extract", "models", ())
    if not models:
        raise ConfigError(chk.where("extract"), "models", [], EXTRACTORS.names(),
                          fix="Name at least one extractor in the config or with --model NAME.")
    for m in models:
        chk.choice(m, EXTRACTORS.names(), "extract", "models")
    params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in t.items() if k in own}
    weights = chk.dict_(t, "extract", "weights")
    for m in weights:
        chk.choice(m, models, "extract.weights", "model")
    augmented = chk.dict_(t, "extract", "augmented")
    chk.keys(augmented, _AUGMENT_KEYS, "extract.augmented")
    if augmented and not isinstance(augmented.get("augment"), str):
        raise ConfigError(chk.where("extract.augmented"), "augment", augmented.get("augment"),
                          fix="Name the augmentation, e.g. augment = \"paper\" (the paper's seven augmentations).")
    cache_dir = chk.str_(t, "extract", "cache_dir", None) or str(Path(out) / "cache")
    _check_extract_params(chk, models[0], cache_dir, params, augmented)
    return ExtractSpec(models=tuple(models), cache_dir=cache_dir, params=params, weights=weights,
                       augmented=augmented)


def grid_section(chk: Checker, t: dict[str, Any], keys: list[str]) -> GridSpec:
    chk.keys(t, ("train", "test", "layers", "probes", "seeds", "augment_rates", "scramble",
                 "scramble_train"), "grid")
    train = _train_sets(chk, chk.str_list(t, "grid", "train", ()), keys, "grid", "train")
    if not train:
        raise ConfigError(chk.where("grid"), "train", [], keys, fix="List training sets: a corpus "
                            "or a '+'-joined union, e.g. train = [\"emodb\", \"emodb+synth-iemocap\"].")
    test = chk.str_list(t, "grid", "test", ("all",))
    test = tuple(keys) if "all" in test else tuple(dict.fromkeys(test))
    for c in test:
        chk.choice(c, keys, "grid", "test")
    probes = chk.str_list(t, "grid", "probes", ("linear",))
    for p in probes:
        chk.choice(p, PROBES.names(), "grid", "probes")
    seeds_raw = t.get("seeds", 1)
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool) and seeds_raw >= 1:
        seeds = tuple(range(seeds_raw))
    elif isinstance(seeds_raw, list) and seeds_raw and all(isinstance(s, int) for s in seeds_raw):
        seeds = tuple(dict.fromkeys(seeds_raw))
    else:
        raise ConfigError(chk.where("grid"), "seeds", seeds_raw,
                            fix="Give a count (seeds = 2 means seeds 0 and 1) or a list of integers.")
    rates = t.get("augment_rates", [0.0])
    if not isinstance(rates, list) or not rates or not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and 0 <= r <= 1 for r in rates):
        raise ConfigError(chk.where("grid"), "augment_rates", rates,
                            fix="Give shares of augmented training clips in [0, 1], e.g. [0, 0.2, 0.5].")
    scramble_raw = t.get("scramble", [[]])
    if not isinstance(scramble_raw, list) or not scramble_raw or not all(
            isinstance(s, list) and all(isinstance(c, str) for c in s) for s in scramble_raw):
        raise ConfigError(chk.where("grid"), "scramble", scramble_raw,
                            fix="Give a list of corpus lists, e.g. scramble = [[], [\"iemocap\"]] "
                                "([] = no scrambling).")
    scramble = tuple(dict.fromkeys(tuple(sorted(set(s))) for s in scramble_raw))
    for s in scramble:
        for c in s:
            chk.choice(c, keys, "grid", "scramble")
    st_raw = chk.dict_(t, "grid", "scramble_train")
    names = {"+".join(s): s for s in scramble if s}
    scramble_train = {}
    for k, v in st_raw.items():
        chk.choice(k, list(names), "grid.scramble_train", "scrambled set (key)")
        if not isinstance(v, list):
            raise ConfigError(chk.where("grid.scramble_train"), k, v, fix="Give a list of training sets.")
        scramble_train[names[k]] = _train_sets(chk, v, keys, "grid.scramble_train", k)
    return GridSpec(train=train, test=test, layers=chk.str_list(t, "grid", "layers", ("default",)),
                    probes=probes, seeds=seeds,
                    augment_rates=tuple(sorted({round(float(r), 6) for r in rates})),
                    scramble=scramble, scramble_train=scramble_train)


def _train_sets(chk: Checker, items: Any, keys: list[str], sec: str, key: str) -> tuple[tuple[str, ...], ...]:
    out: list[tuple[str, ...]] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(chk.where(sec), key, item, fix="Training sets are strings.")
        parts = tuple(p.strip() for p in item.replace(",", "+").split("+") if p.strip())
        for c in parts:
            chk.choice(c, keys, sec, key)
        if parts and parts not in out:
            out.append(parts)
    return tuple(out)


def probe_section(chk: Checker, t: dict[str, Any], probes: tuple[str, ...]) -> ProbeSpec:
    chk.keys(t, ("pooling", "frames", "max_folds", "n_bootstrap", "tune", "params", "allow_incomplete",
                 "aggregate", "allow_degenerate", *PROBES.names()), "probe")
    pooling = chk.str_(t, "probe", "pooling", "mean")
    chk.choice(pooling, ("mean", "meanstd"), "probe", "pooling")
    max_folds = t.get("max_folds")
    if max_folds is not None:
        max_folds = chk.int_(t, "probe", "max_folds", None, low=1)
    params = chk.dict_(t, "probe", "params")
    per_probe = {p: chk.dict_(t, "probe", p) for p in PROBES.names() if p in t}
    for name in set(probes) | set(per_probe):
        allowed = sorted(set(get_class(name)().get_params()) - {"random_state"})
        for k in {**params, **per_probe.get(name, {})}:
            if k not in allowed:
                where = f"probe.{name}" if k in per_probe.get(name, {}) else "probe.params"
                chk.bad_key(k, allowed, where, extra=" (random_state comes from [grid] seeds)"
                            if k == "random_state" else "")
    aggregate = chk.str_(t, "probe", "aggregate", ProbeSpec.aggregate)
    chk.choice(aggregate, AGGREGATES, "probe", "aggregate")
    return ProbeSpec(pooling=pooling, frames=chk.bool_(t, "probe", "frames", False), max_folds=max_folds,
                     n_bootstrap=chk.int_(t, "probe", "n_bootstrap", 1000, low=0),
                     tune=chk.bool_(t, "probe", "tune", False), params=params, per_probe=per_probe,
                     allow_incomplete=chk.bool_(t, "probe", "allow_incomplete", False), aggregate=aggregate,
                     allow_degenerate=chk.bool_(t, "probe", "allow_degenerate", False))


def extra_section(chk: Checker, t: dict[str, Any], sec: str) -> ExtraSpec:
    chk.keys(t, ("enabled", "max_clips", "seed", "options") if sec == "acoustics"
             else ("enabled", "seed", "options"), sec)
    max_clips = t.get("max_clips")
    if max_clips is not None:
        max_clips = chk.int_(t, sec, "max_clips", None, low=1)
    spec = ExtraSpec(enabled=chk.bool_(t, sec, "enabled", bool(t)), max_clips=max_clips,
                     seed=chk.int_(t, sec, "seed", 0), options=chk.dict_(t, sec, "options"))
    if spec.enabled:
        check_options(sec, spec.options)
    return spec


def report_section(chk: Checker, t: dict[str, Any]) -> ReportSpec:
    chk.keys(t, ("metric", "statistic"), "report")
    metric = chk.str_(t, "report", "metric", "wf1")
    chk.choice(metric, METRICS, "report", "metric")
    statistic = chk.str_(t, "report", "statistic", "mean")
    chk.choice(statistic, STATISTICS, "report", "statistic")
    return ReportSpec(metric=metric, statistic=statistic)


def engine_section(chk: Checker, bench: dict[str, Any], t: dict[str, Any]) -> EngineSpec:
    """``[bench] engine`` and the ``[ray]`` table (address, cpus_per_task, gpus_per_extract)."""
    engine = chk.str_(bench, "bench", "engine", "local")
    chk.choice(engine, ENGINES, "bench", "engine")
    chk.keys(t, ("address", "cpus_per_task", "gpus_per_extract"), "ray")
    address = chk.str_(t, "ray", "address", None)
    gpus = t.get("gpus_per_extract")
    if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int | float) or gpus < 0):
        raise ConfigError(chk.where("ray"), "gpus_per_extract", gpus,
                          fix="Give a number of GPUs >= 0 (0.5: two extractions share a GPU).")
    return EngineSpec(engine=engine, address=address or None, cpus_per_task=chk.int_(t, "ray", "cpus_per_task", 1, low=1),
                      gpus_per_extract=None if gpus is None else float(gpus))

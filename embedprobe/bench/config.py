"""Bench configuration: a TOML file -> frozen dataclasses, with errors that name the bad key.

Every table and key is checked: an unknown key, a wrong type or a bad value raises
``BadValueError`` naming the file, the table, the key or value and the allowed ones. Relative
paths are relative to the folder the command runs in (the shipped configs expect the repository
root). ``load_config(path, overrides=["grid.seeds=3"], models=["wavlm-large"])`` applies
command-line overrides before checking.

Example:
    >>> cfg = parse_config({"corpora": {"emodb": {"root": "data/emodb"}},
    ...                     "grid": {"train": ["emodb"]}, "extract": {"models": ["logmel-128"]}})
    >>> cfg.grid.train, cfg.grid.seeds, cfg.corpus("emodb").reader
    ((('emodb',),), (0,), 'emodb')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from embedprobe.bench.checks import Checker, ConfigError
from embedprobe.errors import BadValueError, EmbedprobeError

SECTIONS = ("bench", "extract", "corpora", "grid", "probe", "acoustics", "domain", "report")
STATISTICS = ("mean", "last20_mean")
#: ExtractConfig fields the bench sets itself (per corpus / model), so ``[extract]`` may not.
_AUGMENT_KEYS = ("augment", "copies", "augment_seed")
_EXTRACT_OWN = ("model", "corpus", "root", "out", "corpus_options", "weights", "overwrite",
                "shard", "n_shards", "tag")
_SYNTH_KEYS = ("n_speakers", "clips_per_class", "extra_per_speaker", "seed", "sample_rate",
               "duration_s", "channel")


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus of the bench, named by its config key.

    Args:
        key: the name used in ``[grid]`` and in results (``synth-iemocap``).
        reader: the corpus reader (``embedprobe list corpora``); default: the key, or the
            synthetic layout.
        root: corpus root (None for synthetic corpora: written under ``<out>/synthetic/<key>``).
        synthetic: synthetic layout written by ``embedprobe.corpora.synthetic.write_corpus``.
        synth: ``write_corpus`` arguments (``n_speakers``, ``clips_per_class``, ``seed`` ...).
        options: corpus reader options (``ExtractConfig.corpus_options``).
        protocol: split protocol (default: the reader's default).
    """

    key: str
    reader: str
    root: str | None = None
    synthetic: str | None = None
    synth: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    protocol: str | None = None


@dataclass(frozen=True)
class ExtractSpec:
    """``[extract]``: which models, where caches live, and ExtractConfig fields for every cache."""

    models: tuple[str, ...]
    cache_dir: str
    params: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)
    augmented: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GridSpec:
    """``[grid]``: the axes expanded into jobs (see ``embedprobe.bench.grid``)."""

    train: tuple[tuple[str, ...], ...]
    test: tuple[str, ...]
    layers: tuple[str, ...] = ("default",)
    probes: tuple[str, ...] = ("linear",)
    seeds: tuple[int, ...] = (0,)
    augment_rates: tuple[float, ...] = (0.0,)
    scramble: tuple[tuple[str, ...], ...] = ((),)
    scramble_train: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeSpec:
    """``[probe]``: ProbeConfig settings shared by every job, and probe parameters."""

    pooling: str = "mean"
    frames: bool = False
    max_folds: int | None = None
    n_bootstrap: int = 1000
    tune: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    per_probe: dict[str, dict[str, Any]] = field(default_factory=dict)
    allow_incomplete: bool = False

    def params_for(self, probe: str) -> dict[str, Any]:
        return {**self.params, **self.per_probe.get(probe, {})}


@dataclass(frozen=True)
class ExtraSpec:
    """``[acoustics]`` or ``[domain]``: an optional report section and its options."""

    enabled: bool = False
    max_clips: int | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportSpec:
    """``[report]``: the metric and statistic of the paper-layout relative tables."""

    metric: str = "wf1"
    statistic: str = "mean"


@dataclass(frozen=True)
class BenchConfig:
    """A whole bench. ``out`` holds ``cache/`` (default), ``synthetic/``, ``results/``,
    ``report.html``, ``bench.csv`` and ``bench.json``."""

    name: str
    out: str
    jobs: int
    extract: ExtractSpec
    corpora: tuple[CorpusSpec, ...]
    grid: GridSpec
    probe: ProbeSpec = ProbeSpec()
    acoustics: ExtraSpec = ExtraSpec()
    domain: ExtraSpec = ExtraSpec()
    report: ReportSpec = ReportSpec()
    source: str = "<dict>"

    def corpus(self, key: str) -> CorpusSpec:
        for c in self.corpora:
            if c.key == key:
                return c
        raise BadValueError("corpus", key, [c.key for c in self.corpora])


# --------------------------------------------------------------------------------------- loading
def load_config(path: str | Path, *, overrides: list[str] | None = None,
                models: list[str] | None = None, out: str | None = None,
                jobs: int | None = None) -> BenchConfig:
    """Read and check a bench TOML file.

    Args:
        path: the TOML file.
        overrides: ``"table.key=VALUE"`` items (VALUE in TOML syntax, bare words are strings),
            e.g. ``"corpora.iemocap.root=/data/IEMOCAP"``.
        models: replace ``[extract] models`` (the CLI's ``--model``).
        out: replace ``[bench] out``.
        jobs: replace ``[bench] jobs``.
    """
    from embedprobe.corpora.textfiles import read_text

    tomllib = _toml()
    path = Path(path)
    if not path.is_file():
        raise BadValueError("bench config file", str(path), fix="Give the path of a TOML file, e.g. "
                            "benchmarks/configs/emodb_synthetic.toml.")
    try:
        raw = tomllib.loads(read_text(path, "bench config", EmbedprobeError))
    except tomllib.TOMLDecodeError as e:
        raise EmbedprobeError(f"{path} is not valid TOML: {e}. Fix: check the line it names.") from None
    for item in overrides or []:
        apply_override(raw, item)
    if models:
        raw.setdefault("extract", {})["models"] = list(models)
    if out:
        raw.setdefault("bench", {})["out"] = str(out)
    if jobs is not None:
        raw.setdefault("bench", {})["jobs"] = jobs
    return parse_config(raw, source=str(path))


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=VALUE`` in the raw TOML dict (VALUE parsed as TOML, else kept as a string)."""
    if "=" not in item:
        raise BadValueError("override", item, fix="Write overrides as TABLE.KEY=VALUE, e.g. grid.seeds=3.")
    dotted, text = (s.strip() for s in item.split("=", 1))
    keys = [k for k in dotted.split(".") if k]
    if len(keys) < 2:
        raise BadValueError("override key", dotted, SECTIONS, fix="Name a table and a key: grid.seeds=3.")
    try:
        value = _toml().loads(f"v = {text}")["v"]
    except Exception:  # noqa: BLE001 - any TOML error: take the text as it is
        value = text
    node = raw
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise BadValueError("override key", dotted, fix=f"{k!r} is a value, not a table.")
    node[keys[-1]] = value


def parse_config(raw: dict[str, Any], *, source: str = "<dict>") -> BenchConfig:
    """Check a raw TOML dict and build the ``BenchConfig``."""
    chk = Checker(source)
    chk.keys(raw, SECTIONS, "")
    bench = chk.table(raw, "bench")
    chk.keys(bench, ("name", "out", "jobs"), "bench")
    name = chk.str_(bench, "bench", "name", Path(source).stem if source != "<dict>" else "bench")
    out = chk.str_(bench, "bench", "out", "out/bench")
    jobs = chk.int_(bench, "bench", "jobs", 1, low=1)

    corpora = _corpora(chk, chk.table(raw, "corpora"))
    keys = [c.key for c in corpora]
    extract = _extract(chk, chk.table(raw, "extract"), out)
    grid = _grid(chk, chk.table(raw, "grid"), keys)
    probe = _probe(chk, chk.table(raw, "probe"), grid.probes)
    if probe.frames and not extract.params.get("frames"):
        raise ConfigError(f"{source} [probe]", "frames", True,
                          fix="Frame-level probing needs frame caches: set [extract] frames = true.")
    return BenchConfig(
        name=name, out=out, jobs=jobs, extract=extract, corpora=corpora, grid=grid, probe=probe,
        acoustics=_extra(chk, chk.table(raw, "acoustics"), "acoustics"),
        domain=_extra(chk, chk.table(raw, "domain"), "domain"),
        report=_report(chk, chk.table(raw, "report")), source=source)


# ------------------------------------------------------------------------------------- sections
def _path_safe(name: str) -> bool:
    from embedprobe.common.checks import name_for_path
    from embedprobe.errors import BadValueError

    try:
        name_for_path("name", name)
    except BadValueError:
        return False
    return True


def _corpora(chk: Checker, table: dict[str, Any]) -> tuple[CorpusSpec, ...]:
    from embedprobe.corpora import CORPORA
    from embedprobe.corpora.synthetic import DEFAULTS

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
                              options=chk.dict_(spec, sec, "options"),
                              protocol=chk.str_(spec, sec, "protocol", None)))
    return tuple(out)


def _check_extract_params(chk: Checker, model: str, cache_dir: str, params: dict[str, Any],
                          augmented: dict[str, Any]) -> None:
    """The [extract] values as ``embedprobe extract`` checks them, when the config is read."""
    from embedprobe.errors import BadValueError
    from embedprobe.pipeline.extract import ExtractConfig, check_config

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


def _extract(chk: Checker, t: dict[str, Any], out: str) -> ExtractSpec:
    from embedprobe.extractors import EXTRACTORS
    from embedprobe.pipeline.extract import ExtractConfig

    names = {f.name for f in fields(ExtractConfig)}
    aug_keys = [k for k in _AUGMENT_KEYS if k in names]
    own = names - set(_EXTRACT_OWN) - set(aug_keys)
    for k in aug_keys:
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
    if augmented and not aug_keys:
        raise ConfigError(chk.where("extract"), "table", "augmented", fix="This version of embedprobe "
                          "cannot extract augmented caches; remove [extract.augmented].")
    chk.keys(augmented, aug_keys, "extract.augmented")
    if augmented and not isinstance(augmented.get("augment"), str):
        raise ConfigError(chk.where("extract.augmented"), "augment", augmented.get("augment"),
                          fix="Name the augmentation, e.g. augment = \"paper\" (the paper's seven augmentations).")
    cache_dir = chk.str_(t, "extract", "cache_dir", None) or str(Path(out) / "cache")
    _check_extract_params(chk, models[0], cache_dir, params, augmented)
    return ExtractSpec(models=tuple(models), cache_dir=cache_dir, params=params, weights=weights,
                       augmented=augmented)


def _grid(chk: Checker, t: dict[str, Any], keys: list[str]) -> GridSpec:
    from embedprobe.probes import PROBES

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


def _probe(chk: Checker, t: dict[str, Any], probes: tuple[str, ...]) -> ProbeSpec:
    from embedprobe.probes import PROBES
    from embedprobe.probes.registry import get_class

    chk.keys(t, ("pooling", "frames", "max_folds", "n_bootstrap", "tune", "params", "allow_incomplete",
                 *PROBES.names()), "probe")
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
    return ProbeSpec(pooling=pooling, frames=chk.bool_(t, "probe", "frames", False), max_folds=max_folds,
                     n_bootstrap=chk.int_(t, "probe", "n_bootstrap", 1000, low=0),
                     tune=chk.bool_(t, "probe", "tune", False), params=params, per_probe=per_probe,
                     allow_incomplete=chk.bool_(t, "probe", "allow_incomplete", False))


def _extra(chk: Checker, t: dict[str, Any], sec: str) -> ExtraSpec:
    from embedprobe.bench.extras import check_options

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


def _report(chk: Checker, t: dict[str, Any]) -> ReportSpec:
    from embedprobe.eval.metrics import METRICS

    chk.keys(t, ("metric", "statistic"), "report")
    metric = chk.str_(t, "report", "metric", "wf1")
    chk.choice(metric, METRICS, "report", "metric")
    statistic = chk.str_(t, "report", "statistic", "mean")
    chk.choice(statistic, STATISTICS, "report", "statistic")
    return ReportSpec(metric=metric, statistic=statistic)


def _toml() -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise EmbedprobeError("Reading bench configs on Python 3.10 needs the package 'tomli': "
                                  "run pip install tomli (Python 3.11+ has tomllib built in).") from None
    return tomllib


def rate_label(rate: float) -> str:
    """``0.5`` -> ``"50%"``."""
    pct = rate * 100
    return f"{pct:.0f}%" if math.isclose(pct, round(pct)) else f"{pct:g}%"

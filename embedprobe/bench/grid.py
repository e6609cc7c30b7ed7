"""Grid expansion: a ``BenchConfig`` -> the probe jobs to run, each with a stable id and fingerprint.

One job is one ``embedprobe.pipeline.probe.probe`` call: one model, layer, probe, augmentation rate,
scrambling and **training set**, tested on every test corpus, with all seeds (the runner's
seed statistics need them together). Test corpora are columns, not jobs: one trained probe is
scored on all of them.

Jobs that share (model, layer, probe, augmentation rate, scrambling) form a *group*: the
cross-corpus matrix of that setting. Each group gets one baseline job per test corpus
(trained on it alone) unless the grid already trains it alone. ``probe`` always adds the
"scrambled corpus alone" training to a run with scrambling (the fragmentation summary needs
it), so a separate job for it is dropped when the group has other jobs.

Example:
    >>> from embedprobe.bench.config import parse_config
    >>> cfg = parse_config({"corpora": {"a": {"synthetic": "emodb"}, "b": {"synthetic": "iemocap"}},
    ...                     "extract": {"models": ["logmel-128"]},
    ...                     "grid": {"train": ["a+b"], "scramble": [[], ["b"]]}})
    >>> [(j.train, j.scramble) for j in expand(cfg)]
    [(('a', 'b'), ()), (('a',), ()), (('b',), ()), (('a', 'b'), ('b',)), (('a',), ('b',))]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from embedprobe.bench.spec import BenchConfig, rate_label
from embedprobe.errors import BadValueError
from embedprobe.pipeline.probe import ProbeConfig
from embedprobe.provenance import fingerprint, to_jsonable

JOB_FORMAT = 1
DEFAULT_LAYER = "default"


@dataclass(frozen=True)
class Job:
    """One probing run of the grid.

    Args:
        model: extractor name.
        layer: cache layer name (``"default"`` until caches exist: the model's last layer).
        probe: probe name.
        augment_rate: share of augmented training clips (0 = none).
        scramble: corpora whose labels are scrambled in this run (train and test).
        train: corpora trained on jointly.
        tests: corpora tested on.
        seeds: seeds (all in one run).
        role: ``"grid"`` (a training set of the config) or ``"baseline"`` (added).
    """

    model: str
    layer: str
    probe: str
    augment_rate: float
    scramble: tuple[str, ...]
    train: tuple[str, ...]
    tests: tuple[str, ...]
    seeds: tuple[int, ...]
    role: str = "grid"

    @property
    def group(self) -> tuple[str, str, str, float, tuple[str, ...]]:
        return (self.model, self.layer, self.probe, self.augment_rate, self.scramble)

    @property
    def id(self) -> str:
        scr = "scr-" + "-".join(self.scramble) if self.scramble else "clean"
        text = (f"{self.model}__{self.layer}__{self.probe}__aug{rate_label(self.augment_rate)[:-1]}"
                f"__{scr}__train-{'+'.join(self.train)}")
        return _safe(text)

    def describe(self) -> str:
        scr = f", {'+'.join(self.scramble)} scrambled" if self.scramble else ""
        return (f"{self.model}/{self.layer} {self.probe} aug {rate_label(self.augment_rate)}{scr}: "
                f"train {'+'.join(self.train)}")


def group_id(group: tuple[str, str, str, float, tuple[str, ...]]) -> str:
    model, layer, probe, rate, scramble = group
    scr = "scr-" + "-".join(scramble) if scramble else "clean"
    return _safe(f"{model}__{layer}__{probe}__aug{rate_label(rate)[:-1]}__{scr}")


def _safe(text: str) -> str:
    parts = (re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9._+=-]+", "-", p)) for p in text.split("__"))
    return "__".join(parts)


def expand(cfg: BenchConfig, layers: dict[str, list[str]] | None = None,
           defaults: dict[str, str] | None = None) -> list[Job]:
    """Every job of ``cfg``, in grid order (model, layer, probe, rate, scrambling, training set).

    Args:
        cfg: the bench.
        layers: model -> the layers its caches hold (extractor order). With it ``"default"``
            becomes the last layer and ``"all"`` every layer, and unknown layers are refused;
            without it (before extraction) layer names stay as written.
        defaults: model -> the layer ``"default"`` means (the caches' default layer; else the last).
    """
    g = cfg.grid
    jobs: list[Job] = []
    for model in cfg.extract.models:
        for layer in resolve_layers(g.layers, None if layers is None else layers.get(model), model,
                                    (defaults or {}).get(model)):
            for probe in g.probes:
                for rate in g.augment_rates:
                    for scr in g.scramble:
                        jobs.extend(_group_jobs(cfg, model, layer, probe, rate, scr))
    seen: dict[str, Job] = {}
    for j in jobs:
        seen.setdefault(j.id, j)
    return list(seen.values())


def resolve_layers(wanted: tuple[str, ...], have: list[str] | None, model: str,
                   default: str | None = None) -> list[str]:
    if have is None:
        return list(dict.fromkeys(wanted))
    out: list[str] = []
    for w in wanted:
        if w in (DEFAULT_LAYER, "last"):
            out.append(default if default in have else have[-1])
        elif w == "all":
            out.extend(have)
        elif w in have:
            out.append(w)
        else:
            raise BadValueError(f"layer of {model} in [grid] layers", w, ["default", "all", *have],
                                fix="Use a layer the caches hold (`embedprobe info CACHE`).")
    return list(dict.fromkeys(out))


def _group_jobs(cfg: BenchConfig, model: str, layer: str, probe: str, rate: float,
                scr: tuple[str, ...]) -> list[Job]:
    g = cfg.grid
    train_sets = list(g.scramble_train.get(scr, g.train))
    role = {t: "grid" for t in train_sets}
    for c in g.test:
        if (c,) not in role:
            train_sets.append((c,))
            role[(c,)] = "baseline"
    implied = {(s,) for s in scr}  # every run with scrambling also trains each scrambled corpus alone
    if any(t not in implied for t in train_sets):
        train_sets = [t for t in train_sets if t not in implied]
    tests = tuple(dict.fromkeys(g.test))
    return [Job(model=model, layer=layer, probe=probe, augment_rate=rate, scramble=scr, train=t,
                tests=tests, seeds=g.seeds, role=role[t]) for t in train_sets]


def probe_config(cfg: BenchConfig, job: Job, out: str | Path) -> ProbeConfig:
    """The ``ProbeConfig`` of ``job`` (results written into ``out``)."""
    aug = cfg.extract.augmented
    return ProbeConfig(
        model=job.model, cache_dir=str(Path(cfg.extract.cache_dir).resolve()),
        train=("+".join(job.train),), test=job.tests, probe=job.probe,
        layer=None if job.layer == DEFAULT_LAYER else job.layer,
        pooling=cfg.probe.pooling, frames=cfg.probe.frames, seeds=job.seeds, scramble=job.scramble,
        protocols={c.key: c.protocol for c in cfg.corpora if c.protocol},
        baselines=False, probe_params=cfg.probe.params_for(job.probe),
        n_bootstrap=cfg.probe.n_bootstrap, max_folds=cfg.probe.max_folds, tune=cfg.probe.tune,
        out=str(out), tag=None, allow_incomplete=cfg.probe.allow_incomplete,
        aggregate=cfg.probe.aggregate, allow_degenerate=cfg.probe.allow_degenerate,
        augment_rate=job.augment_rate, **{k: aug[k] for k in ("augment", "augment_seed") if k in aug},
    )


def job_fingerprint(cfg: BenchConfig, job: Job) -> str:
    """A stable hash of everything that decides the job's numbers (not where files live).

    Cache contents are checked separately (the results record carries each cache's fingerprint).
    """
    pc = to_jsonable(probe_config(cfg, job, "."))
    # an incomplete cache has its own fingerprint; allow_degenerate decides whether a job runs, not its
    # numbers (and leaving it out keeps the fingerprints of benches run before it existed)
    for k in ("out", "cache_dir", "tag", "allow_incomplete", "allow_degenerate"):
        pc.pop(k, None)
    pc["augment_rate"] = job.augment_rate
    if job.augment_rate > 0:
        pc["augmented_caches"] = to_jsonable(cfg.extract.augmented)
    corpora = {c: to_jsonable(cfg.corpus(c)) for c in sorted(set(job.train) | set(job.tests))}
    for c in corpora.values():
        c.pop("root", None)
    return fingerprint({"format": JOB_FORMAT, "probe": pc, "corpora": corpora})

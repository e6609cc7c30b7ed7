"""The bench configuration as frozen dataclasses (what ``bench.config.parse_config`` builds).

Example:
    >>> GridSpec(train=(("emodb",),), test=("emodb",)).seeds
    (0,)
    >>> rate_label(0.5), rate_label(0.125)
    ('50%', '12.5%')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from embedprobe.errors import BadValueError

SECTIONS = ("bench", "extract", "corpora", "grid", "probe", "acoustics", "domain", "report", "ray")
STATISTICS = ("mean", "last20_mean")


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
        protocol: split protocol (default: the reader's default), as ``embedprobe probe
            --protocol KEY=PROTOCOL``: one the reader offers, or ``loso`` (leave one speaker out)
            for a corpus with speaker ids. Checked against the cache when the bench runs.
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
    """``[probe]``: ProbeConfig settings shared by every job, and probe parameters.

    ``aggregate`` is ``embedprobe probe --aggregate``: ``mean`` of the folds' scores or each
    metric once over the ``pooled`` predictions of all folds (with ``protocol = "loso"`` on a
    corpus, nkululeko's and EmoBox's figure); ``allow_degenerate`` is ``--allow-degenerate``.
    """

    pooling: str = "mean"
    frames: bool = False
    max_folds: int | None = None
    n_bootstrap: int = 1000
    tune: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    per_probe: dict[str, dict[str, Any]] = field(default_factory=dict)
    allow_incomplete: bool = False
    aggregate: str = "mean"
    allow_degenerate: bool = False

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
class EngineSpec:
    """Where the bench's tasks run: ``[bench] engine`` and the ``[ray]`` table.

    Args:
        engine: ``local`` (a process pool of ``[bench] jobs``) or ``ray``.
        address: the Ray cluster to join (``auto``, ``HOST:6379``, ``ray://...``); None: the
            cluster this process is connected to, else a new local one.
        cpus_per_task: CPUs (and torch threads) of every Ray task.
        gpus_per_extract: GPUs of every extraction task (fractions share a GPU); None: 1 when
            ``[extract] device`` is CUDA, else 0.
    """

    engine: str = "local"
    address: str | None = None
    cpus_per_task: int = 1
    gpus_per_extract: float | None = None


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
    engine: EngineSpec = EngineSpec()

    def corpus(self, key: str) -> CorpusSpec:
        for c in self.corpora:
            if c.key == key:
                return c
        raise BadValueError("corpus", key, [c.key for c in self.corpora])


def rate_label(rate: float) -> str:
    """``0.5`` -> ``"50%"``."""
    pct = rate * 100
    return f"{pct:.0f}%" if math.isclose(pct, round(pct)) else f"{pct:g}%"

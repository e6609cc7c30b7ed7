"""What one extraction run is: :class:`ExtractConfig`, and the checks of its values.

Kept apart from :mod:`embedprobe.pipeline.extract` (the run itself) so that the CLI, the bench
and the docs read the defaults without loading the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedprobe.augment.copies import augmented_tag
from embedprobe.cache.naming import cache_file
from embedprobe.cache.sharding import check_shard
from embedprobe.common import checks
from embedprobe.common.raycluster import check_engine
from embedprobe.errors import BadValueError

DTYPES = ("float32", "float16")
# Runtime facts recorded in the provenance but not part of a cache's identity: where the weights
# sit, which device and batch size ran, package versions and kernel choices that give the same
# values (prepacked linears) may differ between the shards of one cache or between a run and its
# resume; the weights revision and the precision may not. Nor which engine ran it: a cache started
# locally may be finished on Ray and the other way round.
RUNTIME_NOT_IDENTITY = frozenset({"weights", "device", "batch_seconds", "torch", "transformers",
                                  "prepacked_linears", "precision_check", "engine", "ray"})


@dataclass(frozen=True)
class ExtractConfig:
    """One extraction run. Fields marked *identity* decide which cache file a run may reuse.

    Args:
        model: extractor name (``embedprobe list extractors``). *identity*
        corpus: corpus reader name (``embedprobe list corpora``). *identity*
        root: corpus root folder.
        out: cache folder; the file is ``<out>/<name or corpus>__<model>[__<tag>].h5``.
        name: the corpus's own name (``--name``) for readers that hold different corpora
            (``manifest``, ``emobox``, a half of ``emodb``): it names the cache file and the
            corpus in ``probe --train/--test``, the matrices and the report. Default: ``corpus``.
        layers: layers to cache (default: all of the model's). *identity*
        frames: also store frame-level features. *identity*
        frame_hop_s: hop of stored frames, a multiple of the model's hop (default: native). *identity*
        frame_layers: layers whose frames are stored (default: all cached layers). *identity*
        dtype: storage dtype, ``float32`` or ``float16``. *identity*
        chunk_s: long files are processed in chunks of this many seconds. *identity*
        min_duration_s: shorter clips are errors. *identity*
        corpus_options: options of the corpus reader (seed, label mapping ...). *identity*
        weights: local checkpoint overriding the model's default weights.
        trust_pickle: let weights that pickle data classes beyond the safe allow-list load with
            the full unpickler (their code runs; never for pickles naming functions). Recorded
            in the cache's provenance, not identity.
        device: torch device.
        precision: ``auto`` (the family's fast path: bf16 on CPUs with native bf16, autocast on
            GPUs), ``fp32``, ``fp32-onednn``, ``bf16`` or ``fp16``; recorded in the cache. *identity*
        batch_size: clips per committed batch.
        workers: decoding threads (when embedding in the extracting process).
        procs: model replicas in worker processes, each decoding and embedding clips on
            ``cores // procs`` torch threads; ``None`` = auto (one per core, at most 4, on CPU
            for runs of 200+ clips with single-threaded extractors such as eGeMAPS and GE2E;
            else 1). Not identity.
        threads: torch / BLAS threads of each embedding process (>= 1); None = this process's
            cores (affinity and CPU quota), shared out among ``procs``. Recorded, not identity.
        overwrite: start the cache over.
        shard, n_shards: write only shard ``shard`` of ``n_shards`` (``embedprobe merge`` joins them).
        tag: suffix that names a cache variant.
        augment: cache augmented copies made with this augmentation (``paper`` = the paper's
            seven augmentations) instead of the original clips; the cache is named
            ``<corpus>__<model>__aug-<name>-s<seed>.h5``. *identity*
        copies: augmented copies per clip (stored as ``<clip id>@<k>``). *identity*
        augment_seed: seed of the augmentation parameters. *identity*
        engine: ``local`` (this machine; no Ray import) or ``ray`` (actors on a Ray cluster,
            ``embedprobe.pipeline.ray_extract``); this process alone writes the cache either way.
        address: the Ray cluster to join (``auto``, ``HOST:PORT``, ``ray://...``); ``None`` joins
            the cluster this process is connected to, else starts one on this machine. Ray only.
        ray_workers: Ray actors, each with its own copy of the model (``--workers`` under
            ``--engine ray``); ``None`` = as many as the cluster's free CPUs (and GPUs) hold.
        gpus_per_worker: GPUs of each actor (fractions share one GPU); above 0 the actors run on
            ``cuda`` (the GPU Ray gives them). Ray only.
        cpus_per_worker: CPUs of each actor, which are also its torch threads. Ray only.
    """

    model: str
    corpus: str
    root: str
    out: str
    name: str | None = None
    layers: tuple[str, ...] | None = None
    frames: bool = False
    frame_hop_s: float | None = None
    frame_layers: tuple[str, ...] | None = None
    dtype: str = "float32"
    chunk_s: float = 30.0
    min_duration_s: float = 0.1
    corpus_options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    trust_pickle: bool = False
    device: str = "cpu"
    precision: str = "auto"
    batch_size: int = 16
    workers: int = 2
    procs: int | None = None
    threads: int | None = None
    overwrite: bool = False
    shard: int | None = None
    n_shards: int | None = None
    tag: str | None = None
    augment: str | None = None
    copies: int = 1
    augment_seed: int = 0
    engine: str = "local"
    address: str | None = None
    ray_workers: int | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: int = 1

    def cache_path(self) -> Path:
        aug = augmented_tag(self.augment, self.augment_seed) if self.augment else ""
        return cache_file(self.out, self.corpus_name, self.model, aug, self.tag or "")

    @property
    def corpus_name(self) -> str:
        """What the corpus is called: ``name`` when given, else the reader's name."""
        return self.name or self.corpus


def check_config(cfg: ExtractConfig) -> None:
    """Refuse values that would otherwise run as something else (a count of 0 as 1, a bad device).

    The model, corpus, layers, precision and augmentation are checked where they are resolved.
    """
    checks.choice("dtype", cfg.dtype, DTYPES)
    if cfg.engine != "ray":  # Ray workers get their GPUs from Ray; this machine need have none
        checks.device(cfg.device)
    checks.count("batch size", cfg.batch_size, option="--batch-size")
    checks.count("number of decoding threads", cfg.workers, option="--workers")
    if cfg.procs is not None:
        checks.count("number of worker processes", cfg.procs, option="--procs")
    checks.number("chunk length in seconds", cfg.chunk_s, low=0, low_open=True, option="--chunk")
    if cfg.frame_hop_s is not None:
        checks.number("frame hop in seconds", cfg.frame_hop_s, low=0, low_open=True, option="--frame-hop")
    checks.number("minimum duration in seconds", cfg.min_duration_s, low=0)
    checks.count("number of augmented copies", cfg.copies, option="--copies")
    checks.count("augmentation seed", cfg.augment_seed, low=0, option="--augment-seed")
    if cfg.tag:
        checks.name_for_path("cache tag", cfg.tag)
    if cfg.name:  # the reader checks that it may be named (embedprobe.corpora.common.check_corpus_name)
        checks.name_for_path("corpus name (--name)", cfg.name)
    check_shard(cfg.shard, cfg.n_shards)
    _check_engine(cfg)
    unused = [opt for opt, given in (("--frame-hop", cfg.frame_hop_s is not None),
                                     ("--frame-layers", cfg.frame_layers is not None)) if given and not cfg.frames]
    unused += [opt for opt, given in (("--copies", cfg.copies != 1), ("--augment-seed", cfg.augment_seed != 0))
               if given and not cfg.augment]
    if unused:  # an option that would be ignored is a mistake the user should hear about
        needs = "--frames" if unused[0] in ("--frame-hop", "--frame-layers") else "--augment NAME"
        raise BadValueError("option without effect", unused[0], fix=f"{unused[0]} only applies with {needs}; "
                            "add it or drop the option.")


def _check_engine(cfg: ExtractConfig) -> None:
    """The engine options: Ray's only with ``--engine ray``, the local process options only without."""
    check_engine(cfg.engine)
    if cfg.engine == "local":
        given = [opt for opt, on in (("--address", cfg.address is not None),
                                     ("--gpus-per-worker", cfg.gpus_per_worker != 0),
                                     ("--cpus-per-worker", cfg.cpus_per_worker != 1),
                                     ("ray_workers", cfg.ray_workers is not None)) if on]
        if given:
            raise BadValueError("option without effect", given[0],
                                fix=f"{given[0]} only applies with --engine ray; add it or drop the option.")
        return
    if cfg.ray_workers is not None:
        checks.count("number of Ray workers", cfg.ray_workers, option="--workers")
    checks.count("CPUs per Ray worker", cfg.cpus_per_worker, option="--cpus-per-worker")
    checks.number("GPUs per Ray worker", cfg.gpus_per_worker, low=0, option="--gpus-per-worker")
    for opt, given in (("--procs", cfg.procs is not None), ("--threads", cfg.threads is not None)):
        if given:
            raise BadValueError("option without effect", opt,
                                fix=f"{opt} only applies with --engine local; with --engine ray use "
                                    "--workers and --cpus-per-worker (each worker's torch threads).")
    if cfg.device not in ("cpu", "cuda"):
        raise BadValueError("device with --engine ray", cfg.device, ("cpu", "cuda"),
                            fix="Ray gives each worker its GPU: use --gpus-per-worker G (the workers then "
                                "run on cuda).")
    if cfg.device == "cuda" and not cfg.gpus_per_worker:
        raise BadValueError("device with --engine ray", cfg.device, None,
                            fix="Ray workers see no GPU unless they ask for one: add --gpus-per-worker 1.")

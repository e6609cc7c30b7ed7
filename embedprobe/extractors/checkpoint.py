"""A base class for extractors built from official checkpoint files (CNN14, VGGish, MS-CLAP).

``CheckpointExtractor`` finds its files through ``weights.resolve_file`` (one resolution order
for every family; a ``.safetensors`` copy made by ``embedprobe convert-weights`` comes before the
``.pth``), loads them without running pickled code (``weights.load_torch_checkpoint``; data
classes beyond the allow-list only with ``trust_pickle``), reports the loaded revision as the
files' sha256 (a converted copy keeps its source's), and builds its network uninitialised before filling every
learned tensor from the checkpoint, or from a seeded random state (``random_init``, for tests
and benchmarks without downloads).
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from embedprobe.extractors.base import Extractor, ExtractorSpec
from embedprobe.extractors.precision import inference
from embedprobe.extractors.runtime import RuntimeMixin
from embedprobe.extractors.weights import (
    checkpoint_revision,
    find_file,
    load_torch_checkpoint,
    resolve_file,
)


class CheckpointExtractor(RuntimeMixin, Extractor):
    """An extractor whose weights are official checkpoint file(s) named in its spec.

    The spec's ``params`` carry ``weights_file`` (the official name), ``weights_url`` (where
    to get it) and optionally ``hf_repo`` (a Hugging Face repo that also hosts the file).
    Subclasses implement ``_build(paths)`` (``paths`` is ``None`` for a random-init instance)
    and ``_fast_modules()`` (which network the fast path prepares, which parts stay fp32), build
    networks with ``self._network(factory, state)`` (seeded random or checked checkpoint
    weights), and run their forward passes under ``self._inference()``.

    ``random_init(spec, seed)`` gives an instance with reproducible random weights and no
    checkpoint (contract and equivalence tests); its ``weights_revision()`` says so, and
    ``weights_present()`` is ``None``.

    Args:
        spec: the variant.
        device: torch device.
        weights: the checkpoint file or its folder (``--weights``).
        precision: ``"auto"`` (bf16 autocast on CPUs with native bf16 and on CUDA, else fp32
            with oneDNN linears), ``"fp32"``, ``"fp32-onednn"``, ``"bf16"`` or ``"fp16"``
            (CUDA); see ``extractors.precision``. The precision used is ``precision`` / ``runtime_config()``.
    """

    what: str = "model"
    extra_dirs: tuple[str, ...] = ()

    def __init__(self, spec: ExtractorSpec, *, device: str = "cpu", weights: str | Path | None = None,
                 precision: str = "auto"):
        super().__init__(spec, device=device, weights=weights)
        if self.weights is not None:
            self.weights = self.weights.expanduser()
        self.requested_precision = self.check_precision(precision)
        self.random_seed: int | None = None
        self.checkpoint_: Path | None = None
        self._paths: list[Path] = []
        self._runtime: dict[str, Any] = {}

    @classmethod
    def random_init(cls, spec: ExtractorSpec, seed: int = 0, device: str = "cpu",
                    precision: str = "auto") -> CheckpointExtractor:
        """An instance with seeded random weights instead of a checkpoint."""
        ext = cls(spec, device=device, precision=precision)
        ext.random_seed = seed
        return ext

    # -- weights ------------------------------------------------------------------------------
    def _files(self) -> tuple[str, ...]:
        return (str(self.spec.param("weights_file")),)

    def _hf_file(self, name: str) -> tuple[str, str, str | None] | None:
        repo = self.spec.param("hf_repo")
        return (repo, name, self.spec.param("hf_revision")) if repo else None

    def resolve(self, name: str | None = None) -> Path:
        """Path of the checkpoint ``name`` (default: the main one), or ``MissingWeightsError``."""
        name = name or self._files()[0]
        explicit = self.weights
        if explicit is not None and name != self._files()[0] and Path(explicit).is_file():
            explicit = Path(explicit).parent  # companion files sit next to an explicit main file
        url = str(self.spec.param("weights_url"))
        source = url + name if url.endswith("/") else url  # a folder URL: name the file's own URL
        return resolve_file(name, what=self.what, source=source,
                            explicit=explicit, extra_dirs=self.extra_dirs, hf_file=self._hf_file(name))

    def _present(self, name: str) -> bool:
        explicit = self.weights
        if explicit is not None and name != self._files()[0] and Path(explicit).is_file():
            explicit = Path(explicit).parent
        if find_file(name, explicit=explicit, extra_dirs=self.extra_dirs) is not None:
            return True
        hf = self._hf_file(name) if explicit is None else None
        if hf is None:
            return False
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return False
        hit = try_to_load_from_cache(hf[0], hf[1], revision=hf[2])
        return isinstance(hit, str) and os.path.isfile(hit)

    def weights_present(self) -> bool | None:
        if self.random_seed is not None:
            return None
        return all(self._present(n) for n in self._files())

    def weights_revision(self) -> str | None:
        if self.random_seed is not None:
            return f"random-init:seed={self.random_seed}"
        paths = self._paths or ([self.resolve(n) for n in self._files()] if self.weights_present() else [])
        if not paths:
            return self.spec.weights_revision
        return "+".join(checkpoint_revision(p) for p in paths)

    # -- lifecycle ----------------------------------------------------------------------------
    def _load(self) -> None:
        precision = self._resolve_precision()  # fail fast
        paths = None if self.random_seed is not None else [self.resolve(n) for n in self._files()]
        self._build(paths)
        self._paths = paths or []
        self.checkpoint_ = paths[0] if paths else None
        self.precision_ = precision
        net, fp32_parts = self._fast_modules()
        info = self._prepare_model(net, fuse_attention=False,
                                keep_fp32=fp32_parts, matmul_convs=True)
        # Portable values only: the runtime goes into the cache identity, which shards made on
        # other machines must match (the file's hash is there already as weights_revision).
        source = f"random-init:seed={self.random_seed}" if paths is None else paths[0].name
        self._runtime = {**info, "device": str(self.device).split(":")[0], "weights": source}

    @abstractmethod
    def _build(self, paths: list[Path] | None) -> None:
        """Build the network from checkpoint ``paths`` (``None``: seeded random weights)."""

    @abstractmethod
    def _fast_modules(self) -> tuple[Any, tuple[Any, ...]]:
        """``(network, parts kept in fp32)`` for ``rewrites.prepare`` (called after ``_build``).

        The network is what runs under ``self._inference()``; the parts kept in fp32 are its
        submodules that must not lose precision (STFT / log-mel front ends).
        """

    def _inference(self) -> Any:
        """``torch.inference_mode()`` plus the autocast of the resolved precision."""
        return inference(self.precision_, self.device)

    def _checkpoint(self, path: Path, mmap: bool = False) -> Any:
        """Load a checkpoint (``.pth`` or ``.safetensors``) without running pickled code; data
        classes beyond the allow-list only with ``trust_pickle`` (``--trust-pickle``), wherever
        the file was found."""
        return load_torch_checkpoint(path, trust_pickle=self.trust_pickle, mmap=mmap)

    def _network(self, factory: Callable[[], Any], state: Callable[[], Any], *, seed_offset: int = 0,
                 what: str | None = None, derived: Sequence[str] = (), ignore: Sequence[str] = ()) -> Any:
        """Build ``factory()`` without its random init and fill every learned tensor.

        A ``random_init`` instance gets ``seeded_state`` with seed ``random_seed + seed_offset``
        (keys matching ``derived`` keep their computed values); otherwise ``state()`` (called
        only then) gives the checkpoint tensors, checked by ``load_checked`` under ``what``
        (default ``self.what``); checkpoint keys matching ``ignore`` (parts of the original model
        that the network leaves out, e.g. a pre-training decoder) are dropped.
        """
        from embedprobe.extractors.nets.common import (
            build_uninitialised,
            load_checked,
            seeded_state,
        )

        net = build_uninitialised(factory)
        if self.random_seed is not None:
            net.load_state_dict(seeded_state(net, self.random_seed + seed_offset, skip=derived))
        else:
            load_checked(net, state(), what=what or self.what, derived=derived, ignore=ignore)
        return net

"""The shared part of the extractors that load a model with transformers' ``from_pretrained``.

``HFExtractor`` holds what those families (``hf_ssl``, ``clap_laion``, ``codecs``, ``phi4``)
do alike: the ``precision`` / ``_random_config`` constructor, where the weights come from
(``resolve_hf``: ``--weights DIR``, else the Hugging Face cache, else a download when
online), which revision was loaded, and freezing the model on its device. Each family keeps
its own ``_load`` (model classes, checks against the spec, feature extraction) and ``embed``.

A ``_random_config`` instance (``for_tests``) builds the model from that config with
seeded random weights instead; its ``weights_present()`` is ``True`` and its revision
``"random-init"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from embedprobe.errors import MissingDependencyError
from embedprobe.extractors.base import Extractor, ExtractorSpec
from embedprobe.extractors.runtime import RuntimeMixin
from embedprobe.extractors.weights import hf_weights_present, resolve_hf, sha256_prefix

RANDOM_INIT = "random-init"
#: transformers' own progress bars over reading a checkpoint (5.x, and 4.x's sharded checkpoints):
#: hidden while an extractor loads, since embedprobe shows its own progress. Download bars stay.
LOADING_BARS = frozenset({"Loading weights", "Loading checkpoint shards"})


@contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """transformers' checkpoint-reading bars (``LOADING_BARS``) off inside the block, through its
    public ``set_tqdm_hook`` (transformers without it prints them as before)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # the extractor's own load names the missing extra
        yield
        return
    set_hook = getattr(hf_logging, "set_tqdm_hook", None)
    if set_hook is None:
        yield
        return

    def hook(factory: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs.get("desc") in LOADING_BARS:
            return hf_logging.EmptyTqdm(*args, **kwargs)
        return factory(*args, **kwargs) if previous is None else previous(factory, args, kwargs)

    previous = set_hook(hook)
    try:
        yield
    finally:
        set_hook(previous)


class HFExtractor(RuntimeMixin, Extractor):
    """Base class of the transformers-backed extractors.

    Args:
        spec: the variant; ``weights_id`` is the hub repo, ``weights_revision`` the pinned revision.
        device: torch device.
        weights: a local model folder (``save_pretrained`` output), overriding the hub repo.
        precision: see ``precision.PRECISIONS``.
        _random_config: a transformers config to build a random-init model from (tests only).
    """

    def __init__(self, spec: ExtractorSpec, *, device: str = "cpu", weights: str | Path | None = None,
                 precision: str = "auto", _random_config: Any = None):
        super().__init__(spec, device=device, weights=weights)
        self.requested_precision = self.check_precision(precision)
        self._random_config = _random_config
        self._runtime: dict[str, Any] = {}
        self._revision: str | None = None

    def load(self) -> Any:
        with quiet_weight_loading():
            return super().load()

    # -- weights -----------------------------------------------------------------------------
    def _local_folder(self) -> Path | None:
        """The local model folder to load instead of the hub repo (default: ``--weights``)."""
        return self.weights

    def weights_present(self) -> bool | None:
        if self._random_config is not None:
            return True
        return hf_weights_present(str(self.spec.weights_id), self.spec.weights_revision,
                                  explicit=self._local_folder())

    def weights_revision(self) -> str | None:
        return self._revision or self.spec.weights_revision

    def _resolve(self) -> Any:
        """Where ``from_pretrained`` loads from (a ``weights.HFSource``); ``MissingWeightsError`` if nowhere."""
        return resolve_hf(str(self.spec.weights_id), revision=self.spec.weights_revision,
                          what=self.spec.name, explicit=self._local_folder())

    @staticmethod
    def loaded_revision(src: Any, model: Any = None) -> str | None:
        """The revision ``src`` holds: a cache snapshot's commit, a local folder's weight hash, else
        the commit transformers reports for ``model`` (if given) or the pinned revision."""
        folder = Path(src.path_or_id)
        if src.local and folder.parent.name == "snapshots":
            return folder.name
        if src.local:
            return sha256_prefix(folder)
        return getattr(getattr(model, "config", None), "_commit_hash", None) or src.revision

    # -- loading -----------------------------------------------------------------------------
    def _import(self, *names: str) -> tuple[Any, ...]:
        """``torch`` plus the named transformers classes, or ``MissingDependencyError``."""
        try:
            import torch
            import transformers

            return (torch, *(getattr(transformers, n) for n in names))
        except (ImportError, AttributeError) as err:
            raise MissingDependencyError("transformers", "hf", self.spec.name) from err

    def _frozen(self, model: Any) -> Any:
        """``model`` on the device, in eval mode, fp32, without gradients."""
        model = model.to(self.device).eval().float()
        model.requires_grad_(False)
        return model

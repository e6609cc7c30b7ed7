"""CDPAM's content embedding ("CDPAM-cont" in the poster), with the weights the ``cdpam`` wheel ships.

About the model:
    CDPAM (Manocha et al., "Contrastive learning-based deep perceptual audio similarity
    metric", ICASSP 2021; ``pip install cdpam``, MIT, weights inside the 98 MB wheel). Its base
    encoder is 16 Conv1d(kernel 15) + BatchNorm + LeakyReLU(0.1) layers, 64 channels doubling
    and time halving every 4 layers, on 22.05 kHz audio. The last 1024 channels are averaged
    over time and split in two halves, trained contrastively to be invariant to each other:
    ``acoustic`` (channels 0-511, what the CDPAM distance uses) and ``content`` (channels
    512-1023, the poster's "CDPAM-cont 512"). One vector per input (``hop_s = None``).

What is kept from the package, and what is not:
    * the architecture (``cdpam/models.py``, loaded on its own: the package's ``__init__``
      imports librosa and resampy and uses ``np.float``, removed from numpy);
    * the checkpoint ``CDPAM_trained/scratchJNDdefault_best_model.pth`` (dict with ``epochs``,
      ``optim``, ``state``; ``FINnet(...)`` loads ``state`` with every key matched; only the
      ``base_encoder`` is used). It is a legacy (non-zip) torch file that the weights-only
      unpickler rejects (old ``INT`` opcodes), so its pickles are scanned first and loaded only
      if every global they name is on the safe allow-list (``safeload``);
    * the input scaling of ``cdpam.load_audio``: samples times 32768, rounded (16-bit scale).
      Resampling to 22.05 kHz is done by ``embedprobe.audio.decode`` (soxr), not librosa/resampy.
    The outputs are *not* L2-normalised (``CDPAM.forward`` normalises only for its distance).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError, MissingDependencyError, MissingWeightsError
from embedprobe.extractors.base import Extractor, ExtractorSpec, as_mono_float32
from embedprobe.extractors.precision import inference, to_device
from embedprobe.extractors.registry import register
from embedprobe.extractors.runtime import RuntimeMixin, versions
from embedprobe.extractors.safeload import load_torch_checkpoint
from embedprobe.extractors.weights import checkpoint_revision

SAMPLE_RATE = 22050
CHECKPOINT = "CDPAM_trained/scratchJNDdefault_best_model.pth"
REVISION = "sha256:453c8b6edee1"  # the checkpoint inside cdpam 0.0.6
# FINnet's settings in cdpam.CDPAM.__init__ (cdpam 0.0.6)
FINNET = dict(encoder_layers=16, encoder_filters=64, ndim=[16, 6], classif_dp=0.05, classif_BN=0,
              classif_act="no", input_size=512)


def package_dir() -> Path:
    """The installed ``cdpam`` package folder, without importing it."""
    found = importlib.util.find_spec("cdpam")
    if found is None or not found.submodule_search_locations:
        raise MissingDependencyError("cdpam", "cdpam", "the CDPAM extractor")
    return Path(list(found.submodule_search_locations)[0])


def models_module() -> Any:
    """``cdpam/models.py`` as a standalone module (it imports only torch and numpy)."""
    name = "_embedprobe_cdpam_models"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, package_dir() / "models.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        sys.modules[name] = module
    return sys.modules[name]


def load_checkpoint(path: Path, trust_pickle: bool = False) -> dict[str, Any]:
    """Load CDPAM's checkpoint without running pickled code (``weights.load_torch_checkpoint``).

    The wheel's legacy file names only tensor / OrderedDict rebuilders, so it loads although
    torch's weights-only unpickler lacks its old opcodes; a ``.safetensors`` copy loads too.
    """
    return load_torch_checkpoint(path, trust_pickle=trust_pickle)


class CDPAMEncoder(RuntimeMixin, Extractor):
    """CDPAM's base encoder: ``content`` and ``acoustic`` 512-d clip vectors.

    Args:
        spec, device: see ``Extractor``.
        weights: a CDPAM checkpoint file (or its folder); default: the one inside the wheel.
        precision: see ``precision.PRECISIONS`` (``"auto"``: bf16 autocast on bf16 CPUs, cosine
            0.99999 to fp32 on the real weights).

    Example:
        >>> # SKIP: loads the CDPAM model (over a minute on a small CPU; tests/extractors/test_cdpam.py runs it)
        >>> from embedprobe.extractors import create
        >>> ext = create("cdpam").load()                                # doctest: +SKIP
        >>> ext.embed(np.zeros(22050, np.float32))["content"].shape    # doctest: +SKIP
        (1, 512)
    """

    def __init__(self, spec: ExtractorSpec, *, device: str = "cpu", weights: str | Path | None = None,
                 precision: str = "auto", _random_config: dict[str, int] | None = None):
        super().__init__(spec, device=device, weights=weights)
        self.requested_precision = self.check_precision(precision)
        self._random_config = _random_config
        self._runtime: dict[str, Any] = {}
        self._revision: str | None = None

    def _checkpoint(self) -> Path:
        if self.weights is not None:
            path = self.weights / Path(CHECKPOINT).name if self.weights.is_dir() else self.weights
            if not path.is_file():
                raise MissingWeightsError(f"CDPAM weights not found at '{path}': pass the .pth file "
                                          "(or its folder), or omit --weights to use the wheel's own.")
            return path
        return package_dir() / CHECKPOINT

    def weights_present(self) -> bool | None:
        if self._random_config is not None:
            return True
        try:
            return self._checkpoint().is_file()
        except (MissingDependencyError, MissingWeightsError):
            return False

    def weights_revision(self) -> str | None:
        return self._revision or self.spec.weights_revision

    def _load(self) -> None:
        import torch

        models = models_module()
        if self._random_config is not None:
            torch.manual_seed(0)
            encoder = models.base_encoder(n_layers=self._random_config["n_layers"],
                                          nefilters=self._random_config["nefilters"])
            source = self._revision = "random-init"
        else:
            path = self._checkpoint()
            if not path.is_file():
                raise MissingWeightsError(f"CDPAM weights '{CHECKPOINT}' are missing from the cdpam "
                                          f"package at '{package_dir()}': reinstall it (pip install cdpam).")
            ckpt = load_checkpoint(path, trust_pickle=self.trust_pickle)
            state = ckpt["state"] if isinstance(ckpt, dict) and "state" in ckpt else ckpt
            net = models.FINnet(**FINNET)
            net.load_state_dict(state, strict=True)
            encoder, source = net.base_encoder, str(path)
            self._revision = checkpoint_revision(path)
        channels = encoder.encoder[-1].out_channels
        if channels // 2 != self.spec.dim:
            raise BadValueError(f"checkpoint for {self.spec.name}", source,
                                fix=f"Its encoder ends in {channels} channels, expected {2 * self.spec.dim}")
        self.model = encoder.to(self.device).eval().float()
        self.model.requires_grad_(False)
        self.precision_ = self._resolve_precision()
        info = self._prepare_model(self.model, fuse_attention=False)
        self._runtime = {**info, "device": str(self.device), "weights": source, "revision": self._revision,
                         "input_scale": 32768.0, **versions()}

    def n_frames(self, n_samples: int) -> int:
        return 1

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        self.load()
        wav = np.round(as_mono_float32(wav) * np.float32(32768.0))  # cdpam.load_audio's 16-bit scale
        x = to_device(wav, self.device)[None, None]
        with inference(self.precision_, self.device):
            _, acoustic, content = self.model(x)
        return {"content": content.float().cpu().numpy(), "acoustic": acoustic.float().cpu().numpy()}

    @classmethod
    def for_tests(cls, spec: ExtractorSpec) -> Extractor:
        """CDPAM's architecture at 8 layers x 8 filters (32 channels): 16-d halves, random init."""
        return cls(replace(spec, dim=16), _random_config={"n_layers": 8, "nefilters": 8})


CDPAM_SPEC = register(ExtractorSpec(
    name="cdpam", family="cdpam", sample_rate=SAMPLE_RATE, dim=512, layers=("content", "acoustic"),
    hop_s=None, weights_id=f"cdpam==0.0.6:{CHECKPOINT}", weights_revision=REVISION, licence="MIT",
    extra="cdpam", min_duration_s=0.0,
    description="CDPAM base encoder: content (the poster's CDPAM-cont) and acoustic 512-d clip vectors",
    params=(("input_scale", 32768.0), ("pool", "time mean")),
), CDPAMEncoder)

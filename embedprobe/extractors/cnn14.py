"""PANNs CNN14 (AudioSet tagging CNN): the 2048-d clip embedding, or 2048-d frames every 0.32 s.

About the model:
    CNN14 from "PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern
    Recognition" (Kong et al., IEEE/ACM TASLP 2020), trained on AudioSet (527 classes).
    Official checkpoints, Zenodo record 3987831 (CC-BY-4.0):

    * ``cnn14-16k[-frames]``: 16 kHz, window 512, hop 160, 64 mel 50-8000 Hz,
      ``Cnn14_16k_mAP=0.438.pth``;
    * ``cnn14-32k[-frames]``: 32 kHz, window 1024, hop 320, 64 mel 50-14000 Hz,
      ``Cnn14_mAP=0.431.pth``.

What embedprobe computes:
    The network is written here (``nets/cnn14.py``) and matches ``panns_inference.models.Cnn14``
    in eval mode (tests compare both on identical random weights). Two variants per
    checkpoint, because a clip vector and a frame sequence have different frame counts:

    * ``cnn14-16k`` / ``cnn14-32k``, layer ``"embedding"``: the official clip embedding
      (``fc1`` after ReLU, the vector ``panns_inference.AudioTagging`` returns), one row
      ``(1, 2048)`` per input (``hop_s = None``).
    * ``cnn14-16k-frames`` / ``cnn14-32k-frames``, layer ``"frames"``: conv_block6's output
      averaged over frequency, ``(n_frames, 2048)``, one frame per 32 STFT hops (0.32 s at
      either rate); frame ``t`` summarises STFT frames ``32 t ... 32 t + 31`` (centred on
      samples ``hop * 32 t`` onwards); trailing STFT frames that do not fill a group of 32
      are dropped, as in the model. ``n_frames(n) = (1 + n // hop) // 32``. These are the
      features the clip embedding pools (``max_t + mean_t``, then ``fc1``).

    Inputs shorter than 31 hops (0.31 s) are zero-padded to that length, so that one frame
    exists. Clips of equal length are batched in ``embed_batch``; different lengths run one
    by one (a CNN has no padding mask, so padding would change the numbers).

Precision (``precision=``, default ``"auto"``, see ``extractors.precision``): on CPUs with native bf16 the
conv blocks and ``fc1`` run under bf16 autocast with bf16 weights (embeddings and frames at
cosine 0.99999 to fp32 on EmoDB speech, ~2x faster); the STFT and mel projection always run
in fp32 (bf16 put the log-mel off by up to 13 dB in quiet bins). In every precision the big
convolutions of the last blocks run as one matrix multiply on the short clips' small maps
(``conv_gemm.use_matmul_convs``: the same fp32 numbers to ~1e-6, 1.5x faster in fp32).
``precision="fp32"`` is the reference the golden tests use.

Weights are looked up by ``embedprobe.extractors.weights`` (``--weights``, ``$EMBEDPROBE_WEIGHTS``,
``~/.cache/embedprobe/weights/``, then ``~/panns_data/`` where ``panns_inference`` keeps them).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from embedprobe.extractors.base import ExtractorSpec, as_mono_float32
from embedprobe.extractors.checkpoint import CheckpointExtractor
from embedprobe.extractors.precision import to_device
from embedprobe.extractors.registry import register
from embedprobe.extractors.weights import extract_state_dict

_ZENODO = "https://zenodo.org/record/3987831"
_BATCH = 16  # clips per forward pass


class Cnn14Extractor(CheckpointExtractor):
    """PANNs CNN14: the clip embedding (``cnn14-*``) or the frame sequence (``cnn14-*-frames``).

    Example:
        >>> from embedprobe.extractors import create
        >>> # SKIP: needs the CNN14 checkpoint (downloaded, ~300 MB)
        >>> ext = create("cnn14-16k", weights="~/models/Cnn14_16k_mAP=0.438.pth").load()  # doctest: +SKIP
        >>> out = ext.embed(np.zeros(32000, np.float32))  # doctest: +SKIP
        >>> out["embedding"].shape  # doctest: +SKIP
        (1, 2048)
    """
    chunk_context_s = (2.5, 2.5)  # the frame receptive field (~2 s, measured): frames equal the whole's

    what = "CNN14"
    extra_dirs = (os.path.join("~", "panns_data"),)

    @classmethod
    def for_tests(cls, spec: ExtractorSpec) -> Cnn14Extractor:
        """A random-init CNN14 with narrow conv blocks (dim 32) and the real front end."""
        widths = (8, 8, 16, 16, 32, 32)
        small = replace(spec, dim=widths[-1],
                        params=tuple(sorted({**dict(spec.params), "widths": widths}.items())))
        return cls.random_init(small, seed=0)

    def _build(self, paths: list[Path] | None) -> None:
        import torch

        from embedprobe.extractors.nets.cnn14 import DERIVED_KEYS, WIDTHS, Cnn14

        p = self.spec.param
        net = self._network(lambda: Cnn14(
            self.spec.sample_rate, int(p("window_size")), int(p("hop_size")), int(p("mel_bins")),
            float(p("fmin")), float(p("fmax")), widths=tuple(p("widths", WIDTHS))),
            lambda: extract_state_dict(self._checkpoint(paths[0])), derived=DERIVED_KEYS)
        self._net = net.eval().to(self.device)
        self._torch = torch

    def _fast_modules(self):
        net = self._net  # the STFT and mel projection stay fp32: bf16 rounding ruins quiet bins
        return net, (net.spectrogram_extractor, net.logmel_extractor)

    # -- compute -------------------------------------------------------------------------------
    def _min_samples(self) -> int:
        from embedprobe.extractors.nets.cnn14 import TIME_STRIDE

        return (TIME_STRIDE - 1) * int(self.spec.param("hop_size"))

    def n_frames(self, n_samples: int) -> int:
        if self.spec.hop_s is None:
            return 1
        return (1 + max(n_samples, self._min_samples()) // int(self.spec.param("hop_size"))) // 32

    def _forward(self, batch: np.ndarray) -> list[dict[str, np.ndarray]]:
        with self._inference():
            out = self._net(to_device(batch, self.device))
        got = {"embedding": out["embedding"][:, None], "frames": out["frames"]}
        arrays = {layer: got[layer].float().cpu().numpy() for layer in self.spec.layers}
        return [{layer: np.ascontiguousarray(a[i]) for layer, a in arrays.items()}
                for i in range(len(batch))]

    def _prepare(self, wav: np.ndarray) -> np.ndarray:
        wav = as_mono_float32(wav)
        short = self._min_samples() - wav.shape[0]
        return np.pad(wav, (0, short)) if short > 0 else wav

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        self.load()
        return self._forward(self._prepare(wav)[None])[0]

    def embed_batch(self, wavs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Clips of equal length share one forward pass; the results equal ``embed`` one by one."""
        self.load()
        ready = [self._prepare(w) for w in wavs]
        by_len: dict[int, list[int]] = {}
        for i, w in enumerate(ready):
            by_len.setdefault(w.shape[0], []).append(i)
        results: list[dict[str, np.ndarray]] = [{} for _ in ready]
        for same in by_len.values():
            for s in range(0, len(same), _BATCH):  # bounded activation memory
                idx = same[s:s + _BATCH]
                for i, r in zip(idx, self._forward(np.stack([ready[i] for i in idx])), strict=True):
                    results[i] = r
        return results


def _spec(name: str, sr: int, window: int, hop: int, fmax: int, file: str,
          frames: bool) -> ExtractorSpec:
    params = {
        "window_size": window, "hop_size": hop, "mel_bins": 64, "fmin": 50, "fmax": fmax,
        "weights_file": file, "weights_url": _ZENODO,
    }
    what = "conv_block6 frames every 0.32 s" if frames else "fc1 clip embedding"
    return ExtractorSpec(
        name=name + ("-frames" if frames else ""),
        family="cnn14",
        sample_rate=sr,
        dim=2048,
        layers=("frames",) if frames else ("embedding",),
        hop_s=32 * hop / sr if frames else None,
        weights_id=file,
        weights_revision="zenodo:3987831",
        licence="CC-BY-4.0 (PANNs weights, Zenodo 3987831); network code MIT",
        extra=None,
        min_duration_s=31 * hop / sr,
        description=f"PANNs CNN14 AudioSet tagger at {sr // 1000} kHz: {what}",
        params=tuple(sorted(params.items())),
    )


_16K = ("cnn14-16k", 16000, 512, 160, 8000, "Cnn14_16k_mAP=0.438.pth")
_32K = ("cnn14-32k", 32000, 1024, 320, 14000, "Cnn14_mAP=0.431.pth")
CNN14_16K = register(_spec(*_16K, frames=False), Cnn14Extractor)
CNN14_16K_FRAMES = register(_spec(*_16K, frames=True), Cnn14Extractor)
CNN14_32K = register(_spec(*_32K, frames=False), Cnn14Extractor)
CNN14_32K_FRAMES = register(_spec(*_32K, frames=True), Cnn14Extractor)

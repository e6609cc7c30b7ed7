"""Microsoft CLAP 2023 audio encoder (HTS-AT + projection): one 1024-d embedding per 7 s window.

About the model:
    CLAP 2023 from "Natural Language Supervision for General-Purpose Audio Representations"
    (Elizalde, Deshmukh, Wang, ICASSP 2024), microsoft/CLAP, MIT licence. Audio encoder:
    HTS-AT (Swin transformer on a log-mel image, AudioSet-pretrained), trained contrastively
    against a GPT-2 text encoder on 4.6 M audio-text pairs; the audio embedding is the 768-d
    HTS-AT latent through CLAP's projection head (1024-d, layer-normed, not L2-normalised).
    Checkpoint ``CLAP_weights_2023.pth`` (Hugging Face repo ``microsoft/msclap``); only its
    ``audio_encoder.*`` tensors are used, the text encoder is never built.

What embedprobe computes (``nets/htsat.py``, checked against msclap on identical weights):
    Input is 44.1 kHz mono, as msclap's ``CLAPWrapper`` feeds it (its HTS-AT front end is
    configured for 32 kHz; the weights were trained that way, see ``nets/htsat.py``).
    msclap embeds exactly 7 s (``config_2023.yml``: ``duration: 7``):

    * a clip of at most 7 s is repeated end to end and cut to 7 s, exactly as
      ``CLAPWrapper.load_audio_into_tensor`` does: one embedding, identical to msclap's;
    * a longer clip, where msclap takes one *random* 7 s crop, is cut deterministically into
      ``ceil(n / 7 s)`` windows starting every 7 s, the last one ending at the clip's end
      (so it may overlap the previous one): one embedding per window.

    Layer ``"embedding"``; ``hop_s = 7.0``; ``n_frames(n) = max(1, ceil(n / 308700))``.
    Mean-pool the frames for a clip vector. ``embed_batch`` runs all windows of all clips
    together (every window has the same length, so nothing is padded).

Precision (``precision=``, default ``"auto"``, see ``extractors.precision``): on CPUs with native bf16 the
HTS-AT and the projection run under bf16 autocast (cosine 0.99996 to fp32 on EmoDB speech,
~1.5x faster); the STFT and mel projection stay fp32: in bf16 the log-mel of 16 kHz speech
fed at 44.1 kHz was 6 dB off on average (its top bands hold little but rounding noise).

Weights are looked up by ``embedprobe.extractors.weights``: ``--weights``,
``$EMBEDPROBE_WEIGHTS``, ``~/.cache/embedprobe/weights/``, then the Hugging Face cache of
``microsoft/msclap`` (where ``msclap`` itself downloads it), and a download when online.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from embedprobe.extractors.base import ExtractorSpec, as_mono_float32
from embedprobe.extractors.checkpoint import CheckpointExtractor
from embedprobe.extractors.precision import to_device
from embedprobe.extractors.registry import register
from embedprobe.extractors.weights import extract_state_dict

_SR = 44100
_DURATION_S = 7
_WINDOW = _SR * _DURATION_S
_BATCH = 8  # windows per forward pass (bounds activation memory)


def windows(wav: np.ndarray, length: int = _WINDOW) -> np.ndarray:
    """The ``(k, length)`` windows a clip is embedded as (see the module docstring)."""
    n = wav.shape[0]
    if n <= length:
        return np.tile(wav, math.ceil(length / n))[:length][None]
    starts = [min(i * length, n - length) for i in range(math.ceil(n / length))]
    return np.stack([wav[s:s + length] for s in starts])


class ClapAudioExtractor(CheckpointExtractor):
    """MS-CLAP 2023 audio embeddings (1024-d), one per 7 s window.

    Example:
        >>> from embedprobe.extractors import create
        >>> # SKIP: needs the CLAP checkpoint (downloaded, ~700 MB)
        >>> ext = create("clap-2023", weights="~/models/CLAP_weights_2023.pth").load()  # doctest: +SKIP
        >>> ext.embed(np.zeros(44100 * 3, np.float32))["embedding"].shape  # doctest: +SKIP
        (1, 1024)
    """
    chunk_context_s = (0.0, 7.0)  # one 7 s window: own windows complete, the last one as in the whole

    what = "MS-CLAP 2023"

    @classmethod
    def for_tests(cls, spec: ExtractorSpec) -> ClapAudioExtractor:
        """A random-init encoder with a narrow HTS-AT (8-d patches) and a 32-d projection."""
        small = {"embed_dim": 8, "heads": (1, 1, 2, 2), "d_proj": 32}
        spec = replace(spec, dim=32, params=tuple(sorted({**dict(spec.params), **small}.items())))
        return cls.random_init(spec, seed=0)

    def _build(self, paths: list[Path] | None) -> None:
        import torch

        from embedprobe.extractors.nets.common import strip_prefix
        from embedprobe.extractors.nets.htsat import DERIVED_KEYS, ClapAudioEncoder

        p = self.spec.param
        net = self._network(lambda: ClapAudioEncoder(
            d_proj=self.spec.dim, embed_dim=int(p("embed_dim", 96)),
            depths=tuple(p("depths", (2, 2, 6, 2))), heads=tuple(p("heads", (4, 8, 16, 32)))),
            lambda: strip_prefix(extract_state_dict(self._checkpoint(paths[0], mmap=True)), "audio_encoder."),
            derived=DERIVED_KEYS)
        self._net = net.eval().to(self.device)
        self._torch = torch

    def _fast_modules(self):
        htsat = self._net.base.htsat  # its STFT and mel projection stay fp32 (see cnn14)
        return self._net, (htsat.spectrogram_extractor, htsat.logmel_extractor)

    # -- compute -------------------------------------------------------------------------------
    def n_frames(self, n_samples: int) -> int:
        return max(1, math.ceil(n_samples / _WINDOW))

    def _run(self, wins: np.ndarray) -> np.ndarray:
        out = []
        with self._inference():
            for s in range(0, len(wins), _BATCH):
                x = to_device(wins[s:s + _BATCH], self.device)
                out.append(self._net(x)["embedding"].float().cpu().numpy())
        return np.concatenate(out)

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        self.load()
        return {"embedding": self._run(windows(as_mono_float32(wav)))}

    def embed_batch(self, wavs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """All 7 s windows of all clips in shared forward passes, split back per clip."""
        if not wavs:
            return []
        self.load()
        parts = [windows(as_mono_float32(w)) for w in wavs]
        emb = self._run(np.concatenate(parts))
        bounds = np.cumsum([0] + [len(x) for x in parts])
        return [{"embedding": emb[a:b]} for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


CLAP_2023 = register(ExtractorSpec(
    name="clap-2023",
    family="msclap",
    sample_rate=_SR,
    dim=1024,
    layers=("embedding",),
    hop_s=float(_DURATION_S),
    weights_id="microsoft/msclap:CLAP_weights_2023.pth",
    weights_revision=None,
    licence="MIT (microsoft/CLAP code and weights)",
    extra=None,
    min_duration_s=0.0,
    description="Microsoft CLAP 2023 audio encoder (HTS-AT), 1024-d projected embedding per 7 s window",
    params=tuple(sorted({
        "weights_file": "CLAP_weights_2023.pth", "hf_repo": "microsoft/msclap",
        "weights_url": "https://huggingface.co/microsoft/msclap/resolve/main/CLAP_weights_2023.pth",
        "duration_s": _DURATION_S, "short_clips": "repeat", "long_clips": "7s-windows",
        "frontend_sample_rate": 32000, "window_size": 1024, "hop_size": 320, "mel_bins": 64,
        "fmin": 50, "fmax": 14000,
    }.items())),
), ClapAudioExtractor)

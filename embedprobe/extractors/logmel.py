"""Log-mel spectrogram frames: the "Mel-Spec 128" baseline of the seed poster.

About the feature:
    Frames are per-frame log-mel vectors ``log(mel + eps)`` of 128 mel bands at 16 kHz:
    a 25 ms periodic Hann window (400 samples) zero-padded to a 512-point FFT, 10 ms hop
    (160 samples), centred framing with zero padding (frame ``t`` is centred on sample
    ``160 t``, so ``1 + n_samples // 160`` frames), power spectrum, Slaney-scale mel filters
    from 0 Hz to 8 kHz with Slaney area normalisation (librosa's defaults), natural log with
    ``eps = 1e-6``. No weights; computed in numpy (one vectorised FFT per block of frames),
    so it needs no optional dependency. Pool the frames (mean, or mean+std) for a clip-level
    vector, as the poster's 128-d baseline does.

Every setting lives in the spec's ``params``, so a cache records exactly what made it.
"""

from __future__ import annotations

import numpy as np

from embedprobe.extractors._mel import mel_spectrogram, n_stft_frames
from embedprobe.extractors.base import Extractor, ExtractorSpec, as_mono_float32
from embedprobe.extractors.registry import register


class LogMel(Extractor):
    """Log-mel spectrogram frames ``(n_frames, n_mels)``; the only layer is ``"logmel"``.

    Example:
        >>> from embedprobe.extractors import create
        >>> ext = create("logmel-128").load()
        >>> ext.embed(np.zeros(16000, np.float32))["logmel"].shape
        (101, 128)
    """
    chunk_context_s = (0.05, 0.05)  # one 512-sample STFT window: chunked frames equal the whole's

    def _load(self) -> None:
        p = dict(self.spec.params)
        self._kw = dict(
            n_fft=int(p["n_fft"]),
            hop_length=int(p["hop_length"]),
            win_length=int(p["win_length"]),
            n_mels=int(p["n_mels"]),
            fmin=float(p["fmin"]),
            fmax=float(p["fmax"]),
            power=float(p["power"]),
            htk=p["mel_scale"] == "htk",
            norm=p["norm"],
        )
        self._eps = np.float32(p["log_eps"])

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        self.load()
        wav = as_mono_float32(wav)
        mel = mel_spectrogram(wav, self.spec.sample_rate, **self._kw)
        np.log(mel + self._eps, out=mel)
        return {self.spec.layers[0]: mel}

    def n_frames(self, n_samples: int) -> int:
        return n_stft_frames(
            n_samples, int(self.spec.param("hop_length")), int(self.spec.param("n_fft"))
        )


def _spec(n_mels: int) -> ExtractorSpec:
    sr = 16000
    params = {
        "n_fft": 512,
        "win_length": 400,
        "hop_length": 160,
        "n_mels": n_mels,
        "fmin": 0.0,
        "fmax": sr / 2,
        "power": 2.0,
        "mel_scale": "slaney",
        "norm": "slaney",
        "log_eps": 1e-6,
        "window": "hann",
        "center": True,
        "pad_mode": "constant",
    }
    return ExtractorSpec(
        name=f"logmel-{n_mels}",
        family="logmel",
        sample_rate=sr,
        dim=n_mels,
        layers=("logmel",),
        hop_s=params["hop_length"] / sr,
        licence="MIT (embedprobe code; no weights)",
        extra=None,
        min_duration_s=0.0,
        description=f"log-mel spectrogram, {n_mels} bands, 25 ms window / 10 ms hop (the poster's Mel-Spec baseline)",
        params=tuple(sorted(params.items())),
    )


LOGMEL_128 = register(_spec(128), LogMel)

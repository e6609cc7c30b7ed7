"""Synthetic signals shared by the augmentation and acoustics tests (imported, not a conftest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 16000


def burst_train(seed: int, dur: float = 3.0, sr: int = SR) -> np.ndarray:
    """Noise bursts of 0.1-0.3 s with abrupt offsets and 0.4-0.7 s gaps: clean free decays."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(dur * sr))
    i = int(0.1 * sr)
    while i < len(x) - int(0.3 * sr):
        n = int(rng.uniform(0.1, 0.3) * sr)
        x[i:i + n] = rng.standard_normal(n) * rng.uniform(0.3, 1.0)
        i += n + int(rng.uniform(0.4, 0.7) * sr)
    return x


def exp_rir(t60: float, seed: int, sr: int = SR) -> np.ndarray:
    """Exponentially decaying Gaussian noise: an ideal diffuse room of reverberation time ``t60``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(1.2 * t60 * sr)) / sr
    return rng.standard_normal(len(t)) * np.exp(-3 * np.log(10) * t / t60)


def reverberate(x: np.ndarray, t60: float, seed: int) -> np.ndarray:
    from scipy.signal import fftconvolve

    y = fftconvolve(x, exp_rir(t60, seed))[: len(x)]
    return (0.9 * y / np.max(np.abs(y))).astype(np.float32)


def speech(seed: int = 0, dur: float = 2.0, sr: int = SR) -> np.ndarray:
    """A voiced-like test clip: harmonic tone with f0 glide, syllable envelope and pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(dur * sr)) / sr
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    ph = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * ph + rng.uniform(0, 6)) / k for k in range(1, 30))
    env = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None) ** 2
    y = x * env
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def emodb_clips(root: Path, n: int, step: int = 20) -> list[tuple[str, np.ndarray]]:
    """Every ``step``-th EmoDB clip (sorted by name), at most ``n``: (id, 16 kHz float32)."""
    import soundfile as sf

    files = sorted((root / "wav").glob("*.wav"))[::step][:n]
    return [(f.stem, sf.read(f, dtype="float32")[0]) for f in files]

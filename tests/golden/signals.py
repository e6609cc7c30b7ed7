"""The deterministic test input of the golden fixtures (stored in the fixtures as well).

Also the input of the extractor contract tests (``tests/extractors/test_contract.py``,
with half the noise).
"""

from __future__ import annotations

import numpy as np


def speechlike(seconds: float, sr: int, seed: int = 0, noise: float = 0.02) -> np.ndarray:
    """A gliding harmonic tone with syllable-rate amplitude plus white noise of std ``noise``, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    return (0.2 * envelope * voiced + noise * rng.standard_normal(len(t))).astype(np.float32)

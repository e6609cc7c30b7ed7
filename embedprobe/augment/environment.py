"""Recording-environment augmentations: additive pink noise and artificial reverberation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedprobe.augment.base import AugmentSpec, check_range, register, uniform
from embedprobe.augment.temporal import _pedalboard


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of pink (1/f power, -3 dB/octave) Gaussian noise with unit variance.

    White Gaussian noise is shaped in the frequency domain by ``1/sqrt(f)`` (DC removed),
    so the slope holds exactly from the lowest FFT bin to Nyquist.
    """
    if n <= 1:
        return np.zeros(n, dtype=np.float32)
    spec = np.fft.rfft(rng.standard_normal(n))
    k = np.arange(spec.size, dtype=np.float64)
    k[0] = np.inf  # no DC
    y = np.fft.irfft(spec / np.sqrt(k), n)
    y /= np.sqrt(np.mean(y**2)) + 1e-30
    return y.astype(np.float32)


@dataclass(frozen=True)
class PinkNoise(AugmentSpec):
    """Add pink noise at an SNR drawn uniformly in ``snr_db`` (dB).

    The SNR is the ratio of the clip's mean power (over all samples, pauses included) to the
    noise's mean power, so it matches what an SNR meter sees on the whole clip. The noise
    itself is regenerated from ``noise_seed`` (drawn from the clip's generator and recorded).
    The paper gives no SNR range; 10-30 dB spans "noticeably noisy" to "quiet room". A silent
    clip (zero power) is returned unchanged. Length is unchanged.

    Attributes:
        snr_db: SNR range in dB.
    """

    kind = "pink_noise"

    snr_db: tuple[float, float] = (10.0, 30.0)

    def __post_init__(self) -> None:
        check_range("pink-noise SNR range (dB)", *self.snr_db, low=-30.0, high=120.0)

    def draw(self, rng: np.random.Generator, n_samples: int, sr: int) -> dict[str, Any]:
        return {"snr_db": uniform(rng, *self.snr_db), "noise_seed": int(rng.integers(2**63))}

    def _apply(self, wav: np.ndarray, sr: int, params: dict[str, Any]) -> np.ndarray:
        p_sig = float(np.mean(wav.astype(np.float64) ** 2)) if wav.size else 0.0
        if p_sig <= 0.0:
            return wav.copy()
        noise = pink_noise(len(wav), np.random.default_rng(int(params["noise_seed"])))
        gain = np.sqrt(p_sig / 10.0 ** (float(params["snr_db"]) / 10.0))
        return (wav.astype(np.float64) + gain * noise).astype(np.float32)


@dataclass(frozen=True)
class Reverb(AugmentSpec):
    """Artificial room reverberation with pedalboard's ``Reverb`` (JUCE's Freeverb).

    As in the paper: room size drawn uniformly in ``[0, max_room_size]`` (0.2), wet level in
    ``[0, max_wet_level]`` (0.5), dry level fixed at ``dry_level`` (0.4); damping and width
    stay at pedalboard's defaults. Freeverb is deterministic, so there is no noise seed.
    The output keeps the input length: the tail after the last sample is cut, as in a
    recording that stops. Note that with dry 0.4 the clip gets quieter (Freeverb scales the
    dry path by 2, so about -2 dB before the wet path is added); the level is not restored.

    Attributes:
        max_room_size: upper end of the room-size range (0-1).
        max_wet_level: upper end of the wet-level range (0-1).
        dry_level: fixed dry level (0-1).
        damping: high-frequency damping of the tail (0-1).
    """

    kind = "reverb"
    extra = "augment"

    max_room_size: float = 0.2
    max_wet_level: float = 0.5
    dry_level: float = 0.4
    damping: float = 0.5

    def __post_init__(self) -> None:
        check_range("reverb room size", 0.0, self.max_room_size, low=0.0, high=1.0)
        check_range("reverb wet level", 0.0, self.max_wet_level, low=0.0, high=1.0)
        check_range("reverb dry level", 0.0, self.dry_level, low=0.0, high=1.0)
        check_range("reverb damping", 0.0, self.damping, low=0.0, high=1.0)

    def draw(self, rng: np.random.Generator, n_samples: int, sr: int) -> dict[str, Any]:
        return {
            "room_size": uniform(rng, 0.0, self.max_room_size),
            "wet_level": uniform(rng, 0.0, self.max_wet_level),
        }

    def _apply(self, wav: np.ndarray, sr: int, params: dict[str, Any]) -> np.ndarray:
        board = _pedalboard().Reverb(
            room_size=float(params["room_size"]),
            wet_level=float(params["wet_level"]),
            dry_level=float(self.dry_level),
            damping=float(self.damping),
        )
        return board(wav[None, :], float(sr))[0]


register(PinkNoise())
register(Reverb())

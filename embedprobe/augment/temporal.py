"""Time-axis augmentations: time stretch, time shift and fade in/out (paper section 5.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedprobe.augment.base import AugmentSpec, check_range, register, uniform
from embedprobe.errors import BadValueError, MissingDependencyError


def _pedalboard():
    try:
        import pedalboard
    except ImportError:
        raise MissingDependencyError("pedalboard", "augment", "time stretch and reverberation") from None
    return pedalboard


@dataclass(frozen=True)
class TimeStretch(AugmentSpec):
    """Change the speaking rate, keep the pitch.

    ``factor`` is drawn uniformly in ``[min_factor, max_factor]``; a factor above 1 speeds
    speech up, so the output has ``round(n / factor)`` samples (the paper limits the factor
    to [0.9, 1.2] "to prevent altering of the emotional signature"). The duration change is
    the point of the augmentation, so the output length is not restored unless
    ``keep_length`` is set (then the output is cropped or zero-padded at the end).

    Implementation: Rubber Band through ``pedalboard.time_stretch`` (high-quality mode,
    formants preserved). There is deliberately no fallback to another stretcher: the same
    (spec, seed, clip, copy) must give the same audio on every machine.

    Attributes:
        min_factor: lowest speed factor (0.9 = 10 % slower, 11 % longer).
        max_factor: highest speed factor (1.2 = 20 % faster, 17 % shorter).
        keep_length: crop or zero-pad the output back to the input length.
    """

    kind = "time_stretch"
    extra = "augment"

    min_factor: float = 0.9
    max_factor: float = 1.2
    keep_length: bool = False

    def __post_init__(self) -> None:
        check_range("time-stretch factor range", self.min_factor, self.max_factor, low=0.25, high=4.0)

    def draw(self, rng: np.random.Generator, n_samples: int, sr: int) -> dict[str, Any]:
        return {"factor": uniform(rng, self.min_factor, self.max_factor)}

    def out_length(self, n_samples: int, sr: int, params: dict[str, Any]) -> int:
        return n_samples if self.keep_length else int(round(n_samples / float(params["factor"])))

    def _apply(self, wav: np.ndarray, sr: int, params: dict[str, Any]) -> np.ndarray:
        factor = float(params["factor"])
        n_out = self.out_length(len(wav), sr, params)
        if factor == 1.0 or len(wav) == 0:
            y = wav.copy()
        else:
            y = _pedalboard().time_stretch(wav[None, :], float(sr), stretch_factor=factor)[0]
        return _fit(y, n_out)


@dataclass(frozen=True)
class TimeShift(AugmentSpec):
    """Move the content in time by up to ``max_fraction`` of the clip, either way.

    The shift is drawn uniformly in ``[-max_fraction, max_fraction] * n`` samples (positive =
    later). ``mode="zero"`` (default) shifts in silence and drops what falls off the end, so
    it changes what the model sees at the edges; ``mode="roll"`` is a circular shift that
    keeps every sample (the wrap point becomes a splice). Length is unchanged.

    Attributes:
        max_fraction: largest shift as a fraction of the clip length, in [0, 0.5].
        mode: ``"zero"`` or ``"roll"``.
    """

    kind = "time_shift"

    max_fraction: float = 0.1
    mode: str = "zero"

    def __post_init__(self) -> None:
        check_range("time-shift fraction", 0.0, self.max_fraction, low=0.0, high=0.5)
        if self.mode not in ("zero", "roll"):
            raise BadValueError("time-shift mode", self.mode, ["zero", "roll"])

    def draw(self, rng: np.random.Generator, n_samples: int, sr: int) -> dict[str, Any]:
        limit = int(np.floor(self.max_fraction * n_samples))
        return {"shift": int(rng.integers(-limit, limit + 1)) if limit > 0 else 0}

    def _apply(self, wav: np.ndarray, sr: int, params: dict[str, Any]) -> np.ndarray:
        k = int(params["shift"])
        if self.mode == "roll" or k == 0:
            return np.roll(wav, k)
        y = np.zeros_like(wav)
        if abs(k) < len(wav):
            if k > 0:
                y[k:] = wav[:-k]
            else:
                y[:k] = wav[-k:]
        return y


@dataclass(frozen=True)
class Fade(AugmentSpec):
    """Fade in at the start and out at the end, together over at most ``max_fraction`` of the clip.

    Our reading of the paper's "Fading in no more than 10% of the signal": the fade-in and
    the fade-out lengths are each drawn uniformly in ``[0, max_fraction / 2] * n``, so at
    most ``max_fraction`` of the samples are attenuated. The shape (``linear`` gain ramp or
    ``cosine``, a half Hann window) is drawn per copy. Length is unchanged.

    Attributes:
        max_fraction: largest faded share of the clip (fade-in + fade-out), in [0, 1].
        shapes: fade shapes to draw from.
    """

    kind = "fade"

    max_fraction: float = 0.1
    shapes: tuple[str, ...] = ("linear", "cosine")

    def __post_init__(self) -> None:
        check_range("fade fraction", 0.0, self.max_fraction, low=0.0, high=1.0)
        bad = [s for s in self.shapes if s not in ("linear", "cosine")]
        if bad or not self.shapes:
            raise BadValueError("fade shapes", self.shapes, ["linear", "cosine"])

    def draw(self, rng: np.random.Generator, n_samples: int, sr: int) -> dict[str, Any]:
        half = int(np.floor(self.max_fraction / 2 * n_samples))
        return {
            "fade_in": int(rng.integers(0, half + 1)),
            "fade_out": int(rng.integers(0, half + 1)),
            "shape": str(self.shapes[int(rng.integers(len(self.shapes)))]),
        }

    def _apply(self, wav: np.ndarray, sr: int, params: dict[str, Any]) -> np.ndarray:
        y = wav.copy()
        n_in = min(int(params["fade_in"]), len(y))
        n_out = min(int(params["fade_out"]), len(y))
        if n_in:
            y[:n_in] *= _ramp(n_in, params["shape"])
        if n_out:
            y[len(y) - n_out:] *= _ramp(n_out, params["shape"])[::-1]
        return y


def _ramp(n: int, shape: str) -> np.ndarray:
    """Gain rising from 0 (first sample) towards 1 over ``n`` samples."""
    t = np.arange(n, dtype=np.float64) / n
    g = t if shape == "linear" else 0.5 - 0.5 * np.cos(np.pi * t)
    return g.astype(np.float32)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad ``y`` at the end to exactly ``n`` samples."""
    if len(y) >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - len(y), dtype=y.dtype)])


register(TimeStretch())
register(TimeShift())
register(Fade())

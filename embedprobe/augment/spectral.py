"""Spectral augmentations: SpecAugment masks (waveform and mel domain) and Butterworth equalisation.

SpecAugment (Park et al., Interspeech 2019) masks bands of mel channels and spans of
frames. Waveform models never see a spectrogram, so :class:`SpecAugment` applies the masks
to an STFT and resynthesises (``scipy.signal.stft`` / ``istft``, Hann window, 75 % overlap);
frequency masks are drawn on the mel (HTK) scale and recorded in Hz, time masks in seconds.
Extractors that expose their mel input can instead call :func:`spec_augment_mel`, which
masks mel bins and frames directly (numpy arrays or torch tensors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedprobe.augment.base import AugmentSpec, check_range, log_uniform, register, uniform
from embedprobe.errors import BadValueError


def _hz_to_mel(f: float) -> float:
    return 2595.0 * float(np.log10(1.0 + f / 700.0))


def _mel_to_hz(m: float) -> float:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@dataclass(frozen=True)
class SpecAugment(AugmentSpec):
    """Time and frequency masks on the STFT, resynthesised to a waveform of the same length.

    Defaults follow SpecAugment's "SM" policy (F=15 of 80 mel channels, 2 frequency masks;
    T=70 frames of 10 ms, at most p=0.2 of the utterance, 2 time masks) in physical units:
    each frequency mask is up to ``max_freq_width`` of the mel range wide, each time mask up
    to ``min(max_time_s, max_time_fraction * duration)`` long. Widths are drawn uniformly
    from 0, positions uniformly where the mask fits. Masked STFT bins are set to zero.

    Attributes:
        n_freq_masks: number of frequency masks.
        max_freq_width: largest frequency-mask width as a fraction of the mel range (0-1).
        n_time_masks: number of time masks.
        max_time_s: largest time-mask width in seconds.
        max_time_fraction: largest time-mask width as a fraction of the clip.
        win_s: STFT window length in seconds (rounded to samples).
    """

    kind = "specaugment"

    n_freq_masks: int = 2
    max_freq_width: float = 15 / 80
    n_time_masks: int = 2
    max_time_s: float = 0.7
    max_time_fraction: float = 0.2
    win_s: float = 0.032

    def __post_init__(self) -> None:
        check_range("frequency-mask width", 0.0, self.max_freq_width, low=0.0, high=1.0)
        check_range("time-mask fraction", 0.0, self.max_time_fraction, low=0.0, high=1.0)
        if self.n_freq_masks < 0 or self.n_time_masks < 0 or self.max_time_s < 0 or self.win_s <= 0:
            raise BadValueError("SpecAugment setting", self, fix="Use non-negative counts and widths.")

    def draw(self, rng: np.random.Generator, n_samples: int, sr: int) -> dict[str, Any]:
        mel_top = _hz_to_mel(sr / 2)
        freq = []
        for _ in range(self.n_freq_masks):
            w = uniform(rng, 0.0, self.max_freq_width * mel_top)
            m0 = uniform(rng, 0.0, mel_top - w)
            freq.append([_mel_to_hz(m0), _mel_to_hz(m0 + w)])
        dur = n_samples / sr
        t_max = min(self.max_time_s, self.max_time_fraction * dur)
        time = []
        for _ in range(self.n_time_masks):
            w = uniform(rng, 0.0, t_max)
            t0 = uniform(rng, 0.0, dur - w)
            time.append([t0, t0 + w])
        return {"freq_masks_hz": freq, "time_masks_s": time}

    def _apply(self, wav: np.ndarray, sr: int, params: dict[str, Any]) -> np.ndarray:
        from scipy.signal import istft, stft

        n = len(wav)
        nper = max(16, int(round(self.win_s * sr)))
        if n < nper:
            return wav.copy()
        hop = nper // 4
        f, t, z = stft(wav, fs=sr, window="hann", nperseg=nper, noverlap=nper - hop)
        for lo, hi in params["freq_masks_hz"]:
            z[(f >= lo) & (f <= hi), :] = 0
        for t0, t1 in params["time_masks_s"]:
            z[:, (t >= t0) & (t <= t1)] = 0
        _, y = istft(z, fs=sr, window="hann", nperseg=nper, noverlap=nper - hop)
        y = y[:n]
        if len(y) < n:
            y = np.concatenate([y, np.zeros(n - len(y))])
        return y.astype(np.float32)


def spec_augment_mel(
    mel: Any,
    rng: np.random.Generator,
    *,
    n_freq_masks: int = 2,
    max_freq_width: int = 15,
    n_time_masks: int = 2,
    max_time_width: int = 70,
    max_time_fraction: float = 0.2,
    mask_value: float | str = 0.0,
    time_axis: int = -2,
    freq_axis: int = -1,
) -> tuple[Any, dict[str, Any]]:
    """SpecAugment on a (log-)mel spectrogram, in bins and frames: ``(masked copy, params)``.

    The default layout is embedprobe's ``(..., n_frames, n_mels)``; pass ``time_axis`` and
    ``freq_axis`` for others. Works on numpy arrays and torch tensors (the input is not
    modified). Widths are drawn uniformly in ``[0, max]`` bins/frames (time widths also at
    most ``max_time_fraction`` of the frames), positions uniformly where the mask fits.

    Args:
        mel: the spectrogram.
        rng: the generator for this clip and copy (see :func:`embedprobe.augment.clip_rng`).
        mask_value: value written into masks: a number, or ``"mean"`` for the input's mean.

    Returns:
        The masked copy, and ``{"freq_masks": [[f0, f1], ...], "time_masks": [[t0, t1], ...]}``
        (half-open bin/frame ranges) for :func:`apply_mel_masks`.
    """
    n_t, n_f = mel.shape[time_axis], mel.shape[freq_axis]
    freq, time = [], []
    for _ in range(n_freq_masks):
        w = int(rng.integers(0, min(max_freq_width, n_f) + 1))
        f0 = int(rng.integers(0, n_f - w + 1))
        freq.append([f0, f0 + w])
    t_cap = min(max_time_width, int(np.floor(max_time_fraction * n_t)))
    for _ in range(n_time_masks):
        w = int(rng.integers(0, max(t_cap, 0) + 1))
        t0 = int(rng.integers(0, n_t - w + 1))
        time.append([t0, t0 + w])
    params = {"freq_masks": freq, "time_masks": time}
    return apply_mel_masks(mel, params, mask_value=mask_value, time_axis=time_axis, freq_axis=freq_axis), params


def apply_mel_masks(
    mel: Any,
    params: dict[str, Any],
    *,
    mask_value: float | str = 0.0,
    time_axis: int = -2,
    freq_axis: int = -1,
) -> Any:
    """Re-apply masks recorded by :func:`spec_augment_mel` to a copy of ``mel``."""
    if mask_value not in ("mean",) and not isinstance(mask_value, (int, float)):
        raise BadValueError("mask value", mask_value, fix="Use a number or 'mean'.")
    out = mel.clone() if hasattr(mel, "clone") else np.array(mel, copy=True)
    value = float(mel.mean()) if mask_value == "mean" else float(mask_value)
    nd = out.ndim
    for axis, key in ((freq_axis % nd, "freq_masks"), (time_axis % nd, "time_masks")):
        for a, b in params[key]:
            index = [slice(None)] * nd
            index[axis] = slice(int(a), int(b))
            out[tuple(index)] = value
    return out


@dataclass(frozen=True)
class Equalizer(AugmentSpec):
    """A cascade of a 9th-order Butterworth high-pass and low-pass with random cut-offs.

    Both cut-offs are drawn log-uniformly; the low-pass cut-off is capped at 0.95 x Nyquist
    (the recorded value is the one used). Filters are causal second-order sections
    (``scipy.signal.butter(..., output="sos")`` + ``sosfilt``), so there is a small
    frequency-dependent group delay, as with a real equaliser. Length is unchanged.

    Attributes:
        highpass_hz: range of the high-pass cut-off (Hz).
        lowpass_hz: range of the low-pass cut-off (Hz).
        order: Butterworth order of each filter (the paper uses 9).
    """

    kind = "equalizer"

    highpass_hz: tuple[float, float] = (50.0, 300.0)
    lowpass_hz: tuple[float, float] = (3400.0, 7500.0)
    order: int = 9

    def __post_init__(self) -> None:
        check_range("high-pass cut-off range (Hz)", *self.highpass_hz, low=1.0, high=1e5)
        check_range("low-pass cut-off range (Hz)", *self.lowpass_hz, low=1.0, high=1e5)
        if self.highpass_hz[1] >= self.lowpass_hz[0]:
            raise BadValueError(
                "equaliser ranges", (self.highpass_hz, self.lowpass_hz),
                fix="Keep every high-pass cut-off below every low-pass cut-off.",
            )
        if not 1 <= self.order <= 20:
            raise BadValueError("Butterworth order", self.order, fix="Use an order from 1 to 20.")

    def draw(self, rng: np.random.Generator, n_samples: int, sr: int) -> dict[str, Any]:
        nyq = sr / 2
        hp = log_uniform(rng, *self.highpass_hz)
        lp = log_uniform(rng, *self.lowpass_hz)
        return {"highpass_hz": min(hp, 0.45 * nyq), "lowpass_hz": min(lp, 0.95 * nyq)}

    def _apply(self, wav: np.ndarray, sr: int, params: dict[str, Any]) -> np.ndarray:
        from scipy.signal import butter, sosfilt

        sos = np.concatenate([
            butter(self.order, float(params["highpass_hz"]), btype="highpass", fs=sr, output="sos"),
            butter(self.order, float(params["lowpass_hz"]), btype="lowpass", fs=sr, output="sos"),
        ])
        return sosfilt(sos, wav.astype(np.float64)).astype(np.float32)


register(SpecAugment())
register(Equalizer())

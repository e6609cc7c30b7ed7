"""Numpy STFT power and mel spectrograms shared by the feature extractors (no librosa, no torch).

The conventions are librosa's (>= 0.10) so results can be checked against it: a periodic
Hann window of ``win_length`` samples centred in ``n_fft``; ``center=True`` framing with
``n_fft // 2`` zeros on both sides, hence ``1 + n_samples // hop_length`` frames; Slaney
(or HTK) mel scale with optional Slaney area normalisation. Frames are processed in blocks
so memory stays bounded for long inputs.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from embedprobe.common.threads import limit_blas_threads

_BLOCK_FRAMES = 4096  # frames per FFT block; bounds peak memory for long inputs


def hz_to_mel(f: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Hertz to mels (Slaney's auditory toolbox scale, or HTK's ``2595 log10(1 + f/700)``)."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    lin = f / f_sp
    return np.where(
        f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, lin
    )


def mel_to_hz(m: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=16)
def mel_filterbank(
    sr: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``, float32, read-only."""
    fmax = sr / 2 if fmax is None else fmax
    fft_f = np.linspace(0.0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    elif norm is not None:
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    out = weights.astype(np.float32)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=16)
def hann_window(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window of ``win_length`` zero-padded (centred) to ``n_fft``, float32."""
    if win_length > n_fft:
        raise ValueError(f"win_length {win_length} > n_fft {n_fft}")
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)
    out = np.zeros(n_fft, dtype=np.float32)
    left = (n_fft - win_length) // 2
    out[left : left + win_length] = w
    out.flags.writeable = False
    return out


def n_stft_frames(n_samples: int, hop_length: int, n_fft: int) -> int:
    """Frames of a centred STFT; ``1 + n_samples // hop_length`` for an even ``n_fft``."""
    return 1 + (n_samples + 2 * (n_fft // 2) - n_fft) // hop_length


def mel_spectrogram(
    wav: np.ndarray,
    sr: int,
    *,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    power: float = 2.0,
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Mel spectrogram (not log), shape ``(n_frames, n_mels)``, float32.

    Args:
        wav: 1-D float32 waveform.
        sr: its sample rate.
        n_fft: FFT size.
        hop_length: samples between frames.
        win_length: Hann window length (default ``n_fft``), centred in the FFT frame.
        n_mels, fmin, fmax, htk, norm: the mel filterbank (see :func:`mel_filterbank`).
        power: 2 for power, 1 for magnitude.
    """
    win = hann_window(win_length or n_fft, n_fft)
    fb_t = np.ascontiguousarray(mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm).T)
    pad = n_fft // 2
    padded = np.pad(np.asarray(wav, dtype=np.float32), (pad, pad))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    n = len(frames)
    out = np.empty((n, n_mels), dtype=np.float32)
    # One BLAS thread: OpenBLAS's sums depend on its thread count (1 and 2 threads differ in the
    # last bit on some CPUs), so every run (local, Ray workers, any --threads) stores the same
    # values. A clip's product is small (3 s: 300 frames, 20 MFLOP, 0.87 against 0.80 ms on two
    # idle cores for the whole log-mel), and extraction keeps the other cores busy decoding.
    with limit_blas_threads(1):  # BLAS only: torch's threads are not touched
        for s in range(0, n, _BLOCK_FRAMES):
            spec = np.fft.rfft(frames[s : s + _BLOCK_FRAMES] * win, axis=-1)
            mag = spec.real**2 + spec.imag**2
            if power != 2.0:
                mag = np.sqrt(mag) ** power
            np.matmul(mag, fb_t, out=out[s : s + _BLOCK_FRAMES])
    return out

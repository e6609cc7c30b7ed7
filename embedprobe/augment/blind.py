"""Blind (single-channel, no reference) estimators of reverberation time, clarity and SNR.

* :func:`t60_blind`: maximum-likelihood decay-rate estimation on detected free decays, after
  Löllmann, Yilmaz, Jeub and Vary, "An improved algorithm for blind reverberation time
  estimation", IWAENC 2010, which builds on the ML model of Ratnam et al., "Blind
  estimation of reverberation time", JASA 114(5), 2003.
* :func:`c50_from_t60`: clarity C50 of the diffuse exponential decay with that T60 (an
  approximation, see its docstring).
* :func:`wada_snr`: Kim and Stern, "Robust signal-to-noise ratio estimation based on
  waveform amplitude distribution analysis", Interspeech 2008.

The paper's Figure 4 used CNN estimators (Gamper and Tashev 2018 for T60, Gamper 2020 for
C50) whose weights are not public; these classical estimators measure the same quantities
and are what we can ship. Absolute values differ between estimators; compare corpora with
one estimator.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# --- T60 -------------------------------------------------------------------------------

_FS = 8000  # analysis rate (Hz); Löllmann et al. downsample by 2 from 24 kHz, decays are low-passed anyway
_SUB = 320  # sub-frame length at _FS: 40 ms (Löllmann: 29 ms; see t60_blind on the choice)
_HOP = 80  # frame shift (= _SUB / 4, 10 ms; Löllmann: 8.3 ms)
_NOS_MIN, _NOS_MAX = 3, 10  # min / max number of sub-frames of a decay (Löllmann: 3, 7)
T60_GRID = np.round(np.arange(0.1, 2.0001, 0.01), 3)  # candidate T60s (s)
_HIST_BIN = 0.05  # histogram bin for the order statistic (s)


def _decay_frames(x: np.ndarray) -> list[tuple[int, int]]:
    """(start, n_sub) of every frame starting with ``n_sub >= _NOS_MIN`` decaying sub-frames.

    A sub-frame continues a decay when its variance and maximum fall and its minimum rises
    relative to the previous sub-frame (Löllmann et al.'s pre-selection). All frames are
    tested at once on a grid of sub-frame statistics with hop ``_HOP``.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    if len(x) < _SUB * _NOS_MAX:
        return []
    win = sliding_window_view(x, _SUB)[::_HOP]
    var, mx, mn = win.var(axis=1), win.max(axis=1), win.min(axis=1)
    step = _SUB // _HOP
    n_frames = len(win) - step * (_NOS_MAX - 1)
    if n_frames <= 0:
        return []
    idx = np.arange(n_frames)[:, None] + step * np.arange(_NOS_MAX)[None, :]
    v, hi, lo = var[idx], mx[idx], mn[idx]
    ok = (v[:, 1:] < v[:, :-1]) & (hi[:, 1:] < hi[:, :-1]) & (lo[:, 1:] > lo[:, :-1])
    # consecutive successes from the first comparison on (0 .. _NOS_MAX - 1)
    cnt = np.where(ok.all(axis=1), ok.shape[1], np.argmin(ok, axis=1))
    keep = np.nonzero(cnt >= _NOS_MIN)[0]
    return [(int(i) * _HOP, int(cnt[i])) for i in keep]


@lru_cache(maxsize=1)
def _decay_weights() -> tuple[np.ndarray, np.ndarray]:
    """``ln a`` per candidate T60 and the (L_max, n_grid) matrix ``a^(-2k)``, computed once."""
    log_a = -3.0 * np.log(10.0) / (T60_GRID * _FS)  # decay per sample for 60 dB in T60
    k = np.arange(_SUB * (_NOS_MAX - 1), dtype=np.float64)
    return log_a, np.exp(-2.0 * np.outer(k, log_a))


def _ml_t60(segments: np.ndarray) -> np.ndarray:
    """ML T60 of each row of ``segments`` (n, L) under y(k) = a^k x(k), x white Gaussian.

    Log-likelihood (Ratnam et al. 2003, eq. 7, with sigma profiled out):
    ``ll(a) = -L/2 [ (L-1) ln a + ln(2 pi / L * sum_k a^(-2k) y(k)^2) + 1 ]``.
    """
    n_len = segments.shape[1]
    log_a, weights = _decay_weights()
    s = (segments.astype(np.float64) ** 2) @ weights[:n_len]  # sum_k a^(-2k) y^2 per (segment, a)
    ll = -0.5 * n_len * ((n_len - 1) * log_a[None, :] + np.log(2 * np.pi / n_len * s + 1e-300) + 1)
    return T60_GRID[np.argmax(ll, axis=1)]


def t60_blind(wav: np.ndarray, sr: int) -> float:
    """Blind reverberation time T60 (s) of a speech clip; ``nan`` if no free decay is found.

    Algorithm (Löllmann et al. 2010, offline variant): resample to 8 kHz; find frames whose
    40 ms sub-frames decay (variance and maximum fall, minimum rises) for at least 3 (up to
    9) steps; ML-estimate the decay rate of each such frame on a 10 ms grid of T60s in
    [0.1, 2.0] s; return the most frequent estimate (the peak of their histogram with 50 ms
    bins, refined to the mean of the estimates in that bin). Löllmann's online algorithm
    smooths this peak recursively over time starting from 0.3 s; for one clip we take the
    peak over the whole clip. Their spectral-subtraction noise reduction is not applied, so
    strong noise biases T60 up.

    Deviation from Löllmann's constants (29 ms sub-frames, at most 7): on EmoDB speech
    convolved with exponential-decay rooms, short decay frames under-estimated long T60s
    (median 0.74 s for a true 1.0 s); 40 ms x up to 9 sub-frames gave medians 0.40 / 0.68 /
    1.05 s for true 0.3 / 0.6 / 1.0 s (48 clips). On ideal free decays (noise bursts) the
    error is below 0.02 s (0.1 s worst case at 1.0 s). Dry (anechoic) speech reads about
    0.3 s: natural speech offsets set the floor, so values below ~0.35 s mean "dry".

    Returns:
        T60 in seconds within [0.1, 2.0], or ``nan`` for clips shorter than ~0.2 s or
        without any detected decay (e.g. stationary noise, silence).
    """
    from scipy.signal import resample_poly

    x = np.asarray(wav, dtype=np.float64)
    if sr != _FS:
        g = np.gcd(int(sr), _FS)
        x = resample_poly(x, _FS // g, int(sr) // g)
    frames = _decay_frames(x)
    if not frames:
        return float("nan")
    estimates = []
    for n_sub in sorted({c for _, c in frames}):
        starts = np.array([s for s, c in frames if c == n_sub])
        length = n_sub * _SUB
        seg = x[starts[:, None] + np.arange(length)[None, :]]
        estimates.append(_ml_t60(seg))
    est = np.concatenate(estimates)
    edges = np.arange(T60_GRID[0] - _HIST_BIN / 2, T60_GRID[-1] + _HIST_BIN, _HIST_BIN)
    hist, _ = np.histogram(est, bins=edges)
    j = int(np.argmax(hist))
    in_bin = est[(est >= edges[j]) & (est < edges[j + 1])]
    return float(np.mean(in_bin))


def c50_from_t60(t60: float | np.ndarray) -> float | np.ndarray:
    """Clarity C50 (dB) of an ideal diffuse exponential decay with reverberation time ``t60``.

    For an energy decay ``e(t) ~ exp(-13.82 t / T60)`` (Sabine / Schroeder model, 13.82 =
    6 ln 10), ``C50 = 10 log10( E[0, 50 ms] / E[50 ms, inf) ) = 10 log10(exp(0.691 / T60) - 1)``.
    This is an approximation: it ignores the direct path (which raises C50 close to the
    source) and assumes a diffuse, single-slope decay. It is a monotone function of T60,
    so it adds no information beyond T60; we report it to place corpora on the paper's C50
    axis. ``nan`` in, ``nan`` out.
    """
    t = np.asarray(t60, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        c = 10.0 * np.log10(np.expm1(6.0 * np.log(10.0) * 0.05 / t))
    return float(c) if np.ndim(c) == 0 else c


# --- WADA-SNR --------------------------------------------------------------------------

#: SNR grid (dB) and the matching G = ln(E|x|) - E[ln|x|] of a Gamma(alpha=0.4) "speech"
#: amplitude plus Gaussian noise, as tabulated in Kim and Stern's reference implementation
#: (``Alpha0.400000.mat``; the table every WADA-SNR port uses). tests/augment checks it
#: against a fresh Monte-Carlo simulation of the same model.
WADA_DB = np.arange(-20, 101, dtype=np.float64)
WADA_G = np.array([
    0.40974774, 0.40986926, 0.40998566, 0.40969089, 0.40986186, 0.40999006, 0.41027138,
    0.41052627, 0.41101024, 0.41143264, 0.41231718, 0.41337272, 0.41526426, 0.41781920,
    0.42077252, 0.42452799, 0.42918886, 0.43510373, 0.44234195, 0.45161485, 0.46221153,
    0.47491647, 0.48883809, 0.50509236, 0.52353709, 0.54372088, 0.56532427, 0.58847532,
    0.61346212, 0.63954496, 0.66750818, 0.69583724, 0.72454762, 0.75414799, 0.78323148,
    0.81240985, 0.84219775, 0.87166406, 0.90030504, 0.92880418, 0.95655449, 0.98353490,
    1.01047155, 1.03620950, 1.06136425, 1.08579312, 1.10948190, 1.13277995, 1.15472826,
    1.17627308, 1.19703503, 1.21671694, 1.23535898, 1.25364313, 1.27103891, 1.28718029,
    1.30302865, 1.31839527, 1.33294817, 1.34700935, 1.36057270, 1.37345513, 1.38577122,
    1.39733504, 1.40856397, 1.41959619, 1.42983624, 1.43958467, 1.44902176, 1.45804831,
    1.46669568, 1.47486938, 1.48269965, 1.49034339, 1.49748214, 1.50435106, 1.51076426,
    1.51698915, 1.52290970, 1.52857800, 1.53389835, 1.53912110, 1.54390650, 1.54858517,
    1.55310776, 1.55744391, 1.56164927, 1.56566348, 1.56938671, 1.57307767, 1.57654764,
    1.57980083, 1.58304129, 1.58602496, 1.58880681, 1.59162477, 1.59419690, 1.59693155,
    1.59944600, 1.60185011, 1.60408668, 1.60627134, 1.60826199, 1.61004547, 1.61192472,
    1.61369656, 1.61534074, 1.61688905, 1.61838916, 1.61985374, 1.62135878, 1.62268119,
    1.62390423, 1.62513143, 1.62632463, 1.62740270, 1.62842767, 1.62945532, 1.63033070,
    1.63128026, 1.63204102,
])


def wada_g(wav: np.ndarray) -> float:
    """The WADA statistic ``G = ln(mean |x|) - mean(ln |x|)`` of a peak-normalised clip."""
    eps = 1e-10
    x = np.asarray(wav, dtype=np.float64)
    if x.size == 0:
        return float("nan")
    x = x - x.mean()
    peak = np.max(np.abs(x))
    if peak < eps:
        return float("nan")
    a = np.maximum(np.abs(x / peak), eps)
    return float(np.log(max(a.mean(), eps)) - np.log(a).mean())


def wada_snr(wav: np.ndarray) -> float:
    """Blind SNR (dB) by waveform amplitude distribution analysis (Kim and Stern 2008).

    Speech amplitudes are modelled as Gamma(0.4)-distributed and the noise as Gaussian; the
    statistic :func:`wada_g` is mapped to an SNR by linear interpolation in the table
    :data:`WADA_G`. The result is clamped to the table's range [-20, 100] dB; ``nan`` for
    a silent clip. The SNR is over the whole clip, pauses included.
    """
    g = wada_g(wav)
    if not np.isfinite(g):
        return float("nan")
    below = np.nonzero(WADA_G < g)[0]
    if below.size == 0:
        return float(WADA_DB[0])
    i = int(below[-1])
    if i == len(WADA_G) - 1:
        return float(WADA_DB[-1])
    frac = (g - WADA_G[i]) / (WADA_G[i + 1] - WADA_G[i])
    return float(WADA_DB[i] + frac * (WADA_DB[i + 1] - WADA_DB[i]))

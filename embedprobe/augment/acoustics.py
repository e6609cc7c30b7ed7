"""Per-clip blind acoustic measurements and distances between corpora (paper section 5.1, Figure 4).

Measures (all blind: no clean reference needed):

========== ====== ==================================================================
name       unit   estimator
========== ====== ==================================================================
mos_sig    1-5    DNSMOS P.835 speech quality (:mod:`embedprobe.augment.dnsmos`)
mos_bak    1-5    DNSMOS P.835 background-noise quality
mos_ovrl   1-5    DNSMOS P.835 overall quality (the paper's "MOS")
t60        s      ML decay-rate estimate on free decays (Löllmann et al. 2010)
c50        dB     clarity of the exponential decay with that T60 (approximation)
snr        dB     WADA-SNR (Kim and Stern 2008)
loudness   LUFS   ITU-R BS.1770-4 integrated loudness (pyloudnorm)
========== ====== ==================================================================

``measure`` returns ``nan`` where an estimator has nothing to measure (no free decay for
T60, a clip shorter than one 400 ms loudness block, a silent clip).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from embedprobe.augment.blind import c50_from_t60, t60_blind, wada_snr
from embedprobe.augment.dnsmos import dnsmos
from embedprobe.errors import BadValueError, MissingDependencyError

MEASURES: tuple[str, ...] = ("mos_sig", "mos_bak", "mos_ovrl", "t60", "c50", "snr", "loudness")
#: Measures that need the optional ``acoustics`` extra (speechmos + onnxruntime, pyloudnorm).
OPTIONAL: dict[str, str] = {
    "mos_sig": "speechmos", "mos_bak": "speechmos", "mos_ovrl": "speechmos", "loudness": "pyloudnorm",
}
UNITS: dict[str, str] = {
    "mos_sig": "MOS", "mos_bak": "MOS", "mos_ovrl": "MOS", "t60": "s", "c50": "dB", "snr": "dB",
    "loudness": "LUFS",
}


def available() -> tuple[str, ...]:
    """The measures whose optional dependencies are installed here, in :data:`MEASURES` order."""
    from importlib.util import find_spec

    have = {pkg: find_spec(pkg) is not None for pkg in ("speechmos", "onnxruntime", "pyloudnorm")}
    have["speechmos"] = have["speechmos"] and have["onnxruntime"]
    return tuple(m for m in MEASURES if m not in OPTIONAL or have[OPTIONAL[m]])


def loudness(wav: np.ndarray, sr: int) -> float:
    """ITU-R BS.1770-4 integrated loudness (LUFS, gated), via pyloudnorm; ``nan`` if undefined."""
    try:
        import pyloudnorm
    except ImportError:
        raise MissingDependencyError("pyloudnorm", "acoustics", "loudness") from None
    x = np.asarray(wav, dtype=np.float64)
    if len(x) < int(0.4 * sr):  # shorter than one gating block
        return float("nan")
    with np.errstate(divide="ignore"):
        value = float(pyloudnorm.Meter(int(sr)).integrated_loudness(x))
    return value if np.isfinite(value) else float("nan")


def _check_which(which: Iterable[str] | None) -> tuple[str, ...]:
    if which is None:
        return MEASURES
    names = (which,) if isinstance(which, str) else tuple(which)
    for name in names:
        if name not in MEASURES:
            raise BadValueError("acoustic measure", name, MEASURES)
    return names


def measure(
    wav: np.ndarray, sr: int, *, which: Iterable[str] | None = None, threads: int = 1
) -> dict[str, float]:
    """Blind acoustic measurements of one mono clip.

    Args:
        wav: mono float waveform in [-1, 1].
        sr: its sample rate (DNSMOS resamples to 16 kHz internally).
        which: names from :data:`MEASURES` (default: all).
        threads: onnxruntime threads for DNSMOS.

    Returns:
        ``{name: value}`` in the order of ``which``.

    Raises:
        BadValueError: an unknown measure name or a non-mono input.
        MissingDependencyError: DNSMOS or loudness asked for without the ``acoustics`` extra.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).standard_normal(16000) * 0.1
        >>> sorted(measure(x, 16000, which=["snr", "t60"]))
        ['snr', 't60']
    """
    names = _check_which(which)
    x = np.asarray(wav, dtype=np.float32)
    if x.ndim != 1:
        raise BadValueError("waveform shape", x.shape, fix="Pass one mono clip as a 1-D array.")
    out: dict[str, float] = {}
    if any(n.startswith("mos_") for n in names):
        out.update(dnsmos(x, sr, threads=threads))
    if "t60" in names or "c50" in names:
        t60 = t60_blind(x, sr)
        out["t60"], out["c50"] = t60, float(c50_from_t60(t60))
    if "snr" in names:
        out["snr"] = wada_snr(x)
    if "loudness" in names:
        out["loudness"] = loudness(x, sr)
    return {n: float(out[n]) for n in names}


def distribution_distances(
    values_by_corpus: Mapping[str, Mapping[str, Sequence[float] | np.ndarray]],
    *,
    measures: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Distances between the per-clip distributions of every pair of corpora, per measure.

    Args:
        values_by_corpus: ``{corpus: {measure: per-clip values}}``; e.g. ``"iemocap"`` and
            ``"msp-podcast+paper"`` for a corpus before and after augmentation. NaNs are dropped.
        measures: which measures (default: every measure found, in :data:`MEASURES` order
            first, then any others alphabetically).

    Returns:
        One row per (measure, corpus pair) with keys ``measure, corpus_a, corpus_b, n_a, n_b,
        mean_a, mean_b, median_a, median_b, wasserstein`` (Wasserstein-1, in the measure's
        unit), ``wasserstein_std`` (W1 divided by the pooled standard deviation, comparable
        across measures), ``ks`` (two-sample Kolmogorov-Smirnov statistic) and
        ``ks_pvalue``. Statistics are ``nan`` when a side has no values.

    Example:
        >>> rows = distribution_distances({"a": {"snr": [10, 12, 14]}, "b": {"snr": [20, 22, 24]}})
        >>> rows[0]["wasserstein"], rows[0]["ks"]
        (10.0, 1.0)
    """
    from scipy.stats import ks_2samp, wasserstein_distance

    corpora = list(values_by_corpus)
    found = {m for v in values_by_corpus.values() for m in v}
    if measures is None:
        measures = [m for m in MEASURES if m in found] + sorted(found - set(MEASURES))
    rows = []
    for m in measures:
        for i, a in enumerate(corpora):
            for b in corpora[i + 1:]:
                if m not in values_by_corpus[a] or m not in values_by_corpus[b]:
                    continue
                xa, xb = _clean(values_by_corpus[a][m]), _clean(values_by_corpus[b][m])
                row: dict[str, Any] = {
                    "measure": m, "corpus_a": a, "corpus_b": b, "n_a": len(xa), "n_b": len(xb),
                    "mean_a": _stat(np.mean, xa), "mean_b": _stat(np.mean, xb),
                    "median_a": _stat(np.median, xa), "median_b": _stat(np.median, xb),
                }
                if len(xa) and len(xb):
                    w = float(wasserstein_distance(xa, xb))
                    sd = float(np.std(np.concatenate([xa, xb])))
                    ks = ks_2samp(xa, xb)
                    row.update(wasserstein=w, wasserstein_std=w / sd if sd > 0 else 0.0,
                               ks=float(ks.statistic), ks_pvalue=float(ks.pvalue))
                else:
                    row.update(wasserstein=np.nan, wasserstein_std=np.nan, ks=np.nan, ks_pvalue=np.nan)
                rows.append(row)
    return rows


def _clean(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def _stat(fn, x: np.ndarray) -> float:
    return float(fn(x)) if len(x) else float("nan")

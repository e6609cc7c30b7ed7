"""The domain gap between corpora in embedding space: Fréchet distance and corpus identifiability.

Pure functions on arrays (no file IO); :mod:`embedprobe.pipeline.domain` reads the caches.

* :func:`frechet_distance`: the Fréchet (2-Wasserstein) distance between the Gaussians fitted
  to two sets of embeddings (the FID / FAD statistic of Heusel et al. 2017 and Kilgour et
  al. 2019)::

      FD = ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2)

  The last trace equals the nuclear norm (sum of singular values) of ``S_a^1/2 S_b^1/2``,
  which is how we compute it: two symmetric eigendecompositions and one SVD, no
  ``scipy.linalg.sqrtm`` (whose complex round-off on near-singular covariances is the usual
  FID trap), and the result is symmetric in (a, b) by construction.
* :func:`domain_gap`: that distance for every pair of corpora, plus a scale-free version.
* :func:`identifiability`: how well a linear probe tells the corpus from the embedding
  (balanced accuracy, macro AUROC, confusion), on held-out clips or held-out speakers.

Small samples: FD is biased upward for small N, like FID: two samples of one distribution
give a mean term of about ``tr(S_a)/N_a + tr(S_b)/N_b`` and a covariance term that grows
with D/N. With ``N <= D`` a sample covariance is singular and the covariance term is
dominated by this estimation noise (N = 600 rows of white 1024-d noise: FD ~ 800 between
two samples of the same distribution, ~ 3 with Ledoit-Wolf shrinkage). ``shrinkage="auto"``
then switches to Ledoit-Wolf shrinkage towards a scaled identity (Ledoit and Wolf, "A
well-conditioned estimator for large-dimensional covariance matrices", J. Multivariate
Analysis 88, 2004). Compare FDs only between runs with the same N range and shrinkage
setting; :func:`domain_gap` applies one rule to every pair so its rows are comparable.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.standard_normal((2000, 3)), rng.standard_normal((2000, 3)) + [2, 0, 0]
    >>> round(frechet_distance(a, b), 1)     # ~ ||mean(a) - mean(b)||^2 (4.2 here; 4 in the limit)
    4.2
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from embedprobe.common import metrics
from embedprobe.errors import BadValueError
from embedprobe.eval import domain_probes
from embedprobe.eval.domain_probes import check as check_probe

SHRINKAGE = ("auto", "ledoit-wolf", "none")


# --- Fréchet distance ------------------------------------------------------------------------

def _check_features(X: Any, what: str) -> np.ndarray:
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise BadValueError(f"{what} shape", x.shape, fix="Pass a 2-D (N, D) array with N >= 2.")
    if not np.isfinite(x).all():
        raise BadValueError(what, "with NaN or inf values", fix="Drop or repair those clips first.")
    return x


def gaussian_stats(X: Any, *, shrinkage: str | float = "none") -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, covariance and the shrinkage intensity used for one (N, D) sample.

    Args:
        X: features, one row per clip.
        shrinkage: ``"none"`` (unbiased sample covariance), ``"ledoit-wolf"`` (the
            Ledoit-Wolf optimal intensity, on the maximum-likelihood covariance, as
            ``sklearn.covariance.ledoit_wolf``), or a float ``a`` in [0, 1]:
            ``(1 - a) S + a tr(S)/D I``.
    """
    x = _check_features(X, "features")
    mu = x.mean(axis=0)
    if isinstance(shrinkage, str) and shrinkage == "ledoit-wolf":
        from sklearn.covariance import ledoit_wolf

        cov, a = ledoit_wolf(x, assume_centered=False)
        return mu, np.asarray(cov, dtype=np.float64), float(a)
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    if isinstance(shrinkage, str):
        if shrinkage != "none":
            raise BadValueError("covariance shrinkage", shrinkage, SHRINKAGE)
        return mu, cov, 0.0
    a = float(shrinkage)
    if not 0.0 <= a <= 1.0:
        raise BadValueError("covariance shrinkage", shrinkage, fix="Use a float in [0, 1] or one of "
                            f"{list(SHRINKAGE)}.")
    d = cov.shape[0]
    return mu, (1 - a) * cov + a * np.trace(cov) / d * np.eye(d), a


def _sqrt_psd(cov: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_from_stats(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray,
                       cov_b: np.ndarray) -> dict[str, float]:
    """Fréchet distance of two Gaussians, with its mean and covariance terms.

    Returns:
        ``{"frechet", "mean_term", "cov_term"}`` with ``frechet = mean_term + cov_term``
        (both >= 0; round-off below zero is clipped).
    """
    return _frechet(mu_a, cov_a, _sqrt_psd(cov_a), mu_b, cov_b, _sqrt_psd(cov_b))


def _frechet(mu_a, cov_a, sqrt_a, mu_b, cov_b, sqrt_b) -> dict[str, float]:
    mean_term = float(np.sum((np.asarray(mu_a) - np.asarray(mu_b)) ** 2))
    cross = float(np.linalg.svd(sqrt_a @ sqrt_b, compute_uv=False).sum())
    cov_term = max(float(np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross), 0.0)
    return {"frechet": mean_term + cov_term, "mean_term": mean_term, "cov_term": cov_term}


def resolve_shrinkage(shrinkage: str | float, n_min: int, dim: int) -> str | float:
    """What ``"auto"`` means for samples of at least ``n_min`` rows in ``dim`` dimensions.

    ``"ledoit-wolf"`` when ``n_min <= dim`` (the sample covariance is singular), else
    ``"none"``; any other value is returned unchanged.
    """
    if isinstance(shrinkage, str):
        if shrinkage not in SHRINKAGE:
            raise BadValueError("covariance shrinkage", shrinkage, SHRINKAGE)
        if shrinkage == "auto":
            return "ledoit-wolf" if n_min <= dim else "none"
    return shrinkage


def frechet_distance(Xa: Any, Xb: Any, *, shrinkage: str | float = "auto") -> float:
    """Fréchet distance between Gaussian fits of two samples of embeddings.

    Args:
        Xa: (Na, D) embeddings of corpus a.
        Xb: (Nb, D) embeddings of corpus b (same D).
        shrinkage: covariance estimator (see :func:`gaussian_stats`); ``"auto"`` uses
            Ledoit-Wolf when ``min(Na, Nb) <= D``, the plain sample covariance otherwise.

    Returns:
        The distance in squared feature units (0 for identical Gaussian fits).

    Raises:
        BadValueError: non-2-D input, fewer than 2 rows, NaNs, or different widths.
    """
    a, b = _check_features(Xa, "features a"), _check_features(Xb, "features b")
    if a.shape[1] != b.shape[1]:
        raise BadValueError("feature widths", (a.shape[1], b.shape[1]),
                            fix="Compare embeddings of the same extractor and layer.")
    s = resolve_shrinkage(shrinkage, min(len(a), len(b)), a.shape[1])
    return frechet_from_stats(*gaussian_stats(a, shrinkage=s)[:2], *gaussian_stats(b, shrinkage=s)[:2])["frechet"]


def domain_gap(features: Mapping[str, Any], *, shrinkage: str | float = "auto") -> list[dict[str, Any]]:
    """Fréchet distance between every pair of corpora.

    Args:
        features: ``{corpus: (N, D) embeddings}`` (one extractor and layer).
        shrinkage: as :func:`frechet_distance`; ``"auto"`` is resolved once from the smallest
            corpus, so every row uses the same estimator.

    Returns:
        One row per pair ``(a, b)`` in input order: ``a, b, n_a, n_b, frechet, mean_term,
        cov_term, frechet_norm`` (FD divided by the mean total variance
        ``(tr S_a + tr S_b) / 2``: scale-free, comparable across layers and extractors) and
        ``shrinkage`` (the estimator used).
    """
    names = list(features)
    if len(names) < 2:
        raise BadValueError("corpora for a domain gap", names, fix="Pass at least two corpora.")
    X = {n: _check_features(features[n], f"features of {n}") for n in names}
    dims = {n: x.shape[1] for n, x in X.items()}
    if len(set(dims.values())) > 1:
        raise BadValueError("feature widths", dims, fix="Compare embeddings of the same extractor and layer.")
    s = resolve_shrinkage(shrinkage, min(len(x) for x in X.values()), next(iter(dims.values())))
    stats = {n: gaussian_stats(x, shrinkage=s) for n, x in X.items()}
    roots = {n: _sqrt_psd(st[1]) for n, st in stats.items()}  # one eigendecomposition per corpus
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (mu_a, cov_a, sa), (mu_b, cov_b, sb) = stats[a], stats[b]
            fd = _frechet(mu_a, cov_a, roots[a], mu_b, cov_b, roots[b])
            scale = float(np.trace(cov_a) + np.trace(cov_b)) / 2
            rows.append({
                "a": a, "b": b, "n_a": len(X[a]), "n_b": len(X[b]), **fd,
                "frechet_norm": fd["frechet"] / scale if scale > 0 else 0.0,
                "shrinkage": s if isinstance(s, str) else float(s),
                "shrinkage_a": sa, "shrinkage_b": sb,
            })
    return rows


# --- corpus identifiability -----------------------------------------------------------------

def _split(y: np.ndarray, groups: np.ndarray | None, test_size: float, seed: int) -> np.ndarray:
    """Boolean test mask: per corpus, ``test_size`` of its speakers (or clips), seeded."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        if groups is None:
            n_test = min(max(1, round(test_size * len(idx))), len(idx) - 1)
            test[rng.choice(idx, n_test, replace=False)] = True
        else:
            spk = np.unique(groups[idx])
            n_test = min(max(1, round(test_size * len(spk))), len(spk) - 1)
            held = rng.choice(spk, n_test, replace=False)
            test[idx[np.isin(groups[idx], held)]] = True
    return test


def _fit_predict(probe: str, X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray,
                 seed: int, threads: int | None = None) -> np.ndarray:
    model = domain_probes.make(probe, seed=seed, threads=threads)
    model.fit(X_tr, y_tr)
    return np.asarray(model.predict_proba(X_te), dtype=np.float64)


def identifiability(
    features: Mapping[str, Any],
    *,
    groups: Mapping[str, Any] | None = None,
    seed: int = 0,
    probe: str = "logistic",
    test_size: float = 0.3,
    threads: int | None = None,
) -> dict[str, Any]:
    """How well a probe tells which corpus an embedding comes from.

    Each corpus is split on its own (so every corpus is in train and test): ``test_size``
    of its speakers are held out when ``groups`` gives speakers (speaker-disjoint, so the
    probe cannot win by recognising voices), else ``test_size`` of its clips (seeded).

    Args:
        features: ``{corpus: (N, D) embeddings}``.
        groups: optional ``{corpus: (N,) speaker ids}``; needs >= 2 speakers per corpus.
        seed: split and probe seed.
        probe: ``"logistic"`` (scikit-learn logistic regression on standardised features,
            class-balanced; the default: ~3x faster than the torch probe at 1,500 x 768 for
            the same AUROC) or an embedprobe probe name (``"linear"``, ``"mlp"``); any name
            of :func:`embedprobe.eval.domain_probes.identifiability_probes`.
        test_size: share of speakers (or clips) held out per corpus.
        threads: threads of an embedprobe probe (None: its own choice from the work size).

    Returns:
        ``corpora`` (class order), ``balanced_accuracy`` (mean recall), ``auroc`` (macro
        one-vs-rest), ``chance`` (``{"balanced_accuracy": 1/K, "auroc": 0.5}``),
        ``per_corpus_recall``, ``confusion`` (rows true, columns predicted, counts),
        ``n_train``, ``n_test`` per corpus, ``split`` (``"speaker-disjoint"`` or
        ``"stratified"``), ``probe`` and ``seed``. Near chance: the corpora are not
        separable; near 1: the embedding encodes the corpus (channel, room, speakers...).
    """
    names = list(features)
    if len(names) < 2:
        raise BadValueError("corpora for identifiability", names, fix="Pass at least two corpora.")
    check_probe(probe)
    if not 0.0 < test_size < 1.0:
        raise BadValueError("test_size", test_size, fix="Use a share in (0, 1).")
    X = [_check_features(features[n], f"features of {n}") for n in names]
    if len({x.shape[1] for x in X}) > 1:
        raise BadValueError("feature widths", [x.shape[1] for x in X],
                            fix="Compare embeddings of the same extractor and layer.")
    y = np.concatenate([np.full(len(x), k) for k, x in enumerate(X)])
    g = None
    if groups is not None:
        missing = [n for n in names if n not in groups]
        if missing:
            raise BadValueError("speaker groups", missing, fix="Give speakers for every corpus or none.")
        parts = []
        for n, x in zip(names, X, strict=True):
            s = np.asarray(groups[n]).astype(str)
            if len(s) != len(x):
                raise BadValueError(f"speaker ids of {n}", f"{len(s)} ids for {len(x)} clips",
                                    fix="Pass one speaker id per row.")
            if len(np.unique(s)) < 2:
                raise BadValueError(f"speakers of {n}", np.unique(s).tolist(),
                                    fix="A speaker-disjoint split needs >= 2 speakers; omit groups.")
            parts.append(np.char.add(f"{n}\x00", s))  # speaker ids are per corpus
        g = np.concatenate(parts)
    elif min(len(x) for x in X) < 2:
        raise BadValueError("clips per corpus", [len(x) for x in X], fix="Need >= 2 clips per corpus.")
    Xall = np.concatenate(X)
    test = _split(y, g, test_size, seed)
    proba = _fit_predict(probe, Xall[~test], y[~test], Xall[test], seed, threads)
    yt = y[test]
    conf = metrics.confusion(yt, proba.argmax(axis=1), n_classes=len(names))
    recall = np.diag(conf) / np.maximum(conf.sum(axis=1), 1)
    return {
        "corpora": names,
        "balanced_accuracy": float(metrics.uacc(yt, proba)),
        "auroc": float(metrics.auroc(yt, proba)),
        "chance": {"balanced_accuracy": 1.0 / len(names), "auroc": 0.5},
        "per_corpus_recall": {n: float(r) for n, r in zip(names, recall, strict=True)},
        "confusion": np.asarray(conf).astype(int).tolist(),
        "n_train": {n: int(np.sum((y == k) & ~test)) for k, n in enumerate(names)},
        "n_test": {n: int(np.sum((y == k) & test)) for k, n in enumerate(names)},
        "split": "speaker-disjoint" if g is not None else "stratified",
        "probe": probe,
        "seed": int(seed),
    }

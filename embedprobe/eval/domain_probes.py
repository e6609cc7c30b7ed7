"""The corpus-identifiability probes of ``embedprobe domain --probe``: a registry of their own.

Every emotion probe (``embedprobe list probes``: ``linear``, ``mlp`` and any plugin) also
tells corpora apart, so those names are accepted as they are. :data:`DOMAIN_PROBES` holds the
probes used *only* for identifiability: ``logistic`` (scikit-learn logistic regression on
standardised features, class-balanced; the default, ~3x faster than the torch probe at
1,500 x 768 for the same AUROC). It is not an emotion probe because the cross-corpus matrix
needs what ``TorchProbe`` offers (validation curves, ``history_``, threads per prediction).
A plugin adds one with ``DOMAIN_PROBES.add(name, DomainProbe(factory, "one line"))``.

Example:
    >>> sorted(identifiability_probes())
    ['linear', 'logistic', 'logreg', 'mlp', 'svm']
    >>> make("logistic", seed=0).fit([[0.0], [1.0], [0.1], [0.9]], [0, 1, 0, 1]).predict([[0.95]]).tolist()
    [1]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from embedprobe.errors import BadValueError
from embedprobe.probes.registry import PROBES, create
from embedprobe.registry import Registry, Row


@dataclass(frozen=True)
class DomainProbe:
    """``factory(seed, threads) -> unfitted classifier`` (``fit``, ``predict_proba``) and a summary."""

    factory: Callable[[int, int | None], Any]
    summary: str = ""


def describe_domain_probe(name: str, entry: DomainProbe) -> Row:
    """One ``embedprobe list domain-probes`` row."""
    return {"name": name, "about": entry.summary}


DOMAIN_PROBES: Registry[DomainProbe] = Registry(
    "domain probe", "domain-probes", describe=describe_domain_probe,
    about="identifiability-only probes of 'embedprobe domain --probe' (every emotion probe works there too)")


def identifiability_probes() -> list[str]:
    """Every name ``identifiability(probe=...)`` accepts: the domain-only probes, then the probes."""
    return [*DOMAIN_PROBES.names(), *(n for n in PROBES.names() if n not in DOMAIN_PROBES)]


def check(probe: str) -> str:
    """``probe`` if it is an identifiability probe, else a :class:`BadValueError` listing them."""
    names = identifiability_probes()
    if probe not in names:
        raise BadValueError("identifiability probe", probe, names)
    return probe


def make(probe: str, *, seed: int, threads: int | None = None) -> Any:
    """An unfitted identifiability probe ``probe`` seeded with ``seed``."""
    if probe in DOMAIN_PROBES:
        return DOMAIN_PROBES.get(check(probe)).factory(seed, threads)
    # an emotion probe: class-balanced sampling on standardised input
    return create(check(probe), random_state=seed, n_threads=threads)


def _logistic(seed: int, threads: int | None) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(
        C=1.0, max_iter=2000, class_weight="balanced", random_state=seed))


DOMAIN_PROBES.add("logistic", DomainProbe(
    _logistic, "scikit-learn logistic regression on standardised features, class-balanced (the default)"))

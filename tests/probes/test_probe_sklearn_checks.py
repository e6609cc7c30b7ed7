"""Every registered probe honours the scikit-learn estimator contract (``parametrize_with_checks``).

Parametrised from the registry (``PROBES``), so a new probe is checked the moment it registers.

Small training budgets keep the ~110 checks at a few CPU seconds; the contract does not depend
on the budget. ``EXPECTED_FAILED`` lists the checks that cannot apply to a probe, with their
reasons (strict xfail, so a listed check that starts passing is reported).
"""

from __future__ import annotations

import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from embedprobe.probes import PROBES, TorchProbe, create

torch.set_num_threads(1)

_FAST = dict(max_steps=150, eval_every=25, patience=2)  # for TorchProbe subclasses
TEST_PARAMS: dict[str, dict] = {"linear": {"lr": 1e-2}, "mlp": {"hidden": (32, 32)}}  # smaller/faster, same contract
EXPECTED_FAILED: dict[str, dict[str, str]] = {  # probe name -> {check: reason}
    "svm": {"check_class_weight_classifiers": (
        "the decision is the argmax of the Platt-calibrated probabilities (as for every probe), whose "
        "sigmoids, fitted on out-of-fold decision values without weights, undo extreme class weights "
        "({0: 1000, 1: 1e-4}) that SVC.predict's raw decision values follow")},
}


def _probe(name: str):
    fast = _FAST if issubclass(PROBES.get(name).cls, TorchProbe) else {}
    return create(name, random_state=0, **fast, **TEST_PARAMS.get(name, {}))


def _expected_failed(estimator) -> dict[str, str]:
    names = [n for n, e in PROBES.items() if e.cls is type(estimator)]
    return EXPECTED_FAILED.get(names[0], {}) if names else {}


@parametrize_with_checks(
    [_probe(name) for name in PROBES.names()],
    expected_failed_checks=_expected_failed,
    xfail_strict=True,
)
def test_sklearn_contract(estimator, check):
    check(estimator)

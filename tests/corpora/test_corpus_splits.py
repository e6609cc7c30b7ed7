"""The pure split builders: exact sizes, stratification, disjointness, determinism."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from embedprobe.corpora.splits import (
    exact_counts,
    group_split,
    holdout_folds,
    next_group_folds,
    permutation,
    rng_for,
    stratified_random,
)


@pytest.mark.parametrize(
    ("n", "fractions", "expected"),
    [(339, (192, 75, 72), [192, 75, 72]), (4900, (70, 15, 15), [3430, 735, 735]), (10, (0.7, 0.15, 0.15), [7, 2, 1]),
     (0, (1, 1, 1), [0, 0, 0]), (91, (70, 15, 15), [64, 14, 13])],
)
def test_exact_counts(n: int, fractions: tuple, expected: list[int]) -> None:
    assert exact_counts(n, fractions) == expected


def test_rng_depends_on_seed_and_key_only() -> None:
    a = rng_for(0, "random").random(5)
    assert np.array_equal(a, rng_for(0, "random").random(5))
    assert not np.array_equal(a, rng_for(1, "random").random(5))
    assert not np.array_equal(a, rng_for(0, "speaker").random(5))
    assert sorted(permutation(rng_for(3, "x"), 50)) == list(range(50))


def _labels(rng: np.random.Generator, n: int) -> list[str | None]:
    pool = ["angry", "happy", "neutral", "sad", None]
    return [pool[i] for i in rng.integers(0, 5, n)]


def test_stratified_random_exact_totals_and_strata() -> None:
    rng = np.random.default_rng(0)
    labels = _labels(rng, 500)
    ids = [f"c{i:03d}" for i in range(500)]
    parts = stratified_random(ids, labels, (70, 15, 15), rng_for(0, "random"))
    n_lab = sum(lab is not None for lab in labels)
    sizes = Counter(parts)
    assert [sizes["train"], sizes["val"], sizes["test"]] == exact_counts(n_lab, (70, 15, 15))
    assert all((p == "") == (lab is None) for p, lab in zip(parts, labels, strict=True))
    for cls in ("angry", "happy", "neutral", "sad"):
        n_cls = labels.count(cls)
        n_test = sum(p == "test" for p, lab in zip(parts, labels, strict=True) if lab == cls)
        assert abs(n_test - 0.15 * n_cls) <= 1.0


def test_stratified_random_ignores_input_order() -> None:
    rng = np.random.default_rng(1)
    labels = _labels(rng, 120)
    ids = [f"c{i:03d}" for i in range(120)]
    parts = dict(zip(ids, stratified_random(ids, labels, (70, 15, 15), rng_for(5, "k")), strict=True))
    order = rng.permutation(120)
    shuffled = stratified_random([ids[i] for i in order], [labels[i] for i in order], (70, 15, 15), rng_for(5, "k"))
    assert dict(zip([ids[i] for i in order], shuffled, strict=True)) == parts


def test_group_split_is_disjoint_and_balanced_by_strata() -> None:
    actors = [f"{a:02d}" for a in range(1, 25)]
    strata = {a: "M" if int(a) % 2 else "F" for a in actors}
    table = group_split(actors, (16, 4, 4), rng_for(0, "speaker"), strata)
    assert Counter(table.values()) == {"train": 16, "val": 4, "test": 4}
    for part in ("val", "test"):
        assert Counter(strata[a] for a, p in table.items() if p == part) == {"M": 2, "F": 2}
    other = group_split(actors, (16, 4, 4), rng_for(1, "speaker"), strata)
    assert other != table


def test_group_split_never_leaves_test_empty() -> None:
    table = group_split(["a", "b", "c"], (70, 15, 15), rng_for(0, "s"))
    assert sorted(table.values()) == ["test", "train", "val"]


def test_holdout_folds_next_group() -> None:
    groups = ["a", "a", "b", "c", "c"]
    labels = ["sad", None, "sad", "happy", "happy"]
    folds = holdout_folds(groups, labels, next_group_folds(["a", "b", "c"]), "spk")
    assert list(folds) == ["spk/a", "spk/b", "spk/c"]
    assert folds["spk/a"] == ["test", "", "val", "train", "train"]
    assert folds["spk/c"] == ["val", "", "train", "test", "test"]

"""Seeded, machine-independent split builders shared by the corpus readers.

Every function here is pure: it takes ids / labels / speakers and returns split assignments.
Randomness comes from :func:`rng_for`, which derives one numpy ``Generator`` per
``(seed, protocol key)`` so that adding a protocol never changes another protocol's split.
Permutations are made by ``argsort`` of uniform draws (whose stream is stable across numpy
releases) over inputs that are sorted first, so a split depends only on the clip ids, the
labels and the seed, never on file-system listing order.

Only clips with a canonical label take part in a split; the others get ``""`` (excluded).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

TRAIN, VAL, TEST, OUT = "train", "val", "test", ""
PARTS: tuple[str, str, str] = (TRAIN, VAL, TEST)


def rng_for(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the protocol ``key``."""
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """A permutation of ``range(n)`` that is reproducible across numpy versions."""
    return np.argsort(rng.random(n), kind="stable")


def exact_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` items into integer counts proportional to ``fractions`` summing to ``n``.

    Largest-remainder rounding; ties go to the earlier part.

    Example:
        >>> exact_counts(339, (192, 75, 72))
        [192, 75, 72]
        >>> exact_counts(10, (0.7, 0.15, 0.15))
        [7, 2, 1]
    """
    total = float(sum(fractions))
    quotas = [n * f / total for f in fractions]
    counts = [int(np.floor(q)) for q in quotas]
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _largest_remainder(sizes: Sequence[int], total: int) -> list[int]:
    """Integer shares of ``total`` proportional to ``sizes``, each the floor or ceiling of its quota."""
    n = sum(sizes)
    quotas = [s * total / n if n else 0.0 for s in sizes]
    shares = [min(int(np.floor(q)), s) for q, s in zip(quotas, sizes, strict=True)]
    order = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - shares[i]), i))
    left = total - sum(shares)
    for i in order:
        if left <= 0:
            break
        if shares[i] < sizes[i]:
            shares[i] += 1
            left -= 1
    return shares


def _allocate(class_sizes: Sequence[int], totals: Sequence[int]) -> np.ndarray:
    """Class x part counts with exact part totals; every class gets its fair share +- 1.

    The small parts are placed first (test, then val) by largest remainder over what each
    class has left, and train takes the rest.
    """
    alloc = np.zeros((len(class_sizes), len(totals)), dtype=int)
    left = list(class_sizes)
    for p in range(len(totals) - 1, 0, -1):
        alloc[:, p] = _largest_remainder(left, totals[p])
        left = [a - b for a, b in zip(left, alloc[:, p], strict=True)]
    alloc[:, 0] = left
    return alloc


def stratified_random(
    ids: Sequence[str],
    labels: Sequence[str | None],
    fractions: Sequence[float],
    rng: np.random.Generator,
) -> list[str]:
    """Random train/val/test assignment with exact part totals, stratified by label.

    Args:
        ids: clip ids (used only to fix the order before shuffling).
        labels: canonical label per clip, ``None`` for clips that stay out of every part.
        fractions: relative sizes of (train, val, test); any positive scale.
        rng: from :func:`rng_for`.

    Returns:
        One of ``"train"``, ``"val"``, ``"test"``, ``""`` per clip, parallel to ``ids``.
    """
    out = [OUT] * len(ids)
    members = [i for i, lab in enumerate(labels) if lab is not None]
    classes = sorted({labels[i] for i in members})  # type: ignore[type-var]
    by_class = {c: sorted((i for i in members if labels[i] == c), key=lambda i: ids[i]) for c in classes}
    totals = exact_counts(len(members), fractions)
    alloc = _allocate([len(by_class[c]) for c in classes], totals)
    for ci, c in enumerate(classes):
        idx = by_class[c]
        order = [idx[j] for j in permutation(rng, len(idx))]
        start = 0
        for pi, part in enumerate(PARTS):
            for i in order[start : start + alloc[ci, pi]]:
                out[i] = part
            start += alloc[ci, pi]
    return out


def group_split(
    groups: Sequence[str],
    fractions: Sequence[float],
    rng: np.random.Generator,
    strata: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Assign whole groups (speakers) to train/val/test, seeded.

    Each non-empty fraction gets at least one group when there are enough groups. With
    ``strata`` (e.g. speaker -> gender) the groups of each stratum are split separately,
    so every part keeps the stratum balance (RAVDESS: 2 women + 2 men in val and test).

    Returns:
        group -> part.
    """
    uniq = sorted(set(groups))
    strata = strata or {}
    buckets: dict[str, list[str]] = {}
    for g in uniq:
        buckets.setdefault(strata.get(g, ""), []).append(g)
    out: dict[str, str] = {}
    for key in sorted(buckets):
        members = buckets[key]
        counts = exact_counts(len(members), fractions)
        # never leave val/test empty while train keeps more than one group
        for p in (2, 1):
            if counts[p] == 0 and fractions[p] > 0 and counts[0] > 1:
                counts[p], counts[0] = 1, counts[0] - 1
        order = [members[j] for j in permutation(rng, len(members))]
        start = 0
        for part, k in zip(PARTS, counts, strict=True):
            for g in order[start : start + k]:
                out[g] = part
            start += k
    return out


def by_group(groups: Sequence[str], labels: Sequence[str | None], part_of: Mapping[str, str]) -> list[str]:
    """Per-clip parts from a group -> part table; unlabelled clips are left out."""
    return [OUT if lab is None else part_of.get(g, OUT) for g, lab in zip(groups, labels, strict=True)]


def holdout_folds(
    groups: Sequence[str],
    labels: Sequence[str | None],
    folds: Sequence[tuple[str, Sequence[str], Sequence[str]]],
    prefix: str,
) -> dict[str, list[str]]:
    """Splits for folds that each hold out test groups and validation groups.

    Args:
        groups: group (speaker or session) per clip.
        labels: canonical label per clip (``None`` = excluded).
        folds: ``(name, test_groups, val_groups)``; every other group trains.
        prefix: fold-key prefix, e.g. ``"speaker"`` gives ``"speaker/03"``.
    """
    out: dict[str, list[str]] = {}
    for name, test, val in folds:
        table = {g: TRAIN for g in groups}
        table.update({g: VAL for g in val})
        table.update({g: TEST for g in test})
        out[f"{prefix}/{name}"] = by_group(groups, labels, table)
    return out


def next_group_folds(ordered: Sequence[str]) -> list[tuple[str, list[str], list[str]]]:
    """Leave-one-group-out folds validating on the next group (cyclic).

    Example:
        >>> next_group_folds(["a", "b", "c"])
        [('a', ['a'], ['b']), ('b', ['b'], ['c']), ('c', ['c'], ['a'])]
    """
    n = len(ordered)
    return [(g, [g], [ordered[(i + 1) % n]]) for i, g in enumerate(ordered)]


LOSO = "loso"
"""The leave-one-speaker-out protocol every corpus with speaker ids offers (fold keys ``loso/<speaker>``)."""
LOSO_VAL_FRACTION = 0.15
"""Share of the training speakers of a LOSO fold that validate (model selection), at least one."""
UNKNOWN_SPEAKERS = ("", "unknown")


def loso_speakers(speakers: Sequence[str], labels: Sequence[str | None]) -> list[str] | None:
    """The speakers a leave-one-speaker-out protocol would hold out, or ``None`` if it cannot be built.

    Only speakers of labelled clips count. It needs at least 3 of them (test, validation and
    training speakers) and a known speaker for every labelled clip.
    """
    spk = {s for s, lab in zip(speakers, labels, strict=True) if lab is not None}
    if len(spk) < 3 or spk & set(UNKNOWN_SPEAKERS):
        return None
    return sorted(spk)


def loso_folds(
    speakers: Sequence[str],
    labels: Sequence[str | None],
    seed: int = 0,
    val_fraction: float = LOSO_VAL_FRACTION,
) -> dict[str, list[str]]:
    """Leave-one-speaker-out splits with nested validation on other speakers, seeded.

    One fold per speaker of a labelled clip, ``loso/<speaker>`` in sorted speaker order. Its
    test part is that speaker; its validation part is ``k = max(1, round(val_fraction * (n - 1)))``
    of the other speakers: the ``k`` that follow the test speaker in one seeded cyclic order of
    all speakers (so every speaker validates ``k`` times); the rest train. The test speaker is
    never in training or validation, and model selection never sees it.

    Args:
        speakers: speaker per clip.
        labels: canonical label per clip (``None`` = excluded from every part).
        seed: seed of the validation order (the test parts do not depend on it).
        val_fraction: share of the ``n - 1`` training speakers that validate.

    Returns:
        fold key -> parts per clip; ``{}`` when :func:`loso_speakers` finds too few speakers.

    Example:
        >>> folds = loso_folds(["a", "a", "b", "c"], ["sad", "angry", "sad", "sad"])
        >>> list(folds), folds["loso/a"][:2]
        (['loso/a', 'loso/b', 'loso/c'], ['test', 'test'])
    """
    names = loso_speakers(speakers, labels)
    if names is None:
        return {}
    n = len(names)
    k = max(1, min(n - 2, int(np.floor(val_fraction * (n - 1) + 0.5))))
    cycle = [names[j] for j in permutation(rng_for(seed, LOSO), n)]
    at = {g: i for i, g in enumerate(cycle)}
    folds = [(g, [g], [cycle[(at[g] + d) % n] for d in range(1, k + 1)]) for g in names]
    return holdout_folds(speakers, labels, folds, LOSO)

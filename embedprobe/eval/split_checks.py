"""Checks that every fold of a probing run can measure what it claims to (pure, no IO).

Before any training, :func:`check_run` looks at each fold of the protocol in use of every
corpus that a run trains or tests on, and returns one :class:`SplitIssue` per problem, each
with one sentence naming the corpus, the fold and the fix:

* ``missing-class`` (stops the run): a train, validation or test part lacks a class that the
  corpus has, so its metrics are undefined or measure fewer classes than they say;
* ``confounded`` (stops the run): every speaker carries a single label, so a speaker split
  tests unseen classes and a random split measures speaker identity;
* ``few-clips`` (warning): a part holds a single clip of a class;
* ``random-fallback`` (warning): the corpus had too few (or no) speaker ids for a
  speaker-independent protocol and its reader fell back to a random split, so test speakers
  are also training speakers.

The stopping kinds raise :class:`DegenerateSplitError` from :func:`raise_if_stopping` unless the
caller allows degenerate splits (``--allow-degenerate``); every issue is recorded in the results
file either way.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 1, 2, 3] * 3)
    >>> spk = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 4)
    >>> parts = {"speaker/a": np.array(["test"] * 4 + ["val"] * 4 + ["train"] * 4)}
    >>> [(i.part, i.kind) for i in check_folds("demo", y, spk, parts, ["speaker/a"], protocol="speaker")]
    [('train', 'few-clips'), ('val', 'few-clips'), ('test', 'few-clips')]
    >>> confounded = check_folds("demo", np.array([0, 0, 1, 1]), np.array(["a", "a", "b", "b"]),
    ...                          {"random": np.array(["train", "train", "test", "test"])}, ["random"])
    >>> [i.kind for i in confounded]
    ['confounded', 'missing-class', 'missing-class']
    >>> print(confounded[0].message)
    Corpus 'demo': every speaker carries a single label (2 speakers, 2 labels), so speakers and labels are confounded in every fold of protocol 'random'. Fix: check the speaker column (one speaker per folder of one emotion is a common mistake) or give real speaker ids; --allow-degenerate runs it anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from embedprobe.corpora.base import CANONICAL_LABELS
from embedprobe.errors import EmbedprobeError
from embedprobe.eval.data import CorpusData

PART_NAMES: dict[str, str] = {"train": "training", "val": "validation", "test": "test"}
STOPPING: frozenset[str] = frozenset({"missing-class", "confounded"})
"""Issue kinds that stop a run unless degenerate splits are allowed."""
KINDS: tuple[str, ...] = ("missing-class", "confounded", "few-clips", "random-fallback")
UNKNOWN_SPEAKER = "unknown"  # what the readers write when a clip has no speaker id
FIX_ALLOW = "--allow-degenerate runs it anyway"


class DegenerateSplitError(EmbedprobeError):
    """A fold of the run cannot measure what it claims to (see :mod:`embedprobe.eval.split_checks`)."""


@dataclass(frozen=True)
class SplitIssue:
    """One problem of one fold (``fold`` is ``""`` for the whole corpus, ``part`` likewise)."""

    corpus: str
    fold: str
    part: str
    kind: str
    message: str = field(repr=False)

    @property
    def stops(self) -> bool:
        return self.kind in STOPPING

    def record(self) -> dict[str, object]:
        """The JSON-able record written into the results file."""
        return asdict(self) | {"stops": self.stops}


def _labels(idx: Iterable[int]) -> str:
    return ", ".join(CANONICAL_LABELS[i] for i in idx)


def check_part(corpus: str, fold: str, part: str, y: np.ndarray, classes: Sequence[int],
               protocol: str = "") -> list[SplitIssue]:
    """Issues of one part: classes of the corpus it lacks, classes it holds a single clip of.

    Example:
        >>> [i.kind for i in check_part("c", "random", "val", np.array([0, 0, 1]), [0, 1, 2])]
        ['missing-class', 'few-clips']
        >>> check_part("c", "random", "val", np.array([0, 0, 1, 1]), [0, 1])
        []
    """
    counts = {k: int((y == k).sum()) for k in classes}
    lacking = [k for k, n in counts.items() if n == 0]
    single = [k for k, n in counts.items() if n == 1]
    where = f"the {PART_NAMES[part]} part of fold '{fold}' of corpus '{corpus}'"
    out = []
    if lacking:
        out.append(SplitIssue(corpus, fold, part, "missing-class", (
            f"{where[0].upper()}{where[1:]} has no clip of {_labels(lacking)} ({y.size} clips in that part), so "
            f"its metrics are undefined or cover fewer classes than they claim. Fix: {_fix_missing(corpus, protocol)}; "
            f"{FIX_ALLOW}.")))
    if single:
        out.append(SplitIssue(corpus, fold, part, "few-clips", (
            f"{where[0].upper()}{where[1:]} holds a single clip of {_labels(single)}, so its per-class figures rest "
            f"on one clip. Fix: give that part at least 2 clips of every class (more speakers or a larger part).")))
    return out


def _fix_missing(corpus: str, protocol: str) -> str:
    if protocol == "random":
        return "give the corpus more clips of that class, so that every part gets some"
    return (f"use a protocol whose parts hold every class (--protocol {corpus}=random, or a split column that "
            "spreads every class over the parts)")


def confounded(corpus: str, y: np.ndarray, speakers: np.ndarray, protocol: str) -> SplitIssue | None:
    """The ``confounded`` issue when every (known) speaker carries a single label, else None.

    Example:
        >>> confounded("c", np.array([0, 1, 1]), np.array(["a", "b", "b"]), "speaker").kind
        'confounded'
        >>> confounded("c", np.array([0, 1, 1]), np.array(["a", "a", "b"]), "speaker") is None
        True
    """
    known = speakers != UNKNOWN_SPEAKER
    spk, lab = speakers[known], y[known]
    names = np.unique(spk)
    if names.size < 2 or np.unique(lab).size < 2:
        return None
    if any(np.unique(lab[spk == s]).size > 1 for s in names):
        return None
    return SplitIssue(corpus, "", "", "confounded", (
        f"Corpus '{corpus}': every speaker carries a single label ({names.size} speakers, {np.unique(lab).size} "
        f"labels), so speakers and labels are confounded in every fold of protocol '{protocol}'. Fix: check the "
        f"speaker column (one speaker per folder of one emotion is a common mistake) or give real speaker ids; "
        f"{FIX_ALLOW}."))


def random_fallback(corpus: str, speakers: np.ndarray, protocol: str,
                    protocols: Sequence[str] | None) -> SplitIssue | None:
    """The ``random-fallback`` issue when the reader could only offer a random split, else None.

    Readers fall back to their ``random`` protocol (and offer nothing else) when a corpus has fewer
    than 3 speakers or clips without speaker ids; ``protocols`` are the ones its manifest offers
    (``None``: unknown, no check).

    Example:
        >>> random_fallback("c", np.array(["03", "08"]), "random", ["random"]).kind
        'random-fallback'
        >>> random_fallback("c", np.array(["03", "08"]), "random", ["speaker", "random"]) is None
        True
    """
    if protocol != "random" or protocols is None or set(protocols) != {"random"}:
        return None
    known = sorted(set(speakers.tolist()) - {UNKNOWN_SPEAKER})
    why = (f"only {len(known)} speaker(s) with ids" if known and UNKNOWN_SPEAKER not in speakers
           else "clips without speaker ids")
    return SplitIssue(corpus, "random", "", "random-fallback", (
        f"Corpus '{corpus}' has {why}, so its reader fell back from a speaker-independent split to fold 'random': "
        f"test speakers also train, and its in-domain figures are not speaker-independent. Fix: probe it with at "
        f"least 3 speakers with ids (a manifest's speaker column), or give a split of your own (its split column)."))


def check_folds(corpus: str, y: np.ndarray, speakers: np.ndarray, parts: Mapping[str, np.ndarray],
                folds: Sequence[str], protocol: str = "", *, protocols: Sequence[str] | None = None,
                used: Sequence[str] = ("train", "val", "test"), pooled_test: bool = False) -> list[SplitIssue]:
    """Every issue of one corpus: its ``folds`` (train/val/test parts) as used by a run.

    Args:
        corpus: the corpus name (for the sentences).
        y: label indices into ``CANONICAL_LABELS`` per clip.
        speakers: speaker id per clip.
        parts: fold key -> ``"train"|"val"|"test"|""`` per clip.
        folds: the fold keys the run uses.
        protocol: the protocol's name; protocols: those the manifest offers (fallback check).
        used: the parts of each fold the run uses (a corpus trained on: train and val, plus test
            when it is also tested in-domain); an empty val part is allowed (the probe then
            validates without one). Speaker confounding and the random fallback matter only to a
            corpus trained on, so they are checked when ``"train"`` is used.
        pooled_test: the corpus is tested only by probes trained elsewhere, on the union of the
            test parts of every fold (checked as fold ``"all test parts"``).
    """
    classes = sorted(np.unique(y).tolist())
    out: list[SplitIssue] = []
    if "train" in used:
        out += [i for i in (confounded(corpus, y, speakers, protocol or folds[0]),
                            random_fallback(corpus, speakers, protocol, protocols)) if i]
    for f in folds:
        for part in used:
            sel = parts[f] == part
            if part == "val" and not sel.any():
                continue
            out += check_part(corpus, f, part, y[sel], classes, protocol)
    if pooled_test:
        sel = np.zeros(y.shape[0], dtype=bool)
        for f in parts:
            sel |= parts[f] == "test"
        out += check_part(corpus, "all test parts", "test", y[sel], classes, protocol)
    return out


def check_run(data: Mapping[str, CorpusData], train_sets: Sequence[Sequence[str]], tests: Sequence[str],
              max_folds: int | None = None) -> list[SplitIssue]:
    """Every issue of a run that trains on ``train_sets`` and tests on ``tests``.

    A corpus in a training set is checked on each fold the run uses (``max_folds`` first ones):
    its train and val parts, and its test part when it is tested too; a corpus only tested, on
    the union of its test parts (what probes trained elsewhere are scored on). ``CorpusData.meta["protocols"]`` (the
    protocols its manifest offers) enables the fallback check.
    """
    trained = {c for t in train_sets for c in t}
    out: list[SplitIssue] = []
    for name, d in data.items():
        folds = d.folds[:max_folds] if max_folds else d.folds
        used = (("train", "val") + (("test",) if name in tests else ())) if name in trained else ()
        out += check_folds(name, d.y, d.speakers, {f: d.parts[f] for f in d.folds}, folds, d.protocol,
                           protocols=d.meta.get("protocols"), used=used,
                           pooled_test=name in tests and name not in trained)
    return out


def raise_if_stopping(issues: Sequence[SplitIssue], *, allow: bool) -> None:
    """Raise :class:`DegenerateSplitError` with the first stopping issue's sentence, unless ``allow``."""
    stopping = [i for i in issues if i.stops]
    if stopping and not allow:
        more = f" ({len(stopping) - 1} more such problem(s) in this run.)" if len(stopping) > 1 else ""
        raise DegenerateSplitError(stopping[0].message + more)

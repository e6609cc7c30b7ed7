"""The EmoDB reader on the real release in ../shared/data/emodb."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from embedprobe.corpora import Manifest, scan

pytestmark = pytest.mark.emodb


@pytest.fixture(scope="module")
def emodb(emodb_root: Path) -> Manifest:
    return scan("emodb", emodb_root)


def test_counts(emodb: Manifest) -> None:
    assert len(emodb) == 535
    assert Counter(c.label for c in emodb.labelled()) == {"angry": 127, "happy": 71, "neutral": 79, "sad": 62}
    assert emodb.excluded_counts() == {"boredom": 81, "disgust": 46, "fear": 69}
    assert len({c.speaker for c in emodb.clips}) == 10
    assert Counter(dict(c.meta)["gender"] for c in emodb.clips) == {"F": 302, "M": 233}


def test_random_split_matches_the_poster(emodb: Manifest, emodb_root: Path) -> None:
    parts = Counter(emodb.splits["random"])
    assert (parts["train"], parts["val"], parts["test"], parts[""]) == (192, 75, 72, 196)
    for label, n in {"angry": 127, "happy": 71, "neutral": 79, "sad": 62}.items():
        n_test = sum(c.label == label for c in emodb.part("random", "test"))
        assert abs(n_test - n * 72 / 339) <= 1
    assert scan("emodb", emodb_root, seed=1).splits["random"] != emodb.splits["random"]
    assert scan("emodb", emodb_root).splits == emodb.splits


def test_speaker_folds(emodb: Manifest) -> None:
    folds = emodb.folds()
    assert emodb.default_protocol == "speaker" and len(folds) == 10
    tested: Counter[str] = Counter()
    for fold in folds:
        spk = {p: {c.speaker for c in emodb.part(fold, p)} for p in ("train", "val", "test")}
        assert spk["test"] == {fold.split("/")[1]} and len(spk["val"]) == 1 and len(spk["train"]) == 8
        assert not (spk["train"] & spk["test"]) and not (spk["train"] & spk["val"]) and not (spk["val"] & spk["test"])
        tested.update(c.id for c in emodb.part(fold, "test"))
    assert len(tested) == 339 and set(tested.values()) == {1}


@pytest.mark.parametrize(("gender", "speakers", "n_4class"), [
    ("f", {"08", "09", "13", "14", "16"}, 188), ("m", {"03", "10", "11", "12", "15"}, 151)])
def test_halves_as_named_corpora(emodb_root: Path, gender: str, speakers: set[str], n_4class: int) -> None:
    """The demo's two corpora: each half keeps 5 speaker-independent folds and every class in each test part."""
    half = scan("emodb", emodb_root, gender=gender, corpus_name=f"emodb-{gender}")
    assert half.corpus == f"emodb-{gender}" and {c.speaker for c in half.clips} == speakers
    assert len(half.labelled()) == n_4class and len(half.folds()) == 5
    for fold in half.folds():
        assert {c.label for c in half.part(fold, "test")} == {"angry", "happy", "neutral", "sad"}
        assert len({c.speaker for c in half.part(fold, "train")}) == 3

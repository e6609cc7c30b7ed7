"""Leave-one-speaker-out folds: one per speaker, nested validation, deterministic, for every reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedprobe.corpora import scan
from embedprobe.corpora.base import Clip, Manifest
from embedprobe.corpora.common import describe
from embedprobe.corpora.splits import LOSO, loso_folds, loso_speakers
from embedprobe.errors import BadValueError

LABELS = ("angry", "happy", "neutral", "sad")


def _corpus(n_speakers: int, per_speaker: int = 8, seed: int = 0) -> tuple[list[str], list[str | None]]:
    rng = np.random.default_rng(seed)
    speakers = [f"s{i:02d}" for i in range(n_speakers) for _ in range(per_speaker)]
    labels: list[str | None] = [LABELS[j] if j < 4 else None for j in rng.integers(0, 5, len(speakers))]
    return speakers, labels


@pytest.mark.parametrize("n_speakers", [3, 10, 24])
def test_one_fold_per_speaker_test_speaker_never_trains_or_validates(n_speakers: int) -> None:
    speakers, labels = _corpus(n_speakers)
    folds = loso_folds(speakers, labels, seed=0)
    names = sorted(set(speakers))
    assert list(folds) == [f"loso/{s}" for s in names]
    for s in names:
        parts = folds[f"loso/{s}"]
        by_part: dict[str, set[str]] = {}
        for spk, lab, p in zip(speakers, labels, parts, strict=True):
            assert (p == "") == (lab is None)  # unlabelled clips stay out of every part
            if p:
                by_part.setdefault(p, set()).add(spk)
        assert by_part["test"] == {s}
        assert s not in by_part["train"] | by_part["val"]
        assert by_part["val"] and not by_part["val"] & by_part["train"]  # nested: val speakers only
        assert len(by_part["val"]) == max(1, min(n_speakers - 2, round(0.15 * (n_speakers - 1))))


def test_every_speaker_validates_equally_often_and_folds_are_seeded() -> None:
    speakers, labels = _corpus(10)
    a, b, c = (loso_folds(speakers, labels, seed=s) for s in (0, 0, 1))
    assert a == b
    assert a != c
    val = [{spk for spk, p in zip(speakers, parts, strict=True) if p == "val"} for parts in a.values()]
    assert sorted(next(iter(v)) for v in val) == sorted(set(speakers))  # a cycle: each validates once
    # the test parts do not depend on the seed
    assert all([p == "test" for p in a[k]] == [p == "test" for p in c[k]] for k in a)


def test_order_of_clips_does_not_matter() -> None:
    speakers, labels = _corpus(6)
    folds = loso_folds(speakers, labels, seed=3)
    order = np.random.default_rng(1).permutation(len(speakers))
    shuffled = loso_folds([speakers[i] for i in order], [labels[i] for i in order], seed=3)
    assert all(shuffled[k] == [folds[k][i] for i in order] for k in folds)


@pytest.mark.parametrize(("speakers", "labels"), [
    (["a", "a", "b"], ["sad", "happy", "sad"]),  # two speakers
    (["a", "b", "c", "unknown"], ["sad", "happy", "sad", "angry"]),  # an unknown speaker
    (["a", "b", "c", ""], ["sad", "happy", "sad", "angry"]),
])
def test_no_loso_without_three_known_speakers(speakers: list[str], labels: list[str]) -> None:
    assert loso_speakers(speakers, labels) is None
    assert loso_folds(speakers, labels) == {}


def test_speakers_of_unlabelled_clips_get_no_fold() -> None:
    folds = loso_folds(["a", "b", "c", "d"], ["sad", "happy", "sad", None])
    assert list(folds) == ["loso/a", "loso/b", "loso/c"]


def _manifest(speakers: list[str], labels: list[str | None], **options: object) -> Manifest:
    clips = [Clip(id=f"c{i}", path=f"c{i}.wav", speaker=s, native_label=lab or "x", label=lab)
             for i, (s, lab) in enumerate(zip(speakers, labels, strict=True))]
    return Manifest(corpus="demo", root="/x", clips=clips, splits={"random": ["train"] * len(clips)},
                    protocols={"random": ["random"]}, default_protocol="random", options=dict(options))


def test_manifest_derives_loso_when_asked_and_keeps_json_unchanged() -> None:
    speakers, labels = _corpus(5)
    m = _manifest(speakers, labels, seed=2)
    before = m.to_json()
    d = m.with_protocol(LOSO)
    assert d.folds(LOSO) == [f"loso/s{i:02d}" for i in range(5)]
    assert d.splits["loso/s00"] == loso_folds(speakers, labels, seed=2)["loso/s00"]
    assert m.to_json() == before and LOSO not in m.protocols  # the stored manifest is untouched
    assert m.with_protocol("random") is m and d.with_protocol(LOSO) is d
    # a round trip through JSON (what a cache stores) derives the same folds
    assert Manifest.from_json(before).with_protocol(LOSO).splits == d.splits


def test_manifest_without_speakers_names_the_fix() -> None:
    m = _manifest(["a", "a", "b"], ["sad", "happy", "sad"])
    with pytest.raises(BadValueError, match=r"Bad split protocol for demo 'loso', expected one of \['random'\]. "
                                            "loso needs a known speaker id"):
        m.with_protocol(LOSO).folds(LOSO)
    with pytest.raises(BadValueError, match=r"expected one of \['loso', 'random'\]"):
        _manifest(*_corpus(4)).folds("speaker")


def test_every_reader_with_speakers_offers_loso(synth: dict[str, Path]) -> None:
    offered = []
    for name, root in sorted(synth.items()):
        m = scan(name, root)
        if not m.offers_loso():
            continue
        offered.append(name)
        d = m.with_protocol(LOSO)
        spk = {c.speaker for c in m.labelled()}
        assert len(d.folds(LOSO)) == len(spk)
        for key in d.folds(LOSO):
            test = {c.speaker for c in d.part(key, "test")}
            assert len(test) == 1 and not test & {c.speaker for c in d.part(key, "train") + d.part(key, "val")}
    assert {"emodb", "iemocap", "ravdess", "crema-d"} <= set(offered)


def test_describe_offers_loso(synth: dict[str, Path]) -> None:
    text = describe(scan("emodb", synth["emodb"]))
    assert "protocol loso: 10 fold(s), one per speaker (derived when probed: --protocol emodb=loso)" in text

"""Every reader on its synthetic tree: counts, labels, speakers, split properties, options."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from embedprobe.corpora import CORPORA, CorpusReader, Manifest, describe, get_corpus, scan
from embedprobe.corpora.synthetic import synthetic_names
from embedprobe.errors import BadValueError, CorpusError

BUILT_IN = ["crema-d", "emobox", "emodb", "iemocap", "manifest", "msp-podcast", "ravdess"]


def label_counts(m: Manifest) -> dict[str, int]:
    return dict(Counter(c.label for c in m.labelled()))


def speakers_of(m: Manifest, fold: str) -> dict[str, set[str]]:
    return {p: {c.speaker for c in m.part(fold, p)} for p in ("train", "val", "test")}


def assert_speaker_disjoint(m: Manifest, fold: str) -> None:
    s = speakers_of(m, fold)
    assert s["train"] and s["test"], fold
    assert not (s["train"] & s["val"]) and not (s["train"] & s["test"]) and not (s["val"] & s["test"]), fold


def assert_only_labelled_in_splits(m: Manifest) -> None:
    for key, parts in m.splits.items():
        for c, p in zip(m.clips, parts, strict=True):
            assert p in ("train", "val", "test", ""), key
            if c.label is None:
                assert p == "", (key, c.id)


def test_registry_names() -> None:
    assert set(BUILT_IN) <= set(CORPORA.names())
    with pytest.raises(BadValueError, match="msp-podcast"):
        get_corpus("msp_podcast")


@pytest.mark.parametrize("name", sorted(CORPORA.names()))
def test_every_reader_has_a_synthetic_layout(name: str) -> None:
    """So that the round trip below (and tests/corpora/test_synthetic.py) covers every reader."""
    reader = CORPORA.get(name)
    assert issubclass(reader, CorpusReader) and reader.synthetic is not None and name in synthetic_names()
    assert reader.synthesize.__doc__ and reader.synthesize.__doc__ != CorpusReader.synthesize.__doc__


@pytest.mark.parametrize("name", sorted(synthetic_names()))
def test_every_reader_round_trips_and_is_deterministic(synth: dict[str, Path], name: str) -> None:
    m = scan(name, synth[name])
    assert m.corpus == name and m.default_protocol in m.protocols
    assert_only_labelled_in_splits(m)
    assert [c.id for c in m.clips] == sorted(c.id for c in m.clips)
    assert all((Path(m.root) / c.path).is_file() for c in m.labelled())
    back = Manifest.from_json(m.to_json())
    assert (back.clips, back.splits, back.protocols, back.default_protocol, back.label_map, back.options) == (
        m.clips, m.splits, m.protocols, m.default_protocol, m.label_map, m.options)
    again = scan(name, synth[name])
    assert again.splits == m.splits and again.clips == m.clips
    assert "excluded from 4-class work" in describe(m)
    for fold in m.folds():
        assert m.part(fold, "train") and m.part(fold, "test")


# -- IEMOCAP ----------------------------------------------------------------------------------
def test_iemocap_counts_speakers_and_meta(synth: dict[str, Path]) -> None:
    m = scan("iemocap", synth["iemocap"])
    assert label_counts(m) == {k: 20 for k in ("angry", "happy", "neutral", "sad")}
    assert m.excluded_counts() == {"exc": 10, "fru": 10, "xxx": 10}
    assert {c.speaker for c in m.clips} == {f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"}
    for c in m.clips:  # the speaker is the gender letter after the last underscore
        assert c.speaker == c.id[:5] + c.id.rsplit("_", 1)[1][0]
    assert any(c.id.startswith("Ses01F_") and c.speaker == "Ses01M" for c in m.clips)
    meta = dict(m.clips[0].meta)
    assert float(meta["end"]) > float(meta["start"]) and {"valence", "activation", "dominance"} <= set(meta)


def test_iemocap_speaker_protocol(synth: dict[str, Path]) -> None:
    m = scan("iemocap", synth["iemocap"])
    assert m.default_protocol == "speaker" and len(m.folds("speaker")) == 10
    tested = Counter()
    for fold in m.folds("speaker"):
        spk = fold.split("/")[1]
        s = speakers_of(m, fold)
        other = spk[:-1] + ("M" if spk[-1] == "F" else "F")
        assert s["test"] == {spk} and s["val"] == {other} and len(s["train"]) == 8
        assert_speaker_disjoint(m, fold)
        tested.update(c.id for c in m.part(fold, "test"))
    assert set(tested) == {c.id for c in m.labelled()} and set(tested.values()) == {1}


def test_iemocap_session_protocols(synth: dict[str, Path]) -> None:
    m = scan("iemocap", synth["iemocap"])
    assert m.folds("session") == [f"session/{i}" for i in range(1, 6)]
    s = speakers_of(m, "session/5")
    assert s["test"] == {"Ses05F", "Ses05M"} and s["val"] == {"Ses01F", "Ses01M"}
    r0 = scan("iemocap", synth["iemocap"], session_val="random", seed=0)
    r1 = scan("iemocap", synth["iemocap"], session_val="random", seed=1)
    val = r0.part("session/2", "val")
    train = r0.part("session/2", "train")
    assert {c.speaker[:5] for c in r0.part("session/2", "test")} == {"Ses02"}
    assert abs(len(val) - 0.1 * (len(val) + len(train))) <= 1
    assert "Ses02" not in {c.speaker[:5] for c in val + train}
    assert r0.splits != r1.splits and r0.splits["speaker/Ses01F"] == r1.splits["speaker/Ses01F"]
    with pytest.raises(BadValueError, match="session_val"):
        scan("iemocap", synth["iemocap"], session_val="other")


def test_iemocap_excited_as_happy(synth: dict[str, Path]) -> None:
    m = scan("iemocap", synth["iemocap"], excited_as_happy="true")
    assert label_counts(m)["happy"] == 30 and "exc" not in m.excluded_counts()
    assert m.label_map["exc"] == "happy" and m.options["excited_as_happy"] is True


def test_iemocap_missing_wav(synth: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "iemo"
    shutil.copytree(synth["iemocap"], root)
    victim = next(c for c in scan("iemocap", root).labelled())
    (root / victim.path).unlink()
    kept = scan("iemocap", root)  # kept: extraction records it as a "file not found" error
    assert victim.id in kept.ids and len(kept.labelled()) == 80
    m = scan("iemocap", root, allow_missing=True)
    assert victim.id not in m.ids and len(m.labelled()) == 79


# -- CREMA-D ----------------------------------------------------------------------------------
def test_cremad(synth: dict[str, Path]) -> None:
    m = scan("crema-d", synth["crema-d"])
    assert label_counts(m) == {k: 24 for k in ("angry", "happy", "neutral", "sad")}
    assert m.excluded_counts() == {"DIS": 8, "FEA": 8}
    assert {dict(c.meta)["gender"] for c in m.clips} == {"M", "F"}
    assert m.default_protocol == "random"
    sizes = Counter(m.splits["random"])
    assert (sizes["train"], sizes["val"], sizes["test"]) == (67, 15, 14)  # 70/15/15 of 96
    for lab in ("angry", "sad"):
        assert sum(c.label == lab for c in m.part("random", "test")) in (3, 4)
    other = scan("crema-d", synth["crema-d"], seed=7)
    assert other.splits["random"] != m.splits["random"]
    assert_speaker_disjoint(m, "speaker")
    s = speakers_of(m, "speaker")
    gender = {c.speaker: dict(c.meta)["gender"] for c in m.clips}
    assert [len(s[p]) for p in ("train", "val", "test")] == [4, 2, 2]
    assert {gender[a] for a in s["test"]} == {"M", "F"}


# -- MSP-Podcast ------------------------------------------------------------------------------
def test_msp_podcast(synth: dict[str, Path], tmp_path: Path) -> None:
    m = scan("msp-podcast", synth["msp-podcast"])
    assert label_counts(m) == {k: 17 for k in ("angry", "happy", "neutral", "sad")}  # 8 speakers x 2 + 1 unknown
    assert m.excluded_counts() == {"contempt": 8, "no-agreement": 8, "surprise": 8}
    assert sum(c.speaker == "unknown" for c in m.clips) == 4
    rows = list(csv.DictReader((synth["msp-podcast"] / "Labels" / "labels_consensus.csv").open()))
    want = {"Train": "train", "Development": "val", "Test1": "test", "Test2": ""}
    by_id = {c.id: p for c, p in zip(m.clips, m.splits["official"], strict=True)}
    for r in rows:
        expected = want[r["Split_Set"]] if r["EmoClass"] in "AHNS" else ""
        assert by_id[r["FileName"][:-4]] == expected
    assert m.part("test2", "test") and not set(m.part("test2", "test")) & set(m.part("official", "test"))
    assert_speaker_disjoint(m, "official")
    root = tmp_path / "msp"  # older releases spell the label file "concensus"
    shutil.copytree(synth["msp-podcast"], root)
    (root / "Labels" / "labels_consensus.csv").rename(root / "Labels" / "labels_concensus.csv")
    assert scan("msp-podcast", root).splits == m.splits


# -- EmoDB (synthetic) -------------------------------------------------------------------------
def test_emodb_synthetic(synth: dict[str, Path]) -> None:
    m = scan("emodb", synth["emodb"])
    assert label_counts(m) == {k: 20 for k in ("angry", "happy", "neutral", "sad")}
    assert m.excluded_counts() == {"boredom": 10, "disgust": 10, "fear": 10}
    assert m.folds() == [f"speaker/{s}" for s in ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")]
    assert speakers_of(m, "speaker/16")["val"] == {"03"}
    for fold in m.folds():
        assert_speaker_disjoint(m, fold)
    sizes = Counter(m.splits["random"])
    assert (sizes["train"], sizes["val"], sizes["test"]) == (45, 18, 17)  # 192:75:72 of 80


# -- RAVDESS ----------------------------------------------------------------------------------
def test_ravdess_labels_and_options(synth: dict[str, Path]) -> None:
    m = scan("ravdess", synth["ravdess"])
    assert label_counts(m) == {k: 16 for k in ("angry", "happy", "neutral", "sad")}
    assert m.excluded_counts() == {"calm": 16, "fearful": 8, "surprised": 8}
    assert all(dict(c.meta)["channel"] == "speech" for c in m.clips)
    calm = scan("ravdess", synth["ravdess"], calm_as_neutral=True)
    assert label_counts(calm)["neutral"] == 32 and "calm" not in calm.excluded_counts()
    song = scan("ravdess", synth["ravdess"], include_song=True)
    assert len(song) == len(m) + 8 and sum(dict(c.meta)["channel"] == "song" for c in song.clips) == 8


def test_ravdess_speaker_protocols(synth: dict[str, Path]) -> None:
    m = scan("ravdess", synth["ravdess"])
    assert_speaker_disjoint(m, "speaker")
    s = speakers_of(m, "speaker")
    assert [len(s[p]) for p in ("train", "val", "test")] == [4, 2, 2]
    for p in ("val", "test"):
        assert sorted(int(a) % 2 for a in s[p]) == [0, 1]  # one woman, one man
    assert scan("ravdess", synth["ravdess"], seed=3).splits["speaker"] != m.splits["speaker"]
    tested = Counter()
    for fold in m.folds("speaker-cv"):
        assert_speaker_disjoint(m, fold)
        tested.update(c.speaker for c in m.part(fold, "test"))
    assert len(m.folds("speaker-cv")) == 6 and len(tested) == 8


# -- manifest ---------------------------------------------------------------------------------
def test_manifest_csv_synonyms_and_speaker_protocol(synth: dict[str, Path]) -> None:
    m = scan("manifest", synth["manifest"])
    assert label_counts(m) == {k: 12 for k in ("angry", "happy", "neutral", "sad")}
    assert m.excluded_counts() == {"disgust": 6, "fear": 6}
    assert m.label_map["Anger"] == "angry" and m.label_map["joy"] == "happy" and m.label_map["NEU"] == "neutral"
    assert m.default_protocol == "speaker" and "given" not in m.protocols
    assert_speaker_disjoint(m, "speaker")
    assert dict(m.clips[0].meta)["gender"] in ("F", "M")
    over = scan("manifest", synth["manifest"], label_map="fear=angry,Anger=none")
    assert label_counts(over)["angry"] == 12 - sum(c.native_label == "Anger" for c in m.clips) + 6


def test_manifest_jsonl_given_split(synth: dict[str, Path]) -> None:
    path = synth["manifest"].parent / "manifest_split.jsonl"
    m = scan("manifest", path)
    assert m.default_protocol == "given" and m.folds() == ["given"]
    records = {json.loads(line)["id"]: json.loads(line) for line in path.read_text().splitlines()}
    want = {"train": "train", "valid": "val", "test": "test"}
    for c, p in zip(m.clips, m.splits["given"], strict=True):
        assert p == (want[records[c.id]["split"]] if c.label else "")
    assert_speaker_disjoint(m, "given")


def test_manifest_absolute_paths_multi_fold_and_errors(synth: dict[str, Path], tmp_path: Path) -> None:
    src = scan("manifest", synth["manifest"]).labelled()[:6]
    base = synth["manifest"].parent
    lines = ["path,label,speaker,split:1,split:2"]
    lines += [f"{base / c.path},{c.native_label},{c.speaker},{'train' if i % 3 else 'test'},dev" for i, c in enumerate(src)]
    (tmp_path / "abs.csv").write_text("\n".join(lines) + "\n")
    m = scan("manifest", tmp_path / "abs.csv")
    assert m.folds("given") == ["given/1", "given/2"] and len(m.part("given/1", "test")) == 2
    assert len(m.part("given/2", "val")) == 6
    (tmp_path / "bad.csv").write_text(lines[0] + "\n" + lines[1].replace(",test,", ",holdout,") + "\n")
    with pytest.raises(CorpusError, match="holdout"):
        scan("manifest", tmp_path / "bad.csv")
    (tmp_path / "dup.csv").write_text("path,label,speaker\n" + f"{base / src[0].path},sad,a\n" * 2)
    with pytest.raises(CorpusError, match="twice"):
        scan("manifest", tmp_path / "dup.csv")
    (tmp_path / "cols.csv").write_text("file,emotion\nx.wav,sad\n")
    with pytest.raises(CorpusError, match="lacks the column"):
        scan("manifest", tmp_path / "cols.csv")


# -- EmoBox -----------------------------------------------------------------------------------
def test_emobox_folds(synth: dict[str, Path]) -> None:
    data = synth["emobox"]
    m = scan("emobox", data)
    assert Path(m.root) == data.parent.parent  # the folder holding downloads/
    assert label_counts(m) == {k: 16 for k in ("angry", "happy", "neutral", "sad")}
    assert m.excluded_counts() == {"boredem": 8, "disgust": 8, "fear": 8}
    assert m.label_map["neutral"] == "neutral"  # EmoBox's label_map says "Neutral": matched case-insensitively
    assert m.folds() == ["fold/1", "fold/2"]
    for k in (1, 2):
        test_keys = {json.loads(x)["key"] for x in (data / f"fold_{k}" / f"emodb_test_fold_{k}.jsonl").read_text().splitlines()}
        assert {c.id for c in m.part(f"fold/{k}", "test")} == {c.id for c in m.labelled() if c.id in test_keys}
        s = speakers_of(m, f"fold/{k}")
        assert not (s["train"] | s["val"]) & s["test"]
        n_val, n_train = len(m.part(f"fold/{k}", "val")), len(m.part(f"fold/{k}", "train"))
        assert abs(n_val - 0.2 * (n_val + n_train)) <= 1
    assert {c.speaker for c in m.clips} == {"03", "08", "09", "10", "11", "12", "13", "14"}  # parsed from names


def test_emobox_single_file_and_fold_file(synth: dict[str, Path], tmp_path: Path) -> None:
    data = synth["emobox"]
    whole = scan("emobox", data / "emodb.jsonl")
    assert "emobox" not in whole.protocols and whole.default_protocol == "speaker"
    assert_speaker_disjoint(whole, "speaker")
    via_fold = scan("emobox", data / "fold_1" / "emodb_train_fold_1.jsonl")
    assert via_fold.folds() == ["fold/1", "fold/2"]
    with pytest.raises(CorpusError, match="audio_root"):
        scan("emobox", data, audio_root=str(tmp_path))


def test_manifest_without_speakers_falls_back_to_random(synth: dict[str, Path], tmp_path: Path) -> None:
    src = scan("manifest", synth["manifest"]).labelled()
    base = synth["manifest"].parent
    (tmp_path / "m.tsv").write_text("path\tlabel\n" + "".join(f"{base / c.path}\t{c.native_label}\n" for c in src))
    m = scan("manifest", tmp_path / "m.tsv", seed=2)
    assert m.default_protocol == "random" and set(m.protocols) == {"random"}
    assert {c.speaker for c in m.clips} == {"unknown"} and len(m.labelled()) == len(src)

"""Bad roots and bad options fail with errors that name the value, the expectation and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedprobe.corpora import CORPORA, canonical_label, scan
from embedprobe.errors import BadValueError, CorpusError

#: what the built-in readers say is missing (any other registered corpus gets the generic checks)
EXPECTED = {
    "iemocap": "no Session1..5 folders",
    "crema-d": "no 'AudioWAV' folder",
    "msp-podcast": "no Labels/labels_consensus.csv",
    "emodb": "no 'wav' folder",
    "ravdess": "no Actor_01..Actor_24 folders",
    "manifest": "no manifest file",
    "emobox": "no EmoBox .jsonl files",
}


@pytest.mark.parametrize("name", sorted(CORPORA.names()))
def test_missing_root_names_root_and_fix(name: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(CorpusError) as err:
        scan(name, missing)
    msg = str(err.value)
    assert str(missing) in msg and "does not exist" in msg and "Fix:" in msg and "Expected" in msg


@pytest.mark.parametrize("name", sorted(CORPORA.names()))
def test_wrong_root_says_what_was_expected(name: str, tmp_path: Path) -> None:
    (tmp_path / "something.txt").write_text("not a corpus")
    with pytest.raises(CorpusError) as err:
        scan(name, tmp_path)
    msg = str(err.value)
    assert EXPECTED.get(name, "") in msg and str(tmp_path) in msg and "Fix:" in msg and "Expected" in msg


def test_expected_messages_name_registered_corpora() -> None:
    assert set(EXPECTED) <= set(CORPORA.names())


@pytest.mark.parametrize(("name", "inner"), [("iemocap", "IEMOCAP_full_release/Session1"),
                                             ("ravdess", "Audio_Speech_Actors_01-24/Actor_01"),
                                             ("emodb", "download/emodb/wav")])
def test_points_to_a_nested_release(name: str, inner: str, tmp_path: Path) -> None:
    (tmp_path / inner).mkdir(parents=True)
    with pytest.raises(CorpusError) as err:
        scan(name, tmp_path)
    assert f"use {str((tmp_path / inner).parent)!r} as the root" in str(err.value)


def test_emodb_empty_wav_folder(tmp_path: Path) -> None:
    (tmp_path / "wav").mkdir()
    (tmp_path / "wav" / "readme.wav").write_bytes(b"")
    with pytest.raises(CorpusError, match="03a01Fa"):
        scan("emodb", tmp_path)


def test_msp_podcast_wrong_columns(tmp_path: Path) -> None:
    (tmp_path / "Labels").mkdir()
    (tmp_path / "Audios").mkdir()
    (tmp_path / "Labels" / "labels_consensus.csv").write_text("File,Emotion\na.wav,A\n")
    with pytest.raises(CorpusError, match="lacks the column"):
        scan("msp-podcast", tmp_path)


def test_unknown_option_lists_allowed(tmp_path: Path) -> None:
    with pytest.raises(BadValueError) as err:
        scan("emodb", tmp_path, calm_as_neutral=True)
    assert "calm_as_neutral" in str(err.value) and "seed" in str(err.value)


def test_option_values_are_checked(tmp_path: Path) -> None:
    with pytest.raises(BadValueError, match="excited_as_happy"):
        scan("iemocap", tmp_path, excited_as_happy="maybe")
    with pytest.raises(BadValueError, match="seed"):
        scan("emodb", tmp_path, seed="abc")
    with pytest.raises(BadValueError, match="label_map"):
        scan("manifest", tmp_path / "m.csv", label_map="fear")


def test_label_synonyms() -> None:
    assert [canonical_label(x) for x in ("ANG", "Anger", "joy", "Neutral", "sadness", "fear", "exc")] == [
        "angry", "angry", "happy", "neutral", "sad", None, None]
    assert canonical_label("Exc", {"exc": "happy"}) == "happy"
    with pytest.raises(BadValueError, match="label_map target"):
        canonical_label("exc", {"exc": "joyful"})

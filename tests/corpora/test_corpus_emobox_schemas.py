"""EmoBox as it really is: both record schemas, two fold-file sets in one folder, track2 as named corpora.

The files are written here from the synthetic EmoBox layout (``wav``/``emo`` records in
``fold_K/<ds>_<part>_fold_K.jsonl``), rewritten into the other schemas EmoBox's repository uses.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from embedprobe.corpora import scan
from embedprobe.errors import BadValueError, CorpusError


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _audio_label(r: dict) -> dict:
    """The ``audio``/``label`` schema of EmoBox's ``<ds>_<part>_foldK.jsonl`` files."""
    return {"key": r["key"], "audio": r["wav"], "label": r["emo"], "dataset": r["dataset"]}


@pytest.fixture
def box(synth: dict[str, Path], tmp_path: Path) -> Path:
    root = tmp_path / "EmoBox"
    shutil.copytree(synth["emobox"].parent.parent, root)
    return root / "data" / "emodb"


def _folds(m) -> dict[str, dict[str, set[str]]]:
    return {f: {p: {c.id for c in m.part(f, p)} for p in ("train", "val", "test")} for f in m.folds()}


def test_audio_label_schema_reads_like_wav_emo(box: Path) -> None:
    before = scan("emobox", box)
    for f in [box / "emodb.jsonl", *box.glob("fold_*/*.jsonl")]:
        _write(f, [_audio_label(r) for r in _records(f)])
    after = scan("emobox", box)
    def core(m) -> list[tuple]:  # meta differs: the audio/label records carry no length etc.
        return [(c.id, c.path, c.speaker, c.native_label, c.label) for c in m.clips]

    assert core(after) == core(before) and _folds(after) == _folds(before)


def test_two_fold_file_sets_take_fold_K_and_say_so(box: Path, caplog: pytest.LogCaptureFixture) -> None:
    before = scan("emobox", box)
    # the second set (foldK, audio/label) puts fold 1's test speakers into fold 2 and back,
    # so which set was read shows in the folds
    for k, other in ((1, 2), (2, 1)):
        for part in ("train", "test"):
            src = box / f"fold_{other}" / f"emodb_{part}_fold_{other}.jsonl"
            _write(box / f"fold_{k}" / f"emodb_{part}_fold{k}.jsonl", [_audio_label(r) for r in _records(src)])
    with caplog.at_level(logging.WARNING, logger="embedprobe.corpora"):
        chosen = scan("emobox", box)
    notes = [r.getMessage() for r in caplog.records if "fold-file sets" in r.getMessage()]
    assert len(notes) == 1 and "reading fold_K" in notes[0] and "emodb_test_fold1.jsonl" in notes[0]
    assert _folds(chosen) == _folds(before) and chosen.options["fold_files"] == "fold_K"
    other = scan("emobox", box, fold_files="foldK")
    assert {f: p["test"] for f, p in _folds(other).items()} == {
        "fold/1": _folds(before)["fold/2"]["test"], "fold/2": _folds(before)["fold/1"]["test"]}
    assert scan("emobox", box).options["fold_files"] == "fold_K"  # deterministic
    with pytest.raises(BadValueError, match="fold_files"):
        scan("emobox", box, fold_files="fold-k")


def test_record_without_path_or_label_names_both_schemas(box: Path) -> None:
    f = box / "fold_1" / "emodb_test_fold_1.jsonl"
    _write(f, [{"key": "x", "audio": "a.wav"}])
    with pytest.raises(CorpusError, match=r"lacks a label \(emo/label\)"):
        scan("emobox", box)


def _track2(box: Path) -> Path:
    """``data/track2``: one ``wav_filename``/``label``/``speaker`` file per corpus (here EmoDB's halves)."""
    track = box.parent / "track2"
    track.mkdir()
    recs = _records(box / "emodb.jsonl")
    women = {"08", "09", "13", "14", "16"}
    for name, keep in (("WOMEN", lambda s: s in women), ("MEN", lambda s: s not in women)):
        rows = []
        for r in recs:
            spk = Path(r["wav"]).name[:2]
            if keep(spk):  # paths relative to the corpus's audio folder, as in EmoBox's track2
                rows.append({"wav_filename": r["wav"].split("downloads/emodb/", 1)[1], "label": r["emo"],
                             "speaker": f"s{spk}"})
        _write(track / f"{name}_selected_balenced.jsonl", rows)
    return track


def test_track2_files_read_as_named_corpora(box: Path) -> None:
    track = _track2(box)
    audio = str(box.parent.parent / "downloads" / "emodb")
    with pytest.raises(CorpusError, match=r"--option dataset=NAME --name NAME"):
        scan("emobox", track, audio_root=audio)
    women = scan("emobox", track, dataset="women", audio_root=audio, corpus_name="track2-women")
    men = scan("emobox", track, dataset="MEN", audio_root=audio, corpus_name="track2-men")
    assert (women.corpus, men.corpus, women.reader) == ("track2-women", "track2-men", "emobox")
    assert {c.speaker for c in women.clips} == {"s08", "s09", "s13", "s14"}
    assert {c.speaker for c in men.clips} == {"s03", "s10", "s11", "s12"}
    assert women.default_protocol == "speaker" and women.labelled()
    assert all(c.id == Path(c.path).stem for c in women.clips)  # unique file names keep the short id
    with pytest.raises(BadValueError, match="dataset"):
        scan("emobox", track, dataset="savee", audio_root=audio)


def test_keyless_records_with_repeated_file_names_keep_apart(tmp_path: Path, synth: dict[str, Path]) -> None:
    """SAVEE's track2 file names repeat across speakers (JK/sa01.wav, JE/sa01.wav)."""
    src = synth["emobox"].parent.parent / "downloads" / "emodb" / "wav"
    wavs = sorted(src.glob("*.wav"))[:2]
    for spk, wav in (("JK", wavs[0]), ("JE", wavs[1])):
        (tmp_path / spk).mkdir()
        shutil.copy(wav, tmp_path / spk / "sa01.wav")
    _write(tmp_path / "savee.jsonl", [{"wav_filename": f"{s}/sa01.wav", "label": "sad", "speaker": s}
                                      for s in ("JK", "JE")])
    m = scan("emobox", tmp_path / "savee.jsonl")
    assert sorted(c.id for c in m.clips) == ["JE/sa01", "JK/sa01"]

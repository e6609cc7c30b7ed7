"""The ``hf-dataset`` reader on datasets built offline from real EmoDB files with ``datasets``.

Builds a ``Dataset`` with ``Dataset.from_dict`` + ``cast_column(Audio(decode=False))`` +
``save_to_disk`` in tmp_path, once with file paths and once with the encoded bytes embedded,
then scans it, extracts ``logmel-128`` and runs a probe. Needs ``datasets``
(``pip install 'embedprobe[hf-datasets]'``) and ``../shared/data/emodb`` (``EMBEDPROBE_EMODB``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from embedprobe.corpora import scan
from embedprobe.corpora.hf_dataset import materialise
from embedprobe.corpora.synthetic import write_corpus
from embedprobe.errors import CorpusError, MissingDependencyError
from embedprobe.pipeline.extract import ExtractConfig, extract
from embedprobe.pipeline.probe import ProbeConfig, probe

EMOTIONS = {"W": "anger", "F": "happiness", "N": "neutral", "T": "sadness", "L": "boredom"}
SPEAKERS = {"03": "test", "08": "validation", "09": "train", "10": "train", "11": "train"}


def _datasets():
    return pytest.importorskip("datasets", reason="datasets is not installed (pip install 'embedprobe[hf-datasets]')")


def _emodb_files(emodb_root: Path) -> list[Path]:
    return [f for f in sorted((emodb_root / "wav").glob("*.wav")) if f.stem[:2] in SPEAKERS and f.stem[5] in EMOTIONS]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def saved(emodb_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``paths``: one Dataset of file paths, string labels, a split column; ``bytes``: a
    DatasetDict with embedded audio, ClassLabel labels and other column names."""
    ds = _datasets()
    files = _emodb_files(emodb_root)
    base = tmp_path_factory.mktemp("hfdata")
    rows = {"audio": [str(f) for f in files], "label": [EMOTIONS[f.stem[5]] for f in files],
            "speaker": [f.stem[:2] for f in files], "split": [SPEAKERS[f.stem[:2]] for f in files]}
    paths = ds.Dataset.from_dict(rows).cast_column("audio", ds.Audio(decode=False))
    paths.save_to_disk(str(base / "paths"))
    names = sorted(set(EMOTIONS.values()))
    parts = {}
    for split in ("train", "validation", "test"):
        mine = [f for f in files if SPEAKERS[f.stem[:2]] == split]
        parts[split] = ds.Dataset.from_dict(  # cast, not features=: encoding needs torchcodec
            {"audio": [{"bytes": f.read_bytes(), "path": f.name} for f in mine],
             "emotion": [EMOTIONS[f.stem[5]] for f in mine], "speaker_id": [f.stem[:2] for f in mine]},
        ).cast_column("audio", ds.Audio(decode=False)).cast_column("emotion", ds.ClassLabel(names=names))
    ds.DatasetDict(parts).save_to_disk(str(base / "bytes"))
    return {"paths": base / "paths", "bytes": base / "bytes", "n": len(files)}


@pytest.mark.parametrize("kind", ["paths", "bytes"])
def test_scan_reads_labels_speakers_and_given_splits(saved: dict, emodb_root: Path, kind: str) -> None:
    m = scan("hf-dataset", saved[kind])
    files = {f.stem: f for f in _emodb_files(emodb_root)}
    assert len(m) == saved["n"] and set(m.ids) == set(files)  # ids: the audio files' stems
    assert m.default_protocol == "given" and set(m.protocols) == {"given", "speaker", "random"}
    assert m.excluded_counts() == {"boredom": sum(f.stem[5] == "L" for f in files.values())}
    for c, part in zip(m.clips, m.splits["given"], strict=True):
        assert c.speaker == c.id[:2] and c.label == {"W": "angry", "F": "happy", "N": "neutral",
                                                     "T": "sad", "L": None}[c.id[5]]
        expected = {"test": "test", "validation": "val", "train": "train"}[SPEAKERS[c.speaker]]
        assert part == (expected if c.label else "")
        audio = Path(m.root) / c.path
        assert _sha(audio.read_bytes()) == _sha(files[c.id].read_bytes())  # the very same encoded file
    # datasets' save_to_disk embeds the files of an Audio column: both are bytes in the Arrow
    # table, written once, content-addressed, under the dataset folder
    assert all(c.path.startswith(".embedprobe-audio/") for c in m.clips)
    stamps = {p: p.stat().st_mtime_ns for p in (saved[kind] / ".embedprobe-audio").rglob("*.wav")}
    assert len(stamps) == len(m)
    again = scan("hf-dataset", saved[kind])
    assert again.to_csv() == m.to_csv()
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing rewritten


def test_a_column_of_paths_is_read_in_place(emodb_root: Path, tmp_path: Path) -> None:
    """Paths stored as strings (datasets' advice for keeping paths) are used where they are."""
    ds = _datasets()
    files = _emodb_files(emodb_root)[:12]
    local = tmp_path / "wav"
    local.mkdir()
    (local / files[0].name).write_bytes(files[0].read_bytes())
    paths = [f"wav/{files[0].name}"] + [str(f) for f in files[1:]]  # relative: to the dataset folder
    ds.Dataset.from_dict({"file": paths, "label": [EMOTIONS[f.stem[5]] for f in files]}).save_to_disk(
        str(tmp_path / "ds"))
    (tmp_path / "ds" / "wav").mkdir()
    (tmp_path / "ds" / "wav" / files[0].name).write_bytes(files[0].read_bytes())
    m = scan("hf-dataset", tmp_path / "ds", audio_column="file")
    by_id = {c.id: c for c in m.clips}
    assert by_id[files[0].stem].path == f"wav/{files[0].name}"
    assert all(by_id[f.stem].path == str(f) for f in files[1:])
    assert not (tmp_path / "ds" / ".embedprobe-audio").exists()
    assert {c.speaker for c in m.clips} == {"unknown"} and "speaker" not in m.protocols


def test_extract_and_probe_on_embedded_bytes(saved: dict, tmp_path: Path) -> None:
    caches, results = tmp_path / "cache", tmp_path / "results"
    summary = extract(ExtractConfig(model="logmel-128", corpus="hf-dataset", root=str(saved["bytes"]),
                                    out=str(caches)), progress=False)
    assert summary.n_errors == 0 and summary.complete and summary.n_new == summary.n_clips > 0
    path = probe(ProbeConfig(model="logmel-128", cache_dir=str(caches), train=("hf-dataset",), probe="linear",
                             probe_params={"max_steps": 60}, n_bootstrap=10, max_folds=1, out=str(results)),
                 progress=False)
    cell = json.loads(path.read_text())["cells"][0]
    assert cell["train"] == cell["test"] == "hf-dataset"
    assert cell["metrics"]["auroc"]["mean"] > 0.6


def test_column_options_and_their_errors(saved: dict) -> None:
    m = scan("hf-dataset", saved["paths"], label_map="boredom=neutral", split_column="")
    assert m.excluded_counts() == {} and {c.label for c in m.clips} == {"angry", "happy", "neutral", "sad"}
    assert "given" not in m.protocols and m.default_protocol == "speaker"  # "": no split column
    with pytest.raises(CorpusError, match=r"no column 'spk' \(speaker_column\).*'speaker'.*Fix: pass speaker_column="):
        scan("hf-dataset", saved["paths"], speaker_column="spk")
    with pytest.raises(CorpusError, match=r"no column 'x' \(id_column\); it has \['audio', 'emotion', 'speaker_id'\]"):
        scan("hf-dataset", saved["bytes"], speaker_column="speaker_id", id_column="x")


def test_hub_id_offline_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _datasets()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(CorpusError, match=r"could not load the Hub dataset 'nobody/no-such-emotions'.*Fix: go online"):
        scan("hf-dataset", "nobody/no-such-emotions", audio_dir=str(tmp_path))


def test_hub_id_without_datasets_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'embedprobe\[hf-datasets\]'"):
        scan("hf-dataset", "renumics/emodb")


def test_synthetic_layout_is_what_datasets_writes(tmp_path: Path) -> None:
    ds = _datasets()
    root = write_corpus("hf-dataset", tmp_path, n_speakers=3, clips_per_class=1, duration_s=(0.4, 0.5))
    loaded = ds.load_from_disk(str(root))
    assert set(loaded) == {"train", "validation", "test"}
    test = loaded["test"]
    assert test.features["label"].names[:4] == ["anger", "happiness", "neutral", "sadness"]
    assert test.features["audio"].decode is False and test[0]["audio"]["bytes"][:4] == b"RIFF"
    m = scan("hf-dataset", root)
    assert len(m) == sum(len(v) for v in loaded.values()) and m.default_protocol == "given"


def test_the_extra_is_declared_and_in_all() -> None:
    import tomllib

    from embedprobe.corpora.hf_dataset import EXTRA

    extras = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(r.startswith("datasets") for r in extras[EXTRA])
    assert set(extras[EXTRA]) <= set(extras["all"])


def test_materialise_is_content_addressed_and_sniffs_the_format(tmp_path: Path) -> None:
    wav = b"RIFF....WAVEfmt "
    first = materialise(wav, "", tmp_path)
    assert first == tmp_path / _sha(wav)[:2] / f"{_sha(wav)}.wav" and first.read_bytes() == wav
    assert materialise(wav, "take 1.WAV", tmp_path) == first  # same bytes: the same file
    assert materialise(b"fLaC....", None, tmp_path).suffix == ".flac"
    assert materialise(b"\x00odd", "clip.mp3", tmp_path).suffix == ".mp3"  # the stored name wins


def test_a_damaged_save_to_disk_folder_is_one_sentence(tmp_path: Path) -> None:
    root = write_corpus("hf-dataset", tmp_path, n_speakers=3, clips_per_class=1, duration_s=(0.4, 0.5))
    arrow = root / "test" / "data-00000-of-00001.arrow"
    arrow.write_bytes(arrow.read_bytes()[:100])
    with pytest.raises(CorpusError, match=r"hf-dataset: '.*test' is not a readable save_to_disk folder .*Fix:"):
        scan("hf-dataset", root)

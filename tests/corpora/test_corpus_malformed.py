"""Malformed metadata files: every form gives one CorpusError naming the file and line, or is read.

UTF-8 (with or without a BOM), UTF-16 and UTF-32 manifests are read; Latin-1 is refused with
"save it as UTF-8"; extra CSV cells, JSONL lines that are not objects and NUL bytes name the
line; the messages of user-made manifests never send the user to an "official release".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from embedprobe.corpora import scan
from embedprobe.corpora.textfiles import read_csv, read_jsonl
from embedprobe.errors import CorpusError


@pytest.fixture()
def rows(synth: dict[str, Path]) -> list[list[str]]:
    """The synthetic manifest's rows with absolute paths and a non-ASCII speaker on line 2."""
    folder = synth["manifest"].parent
    lines = synth["manifest"].read_text().splitlines()
    out = [lines[0].split(",")]
    for line in lines[1:]:
        cells = line.split(",")
        cells[0] = str(folder / cells[0])
        out.append(cells)
    out[1][2] = "Jürgen"
    return out


def _text(rows: list[list[str]]) -> str:
    return "".join(",".join(r) + "\n" for r in rows)


def _ids(path: Path) -> list[tuple[str, str, str | None]]:
    return [(c.id, c.speaker, c.label) for c in scan("manifest", path).clips]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_unicode_encodings_are_read(encoding: str, rows: list[list[str]], tmp_path: Path) -> None:
    plain, other = tmp_path / "plain.csv", tmp_path / "other.csv"
    plain.write_text(_text(rows), encoding="utf-8")
    other.write_bytes(_text(rows).encode(encoding))
    assert _ids(other) == _ids(plain)
    assert "Jürgen" in {s for _, s, _ in _ids(other)}


def test_latin1_names_file_line_and_fix(rows: list[list[str]], tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(_text(rows).encode("latin-1"))
    with pytest.raises(CorpusError) as err:
        scan("manifest", path)
    msg = str(err.value)
    assert str(path) in msg and "line 2" in msg and "0xfc" in msg and "save it as UTF-8" in msg


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_extra_cells_name_line(suffix: str, rows: list[list[str]], tmp_path: Path) -> None:
    sep = "\t" if suffix == ".tsv" else ","
    rows[3] = [*rows[3], "surplus", "more"]
    path = tmp_path / f"m{suffix}"
    path.write_text("".join(sep.join(r) + "\n" for r in rows))
    with pytest.raises(CorpusError) as err:
        scan("manifest", path)
    msg = str(err.value)
    assert str(path) in msg and "line 4" in msg and "cells" in msg and "'surplus'" in msg and "Fix:" in msg


def test_short_rows_and_blank_lines_keep_true_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("path,label,speaker,split\n\na.wav,ang\n\nb.wav,sad,s1,bogus\n")
    with pytest.raises(CorpusError) as err:  # the short row is padded; the bad split is on line 5
        scan("manifest", path)
    assert "line 5" in str(err.value) and "split='bogus'" in str(err.value)
    assert read_csv(path, "manifest")[0] == (3, {"path": "a.wav", "label": "ang", "speaker": "", "split": ""})


def test_nul_bytes_are_one_error(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"path,label\na.wav,ang\nb\x00.wav,sad\n")
    with pytest.raises(CorpusError) as err:
        scan("manifest", path)
    assert str(path) in str(err.value) and "line 3" in str(err.value)


@pytest.mark.parametrize("line", ['["a.wav", "ang"]', '"a.wav"', "3", "null", "true"])
def test_jsonl_line_not_an_object(line: str, synth: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    good = json.dumps({"path": str(synth["manifest"].parent / "x.wav"), "label": "ang", "speaker": "a"})
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(CorpusError) as err:
        scan("manifest", path)
    msg = str(err.value)
    assert str(path) in msg and "line 3" in msg and "not an object" in msg and "Fix:" in msg


def test_jsonl_object_without_label(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"path": "a.wav", "label": "ang"}\n{"path": "b.wav"}\n')
    with pytest.raises(CorpusError, match="line 2 has no label"):
        scan("manifest", path)


def test_jsonl_latin1(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes('{"path": "a.wav", "label": "ang"}\n{"path": "ä.wav", "label": "ang"}\n'.encode("latin-1"))
    with pytest.raises(CorpusError, match=r"line 2 .*save it as UTF-8"):
        read_jsonl(path, "manifest")


@pytest.mark.parametrize("content", ["", "path,label,speaker\n", "\n\n"])
def test_empty_manifest_wording(content: str, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(content)
    with pytest.raises(CorpusError) as err:
        scan("manifest", path)
    msg = str(err.value)
    assert "no rows" in msg and str(path) in msg and "official release" not in msg and "Fix:" in msg


def test_manifest_layout_errors_name_manifest_fix(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    for root in (tmp_path, tmp_path / "notes.txt"):
        with pytest.raises(CorpusError) as err:
            scan("manifest", root)
        assert "official release" not in str(err.value) and ".jsonl" in str(err.value)


def test_emobox_line_not_an_object(synth: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "box"
    shutil.copytree(synth["emobox"], root)
    target = sorted(root.rglob("*.jsonl"))[0]
    target.write_text(target.read_text() + "[1, 2]\n")
    n = len(target.read_text().splitlines())
    with pytest.raises(CorpusError) as err:
        scan("emobox", root)
    assert str(target) in str(err.value) and f"line {n}" in str(err.value)


def test_emobox_label_map_not_an_object(synth: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "box"
    shutil.copytree(synth["emobox"], root)
    label_map = next(root.rglob("label_map.json"))
    label_map.write_text("[]")
    with pytest.raises(CorpusError, match="not an object"):
        scan("emobox", root)


def test_msp_podcast_labels_extra_cells(synth: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "msp"
    shutil.copytree(synth["msp-podcast"], root)
    labels = root / "Labels" / "labels_consensus.csv"
    lines = labels.read_text().splitlines()
    lines[2] += ",x,y"
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError) as err:
        scan("msp-podcast", root)
    assert str(labels) in str(err.value) and "line 3" in str(err.value)

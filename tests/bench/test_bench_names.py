"""Bench corpus names become folder and file names: names that would leave the output folder,
nest a folder or hide a file are refused when the config is read, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedprobe.bench.checks import ConfigError
from embedprobe.bench.config import parse_config


def raw(key: str, out: Path) -> dict:
    return {"bench": {"out": str(out)}, "extract": {"models": ["logmel-128"]},
            "corpora": {key: {"synthetic": "emodb"}}, "grid": {"train": [key]}}


@pytest.mark.parametrize("key", ["../../ESCAPED", "a/b", "..", ".hidden", "a\\b", "a b", "-x", "x\n", ""])
def test_unsafe_corpus_names_are_refused(key: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(raw(key, tmp_path / "out"), source="b.toml")
    msg = str(err.value)
    assert "corpus name" in msg and repr(key) in msg and "letters, digits" in msg
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["emodb", "synth-iemocap", "crema-d", "msp_podcast.v1", "A1"])
def test_ordinary_corpus_names_pass(key: str, tmp_path: Path) -> None:
    cfg = parse_config(raw(key, tmp_path / "out"), source="b.toml")
    assert [c.key for c in cfg.corpora] == [key]


def test_latin1_config_is_one_sentence(tmp_path: Path) -> None:
    from embedprobe.bench import load_config
    from embedprobe.errors import EmbedprobeError

    path = tmp_path / "b.toml"
    path.write_bytes('[bench]\nname = "Jürgen"\n'.encode("latin-1"))
    with pytest.raises(EmbedprobeError, match=r"line 2 .*save it as UTF-8"):
        load_config(path)


@pytest.mark.parametrize(("params", "needle"), [
    ({"batch_size": 0}, "batch size"), ({"device": "bogus"}, "device 'bogus'"),
    ({"chunk_s": 0}, "chunk length"), ({"frame_hop_s": 0.02}, "only applies with --frames"),
    ({"batch_size": "x"}, "batch size"),
])
def test_extract_values_are_checked_when_the_config_is_read(params: dict, needle: str, tmp_path: Path) -> None:
    config = raw("emodb", tmp_path / "out")
    config["extract"].update(params)
    with pytest.raises(ConfigError, match="extract") as err:
        parse_config(config, source="b.toml")
    assert needle in str(err.value)

"""The worked corpus example of docs/DEVELOPING.md, loaded as an external plugin from one file.

The code block is read from the document itself, so the example cannot drift from what works.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedprobe.audio.voice import DEFAULT_CHANNEL
from embedprobe.cli.main import app
from embedprobe.corpora import CORPORA, scan
from embedprobe.corpora.synthetic import (
    CHANNELS,
    DEFAULTS,
    layout_table,
    synthetic_names,
    write_corpus,
)
from embedprobe.registry import PLUGINS_ENV, load_external_plugins

DEVELOPING = Path(__file__).resolve().parents[2] / "docs" / "DEVELOPING.md"
SECTION = "### Worked example: a corpus"


def example_code() -> str:
    text = DEVELOPING.read_text()
    assert SECTION in text, f"{DEVELOPING} lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the corpus example is one python block"
    return blocks[0]


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The example registered from a temporary file via EMBEDPROBE_PLUGINS; unregistered after."""
    code = example_code()
    name = re.search(r'^    name = "([^"]+)"', code, flags=re.M).group(1)
    path = tmp_path / "tiny_acted_plugin.py"
    path.write_text(code)
    CORPORA.names()  # discover the built-in readers first
    assert name not in CORPORA
    monkeypatch.setenv(PLUGINS_ENV, str(path))
    load_external_plugins(force=True)
    try:
        yield name
    finally:
        CORPORA.remove(name)
        sys.modules.pop(f"embedprobe_plugin_{path.stem}", None)  # so the next test imports it afresh
        monkeypatch.delenv(PLUGINS_ENV)
        load_external_plugins(force=True)
    assert name not in CORPORA


def test_the_documented_corpus_is_one_file(plugin: str, tmp_path: Path) -> None:
    name = plugin
    assert name in CORPORA and name in synthetic_names()
    assert DEFAULTS[name] == (4, 3) and CHANNELS[name] is DEFAULT_CHANNEL  # it declares none
    assert any(line.startswith(name) for line in layout_table().splitlines())

    root = write_corpus(name, tmp_path / "data")
    assert root == tmp_path / "data" and len(list(root.glob("s*/*.wav"))) == 4 * (4 * 3 + 1)
    m = scan(name, root)
    assert m.corpus == name and m.default_protocol == "speaker"
    assert Counter(c.label for c in m.labelled()) == {k: 4 * 3 for k in ("angry", "happy", "neutral", "sad")}
    assert m.excluded_counts() == {"fea": 4}
    assert len(m.folds()) == 4
    for fold in m.folds():
        parts = {p: {c.speaker for c in m.part(fold, p)} for p in ("train", "val", "test")}
        assert len(parts["test"]) == 1 and len(parts["val"]) == 1 and len(parts["train"]) == 2
        assert not (parts["train"] & parts["val"] or parts["train"] & parts["test"] or parts["val"] & parts["test"])

    again = tmp_path / "again"
    write_corpus(name, again)
    assert all((again / p.relative_to(root)).read_bytes() == p.read_bytes() for p in root.rglob("*.wav"))


def test_the_documented_corpus_is_listed(plugin: str) -> None:
    result = CliRunner().invoke(app, ["list", "corpora", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    row = next(r for r in rows if r["name"] == plugin)
    assert row["about"].startswith("Tiny Acted Corpus") and row["default_protocol"] == "speaker"

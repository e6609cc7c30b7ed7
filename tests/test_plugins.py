"""The worked plugin examples of docs/DEVELOPING.md, loaded exactly as written there.

Each test writes one example's code block into ``tmp_path``, loads it through
``EMBEDPROBE_PLUGINS`` (as a user would), checks that ``embedprobe list KIND`` shows it and
that it works through the normal API, then unregisters it. A doc edit that breaks an example
fails here.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedprobe import registry
from embedprobe.augment import AUGMENTATIONS, augment, replay
from embedprobe.cli.main import app
from embedprobe.extractors import EXTRACTORS, create
from embedprobe.probes import PROBES
from embedprobe.probes import create as create_probe

DOC = Path(__file__).resolve().parents[1] / "docs" / "DEVELOPING.md"


def example(title: str) -> str:
    """The first ```python block after the heading ``### Worked example: <title>``."""
    text = DOC.read_text(encoding="utf-8")
    m = re.search(rf"^### Worked example: {re.escape(title)}\n.*?^```python\n(.*?)^```", text, re.S | re.M)
    assert m, f"no '### Worked example: {title}' with a python block in {DOC}"
    return m.group(1)


@pytest.fixture
def load_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """``load_plugin(title, registry, name)``: write the example, load it, unregister it afterwards."""
    added: list[tuple[registry.Registry, str, str]] = []

    def load(title: str, reg: registry.Registry, name: str) -> None:
        stem = f"doc_example_{re.sub(r'[^a-z]+', '_', title)}"
        path = tmp_path / f"{stem}.py"
        path.write_text(example(title), encoding="utf-8")
        reg.discover()  # the built-ins first, so only the example is new
        assert name not in reg
        monkeypatch.setenv(registry.PLUGINS_ENV, str(path))
        loaded = registry.load_external_plugins(force=True)
        added.append((reg, name, loaded[-1]))
        assert name in reg

    yield load
    for reg, name, module in added:
        reg.remove(name)
        sys.modules.pop(module, None)


def listed(kind: str) -> list[str]:
    result = CliRunner().invoke(app, ["list", kind, "--json"])
    assert result.exit_code == 0, result.output
    return [row["name"] for row in json.loads(result.output)]


def test_the_doc_has_the_worked_examples() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert "## Adding a plugin" in text
    for title in ("an extractor", "a probe", "an augmentation"):
        assert example(title)


def test_extractor_example(load_plugin) -> None:
    load_plugin("an extractor", EXTRACTORS, "frame-energy")
    assert "frame-energy" in listed("extractors")
    ext = create("frame-energy").load()
    sr = ext.spec.sample_rate
    t = np.arange(sr) / sr
    wav = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    out = ext.embed(wav)
    assert list(out) == list(ext.spec.layers)
    assert out["energy"].shape == (ext.n_frames(len(wav)), ext.spec.dim) and out["energy"].dtype == np.float32
    assert np.isfinite(out["energy"]).all()
    assert out["energy"][:, 1].mean() == pytest.approx(2 * 220 / sr, rel=0.1)  # zero crossings of a sine
    assert np.array_equal(ext.embed(wav)["energy"], out["energy"])


def test_probe_example(load_plugin) -> None:
    load_plugin("a probe", PROBES, "cosine")
    assert "cosine" in listed("probes")
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(-1, 1, (60, 4)), rng.normal(1, 1, (60, 4))]
    y = np.repeat(["sad", "happy"], 60)
    probe = create_probe("cosine", random_state=0, max_steps=300).fit(X, y)
    proba = probe.predict_proba(X)
    assert probe.classes_.tolist() == ["happy", "sad"] and proba.shape == (120, 2)
    assert np.allclose(proba.sum(axis=1), 1.0) and (probe.predict(X) == y).mean() > 0.7  # chance: 0.5


def test_augmentation_example(load_plugin) -> None:
    load_plugin("an augmentation", AUGMENTATIONS, "gain")
    assert "gain" in listed("augmentations")
    wav = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    out = augment(wav, 16000, "gain", seed=0, clip_id="c", copy=0)
    gain = 10 ** (out.params["gain_db"] / 20)
    assert -12.0 <= out.params["gain_db"] <= 6.0 and out.wav.dtype == np.float32
    assert np.abs(wav).max() * gain < 1.0  # so no peak limiting: the output is the scaled input
    assert np.allclose(out.wav, wav * gain, rtol=1e-5, atol=1e-7)
    assert np.array_equal(replay(wav, 16000, "gain", out.params), out.wav)

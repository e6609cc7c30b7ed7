"""The extractor contract, checked for EVERY registered extractor (parametrized from the registry).

A new family is tested here the moment it registers a spec. Each extractor is built with
``cls.for_tests(spec)`` (see ``Extractor.for_tests``: the real extractor by default, a tiny
random-init one for families with large checkpoints) and loaded; the only reason to skip is a
missing optional dependency, and the skip reason carries the pip command.
"""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from golden.signals import speechlike  # tests/golden/signals.py (pytest puts tests/ on sys.path)

from embedprobe.errors import BadValueError, MissingDependencyError
from embedprobe.extractors import EXTRACTORS
from embedprobe.extractors.base import Extractor
from embedprobe.provenance import fingerprint

REPO = Path(__file__).resolve().parents[2]

NAMES = EXTRACTORS.names()
_LOADED: dict[str, Extractor] = {}


def loaded(name: str) -> Extractor:
    """Build via the test hook and load once per session; skip only on a missing optional dependency."""
    if name not in _LOADED:
        entry = EXTRACTORS.get(name)
        ext = entry.cls.for_tests(entry.spec)
        try:
            ext.load()
        except MissingDependencyError as e:
            pytest.skip(str(e))
        _LOADED[name] = ext
    return _LOADED[name]


signal = partial(speechlike, noise=0.01)  # the golden fixtures' input, with less noise


def lengths(ext: Extractor) -> list[int]:
    sr, lo = ext.spec.sample_rate, max(ext.spec.min_duration_s, 0.5)
    return [round((lo + d) * sr) + extra for d, extra in ((0.8, 37), (1.5, 0), (2.6, 101))]


def allclose(a: np.ndarray, b: np.ndarray, rtol: float) -> None:
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_well_formed(name):
    spec = EXTRACTORS.get(name).spec
    assert spec.name == name
    assert isinstance(spec.sample_rate, int) and spec.sample_rate > 0
    assert isinstance(spec.dim, int) and spec.dim > 0
    assert spec.layers and len(set(spec.layers)) == len(spec.layers)
    assert set(spec.clip_layers) <= set(spec.layers) and set(dict(spec.param("layer_dims", ()))) <= set(spec.layers)
    assert not spec.clip_layers or spec.hop_s is not None, "clip_layers belong to frame-level models"
    assert spec.hop_s is None or spec.hop_s > 0
    assert spec.licence, "every spec states the licence of its weights / feature code"
    assert spec.description and spec.min_duration_s >= 0
    assert list(spec.params) == sorted(spec.params), "params are sorted (key, value) pairs"
    hash(spec)
    assert len(fingerprint(spec)) == 16
    if spec.extra is not None and sys.version_info >= (3, 11):
        import tomllib

        extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
        assert spec.extra in extras, (
            f"pip install 'embedprobe[{spec.extra}]' must exist in pyproject.toml"
        )


@pytest.mark.parametrize("name", NAMES)
def test_outputs_match_spec_and_hop_arithmetic(name):
    ext = loaded(name)
    spec = ext.spec
    for n in lengths(ext):
        out = ext.embed(signal(n / spec.sample_rate, spec.sample_rate))
        assert list(out) == list(spec.layers)
        for layer, arr in out.items():
            assert isinstance(arr, np.ndarray) and arr.dtype == np.float32, layer
            frames = 1 if layer in spec.clip_layers else ext.n_frames(n)  # a head over the clip: one vector
            assert arr.shape == (frames, spec.dim_of(layer)), (layer, arr.shape, n)
            assert np.isfinite(arr).all(), layer


@pytest.mark.parametrize("name", NAMES)
def test_n_frames_follows_the_hop(name):
    ext = loaded(name)
    spec = ext.spec
    n = round(2.0 * spec.sample_rate) + 13
    if spec.hop_s is None:
        assert {ext.n_frames(m) for m in (n // 2, n, 3 * n)} == {1}
        return
    hop = spec.hop_s * spec.sample_rate
    if abs(hop - round(hop)) < 1e-6:
        for k in (1, 2, 5):
            assert ext.n_frames(n + k * round(hop)) == ext.n_frames(n) + k
    else:  # a fractional hop in samples: one frame of slack
        for k in (1, 2, 5):
            assert abs(ext.n_frames(round(n + k * hop)) - ext.n_frames(n) - k) <= 1
    assert ext.n_frames(n) >= 1


@pytest.mark.parametrize("name", NAMES)
def test_same_input_same_output_and_input_untouched(name):
    ext = loaded(name)
    wav = signal(1.7, ext.spec.sample_rate, seed=3)
    copy = wav.copy()
    a, b = ext.embed(wav), ext.embed(wav)
    np.testing.assert_array_equal(wav, copy)
    for layer in a:
        allclose(a[layer], b[layer], rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_one_by_one(name):
    ext = loaded(name)
    sr = ext.spec.sample_rate
    wavs = [signal(n / sr, sr, seed=i) for i, n in enumerate(lengths(ext))]
    batch = ext.embed_batch(wavs)
    assert len(batch) == len(wavs)
    assert ext.embed_batch([]) == []
    for wav, got in zip(wavs, batch, strict=True):
        one = ext.embed(wav)
        assert list(got) == list(one)
        for layer in one:
            assert got[layer].shape == one[layer].shape and got[layer].dtype == np.float32
            allclose(got[layer], one[layer], rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_rejects_non_mono_input(name):
    ext = loaded(name)
    sr = ext.spec.sample_rate
    with pytest.raises(BadValueError, match="shape"):
        ext.embed(np.zeros((2, sr), np.float32))


@pytest.mark.parametrize("name", NAMES)
def test_weights_api(name):
    entry = EXTRACTORS.get(name)
    ext = entry.cls(entry.spec)  # the real (unloaded) extractor: cheap to ask
    present = ext.weights_present()
    assert present in (True, False, None)
    if entry.spec.weights_id is None:
        assert present is None
    elif present:
        assert isinstance(ext.weights_revision(), str)


def test_registry_import_is_light():
    code = (
        "import sys, embedprobe.extractors;"
        "heavy = ('torch', 'torchaudio', 'opensmile', 'resemblyzer', 'transformers', 'librosa', 'pandas');"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "", (
        f"importing embedprobe.extractors imported {out.stdout.strip()}"
    )

"""egemaps / egemaps-lld: the same numbers as opensmile run directly, with its column layout."""

from __future__ import annotations

import numpy as np
import pytest

from embedprobe.audio.decode import load
from embedprobe.errors import BadValueError
from embedprobe.extractors import create

opensmile = pytest.importorskip("opensmile", reason="pip install 'embedprobe[egemaps]'")


@pytest.fixture(scope="module")
def func():
    return create("egemaps").load()


@pytest.fixture(scope="module")
def lld():
    return create("egemaps-lld").load()


def test_functionals_equal_opensmile_on_emodb_file(func, emodb_root):
    path = emodb_root / "wav" / "03a01Fa.wav"
    smile = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    ref = smile.process_file(str(path))
    assert ref.shape == (1, 88)
    out = func.embed(load(path))["functionals"]
    assert out.shape == (1, 88)
    np.testing.assert_allclose(out[0], ref.to_numpy(np.float32)[0], rtol=1e-5, atol=1e-5)
    assert func.feature_names == list(ref.columns)
    assert "F0semitoneFrom27.5Hz_sma3nz_amean" in func.feature_names


def test_lld_equal_opensmile_and_frame_formula(lld, emodb_root):
    path = emodb_root / "wav" / "03a01Nc.wav"
    smile = opensmile.Smile(
        opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.LowLevelDescriptors
    )
    ref = smile.process_file(str(path)).to_numpy(np.float32)
    wav = load(path)
    out = lld.embed(wav)["lld"]
    assert out.shape == ref.shape == (len(wav) // 160 - 4, 25)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    rng = np.random.default_rng(0)
    for n in (1600, 1700, 16159, 16160, 16161):
        assert len(
            lld.embed((0.1 * rng.standard_normal(n)).astype(np.float32))["lld"]
        ) == lld.n_frames(n)


def test_angry_is_higher_and_louder_than_sad(func, emodb_root):
    f0 = func.feature_names.index("F0semitoneFrom27.5Hz_sma3nz_amean")
    loud = func.feature_names.index("loudness_sma3_amean")
    wavdir = emodb_root / "wav"
    for spk in ("03", "08"):
        angry = np.stack(
            [
                func.embed(load(p))["functionals"][0]
                for p in sorted(wavdir.glob(f"{spk}*W*.wav"))[:2]
            ]
        )
        sad = np.stack(
            [
                func.embed(load(p))["functionals"][0]
                for p in sorted(wavdir.glob(f"{spk}*T*.wav"))[:2]
            ]
        )
        assert angry[:, f0].mean() > sad[:, f0].mean() + 5  # semitones
        assert angry[:, loud].mean() > sad[:, loud].mean()


def test_too_short_input_is_a_clear_error(func):
    with pytest.raises(BadValueError, match="at least 0.1 s"):
        func.embed(np.full(800, 0.1, np.float32))

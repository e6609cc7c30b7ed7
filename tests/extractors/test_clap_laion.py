"""LAION-CLAP audio branch: 10 s windows, repeat padding, L2-normalised projection."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from embedprobe.extractors import get_spec  # noqa: E402
from embedprobe.extractors.clap_laion import CLAP_LAION, ClapAudio  # noqa: E402
from embedprobe.extractors.precision import cosine  # noqa: E402

torch.set_num_threads(1)
SR = 48000


@pytest.fixture(scope="module")
def clap():
    tiny = ClapAudio.for_tests(CLAP_LAION)
    return ClapAudio(tiny.spec, precision="fp32", _random_config=tiny._random_config).load()


def tone(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def test_specs():
    for name, repo in (("clap-laion", "laion/clap-htsat-unfused"), ("clap-laion-general", "laion/larger_clap_general")):
        spec = get_spec(name)
        assert (spec.sample_rate, spec.dim, spec.hop_s, spec.layers) == (48000, 512, 10.0, ("embedding",))
        assert spec.weights_id == repo


def test_one_window_matches_transformers_usage(clap):
    """A clip <= 10 s gives exactly normalize(audio_projection(...)) of the official feature extractor."""
    wav = tone(3.2)
    out = clap.embed(wav)["embedding"]
    fe = transformers.ClapFeatureExtractor()
    feats = fe(wav, sampling_rate=SR, return_tensors="pt", truncation="rand_trunc", padding="repeatpad")
    with torch.inference_mode():
        ref = torch.nn.functional.normalize(clap.model(**feats).audio_embeds, dim=-1)[0].numpy()
    assert out.shape == (1, clap.spec.dim)
    np.testing.assert_allclose(out[0], ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_long_input_is_cut_into_ten_second_windows(clap):
    wav = np.concatenate([tone(10.0, 1), tone(10.0, 2), tone(4.0, 3)])
    out = clap.embed(wav)["embedding"]
    assert out.shape == (3, clap.spec.dim) == (clap.n_frames(wav.size), clap.spec.dim)
    np.testing.assert_allclose(out[1], clap.embed(wav[10 * SR:20 * SR])["embedding"][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[2], clap.embed(wav[20 * SR:])["embedding"][0], rtol=1e-5, atol=1e-6)
    assert cosine(out[0], out[1]) < 0.99999  # different windows, different vectors
    assert clap.n_frames(1) == 1 and clap.n_frames(10 * SR) == 1 and clap.n_frames(10 * SR + 1) == 2


def test_repeat_padding_of_short_windows(clap):
    """repeatpad: 2.5 s tiled four times fills the 10 s window like the 10 s tiled clip itself."""
    short = tone(2.5, 4)
    np.testing.assert_allclose(clap.embed(short)["embedding"], clap.embed(np.tile(short, 4))["embedding"],
                               rtol=1e-4, atol=1e-5)


def test_runtime_config(clap):
    rc = clap.runtime_config()
    assert rc["precision"] == "fp32" and rc["padding"] == "repeatpad" and rc["window_s"] == 10.0
    assert rc["truncation"] == "rand_trunc"  # never applied: windows are never longer than 10 s

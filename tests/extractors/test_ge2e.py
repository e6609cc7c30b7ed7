"""ge2e: equals Resemblyzer's own encoder, unit-norm frames, separates EmoDB speakers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from embedprobe.audio.decode import load
from embedprobe.errors import MissingWeightsError
from embedprobe.extractors import create, get_spec
from embedprobe.extractors.ge2e import WEIGHTS_SHA256_12, packaged_weights, partial_starts

pytestmark = pytest.mark.skipif(packaged_weights() is None, reason="pip install 'embedprobe[ge2e]'")
SR = 16000


@pytest.fixture(scope="module")
def ext():
    torch.set_num_threads(1)
    return create("ge2e").load()


def clip_embedding(frames: np.ndarray) -> np.ndarray:
    m = frames.mean(0)
    return m / np.linalg.norm(m)


def test_weights_identity(ext):
    assert ext.weights_present() is True
    assert ext.weights_revision() == WEIGHTS_SHA256_12 == get_spec("ge2e").weights_revision


def test_bad_weights_path_is_a_clear_error(tmp_path):
    with pytest.raises(MissingWeightsError, match="not found"):
        create("ge2e", weights=tmp_path / "nope.pt").load()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match="not a readable torch checkpoint"):
        create("ge2e", weights=junk).load()


def test_partial_slicing_matches_resemblyzer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from resemblyzer import VoiceEncoder
    for n in [1, 1000, 25599, 25600, 30000, 37920, 37921, 48000, 100000, 160123]:
        _, mel_slices = VoiceEncoder.compute_partial_slices(n, rate=1.3, min_coverage=0.75)
        assert list(partial_starts(n, 77, 0.75)) == [s.start for s in mel_slices], n


def test_equals_resemblyzer_encoder(ext, emodb_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from resemblyzer import VoiceEncoder
        from resemblyzer.audio import normalize_volume
    ref_model = VoiceEncoder("cpu", verbose=False)
    wav = load(emodb_root / "wav" / "03a01Fa.wav")
    for w in (wav, np.concatenate([wav, wav, wav[:5000]])):
        utt, partials, _ = ref_model.embed_utterance(
            normalize_volume(w, -30, increase_only=True), return_partials=True
        )
        frames = ext.embed(w)["embedding"]
        np.testing.assert_allclose(frames, partials, atol=1e-5)
        np.testing.assert_allclose(clip_embedding(frames), utt, atol=1e-5)


def test_frames_are_unit_norm_and_nonnegative(ext):
    wav = (0.05 * np.random.default_rng(0).standard_normal(3 * SR)).astype(np.float32)
    frames = ext.embed(wav)["embedding"]
    np.testing.assert_allclose(np.linalg.norm(frames, axis=1), 1.0, atol=1e-5)
    assert (frames >= 0).all()


def test_volume_normalisation_only_raises_the_gain(ext, emodb_root):
    wav = load(emodb_root / "wav" / "08a01Fd.wav")
    quiet = ext.embed(0.01 * wav)["embedding"]
    np.testing.assert_allclose(quiet, ext.embed(0.02 * wav)["embedding"], atol=1e-4)


def test_separates_speakers_on_emodb(ext, emodb_root):
    wavdir = emodb_root / "wav"
    speakers = ["03", "08", "10", "14"]
    embs, who = [], []
    for spk in speakers:
        for p in sorted(wavdir.glob(f"{spk}*N*.wav"))[:3]:
            embs.append(clip_embedding(ext.embed(load(p))["embedding"]))
            who.append(spk)
    e, who = np.stack(embs), np.array(who)
    sim = e @ e.T
    same = who[:, None] == who[None, :]
    off = ~np.eye(len(who), dtype=bool)
    assert sim[same & off].mean() > sim[~same].mean() + 0.1
    np.fill_diagonal(sim, -np.inf)
    assert (who[sim.argmax(1)] == who).mean() >= 0.75

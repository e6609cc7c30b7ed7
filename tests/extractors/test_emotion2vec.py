"""emotion2vec: equals FunASR's reference Emotion2vec (golden fixtures), loads official-format checkpoints.

``tests/golden/emotion2vec.npz`` holds ``funasr.models.emotion2vec.model.Emotion2vec`` outputs on
seeded random weights for two tiny configurations of the real architecture, and the reference's
state-dict key names and shapes for the three official configurations (regenerate with
``tests/golden/make_emotion2vec.py``, see its docstring).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_cache import fake_snapshot  # tests/hf_cache.py

from embedprobe.errors import BadValueError
from embedprobe.extractors import create, get_spec
from embedprobe.extractors.emotion2vec import FULL, TINY, Emotion2vecExtractor, config_of, tiny_spec
from embedprobe.extractors.nets.common import build_uninitialised, seeded_state
from embedprobe.extractors.nets.data2vec2 import IGNORED_KEYS, Data2Vec2Audio

GOLDEN = np.load(Path(__file__).resolve().parents[1] / "golden" / "emotion2vec.npz")
SEED = int(GOLDEN["seed"])
IGNORED = [re.compile(p) for p in IGNORED_KEYS]


def ignored(key: str) -> bool:
    return any(r.fullmatch(key) for r in IGNORED)


def tiny(variant: str, name: str = "emotion2vec-base", **params) -> Emotion2vecExtractor:
    spec = tiny_spec(get_spec(name), variant)
    if params:
        spec = replace(spec, params=tuple(sorted({**dict(spec.params), **params}.items())))
    return Emotion2vecExtractor.random_init(spec, seed=SEED, precision="fp32").load()


def close(got: np.ndarray, ref: np.ndarray, tol: float = 2e-5) -> None:
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * float(np.abs(ref).max()))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("variant", sorted(TINY))
def test_equals_reference_on_identical_weights(variant):
    ext = tiny(variant)
    own = {k: list(v.shape) for k, v in ext._net.state_dict().items()}
    ref = json.loads(str(GOLDEN[f"{variant}_keys"]))
    assert own == {k: v for k, v in ref.items() if not ignored(k)}, "state-dict keys/shapes differ from FunASR's"
    wav = GOLDEN[f"{variant}_wav"]
    out = ext.embed(wav)
    states = GOLDEN[f"{variant}_states"]
    assert list(out) == list(ext.spec.layers) and len(states) == len(out)
    for layer, want in zip(ext.spec.layers, states, strict=True):
        assert out[layer].shape == (ext.n_frames(len(wav)), ext.spec.dim) == want.shape
        close(out[layer], want)
    close(out[ext.spec.layers[-1]], GOLDEN[f"{variant}_frames"])  # inference(granularity="frame")
    close(ext.utterance(wav), GOLDEN[f"{variant}_utterance"])  # inference(granularity="utterance")
    close(out[ext.spec.layers[-1]].mean(axis=0), GOLDEN[f"{variant}_utterance"])  # = the pooled mean


def test_alibi_matters():
    """The fixture pins the ALiBi bias: without it (scale 0) the outputs move far away."""
    ext = tiny("heads12")
    wav = GOLDEN["heads12_wav"]
    with torch.no_grad():
        ext._net.modality_encoders["AUDIO"].alibi_scale.fill_(0.0)
    got = ext.embed(wav)[ext.spec.layers[-1]]
    assert np.abs(got - GOLDEN["heads12_frames"]).max() > 100 * 2e-5 * np.abs(GOLDEN["heads12_frames"]).max()


@pytest.mark.parametrize("name", sorted(FULL))
def test_full_size_architecture_has_the_official_keys(name):
    spec, classes = FULL[name]
    with torch.device("meta"):
        net = Data2Vec2Audio(config_of(spec))
    own = {k: list(v.shape) for k, v in net.state_dict().items()}
    ref = json.loads(str(GOLDEN[f"{name}_keys"]))
    assert own == {k: v for k, v in ref.items() if not ignored(k)}
    left_out = sorted({k.split(".")[0] if k.startswith("proj.") else ".".join(k.split(".")[:3])
                       for k in ref if ignored(k)})
    assert left_out == (["modality_encoders.AUDIO.decoder"] + (["proj"] if classes > 0 else []))
    assert len(spec.layers) == 1 + config_of(spec).n_blocks and spec.dim == config_of(spec).embed_dim


def official_file(path: Path, variant: str, nest: str = "model") -> dict:
    """A checkpoint with FunASR's key names (decoder and classifier head included) in the official layout."""
    ours = build_uninitialised(lambda: Data2Vec2Audio(config_of(tiny_spec(get_spec("emotion2vec-base"), variant))))
    state = seeded_state(ours, SEED)
    g = torch.Generator().manual_seed(1)
    ref = json.loads(str(GOLDEN[f"{variant}_keys"]))
    full = {k: state[k] if k in state else torch.rand(v, generator=g) for k, v in ref.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if nest == "fairseq":  # fairseq's layout: 4-D alibi_scale, the EMA teacher's parameters under "_ema"
        key = "modality_encoders.AUDIO.alibi_scale"
        full = {**full, key: full[key][0], "_ema": {"a": torch.zeros(3)}}
    torch.save({"state_dict": {"model": full}} if nest == "state_dict" else {"model": full}, path)
    return full


@pytest.mark.parametrize("nest", ["model", "state_dict", "fairseq"])
def test_official_checkpoint_format_loads_and_is_used(tmp_path, nest):
    path = tmp_path / "model.pt"
    official_file(path, "heads12", nest)
    spec = tiny_spec(get_spec("emotion2vec-plus-base"), "heads12")
    ext = Emotion2vecExtractor(spec, weights=path, precision="fp32").load()
    assert ext.checkpoint_ == path and ext.weights_revision().startswith("sha256:")
    close(ext.embed(GOLDEN["heads12_wav"])[spec.layers[-1]], GOLDEN["heads12_frames"])
    # a wrong checkpoint names the keys that do not fit
    state = torch.load(path, weights_only=True)
    tensors = state["state_dict"]["model"] if nest == "state_dict" else state["model"]
    del tensors["blocks.0.norm1.bias"]
    tensors["blocks.1.mlp.fc1.bias"] = torch.zeros(7)
    tensors["head.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(BadValueError, match=r"missing blocks\.0\.norm1\.bias; unexpected head\.weight; "
                       r"wrong shapes blocks\.1\.mlp\.fc1\.bias \(7,\) != \(384,\)"):
        Emotion2vecExtractor(spec, weights=path).load()


def test_found_in_the_hugging_face_cache(tmp_path, monkeypatch):
    """``model.pt`` of ``emotion2vec/emotion2vec_plus_large`` in the HF cache is the large model's file."""
    import shutil

    monkeypatch.setenv("EMBEDPROBE_HOME", str(tmp_path / "ep"))
    monkeypatch.delenv("EMBEDPROBE_WEIGHTS", raising=False)
    snap = fake_snapshot("emotion2vec/emotion2vec_plus_large", commit="a" * 40)
    try:
        official_file(snap / "model.pt", "heads16")
        spec = tiny_spec(get_spec("emotion2vec-plus-large"), "heads16")
        ext = Emotion2vecExtractor(spec, precision="fp32")
        assert ext.weights_present() is True and not create("emotion2vec-base").weights_present()
        ext.load()
        assert ext.checkpoint_ == snap / "model.pt"
        close(ext.embed(GOLDEN["heads16_wav"])[spec.layers[-1]], GOLDEN["heads16_frames"])
    finally:
        shutil.rmtree(snap.parent.parent)  # models--emotion2vec--emotion2vec_plus_large


def test_long_clip_in_windows_adds_up_to_the_whole():
    """Windows of 1.23 s (not a multiple of the 320-sample hop) + 5 s context give the whole clip's frames.

    With a strong ALiBi slope the frames attend locally, so up to the first block (whose extra
    tokens are still the learned constants) chunked frames must equal the one-pass frames: an
    off-by-one in the frame bookkeeping would show at once. Later blocks also see the whole
    window through the extra tokens (no ALiBi on them): close, not equal.
    """
    whole = tiny("heads12", chunk_s=1000.0)
    chunked = tiny("heads12", chunk_s=1.23)
    assert round(1.23 * 16000) % 320 != 0
    for ext in (whole, chunked):
        with torch.no_grad():
            ext._net.modality_encoders["AUDIO"].alibi_scale.fill_(60.0)
    wav = GOLDEN["heads12_wav"]
    long = np.concatenate([wav * g for g in (1.0, 0.5, 2.0, 1.0, 0.7, 1.3, 1.0, 0.9, 1.1)])[:-777]  # 11.6 s
    a, b = whole.embed(long), chunked.embed(long)
    for i, layer in enumerate(whole.spec.layers):
        assert a[layer].shape == b[layer].shape == (whole.n_frames(len(long)), whole.spec.dim)
        if i < 2:
            close(b[layer], a[layer], tol=1e-4)
        else:
            cos = (a[layer] * b[layer]).sum(1) / np.linalg.norm(a[layer], axis=1) / np.linalg.norm(b[layer], axis=1)
            assert cos.min() > 0.99, layer
    # a clip the context covers whole: every window is the whole clip, the frames are identical
    short = long[:3 * 16000 + 55]
    a, b = whole.embed(short), chunked.embed(short)
    for layer in whole.spec.layers:
        np.testing.assert_array_equal(b[layer], a[layer])


def test_too_short_input_is_one_sentence():
    ext = tiny("heads16")
    with pytest.raises(BadValueError, match=r"clip length .*needs at least 0\.025 s \(400 samples\)"):
        ext.embed(np.zeros(399, np.float32))
    assert ext.embed(np.zeros(400, np.float32) + 0.1)["layer00"].shape == (1, ext.spec.dim)


def test_ten_minutes_run_in_bounded_windows(monkeypatch):
    """The registered chunk_s (30 s) bounds every forward pass of a 10-minute clip to 40 s of audio."""
    ext = tiny("heads16")
    assert ext.spec.param("chunk_s") == 30.0 and ext.chunk_context_s == (5.0, 5.0)
    seen: list[int] = []

    def fake_forward(wav, stats):  # the bookkeeping only: one zero state per layer
        seen.append(len(wav))
        return [np.zeros((ext.n_frames(len(wav)), ext.spec.dim), np.float32) for _ in ext.spec.layers]

    monkeypatch.setattr(ext, "_forward", fake_forward)
    n = 600 * 16000 + 123
    out = ext.embed(np.random.default_rng(0).standard_normal(n).astype(np.float32))
    assert all(v.shape == (ext.n_frames(n), ext.spec.dim) for v in out.values())
    assert len(seen) == 20 and max(seen) <= 40 * 16000 + 320

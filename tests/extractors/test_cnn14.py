"""cnn14: equals PANNs' reference Cnn14 (golden fixtures), loads official-format checkpoints, clear errors.

``tests/golden/cnn14.npz`` holds ``panns_inference.models.Cnn14`` outputs on seeded random
weights (regenerate with ``tests/golden/make_cnn14.py``, see its docstring).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from embedprobe.errors import BadValueError
from embedprobe.extractors import create, get_spec
from embedprobe.extractors.cnn14 import Cnn14Extractor
from embedprobe.extractors.nets.cnn14 import DERIVED_KEYS
from embedprobe.extractors.nets.common import seeded_state

GOLDEN = np.load(Path(__file__).resolve().parents[1] / "golden" / "cnn14.npz")
SEED = int(GOLDEN["seed"])


@pytest.fixture(scope="module")
def nets():
    """Full-size random-init CNN14 for both rates (the clip-embedding variants), in fp32."""
    torch.set_num_threads(1)
    return {rate: Cnn14Extractor.random_init(get_spec(f"cnn14-{rate}"), seed=SEED, precision="fp32").load()
            for rate in ("16k", "32k")}


def close(got: np.ndarray, ref: np.ndarray, tol: float = 2e-5) -> None:
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * float(np.abs(ref).max()))


@pytest.mark.parametrize("rate", ["16k", "32k"])
def test_equals_reference_on_identical_weights(nets, rate):
    ext = nets[rate]
    own = {k: list(v.shape) for k, v in ext._net.state_dict().items()}
    assert own == json.loads(str(GOLDEN[f"{rate}_keys"])), "state-dict keys/shapes differ from PANNs'"
    wav = GOLDEN[f"{rate}_wav"]
    with torch.inference_mode():
        x = torch.from_numpy(wav)[None]
        logmel = ext._net.logmel_extractor(ext._net.spectrogram_extractor(x))[0, 0].numpy()
        out = ext._net(x)
    close(logmel, GOLDEN[f"{rate}_logmel"])  # our STFT kernels + mel filters == torchlibrosa's
    close(out["clipwise"].numpy(), GOLDEN[f"{rate}_clipwise"])
    emb = ext.embed(wav)
    assert list(emb) == ["embedding"] and emb["embedding"].shape == (1, 2048)
    close(emb["embedding"], GOLDEN[f"{rate}_embedding"])
    frames_spec = get_spec(f"cnn14-{rate}-frames")
    frames = Cnn14Extractor(frames_spec)
    frames._net, frames._torch, frames._loaded = ext._net, torch, True  # same weights, other layer
    frames.precision_ = "fp32"
    got = frames.embed(wav)["frames"]
    assert got.shape == (frames.n_frames(len(wav)), 2048) == GOLDEN[f"{rate}_frames"].shape
    close(got, GOLDEN[f"{rate}_frames"])


def test_frame_hop_and_short_inputs():
    spec = get_spec("cnn14-16k-frames")
    assert spec.hop_s == pytest.approx(0.32) and get_spec("cnn14-32k-frames").hop_s == pytest.approx(0.32)
    ext = Cnn14Extractor(spec)
    assert ext.n_frames(16000) == 3 and ext.n_frames(16000 + 5120) == 4
    assert ext.n_frames(10) == 1  # padded to 31 hops
    tiny = Cnn14Extractor.for_tests(spec).load()
    assert tiny.embed(np.zeros(10, np.float32))["frames"].shape == (1, tiny.spec.dim)


def test_official_checkpoint_format_loads_and_is_used(nets, tmp_path):
    """A checkpoint with PANNs' key names (+ numpy statistics) loads via weights= and gives its numbers."""
    state = seeded_state(nets["16k"]._net, SEED, skip=DERIVED_KEYS)
    names = json.loads(str(GOLDEN["16k_keys"]))
    path = tmp_path / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"model": {k: state[k] for k in names}, "iteration": np.int64(600000)}, path)
    ext = create("cnn14-16k", weights=tmp_path, precision="fp32").load()
    assert ext.weights_revision().startswith("sha256:") and ext.checkpoint_ == path
    close(ext.embed(GOLDEN["16k_wav"])["embedding"], GOLDEN["16k_embedding"])
    del ext
    # a wrong checkpoint names the keys that do not fit
    torch.save({"model": {"bn0.weight": torch.ones(64), "fc1.bias": torch.ones(7),
                          "head.weight": torch.zeros(1)}}, path)
    with pytest.raises(BadValueError, match=r"missing bn0\.bias, .* and \d+ more; "
                       r"unexpected head\.weight; wrong shapes fc1\.bias \(7,\) != \(2048,\)"):
        create("cnn14-16k", weights=path).load()


def test_finds_panns_inference_download_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDPROBE_HOME", str(tmp_path / "ep"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EMBEDPROBE_WEIGHTS", raising=False)
    (tmp_path / "home" / "panns_data").mkdir(parents=True)
    (tmp_path / "home" / "panns_data" / "Cnn14_mAP=0.431.pth").write_bytes(b"x")
    ext = create("cnn14-32k")
    assert ext.weights_present() is True and not create("cnn14-16k").weights_present()
    assert ext.resolve() == tmp_path / "home" / "panns_data" / "Cnn14_mAP=0.431.pth"


def test_data_class_pickling_checkpoint_loads_only_with_trust_pickle(tmp_path, monkeypatch):
    tiny = Cnn14Extractor.for_tests(get_spec("cnn14-16k")).load()
    folder = tmp_path / "ep" / "weights"
    folder.mkdir(parents=True)
    path = folder / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"model": tiny._net.state_dict(), "args": argparse.Namespace(lr=1e-3)}, path)
    monkeypatch.setenv("EMBEDPROBE_HOME", str(tmp_path / "ep"))
    monkeypatch.delenv("EMBEDPROBE_WEIGHTS", raising=False)
    with pytest.raises(BadValueError, match="argparse.Namespace.*pass --trust-pickle"):
        Cnn14Extractor(tiny.spec).load()  # found in the default folder
    with pytest.raises(BadValueError, match="argparse.Namespace.*pass --trust-pickle"):
        Cnn14Extractor(tiny.spec, weights=path).load()  # naming the file is no longer trust
    trusting = Cnn14Extractor(tiny.spec, weights=path)
    trusting.trust_pickle = True
    with pytest.warns(UserWarning, match="--trust-pickle: .*untrusted code paths.*argparse.Namespace"):
        ext = trusting.load()
    wav = GOLDEN["16k_wav"]
    np.testing.assert_allclose(ext.embed(wav)["embedding"], tiny.embed(wav)["embedding"], rtol=1e-6)

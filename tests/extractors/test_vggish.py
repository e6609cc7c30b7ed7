"""vggish: equals torchvggish (golden fixtures), loads the official two-file format, example arithmetic.

``tests/golden/vggish.npz`` holds torchvggish 0.2's front end, VGG and PCA/quantisation
outputs on seeded random weights (regenerate with ``tests/golden/make_vggish.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from embedprobe.errors import MissingWeightsError
from embedprobe.extractors import create, get_spec
from embedprobe.extractors.nets.vggish import Postprocessor
from embedprobe.extractors.vggish import VGGishExtractor

GOLDEN = np.load(Path(__file__).resolve().parents[1] / "golden" / "vggish.npz")
SEED = int(GOLDEN["seed"])


@pytest.fixture(scope="module")
def ext():
    torch.set_num_threads(1)
    return VGGishExtractor.random_init(get_spec("vggish"), seed=SEED, precision="fp32").load()


def close(got: np.ndarray, ref: np.ndarray, tol: float = 1e-5) -> None:
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * float(np.abs(ref).max()))


def test_equals_torchvggish_on_identical_weights(ext):
    own = {k: list(v.shape) for k, v in ext._vgg.state_dict().items()}
    assert own == json.loads(str(GOLDEN["keys"])), "VGG keys/shapes differ from torchvggish's"
    wav = GOLDEN["wav"]
    close(ext._examples(wav)[:, 0].numpy(), GOLDEN["examples"])  # the TF mel_features front end
    out = ext.embed(wav)
    assert list(out) == ["embedding", "pre_pca"] and out["embedding"].shape == (2, 128)
    close(out["pre_pca"], GOLDEN["pre_pca"])
    close(out["embedding"], GOLDEN["embedding"])
    quantised = Postprocessor.quantize(torch.from_numpy(out["embedding"])).numpy()
    assert (quantised != GOLDEN["quantised"]).sum() <= 1  # a value may sit on a rounding edge


def test_examples_arithmetic():
    ext = VGGishExtractor(get_spec("vggish"))
    one = 400 + 95 * 160  # 15,600 samples = 0.975 s: the first complete example
    assert [ext.n_frames(n) for n in (1, one - 1, one, one + 15360 - 1, one + 15360)] == [1, 1, 1, 1, 2]
    tiny = VGGishExtractor.for_tests(get_spec("vggish")).load()
    assert tiny.embed(np.zeros(3000, np.float32))["embedding"].shape == (1, 128)  # zero-padded


def test_official_two_file_format_loads_and_is_used(ext, tmp_path):
    """vggish-10086976.pth (VGG state dict) + the PCA file (numpy arrays) beside it."""
    vgg_path = tmp_path / "vggish-10086976.pth"
    torch.save({k: v.clone() for k, v in ext._vgg.state_dict().items()}, vgg_path)
    pca = ext._pca.state_dict()
    torch.save({"pca_eigen_vectors": pca["pca_eigen_vectors"].numpy(),
                "pca_means": pca["pca_means"].numpy().reshape(-1, 1)},
               tmp_path / "vggish_pca_params-970ea276.pth")
    loaded = create("vggish", weights=vgg_path, precision="fp32").load()  # PCA file found beside it
    rev = loaded.weights_revision()
    assert rev.count("sha256:") == 2 and "+" in rev
    out = loaded.embed(GOLDEN["wav"])
    close(out["embedding"], GOLDEN["embedding"])
    close(out["pre_pca"], GOLDEN["pre_pca"])


def test_missing_pca_file_is_named(tmp_path):
    torch.save({}, tmp_path / "vggish-10086976.pth")
    ext = create("vggish", weights=tmp_path)
    assert ext.weights_present() is False
    with pytest.raises(MissingWeightsError, match="'vggish_pca_params-970ea276.pth' not found"):
        ext.load()


def test_missing_checkpoint_names_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDPROBE_HOME", str(tmp_path / "ep"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("EMBEDPROBE_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError, match=r"'vggish-10086976.pth' not found: download it from "
                       r"https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"):
        create("vggish").load()
    hub = tmp_path / "torch" / "hub" / "checkpoints"  # where torch.hub.load(...torchvggish...) saves
    hub.mkdir(parents=True)
    for name in ("vggish-10086976.pth", "vggish_pca_params-970ea276.pth"):
        (hub / name).write_bytes(b"x")
    assert create("vggish").weights_present() is True

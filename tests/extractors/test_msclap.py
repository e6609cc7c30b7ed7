"""msclap (clap-2023): equals msclap's HTS-AT audio encoder (golden fixtures), 7 s windows, checkpoint format.

``tests/golden/msclap.npz`` holds ``msclap.models.clap.AudioEncoder`` (msclap 1.3.4, 2023
config) outputs on seeded random weights (regenerate with ``tests/golden/make_msclap.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_cache import fake_snapshot  # tests/hf_cache.py

from embedprobe.errors import BadValueError
from embedprobe.extractors import create, get_spec
from embedprobe.extractors.msclap import ClapAudioExtractor, windows
from embedprobe.extractors.nets.common import strip_prefix

GOLDEN = np.load(Path(__file__).resolve().parents[1] / "golden" / "msclap.npz")
SEED = int(GOLDEN["seed"])
L = 7 * 44100


@pytest.fixture(scope="module")
def ext():
    torch.set_num_threads(1)
    return ClapAudioExtractor.random_init(get_spec("clap-2023"), seed=SEED, precision="fp32").load()


def close(got: np.ndarray, ref: np.ndarray, tol: float = 2e-5) -> None:
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * float(np.abs(ref).max()))


def test_equals_msclap_on_identical_weights(ext):
    own = {k: list(v.shape) for k, v in ext._net.state_dict().items()}
    assert own == json.loads(str(GOLDEN["keys"])), "keys/shapes differ from msclap's AudioEncoder"
    out = ext.embed(GOLDEN["wav"])
    assert list(out) == ["embedding"] and out["embedding"].shape == (1, 1024)
    close(out["embedding"], GOLDEN["embedding"])
    with torch.inference_mode():
        latent = ext._net(torch.from_numpy(windows(GOLDEN["wav"])))["latent"].numpy()
    close(latent, GOLDEN["latent"])


def test_windows_repeat_short_and_tile_long_clips():
    short = np.arange(1, 100001, dtype=np.float32)
    w = windows(short)
    assert w.shape == (1, L) and w[0, 100000] == 1 and w[0, -1] == short[(L - 1) % 100000]
    exact = np.arange(L, dtype=np.float32)
    np.testing.assert_array_equal(windows(exact)[0], exact)
    long = np.arange(L + 1000, dtype=np.float32)
    w = windows(long)
    assert w.shape == (2, L) and w[0, 0] == 0 and w[1, -1] == long[-1] and w[1, 0] == 1000
    ext = ClapAudioExtractor(get_spec("clap-2023"))
    assert [ext.n_frames(n) for n in (1, L, L + 1, 2 * L, 2 * L + 1)] == [1, 1, 2, 2, 3]


def test_long_clip_rows_are_the_windows_embeddings():
    tiny = ClapAudioExtractor.for_tests(get_spec("clap-2023")).load()
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(L + 44100)).astype(np.float32)
    rows = tiny.embed(wav)["embedding"]
    assert rows.shape == (2, tiny.spec.dim)
    close(rows[0], tiny.embed(wav[:L])["embedding"][0])
    close(rows[1], tiny.embed(wav[-L:])["embedding"][0])


def test_official_checkpoint_format_loads_and_is_used(ext, tmp_path):
    """``{'model': {'audio_encoder.*', 'caption_encoder.*', 'logit_scale'}}``; text keys are dropped."""
    state = {f"audio_encoder.{k}": v for k, v in ext._net.state_dict().items()}
    state["caption_encoder.base.wte.weight"] = torch.zeros(4, 8)
    state["caption_encoder.projection.linear1.weight"] = torch.zeros(1024, 768)
    state["logit_scale"] = torch.tensor(2.65)
    path = tmp_path / "CLAP_weights_2023.pth"
    torch.save({"model": state}, path)
    loaded = create("clap-2023", weights=path, precision="fp32").load()
    assert loaded.weights_revision().startswith("sha256:")
    close(loaded.embed(GOLDEN["wav"])["embedding"], GOLDEN["embedding"])
    del loaded
    torch.save({"model": {"audio_encoder.projection.linear1.weight": torch.zeros(1024, 768)}}, path)
    with pytest.raises(BadValueError, match="missing base.htsat.bn0.weight"):
        create("clap-2023", weights=path).load()


def test_ddp_prefix_is_accepted():
    x = torch.zeros(1)
    assert strip_prefix({"module.audio_encoder.a": x, "audio_encoder.b": x, "logit_scale": x},
                        "audio_encoder.") == {"a": x, "b": x}


def test_found_in_the_hugging_face_cache_where_msclap_downloads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDPROBE_HOME", str(tmp_path / "ep"))
    monkeypatch.delenv("EMBEDPROBE_WEIGHTS", raising=False)
    snap = fake_snapshot("microsoft/msclap", {"CLAP_weights_2023.pth": b"x"}, commit="0" * 40)
    try:
        ext = create("clap-2023")
        assert ext.weights_present() is True
        assert ext.resolve() == snap / "CLAP_weights_2023.pth"
    finally:
        (snap / "CLAP_weights_2023.pth").unlink()

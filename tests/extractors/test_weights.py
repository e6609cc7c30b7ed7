"""weights: resolution order, one-sentence missing-weights errors, fast offline decisions, safe loading."""

from __future__ import annotations

import argparse
import hashlib
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_cache import fake_snapshot  # tests/hf_cache.py

from embedprobe.errors import BadValueError, MissingWeightsError
from embedprobe.extractors import create
from embedprobe.extractors import weights as W

NAME = "Model_mAP=0.5.pth"
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An empty weights world: home, env folder and XDG cache all under tmp_path."""
    for var in ("EMBEDPROBE_HOME", "EMBEDPROBE_WEIGHTS", "XDG_CACHE_HOME", "HF_ENDPOINT",
                "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def put(folder: Path, name: str = NAME, data: bytes = b"x") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def test_weights_home_follows_embedprobe_home_then_xdg(env, monkeypatch):
    assert W.weights_home() == env / "home" / ".cache" / "embedprobe" / "weights"
    monkeypatch.setenv("XDG_CACHE_HOME", str(env / "xdg"))
    assert W.weights_home() == env / "xdg" / "embedprobe" / "weights"
    monkeypatch.setenv("EMBEDPROBE_HOME", str(env / "ep"))
    assert W.weights_home() == env / "ep" / "weights"


def test_resolution_order(env, monkeypatch):
    home = put(W.weights_home())
    assert W.resolve_file(NAME, what="M", source="u") == home
    env_dir = put(env / "envdir")
    monkeypatch.setenv("EMBEDPROBE_WEIGHTS", f"{env / 'missing'}:{env / 'envdir'}")
    assert W.resolve_file(NAME, what="M", source="u") == env_dir
    explicit_dir = put(env / "explicit")
    assert W.resolve_file(NAME, what="M", source="u", explicit=env / "explicit") == explicit_dir
    other = put(env / "elsewhere", "renamed.pth")  # an explicit file may have any name
    assert W.resolve_file(NAME, what="M", source="u", explicit=other) == other


def test_extra_dirs_come_after_the_home_folder(env):
    legacy = put(env / "legacy")
    assert W.resolve_file(NAME, what="M", source="u", extra_dirs=[env / "legacy"]) == legacy
    home = put(W.weights_home())
    assert W.resolve_file(NAME, what="M", source="u", extra_dirs=[env / "legacy"]) == home


def test_missing_file_is_one_fast_sentence(env):
    t0 = time.perf_counter()
    with pytest.raises(MissingWeightsError) as info:
        W.resolve_file(NAME, what="CNN14", source="https://zenodo.org/record/3987831")
    assert time.perf_counter() - t0 < 1.0
    msg = str(info.value)
    assert msg.count(". ") == 0 and msg.endswith(".")
    assert f"'{NAME}' not found" in msg and "https://zenodo.org/record/3987831" in msg
    assert "~/.cache/embedprobe/weights/" in msg and "--weights PATH" in msg


@pytest.mark.parametrize("name, revision, says, seconds", [
    ("cnn14-16k", "zenodo:3987831", ["'Cnn14_16k_mAP=0.438.pth' not found", "zenodo.org/record/3987831"], 1.0),
    ("emotion2vec-plus-large", "main", ["'emotion2vec_plus_large.pt' not found",
                                        "huggingface.co/emotion2vec/emotion2vec_plus_large/resolve/main/model.pt"], 2.0),
    ("clap-2023", None, ["'CLAP_weights_2023.pth' not found: download it from "
                         "https://huggingface.co/microsoft/msclap/resolve/main/CLAP_weights_2023.pth"], 2.0),
])
def test_missing_checkpoint_file_is_fast_and_names_where_to_put_it(name, revision, says, seconds, tmp_path,
                                                                   monkeypatch):
    """The families that load one checkpoint file: absent everywhere (no ~/panns_data either,
    offline), the load fails fast with one sentence naming the file, the download and the folder."""
    monkeypatch.setenv("EMBEDPROBE_HOME", str(tmp_path / "ep"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("EMBEDPROBE_WEIGHTS", raising=False)
    ext = create(name)
    assert ext.weights_present() is False and ext.weights_revision() == revision
    t0 = time.perf_counter()
    with pytest.raises(MissingWeightsError) as info:
        ext.load()
    assert time.perf_counter() - t0 < seconds
    msg = str(info.value)
    assert all(s in msg for s in says), msg
    assert str(tmp_path / "ep" / "weights") in msg and msg.count(". ") == 0


def test_an_explicit_folder_is_the_only_place_searched(env):
    put(W.weights_home())  # present at home, but the user pointed elsewhere
    (env / "mine").mkdir()
    with pytest.raises(MissingWeightsError, match="folder '.*mine' given as --weights"):
        W.resolve_file(NAME, what="M", source="u", explicit=env / "mine")
    with pytest.raises(MissingWeightsError, match="path '.*nope.pth' given as --weights"):
        W.resolve_file(NAME, what="M", source="u", explicit=env / "nope.pth")


def test_offline_is_decided_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert W.hub_offline() is True
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    t0 = time.perf_counter()
    assert W.hub_offline(timeout=0.5) is True
    assert time.perf_counter() - t0 < 2.0


def test_hf_model_resolves_to_the_cached_snapshot(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = fake_snapshot("embedprobe-test/complete", {"config.json": b"{}", "model.safetensors": b"w"}).name
    for rev in (None, "main", commit):
        src = W.resolve_hf("embedprobe-test/complete", revision=rev)
        assert src.local and Path(src.path_or_id).name == commit == src.commit
        assert src.kwargs() == {"local_files_only": True}
    assert W.hf_weights_present("embedprobe-test/complete", commit)


def test_hf_model_missing_offline_is_a_fast_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_snapshot("embedprobe-test/config-only", {"config.json": b"{}"})  # weights never arrived
    t0 = time.perf_counter()
    for repo in ("embedprobe-test/config-only", "embedprobe-test/never-downloaded"):
        assert not W.hf_weights_present(repo)
        with pytest.raises(MissingWeightsError, match=f"'{repo}' are not in the Hugging Face cache"):
            W.resolve_hf(repo, revision="abc123")
    assert time.perf_counter() - t0 < 2.0


def test_hf_online_keeps_the_hub_id_and_pinned_revision(monkeypatch):
    monkeypatch.setattr(W, "hub_offline", lambda timeout=1.5: False)
    src = W.resolve_hf("embedprobe-test/not-cached", revision="0123abcd")
    assert not src.local and src.path_or_id == "embedprobe-test/not-cached"
    assert src.kwargs() == {"revision": "0123abcd", "local_files_only": False}


def test_hf_explicit_folder(tmp_path):
    with pytest.raises(MissingWeightsError, match="config.json"):
        W.resolve_hf("org/m", explicit=tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"w")
    src = W.resolve_hf("org/m", explicit=tmp_path)
    assert src.local and src.path_or_id == str(tmp_path) and src.revision is None


def test_sha256_prefix_of_file_and_folder(tmp_path):
    f = put(tmp_path, "a.pth", b"hello")
    assert W.sha256_prefix(f) == "sha256:" + hashlib.sha256(b"hello").hexdigest()[:12]
    put(tmp_path, "notes.txt", b"ignored")
    before = W.sha256_prefix(tmp_path)
    put(tmp_path, "b.safetensors", b"more")
    assert W.sha256_prefix(tmp_path) != before


def test_loads_plain_and_numpy_pickling_checkpoints(tmp_path):
    torch.save({"model": {"w": torch.ones(2)}}, tmp_path / "plain.pth")
    assert W.extract_state_dict(W.load_torch_checkpoint(tmp_path / "plain.pth"))["w"].sum() == 2
    # pickled under numpy 1.x (numpy.core.multiarray._reconstruct ...), like the PANNs checkpoints
    old = W.load_torch_checkpoint(GOLDEN / "numpy1_checkpoint.pth")
    assert old["iteration"] == 600000 and float(old["statistics"]["mAP"]) == pytest.approx(0.438)
    np.testing.assert_array_equal(old["statistics"]["per_class"], [0.0, 1.0, 2.0])
    # legacy (pre-zip) serialisation with numpy values, loaded through mmap=True's fallback
    torch.save({"model": {"w": torch.ones(2)}, "s": np.float64(1.0)}, tmp_path / "legacy.pth",
               _use_new_zipfile_serialization=False)
    assert W.load_torch_checkpoint(tmp_path / "legacy.pth", mmap=True)["s"] == 1.0


def test_data_class_pickles_load_only_with_trust_pickle(tmp_path):
    path = tmp_path / "args.pth"
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(W.UnsafePickleError, match="argparse.Namespace.*pass --trust-pickle"):
        W.load_torch_checkpoint(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert W.load_torch_checkpoint(path, trust_pickle=True)["args"].lr == 0.1
    [warning] = [w for w in caught if w.category is W.UntrustedPickleWarning]
    assert "untrusted code paths" in str(warning.message) and "\n" not in str(warning.message)


@pytest.mark.parametrize("content", [b"<html>rate limited</html>", b"PK\x03\x04truncated"])
def test_broken_files_say_so(tmp_path, content):
    path = put(tmp_path, "broken.pth", content)
    with pytest.raises(BadValueError, match="not a readable PyTorch checkpoint"):
        W.load_torch_checkpoint(path)

"""WavLM / HuBERT / wav2vec 2.0 through transformers: layer meaning, normalisation, batching, weights."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from embedprobe.errors import BadValueError, MissingWeightsError  # noqa: E402
from embedprobe.extractors import create, get_spec  # noqa: E402
from embedprobe.extractors.hf_ssl import (  # noqa: E402
    DATA2VEC_AUDIO_BASE,
    DATA2VEC_AUDIO_LARGE,
    HUBERT_LARGE,
    WAV2VEC2_LARGE,
    WAVLM_BASE,
    WAVLM_BASE_PLUS,
    WAVLM_LARGE,
    HFSpeechEncoder,
    conv_frames,
)

torch.set_num_threads(1)
SPECS = [WAVLM_BASE, WAVLM_BASE_PLUS, WAVLM_LARGE, HUBERT_LARGE, WAV2VEC2_LARGE]
D2V = [DATA2VEC_AUDIO_BASE, DATA2VEC_AUDIO_LARGE]


def noise(n: int, seed: int = 0, gain: float = 0.1) -> np.ndarray:
    return (gain * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_specs_are_the_self_supervised_checkpoints():
    assert [s.weights_id for s in SPECS] == [
        "microsoft/wavlm-base", "microsoft/wavlm-base-plus", "microsoft/wavlm-large",
        "facebook/hubert-large-ll60k", "facebook/wav2vec2-large-lv60"]
    large = get_spec("wavlm-large")
    assert large.dim == 1024 and large.layers[0] == "layer00" and large.layers[-2:] == ("layer24", "final")
    assert len(get_spec("wavlm-base-plus").layers) == 13 and get_spec("wavlm-base-plus").dim == 768
    assert large.param("do_normalize") and not get_spec("wavlm-base").param("do_normalize")
    assert large.hop_s == 0.02 and large.min_duration_s == 400 / 16000
    assert [conv_frames(n) for n in (399, 400, 719, 720, 16000)] == [0, 1, 1, 2, 49]


def test_data2vec_specs_are_the_self_supervised_post_ln_checkpoints():
    """Not the -960h ASR models; post-LN at both sizes (no final), LayerNorm CNN, normalised input."""
    assert [s.weights_id for s in D2V] == ["facebook/data2vec-audio-base", "facebook/data2vec-audio-large"]
    for spec, n, dim in zip(D2V, (12, 24), (768, 1024), strict=True):
        assert spec.layers == tuple(f"layer{i:02d}" for i in range(n + 1)) and spec.dim == dim
        assert spec.param("model_type") == "data2vec-audio" and spec.licence == "Apache-2.0"
        assert spec.param("do_normalize") and not spec.param("group_norm") and not spec.param("final_norm")
        assert spec.hop_s == 0.02 and spec.min_duration_s == 400 / 16000


@pytest.mark.parametrize("spec", SPECS + D2V, ids=lambda s: s.name)
def test_layers_are_the_transformer_hidden_states(spec):
    """layer00 = hidden_states[0], layerNN = block NN output, final = last_hidden_state (fp32)."""
    tiny = HFSpeechEncoder.for_tests(spec)
    ext = HFSpeechEncoder(tiny.spec, precision="fp32", _random_config=tiny._random_config).load()
    wav = noise(16000 + 77)
    out = ext.embed(wav)
    torch.manual_seed(0)
    ref = transformers.AutoModel.from_config(tiny._random_config).eval()
    x = torch.from_numpy(ext._prepare(wav))[None]
    with torch.inference_mode():
        o = ref(x, output_hidden_states=True)
    blocks = [n for n in ext.spec.layers if n.startswith("layer")]
    assert len(blocks) == len(ref.encoder.layers) + 1
    for i, name in enumerate(blocks[:-1]):  # transformers >= 5 does not tie the last to the final LN
        np.testing.assert_allclose(out[name], o.hidden_states[i][0].numpy(), rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(out[ext.spec.layers[-1]], o.last_hidden_state[0].numpy(), rtol=1e-4, atol=2e-5)
    assert ("final" in ext.spec.layers) == bool(spec.param("final_norm"))
    assert all(v.shape == (ext.n_frames(wav.size), ext.spec.dim) for v in out.values())


def test_input_normalisation_follows_the_checkpoint():
    """Large checkpoints normalise each clip (gain-invariant); base ones see the raw waveform."""
    wav = noise(8000, seed=1)
    for spec, invariant in ((WAVLM_LARGE, True), (WAVLM_BASE, False)):
        ext = HFSpeechEncoder.for_tests(spec)
        ext = HFSpeechEncoder(ext.spec, precision="fp32", _random_config=ext._random_config)
        a, b = ext.embed(wav)["layer02"], ext.embed(3 * wav)["layer02"]
        assert np.allclose(a, b, atol=1e-4) == invariant, spec.name
        assert ext.runtime_config()["do_normalize"] == invariant


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_padded_batches_match_one_by_one(precision):
    tiny = HFSpeechEncoder.for_tests(WAVLM_LARGE)
    ext = HFSpeechEncoder(tiny.spec, precision=precision, batch_seconds=60, _random_config=tiny._random_config)
    wavs = [noise(n, seed=n) for n in (16000, 23456, 40000, 8000, 30 * 16000)]  # incl. a 30 s chunk
    one = [ext.embed(w) for w in wavs]
    many = ext.embed_batch(wavs)
    tol = 1e-4 if precision == "fp32" else 2e-2
    for a, b in zip(one, many, strict=True):
        for layer in a:
            assert a[layer].shape == b[layer].shape
            np.testing.assert_allclose(b[layer].mean(0), a[layer].mean(0), atol=tol, rtol=tol)


def test_data2vec_never_pads():
    """Its 5 stacked positional convolutions would carry padded frames into the real ones: one clip per pass."""
    tiny = HFSpeechEncoder.for_tests(DATA2VEC_AUDIO_LARGE)
    ext = HFSpeechEncoder(tiny.spec, precision="fp32", batch_seconds=60, _random_config=tiny._random_config)
    wavs = [noise(n, seed=n) for n in (16000, 23456, 8000)]
    for a, b in zip([ext.embed(w) for w in wavs], ext.embed_batch(wavs), strict=True):
        for layer in a:
            np.testing.assert_array_equal(b[layer], a[layer])
    x = torch.zeros(2, 23456)  # the reason, on the stock model: the shorter clip padded differs
    x[0], x[1, :16000] = torch.from_numpy(noise(23456, 1)), torch.from_numpy(noise(16000, 2))
    mask = (x != 0).long()
    with torch.inference_mode():
        padded = ext.model(x, attention_mask=mask).last_hidden_state[1, :ext.n_frames(16000)]
        alone = ext.model(x[1:, :16000]).last_hidden_state[0]
    assert not torch.allclose(padded, alone, atol=1e-3)


def test_group_norm_models_never_pad():
    """GroupNorm over time would see the padding: base models embed one clip per pass."""
    tiny = HFSpeechEncoder.for_tests(WAVLM_BASE_PLUS)
    ext = HFSpeechEncoder(tiny.spec, batch_seconds=60, _random_config=tiny._random_config)
    wavs = [noise(12000, 1), noise(20000, 2)]
    for a, b in zip(ext.embed_batch(wavs), [ext.embed(w) for w in wavs], strict=True):
        for layer in a:
            np.testing.assert_array_equal(a[layer], b[layer])


def test_too_short_input_is_a_clear_error():
    ext = HFSpeechEncoder.for_tests(WAVLM_LARGE)
    with pytest.raises(BadValueError, match="400 samples"):
        ext.embed(np.zeros(399, np.float32))


@pytest.mark.parametrize("name, repo", [
    ("wavlm-large", "microsoft/wavlm-large"),
    ("data2vec-audio-large", "facebook/data2vec-audio-large"),
    ("whisper-large-v3", "openai/whisper-large-v3"),
    ("w2v2-msp-dim", "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim"),
])
def test_offline_and_uncached_fails_fast_with_one_sentence(name, repo):
    """Every Hugging Face checkpoint family; conftest: HF_HUB_OFFLINE=1 and an empty HF_HOME."""
    ext = create(name)
    assert ext.weights_present() is False
    t0 = time.perf_counter()
    with pytest.raises(MissingWeightsError) as err:
        ext.load()
    assert time.perf_counter() - t0 < 3.0
    msg = str(err.value)
    assert repo in msg and "--weights" in msg and msg.count(". ") == 0


@pytest.mark.parametrize("preprocessor", [True, False], ids=["with-preprocessor", "config-only"])
def test_hf_prefix_reads_a_data2vec_audio_folder(tmp_path, preprocessor):
    folder, model = _save_tiny(tmp_path, DATA2VEC_AUDIO_BASE, preprocessor)
    assert json.loads((folder / "config.json").read_text())["model_type"] == "data2vec-audio"
    spec = get_spec(f"hf:{folder}")
    assert spec.layers == ("layer00", "layer01", "layer02") and spec.dim == 32  # post-LN: no final
    assert spec.param("do_normalize") and not spec.param("group_norm")
    ext = create(f"hf:{folder}", precision="fp32").load()
    wav = noise(20000, 7)
    x = torch.from_numpy((wav - wav.mean()) / np.sqrt(wav.var() + 1e-7))[None]
    with torch.inference_mode():
        ref = model(x, output_hidden_states=True)
    for i, name in enumerate(spec.layers):
        np.testing.assert_allclose(ext.embed(wav)[name], ref.hidden_states[i][0].numpy(), rtol=1e-4, atol=2e-5)


def test_named_data2vec_spec_checks_the_architecture(tmp_path):
    """A data2vec folder of another size under data2vec-audio-base: the sizes and the hf: fix are named."""
    folder, _ = _save_tiny(tmp_path, DATA2VEC_AUDIO_BASE)
    with pytest.raises(BadValueError, match=r"hidden_size.*768.*hf:"):
        create("data2vec-audio-base", weights=folder).load()
    wavlm, _ = _save_tiny(tmp_path / "w")  # another model type entirely
    with pytest.raises(BadValueError, match="model_type"):
        create("data2vec-audio-base", weights=wavlm).load()


def _save_tiny(tmp_path, spec=WAVLM_LARGE, preprocessor: bool = True, **overrides):
    """``(folder, model)``: a tiny random-init model of ``spec``'s architecture saved with
    ``save_pretrained``, with the feature extractor's config unless ``preprocessor`` is False."""
    cfg = HFSpeechEncoder.tiny_config(spec)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    torch.manual_seed(1)
    model = transformers.AutoModel.from_config(cfg).eval()
    folder = tmp_path / "ckpt"
    model.save_pretrained(folder)
    if preprocessor:
        (folder / "preprocessor_config.json").write_text(json.dumps(
            {"do_normalize": spec.param("do_normalize"), "sampling_rate": 16000,
             "feature_extractor_type": "Wav2Vec2FeatureExtractor"}))
    return folder, model


def test_hf_prefix_reads_its_spec_from_the_folder(tmp_path):
    folder, model = _save_tiny(tmp_path)
    spec = get_spec(f"hf:{folder}")
    assert spec.dim == 32 and spec.layers == ("layer00", "layer01", "layer02", "final")
    ext = create(f"hf:{folder}", precision="fp32").load()
    wav = noise(20000, 5)
    out = ext.embed(wav)
    x = torch.from_numpy((wav - wav.mean()) / np.sqrt(wav.var() + 1e-7))[None]
    with torch.inference_mode():
        ref = model(x).last_hidden_state[0].numpy()
    np.testing.assert_allclose(out["final"], ref, rtol=1e-4, atol=2e-5)
    assert ext.weights_revision().startswith("sha256:")
    assert ext.runtime_config()["weights"] == str(folder)
    # the same folder under a named spec of another size: an error naming both sizes and the fix
    with pytest.raises(BadValueError, match=r"hidden_size.*1024.*hf:"):
        create("wavlm-large", weights=folder).load()


def test_hf_prefix_errors():
    with pytest.raises(MissingWeightsError, match="hf download org/none"):
        get_spec("hf:org/none")
    with pytest.raises(BadValueError, match="hf:<model-id>"):
        get_spec("hf:")


def test_hf_prefix_rejects_non_wav2vec2_models(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BadValueError, match="wav2vec2-family"):
        get_spec(f"hf:{tmp_path}")


@pytest.mark.slow
def test_named_spec_loads_a_local_wavlm_large_architecture(tmp_path):
    """hidden 1024 x 24 layers + WavLM-Large CNN strides, narrowed FFN/CNN widths to stay fast."""
    folder, _ = _save_tiny(tmp_path, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                           intermediate_size=64)
    ext = create("wavlm-large", weights=folder).load()
    out = ext.embed(noise(8000, 6))
    assert list(out) == list(WAVLM_LARGE.layers)
    assert all(v.shape == (24, 1024) and np.isfinite(v).all() for v in out.values())
    assert ext.weights_revision().startswith("sha256:") and ext.weights_present()


@pytest.mark.slow
def test_cli_extract_wavlm_large_with_local_weights(tmp_path):
    """`embedprobe extract --model wavlm-large --weights DIR` on a saved random-init checkpoint."""
    import os
    import subprocess
    import sys

    from embedprobe.cache import open_cache
    from embedprobe.corpora.synthetic import write_corpus

    folder, _ = _save_tiny(tmp_path, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                           intermediate_size=64)
    root = write_corpus("emodb", tmp_path / "corpus", n_speakers=2, clips_per_class=1)
    env = dict(os.environ, EMBEDPROBE_NO_PROGRESS="1")
    r = subprocess.run([sys.executable, "-m", "embedprobe.cli.main", "extract", "--model", "wavlm-large",
                        "--weights", str(folder), "--corpus", "emodb", "--root", str(root),
                        "--out", str(tmp_path / "cache"), "--layers", "layer12,final"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    with open_cache(tmp_path / "cache" / "emodb__wavlm-large.h5") as c:
        assert c.complete and c.n_clips == 14 and c.dims == {"layer12": 1024, "final": 1024}
        assert np.isfinite(c.pooled("final")).all()
        assert c.identity["weights_revision"].startswith("sha256:")
        assert c.identity["runtime"]["precision"] in ("fp32", "bf16")


def test_loading_a_folder_prints_no_transformers_bar(tmp_path, capfd):
    """transformers 5 draws its own "Loading weights" tqdm bar while reading a checkpoint; an
    extractor's load hides it (embedprobe shows its own progress) and leaves the hook as it was."""
    from transformers.utils import logging as hf_logging

    folder, _ = _save_tiny(tmp_path / "w")
    capfd.readouterr()
    before = getattr(hf_logging, "_tqdm_hook", None)  # transformers < 5 has no hook (and no such bar)
    create(f"hf:{folder}", precision="fp32").load()
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "Loading checkpoint shards" not in err
    assert getattr(hf_logging, "_tqdm_hook", None) is before

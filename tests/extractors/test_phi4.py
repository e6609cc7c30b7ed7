"""Phi-4-multimodal speech encoder: layers, 80 ms hop, and loading the encoder out of a full checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

from embedprobe.errors import BadValueError, MissingWeightsError  # noqa: E402
from embedprobe.extractors import create, get_spec  # noqa: E402
from embedprobe.extractors.phi4 import PHI4_AUDIO, PREFIX, Phi4Audio, audio_config_dict  # noqa: E402

torch.set_num_threads(1)


def speechy(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.2 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny():
    return Phi4Audio.for_tests(PHI4_AUDIO).load()


def test_spec():
    spec = get_spec("phi4-audio")
    assert (spec.sample_rate, spec.dim, spec.hop_s) == (16000, 1024, 0.08)
    assert spec.layers[0] == "layer00" and spec.layers[-1] == "layer24" and len(spec.layers) == 25


def test_frames_and_layers(tiny):
    for n in (400, 1839, 1840, 16000 + 7):
        assert all(v.shape == (tiny.n_frames(n), 32) for v in tiny.embed(speechy(n)).values())
    assert [tiny.n_frames(n) for n in (399, 400, 1520, 1679, 1680, 16000)] == [0, 1, 1, 1, 2, 13]
    wav = speechy(24000)
    out = tiny.embed(wav)
    feats = transformers.Phi4MultimodalFeatureExtractor()(wav, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=tiny.precision == "bf16"):
        ref = tiny.model(feats["audio_input_features"], None)[0].float().numpy()
    np.testing.assert_allclose(out["layer02"], ref, rtol=1e-5, atol=1e-5)  # the encoder output
    assert not np.allclose(out["layer00"], out["layer02"])
    with pytest.raises(BadValueError, match="400 samples"):
        tiny.embed(np.zeros(399, np.float32))


def test_sequences_longer_than_40s_are_unfolded_back(tiny):
    out = tiny.embed(speechy(16000 * 45))
    assert out["layer02"].shape == (tiny.n_frames(16000 * 45), 32) == (563, 32)


_ORIGINAL_NAMES = (("feed_forward_in.gate_up_proj", "feed_forward_in.net.0.linear"),
                   ("feed_forward_out.gate_up_proj", "feed_forward_out.net.0.linear"),
                   ("feed_forward_in.down_proj", "feed_forward_in.net.2"),
                   ("feed_forward_out.down_proj", "feed_forward_out.net.2"),
                   ("self_attn.q_proj", "self_attn.linear_q"), ("self_attn.k_proj", "self_attn.linear_k"),
                   ("self_attn.v_proj", "self_attn.linear_v"), ("self_attn.o_proj", "self_attn.linear_out"))


def _write_original_checkpoint(folder, model):
    """The encoder inside a 2-shard remote-code-layout checkpoint, next to unrelated LLM tensors."""
    state = {}
    for key, value in model.state_dict().items():
        for new, old in _ORIGINAL_NAMES:
            key = key.replace(new, old)
        state[PREFIX + key] = value.to(torch.bfloat16).contiguous()
    state[PREFIX + "encoders.0.self_attn.linear_q.lora_A.speech.weight"] = torch.zeros(2, 2)
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    shards["model-00001-of-00002.safetensors"].append("model.layers.0.mlp.weight")
    state["model.layers.0.mlp.weight"] = torch.ones(3)
    weight_map = {}
    for shard, names in shards.items():
        safetensors_torch.save_file({k: state[k] for k in names}, str(folder / shard))
        weight_map.update({k: shard for k in names})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    c = model.config
    (folder / "config.json").write_text(json.dumps({
        "model_type": "phi4mm",
        "audio_processor": {"config": {
            "attention_dim": c.hidden_size, "attention_heads": c.num_attention_heads,
            "linear_units": c.intermediate_size, "num_blocks": c.num_blocks, "input_size": 80,
            "ext_pw_out_channel": c.ext_pw_out_channel, "time_reduction": 8,
            "depthwise_separable_out_channel": c.depthwise_separable_out_channel,
            "nemo_conv_settings": {"conv_channels": c.nemo_conv_channels},
            "relative_attention_bias_args": {"type": "t5", "t5_bias_max_distance": c.bias_max_distance},
            "activation_checkpointing": "", "input_layer": "nemo_conv", "cnn_layer_norm": True}},
        "embd_layer": {"audio_embd_layer": {"downsample_rate": 1}}}))


def test_encoder_is_read_out_of_an_original_checkpoint(tmp_path, tiny):
    _write_original_checkpoint(tmp_path, tiny.model)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert audio_config_dict(raw)["hidden_size"] == 32
    ext = Phi4Audio(tiny.spec, weights=tmp_path, precision="fp32").load()
    ref = Phi4Audio(tiny.spec, precision="fp32", _random_config=tiny._random_config).load()
    wav = speechy(20000, 1)
    a, b = ext.embed(wav), ref.embed(wav)
    for layer in a:  # bf16-stored weights: close, not equal
        np.testing.assert_allclose(a[layer], b[layer], rtol=0.05, atol=0.05)
    assert ext.weights_revision().startswith("sha256:")
    with pytest.raises(BadValueError, match=r"hidden_size=32.*expected 1024"):
        create("phi4-audio", weights=tmp_path).load()


def test_missing_shard_and_missing_weights(tmp_path, tiny):
    _write_original_checkpoint(tmp_path, tiny.model)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="model-00002-of-00002"):
        Phi4Audio(tiny.spec, weights=tmp_path).load()
    with pytest.raises(MissingWeightsError, match="Phi-4-multimodal-instruct"):
        create("phi4-audio").load()

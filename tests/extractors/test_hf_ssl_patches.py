"""The WavLM / HuBERT / wav2vec2 rewrites (fused attention, GEMM front end) and the precision choice: bf16 / oneDNN accuracy against fp32."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from embedprobe.errors import BadValueError  # noqa: E402
from embedprobe.extractors.hf_ssl import (  # noqa: E402
    DATA2VEC_AUDIO_BASE,
    WAVLM_BASE,
    WAVLM_LARGE,
    HFSpeechEncoder,
)
from embedprobe.extractors.hf_ssl_patches import patch_conv_feature_encoder, patch_wavlm_attention  # noqa: E402
from embedprobe.extractors.precision import autocast, cosine, cpu_bf16_supported, resolve_precision  # noqa: E402
from embedprobe.extractors.rewrites import bake_weight_norm, prepare  # noqa: E402

torch.set_num_threads(1)


def wavlm(large: bool, n_layers: int = 2, dim: int = 32, pos_groups: int | None = None):
    torch.manual_seed(0)
    cfg = HFSpeechEncoder.tiny_config(WAVLM_LARGE if large else WAVLM_BASE, n_layers=n_layers, dim=dim)
    if pos_groups is not None:
        cfg.num_conv_pos_embedding_groups = pos_groups
    return transformers.WavLMModel(cfg).eval()


def batch(seed: int = 0):
    """Two clips of different length, zero-padded, with their attention mask."""
    rng = np.random.default_rng(seed)
    x = torch.zeros(2, 24000)
    x[0] = torch.from_numpy(rng.standard_normal(24000).astype(np.float32))
    x[1, :15000] = torch.from_numpy(rng.standard_normal(15000).astype(np.float32))
    mask = torch.zeros(2, 24000, dtype=torch.long)
    mask[0] = 1
    mask[1, :15000] = 1
    return x, mask


def test_precision_choice():
    auto = resolve_precision("auto", "cpu")
    assert auto == ("bf16" if cpu_bf16_supported() else "fp32-onednn")
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(BadValueError, match="fp16"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(BadValueError, match="expected one of"):
        resolve_precision("int8", "cpu")


@pytest.mark.parametrize("large", [True, False])
def test_fused_attention_matches_stock_wavlm(large):
    """Same maths as transformers' WavLMAttention incl. gated relative position bias and padding."""
    stock, fused = wavlm(large), wavlm(large)
    assert patch_wavlm_attention(fused) == 2
    assert patch_wavlm_attention(fused) == 2  # idempotent
    x, mask = batch()
    with torch.inference_mode():
        a = stock(x, attention_mask=mask, output_hidden_states=True)
        b = fused(x, attention_mask=mask, output_hidden_states=True)
    for ha, hb in zip(a.hidden_states, b.hidden_states, strict=True):
        torch.testing.assert_close(hb[0], ha[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(hb[1, :46], ha[1, :46], rtol=1e-4, atol=1e-5)  # valid frames
    # the fused projection shares storage with q/k/v: the state dict is unchanged
    sd_a, sd_b = stock.state_dict(), fused.state_dict()
    for key in sd_a:
        torch.testing.assert_close(sd_b[key], sd_a[key])


def _cosines(model_fp32, model_fast, precision, x, mask=None):
    with torch.inference_mode():
        ref = model_fp32(x, attention_mask=mask, output_hidden_states=True).hidden_states
        with autocast(precision, "cpu"):
            got = model_fast(x, attention_mask=mask, output_hidden_states=True).hidden_states
    return [cosine(g.float().numpy(), r.numpy()) for g, r in zip(got, ref, strict=True)]


@pytest.mark.skipif(not cpu_bf16_supported(), reason="this CPU has no native bf16")
@pytest.mark.parametrize("n_layers,dim", [(2, 128), (24, 128)])
def test_bf16_fast_path_stays_close_to_fp32(n_layers, dim):
    """Every layer at cosine >= 0.999 to fp32, also through a full-size layer count (24).

    The raw rewrites, without the load-time check, at the kernel shapes of the real
    checkpoints: 64 input channels per positional-conv group (1024 / 16 in WavLM-Large). Tiny
    configs with <= 8 channels per group hit a oneDNN AMX bf16 kernel bug that the extractors'
    load-time check catches (tests/extractors/test_precision_check.py).
    """
    ref, fast = wavlm(True, n_layers, dim, dim // 64), wavlm(True, n_layers, dim, dim // 64)
    info = prepare(fast, "bf16", "cpu")
    assert info["attention"] == "fused-qkv-sdpa" and info["precision"] == "bf16"
    assert info["gemm_feature_encoder"] == 1
    x, mask = batch(1)
    cos = _cosines(ref, fast, "bf16", x[:1])
    assert min(cos) >= 0.999, cos
    cos_batched = _cosines(ref, fast, "bf16", x, mask)  # batch > 1 under bf16: the memory trap path
    assert min(cos_batched) >= 0.999, cos_batched


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
def test_onednn_linears_equal_fp32():
    ref, fast = wavlm(True), wavlm(True)
    info = prepare(fast, "fp32-onednn", "cpu")
    assert info["onednn_linears"] > 0
    left = [n for n, m in fast.named_modules() if type(m) is torch.nn.Linear]
    assert left and all(n.endswith(("q_proj", "k_proj", "v_proj")) for n in left)  # unused views of qkv_fused
    x, _ = batch(2)
    with torch.inference_mode():
        a = ref(x[:1]).last_hidden_state
        b = fast(x[:1]).last_hidden_state
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n_samples", [16000, 16003, 401])
def test_gemm_feature_encoder_equals_stock_conv_stack(n_samples):
    """The channels-last GEMM front end is the stock CNN's maths (fp32, odd lengths, batch 2)."""
    ref, fast = wavlm(True), wavlm(True)
    assert patch_conv_feature_encoder(fast) == 1
    assert patch_conv_feature_encoder(fast) == 1  # idempotent
    x = torch.from_numpy(np.random.default_rng(5).standard_normal((2, n_samples)).astype(np.float32))
    with torch.inference_mode():
        want = ref.feature_extractor(x)
        got = fast.feature_extractor(x)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fast(x).last_hidden_state, ref(x).last_hidden_state, rtol=1e-4, atol=1e-4)
    assert got.shape == (2, 16, HFSpeechEncoder.for_tests(WAVLM_LARGE).n_frames(n_samples))


def test_gemm_feature_encoder_leaves_group_norm_front_ends():
    base = wavlm(False)
    assert patch_conv_feature_encoder(base) == 0
    assert prepare(base, "bf16", "cpu")["gemm_feature_encoder"] == 0


def test_weight_norm_baking_keeps_outputs():
    ref, baked = wavlm(True), wavlm(True)
    assert bake_weight_norm(baked) == 1  # the positional convolution
    x, _ = batch(3)
    with torch.inference_mode():
        torch.testing.assert_close(baked(x[:1]).last_hidden_state, ref(x[:1]).last_hidden_state)


def test_extractor_records_its_precision():
    ext = HFSpeechEncoder.for_tests(WAVLM_LARGE)
    fp32 = HFSpeechEncoder(ext.spec, precision="fp32", _random_config=ext._random_config)
    assert fp32.precision == "fp32"
    rc = fp32.runtime_config()
    assert rc["precision"] == "fp32" and rc["attention"] == "fused-qkv-sdpa"
    assert rc["weights_dtype"] == "float32" and rc["revision"] == "random-init"
    assert ext.precision == resolve_precision("auto", "cpu")
    wav = np.random.default_rng(4).standard_normal(16000).astype(np.float32)
    a, b = ext.embed(wav), fp32.embed(wav)
    assert min(cosine(a[k], b[k]) for k in a) >= 0.999
    with pytest.raises(BadValueError, match="precision"):
        HFSpeechEncoder(WAVLM_LARGE, precision="half")


# -- data2vec-audio: which rewrites apply, and that they keep the stock modules' numbers -------------
def data2vec(n_layers: int = 2, dim: int = 32, pos_groups: int | None = None):
    torch.manual_seed(0)
    cfg = HFSpeechEncoder.tiny_config(DATA2VEC_AUDIO_BASE, n_layers=n_layers, dim=dim)
    if pos_groups is not None:
        cfg.num_conv_pos_embedding_groups = pos_groups
    return transformers.Data2VecAudioModel(cfg).eval()


@pytest.mark.parametrize("n_samples", [16000, 16003, 401])
def test_gemm_feature_encoder_equals_stock_data2vec_cnn(n_samples):
    """data2vec-audio's CNN (LayerNorm, no conv bias) is a LayerNorm stack: the GEMM rewrite applies, same maths."""
    ref, fast = data2vec(), data2vec()
    assert fast.feature_extractor.conv_layers[0].conv.bias is None
    assert patch_conv_feature_encoder(fast) == 1
    x = torch.from_numpy(np.random.default_rng(6).standard_normal((2, n_samples)).astype(np.float32))
    with torch.inference_mode():
        torch.testing.assert_close(fast.feature_extractor(x), ref.feature_extractor(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fast(x).last_hidden_state, ref(x).last_hidden_state, rtol=1e-4, atol=1e-4)


def test_prepare_on_data2vec_leaves_its_attention_and_positional_convs_stock():
    """No WavLM attention to fuse, no weight norm to fold (data2vec's positional convs have none)."""
    model = data2vec()
    info = prepare(model, "fp32", "cpu")
    assert info["attention"] == "stock" and info["weight_norms_baked"] == 0
    assert type(model.encoder.layers[0].attention).__name__ == "Data2VecAudioAttention"
    assert len(model.encoder.pos_conv_embed.layers) == 5


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
def test_onednn_linears_equal_fp32_on_data2vec():
    ref, fast = data2vec(), data2vec()
    assert prepare(fast, "fp32-onednn", "cpu")["onednn_linears"] > 0
    x, _ = batch(2)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x[:1]).last_hidden_state, ref(x[:1]).last_hidden_state, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not cpu_bf16_supported(), reason="this CPU has no native bf16")
def test_bf16_fast_path_stays_close_to_fp32_on_data2vec():
    """64 channels per positional-conv group, as in data2vec-audio-large (1024 / 16; the base model: 48)."""
    ref, fast = data2vec(2, 128, 2), data2vec(2, 128, 2)
    info = prepare(fast, "bf16", "cpu")
    assert info["gemm_feature_encoder"] == 1 and info["attention"] == "stock"
    x, _ = batch(1)
    cos = _cosines(ref, fast, "bf16", x[:1])
    assert min(cos) >= 0.999, cos


def test_data2vec_extractor_records_its_rewrites():
    ext = HFSpeechEncoder.for_tests(DATA2VEC_AUDIO_BASE)
    fp32 = HFSpeechEncoder(ext.spec, precision="fp32", _random_config=ext._random_config)
    rc = fp32.runtime_config()
    assert rc["attention"] == "stock" and rc["do_normalize"] and rc["weight_norms_baked"] == 0
    wav = np.random.default_rng(4).standard_normal(16000).astype(np.float32)
    a, b = ext.embed(wav), fp32.embed(wav)
    assert min(cosine(a[k], b[k]) for k in a) >= 0.999

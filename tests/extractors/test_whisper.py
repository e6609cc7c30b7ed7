"""Whisper's encoder: log-mel and frames against transformers, the stock encoder, checkpoints, modes, long clips."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from embedprobe.audio import decode as audio  # noqa: E402
from embedprobe.errors import BadValueError, MissingWeightsError  # noqa: E402
from embedprobe.extractors import _whisper as W  # noqa: E402
from embedprobe.extractors import create, get_spec  # noqa: E402
from embedprobe.extractors.whisper import WHISPER, WhisperExtractor  # noqa: E402
from embedprobe.pipeline.clip_embedder import ClipEmbedder  # noqa: E402

torch.set_num_threads(1)
SR = 16000


def speech(n: int, seed: int = 0) -> np.ndarray:
    """A harmonic glide with a syllable envelope and a little noise (log-mel bins well above the floor)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    env = np.clip(np.sin(2 * np.pi * 3.1 * t + seed), 0, None) ** 0.5
    wav = 0.2 * env * sum(np.sin(k * phase) / k for k in range(1, 8)) + 0.01 * rng.standard_normal(n)
    return wav.astype(np.float32)


def tiny_config(n_mels: int = 80):
    cfg = WhisperExtractor.tiny_config(WHISPER["large-v3" if n_mels == 128 else "tiny"])
    cfg.update({"vocab_size": 64, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
                "decoder_start_token_id": 3, "suppress_tokens": None, "begin_suppress_tokens": None})
    return cfg


def save_full_model(folder, cfg=None, seed: int = 1):
    """A random-init ``WhisperForConditionalGeneration`` saved as the official repos are (safetensors)."""
    torch.manual_seed(seed)
    model = transformers.WhisperForConditionalGeneration(cfg or tiny_config()).eval()
    model.save_pretrained(folder)
    transformers.WhisperFeatureExtractor(feature_size=model.config.num_mel_bins).save_pretrained(folder)
    return model


def test_specs():
    names = {s.name for s in WHISPER.values()}
    assert names == {f"whisper-{s}{m}" for s in ("tiny", "base", "small", "medium", "large-v3") for m in ("", "-native")}
    large = get_spec("whisper-large-v3")
    assert large.weights_id == "openai/whisper-large-v3" and large.licence == "MIT" and large.extra == "hf"
    assert large.dim == 1280 and large.layers[0] == "layer00" and large.layers[-2:] == ("layer32", "final")
    assert large.param("n_mels") == 128 and get_spec("whisper-medium").param("n_mels") == 80
    assert large.hop_s == 0.02 and large.param("mode") == "padded"
    native = get_spec("whisper-small-native")
    assert native.param("mode") == "native" and native.weights_id == "openai/whisper-small"
    assert native.layers == get_spec("whisper-small").layers and len(native.layers) == 14


@pytest.mark.parametrize("n", [1, 159, 160, 319, 320, 321, 16000, 16037, 479999, 480000])
def test_real_frames_follow_the_feature_extractors_mask(n):
    """transformers marks ceil(n / 160) mel frames as real; conv2 (stride 2, pad 1) halves them, rounding up."""
    fe = transformers.WhisperFeatureExtractor()
    mask = fe(np.zeros(n, np.float32), sampling_rate=SR, return_attention_mask=True)["attention_mask"]
    mel_real = int(np.asarray(mask).sum())
    assert mel_real == -(-n // 160)
    conv_out = (mel_real + 2 * 1 - 3) // 2 + 1  # conv2 arithmetic on the real mel frames
    assert W.encoder_frames(n) == conv_out == -(-n // 320)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_transformers(n_mels):
    fe = transformers.WhisperFeatureExtractor(feature_size=n_mels)
    filters = torch.from_numpy(W.mel_filters(n_mels)).float()
    for n in (4000, 16000 * 3 + 77):
        wav = speech(n, seed=n_mels)
        ref = fe(wav, sampling_rate=SR, return_tensors="np").input_features
        ref_np = fe._np_extract_fbank_features(np.pad(wav, (0, W.WINDOW - n))[None], "cpu")
        x, t = W.padded_input(wav, native=False)
        got = W.log_mel(torch.from_numpy(x)[None], filters).numpy()
        assert got.shape == ref.shape == (1, n_mels, 3000)
        np.testing.assert_allclose(got, ref, atol=2e-5)
        np.testing.assert_allclose(got, ref_np, atol=1e-3)  # transformers' numpy path: float64 STFT
        # native length: the same first 2T frames (zeros after the end, the same maximum)
        xn, tn = W.padded_input(wav, native=True)
        native = W.log_mel(torch.from_numpy(xn)[None], filters).numpy()
        assert tn == t and native.shape[-1] >= 2 * t + 2
        np.testing.assert_allclose(native[..., :2 * t], ref[..., :2 * t], atol=2e-5)


def _stock(folder):
    model = transformers.WhisperModel.from_pretrained(folder).eval()
    return model.encoder, transformers.WhisperFeatureExtractor.from_pretrained(folder)


def test_padded_mode_equals_the_stock_encoder(tmp_path):
    """Every layer = transformers' WhisperModel.encoder on WhisperFeatureExtractor features, real frames only."""
    folder = tmp_path / "ckpt"
    save_full_model(folder)
    ext = create(f"hf:{folder}", precision="fp32").load()
    assert ext.spec.family == "whisper" and ext.spec.layers == ("layer00", "layer01", "layer02", "final")
    assert ext.runtime_config()["attention"] == "fused-qkv-sdpa"  # the fast path is what is compared
    encoder, fe = _stock(folder)
    for n in (9000, 16000 * 2 + 123):
        wav = speech(n, seed=n)
        out = ext.embed(wav)
        t = -(-n // 320)
        with torch.inference_mode():
            ref = encoder(fe(wav, sampling_rate=SR, return_tensors="pt").input_features, output_hidden_states=True)
        hs = [h[0, :t].numpy() for h in ref.hidden_states]
        # transformers >= 5: hidden_states = (embeddings, block 1 .. block N-1, last_hidden_state)
        for name, want in zip(("layer00", "layer01"), hs[:-1], strict=True):
            np.testing.assert_allclose(out[name], want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(out["final"], ref.last_hidden_state[0, :t].numpy(), rtol=1e-4, atol=1e-4)
        with torch.inference_mode():
            normed = encoder.layer_norm(torch.from_numpy(out["layer02"])).numpy()
        np.testing.assert_allclose(normed, out["final"], rtol=1e-4, atol=1e-4)
        assert all(v.shape == (t, 32) and v.dtype == np.float32 for v in out.values())


def test_native_mode_shares_the_front_end_and_differs_after_attention(tmp_path):
    """Native: the conv front end's frames equal the padded run's (all but the last, whose conv
    sees the padding); the blocks attend over the clip only, so deeper layers move."""
    folder = tmp_path / "ckpt"
    save_full_model(folder)
    spec = get_spec(f"hf:{folder}")
    padded = WhisperExtractor(spec, precision="fp32").load()
    native_spec = replace(spec, params=tuple((k, "native" if k == "mode" else v) for k, v in spec.params))
    native = WhisperExtractor(native_spec, precision="fp32").load()
    wav = speech(16000 * 2 + 50, seed=4)
    a, b = padded.embed(wav), native.embed(wav)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    np.testing.assert_allclose(b["layer00"][:-1], a["layer00"][:-1], rtol=1e-5, atol=1e-5)
    cos = float(np.dot(a["final"].mean(0), b["final"].mean(0))
                / (np.linalg.norm(a["final"].mean(0)) * np.linalg.norm(b["final"].mean(0))))
    assert cos < 1 - 1e-6 and np.isfinite(b["final"]).all()


def test_checkpoint_format_reads_the_encoder_only(tmp_path, monkeypatch):
    """Official key names (WhisperForConditionalGeneration, safetensors): no missing, no unexpected key,
    and no decoder tensor is ever read."""
    import safetensors

    folder = tmp_path / "full"
    model = save_full_model(folder)
    read: list[str] = []
    real_open = safetensors.safe_open

    class Spy:
        def __init__(self, *args, **kwargs):
            self._f = real_open(*args, **kwargs)

        def __enter__(self):
            self._inner = self._f.__enter__()
            return self

        def __exit__(self, *exc):
            return self._f.__exit__(*exc)

        def keys(self):
            return self._inner.keys()

        def get_tensor(self, key):
            read.append(key)
            return self._inner.get_tensor(key)

    monkeypatch.setattr(safetensors, "safe_open", Spy)
    state = W.read_encoder_state(folder)
    want = model.model.encoder.state_dict()
    assert set(state) == set(want)
    assert read and all(k.startswith("model.encoder.") for k in read)
    encoder = W.build_encoder(model.config, state, where=str(folder))  # strict: raises on any mismatch
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, want[k]), k
    # a WhisperModel checkpoint ("encoder.*") loads the same
    model.model.save_pretrained(tmp_path / "base")
    assert set(W.read_encoder_state(tmp_path / "base")) == set(want)
    with pytest.raises(BadValueError, match="missing"):
        W.build_encoder(model.config, {k: v for k, v in state.items() if "layers.1." not in k})
    # a float16 checkpoint (as large-v3's model.safetensors) computes in float32
    model.half().save_pretrained(tmp_path / "fp16")
    ext = create(f"hf:{tmp_path / 'fp16'}", precision="fp32").load()
    assert all(p.dtype == torch.float32 for p in ext.model.parameters())
    assert np.isfinite(ext.embed(speech(4000))["final"]).all()


def test_named_spec_with_weights_dir_and_architecture_checks(tmp_path):
    cfg = tiny_config()
    cfg.update({"d_model": 384, "encoder_layers": 4, "encoder_attention_heads": 6, "encoder_ffn_dim": 64})
    folder = tmp_path / "tiny-arch"
    save_full_model(folder, cfg)
    ext = create("whisper-tiny", weights=folder, precision="fp32").load()
    out = ext.embed(speech(8000))
    assert list(out) == list(get_spec("whisper-tiny").layers) and out["final"].shape == (25, 384)
    assert ext.weights_revision().startswith("sha256:") and ext.weights_present()
    assert ext.runtime_config()["mode"] == "padded"
    with pytest.raises(BadValueError, match=r"d_model.*512.*hf:"):
        create("whisper-base", weights=folder).load()
    prep = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**prep, "feature_size": 128}))
    with pytest.raises(BadValueError, match="feature_size"):
        create("whisper-tiny", weights=folder).load()


def test_hf_prefix_takes_a_cached_whisper_id(tmp_path, monkeypatch):
    """hf:<id> of a Whisper-family model in the Hugging Face cache: spec from its config.json,
    weights from the snapshot, the snapshot's commit as the revision."""
    import huggingface_hub

    from embedprobe.extractors import weights as WT

    snap = tmp_path / "models--org--whisper-x" / "snapshots" / "0123abcd"
    save_full_model(snap)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, name, revision=None: str(snap / name) if repo == "org/whisper-x" else None)
    monkeypatch.setattr(WT, "hf_cached_snapshot",
                        lambda repo, revision=None, required=(): snap if repo == "org/whisper-x" else None)
    spec = get_spec("hf:org/whisper-x")
    assert (spec.family, spec.weights_id, spec.weights_revision, spec.dim) == ("whisper", "org/whisper-x", "main", 32)
    ext = create("hf:org/whisper-x", precision="fp32")
    assert ext.weights_present()
    ext.load()
    assert ext.weights_revision() == "0123abcd" and ext.embed(speech(3000))["final"].shape == (10, 32)


def test_missing_hf_whisper_config_is_one_sentence():
    """(the named sizes: test_hf_ssl's missing-checkpoint test)"""
    with pytest.raises(MissingWeightsError, match="hf download openai/whisper-small"):
        get_spec("hf:openai/whisper-small")


@pytest.mark.parametrize("name", ["whisper-tiny", "whisper-tiny-native"])
def test_long_clip_in_30s_windows(name):
    """> 30 s, not a multiple of the hop: independent 30 s windows from the start; through the
    pipeline's chunks (7 s decode pieces, 30 s chunks) the frames equal the one-piece embedding."""
    entry_ext = WhisperExtractor.for_tests(get_spec(name))
    ext = WhisperExtractor(entry_ext.spec, precision="fp32", _random_config=entry_ext._random_config).load()
    n = 2 * W.WINDOW + 12345
    wav = speech(n, seed=7)
    out = ext.embed(wav)
    assert out["final"].shape[0] == ext.n_frames(n) == 3000 + -(-12345 // 320)
    for k, (s, e) in enumerate(W.windows(n)):
        part = ext.embed(wav[s:e])
        np.testing.assert_allclose(out["final"][1500 * k:1500 * k + len(part["final"])], part["final"], atol=1e-5)
    cfg = audio.AudioConfig(sample_rate=SR, max_chunk_s=30.0)
    pieces = [wav[i:i + 7 * SR] for i in range(0, n, 7 * SR)]
    res = ClipEmbedder(ext, ("layer01", "final"), ("final",), 1, cfg).embed_pieces(pieces)
    np.testing.assert_allclose(res.layers["final"].frames, out["final"], atol=1e-5)
    np.testing.assert_allclose(res.layers["layer01"].mean, out["layer01"].mean(0), atol=1e-5)
    np.testing.assert_allclose(res.layers["layer01"].std, out["layer01"].std(0), atol=1e-4)


def test_padded_windows_batch_like_one_by_one():
    tiny = WhisperExtractor.for_tests(get_spec("whisper-base"))
    ext = WhisperExtractor(tiny.spec, precision="fp32", batch_windows=3, _random_config=tiny._random_config)
    wavs = [speech(n, seed=n) for n in (5000, W.WINDOW + 999, 20000)]
    for got, wav in zip(ext.embed_batch(wavs), wavs, strict=True):
        one = ext.embed(wav)
        for name in one:
            np.testing.assert_allclose(got[name], one[name], rtol=1e-4, atol=1e-4)
    assert ext.runtime_config()["batch_windows"] == 3


def test_fast_path_fuses_attention_at_every_precision():
    """rewrites.prepare fuses q/k/v (recorded in runtime_config) in fp32 and in the checked fast precision."""
    for precision in ("fp32", "auto"):
        tiny = WhisperExtractor.for_tests(get_spec("whisper-small"))
        ext = WhisperExtractor(tiny.spec, precision=precision, _random_config=tiny._random_config).load()
        assert ext.runtime_config()["attention"] == "fused-qkv-sdpa", precision
        assert not any(name.endswith(("q_proj", "k_proj", "v_proj")) for name, _ in ext.model.named_modules())
        assert np.isfinite(ext.embed(speech(5000))["final"]).all()

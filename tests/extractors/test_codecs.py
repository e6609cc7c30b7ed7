"""EnCodec / DAC latents: agreement with the models' own encode(), hop arithmetic, weights checks."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from embedprobe.errors import BadValueError, MissingWeightsError  # noqa: E402
from embedprobe.extractors import create, get_spec  # noqa: E402
from embedprobe.extractors.codecs import DAC_44K, ENCODEC_24K, CodecLatent  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module", params=[ENCODEC_24K, DAC_44K], ids=lambda s: s.name)
def codec(request):
    return CodecLatent.for_tests(request.param).load()


def test_specs():
    enc, dac = get_spec("encodec-24k"), get_spec("dac-44k")
    assert (enc.sample_rate, enc.dim, enc.hop_s) == (24000, 128, 320 / 24000)
    assert (dac.sample_rate, dac.dim, dac.hop_s) == (44100, 1024, 512 / 44100)
    assert enc.layers == dac.layers == ("latent", "quantized")
    assert enc.weights_id == "facebook/encodec_24khz" and dac.weights_id == "descript/dac_44khz"


def test_frames_follow_the_hop_exactly(codec):
    hop = int(codec.spec.param("hop"))
    for n in (1, hop - 1, hop, hop + 1, 7 * hop + 3):
        wav = (0.1 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
        out = codec.embed(wav)
        assert out["latent"].shape == out["quantized"].shape == (-(-n // hop), codec.spec.dim)


def test_latent_and_quantized_match_the_official_encode(codec):
    """``latent`` is the encoder output before RVQ; ``quantized`` decodes every codebook."""
    model, sr = codec.model, codec.spec.sample_rate
    wav = (0.1 * np.random.default_rng(0).standard_normal(sr + 123)).astype(np.float32)
    out = codec.embed(wav)
    with torch.inference_mode():
        if codec.spec.param("kind") == "encodec":
            x = torch.from_numpy(wav)[None, None]
            latent = model.encoder(x)
            enc = model.encode(x, bandwidth=max(model.config.target_bandwidths))
            quantized = model.quantizer.decode(enc.audio_codes[0].transpose(0, 1))
        else:
            fe = transformers.DacFeatureExtractor(sampling_rate=sr, hop_length=512)
            x = fe(wav, sampling_rate=sr, return_tensors="pt")["input_values"]
            enc = model.encode(x)
            latent, quantized = model.encoder(x), enc.quantized_representation
    assert np.abs(out["quantized"]).max() > 0 and np.abs(out["latent"]).max() > 0
    np.testing.assert_allclose(out["latent"], latent[0].T.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["quantized"], quantized[0].T.numpy(), rtol=1e-5, atol=1e-6)


def test_default_precision_is_fp32(codec):
    assert codec.precision == "fp32" and codec.runtime_config()["revision"] == "random-init"


def test_checkpoint_of_another_size_is_refused(tmp_path):
    cfg = transformers.EncodecConfig(num_filters=4, hidden_size=8, codebook_size=16)
    transformers.EncodecModel(cfg).save_pretrained(tmp_path)
    with pytest.raises(BadValueError, match=r"hidden_size.*\(8, 24000, 320\).*\(128, 24000, 320\)"):
        create("encodec-24k", weights=tmp_path).load()


def test_missing_weights_offline():
    ext = create("dac-44k")
    assert ext.weights_present() is False
    with pytest.raises(MissingWeightsError, match="descript/dac_44khz"):
        ext.load()

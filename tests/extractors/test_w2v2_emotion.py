"""audEERING's w2v2-msp-dim: the model card's reference code, the official checkpoint layout, the ``adv`` layer."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch import nn  # noqa: E402
from transformers.models.wav2vec2.modeling_wav2vec2 import (  # noqa: E402
    Wav2Vec2Model,
    Wav2Vec2PreTrainedModel,
)

from embedprobe.audio.decode import AudioConfig  # noqa: E402
from embedprobe.errors import BadValueError  # noqa: E402
from embedprobe.extractors import EXTRACTORS  # noqa: E402
from embedprobe.extractors.registry import describe_extractor  # noqa: E402
from embedprobe.extractors.w2v2_emotion import ADV_LABELS, W2V2_MSP_DIM, EmotionEncoder  # noqa: E402
from embedprobe.pipeline.clip_embedder import ClipEmbedder  # noqa: E402

torch.set_num_threads(1)


# -- the model card's code (huggingface.co/audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim) --
class RegressionHead(nn.Module):
    r"""Classification head."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.final_dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, features, **kwargs):
        x = features
        x = self.dropout(x)
        x = self.dense(x)
        x = torch.tanh(x)
        x = self.dropout(x)
        x = self.out_proj(x)
        return x


class EmotionModel(Wav2Vec2PreTrainedModel):
    r"""Speech emotion classifier."""

    def __init__(self, config):
        super().__init__(config)
        self.config = config
        self.wav2vec2 = Wav2Vec2Model(config)
        self.classifier = RegressionHead(config)
        self.post_init()  # the card: self.init_weights(), which transformers >= 5 splits off post_init

    def forward(self, input_values):
        outputs = self.wav2vec2(input_values)
        hidden_states = outputs[0]
        hidden_states = torch.mean(hidden_states, dim=1)
        logits = self.classifier(hidden_states)
        return hidden_states, logits


def process_func(model, processor, x: np.ndarray, sampling_rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """The card's ``process_func``: normalise with the processor, run, return (pooled states, logits)."""
    y = processor(x, sampling_rate=sampling_rate)["input_values"][0]
    y = torch.from_numpy(np.asarray(y, np.float32).reshape(1, -1))
    with torch.no_grad():
        pooled, logits = model(y)
    return pooled.numpy(), logits.numpy()
# -----------------------------------------------------------------------------------------------


def noise(n: int, seed: int = 0, gain: float = 0.1) -> np.ndarray:
    return (gain * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def official_folder(tmp_path, seed: int = 1):
    """A tiny random checkpoint saved by the model card's class, with the official preprocessor config."""
    tiny = EmotionEncoder.for_tests(W2V2_MSP_DIM)
    torch.manual_seed(seed)
    model = EmotionModel(tiny._random_config).eval()
    with torch.no_grad():  # non-zero biases: the head's zero init would hide a bias left out
        for p in model.classifier.parameters():
            p.add_(0.1 * torch.randn_like(p))
    folder = tmp_path / "msp-dim"
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
         "padding_side": "right", "padding_value": 0.0, "return_attention_mask": True, "sampling_rate": 16000}))
    return folder, model, tiny.spec


def test_spec_layers_dims_and_licence():
    spec = EXTRACTORS.get("w2v2-msp-dim").spec
    assert spec.weights_id == "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim"
    assert spec.layers[0] == "layer00" and spec.layers[-3:] == ("layer12", "final", "adv")
    assert spec.dim == 1024 and spec.dim_of("final") == 1024 and spec.dim_of("adv") == 3
    assert spec.clip_layers == ("adv",) and spec.param("adv_labels") == ADV_LABELS
    assert spec.param("do_normalize") and spec.hop_s == 0.02
    row = describe_extractor(spec.name, EXTRACTORS.get(spec.name))
    assert row["licence"] == "CC-BY-NC-SA-4.0" and row["dim"] == "1024 (adv: 3)"


def test_official_keys_load_without_missing_or_unexpected(tmp_path):
    folder, ref, spec = official_folder(tmp_path)
    ext = EmotionEncoder(spec, weights=folder, precision="fp32").load()
    want = ref.state_dict()  # what save_pretrained wrote: the official key names
    got = {f"wav2vec2.{k}": v for k, v in ext.model.state_dict().items()}
    got |= {f"classifier.{k}": v for k, v in ext._head.state_dict().items()}
    pos = "wav2vec2.encoder.pos_conv_embed.conv."  # its weight norm is folded on load (rewrites.bake_weight_norm)
    baked = {pos + "parametrizations.weight.original0", pos + "parametrizations.weight.original1"}
    assert baked <= set(want)
    assert sorted(got) == sorted((set(want) - baked) | {pos + "weight"})
    torch.testing.assert_close(got.pop(pos + "weight"), ref.wav2vec2.encoder.pos_conv_embed.conv.weight.detach())
    want = {k: v for k, v in want.items() if k not in baked}
    assert any(k.startswith("classifier.dense.") for k in got) and "classifier.out_proj.weight" in got
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    assert ext.weights_revision().startswith("sha256:")


def test_adv_equals_the_model_card_reference(tmp_path):
    """Same random weights: our adv / final mean = the card's logits / pooled states (fp32)."""
    folder, ref, spec = official_folder(tmp_path)
    processor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder)
    ext = EmotionEncoder(spec, weights=folder, precision="fp32").load()
    for n in (16000, 23457):
        wav = noise(n, seed=n)
        pooled, logits = process_func(ref, processor, wav)
        out = ext.embed(wav)
        assert out["adv"].shape == (1, 3) and out["adv"].dtype == np.float32
        np.testing.assert_allclose(out["final"].mean(0), pooled[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["adv"][0], logits[0], rtol=1e-4, atol=1e-6)
        assert np.abs(logits).max() > 1e-3  # the test compares real numbers, not zeros


def test_legacy_weight_norm_names_load(tmp_path):
    """The official pytorch_model.bin (2022) names the positional conv weight norm weight_g / weight_v."""
    from safetensors.torch import load_file

    folder, ref, spec = official_folder(tmp_path)
    sd = load_file(str(folder / "model.safetensors"))
    renamed = {k.replace("parametrizations.weight.original0", "weight_g")
                .replace("parametrizations.weight.original1", "weight_v"): v for k, v in sd.items()}
    assert any(k.endswith("weight_g") for k in renamed)
    (folder / "model.safetensors").unlink()
    torch.save(renamed, folder / "pytorch_model.bin")
    ext = EmotionEncoder(spec, weights=folder, precision="fp32").load()
    wav = noise(16000, 3)
    np.testing.assert_allclose(ext.embed(wav)["adv"][0], process_func(ref, transformers.Wav2Vec2FeatureExtractor(
        do_normalize=True), wav)[1][0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("change", ["drop-head-bias", "extra-key"])
def test_other_layouts_are_refused(tmp_path, change):
    from safetensors.torch import load_file, save_file

    folder, _, spec = official_folder(tmp_path)
    sd = load_file(str(folder / "model.safetensors"))
    if change == "drop-head-bias":
        del sd["classifier.out_proj.bias"]
    else:
        sd["classifier.extra.weight"] = torch.zeros(2)
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(BadValueError, match="missing_keys" if change == "drop-head-bias" else "unexpected_keys"):
        EmotionEncoder(spec, weights=folder, precision="fp32").load()


def test_label_order_is_checked(tmp_path):
    folder, _, spec = official_folder(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["id2label"] = {"0": "valence", "1": "arousal", "2": "dominance"}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BadValueError, match="arousal"):
        EmotionEncoder(spec, weights=folder, precision="fp32").load()


def test_chunked_adv_is_the_head_over_the_whole_clip_mean():
    """A long clip in chunks: adv = head(mean of final over all the clip's frames), not a mean of heads."""
    ext = EmotionEncoder.for_tests(W2V2_MSP_DIM)
    ext.requested_precision = "fp32"
    ext.load()
    with torch.no_grad():
        for p in ext._head.parameters():  # a head far from linear: averaging chunk heads would differ
            p.mul_(40.0)
    wav = noise(16000 * 7 + 123, 5)
    cfg = AudioConfig(sample_rate=16000, max_chunk_s=2.3)
    cs = cfg.chunk_samples
    pieces = [wav[i:i + cs] for i in range(0, len(wav), cs)]
    layers = ("final", "adv")
    got = ClipEmbedder(ext, layers, layers, 1, cfg).embed_pieces(pieces)
    head = ext.clip_outputs({"final": got.layers["final"].mean})["adv"]
    np.testing.assert_array_equal(got.layers["adv"].mean, head)
    assert got.layers["adv"].frames.shape == (1, 3) and not got.layers["adv"].std.any()
    assert len(got.layers["final"].frames) == ext.n_frames(len(wav))
    whole = ext.embed(wav)["adv"][0]
    chunk_heads = np.mean([ext.embed(p)["adv"][0] for p in pieces], axis=0)
    err, naive_err = np.abs(got.layers["adv"].mean - whole).max(), np.abs(chunk_heads - whole).max()
    assert err < 0.05 * np.abs(whole).max() and err < naive_err / 5, (err, naive_err)
    # adv alone (final not asked for): still computed from final's whole-clip mean
    alone = ClipEmbedder(ext, ("adv",), (), 1, cfg).embed_pieces(pieces)
    np.testing.assert_allclose(alone.layers["adv"].mean, head, rtol=1e-6, atol=1e-7)


@pytest.mark.filterwarnings("ignore:The .* part of fold")  # a tiny corpus: one clip per class there
def test_extract_and_probe_on_the_adv_layer(tmp_path):
    """The cache stores adv with its own dim (3) beside 32-d layers; a probe trains on --layer adv."""
    from embedprobe.cache import open_cache
    from embedprobe.corpora.synthetic import write_corpus
    from embedprobe.pipeline.extract import ExtractConfig, extract
    from embedprobe.pipeline.probe import ProbeConfig, probe

    root = write_corpus("emodb", tmp_path / "emodb", n_speakers=4, clips_per_class=1, seed=1)
    ext = EmotionEncoder.for_tests(W2V2_MSP_DIM)
    ext.requested_precision = "fp32"  # bf16 kernels at these tiny widths are slow, and beside the point
    cfg = ExtractConfig(model="w2v2-msp-dim", corpus="emodb", root=str(root), out=str(tmp_path / "cache"),
                        layers=("final", "adv"), frames=True)
    s = extract(cfg, progress=False, extractor=ext)
    assert s.complete and s.n_errors == 0
    with open_cache(s.cache) as c:
        assert c.dims == {"final": 32, "adv": 3}
        assert c.default_layer == "final"  # no --layer: the last hidden layer, not the 3-d head output
        adv, final = c.pooled("adv"), c.pooled("final")
        assert adv.shape == (c.n_clips, 3) and not c.pooled("adv", "std").any()
        assert [len(f) for f in c.frames("adv", c.ids[:3])] == [1, 1, 1]
        np.testing.assert_allclose(adv, np.stack([ext.clip_outputs({"final": f})["adv"] for f in final]),
                                   rtol=1e-5, atol=1e-6)
    path = probe(ProbeConfig(model="w2v2-msp-dim", cache_dir=str(tmp_path / "cache"), train=("emodb",),
                             layer="adv", probe="linear", seeds=(0,), n_bootstrap=0, max_folds=1,
                             probe_params={"max_steps": 50, "min_steps": 0}, baselines=False,
                             out=str(tmp_path / "results"), allow_degenerate=True), progress=False)
    rec = json.loads(path.read_text())
    assert rec["config"]["layer"] == "adv"
    cell = rec["cells"][0]
    assert 0 <= cell["metrics"]["acc"]["mean"] <= 1

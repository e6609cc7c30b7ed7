"""The load-time precision check: the mechanism, with wrong kernels injected (holds on every CPU kind).

No test here depends on a real kernel being right or wrong on this CPU: a module that is wrong
only under a fast precision is planted in a tiny random-init WavLM-Large, and the check must
find it, keep it in fp32, record it and say so; an error that no module explains must send the
whole model back to fp32.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from embedprobe.extractors import precision_check  # noqa: E402
from embedprobe.extractors.hf_ssl import WAVLM_LARGE, HFSpeechEncoder  # noqa: E402
from embedprobe.extractors.precision import cosine  # noqa: E402

TINY = HFSpeechEncoder.for_tests(WAVLM_LARGE)


def _garbage_when_fast(forward):
    """Wrap a forward so it returns noise of the right shape whenever it computes in low precision."""

    def wrong(*args, **kwargs):
        out = forward(*args, **kwargs)
        low = torch.is_autocast_enabled("cpu") or any(
            torch.is_tensor(a) and a.dtype in (torch.bfloat16, torch.float16) for a in args)
        if low:
            gen = torch.Generator().manual_seed(0)
            return torch.randn(out.shape, generator=gen).to(out.dtype)
        return out

    return wrong


class WrongPosConv(HFSpeechEncoder):
    """WavLM whose grouped positional convolution is wrong in bf16 (like oneDNN's AMX kernel)."""

    def _load(self):
        super()._load()
        conv = self.model.encoder.pos_conv_embed.conv
        conv.forward = _garbage_when_fast(conv.forward)


class WrongNorm(HFSpeechEncoder):
    """WavLM whose final layer norm (not a screened module type) is wrong in bf16."""

    def _load(self):
        super()._load()
        norm = self.model.encoder.layer_norm
        norm.forward = _garbage_when_fast(norm.forward)


def _note(ext):
    return precision_check.fallback_note(ext.spec.name, ext.runtime_config()["precision_check"])


def _make(cls, precision="bf16"):
    return cls(TINY.spec, precision=precision, _random_config=TINY._random_config)


def _wav(seed=4, n=24000):
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def test_module_wrong_in_bf16_is_kept_in_fp32_and_recorded():
    ext = _make(WrongPosConv)
    assert ext.precision == "bf16"  # the rest of the model keeps the fast path
    report = ext.runtime_config()["precision_check"]
    assert report["decision"] == "bf16"
    assert list(report["fp32_modules"]) == ["encoder.pos_conv_embed.conv"], report
    assert report["fp32_modules"]["encoder.pos_conv_embed.conv"] < 0.5
    assert report["min_layer_cosine"] >= precision_check.THRESHOLD
    assert report["modules_screened"] > 10
    # its weights stay fp32 and it really computes in fp32: outputs match the fp32 model
    assert ext.model.encoder.pos_conv_embed.conv.weight.dtype == torch.float32
    ref = _make(HFSpeechEncoder, precision="fp32")
    a, b = ext.embed(_wav()), ref.embed(_wav())
    assert min(cosine(a[k], b[k]) for k in a) >= precision_check.THRESHOLD
    note = _note(ext)
    assert note is not None and "encoder.pos_conv_embed.conv" in note and "fp32" in note


def test_error_no_module_explains_sends_the_whole_model_to_fp32():
    ext = _make(WrongNorm)
    assert ext.precision == "fp32"
    rc = ext.runtime_config()
    report = rc["precision_check"]
    assert report["decision"] == "fp32" and report["candidate"] == "bf16"
    assert report["min_layer_cosine"] < precision_check.THRESHOLD
    assert rc["precision"] == "fp32" and rc["weights_dtype"] == "float32"
    ref = _make(HFSpeechEncoder, precision="fp32")
    a, b = ext.embed(_wav()), ref.embed(_wav())
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-4)
    assert "whole model runs in fp32" in _note(ext)


def test_fallback_survives_pickling_and_unload():
    """A worker replica gets the decided precision without repeating the failed candidate."""
    import pickle

    ext = _make(WrongNorm)
    assert ext.precision == "fp32"
    clone = pickle.loads(pickle.dumps(ext))
    assert not clone.loaded and clone.precision == "fp32"


def test_clean_model_keeps_the_candidate_and_the_old_runtime_record():
    """Nothing wrong: the fast path holds, and the runtime record is what it was before the check."""
    ext = _make(HFSpeechEncoder)
    rc = ext.runtime_config()
    report = rc.pop("precision_check")
    assert report["decision"] == "bf16" and report["fp32_modules"] == {}
    assert set(report["layer_cosines"]) == set(ext.spec.layers)
    assert rc["precision"] == "bf16" and rc["weight_norms_baked"] == 1
    assert rc["weights_dtype"].startswith("bfloat16") and rc["gemm_feature_encoder"] == 1
    assert "fp32_modules" not in rc
    assert _note(ext) is None


def test_unchecked_precisions_run_no_check():
    assert "precision_check" not in _make(HFSpeechEncoder, precision="fp32").runtime_config()
    off = _make(WrongPosConv)
    off.verify_precision = False
    assert "precision_check" not in off.runtime_config()


def test_accuracy_at_real_checkpoint_group_shapes():
    """auto precision against fp32 at WavLM's real channels per positional-conv group (64).

    Holds on every CPU by construction (a kernel wrong at these shapes is caught at load), and
    checks the whole verified path on another signal than the probe signal.
    """
    cfg = HFSpeechEncoder.tiny_config(WAVLM_LARGE, n_layers=2, dim=128)
    cfg.num_conv_pos_embedding_groups = 2  # 64 channels per group, as 1024 / 16 in the checkpoint
    from dataclasses import replace

    from embedprobe.extractors.hf_ssl import layer_names

    spec = replace(WAVLM_LARGE, dim=128, layers=layer_names(2, True))
    fast = HFSpeechEncoder(spec, precision="auto", _random_config=cfg)
    ref = HFSpeechEncoder(spec, precision="fp32", _random_config=cfg)
    a, b = fast.embed(_wav(7, 40000)), ref.embed(_wav(7, 40000))
    assert min(cosine(a[k], b[k]) for k in a) >= precision_check.THRESHOLD


def test_screen_flags_only_the_wrong_module():
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Conv1d(16, 16, 3, padding=1))
    net[1].forward = _garbage_when_fast(net[1].forward)
    x = torch.randn(1, 5, 8)
    with torch.inference_mode(), precision_check.ModuleScreen(net, torch.bfloat16, "cpu") as screen:
        h = net[0](x).transpose(1, 2)
        net[1](h)
    assert list(screen.culprits) == ["1"] and screen.screened == 2
    assert screen.modules() == [net[1]]


def test_agreement_edge_cases():
    assert precision_check.agreement([0, 0], [0, 0]) == 1.0
    assert precision_check.agreement([0, 0], [1, 0]) == 0.0
    assert precision_check.agreement([np.nan, 1], [1, 1]) == 0.0
    assert precision_check.agreement([1, 2], [1, 2, 3]) == 0.0
    assert precision_check.agreement([1, 0], [0, 1]) == 0.0


def test_simulated_amx_grouped_conv_kernel_is_caught(monkeypatch):
    """The bug as seen on AMX Xeons: bf16 grouped conv1d wrong at <= 8 input channels per group.

    Planted at the kernel level (every ``nn.Conv1d``), so the check has to find which module
    trips it from the model's real shapes; the test config has 8 channels per group.
    """
    stock = torch.nn.Conv1d._conv_forward

    def amx_like(self, x, weight, bias):
        out = stock(self, x, weight, bias)
        in_bf16 = x.dtype == torch.bfloat16 or torch.is_autocast_enabled("cpu")  # the aten op runs in bf16
        if self.groups > 1 and self.in_channels // self.groups <= 8 and in_bf16:
            return torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv1d, "_conv_forward", amx_like)
    assert TINY._random_config.hidden_size // TINY._random_config.num_conv_pos_embedding_groups <= 8
    ext = _make(HFSpeechEncoder)
    report = ext.runtime_config()["precision_check"]
    assert ext.precision == "bf16" and list(report["fp32_modules"]) == ["encoder.pos_conv_embed.conv"]
    ref = _make(HFSpeechEncoder, precision="fp32")
    a, b = ext.embed(_wav()), ref.embed(_wav())
    assert min(cosine(a[k], b[k]) for k in a) >= precision_check.THRESHOLD


def test_extraction_records_the_check_and_says_what_fell_back(tmp_path):
    from embedprobe.cache import open_cache
    from embedprobe.corpora.synthetic import write_corpus
    from embedprobe.pipeline.extract import ExtractConfig, extract

    root = write_corpus("emodb", tmp_path / "emodb", n_speakers=2, clips_per_class=1, duration_s=(1.0, 1.5))
    cfg = ExtractConfig(model="wavlm-large", corpus="emodb", root=str(root), out=str(tmp_path / "cache"),
                        precision="bf16", procs=1)
    summary = extract(cfg, progress=False, extractor=_make(WrongPosConv))
    assert summary.n_errors == 0 and summary.complete
    assert summary.precision_note and "encoder.pos_conv_embed.conv" in summary.precision_note
    with open_cache(summary.cache) as reader:
        runtime = reader.provenance["runtime"]
        identity_runtime = reader.identity["runtime"]
    assert runtime["precision_check"]["fp32_modules"].keys() == {"encoder.pos_conv_embed.conv"}
    assert "precision_check" not in identity_runtime  # which kernels fail depends on the machine
    assert identity_runtime["precision"] == "bf16"


def test_agreement_is_the_cosine():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 50)), rng.standard_normal((4, 50))
    b[0] = 2.0 * a[0]
    expected = float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))
    assert precision_check.agreement(a, b) == pytest.approx(expected, abs=1e-12)
    assert precision_check.agreement(a[0], b[0]) == pytest.approx(1.0, abs=1e-12)
    assert precision_check.agreement(a[0], -b[0]) == pytest.approx(-1.0, abs=1e-12)


def test_screen_casts_are_reused_by_the_fast_path_while_current():
    """The screen casts a weight once; ``prepare`` takes that cast, unless the weight changed since."""
    from embedprobe.extractors.rewrites import cast_matmul_weights

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    with torch.inference_mode(), precision_check.ModuleScreen(net, torch.bfloat16, "cpu") as screen:
        net(torch.randn(3, 8))
    casts = {key: cast for key, (_, _, cast) in screen.cast_weights.items()}
    assert set(casts) == {id(net[0]), id(net[1])}
    net[1].weight.data = net[1].weight.data.clone()  # replaced after the screen: its cast is stale
    assert cast_matmul_weights(net, torch.bfloat16, precast=screen.cast_weights) == 2
    assert net[0].weight.data_ptr() == casts[id(net[0])].data_ptr()
    assert net[1].weight.data_ptr() != casts[id(net[1])].data_ptr()
    assert net[0].weight.dtype == net[1].weight.dtype == torch.bfloat16
    assert not net[0].weight.is_inference()  # usable outside inference mode, like any weight
    assert screen.cast_seconds[1] >= 0.0


def test_check_records_its_own_time_apart_from_the_rewrites():
    report = _make(HFSpeechEncoder).runtime_config()["precision_check"]
    for key in ("seconds", "cpu_seconds", "rewrite_seconds", "rewrite_cpu_seconds"):
        assert isinstance(report[key], float) and report[key] >= 0.0, key

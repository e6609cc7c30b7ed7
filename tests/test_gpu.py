"""The CUDA path: autocast, length-bucketed padded batches with masks, pinned copies, the precision check.

Marked ``gpu``: skipped with a reason on machines without CUDA (tests/conftest.py);
``benchmarks/gpu_check.sh`` runs them on a GPU machine. Every check compares the GPU's fast
path with the CPU's fp32 result of the same random-init model.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from embedprobe.extractors import EXTRACTORS, precision_check  # noqa: E402
from embedprobe.extractors.hf_ssl import WAVLM_LARGE, HFSpeechEncoder, layer_names  # noqa: E402
from embedprobe.extractors.precision import cosine, to_device  # noqa: E402

pytestmark = pytest.mark.gpu
COS = precision_check.THRESHOLD


def _wavlm(device: str, precision: str, batch_seconds: float | None = None) -> HFSpeechEncoder:
    cfg = HFSpeechEncoder.tiny_config(WAVLM_LARGE, n_layers=2, dim=128)
    cfg.num_conv_pos_embedding_groups = 2
    spec = replace(WAVLM_LARGE, dim=128, layers=layer_names(2, True))
    return HFSpeechEncoder(spec, device=device, precision=precision, batch_seconds=batch_seconds,
                           _random_config=cfg)


def _clips(n: int = 6, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(int(rng.uniform(0.8, 3.0) * 16000)).astype(np.float32) for _ in range(n)]


def test_cuda_autocast_matches_cpu_fp32_and_records_the_check():
    gpu, cpu = _wavlm("cuda", "auto"), _wavlm("cpu", "fp32")
    assert gpu.precision in ("bf16", "fp16")
    report = gpu.runtime_config()["precision_check"]
    assert report["min_layer_cosine"] >= COS
    for wav in _clips(3):
        a, b = gpu.embed(wav), cpu.embed(wav)
        assert min(cosine(a[k], b[k]) for k in a) >= COS


def test_padded_batches_equal_one_by_one():
    """Length-bucketed padded batches with attention masks give each clip's own frames."""
    batched, single = _wavlm("cuda", "auto", batch_seconds=120.0), _wavlm("cuda", "auto", batch_seconds=0.0)
    clips = _clips(7, seed=1)
    got = batched.embed_batch(clips)
    for wav, g in zip(clips, got, strict=True):
        want = single.embed(wav)
        for k in want:
            assert g[k].shape == want[k].shape == (batched.n_frames(wav.shape[0]), 128)
            assert cosine(g[k], want[k]) >= COS


def test_pinned_copy_reaches_the_device():
    x = to_device(np.arange(10, dtype=np.float32), "cuda")
    assert x.device.type == "cuda"
    np.testing.assert_array_equal(x.cpu().numpy(), np.arange(10, dtype=np.float32))


def test_cnn14_on_cuda_matches_cpu_fp32():
    entry = EXTRACTORS.get("cnn14-16k")
    gpu = entry.cls.random_init(entry.spec, seed=0, device="cuda")
    cpu = entry.cls.random_init(entry.spec, seed=0, precision="fp32")
    for wav in _clips(2, seed=2):
        a, b = gpu.embed(wav), cpu.embed(wav)
        assert min(cosine(a[k], b[k]) for k in a) >= COS


def test_extraction_on_cuda(tmp_path):
    from embedprobe.cache import open_cache
    from embedprobe.corpora.synthetic import write_corpus
    from embedprobe.pipeline.extract import ExtractConfig, extract

    root = write_corpus("emodb", tmp_path / "emodb", n_speakers=2, clips_per_class=2)
    out = {}
    for device, precision in (("cuda", "auto"), ("cpu", "fp32")):
        cfg = ExtractConfig(model="wavlm-large", corpus="emodb", root=str(root), device=device,
                            precision=precision, out=str(tmp_path / device), procs=1)
        summary = extract(cfg, progress=False, extractor=_wavlm(device, precision, 120.0))
        assert summary.complete and summary.n_errors == 0
        with open_cache(summary.cache) as reader:
            out[device] = {layer: reader.pooled(layer) for layer in reader.layers}
            ids = reader.ids
    for layer, values in out["cpu"].items():
        for i in range(len(ids)):
            assert cosine(out["cuda"][layer][i], values[i]) >= COS

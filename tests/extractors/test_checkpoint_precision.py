"""The fast path of the checkpoint families (CNN14, VGGish, MS-CLAP 2023): bf16 vs fp32, fp32 front ends, GEMM convs.

Full-size random-init networks (the real layer widths, so the same kernels run as with the
official checkpoints) embed a real EmoDB clip in fp32 and in bf16; every layer must stay at
cosine >= 0.999. The golden-fixture tests of each family run in fp32 (``precision="fp32"``).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from embedprobe.errors import BadValueError  # noqa: E402
from embedprobe.extractors import create, get_spec  # noqa: E402
from embedprobe.extractors.cnn14 import Cnn14Extractor  # noqa: E402
from embedprobe.extractors.conv_gemm import use_matmul_convs  # noqa: E402
from embedprobe.extractors.msclap import ClapAudioExtractor  # noqa: E402
from embedprobe.extractors.precision import autocast, cosine, cpu_bf16_supported, resolve_precision  # noqa: E402
from embedprobe.extractors.vggish import VGGishExtractor  # noqa: E402

torch.set_num_threads(1)

FAMILIES = {"cnn14-16k": Cnn14Extractor, "cnn14-16k-frames": Cnn14Extractor,
            "vggish": VGGishExtractor, "clap-2023": ClapAudioExtractor}
NO_BF16 = "this CPU has no native bf16 (AVX-512 BF16 / AMX): auto runs fp32 here"


@pytest.fixture(scope="module")
def speech(emodb_root):
    """About 5 s of real speech: two EmoDB utterances (16 kHz) back to back."""
    import soundfile as sf

    wavs = [sf.read(emodb_root / "wav" / f"{name}.wav", dtype="float32")[0]
            for name in ("03a01Fa", "03a05Wa")]
    return np.concatenate(wavs)


def at_rate(wav: np.ndarray, sr: int) -> np.ndarray:
    if sr == 16000:
        return wav
    import soxr

    return soxr.resample(wav, 16000, sr).astype(np.float32)


@pytest.mark.skipif(not cpu_bf16_supported(), reason=NO_BF16)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_bf16_embeddings_stay_at_cosine_0999_to_fp32(name, speech):
    cls = FAMILIES[name]
    spec = get_spec(name)
    wav = at_rate(speech, spec.sample_rate)
    ref = cls.random_init(spec, seed=0, precision="fp32").load()
    fast = cls.random_init(spec, seed=0, precision="bf16").load()
    a, b = ref.embed(wav), fast.embed(wav)
    assert list(b) == list(spec.layers)
    for layer in spec.layers:
        assert b[layer].dtype == np.float32 and b[layer].shape == a[layer].shape
        assert not np.array_equal(a[layer], b[layer]), "bf16 must actually run in bf16"
        cos = cosine(b[layer], a[layer])
        assert cos >= 0.999, (name, layer, cos)
        for row_a, row_b in zip(a[layer], b[layer], strict=True):  # every frame, not just the whole
            assert cosine(row_b, row_a) >= 0.999, (name, layer)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_runtime_config_reports_the_precision_used(name):
    cls = FAMILIES[name]
    tiny = cls.for_tests(get_spec(name))  # default precision: auto
    assert tiny.requested_precision == "auto"
    auto = resolve_precision("auto", "cpu")
    assert tiny.precision == auto  # loads the model
    rt = tiny.runtime_config()
    assert rt["precision"] == auto and rt["device"] == "cpu"
    assert rt["weights"] == "random-init:seed=0"
    if name != "vggish":  # the STFT + mel projection never run in bf16
        assert rt["fp32_modules"] and all("extractor" in m for m in rt["fp32_modules"])
    fp32 = cls.random_init(tiny.spec, seed=0, precision="fp32")
    assert fp32.precision == "fp32" and fp32.runtime_config()["weights_dtype"] == "float32"
    with pytest.raises(BadValueError, match="precision"):
        cls(get_spec(name), precision="int8")
    with pytest.raises(BadValueError, match="fp16"):
        cls.random_init(tiny.spec, precision="fp16").load()  # CUDA only


@pytest.mark.skipif(not cpu_bf16_supported(), reason=NO_BF16)
@pytest.mark.parametrize("name", ["cnn14-16k", "clap-2023"])
def test_log_mel_front_end_stays_fp32_under_bf16(name, speech):
    """bf16 rounding of the STFT input/kernels costs ~0.15 dB on average and up to 13 dB in quiet bins."""
    cls = FAMILIES[name]
    ext = cls.random_init(cls.for_tests(get_spec(name)).spec, seed=0, precision="bf16").load()
    net = ext._net if name.startswith("cnn14") else ext._net.base.htsat
    stft = net.spectrogram_extractor.stft
    assert stft.conv_real.weight.dtype == torch.float32 == net.logmel_extractor.melW.dtype
    wav = at_rate(speech, ext.spec.sample_rate)[None, : 3 * ext.spec.sample_rate]
    x = torch.from_numpy(np.ascontiguousarray(wav))
    with torch.inference_mode():
        plain = net.logmel_extractor(net.spectrogram_extractor(x))
        with ext._inference():
            fast = net.logmel_extractor(net.spectrogram_extractor(x))
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast, plain, rtol=0, atol=0)


def test_matmul_convs_equal_direct_convolution():
    torch.manual_seed(0)
    cases = [  # (conv, input shape): small maps take the GEMM, the large one the direct conv
        (torch.nn.Conv2d(64, 48, 3, padding=1, bias=False), (2, 64, 7, 2)),
        (torch.nn.Conv2d(32, 16, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2)), (1, 32, 9, 5)),
        (torch.nn.Conv2d(8, 8, 3, padding=1), (1, 8, 64, 32)),
    ]
    for conv, shape in cases:
        conv.eval()
        x = torch.randn(shape)
        with torch.inference_mode():
            want = conv(x)
            assert use_matmul_convs(conv) == 1
            assert use_matmul_convs(conv) == 1  # idempotent
            got = conv(x)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            if cpu_bf16_supported():
                with autocast("bf16", "cpu"):
                    low = conv(x).float()
                assert cosine(low.numpy(), want.numpy()) > 0.999
    grouped = torch.nn.Conv2d(8, 8, 3, groups=2)
    assert use_matmul_convs(grouped) == 0


def test_cnn14_runs_its_last_block_as_gemm_and_keeps_fp32_equal():
    """fp32 with GEMM convs equals the stock network (the golden tests check the same at 2e-5)."""
    spec = get_spec("cnn14-16k")
    ext = Cnn14Extractor.random_init(spec, seed=0, precision="fp32").load()
    assert ext.runtime_config()["matmul_convs"] == 12
    stock = Cnn14Extractor.random_init(spec, seed=0, precision="fp32")
    stock._build(None)  # the same weights, no fast-path rewrites
    wav = np.random.default_rng(0).standard_normal(3 * 16000).astype(np.float32) * 0.1
    with torch.inference_mode():
        want = stock._net(torch.from_numpy(wav)[None])["embedding"][0].numpy()
    np.testing.assert_allclose(ext.embed(wav)["embedding"][0], want, rtol=1e-4,
                               atol=1e-5 * float(np.abs(want).max()))


def test_extract_passes_precision_to_checkpoint_families(tmp_path, emodb_root):
    from embedprobe.cache import open_cache
    from embedprobe.pipeline.extract import ExtractConfig, _create, extract

    cfg = ExtractConfig(model="cnn14-16k", corpus="manifest", root=str(tmp_path / "manifest.csv"),
                        out=str(tmp_path / "cache"), precision="fp32")
    built = _create(cfg)  # what `embedprobe extract --model cnn14-16k --precision fp32` builds
    assert isinstance(built, Cnn14Extractor) and built.requested_precision == "fp32"
    assert create("vggish", precision="bf16").requested_precision == "bf16"

    clips = {"03a01Fa": "happy", "08a01Na": "neutral", "09a01Wb": "angry"}
    rows = ["path,label,speaker"] + [f"{emodb_root / 'wav' / c}.wav,{lab},{c[:2]}" for c, lab in clips.items()]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    tiny_spec = Cnn14Extractor.for_tests(get_spec("cnn14-16k")).spec
    summary = extract(cfg, progress=False, extractor=Cnn14Extractor.random_init(tiny_spec, precision="fp32"))
    assert summary.n_errors == 0 and summary.n_new == 3
    with open_cache(summary.cache) as reader:
        runtime, recorded = reader.identity["runtime"], reader.provenance["runtime"]
    assert runtime["precision"] == "fp32" and "weights" not in runtime  # the revision identifies them
    assert recorded["weights"] == "random-init:seed=0"  # where they came from is still recorded

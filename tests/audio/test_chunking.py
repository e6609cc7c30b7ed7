"""Chunked equals whole: long clips cut by ``embedprobe.audio.chunking`` give the one-piece run's frames.

Parametrized over EVERY registered extractor (``Extractor.for_tests``: tiny random-init nets,
fp32 so that only the chunking is measured) with a chunk length that is not a multiple of the
hop: the frame count is the whole clip's hop arithmetic, every chunk's frames are aligned with
the whole run's, no tail is dropped, and frames and pooled statistics agree to the family's
stated tolerance below. ``benchmarks/chunk_agreement.py`` prints the same figures.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from golden.signals import speechlike  # tests/golden/signals.py

from embedprobe.audio import decode as audio
from embedprobe.audio.chunking import ChunkPlan
from embedprobe.audio.prefetch import Decoded
from embedprobe.errors import MissingDependencyError
from embedprobe.extractors import EXTRACTORS
from embedprobe.extractors.base import Extractor
from embedprobe.pipeline.clip_embedder import ClipEmbedder, chunked_vs_whole
from embedprobe.pipeline.pooling import Downsampler, downsample

NAMES = EXTRACTORS.names()
signal = partial(speechlike, noise=0.01)

# (family, framed) -> (frames max |diff|, pooled mean/std max |diff|, lowest cosine of the
# pooled means); differences are relative to the largest |frame value| of the whole run. Exact
# families differ by float rounding only; the others cannot be exact: global attention and group
# norm (hf_ssl), the conv front end at Phi-4's 40 s block starts, openSMILE's LLD
# post-processing (egemaps-lld), one vector per span (clip-level models).
TOLERANCE: dict[tuple[str, bool], tuple[float, float, float]] = {
    ("logmel", True): (1e-5, 1e-6, 0.9999),
    ("cnn14", True): (1e-5, 1e-6, 0.9999),
    ("vggish", True): (1e-5, 1e-6, 0.9999),
    ("clap_laion", True): (1e-5, 1e-6, 0.9999),
    ("msclap", True): (1e-5, 1e-6, 0.9999),
    ("codecs", True): (1e-5, 1e-6, 0.9999),
    ("ge2e", True): (1e-5, 1e-6, 0.9999),
    ("egemaps", True): (1e-3, 1e-5, 0.9999),
    ("hf_ssl", True): (0.05, 2e-3, 0.9999),
    ("w2v2_emotion", True): (0.05, 2e-3, 0.9999),  # hf_ssl's; adv: the head over the whole clip's mean
    ("phi4", True): (1.0, 1e-2, 0.9999),  # the first frame of each 40 s block (conv front end) only
    ("whisper", True): (1e-5, 1e-6, 0.9999),  # independent 30 s windows: chunks are whole windows
    ("emotion2vec", True): (1e-5, 1e-6, 0.9999),  # normalised over the whole clip; windows past 30 s: test_emotion2vec
    ("egemaps", False): (0.01, 0.01, 0.99),
    ("cdpam", False): (0.02, 0.02, 0.99),
    ("cnn14", False): (0.1, 0.1, 0.99),
}

_LOADED: dict[str, Extractor] = {}


def loaded(name: str) -> Extractor:
    if name not in _LOADED:
        entry = EXTRACTORS.get(name)
        ext = entry.cls.for_tests(entry.spec)
        if hasattr(ext, "requested_precision"):
            ext.requested_precision = "fp32"  # bf16 rounding would hide a misaligned frame
        try:
            ext.load()
        except MissingDependencyError as e:
            pytest.skip(str(e))
        _LOADED[name] = ext
    return _LOADED[name]


def chunk_s(ext: Extractor) -> float:
    """2.3 s, or 0.63 windows for the long-window models: never a multiple of the hop.

    A model that embeds its own independent blocks (Phi-4: 40 s) gets 1.3 blocks, which the
    plan rounds to one block.
    """
    hop = ext.spec.hop_s
    if ext.chunk_block_s:
        return 1.3 * ext.chunk_block_s
    return 2.3 if hop is None or hop < 1 else 0.63 * hop


@pytest.mark.parametrize("tail", [0.3, 0.6], ids=["small-tail-merged", "short-last-chunk"])
@pytest.mark.parametrize("name", NAMES)
def test_chunked_equals_whole(name: str, tail: float) -> None:
    ext = loaded(name)
    spec = ext.spec
    sr, c = spec.sample_rate, chunk_s(ext)
    effective = ChunkPlan.for_extractor(ext, round(c * sr)).chunk  # a block model's: whole blocks
    n = round((2 + tail) * effective) + 37
    got = chunked_vs_whole(ext, signal(n / sr, sr, seed=1), c)
    assert got["spans"] == (2 if tail < 0.5 else 3), got
    assert got["frames_chunked"] == got["frames_whole"] == got["n_frames"] == ext.n_frames(n), got
    assert got["max_frame_offset"] == 0, got
    key = (spec.family, spec.hop_s is not None)
    assert key in TOLERANCE, f"state the chunked-vs-whole tolerance of family {key} in TOLERANCE"
    frames_tol, pooled_tol, min_cos = TOLERANCE[key]
    assert got["frames_max_rel"] <= frames_tol, got
    assert got["mean_max_rel"] <= pooled_tol and got["std_max_rel"] <= pooled_tol, got
    assert got["mean_cos"] >= min_cos, got


@pytest.mark.parametrize("name", ["logmel-128", "egemaps"])
def test_no_tail_is_dropped(name: str) -> None:
    """The issue's case: 37 s in 30 s chunks keeps all 37 s (frames, pooled stats, duration)."""
    ext = loaded(name)
    sr = ext.spec.sample_rate
    wav = signal(37.0, sr, seed=2)
    wav[30 * sr:] *= 4  # a loud last 7 s: pooling it or not moves the mean
    cfg = audio.AudioConfig(sample_rate=sr, max_chunk_s=30.0)
    layer = ext.spec.layers[0]
    pieces = [wav[i:i + 30 * sr] for i in range(0, len(wav), 30 * sr)]
    res = ClipEmbedder(ext, (layer,), (layer,), 1, cfg).embed_pieces(pieces)
    whole = ClipEmbedder(ext, (layer,), (layer,), 1, audio.AudioConfig(sample_rate=sr, max_chunk_s=60.0)
                         ).embed_pieces([wav])
    assert res.duration_s == pytest.approx(37.0)
    assert len(res.layers[layer].frames) == ext.n_frames(len(wav)) == len(whole.layers[layer].frames)
    scale = np.abs(whole.layers[layer].frames).max()
    tol = 1e-6 if ext.spec.hop_s is not None else 0.02
    np.testing.assert_allclose(res.layers[layer].mean, whole.layers[layer].mean, atol=tol * scale)
    if ext.spec.hop_s is None:
        assert res.n_frames == 1  # one span: the 7 s tail joined the first 30 s
        assert not res.layers[layer].std.any()


def test_frame_hop_factor_groups_run_across_chunks() -> None:
    ext = loaded("logmel-128")
    sr = ext.spec.sample_rate
    wav = signal(7.3, sr, seed=3)
    for factor in (3, 7):
        out = {}
        for chunk in (2.3, 100.0):
            cfg = audio.AudioConfig(sample_rate=sr, max_chunk_s=chunk)
            cs = cfg.chunk_samples
            out[chunk] = ClipEmbedder(ext, ("logmel",), ("logmel",), factor, cfg).embed_pieces(
                [wav[i:i + cs] for i in range(0, len(wav), cs)]).layers["logmel"].frames
        assert len(out[2.3]) == -(-ext.n_frames(len(wav)) // factor)
        np.testing.assert_allclose(out[2.3], out[100.0], rtol=1e-6, atol=1e-5)


# -- the plan itself ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 9, 10, 14, 15, 23, 24, 25, 57, 101])
@pytest.mark.parametrize("piece", [1, 7, 10, 1000])
@pytest.mark.parametrize("plan", [ChunkPlan(chunk=10, left=3, right=4, hop=4, merge=5),
                                  ChunkPlan(chunk=10, hop=2, merge=5, align=10)],  # blocks, no context
                         ids=["context", "blocks"])
def test_plan_covers_the_clip_once(n: int, piece: int, plan: ChunkPlan) -> None:
    x = np.arange(n, dtype=np.float32)
    wins = list(plan.windows(x[i:i + piece] for i in range(0, n, piece)))
    assert wins[0].own_start == 0 and wins[-1].own_stop == n and wins[-1].last
    assert all(a.own_stop == b.own_start for a, b in zip(wins, wins[1:], strict=False))
    assert not any(w.last for w in wins[:-1])
    for w in wins:
        np.testing.assert_array_equal(w.wav, x[w.start:w.start + len(w.wav)])  # the clip's samples
        assert w.start % plan.hop == 0 and w.start <= max(0, w.own_start - plan.left)
        assert w.start + len(w.wav) >= min(n, w.own_stop + plan.right)
        assert 5 <= w.own_stop - w.own_start < 15 or len(wins) == 1  # spans of 0.5-1.5 chunks
    if len(wins) > 1:
        assert len(wins[-1].wav) >= max(plan.left + plan.right, plan.align + 1)  # full context
    # every frame is owned by exactly one window
    owned = []
    for w in wins:
        lo, hi = plan.owned(w)
        total = w.start // plan.hop + 100  # pretend the window has plenty of frames
        owned += list(range(w.start // plan.hop + lo, w.start // plan.hop + hi if hi is not None else total))
    assert owned == list(range(len(owned)))


def test_short_tail_joins_the_previous_span() -> None:
    plan = ChunkPlan(chunk=30, merge=15)
    spans = [(w.own_start, w.own_stop) for w in plan.windows([np.zeros(37, np.float32)])]
    assert spans == [(0, 37)]
    spans = [(w.own_start, w.own_stop) for w in plan.windows([np.zeros(46, np.float32)])]
    assert spans == [(0, 30), (30, 46)]


def test_downsampler_equals_downsample() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((23, 3)).astype(np.float32)
    for factor in (1, 2, 5, 30):
        ds = Downsampler(factor)
        parts = [ds.push(x[a:b]) for a, b in ((0, 4), (4, 5), (5, 17), (17, 23))]
        rest = ds.finish()
        got = np.concatenate(parts + ([rest] if rest is not None else []))
        np.testing.assert_allclose(got, downsample(x, factor), rtol=1e-6)


def test_long_files_through_extract(tmp_path) -> None:
    """The issue's case end to end: 37 s and 67 s files, 30 s chunks, ``--frames``: every frame, in place."""
    import csv

    import soundfile as sf

    from embedprobe.cache import open_cache
    from embedprobe.pipeline.extract import ExtractConfig, extract

    sr = 16000
    (tmp_path / "a").mkdir()
    rows = []
    for i, dur in enumerate((37.0, 67.0, 3.0)):
        sf.write(tmp_path / "a" / f"c{i}.wav", signal(dur, sr, seed=i), sr, subtype="FLOAT")
        rows.append((f"a/c{i}.wav", "happy", f"s{i}"))
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "label", "speaker"), *rows])
    got = {}
    for chunk in (30.0, 100.0):
        cfg = ExtractConfig(model="logmel-128", corpus="manifest", root=str(tmp_path / "manifest.csv"),
                            out=str(tmp_path / f"out{chunk:g}"), frames=True, chunk_s=chunk, workers=1)
        s = extract(cfg, progress=False)
        assert s.n_errors == 0 and s.complete
        with open_cache(s.cache) as r:
            assert r.identity["chunking"]["context_s"] == [0.05, 0.05]
            ids = list(r.ids)
            table = r.clip_table(ids)
            got[chunk] = {i: (fr, m, d, k) for i, fr, m, d, k in zip(
                ids, r.frames("logmel", ids), r.pooled("logmel", "mean", ids), table["duration_s"],
                table["n_frames"], strict=True)}
    assert set(got[30.0]) == set(got[100.0]) and len(got[30.0]) == 3
    for cid, (fr, mean, dur, n) in got[30.0].items():
        fr2, mean2, dur2, n2 = got[100.0][cid]
        assert dur == dur2 and round(dur) in (37, 67, 3)
        assert len(fr) == len(fr2) == n == n2 == 1 + round(dur * sr) // 160  # n: from the frames
        np.testing.assert_allclose(fr, fr2, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(mean, mean2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["wavlm-large", "ge2e"])
def test_whole_clip_normalisation_reaches_every_chunk(name: str) -> None:
    """``uses_clip_stats`` models (do_normalize, GE2E's volume gain) see the whole clip's level in each chunk."""
    from embedprobe.corpora.base import Clip

    ext = loaded(name)
    assert ext.uses_clip_stats
    sr = ext.spec.sample_rate
    wav = 0.1 * signal(7.5, sr, seed=4)  # below GE2E's -30 dBFS target: it gains the clip up
    wav[: 3 * sr] *= 0.02  # a quiet start: a per-chunk level would differ from the clip's
    out = {}
    for chunk in (2.3, 100.0):
        cfg = audio.AudioConfig(sample_rate=sr, max_chunk_s=chunk)
        cs = cfg.chunk_samples
        info = audio.AudioInfo("x.wav", len(wav), sr, 1, "WAV", "FLOAT")
        decoded = Decoded("x.wav", info, (), tuple(wav[i:i + cs] for i in range(0, len(wav), cs)))
        embedder = ClipEmbedder(ext, ext.spec.layers, ext.spec.layers, 1, cfg)
        got = embedder.run(Clip("x", "x.wav", "s", "n", None), "x.wav", decoded, ["x"])
        assert not got.errors, got.errors
        out[chunk] = got.results[0].layers
    tol = 1e-5 if name == "ge2e" else 5e-3
    for layer, whole in out[100.0].items():
        scale = np.abs(whole.frames).max()
        assert len(out[2.3][layer].frames) == len(whole.frames) == ext.n_frames(len(wav))
        np.testing.assert_allclose(out[2.3][layer].frames, whole.frames, atol=tol * scale)

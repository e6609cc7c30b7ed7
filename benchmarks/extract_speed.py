"""Extraction speed: the naive loop peers write vs embedprobe's pipeline, measured side by side.

What runs, on the same clips (synthetic speech-like audio, lengths log-normal around 4.5 s,
clipped to 1-15 s, written as 16 kHz wav files to a temp folder and listed in a manifest):

(a) naive: one clip at a time, fp32, transformers defaults and the stock modules (torch's
    default thread count, i.e. every core): soundfile decode, the model's feature extractor,
    ``model(..., output_hidden_states=True)`` under ``torch.no_grad()``, mean-pool every layer
    in memory (no file writes at all). The model is loaded before the clock starts.
(b) embedprobe: ``embedprobe.pipeline.extract.extract`` on the manifest corpus with its defaults
    (one process for these models; ``--procs 2`` measures model replicas in worker processes,
    their start-up - imports and loading the checkpoint - inside the timing): decoding, the
    extractor's fast path (CPU bf16 with prepacked oneDNN linears, fused attention),
    running pooling and crash-safe HDF5 cache writes.

Models: full-size random-init WavLM-Large, saved with ``save_pretrained`` to a folder that
both (a) (``from_pretrained``) and (b) (``--weights``) load, and CNN14 16 kHz (``cnn14-16k``,
seeded random init) when registered; by ``--models``, also ``data2vec-audio-base``,
``data2vec-audio-large`` and ``w2v2-msp-dim`` (audEERING's EmotionModel; (a) is its model
card's code, the head over the mean last hidden state as ``adv``), saved alike, and the
emotion2vec encoders (``emotion2vec-base``, ``emotion2vec-plus-base``, ``emotion2vec-plus-large``:
seeded random init, (a) is FunASR's inference loop on the same fp32 network). Also any ``whisper-<size>[-native]``
(a full-size random-init encoder, see ``whisper``). Printed per model:
audio-seconds per wall-clock second
(the headline: both sides use the whole machine) and per CPU-second (the extracting process
plus its workers), the ratio b/a of each, the cosine of (b)'s cached pooled vectors to (a)'s
fp32 ones (minimum over clips and layers), and achieved GFLOP/s (FLOPs counted by
``torch.utils.flop_counter`` on the stock modules, one mean-length clip) next to matrix-multiply peaks measured
in the same run. The last line is one JSON object.

Run:
    python benchmarks/extract_speed.py              # 64 clips (several minutes on 2 cores)
    python benchmarks/extract_speed.py --clips 8    # quick
    python benchmarks/extract_speed.py --threads 1 --procs 1  # one core each side
    python benchmarks/extract_speed.py --clips 16 --repeats 3  # alternating, medians (loaded machines)
    python benchmarks/extract_speed.py --clips 8 --models emotion2vec-base,emotion2vec-plus-large
    python benchmarks/extract_speed.py --clips 8 --models whisper-small,whisper-small-native
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

SR = 16000
LABELS = ("angry", "happy", "neutral", "sad")
EMOTION2VEC = ("emotion2vec-base", "emotion2vec-plus-base", "emotion2vec-plus-large")


def make_clips(folder: Path, n: int, seed: int) -> list[Path]:
    """Speech-like clips (gliding harmonics, syllable envelope, noise) + manifest.csv."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(4.5), 0.5, n), 1.0, 15.0)
    paths, rows = [], ["path,label,speaker"]
    for i, sec in enumerate(lengths):
        t = np.arange(int(sec * SR)) / SR
        f0 = 110 + 60 * rng.random() + 30 * np.sin(2 * np.pi * rng.uniform(0.3, 1.2) * t)
        phase = 2 * np.pi * np.cumsum(f0) / SR
        voiced = sum(np.sin(k * phase) / k for k in range(1, 10))
        env = np.clip(np.sin(2 * np.pi * rng.uniform(2.5, 5.0) * t), 0, None) ** 0.5
        wav = 0.15 * env * voiced + 0.01 * rng.standard_normal(t.size)
        path = folder / f"clip{i:03d}.wav"
        sf.write(path, wav.astype(np.float32), SR, subtype="PCM_16")
        paths.append(path)
        rows.append(f"{path.name},{LABELS[i % 4]},spk{i % 8}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return paths


def matmul_peak(dtype, seconds: float = 1.0, device: str = "cpu") -> float:
    """GFLOP/s of a matrix multiply: per CPU-second (like the throughputs) on CPU, 1024 x 4096 x 1024;
    per wall-clock second on CUDA, 8192 x 8192 x 8192 (big enough to reach the tensor cores' peak)."""
    import torch

    if str(device).startswith("cuda"):
        m = 8192
        a, b = torch.randn(m, m, dtype=dtype, device=device), torch.randn(m, m, dtype=dtype, device=device)
        torch.mm(a, b)
        torch.cuda.synchronize()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(10):
                torch.mm(a, b)
            torch.cuda.synchronize()
            n += 10
        return 2 * m ** 3 * n / (time.perf_counter() - t0) / 1e9
    a, b = torch.randn(1024, 4096, dtype=dtype), torch.randn(4096, 1024, dtype=dtype)
    torch.mm(a, b)
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        torch.mm(a, b)
        n += 1
    return 2 * 1024 * 4096 * 1024 * n / (time.process_time() - t0) / 1e9


def gflop_per_audio_s(fn, n_samples: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(np.zeros(n_samples, np.float32) + 0.01)
    return counter.get_total_flops() / 1e9 / (n_samples / SR)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the extraction workers)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn):
    c0, w0 = cpu_seconds(), time.perf_counter()
    out = fn()
    return out, cpu_seconds() - c0, time.perf_counter() - w0


# -- models -------------------------------------------------------------------------------------
def wavlm_large_folder(work: Path) -> Path:
    """A full-size random-init WavLM-Large saved as a ``--weights`` folder (``save_pretrained``)."""
    import torch
    import transformers

    cfg = transformers.WavLMConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        conv_dim=[512] * 7, conv_bias=True, do_stable_layer_norm=True, feat_extract_norm="layer")
    folder = work / "wavlm-large-random"
    torch.manual_seed(0)
    transformers.AutoModel.from_config(cfg).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(folder)
    return folder


def wavlm_large(work: Path, device: str = "cpu"):
    """(naive per-clip function, embedprobe extractor), both on one saved random-init checkpoint."""
    import torch
    import transformers

    from embedprobe.extractors import create

    folder = wavlm_large_folder(work)
    fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder).eval().to(device)  # what peers write
    ext = create("wavlm-large", weights=str(folder), device=device)  # = embedprobe extract --weights folder

    def naive(wav: np.ndarray) -> dict[str, np.ndarray]:
        inputs = fe(wav, sampling_rate=SR, return_tensors="pt").to(device)
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True)
        pooled = {f"layer{i:02d}": h[0].mean(0).cpu().numpy() for i, h in enumerate(out.hidden_states[:-1])}
        pooled["final"] = out.last_hidden_state[0].mean(0).cpu().numpy()
        return pooled

    return naive, ext


def _saved(work: Path, name: str, model) -> Path:
    """``model`` and a normalising feature extractor saved as a ``--weights`` folder."""
    import transformers

    folder = work / f"{name}-random"
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(folder)
    return folder


def _data2vec(work: Path, device: str, name: str, large: bool):
    """Full-size random-init data2vec-audio (post-LN: hidden_states are every layer)."""
    import torch
    import transformers

    from embedprobe.extractors import create

    size = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16) if large else {}
    torch.manual_seed(0)
    folder = _saved(work, name, transformers.Data2VecAudioModel(transformers.Data2VecAudioConfig(**size)))
    fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder).eval().to(device)
    ext = create(name, weights=str(folder), device=device)

    def naive(wav: np.ndarray) -> dict[str, np.ndarray]:
        inputs = fe(wav, sampling_rate=SR, return_tensors="pt").to(device)
        with torch.no_grad():
            out = model(inputs["input_values"], output_hidden_states=True)
        return {f"layer{i:02d}": h[0].mean(0).cpu().numpy() for i, h in enumerate(out.hidden_states)}

    return naive, ext


def data2vec_audio_base(work: Path, device: str = "cpu"):
    return _data2vec(work, device, "data2vec-audio-base", large=False)


def data2vec_audio_large(work: Path, device: str = "cpu"):
    return _data2vec(work, device, "data2vec-audio-large", large=True)


def w2v2_msp_dim(work: Path, device: str = "cpu"):
    """Full-size random-init audEERING EmotionModel (12 pre-LN layers x 1024 + the regression head);
    the naive side is the model card's: every hidden state, and the head over the mean last state."""
    import torch
    import transformers

    from embedprobe.extractors import create
    from embedprobe.extractors.w2v2_emotion import ADV_LABELS, emotion_model_class

    cfg = transformers.Wav2Vec2Config(
        hidden_size=1024, num_hidden_layers=12, num_attention_heads=16, intermediate_size=4096,
        conv_dim=[512] * 7, conv_bias=True, do_stable_layer_norm=True, feat_extract_norm="layer",
        num_labels=3, id2label=dict(enumerate(ADV_LABELS)), label2id={k: i for i, k in enumerate(ADV_LABELS)})
    torch.manual_seed(0)
    folder = _saved(work, "w2v2-msp-dim", emotion_model_class()(cfg))
    fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder)
    model = emotion_model_class().from_pretrained(folder).eval().to(device)
    ext = create("w2v2-msp-dim", weights=str(folder), device=device)

    def naive(wav: np.ndarray) -> dict[str, np.ndarray]:
        inputs = fe(wav, sampling_rate=SR, return_tensors="pt").to(device)
        with torch.no_grad():
            out = model.wav2vec2(inputs["input_values"], output_hidden_states=True)
            pooled = out.last_hidden_state.mean(1)
            adv = model.classifier(pooled)
        res = {f"layer{i:02d}": h[0].mean(0).cpu().numpy() for i, h in enumerate(out.hidden_states[:-1])}
        return res | {"final": pooled[0].cpu().numpy(), "adv": adv[0].cpu().numpy()}

    return naive, ext


def cnn14_16k(work: Path, device: str = "cpu"):
    import torch

    from embedprobe.extractors import EXTRACTORS

    entry = EXTRACTORS.get("cnn14-16k")
    ext = entry.cls.random_init(entry.spec, seed=0, device=device)  # embedprobe: precision "auto"
    stock = entry.cls.random_init(entry.spec, seed=0, precision="fp32")
    stock._build(None)  # the same seeded weights, no fast-path rewrites
    net = stock._net.to(device)

    def naive(wav: np.ndarray) -> dict[str, np.ndarray]:  # panns_inference style: one clip, fp32
        with torch.no_grad():
            out = net(torch.from_numpy(wav)[None].to(device))
        return {"embedding": out["embedding"][0].cpu().numpy()}

    return naive, ext


def emotion2vec(name: str, work: Path, device: str = "cpu"):
    """FunASR-style naive loop (fp32, one clip, normalise + ``extract_features``, every block
    hooked) vs embedprobe, both on the full-size seeded random-init encoder of ``name``."""
    import torch

    from embedprobe.extractors import EXTRACTORS

    entry = EXTRACTORS.get(name)
    ext = entry.cls.random_init(entry.spec, seed=0, device=device)  # embedprobe: precision "auto"
    stock = entry.cls.random_init(entry.spec, seed=0, precision="fp32")
    stock._build(None)  # the same seeded weights, no fast-path rewrites
    net = stock._net.to(device)

    def naive(wav: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(wav)[None].to(device)
        with torch.no_grad():
            states = net(torch.nn.functional.layer_norm(x, x.shape))
        return {layer: h[0].mean(0).cpu().numpy() for layer, h in zip(entry.spec.layers, states, strict=True)}

    return naive, ext


def whisper(name: str):
    """A builder for ``whisper-<size>[-native]``: a full-size random-init encoder saved alone
    (``WhisperEncoder.save_pretrained``: the decoder is never built). Naive side: transformers'
    feature extractor (30 s padding) + ``WhisperEncoder`` in fp32, pooled over the real frames
    (the reference). FLOPs of the pipeline side are counted on its own fp32 forward (a native
    run computes far less than the padded reference)."""

    def build(work: Path, device: str = "cpu"):
        import torch
        import transformers
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        from embedprobe.extractors import create
        from embedprobe.extractors.whisper import SIZES

        size = name.removeprefix("whisper-").removesuffix("-native")
        dim, n_layers, heads, n_mels = SIZES[size]
        folder = work / f"whisper-{size}-random"
        if not folder.is_dir():
            cfg = transformers.WhisperConfig(d_model=dim, encoder_layers=n_layers, encoder_attention_heads=heads,
                                             encoder_ffn_dim=4 * dim, num_mel_bins=n_mels)
            torch.manual_seed(0)
            WhisperEncoder(cfg).save_pretrained(folder)
            transformers.WhisperFeatureExtractor(feature_size=n_mels).save_pretrained(folder)
        fe = transformers.WhisperFeatureExtractor.from_pretrained(folder)
        model = WhisperEncoder.from_pretrained(folder).eval().to(device)
        ext = create(name, weights=str(folder), device=device)

        def naive(wav: np.ndarray) -> dict[str, np.ndarray]:
            t = -(-len(wav) // 320)
            feats = fe(wav, sampling_rate=SR, return_tensors="pt").input_features.to(device)
            with torch.no_grad():
                out = model(feats, output_hidden_states=True)
            pooled = {f"layer{i:02d}": h[0, :t].mean(0).cpu().numpy() for i, h in enumerate(out.hidden_states[:-1])}
            pooled["final"] = out.last_hidden_state[0, :t].mean(0).cpu().numpy()
            return pooled

        if not name.endswith("-native"):
            return naive, ext  # (b) computes what (a) computes
        return naive, ext, create(name, weights=str(folder), device=device, precision="fp32").load().embed

    return build


def run_model(name: str, build, paths: list[Path], corpus: Path, work: Path, repeats: int = 1,
              procs: int | None = None, device: str = "cpu", threads: int | None = None) -> dict:
    """Time (a) and (b) ``repeats`` times, alternating, so that a change of machine load between
    the two phases shows up as spread instead of bias; medians are reported."""
    import soundfile as sf

    from embedprobe.cache import open_cache
    from embedprobe.pipeline.extract import ExtractConfig, extract

    naive, ext, *flops_fn = build(work, device)
    audio_s = sum(sf.info(p).duration for p in paths)
    naive(np.zeros(SR, np.float32))  # warm-up, not timed
    t_load = time.perf_counter()
    ext.load()  # weights + fast-path rewrites + the load-time precision check
    load_s = time.perf_counter() - t_load
    cuda = str(device).startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats(device)
    ext.embed(np.zeros(SR, np.float32))  # warm-up

    def loop():
        return [naive(sf.read(p, dtype="float32")[0]) for p in paths]

    cfg = ExtractConfig(model=name, corpus="manifest", root=str(corpus), out=str(work / f"cache-{name}"),
                        overwrite=True, procs=procs, device=device, threads=threads)
    runs_a, runs_b = [], []
    for _ in range(max(1, repeats)):
        ref, cpu, wall = timed(loop)
        runs_a.append((cpu, wall))
        summary, cpu, wall = timed(lambda: extract(cfg, progress=False, extractor=ext))
        runs_b.append((cpu, wall))
    ratios = [a[1] / b[1] for a, b in zip(runs_a, runs_b, strict=True)]  # wall-clock
    cpu_a, wall_a = (float(np.median(x)) for x in zip(*runs_a, strict=True))
    cpu_b, wall_b = (float(np.median(x)) for x in zip(*runs_b, strict=True))
    cosines = []
    with open_cache(summary.cache) as reader:
        for layer in ref[0]:
            got = reader.pooled(layer, ids=[p.stem for p in paths])
            want = np.stack([r[layer] for r in ref])
            num = (got * want).sum(1)
            cosines.append(float((num / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))).min()))
    mean_len = int(np.mean([sf.info(p).frames for p in paths]))
    gflop = gflop_per_audio_s(naive, mean_len)  # the model's FLOPs, counted on the stock fp32 modules
    gflop_b = gflop_per_audio_s(flops_fn[0], mean_len) if flops_fn else gflop  # what (b) computes
    runtime = ext.runtime_config()
    # GFLOP/s per CPU-second on CPU (the busy-machine-proof measure); per wall-clock second on a GPU
    a, b = (audio_s / wall_a, audio_s / wall_b) if cuda else (audio_s / cpu_a, audio_s / cpu_b)
    return {
        "naive_audio_s_per_s": round(audio_s / wall_a, 3), "pipeline_audio_s_per_s": round(audio_s / wall_b, 3),
        "ratio": round(wall_a / wall_b, 3),
        "naive_audio_s_per_cpu_s": round(a, 3), "pipeline_audio_s_per_cpu_s": round(b, 3),
        "ratio_cpu": round(b / a, 3),
        "naive_wall_s": round(wall_a, 1), "pipeline_wall_s": round(wall_b, 1),
        "cosine": round(min(cosines), 6), "gflop_per_audio_s": round(gflop, 2),
        "gflops_naive": round(gflop * a, 1), "gflops_pipeline": round(gflop_b * b, 1),
        "gflop_per_audio_s_pipeline": round(gflop_b, 2),
        "precision": runtime.get("precision", "fp32"), "procs": summary.procs, "n_errors": summary.n_errors,
        "ratios_per_repeat": [round(r, 3) for r in ratios],
        "load_s": round(load_s, 2),
        "precision_check_s": (runtime.get("precision_check") or {}).get("seconds"),  # its own cost
        "precision_check_rewrite_s": (runtime.get("precision_check") or {}).get("rewrite_seconds"),
        "precision_check": {k: v for k, v in (runtime.get("precision_check") or {}).items()
                            if k in ("decision", "min_layer_cosine", "fp32_modules")},
        "peak_gpu_mem_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if cuda else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=64, help="number of clips (default 64)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of the naive loop and of the pipeline (extract --threads); "
                         "default: torch's for the loop, embedprobe's own choice for the pipeline")
    ap.add_argument("--procs", type=int, default=None,
                    help="embedprobe's worker processes (default: its auto choice)")
    ap.add_argument("--models", default="wavlm-large,cnn14-16k")
    ap.add_argument("--device", default="cpu", help="torch device of both sides (cpu, cuda, cuda:N)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1,
                    help="alternate naive/pipeline timings this many times, report medians (default 1)")
    args = ap.parse_args(argv)

    import os

    os.environ.setdefault("EMBEDPROBE_NO_PROGRESS", "1")
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    from embedprobe.extractors import EXTRACTORS
    from embedprobe.extractors.precision import cpu_bf16_supported

    builders = {"wavlm-large": wavlm_large, "cnn14-16k": cnn14_16k, "data2vec-audio-base": data2vec_audio_base,
                "data2vec-audio-large": data2vec_audio_large, "w2v2-msp-dim": w2v2_msp_dim,
                **{n: partial(emotion2vec, n) for n in EMOTION2VEC}}
    builders.update({n: whisper(n) for n in EXTRACTORS.names() if n.startswith("whisper-")})
    dev = args.device
    cuda = dev.startswith("cuda")
    peaks = {"fp32": round(matmul_peak(torch.float32, device=dev), 1)}
    if cuda or cpu_bf16_supported():
        peaks["bf16"] = round(matmul_peak(torch.bfloat16, device=dev), 1)
    if cuda:
        peaks["fp16"] = round(matmul_peak(torch.float16, device=dev), 1)
    print(f"matmul peak GFLOP/s per CPU-second ({threads} thread(s)): {peaks}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="embedprobe-speed-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        corpus.mkdir()
        paths = make_clips(corpus, args.clips, args.seed)
        import soundfile as sf

        audio_s = sum(sf.info(p).duration for p in paths)
        print(f"{len(paths)} clips, {audio_s:.1f} s of audio (mean {audio_s / len(paths):.2f} s)")
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            if name not in builders:
                print(f"{name}: unknown here, expected one of {sorted(builders)}")
                continue
            if name not in EXTRACTORS:
                print(f"{name}: not registered in this checkout, skipped")
                continue
            r = run_model(name, builders[name], paths, corpus, work, args.repeats, args.procs, dev, args.threads)
            peak = peaks.get(r["precision"], peaks["fp32"])
            r["peak_fraction_naive"] = round(r["gflops_naive"] / peaks["fp32"], 3)
            r["peak_fraction_pipeline"] = round(r["gflops_pipeline"] / peak, 3)
            results[name] = r
            print(f"{name}: naive {r['naive_audio_s_per_s']:.2f} audio-s/s "
                  f"({r['naive_audio_s_per_cpu_s']:.2f} per CPU-s, {r['gflops_naive']:.0f} GFLOP/CPU-s, "
                  f"{100 * r['peak_fraction_naive']:.0f}% of fp32 peak), embedprobe "
                  f"{r['pipeline_audio_s_per_s']:.2f} audio-s/s with {r['procs']} process(es) "
                  f"({r['pipeline_audio_s_per_cpu_s']:.2f} per CPU-s, {r['gflops_pipeline']:.0f} GFLOP/CPU-s, "
                  f"{100 * r['peak_fraction_pipeline']:.0f}% of {r['precision']} peak): ratio "
                  f"{r['ratio']:.2f}x (per CPU-s {r['ratio_cpu']:.2f}x), cosine to fp32 {r['cosine']:.5f}"
                  + (f"; per repeat {r['ratios_per_repeat']}" if args.repeats > 1 else ""))
    peaks_end = {"fp32": round(matmul_peak(torch.float32, device=dev), 1)}  # the load may have changed
    if cuda or cpu_bf16_supported():
        peaks_end["bf16"] = round(matmul_peak(torch.bfloat16, device=dev), 1)
    print(f"matmul peak GFLOP/s at the end: {peaks_end}")
    print(json.dumps({"clips": len(paths), "audio_s": round(audio_s, 1), "threads": threads, "device": dev,
                      "gpu": torch.cuda.get_device_name(dev) if cuda else None,
                      "peak_gflops": peaks, "peak_gflops_end": peaks_end, "models": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

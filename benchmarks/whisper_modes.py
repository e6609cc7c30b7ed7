"""Whisper padded-to-30 s (the reference) vs native-length: how far pooled vectors move, and the speed ratio.

Both modes run side by side on the same EmoDB clips (``$EMBEDPROBE_EMODB/wav``, else ``../shared/data/emodb/wav``; 16 kHz,
1.2-9 s) and on the same weights: a full-size **random-init** encoder of the chosen size
(no trained weights can be downloaded here), saved once and loaded by ``whisper-<size>`` and
``whisper-<size>-native`` through ``--weights``. For every layer, the cosine between the two
modes' pooled (mean over the clip's frames) vectors: the mean and the minimum over clips.
Speed: audio-seconds per CPU-second of each mode's ``embed`` loop, and their ratio.

Random weights are not trained ones: the cosines say how much attending over 30 s of padding
instead of the clip alone moves this architecture's pooled vectors, not how a trained
Whisper's features change. Re-run with ``--weights DIR`` (a real checkpoint folder) to measure that.

Run:
    python benchmarks/whisper_modes.py                        # whisper-base size, 8 clips
    python benchmarks/whisper_modes.py --size small --clips 4 --threads 1
    python benchmarks/whisper_modes.py --weights /models/whisper-base --size base
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EMODB = Path(os.environ.get("EMBEDPROBE_EMODB", REPO.parent / "shared" / "data" / "emodb")) / "wav"


def cpu_s() -> float:
    return time.process_time()


def random_folder(size: str, work: Path) -> Path:
    import torch
    import transformers
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from embedprobe.extractors.whisper import SIZES

    dim, n_layers, heads, n_mels = SIZES[size]
    cfg = transformers.WhisperConfig(d_model=dim, encoder_layers=n_layers, encoder_attention_heads=heads,
                                     encoder_ffn_dim=4 * dim, num_mel_bins=n_mels)
    torch.manual_seed(0)
    folder = work / f"whisper-{size}-random"
    WhisperEncoder(cfg).save_pretrained(folder)
    transformers.WhisperFeatureExtractor(feature_size=n_mels).save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="base", help="tiny, base, small, medium or large-v3")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--emodb", default=str(EMODB), help="folder of EmoDB wav files")
    ap.add_argument("--weights", default=None, help="a real Whisper checkpoint folder instead of random weights")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (1 on a busy machine: idle threads of a short pass spin)")
    args = ap.parse_args(argv)

    import soundfile as sf
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from embedprobe.extractors import create

    every = sorted(Path(args.emodb).glob("*.wav"))
    files = every[::max(1, len(every) // max(1, args.clips))][:args.clips]  # spread over speakers
    if not files:
        print(f"no wav files in {args.emodb}")
        return 1
    wavs = [sf.read(f, dtype="float32")[0] for f in files]
    audio_s = sum(len(w) for w in wavs) / 16000
    print(f"{len(wavs)} EmoDB clips, {audio_s:.1f} s (mean {audio_s / len(wavs):.2f} s), "
          f"{torch.get_num_threads()} thread(s)")
    with tempfile.TemporaryDirectory(prefix="whisper-modes-") as tmp:
        folder = Path(args.weights) if args.weights else random_folder(args.size, Path(tmp))
        exts = {mode: create(f"whisper-{args.size}{suffix}", weights=folder, precision=args.precision).load()
                for mode, suffix in (("padded", ""), ("native", "-native"))}
        pooled: dict[str, list[dict[str, np.ndarray]]] = {}
        speed = {}
        for mode, ext in exts.items():
            ext.embed(wavs[0][:16000])  # warm-up
            c0, w0 = cpu_s(), time.perf_counter()
            pooled[mode] = [{k: v.mean(0) for k, v in ext.embed(w).items()} for w in wavs]
            c, w = cpu_s() - c0, time.perf_counter() - w0
            speed[mode] = {"audio_s_per_cpu_s": round(audio_s / c, 3), "audio_s_per_s": round(audio_s / w, 3)}
            print(f"{mode}: {speed[mode]['audio_s_per_cpu_s']:.2f} audio-s per CPU-s "
                  f"({speed[mode]['audio_s_per_s']:.2f} per s), precision {ext.precision}")
    layers = {}
    for name in pooled["padded"][0]:
        cos = [float(np.dot(a[name], b[name]) / (np.linalg.norm(a[name]) * np.linalg.norm(b[name])))
               for a, b in zip(pooled["padded"], pooled["native"], strict=True)]
        layers[name] = {"mean": round(float(np.mean(cos)), 4), "min": round(float(np.min(cos)), 4)}
    ratio = speed["native"]["audio_s_per_cpu_s"] / speed["padded"]["audio_s_per_cpu_s"]
    print("cosine padded vs native (mean / min over clips): "
          + ", ".join(f"{k} {v['mean']:.3f}/{v['min']:.3f}" for k, v in layers.items()))
    print(f"native / padded speed (per CPU-s): {ratio:.1f}x")
    print(json.dumps({"size": args.size, "weights": "random-init" if not args.weights else str(args.weights),
                      "clips": len(wavs), "audio_s": round(audio_s, 1), "speed": speed,
                      "native_over_padded": round(ratio, 2), "cosine": layers}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

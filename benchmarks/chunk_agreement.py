"""Chunked versus whole: a long clip embedded in chunks against the same clip in one piece, per extractor.

For every registered extractor (or those named), one synthetic speech clip
(``embedprobe.audio.voice``, syllables and pauses) of ``--seconds`` is embedded once whole and
once cut into ``--chunk`` second chunks the way ``embedprobe extract`` cuts long files
(``embedprobe.audio.chunking``: context windows, frames kept by centre time, a short tail merged).
Printed per model (``embedprobe.pipeline.clip_embedder.chunked_vs_whole``): the frame counts (whole
clip's hop arithmetic, whole run, chunked run), the largest per-chunk frame offset (the lag in
-2..2 frames that best matches the whole run; 0 = aligned), the largest frame difference and the
largest pooled mean / std differences (relative to the largest |frame value|), and the lowest
cosine of the pooled means over layers. The last line is one JSON object.

Models are ``Extractor.for_tests`` instances (tiny random-init nets where the real checkpoint is
not on a test machine; the real eGeMAPS and GE2E), in fp32 unless ``--precision auto``;
``--real`` uses the registered extractors whose weights are on this machine instead.

Run:
    python benchmarks/chunk_agreement.py                       # 97 s clip, 30 s chunks (minutes on 2 cores)
    python benchmarks/chunk_agreement.py --seconds 24 --chunk 7.3 logmel-128 wavlm-base
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def speech(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    from embedprobe.audio.voice import Prosody, make_speaker, voice

    rng = np.random.default_rng(seed)
    wav = voice(Prosody(), make_speaker(rng, "female"), seconds, sr, rng)
    return (0.5 * wav / max(float(np.abs(wav).max()), 1e-9)).astype(np.float32)


def build(name: str, real: bool, precision: str):
    from embedprobe.extractors import EXTRACTORS, create

    entry = EXTRACTORS.get(name)
    if real:
        ext = create(name)
        if ext.weights_present() is False:
            return None
    else:
        ext = entry.cls.for_tests(entry.spec)
    if ext.takes_precision:
        ext.requested_precision = precision
    return ext


def main(argv: list[str] | None = None) -> int:
    from embedprobe.errors import EmbedprobeError
    from embedprobe.extractors import EXTRACTORS
    from embedprobe.pipeline.clip_embedder import chunked_vs_whole

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="extractors (default: every registered one)")
    ap.add_argument("--seconds", type=float, default=97.0, help="clip length (default 97 s)")
    ap.add_argument("--chunk", type=float, default=30.0, help="chunk length (default 30 s, as extract)")
    ap.add_argument("--precision", default="fp32", help="fp32 (default) or auto")
    ap.add_argument("--real", action="store_true", help="the real extractors whose weights are here")
    args = ap.parse_args(argv)
    results = {}
    for name in args.names or EXTRACTORS.names():
        try:
            ext = build(name, args.real, args.precision)
            if ext is None:
                print(f"{name}: weights not on this machine, skipped")
                continue
            ext.load()
        except EmbedprobeError as e:
            print(f"{name}: skipped ({e})")
            continue
        sr = ext.spec.sample_rate
        t0 = time.perf_counter()
        r = chunked_vs_whole(ext, speech(args.seconds, sr), args.chunk)
        r = {k: round(v, 8) if isinstance(v, float) else v for k, v in r.items()}
        r["family"], r["seconds"] = ext.spec.family, round(time.perf_counter() - t0, 1)
        results[name] = r
        print(f"{name:20s} frames {r['n_frames']}/{r['frames_whole']}/{r['frames_chunked']} "
              f"(hop arithmetic/whole/chunked) offset {r['max_frame_offset']} spans {r['spans']}  "
              f"frames max rel {r['frames_max_rel']:.2e}  mean max rel {r['mean_max_rel']:.2e}  "
              f"std max rel {r['std_max_rel']:.2e}  mean cos {r['mean_cos']:.7f}  ({r['seconds']} s)",
              flush=True)
    print(json.dumps({"seconds": args.seconds, "chunk_s": args.chunk, "precision": args.precision,
                      "real": args.real, "models": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

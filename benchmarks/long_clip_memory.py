"""Peak memory and speed of one long clip, against a short one, per extractor (full-size random weights).

For each named extractor whose family builds from a checkpoint (``random_init``: emotion2vec,
CNN14, VGGish, MS-CLAP), a fresh process builds the full-size network with seeded random
weights, embeds a ``--short`` second clip, then a ``--minutes`` minute clip (synthetic speech,
``embedprobe.audio.voice``) with ``ext.embed`` (the extractor's own bound: emotion2vec runs
windows of ``chunk_s`` plus context). Printed per model, measured side by side in that process:
the peak resident memory (``ru_maxrss``) after loading, after the short clip and after the long
one, the long/short peak ratio, and audio-seconds per CPU-second of the long clip. A long-clip
peak close to the short-clip peak means the work per clip is bounded. The last line is one JSON
object.

Run:
    python benchmarks/long_clip_memory.py                                   # plus-large, 10 min (minutes on 2 cores)
    python benchmarks/long_clip_memory.py emotion2vec-base --minutes 2 --precision fp32
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def measure(name: str, minutes: float, short: float, precision: str) -> dict:
    """Runs in the child process: one model, the peaks in GiB after each phase."""
    import resource
    import time

    import numpy as np

    from embedprobe.audio.voice import Prosody, make_speaker, voice
    from embedprobe.extractors import EXTRACTORS

    def peak_gib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux

    def speech(seconds: float, sr: int) -> np.ndarray:
        rng = np.random.default_rng(0)
        wav = voice(Prosody(), make_speaker(rng, "female"), seconds, sr, rng)
        return (0.5 * wav / max(float(np.abs(wav).max()), 1e-9)).astype(np.float32)

    entry = EXTRACTORS.get(name)
    sr = entry.spec.sample_rate
    long_wav, short_wav = speech(60 * minutes, sr), speech(short, sr)
    ext = entry.cls.random_init(entry.spec, seed=0, precision=precision).load()
    loaded = peak_gib()
    ext.embed(short_wav)
    after_short = peak_gib()
    c0, w0 = time.process_time(), time.perf_counter()
    out = ext.embed(long_wav)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    frames = {len(v) for v in out.values()}
    return {"precision": ext.runtime_config().get("precision"), "minutes": minutes, "short_s": short,
            "peak_gib_loaded": round(loaded, 2), "peak_gib_short": round(after_short, 2),
            "peak_gib_long": round(peak_gib(), 2), "long_over_short": round(peak_gib() / after_short, 3),
            "audio_s_per_cpu_s": round(60 * minutes / cpu, 3), "audio_s_per_s": round(60 * minutes / wall, 3),
            "frames": sorted(frames), "n_frames": ext.n_frames(len(long_wav))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=["emotion2vec-plus-large"])
    ap.add_argument("--minutes", type=float, default=10.0, help="long clip (default 10 min)")
    ap.add_argument("--short", type=float, default=40.0, help="short clip in seconds (default 40: one window)")
    ap.add_argument("--precision", default="auto", help="auto (default) or fp32")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.names[0], args.minutes, args.short, args.precision)))
        return 0
    results = {}
    for name in args.names:
        cmd = [sys.executable, __file__, name, "--child", "--minutes", str(args.minutes),
               "--short", str(args.short), "--precision", args.precision]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if run.returncode:
            print(f"{name}: failed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
            continue
        r = json.loads(run.stdout.strip().splitlines()[-1])
        results[name] = r
        print(f"{name} ({r['precision']}): peak {r['peak_gib_loaded']} GiB loaded, {r['peak_gib_short']} GiB "
              f"after {r['short_s']:g} s, {r['peak_gib_long']} GiB after {r['minutes']:g} min "
              f"(x{r['long_over_short']}); {r['audio_s_per_cpu_s']} audio-s per CPU-s, "
              f"{r['audio_s_per_s']} per s; frames {r['frames']} (hop arithmetic {r['n_frames']})")
    print(json.dumps({"minutes": args.minutes, "short_s": args.short, "models": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

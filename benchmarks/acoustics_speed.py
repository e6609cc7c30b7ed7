"""Acoustic-profile speed: processes and onnxruntime threads, side by side in one run (no pass/fail).

    python benchmarks/acoustics_speed.py [--root ../shared/data/emodb] [--clips 24] [--repeats 2]

Profiles the same seeded EmoDB subset (all measures, DNSMOS included) with
``(workers, threads)`` in (1, 1), (1, 2), (2, 1), interleaved ``--repeats`` times so load from
other processes hits every setting alike; prints the median wall time, CPU time (this process
and its workers) and the wall-time ratio to (1, 1). Measured on the shared 2-core box
(load 4-5): (2, 1) 0.75x, (1, 2) 1.1x of the (1, 1) time, ~0.85 CPU-s per clip.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from embedprobe.pipeline.acoustics import profile

SETTINGS = ((1, 1), (1, 2), (2, 1))


def _cpu() -> float:
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb"))
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    wall: dict[tuple[int, int], list[float]] = {s: [] for s in SETTINGS}
    cpu: dict[tuple[int, int], list[float]] = {s: [] for s in SETTINGS}
    tmp = Path(tempfile.mkdtemp(prefix="embedprobe-acoustics-bench-"))
    try:
        for rep in range(args.repeats):
            for workers, threads in SETTINGS:
                out = tmp / f"{rep}-{workers}-{threads}"
                t0, c0 = time.perf_counter(), _cpu()
                profile("emodb", args.root, out_dir=out, max_clips=args.clips, workers=workers,
                        threads=threads, progress=False)
                wall[(workers, threads)].append(time.perf_counter() - t0)
                cpu[(workers, threads)].append(_cpu() - c0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = float(np.median(wall[(1, 1)]))
    print(f"{args.clips} EmoDB clips, all measures, median of {args.repeats}")
    print(f"{'workers':>8} {'threads':>8} {'wall s':>8} {'cpu s':>8} {'ratio':>6}")
    for s in SETTINGS:
        w = float(np.median(wall[s]))
        print(f"{s[0]:>8} {s[1]:>8} {w:>8.1f} {float(np.median(cpu[s])):>8.1f} {w / base:>6.2f}")


if __name__ == "__main__":
    main()

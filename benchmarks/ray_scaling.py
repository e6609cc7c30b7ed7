"""Extraction on Ray against the local engine, and 1 against 2 Ray workers, measured side by side.

What runs, in one process, on the same clips (a subset of EmoDB: the first ``--clips`` files of
``$EMBEDPROBE_EMODB`` or ``/work/shared/data/emodb``, linked into a temp folder in EmoDB's
layout), each run into its own fresh cache with ``embedprobe.pipeline.extract.extract``:

(a) local: ``--engine local --procs 1 --threads 1`` (one process, one thread);
(b) Ray, 1 worker of 1 CPU (``--engine ray --workers 1``): the engine's overhead against (a);
(c) Ray, 2 workers of 1 CPU each: the scaling of a single-threaded extractor (eGeMAPS).

One local Ray cluster (``--cpus``, default 2) is started first; its start-up is reported apart.
Each run's start-up (scan, model load or starting the Ray workers, until the first result) is
reported apart from its steady state: clips per second between the first and the last 10 %
of results (``ExtractSummary.steady_clips_per_s``). Printed: those, the overhead (1 - Ray 1
worker's steady rate / local's; goal <= 10 %), the scaling efficiency (2 workers' steady rate /
(2 x 1 worker's)) next to what the machine allowed at the time (the same pure-Python loop
in 2 processes against 1, measured before and after the runs), whether every run stored the same values as (a), the CPU and the load
average. With ``--repeats R`` the runs alternate R times and the medians are used. The last line
is one JSON object.

Run:
    python benchmarks/ray_scaling.py                      # 96 clips, egemaps (a few minutes on 2 cores)
    python benchmarks/ray_scaling.py --clips 535 --repeats 3
    python benchmarks/ray_scaling.py --model logmel-128   # a cheap extractor: the per-task overhead
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

EMODB = Path(os.environ.get("EMBEDPROBE_EMODB", "/work/shared/data/emodb"))


def subset(root: Path, n: int, into: Path) -> Path:
    """The first ``n`` EmoDB files, linked into ``into/wav`` (EmoDB's layout)."""
    files = sorted((root / "wav").glob("*.wav"))[:n]
    if not files:
        raise SystemExit(f"No EmoDB at {root}: set EMBEDPROBE_EMODB to the folder holding wav/.")
    (into / "wav").mkdir(parents=True)
    for f in files:
        (into / "wav" / f.name).symlink_to(f.resolve())
    return into


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _spin(n: int) -> float:
    t = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
    return time.perf_counter() - t


def machine_speedup(n: int = 5_000_000) -> float:
    """Throughput of the same pure-Python loop in 2 processes at once against 1: what 2 workers
    can gain on this machine right now (about 2 when 2 cores are free, 1 when none is)."""
    import multiprocessing as mp

    one = _spin(n)
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [1000, 1000])  # started
        t = time.perf_counter()
        pool.map(_spin, [n, n])
        two = time.perf_counter() - t
    return 2 * one / two


def pooled(cache: Path) -> dict[str, np.ndarray]:
    from embedprobe.cache import open_cache

    with open_cache(cache) as r:
        layer = r.layers[0]
        return dict(zip(r.ids, r.pooled(layer, "meanstd"), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=96)
    ap.add_argument("--model", default="egemaps")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    os.environ["EMBEDPROBE_NO_PROGRESS"] = "1"

    import ray

    from embedprobe.pipeline.extract import ExtractConfig, extract

    tmp = Path(tempfile.mkdtemp(prefix="ray-scaling-"))
    root = subset(EMODB, args.clips, tmp / "emodb")
    load_before, free_before = os.getloadavg(), machine_speedup()
    t = time.perf_counter()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="error")
    cluster_s = time.perf_counter() - t

    runs = {"local": {"engine": "local", "procs": 1, "threads": 1},
            "ray-1": {"engine": "ray", "ray_workers": 1},
            "ray-2": {"engine": "ray", "ray_workers": 2}}
    got: dict[str, list[dict]] = {name: [] for name in runs}
    values: dict[str, dict[str, np.ndarray]] = {}
    for rep in range(args.repeats):
        for name, opts in runs.items():
            cfg = ExtractConfig(model=args.model, corpus="emodb", root=str(root), out=str(tmp / f"{name}-{rep}"),
                                batch_size=args.batch_size, **opts)
            s = extract(cfg, progress=False)
            assert s.complete and s.n_errors == 0, (name, s.errors[:3])
            got[name].append({"seconds": s.seconds, "startup_s": s.startup_s, "steady": s.steady_clips_per_s})
            values.setdefault(name, pooled(s.cache))
    ray.shutdown()
    load_after, free_after = os.getloadavg(), machine_speedup()

    med = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in got.items()}
    ref = values["local"]
    max_diff = {name: max(float(np.abs(v[i] - ref[i]).max()) for i in ref) if sorted(v) == sorted(ref)
                else None for name, v in values.items()}
    overhead = 1 - med["ray-1"]["steady"] / med["local"]["steady"]
    efficiency = med["ray-2"]["steady"] / (2 * med["ray-1"]["steady"])

    print(f"{args.model}, {args.clips} EmoDB clips, batch {args.batch_size}, {args.repeats} repeat(s); "
          f"{cpu_name()}, {os.cpu_count()} cores; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after")
    print(f"Ray cluster start-up ({args.cpus} CPUs): {cluster_s:.1f} s")
    print(f"{'run':<8} {'total s':>8} {'start-up s':>11} {'steady clips/s':>15} {'max |diff| vs local':>20}")
    for name in runs:
        m = med[name]
        print(f"{name:<8} {m['seconds']:>8.1f} {m['startup_s']:>11.1f} {m['steady']:>15.2f} "
              f"{'ids differ' if max_diff[name] is None else format(max_diff[name], '.3g'):>20}")
    print(f"Ray overhead at steady state (1 worker vs local): {100 * overhead:+.1f} % (goal <= 10 %)")
    print(f"scaling 1 -> 2 workers: {med['ray-2']['steady'] / med['ray-1']['steady']:.2f}x, "
          f"efficiency {100 * efficiency:.0f} %; the machine's own 2-process speedup at the time: "
          f"{free_before:.2f}x before, {free_after:.2f}x after (2.00 = two free cores)")
    print(json.dumps({
        "model": args.model, "clips": args.clips, "batch_size": args.batch_size, "repeats": args.repeats,
        "cpu": cpu_name(), "cores": os.cpu_count(), "load_before": load_before[0], "load_after": load_after[0],
        "cluster_startup_s": round(cluster_s, 2),
        "runs": {name: {key: round(v, 3) for key, v in m.items()} for name, m in med.items()},
        "max_abs_diff_vs_local": max_diff, "overhead": round(overhead, 4),
        "speedup_2_workers": round(med["ray-2"]["steady"] / med["ray-1"]["steady"], 3),
        "scaling_efficiency": round(efficiency, 4),
        "machine_2proc_speedup": [round(free_before, 3), round(free_after, 3)],
    }))


if __name__ == "__main__":
    main()

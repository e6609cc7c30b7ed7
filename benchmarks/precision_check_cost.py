"""Load-time cost of the precision check: loads with and without it, alternating, in one run.

For each model, ``--repeats`` rounds of two fresh loads of the same weights with the default
precision (``auto``: bf16 on AVX-512-BF16/AMX CPUs): one with the load-time precision check
(``extractors.runtime``: an fp32 pass of a 0.5 s probe signal screening every matmul-type
module, the fast path's rewrites, a fast pass, every cached layer compared) and one without it
(``verify_precision = False``: reading the weights, building the network and the same
rewrites). The order alternates between rounds, so a change of machine load shows up as
spread, not bias. Printed per model, medians of wall and CPU seconds (``time.process_time``,
which counts the whole process; other jobs on a shared machine do not):

* ``load``: the load with the check, and ``unchecked``: without it;
* ``check``: the check's own time as it records it in ``runtime.precision_check`` (``seconds``,
  ``cpu_seconds``: the two passes, the screen, the comparisons) and ``rewrites`` (the fast
  path's rewrites made during the check, which the unchecked load makes as well);
* ``difference``: load with the check minus the unchecked load, the cost as a user sees it;
* ``share``: the check's own CPU seconds over the unchecked load's (the goal: well under 1).

Models: full-size random-init WavLM-Large (saved with ``save_pretrained`` to a folder and
loaded with ``--weights``, as ``extract_speed.py`` does) and CNN14 16 kHz (seeded random init).
The last line is one JSON object.

Run:
    python benchmarks/precision_check_cost.py                      # 3 rounds, one thread
    python benchmarks/precision_check_cost.py --repeats 5 --models cnn14-16k
    python benchmarks/precision_check_cost.py --threads 2
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_verify import evict  # this folder is on sys.path when run as a script
from extract_speed import wavlm_large_folder


def builders(work: Path, names: list[str]) -> dict:
    """``{name: () -> a fresh, unloaded extractor}`` for the models asked for."""
    from embedprobe.extractors import EXTRACTORS, create

    out = {}
    for name in names:
        if name == "wavlm-large":
            folder = wavlm_large_folder(work)
            out[name] = lambda folder=folder: create("wavlm-large", weights=str(folder), device="cpu")
            out[name].folder = folder  # type: ignore[attr-defined]
        elif name == "cnn14-16k" and name in EXTRACTORS:
            entry = EXTRACTORS.get(name)
            out[name] = lambda entry=entry: entry.cls.random_init(entry.spec, seed=0, device="cpu")
        else:
            print(f"{name}: not measured here, expected one of ['cnn14-16k', 'wavlm-large']")
    return out


def evict_folder(folder: Path | None) -> None:
    """Drop the files of ``folder`` from the page cache, so the next load reads the weights from
    the disk, as a first load after a boot does."""
    if folder is None or not hasattr(os, "posix_fadvise"):
        return
    for f in folder.rglob("*"):
        if f.is_file():
            evict(f)


def timed_load(make, check: bool, cold: Path | None = None) -> dict:
    """Build a fresh extractor, load it with or without the check; wall and CPU seconds and its record.
    ``cold``: the weights folder to evict from the page cache first."""
    ext = make()
    ext.verify_precision = check
    gc.collect()
    evict_folder(cold)
    w0, c0 = time.perf_counter(), time.process_time()
    ext.load()
    row = {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0}
    runtime = ext.runtime_config()
    row["precision"] = runtime.get("precision")
    row["report"] = runtime.get("precision_check")
    ext.unload()
    del ext
    gc.collect()
    return row


def median(rows: list[dict], key: str, sub: str | None = None) -> float | None:
    vals = [(r["report"] or {}).get(sub) if sub else r[key] for r in rows]
    vals = [v for v in vals if v is not None]
    return round(statistics.median(vals), 3) if vals else None


def measure(make, repeats: int, cold: Path | None = None) -> dict:
    checked, unchecked = [], []
    for i in range(repeats):
        for check in ((True, False) if i % 2 == 0 else (False, True)):
            (checked if check else unchecked).append(timed_load(make, check, cold))
    report = checked[-1]["report"] or {}
    r = {
        "load_s": median(checked, "wall"), "load_cpu_s": median(checked, "cpu"),
        "unchecked_s": median(unchecked, "wall"), "unchecked_cpu_s": median(unchecked, "cpu"),
        "check_s": median(checked, "", "seconds"), "check_cpu_s": median(checked, "", "cpu_seconds"),
        "rewrite_s": median(checked, "", "rewrite_seconds"),
        "rewrite_cpu_s": median(checked, "", "rewrite_cpu_seconds"),
        "loads_cpu_s": [round(x["cpu"], 3) for x in checked],
        "unchecked_loads_cpu_s": [round(x["cpu"], 3) for x in unchecked],
        "checks_cpu_s": [(x["report"] or {}).get("cpu_seconds") for x in checked],
        "precision": checked[-1]["precision"], "decision": report.get("decision"),
        "min_layer_cosine": report.get("min_layer_cosine"),
        "kernel_shapes_screened": report.get("kernel_shapes_screened"),
        "modules_screened": report.get("modules_screened"),
    }
    r["difference_s"] = round(r["load_s"] - r["unchecked_s"], 3)
    r["difference_cpu_s"] = round(r["load_cpu_s"] - r["unchecked_cpu_s"], 3)
    if r["check_cpu_s"] is not None and r["unchecked_cpu_s"]:
        r["share_cpu"] = round(r["check_cpu_s"] / r["unchecked_cpu_s"], 3)
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="wavlm-large,cnn14-16k")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of (checked, unchecked) loads (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--cold", action="store_true",
                    help="WavLM-Large: evict its weight files from the page cache before every load "
                         "(a first load from the disk; default: a warm file cache)")
    args = ap.parse_args(argv)

    os.environ.setdefault("EMBEDPROBE_NO_PROGRESS", "1")
    import torch

    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory(prefix="embedprobe-check-cost-") as tmp:
        makers = builders(Path(tmp), [m.strip() for m in args.models.split(",") if m.strip()])
        for name, make in makers.items():
            timed_load(make, True)  # warm-up: file cache, imports, first kernel calls; not counted
            folder = getattr(make, "folder", None) if args.cold else None
            r = results[name] = measure(make, args.repeats, folder)
            r["cold"] = folder is not None
            print(f"{name} ({r['precision']}, {args.repeats} rounds, medians): load {r['load_s']:.2f} s "
                  f"({r['load_cpu_s']:.2f} CPU-s), unchecked {r['unchecked_s']:.2f} s ({r['unchecked_cpu_s']:.2f}); "
                  f"check {r['check_s']} s ({r['check_cpu_s']} CPU-s), rewrites during it {r['rewrite_s']} s; "
                  f"difference {r['difference_s']:.2f} s ({r['difference_cpu_s']:.2f} CPU-s); "
                  f"check / unchecked load {r.get('share_cpu')} (CPU)")
    print(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__, "repeats": args.repeats,
                      "models": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

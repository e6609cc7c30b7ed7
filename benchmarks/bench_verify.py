"""What checksums cost: cache writes and reads with and without them, side by side in one run.

    python benchmarks/bench_verify.py [--clips 10000] [--dim 1024] [--layers 4] [--frames 50] [--repeats 5]
    python benchmarks/bench_verify.py --reads-only --clips 2000 --repeats 15   # reads alone, medians
    python benchmarks/bench_verify.py --reads-only --cold ...   # each read from the disk, not the page cache
    python benchmarks/bench_verify.py --reads-only --kernel numpy ...   # the digests without _wsum.c

Writes one cache of ``--clips`` clips (pooled mean and std of ``--layers`` layers, frames of the
last layer, float16 as extraction stores them) twice: as shipped, and with the checksum work
(per-clip digests, metadata seal) replaced by no-ops. Then reads it (every pooled array, all
frames, 500 random clips' frames) with verification and with it switched off, alternating,
``--repeats`` times each; prints the best times and the ratios, and the time spent hashing
alone (timed inside a verified read; robust when other processes share the CPU). Reads are
from the page cache (the worst case for the relative cost: no disk time to hide the hashing).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from embedprobe.cache import CacheWriter, ClipResult, LayerResult, open_cache
from embedprobe.cache import schema as schema_mod
from embedprobe.corpora.base import Clip, Manifest


def _module(*names):
    """The first of the cache's internal modules ``names`` that exists (this script also measures
    the code before ``store.py`` was split)."""
    for n in names:
        try:
            return importlib.import_module(f"embedprobe.cache.{n}")
        except ImportError:
            pass
    raise ImportError(names)


reads_mod = _module("rangeio", "store")  # the coalesced hashed reads


@contextlib.contextmanager
def no_checksums():
    """Replace the checksum work of the writer by no-ops (the cost baseline; never in real use):
    segments are written as by an embedprobe before checksums, and merges hash nothing."""
    batch_mod = _module("batch", "schema")  # where Block.from_results lives (schema before the split)
    patches = [(batch_mod, "row_digests", lambda a: np.zeros(len(a), np.uint64)),
               (batch_mod, "clip_digests", lambda data, off: np.zeros(len(off) - 1, np.uint64)),
               (batch_mod, "combine_ranges", lambda rowd, a, b: np.zeros(len(a), np.uint64)),
               (batch_mod, "_pooled_digests", lambda header, p: np.zeros((len(p), 2 * len(header.layers)), np.uint64)),
               (schema_mod, "seal", lambda f, small=None: None),
               (schema_mod, "SCHEME_ATTR", "bench_no_checksums"),
               (reads_mod, "row_digests", lambda a: np.zeros(len(a), np.uint64)),
               (reads_mod, "combine_ranges", lambda rowd, a, b: np.zeros(len(a), np.uint64)),
               (_module("merge", "store"), "row_digests", lambda a: np.zeros(len(a), np.uint64))]
    patches = [p for p in patches if hasattr(p[0], p[1])]  # the names differ between versions
    saved = [(m, k, getattr(m, k)) for m, k, _ in patches]
    for m, k, v in patches:
        setattr(m, k, v)
    try:
        yield
    finally:
        for m, k, v in saved:
            setattr(m, k, v)


def select_kernel(name: str) -> str:
    """Use the row-digest code ``name`` in this process; returns what computes the digests."""
    digest = importlib.import_module("embedprobe.cache.digest")
    if not hasattr(digest, "kernel"):  # the code before the compiled kernel
        return "numpy"
    if name == "numpy":
        digest._wsum = None
    elif name != "best":
        if digest._wsum is None:
            raise SystemExit(f"--kernel {name}: the compiled kernel is not built (pip install -e . builds it)")
        digest._wsum.select(name)
    return digest.kernel()


def write(path: Path, a, ids, layers, frame_layer, frames, lengths, vecs) -> float:
    manifest = Manifest(corpus="bench", root="/x", clips=[Clip(i, f"{i}.wav", "s", "n", "neutral") for i in ids])
    kw = dict(provenance={}, identity={}, manifest_json=manifest.to_json(), layers=layers,
              frames=[frame_layer], dtype="float16")
    t = time.perf_counter()
    with CacheWriter(path, **kw) as w:
        for s in range(0, a.clips, a.batch):
            w.write([ClipResult(i, "h", 3.0, {k: LayerResult(vecs[j % 64], vecs[(j + 1) % 64],
                                                             frames[:n] if k == frame_layer else None)
                                              for k in layers})
                     for j, (i, n) in enumerate(zip(ids[s:s + a.batch], lengths[s:s + a.batch].tolist(),
                                                    strict=True), start=s)])
        w.finalize()
    return time.perf_counter() - t


class Timed:
    """Wrap the reader's hashing functions to add up the time spent in them (robust to a busy machine)."""

    def __init__(self):
        self.s = 0.0

    @contextlib.contextmanager
    def on(self):
        saved = reads_mod.row_digests, reads_mod.combine_ranges, reads_mod.digest_convert

        def wrap(fn):
            def timed(*args):
                t = time.perf_counter()
                try:
                    return fn(*args)
                finally:
                    self.s += time.perf_counter() - t
            return timed

        # a fused hash-and-convert (digest_convert) counts whole: its hashing has no time of its own
        reads_mod.row_digests, reads_mod.combine_ranges, reads_mod.digest_convert = map(wrap, saved)
        try:
            yield self
        finally:
            reads_mod.row_digests, reads_mod.combine_ranges, reads_mod.digest_convert = saved


KINDS = ("pooled_all_layers", "frames_500_random", "frames_all")


def read_once(path: Path, layers, frame_layer, pick, key: str, verify: bool, cpu: list | None = None) -> float:
    """Seconds for one read of kind ``key`` (the cache opened first, not timed); ``cpu`` receives
    the CPU seconds of this thread (less disturbed by other processes than the wall time)."""
    with open_cache(path) as r:
        if not verify:  # drop the stored digests from this reader: nothing is hashed or compared
            for seg in r._snap.segments:
                seg.digests = None
        t, c = time.perf_counter(), time.thread_time()
        if key == "pooled_all_layers":
            for k in layers:
                r.pooled(k, "meanstd")
        else:
            r.frames(frame_layer, pick if key == "frames_500_random" else None)
        if cpu is not None:
            cpu.append(time.thread_time() - c)
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--frames", type=int, default=50, help="mean frames per clip (uniform in [F/2, 3F/2])")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--reads-only", action="store_true",
                    help="write the cache once (with checksums) and time only the reads: each kind in its own "
                         "run of --repeats alternations, no hashing-timed reads between (steadier on a busy machine)")
    ap.add_argument("--cold", action="store_true",
                    help="with --reads-only: evict the cache file from the page cache before every read "
                         "(posix_fadvise), so the data comes from the disk, as for a cache larger than memory")
    ap.add_argument("--kernel", default="best", choices=["best", "avx512", "avx2", "generic", "numpy"],
                    help="the row-digest code: best (the compiled kernel's best variant on this CPU), a "
                         "variant of it (avx512, avx2, generic), or numpy (as without a C compiler)")
    a = ap.parse_args()
    res_kernel = select_kernel(a.kernel)
    import torch  # as in extraction; the cache converts float16 with it

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(dir=a.dir, prefix="bench-verify-"))
    rng = np.random.default_rng(0)
    ids = [f"c{i:06d}" for i in range(a.clips)]
    layers = {f"layer_{k:02d}": a.dim for k in range(a.layers)}
    frame_layer = list(layers)[-1]
    frames = rng.standard_normal((a.frames * 3 // 2, a.dim)).astype(np.float16)
    vecs = rng.standard_normal((64, a.dim)).astype(np.float16)
    lengths = rng.integers(a.frames // 2, a.frames * 3 // 2 + 1, a.clips)
    nbytes = int(lengths.sum()) * a.dim * 2 + a.clips * a.layers * 2 * a.dim * 2
    try:
        if a.reads_only:
            return reads_only(root, a, ids, layers, frame_layer, frames, lengths, vecs, nbytes, rng, res_kernel)
        t_plain = []
        t_sums = []
        for k in range(2):  # alternate, keep the best of two of each
            with no_checksums():
                t_plain.append(write(root / f"plain{k}.h5", a, ids, layers, frame_layer, frames, lengths, vecs))
            t_sums.append(write(root / f"sums{k}.h5", a, ids, layers, frame_layer, frames, lengths, vecs))
            if k == 0:
                (root / "plain0.h5").unlink()
        path = root / "sums0.h5"
        pick = sorted(rng.choice(ids, size=min(500, a.clips), replace=False).tolist())
        on: dict[str, list[float]] = {k: [] for k in KINDS}
        off: dict[str, list[float]] = {k: [] for k in KINDS}
        hashing: dict[str, list[float]] = {k: [] for k in KINDS}
        cpu_on: dict[str, list[float]] = {k: [] for k in KINDS}
        cpu_off: dict[str, list[float]] = {k: [] for k in KINDS}
        for key in KINDS:  # warm-up: page cache, allocator
            read_once(path, layers, frame_layer, pick, key, False)
        for rep in range(a.repeats):  # interleaved finely, which goes first alternating (the read
            for key in KINDS:         # after a large free pays for it), so a busy machine hits both alike
                for verify in ((True, False) if rep % 2 == 0 else (False, True)):
                    (on if verify else off)[key].append(read_once(path, layers, frame_layer, pick, key, verify,
                                                                  (cpu_on if verify else cpu_off)[key]))
                with Timed().on() as tm:  # the hashing time alone
                    read_once(path, layers, frame_layer, pick, key, True)
                hashing[key].append(tm.s)
        gb = nbytes / 1e9
        res = {"data_GB": round(gb, 3), "digest_kernel": res_kernel,
               "write_GB_per_s_with_checksums": round(gb / min(t_sums), 3),
               "write_GB_per_s_without": round(gb / min(t_plain), 3),
               "write_time_ratio_with_vs_without": round(min(t_sums) / min(t_plain), 3)}
        for key in on:
            res[f"read_{key}_s_verified"] = round(min(on[key]), 4)
            res[f"read_{key}_s_unverified"] = round(min(off[key]), 4)
            res[f"read_{key}_cost_pct"] = round(100 * (min(on[key]) / min(off[key]) - 1), 1)
            res[f"read_{key}_hashing_s"] = round(min(hashing[key]), 4)
            res[f"read_{key}_hashing_pct_of_unverified"] = round(100 * min(hashing[key]) / min(off[key]), 1)
            res[f"read_{key}_median_cost_pct"] = round(100 * (np.median(on[key]) / np.median(off[key]) - 1), 1)
            res[f"read_{key}_cpu_median_cost_pct"] = round(
                100 * (np.median(cpu_on[key]) / np.median(cpu_off[key]) - 1), 1)
        res["load_average_1min"] = round(os.getloadavg()[0], 2)
        print(json.dumps(res, indent=1))
    finally:
        shutil.rmtree(root)


def evict(path: Path) -> None:
    """Drop ``path`` from the page cache (written back first; no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def reads_only(root: Path, a, ids, layers, frame_layer, frames, lengths, vecs, nbytes: int, rng,
               kernel: str) -> None:
    path = root / "sums0.h5"
    write(path, a, ids, layers, frame_layer, frames, lengths, vecs)
    pick = sorted(rng.choice(ids, size=min(500, a.clips), replace=False).tolist())
    res: dict[str, object] = {"data_GB": round(nbytes / 1e9, 3), "cold": bool(a.cold), "digest_kernel": kernel}
    cold = a.cold and hasattr(os, "posix_fadvise")
    for key in KINDS:
        read_once(path, layers, frame_layer, pick, key, False)  # warm-up
        wall: dict[bool, list[float]] = {True: [], False: []}
        cpu: dict[bool, list[float]] = {True: [], False: []}
        for rep in range(a.repeats):
            for verify in ((True, False) if rep % 2 else (False, True)):
                if cold:
                    evict(path)
                wall[verify].append(read_once(path, layers, frame_layer, pick, key, verify, cpu[verify]))
        for name, t in (("wall", wall), ("cpu", cpu)):
            on, off = float(np.median(t[True])), float(np.median(t[False]))
            res[f"read_{key}_{name}_s_verified"] = round(on, 4)
            res[f"read_{key}_{name}_s_unverified"] = round(off, 4)
            res[f"read_{key}_{name}_median_cost_pct"] = round(100 * (on / off - 1), 1)
            # best of each: steadier when the result's allocation stalls now and then (on Linux,
            # numpy asks for huge pages for large arrays and the kernel may compact memory first)
            res[f"read_{key}_{name}_best_cost_pct"] = round(100 * (min(t[True]) / min(t[False]) - 1), 1)
    res["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

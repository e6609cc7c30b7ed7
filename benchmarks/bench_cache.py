"""Embedding-cache speed, measured side by side in one run (prints ratios; no pass/fail).

    python benchmarks/bench_cache.py [--clips 2000] [--frames 200] [--dim 1024] [--layers 25]

Compares CacheWriter (one part file per batch, fsync, compaction, finalize) with a plain h5py
baseline writing the same bytes into one ragged dataset (not crash-safe) and with a "durable"
baseline (one fsynced file per batch, nothing else; interleaved batch by batch with the
writer), then times the reader. Prints where CacheWriter.write spends its time per batch
(validation, HDF5 image, write + fsync, compaction) and where finalize spends it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from embedprobe.cache import CacheWriter, ClipResult, LayerResult, open_cache
from embedprobe.corpora.base import Clip, Manifest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=25, help="pooled layers (the last one also keeps frames)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    import h5py
    import torch  # the extraction pipeline has it imported; the cache converts float16 with it

    torch.set_num_threads(1)

    root = Path(tempfile.mkdtemp(dir=a.dir, prefix="bench-cache-"))
    rng = np.random.default_rng(0)
    ids = [f"c{i:06d}" for i in range(a.clips)]
    manifest = Manifest(corpus="bench", root="/x", clips=[Clip(i, f"{i}.wav", "s", "n", "neutral") for i in ids])
    layers = {f"layer_{k:02d}": a.dim for k in range(a.layers)}
    frame_layer = list(layers)[-1]
    frames = rng.standard_normal((a.frames, a.dim)).astype(np.float16)  # as pooled in torch
    vec = frames.mean(0)
    lengths = rng.integers(a.frames // 2, a.frames + 1, a.clips)

    def batch_results(chunk):
        return [ClipResult(i, "h", 3.0, {k: LayerResult(vec, vec, frames[:n] if k == frame_layer else None)
                                         for k in layers}) for i, n in chunk]

    nbytes = int(lengths.sum()) * a.dim * 2 + a.clips * a.layers * 2 * a.dim * 2
    # baseline: the same float16 bytes through plain h5py into one file
    t = time.perf_counter()
    with h5py.File(root / "base.h5", "w") as f:
        data = f.create_dataset("frames", (int(lengths.sum()), a.dim), np.float16)
        pooled = f.create_dataset("pooled", (a.clips, a.layers * 2, a.dim), np.float16)
        pos = 0
        for s in range(0, a.clips, a.batch):
            ln = lengths[s:s + a.batch]
            data[pos:pos + ln.sum()] = np.concatenate([frames[:n] for n in ln])
            pooled[s:s + len(ln)] = np.broadcast_to(vec, (len(ln), a.layers * 2, a.dim)).astype(np.float16)
            pos += int(ln.sum())
        f.flush()
        os.fsync(f.id.get_vfd_handle())  # its dirty pages must not slow down what follows
    t_base = time.perf_counter() - t
    (root / "durable").mkdir()

    def durable_batch(s):
        """The durable baseline, the minimum cost of "a returned batch survives kill -9": one file
        per batch holding the same bytes, fsync, rename, fsync the directory."""
        ln = lengths[s:s + a.batch]
        tmp, final = root / "durable" / f".tmp{s}", root / "durable" / f"b{s}.h5"
        with h5py.File(tmp, "w") as f:
            f["frames"] = np.concatenate([frames[:n] for n in ln])
            f["pooled"] = np.broadcast_to(vec, (len(ln), a.layers * 2, a.dim)).astype(np.float16)
        fd = os.open(tmp, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, final)
        fd = os.open(final.parent, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    path = root / "cache.h5"
    phases = _time_writer_phases()
    kw = dict(provenance={}, identity={}, manifest_json=manifest.to_json(), layers=layers,
              frames=[frame_layer], dtype="float16")
    # The two are interleaved batch by batch (which goes first alternating), so that a machine
    # shared with other work slows both alike.
    t_durable = t_write = c_durable = c_write = 0.0
    per_batch: dict[str, list[float]] = {"durable": [], "writer": []}
    with CacheWriter(path, **kw) as w:
        pairs = list(zip(ids, lengths.tolist(), strict=True))
        for k, s in enumerate(range(0, a.clips, a.batch)):
            batch = batch_results(pairs[s:s + a.batch])
            for which in (("durable", "writer") if k % 2 == 0 else ("writer", "durable")):
                t, c = time.perf_counter(), time.thread_time()
                if which == "durable":
                    durable_batch(s)
                    t_durable += time.perf_counter() - t
                    c_durable += time.thread_time() - c
                else:
                    w.write(batch)
                    t_write += time.perf_counter() - t
                    c_write += time.thread_time() - c
                per_batch[which].append(time.perf_counter() - t)
        n_parts = len(list(path.with_name(path.name + ".parts").glob("part.*")))
        phases = _nested(phases)
        final_phases = _time_finalize_phases()
        t = time.perf_counter()
        w.finalize()
        t_final = time.perf_counter() - t

    with open_cache(path) as r:
        t = time.perf_counter()
        for k in layers:
            r.pooled(k, "meanstd")
        t_pooled = time.perf_counter() - t
        pick = sorted(rng.choice(r.ids, size=min(500, a.clips), replace=False).tolist())
        t = time.perf_counter()
        r.frames(frame_layer, pick)
        t_many = time.perf_counter() - t
        t = time.perf_counter()
        kept = [r.frames(frame_layer, [i]) for i in pick]  # outputs kept alive, as in one call
        t_one = time.perf_counter() - t
        del kept
        t = time.perf_counter()
        r.frames(frame_layer)
        t_all = time.perf_counter() - t
    gb = nbytes / 1e9
    n_batches = -(-a.clips // a.batch)
    print(json.dumps({
        "data_GB": round(gb, 3),
        "baseline_h5py_GB_per_s": round(gb / t_base, 2),
        "durable_baseline_GB_per_s": round(gb / t_durable, 2),
        "cachewriter_GB_per_s": round(gb / t_write, 2),
        "cachewriter_vs_durable_baseline": round(t_durable / t_write, 2),
        "cachewriter_vs_durable_baseline_median_batch": round(
            float(np.median(per_batch["durable"]) / np.median(per_batch["writer"])), 2),
        "cachewriter_vs_durable_baseline_cpu": round(c_durable / c_write, 2),
        "cachewriter_ms_per_batch": {k: round(v * 1000 / n_batches, 1) for k, v in phases.items()}
        | {"total": round(t_write * 1000 / n_batches, 1)},
        "durable_baseline_ms_per_batch": round(t_durable * 1000 / n_batches, 1),
        "cpu_ms_per_batch": {k: round(CPU[k] * 1000 / n_batches, 1) for k in phases}
        | {"cachewriter_total": round(c_write * 1000 / n_batches, 1),
           "durable_baseline_total": round(c_durable * 1000 / n_batches, 1)},
        "finalize_cpu_s": {k: round(CPU[k], 2) for k in final_phases},
        "parts_before_finalize": n_parts,
        "finalize_s": round(t_final, 2),
        "finalize_phases_s": {k: round(v, 2) for k, v in final_phases.items()}
        | {"other": round(t_final - sum(final_phases.values()), 2)},
        "finalize_GB_per_s": round(gb / t_final, 2),
        "pooled_all_layers_meanstd_s": round(t_pooled, 3),
        "frames_500_random_clips_one_call_s": round(t_many, 3),
        "frames_same_clips_one_call_each_s": round(t_one, 3),
        "frames_all_clips_s": round(t_all, 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }, indent=1))
    shutil.rmtree(root)
    os.sync()


CPU: dict[str, float] = {}  # CPU seconds of this thread per phase (robust to a busy machine)


def _timer(spent: dict[str, float], key: str, fn):
    CPU.setdefault(key, 0.0)

    def run(*args, **kwargs):
        t, c = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - t
            CPU[key] += time.thread_time() - c
    return run


def _modules():
    """The cache's internal modules (this script also times the code before the split of store.py)."""
    import importlib

    def find(*names):
        for n in names:
            try:
                return importlib.import_module(f"embedprobe.cache.{n}")
            except ImportError:
                pass
        raise ImportError(names)

    return find("durable", "store"), find("merge", "store"), find("writer"), find("snapshot")


def _time_writer_phases() -> dict[str, float]:
    """Seconds CacheWriter.write spends per phase (wrapped in place; this script only):
    validating and stacking the batch (with its checksums), building the part file (an HDF5
    image in memory before raw parts; a raw part's header), writing + fsync + rename, and
    merging small parts."""
    durable, _, w, _ = _modules()
    spent = {"validate_stack": 0.0, "part_image": 0.0, "write_fsync_rename": 0.0, "compaction": 0.0}
    w.Block.from_results = _timer(spent, "validate_stack", w.Block.from_results)
    if hasattr(durable, "file_image"):  # HDF5 part files built in memory
        durable.file_image = _timer(spent, "part_image", durable.file_image)
    else:  # raw parts: write_raw_part builds the header and calls commit_bytes (see _nested)
        w.write_raw_part = _timer(spent, "part_image", w.write_raw_part)
    durable.commit_bytes = _timer(spent, "write_fsync_rename", durable.commit_bytes)
    w.CacheWriter._compact = _timer(spent, "compaction", w.CacheWriter._compact)
    return spent


def _nested(spent: dict[str, float]) -> dict[str, float]:
    """Raw parts: ``part_image`` was timed around ``write_fsync_rename``; keep only its own time."""
    if not hasattr(_modules()[0], "file_image"):
        spent["part_image"] -= spent["write_fsync_rename"]
        CPU["part_image"] -= CPU["write_fsync_rename"]
    return spent


def _time_finalize_phases() -> dict[str, float]:
    """Seconds finalize spends opening the parts (snapshot), copying pooled vectors and frames
    (read, hash, check, write), and making the new main file durable (fsync, rename)."""
    durable, merge, _, snapshot = _modules()
    spent = {"open_parts": 0.0, "copy_pooled": 0.0, "copy_frames": 0.0, "fsync_rename": 0.0}
    snapshot.Snapshot.open = classmethod(_timer(spent, "open_parts", snapshot.Snapshot.open.__func__))
    if hasattr(merge, "_copy_pooled"):
        merge._copy_pooled = _timer(spent, "copy_pooled", merge._copy_pooled)
    else:
        spent.pop("copy_pooled")  # before: inline in write_merged (counted in "other")
    merge._copy_frames = _timer(spent, "copy_frames", merge._copy_frames)
    snapshot.commit = _timer(spent, "fsync_rename", snapshot.commit)
    return spent


if __name__ == "__main__":
    main()

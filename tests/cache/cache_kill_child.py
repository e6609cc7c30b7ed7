"""Child process of the kill-and-resume test: writes a synthetic cache batch by batch.

Usage: python cache_kill_child.py CACHE LOG N_CLIPS BATCH [SHARD N_SHARDS]

Appends to LOG (flushed, one line per event): ``R <pid>`` once the writer is open,
``S <k> <id,id,...>`` before committing batch k, ``C <k>`` after it returned, ``F`` before
finalize and ``D`` after it. Clips for which ``fails(id)`` holds are written as errors.
"""

from __future__ import annotations

import os
import random
import sys
import time

from cache_synth import fails, kwargs, make_manifest, result

from embedprobe.cache import CacheWriter


def main() -> None:
    path, log_path, n, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    shard = dict(shard=int(sys.argv[5]), n_shards=int(sys.argv[6])) if len(sys.argv) > 6 else {}
    log = open(log_path, "a", buffering=1)
    manifest = make_manifest(n)
    with CacheWriter(path, **kwargs(manifest), compact_every=3, **shard) as w:
        log.write(f"R {os.getpid()}\n")
        todo = w.pending_ids()
        for k in range(0, len(todo), batch):
            ids = todo[k:k + batch]
            res = [result(c) for c in ids if not fails(c)]
            errs = [(c, f"wav/{c}.wav", "decode failed") for c in ids if fails(c)]
            log.write(f"S {k} {','.join(ids)}\n")
            w.write(res, errs)
            log.write(f"C {k}\n")
            time.sleep(random.uniform(0, 0.004))
        log.write("F\n")
        w.finalize()
        log.write("D\n")


if __name__ == "__main__":
    main()

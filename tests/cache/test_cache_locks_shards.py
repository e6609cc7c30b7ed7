"""One writer per cache (or per shard); shard writers side by side; merge."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cache_synth import kwargs, make_manifest, result

from embedprobe.cache import (
    CacheLockedError,
    CacheWriter,
    merge,
    open_cache,
    remove_cache,
    shard_ids,
    shard_of,
)
from embedprobe.errors import BadValueError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}


def test_second_writer_object_is_refused(tmp_path):
    m = make_manifest(4)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(m.ids[0])])
        with pytest.raises(CacheLockedError, match=rf"pid {os.getpid()} on host .*{path.name}.lock") as e:
            CacheWriter(path, **kwargs(m))
        assert "--shard" in str(e.value)
        with pytest.raises(CacheLockedError):
            CacheWriter(path, **kwargs(m), shard=0, n_shards=2)
        with pytest.raises(CacheLockedError, match="writers are still running"):
            merge(path)
    with CacheWriter(path, **kwargs(m)) as w:  # released on close
        assert w.done_ids == {m.ids[0]}


def test_lock_of_a_killed_writer_is_released(tmp_path):
    path = tmp_path / "c.h5"
    log = tmp_path / "log"
    holder = (
        "import sys, time\n"
        "from cache_synth import kwargs, make_manifest\n"
        "from embedprobe.cache import CacheWriter\n"
        "w = CacheWriter(sys.argv[1], **kwargs(make_manifest(4)))\n"
        "open(sys.argv[2], 'w').write('ready')\n"
        "time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", holder, str(path), str(log)], env=child_env())
    try:
        deadline = time.time() + 30
        while not log.exists() and time.time() < deadline:
            time.sleep(0.02)
        assert log.exists(), "holder process did not start"
        with pytest.raises(CacheLockedError, match=rf"pid {p.pid} "):
            CacheWriter(path, **kwargs(make_manifest(4)))
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    with CacheWriter(path, **kwargs(make_manifest(4))) as w:
        assert not w.done_ids


def test_shard_assignment_is_a_stable_partition():
    ids = [f"clip{i}" for i in range(200)]
    parts = [shard_ids(ids, k, 3) for k in range(3)]
    assert sorted(sum(parts, [])) == sorted(ids) and all(len(p) > 40 for p in parts)
    assert [shard_of("03a01Fa", n) for n in (2, 3, 7)] == [0, 2, 1]  # pinned: workers on other machines must agree
    with pytest.raises(BadValueError, match="shards are numbered"):
        shard_ids(ids, 3, 3)


def test_shards_and_merge_equal_one_writer(tmp_path):
    m = make_manifest(45)
    one = tmp_path / "one.h5"
    with CacheWriter(one, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids])
        w.finalize()
    path = tmp_path / "sharded.h5"
    writers = [CacheWriter(path, **kwargs(m), shard=k, n_shards=3, compact_every=2) for k in range(3)]
    with pytest.raises(CacheLockedError, match="shard 1 of 3"):
        CacheWriter(path, **kwargs(m), shard=1, n_shards=3)
    with pytest.raises(CacheLockedError):
        CacheWriter(path, **kwargs(m))  # a plain writer next to shard writers
    with pytest.raises(BadValueError, match="for shard 0 of 3"):
        writers[0].write([result(writers[1].pending_ids()[0])])
    for _ in range(4):  # interleaved batches, as parallel workers would commit them
        for w in writers:
            todo = w.pending_ids()[:4]
            w.write([result(c) for c in todo])
    with open_cache(path) as r:  # readable mid-way, from parts only
        assert not r.complete and 0 < r.n_clips < 45
    assert writers[0].finalize() == path and not writers[0].merged  # others still running
    for w in writers[1:]:
        w.write([result(c) for c in w.pending_ids()])
    writers[1].finalize()
    assert not writers[1].merged
    writers[2].finalize()
    assert writers[2].merged  # the last one merges
    with open_cache(one) as a, open_cache(path) as b:
        assert b.complete and a.ids == b.ids and a.fingerprint == b.fingerprint
        for layer in a.layers:
            np.testing.assert_array_equal(a.pooled(layer, "meanstd"), b.pooled(layer, "meanstd"))
            for x, y in zip(a.frames(layer), b.frames(layer), strict=True):
                np.testing.assert_array_equal(x, y)
        assert len({s["tag"] for s in b.sessions}) == 3
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("sharded")) == [
        "sharded.h5", "sharded.h5.lock"]


def test_merge_after_shard_workers_stopped(tmp_path):
    m = make_manifest(20)
    path = tmp_path / "c.h5"
    for k in range(2):
        with CacheWriter(path, **kwargs(m), shard=k, n_shards=2) as w:
            w.write([result(c) for c in w.pending_ids()])  # closed without finalize (as if killed)
    with open_cache(path) as r:
        assert r.ids == m.ids and not r.complete
    assert merge(path) == path
    with open_cache(path) as r:
        assert r.ids == m.ids and r.complete and r.info()["n_parts"] == 0


def test_sharded_overwrite_needs_stopped_writers_and_remove_cache(tmp_path):
    m = make_manifest(10)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m), shard=0, n_shards=2) as w0:
        w0.write([result(c) for c in w0.pending_ids()])
        with pytest.raises(CacheLockedError, match="remove_cache"):
            CacheWriter(path, **kwargs(m), shard=1, n_shards=2, overwrite=True)
        with pytest.raises(CacheLockedError):
            remove_cache(path)
    remove_cache(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5.lock"]


def test_shard_worker_processes_in_parallel_make_one_cache(tmp_path):
    from cache_synth import fails, frames_of

    n = 120
    path = tmp_path / "c.h5"
    procs = [subprocess.Popen([sys.executable, str(HERE / "cache_kill_child.py"), str(path),
                               str(tmp_path / f"log{k}"), str(n), "4", str(k), "3"],
                              env=child_env(), stderr=subprocess.PIPE) for k in range(3)]
    from fault_report import cache_state, communicate, tail

    for k, p in enumerate(procs):
        _, err = communicate(p, 120, f"shard {k}")
        assert p.returncode == 0, f"shard {k}: exit {p.returncode}\n    {tail(err)}\n{cache_state(path)}"
    m = make_manifest(n)
    with open_cache(path) as r:  # the last worker to finish merged everything
        assert r.complete and r.info()["n_parts"] == 0, cache_state(path)
        assert r.ids == [c for c in m.ids if not fails(c)]
        np.testing.assert_array_equal(r.frames("layer_1", r.ids[-1:])[0], frames_of(r.ids[-1], "layer_1", 4))

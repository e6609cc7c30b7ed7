"""Crash safety: kill -9 at random moments, leftovers of interrupted merges, torn files."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from cache_synth import IDENTITY, content_hash_of, fails, frames_of, kwargs, make_manifest, result
from fault_report import cache_state, communicate, tail

import embedprobe.cache.compaction as compaction_mod
import embedprobe.cache.snapshot as snapshot_mod
from embedprobe.cache import CacheError, CacheWriter, open_cache

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHILD = HERE / "cache_kill_child.py"


def parse_log(text: str) -> tuple[dict[int, list[str]], set[int], bool]:
    started, committed, done = {}, set(), False
    for line in text.splitlines():
        parts = line.split(" ")
        if parts[0] == "S" and len(parts) == 3:
            started[int(parts[1])] = parts[2].split(",")
        elif parts[0] == "C" and len(parts) == 2:
            committed.add(int(parts[1]))
        elif parts[0] == "D":
            done = True
    return started, committed, done


def check_values(r, ids) -> None:
    if not ids:
        return
    for layer, dim in r.dims.items():
        got = r.pooled(layer, "meanstd", ids)
        expect = np.stack([np.concatenate([frames_of(c, layer, dim).mean(0), frames_of(c, layer, dim).std(0)])
                           for c in ids])
        np.testing.assert_array_equal(got, expect)
        for c, f in zip(ids, r.frames(layer, ids), strict=True):
            np.testing.assert_array_equal(f, frames_of(c, layer, dim))
    assert list(r.clip_table(ids)["content_hash"]) == [content_hash_of(c) for c in ids]


def test_kill_9_at_random_moments_then_resume(tmp_path):
    """A real writer process is killed (SIGKILL) 15 times at random moments, mid-batch,
    mid-compaction or mid-finalize; after every kill the cache opens, keeps every batch whose
    write() returned, and loses at most the one batch in flight; the last run completes it."""
    n, batch = 320, 4
    m = make_manifest(n)
    path, log_path = tmp_path / "c.h5", tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    rng = random.Random(1234)
    committed_ids: set[str] = set()
    kills = 0
    moments = {"before the writer opened": 0, "between/within batches": 0, "during finalize": 0, "after": 0}
    seen: list[str] = []

    def report() -> str:  # what every run saw, for failure messages
        return "\n".join(seen[-6:]) + "\n" + cache_state(path)

    for run in range(40):
        log_path.write_text("")
        proc = subprocess.Popen([sys.executable, str(CHILD), str(path), str(log_path), str(n), str(batch)],
                                env=env, stderr=subprocess.PIPE)
        final_run = kills >= 15
        if final_run:
            _, err = communicate(proc, 120, "final run")
            assert proc.returncode == 0, f"final run: exit {proc.returncode}\n    {tail(err)}\n{report()}"
        else:
            u = rng.random()
            if u < 0.2:  # anywhere, start-up and opening included
                time.sleep(rng.uniform(0.0, 0.8))
            else:  # mid-write, or (later on) mid-finalize
                mark = "\nF" if kills >= 9 and u < 0.6 else "R "
                deadline = time.time() + 30
                while mark not in log_path.read_text() and proc.poll() is None and time.time() < deadline:
                    time.sleep(0.002)
                time.sleep(rng.uniform(0.0, 0.03 if mark == "\nF" else 0.25))
            os.kill(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            kills += proc.returncode == -signal.SIGKILL
        started, committed, done = parse_log(log_path.read_text())
        seen.append(f"run {run}: exit {proc.returncode}, log tail {log_path.read_text()[-80:]!r}, "
                    f"output:\n    {tail(err, 6)}")
        if not final_run:
            text = log_path.read_text()
            moment = ("before the writer opened" if "R " not in text else "after" if done
                      else "during finalize" if "\nF" in text else "between/within batches")
            moments[moment] += 1
        if not path.exists() and not path.with_name("c.h5.parts").exists():
            assert not committed
            continue
        with open_cache(path) as r:  # opens after every kill
            have = set(r.ids) | {e["id"] for e in r.errors}
            assert len(r.ids) == len(set(r.ids)), f"a clip is stored twice\n{report()}"
            for k in committed:  # durability: whatever write() returned is there
                assert set(started[k]) <= have, f"run {run}: committed batch {k} lost\n{report()}"
            in_flight = [k for k in started if k not in committed]
            assert len(in_flight) <= 1, f"run {run}: {in_flight}\n{report()}"
            lost = [c for k in in_flight for c in started[k] if c not in have]
            assert len(lost) <= batch, f"run {run}: lost {lost}\n{report()}"
            assert committed_ids <= have, f"run {run}: an earlier run's batch disappeared\n{report()}"
            committed_ids = have
            if done:
                assert r.complete, report()
            check_values(r, rng.sample(r.ids, min(20, len(r.ids))))
        if final_run:
            break
    print("kill moments:", moments)
    assert kills >= 15 and moments["between/within batches"] >= 3 and moments["during finalize"] >= 1, \
        f"{moments}\n{report()}"
    assert done, f"the final run did not finish\n{report()}"
    with open_cache(path) as r:
        good = [c for c in m.ids if not fails(c)]
        assert r.complete and r.ids == good
        assert sorted(e["id"] for e in r.errors) == sorted(c for c in m.ids if fails(c))
        check_values(r, good)
        assert r.info()["n_parts"] == 0
    with h5py.File(path, "r") as f:  # every clip exactly once in the one consolidated file
        ids = list(f["clips/id"].asstr()[()])
        assert ids == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5", "c.h5.lock", "log"]


def test_interrupted_compaction_and_finalize_leave_readable_duplicates(tmp_path, monkeypatch):
    m = make_manifest(24)
    path = tmp_path / "c.h5"
    monkeypatch.setattr(compaction_mod, "unlink_quiet", lambda p: None)  # die after merge commits, before deletes
    with CacheWriter(path, **kwargs(m), compact_every=2) as w:
        for k in range(0, 16, 4):
            w.write([result(c) for c in m.ids[k:k + 4]])
    parts_dir = path.with_name("c.h5.parts")
    n_files = len(list(parts_dir.glob("part.*")))
    assert n_files == 7  # 4 level-0 parts, 2 level-1, 1 level-2: all still on disk
    with open_cache(path) as r:
        assert r.ids == m.ids[:16] and r.info()["n_parts"] == 1  # copies recognised
        check_values(r, r.ids)
    monkeypatch.setattr(snapshot_mod, "unlink_quiet", lambda p: None)  # die right after os.replace
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids[16:]])
        w.finalize()
    assert len(list(parts_dir.glob("part.*"))) == 8
    with open_cache(path) as r:
        assert r.complete and r.ids == m.ids and r.info()["n_parts"] == 0
        check_values(r, r.ids)
    monkeypatch.undo()
    with CacheWriter(path, **kwargs(m)) as w:  # the next writer removes the leftovers
        assert w.done_ids == set(m.ids)
    assert not list(parts_dir.glob("part.*"))


def test_torn_and_garbage_files_are_ignored(tmp_path):
    m = make_manifest(12)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids[:4]])
        w.write([result(c) for c in m.ids[4:8]])
    parts_dir = path.with_name("c.h5.parts")
    real = sorted(parts_dir.glob("part.*"))[0]
    torn = parts_dir / "part.all.L0.09999999999999999999.cafebabe.000001.h5"
    torn.write_bytes(real.read_bytes()[: real.stat().st_size // 2])  # half-written part
    (parts_dir / ".tmp.all.deadbeef.000003.h5").write_bytes(b"\x89HDF garbage" * 100)
    (tmp_path / "c.h5.tmp-999-abcdef").write_bytes(os.urandom(1000))
    # a part of another cache configuration dropped into the directory
    other = tmp_path / "other.h5"
    with CacheWriter(other, **kwargs(m, identity={**IDENTITY, "corpus": "x"})) as w:
        w.write([result(c) for c in m.ids[8:]])
    shutil.copy(next(other.with_name("other.h5.parts").glob("part.*")),
                parts_dir / "part.all.L0.09999999999999999998.0badf00d.000001.h5")
    with pytest.warns(UserWarning, match="damaged cache part"):
        r = open_cache(path)
    with r:
        assert r.ids == m.ids[:8]
        check_values(r, r.ids)
    with pytest.warns(UserWarning, match="moved it to"):
        w = CacheWriter(path, **kwargs(m))
    with w:
        assert w.done_ids == set(m.ids[:8])
        w.write([result(c) for c in w.pending_ids()])
        w.finalize()
    with open_cache(path) as r:
        assert r.complete and r.ids == m.ids
        check_values(r, r.ids)
    assert not (tmp_path / "c.h5.tmp-999-abcdef").exists()
    assert sorted(p.name for p in parts_dir.iterdir()) == sorted([torn.name + ".corrupt",
                                                                   "part.all.L0.09999999999999999998.0badf00d.000001.h5.corrupt"])


def test_reader_of_a_cache_without_main_file(tmp_path):
    m = make_manifest(10)
    path = tmp_path / "c.h5"
    w = CacheWriter(path, **kwargs(m))
    w.write([result(c) for c in m.ids[:5]])
    assert not path.exists()
    with open_cache(path) as r:  # while the writer is still open
        assert r.ids == m.ids[:5] and not r.complete
        check_values(r, r.ids)
        w.write([result(c) for c in m.ids[5:]])
        assert r.ids == m.ids[:5]  # a snapshot: later batches need a new reader
    w.finalize()
    with open_cache(path) as r:
        assert r.ids == m.ids and r.complete


def test_damaged_main_file_is_reported_and_overwrite_recovers(tmp_path):
    m = make_manifest(4)
    path = tmp_path / "corpus__model.h5"  # a cache's name: damaged, not a foreign file
    path.write_bytes(b"not an hdf5 file" * 64)
    with pytest.raises(CacheError, match="main file of a cache.*--overwrite"):
        open_cache(path)
    with pytest.raises(CacheError, match="--overwrite"):
        CacheWriter(path, **kwargs(m))
    with CacheWriter(path, **kwargs(m), overwrite=True) as w:
        w.write([result(c) for c in m.ids])
        w.finalize()
    with open_cache(path) as r:
        assert r.complete and r.ids == m.ids


def test_readers_during_a_live_writer_process(tmp_path):
    """Readers opened again and again while another process writes, compacts and finalizes
    always see a consistent, growing cache with correct values."""
    n = 240
    path, log_path = tmp_path / "c.h5", tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    proc = subprocess.Popen([sys.executable, str(CHILD), str(path), str(log_path), str(n), "3"], env=env,
                            stderr=subprocess.PIPE)
    rng = random.Random(7)
    seen, opened = 0, 0
    try:
        while proc.poll() is None:
            if path.exists() or path.with_name("c.h5.parts").joinpath("header.json").exists():
                with open_cache(path) as r:
                    assert len(r.ids) >= seen and len(set(r.ids)) == len(r.ids)
                    seen = len(r.ids)
                    check_values(r, rng.sample(r.ids, min(5, len(r.ids))))
                    opened += 1
            time.sleep(0.01)
    finally:
        _, err = communicate(proc, 120, "writer")
    assert proc.returncode == 0, f"writer: exit {proc.returncode}\n    {tail(err)}\n{cache_state(path)}"
    assert opened >= 5, f"readers opened the cache only {opened} times\n{cache_state(path)}"
    with open_cache(path) as r:
        assert r.complete and len(r.ids) == sum(not fails(c) for c in make_manifest(n).ids)

"""Raw part files (format 3): written from the batch's arrays, read like HDF5 parts, damage always
noticed; older HDF5 batch parts (format 2) still open, resume, compact and finalize with them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from cache_synth import fails, kwargs, make_manifest, result
from test_cache_crash import check_values

from embedprobe.cache import CacheWriter, open_cache
from embedprobe.cache import durable as durable_mod
from embedprobe.cache.digest import _GOLD, _LEN, combine_ranges
from embedprobe.cache.layout import Layout
from embedprobe.cache.rawpart import MAGIC, is_raw
from embedprobe.cache.segment import CorruptSegmentError, Segment
from embedprobe.cache.verify import verify_cache

V2_FIXTURE = Path(__file__).parents[1] / "fixtures" / "cache_v2_parts"


def write_batches(path, m, ids, batch=4, **kw):
    with CacheWriter(path, **kwargs(m, **kw)) as w:
        for a in range(0, len(ids), batch):
            chunk = ids[a:a + batch]
            w.write([result(c) for c in chunk if not fails(c)],
                    [(c, f"wav/{c}.wav", "decode failed") for c in chunk if fails(c)])


def test_batch_parts_are_raw_and_read_back_exactly(tmp_path):
    m = make_manifest(12)
    path = tmp_path / "c.h5"
    write_batches(path, m, m.ids, compact_every=100)
    layout = Layout(path)
    parts = [layout.part_path(p) for p in layout.parts()]
    assert len(parts) == 3 and all(is_raw(p) for p in parts), parts
    good = [c for c in m.ids if not fails(c)]
    with open_cache(path) as r:
        assert r.ids == good and not r.complete
        check_values(r, good)
        assert {e["id"] for e in r.errors} == {c for c in m.ids if fails(c)}
    assert verify_cache(path).ok


@pytest.mark.parametrize("damage", ["truncated", "appended", "header", "magic-length"])
def test_damaged_raw_part_is_refused_with_its_name(tmp_path, damage):
    m = make_manifest(8)
    path = tmp_path / "c.h5"
    write_batches(path, m, m.ids, compact_every=100)
    part = Layout(path).part_path(Layout(path).parts()[0])
    data = bytearray(part.read_bytes())
    if damage == "truncated":
        data = data[:-3]
    elif damage == "appended":
        data += b"\0"
    elif damage == "header":
        data[40] ^= 0x01
    else:
        data[8] ^= 0x40  # the header length
    part.write_bytes(bytes(data))
    with pytest.raises(CorruptSegmentError, match=part.name):
        Segment(part)
    rep = verify_cache(path)
    assert any("damaged part" in p and part.name in p for p in rep.problems), (damage, rep.lines())


def test_partial_writes_are_completed(tmp_path, monkeypatch):
    real = os.writev

    def dribble(fd, bufs):  # a kernel that takes at most 7 bytes per call
        first = memoryview(bufs[0]).cast("B")
        return real(fd, [first[:7]])

    monkeypatch.setattr(os, "writev", dribble)
    tmp, final = tmp_path / "t", tmp_path / "f"
    arrays = [b"abc", np.arange(10, dtype=np.float16), np.zeros((0, 4), np.float32), b"xyz" * 5]
    durable_mod.commit_bytes(arrays, tmp, final)
    assert final.read_bytes() == b"abc" + np.arange(10, dtype=np.float16).tobytes() + b"xyz" * 5
    assert not tmp.exists()


def test_combine_ranges_follows_its_definition():
    rng = np.random.default_rng(0)
    rowd = rng.integers(0, 2**63, 400, dtype=np.uint64) * np.uint64(3)
    starts = rng.integers(0, 380, 60)
    stops = starts + rng.integers(0, 20, 60)
    want = []
    with np.errstate(over="ignore"):
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            v = np.uint64(b - a) * _LEN
            for k in range(b - a):
                v = v + np.uint64(2 * k + 1) * _GOLD * rowd[a + k]
            want.append(v)
    np.testing.assert_array_equal(combine_ranges(rowd, starts, stops), np.array(want, np.uint64))


def test_v2_hdf5_parts_open_resume_compact_and_finalize(tmp_path):
    """tests/fixtures/cache_v2_parts: two HDF5 batch parts of format 2 (make_v2_parts_cache.py)."""
    shutil.copytree(V2_FIXTURE, tmp_path / "v2")
    path = tmp_path / "v2" / "c.h5"
    m = make_manifest(16)
    old = [c for c in m.ids[:8] if not fails(c)]
    layout = Layout(path)
    assert [is_raw(layout.part_path(p)) for p in layout.parts()] == [False, False]
    assert not layout.part_path(layout.parts()[0]).read_bytes().startswith(MAGIC)
    with open_cache(path) as r:
        assert r.ids == old
        check_values(r, old)
    assert verify_cache(path).ok
    # resume: new raw parts next to the HDF5 ones; compact_every=3 merges old and new together
    with CacheWriter(path, **kwargs(m, compact_every=3)) as w:
        assert w.pending_ids() == [c for c in m.ids if c not in old]
        for a in range(8, 16, 4):
            chunk = m.ids[a:a + 4]
            w.write([result(c) for c in chunk if not fails(c)],
                    [(c, f"wav/{c}.wav", "decode failed") for c in chunk if fails(c)])
        # the two HDF5 parts and the first raw part were merged into one level-1 part
        assert sorted(p.level for p in layout.parts()) == [0, 1], layout.parts()
        good = [c for c in m.ids if not fails(c)]
        with open_cache(path) as r:
            assert r.ids == good
            check_values(r, good)
        w.finalize()
    with open_cache(path) as r:
        assert r.complete and r.ids == good
        check_values(r, good)
    assert verify_cache(path).ok


@pytest.mark.parametrize("overlap", [False, True])
def test_ranges_hashed_inline_or_on_a_second_thread_give_the_stored_digests(tmp_path, monkeypatch, overlap):
    import h5py

    from embedprobe.cache import rangeio
    from embedprobe.cache.digest import clip_digests

    if overlap:  # every run goes to the hashing thread, whatever the machine
        monkeypatch.setattr(rangeio, "OVERLAP_MIN_CPUS", 1)
        monkeypatch.setattr(rangeio, "OVERLAP_BYTES", 1)
        monkeypatch.setattr(rangeio, "_MAX_PENDING", 2)
    monkeypatch.setattr(rangeio, "SPAN_BYTES", 4096)  # many spans and runs
    rng = np.random.default_rng(1)
    data = rng.standard_normal((3000, 12)).astype(np.float16)
    off = np.concatenate([[0], np.cumsum(rng.integers(0, 40, 150))])
    off = off[off <= len(data)]
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"] = data
    want = clip_digests(data, off)
    pick = rng.permutation(len(off) - 1)[:60]  # unordered, with gaps between them
    with h5py.File(tmp_path / "d.h5", "r") as f:
        got = np.empty(len(pick), np.uint64)
        pieces = rangeio.read_ranges(f["x"], off[pick], off[pick + 1], np.float32, digests=got)
    np.testing.assert_array_equal(got, want[pick])
    for k, p in zip(pick.tolist(), pieces, strict=True):
        np.testing.assert_array_equal(p, data[off[k]:off[k + 1]].astype(np.float32))


@pytest.mark.parametrize("layers", [{"a": 8, "b": 8, "c": 8}, {"a": 8, "b": 6}, {"a": 5, "b": 5}])
def test_batch_packs_pooled_vectors_and_digests_them_like_each_array(layers):
    from embedprobe.cache.batch import Block
    from embedprobe.cache.digest import columns, row_digests
    from embedprobe.cache.schema import Header, packed_columns

    header = Header(provenance={}, identity={}, manifest_json="", layers=layers, frame_layers=(), dtype="float16")
    results = [result(f"c{i:04d}", layers, frames=False) for i in range(5)]
    block = Block.from_results(header, results, [])
    cols = columns(layers, ())
    for (stat, layer), (c0, c1) in packed_columns(layers).items():
        want = np.array([getattr(r.layers[layer], stat) for r in results], np.float16)
        np.testing.assert_array_equal(block.pooled[:, c0:c1], want)
        np.testing.assert_array_equal(block.digests[:, cols[(stat, layer)]], row_digests(want))

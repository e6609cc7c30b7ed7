"""Fault injection: random byte flips, damaged metadata and deleted part files are always noticed,
damaged clips are named and never used, and resuming re-extracts them into a clean cache."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from cache_synth import LAYERS, fails, kwargs, make_manifest, result

from embedprobe.cache import CacheError, CacheWriter, open_cache
from embedprobe.cache.layout import Layout
from embedprobe.cache.rawpart import is_raw
from embedprobe.cache.segment import DamagedClipsError, Segment
from embedprobe.cache.verify import verify_cache

FIXTURE = Path(__file__).parents[1] / "fixtures" / "cache_v1_nochecksums.h5"


def fill(path, m, ids=None, batch=4, finalize=True, **kw):
    ids = m.ids if ids is None else ids
    with CacheWriter(path, **kwargs(m, **kw)) as w:
        for a in range(0, len(ids), batch):
            chunk = [c for c in ids[a:a + batch] if c in set(w.pending_ids())]
            w.write([result(c) for c in chunk if not fails(c)],
                    [(c, f"wav/{c}.wav", "decode failed") for c in chunk if fails(c)])
        if finalize:
            w.finalize()


def resume(path, m, **kw):
    """Re-run the extraction: extract what the writer says is pending, finalize. Returns its warnings."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with CacheWriter(path, **kwargs(m, **kw)) as w:
            pending = w.pending_ids()
            w.write([result(c) for c in pending if not fails(c)],
                    [(c, f"wav/{c}.wav", "decode failed") for c in pending if fails(c)])
            w.finalize()
    return [str(x.message) for x in seen], pending


def snapshot(path):
    """Everything a reader returns, for comparing two caches."""
    with open_cache(path) as r:
        out = {"ids": list(r.ids), "errors": [e["id"] for e in r.errors], "complete": r.complete,
               "fingerprint": r.fingerprint}
        for layer in r.layers:
            out[layer] = (r.pooled(layer, "meanstd"), r.frames(layer))
    return out


def assert_same(a, b, what):
    assert a["ids"] == b["ids"] and a["errors"] == b["errors"] and a["complete"] == b["complete"], what
    assert a["fingerprint"] == b["fingerprint"], what
    for layer in LAYERS:
        np.testing.assert_array_equal(a[layer][0], b[layer][0], err_msg=what)
        for x, y in zip(a[layer][1], b[layer][1], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=what)


def raw_regions(path):
    """``vector_regions`` of a raw part file (a batch's part, ``rawpart.py``)."""
    seg = Segment(path)
    try:
        ids, d = seg.ids, seg.packed
        out = [("pooled/packed", d.offset, d.nbytes, lambda pos, rb=d.row_bytes: ids[pos // rb])]
        for layer in seg.frame_layers:
            d, off = seg.dset("frames", layer, "data"), seg.offsets[layer]
            out.append((f"frames/{layer}/data", d.offset, d.nbytes, lambda pos, rb=d.row_bytes, off=off:
                        ids[int(np.searchsorted(off, pos // rb, side="right")) - 1]))
    finally:
        seg.close()
    return [r for r in out if r[2]]


def vector_regions(path):
    """``[(name, file offset, nbytes, row -> clip id)]`` of every vector dataset of a segment."""
    if is_raw(path):
        return raw_regions(path)
    out = []
    with h5py.File(path, "r") as f:
        ids = f["clips/id"].asstr()[()].tolist()
        for layer in f["pooled"]:
            for stat in ("mean", "std") if layer != "packed" else ():
                d = f[f"pooled/{layer}/{stat}"]
                rb = d.dtype.itemsize * d.shape[1]
                out.append((d.name, d.id.get_offset(), d.id.get_storage_size(),
                            lambda pos, rb=rb: ids[pos // rb]))
        if "pooled/packed" in f:  # format 2 (a batch's part file): every layer's mean and std in one row
            d = f["pooled/packed"]
            rb = d.dtype.itemsize * d.shape[1]
            out.append((d.name, d.id.get_offset(), d.id.get_storage_size(), lambda pos, rb=rb: ids[pos // rb]))
        for layer in f.get("frames", {}):
            d = f[f"frames/{layer}/data"]
            rb = d.dtype.itemsize * d.shape[1]
            off = f[f"frames/{layer}/offsets"][()]
            out.append((d.name, d.id.get_offset(), d.id.get_storage_size(),
                        lambda pos, rb=rb, off=off: ids[int(np.searchsorted(off, pos // rb, side="right")) - 1]))
    return [r for r in out if r[1] is not None and r[2]]


def flip_vectors(path, n, rng):
    """XOR ``n`` random bytes of the vector data of ``path`` with random non-zero bytes; returns the
    ids of the clips whose stored values changed."""
    regions = vector_regions(path)
    sizes = np.array([r[2] for r in regions], np.int64)
    hit = set()
    with open(path, "r+b") as fh:
        for _ in range(n):
            k = int(rng.choice(len(regions), p=sizes / sizes.sum()))
            name, base, size, clip_of = regions[k]
            pos = int(rng.integers(size))
            fh.seek(base + pos)
            b = fh.read(1)[0]
            fh.seek(base + pos)
            fh.write(bytes([b ^ int(rng.integers(1, 256))]))
            hit.add(clip_of(pos))
    return hit


def first_part(path):
    layout = Layout(path)
    return layout.part_path(layout.parts()[0])


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_byte_flips_in_finished_cache_are_named_excluded_and_reextracted(tmp_path, dtype, seed):
    m = make_manifest(40)
    clean, path = tmp_path / "clean.h5", tmp_path / "c.h5"
    fill(clean, m, dtype=dtype)
    fill(path, m, dtype=dtype)
    rng = np.random.default_rng(seed)
    hit = flip_vectors(path, int(rng.integers(1, 60)), rng)
    rep = verify_cache(path)
    named = {cid for _, cid, _ in rep.damaged}
    saw = f"flipped clips {sorted(hit)}; verify said {rep.lines()}"
    assert named == hit and not rep.ok, saw
    named_on_read = set()
    with open_cache(path) as r:  # opening is cheap; every read of a damaged clip is refused
        for layer in r.layers:
            for what in ("mean", "std", "frames"):
                try:
                    r.frames(layer) if what == "frames" else r.pooled(layer, what)
                except DamagedClipsError as e:
                    assert str(path) in str(e) and "re-run the extraction" in str(e), f"{saw}; {e}"
                    named_on_read |= {f[1] for f in e.found}
        assert named_on_read == hit, f"{saw}; reads named {sorted(named_on_read)}"
        good = [i for i in r.ids if i not in hit]
        for layer in r.layers:  # undamaged clips stay readable
            r.pooled(layer, "meanstd", good)
            r.frames(layer, good)
    said, pending = resume(path, m, dtype=dtype)
    assert set(pending) == hit | {c for c in m.ids if fails(c)}, f"{saw}; resume re-extracted {pending}; {said}"
    assert any(sorted(hit)[0] in s for s in said), f"{saw}; resume warned {said}"
    assert verify_cache(path).ok, f"{saw}; after resume: {verify_cache(path).lines()}"
    assert_same(snapshot(path), snapshot(clean), saw)


@pytest.mark.parametrize("seed", [0, 1])
def test_byte_flips_in_a_part_file_of_an_unfinished_cache(tmp_path, seed):
    m = make_manifest(30)
    clean, path = tmp_path / "clean.h5", tmp_path / "c.h5"
    fill(clean, m)
    fill(path, m, ids=m.ids[:20], finalize=False, compact_every=100)
    part = first_part(path)
    rng = np.random.default_rng(seed)
    hit = flip_vectors(part, int(rng.integers(1, 20)), rng)
    rep = verify_cache(path)
    saw = f"flipped clips {sorted(hit)} of {part.name}; verify said {rep.lines()}"
    assert {cid for _, cid, _ in rep.damaged} == hit and not rep.ok, saw
    assert any("incomplete: 10 of 30" in n for n in rep.notes), saw
    with open_cache(path) as r, pytest.raises(DamagedClipsError):  # wherever the flips landed
        for layer in r.layers:
            r.pooled(layer, "meanstd")
        for layer in r.frame_layers:
            r.frames(layer)
    said, pending = resume(path, m)
    missing = {c for c in m.ids[20:]} | {c for c in m.ids if fails(c)}
    assert set(pending) == hit | missing, f"{saw}; resume re-extracted {pending}; {said}"
    assert verify_cache(path).ok, f"{saw}; after resume: {verify_cache(path).lines()}"
    assert_same(snapshot(path), snapshot(clean), saw)


def test_damage_found_while_compacting_is_left_out_and_reextracted(tmp_path):
    m = make_manifest(24)
    clean, path = tmp_path / "clean.h5", tmp_path / "c.h5"
    fill(clean, m)
    with CacheWriter(path, **kwargs(m, compact_every=3)) as w:
        w.write([result(c) for c in m.ids[:4] if not fails(c)])
        w.write([result(c) for c in m.ids[4:8] if not fails(c)])
        hit = flip_vectors(first_part(path), 5, np.random.default_rng(3))
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            w.write([result(c) for c in m.ids[8:12] if not fails(c)])  # third part: compaction merges
    said = [str(x.message) for x in seen]
    assert any(sorted(hit)[0] in s and "left out" in s for s in said), f"flipped {hit}; warned {said}"
    assert verify_cache(path).ok, verify_cache(path).lines()
    with open_cache(path) as r:
        assert hit.isdisjoint(r.ids), f"flipped {hit}; cache has {r.ids}"
    resume(path, m)
    assert_same(snapshot(path), snapshot(clean), f"flipped {hit}")


def test_damaged_metadata_is_detected(tmp_path):
    m = make_manifest(12)
    path = tmp_path / "c.h5"
    fill(path, m, ids=m.ids[:8], finalize=False, compact_every=100)
    part = first_part(path)
    where = part.read_bytes().index(b'"digest": "') + 14  # flip one byte of the digest table (raw part)
    with open(part, "r+b") as fh:
        fh.seek(where)
        b = fh.read(1)[0]
        fh.seek(where)
        fh.write(bytes([b ^ 0x10]))
    rep = verify_cache(path)
    assert any("damaged part" in p and part.name in p for p in rep.problems), rep.lines()
    with pytest.warns(UserWarning, match="damaged cache part"), open_cache(path) as r:
        assert len(r.ids) == 4  # the damaged part's clips count as not done
    # damaged metadata of a finished cache: refused with one sentence
    with pytest.warns(UserWarning, match="damaged cache part"):  # resuming moves the damaged part aside
        fill(path, m)
    with h5py.File(path, "r+") as f:
        f.attrs["layers"] = '{"layer_0": 8, "layer_1": 4} '
    with pytest.raises(CacheError, match="does not match its checksum"):
        open_cache(path)
    assert not verify_cache(path).ok


def test_fingerprint_covers_stored_values(tmp_path):
    m = make_manifest(6)
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    fill(a, m)
    fill(b, m)
    with CacheWriter(c, **kwargs(m)) as w:
        rs = [result(i) for i in m.ids if not fails(i)]
        rs[0].layers["layer_0"].mean = rs[0].layers["layer_0"].mean + np.float32(1e-3)
        w.write(rs, [(i, "x", "decode failed") for i in m.ids if fails(i)])
        w.finalize()
    fp = {p.name: open_cache(p).fingerprint for p in (a, b, c)}
    assert fp["a.h5"] == fp["b.h5"] != fp["c.h5"], fp


@pytest.mark.parametrize("compact_every", [100, 3])
def test_deleted_part_file_is_named_and_resume_recovers(tmp_path, compact_every):
    m = make_manifest(40)
    clean, path = tmp_path / "clean.h5", tmp_path / "c.h5"
    fill(clean, m)
    fill(path, m, ids=m.ids[:36], finalize=False, compact_every=compact_every)
    layout = Layout(path)
    gone = layout.part_path(layout.parts()[-1])
    seg = Segment(gone)
    lost = set(seg.ids)
    seg.close()
    gone.unlink()
    saw = f"deleted {gone.name} holding {sorted(lost)}; parts left {[p.name for p in layout.parts()]}"
    with pytest.warns(UserWarning, match=f"{gone.name}.*missing.*re-running the extraction resumes"):
        with open_cache(path) as r:
            assert r.missing_parts == [str(gone)] and r.n_pending >= len(lost), saw
    rep = verify_cache(path)
    assert not rep.ok and any("missing part" in p and gone.name in p for p in rep.problems), f"{saw}; {rep.lines()}"
    said, pending = resume(path, m)
    assert lost <= set(pending), f"{saw}; resume extracted {pending}"
    assert any(gone.name in s and "missing" in s for s in said), f"{saw}; resume warned {said}"
    assert verify_cache(path).ok, verify_cache(path).lines()
    assert_same(snapshot(path), snapshot(clean), saw)


def test_resumed_writer_retires_a_missing_part(tmp_path):
    m = make_manifest(16)
    path = tmp_path / "c.h5"
    fill(path, m, ids=m.ids[:12], finalize=False, compact_every=100)
    layout = Layout(path)
    layout.part_path(layout.parts()[0]).unlink()
    with pytest.warns(UserWarning, match="missing"), CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids[:4] if not fails(c)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: the writer recorded the part as given up
        with open_cache(path) as r:
            assert r.missing_parts == []


def test_cache_without_checksums_still_opens(tmp_path):
    path = tmp_path / FIXTURE.name
    shutil.copy(FIXTURE, path)
    with open_cache(path) as r:
        assert r.checksums == "no" and r.complete and r.info()["checksums"] == "no"
        assert r.pooled("layer_0").shape == (11, 8) and len(r.frames("layer_1")) == 11
    rep = verify_cache(path)
    assert not rep.ok and "no checksums" in rep.problems[0], rep.lines()
    # resuming it and finalizing with new clips writes a main file that has checksums
    m = open_cache(path).manifest
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(w.pending_ids()[0])])
        w.finalize()
    with open_cache(path) as r:
        assert r.checksums == "yes" and r.n_clips == 12
    assert verify_cache(path).ok, verify_cache(path).lines()


@pytest.mark.parametrize("dtype,dim", [("float32", 8), ("float16", 25), ("float32", 1)])
def test_every_single_byte_change_changes_the_digest(dtype, dim):
    from embedprobe.cache.digest import clip_digests, row_digests

    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, dim)).astype(dtype)
    offsets = np.array([0, 2, 2, 6])
    ref_rows, ref_clips = row_digests(a), clip_digests(a, offsets)
    raw = a.view(np.uint8).reshape(len(a), -1)
    for row in range(len(a)):
        for byte in range(raw.shape[1]):
            for mask in (1, 0x80, 0xFF, int(rng.integers(1, 256))):
                b = raw.copy()
                b[row, byte] ^= mask
                changed = b.view(dtype).reshape(a.shape)
                assert row_digests(changed)[row] != ref_rows[row], (row, byte, mask)
                clip = int(np.searchsorted(offsets, row, side="right")) - 1
                assert clip_digests(changed, offsets)[clip] != ref_clips[clip], (row, byte, mask)
    swapped = a[[1, 0, 2, 3, 4, 5]]  # frames in another order are other values
    assert clip_digests(swapped, offsets)[0] != ref_clips[0]

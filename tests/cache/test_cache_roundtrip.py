"""Round trips: pooled and frame-level values, dtypes, provenance, errors, reader API."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from cache_synth import (
    IDENTITY,
    LAYERS,
    PROVENANCE,
    content_hash_of,
    fails,
    frames_of,
    kwargs,
    make_manifest,
    result,
)

from embedprobe.cache import CacheError, CacheWriter, open_cache
from embedprobe.cache.rangeio import read_ranges, read_rows
from embedprobe.corpora.base import Manifest
from embedprobe.errors import BadValueError


def fill(path, manifest, batch=5, **kw):
    with CacheWriter(path, **kwargs(manifest, **kw)) as w:
        todo = w.pending_ids()
        for k in range(0, len(todo), batch):
            ids = todo[k:k + batch]
            w.write([result(c) for c in ids if not fails(c)],
                    [(c, f"wav/{c}.wav", "decode failed") for c in ids if fails(c)])
        return w.finalize()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip_pooled_and_frames(tmp_path, dtype):
    m = make_manifest(40)
    path = fill(tmp_path / "c.h5", m, dtype=dtype)
    good = [c for c in m.ids if not fails(c)]
    assert 0 < len(good) < 40
    with open_cache(path) as r:
        assert r.ids == good  # manifest order, failed clips left out
        assert r.complete and r.dtype == dtype and r.layers == list(LAYERS) and r.dims == LAYERS
        assert r.provenance == PROVENANCE and r.identity == IDENTITY
        assert r.manifest.to_json() == m.to_json()
        assert [e["id"] for e in r.errors] == [c for c in m.ids if fails(c)]
        assert r.errors[0]["reason"] == "decode failed"
        for layer, dim in LAYERS.items():
            mean = r.pooled(layer)
            assert mean.dtype == np.float32 and mean.shape == (len(good), dim)
            expect = np.stack([frames_of(c, layer, dim).mean(0) for c in good])
            np.testing.assert_array_equal(mean, expect.astype(dtype).astype(np.float32))
            ms = r.pooled(layer, "meanstd", ids=good[::-1])
            assert ms.shape == (len(good), 2 * dim)
            np.testing.assert_array_equal(ms[:, dim:], r.pooled(layer, "std")[::-1])
            some = [good[3], good[0], good[3]]  # any order, repeats allowed
            for got, c in zip(r.frames(layer, some), some, strict=True):
                assert got.dtype == np.float32
                np.testing.assert_array_equal(got, frames_of(c, layer, dim).astype(dtype).astype(np.float32))
        table = r.clip_table(good[:2])
        assert list(table["content_hash"]) == [content_hash_of(c) for c in good[:2]]
        assert table["n_frames"].tolist() == [len(frames_of(c, "layer_0", 8)) for c in good[:2]]
        info = r.info()
        for key in ("n_clips", "n_errors", "complete", "layers", "dims", "frames", "dtype", "provenance",
                    "path", "size_bytes"):
            assert key in info
        assert info["n_clips"] == len(good) and info["n_errors"] == 40 - len(good) and info["n_pending"] == 0
    with h5py.File(path, "r") as f:  # the storage dtype is real and recorded
        assert f.attrs["dtype"] == dtype and f["pooled/layer_0/mean"].dtype == np.dtype(dtype)
        assert f["frames/layer_1/data"].dtype == np.dtype(dtype) and bool(f.attrs["complete"])


def test_fingerprint_tracks_content(tmp_path):
    m = make_manifest(12)
    a = fill(tmp_path / "a.h5", m)
    b = fill(tmp_path / "b.h5", m, batch=3)
    with open_cache(a) as ra, open_cache(b) as rb:
        assert ra.fingerprint == rb.fingerprint and len(ra.fingerprint) == 16
    c = fill(tmp_path / "c.h5", m, identity={**IDENTITY, "corpus": "other"})
    with open_cache(c) as rc, open_cache(a) as ra:
        assert rc.fingerprint != ra.fingerprint


def test_frames_for_some_layers_only(tmp_path):
    m = make_manifest(6)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m, frames=["layer_1"])) as w:
        w.write([result(c) for c in m.ids])
        w.finalize()
    with open_cache(path) as r:
        assert r.has_frames("layer_1") and not r.has_frames("layer_0")
        with pytest.raises(CacheError, match="no frame-level features for layer 'layer_0'"):
            r.frames("layer_0", r.ids)
        with pytest.raises(BadValueError, match="layer_9"):
            r.pooled("layer_9")
        with pytest.raises(BadValueError, match="expected one of"):
            r.pooled("layer_0", "max")
    with h5py.File(path, "r") as f:
        assert "frames/layer_0" not in f and "frames/layer_1/data" in f


def test_pooled_only_cache_and_unknown_ids(tmp_path):
    m = make_manifest(5)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m, frames=False)) as w:
        w.write([result(c, frames=False) for c in m.ids[:3]], [(m.ids[3], "wav/x.wav", "too short")])
        w.finalize()
    with open_cache(path) as r:
        assert not r.complete  # clip 4 neither done nor failed
        assert r.clip_table()["n_frames"].tolist() == [-1, -1, -1]
        with pytest.raises(BadValueError, match="failed during extraction"):
            r.pooled("layer_0", ids=[m.ids[3]])
        with pytest.raises(BadValueError, match="not in the cache yet"):
            r.pooled("layer_0", ids=[m.ids[4]])
        with pytest.raises(BadValueError, match="not a clip"):
            r.pooled("layer_0", ids=["nope"])


def test_writer_validates_batches(tmp_path):
    m = make_manifest(4)
    with CacheWriter(tmp_path / "c.h5", **kwargs(m)) as w:
        with pytest.raises(BadValueError, match="not in the manifest"):
            w.write([result("zzz")])
        with pytest.raises(BadValueError, match="twice"):
            w.write([result(m.ids[0]), result(m.ids[0])])
        bad = result(m.ids[1])
        bad.layers["layer_0"].mean = np.zeros(3)
        with pytest.raises(BadValueError, match=r"\(8,\)"):
            w.write([bad])
        with pytest.raises(BadValueError, match="frames"):
            w.write([result(m.ids[1], frames=False)])
        bad = result(m.ids[1])
        bad.layers["layer_1"].frames[0, 0] = np.nan
        with pytest.raises(BadValueError, match="NaN or inf"):
            w.write([bad])
        assert not w.done_ids
    with CacheWriter(tmp_path / "h.h5", **kwargs(m, dtype="float16")) as w:
        big = result(m.ids[2])
        big.layers["layer_0"].frames[1, 2] = 1e5
        with pytest.raises(BadValueError, match="float16 stores at most 65504"):
            w.write([big])
        big = result(m.ids[2])
        big.layers["layer_1"].std[0] = 7e4
        with pytest.raises(BadValueError, match="std of clip 'c0002' layer 'layer_1'.*65504"):
            w.write([result(m.ids[3]), big])
        nan = result(m.ids[2])
        nan.layers["layer_1"].mean[1] = np.inf
        with pytest.raises(BadValueError, match="mean of clip 'c0002' layer 'layer_1'.*NaN or inf"):
            w.write([result(m.ids[3]), nan])
        assert not w.done_ids
    with pytest.raises(BadValueError, match="float64"):
        CacheWriter(tmp_path / "d.h5", **kwargs(m, dtype="float64"))
    with pytest.raises(BadValueError, match="layer name"):
        CacheWriter(tmp_path / "d.h5", **kwargs(m, layers={"a/b": 3}))


def test_open_missing_cache(tmp_path):
    with pytest.raises(CacheError, match="no embedding cache"):
        open_cache(tmp_path / "nothing.h5")


def test_manifest_round_trip_is_the_corpus_manifest(tmp_path):
    m = make_manifest(3)
    path = fill(tmp_path / "c.h5", m)
    with open_cache(path) as r:
        assert isinstance(r.manifest, Manifest) and r.manifest.splits == m.splits


def test_coalesced_reads_match_naive(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((5000, 16)).astype(np.float16)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"] = data
    with h5py.File(tmp_path / "d.h5", "r") as f:
        rows = rng.integers(0, 5000, 700)
        np.testing.assert_array_equal(read_rows(f["x"], rows, np.float32), data[rows].astype(np.float32))
        starts = rng.integers(0, 4990, 300)
        stops = starts + rng.integers(0, 10, 300)
        got = read_ranges(f["x"], starts, stops, np.float32)
        for g, a, b in zip(got, starts, stops, strict=True):
            np.testing.assert_array_equal(g, data[a:b].astype(np.float32))


def test_fast_conversion_is_bit_identical_to_astype():
    from embedprobe.cache.convert import converted

    rng = np.random.default_rng(1)
    a = (rng.standard_normal(300_000) * np.logspace(-9, 5, 300_000)).astype(np.float32)  # subnormals, overflow
    a[:3] = [np.inf, -np.inf, np.nan]
    h = converted(a, np.float16)
    with np.errstate(over="ignore"):
        expect = a.astype(np.float16)
    np.testing.assert_array_equal(h.view(np.uint16), expect.view(np.uint16))
    np.testing.assert_array_equal(converted(h, np.float32), h.astype(np.float32))


def test_compaction_bounds_parts_and_large_parts_are_sealed(tmp_path):
    m = make_manifest(40)
    for seal, expect_parts in ((1 << 30, 4), (1, 20)):  # 20 batches: 2 of level 2... or all 20 sealed
        path = tmp_path / f"c{seal}.h5"
        with CacheWriter(path, **kwargs(m), compact_every=3, seal_bytes=seal) as w:
            for k in range(0, 40, 2):
                w.write([result(c) for c in m.ids[k:k + 2]])
            with open_cache(path) as r:
                assert r.info()["n_parts"] == expect_parts and r.ids == m.ids
                np.testing.assert_array_equal(r.frames("layer_0", m.ids[-1:])[0], frames_of(m.ids[-1], "layer_0", 8))


def test_large_parts_are_written_once_and_the_part_count_stays_bounded(tmp_path):
    """Parts over seal_bytes are not copied again while the writer holds few of them; once they
    are small next to what it holds (1/max_parts), they merge, so the count stays bounded."""
    m = make_manifest(96)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m), compact_every=3, seal_bytes=1, max_parts=4) as w:
        counts = []
        for k in range(0, 96, 2):
            w.write([result(c) for c in m.ids[k:k + 2]])
            counts.append(len(list(path.with_name("c.h5.parts").glob("part.*"))))
        assert max(counts) <= 4 + 2 * 4, counts  # max_parts + (compact_every - 1) per level
        assert counts[2] == 3  # the first parts are large next to the total: none merged yet
    with open_cache(path) as r:
        assert r.ids == m.ids
        np.testing.assert_array_equal(r.frames("layer_0", m.ids[-1:])[0], frames_of(m.ids[-1], "layer_0", 8))

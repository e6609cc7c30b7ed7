"""Block reads of rows and row ranges (``cache/rangeio.py``) against plain indexing, for every
kind of array a segment hands out, with blocks, gaps and HDF5 unions small enough to split."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from embedprobe.cache import rangeio
from embedprobe.cache.digest import combine_ranges, row_digests
from embedprobe.cache.rawpart import RawArray, RawFile
from embedprobe.cache.segment import PackedColumns

ROWS, COLS, EXTRA = 600, 12, 5  # packed: the wanted columns sit at EXTRA:EXTRA+COLS of a wider array


@pytest.fixture(params=["h5", "raw", "packed-h5", "packed-raw", "numpy"])
def stored(request, tmp_path):
    """``(array as a segment hands it out, the same values in memory)``."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((ROWS, COLS + 2 * EXTRA)).astype(np.float16)
    want = np.ascontiguousarray(data[:, EXTRA:EXTRA + COLS]) if request.param.startswith("packed") else \
        np.ascontiguousarray(data[:, :COLS])
    handles = []
    if request.param in ("h5", "packed-h5"):
        with h5py.File(tmp_path / "d.h5", "w") as f:
            f["x"] = data if request.param == "packed-h5" else want
        f = h5py.File(tmp_path / "d.h5", "r")
        handles.append(f)
        arr = PackedColumns(f["x"], EXTRA, EXTRA + COLS) if request.param == "packed-h5" else f["x"]
    elif request.param in ("raw", "packed-raw"):
        payload = data if request.param == "packed-raw" else want
        (tmp_path / "d.raw").write_bytes(b"\0" * 64 + payload.tobytes())
        rf = RawFile(tmp_path / "d.raw")
        handles.append(rf)
        arr = RawArray(rf, 64, ROWS, payload.shape[1], np.float16)
        if request.param == "packed-raw":
            arr = PackedColumns(arr, EXTRA, EXTRA + COLS)
    else:
        arr = want
    yield arr, want
    for h in handles:
        h.close()


@pytest.fixture(params=["default", "tiny"])
def sizes(request, monkeypatch):
    """Default sizes, or blocks of a few rows, gaps of two rows and two runs per HDF5 read."""
    if request.param == "tiny":
        monkeypatch.setattr(rangeio, "BLOCK_BYTES", 7 * COLS * 2)
        monkeypatch.setattr(rangeio, "SPAN_BYTES", 20 * COLS * 2)
        monkeypatch.setattr(rangeio, "GAP_BYTES", 2 * COLS * 2)
        monkeypatch.setattr(rangeio, "_MAX_PIECES", 2)
    return request.param


ROW_PICKS = {
    "all": np.arange(ROWS),
    "sorted unique, gaps": np.sort(np.random.default_rng(0).choice(ROWS, 200, replace=False)),
    "unordered, repeats": np.random.default_rng(1).integers(0, ROWS, 500),
    "unordered unique": np.random.default_rng(2).permutation(ROWS)[:150],
    "sorted, repeats": np.sort(np.random.default_rng(3).integers(0, ROWS, 300)),
    "one": np.array([ROWS - 1]),
    "none": np.zeros(0, np.int64),
}


@pytest.mark.parametrize("pick", list(ROW_PICKS))
@pytest.mark.parametrize("dtype", [None, np.float32])
def test_read_rows_equals_indexing_and_hashes_each_row(stored, sizes, pick, dtype):
    arr, want = stored
    rows = ROW_PICKS[pick]
    got_d = np.empty(len(rows), np.uint64)
    got = rangeio.read_rows(arr, rows, dtype, digests=got_d)
    expect = want[rows] if dtype is None else want[rows].astype(dtype)
    assert got.dtype == expect.dtype
    np.testing.assert_array_equal(got, expect)
    np.testing.assert_array_equal(got_d, row_digests(want)[rows])
    np.testing.assert_array_equal(rangeio.read_rows(arr, rows, dtype), expect)  # without digests


def _ranges(kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(len(kind))
    if kind == "tiling":  # every row once, as a cache's clips are
        off = np.unique(np.concatenate([[0, ROWS], rng.integers(0, ROWS, 80)]))
        return off[:-1], off[1:]
    if kind == "scattered":  # some of the clips, out of order, with gaps between them
        off = np.unique(np.concatenate([[0, ROWS], rng.integers(0, ROWS, 120)]))
        k = rng.permutation(len(off) - 1)[:40]
        return off[k], off[k + 1]
    if kind == "overlapping":  # repeats, overlaps and empty ranges
        a = rng.integers(0, ROWS - 30, 150)
        return a, a + rng.integers(0, 30, 150)
    return np.array([5]), np.array([5])  # one empty range


@pytest.mark.parametrize("kind", ["tiling", "scattered", "overlapping", "empty"])
@pytest.mark.parametrize("dtype", [None, np.float32])
def test_read_ranges_equals_slicing_and_hashes_each_range(stored, sizes, kind, dtype):
    arr, want = stored
    starts, stops = _ranges(kind)
    got_d = np.empty(len(starts), np.uint64)
    pieces = rangeio.read_ranges(arr, starts, stops, dtype, digests=got_d)
    for p, a, b in zip(pieces, starts.tolist(), stops.tolist(), strict=True):
        expect = want[a:b] if dtype is None else want[a:b].astype(dtype)
        assert p.dtype == expect.dtype and p.shape == expect.shape
        np.testing.assert_array_equal(p, expect)
    np.testing.assert_array_equal(got_d, combine_ranges(row_digests(want), starts, stops))


def test_a_flipped_byte_changes_exactly_its_rows_and_ranges_digests(tmp_path, sizes):
    rng = np.random.default_rng(5)
    data = rng.standard_normal((ROWS, COLS)).astype(np.float16)
    off = np.unique(np.concatenate([[0, ROWS], rng.integers(0, ROWS, 60)]))
    clean_rows = row_digests(data)
    clean_ranges = combine_ranges(clean_rows, off[:-1], off[1:])
    for row, byte in [(0, 0), (ROWS // 2, 7), (ROWS - 1, COLS * 2 - 1)]:
        bad = data.copy()
        bad.view(np.uint8).reshape(ROWS, -1)[row, byte] ^= 0x10
        with h5py.File(tmp_path / f"d{row}.h5", "w") as f:
            f["x"] = bad
        with h5py.File(tmp_path / f"d{row}.h5", "r") as f:
            d_rows = np.empty(ROWS, np.uint64)
            rangeio.read_rows(f["x"], np.arange(ROWS)[::-1], np.float32, digests=d_rows)
            d_ranges = np.empty(len(off) - 1, np.uint64)
            rangeio.read_ranges(f["x"], off[:-1], off[1:], np.float32, digests=d_ranges)
        assert np.flatnonzero(d_rows[::-1] != clean_rows).tolist() == [row]
        clip = int(np.searchsorted(off, row, side="right")) - 1
        assert np.flatnonzero(d_ranges != clean_ranges).tolist() == [clip]

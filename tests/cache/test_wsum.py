"""The compiled row digests (``cache/_wsum.c``): every variant this CPU runs gives numpy's digests
bit for bit, and its fused float16 -> float32 conversion gives torch's values bit for bit, for
every row width (the vector loops' tails), strided rows and all 65,536 float16 bit patterns."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from embedprobe.cache import digest, rangeio

wsum = digest._wsum
VARIANTS = ["numpy"] + (wsum.variants() if wsum is not None else [])


def numpy_digests(a: np.ndarray) -> np.ndarray:
    saved, digest._wsum = digest._wsum, None
    try:
        return digest.row_digests(a)
    finally:
        digest._wsum = saved


@pytest.fixture(params=VARIANTS)
def kernel(request, monkeypatch):
    """Each way the digests can be computed here: numpy, then each compiled variant."""
    if request.param == "numpy":
        monkeypatch.setattr(digest, "_wsum", None)
    else:
        best = wsum.KERNEL
        wsum.select(request.param)
        request.addfinalizer(lambda: wsum.select(best))
    return request.param


def test_the_compiled_kernel_is_built_where_the_test_command_requires_it():
    """``make test`` (and so CI) installs with a C compiler and sets EMBEDPROBE_REQUIRE_COMPILED:
    there, a failed build of _wsum.c (which pip reports only as a warning) fails here."""
    if not os.environ.get("EMBEDPROBE_REQUIRE_COMPILED"):
        pytest.skip("EMBEDPROBE_REQUIRE_COMPILED is not set (make test sets it)")
    assert wsum is not None, "embedprobe/cache/_wsum.c was not compiled: `pip install -e .` prints why"
    assert digest.kernel() == f"compiled-{wsum.variants()[0]}"


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.uint8])
def test_row_digests_equal_numpys_for_every_width_and_layout(kernel, dtype):
    rng = np.random.default_rng(7)
    item = np.dtype(dtype).itemsize
    for words in [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 22, 31, 33, 96, 192, 257]:
        cols = words * 8 // item
        for rows in (1, 2, 3, 40):
            raw = rng.integers(0, 256, (rows, (cols + 16) * item), dtype=np.uint8).view(dtype)
            a = raw[:, :cols]  # rows wider apart than they are long
            for view in (np.ascontiguousarray(a), a, raw[:, 8 // item:8 // item + cols], a[::3],
                         raw[:, 1:cols + 1] if item < 8 else a):  # the last: misaligned (numpy)
                assert np.array_equal(digest.row_digests(view), numpy_digests(view)), (kernel, words, rows)
    assert len(digest.row_digests(np.zeros((0, 8), dtype))) == 0


@pytest.mark.parametrize("cols", [4, 8, 12, 16, 20, 28, 32, 36, 60, 64, 68, 88, 768, 1024, 1028])
def test_fused_conversion_equals_hashing_then_torchs_conversion(kernel, cols):
    """All 65,536 float16 bit patterns (NaNs, infinities, subnormals), in rows of ``cols``."""
    patterns = np.arange(65536, dtype=np.uint16)
    np.random.default_rng(cols).shuffle(patterns)
    raw = np.resize(patterns, (-(-65536 // cols)) * cols).view(np.float16).reshape(-1, cols)
    dst = np.full(raw.shape, -1.0, np.float32)
    got = digest.digest_convert(raw, dst)
    want = torch.from_numpy(raw).float().numpy()
    assert np.array_equal(got, numpy_digests(raw))
    assert np.array_equal(dst.view(np.uint32), want.view(np.uint32))
    assert digest.fuses(np.float16, np.float32) == (kernel != "numpy" and bool(wsum.HAS_F16C))


def test_fused_conversion_writes_nothing_past_each_row(kernel):
    """The masked tails store only their own lanes: a guard column after the rows stays put."""
    raw = np.random.default_rng(1).standard_normal((50, 20)).astype(np.float16)
    out = np.full((50 * 20 + 7,), 123.0, np.float32)
    digest.digest_convert(raw, out[:1000].reshape(50, 20))
    assert np.array_equal(out[:1000].reshape(50, 20), raw.astype(np.float32))
    assert (out[1000:] == 123.0).all()


def test_the_compiled_kernel_refuses_what_it_cannot_hash():
    if wsum is None:
        pytest.skip("the compiled kernel is not built here")
    k = digest.digest_weights(2)
    with pytest.raises(ValueError, match="whole aligned 64-bit words"):
        wsum.wsum_rows(np.zeros((3, 3), np.float32), k, np.zeros(3, np.uint64))
    with pytest.raises(ValueError, match="one uint64 per row"):
        wsum.wsum_rows(np.zeros((3, 4), np.float32), k, np.zeros(2, np.uint64))
    with pytest.raises(ValueError, match="no variant"):
        wsum.select("no-such-cpu")


def test_block_reads_verify_alike_with_every_kernel(kernel, tmp_path):
    """A cache read through rangeio: the same values and digests whatever computes them."""
    import h5py

    rng = np.random.default_rng(5)
    data = rng.standard_normal((3000, 44)).astype(np.float16)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"] = data
    starts = np.sort(rng.choice(2900, 60, replace=False))
    stops = starts + rng.integers(1, 100, 60)
    with h5py.File(tmp_path / "d.h5", "r") as f:
        got_d = np.empty(60, np.uint64)
        got = rangeio.read_ranges(f["x"], starts, stops, np.float32, digests=got_d)
        rows = np.array([5, 2999, 0, 5, 17])
        row_d = np.empty(5, np.uint64)
        got_rows = rangeio.read_rows(f["x"], np.sort(rows), np.float32, digests=row_d)
    for k, (a, b) in enumerate(zip(starts, stops, strict=True)):
        assert np.array_equal(got[k], data[a:b].astype(np.float32))
    want_rowd = numpy_digests(data)
    assert np.array_equal(got_d, digest.combine_ranges(want_rowd, starts, stops))
    assert np.array_equal(got_rows, data[np.sort(rows)].astype(np.float32))
    assert np.array_equal(row_d, want_rowd[np.sort(rows)])

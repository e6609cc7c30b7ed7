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


@pytest.mark.parametrize("a", [np.full((2, 8), 1.5, object), np.arange(16).astype("M8[s]").reshape(2, 8),
                               np.arange(16).astype("m8[s]").reshape(2, 8)], ids=["object", "datetime", "timedelta"])
def test_arrays_the_kernel_must_not_hash_go_to_numpy(kernel, a):
    """Object arrays would hash pointers, datetimes have no buffer export: numpy's path, alike."""
    if a.dtype.hasobject:
        with pytest.raises(TypeError):
            digest.row_digests(a)
    else:
        assert np.array_equal(digest.row_digests(a), numpy_digests(a))


WIDTHS = [4, 8, 12, 16, 20, 24, 28, 32, 36, 60, 64, 68, 88, 768, 1024, 1028]  # every tail of 1-7 words


@pytest.fixture
def fused_calls(kernel, monkeypatch):
    """How many times digest_convert used the compiled fused kernel (it must wherever it can)."""
    calls = []
    if kernel != "numpy":
        real = wsum.wsum_rows_f16_to_f32
        monkeypatch.setattr(wsum, "wsum_rows_f16_to_f32", lambda *a: calls.append(1) or real(*a))
    return calls


@pytest.mark.parametrize("cols", WIDTHS)
def test_fused_conversion_equals_hashing_then_torchs_conversion(kernel, fused_calls, cols):
    """All 65,536 float16 bit patterns (NaNs, infinities, subnormals), in rows of ``cols``."""
    patterns = np.arange(65536, dtype=np.uint16)
    np.random.default_rng(cols).shuffle(patterns)
    raw = np.resize(patterns, (-(-65536 // cols)) * cols).view(np.float16).reshape(-1, cols)
    dst = np.full(raw.shape, -1.0, np.float32)
    got = digest.digest_convert(raw, dst)
    want = torch.from_numpy(raw).float().numpy()
    assert np.array_equal(got, numpy_digests(raw))
    assert np.array_equal(dst.view(np.uint32), want.view(np.uint32))
    fused = kernel != "numpy" and bool(wsum.HAS_F16C)
    assert digest.fuses(np.float16, np.float32) == fused
    assert digest.fuses(np.float16, np.float32, (cols,)) == fused  # whole 64-bit words
    assert not digest.fuses(np.float16, np.float32, (cols + 2,)) and not digest.fuses(np.float16, np.float32, (2, cols))
    assert len(fused_calls) == int(fused)


@pytest.mark.parametrize("cols", WIDTHS)
def test_fused_conversion_writes_nothing_past_its_rows(kernel, fused_calls, cols):
    """The masked tails store only their own lanes: guard values after the last row stay put."""
    rows = 9
    raw = np.random.default_rng(cols).standard_normal((rows, cols)).astype(np.float16)
    out = np.full(rows * cols + 32, 123.0, np.float32)
    digest.digest_convert(raw, out[:rows * cols].reshape(rows, cols))
    assert np.array_equal(out[:rows * cols].reshape(rows, cols), raw.astype(np.float32))
    assert (out[rows * cols:] == 123.0).all()
    assert len(fused_calls) == int(kernel != "numpy" and bool(wsum.HAS_F16C))


def test_fused_conversion_falls_back_where_the_kernel_cannot_run(kernel, fused_calls):
    """A destination that overlaps the source, or is not 4-byte aligned: numpy's way, same result."""
    raw = np.random.default_rng(2).standard_normal((6, 8)).astype(np.float16)
    odd = np.zeros(6 * 8 * 4 + 1, np.uint8)[1:].view(np.float32).reshape(6, 8)
    assert np.array_equal(digest.digest_convert(raw, odd), numpy_digests(raw))
    assert np.array_equal(odd, raw.astype(np.float32))
    both = np.zeros(6 * 8 * 4, np.uint8)  # the source in the first half of the destination
    src = both[:6 * 8 * 2].view(np.float16).reshape(6, 8)
    src[...] = raw
    want = numpy_digests(raw)
    assert np.array_equal(digest.digest_convert(src, both.view(np.float32).reshape(6, 8)), want)
    assert not fused_calls


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
    if wsum.HAS_F16C:
        h = np.zeros((2, 8), np.float16)
        with pytest.raises(ValueError, match="apart from src"):  # dst overlapping src
            both = np.zeros(64, np.uint8)
            wsum.wsum_rows_f16_to_f32(both[:32].view(np.float16).reshape(2, 8), k, np.zeros(2, np.uint64),
                                      both.view(np.float32))
        wsum.wsum_rows_f16_to_f32(h, k, np.zeros(2, np.uint64), np.zeros(16, np.float32))


def test_loading_the_module_twice_keeps_its_variants():
    """A second initialisation (the same file imported under another name) must not run past the
    variant table: it used to append to it and overwrite the kernel pointers after it."""
    if wsum is None:
        pytest.skip("the compiled kernel is not built here")
    import importlib.machinery
    import importlib.util

    for k in range(3):
        loader = importlib.machinery.ExtensionFileLoader(f"wsum_alias{k}._wsum", wsum.__file__)
        spec = importlib.util.spec_from_file_location(f"wsum_alias{k}._wsum", wsum.__file__, loader=loader)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert mod.variants() == wsum.variants()
    a = np.arange(64, dtype=np.uint64).reshape(4, 16)
    assert np.array_equal(digest.row_digests(a), numpy_digests(a))


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
        rows = np.array([0, 5, 17, 18, 2999])  # sorted and unique: read straight into the result
        row_d = np.empty(5, np.uint64)
        got_rows = rangeio.read_rows(f["x"], rows, np.float32, digests=row_d)
        rep = np.array([5, 2999, 0, 5, 17])  # unsorted with a repeat: gathered, then converted
        rep_d = np.empty(5, np.uint64)
        got_rep = rangeio.read_rows(f["x"], rep, np.float32, digests=rep_d)
    for k, (a, b) in enumerate(zip(starts, stops, strict=True)):
        assert np.array_equal(got[k], data[a:b].astype(np.float32))
    want_rowd = numpy_digests(data)
    assert np.array_equal(got_d, digest.combine_ranges(want_rowd, starts, stops))
    assert np.array_equal(got_rows, data[rows].astype(np.float32))
    assert np.array_equal(row_d, want_rowd[rows])
    assert np.array_equal(got_rep, data[rep].astype(np.float32))
    assert np.array_equal(rep_d, want_rowd[rep])

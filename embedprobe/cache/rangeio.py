"""Coalesced reads of many rows or row ranges of a dataset, hashing what they read."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .convert import convert_into, converted
from .digest import combine_ranges, digest_convert, fuses, row_digests

SPAN_BYTES = 16 << 20  # largest single read / write while copying
BLOCK_BYTES = 4 << 20  # rows wanted per read: each block is read in one call, hashed and converted
OVERLAP_BYTES = 2 << 20  # blocks this large are hashed on a second thread while the next is read
OVERLAP_MIN_CPUS = 4  # ... on machines with this many usable CPUs (on 2 shared cores it competes)
_MAX_PENDING = 4
GAP_BYTES = 64 << 10  # runs this close are read as one piece, gap included
_MAX_PIECES = 64  # runs per HDF5 read call
_hasher: ThreadPoolExecutor | None = None


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _hash_later(piece: np.ndarray, pending: list[Any]) -> Future:
    """The row digests of ``piece``, computed on a second thread: numpy releases the GIL while it
    hashes, so reading and converting the next block go on meanwhile."""
    global _hasher
    if _hasher is None:
        _hasher = ThreadPoolExecutor(1, thread_name_prefix="embedprobe-hash")
    waiting = [p for p in pending if isinstance(p, Future) and not p.done()]
    if len(waiting) >= _MAX_PENDING:  # bounded: the pieces wait in memory until hashed
        waiting[0].result()
    return _hasher.submit(row_digests, piece)


def h5_read_runs(dsid: Any, runs: list[tuple[int, int]], out: np.ndarray, col: int = 0) -> None:
    """HDF5 rows ``a:b`` of each sorted, disjoint run, one after another, into ``out`` (C-contiguous,
    the stored dtype; its columns start at column ``col`` of the dataset ``dsid``): one read of a
    union of hyperslabs per ``_MAX_PIECES`` runs (building a union costs more per run as it grows)."""
    from h5py import h5s

    rest = tuple(out.shape[1:])
    corner = (col,) + (0,) * (len(rest) - 1) if rest else ()
    runs = [(a, b) for a, b in runs if b > a]
    k = 0
    for c in range(0, len(runs), _MAX_PIECES):
        fspace, op, rows = dsid.get_space(), h5s.SELECT_SET, 0
        for a, b in runs[c:c + _MAX_PIECES]:
            fspace.select_hyperslab((a,) + corner, (b - a,) + rest, op=op)
            op, rows = h5s.SELECT_OR, rows + b - a
        dsid.read(h5s.create_simple((rows,) + rest), fspace, out[k:k + rows])
        k += rows


def copy_runs(src: Any, runs: list[tuple[int, int]], out: np.ndarray) -> None:
    """Rows ``a:b`` of each run of anything sliceable by rows, one after another, into ``out``."""
    k = 0
    for a, b in runs:
        out[k:k + b - a] = src[a:b]
        k += b - a


def _read_pieces(dset: Any, runs: list[tuple[int, int]], out: np.ndarray) -> None:
    own = getattr(dset, "read_runs", None)  # a raw part's array, a packed part's columns
    if own is not None:
        own(runs, out)
    elif hasattr(getattr(dset, "id", None), "get_space"):  # an h5py dataset
        h5_read_runs(dset.id, runs, out)
    else:
        copy_runs(dset, runs, out)


def _read_runs(dset: Any, a: np.ndarray, b: np.ndarray, out: np.ndarray, gap_rows: int, spare: list[Any]) -> None:
    """Rows ``a[i]:b[i]`` of each sorted, disjoint run of ``dset``, one after another, into ``out``.

    Runs of at most ``gap_rows`` rows at most ``gap_rows`` apart are read as one piece, gap
    included, into a second buffer and the rows asked for copied out (a piece costs about as much
    as copying 64 KB, so many single rows read faster with their gaps); ``spare`` keeps that
    buffer for the next call."""
    n = b - a
    join = (a[1:] - b[:-1] <= gap_rows) & (n[1:] <= gap_rows) & (n[:-1] <= gap_rows)  # small runs, close
    if not join.any():
        _read_pieces(dset, list(zip(a.tolist(), b.tolist(), strict=True)), out)
        return
    first = np.concatenate([[True], ~join])  # the runs that start a piece
    lo, hi = a[first], b[np.concatenate([~join, [True]])]
    size = hi - lo
    rows = int(size.sum())
    spare[:] = [_scratch(spare[0] if spare else None, rows, out.shape[1:], out.dtype)]
    buf = spare[0][:rows]
    _read_pieces(dset, list(zip(lo.tolist(), hi.tolist(), strict=True)), buf)
    p = np.cumsum(first) - 1  # the piece of each run
    idx = np.repeat((np.cumsum(size) - size)[p] + a - lo[p] - (np.cumsum(n) - n), n) + np.arange(len(out))
    np.take(buf, idx, axis=0, out=out)


def _row_bytes(dset: Any) -> int:
    return max(1, int(np.prod(dset.shape[1:], dtype=np.int64)) * dset.dtype.itemsize)


def _block_rows(dset: Any) -> int:
    return max(1, min(BLOCK_BYTES, SPAN_BYTES) // _row_bytes(dset))


def _scratch(buf: np.ndarray | None, rows: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """``buf`` if it holds ``rows`` rows, else a new buffer."""
    if buf is None or len(buf) < rows:
        buf = np.empty((rows,) + shape, dtype)
    return buf


def read_rows(dset: Any, rows: np.ndarray, dtype: Any = None, digests: np.ndarray | None = None) -> np.ndarray:
    """``dset[rows]`` for rows in any order (repeats allowed), in blocks of consecutive rows.

    ``digests`` (uint64, one per row asked) receives the checksum of each row's stored bytes.
    """
    rows = np.asarray(rows, np.int64)
    shape = tuple(dset.shape[1:])
    out = np.empty((len(rows),) + shape, dtype or dset.dtype)
    if not len(rows):
        return out
    sorted_in = bool(np.all(rows[1:] >= rows[:-1]))
    order = np.arange(len(rows)) if sorted_in else np.argsort(rows, kind="stable")
    srt = rows if sorted_in else rows[order]
    new = np.empty(len(srt), bool)
    new[0], new[1:] = True, srt[1:] != srt[:-1]
    uniq = srt[new]
    direct = sorted_in and len(uniq) == len(rows)  # out's rows are the unique rows, in order
    group = None if len(uniq) == len(rows) else np.cumsum(new) - 1  # sorted position -> index into uniq
    udig = np.empty(len(uniq), np.uint64) if digests is not None else None
    step, gap_rows = _block_rows(dset), GAP_BYTES // _row_bytes(dset)
    buf, spare = None, []
    for u0 in range(0, len(uniq), step):
        u1 = min(len(uniq), u0 + step)
        u = uniq[u0:u1]
        cut = np.flatnonzero(u[1:] != u[:-1] + 1) + 1
        runs_a, runs_b = u[np.concatenate([[0], cut])], u[np.concatenate([cut - 1, [len(u) - 1]])] + 1
        same = direct and out.dtype == dset.dtype
        if same:
            raw = out[u0:u1]  # read straight into the result
        else:
            buf = _scratch(buf, min(step, len(uniq)), shape, dset.dtype)
            raw = buf[:u1 - u0]
        _read_runs(dset, runs_a, runs_b, raw, gap_rows, spare)
        if direct and not same and udig is not None:
            udig[u0:u1] = digest_convert(raw, out[u0:u1])  # one pass where the kernel can
            continue
        if udig is not None:
            udig[u0:u1] = row_digests(raw)
        if direct:
            if not same:
                convert_into(out[u0:u1], raw)
        elif group is None:  # no repeats: scatter the block's rows to their places
            out[order[u0:u1]] = converted(raw, out.dtype)
        else:
            k0, k1 = np.searchsorted(group, [u0, u1]).tolist()
            out[order[k0:k1]] = converted(raw, out.dtype)[group[k0:k1] - u0]
    if digests is not None:
        digests[order] = udig if group is None else udig[group]
    return out


def _blocks(s: list[int], e: list[int], max_rows: int) -> list[tuple[int, int]]:
    """Group sorted ranges into ``(i, j)`` blocks whose rows together number at most ``max_rows``
    (a block holds at least one range; overlapping rows count once)."""
    out, i0, rows, hi = [], 0, 0, s[0]
    for k in range(len(s)):
        add = max(0, e[k] - max(s[k], hi))
        if rows and rows + add > max_rows:
            out.append((i0, k))
            i0, rows, hi = k, 0, s[k]
            add = e[k] - s[k]
        rows += add
        hi = max(hi, e[k])
    out.append((i0, len(s)))
    return out


def _runs(starts: list[int], stops: list[int], i: int, j: int) -> list[tuple[int, int, int, int]]:
    """``(lo, hi, k0, k1)``: the rows ``lo:hi`` that the ranges ``k0:k1`` of the sorted ranges
    ``i:j`` cover together (touching or overlapping ranges join one run)."""
    out, k0, lo, hi = [], i, starts[i], stops[i]
    for k in range(i + 1, j):
        if starts[k] <= hi:
            hi = max(hi, stops[k])
        else:
            out.append((lo, hi, k0, k))
            k0, lo, hi = k, starts[k], stops[k]
    out.append((lo, hi, k0, j))
    return out


def read_ranges(dset: Any, starts: np.ndarray, stops: np.ndarray, dtype: Any = None,
                digests: np.ndarray | None = None) -> list[np.ndarray]:
    """``[dset[a:b] for a, b in zip(starts, stops)]``, reading only the rows asked for, in blocks.

    Each block (``BLOCK_BYTES`` of whole ranges) is read in one call into a reused buffer, then
    hashed and converted while it is in the CPU cache, into one result array per ``SPAN_BYTES``
    of rows (large arrays: few page faults); the ranges returned are views of it. ``digests``
    (uint64, one per range) receives the checksum of each range's stored rows.
    """
    n = len(starts)
    res: list[np.ndarray] = [None] * n  # type: ignore[list-item]
    if not n:
        return res
    starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order].tolist(), stops[order].tolist()
    shape = tuple(dset.shape[1:])
    row_bytes = _row_bytes(dset)
    out_dtype = np.dtype(dtype or dset.dtype)
    convert = out_dtype != dset.dtype
    blocks = [_runs(s, e, i, j) for i, j in _blocks(s, e, _block_rows(dset))]
    sizes = [sum(b - a for a, b, _, _ in runs) for runs in blocks]
    group_rows = max(1, SPAN_BYTES // row_bytes)
    rowd: list[Any] = []  # row digests (or their futures) of every block, combined per range at the end
    shift = np.zeros(n, np.int64)  # sorted range k starts at s[k] + shift[k] in the joined row digests
    seen = 0
    # hashing on a second thread hides its time where cores are free, unless it is fused with
    # the conversion (then it costs next to nothing on this one)
    later = digests is not None and usable_cpus() >= OVERLAP_MIN_CPUS and not (
        convert and fuses(dset.dtype, out_dtype, shape))
    buf, out, free, spare = None, None, 0, []
    for x, runs in enumerate(blocks):
        rows = sizes[x]
        if out is None or rows > free:  # a result array for the next blocks, up to SPAN_BYTES
            y, total = x, 0
            while y < len(blocks) and (y == x or total + sizes[y] <= group_rows):
                total += sizes[y]
                y += 1
            out, free = np.empty((total,) + shape, out_dtype), total
        at0 = len(out) - free
        dst = out[at0:at0 + rows]
        free -= rows
        hash_later = later and rows * row_bytes >= OVERLAP_BYTES  # on a second thread
        if convert and not hash_later:
            buf = _scratch(buf, max(sizes), shape, dset.dtype)
            raw = buf[:rows]
        else:  # the result itself, or a buffer of its own that waits to be hashed
            raw = np.empty((rows,) + shape, dset.dtype) if convert else dst
        _read_runs(dset, np.array([r[0] for r in runs]), np.array([r[1] for r in runs]), raw,
                   GAP_BYTES // row_bytes, spare)
        if digests is not None and convert and not hash_later:
            rowd.append(digest_convert(raw, dst))  # one pass where the kernel can
        else:
            if digests is not None:
                rowd.append(_hash_later(raw, rowd) if hash_later else row_digests(raw))
            if convert:
                convert_into(dst, raw)
        at = 0
        for a, b, k0, k1 in runs:
            shift[k0:k1] = seen + at - a
            for k in range(k0, k1):
                res[order[k]] = dst[at + s[k] - a:at + e[k] - a]
            at += b - a
        seen += rows
    if digests is not None:
        rowd = [d.result() if isinstance(d, Future) else d for d in rowd]
        digests[order] = combine_ranges(np.concatenate(rowd), np.array(s) + shift, np.array(e) + shift)
    return res

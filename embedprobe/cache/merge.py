"""Streaming merges of segments into a new segment, checking every checksum on the way."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import interrupts, rangeio
from .digest import DIGEST_DSET, columns, row_digests, seal
from .rangeio import read_ranges, read_rows
from .schema import Header, create_columns, write_meta, write_root_attrs
from .segment import DamagedClipsError, Segment, damage_sentence, h5open


def union_sessions(segments: list[Segment], extra: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    seen, out = set(), []
    for s in [*[x for seg in segments for x in seg.sessions], *extra]:
        if s.get("session") not in seen:
            seen.add(s.get("session"))
            out.append(s)
    return out


def write_merged(dst: Path, header: Header, segments: list[Segment], seg_idx: np.ndarray, rows: np.ndarray,
                 errors: list[tuple[str, str, str, float]], *, kind: str, attrs: dict[str, Any],
                 sessions: list[dict[str, Any]], sources: list[str], manifest_json: str | None = None) -> None:
    """Write a new segment holding clip ``rows[i]`` of ``segments[seg_idx[i]]`` in that order.

    Streams in blocks of at most ``SPAN_BYTES`` so caches larger than memory merge fine.
    """
    n = len(rows)
    seg_idx, rows = np.asarray(seg_idx, np.int64), np.asarray(rows, np.int64)
    uniq = [int(u) for u in np.unique(seg_idx)]
    masks = {u: seg_idx == u for u in uniq}
    lengths, out_off = {}, {}
    for layer in header.frame_layers:
        ln = np.zeros(n, np.int64)
        for u in uniq:
            off = segments[u].offsets[layer]
            r = rows[masks[u]]
            ln[masks[u]] = off[r + 1] - off[r]
        lengths[layer] = ln
        out_off[layer] = np.concatenate([[0], np.cumsum(ln)]).astype(np.int64)
    cols = columns(header.layers, header.frame_layers)
    table = np.zeros((n, len(cols)), np.uint64)
    damaged: dict[tuple[int, int], list[str]] = {}
    with h5open(dst, "w") as f:
        write_root_attrs(f, header, kind=kind, n_clips=n, n_errors=len(errors), extra=attrs)
        create_columns(f, header, n, {k: int(v[-1]) for k, v in out_off.items()}, len(errors))
        if n:
            ids = np.empty(n, object)
            ch = np.empty(n, object)
            dur = np.empty(n, np.float64)
            nf = np.empty(n, np.int64)
            for u in uniq:
                m, seg = masks[u], segments[u]
                r = rows[m]
                ids[m] = [seg.ids[x] for x in r.tolist()]
                ch[m] = seg.content_hash[r]
                dur[m] = seg.duration_s[r]
                nf[m] = seg.n_frames[r]
            f["clips/id"][:] = ids
            f["clips/content_hash"][:] = ch
            f["clips/duration_s"][:] = dur
            f["clips/n_frames"][:] = nf
        _copy_pooled(f, header, segments, seg_idx, rows, table, cols, damaged)
        for layer in header.frame_layers:
            _copy_frames(f, layer, header, segments, seg_idx, rows, out_off[layer],
                         table[:, cols[("frames", layer)]], damaged)
        if damaged:
            pairs = set(damaged)
            found = [(segments[u].path, segments[u].ids[r], w) for (u, r), ws in damaged.items() for w in ws]
            raise DamagedClipsError(found, pairs)
        f[DIGEST_DSET][:] = table
        if errors:
            for c, col in enumerate(("id", "path", "reason")):
                f[f"errors/{col}"][:] = np.array([e[c] for e in errors], dtype=object)
            f["errors/time"][:] = np.array([e[3] for e in errors], np.float64)
        write_meta(f, sessions=sessions, sources=sources, manifest_json=manifest_json)


def write_merged_checked(dst: Path, header: Header, segments: list[Segment], seg_idx: np.ndarray,
                         rows: np.ndarray, errors: list[tuple[str, str, str, float]], **kw: Any) -> list[str]:
    """``write_merged``, leaving out clips whose stored values fail their checksum.

    Each damaged clip is named in a warning; returns their ids (they count as not extracted).
    """
    seg_idx, rows = np.asarray(seg_idx, np.int64), np.asarray(rows, np.int64)
    lost: list[str] = []
    while True:
        try:
            write_merged(dst, header, segments, seg_idx, rows, errors, **kw)
            return lost
        except DamagedClipsError as e:  # rare: write again without them
            warnings.warn(damage_sentence(e.found, "They were left out; re-running the extraction extracts "
                                          "them again."), stacklevel=3)
            keep = np.array([p not in e.pairs for p in zip(seg_idx.tolist(), rows.tolist(), strict=True)], bool)
            seg_idx, rows = seg_idx[keep], rows[keep]
            lost += sorted({f[1] for f in e.found})


def set_attrs(path: Path, **attrs: Any) -> None:
    """Change root attributes of a segment being written, and seal its metadata checksum again."""
    with h5open(path, "r+") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        seal(f)


def _check(seg: Segment, rows: np.ndarray, got: np.ndarray, key: tuple[str, str],
           damaged: dict[tuple[int, int], list[str]], u: int) -> None:
    """Record rows of ``seg`` whose computed digests ``got`` differ from the stored ones."""
    if seg.digests is None:
        return
    bad = np.nonzero(seg.digests[rows, seg.columns[key]] != got)[0]
    for r in rows[bad].tolist():
        damaged.setdefault((u, int(r)), []).append(f"{key[1]} {key[0]}")


def _copy_pooled(f: Any, header: Header, segments: list[Segment], seg_idx: np.ndarray, rows: np.ndarray,
                 table: np.ndarray, cols: dict[tuple[str, str], int], damaged: dict[tuple[int, int], list[str]]) -> None:
    """Copy every pooled array in blocks of rows (all layers of a block together, so a packed part
    is read once per block); ``table`` receives each clip's digests."""
    n = len(rows)
    keys = [(stat, layer) for layer in header.layers for stat in ("mean", "std")]
    outs = {k: f[f"pooled/{k[1]}/{k[0]}"] for k in keys}
    row_bytes = sum(2 * d for d in header.layers.values()) * np.dtype(header.dtype).itemsize
    block = max(1, 2 * rangeio.SPAN_BYTES // row_bytes)
    for a in range(0, n, block):
        interrupts.check_interrupt()
        b = min(n, a + block)
        bufs = {k: np.empty((b - a, header.layers[k[1]]), header.dtype) for k in keys}
        si, ri = seg_idx[a:b], rows[a:b]
        for u in np.unique(si).tolist():
            m = np.nonzero(si == u)[0]
            seg, r = segments[u], ri[m]
            whole = read_rows(seg.packed, r) if seg.packed is not None else None
            for k in keys:
                if whole is not None:  # format 2: slice the packed rows, hash the slice
                    c0, c1 = seg.dset("pooled", k[1], k[0]).start, seg.dset("pooled", k[1], k[0]).stop
                    piece = whole[:, c0:c1]
                    d = row_digests(piece)
                else:
                    d = np.empty(len(r), np.uint64)
                    piece = read_rows(seg.dset("pooled", k[1], k[0]), r, digests=d)
                bufs[k][m] = piece
                table[a + m, cols[k]] = d
                _check(seg, r, d, k, damaged, u)
        for k in keys:
            outs[k][a:b] = bufs[k]


def _copy_frames(f: Any, layer: str, header: Header, segments: list[Segment], seg_idx: np.ndarray,
                 rows: np.ndarray, out_off: np.ndarray, table_col: np.ndarray,
                 damaged: dict[tuple[int, int], list[str]]) -> None:
    """Copy the frames of ``layer``; ``table_col`` receives each clip's frames digest."""
    n = len(rows)
    f[f"frames/{layer}/offsets"][:] = out_off
    out = f[f"frames/{layer}/data"]
    max_rows = max(1, rangeio.SPAN_BYTES // (header.layers[layer] * np.dtype(header.dtype).itemsize))
    a = 0
    while a < n:
        interrupts.check_interrupt()
        # Extend the block while it stays under SPAN_BYTES (always at least one clip).
        b = int(np.searchsorted(out_off, out_off[a] + max_rows, side="right")) - 1
        b = min(n, max(a + 1, b))
        base = int(out_off[a])
        buf = np.empty((int(out_off[b]) - base, header.layers[layer]), header.dtype)
        si, ri = seg_idx[a:b], rows[a:b]
        for u in np.unique(si).tolist():
            idx = np.nonzero(si == u)[0]
            off = segments[u].offsets[layer]
            r = ri[idx]
            d = np.empty(len(r), np.uint64)
            pieces = read_ranges(segments[u].dset("frames", layer, "data"), off[r], off[r + 1], digests=d)
            table_col[a + idx] = d
            _check(segments[u], r, d, ("frames", layer), damaged, u)
            for k, p in zip(idx.tolist(), pieces, strict=True):
                buf[int(out_off[a + k]) - base:int(out_off[a + k + 1]) - base] = p
        if len(buf):
            out[base:base + len(buf)] = buf
        a = b

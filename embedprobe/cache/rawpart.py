"""Raw part files (format 3): one batch as a JSON header and the vectors, written with one ``writev``.

A batch's part file used to be a small HDF5 file built in memory; building it cost more than
writing it (the vectors were copied three times). A raw part is written straight from the
batch's arrays::

    bytes 0-7     MAGIC (``\\x89EPRAW\\r\\n``; HDF5 files start with ``\\x89HDF\\r\\n``)
    bytes 8-15    length H of the header, little-endian uint64
    bytes 16-31   BLAKE2b-128 of the header bytes (the metadata checksum)
    bytes 32-     the header: UTF-8 JSON with the root attributes of a segment (``schema.py``), the
                  small columns (clip ids, content hashes, durations, frame counts, frame offsets,
                  the error table, sessions, sources), the digest table (hex of little-endian
                  uint64) and ``arrays``: name -> [file offset, rows, columns] of each vector array
    then          zero padding to a multiple of 64, and the arrays: ``pooled/packed`` (every
                  layer's mean then std side by side, as in format 2) and ``frames/<layer>/data``

The vectors carry the same per-clip digests as HDF5 segments (``digest.py``), checked on every
read, merge and resume; a torn or truncated file fails the size or header check. Parts are still
named ``part.*.h5`` (the journal and the layout do not change); ``Segment`` tells the two
formats apart by their first bytes. Merged parts and main files stay HDF5.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.provenance import to_jsonable

from . import durable
from .digest import SCHEME
from .schema import Header

MAGIC = b"\x89EPRAW\r\n"
RAW_VERSION = 3
_PREFIX = 32
_ALIGN = 64


def is_raw(path: Path) -> bool:
    """Whether ``path`` starts like a raw part (``FileNotFoundError`` if it is gone)."""
    with open(path, "rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


def write_raw_part(tmp: Path, final: Path, header: Header, block: Any, *, session: dict[str, Any],
                   level: int = 0) -> None:
    """Write ``block`` (a ``batch.Block``) as the raw part ``final``, via ``tmp`` (``durable.commit_bytes``:
    one ``writev`` of the header and the arrays as they are, fsync, rename, fsync the folder)."""
    n = len(block.ids)
    arrays: list[tuple[str, np.ndarray | list[np.ndarray], int, int]] = [
        ("pooled/packed", block.pooled, n, block.pooled.shape[1])]
    for layer in header.frame_layers:
        mats, off = block.frames[layer]
        arrays.append((f"frames/{layer}/data", mats, int(off[-1]), header.layers[layer]))
    item = np.dtype(header.dtype).itemsize
    meta = {
        "format_version": RAW_VERSION, "kind": "part", "level": level, "dtype": header.dtype,
        "layers": header.layers, "frame_layers": list(header.frame_layers),
        "identity_fingerprint": header.identity_fingerprint,
        "provenance": to_jsonable(header.provenance), "identity": to_jsonable(header.identity),
        "n_clips": n, "n_errors": len(block.errors["id"]), "created": time.time(), "checksums": SCHEME,
        "clips": {"id": block.ids, "content_hash": block.content_hash,
                  "duration_s": np.asarray(block.duration_s, np.float64).tolist(),
                  "n_frames": np.asarray(block.n_frames, np.int64).tolist()},
        "digest": np.ascontiguousarray(block.digests, "<u8").tobytes().hex(),
        "offsets": {layer: np.asarray(block.frames[layer][1], np.int64).tolist() for layer in header.frame_layers},
        "errors": block.errors, "sessions": to_jsonable([session]), "sources": [],
    }
    # Array offsets depend on the header's length, which depends on them: reserve 20 digits each.
    at = 0
    layout = {}
    for name, _, rows, cols in arrays:
        layout[name] = [at, rows, cols]
        at += rows * cols * item
    meta["arrays"] = {k: [0, r, c] for k, (_, r, c) in layout.items()}
    meta["size"] = 0
    probe = json.dumps(meta).encode()
    base = -(-(_PREFIX + len(probe) + 40 * (len(layout) + 1)) // _ALIGN) * _ALIGN
    meta["arrays"] = {k: [base + a, r, c] for k, (a, r, c) in layout.items()}
    meta["size"] = base + at
    text = json.dumps(meta).encode()
    prefix = MAGIC + len(text).to_bytes(8, "little") + hashlib.blake2b(text, digest_size=16).digest()
    bufs: list[Any] = [prefix, text, bytes(base - _PREFIX - len(text))]
    for _, data, _, _ in arrays:
        bufs += data if isinstance(data, list) else [data]
    durable.commit_bytes(bufs, tmp, final)


class RawFile:
    """An open raw part (what ``Segment.f`` is for it): a file descriptor read with ``pread``."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def read_into(self, out: np.ndarray, offset: int) -> None:
        view = memoryview(out).cast("B")
        while view.nbytes:
            if hasattr(os, "preadv"):
                got = os.preadv(self.fd, [view], offset)
            else:  # pragma: no cover - platforms without preadv
                chunk = os.pread(self.fd, view.nbytes, offset)
                got = len(chunk)
                view[:got] = chunk
            if got <= 0:
                raise ValueError(f"{self.path} is shorter than its header says (truncated?)")
            view, offset = view[got:], offset + got


class RawArray:
    """A ``(rows, cols)`` array of a raw part, sliced like an h5py dataset (``a[lo:hi]``,
    ``a[lo:hi, c0:c1]``); every slice is a fresh, writeable, C-contiguous array."""

    def __init__(self, file: RawFile, offset: int, rows: int, cols: int, dtype: np.dtype):
        self.file, self.offset, self.shape, self.dtype = file, offset, (rows, cols), np.dtype(dtype)
        self.row_bytes = cols * self.dtype.itemsize
        self.nbytes = rows * self.row_bytes

    def __getitem__(self, key: Any) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if not isinstance(rows, slice) or not isinstance(cols, slice):
            raise TypeError("raw part arrays take slices")
        lo, hi, step = rows.indices(self.shape[0])
        if step != 1:
            raise TypeError("raw part arrays take slices with step 1")
        out = np.empty((max(0, hi - lo), self.shape[1]), self.dtype)
        if out.size:
            self.file.read_into(out, self.offset + lo * self.row_bytes)
        if cols != slice(None):
            out = np.ascontiguousarray(out[:, cols])
        return out

    def read_runs(self, runs: list[tuple[int, int]], out: np.ndarray) -> None:
        """Rows ``a:b`` of each run, one after another, into ``out`` (C-contiguous, this dtype)."""
        k = 0
        for a, b in runs:
            if b > a:
                if a < 0 or b > self.shape[0]:
                    raise IndexError(f"rows {a}:{b} of a {self.shape[0]}-row array")
                self.file.read_into(out[k:k + b - a], self.offset + a * self.row_bytes)
            k += b - a


def read_raw_header(file: RawFile) -> dict[str, Any]:
    """The header of an open raw part, checked against its checksum and the file's size.

    Raises ``ValueError`` naming what is wrong (a torn, truncated or damaged file).
    """
    prefix = np.empty(_PREFIX, np.uint8)
    file.read_into(prefix, 0)
    raw = prefix.tobytes()
    if raw[:len(MAGIC)] != MAGIC:
        raise ValueError("not a raw part file")
    size = int.from_bytes(raw[8:16], "little")
    if size > os.fstat(file.fd).st_size:
        raise ValueError("its header is cut off (a torn write or damage)")
    text = np.empty(size, np.uint8)
    file.read_into(text, _PREFIX)
    if hashlib.blake2b(text.tobytes(), digest_size=16).digest() != raw[16:32]:
        raise ValueError("its metadata (clip list, offsets, attributes or checksums) does not match its checksum")
    meta = json.loads(text.tobytes().decode("utf-8"))
    if os.fstat(file.fd).st_size != int(meta["size"]):
        raise ValueError(f"it has {os.fstat(file.fd).st_size} bytes where its header says {meta['size']} "
                         "(truncated or appended to)")
    return meta


def digest_table(meta: dict[str, Any], n: int, k: int) -> np.ndarray:
    """The ``(n, k)`` uint64 digest table of a raw part's header."""
    return np.frombuffer(bytes.fromhex(meta["digest"]), "<u8").astype(np.uint64).reshape(n, k)

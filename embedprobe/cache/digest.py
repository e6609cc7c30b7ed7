"""Checksums of what a cache stores: one 64-bit digest per clip and array, one per segment's metadata.

Vectors: the digest of a stored row is ``sum_j word_j * K_j mod 2**64`` over the row's bytes read
as little-endian 64-bit words (zero-padded), with fixed odd constants ``K_j``. Multiplying by an
odd number is a bijection mod 2**64, so any change of a single word (any number of flipped bits
or bytes within 8 aligned bytes) always changes the digest; changes spread over several words
cancel with probability about 2**-56. A clip's frames digest combines its row digests with odd
weights that depend on the row's place in the clip, plus the row count. It was chosen over HDF5's
fletcher32 filter (chunked datasets; 5x slower reads here) and over per-row CRC32 (Python loop,
2x the read). The compiled kernel ``_wsum.c`` (built at install where a C compiler is found)
computes it at 70-90 GB/s from the CPU cache, and can convert float16 rows to float32 in the same
pass (``digest_convert``); without it numpy's ``einsum`` gives the same digests at 20-37 GB/s.

Metadata: ``meta_digest`` is a BLAKE2b hash over the root attributes and every small dataset
(clip ids, content hashes, durations, frame counts and offsets, the error table, sessions,
sources, manifest and the digest table itself), stored in the root attribute ``meta_digest``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from .convert import convert_into

try:
    from . import _wsum  # the compiled kernel (setup.py); optional
except ImportError:
    _wsum = None

SCHEME = "wsum64-v1"
META_ATTR = "meta_digest"
SCHEME_ATTR = "checksums"
DIGEST_DSET = "clips/digest"
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_LEN = np.uint64(0xC2B2AE3D27D4EB4F)


@lru_cache(maxsize=64)
def digest_weights(n_words: int) -> np.ndarray:
    """The odd constants ``K_j`` of a row of ``n_words`` 64-bit words."""
    rng = np.random.default_rng(0x5EED)
    w = rng.integers(0, 2**63, n_words, dtype=np.uint64)
    return w * np.uint64(2) + np.uint64(1)


def kernel() -> str:
    """Which code computes the row digests: ``"compiled-avx512"``, ``"compiled-avx2"``,
    ``"compiled-generic"`` (``_wsum.c``) or ``"numpy"``."""
    return f"compiled-{_wsum.KERNEL}" if _wsum is not None else "numpy"


def _compiled_rows(a: np.ndarray) -> bool:
    """Can ``_wsum`` hash ``a`` as it is: 2-D, rows of whole 8-byte-aligned 64-bit words, each
    row contiguous (a slice of columns of a wider array qualifies)."""
    if (_wsum is None or a.ndim != 2 or not a.size or (a.shape[1] * a.itemsize) % 8
            or a.dtype.hasobject or a.dtype.kind in "Mm"):  # pointers; no buffer export
        return False
    return ((a.shape[1] == 1 or a.strides[1] == a.itemsize) and a.ctypes.data % 8 == 0
            and (a.shape[0] == 1 or (a.strides[0] % 8 == 0 and a.strides[0] >= a.shape[1] * a.itemsize)))


def row_digests(a: np.ndarray) -> np.ndarray:
    """``(N,)`` uint64: the digest of each row's stored bytes of the array ``a`` (``(N, ...)``)."""
    if _compiled_rows(a):
        out = np.empty(a.shape[0], np.uint64)
        _wsum.wsum_rows(a, digest_weights(a.shape[1] * a.itemsize // 8), out)
        return out
    if a.ndim == 2 and a.flags.c_contiguous and (a.shape[1] * a.itemsize) % 8 == 0 and a.size:
        w = a.view(np.uint64)  # the common case, without copies or reshapes
    else:
        a = np.ascontiguousarray(a)
        n = a.shape[0] if a.ndim else 1
        if not n:
            return np.zeros(0, np.uint64)
        b = a.reshape(n, -1).view(np.uint8)
        if b.shape[1] % 8:
            padded = np.zeros((n, -(-b.shape[1] // 8) * 8), np.uint8)
            padded[:, :b.shape[1]] = b
            b = padded
        w = b.view(np.uint64)
    if not w.shape[1]:
        return np.zeros(n, np.uint64)
    with np.errstate(over="ignore"):
        return np.einsum("ij,j->i", w, digest_weights(w.shape[1]))


def fuses(src_dtype: Any, dst_dtype: Any, row_shape: tuple[int, ...] | None = None) -> bool:
    """Does ``digest_convert`` hash and convert from ``src_dtype`` to ``dst_dtype`` in one pass
    (the compiled kernel, float16 to float32, a CPU with AVX2 and F16C)? With ``row_shape``, also
    for rows of that shape (contiguous, aligned arrays of 1-D rows of whole 64-bit words)."""
    return (_wsum is not None and bool(_wsum.HAS_F16C) and np.dtype(src_dtype) == np.float16
            and np.dtype(dst_dtype) == np.float32
            and (row_shape is None or (len(row_shape) == 1 and row_shape[0] % 4 == 0)))


def digest_convert(raw: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``row_digests(raw)``, and ``dst[...] = raw`` converted to ``dst``'s dtype (both C-contiguous,
    the same shape). float16 to float32 is done in the same pass as the hashing where the compiled
    kernel and the CPU allow (bit for bit as torch converts); anything else hashes, then converts."""
    if (fuses(raw.dtype, dst.dtype) and raw.flags.c_contiguous and dst.flags.c_contiguous
            and dst.shape == raw.shape and _compiled_rows(raw)
            and dst.ctypes.data % 4 == 0 and not np.may_share_memory(raw, dst)):
        out = np.empty(raw.shape[0], np.uint64)
        _wsum.wsum_rows_f16_to_f32(raw, digest_weights(raw.shape[1] // 4), out, dst)
        return out
    out = row_digests(raw)
    convert_into(dst, raw)
    return out


def combine_ranges(rowd: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """``(len(starts),)`` uint64: the digest of each ragged range ``rowd[a:b]`` of row digests,
    ``b - a`` times ``_LEN`` plus ``sum_r (2 r + 1) _GOLD rowd[a + r]``.

    Computed from two prefix sums (exact mod 2**64): with ``S0``, ``S1`` the prefix sums of
    ``rowd[i]`` and ``i * rowd[i]``, a range's weighted sum is
    ``2 (S1[b] - S1[a] - a (S0[b] - S0[a])) + S0[b] - S0[a]``; no per-row gather, any ranges.
    """
    starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
    n = len(rowd)
    s0 = np.empty(n + 1, np.uint64)
    s1 = np.empty(n + 1, np.uint64)
    s0[0] = s1[0] = 0
    with np.errstate(over="ignore"):
        np.cumsum(rowd, out=s0[1:])
        pos = np.arange(n, dtype=np.uint64)
        np.multiply(pos, rowd, out=pos)
        np.cumsum(pos, out=s1[1:])
        total = s0[stops] - s0[starts]
        weighted = s1[stops] - s1[starts] - starts.astype(np.uint64) * total
        return (stops - starts).astype(np.uint64) * _LEN + _GOLD * (np.uint64(2) * weighted + total)


def clip_digests(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Digests of the frames of every clip of ragged ``data`` (clip i = rows offsets[i]:offsets[i+1])."""
    offsets = np.asarray(offsets, np.int64)
    return combine_ranges(row_digests(data), offsets[:-1], offsets[1:])


def columns(layers: Mapping[str, int], frame_layers: tuple[str, ...] | list[str]) -> dict[tuple[str, str], int]:
    """Column of the digest table for each stored array: ``("mean"|"std"|"frames", layer) -> j``."""
    cols: dict[tuple[str, str], int] = {}
    for layer in layers:
        cols[("mean", layer)] = len(cols)
        cols[("std", layer)] = len(cols)
    for layer in frame_layers:
        cols[("frames", layer)] = len(cols)
    return cols


# -- metadata ------------------------------------------------------------------------------------
def _update(h: Any, value: Any) -> None:
    if isinstance(value, bytes):
        h.update(b"b%d:" % len(value) + value)
    elif isinstance(value, str):
        _update(h, value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        _update_strings(h, value.tolist())
    elif isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        h.update(f"a{a.dtype.str}{a.shape}:".encode())
        h.update(a.tobytes())
    elif isinstance(value, (list, tuple)):
        _update_strings(h, value)
    elif isinstance(value, np.generic):
        _update(h, value.item())
    else:
        _update(h, json.dumps(value))


def _update_strings(h: Any, values: Any) -> None:
    h.update(b"l%d:" % len(values))
    for v in values:
        _update(h, v.decode() if isinstance(v, bytes) else str(v))


def meta_digest(attrs: Mapping[str, Any], small: Mapping[str, Any]) -> str:
    """Hex digest over root attributes (except ``meta_digest``) and the small datasets ``small``."""
    h = hashlib.blake2b(digest_size=16)
    for k in sorted(attrs):
        if k != META_ATTR:
            _update(h, k)
            _update(h, attrs[k])
    for k in sorted(small):
        _update(h, k)
        _update(h, small[k])
    return h.hexdigest()


def read_small(f: Any, frame_layers: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Every small dataset of an open segment, as ``meta_digest`` hashes it (names -> values)."""
    out: dict[str, Any] = {}
    for name in ("clips/id", "clips/content_hash", "errors/id", "errors/path", "errors/reason",
                 "meta/sources"):
        out[name] = f[name].asstr()[()]
    for name in ("clips/duration_s", "clips/n_frames", "errors/time"):
        out[name] = f[name][()]
    out["meta/sessions_json"] = f["meta/sessions_json"].asstr()[()]
    if "meta/manifest_json" in f:
        out["meta/manifest_json"] = f["meta/manifest_json"].asstr()[()]
    for layer in frame_layers:
        out[f"frames/{layer}/offsets"] = f[f"frames/{layer}/offsets"][()]
    if DIGEST_DSET in f:
        out[DIGEST_DSET] = f[DIGEST_DSET][()]
    return out


def seal(f: Any, small: Mapping[str, Any] | None = None) -> None:
    """Write the ``meta_digest`` attribute of a segment whose content is complete.

    ``small``: the small datasets just written, as ``read_small`` would return them (saves
    reading them back; a batch's part file is sealed this way); ``None`` reads them.
    """
    if small is None:
        small = read_small(f, json.loads(f.attrs["frame_layers"]))
    f.attrs[META_ATTR] = meta_digest(dict(f.attrs), small)

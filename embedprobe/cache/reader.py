"""Read an embedding cache: pooled vectors and frame-level features as float32 arrays.

The reader opens the main file plus every committed part at one moment and keeps them open,
so it works while a writer is running (it sees the batches committed before it opened) and
after a crash (it never opens temporary files).

Example:
    >>> # SKIP: needs an extracted cache file (tests/cache builds small ones)
    >>> with open_cache("emb.h5") as c:                       # doctest: +SKIP
    ...     X = c.pooled("layer_12", "meanstd")               # (n_clips, 2 * D), manifest order
    ...     y = [clip.label for clip in c.manifest.clips if clip.id in set(c.ids)]
"""

from __future__ import annotations

import warnings
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.corpora.base import Manifest
from embedprobe.errors import BadValueError, CacheError
from embedprobe.provenance import fingerprint

from .layout import Layout
from .naming import not_a_cache
from .rangeio import read_ranges, read_rows
from .schema import STATS
from .segment import DamagedClipsError
from .snapshot import Snapshot


def open_cache(path: str | Path) -> CacheReader:
    """Open the cache at ``path`` for reading (see ``CacheReader``)."""
    return CacheReader(path)


class CacheReader:
    """A read-only, consistent view of one cache.

    Attributes:
        path: the cache file.
        ids: clip ids with vectors, in manifest order.
        layers: layer names in extractor order; ``dims`` maps them to their dimension.
        frame_layers: layers whose frame-level features are stored.
        dtype: the storage dtype (``"float32"`` or ``"float16"``); arrays returned are float32.
        provenance, identity: what made the cache (dicts), as given to the first writer.
        manifest: the corpus ``Manifest`` the cache was made from.
        errors: ``[{"id", "path", "reason"}]`` of clips that failed and have no vectors.
        complete: ``True`` once a finalize found every manifest clip done or failed.
        n_pending: manifest clips neither stored nor failed (not extracted yet).
        missing_parts: part files the cache's journal lists that are gone.
        checksums: ``"yes"``, ``"no"`` (written before checksums) or ``"partly"``.

    Every vector read is checked against its stored checksum; damaged clips raise
    ``DamagedClipsError`` naming them (they are never returned).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if (problem := not_a_cache(self.path)) is not None:
            raise CacheError(problem)
        self._layout = Layout(self.path)
        snap = Snapshot.open(self._layout)
        if snap is None:
            raise CacheError(f"There is no embedding cache at {self.path}. Fix: check the path, or make "
                             "it with `embedprobe extract ... --out PATH`.")
        for p, reason in snap.corrupt:
            warnings.warn(f"Ignoring a damaged cache part {p} ({reason}); its clips count as not done.",
                          stacklevel=2)
        if snap.missing:
            warnings.warn(f"The cache part{'s' if len(snap.missing) > 1 else ''} "
                          f"{', '.join(map(str, snap.missing))} listed in the cache's journal is missing "
                          "(deleted?); its clips count as not done and re-running the extraction resumes "
                          "(extracts them again).", stacklevel=2)
        self._snap = snap
        h = snap.header
        self._header = h
        self.manifest = Manifest.from_json(h.manifest_json)
        self.provenance: dict[str, Any] = h.provenance
        self.identity: dict[str, Any] = h.identity
        self.layers: list[str] = list(h.layers)
        self.dims: dict[str, int] = dict(h.layers)
        self.frame_layers: list[str] = list(h.frame_layers)
        #: what ``--layer`` means when not given: the last layer of the widest dimension (a model's
        #: last hidden layer, not a small clip-level head output such as w2v2-msp-dim's ``adv``)
        self.default_layer: str = default_layer(self.layers, self.dims)
        self.dtype: str = h.dtype
        where = snap.where
        manifest_ids = self.manifest.ids
        in_manifest = set(manifest_ids)
        self.ids: list[str] = [i for i in manifest_ids if i in where] + sorted(set(where) - in_manifest)
        self._pos = {i: k for k, i in enumerate(self.ids)}
        loc = np.array([where[i] for i in self.ids], np.int64).reshape(-1, 2)
        self._seg, self._row = loc[:, 0], loc[:, 1]
        order = {i: k for k, i in enumerate(manifest_ids)}
        self.errors: list[dict[str, str]] = [
            {"id": i, "path": snap.errors[i][0], "reason": snap.errors[i][1]}
            for i in sorted(snap.errors, key=lambda i: (order.get(i, len(order)), i))]
        self.complete: bool = snap.main is not None and snap.main.complete
        failed = set(snap.errors)
        self.n_pending: int = sum(1 for i in manifest_ids if i not in where and i not in failed)
        self.missing_parts: list[str] = [str(p) for p in snap.missing]
        with_sums = {seg.digests is not None for seg in snap.segments}
        self.checksums: str = "yes" if with_sums == {True} else "no" if with_sums == {False} else "partly"

    # -- queries -------------------------------------------------------------------------------
    @property
    def n_clips(self) -> int:
        return len(self.ids)

    def has_frames(self, layer: str) -> bool:
        self._check_layer(layer)
        return layer in self.frame_layers

    def pooled(self, layer: str, stat: str = "mean", ids: list[str] | None = None) -> np.ndarray:
        """Pooled vectors as float32: ``(N, D)`` for ``"mean"``/``"std"``, ``(N, 2D)`` for ``"meanstd"``.

        Args:
            layer: one of ``layers``.
            stat: ``"mean"``, ``"std"`` or ``"meanstd"`` (mean then std, concatenated).
            ids: clips to return, in this order (repeats allowed); all ``ids`` by default.
        """
        self._check_layer(layer)
        if stat not in STATS:
            raise BadValueError("pooling statistic", stat, STATS)
        if stat == "meanstd":
            return np.concatenate([self.pooled(layer, "mean", ids), self.pooled(layer, "std", ids)], axis=1)
        seg, row = self._locate(ids)
        out = np.empty((len(seg), self.dims[layer]), np.float32)
        found = []
        for s in np.unique(seg).tolist():
            m = seg == s
            segment = self._snap.segments[s]
            d = np.empty(int(m.sum()), np.uint64) if segment.digests is not None else None
            out[m] = read_rows(segment.dset("pooled", layer, stat), row[m], np.float32, digests=d)
            found += self._damaged(segment, row[m], d, (stat, layer))
        if found:
            raise DamagedClipsError(found)
        return out

    def frames(self, layer: str, ids: list[str] | None = None) -> list[np.ndarray]:
        """Frame-level features, one float32 ``(T_i, D)`` array per clip, in the order of ``ids``.

        Neighbouring clips are read together in large contiguous reads, so asking for many
        clips at once is much faster than asking one at a time.
        """
        self._check_layer(layer)
        if layer not in self.frame_layers:
            raise CacheError(
                f"The cache {self.path} keeps no frame-level features for layer {layer!r} (frame "
                f"layers: {self.frame_layers}). Fix: use pooled(), or re-extract with frames of "
                f"{layer!r} into another --out.")
        seg, row = self._locate(ids)
        out: list[np.ndarray] = [None] * len(seg)  # type: ignore[list-item]
        found = []
        for s in np.unique(seg).tolist():
            idx = np.nonzero(seg == s)[0]
            segment = self._snap.segments[s]
            off = segment.offsets[layer]
            r = row[idx]
            d = np.empty(len(r), np.uint64) if segment.digests is not None else None
            pieces = read_ranges(segment.dset("frames", layer, "data"), off[r], off[r + 1], np.float32, digests=d)
            found += self._damaged(segment, r, d, ("frames", layer))
            for k, p in zip(idx.tolist(), pieces, strict=True):
                out[k] = p
        if found:
            raise DamagedClipsError(found)
        return out

    @staticmethod
    def _damaged(segment: Any, rows: np.ndarray, got: np.ndarray | None,
                 key: tuple[str, str]) -> list[tuple[Path, str, str]]:
        if got is None:
            return []
        bad = np.nonzero(segment.digests[rows, segment.columns[key]] != got)[0]
        return [(segment.path, segment.ids[int(r)], f"{key[1]} {key[0]}") for r in dict.fromkeys(rows[bad].tolist())]

    def clip_table(self, ids: list[str] | None = None) -> dict[str, np.ndarray]:
        """Per-clip ``content_hash`` (str), ``duration_s`` and ``n_frames`` (-1: unknown)."""
        seg, row = self._locate(ids)
        out = {"content_hash": np.empty(len(seg), object), "duration_s": np.empty(len(seg), np.float64),
               "n_frames": np.empty(len(seg), np.int64)}
        for s in np.unique(seg).tolist():
            m = seg == s
            sg = self._snap.segments[s]
            out["content_hash"][m] = sg.content_hash[row[m]]
            out["duration_s"][m] = sg.duration_s[row[m]]
            out["n_frames"][m] = sg.n_frames[row[m]]
        return out

    @cached_property
    def fingerprint(self) -> str:
        """Short hash of the identity, layer set, dtype, clip ids, their content hashes and the
        checksums of their stored values (caches without checksums: ids and content hashes)."""
        hashes = self.clip_table()["content_hash"].tolist()
        clips = sorted(zip(self.ids, hashes, strict=True))
        if self.checksums != "no":
            sums = {}
            for cid, s, r in zip(self.ids, self._seg.tolist(), self._row.tolist(), strict=True):
                d = self._snap.segments[s].digests
                sums[cid] = None if d is None else d[r].tobytes().hex()
            clips = [(cid, h, sums[cid]) for cid, h in clips]
        return fingerprint({"config": self._header.comparable(), "clips": clips})

    @property
    def sessions(self) -> list[dict[str, Any]]:
        """Every writer session (id, shard tag, host, start, provenance) whose clips are here."""
        seen, out = set(), []
        for seg in self._snap.segments:
            for s in seg.sessions:
                if s.get("session") not in seen:
                    seen.add(s.get("session"))
                    out.append(s)
        return out

    def info(self) -> dict[str, Any]:
        """A JSON-able summary for ``embedprobe cache info`` and results files."""
        n_manifest = len(self.manifest)
        return {
            "path": str(self.path), "n_clips": self.n_clips, "n_errors": len(self.errors),
            "n_manifest": n_manifest,
            "n_pending": self.n_pending, "missing_parts": self.missing_parts, "checksums": self.checksums,
            "complete": self.complete, "layers": self.layers, "dims": self.dims,
            "frames": self.frame_layers, "dtype": self.dtype, "corpus": self.manifest.corpus,
            "fingerprint": self.fingerprint, "provenance": self.provenance,
            "n_parts": len(self._snap.parts), "n_sessions": len(self.sessions),
            "size_bytes": self._layout.size_bytes(),
        }

    # -- helpers -------------------------------------------------------------------------------
    def _check_layer(self, layer: str) -> None:
        if layer not in self.dims:
            raise BadValueError(f"layer of cache {self.path.name}", layer, self.layers)

    def _locate(self, ids: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
        if ids is None:
            return self._seg, self._row
        try:
            k = np.fromiter((self._pos[i] for i in ids), np.int64, count=len(ids))
        except KeyError as e:
            failed = {x["id"] for x in self.errors}
            why = "it failed during extraction (see .errors)" if e.args[0] in failed else (
                "it is not in the cache yet (extraction incomplete?)" if e.args[0] in set(self.manifest.ids)
                else f"it is not a clip of the {self.manifest.corpus} manifest")
            raise BadValueError(f"clip id for cache {self.path.name}", e.args[0], None,
                                f"{why}; the cache has {self.n_clips} clips, listed in .ids") from None
        return self._seg[k], self._row[k]

    def close(self) -> None:
        self._snap.close()

    def __enter__(self) -> CacheReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"CacheReader({str(self.path)!r}, corpus={self.manifest.corpus!r}, n_clips={self.n_clips}, "
                f"layers={len(self.layers)}, dtype={self.dtype!r}, complete={self.complete})")


def default_layer(layers: list[str], dims: dict[str, int]) -> str:
    """The last of ``layers`` whose dimension is the largest (the model's last hidden layer).

    Example:
        >>> default_layer(["layer00", "final", "adv"], {"layer00": 1024, "final": 1024, "adv": 3})
        'final'
        >>> default_layer(["a", "b"], {"a": 8, "b": 8})
        'b'
    """
    widest = max(dims.get(layer, 0) for layer in layers)
    return [layer for layer in layers if dims.get(layer, 0) == widest][-1]

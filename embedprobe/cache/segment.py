"""One open main or part file (a *segment*) with its small columns in memory, and its errors."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.errors import CacheError

from .digest import DIGEST_DSET, META_ATTR, SCHEME, SCHEME_ATTR, columns, meta_digest, read_small
from .layout import PartName
from .rangeio import copy_runs, h5_read_runs
from .rawpart import RAW_VERSION, RawArray, RawFile, digest_table, is_raw, read_raw_header
from .schema import PACKED_DSET, READABLE_VERSIONS, Header, packed_columns


class CorruptSegmentError(CacheError):
    """A part or main file that cannot be read (torn write, foreign file, disk damage)."""


class DamagedClipsError(CacheError):
    """Stored vectors whose bytes do not match their checksum.

    Attributes:
        found: ``[(segment path, clip id, array)]``, array like ``"layer_3 mean"``.
        pairs: ``{(segment index, row)}`` of the damaged clips (indices into the segments given).
    """

    def __init__(self, found: list[tuple[Path, str, str]], pairs: set[tuple[int, int]] = frozenset()):
        self.found, self.pairs = found, set(pairs)
        super().__init__(damage_sentence(found, "They are never used; re-run the extraction, which "
                                                "extracts them again (`embedprobe verify CACHE` lists them)."))


def damage_sentence(found: list[tuple[Path, str, str]], fix: str) -> str:
    """One sentence naming damaged clips per file (at most 10 ids each) and the fix."""
    by: dict[str, dict[str, list[str]]] = {}
    for path, cid, what in found:
        by.setdefault(str(path), {}).setdefault(cid, []).append(what)
    parts = []
    for path, clips in by.items():
        ids = sorted(clips)
        shown = ", ".join(f"{c} ({'; '.join(clips[c])})" for c in ids[:10])
        more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
        parts.append(f"{path}: {len(ids)} clip{'s' if len(ids) != 1 else ''} {shown}{more}")
    return ("Damaged cache values (the stored bytes do not match their checksum) in " + "; ".join(parts)
            + f". {fix}")


def h5open(path: Path, mode: str = "r") -> Any:
    import h5py

    # Committed files never change, so HDF5's own file locking is not needed (and fails on some NFS).
    return h5py.File(path, mode, locking=False)


class Segment:
    """One open main or part file (HDF5, or a raw part: ``rawpart.py``), with its small per-clip
    columns in memory."""

    def __init__(self, path: Path, part: PartName | None = None):
        self.path, self.part = Path(path), part
        self._dsets: dict[str, Any] = {}
        try:
            raw = is_raw(self.path)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise CorruptSegmentError(f"{self.path} cannot be read ({e})") from e
        if raw:
            self._open_raw()
            return
        try:
            self.f = h5open(self.path)
        except OSError as e:
            if not self.path.exists():
                raise FileNotFoundError(str(self.path)) from e
            raise CorruptSegmentError(f"{self.path} cannot be opened as HDF5 ({e})") from e
        try:
            self._load()
        except CacheError:
            self.close()
            raise
        except (KeyError, ValueError, TypeError, OSError, AttributeError) as e:
            self.close()
            raise CorruptSegmentError(f"{self.path} is not a complete cache segment ({e!r})") from e

    def _load(self) -> None:
        f, a = self.f, self.f.attrs
        version = int(a["format_version"])
        if version not in READABLE_VERSIONS:
            newer = version > max(READABLE_VERSIONS)
            raise CacheError(
                f"{self.path} has cache format version {version}; this embedprobe reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}. Fix: " + (
                    "upgrade embedprobe." if newer else "re-extract with --overwrite (or use an older embedprobe)."))
        self.packed: Any = None  # format 2: every pooled array in one dataset
        self.kind = str(a["kind"])
        self.dtype = str(a["dtype"])
        self.layers: dict[str, int] = json.loads(a["layers"])
        self.frame_layers: tuple[str, ...] = tuple(json.loads(a["frame_layers"]))
        self.identity_fingerprint = str(a["identity_fingerprint"])
        self.provenance = json.loads(a["provenance"])
        self.identity = json.loads(a["identity"])
        self.complete = bool(a.get("complete", False))
        small = read_small(f, self.frame_layers)
        self.checksums = SCHEME_ATTR in a
        if self.checksums:
            if str(a[SCHEME_ATTR]) != SCHEME:
                raise CacheError(f"{self.path} uses checksum scheme {a[SCHEME_ATTR]!r}; this embedprobe knows "
                                 f"{SCHEME!r}. Fix: upgrade embedprobe.")
            if META_ATTR not in a or str(a[META_ATTR]) != meta_digest(dict(a), small):
                raise CorruptSegmentError(f"{self.path}: its metadata (clip list, offsets, attributes or "
                                          "checksums) does not match its checksum")
        self.ids: list[str] = small["clips/id"].tolist()
        n = len(self.ids)
        self.content_hash = small["clips/content_hash"]
        self.duration_s = small["clips/duration_s"]
        self.n_frames = small["clips/n_frames"]
        self.row = {i: r for r, i in enumerate(self.ids)}
        if len(self.row) != n or not (len(self.content_hash) == len(self.duration_s) == len(self.n_frames) == n):
            raise ValueError("clip columns disagree in length or repeat an id")
        self.digests: np.ndarray | None = small.get(DIGEST_DSET) if self.checksums else None
        self.columns = columns(self.layers, self.frame_layers)
        if self.digests is not None and self.digests.shape != (n, len(self.columns)):
            raise ValueError(f"{DIGEST_DSET} has shape {self.digests.shape}")
        if version == 2:
            self.packed = f[PACKED_DSET]
            self._packed_cols = packed_columns(self.layers)
            width = sum(2 * d for d in self.layers.values())
            if self.packed.shape != (n, width):
                raise ValueError(f"{PACKED_DSET} has shape {self.packed.shape}")
        for layer, dim in self.layers.items():
            for stat in ("mean", "std"):
                shape = self.dset("pooled", layer, stat).shape
                if shape != (n, dim):
                    raise ValueError(f"pooled/{layer}/{stat} has shape {shape}")
        self.offsets: dict[str, np.ndarray] = {}
        for layer in self.frame_layers:
            off = small[f"frames/{layer}/offsets"]
            rows = self.dset("frames", layer, "data").shape[0]
            if len(off) != n + 1 or off[0] != 0 or off[-1] != rows or np.any(np.diff(off) < 0):
                raise ValueError(f"frames/{layer}/offsets do not match the data")
            self.offsets[layer] = off
        self.errors = {c: small[f"errors/{c}"].tolist() for c in ("id", "path", "reason")}
        self.errors["time"] = small["errors/time"].tolist()
        if len({len(v) for v in self.errors.values()}) != 1:
            raise ValueError("error columns disagree in length")
        self.sessions: list[dict[str, Any]] = json.loads(small["meta/sessions_json"])
        self.sources: list[str] = small["meta/sources"].tolist()
        self.manifest_json = small.get("meta/manifest_json")
        self.level = int(a.get("level", 0))

    def _open_raw(self) -> None:
        try:
            self.f: Any = RawFile(self.path)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise CorruptSegmentError(f"{self.path} cannot be read ({e})") from e
        try:
            self._load_raw(read_raw_header(self.f))
        except CacheError:
            self.close()
            raise
        except (KeyError, ValueError, TypeError, OSError, AttributeError, IndexError) as e:
            self.close()
            raise CorruptSegmentError(f"{self.path} is not a complete cache part ({e})") from e

    def _load_raw(self, meta: dict[str, Any]) -> None:
        """The attributes ``_load`` reads from an HDF5 segment, from a raw part's header."""
        version = int(meta["format_version"])
        if version != RAW_VERSION:
            raise CacheError(f"{self.path} has raw part format version {version}; this embedprobe reads "
                             f"version {RAW_VERSION}. Fix: upgrade embedprobe.")
        if meta["checksums"] != SCHEME:
            raise CacheError(f"{self.path} uses checksum scheme {meta['checksums']!r}; this embedprobe knows "
                             f"{SCHEME!r}. Fix: upgrade embedprobe.")
        self.kind, self.dtype, self.complete, self.checksums = str(meta["kind"]), str(meta["dtype"]), False, True
        self.layers = {str(k): int(v) for k, v in meta["layers"].items()}
        self.frame_layers = tuple(meta["frame_layers"])
        self.identity_fingerprint = str(meta["identity_fingerprint"])
        self.provenance, self.identity = meta["provenance"], meta["identity"]
        clips = meta["clips"]
        self.ids = [str(i) for i in clips["id"]]
        n = len(self.ids)
        self.content_hash = np.array(clips["content_hash"], dtype=object)
        self.duration_s = np.array(clips["duration_s"], np.float64).reshape(-1)
        self.n_frames = np.array(clips["n_frames"], np.int64).reshape(-1)
        self.row = {i: r for r, i in enumerate(self.ids)}
        if len(self.row) != n or not (len(self.content_hash) == len(self.duration_s) == len(self.n_frames) == n):
            raise ValueError("clip columns disagree in length or repeat an id")
        self.columns = columns(self.layers, self.frame_layers)
        self.digests = digest_table(meta, n, len(self.columns))
        where, self._raw_size = meta["arrays"], int(meta["size"])
        width = sum(2 * d for d in self.layers.values())
        self.packed = self._raw_array(where, "pooled/packed", (n, width))
        self._packed_cols = packed_columns(self.layers)
        self.offsets = {}
        for layer in self.frame_layers:
            off = np.array(meta["offsets"][layer], np.int64)
            rows = int(off[-1]) if len(off) else -1
            if len(off) != n + 1 or off[0] != 0 or np.any(np.diff(off) < 0):
                raise ValueError(f"frames/{layer}/offsets do not match the data")
            self.offsets[layer] = off
            self._dsets[f"frames/{layer}/data"] = self._raw_array(where, f"frames/{layer}/data",
                                                                  (rows, self.layers[layer]))
        errors = meta["errors"]
        self.errors = {c: list(errors[c]) for c in ("id", "path", "reason", "time")}
        if len({len(v) for v in self.errors.values()}) != 1:
            raise ValueError("error columns disagree in length")
        self.sessions = list(meta["sessions"])
        self.sources = [str(s) for s in meta["sources"]]
        self.manifest_json = None
        self.level = int(meta.get("level", 0))

    def _raw_array(self, where: dict[str, Any], name: str, shape: tuple[int, int]) -> RawArray:
        offset, rows, cols = (int(x) for x in where[name])
        if (rows, cols) != shape:
            raise ValueError(f"{name} has shape {(rows, cols)}, expected {shape}")
        arr = RawArray(self.f, offset, rows, cols, np.dtype(self.dtype))
        if offset < 0 or offset + arr.nbytes > self._raw_size:
            raise ValueError(f"{name} lies outside the file")
        return arr

    def header(self) -> Header:
        if self.manifest_json is None:
            raise CorruptSegmentError(f"{self.path} is a main file without a manifest")
        return Header(provenance=self.provenance, identity=self.identity, manifest_json=self.manifest_json,
                      layers=self.layers, frame_layers=self.frame_layers, dtype=self.dtype)

    def matches(self, header: Header) -> bool:
        return (self.identity_fingerprint == header.identity_fingerprint and self.layers == header.layers
                and self.frame_layers == header.frame_layers and self.dtype == header.dtype)

    def dset(self, group: str, layer: str, name: str) -> Any:
        key = f"{group}/{layer}/{name}"
        if key not in self._dsets and self.packed is not None and group == "pooled":
            self._dsets[key] = PackedColumns(self.packed, *self._packed_cols[(name, layer)])
        if key not in self._dsets:  # opened through the low-level API: 3-5x cheaper than f[key],
            from h5py import Dataset, h5d  # which a merge of many parts does thousands of times

            self._dsets[key] = Dataset(h5d.open(self.f.id, key.encode()))
        return self._dsets[key]

    def close(self) -> None:
        """Close the file (``close_all`` closes many segments faster)."""
        close_all([self])


class PackedColumns:
    """The columns ``start:stop`` of a ``pooled/packed`` dataset, read like a ``(N, D)`` dataset."""

    def __init__(self, base: Any, start: int, stop: int):
        self.base, self.start, self.stop = base, start, stop
        self.shape = (base.shape[0], stop - start)
        self.dtype = base.dtype

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.base[rows, self.start:self.stop]

    def read_runs(self, runs: list[tuple[int, int]], out: np.ndarray) -> None:
        """Rows ``a:b`` of each run, one after another, into ``out`` (``rangeio.read_rows``)."""
        if isinstance(self.base, RawArray):
            copy_runs(self, runs, out)
        else:
            h5_read_runs(self.base.id, runs, out, self.start)


def close_all(segments: list[Segment]) -> None:
    """Close segments, dropping every cached dataset handle first: h5py's ``File.close`` walks
    all open HDF5 objects of the process, so closing one by one is quadratic."""
    for seg in segments:
        seg._dsets, seg.packed = {}, None
    for seg in segments:
        with contextlib.suppress(Exception):
            seg.f.close()

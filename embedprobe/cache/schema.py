"""The on-disk schema of an embedding cache: the one place that names every file, group, dataset
and attribute, and the format version.

A cache at ``X.h5`` is one *main* file plus, while it is being written, small *part* files in
``X.h5.parts/``. Main and parts are *segments*: HDF5 files with the same layout, so one reader
and one merge routine serve both, or (a batch's part file) raw parts holding the same columns
(``rawpart.py``; ``segment.Segment`` reads both)::

    /                        attrs: format_version, kind ("main" | "part"), dtype ("float32" |
                             "float16", the storage dtype of every vector), layers (JSON
                             {layer: dim}, in extractor order), frame_layers (JSON list),
                             identity_fingerprint, provenance (JSON), identity (JSON),
                             n_clips, n_errors, created (unix s); main only: complete (bool);
                             part only: level (compaction level)
    /clips/id                (N,)   utf-8 str   clip id (unique within a segment)
    /clips/content_hash      (N,)   utf-8 str   hash of the audio file the vectors came from
    /clips/duration_s        (N,)   float64     clip duration in seconds
    /clips/n_frames          (N,)   int64       frames the extractor produced (-1: not given)
    /clips/digest            (N, K) uint64      checksum of every stored vector array of every clip
                                                (columns: mean, std per layer, then frames per frame
                                                layer; see digest.py); root attrs ``checksums``
                                                (scheme) and ``meta_digest`` (all small datasets
                                                and attributes). Caches made before have neither.
    /pooled/<layer>/mean     (N, D) dtype       mean over frames of every clip
    /pooled/<layer>/std      (N, D) dtype       std over frames of every clip
    /pooled/packed           (N, sum 2 D) dtype format 2 (HDF5 part files of one batch, written by
                                                older versions) instead of the two above: every
                                                layer's mean then std side by side, in layer
                                                order (``packed_columns``). Raw parts
                                                (``rawpart.py``) store their pooled vectors so.
    /frames/<layer>/data     (sum T, D) dtype   frame vectors, clip i at rows offsets[i]:offsets[i+1]
    /frames/<layer>/offsets  (N+1,) int64
    /errors/id, /errors/path, /errors/reason   (E,) utf-8 str    clips that failed
    /errors/time             (E,)   float64     unix time of the failure (latest one wins)
    /meta/manifest_json      scalar str   corpus Manifest.to_json() (main only; header.json otherwise)
    /meta/sessions_json      scalar str   JSON list of {session, tag, started, provenance} of
                                          every writer session whose clips are in the segment
    /meta/sources            (S,) str     names of part files whose whole content this segment
                                          holds (so a leftover copy of them is ignored)

Every vector dataset is contiguous and uncompressed (compression costs 15x write speed for no
size gain on embeddings). ``X.h5.parts/header.json`` holds what a cache without a main file
needs to be read: the same header fields as the main file's attributes plus the manifest.
``X.h5.parts/journal.txt`` lists every part committed (``add NAME SOURCE...``, appended after
the commit) and every part a writer gave up (``retire NAME``): a listed part that is neither
present nor held by another segment is reported as missing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError
from embedprobe.provenance import fingerprint, to_jsonable

from .digest import DIGEST_DSET, SCHEME, SCHEME_ATTR, columns, seal

FORMAT_VERSION = 1  # main files and merged parts (per-layer pooled datasets)
PACKED_VERSION = 2  # HDF5 part files of one batch (``pooled/packed``), written before raw parts
READABLE_VERSIONS: tuple[int, ...] = (FORMAT_VERSION, PACKED_VERSION)
PACKED_DSET = "pooled/packed"
DTYPES: tuple[str, ...] = ("float32", "float16")
STATS: tuple[str, ...] = ("mean", "std", "meanstd")

PARTS_SUFFIX = ".parts"
LOCK_SUFFIX = ".lock"
MAIN_TMP_INFIX = ".tmp-"
HEADER_JSON = "header.json"
JOURNAL = "journal.txt"
PART_PREFIX = "part."
TMP_PREFIX = ".tmp."


@dataclass
class LayerResult:
    """What one layer gives for one clip.

    Attributes:
        mean: ``(D,)`` mean of the frame vectors.
        std: ``(D,)`` standard deviation of the frame vectors.
        frames: ``(T, D)`` frame vectors (at the caller's hop), or ``None`` when this layer's
            frames are not cached.
    """

    mean: np.ndarray
    std: np.ndarray
    frames: np.ndarray | None = None


@dataclass
class ClipResult:
    """Everything the cache stores for one clip.

    Attributes:
        id: the manifest clip id.
        content_hash: hash of the audio file's bytes (the caller computes it).
        duration_s: clip duration in seconds.
        layers: layer name -> ``LayerResult`` for every layer of the cache.
        n_frames: frames the extractor produced; ``-1`` means "take it from the first
            frame-level layer" (or unknown when no layer keeps frames).
    """

    id: str
    content_hash: str
    duration_s: float
    layers: dict[str, LayerResult]
    n_frames: int = -1


@dataclass
class Header:
    """What every segment of one cache shares and what a new writer is checked against."""

    provenance: dict[str, Any]
    identity: dict[str, Any]
    manifest_json: str
    layers: dict[str, int]
    frame_layers: tuple[str, ...]
    dtype: str
    format_version: int = FORMAT_VERSION

    def comparable(self) -> dict[str, Any]:
        """The fields that must agree for a run to add to an existing cache."""
        return {
            "identity": to_jsonable(self.identity),
            "cache": {"layers": dict(self.layers), "frame_layers": list(self.frame_layers),
                      "dtype": self.dtype},
        }

    @property
    def identity_fingerprint(self) -> str:
        return fingerprint(self.comparable())

    def to_json(self) -> str:
        return json.dumps({
            "format_version": self.format_version, "provenance": to_jsonable(self.provenance),
            "identity": to_jsonable(self.identity), "layers": self.layers,
            "frame_layers": list(self.frame_layers), "dtype": self.dtype,
            "manifest_json": self.manifest_json,
        }, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> Header:
        d = json.loads(text)
        return cls(provenance=d["provenance"], identity=d["identity"], manifest_json=d["manifest_json"],
                   layers=dict(d["layers"]), frame_layers=tuple(d["frame_layers"]), dtype=d["dtype"],
                   format_version=int(d["format_version"]))


def validate_layers(layers: dict[str, int], frames: bool | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Check layer names and dims; return the tuple of frame-level layers."""
    if not layers:
        raise BadValueError("layers", layers, None, "give at least one {layer_name: dim}")
    for name, dim in layers.items():
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise BadValueError("layer name", name, None, "use a non-empty name without '/'")
        if not isinstance(dim, (int, np.integer)) or dim < 1:
            raise BadValueError(f"dim of layer {name!r}", dim, None, "use a positive int")
    if frames is True:
        return tuple(layers)
    if frames is False or frames is None:
        return ()
    out = tuple(frames)
    for name in out:
        if name not in layers:
            raise BadValueError("frame layer", name, layers, "frame layers must be cache layers")
    return tuple(name for name in layers if name in out)


def str_dtype() -> Any:
    import h5py

    return h5py.string_dtype("utf-8")


def write_root_attrs(f: Any, header: Header, *, kind: str, n_clips: int, n_errors: int,
                     extra: dict[str, Any] | None = None) -> None:
    """Write the root attributes shared by main and part files."""
    a = f.attrs
    a["format_version"] = header.format_version
    a["kind"] = kind
    a["dtype"] = header.dtype
    a["layers"] = json.dumps(header.layers)
    a["frame_layers"] = json.dumps(list(header.frame_layers))
    a["identity_fingerprint"] = header.identity_fingerprint
    a["provenance"] = json.dumps(to_jsonable(header.provenance))
    a["identity"] = json.dumps(to_jsonable(header.identity))
    a["n_clips"] = n_clips
    a["n_errors"] = n_errors
    a["created"] = time.time()
    a[SCHEME_ATTR] = SCHEME
    for k, v in (extra or {}).items():
        a[k] = v


def put(f: Any, name: str, data: np.ndarray | None = None, *, shape: tuple[int, ...] = (),
        dtype: Any = None) -> None:
    """Create the contiguous dataset ``name`` (with ``data``, or empty of ``shape``/``dtype``).

    Uses h5py's low-level API, which costs half of ``create_dataset`` per dataset (a part file
    of a 25-layer model has ~60 datasets).
    """
    from h5py import h5d, h5p, h5s, h5t

    if data is not None:
        data = np.ascontiguousarray(data)
        shape, dtype = data.shape, data.dtype
    lcpl = h5p.create(h5p.LINK_CREATE)
    lcpl.set_create_intermediate_group(True)
    ds = h5d.create(f.id, name.encode(), h5t.py_create(np.dtype(dtype)), h5s.create_simple(tuple(shape)),
                    lcpl=lcpl)
    if data is not None and data.size:
        ds.write(h5s.ALL, h5s.ALL, data)


def create_columns(f: Any, header: Header, n_clips: int, frame_rows: dict[str, int], n_errors: int) -> None:
    """Create every dataset of a segment with its final shape (contiguous, uncompressed)."""
    sdt = str_dtype()
    dt = np.dtype(header.dtype)
    f.create_dataset("clips/id", shape=(n_clips,), dtype=sdt)
    f.create_dataset("clips/content_hash", shape=(n_clips,), dtype=sdt)
    put(f, "clips/duration_s", shape=(n_clips,), dtype=np.float64)
    put(f, "clips/n_frames", shape=(n_clips,), dtype=np.int64)
    put(f, DIGEST_DSET, shape=(n_clips, len(columns(header.layers, header.frame_layers))), dtype=np.uint64)
    for layer, dim in header.layers.items():
        put(f, f"pooled/{layer}/mean", shape=(n_clips, dim), dtype=dt)
        put(f, f"pooled/{layer}/std", shape=(n_clips, dim), dtype=dt)
    for layer in header.frame_layers:
        put(f, f"frames/{layer}/data", shape=(frame_rows[layer], header.layers[layer]), dtype=dt)
        put(f, f"frames/{layer}/offsets", shape=(n_clips + 1,), dtype=np.int64)
    for col in ("id", "path", "reason"):
        f.create_dataset(f"errors/{col}", shape=(n_errors,), dtype=sdt)
    put(f, "errors/time", shape=(n_errors,), dtype=np.float64)


def write_meta(f: Any, *, sessions: list[dict[str, Any]], sources: list[str],
               manifest_json: str | None = None, small: dict[str, Any] | None = None) -> None:
    """Write the ``meta`` group, the last thing a segment gets, then seal its metadata checksum.

    ``small``: what ``write_block`` returned (the checksum is then computed without reading the
    small datasets back).
    """
    sdt = str_dtype()
    sessions_json = json.dumps(to_jsonable(sessions))
    f.create_dataset("meta/sessions_json", data=sessions_json, dtype=sdt)
    f.create_dataset("meta/sources", data=np.array(sorted(sources), dtype=object), shape=(len(sources),), dtype=sdt)
    if manifest_json is not None:
        f.create_dataset("meta/manifest_json", data=manifest_json, dtype=sdt)
    texts = [sessions_json, *sources, *(small or {}).get("clips/id", ())]
    if small is not None and not any("\0" in t for t in texts):  # HDF5 strings stop at a NUL: read back
        small = {**small, "meta/sessions_json": sessions_json, "meta/sources": sorted(sources)}
        if manifest_json is not None:
            small["meta/manifest_json"] = manifest_json
        seal(f, small)
    else:
        seal(f)


def packed_columns(layers: dict[str, int]) -> dict[tuple[str, str], tuple[int, int]]:
    """Columns ``(start, stop)`` of each ``(stat, layer)`` in the ``pooled/packed`` dataset."""
    out, at = {}, 0
    for layer, dim in layers.items():
        for stat in ("mean", "std"):
            out[(stat, layer)] = (at, at + dim)
            at += dim
    return out

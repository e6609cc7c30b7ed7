"""Embedding cache: one crash-safe, resumable, shardable HDF5 file per (corpus, extractor, config).

Public API:
    - ``CacheWriter`` / ``AsyncWriter``: add batches of ``ClipResult``; resume; ``finalize()``.
    - ``open_cache(path) -> CacheReader``: pooled and frame-level float32 arrays, provenance,
      manifest, error table, fingerprint.
    - ``merge(path)``: merge the parts of sharded writers into one file.
    - ``shard_of`` / ``shard_ids``: which clips belong to shard k of N.
    - ``remove_cache(path)``: delete a cache no writer holds.

See ``schema.py`` for the file layout and ``writer.py`` for how crash safety works. Modules, lowest
first: ``schema``/``digest`` (format, checksums), ``layout`` (file names, journal), ``durable``
(fsync, atomic commits, ``writev`` of many buffers), ``batch`` (a validated batch, its digests),
``rawpart`` (a batch's part file: header + arrays), ``segment`` (one open file, HDF5 or raw), ``rangeio`` (coalesced hashed reads),
``merge`` (streaming checked merges), ``snapshot`` (a consistent view; final merge),
``verify``, ``compaction`` + ``writer``, ``maintenance`` (merge shards, remove), ``reader``.
"""

from __future__ import annotations

from embedprobe.errors import CacheError, CacheLockedError, CacheMismatchError

from .background import AsyncWriter
from .identity import CacheProvenanceWarning
from .maintenance import merge, remove_cache
from .reader import CacheReader, open_cache
from .schema import FORMAT_VERSION, ClipResult, LayerResult
from .sharding import shard_ids, shard_of
from .writer import CacheWriter

__all__ = [
    "FORMAT_VERSION", "AsyncWriter", "CacheError", "CacheLockedError", "CacheMismatchError",
    "CacheProvenanceWarning", "CacheReader", "CacheWriter", "ClipResult", "LayerResult", "merge",
    "open_cache", "remove_cache", "shard_ids", "shard_of",
]

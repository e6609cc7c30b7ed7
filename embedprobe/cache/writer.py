"""Append-only, resumable, shardable writer of an embedding cache.

How crash safety works:
    HDF5 files are not safe to kill while they are being written, so a cache never writes
    into a file that a reader may open. Each ``write()`` call (one batch) becomes its own
    small part file in ``X.h5.parts/`` (a raw part, ``rawpart.py``: a checksummed JSON header and
    the batch's arrays as they are, written with one ``writev``, no HDF5 and no copies; older
    writers made HDF5 parts, which are read alike): it is written under a temporary name, fsynced,
    renamed to its final ``part.*.h5`` name (an atomic step) and the directory is fsynced.
    Readers see the main file ``X.h5`` plus every committed part, de-duplicated by clip id,
    and ignore temporary files, so a ``kill -9`` at any moment loses at most the batch in
    flight. To keep the number of parts bounded, every 8 *small* parts of one level are merged
    into one part of the next level (LSM-style); a part is small while it is under 4 MB or under
    1/256 of the bytes this writer holds in parts. Batches of frame-level features are
    usually larger than that, so they are written once and never copied before finalize
    (copying them was 2/3 of the write time), while the part count stays below about
    256 + 8 per level. A merged part names the parts it holds, so if the process dies
    before deleting them the copies are ignored and removed later.
    ``finalize()`` streams everything into a new main file in manifest order, written the
    same way (``X.h5.tmp-<pid>-*``, fsync, ``os.replace``, fsync the directory), and only
    then deletes the parts; the main file names them too. The next writer removes leftover
    temporary files and moves damaged parts aside. Writers hold ``flock`` locks, which the
    kernel releases when a process dies, so a killed run never leaves a stale lock. Clips
    that failed are recorded in the error table and tried again on resume (the file may
    have been fixed).

Example:
    >>> with CacheWriter("emb.h5", provenance=prov, identity=ident, manifest_json=m.to_json(),
    ...                  layers={"layer_12": 1024}, frames=False) as w:   # doctest: +SKIP
    ...     for batch in batches(w.pending_ids()):
    ...         w.write(embed(batch))
    ...     w.finalize()
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from embedprobe.corpora.base import Manifest
from embedprobe.errors import BadValueError, CacheError, CacheLockedError

from .batch import Block
from .compaction import Compaction
from .diskerrors import disk_errors, size_text
from .durable import unlink_quiet, write_text_if_absent
from .identity import check_compatible
from .interrupts import check_interrupt, deferred_interrupts
from .layout import Layout, PartName
from .locks import FileLock, describe_holders
from .rawpart import write_raw_part
from .schema import DTYPES, ClipResult, Header, validate_layers
from .segment import damage_sentence
from .sharding import check_shard, shard_of, shard_tag
from .snapshot import Snapshot, cleanup, consolidate
from .verify import scan

_FINISH_WHY = (" for the remaining clips and the final merge (it writes a full copy of the cache "
               "before deleting the parts)")
COMPACT_EVERY = 8
SEAL_BYTES = 4 << 20
MAX_PARTS = 256


class CacheWriter(Compaction):
    """Adds batches of clips to the cache at ``path``; see the module docstring for the design.

    Args:
        path: the cache file ``X.h5`` (its parts live in ``X.h5.parts/``).
        provenance: everything that made the cache (JSON-able): extractor spec, weights revision,
            audio settings, package and code versions, extraction config, corpus name.
        identity: the part of the provenance that must match to add to an existing cache
            (extractor spec, weights revision, extraction config, corpus). Package or code
            versions belong only in ``provenance``: a change there is recorded, not refused.
        manifest_json: ``Manifest.to_json()`` of the corpus; written clips must be in it.
        layers: layer name -> dimension, in extractor order.
        frames: keep frame-level features for every layer (``True``), none (``False``) or the
            named layers.
        dtype: storage dtype, ``"float32"`` or ``"float16"`` (readers always get float32).
        overwrite: delete any existing cache at ``path`` first.
        shard, n_shards: write shard ``shard`` of ``n_shards`` (only clips with
            ``shard_of(id, n_shards) == shard``); shard writers run side by side.
        compact_every: merge this many parts of one level into one part of the next.
        seal_bytes, max_parts: a part is merged again before ``finalize`` only while it is
            smaller than ``seal_bytes`` or than ``1 / max_parts`` of the bytes this writer
            holds in parts (large batches are written once; the part count stays below
            ``max_parts`` plus ``compact_every`` per level).

    Raises:
        CacheMismatchError: the existing cache was made with another identity, layer set,
            dtype or corpus manifest (the message names every differing field).
        CacheLockedError: another writer holds the cache (or this shard).
    """

    def __init__(self, path: str | Path, *, provenance: dict[str, Any], identity: dict[str, Any],
                 manifest_json: str, layers: dict[str, int], frames: bool | Sequence[str] = False,
                 dtype: str = "float32", overwrite: bool = False, shard: int | None = None,
                 n_shards: int | None = None, compact_every: int = COMPACT_EVERY,
                 seal_bytes: int = SEAL_BYTES, max_parts: int = MAX_PARTS):
        if dtype not in DTYPES:
            raise BadValueError("cache dtype", dtype, DTYPES, "bfloat16 cannot be stored in HDF5")
        check_shard(shard, n_shards)
        if compact_every < 2:
            raise BadValueError("compact_every", compact_every, None, "use 2 or more")
        try:
            self.manifest = Manifest.from_json(manifest_json)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise BadValueError("manifest_json", manifest_json[:80], None,
                                "pass Manifest.to_json() of the corpus") from e
        self.path = Path(path)
        self.layout = Layout(self.path)
        self.header = Header(provenance=dict(provenance), identity=dict(identity), manifest_json=manifest_json,
                             layers=dict(layers), frame_layers=validate_layers(layers, frames), dtype=dtype)
        try:
            self.header.to_json()
        except (TypeError, ValueError) as e:
            raise BadValueError("provenance / identity", str(e), None,
                                "pass JSON-able values (str, int, float, bool, None, lists, dicts, "
                                "dataclasses, paths)") from e
        self.shard, self.n_shards, self.tag = shard, n_shards, shard_tag(shard, n_shards)
        self.compact_every, self.seal_bytes, self.max_parts = compact_every, seal_bytes, max(1, max_parts)
        self._sizes: dict[str, int] = {}
        self.session = secrets.token_hex(4)
        self._session_info = {"session": self.session, "tag": self.tag, "host": socket.gethostname(),
                              "started": time.time(), "provenance": self.header.provenance}
        self._manifest_ids = set(self.manifest.ids)
        self._seq = 0
        self._mutex = threading.Lock()
        self._closed = False
        self.merged = False
        self._main_lock = FileLock(self.layout.lock)
        self._shard_lock = FileLock(self.layout.shard_lock(self.tag)) if shard is not None else None
        with disk_errors(self.path.parent, "opening the cache for writing", None), deferred_interrupts():
            self._acquire(overwrite)
            try:
                self._open_state()
                check_interrupt()
            except BaseException:
                self._release()
                raise

    # -- opening -------------------------------------------------------------------------------
    def _locked_error(self, what: str = "", hint: str = "") -> CacheLockedError:
        holders = describe_holders([self.layout.lock, *self.layout.shard_locks()])
        return CacheLockedError(
            f"The cache {self.path}{what} is being written by another process: {holders}. "
            f"Fix: {hint or 'wait for it to finish (or stop it), or write to another --out'}; to run "
            "several workers on one cache, give each its own --shard K/N and join them with embedprobe merge.")

    def _acquire(self, overwrite: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._shard_lock is None or overwrite:
            if not self._main_lock.acquire(shared=False):
                hint = ("overwriting needs every writer stopped: clear the cache once with "
                        "embedprobe.cache.remove_cache(path) and start the shard workers without "
                        "--overwrite") if self.shard is not None else ""
                raise self._locked_error(hint=hint)
            self._main_lock.write_info(f"writer {self.tag}")
        if self._shard_lock is not None:
            if overwrite:
                self._wipe()
                self._main_lock.release(clear_info=True)
            if not self._main_lock.acquire(shared=True):
                raise self._locked_error(" (by a plain writer or a merge)")
            if not self._shard_lock.acquire(shared=False):
                self._main_lock.release()
                raise self._locked_error(f" shard {self.shard} of {self.n_shards}")
            self._shard_lock.write_info(f"shard {self.shard} of {self.n_shards}")
        elif overwrite:
            self._wipe()

    def _wipe(self) -> None:
        """Delete the cache (exclusive lock held). Every intermediate state is a valid cache."""
        unlink_quiet(self.layout.main)
        for p in self.layout.main_tmps():
            unlink_quiet(p)
        if self.layout.parts_dir.is_dir():
            for p in sorted(self.layout.parts_dir.iterdir()):
                if p != self.layout.header_json:
                    unlink_quiet(p)
            unlink_quiet(self.layout.header_json)

    def _open_state(self) -> None:
        snap = Snapshot.open(self.layout)
        if snap is None:
            self.layout.parts_dir.mkdir(exist_ok=True)
            if not write_text_if_absent(self.layout.header_json, self.header.to_json()):
                snap = Snapshot.open(self.layout)  # another shard writer created it just now
        if snap is None:
            stored, self._done, self._errors, own = self.header, set(), set(), []
        else:
            try:
                stored = snap.header
                longest = max((float(s.duration_s.max()) for s in snap.segments if len(s.ids)), default=0.0)
                check_compatible(self.path, stored, self.header, longest_s=longest)
                cleanup(snap, tag=None if self._exclusive else self.tag)
                self._forget_lost(snap)
                self._done = set(snap.where)
                self._errors = set(snap.errors)
                own = [p.part for p in snap.parts if self._exclusive or p.part.tag == self.tag]
            finally:
                snap.close()
            self.layout.parts_dir.mkdir(exist_ok=True)
            if not self.layout.header_json.exists():
                write_text_if_absent(self.layout.header_json, stored.to_json())
        self.header.manifest_json = stored.manifest_json  # keep the stored corpus root
        # Accepted differences (identity fields added later) keep the stored identity, so that
        # new parts carry the cache's fingerprint; this run's identity is in its session.
        self.header.identity = stored.identity
        self._own: list[PartName] = own

    def _forget_lost(self, snap: Snapshot) -> None:
        """Damaged clips and missing parts: name them, and let their clips be extracted again."""
        damaged = scan(snap)
        if damaged:
            snap.exclude(set(damaged))
            found = [(snap.segments[s].path, snap.segments[s].ids[r], "; ".join(w)) for (s, r), w in damaged.items()]
            warnings.warn(damage_sentence(found, "They will be extracted again."), stacklevel=4)
        mine = [p for p in snap.missing if self._exclusive or f".{self.tag}." in p.name]
        if mine:
            warnings.warn(f"The cache part{'s' if len(mine) > 1 else ''} {', '.join(map(str, mine))} "
                          "listed in the cache's journal is missing (deleted?); its clips will be extracted "
                          "again.", stacklevel=4)
            self.layout.journal_retire([p.name for p in mine])

    @property
    def _exclusive(self) -> bool:
        return self._main_lock.mode == "exclusive"

    # -- state ---------------------------------------------------------------------------------
    @property
    def done_ids(self) -> frozenset[str]:
        """Clips already in the cache (any shard); they are skipped on resume."""
        with self._mutex:
            return frozenset(self._done)

    @property
    def error_ids(self) -> frozenset[str]:
        """Clips whose last attempt failed; they are *not* in ``done_ids`` and are tried again."""
        with self._mutex:
            return frozenset(self._errors)

    def pending_ids(self) -> list[str]:
        """Manifest ids of this writer's shard that are not done yet, in manifest order."""
        with self._mutex:
            return [i for i in self.manifest.ids if i not in self._done
                    and (self.shard is None or shard_of(i, self.n_shards) == self.shard)]

    # -- writing -------------------------------------------------------------------------------
    def write(self, results: Sequence[ClipResult], errors: Iterable[tuple[str, str, str]] = ()) -> None:
        """Commit one batch atomically: after this returns, a crash cannot lose it.

        Clips already done are skipped (the first stored copy wins). ``errors`` are
        ``(clip_id, path, reason)`` of clips that failed; they are retried on resume.
        """
        if self._closed:
            raise CacheError(f"The writer of {self.path} is closed; open a new CacheWriter to add clips.")
        errors = [tuple(e) for e in errors]
        seen: set[str] = set()
        for cid in [r.id for r in results] + [e[0] for e in errors]:
            if cid not in self._manifest_ids:
                raise BadValueError(f"clip id (not in the manifest of {self.manifest.corpus})", cid, None,
                                    "write only clips of the manifest given to the writer")
            if self.shard is not None and shard_of(cid, self.n_shards) != self.shard:
                raise BadValueError(f"clip id for shard {self.shard} of {self.n_shards}", cid, None,
                                    "select clips with embedprobe.cache.shard_ids or pending_ids()")
            if cid in seen:
                raise BadValueError("clip id (twice in one batch)", cid, None, "give each clip once per batch")
            seen.add(cid)
        with self._mutex:
            results = [r for r in results if r.id not in self._done]
            errors = [e for e in errors if e[0] not in self._done]
        if not results and not errors:
            return
        with deferred_interrupts():  # in the main thread, Ctrl-C lands after the commit, not in h5py
            self._commit(results, errors)

    def _commit(self, results: list[ClipResult], errors: list[tuple[str, str, str]]) -> None:
        block = Block.from_results(self.header, list(results), errors)
        part = self._new_part_name(level=0)
        tmp = self.layout.tmp_part(self.tag, self.session, part.seq)
        try:
            self._write_part(block, tmp, self.layout.part_path(part))
        except BaseException:
            unlink_quiet(tmp)
            raise
        self.layout.journal_add(part.name)
        with self._mutex:
            self._done.update(block.ids)
            self._errors.difference_update(block.ids)
            self._errors.update(e[0] for e in errors)
            self._own.append(part)
            self._sizes[part.name] = self.layout.part_path(part).stat().st_size
        self._compact()

    def _write_part(self, block: Block, tmp: Path, final: Path) -> None:
        """Write one batch as the raw part file ``final`` (via ``tmp``; the caller removes it on error).

        The header and the batch's arrays reach the disk as one ``writev``, fsync and rename
        (``rawpart.py``), so a full disk is one clean ``OSError``, never a half-written HDF5 file.
        """
        nbytes = block.nbytes
        doing = f"committing a batch of {size_text(nbytes)}"
        with disk_errors(self.layout.parts_dir, doing, lambda: self._space_to_finish(nbytes, len(block.ids)),
                         _FINISH_WHY):
            write_raw_part(tmp, final, self.header, block, session=self._session_info)

    def _space_to_finish(self, batch_bytes: int, batch_clips: int) -> int:
        """Free bytes this writer needs to finish: the remaining batches, then the final merge's
        full copy of the cache (written before the parts are deleted)."""
        size = self.layout.size_bytes()
        done = len(self.done_ids)
        per_clip = size / done if done else batch_bytes / max(1, batch_clips)
        return int(per_clip * (len(self.pending_ids()) + len(self.manifest.ids)))

    # -- finishing -----------------------------------------------------------------------------
    def finalize(self) -> Path:
        """Merge everything into ``X.h5`` and mark it complete if every manifest clip is done or
        failed. A shard writer merges only if it is the last one running (``self.merged``);
        otherwise the last shard to finish (or ``merge(path)``) does. Closes the writer."""
        if self._closed:
            raise CacheError(f"The writer of {self.path} is already closed.")
        try:
            if self._shard_lock is not None:
                # Drop the shared lock, then try for the exclusive one: of several shards
                # finishing together at least the last one succeeds.
                self._main_lock.release()
                if not self._main_lock.acquire(shared=False):
                    return self.path
                self._main_lock.write_info("merge")
            self.stats = consolidate(self.layout, manifest_ids=self.manifest.ids)
            self.merged = True
            for p in self.layout.shard_locks():  # safe: taking a shard lock needs the main lock first
                unlink_quiet(p)
            return self.path
        finally:
            self.close()

    def close(self) -> None:
        """Release the locks; committed batches stay (the cache is resumable, not complete)."""
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:
        if self._shard_lock is not None:
            self._shard_lock.release(clear_info=True)
        self._main_lock.release(clear_info=True)

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

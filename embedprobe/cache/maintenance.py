"""Whole-cache operations outside a writer: joining shards (``merge``) and ``remove_cache``."""

from __future__ import annotations

from pathlib import Path

from embedprobe.corpora.base import Manifest
from embedprobe.errors import CacheError, CacheLockedError

from .durable import unlink_quiet
from .layout import Layout
from .locks import FileLock, describe_holders
from .naming import not_a_cache
from .snapshot import Snapshot, consolidate


def merge(path: str | Path) -> Path:
    """Merge the parts of every shard of the cache at ``path`` into one main file.

    Raises:
        CacheLockedError: a writer is still running.
        CacheError: there is no cache at ``path``.
    """
    layout = Layout(path)
    if (problem := not_a_cache(layout.main)) is not None:
        raise CacheError(problem)
    if not layout.main.exists() and not layout.parts_dir.exists():  # checked before a lock file is made
        raise CacheError(f"There is no cache at {layout.main}. Fix: check the path (--out of the extraction).")
    lock = FileLock(layout.lock)
    if not lock.acquire(shared=False):
        raise CacheLockedError(
            f"Cannot merge {layout.main}: writers are still running: "
            f"{describe_holders([layout.lock, *layout.shard_locks()])}. Fix: wait for them to finish.")
    try:
        lock.write_info("merge")
        snap = Snapshot.open(layout)
        if snap is None:
            raise CacheError(f"There is no cache at {layout.main}. Fix: check the path (--out of the extraction).")
        manifest_json = snap.header.manifest_json
        snap.close()
        consolidate(layout, manifest_ids=Manifest.from_json(manifest_json).ids)
        for p in layout.shard_locks():
            unlink_quiet(p)
        return layout.main
    finally:
        lock.release(clear_info=True)


def remove_cache(path: str | Path) -> None:
    """Delete the cache at ``path`` (main file, parts, shard locks) once no writer holds it."""
    layout = Layout(path)
    lock = FileLock(layout.lock)
    if not lock.acquire(shared=False):
        raise CacheLockedError(f"Cannot remove {layout.main}: it is being written by "
                               f"{describe_holders([layout.lock, *layout.shard_locks()])}.")
    try:
        unlink_quiet(layout.main)
        for p in layout.main_tmps():
            unlink_quiet(p)
        if layout.parts_dir.is_dir():
            for p in sorted(layout.parts_dir.iterdir()):
                if p != layout.header_json:
                    unlink_quiet(p)
            unlink_quiet(layout.header_json)
            layout.parts_dir.rmdir()
        for p in layout.shard_locks():
            unlink_quiet(p)
    finally:
        lock.release(clear_info=True)

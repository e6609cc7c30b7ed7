"""A consistent view of a cache (main file + committed parts), consolidation and clean-up."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.errors import CacheError

from .diskerrors import MARGIN, check_free, disk_errors
from .durable import commit, unlink_quiet
from .interrupts import deferred_interrupts
from .layout import Layout
from .merge import set_attrs, union_sessions, write_merged_checked
from .schema import Header
from .segment import CorruptSegmentError, Segment, close_all


class _Changed(Exception):
    """The directory changed while a snapshot was being taken; take it again."""


class Snapshot:
    """Main file + non-redundant committed parts, opened together at one moment.

    ``where`` maps every clip id to ``(segment index, row)`` (the newest copy wins: main first,
    then parts oldest first; a clip is stored twice only when a damaged copy was extracted
    again); ``missing`` lists journaled parts that are gone; ``errors`` maps ids that failed and are not done to
    ``(path, reason, time)`` (latest failure wins). Files are held open, so a concurrent
    compaction or finalize that deletes them does not disturb this view.
    """

    def __init__(self, layout: Layout, header: Header, main: Segment | None, parts: list[Segment],
                 redundant: list[Path], corrupt: list[tuple[Path, str]], missing: list[Path] = ()):
        self.layout, self.header, self.main, self.parts = layout, header, main, parts
        self.redundant, self.corrupt, self.missing = redundant, corrupt, list(missing)
        self.segments: list[Segment] = ([main] if main is not None else []) + parts
        self.exclude(set())

    def exclude(self, pairs: set[tuple[int, int]]) -> None:
        """(Re)build ``where`` and ``errors`` leaving out the damaged ``(segment, row)`` pairs."""
        self.where: dict[str, tuple[int, int]] = {}
        for s, seg in enumerate(self.segments):
            for r, cid in enumerate(seg.ids):
                if (s, r) not in pairs:
                    self.where[cid] = (s, r)
        self.errors: dict[str, tuple[str, str, float]] = {}
        for seg in self.segments:
            e = seg.errors
            for cid, path, reason, t in zip(e["id"], e["path"], e["reason"], e["time"], strict=True):
                if cid not in self.where and (cid not in self.errors or t >= self.errors[cid][2]):
                    self.errors[cid] = (path, reason, float(t))

    @classmethod
    def open(cls, layout: Layout, attempts: int = 200) -> Snapshot | None:
        """Open the cache's files; ``None`` if there is no cache at all."""
        for attempt in range(attempts):
            opened: list[Segment] = []
            try:
                return cls._try_open(layout, opened)
            except (_Changed, FileNotFoundError):
                close_all(opened)
                time.sleep(min(0.05, 0.001 * attempt))
            except BaseException:
                close_all(opened)
                raise
        raise CacheError(f"The cache {layout.main} kept changing while being opened "
                         f"({attempts} attempts). Fix: retry when its writers are idle.")

    @classmethod
    def _try_open(cls, layout: Layout, opened: list[Segment]) -> Snapshot | None:
        journal = layout.read_journal()  # before listing: every part it names was committed by then
        key = _stat_key(layout.main)
        main = None
        if key is not None:
            try:
                main = Segment(layout.main)
            except CorruptSegmentError as e:
                raise CacheError(
                    f"{e}. The main file of a cache is only ever replaced atomically, so this points to "
                    "disk damage or a copy made while it was written. Fix: re-extract with --overwrite.") from e
            opened.append(main)
            header = main.header()
        else:
            try:
                header = Header.from_json(layout.header_json.read_text())
            except FileNotFoundError:
                header = None
            except (ValueError, KeyError) as e:
                raise CacheError(f"{layout.header_json} is damaged ({e!r}). Fix: re-extract with --overwrite.") from e
        parts, corrupt = [], []
        listed = layout.parts()
        for pn in listed:
            path = layout.part_path(pn)
            try:
                seg = Segment(path, pn)
            except CorruptSegmentError as e:
                corrupt.append((path, str(e)))
                continue
            opened.append(seg)
            parts.append(seg)
        if _stat_key(layout.main) != key:
            raise _Changed
        if header is None:
            if parts or corrupt:
                raise CacheError(f"The cache {layout.main} has part files but neither a main file nor "
                                 f"{layout.header_json}. Fix: re-extract with --overwrite.")
            return None
        if main is not None and main.kind != "main":
            raise CacheError(f"{layout.main} is a {main.kind!r} file, not a cache main file. "
                             "Fix: re-extract with --overwrite or pick another --out.")
        good = []
        for seg in parts:
            if seg.matches(header):
                good.append(seg)
            else:
                corrupt.append((seg.path, "made for another cache configuration"))
                seg.close()
        sources = set().union(*(s.sources for s in ([main] if main else []) + good))
        redundant = [s.path for s in good if s.part.name in sources]
        missing = _missing(layout, journal, {p.name for p in listed}, sources)
        for s in good:
            if s.part.name in sources:
                s.close()
        return cls(layout, header, main, [s for s in good if s.part.name not in sources], redundant, corrupt,
                   missing)

    def part_names(self) -> list[str]:
        return [p.part.name for p in self.parts]

    def close(self) -> None:
        close_all(self.segments)


def _missing(layout: Layout, journal: tuple[dict[str, list[str]], set[str]], listed: set[str],
             held: set[str]) -> list[Path]:
    """Journaled parts that are neither on disk, nor held by a present segment, nor given up."""
    added, retired = journal
    aside = set()
    with contextlib.suppress(OSError):
        aside = {n[:-len(".corrupt")] for n in os.listdir(layout.parts_dir) if n.endswith(".corrupt")}
    gone = [n for n in added if n not in listed and n not in held and n not in retired and n not in aside]
    inside: set[str] = set()  # parts merged into a missing part are not reported on their own
    todo = [s for n in gone for s in added[n]]
    while todo:
        n = todo.pop()
        if n not in inside:
            inside.add(n)
            todo += added.get(n, [])
    return [layout.parts_dir / n for n in gone if n not in inside]


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def cleanup(snap: Snapshot, *, tag: str | None) -> None:
    """Remove what a crash left behind: temp files, parts already merged elsewhere, damaged parts.

    Args:
        tag: only touch temp and damaged files of this writer tag; ``None`` (holder of the
            exclusive lock) touches every one.
    """
    layout = snap.layout
    for p in layout.main_tmps():  # any main temp is stale: writing one needs the exclusive lock
        unlink_quiet(p)
    for p in layout.part_tmps(tag):
        unlink_quiet(p)
    for p in snap.redundant:  # their content is committed in another file
        unlink_quiet(p)
    for path, reason in snap.corrupt:
        if tag is None or f".{tag}." in path.name:
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, path.with_name(path.name + ".corrupt"))
            warnings.warn(f"Ignored a damaged cache part {path} ({reason}); moved it to *.corrupt. "
                          "Its clips will be extracted again.", stacklevel=3)


def consolidate(layout: Layout, *, manifest_ids: list[str]) -> dict[str, Any]:
    """Merge main + every part into a new main file in manifest order (exclusive lock required).

    Writes ``X.h5.tmp-<pid>-<r>``, fsyncs it, ``os.replace``s it over ``X.h5``, fsyncs the
    directory, and only then deletes the merged parts. Returns counts for the caller.

    The copy needs about the cache's size in free space: with less it is refused before it
    starts, and a full disk or a Ctrl-C midway (taken between blocks, never inside h5py) removes
    the temporary file and keeps every part (``CacheDiskFullError`` / ``KeyboardInterrupt``).
    """
    folder = layout.main.parent
    copy = layout.size_bytes() if layout.parts() or not layout.main.exists() else 0
    why = (" (the final merge writes a full copy of the cache before deleting the parts, which "
           "keep every batch until then)")
    with deferred_interrupts(), disk_errors(folder, "the final merge", copy + MARGIN, why):
        if copy:
            check_free(folder, copy, "the final merge", why)
        return _consolidate(layout, manifest_ids)


def _consolidate(layout: Layout, manifest_ids: list[str]) -> dict[str, Any]:
    snap = Snapshot.open(layout)
    if snap is None:
        raise CacheError(f"There is no cache at {layout.main}.")
    try:
        cleanup(snap, tag=None)
        done = snap.where
        complete = all(i in done or i in snap.errors for i in manifest_ids)
        rewrite = snap.main is None or bool(snap.parts) or snap.main.complete != complete
        lost: list[str] = []
        if rewrite:
            order = [i for i in manifest_ids if i in done]
            extra = sorted(set(done) - set(manifest_ids))
            pairs = np.array([done[i] for i in order + extra], np.int64).reshape(-1, 2)
            existing = {p.name for p in layout.parts()}
            sources = set(snap.main.sources if snap.main else ()) & existing
            for p in snap.parts:
                sources |= {p.part.name, *p.sources}
            errors = [(i, *snap.errors[i]) for i in sorted(snap.errors)]
            tmp = layout.tmp_main()
            try:
                lost = write_merged_checked(tmp, snap.header, snap.segments, pairs[:, 0], pairs[:, 1], errors,
                                            kind="main", attrs={"complete": complete},
                                            sessions=union_sessions(snap.segments), sources=sorted(sources),
                                            manifest_json=snap.header.manifest_json)
                if lost and complete:  # damaged clips were left out: they count as not extracted
                    complete = False
                    set_attrs(tmp, complete=False)
                commit(tmp, layout.main)
            except BaseException:
                unlink_quiet(tmp)
                raise
        merged = [p.path for p in snap.parts]
        n_clips, n_errors = len(done) - len(lost), len(snap.errors)
    finally:
        snap.close()
    for p in merged:
        unlink_quiet(p)
    if layout.parts_dir.is_dir():
        for p in layout.parts():
            unlink_quiet(layout.part_path(p))  # only parts already in the new main can be left here
        unlink_quiet(layout.journal)
        unlink_quiet(layout.header_json)
        with contextlib.suppress(OSError):
            layout.parts_dir.rmdir()
    return {"complete": complete, "n_clips": n_clips, "n_errors": n_errors, "rewritten": rewrite}

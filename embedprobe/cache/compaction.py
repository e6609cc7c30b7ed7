"""Compaction of a writer's part files: every ``compact_every`` small parts of one level are merged
into one part of the next level (LSM-style), so the part count stays bounded without copying
large batches (see ``writer.py``)."""

from __future__ import annotations

import numpy as np

from .diskerrors import FULL, CacheDiskFullError, check_free
from .durable import commit, unlink_quiet
from .layout import PartName, now_ns
from .merge import union_sessions, write_merged_checked
from .segment import Segment, close_all


class Compaction:
    """The compaction half of ``CacheWriter`` (a mixin; it uses the writer's state)."""

    def _new_part_name(self, level: int, order: int | None = None) -> PartName:
        self._seq += 1
        return PartName(order=order if order is not None else now_ns(), session=self.session,
                        seq=self._seq, tag=self.tag, level=level)

    def _compact(self) -> None:
        """Merge every level that has ``compact_every`` parts into one part of the next level."""
        level = 0
        while True:
            sizes = {p: self._size(p) for p in self._own}
            seal = max(self.seal_bytes, sum(sizes.values()) // self.max_parts)
            small = [p for p in self._own if sizes[p] < seal]
            at = [p for p in small if p.level == level]
            if not at and not any(p.level > level for p in small):
                return
            if len(at) >= self.compact_every:
                try:  # merging is optional: with too little space the parts stay as they are
                    check_free(self.layout.parts_dir, sum(sizes[p] for p in at), "merging parts")
                    self._merge_parts(at, level + 1)
                except CacheDiskFullError:
                    return
                except OSError as e:
                    if e.errno in FULL:  # the next batch reports the full disk, with what to do
                        return
                    raise
            level += 1

    def _size(self, part: PartName) -> int:
        if part.name not in self._sizes:
            try:
                self._sizes[part.name] = self.layout.part_path(part).stat().st_size
            except FileNotFoundError:
                self._sizes[part.name] = 0
        return self._sizes[part.name]

    def _merge_parts(self, parts: list[PartName], level: int) -> None:
        segs = [Segment(self.layout.part_path(p), p) for p in sorted(parts)]
        try:
            where: dict[str, tuple[int, int]] = {}
            for s, seg in enumerate(segs):
                for r, cid in enumerate(seg.ids):
                    where.setdefault(cid, (s, r))
            errs: dict[str, tuple[str, str, str, float]] = {}
            for seg in segs:
                e = seg.errors
                for row in zip(e["id"], e["path"], e["reason"], e["time"], strict=True):
                    if row[0] not in where and (row[0] not in errs or row[3] >= errs[row[0]][3]):
                        errs[row[0]] = row
            pairs = np.array(list(where.values()), np.int64).reshape(-1, 2)
            out = self._new_part_name(level, order=max(p.order for p in parts))
            sources = sorted({p.name for p in parts}.union(*(s.sources for s in segs)))
            tmp = self.layout.tmp_part(self.tag, self.session, out.seq)
            try:
                lost = write_merged_checked(tmp, self.header, segs, pairs[:, 0], pairs[:, 1], list(errs.values()),
                                            kind="part", attrs={"level": level}, sessions=union_sessions(segs),
                                            sources=sources)
                commit(tmp, self.layout.part_path(out))
            except BaseException:
                unlink_quiet(tmp)
                raise
            with self._mutex:  # damaged clips left out: extracted again on resume
                self._done.difference_update(lost)
        finally:
            close_all(segs)
        self.layout.journal_add(out.name, [p.name for p in parts])
        for p in parts:
            unlink_quiet(self.layout.part_path(p))
        with self._mutex:
            self._own = [p for p in self._own if p not in parts] + [out]
            self._sizes[out.name] = self.layout.part_path(out).stat().st_size

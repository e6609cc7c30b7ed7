"""Check a whole cache against its checksums: ``verify_cache(path) -> VerifyReport``.

Every segment (main file and committed parts) is read once, block by block; each clip's stored
vectors are hashed and compared with the digest table written with them (``digest.py``). The
metadata checksum of every segment is checked when it is opened. Parts the journal lists but
that are gone, damaged parts, and segments written before checksums existed are reported too.

Example:
    >>> # SKIP: needs an extracted cache (tests/cache/test_cache_integrity.py builds small ones)
    >>> report = verify_cache("cache/emodb__wavlm-large.h5")   # doctest: +SKIP
    >>> report.ok, report.lines()                               # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedprobe.corpora.base import Manifest
from embedprobe.errors import CacheError

from .digest import row_digests
from .layout import Layout
from .rangeio import SPAN_BYTES, read_ranges, read_rows
from .schema import packed_columns
from .segment import Segment
from .snapshot import Snapshot


def scan_segment(seg: Segment) -> list[tuple[int, str]]:
    """``[(row, "layer stat")]`` of every stored array of ``seg`` that fails its checksum."""
    if seg.digests is None:
        return []
    bad: list[tuple[int, str]] = []
    n = len(seg.ids)
    if seg.packed is not None:  # every pooled array in one dataset: read each block of rows once
        bad += _scan_packed(seg)
    for (what, layer), col in seg.columns.items():
        if what in ("mean", "std") and seg.packed is not None:
            continue
        want = seg.digests[:, col]
        got = np.empty(n, np.uint64)
        if what in ("mean", "std"):
            dset = seg.dset("pooled", layer, what)
            step = max(1, SPAN_BYTES // max(1, dset.dtype.itemsize * seg.layers[layer]))
            for a in range(0, n, step):
                b = min(n, a + step)
                read_rows(dset, np.arange(a, b), digests=got[a:b])
        else:
            off = seg.offsets[layer]
            read_ranges(seg.dset("frames", layer, "data"), off[:-1], off[1:], digests=got)
        bad += [(int(r), f"{layer} {what}") for r in np.nonzero(got != want)[0]]
    return bad


def _scan_packed(seg: Segment) -> list[tuple[int, str]]:
    bad: list[tuple[int, str]] = []
    n, packed = len(seg.ids), seg.packed
    step = max(1, SPAN_BYTES // max(1, packed.dtype.itemsize * packed.shape[1]))
    for a in range(0, n, step):
        b = min(n, a + step)
        rows = packed[a:b]
        for (stat, layer), (c0, c1) in packed_columns(seg.layers).items():
            got = row_digests(rows[:, c0:c1])
            bad += [(a + int(r), f"{layer} {stat}")
                    for r in np.nonzero(got != seg.digests[a:b, seg.columns[(stat, layer)]])[0]]
    return bad


def scan(snap: Snapshot) -> dict[tuple[int, int], list[str]]:
    """``{(segment index, row): ["layer stat", ...]}`` of every damaged clip of a snapshot."""
    out: dict[tuple[int, int], list[str]] = {}
    for s, seg in enumerate(snap.segments):
        for row, what in scan_segment(seg):
            out.setdefault((s, row), []).append(what)
    return out


@dataclass
class VerifyReport:
    """What ``verify_cache`` found.

    Attributes:
        path: the cache.
        problems: one sentence per problem (damaged clip, damaged or missing part, no checksums).
        notes: facts that are not damage (an unfinished cache).
        damaged: ``[(segment file, clip id, array)]``.
        n_clips, n_checked: clips in the cache, clips whose values were checked.
    """

    path: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    damaged: list[tuple[str, str, str]] = field(default_factory=list)
    n_clips: int = 0
    n_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return self.problems + self.notes


def verify_cache(path: str | Path) -> VerifyReport:
    """Read every stored value of the cache at ``path`` and compare it with its checksum.

    Raises:
        CacheError: there is no cache at ``path``.
    """
    layout = Layout(path)
    rep = VerifyReport(Path(path))
    try:
        snap = Snapshot.open(layout)
    except CacheError as e:
        rep.problems.append(str(e))
        return rep
    if snap is None:
        raise CacheError(f"There is no embedding cache at {path}. Fix: check the path.")
    try:
        rerun = "re-running the extraction extracts its clips again"
        for p, reason in snap.corrupt:
            rep.problems.append(f"damaged part {p} ({reason}); {rerun}.")
        for p in snap.missing:
            rep.problems.append(f"missing part {p}: the cache's journal lists it but the file is gone; {rerun}.")
        damaged = scan(snap)
        for (s, r), whats in sorted(damaged.items()):
            seg = snap.segments[s]
            cid = seg.ids[r]
            superseded = snap.where.get(cid) != (s, r)
            rep.damaged.append((str(seg.path), cid, "; ".join(whats)))
            if not superseded:
                rep.problems.append(f"damaged clip {cid} in {seg.path} ({'; '.join(whats)}): its stored values "
                                    "do not match their checksum; re-running the extraction extracts it again.")
        unchecked = [seg for seg in snap.segments if seg.digests is None]
        for seg in unchecked:
            rep.problems.append(f"no checksums in {seg.path} (written by an embedprobe before checksums): its "
                                f"{len(seg.ids)} clips cannot be verified; re-extract with --overwrite to add them.")
        ids = Manifest.from_json(snap.header.manifest_json).ids
        pending = sum(1 for i in ids if i not in snap.where and i not in snap.errors)
        snap.exclude(set(damaged))
        rep.n_clips = len(snap.where)
        rep.n_checked = sum(1 for s, _ in snap.where.values() if snap.segments[s].digests is not None)
        if pending:
            rep.notes.append(f"incomplete: {pending} of {len(ids)} clips are not extracted yet; re-running the "
                             "extraction resumes.")
    finally:
        snap.close()
    return rep

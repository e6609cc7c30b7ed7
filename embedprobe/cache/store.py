"""The files of one cache on disk: naming, durable commits, open segments, consistent snapshots,
streaming merges. Shared by the writer and the reader; knows nothing about locks.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.errors import CacheError

from . import interrupts
from .convert import convert_into, converted
from .digest import (
    DIGEST_DSET,
    META_ATTR,
    SCHEME,
    SCHEME_ATTR,
    columns,
    combine_ranges,
    meta_digest,
    read_small,
    row_digests,
    seal,
)
from .schema import (
    FORMAT_VERSION,
    HEADER_JSON,
    JOURNAL,
    LOCK_SUFFIX,
    MAIN_TMP_INFIX,
    PART_PREFIX,
    PARTS_SUFFIX,
    TMP_PREFIX,
    Header,
    create_columns,
    write_meta,
    write_root_attrs,
)

SPAN_BYTES = 16 << 20  # largest single read / write while copying
GAP_BYTES = 256 << 10  # read through gaps smaller than this instead of issuing a new read
_PART_RE = re.compile(
    r"^part\.(?P<tag>all|s\d+of\d+)\.L(?P<level>\d+)\.(?P<order>\d{20})\.(?P<session>[0-9a-f]{8})\.(?P<seq>\d{6,})\.h5$")


@dataclass(frozen=True, order=True)
class PartName:
    """A committed part file's name: ``part.<tag>.L<level>.<order>.<session>.<seq>.h5``."""

    order: int  # creation time in ns (merged parts: the newest input's), sorts parts
    session: str
    seq: int
    tag: str
    level: int

    @property
    def name(self) -> str:
        return f"{PART_PREFIX}{self.tag}.L{self.level}.{self.order:020d}.{self.session}.{self.seq:06d}.h5"

    @classmethod
    def parse(cls, name: str) -> PartName | None:
        m = _PART_RE.match(name)
        if m is None:
            return None
        return cls(order=int(m["order"]), session=m["session"], seq=int(m["seq"]), tag=m["tag"],
                   level=int(m["level"]))


class Layout:
    """Where the files of the cache ``path`` live."""

    def __init__(self, path: str | Path):
        self.main = Path(path)
        self.parts_dir = self.main.with_name(self.main.name + PARTS_SUFFIX)
        self.header_json = self.parts_dir / HEADER_JSON
        self.journal = self.parts_dir / JOURNAL
        self.lock = self.main.with_name(self.main.name + LOCK_SUFFIX)

    def shard_lock(self, tag: str) -> Path:
        return self.main.with_name(f"{self.main.name}.shard-{tag[1:]}{LOCK_SUFFIX}")

    def shard_locks(self) -> list[Path]:
        return sorted(self.main.parent.glob(f"{glob_escape(self.main.name)}.shard-*{LOCK_SUFFIX}"))

    def parts(self) -> list[PartName]:
        try:
            names = os.listdir(self.parts_dir)
        except FileNotFoundError:
            return []
        return sorted(p for p in map(PartName.parse, names) if p is not None)

    def part_path(self, part: PartName) -> Path:
        return self.parts_dir / part.name

    def tmp_part(self, tag: str, session: str, seq: int) -> Path:
        return self.parts_dir / f"{TMP_PREFIX}{tag}.{session}.{seq:06d}.h5"

    def tmp_main(self) -> Path:
        return self.main.with_name(f"{self.main.name}{MAIN_TMP_INFIX}{os.getpid()}-{secrets.token_hex(3)}")

    def main_tmps(self) -> list[Path]:
        return sorted(self.main.parent.glob(f"{glob_escape(self.main.name)}{MAIN_TMP_INFIX}*"))

    def part_tmps(self, tag: str | None = None) -> list[Path]:
        if not self.parts_dir.is_dir():
            return []
        pat = f"{TMP_PREFIX}{tag}.*" if tag else f"{TMP_PREFIX}*"
        return sorted(self.parts_dir.glob(pat))

    def journal_add(self, part: str, sources: list[str] = ()) -> None:
        """Record a committed part (and the parts it merged) in the journal (one appended line)."""
        self._journal(f"add {' '.join([part, *sources])}\n")

    def journal_retire(self, parts: list[str]) -> None:
        """Record parts that are gone for good (their clips are extracted again)."""
        if parts:
            self._journal("".join(f"retire {p}\n" for p in parts))

    def _journal(self, text: str) -> None:
        # Best effort, after the commit: a line that cannot be written only means that losing
        # that part later goes unnamed (its clips still count as not done).
        with contextlib.suppress(OSError):
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)

    def read_journal(self) -> tuple[dict[str, list[str]], set[str]]:
        """``({part: merged sources}, retired parts)`` from the journal (empty if there is none)."""
        added: dict[str, list[str]] = {}
        retired: set[str] = set()
        try:
            text = self.journal.read_text(errors="replace")
        except FileNotFoundError:
            return added, retired
        for line in text.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "add" and PartName.parse(words[1]):
                added[words[1]] = words[2:]
            elif len(words) == 2 and words[0] == "retire":
                retired.add(words[1])
        return added, retired

    def size_bytes(self) -> int:
        total = self.main.stat().st_size if self.main.exists() else 0
        for p in self.parts():
            with contextlib.suppress(FileNotFoundError):
                total += self.part_path(p).stat().st_size
        return total


def glob_escape(s: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", s)


# -- durable file operations --------------------------------------------------------------------
def fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: Path, final: Path) -> None:
    """Make a finished temp file durable, then atomically give it its final name."""
    fsync_path(tmp)
    os.replace(tmp, final)
    fsync_path(final.parent, directory=True)


def commit_bytes(data: bytes | memoryview, tmp: Path, final: Path) -> None:
    """Write ``data`` to ``tmp``, fsync it and atomically give it its final name (``commit``).

    One plain ``write`` loop: a full disk is a clean ``OSError`` here, never a half-flushed
    HDF5 file. The caller removes ``tmp`` if this raises.
    """
    view = memoryview(data).cast("B")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_path(final.parent, directory=True)


def file_image(fill: Any) -> bytes:
    """The bytes of a new HDF5 file built in memory by ``fill(f)`` (core driver, no disk IO).

    A batch's part file is built this way and written with ``commit_bytes``: HDF5 never
    writes to the disk itself, so a full disk cannot leave it in a failing state.
    """
    import h5py

    f = h5py.File(f"embedprobe-part-{secrets.token_hex(6)}.h5", "w", driver="core", backing_store=False,
                  locking=False)
    try:
        fill(f)
        f.flush()
        return f.id.get_file_image()
    finally:
        f.close()


def write_text_if_absent(path: Path, text: str) -> bool:
    """Atomically create ``path`` with ``text`` unless it exists (``link`` fails on an existing name)."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(3)}")
    try:
        tmp.write_text(text)
        fsync_path(tmp)
    except BaseException:
        unlink_quiet(tmp)
        raise
    try:
        os.link(tmp, path)
        created = True
    except FileExistsError:
        created = False
    except OSError:  # a filesystem without hard links: atomic, but the last of two racers wins
        created = not path.exists()
        if created:
            os.replace(tmp, path)
    finally:
        unlink_quiet(tmp)
    fsync_path(path.parent, directory=True)
    return created


def unlink_quiet(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# -- segments -----------------------------------------------------------------------------------
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
    """One open main or part file, with its small per-clip columns in memory."""

    def __init__(self, path: Path, part: PartName | None = None):
        self.path, self.part = Path(path), part
        self._dsets: dict[str, Any] = {}
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
        if version != FORMAT_VERSION:
            newer = version > FORMAT_VERSION
            raise CacheError(
                f"{self.path} has cache format version {version}; this embedprobe reads version "
                f"{FORMAT_VERSION}. Fix: " + ("upgrade embedprobe." if newer else
                                             "re-extract with --overwrite (or use an older embedprobe)."))
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
        if key not in self._dsets:  # opened through the low-level API: 3-5x cheaper than f[key],
            from h5py import Dataset, h5d  # which a merge of many parts does thousands of times

            self._dsets[key] = Dataset(h5d.open(self.f.id, key.encode()))
        return self._dsets[key]

    def close(self) -> None:
        """Close the file (``close_all`` closes many segments faster)."""
        close_all([self])


def close_all(segments: list[Segment]) -> None:
    """Close segments, dropping every cached dataset handle first: h5py's ``File.close`` walks
    all open HDF5 objects of the process, so closing one by one is quadratic."""
    for seg in segments:
        seg._dsets = {}
    for seg in segments:
        with contextlib.suppress(Exception):
            seg.f.close()


# -- coalesced reads ----------------------------------------------------------------------------
def _spans(starts: list[int], stops: list[int], max_gap: int, max_span: int) -> list[tuple[int, int, int, int]]:
    """Group sorted ranges into ``(i, j, lo, hi)`` read spans (gaps <= max_gap, length <= max_span)."""
    out, i0, lo, hi = [], 0, starts[0], stops[0]
    for i in range(1, len(starts)):
        s, e = starts[i], stops[i]
        if s - hi <= max_gap and max(hi, e) - lo <= max_span:
            hi = max(hi, e)
        else:
            out.append((i0, i, lo, hi))
            i0, lo, hi = i, s, e
    out.append((i0, len(starts), lo, hi))
    return out


def _row_bytes(dset: Any) -> int:
    return max(1, int(np.prod(dset.shape[1:], dtype=np.int64)) * dset.dtype.itemsize)


def read_rows(dset: Any, rows: np.ndarray, dtype: Any = None, digests: np.ndarray | None = None) -> np.ndarray:
    """``dset[rows]`` for rows in any order (repeats allowed), with few large reads.

    ``digests`` (uint64, one per row asked) receives the checksum of each row's stored bytes.
    """
    rows = np.asarray(rows, np.int64)
    out = np.empty((len(rows),) + tuple(dset.shape[1:]), dtype or dset.dtype)
    if not len(rows):
        return out
    order = np.argsort(rows, kind="stable")
    srt = rows[order]
    rb = _row_bytes(dset)
    s = srt.tolist()
    for i, j, lo, hi in _spans(s, [x + 1 for x in s], max(1, GAP_BYTES // rb), max(1, SPAN_BYTES // rb)):
        buf = dset[lo:hi]
        if not (hi - lo == j - i and s[i] == lo):  # not one run of consecutive rows
            buf = buf[srt[i:j] - lo]
        in_order = np.array_equal(order[i:j], np.arange(i, j))
        if digests is not None:
            digests[order[i:j]], buf = hash_convert(buf, out.dtype, out[i:j] if in_order else None)
            if not in_order:
                out[order[i:j]] = buf
        elif in_order:
            convert_into(out[i:j], buf)  # already in the asked order: no scatter
        else:
            out[order[i:j]] = converted(buf, out.dtype)
    return out


def read_ranges(dset: Any, starts: np.ndarray, stops: np.ndarray, dtype: Any = None,
                digests: np.ndarray | None = None) -> list[np.ndarray]:
    """``[dset[a:b] for a, b in zip(starts, stops)]`` with neighbouring ranges read together.

    ``digests`` (uint64, one per range) receives the checksum of each range's stored rows.
    """
    n = len(starts)
    res: list[np.ndarray] = [None] * n  # type: ignore[list-item]
    if not n:
        return res
    starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order].tolist(), stops[order].tolist()
    rb = _row_bytes(dset)
    rowd: list[np.ndarray] = []  # row digests of every span, combined per range once at the end
    shift = np.zeros(n, np.int64)  # sorted range k starts at s[k] + shift[k] in the joined row digests
    seen = 0
    for i, j, lo, hi in _spans(s, e, max(1, GAP_BYTES // rb), max(1, SPAN_BYTES // rb)):
        buf = dset[lo:hi]
        if digests is not None:
            shift[i:j] = seen - lo
            seen += hi - lo
            d, buf = hash_convert(buf, dtype)
            rowd.append(d)
        elif dtype is not None:
            buf = converted(buf, dtype)
        for k in range(i, j):
            res[order[k]] = buf[s[k] - lo:e[k] - lo]
    if digests is not None:
        digests[order] = combine_ranges(np.concatenate(rowd), np.array(s) + shift, np.array(e) + shift)
    return res


HASH_BLOCK_BYTES = 1 << 20


def hash_convert(buf: np.ndarray, dtype: Any = None, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row digests of ``buf`` and ``buf`` as ``dtype`` (into ``out`` if given), in blocks that stay
    in the CPU cache between hashing and converting (one pass over memory instead of two)."""
    if out is None and (dtype is None or np.dtype(dtype) == buf.dtype):
        return row_digests(buf), buf
    out = np.empty(buf.shape, dtype) if out is None else out
    if buf.nbytes <= HASH_BLOCK_BYTES:  # one block: no loop
        d = row_digests(buf)
        convert_into(out, buf)
        return d, out
    step = max(1, HASH_BLOCK_BYTES * len(buf) // buf.nbytes)
    d = np.empty(len(buf), np.uint64)
    for a in range(0, len(buf), step):
        d[a:a + step] = row_digests(buf[a:a + step])
        convert_into(out[a:a + step], buf[a:a + step])
    return d, out


# -- merging ------------------------------------------------------------------------------------
def union_sessions(segments: list[Segment], extra: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    seen, out = set(), []
    for s in [*[x for seg in segments for x in seg.sessions], *extra]:
        if s.get("session") not in seen:
            seen.add(s.get("session"))
            out.append(s)
    return out


def write_merged(dst: Path, header: Header, segments: list[Segment], seg_idx: np.ndarray, rows: np.ndarray,
                 errors: list[tuple[str, str, str, float]], *, kind: str, attrs: dict[str, Any],
                 sessions: list[dict[str, Any]], sources: list[str], manifest_json: str | None = None) -> None:
    """Write a new segment holding clip ``rows[i]`` of ``segments[seg_idx[i]]`` in that order.

    Streams in blocks of at most ``SPAN_BYTES`` so caches larger than memory merge fine.
    """
    n = len(rows)
    seg_idx, rows = np.asarray(seg_idx, np.int64), np.asarray(rows, np.int64)
    uniq = [int(u) for u in np.unique(seg_idx)]
    masks = {u: seg_idx == u for u in uniq}
    lengths, out_off = {}, {}
    for layer in header.frame_layers:
        ln = np.zeros(n, np.int64)
        for u in uniq:
            off = segments[u].offsets[layer]
            r = rows[masks[u]]
            ln[masks[u]] = off[r + 1] - off[r]
        lengths[layer] = ln
        out_off[layer] = np.concatenate([[0], np.cumsum(ln)]).astype(np.int64)
    cols = columns(header.layers, header.frame_layers)
    table = np.zeros((n, len(cols)), np.uint64)
    damaged: dict[tuple[int, int], list[str]] = {}
    with h5open(dst, "w") as f:
        write_root_attrs(f, header, kind=kind, n_clips=n, n_errors=len(errors), extra=attrs)
        create_columns(f, header, n, {k: int(v[-1]) for k, v in out_off.items()}, len(errors))
        if n:
            ids = np.empty(n, object)
            ch = np.empty(n, object)
            dur = np.empty(n, np.float64)
            nf = np.empty(n, np.int64)
            for u in uniq:
                m, seg = masks[u], segments[u]
                r = rows[m]
                ids[m] = [seg.ids[x] for x in r.tolist()]
                ch[m] = seg.content_hash[r]
                dur[m] = seg.duration_s[r]
                nf[m] = seg.n_frames[r]
            f["clips/id"][:] = ids
            f["clips/content_hash"][:] = ch
            f["clips/duration_s"][:] = dur
            f["clips/n_frames"][:] = nf
        for layer, dim in header.layers.items():
            block = max(1, SPAN_BYTES // (dim * np.dtype(header.dtype).itemsize))
            for stat in ("mean", "std"):
                out = f[f"pooled/{layer}/{stat}"]
                for a in range(0, n, block):
                    interrupts.check_interrupt()
                    b = min(n, a + block)
                    buf = np.empty((b - a, dim), header.dtype)
                    si, ri = seg_idx[a:b], rows[a:b]
                    got = table[a:b, cols[(stat, layer)]]
                    for u in np.unique(si).tolist():
                        m = si == u
                        d = np.empty(int(m.sum()), np.uint64)
                        buf[m] = read_rows(segments[u].dset("pooled", layer, stat), ri[m], digests=d)
                        got[m] = d
                        _check(segments[u], ri[m], d, (stat, layer), damaged, u)
                    table[a:b, cols[(stat, layer)]] = got
                    out[a:b] = buf
        for layer in header.frame_layers:
            _copy_frames(f, layer, header, segments, seg_idx, rows, out_off[layer],
                         table[:, cols[("frames", layer)]], damaged)
        if damaged:
            pairs = set(damaged)
            found = [(segments[u].path, segments[u].ids[r], w) for (u, r), ws in damaged.items() for w in ws]
            raise DamagedClipsError(found, pairs)
        f[DIGEST_DSET][:] = table
        if errors:
            for c, col in enumerate(("id", "path", "reason")):
                f[f"errors/{col}"][:] = np.array([e[c] for e in errors], dtype=object)
            f["errors/time"][:] = np.array([e[3] for e in errors], np.float64)
        write_meta(f, sessions=sessions, sources=sources, manifest_json=manifest_json)


def write_merged_checked(dst: Path, header: Header, segments: list[Segment], seg_idx: np.ndarray,
                         rows: np.ndarray, errors: list[tuple[str, str, str, float]], **kw: Any) -> list[str]:
    """``write_merged``, leaving out clips whose stored values fail their checksum.

    Each damaged clip is named in a warning; returns their ids (they count as not extracted).
    """
    seg_idx, rows = np.asarray(seg_idx, np.int64), np.asarray(rows, np.int64)
    lost: list[str] = []
    while True:
        try:
            write_merged(dst, header, segments, seg_idx, rows, errors, **kw)
            return lost
        except DamagedClipsError as e:  # rare: write again without them
            warnings.warn(damage_sentence(e.found, "They were left out; re-running the extraction extracts "
                                          "them again."), stacklevel=3)
            keep = np.array([p not in e.pairs for p in zip(seg_idx.tolist(), rows.tolist(), strict=True)], bool)
            seg_idx, rows = seg_idx[keep], rows[keep]
            lost += sorted({f[1] for f in e.found})


def set_attrs(path: Path, **attrs: Any) -> None:
    """Change root attributes of a segment being written, and seal its metadata checksum again."""
    with h5open(path, "r+") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        seal(f)


def _check(seg: Segment, rows: np.ndarray, got: np.ndarray, key: tuple[str, str],
           damaged: dict[tuple[int, int], list[str]], u: int) -> None:
    """Record rows of ``seg`` whose computed digests ``got`` differ from the stored ones."""
    if seg.digests is None:
        return
    bad = np.nonzero(seg.digests[rows, seg.columns[key]] != got)[0]
    for r in rows[bad].tolist():
        damaged.setdefault((u, int(r)), []).append(f"{key[1]} {key[0]}")


def _copy_frames(f: Any, layer: str, header: Header, segments: list[Segment], seg_idx: np.ndarray,
                 rows: np.ndarray, out_off: np.ndarray, table_col: np.ndarray,
                 damaged: dict[tuple[int, int], list[str]]) -> None:
    """Copy the frames of ``layer``; ``table_col`` receives each clip's frames digest."""
    n = len(rows)
    f[f"frames/{layer}/offsets"][:] = out_off
    out = f[f"frames/{layer}/data"]
    max_rows = max(1, SPAN_BYTES // (header.layers[layer] * np.dtype(header.dtype).itemsize))
    a = 0
    while a < n:
        interrupts.check_interrupt()
        # Extend the block while it stays under SPAN_BYTES (always at least one clip).
        b = int(np.searchsorted(out_off, out_off[a] + max_rows, side="right")) - 1
        b = min(n, max(a + 1, b))
        base = int(out_off[a])
        buf = np.empty((int(out_off[b]) - base, header.layers[layer]), header.dtype)
        si, ri = seg_idx[a:b], rows[a:b]
        for u in np.unique(si).tolist():
            idx = np.nonzero(si == u)[0]
            off = segments[u].offsets[layer]
            r = ri[idx]
            d = np.empty(len(r), np.uint64)
            pieces = read_ranges(segments[u].dset("frames", layer, "data"), off[r], off[r + 1], digests=d)
            table_col[a + idx] = d
            _check(segments[u], r, d, ("frames", layer), damaged, u)
            for k, p in zip(idx.tolist(), pieces, strict=True):
                buf[int(out_off[a + k]) - base:int(out_off[a + k + 1]) - base] = p
        if len(buf):
            out[base:base + len(buf)] = buf
        a = b


def now_ns() -> int:
    return time.time_ns()

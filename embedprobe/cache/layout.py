"""Where the files of one cache live: the main file, part names, temp files, the journal."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from .schema import (
    HEADER_JSON,
    JOURNAL,
    LOCK_SUFFIX,
    MAIN_TMP_INFIX,
    PART_PREFIX,
    PARTS_SUFFIX,
    TMP_PREFIX,
)

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


def now_ns() -> int:
    return time.time_ns()

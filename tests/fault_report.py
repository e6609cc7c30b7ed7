"""What a fault test saw, for its failure messages: the cache's files and state, output tails."""

from __future__ import annotations

import warnings
from pathlib import Path


def tail(text: str | bytes | None, n: int = 12) -> str:
    """The last ``n`` lines of a process's output."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = (text or "").rstrip().splitlines()
    return "\n    ".join(["(no output)"] if not lines else lines[-n:])


def cache_state(path: str | Path) -> str:
    """Files beside and inside the cache, and what ``open_cache`` makes of it (or its error)."""
    from embedprobe.cache import open_cache

    path = Path(path)
    parts = path.with_name(path.name + ".parts")
    files = []
    for p in sorted(path.parent.glob(path.name + "*")):
        try:
            files.append(f"{p.name} ({p.stat().st_size} B)" if p.is_file() else f"{p.name}/")
        except OSError:
            files.append(f"{p.name} (vanished)")
    try:
        inside = sorted(p.name for p in parts.iterdir()) if parts.is_dir() else []
    except OSError:
        inside = ["(vanished)"]
    try:
        with warnings.catch_warnings(record=True), open_cache(path) as r:
            opened = (f"opens: {r.n_clips} clips, {len(r.errors)} errors, complete={r.complete}, "
                      f"{r.info()['n_parts']} parts")
    except Exception as e:  # noqa: BLE001 - reported, not handled
        opened = f"does not open: {type(e).__name__}: {e}"
    return f"cache {path}: {opened}; files {files}; parts dir {inside}"

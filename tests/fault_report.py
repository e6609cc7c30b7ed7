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


def communicate(p, timeout: float, what: str) -> tuple:
    """``p.communicate(timeout=timeout)``, failing the test with what a hung process was doing:
    one still running after ``timeout`` s gets SIGABRT, which makes Python's faulthandler (on in
    every child: tests/conftest.py sets PYTHONFAULTHANDLER) print every thread's stack."""
    import signal
    import subprocess

    import pytest

    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGABRT)
        try:
            _, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        pytest.fail(f"{what}: still running after {timeout:g} s; SIGABRT, its threads' stacks:\n    {tail(err, 60)}")

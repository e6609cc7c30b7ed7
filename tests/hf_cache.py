"""Fake Hugging Face cache snapshots, laid out as ``huggingface_hub`` downloads them."""

from __future__ import annotations

import hashlib
from pathlib import Path


def fake_snapshot(repo: str, files: dict[str, bytes] | None = None, commit: str | None = None) -> Path:
    """``HF_HUB_CACHE/models--owner--name/snapshots/COMMIT`` with ``refs/main`` pointing at it and
    ``files`` in it; returns the snapshot folder. ``commit``: default, a hash of ``repo``."""
    from huggingface_hub import constants

    commit = commit or hashlib.sha1(repo.encode()).hexdigest()
    root = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    for name, data in (files or {}).items():
        (snap / name).write_bytes(data)
    return snap

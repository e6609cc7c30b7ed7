"""Augmented copies in caches: copy ids, the expanded manifest, and the per-copy parameter log.

An augmented cache holds ``K`` copies of every clip, keyed by (augmentation spec, seed, copy):
the spec's fingerprint and the seed are part of the cache identity, and copy ``k`` of clip
``c`` is stored under the id ``"c@k"``. The parameters drawn for each copy are appended to a
JSON-lines log beside the cache (``<cache>.augment.jsonl``); they can also be re-drawn exactly
from (spec, seed, clip id, copy).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from embedprobe.corpora.base import Manifest

SEP = "@"


def augmented_tag(augment: str, seed: int) -> str:
    """The cache-name suffix of augmented copies: ``aug-<name>-s<seed>``."""
    return f"aug-{augment}-s{seed}"


def copy_id(clip_id: str, copy: int) -> str:
    return f"{clip_id}{SEP}{copy}"


def split_copy_id(cid: str) -> tuple[str, int]:
    clip_id, _, k = cid.rpartition(SEP)
    return clip_id, int(k)


def expand_manifest(manifest: Manifest, copies: int) -> Manifest:
    """A manifest with ``copies`` entries per clip (same path, speaker, labels and split parts)."""
    clips, splits = [], {k: [] for k in manifest.splits}
    for i, c in enumerate(manifest.clips):
        for k in range(copies):
            clips.append(replace(c, id=copy_id(c.id, k)))
            for key in splits:
                splits[key].append(manifest.splits[key][i])
    options = dict(manifest.options, augmented_copies=copies)
    return replace(manifest, clips=clips, splits=splits, options=options)


def log_path(cache: str | Path) -> Path:
    return Path(str(cache) + ".augment.jsonl")


def append_records(cache: str | Path, records: list[dict[str, Any]]) -> None:
    """Append the parameter records of one batch (a torn last line after a crash is skipped on read)."""
    if not records:
        return
    with open(log_path(cache), "a") as f:
        f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        f.flush()


def read_records(cache: str | Path) -> dict[str, dict[str, Any]]:
    """``{copy id: record}`` from the log beside ``cache`` (the last record of an id wins)."""
    out: dict[str, dict[str, Any]] = {}
    path = log_path(cache)
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        out[copy_id(r["clip_id"], r["copy"])] = r
    return out

"""Is an existing cache the one this run would make? Field-by-field comparison and its messages."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from embedprobe.corpora.base import Manifest
from embedprobe.errors import CacheMismatchError
from embedprobe.provenance import to_jsonable

from .schema import Header

_ABSENT = "<absent>"
FIX = "Fix: pass --overwrite (overwrite=True) to replace the cache, or write to another file with --out."


class CacheProvenanceWarning(UserWarning):
    """A cache is being extended by a run with other package or code versions (recorded, allowed)."""


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are leaves."""
    obj = to_jsonable(obj)
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def diff(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Every dotted path whose value differs, as ``(path, old, new)``; absent values are marked.

    A field absent on one side and ``None`` on the other is not a difference: a field added to
    the identity later, whose default is ``None``, keeps older caches usable.
    """
    a, b = flatten(old, prefix), flatten(new, prefix)
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k, _ABSENT), b.get(k, _ABSENT)
        added_none = (x is None and isinstance(y, str) and y == _ABSENT) or (
            y is None and isinstance(x, str) and x == _ABSENT)
        if x != y and not added_none:
            out.append((k, x, y))
    return out


def manifest_diff(old_json: str, new_json: str) -> list[tuple[str, Any, Any]]:
    """Differences between two stored manifests (the corpus root is not compared: data may move)."""
    if old_json == new_json:
        return []
    old, new = Manifest.from_json(old_json), Manifest.from_json(new_json)
    h_old, h_new = old.header(), new.header()
    h_old.pop("root", None)
    h_new.pop("root", None)
    out = diff(h_old, h_new, "manifest")
    if old.clips != new.clips:
        a, b = {c.id: c for c in old.clips}, {c.id: c for c in new.clips}
        gone = [i for i in a if i not in b]
        added = [i for i in b if i not in a]
        changed = [i for i in a if i in b and a[i] != b[i]]
        out.append(("manifest.clips",
                    f"{len(a)} clips" + (f", {len(gone)} not in this run e.g. {gone[:3]}" if gone else ""),
                    f"{len(b)} clips" + (f", {len(added)} new e.g. {added[:3]}" if added else "")
                    + (f", {len(changed)} with other path/speaker/label e.g. {changed[:3]}" if changed else "")))
    elif old.ids != new.ids:
        out.append(("manifest.clips", "same clips in another order", "(order differs)"))
    for fold in sorted(set(old.splits) | set(new.splits)):
        s_old, s_new = old.splits.get(fold), new.splits.get(fold)
        if s_old != s_new:
            if s_old is None or s_new is None or old.ids != new.ids:
                out.append((f"manifest.splits.{fold}", "present" if s_old else _ABSENT,
                            "present" if s_new else _ABSENT))
            else:
                n = sum(x != y for x, y in zip(s_old, s_new, strict=True))
                out.append((f"manifest.splits.{fold}", f"{n} clips in another part", "(differs)"))
    return out


def chunking_added_later(diffs: list[tuple[str, Any, Any]], stored: Header, longest_s: float | None) -> bool:
    """Whether the only differences are the ``chunking`` identity field, absent from a cache made
    before it was recorded, and no stored clip was long enough to be chunked.

    Sound because a clip no longer than one chunk (``audio.max_chunk_s``) was embedded whole
    under the chunking rule before the field existed and under every rule since: the stored
    vectors are what this run would make. A cache holding a longer clip is refused as before.
    """
    if not diffs or any(not k.startswith("identity.chunking") or a != _ABSENT for k, a, _ in diffs):
        return False
    chunk = (stored.identity.get("audio") or {}).get("max_chunk_s") if isinstance(stored.identity, dict) else None
    return isinstance(chunk, (int, float)) and longest_s is not None and longest_s <= chunk


def check_compatible(path: Path, stored: Header, new: Header, longest_s: float | None = None) -> None:
    """Raise ``CacheMismatchError`` naming every differing identity field; warn on other changes.

    ``longest_s``: the longest stored clip's duration (see ``chunking_added_later``).
    """
    diffs = diff(stored.comparable(), new.comparable())
    if chunking_added_later(diffs, stored, longest_s):
        diffs = []
    diffs += manifest_diff(stored.manifest_json, new.manifest_json)
    if diffs:
        lines = [f"  {k}: cache has {_show(a)}, this run has {_show(b)}" for k, a, b in diffs]
        err = CacheMismatchError(
            f"The cache {path} was made with another configuration than this run:\n"
            + "\n".join(lines) + f"\n{FIX}")
        err.diffs = diffs  # type: ignore[attr-defined]
        raise err
    # Run settings (batch size, workers, shard ...) may differ freely; versions are worth a warning.
    keys = ("versions", "packages", "code_version")
    other = diff({k: stored.provenance.get(k) for k in keys}, {k: new.provenance.get(k) for k in keys},
                 "provenance")
    if other:
        shown = "; ".join(f"{k}: {_show(a)} -> {_show(b)}" for k, a, b in other[:6])
        more = f" (and {len(other) - 6} more)" if len(other) > 6 else ""
        warnings.warn(
            f"Extending the cache {path} with other versions than it was started with: {shown}{more}. "
            "Both are recorded in the cache's sessions; pass --overwrite to start over instead.",
            CacheProvenanceWarning, stacklevel=3)


def _show(v: Any) -> str:
    s = repr(v) if v != _ABSENT else _ABSENT
    return s if len(s) <= 120 else s[:117] + "..."

"""The CSV store of an acoustic profile and its JSON sidecar (see :mod:`embedprobe.pipeline.acoustics`).

One CSV per (corpus, augmentation, seed), one row per (clip, copy): ``id, copy, speaker,
label, native_label, duration_s``, one column per measure, ``error`` and ``aug_params``.
Rows are appended in batches with one ``write`` + ``fsync``; a torn last line left by a
crash is never read as a row and is cut off by :func:`open_profile` before appending. The
sidecar (``<profile>.json``, written atomically) holds the identity the profile was made
with, every run, versions and the augmentation spec.

Example:
    >>> path = profile_path(".", "emodb")                # what `embedprobe acoustics` does, by hand
    >>> meta = open_profile(path, {"corpus": "emodb"}, ("snr",), overwrite=False)
    >>> with open(path, "a") as f:
    ...     append_rows(f, [{"id": "03a01Fa", "copy": 0, "snr": 20.0},
    ...                     {"id": "03a01Nc", "copy": 0, "snr": 30.0}], ("snr",))
    >>> read_meta(path)["identity"]["corpus"]
    'emodb'
    >>> float(np.nanmedian(load_profile(path)["snr"]))
    25.0
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.errors import CacheError, CacheMismatchError
from embedprobe.provenance import artifact_header, atomic_write_json

PROFILE_FORMAT = 1
META_COLUMNS = ("id", "copy", "speaker", "label", "native_label", "duration_s")
TAIL_COLUMNS = ("error", "aug_params")
STRING_COLUMNS = ("id", "speaker", "label", "native_label", "error", "aug_params")


def profile_path(out_dir: str | Path, corpus: str, augment: str | None = None, seed: int = 0) -> Path:
    """Where the profile of ``corpus`` (augmented with ``augment`` and ``seed``) is cached."""
    name = f"acoustics__{corpus}" + (f"__aug-{augment}-s{int(seed)}" if augment else "")
    return Path(out_dir) / f"{name}.csv"


def sidecar_path(path: str | Path) -> Path:
    """The provenance sidecar next to a profile CSV (``.csv`` -> ``.json``)."""
    return Path(path).with_suffix(".json")


def columns(measures: Iterable[str]) -> list[str]:
    """The CSV header of a profile with ``measures``."""
    return [*META_COLUMNS, *measures, *TAIL_COLUMNS]


def open_profile(path: Path, identity: dict[str, Any], measures: tuple[str, ...], overwrite: bool) -> dict:
    """Create, or check and repair, the profile; returns its sidecar record."""
    side = sidecar_path(path)
    if overwrite or not path.exists():
        path.write_text(",".join(columns(measures)) + "\n")
        meta: dict[str, Any] = {**artifact_header("embedprobe.acoustics", PROFILE_FORMAT), "runs": []}
        atomic_write_json(side, meta | {"identity": identity})
        return meta
    meta = json.loads(side.read_text()) if side.exists() else {"format": PROFILE_FORMAT,
                                                               "kind": "embedprobe.acoustics"}
    old = meta.get("identity")
    if old is not None and old != identity:
        diff = "; ".join(f"{k}: {old.get(k)!r} there, {identity.get(k)!r} here"
                         for k in sorted(set(old) | set(identity)) if old.get(k) != identity.get(k))
        raise CacheMismatchError(f"The profile {path} was made with other settings ({diff}). "
                                 "Fix: use another --out, or --overwrite to start over.")
    with open(path, "rb+") as f:  # cut a torn last line left by a crash mid-append
        data = f.read()
        header = data.split(b"\n", 1)[0].decode()
        if header != ",".join(columns(measures)):
            raise CacheMismatchError(f"The profile {path} has columns {header!r}, expected "
                                     f"{','.join(columns(measures))!r}. Fix: use another --out or --overwrite.")
        if not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
    return meta


def _fmt(v: Any) -> Any:
    return repr(float(v)) if isinstance(v, (float, np.floating)) else v


def append_rows(f, rows: list[dict[str, Any]], measures: tuple[str, ...]) -> None:
    """Append ``rows`` to the open profile ``f`` in one write, then fsync (missing values: nan)."""
    if not rows:
        return
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for r in rows:
        w.writerow([_fmt(r.get(c, float("nan"))) for c in columns(measures)])
    f.write(buf.getvalue())  # one write per batch, then to disk
    f.flush()
    os.fsync(f.fileno())


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of a profile CSV, without a torn last line."""
    text = Path(path).read_text()
    if not text.endswith("\n"):  # a torn last line is not a row
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise CacheError(f"{path} is empty. Fix: delete it and re-run `embedprobe acoustics`.")
    return rows[0], rows[1:]


def done_pairs(path: Path) -> set[tuple[str, int]]:
    """The (clip id, copy) pairs a profile already holds."""
    head, body = read_rows(path)
    i, k = head.index("id"), head.index("copy")
    return {(r[i], int(r[k])) for r in body}


def load_profile(path: str | Path) -> dict[str, np.ndarray]:
    """A profile CSV as columns: ``id, speaker, label, native_label, error, aug_params`` as
    strings, ``copy`` as int, ``duration_s`` and every measure as float64 (``nan`` = none).

    The module's example writes a small profile and reads it back.
    """
    path = Path(path)
    if not path.is_file():
        raise CacheError(f"No acoustic profile at {path}. Fix: run `embedprobe acoustics --corpus C "
                         f"--root PATH --out {path.parent}` first.")
    head, body = read_rows(path)
    cols = list(zip(*body, strict=True)) if body else [() for _ in head]
    out: dict[str, np.ndarray] = {}
    for name, col in zip(head, cols, strict=True):
        if name == "copy":
            out[name] = np.array(col, dtype=np.int64)
        elif name in STRING_COLUMNS:
            out[name] = np.array(col, dtype=str)
        else:
            out[name] = np.array([float(v) if v else np.nan for v in col], dtype=np.float64)
    return out


def read_meta(path: str | Path) -> dict[str, Any]:
    """The provenance sidecar of a profile (identity, runs, versions, augmentation spec)."""
    side = sidecar_path(path)
    if not side.is_file():
        raise CacheError(f"{path} has no sidecar {side.name}. Fix: re-run `embedprobe acoustics` "
                         "with --overwrite.")
    return json.loads(side.read_text())

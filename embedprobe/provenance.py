"""What made an artifact, and writing it: versions, fingerprints, JSON-safe values, atomic files.

One place each for what every artifact writer needs:

- :func:`to_jsonable` (plain JSON values, the input of :func:`fingerprint`, so it never changes
  a number) and :func:`json_safe` (the same, plus NaN/inf -> ``null`` and arrays -> lists, for
  what is written to disk);
- :func:`atomic_path`, :func:`atomic_write_text` and :func:`atomic_write_json` (temporary file in
  the same folder, fsync, ``os.replace``: a reader sees the old file or the new one, never half);
- :func:`made_by` and :func:`artifact_header` (kind, format version, config, package versions,
  code version, creation time and seconds) that start every result record.

Example:
    >>> json_safe({"auroc": float("nan"), "n": 3, "path": Path("a/b")})
    {'auroc': None, 'n': 3, 'path': 'a/b'}
    >>> sorted(artifact_header("embedprobe.demo", 1, config={"k": 1}))
    ['code_version', 'config', 'created_unix', 'format', 'kind', 'versions']
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from embedprobe import __version__

TRACKED_PACKAGES = (
    "numpy", "scipy", "h5py", "soundfile", "soxr", "torch", "scikit-learn",
    "opensmile", "resemblyzer", "transformers", "cdpam", "speechmos", "pedalboard",
)


def to_jsonable(obj: Any) -> Any:
    """Turn dataclasses, paths, tuples and numpy scalars into plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    return obj


def fingerprint(obj: Any, n: int = 16) -> str:
    """A stable short hash of any JSON-able config."""
    blob = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the embedprobe source tree if it is a checkout, else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return f"git:{sha}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"embedprobe=={__version__}"


def package_versions() -> dict[str, str]:
    """Versions of the packages whose behaviour can change a number we report."""
    out = {"python": sys.version.split()[0], "embedprobe": __version__, "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def json_safe(obj: Any) -> Any:
    """:func:`to_jsonable`, plus NaN/inf -> ``None`` and numpy arrays -> (nested) lists.

    What every JSON artifact is written through (JSON has no NaN; ``allow_nan=False`` then
    holds). Keys become strings; values of unknown types are left for ``default=str``.

    Example:
        >>> import numpy as np
        >>> json_safe({1: np.float32(0.5), "x": np.array([1.0, np.inf]), "t": (np.int64(2),)})
        {'1': 0.5, 'x': [1.0, None], 't': [2]}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int)) or obj is None:  # bool is an int
        return obj
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: json_safe(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Path):
        return str(obj)
    if getattr(obj, "ndim", 0) and callable(getattr(obj, "tolist", None)):  # an array
        return json_safe(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):  # a numpy scalar or 0-d array
        return json_safe(obj.item())
    return obj


def json_text(obj: Any, indent: int | None = 1) -> str:
    """``obj`` as strict JSON text (via :func:`json_safe`; unknown types as ``str``).

    Example:
        >>> json_text({"a": float("inf")}, indent=None)
        '{"a": null}'
    """
    return json.dumps(json_safe(obj), indent=indent, default=str, allow_nan=False)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # no directory handles here (Windows): the rename is as durable as it gets
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """A temporary name next to ``path``; on a clean exit it becomes ``path`` in one step.

    Write the file under the yielded name (any writer: text, ``torch.save``, safetensors); when
    the block ends it is fsynced and ``os.replace``d over ``path`` (then the folder is fsynced).
    On an error the temporary file is removed and ``path`` is untouched. The folder is created.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "weights.bin"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_bytes(b"1234")
        >>> target.read_bytes(), sorted(p.name for p in target.parent.iterdir())
        (b'1234', ['weights.bin'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if fsync:
            _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``.

    Example:
        >>> import tempfile
        >>> p = atomic_write_text(Path(tempfile.mkdtemp()) / "sub" / "a.txt", "hi")
        >>> p.read_text()
        'hi'
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return path


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 1) -> Path:
    """Write ``obj`` as strict JSON (:func:`json_text`) to ``path`` atomically; returns ``path``.

    Example:
        >>> import tempfile
        >>> p = atomic_write_json(Path(tempfile.mkdtemp()) / "r.json", {"wf1": float("nan")})
        >>> json.loads(p.read_text())
        {'wf1': None}
    """
    return atomic_write_text(path, json_text(obj, indent=indent))


def made_by() -> dict[str, Any]:
    """``{"versions": ..., "code_version": ...}``: what made an artifact (see :func:`artifact_header`)."""
    return {"versions": package_versions(), "code_version": code_version()}


_NO_CONFIG = object()


def artifact_header(kind: str, format: int, config: Any = _NO_CONFIG, *,
                    started: float | None = None, seconds: float | None = None) -> dict[str, Any]:
    """The fields every result artifact starts with, in one order.

    ``format``, ``kind``, ``config`` (JSON-able; left out when not given), ``versions``,
    ``code_version``, ``created_unix`` and ``seconds`` (rounded to ms; from ``seconds``, or the
    time since ``started`` (a ``time.perf_counter()`` value); left out when neither is given).
    A writer adds its own fields after these: ``{**artifact_header(...), "cells": ...}``.

    Example:
        >>> h = artifact_header("embedprobe.probe", 3, {"probe": "mlp"}, seconds=1.23456)
        >>> [h["kind"], h["format"], h["config"], h["seconds"]]
        ['embedprobe.probe', 3, {'probe': 'mlp'}, 1.235]
        >>> list(artifact_header("embedprobe.acoustics", 1))
        ['format', 'kind', 'versions', 'code_version', 'created_unix']
    """
    head: dict[str, Any] = {"format": format, "kind": kind}
    if config is not _NO_CONFIG:
        head["config"] = to_jsonable(config)
    head |= made_by()
    head["created_unix"] = time.time()
    if seconds is None and started is not None:
        seconds = time.perf_counter() - started
    if seconds is not None:
        head["seconds"] = round(float(seconds), 3)
    return head

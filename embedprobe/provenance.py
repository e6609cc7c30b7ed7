"""What made an artifact: package versions, code version, and stable fingerprints of configs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import subprocess
import sys
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

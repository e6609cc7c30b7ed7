"""Where model weights come from: one resolution order for every family, and safe checkpoint loading.

Resolution order for a checkpoint file (``resolve_file``):

1. an explicit path (``--weights PATH`` / ``Extractor(weights=...)``): a file is used as is, a
   directory is searched for the official file name;
2. ``$EMBEDPROBE_WEIGHTS``: one or more folders (``os.pathsep``-separated) searched for it;
3. the default folder ``weights_home()``: ``$EMBEDPROBE_HOME/weights``, else
   ``$XDG_CACHE_HOME/embedprobe/weights``, else ``~/.cache/embedprobe/weights``;
4. family-specific legacy folders (e.g. torch hub's checkpoint folder, ``~/panns_data``);
5. for files published on the Hugging Face hub, the local hub cache, then (when online) a download.

Hugging Face models (``resolve_hf``) resolve to an explicit local directory, else the cached
snapshot of the pinned revision, else (online only) the repo id for ``from_pretrained`` to
download. "Online" is decided fast (``hub_offline``): ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``
first, else one TCP connect to the hub endpoint with a short timeout, so an offline machine
never sits through the hub client's 30-50 s of retries.

Missing weights raise ``MissingWeightsError`` with one sentence naming the file and where to put it.

Example:
    >>> path = resolve_file("Cnn14_16k_mAP=0.438.pth", what="CNN14",
    ...                     source="https://zenodo.org/record/3987831")  # doctest: +SKIP
    >>> state = load_torch_checkpoint(path)["model"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from embedprobe.errors import BadValueError, MissingWeightsError

ENV_WEIGHTS = "EMBEDPROBE_WEIGHTS"
ENV_HOME = "EMBEDPROBE_HOME"
_TRUE = {"1", "on", "yes", "true"}
# Files inside a Hugging Face model folder that hold the weights (one of them must exist).
HF_WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


# -- folders -------------------------------------------------------------------------------------
def weights_home() -> Path:
    """The default weights folder: ``$EMBEDPROBE_HOME/weights``, else the XDG cache's ``embedprobe/weights``."""
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser() / "weights"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "embedprobe" / "weights"


def torch_hub_checkpoints() -> Path:
    """torch hub's checkpoint folder (where ``torch.hub.load_state_dict_from_url`` puts files)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def search_dirs(extra_dirs: Sequence[str | Path] = ()) -> list[Path]:
    """The folders searched after an explicit path, in order (``$EMBEDPROBE_WEIGHTS``, home, extras)."""
    dirs = [Path(p).expanduser() for p in os.environ.get(ENV_WEIGHTS, "").split(os.pathsep) if p]
    dirs.append(weights_home())
    dirs.extend(Path(p).expanduser() for p in extra_dirs)
    return dirs


def _names(filenames: str | Sequence[str]) -> tuple[str, ...]:
    return (filenames,) if isinstance(filenames, str) else tuple(filenames)


def find_file(
    filenames: str | Sequence[str], *, explicit: str | Path | None = None,
    extra_dirs: Sequence[str | Path] = (),
) -> Path | None:
    """The first existing checkpoint among the official ``filenames`` in the search order, or ``None``.

    An explicit *file* is returned as is (any name), an explicit *directory* is searched first.
    No network access.
    """
    names = _names(filenames)
    dirs = search_dirs(extra_dirs)
    if explicit is not None:
        explicit = Path(explicit).expanduser()
        if explicit.is_file():
            return explicit
        if not explicit.is_dir():
            return None
        dirs = [explicit]  # a directory the user named is the only place to look
    for d in dirs:
        for name in names:
            if (d / name).is_file():
                return d / name
    return None


def resolve_file(
    filenames: str | Sequence[str], *, what: str, source: str,
    explicit: str | Path | None = None, extra_dirs: Sequence[str | Path] = (),
    hf_file: tuple[str, str, str | None] | None = None,
) -> Path:
    """Find an official checkpoint file or raise ``MissingWeightsError`` (one sentence, no waiting).

    Args:
        filenames: official file name(s); the first is the one the error message names.
        what: the model's human name for the message, e.g. ``"CNN14"``.
        source: where to download it (URL), named in the message.
        explicit: the user's ``--weights`` file or folder; when given, nothing else is searched.
        extra_dirs: family-specific legacy folders searched after the default folder.
        hf_file: ``(repo_id, filename, revision)`` when the file is also published on the
            Hugging Face hub: its cache is searched, and it is downloaded when online.

    Returns:
        path of the checkpoint file.
    """
    names = _names(filenames)
    found = find_file(names, explicit=explicit, extra_dirs=extra_dirs)
    if found is not None:
        return found
    if explicit is not None:
        where = Path(explicit).expanduser()
        kind = "folder" if where.is_dir() else "path"
        raise MissingWeightsError(
            f"{what} weights {names[0]!r} not found at the {kind} '{where}' given as --weights: "
            f"download it from {source} and pass the file or its folder.")
    if hf_file is not None:
        cached = _hf_file(*hf_file)
        if cached is not None:
            return cached
    raise MissingWeightsError(
        f"{what} weights {names[0]!r} not found: download it from {source} and put it in "
        f"{_pretty(weights_home())}/ (or pass --weights PATH).")


def _pretty(path: Path) -> str:
    home = str(Path.home())
    s = str(path)
    return "~" + s[len(home):] if s.startswith(home + os.sep) else s


# -- Hugging Face --------------------------------------------------------------------------------
def _env_offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in _TRUE
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@lru_cache(maxsize=4)
def _reachable(host: str, port: int, timeout: float) -> bool:
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    # getaddrinfo ignores socket timeouts, so the whole probe runs in a thread we stop waiting for.
    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(result and result[0])


def hub_offline(timeout: float = 1.5) -> bool:
    """``True`` if the Hugging Face hub cannot be reached; decided in at most ~``timeout`` s.

    ``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1`` answer at once; otherwise one TCP connect
    to the hub endpoint (``HF_ENDPOINT``, or the ``HTTPS_PROXY`` host when set) is tried and its
    answer is remembered for the rest of the process.
    """
    if _env_offline():
        return True
    url = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") \
        or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    parsed = urlparse(url if "://" in url else f"http://{url}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return not _reachable(parsed.hostname or "huggingface.co", port, timeout)


def _hf_file(repo_id: str, filename: str, revision: str | None) -> Path | None:
    """A hub file from the local cache, or downloaded when online; ``None`` if neither works."""
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(repo_id, filename, revision=revision)
    if isinstance(hit, str) and os.path.isfile(hit):
        return Path(hit)
    if hub_offline():
        return None
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision))
    except Exception as err:  # network or auth trouble: report as missing, keep the cause
        warnings.warn(f"Downloading {repo_id}/{filename} failed: {err}", stacklevel=3)
        return None


@dataclass(frozen=True)
class HFSource:
    """What to pass to ``from_pretrained``: ``Model.from_pretrained(src.path_or_id, **src.kwargs())``.

    Attributes:
        path_or_id: a local model folder, or the hub id to download (online only).
        revision: the pinned revision (``None`` for a local folder the user gave).
        local_files_only: ``True`` unless a download is needed and possible.
        local: ``True`` if ``path_or_id`` is a folder on this machine.
        commit: the hub commit of a cached snapshot (its folder name), else ``None``; record
            it as the weights revision.
    """

    path_or_id: str
    revision: str | None
    local_files_only: bool
    local: bool
    commit: str | None = None

    def kwargs(self) -> dict[str, Any]:
        if self.local:
            return {"local_files_only": True}
        return {"revision": self.revision, "local_files_only": self.local_files_only}


def _has_hf_weights(folder: Path, required: Sequence[str]) -> bool:
    return all((folder / r).is_file() for r in required) and any(
        (folder / w).is_file() for w in HF_WEIGHT_FILES)


def hf_cached_snapshot(
    repo_id: str, revision: str | None = None, required: Sequence[str] = ("config.json",),
) -> Path | None:
    """The cached snapshot folder of ``repo_id`` at ``revision`` if it holds a complete model."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, or a revision the cache has never seen
        return None
    return folder if _has_hf_weights(folder, required) else None


def resolve_hf(
    repo_id: str, *, revision: str | None = None, what: str | None = None,
    explicit: str | Path | None = None, required: Sequence[str] = ("config.json",),
) -> HFSource:
    """Decide where a Hugging Face model loads from, without touching the network when offline.

    Args:
        repo_id: hub id, e.g. ``"microsoft/wavlm-large"``.
        revision: pinned commit or tag.
        what: the model's human name for messages (default ``repo_id``).
        explicit: a local model folder (``--weights``); used as is.
        required: files that must be in a cached snapshot for it to count.

    Raises:
        MissingWeightsError: offline and the model is not cached, or ``explicit`` is unusable.
    """
    what = what or repo_id
    if explicit is not None:
        folder = Path(explicit).expanduser()
        if not folder.is_dir():
            raise MissingWeightsError(
                f"{what} weights not found: --weights '{folder}' must be a model folder holding "
                f"config.json and {HF_WEIGHT_FILES[0]} (e.g. a save_pretrained() output).")
        if not _has_hf_weights(folder, required):
            raise MissingWeightsError(
                f"{what} weights not found in '{folder}': it needs {', '.join(required)} and one of "
                f"{', '.join(HF_WEIGHT_FILES)} (download {repo_id} with `hf download {repo_id}`).")
        return HFSource(str(folder), None, True, True)
    cached = hf_cached_snapshot(repo_id, revision, required)
    if cached is not None:
        return HFSource(str(cached), revision, True, True, commit=cached.name)
    if hub_offline():
        rev = f" --revision {revision}" if revision else ""
        raise MissingWeightsError(
            f"{what} weights '{repo_id}' are not in the Hugging Face cache and the hub is offline: "
            f"run `hf download {repo_id}{rev}` on a machine with internet and copy the cache "
            f"(HF_HOME), or pass --weights with a local model folder.")
    return HFSource(repo_id, revision, False, False)


def hf_weights_present(repo_id: str, revision: str | None = None, explicit: str | Path | None = None,
                       required: Sequence[str] = ("config.json",)) -> bool:
    """Whether ``resolve_hf`` would find the model on this machine (no network)."""
    if explicit is not None:
        folder = Path(explicit).expanduser()
        return folder.is_dir() and _has_hf_weights(folder, required)
    return hf_cached_snapshot(repo_id, revision, required) is not None


# -- revisions and loading -----------------------------------------------------------------------
@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def sha256_prefix(path: str | Path, n: int = 12) -> str:
    """``"sha256:<first n hex digits>"`` of a file, or of a folder's weight files (sorted by name).

    Hashes are remembered per (path, size, mtime), so asking twice is free.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and (
            p.name in HF_WEIGHT_FILES or p.suffix in {".safetensors", ".bin", ".pth", ".pt"}))
        if not files:
            raise MissingWeightsError(f"No weight files to hash in folder '{path}'.")
        h = hashlib.sha256()
        for p in files:
            st = p.stat()
            h.update(f"{p.name}:{_sha256(str(p), st.st_size, st.st_mtime_ns)}\n".encode())
        return f"sha256:{h.hexdigest()[:n]}"
    st = path.stat()
    return f"sha256:{_sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)[:n]}"


# Globals that old checkpoints pickle next to their tensors (numpy scalars and arrays in training
# statistics, random states): plain data, safe to allow under torch's weights_only unpickler.
_NUMPY_SAFE = (
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.ndarray", "numpy.dtype",
)


def _numpy_safe_globals() -> list[Any]:
    """``(object, pickled name)`` pairs for ``torch.serialization.safe_globals``: numpy data only."""
    import importlib

    import numpy as np

    out: list[Any] = []
    for name in _NUMPY_SAFE:
        module, _, attr = name.rpartition(".")
        with warnings.catch_warnings():  # numpy 2 warns on the numpy.core alias old pickles name
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                out.append((getattr(importlib.import_module(module), attr), name))
            except (ImportError, AttributeError):  # numpy 1 has no numpy._core
                continue
    # dtype classes are reached through numpy.dtype's reduce and are not named in the pickle.
    out.extend(getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType"))
    return out


def load_torch_checkpoint(path: str | Path, *, trusted: bool = False, mmap: bool = False) -> Any:
    """Load a ``.pth`` file safely: tensors and plain data only, unless the user vouches for it.

    1. ``torch.load(weights_only=True)``: the safe unpickler (tensors, dicts, lists, numbers).
    2. If that fails, once more with numpy's scalar/array/dtype globals allowlisted: PANNs
       checkpoints pickle training statistics as numpy values (``numpy.core.multiarray.
       _reconstruct``, ``numpy.dtype`` ...). Nothing that can run code is allowed.
    3. Anything else is refused, unless ``trusted=True`` (a file the user named explicitly
       with ``--weights``), which falls back to ``weights_only=False`` with a warning.

    ``mmap=True`` maps the file instead of reading it (zip-format files only), so tensors that
    are never used (a text encoder next to the audio encoder) are never read from disk.

    Raises:
        BadValueError: the file is not a readable checkpoint, or it needs an unpickler that
            could run code and is not trusted.
    """
    import pickle

    import torch

    path = Path(path)
    is_zip = _is_zip(path)
    kw: dict[str, Any] = {"map_location": "cpu", "mmap": mmap and is_zip}
    try:
        if not is_zip and _first_byte(path) != b"\x80":  # neither zip nor legacy pickle
            raise ValueError("neither a zip archive nor a legacy torch.save pickle")
        try:
            return torch.load(path, weights_only=True, **kw)
        except pickle.UnpicklingError:
            pass
        try:
            with torch.serialization.safe_globals(_numpy_safe_globals()):
                return torch.load(path, weights_only=True, **kw)
        except pickle.UnpicklingError as err:
            unsafe = _unsafe_globals(path) or [_unpickler_complaint(str(err))]
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise BadValueError(
            "checkpoint file", str(path), None,
            fix=f"It is not a readable PyTorch checkpoint ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:120]}); a truncated download? Download it again") from None
    if trusted:
        warnings.warn(f"Loading '{path}' with weights_only=False because it pickles {unsafe}; "
                      "only do this for files you trust.", stacklevel=2)
        return torch.load(path, weights_only=False, **kw)
    raise BadValueError(
        "checkpoint", str(path), None,
        fix=f"It pickles Python objects that could run code ({', '.join(unsafe)}); if you trust "
            "the file, pass it explicitly with --weights PATH to load it anyway")


def _first_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(1)


def _is_zip(path: Path) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)


def _unpickler_complaint(text: str) -> str:
    """The line of torch's long weights_only message that says what was refused."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "Unsupported" in ln or "GLOBAL" in ln:
            return ln[:200]
        if ln.startswith("WeightsUnpickler error") and i + 1 < len(lines):
            return lines[i + 1][:200]
    return lines[-1][:200] if lines else "unknown content"


def _unsafe_globals(path: Path) -> list[str]:
    import torch

    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except (ValueError, RuntimeError):  # legacy (pre-zip) format: not listable
        return []


def extract_state_dict(obj: Any, keys: Sequence[str] = ("model", "state_dict", "state")) -> dict:
    """The tensor dict inside a loaded checkpoint (``obj['model']`` etc., or ``obj`` itself)."""
    for k in keys:
        if isinstance(obj, dict) and isinstance(obj.get(k), dict):
            return obj[k]
    if isinstance(obj, dict):
        return obj
    raise BadValueError("checkpoint content", type(obj).__name__, ["dict"],
                        fix="Expected a state dict or a dict with a 'model' entry")

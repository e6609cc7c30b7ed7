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

In every folder a ``.safetensors`` copy of an official ``.pth`` (same stem, made once with
``embedprobe convert-weights``) is taken before the ``.pth`` itself.

Missing weights raise ``MissingWeightsError`` with one sentence naming the file and where to put it.
Loading never runs code from a pickle (``safeload``: ``load_torch_checkpoint``, ``check_hf_folder``;
``conversion.convert_to_safetensors``; re-exported here); local Hugging Face folders are scanned before
``from_pretrained`` reads a ``pytorch_model.bin``.

Example:
    >>> path = resolve_file("Cnn14_16k_mAP=0.438.pth", what="CNN14",
    ...                     source="https://zenodo.org/record/3987831")  # doctest: +SKIP
    >>> # SKIP: downloads the CNN14 checkpoint (network, ~300 MB)
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

from embedprobe.errors import MissingWeightsError
from embedprobe.extractors.conversion import convert_to_safetensors, source_sha256  # noqa: F401
from embedprobe.extractors.pickle_scan import UnsafePickleError, UntrustedPickleWarning  # noqa: F401
from embedprobe.extractors.safeload import (  # noqa: F401  (safe loading lives there; re-exported)
    check_hf_folder,
    extract_state_dict,
    load_torch_checkpoint,
)

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


def _candidates(name: str) -> tuple[str, ...]:
    """``name``, preceded by its ``.safetensors`` copy for a pickle checkpoint name."""
    p = Path(name)
    if p.suffix in {".pth", ".pt", ".bin", ".ckpt"}:
        return (p.with_suffix(".safetensors").name, name)
    return (name,)


def find_file(
    filenames: str | Sequence[str], *, explicit: str | Path | None = None,
    extra_dirs: Sequence[str | Path] = (),
) -> Path | None:
    """The first existing checkpoint among the official ``filenames`` in the search order, or ``None``.

    An explicit *file* is returned as is (any name), an explicit *directory* is searched first.
    In each folder, ``X.safetensors`` (a converted copy) comes before the official ``X.pth``.
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
            for candidate in _candidates(name):
                if (d / candidate).is_file():
                    return d / candidate
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

    A local folder's pickle weight files are scanned first (``safeload.check_hf_folder``): one
    beyond the safe allow-list is refused, whatever ``--trust-pickle`` says (transformers reads it
    weights-only); ``embedprobe convert-weights FOLDER --trust-pickle`` is the way for data classes.

    Raises:
        MissingWeightsError: offline and the model is not cached, or ``explicit`` is unusable.
        UnsafePickleError: the folder's ``pytorch_model.bin`` names globals beyond the allow-list.
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
        check_hf_folder(folder)
        return HFSource(str(folder), None, True, True)
    cached = hf_cached_snapshot(repo_id, revision, required)
    if cached is not None:
        check_hf_folder(cached)
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


def checkpoint_revision(path: str | Path) -> str:
    """The weights revision of a checkpoint file: ``sha256:<prefix>`` of the file, or of its
    source for a ``.safetensors`` copy made by ``convert_to_safetensors`` (same tensors, so
    caches made from either resume with the other)."""
    sha = source_sha256(path)
    return f"sha256:{sha[:12]}" if sha else sha256_prefix(path)

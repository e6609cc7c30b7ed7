"""One-time conversion of a pickled checkpoint to ``.safetensors``, so it is never unpickled again.

``convert_to_safetensors`` loads the checkpoint under the rules of ``safeload`` (no code runs;
data classes only with ``trust_pickle``) and writes its state dict's tensors; the source's
sha256 goes into the file's metadata (``source_sha256``), so a converted copy keeps its
source's weights revision. ``embedprobe convert-weights`` is the CLI over it.

Example:
    >>> # SKIP: needs the CNN14 checkpoint (downloaded, ~300 MB)
    >>> convert_to_safetensors("Cnn14_16k_mAP=0.438.pth").path.name  # doctest: +SKIP
    'Cnn14_16k_mAP=0.438.safetensors'
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedprobe.errors import BadValueError
from embedprobe.extractors.safeload import hf_pickle_files, is_safetensors, load_torch_checkpoint
from embedprobe.provenance import atomic_path

_META_SOURCE = "embedprobe.source"
_META_SHA = "embedprobe.source_sha256"


@dataclass(frozen=True)
class Converted:
    """What ``convert_to_safetensors`` wrote.

    Attributes:
        path: the ``.safetensors`` file.
        n_tensors: tensors written.
        entry: the checkpoint entry they came from (``"model"``, ``"state"`` ...), ``""`` for the top level.
        dropped: entries that are not tensors (training statistics, optimizer state), left out.
    """

    path: Path
    n_tensors: int
    entry: str = ""
    dropped: tuple[str, ...] = field(default_factory=tuple)


def _flatten(obj: Any, prefix: str, tensors: dict[str, Any], dropped: list[str]) -> None:
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
    elif isinstance(obj, np.ndarray) and obj.dtype.kind in "biuf":
        tensors[prefix] = torch.from_numpy(np.ascontiguousarray(obj))
    elif isinstance(obj, dict) and obj:
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), tensors, dropped)
    else:
        dropped.append(prefix or "<top level>")


def _storable(tensors: dict[str, Any]) -> dict[str, Any]:
    """Contiguous CPU tensors that share no memory (safetensors refuses shared storage)."""
    out: dict[str, Any] = {}
    seen: set[int] = set()
    for k, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        storage = t.untyped_storage()
        if storage.data_ptr() in seen or storage.nbytes() != t.numel() * t.element_size():
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def convert_to_safetensors(src: str | Path, dst: str | Path | None = None, *, trust_pickle: bool = False,
                           overwrite: bool = False) -> Converted:
    """Convert a checkpoint to ``.safetensors`` once, so that it is never unpickled again.

    The file is loaded under the rules of ``load_torch_checkpoint``. Its state dict (the
    ``model`` / ``state_dict`` / ``state`` entry, else the whole dict; nested dicts flattened
    with dots, numpy arrays as tensors) is written; entries that are not tensors are listed
    in ``dropped``. A Hugging Face model folder with ``pytorch_model.bin`` gets
    ``model.safetensors`` beside it (transformers then prefers it). The source's sha256 is
    recorded in the file's metadata, so a converted file keeps its source's weights revision
    (``source_sha256``) and caches made from either resume with the other.

    Args:
        src: a checkpoint file, or a model folder holding ``pytorch_model.bin``.
        dst: the output (default: ``src`` with the suffix ``.safetensors``, beside it, where
            every checkpoint family looks for it before the ``.pth``).
        trust_pickle: as in ``load_torch_checkpoint``.
        overwrite: replace an existing ``dst``.

    Raises:
        UnsafePickleError, BadValueError: the source is refused or unreadable, or ``dst`` exists.
    """
    from safetensors.torch import save_file

    src = Path(src).expanduser()
    if src.is_dir():
        files = hf_pickle_files(src)
        if (src / "pytorch_model.bin.index.json").is_file() or not files:
            raise BadValueError("model folder", str(src), None, fix=(
                "convert-weights converts a folder holding one pytorch_model.bin (sharded pickles are "
                "not supported; a folder with model.safetensors needs no conversion)"))
        source, default = files[0], src / "model.safetensors"
    elif src.is_file():
        source, default = src, src.with_suffix(".safetensors")
    else:
        raise BadValueError("checkpoint", str(src), None, fix="No such file or folder")
    out = Path(dst).expanduser() if dst is not None else default
    if out.resolve() == source.resolve():
        raise BadValueError("output", str(out), None, fix="Write the .safetensors file to another path")
    if out.exists() and not overwrite:
        raise BadValueError("output", str(out), None, fix="It exists already: pass --overwrite to replace it")
    if is_safetensors(source):
        raise BadValueError("checkpoint", str(source), None, fix="It is a safetensors file already")
    obj = load_torch_checkpoint(source, trust_pickle=trust_pickle)
    if callable(getattr(obj, "state_dict", None)):  # a whole pickled nn.Module (--trust-pickle)
        obj = obj.state_dict()
    entry = ""
    if isinstance(obj, dict):
        for k in ("model", "state_dict", "state"):
            if isinstance(obj.get(k), dict):
                entry = k
                break
    state = obj[entry] if entry else obj
    tensors: dict[str, Any] = {}
    dropped: list[str] = [str(k) for k in obj if k != entry] if entry else []
    _flatten(state, "", tensors, dropped)
    if not tensors:
        raise BadValueError("checkpoint", str(source), None, fix="It holds no tensors to convert")
    meta = {"format": "pt", _META_SOURCE: source.name, _META_SHA: _sha256(source),
            "embedprobe.entry": entry, "embedprobe.dropped": json.dumps(dropped)}
    with atomic_path(out) as tmp:
        save_file(_storable(tensors), str(tmp), metadata=meta)
    return Converted(out, len(tensors), entry, tuple(dropped))


def source_sha256(path: str | Path) -> str | None:
    """The sha256 of the checkpoint a ``.safetensors`` file was converted from (its metadata), or ``None``."""
    if not is_safetensors(path):
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # not readable: loading it will say so
        return None
    sha = meta.get(_META_SHA)
    return sha if isinstance(sha, str) and len(sha) == 64 else None

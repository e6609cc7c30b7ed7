"""Loading checkpoint files without running code from them, and converting them to safetensors.

A PyTorch ``.pth`` / ``.bin`` file is a pickle, and unpickling can call any Python function the
file names (``posix.system`` ...). Every route that loads weights goes through this module:

1. ``.safetensors`` files hold tensors only and load as they are (no pickle at all).
2. Pickles load with ``torch.load(weights_only=True)`` plus numpy's scalar / array / dtype
   globals (``SAFE_NUMPY``): tensors, containers and numbers, as the official checkpoints need.
3. If torch's restricted unpickler refuses a file, its pickle opcodes are scanned
   (``pickle_scan.pickle_globals``: every ``GLOBAL`` / ``INST`` / ``STACK_GLOBAL`` of ``data.pkl`` in a zip
   checkpoint, of all five pickles of a legacy one) and the globals beyond the allow-list are
   classified (``pickle_scan.classify``):

   * none (only opcodes the restricted unpickler lacks, as in CDPAM's legacy file): loaded,
     since the file can call nothing but the allow-listed rebuilders;
   * data classes (``argparse.Namespace``, a pickled ``nn.Module``): refused unless the user
     passes ``--trust-pickle`` (``trust_pickle=True``), which loads the file with the full
     unpickler and says so in one line (``UntrustedPickleWarning``); a Hugging Face folder's
     ``pytorch_model.bin`` is read by transformers, which has no such path: the fix named
     there is ``embedprobe convert-weights FOLDER --trust-pickle`` once;
   * anything else (functions, modules that run commands, globals the scan cannot resolve):
     refused whatever the flag, and the message never suggests a way to load it.

Every refusal is one sentence naming the file, the offending globals and the fix
(``UnsafePickleError``). ``embedprobe.extractors.conversion.convert_to_safetensors`` loads a
checkpoint under the same rules once and writes its tensors as ``.safetensors``.

Example:
    >>> # SKIP: needs checkpoint files on disk (tests/extractors/test_safeload.py makes some)
    >>> state = load_torch_checkpoint("Cnn14_16k_mAP=0.438.pth")  # doctest: +SKIP
    >>> sorted(pickle_globals("evil.pth"))  # doctest: +SKIP
    ['collections.OrderedDict', 'posix.system', 'torch._utils._rebuild_tensor_v2']
"""

from __future__ import annotations

import json
import tarfile
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embedprobe.errors import BadValueError
from embedprobe.extractors.pickle_scan import (  # noqa: F401  (UntrustedPickleWarning: part of this API)
    SAFE_NUMPY,
    UnsafePickleError,
    UntrustedPickleWarning,
    classify,
    first_line,
    pickle_globals,
)

# Files of a Hugging Face model folder that are pickles (transformers prefers safetensors ones).
HF_PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
HF_SAFE_FILES = ("model.safetensors", "model.safetensors.index.json")


# -- loading -------------------------------------------------------------------------------------
def _numpy_safe_globals() -> list[Any]:
    """``(object, pickled name)`` pairs for ``torch.serialization.safe_globals``: numpy data only."""
    import importlib

    import numpy as np

    out: list[Any] = []
    for name in SAFE_NUMPY:
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


def is_safetensors(path: str | Path) -> bool:
    """``True`` for a ``.safetensors`` file (by name, or by its JSON header for other names)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return True
    try:
        with path.open("rb") as f:
            head = f.read(9)
        size = path.stat().st_size
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < size


def load_safetensors(path: str | Path) -> dict[str, Any]:
    """A ``.safetensors`` file's tensors (on the CPU); ``BadValueError`` if it is not readable."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # SafetensorError, OSError: a damaged or truncated file
        raise BadValueError("weights file", str(path), None, fix=(
            f"It is not a readable safetensors file ({first_line(str(err))}); convert the checkpoint "
            "again with `embedprobe convert-weights`")) from None


def load_torch_checkpoint(path: str | Path, *, trust_pickle: bool = False, mmap: bool = False) -> Any:
    """Load a checkpoint without running code from it (see the module docstring for the rules).

    Args:
        path: a ``.safetensors`` file, or a ``torch.save`` file (zip or legacy format).
        trust_pickle: load a file that pickles data classes beyond the allow-list with the full
            unpickler (``--trust-pickle``), warning once (``UntrustedPickleWarning``). Files
            that name functions or command-running modules are refused even then.
        mmap: map a zip-format file instead of reading it, so tensors never used are never read.

    Raises:
        UnsafePickleError: the pickle names globals beyond the allow-list (and is not trusted).
        BadValueError: the file is not a readable checkpoint.
    """
    import pickle

    import torch

    path = Path(path)
    if is_safetensors(path):
        return load_safetensors(path)
    kw: dict[str, Any] = {"map_location": "cpu"}
    try:
        is_zip = zipfile.is_zipfile(path)
        kw["mmap"] = mmap and is_zip
        if not is_zip and (_first_byte(path) != b"\x80" or tarfile.is_tarfile(path)):
            raise ValueError("neither a zip archive nor a legacy torch.save pickle")
        try:
            with torch.serialization.safe_globals(_numpy_safe_globals()):
                return torch.load(path, weights_only=True, **kw)
        except pickle.UnpicklingError:
            pass
        found = pickle_globals(path)
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile) as err:
        raise BadValueError(
            "checkpoint file", str(path), None,
            fix=f"It is not a readable PyTorch checkpoint ({type(err).__name__}: "
                f"{first_line(str(err))[:120]}); a truncated download? Download it again") from None
    extra, trustable = classify(found)
    if not extra:
        # Only allow-listed globals: the restricted unpickler lacks an opcode (protocol-0 INT in
        # old legacy files), and the full unpickler can call nothing else.
        return _full_load(path, kw)
    if not (trustable and trust_pickle):
        raise UnsafePickleError(path, extra, trustable)
    obj = _full_load(path, kw)
    warnings.warn(
        f"--trust-pickle: loaded '{path}' with the full unpickler, which ran untrusted code paths "
        f"(the constructors of {', '.join(extra)}); convert it once with `embedprobe convert-weights` "
        "to stop unpickling it.", UntrustedPickleWarning, stacklevel=2)
    return obj


def _full_load(path: Path, kw: dict[str, Any]) -> Any:
    import torch

    try:
        return torch.load(path, weights_only=False, **kw)
    except Exception as err:  # a class that no longer exists, a module that is not installed ...
        raise BadValueError("checkpoint", str(path), None, fix=(
            f"Unpickling it failed ({type(err).__name__}: {first_line(str(err))[:120]}); load it "
            "where the code that saved it is installed and save its state_dict")) from None


def _first_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(1)


def extract_state_dict(obj: Any, keys: Sequence[str] = ("model", "state_dict", "state")) -> dict:
    """The tensor dict inside a loaded checkpoint (``obj['model']`` etc., or ``obj`` itself)."""
    for k in keys:
        if isinstance(obj, dict) and isinstance(obj.get(k), dict):
            return obj[k]
    if isinstance(obj, dict):
        return obj
    raise BadValueError("checkpoint content", type(obj).__name__, ["dict"],
                        fix="Expected a state dict or a dict with a 'model' entry")


# -- Hugging Face folders --------------------------------------------------------------------------
def hf_pickle_files(folder: str | Path) -> list[Path]:
    """The pickle weight files transformers would load from ``folder`` (none if it has safetensors)."""
    folder = Path(folder)
    if any((folder / n).is_file() for n in HF_SAFE_FILES):
        return []
    files = [folder / "pytorch_model.bin"] if (folder / "pytorch_model.bin").is_file() else []
    index = folder / "pytorch_model.bin.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BadValueError("weights index", str(index), None,
                                fix="It is not a transformers weight index (no weight_map)") from None
        files += [folder / s for s in sorted(shards) if (folder / s).is_file()]
    return files


def check_hf_folder(folder: str | Path) -> None:
    """Scan the pickle weight files of a model folder before ``from_pretrained`` reads them.

    transformers reads ``pytorch_model.bin`` with ``weights_only=True`` (and cannot be told
    otherwise for a whole folder), so a file beyond the allow-list is refused here with one
    sentence; one that pickles data classes names the fix: ``embedprobe convert-weights FOLDER
    --trust-pickle`` once, after which transformers reads ``model.safetensors``.

    Raises:
        UnsafePickleError, BadValueError: as ``load_torch_checkpoint``.
    """
    for path in hf_pickle_files(folder):
        try:
            extra, trustable = classify(pickle_globals(path))
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
            raise BadValueError("checkpoint file", str(path), None, fix=(
                f"It is not a readable PyTorch checkpoint ({first_line(str(err))[:120]}); "
                "download it again")) from None
        if extra:
            raise UnsafePickleError(path, extra, trustable, folder=folder)

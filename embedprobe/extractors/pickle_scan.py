"""Reading a pickle's globals without running it, and judging them against the safe allow-list.

A PyTorch ``.pth`` / ``.bin`` file is a pickle, and unpickling can call any Python function the
file names (``posix.system`` ...). When torch's restricted unpickler refuses a file,
``safeload`` asks this module what the file would call:

* ``pickle_globals``: every ``GLOBAL`` / ``INST`` / ``STACK_GLOBAL`` of ``data.pkl`` in a zip
  checkpoint, of all five pickles of a legacy one, read from the opcodes (``_scan_one``);
* ``classify``: the globals beyond the allow-list (``safe_names``: torch's plus ``SAFE_NUMPY``),
  and whether they are all data classes (which ``--trust-pickle`` admits) or name code
  (``CODE_MODULES``, functions, globals the scan cannot resolve: never loaded);
* ``UnsafePickleError``: the one-sentence refusal naming the file, the offending globals and
  the fix; ``refusal_from_unpickler`` builds it from torch's (or transformers') own message.

Example:
    >>> sorted(pickle_globals("evil.pth"))  # doctest: +SKIP
    ['collections.OrderedDict', 'posix.system', 'torch._utils._rebuild_tensor_v2']
    >>> classify(["posix.system", "argparse.Namespace"])  # doctest: +SKIP
    (['posix.system', 'argparse.Namespace'], False)
"""

from __future__ import annotations

import pickletools
import re
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from embedprobe.errors import BadValueError

# numpy values that old checkpoints pickle next to their tensors (training statistics): data only.
SAFE_NUMPY = (
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.ndarray", "numpy.dtype",
)
# Modules whose classes are never "data" either: they run commands, open files or sockets,
# import or evaluate code. Matched on the first one or two dotted components.
CODE_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "sys", "builtins", "__builtin__", "shutil", "socket",
    "importlib", "runpy", "pty", "ctypes", "pickle", "_pickle", "cPickle", "marshal", "code",
    "codeop", "types", "functools", "operator", "webbrowser", "multiprocessing", "threading",
    "_thread", "asyncio", "signal", "io", "_io", "tempfile", "pathlib", "glob", "urllib",
    "http", "ftplib", "smtplib", "telnetlib", "requests", "zipimport", "pydoc", "timeit",
    "platform", "inspect", "gc", "ssl", "select", "commands", "popen2", "distutils",
    "setuptools", "pip", "site", "sysconfig", "pdb", "bdb", "trace", "profile", "cProfile",
    "sqlite3", "shelve", "dbm", "tarfile", "zipfile", "logging", "weakref", "copyreg",
    "copy_reg", "_codecs", "torch.hub", "torch.jit", "torch._C", "torch.ops", "torch.serialization",
    "torch.storage", "torch.package", "numpy.lib", "numpy.testing",
})
UNRESOLVED = "<STACK_GLOBAL the scan cannot resolve>"
EXTENSION = "<copyreg extension code>"
TORCHSCRIPT = "<TorchScript program>"


class UnsafePickleError(BadValueError):
    """A checkpoint names Python globals beyond the safe allow-list; the message is one sentence.

    Attributes:
        path: the file.
        offending: the globals beyond the allow-list, e.g. ``["posix.system"]``.
        trustable: ``True`` if they are all data classes, which ``--trust-pickle`` admits.
    """

    def __init__(self, path: str | Path | None, offending: Sequence[str], trustable: bool,
                 label: str | None = None, detail: str | None = None, folder: str | Path | None = None):
        names = ", ".join(offending)
        subject = label or f"checkpoint '{path}'"
        if detail is not None:
            msg = (f"Refused {subject}: the safe unpickler refused it ({detail}); download the file "
                   "again from its official source (or a .safetensors copy of it).")
        elif trustable and (folder is not None or path is None):  # read by transformers, not here
            target = f"'{folder}'" if folder is not None else "FILE_OR_FOLDER"
            msg = (f"Refused {subject}: it pickles Python classes beyond the safe allow-list "
                   f"({names}) whose code would run on loading; if you trust its source, convert it "
                   f"once with `embedprobe convert-weights {target} --trust-pickle` (transformers "
                   "then reads the model.safetensors it writes).")
        elif trustable:
            msg = (f"Refused {subject}: it pickles Python classes beyond the safe allow-list "
                   f"({names}) whose code would run on loading; if you trust its source, pass "
                   f"--trust-pickle, or convert it once with `embedprobe convert-weights '{path}' "
                   "--trust-pickle` and use the .safetensors file.")
        else:
            msg = (f"Refused {subject}: its pickle names {names}, which can run code, so it is "
                   "never loaded; download the file again from its official source (or a "
                   ".safetensors copy of it).")
        Exception.__init__(self, msg)
        self.value = str(path)
        self.path = str(path)
        self.offending = list(offending)
        self.trustable = trustable


class UntrustedPickleWarning(UserWarning):
    """``--trust-pickle`` loaded a file with the full unpickler (its class constructors ran)."""


# -- scanning ------------------------------------------------------------------------------------
def _full_name(module: str, name: str, proto: int = 2) -> str:
    """``module.name`` as the unpickler imports it (Python 2 names are mapped below protocol 3)."""
    import _compat_pickle

    if proto >= 3:
        return f"{module}.{name}"
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


_MARK = object()
_TEXT_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING",
                       "BINSTRING", "SHORT_BINSTRING"})


def _scan_one(stream: BinaryIO | bytes) -> set[str]:
    """Globals one pickle names, read from its opcodes without executing it.

    ``STACK_GLOBAL`` takes its module and name from the stack, so the stack is followed
    symbolically (strings and memo entries are tracked, everything else is a placeholder); a
    name that is not a plain string there is reported as ``UNRESOLVED``, and so is a ``STOP``
    before the end of its frame.
    """
    found: set[str] = set()
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    frame_end: int | None = None
    proto = 0
    for op, arg, pos in pickletools.genops(stream):
        name = op.name
        if name == "PROTO":
            proto = int(arg)
        elif name == "FRAME" and pos is not None:
            frame_end = pos + 9 + int(arg)
        elif name == "STOP" and frame_end is not None and pos is not None and pos + 1 != frame_end:
            # the unpickler reads whole frames: bytes hidden after STOP would be skipped here but
            # not by torch's next pickle.load of a legacy file
            found.add(UNRESOLVED)
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.add(_full_name(module, attr, proto))
        elif name == "STACK_GLOBAL":
            attr = stack.pop() if stack else None
            module = stack.pop() if stack else None
            ok = isinstance(module, str) and isinstance(attr, str)
            found.add(_full_name(module, attr, proto) if ok else UNRESOLVED)
            stack.append(None)
            continue
        elif name.startswith("EXT"):
            found.add(EXTENSION)
        if name in _TEXT_OPS:
            stack.append(arg)
        elif name == "MARK":
            stack.append(_MARK)
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = stack[-1] if stack else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(int(arg)))
        else:
            before = op.stack_before
            n = len(before)
            if pickletools.markobject in before:
                while stack and stack[-1] is not _MARK:
                    stack.pop()
                if stack:
                    stack.pop()
                n = before.index(pickletools.markobject)
            for _ in range(n):
                if stack:
                    stack.pop()
            stack.extend([None] * len(op.stack_after))
    return found


def pickle_globals(path: str | Path) -> set[str]:
    """Every global the pickles of a torch checkpoint name (``"posix.system"``), without loading it.

    Zip checkpoints: every ``*.pkl`` member (``data.pkl``; ``constants.pkl`` of TorchScript).
    Legacy ``torch.save`` files: the five pickles torch unpickles (magic number, protocol,
    system info, the object, the storage keys).

    Raises:
        ValueError: the file is neither, or its pickles are damaged.
    """
    path = Path(path)
    found: set[str] = set()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            # every entry, duplicated names included (a reader may take the first, zipfile the last)
            members = [info for info in zf.infolist() if info.filename.endswith(".pkl")]
            if not members:
                raise ValueError("a zip archive without a data.pkl")
            for info in members:
                found |= _scan_one(zf.read(info))
            if any(i.filename.endswith("constants.pkl") for i in members):  # torch.load runs jit.load
                found.add(TORCHSCRIPT)
        return found
    if tarfile.is_tarfile(path):  # torch's oldest format: its pickles sit inside a tar archive
        raise ValueError("a tar-format (pre-2018) torch checkpoint, which is not supported")
    with path.open("rb") as f:
        if f.read(1) != b"\x80":
            raise ValueError("neither a zip archive nor a legacy torch.save pickle")
        f.seek(0)
        for _ in range(5):
            found |= _scan_one(f)
    return found


@lru_cache(maxsize=1)
def safe_names() -> frozenset[str]:
    """Globals the restricted unpickler accepts: torch's own allow-list plus ``SAFE_NUMPY``."""
    names = set(SAFE_NUMPY)
    try:
        from torch import _weights_only_unpickler as wou

        names |= set(wou._get_allowed_globals())
    except (ImportError, AttributeError):  # another torch: the rebuilders every checkpoint uses
        names |= {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                  "torch._utils._rebuild_parameter", "torch.FloatStorage", "torch.LongStorage"}
    return frozenset(names)


def _is_code(name: str) -> bool:
    parts = name.split(".")
    if name in (UNRESOLVED, EXTENSION, TORCHSCRIPT) or len(parts) < 2:
        return True
    if parts[0] in CODE_MODULES or ".".join(parts[:2]) in CODE_MODULES:
        return True
    attr = parts[-1]
    # a data class is a CamelCase name; functions, private helpers and dunders are callables
    return not attr[:1].isupper() or "__" in attr


def classify(names: Iterable[str]) -> tuple[list[str], bool]:
    """``(globals beyond the allow-list, whether they are all data classes)``, code ones first."""
    extra = sorted(set(names) - safe_names(), key=lambda n: (not _is_code(n), n))
    return extra, not any(_is_code(n) for n in extra)


def _unpickler_global(text: str) -> str | None:
    """The global torch's weights-only message names (``"GLOBAL posix.system"``), if any."""
    m = re.search(r"GLOBAL ([\w.<>]+)", text)
    return m.group(1).rstrip(".") if m else None


def refusal_from_unpickler(path: str | Path | None, text: str, label: str | None = None) -> BadValueError:
    """One-sentence error for a refusal reported by torch's (or transformers') restricted unpickler."""
    name = _unpickler_global(text)
    if name is not None:
        extra, trustable = classify([name])
        if extra:
            return UnsafePickleError(path, extra, trustable, label=label)
    return UnsafePickleError(path, [], False, label=label, detail=first_line(text))


def first_line(text: str) -> str:
    """The line of an error message that says what went wrong (at most 160 characters)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "Unsupported" in ln or "GLOBAL" in ln:
            return ln[:160]
    return (lines[-1] if lines else "unknown content")[:160]

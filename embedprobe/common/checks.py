"""Checks of user-given values shared by the configs, the bench and the CLI.

Each check returns the value (normalised where that is harmless) or raises a
:class:`~embedprobe.errors.BadValueError` whose message names the value, what is allowed and
the fix, so that a bad option fails at once instead of running as something else.

Example:
    >>> count("batch size", 8), device("cuda:1", check_available=False), name_for_path("tag", "v2")
    (8, 'cuda:1', 'v2')
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable
from typing import Any

from embedprobe.errors import BadValueError

_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


def count(what: str, value: Any, *, low: int = 1, option: str = "") -> int:
    """An integer ``>= low`` (numpy integers too; ``bool`` is refused: it is not a count)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        hint = f" ({option})" if option else ""
        raise BadValueError(what + hint, value, fix=f"Use an integer >= {low}.")
    return int(value)


def number(what: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, option: str = "") -> float:
    """A finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value
    ok = ok and abs(value) != float("inf")
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        where = f"{'(' if low_open or low is None else '['}{lo}, {hi}{']' if high is not None else ')'}"
        hint = f" ({option})" if option else ""
        raise BadValueError(what + hint, value, fix=f"Use a number in {where}.")
    return float(value)


def choice(what: str, value: Any, allowed: Iterable[Any], fix: str = "") -> Any:
    """``value`` if it is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise BadValueError(what, value, allowed, fix=fix)
    return value


def device(value: str, *, check_available: bool = True) -> str:
    """A torch device string: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, present on this machine.

    Only CUDA and MPS devices import torch (to ask whether they exist).
    """
    text = str(value).strip()
    if not _DEVICE.fullmatch(text):
        raise BadValueError("device", value, ["cpu", "cuda", "cuda:N", "mps"],
                            fix="Name a torch device, e.g. --device cpu or --device cuda:0.")
    if not check_available or text == "cpu":
        return text
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        raise BadValueError("device", value, ["cpu"], fix="torch is not installed, so only cpu runs.") from None
    if text == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise BadValueError("device", value, ["cpu"], fix="This machine has no MPS (Apple GPU) device; "
                                "use --device cpu.")
        return text
    if not torch.cuda.is_available():
        why = ("this torch build has no CUDA support" if torch.version.cuda is None
               else "torch finds no CUDA GPU on this machine")
        raise BadValueError("device", value, ["cpu"], fix=f"{why[0].upper()}{why[1:]} (torch "
                            f"{torch.__version__}); use --device cpu.")
    n = torch.cuda.device_count()
    index = int(text.split(":")[1]) if ":" in text else 0
    if index >= n:
        raise BadValueError("device", value, [f"cuda:{i}" for i in range(n)],
                            fix=f"This machine has {n} CUDA device(s).")
    return text


def name_for_path(what: str, value: str) -> str:
    """A name that becomes (part of) a file or folder name: letters, digits and ``. _ - + =``.

    Refuses ``/``, ``\\``, ``..``, a leading dot or dash, spaces and control characters, so
    that no name can leave the output folder or make a nested or hidden path.
    """
    text = str(value)
    if not _SAFE_NAME.fullmatch(text) or ".." in text:
        raise BadValueError(what, value, fix="It becomes part of a file name: use letters, digits and "
                            "'.', '_', '-', '+', '=' only, starting with a letter or digit, no '..' "
                            "(e.g. 'emodb-small').")
    return text

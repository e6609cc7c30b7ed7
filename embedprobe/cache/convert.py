"""Fast float32 <-> float16 array conversion (numpy's own runs at ~0.3-0.4 GB/s here).

torch converts 4-9x faster into a preallocated buffer; it is a core dependency, imported the
first time an array large enough to pay for the import is converted. Both round to nearest
even, so results are bit-identical to ``ndarray.astype``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_TORCH_MIN_ELEMENTS = 1 << 14
_torch: Any = None


def _get_torch() -> Any:
    global _torch
    if _torch is None:
        try:
            import torch

            _torch = torch
        except ImportError:  # numpy fallback
            _torch = False
    return _torch


def convert_into(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` with dtype conversion; both C-contiguous arrays of the same shape."""
    if dst.dtype == src.dtype or src.size < _TORCH_MIN_ELEMENTS:
        np.copyto(dst, src, casting="unsafe")
        return
    torch = _get_torch()
    if (not torch or not dst.flags.c_contiguous or not src.flags.c_contiguous
            or not src.flags.writeable or not dst.flags.writeable
            or src.dtype not in (np.float16, np.float32) or dst.dtype not in (np.float16, np.float32)):
        np.copyto(dst, src, casting="unsafe")
        return
    torch.from_numpy(dst).copy_(torch.from_numpy(src))


def converted(src: np.ndarray, dtype: Any) -> np.ndarray:
    """``src.astype(dtype)`` (no copy when the dtype already matches)."""
    dtype = np.dtype(dtype)
    if src.dtype == dtype:
        return src
    out = np.empty(src.shape, dtype)
    convert_into(out, np.ascontiguousarray(src))
    return out

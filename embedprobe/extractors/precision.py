"""Precision policy of the torch families: which precision to run, its autocast, tensors on the device.

``resolve_precision`` turns a requested precision (``PRECISIONS``) into a concrete one for the
device (measured on the project's 2-core AVX-512 machines, see ``../shared/DEPENDENCIES.md``):

* **bf16 autocast** where the CPU has native bf16 matrix units (AVX-512 BF16 or AMX): matrix
  multiplies run about 4x faster than torch's default fp32 path; accumulation stays fp32 and
  layer norms / softmax run in fp32, so embeddings stay at cosine >= 0.999 to fp32
  (``tests/extractors/test_hf_ssl_patches.py`` checks this on WavLM, the real CDPAM weights are
  checked in ``test_cdpam.py``).
* **oneDNN fp32 linears** (``precision="fp32-onednn"``) where bf16 is missing or not wanted:
  the same fp32 arithmetic through oneDNN's kernels, about 1.4-1.6x torch's default path.
* On CUDA: fp16/bf16 autocast, pinned host memory and non-blocking copies. Batching
  (``batch_seconds``) is the main lever there; on CPU it is not (padded batches measured 0.8x
  one-clip-at-a-time), so CPU runs one clip per forward pass.

The module rewrites each precision calls for are ``rewrites.prepare``'s; the load-time check
that a fast precision keeps the embeddings is ``precision_check`` + ``runtime.RuntimeMixin``.

Example:
    >>> precision = resolve_precision("auto", "cpu")  # doctest: +SKIP
    >>> info = rewrites.prepare(model, precision, "cpu")  # doctest: +SKIP
    >>> with inference(precision, "cpu"):              # doctest: +SKIP
    ...     out = model(to_device(wav, "cpu"))
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError
from embedprobe.extractors.precision_check import agreement

PRECISIONS = ("auto", "fp32", "fp32-onednn", "bf16", "fp16")


def cpu_bf16_supported() -> bool:
    """``True`` if this CPU runs bf16 matrix multiplies natively (AVX-512 BF16 or AMX).

    Plain AVX-512 CPUs (e.g. Skylake-X) only emulate bf16 and are slower than fp32 there.
    """
    import torch

    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        if fn is not None and fn():
            return True
    return False


def resolve_precision(precision: str, device: str) -> str:
    """Turn ``"auto"`` into a concrete precision for ``device`` and check the others.

    ``auto``: CUDA -> ``bf16`` if the GPU supports it else ``fp16``; CPU -> ``bf16`` on
    AVX-512-BF16/AMX CPUs, else ``fp32-onednn`` when oneDNN is built in, else ``fp32``.

    Raises:
        BadValueError: unknown precision, or ``fp16`` asked for on a CPU.
    """
    import torch

    if precision not in PRECISIONS:
        raise BadValueError("precision", precision, PRECISIONS)
    cuda = str(device).startswith("cuda")
    if precision == "auto":
        if cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if cpu_bf16_supported():
            return "bf16"
        return "fp32-onednn" if torch.backends.mkldnn.is_available() else "fp32"
    if precision == "fp16" and not cuda:
        raise BadValueError("precision", precision, [p for p in PRECISIONS if p != "fp16"],
                            fix="fp16 autocast is for CUDA devices; on CPU use bf16 or fp32")
    if precision == "fp32-onednn" and cuda:
        return "fp32"
    return precision


def autocast(precision: str, device: str) -> contextlib.AbstractContextManager:
    """The autocast context for a resolved precision (a no-op for the fp32 variants)."""
    import torch

    if precision in ("fp32", "fp32-onednn"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast("cuda" if str(device).startswith("cuda") else "cpu", dtype=dtype)


def to_device(wav: np.ndarray, device: str) -> Any:
    """A float32 numpy array as a tensor on ``device`` (pinned + non-blocking copy on CUDA)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    if str(device).startswith("cuda"):
        return x.pin_memory().to(device, non_blocking=True)
    return x


@contextlib.contextmanager
def inference(precision: str, device: str) -> Iterator[None]:
    """``torch.inference_mode()`` plus the autocast of ``precision``."""
    import torch

    with torch.inference_mode(), autocast(precision, device):
        yield


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays flattened (tests, the speed benchmark): the load-time
    precision check's ``agreement``, so both judge outputs alike (0.0 for non-finite values)."""
    return agreement(a, b)


"""Precision that checks itself on the machine it runs on.

A fast precision (bf16 or fp16 autocast, oneDNN fp32 linears) is right on one CPU and wrong on
another: on Intel Xeons with AMX, torch 2.13's oneDNN bf16 ``conv1d`` with ``groups > 1``
returns garbage (cosine ~0 to fp32) when a group has 8 or fewer input channels, while the same
code is right on AMD EPYC and at the channel counts of the real checkpoints
(``../shared/DEPENDENCIES.md``). Whether a fast path is correct therefore depends on the CPU
*and* on the layer shapes, so it is checked where it runs, at load:

1. **Screen** (``ModuleScreen``): one fp32 forward pass of a fixed probe signal
   (``probe_signal``) in which every ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` is also
   computed in the candidate precision on its actual input, once per kernel signature (type,
   weight shape, convolution geometry, input shape: the 24 layers of a transformer share a
   handful). A module whose fast output is below ``THRESHOLD`` cosine to its fp32 output is a
   culprit and is kept in fp32.
2. **End to end**: the same signal through the model prepared in the candidate precision;
   every cached layer is compared with the fp32 pass of step 1 (``agreement``).
3. If a layer is still below ``THRESHOLD``, the whole model falls back to fp32.

The extractor side (``runtime.RuntimeMixin``) drives the three steps and records a
``check_report`` in ``runtime_config()["precision_check"]``, which the cache's provenance
keeps (measured cosines, culprits, decision, seconds).

Example:
    >>> sig = probe_signal(16000, 1.0)
    >>> sig.shape, sig.dtype, float(abs(sig).max()) <= 0.5
    ((16000,), dtype('float32'), True)
    >>> agreement(np.ones(4), np.ones(4)), agreement(np.zeros(3), np.zeros(3))
    (1.0, 1.0)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

THRESHOLD = 0.999  # cosine to fp32, per cached layer and per screened module
PROBE_SECONDS = 0.5
FAST_PRECISIONS = ("bf16", "fp16", "fp32-onednn")


def probe_signal(sample_rate: int, seconds: float = PROBE_SECONDS) -> np.ndarray:
    """A fixed, speech-like test signal: a gliding harmonic voice, formant-shaped, plus noise bursts.

    Deterministic (no global random state), peak 0.5, float32. Real activations matter for the
    screen (a silent or white-noise input leaves some kernels' paths unexercised), so the signal
    has voiced and unvoiced parts and a changing pitch.
    """
    n = max(1, int(round(seconds * sample_rate)))
    t = np.arange(n) / sample_rate
    f0 = 120.0 + 60.0 * np.sin(2 * np.pi * 1.3 * t)  # gliding pitch
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = np.zeros(n)
    for k in range(1, 25):  # harmonics shaped by three formants
        fk = k * f0
        gain = sum(np.exp(-((fk - f) / bw) ** 2) for f, bw in ((700, 150), (1200, 200), (2600, 300)))
        voice += (gain + 0.05) / k * np.sin(k * phase) * (fk < sample_rate / 2)
    rng = np.random.default_rng(20261203)
    noise = rng.standard_normal(n) * (np.sin(2 * np.pi * 3.0 * t) > 0.6)  # unvoiced bursts
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t) ** 2
    sig = envelope * voice + 0.2 * noise
    return (0.5 * sig / max(float(np.abs(sig).max()), 1e-9)).astype(np.float32)


def agreement(fast: Any, ref: Any) -> float:
    """Cosine of two arrays flattened; 1.0 when both are zero, 0.0 when only one is or either is not finite."""
    a = np.asarray(fast, np.float64).ravel()
    b = np.asarray(ref, np.float64).ravel()
    if a.shape != b.shape or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return 0.0
    # elementwise products and numpy's pairwise sums, not BLAS (np.linalg.norm, a @ b): numpy's
    # OpenBLAS threads ignore torch's thread count and spin after every call, which cost the check
    # more CPU time than CNN14's two passes on a 2-core machine
    na, nb = math.sqrt(float(np.square(a).sum())), math.sqrt(float(np.square(b).sum()))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float((a * b).sum() / (na * nb))


def _screened_types() -> tuple[type, ...]:
    from torch import nn

    return (nn.Linear, nn.Conv1d, nn.Conv2d)


class ModuleScreen:
    """Forward hooks that compute each matmul-type module again in a fast dtype and compare.

    Use around an fp32 forward pass (no autocast): every screened module's output is the fp32
    reference, and the hook recomputes the module on the same input under ``torch.autocast``
    of ``dtype``. Modules in ``skip`` (already kept in fp32) are not screened.

    Attributes:
        culprits: ``{module name: cosine}`` of the modules below ``threshold``.
        worst: the lowest cosine seen (1.0 if nothing was screened).
        screened: how many modules ran at least once.
        cast_weights: ``{id(module): (module, its fp32 weight, that weight in dtype)}``
            of the modules computed in ``dtype``, for ``rewrites.prepare(precast=...)``.
        cast_seconds: ``[wall, CPU]`` seconds spent making those casts (work that preparing the
            fast path would otherwise do).
    """

    def __init__(self, model: Any, dtype: Any, device: str, *, skip: Iterable[Any] = (),
                 threshold: float = THRESHOLD):
        self.model, self.dtype, self.threshold = model, dtype, threshold
        self.kind = "cuda" if str(device).startswith("cuda") else "cpu"
        self.skip = {id(m) for s in skip for m in s.modules()}
        self.culprits: dict[str, float] = {}
        self.worst = 1.0
        self._seen: set[str] = set()
        self._by_signature: dict[tuple, float] = {}
        self._handles: list[Any] = []
        self.cast_weights: dict[int, Any] = {}
        self.cast_seconds = [0.0, 0.0]  # wall, CPU

    @property
    def screened(self) -> int:
        return len(self._seen)

    @property
    def kernels(self) -> int:
        """How many distinct kernel signatures were computed in the fast dtype."""
        return len(self._by_signature)

    def modules(self) -> list[Any]:
        """The culprit modules themselves (to keep in fp32)."""
        by_name = dict(self.model.named_modules())
        return [by_name[name] for name in self.culprits]

    def __enter__(self) -> ModuleScreen:
        types_ = _screened_types()
        for name, module in self.model.named_modules():
            if type(module) in types_ and id(module) not in self.skip:
                self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        import torch

        def hook(module, args, output):
            if not torch.is_tensor(output) or not output.is_floating_point():
                return
            key = _signature(module, args)
            cos = self._by_signature.get(key)
            if cos is None:  # one kernel call per shape: the 24 layers of a transformer share six
                fast = self._fast_forward(module, args)
                cos = self._by_signature[key] = agreement(fast.float().cpu().numpy(),
                                                          output.float().cpu().numpy())
            self._seen.add(name)
            self.worst = min(self.worst, cos)
            if not cos >= self.threshold:
                self.culprits[name] = min(cos, self.culprits.get(name, 1.0))

        return hook

    def _fast_forward(self, module: Any, args: tuple) -> Any:
        """The module's own (possibly rewritten) forward under autocast, on its weight cast once.

        The same numbers as letting autocast cast the fp32 weight (the same rounding), but the
        cast is kept (``cast_weights``) so that preparing the fast path does not cast it again.
        """
        import torch

        weight = module.weight
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode(False):  # a normal tensor: it becomes the module's weight later
            cast = weight.data.to(self.dtype)
        # the fp32 tensor itself is kept (not its address), so that a weight replaced meanwhile
        # cannot reuse the address and pass for the one that was cast
        self.cast_weights[id(module)] = (module, weight.data, cast)
        self.cast_seconds[0] += time.perf_counter() - t0
        self.cast_seconds[1] += time.process_time() - c0
        fp32 = weight.data
        weight.data = cast
        try:
            with torch.autocast(self.kind, dtype=self.dtype):
                return module.forward(*args)  # no hooks
        finally:
            weight.data = fp32


def _signature(module: Any, args: tuple) -> tuple:
    """What decides which kernel a module runs: its type, weight shape, conv geometry, input shape."""
    geometry = tuple(getattr(module, k, None) for k in ("stride", "padding", "dilation", "groups"))
    shapes = tuple(tuple(a.shape) if hasattr(a, "shape") else type(a).__name__ for a in args)
    return (type(module).__name__, tuple(module.weight.shape), module.bias is not None, geometry, shapes)


def layer_agreement(fast: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
    """Cosine per layer between two ``embed`` outputs (rounded to 6 decimals for the record)."""
    return {name: round(agreement(fast[name], ref[name]), 6) for name in ref}


def check_report(candidate: str, layers: dict[str, float], culprits: dict[str, float], *,
                 decision: str, screened: int, kernels: int, worst_module: float, seconds: float,
                 cpu_seconds: float, signal_s: float, rewrite_seconds: float | None = None,
                 rewrite_cpu_seconds: float | None = None) -> dict[str, Any]:
    """The record kept in ``runtime_config()["precision_check"]`` and the cache's provenance.

    ``seconds`` / ``cpu_seconds``: the check's own cost (the two passes, the screen, the
    comparisons, a fallback's reload); ``rewrite_seconds`` / ``rewrite_cpu_seconds``: the fast
    path's rewrites applied during the check, which an unchecked load makes as well.
    """
    lowest = min(layers.values()) if layers else 1.0
    return {
        "candidate": candidate,
        "decision": decision,
        "threshold": THRESHOLD,
        "signal": f"probe_signal({signal_s:g} s)",
        "layer_cosines": layers,
        "min_layer_cosine": lowest if math.isfinite(lowest) else None,
        "modules_screened": screened,
        "kernel_shapes_screened": kernels,
        "min_module_cosine": round(worst_module, 6),
        "fp32_modules": {k: round(v, 6) for k, v in culprits.items()},
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        **({} if rewrite_seconds is None else {"rewrite_seconds": round(rewrite_seconds, 3)}),
        **({} if rewrite_cpu_seconds is None else {"rewrite_cpu_seconds": round(rewrite_cpu_seconds, 3)}),
    }


def fallback_note(name: str, report: dict[str, Any]) -> str | None:
    """One line for the user when anything fell back to fp32; ``None`` when the candidate held."""
    cand, mods = report["candidate"], report["fp32_modules"]
    if report["decision"] == "fp32":
        return (f"{name}: {cand} did not match fp32 on this machine (lowest layer cosine "
                f"{report['min_layer_cosine']:.4f} < {THRESHOLD}); the whole model runs in fp32.")
    if mods:
        worst = min(mods.values())
        listed = ", ".join(list(mods)[:3]) + (f" and {len(mods) - 3} more" if len(mods) > 3 else "")
        return (f"{name}: {len(mods)} module(s) run in fp32 because their {cand} kernel is wrong on "
                f"this machine (cosine to fp32 down to {worst:.3f}): {listed}.")
    return None

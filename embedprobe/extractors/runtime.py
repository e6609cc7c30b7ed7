"""``RuntimeMixin``: precision, runtime record and the load-time precision check of the torch families;
``versions()`` for that record.

A family's ``_load`` builds its fp32 network, sets ``self.precision_ = self._resolve_precision()``
and calls ``self._prepare_model(network, **options)`` (the arguments of ``rewrites.prepare``). For a
fast precision (``precision_check.FAST_PRECISIONS``) that call only applies the fp32 rewrites and
remembers the rest; ``load()`` then, once the family's ``_load`` has finished (hooks installed,
``embed`` usable):

1. runs ``precision_check.probe_signal`` through the fp32 model with every matmul-type module
   screened in the candidate precision (``ModuleScreen``),
2. applies the fast rewrites with the culprits kept in fp32 and runs the signal again,
3. compares every cached layer; below ``THRESHOLD`` anywhere, it loads the model again in fp32.

The decision and the cosines go to ``runtime_config()["precision_check"]`` (recorded in the
cache's provenance, not in its identity); ``precision_check.fallback_note`` turns it into the one
line the user sees when anything fell back (``extract`` prints it). Its own load-time cost (the
two passes, the comparisons and, after a failure, the fp32 reload) is recorded as ``seconds`` /
``cpu_seconds``; the fast path's rewrites made during it (weight casts, including those the
screen made and the rewrites reuse, and prepacking), which a load without the check makes as
well, apart as ``rewrite_seconds`` / ``rewrite_cpu_seconds``. The
figures are in the README's "Speed" section (``benchmarks/precision_check_cost.py``).
"""

from __future__ import annotations

import time
from typing import Any

from embedprobe.errors import BadValueError
from embedprobe.extractors import precision_check
from embedprobe.extractors.precision import PRECISIONS, resolve_precision
from embedprobe.extractors.rewrites import prepare

_FIRST_PASS_KEYS = ("fp32_modules", "weight_norms_baked")


class RuntimeMixin:
    """``precision`` / ``runtime_config()`` and the verified fast path for extractors with a torch model.

    Subclasses set ``self.requested_precision`` in ``__init__`` (checked by
    ``check_precision``), and in ``_load`` ``self.precision_`` (``_resolve_precision()``) and
    ``self._runtime`` (``{**self._prepare_model(net, ...), ...}``).

    Attributes:
        verify_precision: run the load-time check for fast precisions (class default ``True``;
            ``False`` trusts the kernels, e.g. for kernel benchmarks).
    """

    takes_precision = True  # the Extractor capability: __init__ takes ``precision=``
    requested_precision: str = "auto"
    precision_: str = ""
    verify_precision: bool = True
    _forced_precision: str | None = None
    _runtime: dict[str, Any]

    @staticmethod
    def check_precision(precision: str) -> str:
        if precision not in PRECISIONS:
            raise BadValueError("precision", precision, PRECISIONS)
        return precision

    def _resolve_precision(self) -> str:
        """The concrete precision to load with (fp32 after a failed check on this machine)."""
        return resolve_precision(self._forced_precision or self.requested_precision,
                                 self.device)  # type: ignore[attr-defined]

    def _prepare_model(self, model: Any, **options: Any) -> dict[str, Any]:
        """``rewrites.prepare(model, self.precision_, ...)``, deferred for a fast precision until checked."""
        precision, device = self.precision_, self.device  # type: ignore[attr-defined]
        if self.verify_precision and precision in precision_check.FAST_PRECISIONS:
            self._pending = (model, precision, options)
            self.precision_ = "fp32"  # embed() runs fp32 until load() has checked the candidate
            return prepare(model, "fp32", device, **options)
        return prepare(model, precision, device, **options)

    def load(self) -> Any:
        if self._loaded:  # type: ignore[attr-defined]
            return self
        super().load()  # type: ignore[misc]
        pending = self.__dict__.pop("_pending", None)
        if pending is not None:
            self._check(*pending)
        return self

    def _check(self, model: Any, candidate: str, options: dict[str, Any]) -> None:
        import torch

        t0, c0 = time.perf_counter(), time.process_time()
        spec = self.spec  # type: ignore[attr-defined]
        seconds = max(precision_check.PROBE_SECONDS, 2.0 * float(spec.min_duration_s))
        signal = precision_check.probe_signal(spec.sample_rate, seconds)
        keep = tuple(options.get("keep_fp32", ()))
        screen = None
        if candidate in ("bf16", "fp16"):  # fp32-onednn has no lower-precision module to screen
            dtype = torch.bfloat16 if candidate == "bf16" else torch.float16
            with precision_check.ModuleScreen(model, dtype, self.device, skip=keep) as screen:  # type: ignore[attr-defined]
                ref = self.embed(signal)  # type: ignore[attr-defined]
            keep = keep + tuple(screen.modules())
        else:
            ref = self.embed(signal)  # type: ignore[attr-defined]
        # the fast path's rewrites (weight casts, prepacking): a load without the check does them
        # too, so they are timed apart; the casts the screen made are reused, not made again
        t1, c1 = time.perf_counter(), time.process_time()
        info = prepare(model, candidate, self.device, **{**options, "keep_fp32": keep},  # type: ignore[attr-defined]
                       precast=screen.cast_weights if screen is not None else None)
        rewrite = (time.perf_counter() - t1, time.process_time() - c1)
        if screen is not None:
            rewrite = (rewrite[0] + screen.cast_seconds[0], rewrite[1] + screen.cast_seconds[1])
            screen.cast_weights.clear()
        self.precision_ = candidate
        got = self.embed(signal)  # type: ignore[attr-defined]
        layers = precision_check.layer_agreement(got, ref)
        held = all(c >= precision_check.THRESHOLD for c in layers.values())
        culprits = dict(screen.culprits) if screen is not None else {}
        report = precision_check.check_report(
            candidate, layers, culprits, decision=candidate if held else "fp32",
            screened=screen.screened if screen is not None else 0,
            kernels=screen.kernels if screen is not None else 0,
            worst_module=screen.worst if screen is not None else 1.0,
            seconds=time.perf_counter() - t0 - rewrite[0], cpu_seconds=time.process_time() - c0 - rewrite[1],
            signal_s=seconds, rewrite_seconds=rewrite[0], rewrite_cpu_seconds=rewrite[1])
        if held:
            # the culprits are recorded in the report, not in "fp32_modules" (the family's own
            # choice, part of the cache identity): which kernels are wrong depends on the machine;
            # the fp32 pass already folded the weight norms (the second pass finds none)
            self._runtime.update({k: v for k, v in info.items() if k not in _FIRST_PASS_KEYS})
        else:  # weights are cast already: build the model again, in fp32 (counted as the check's)
            self.unload()  # type: ignore[attr-defined]
            self._forced_precision = "fp32"
            super().load()  # type: ignore[misc]
            report["seconds"] = round(time.perf_counter() - t0 - rewrite[0], 3)
            report["cpu_seconds"] = round(time.process_time() - c0 - rewrite[1], 3)
        self._runtime["precision_check"] = report

    @property
    def precision(self) -> str:
        """The precision actually used (``"auto"`` resolved and checked); loads the model if needed."""
        self.load()
        return self.precision_

    def runtime_config(self) -> dict[str, Any]:
        """How this run computes (precision, kernels, revision, versions, the precision check)."""
        self.load()
        return dict(self._runtime)


def versions() -> dict[str, str]:
    """torch and (if installed) transformers versions, for ``runtime_config()``."""
    import torch

    out = {"torch": torch.__version__}
    try:
        import transformers

        out["transformers"] = transformers.__version__
    except ImportError:
        pass
    return out

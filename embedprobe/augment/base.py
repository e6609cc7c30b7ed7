"""The augmentation contract: a frozen spec that draws JSON-able parameters and applies them.

Every augmentation is a frozen dataclass (:class:`AugmentSpec`) whose fields are the
*allowed ranges*; it has two pure methods:

* ``draw(rng, n_samples, sr) -> params``: draw one set of parameters (a JSON-able dict)
  from a numpy ``Generator``;
* ``apply(wav, sr, params) -> wav``: a deterministic function of the waveform and those
  parameters (random noise is regenerated from a ``noise_seed`` stored in the params).

So an augmented copy is exactly reproducible from (spec, seed, clip id, copy index):
:func:`clip_rng` turns these into a generator, :func:`augment` draws and applies, and the
returned :class:`Augmented` record carries the parameters that were used;
:func:`replay` re-applies recorded parameters.

Output convention: always a finite float32 mono array. If an augmentation pushes the peak
above 1.0 (reverberation, noise) the whole clip is scaled down to a peak of 1.0 (never up);
the level is otherwise left as the augmentation makes it.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from embedprobe.errors import BadValueError
from embedprobe.provenance import fingerprint, to_jsonable
from embedprobe.registry import Registry, Row


def describe_augmentation(name: str, spec: AugmentSpec) -> Row:
    """One ``embedprobe list augmentations`` row: single augmentations and chains."""
    doc = (type(spec).__doc__ or "").strip().splitlines()
    steps = getattr(spec, "steps", None)
    about = ("chain: " + ", ".join(s.spec.kind for s in steps)) if steps else (doc[0] if doc else "")
    return {"name": name, "kind": spec.kind or type(spec).__name__, "about": about,
            "extra": ",".join(sorted(spec.extras())) or "-"}


#: Every augmentation spec (single augmentations and named chains), by name. Each module of
#: this package registers its own specs (:func:`register`); the registry imports them all on
#: its first lookup.
AUGMENTATIONS: Registry[AugmentSpec] = Registry(
    "augmentation", package="embedprobe.augment", describe=describe_augmentation,
    about="waveform augmentations and chains (--augment NAME)")


def register(spec: AugmentSpec, name: str | None = None) -> AugmentSpec:
    """Register ``spec`` under ``name`` (default: its ``kind``); modules call this at import time."""
    AUGMENTATIONS.add(name or spec.kind, spec)
    return spec

PEAK = 1.0  # outputs are scaled down (never up) so that max |x| <= PEAK


@dataclass(frozen=True)
class AugmentSpec(ABC):
    """Base class of every augmentation: the fields are its documented parameter ranges."""

    kind: ClassVar[str] = ""  # short family name, e.g. "pink_noise"
    version: ClassVar[int] = 1  # bump when the algorithm (not the ranges) changes
    extra: ClassVar[str | None] = None  # the embedprobe[extra] it needs (e.g. "augment": pedalboard)

    def extras(self) -> frozenset[str]:
        """The ``embedprobe[extra]`` names this spec needs to run (a chain: its steps')."""
        return frozenset({self.extra} if self.extra else ())

    @abstractmethod
    def draw(self, rng: np.random.Generator, n_samples: int, sr: int) -> dict[str, Any]:
        """Draw one JSON-able parameter set for a clip of ``n_samples`` samples at ``sr`` Hz."""

    @abstractmethod
    def _apply(self, wav: np.ndarray, sr: int, params: dict[str, Any]) -> np.ndarray:
        """Apply ``params`` to a validated float32 mono ``wav`` (no peak limiting needed)."""

    def apply(self, wav: np.ndarray, sr: int, params: dict[str, Any]) -> np.ndarray:
        """Apply drawn (or recorded) ``params`` to ``wav``; deterministic.

        Returns:
            A finite float32 mono array with peak <= 1.0; same length as ``wav`` unless the
            augmentation changes the duration (see :meth:`out_length`).
        """
        return finish(self._apply(check_wav(wav, sr), int(sr), params))

    def out_length(self, n_samples: int, sr: int, params: dict[str, Any]) -> int:
        """Length of the output for an input of ``n_samples`` (the same unless overridden)."""
        return n_samples

    def __call__(
        self, wav: np.ndarray, sr: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw parameters from ``rng`` and apply them: ``(augmented, params)``."""
        params = self.draw(rng, len(wav), int(sr))
        return self.apply(wav, sr, params), params

    def config(self) -> dict[str, Any]:
        """JSON-able description: family, algorithm version and every range field."""
        return {"kind": self.kind, "version": self.version, "params": to_jsonable(self)}

    def fingerprint(self) -> str:
        """Stable short hash of :meth:`config`; caches key on it with the seed and copy."""
        return fingerprint(self.config())


@dataclass(frozen=True)
class Augmented:
    """One augmented copy and everything needed to reproduce it.

    Attributes:
        wav: the augmented waveform (float32, mono, peak <= 1).
        params: the drawn parameters (JSON-able); ``replay(orig, sr, spec, params)`` == ``wav``.
        record: provenance: augmentation name, spec fingerprint, seed, clip id, copy, params.
    """

    wav: np.ndarray
    params: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)


def clip_rng(seed: int, clip_id: str, copy: int) -> np.random.Generator:
    """The generator for one (seed, clip, copy): independent of run order and of other clips.

    The clip id is hashed with SHA-256 (not Python's salted ``hash``), so the stream is the
    same in every process and on every machine.
    """
    if int(copy) < 0:
        raise BadValueError("copy index", copy, fix="Use a copy index >= 0.")
    key = int.from_bytes(hashlib.sha256(str(clip_id).encode()).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(key, int(copy))))


def resolve(spec: AugmentSpec | str) -> AugmentSpec:
    """A spec, or the registered spec of that name (unknown names list the valid ones)."""
    if isinstance(spec, AugmentSpec):
        return spec
    return AUGMENTATIONS.get(spec)  # discovery imports the built-in augmentation modules


def augment(
    wav: np.ndarray, sr: int, spec: AugmentSpec | str, *, seed: int, clip_id: str, copy: int
) -> Augmented:
    """Make augmented copy number ``copy`` of one clip, reproducibly.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
        >>> a = augment(x, 16000, "pink_noise", seed=0, clip_id="03a01Fa", copy=1)
        >>> b = augment(x, 16000, "pink_noise", seed=0, clip_id="03a01Fa", copy=1)
        >>> bool(np.array_equal(a.wav, b.wav)), a.params == b.params
        (True, True)
    """
    spec = resolve(spec)
    wav = check_wav(wav, sr)
    params = spec.draw(clip_rng(seed, clip_id, copy), len(wav), int(sr))
    out = spec.apply(wav, sr, params)
    record = {
        "augmentation": augmentation_name(spec),
        "fingerprint": spec.fingerprint(),
        "seed": int(seed),
        "clip_id": str(clip_id),
        "copy": int(copy),
        "params": params,
    }
    return Augmented(wav=out, params=params, record=record)


def replay(wav: np.ndarray, sr: int, spec: AugmentSpec | str, params: dict[str, Any]) -> np.ndarray:
    """Re-apply recorded ``params`` (from :attr:`Augmented.params`) to the original ``wav``."""
    return resolve(spec).apply(wav, sr, params)


def augmentation_name(spec: AugmentSpec) -> str:
    """The registry name of ``spec`` if it is registered as is, else ``"<kind>:<fingerprint>"``."""
    for name, item in AUGMENTATIONS.items():
        if item == spec:
            return name
    return f"{spec.kind}:{spec.fingerprint()}"


def check_wav(wav: np.ndarray, sr: int) -> np.ndarray:
    """Validate a mono waveform and return it as a float32 array (a copy if converted)."""
    x = np.asarray(wav)
    if x.ndim != 1:
        raise BadValueError(
            "waveform shape", x.shape, fix="Pass one mono clip as a 1-D array (average the channels first)."
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise BadValueError(
            "waveform dtype", str(x.dtype), ["float32", "float64"],
            fix="Decode to float in [-1, 1] (embedprobe.audio.decode does this).",
        )
    if int(sr) <= 0:
        raise BadValueError("sample rate", sr, fix="Pass the clip's sample rate in Hz.")
    if x.size == 0:
        raise BadValueError("clip length", 0, fix="Skip empty clips before augmenting.")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise BadValueError("waveform", "with NaN or inf samples", fix="Check the decoder output.")
    return x


def finish(y: np.ndarray) -> np.ndarray:
    """Float32, finite, and scaled down to ``max |y| <= PEAK`` if it went above."""
    y = np.nan_to_num(np.asarray(y, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > PEAK:
        y = y * np.float32(PEAK / peak)
        np.clip(y, -PEAK, PEAK, out=y)  # rounding can leave 1.0000001
    return np.ascontiguousarray(y, dtype=np.float32)


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One uniform draw in ``[lo, hi]`` as a plain float (``lo == hi`` is allowed)."""
    return float(lo) if hi <= lo else float(rng.uniform(lo, hi))


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One draw uniform on a log scale in ``[lo, hi]`` (both > 0)."""
    return float(lo) if hi <= lo else float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def check_range(what: str, lo: float, hi: float, *, low: float, high: float) -> None:
    """Raise a :class:`BadValueError` unless ``low <= lo <= hi <= high``."""
    if not (low <= lo <= hi <= high):
        raise BadValueError(
            what, (lo, hi), fix=f"Use a range (lo, hi) with {low} <= lo <= hi <= {high}."
        )

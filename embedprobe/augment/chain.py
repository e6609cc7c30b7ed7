"""Chains of augmentations, the paper's ``paper`` chain, and the registry of built-in specs.

Our reading of the paper (section 5.2): "These augmentations are applied to each original
audio sample, with parameters randomly chosen within the allowed ranges" means that an
augmented copy goes through *all seven* augmentations, each with its own random parameters;
the augmentation *rate* of the paper (0-100 % of the training samples) is a choice of which
clips get augmented copies, made by the caller. So the ``paper`` chain applies every step
with probability 1. :class:`Chain` also supports per-step probabilities for other sweeps.

Order of ``paper`` (the paper does not give one; this follows the signal path of a
recording): time stretch -> time shift -> SpecAugment -> equaliser -> reverberation ->
pink noise -> fade. Noise comes after the room (ambient noise at the microphone is not
reverberated by our simulated room), and the fade comes last so the clip really starts and
ends in silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedprobe.augment.base import AugmentSpec, register
from embedprobe.augment.environment import PinkNoise, Reverb
from embedprobe.augment.spectral import Equalizer, SpecAugment
from embedprobe.augment.temporal import Fade, TimeShift, TimeStretch
from embedprobe.errors import BadValueError


@dataclass(frozen=True)
class Step:
    """One chain step: an augmentation applied with probability ``p``."""

    spec: AugmentSpec
    p: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise BadValueError("step probability", self.p, fix="Use a probability in [0, 1].")


@dataclass(frozen=True)
class Chain(AugmentSpec):
    """Apply steps in order; each step has its own child generator and probability.

    Each step gets an independent child of the clip's generator (``rng.spawn``), so the
    parameters of one step do not depend on whether another step was applied. The params
    record is ``{"steps": [{"kind", "applied", "params"}, ...]}`` and replays exactly.

    Attributes:
        steps: the steps, in order.
    """

    kind = "chain"

    def extras(self) -> frozenset[str]:
        return frozenset().union(*(s.spec.extras() for s in self.steps))

    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        if not self.steps or not all(isinstance(s, Step) for s in self.steps):
            raise BadValueError("chain steps", self.steps, fix="Pass a non-empty tuple of Step(spec, p).")

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "steps": [{"p": s.p, **s.spec.config()} for s in self.steps],
        }

    def draw(self, rng: np.random.Generator, n_samples: int, sr: int) -> dict[str, Any]:
        out = []
        n = n_samples
        for step, child in zip(self.steps, rng.spawn(len(self.steps)), strict=True):
            applied = bool(step.p >= 1.0 or child.random() < step.p)
            params = step.spec.draw(child, n, sr) if applied else {}
            if applied:
                n = step.spec.out_length(n, sr, params)
            out.append({"kind": step.spec.kind, "applied": applied, "params": params})
        return {"steps": out}

    def out_length(self, n_samples: int, sr: int, params: dict[str, Any]) -> int:
        n = n_samples
        for step, rec in zip(self.steps, params["steps"], strict=True):
            if rec["applied"]:
                n = step.spec.out_length(n, sr, rec["params"])
        return n

    def _apply(self, wav: np.ndarray, sr: int, params: dict[str, Any]) -> np.ndarray:
        recs = params["steps"]
        if len(recs) != len(self.steps):
            raise BadValueError(
                "chain params", f"{len(recs)} steps", fix=f"This chain has {len(self.steps)} steps."
            )
        y = wav
        for step, rec in zip(self.steps, recs, strict=True):
            if rec["applied"]:
                y = step.spec.apply(y, sr, rec["params"])
        return y


def paper_chain() -> Chain:
    """All seven augmentations of the paper, each applied, in recording-path order."""
    return Chain(steps=tuple(Step(s) for s in (
        TimeStretch(), TimeShift(), SpecAugment(), Equalizer(), Reverb(), PinkNoise(), Fade(),
    )))


register(paper_chain(), "paper")

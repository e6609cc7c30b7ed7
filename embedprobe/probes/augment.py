"""Embedding-level augmentations applied while building a training batch.

Three switches, all off by default so a plain probe is the baseline:

* **frame masking then averaging** (``frame_mask``): every frame of a training clip is dropped
  with probability ``frame_mask`` before pooling (at least one frame per clip is kept), so the
  pooled vector is the average of a random subset of the clip. Needs frame-level features.
* **same-label feature mixing** (``mix_prob``): with probability ``mix_prob`` a training clip is
  joined with the frames of another clip *of the same class* (drawn uniformly from the
  training clips of that class, any corpus) and the joined frames are pooled together. Needs
  frame-level features.
* **gaussian noise** (``noise_std``): ``N(0, noise_std^2)`` noise added to the standardised
  pooled features (so ``noise_std`` is in units of each feature's training std). Works on
  pooled or frame input.

:data:`POSTER_AUGMENT` holds settings in the spirit of the poster's recipe for frame input.
Frame-level switches on pooled ``(N, D)`` input are refused by :func:`refuse_frame_augment`
with the command that makes frame features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedprobe.errors import BadValueError
from embedprobe.probes.features import FrameSet, pool_rows, segment_rows
from embedprobe.probes.sampling import SameClass

POSTER_AUGMENT: dict[str, float] = {"frame_mask": 0.3, "mix_prob": 0.5, "noise_std": 0.1}
"""Frame masking, same-label mixing and gaussian noise all on; use with ``set_params(**...)``."""

FRAME_FIX = (
    "Frame masking and same-label mixing need frame-level features: extract them with "
    "'embedprobe extract ... --frames' and pass a FrameSet, or set frame_mask=0 and mix_prob=0"
)


def refuse_frame_augment(frame_mask: float, mix_prob: float) -> None:
    """Raise when frame-level augmentations are asked for pooled ``(N, D)`` input."""
    asked = {k: v for k, v in (("frame_mask", frame_mask), ("mix_prob", mix_prob)) if v}
    if asked:
        name, value = next(iter(asked.items()))
        raise BadValueError(f"{name} for pooled (N, D) input", value, [0.0], fix=FRAME_FIX + ".")


def mix_plan(
    y: np.ndarray, idx: np.ndarray, mix_prob: float, rng: np.random.Generator,
    same_class: SameClass | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Which clips make up each batch item.

    Args:
        y: ``(N,)`` integer labels of all clips.
        idx: ``(B,)`` the batch's clips.
        mix_prob: probability that an item is joined with a same-class partner.
        rng: numpy Generator.
        same_class: where partners come from (build it once with the training clips as the
            pool); default: any clip of ``y``.

    Returns:
        ``(clips, owner)``: clip indices and, for each, the batch position it is pooled into.
        The first ``len(idx)`` entries are ``idx`` itself (``owner = 0..B-1``); then one
        same-class partner for each item chosen for mixing, so ``y[clips] == y[idx[owner]]``.
    """
    b = idx.size
    if mix_prob <= 0:
        return idx, np.arange(b)
    mixed = np.flatnonzero(rng.random(b) < mix_prob)
    part = (same_class if same_class is not None else SameClass(y)).draw(idx[mixed], rng)
    return np.concatenate([idx, part]), np.concatenate([np.arange(b), mixed])


def frame_batch(
    fs: FrameSet,
    idx: np.ndarray,
    y: np.ndarray,
    *,
    frame_mask: float,
    mix_prob: float,
    pooling: str,
    rng: np.random.Generator,
    same_class: SameClass | None = None,
) -> Any:
    """Pool an augmented batch of clips ``idx`` from frame features: ``(B, D)`` or ``(B, 2D)``.

    Args:
        fs: training frames.
        idx: ``(B,)`` clip indices of the batch.
        y: ``(N,)`` integer labels of all training clips (for same-label partners).
        frame_mask: probability of dropping each frame (0 = off).
        mix_prob: probability of joining a same-class partner's frames (0 = off).
        pooling: ``"mean"`` or ``"mean+std"``.
        rng: numpy Generator for every random choice.
        same_class: the partner pool for mixing (see :func:`mix_plan`).
    """
    import torch

    b = idx.size
    clips, owner = mix_plan(y, idx, mix_prob, rng, same_class)
    rows, local = segment_rows(fs.offsets, clips)
    seg = owner[local]
    if frame_mask > 0:
        keep = rng.random(rows.size) >= frame_mask
        kept = np.bincount(seg[keep], minlength=b)
        empty = np.flatnonzero(kept == 0)
        if empty.size:  # keep one random frame of the clip's own frames
            lens = fs.lengths[idx[empty]]
            own_first = np.cumsum(fs.lengths[idx]) - fs.lengths[idx]
            keep[own_first[empty] + (rng.random(empty.size) * lens).astype(np.int64)] = True
        rows, seg = rows[keep], seg[keep]
    return pool_rows(fs.frames.index_select(0, torch.from_numpy(rows)), seg, b, pooling)


def check_switches(frame_mask: float, mix_prob: float, noise_std: float) -> None:
    """Validate the three switches (named error on a bad value)."""
    if not 0.0 <= frame_mask < 1.0:
        raise BadValueError("frame_mask", frame_mask, fix="Use a drop probability in [0, 1), e.g. 0.3.")
    if not 0.0 <= mix_prob <= 1.0:
        raise BadValueError("mix_prob", mix_prob, fix="Use a probability in [0, 1], e.g. 0.5.")
    if not noise_std >= 0.0:
        raise BadValueError("noise_std", noise_std, fix="Use a std >= 0 (in feature-std units), e.g. 0.1.")

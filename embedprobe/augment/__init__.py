"""Waveform augmentations (paper section 5.2) and blind acoustic measurements (section 5.1).

Augmentations are frozen specs that draw recorded parameters from a seeded generator, so
every augmented copy is reproducible from (spec, seed, clip id, copy index)::

    from embedprobe.augment import augment
    out = augment(wav, 16000, "paper", seed=0, clip_id="03a01Fa", copy=2)
    out.wav, out.params, out.record

Each augmentation module registers its own specs (``register(spec)``) and
:data:`AUGMENTATIONS` imports every module of this package on its first lookup, so a new
augmentation is one new file; the names below are re-exported for convenience only.

Acoustic measurements (DNSMOS, T60, C50, WADA-SNR, loudness) live in
:mod:`embedprobe.augment.acoustics`; figures in :mod:`embedprobe.augment.plots` (imported
on demand, they pull matplotlib / onnxruntime).
"""

from embedprobe.augment.base import (
    AUGMENTATIONS,
    Augmented,
    AugmentSpec,
    augment,
    clip_rng,
    replay,
)
from embedprobe.augment.chain import Chain, Step, paper_chain
from embedprobe.augment.environment import PinkNoise, Reverb, pink_noise
from embedprobe.augment.spectral import Equalizer, SpecAugment, apply_mel_masks, spec_augment_mel
from embedprobe.augment.temporal import Fade, TimeShift, TimeStretch

__all__ = [
    "AUGMENTATIONS", "AugmentSpec", "Augmented", "Chain", "Equalizer", "Fade", "PinkNoise",
    "Reverb", "SpecAugment", "Step", "TimeShift", "TimeStretch", "apply_mel_masks", "augment",
    "clip_rng", "paper_chain", "pink_noise", "replay", "spec_augment_mel",
]

"""eGeMAPS v02 hand-crafted acoustic parameters, computed by openSMILE (``opensmile`` package).

About the feature set:
    The extended Geneva Minimalistic Acoustic Parameter Set (Eyben et al., IEEE TAC 2016)
    is the standard knowledge-based baseline in speech emotion recognition. Two variants:

    * ``egemaps``: the 88 functionals (means, percentiles, slopes of pitch, loudness,
      jitter/shimmer, formants, spectral slopes, MFCC 1-4, rates of voiced segments) over the
      whole input: one vector per input (``hop_s=None``), layer ``"functionals"``.
    * ``egemaps-lld``: the 25 low-level descriptors every 10 ms (openSMILE frames of
      20 ms, pitch over 60 ms), layer ``"lld"``: ``n_samples // 160 - 4`` frames at 16 kHz.

    openSMILE returns NaN for inputs shorter than 60 ms, hence ``min_duration_s = 0.1``.

Licence:
    openSMILE / ``opensmile`` is under audEERING's research-only licence (free for
    private, research and educational use; commercial use needs a licence from
    audEERING), although the package's classifier says MIT. Record this with any numbers
    you publish.
"""

from __future__ import annotations

import numpy as np

from embedprobe.errors import BadValueError, MissingDependencyError
from embedprobe.extractors.base import Extractor, ExtractorSpec, as_mono_float32
from embedprobe.extractors.registry import register

LICENCE = "audEERING research-only licence (openSMILE; commercial use needs an audEERING licence)"


class EGeMAPS(Extractor):
    """eGeMAPSv02 functionals or LLDs via ``opensmile.Smile.process_signal``.

    ``device`` is ignored (openSMILE runs on the CPU).
    """
    chunk_context_s = (1.0, 1.0)  # LLDs: 60 ms windows and smoothing; pooled LLDs agree to ~1e-6

    replicate_on_cpu = True  # opensmile runs on one thread: EmoDB 28.8 s -> 17.1 s with 2 workers

    def _load(self) -> None:
        try:
            import opensmile
        except ImportError:
            raise MissingDependencyError("opensmile", "egemaps", "eGeMAPS features") from None
        level = self.spec.param("feature_level")
        self._smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02,
            feature_level=opensmile.FeatureLevel(level),
            num_workers=1,
        )
        self.feature_names: list[str] = list(self._smile.feature_names)
        if len(self.feature_names) != self.spec.dim:
            raise RuntimeError(
                f"opensmile {opensmile.__version__} gives {len(self.feature_names)} eGeMAPSv02 "
                f"'{level}' features, expected {self.spec.dim}: pin opensmile>=2.5,<3"
            )

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        self.load()
        wav = as_mono_float32(wav)
        sr = self.spec.sample_rate
        if len(wav) < self.spec.min_duration_s * sr:
            raise BadValueError(
                "input length",
                f"{len(wav) / sr:.3f} s",
                fix=f"{self.spec.name} needs at least {self.spec.min_duration_s} s of audio "
                "(openSMILE returns NaN for shorter input).",
            )
        df = self._smile.process_signal(wav, sr)
        out = df.to_numpy(dtype=np.float32)
        if self.spec.hop_s is not None and len(out) != self.n_frames(len(wav)):
            raise RuntimeError(
                f"opensmile returned {len(out)} LLD frames for {len(wav)} samples, expected "
                f"{self.n_frames(len(wav))}: the openSMILE framing changed; pin opensmile>=2.5,<3"
            )
        return {self.spec.layers[0]: np.ascontiguousarray(out)}

    def n_frames(self, n_samples: int) -> int:
        if self.spec.hop_s is None:
            return 1
        # openSMILE's eGeMAPS LLD output: one row per 10 ms hop minus the 60 ms pitch-window tail
        hop = round(self.spec.hop_s * self.spec.sample_rate)
        return max(1, n_samples // hop - 4)


def _spec(level: str) -> ExtractorSpec:
    functionals = level == "func"
    return ExtractorSpec(
        name="egemaps" if functionals else "egemaps-lld",
        family="egemaps",
        sample_rate=16000,
        dim=88 if functionals else 25,
        layers=("functionals",) if functionals else ("lld",),
        hop_s=None if functionals else 0.01,
        licence=LICENCE,
        extra="egemaps",
        min_duration_s=0.1,
        description=(
            "eGeMAPSv02 88 functionals per clip (openSMILE)"
            if functionals
            else "eGeMAPSv02 25 low-level descriptors every 10 ms (openSMILE)"
        ),
        params=(("feature_level", level), ("feature_set", "eGeMAPSv02")),
    )


EGEMAPS = register(_spec("func"), EGeMAPS)
EGEMAPS_LLD = register(_spec("lld"), EGeMAPS)

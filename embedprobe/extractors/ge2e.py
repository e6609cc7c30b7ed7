"""GE2E speaker embeddings: the Resemblyzer voice encoder (256-d), weights from its wheel.

About the model:
    A 3-layer LSTM (256 units) + linear + ReLU trained with the generalised end-to-end
    loss (Wan et al., ICASSP 2018) on speaker verification data; Resemblyzer 0.1.4 ships
    the checkpoint as ``resemblyzer/pretrained.pt`` (17 MB, Apache-2.0). A speaker
    embedding is the usual "who is talking" control in emotion probing: an emotion probe
    that does no better than a speaker embedding is mostly reading speaker identity.

What embedprobe computes (a pure function of the input):
    1. Volume normalisation as Resemblyzer's ``preprocess_wav``: gain up (never down) to
       -30 dBFS RMS. Resemblyzer's webrtcvad silence trimming is *not* applied, so the
       output depends only on the samples given and the frame count on their number.
    2. 40-band mel power spectrogram (not log), 25 ms window / 10 ms hop, computed here in
       numpy with librosa's conventions (Resemblyzer's ``wav_to_mel_spectrogram``).
    3. Partial utterances of 160 mel frames (1.6 s) every 77 frames (0.77 s, Resemblyzer's
       default rate of 1.3 partials/s); the last one is kept when at least 75 % of it is
       audio (zero-padded), and there is always at least one.
    4. Each partial goes through the LSTM; its embedding is ReLU'd and L2-normalised.

    Frames = the partial embeddings, layer ``"embedding"``, ``hop_s = 0.77``. Mean-pooling
    the frames and L2-normalising the mean gives exactly Resemblyzer's
    ``embed_utterance`` clip embedding (for the same, untrimmed input).

    Only ``pretrained.pt`` is used; Resemblyzer's own module (which imports librosa and
    webrtcvad) is never imported. ``weights=`` may point at another ``pretrained.pt``-style
    checkpoint (a dict with ``model_state``) or a directory holding one.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.errors import MissingDependencyError, MissingWeightsError
from embedprobe.extractors._mel import mel_spectrogram
from embedprobe.extractors.base import Extractor, ExtractorSpec, as_mono_float32
from embedprobe.extractors.pickle_scan import UnsafePickleError
from embedprobe.extractors.registry import register
from embedprobe.extractors.safeload import load_torch_checkpoint

WEIGHTS_FILE = "pretrained.pt"
WEIGHTS_SHA256_12 = "39373b86598f"  # resemblyzer 0.1.4's pretrained.pt
_SR = 16000
_HOP = 160  # 10 ms mel hop
_PARTIAL = 160  # mel frames per partial utterance (1.6 s)


def packaged_weights() -> Path | None:
    """Path of the checkpoint inside the installed resemblyzer wheel, without importing it."""
    try:
        spec = importlib.util.find_spec("resemblyzer")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE


@lru_cache(maxsize=8)
def _sha256_12(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while blk := f.read(1 << 20):
            h.update(blk)
    return h.hexdigest()[:12]


def partial_starts(n_samples: int, frame_step: int, min_coverage: float) -> np.ndarray:
    """Start mel frames of the partial utterances (Resemblyzer's ``compute_partial_slices``)."""
    n_mel = int(np.ceil((n_samples + 1) / _HOP))
    steps = max(1, n_mel - _PARTIAL + frame_step + 1)
    starts = np.arange(0, steps, frame_step)
    coverage = (n_samples - starts[-1] * _HOP) / (_PARTIAL * _HOP)
    if coverage < min_coverage and len(starts) > 1:
        starts = starts[:-1]
    return starts


def normalize_volume(wav: np.ndarray, target_dbfs: float, rms: float | None = None) -> np.ndarray:
    """Gain ``wav`` up (never down) so its RMS (or the whole clip's ``rms``) is ``target_dbfs`` dB re full scale."""
    if rms is None:
        rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    if rms <= 0.0:
        return wav
    change_db = target_dbfs - 20.0 * np.log10(rms)
    if change_db <= 0:
        return wav
    return (wav * np.float32(10.0 ** (change_db / 20.0))).astype(np.float32, copy=False)


def _build_encoder():
    from torch import nn

    class VoiceEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)
            self.relu = nn.ReLU()

        def forward(self, mels):
            _, (hidden, _) = self.lstm(mels)
            raw = self.relu(self.linear(hidden[-1]))
            return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)

    return VoiceEncoder()


class GE2E(Extractor):
    """Resemblyzer's GE2E voice encoder; frames are 1.6 s partial-utterance embeddings."""
    chunk_context_s = (0.1, 1.7)  # a 1.6 s partial + STFT padding: frames equal the whole's
    uses_clip_stats = True  # the volume gain comes from the whole clip's RMS

    replicate_on_cpu = True  # a small LSTM per clip: EmoDB 23.8 s -> 13.4 s with 2 workers

    def _weights_path(self) -> Path | None:
        if self.weights is not None:
            return self.weights / WEIGHTS_FILE if self.weights.is_dir() else self.weights
        return packaged_weights()

    def weights_present(self) -> bool:
        p = self._weights_path()
        return p is not None and p.is_file()

    def weights_revision(self) -> str | None:
        p = self._weights_path()
        if p is None or not p.is_file():
            return self.spec.weights_revision
        st = p.stat()
        return _sha256_12(str(p.resolve()), st.st_mtime_ns, st.st_size)

    def _load(self) -> None:
        import torch

        path = self._weights_path()
        if path is None:
            raise MissingDependencyError(
                "resemblyzer", "ge2e", "the GE2E weights (they ship in its wheel)"
            )
        if not path.is_file():
            raise MissingWeightsError(
                f"GE2E checkpoint not found at {path}: run pip install 'embedprobe[ge2e]' "
                "(the weights ship inside the resemblyzer wheel) or pass weights=path/to/pretrained.pt"
            )
        try:
            ckpt = load_torch_checkpoint(path, trust_pickle=self.trust_pickle)
        except UnsafePickleError:
            raise
        except Exception as e:  # noqa: BLE001 - any unreadable file means "no usable weights"
            raise MissingWeightsError(
                f"{path} is not a readable torch checkpoint ({type(e).__name__}): point weights= at "
                "Resemblyzer's pretrained.pt or reinstall with pip install 'embedprobe[ge2e]'"
            ) from None
        state = ckpt.get("model_state", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise MissingWeightsError(
                f"{path} is not a Resemblyzer checkpoint (no 'model_state' dict)"
            )
        model = _build_encoder()
        # the checkpoint also holds the GE2E loss's similarity_weight/bias, unused at inference
        missing, _ = model.load_state_dict(state, strict=False)
        if missing:
            raise MissingWeightsError(
                f"{path} lacks encoder weights {missing}: not a Resemblyzer checkpoint"
            )
        self._torch = torch
        self._model = model.to(self.device).eval()
        p = dict(self.spec.params)
        self._step = int(p["partial_step_frames"])
        self._min_cov = float(p["min_coverage"])
        self._dbfs = p["normalize_dbfs"]

    def _partials(self, wav: np.ndarray, stats: Any = None) -> np.ndarray:
        """The ``(n_partials, 160, 40)`` mel windows of one clip (``stats``: of the whole clip)."""
        wav = as_mono_float32(wav)
        if self._dbfs is not None:
            wav = normalize_volume(wav, float(self._dbfs), None if stats is None else stats.rms)
        starts = partial_starts(len(wav), self._step, self._min_cov)
        stop = (starts[-1] + _PARTIAL) * _HOP
        if stop >= len(wav):
            wav = np.pad(wav, (0, stop - len(wav)))
        mel = mel_spectrogram(wav, _SR, n_fft=400, hop_length=_HOP, n_mels=40)
        idx = starts[:, None] + np.arange(_PARTIAL)[None, :]
        return mel[idx]

    def _forward(self, mels: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(mels)).to(self.device)
            return self._model(x).float().cpu().numpy()

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        return self.embed_part(wav, None)

    def embed_part(self, wav: np.ndarray, stats: Any) -> dict[str, np.ndarray]:
        self.load()
        return {self.spec.layers[0]: self._forward(self._partials(wav, stats))}

    def embed_batch(self, wavs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """All partials of all clips go through the LSTM as one batch (they share one length)."""
        self.load()
        if not wavs:
            return []
        parts = [self._partials(w) for w in wavs]
        out = self._forward(np.concatenate(parts))
        bounds = np.cumsum([0] + [len(p) for p in parts])
        return [
            {self.spec.layers[0]: out[a:b]} for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    def n_frames(self, n_samples: int) -> int:
        return len(
            partial_starts(
                n_samples,
                int(self.spec.param("partial_step_frames")),
                float(self.spec.param("min_coverage")),
            )
        )


GE2E_SPEC = register(
    ExtractorSpec(
        name="ge2e",
        family="ge2e",
        sample_rate=_SR,
        dim=256,
        layers=("embedding",),
        hop_s=0.77,
        weights_id="resemblyzer/pretrained.pt",
        weights_revision=WEIGHTS_SHA256_12,
        licence="Apache-2.0 (Resemblyzer code and weights)",
        extra="ge2e",
        min_duration_s=0.0,
        description="GE2E speaker encoder (Resemblyzer), 256-d unit-norm, 1.6 s partials every 0.77 s",
        params=tuple(
            sorted(
                {
                    "n_mels": 40,
                    "n_fft": 400,
                    "hop_length": _HOP,
                    "partial_frames": _PARTIAL,
                    "partial_step_frames": 77,
                    "min_coverage": 0.75,
                    "normalize_dbfs": -30.0,
                    "vad_trim": False,
                }.items()
            )
        ),
    ),
    GE2E,
)

"""DNSMOS P.835 (SIG, BAK, OVRL) on arrays, from the ONNX model shipped in the ``speechmos`` wheel.

Reddy, Gopal and Cutler, "DNSMOS P.835: a non-intrusive perceptual objective speech quality
metric to evaluate noise suppressors", ICASSP 2022. We run the wheel's
``dnsmos_models/sig_bak_ovr.onnx`` directly on onnxruntime, reproducing the scoring of
Microsoft's reference ``dnsmos_local.py`` (as also done by ``speechmos.dnsmos``): 16 kHz
input; clips shorter than 9.01 s are tiled (repeated) up to that length; longer clips are
scored on 9.01 s windows every 1 s and averaged; raw outputs go through the published
polynomial calibration. Only the model file is taken from ``speechmos`` (its Python module
imports ``requests`` and a global session we do not need).
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from embedprobe.errors import BadValueError, MissingDependencyError

SR = 16000
WINDOW_S = 9.01
# calibration polynomials (highest power first) of the non-personalised P.835 model
_POLY = {
    "sig": (-0.08397278, 1.22083953, 0.0052439),
    "bak": (-0.13166888, 1.60915514, -0.39604546),
    "ovrl": (-0.06766283, 1.11546468, 0.04602535),
}


def model_path() -> str:
    """Path of the P.835 ONNX model inside the installed ``speechmos`` package."""
    from importlib.util import find_spec

    spec = find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("speechmos", "acoustics", "DNSMOS")
    path = os.path.join(list(spec.submodule_search_locations)[0], "dnsmos_models", "sig_bak_ovr.onnx")
    if not os.path.isfile(path):
        raise MissingDependencyError("speechmos", "acoustics", f"DNSMOS (model file missing: {path})")
    return path


@lru_cache(maxsize=4)
def _session(threads: int):
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError("onnxruntime", "acoustics", "DNSMOS") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model_path(), opts, providers=["CPUExecutionProvider"])


def windows(wav: np.ndarray) -> np.ndarray:
    """The (n_windows, 144160) float32 model inputs for one 16 kHz clip (tiling / 1 s hops)."""
    n = int(WINDOW_S * SR)
    x = np.asarray(wav, dtype=np.float32)
    if x.size == 0:
        raise BadValueError("clip length", 0, fix="DNSMOS needs a non-empty clip.")
    if len(x) < n:
        x = np.tile(x, int(np.ceil(n / len(x))))  # the reference repeats the clip
    n_hops = int(np.floor(len(x) / SR - WINDOW_S)) + 1
    return np.stack([x[i * SR: i * SR + n] for i in range(n_hops) if len(x[i * SR: i * SR + n]) == n])


def dnsmos(wav: np.ndarray, sr: int, *, threads: int = 1) -> dict[str, float]:
    """DNSMOS P.835 scores of one clip: ``{"mos_sig", "mos_bak", "mos_ovrl"}`` (about 1-5).

    Args:
        wav: mono float waveform; resampled to 16 kHz with soxr if ``sr`` differs.
        sr: its sample rate.
        threads: onnxruntime intra-op threads (one session is cached per value).

    Raises:
        MissingDependencyError: speechmos or onnxruntime is not installed
            (``pip install 'embedprobe[acoustics]'``).
    """
    x = np.asarray(wav, dtype=np.float32)
    if x.ndim != 1:
        raise BadValueError("waveform shape", x.shape, fix="Pass one mono clip as a 1-D array.")
    if int(sr) != SR:
        import soxr

        x = soxr.resample(x, int(sr), SR).astype(np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:  # the model was trained on [-1, 1] audio
        x = x / peak
    sess = _session(int(threads))
    raw = sess.run(None, {"input_1": windows(x)})[0]
    out = {}
    for j, key in enumerate(("sig", "bak", "ovrl")):
        out[f"mos_{key}"] = float(np.mean(np.polyval(_POLY[key], raw[:, j].astype(np.float64))))
    return out

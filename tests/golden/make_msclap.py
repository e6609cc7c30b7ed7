"""Regenerate ``msclap.npz``: msclap's CLAP 2023 audio encoder on seeded random weights.

The reference is msclap 1.3.4's ``msclap.models.clap.AudioEncoder`` built as
``CLAPWrapper.load_clap`` builds it from ``configs/config_2023.yml`` (HTSAT, out_emb 768,
d_proj 1024, 44.1 kHz, ...), with its own torchlibrosa front end. ``msclap/__init__``
imports torchaudio (not importable next to a CPU torch), so the model files are loaded by
path (``_reference.py``); the input is repeated to 7 s by a copy of
``CLAPWrapper.load_audio_into_tensor``'s short-clip branch. Weights come from
``embedprobe.extractors.nets.common.seeded_state``. Run in a throwaway venv:

    python3.11 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 "numpy<2" torchlibrosa==0.1.0 librosa pyyaml
    /tmp/refvenv/bin/pip install --no-deps msclap==1.3.4
    /tmp/refvenv/bin/python tests/golden/make_msclap.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import _reference  # noqa: E402
from signals import speechlike  # noqa: E402

from embedprobe.extractors.nets.common import seeded_state  # noqa: E402
from embedprobe.extractors.nets.htsat import DERIVED_KEYS  # noqa: E402

SEED = 2023
SR, DURATION = 44100, 7  # config_2023.yml: sampling_rate, duration


def msclap_repeat(wav: torch.Tensor) -> torch.Tensor:
    """``CLAPWrapper.load_audio_into_tensor`` for a clip no longer than ``DURATION``."""
    assert DURATION * SR >= wav.shape[0]
    repeat_factor = int(np.ceil((DURATION * SR) / wav.shape[0]))
    return wav.repeat(repeat_factor)[0:DURATION * SR]


def main() -> None:
    torch.set_num_threads(1)
    clap = _reference.msclap_clap()
    enc = clap.AudioEncoder("HTSAT", 768, 1024, SR, 1024, 320, 64, 50, 8000, 527).eval()
    enc.load_state_dict(seeded_state(enc, SEED, skip=DERIVED_KEYS))
    wav = speechlike(1.0, SR, seed=5)
    x = msclap_repeat(torch.from_numpy(wav))[None]
    with torch.no_grad():
        projected, _ = enc(x)
        latent = enc.base(x)["embedding"]
    out = {
        "wav": wav, "embedding": projected.numpy(), "latent": latent.numpy(), "seed": np.array(SEED),
        "keys": np.array(json.dumps({k: list(v.shape) for k, v in enc.state_dict().items()})),
    }
    np.savez_compressed(HERE / "msclap.npz", **out)
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()

"""Regenerate ``cnn14.npz``: PANNs' reference ``Cnn14`` on seeded random weights.

The reference is ``panns_inference.models.Cnn14`` (== audioset_tagging_cnn's ``Cnn14`` /
``Cnn14_16k``) with torchlibrosa's front end. Its weights come from
``embedprobe.extractors.nets.common.seeded_state`` (drawn by key name, so our network gets
the same ones); the front-end tensors keep torchlibrosa/librosa's own values, so the
fixture also pins our STFT kernels and mel filters. Run in a throwaway venv:

    python3.11 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 "numpy<2" panns-inference==0.1.1 \\
        torchlibrosa==0.1.0 librosa
    /tmp/refvenv/bin/python tests/golden/make_cnn14.py

It also writes ``numpy1_checkpoint.pth``: a tiny checkpoint pickled with numpy 1.x globals
(``numpy.core.multiarray._reconstruct`` ...), the reason PANNs checkpoints fail torch's
default ``weights_only=True`` loading.
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

from embedprobe.extractors.nets.cnn14 import DERIVED_KEYS  # noqa: E402
from embedprobe.extractors.nets.common import seeded_state  # noqa: E402

VARIANTS = {  # name: (sr, window, hop, fmax, seconds)
    "16k": (16000, 512, 160, 8000, 1.0),
    "32k": (32000, 1024, 320, 14000, 0.75),
}
SEED = 1234


def main() -> None:
    torch.set_num_threads(1)
    models = _reference.panns_models()
    out: dict[str, np.ndarray] = {}
    for name, (sr, window, hop, fmax, seconds) in VARIANTS.items():
        net = models.Cnn14(sr, window, hop, 64, 50, fmax, 527).eval()
        net.load_state_dict(seeded_state(net, SEED, skip=DERIVED_KEYS))
        wav = speechlike(seconds, sr, seed=7)
        grab: dict[str, torch.Tensor] = {}
        net.conv_block6.register_forward_hook(lambda m, i, o, grab=grab: grab.__setitem__("c6", o))
        with torch.no_grad():
            x = torch.from_numpy(wav)[None]
            logmel = net.logmel_extractor(net.spectrogram_extractor(x))[0, 0]
            res = net(x)
        out[f"{name}_wav"] = wav
        out[f"{name}_logmel"] = logmel.numpy()
        out[f"{name}_embedding"] = res["embedding"].numpy()
        out[f"{name}_frames"] = grab["c6"].mean(dim=3)[0].T.contiguous().numpy()
        out[f"{name}_clipwise"] = res["clipwise_output"].numpy()
        shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
        out[f"{name}_keys"] = np.array(json.dumps(shapes))
    out["seed"] = np.array(SEED)
    np.savez_compressed(HERE / "cnn14.npz", **out)
    # numpy 1.x pickles, as in the PANNs checkpoints
    assert np.__version__.startswith("1."), "run with numpy<2 to pickle numpy.core globals"
    torch.save({"model": {"w": torch.arange(3.0)}, "iteration": np.int64(600000),
                "statistics": {"mAP": np.float64(0.438), "per_class": np.arange(3.0)}},
               HERE / "numpy1_checkpoint.pth")
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()

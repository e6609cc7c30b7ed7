"""Regenerate ``vggish.npz``: torchvggish's reference front end and VGG on seeded random weights.

The reference is torchvggish 0.2 (PyPI): ``vggish_input.waveform_to_examples`` (the numpy
port of TF VGGish's ``mel_features``) and ``torchvggish.VGG`` built without its
postprocessor (whose constructor downloads the PCA file); the PCA and quantisation are
``Postprocessor.postprocess`` applied to seeded PCA parameters. Weights come from
``embedprobe.extractors.nets.common.seeded_state`` (drawn by key name: VGG with ``SEED``,
PCA with ``SEED + 1``, as ``VGGishExtractor.random_init`` does). Run in a throwaway venv:

    python3.11 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 "numpy<2" torchvggish==0.2 resampy soundfile
    /tmp/refvenv/bin/python tests/golden/make_vggish.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import _reference  # noqa: E402
from signals import speechlike  # noqa: E402

from embedprobe.extractors.nets.common import seeded_state  # noqa: E402

SEED = 4321


class PCAParams(nn.Module):
    """Just the two tensors of ``vggish_pca_params-970ea276.pth``, named as in that file."""

    def __init__(self) -> None:
        super().__init__()
        self.pca_eigen_vectors = nn.Parameter(torch.zeros(128, 128))
        self.pca_means = nn.Parameter(torch.zeros(128))


def main() -> None:
    torch.set_num_threads(1)
    tv, vinput = _reference.torchvggish_modules()
    vgg = tv.VGG(tv.make_layers(), postprocess=False).eval()
    vgg.load_state_dict(seeded_state(vgg, SEED))
    pca = seeded_state(PCAParams(), SEED + 1)
    post = object.__new__(tv.Postprocessor)  # its __init__ downloads the real PCA file
    post._pca_matrix = pca["pca_eigen_vectors"]
    post._pca_means = pca["pca_means"].reshape(-1, 1)

    wav = speechlike(2.2, 16000, seed=11)
    examples = vinput.waveform_to_examples(wav.astype(np.float64), 16000, return_tensor=True)
    with torch.no_grad():
        pre = vgg(examples.detach())
        pca_applied = torch.mm(post._pca_matrix, pre.t() - post._pca_means).t()
        quantised = post.postprocess(pre)
    out = {
        "wav": wav, "examples": examples.detach()[:, 0].numpy(), "pre_pca": pre.numpy(),
        "embedding": pca_applied.numpy(), "quantised": quantised.numpy(), "seed": np.array(SEED),
        "keys": np.array(json.dumps({k: list(v.shape) for k, v in vgg.state_dict().items()})),
    }
    np.savez_compressed(HERE / "vggish.npz", **out)
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()

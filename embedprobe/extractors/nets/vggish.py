"""VGGish (Hershey et al., 2017) as converted by torchvggish: log-mel front end, VGG, PCA.

The front end follows the TensorFlow reference ``vggish_input.py`` / ``mel_features.py``
(computed here in float64, as numpy does there): frames of 400 samples (25 ms) every 160
(10 ms) without padding, periodic Hann window, 512-point FFT magnitude (not power), 64 HTK-mel
bands 125-7500 Hz with the DC bin zeroed, ``log(mel + 0.01)``, then non-overlapping examples of
96 frames (0.96 s); a partial last example is dropped.

The VGG's ``features.*`` / ``embeddings.*`` names match ``vggish-10086976.pth``; as in
torchvggish, the last 128-d layer is followed by a ReLU. ``Postprocessor`` holds the PCA of
``vggish_pca_params-970ea276.pth`` (``pca_eigen_vectors``, ``pca_means``) and applies it
without the 8-bit quantisation (``quantize`` gives torchvggish's quantised values).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 64
EXAMPLE_FRAMES = 96  # 0.96 s
LOG_OFFSET = 0.01


def htk_mel_matrix(n_mels: int = N_MELS, n_bins: int = N_FFT // 2 + 1, sr: int = SAMPLE_RATE,
                   fmin: float = 125.0, fmax: float = 7500.0) -> np.ndarray:
    """``mel_features.spectrogram_to_mel_matrix``: ``(n_bins, n_mels)`` float64, DC row zero."""
    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    bins_mel = mel(np.linspace(0.0, sr / 2.0, n_bins))
    edges = np.linspace(mel(fmin), mel(fmax), n_mels + 2)
    lower = (bins_mel[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])[None, :]
    upper = (edges[None, 2:] - bins_mel[:, None]) / (edges[2:] - edges[1:-1])[None, :]
    out = np.maximum(0.0, np.minimum(lower, upper))
    out[0, :] = 0.0
    return out


def n_examples(n_samples: int) -> int:
    """Complete 96-frame examples in ``n_samples`` (0 below 15,600 samples)."""
    if n_samples < WINDOW:
        return 0
    frames = 1 + (n_samples - WINDOW) // HOP
    return 0 if frames < EXAMPLE_FRAMES else 1 + (frames - EXAMPLE_FRAMES) // EXAMPLE_FRAMES


class LogMelExamples(nn.Module):
    """Waveform ``(n,)`` at 16 kHz -> examples ``(n_examples, 1, 96, 64)`` float32."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.empty(WINDOW, dtype=torch.float64), persistent=False)
        self.register_buffer("mel", torch.empty(N_FFT // 2 + 1, N_MELS, dtype=torch.float64),
                             persistent=False)
        self.init_derived()

    def init_derived(self) -> None:
        n = torch.arange(WINDOW, dtype=torch.float64)
        self.window.copy_(0.5 - 0.5 * torch.cos(2 * np.pi / WINDOW * n))
        self.mel.copy_(torch.from_numpy(htk_mel_matrix()))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        k = n_examples(wav.shape[0])
        frames = wav.to(torch.float64).unfold(0, WINDOW, HOP)[: k * EXAMPLE_FRAMES]
        mag = torch.fft.rfft(frames * self.window, n=N_FFT).abs()
        logmel = torch.log(mag @ self.mel + LOG_OFFSET)
        return logmel.reshape(k, 1, EXAMPLE_FRAMES, N_MELS).to(torch.float32)


def make_features(widths: tuple[int, ...] = (64, 128, 256, 512)) -> nn.Sequential:
    """The conv stack; indices (and so key names) as torchvggish's ``make_layers``."""
    plan = [widths[0], "M", widths[1], "M", widths[2], widths[2], "M", widths[3], widths[3], "M"]
    layers: list[nn.Module] = []
    c_in = 1
    for v in plan:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            c_in = int(v)
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGGish's VGG: examples ``(B, 1, 96, 64)`` -> 128-d embeddings (after the final ReLU).

    ``widths``/``hidden`` other than the defaults only make small random-init test models.
    """

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512), hidden: int = 4096,
                 dim: int = 128):
        super().__init__()
        self.features = make_features(widths)
        self.embeddings = nn.Sequential(
            nn.Linear(widths[-1] * 6 * 4, hidden), nn.ReLU(True),
            nn.Linear(hidden, hidden), nn.ReLU(True),
            nn.Linear(hidden, dim), nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, C, 6, 4)
        x = x.permute(0, 2, 3, 1).contiguous().flatten(1)  # TF's NHWC flattening order
        return self.embeddings(x)


class Postprocessor(nn.Module):
    """The AudioSet PCA (with whitening): ``V (e - mu)``; quantisation is separate."""

    def __init__(self, dim: int = 128):
        super().__init__()
        self.pca_eigen_vectors = nn.Parameter(torch.empty(dim, dim), requires_grad=False)
        self.pca_means = nn.Parameter(torch.empty(dim), requires_grad=False)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return (emb - self.pca_means) @ self.pca_eigen_vectors.T

    @staticmethod
    def quantize(pca: torch.Tensor) -> torch.Tensor:
        """torchvggish's 8-bit values: clip to [-2, 2], map to 0..255, round."""
        return torch.round((torch.clamp(pca, -2.0, 2.0) + 2.0) * (255.0 / 4.0))

"""CNN14 of PANNs (Kong et al., 2020), inference only, with the official checkpoint key names.

Same computation as ``models.Cnn14`` in ``qiuqiangkong/audioset_tagging_cnn`` /
``panns_inference`` in eval mode: log-mel front end (torchlibrosa conventions, see
``common.py``), ``bn0`` over mel bins, six VGG-like conv blocks (3x3 conv-BN-ReLU twice, 2x2
average pooling in blocks 1-5, none in block 6), mean over frequency, then
``max_t + mean_t`` -> ``fc1`` -> ReLU = the 2048-d clip embedding. The frame sequence is the
conv_block6 output after the frequency mean, one 2048-d vector per 32 STFT hops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embedprobe.extractors.nets.common import LogmelFilterBank, Spectrogram

WIDTHS = (64, 128, 256, 512, 1024, 2048)
TIME_STRIDE = 32  # five 2x2 average poolings
# Keys the network computes itself from its configuration (the checkpoints store them too).
DERIVED_KEYS = (r"spectrogram_extractor\.stft\.conv_(real|imag)\.weight", r"logmel_extractor\.melW")


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14(nn.Module):
    """CNN14; ``widths`` other than the default only make small random-init test models.

    Args:
        sample_rate, window_size, hop_size, mel_bins, fmin, fmax: the log-mel front end.
        classes_num: outputs of the AudioSet head (kept so official checkpoints load).
        widths: channels of the six conv blocks; the embedding has ``widths[-1]`` dims.
    """

    def __init__(self, sample_rate: int, window_size: int, hop_size: int, mel_bins: int,
                 fmin: float, fmax: float, classes_num: int = 527, widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        self.spectrogram_extractor = Spectrogram(window_size, hop_size)
        self.logmel_extractor = LogmelFilterBank(sample_rate, window_size, mel_bins, fmin, fmax)
        self.bn0 = nn.BatchNorm2d(mel_bins)
        chans = (1, *widths)
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", ConvBlock(chans[i], chans[i + 1]))
        self.fc1 = nn.Linear(widths[-1], widths[-1])
        self.fc_audioset = nn.Linear(widths[-1], classes_num)

    def logmel(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` -> normalised log-mel ``(B, 1, frames, mel_bins)`` (after ``bn0``)."""
        x = self.logmel_extractor(self.spectrogram_extractor(wav))
        return self.bn0(x.transpose(1, 3)).transpose(1, 3)

    def forward(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(B, n)`` waveforms -> ``frames (B, frames // 32, D)``, ``embedding (B, D)``, ``clipwise (B, 527)``."""
        x = self.logmel(wav)
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, 2 if i < 6 else 1)
        frames = x.mean(dim=3)  # (B, D, T')
        pooled = frames.max(dim=2).values + frames.mean(dim=2)
        embedding = F.relu(self.fc1(pooled))
        return {
            "frames": frames.transpose(1, 2),
            "embedding": embedding,
            "clipwise": torch.sigmoid(self.fc_audioset(embedding)),
        }

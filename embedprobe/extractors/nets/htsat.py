"""The audio encoder of Microsoft CLAP 2023: HTS-AT (Chen et al., ICASSP 2022) + CLAP projection.

Same computation, in eval mode, as ``msclap.models.clap.AudioEncoder("HTSAT", ...)`` of
msclap 1.3 (``htsat.py``, itself from Ke Chen's HTS-AT and Microsoft's Swin Transformer), with
the same parameter and buffer names (``base.htsat.*``, ``projection.*``).

msclap builds HTS-AT from its ``models/config.py`` and *ignores* the audio settings of
``config_2023.yml``: the front end is torchlibrosa's log-mel for 32 kHz (1024 window, 320 hop,
64 mel, 50-14000 Hz), while ``CLAPWrapper`` feeds it 44.1 kHz audio. The pretrained weights
were learned that way, so it is reproduced as is.

Pipeline for one 7 s window (308,700 samples at 44.1 kHz):
    log-mel ``(965, 64)`` -> ``bn0`` -> bicubic resize to ``(1024, 64)`` -> fold into a
    256 x 256 image (four 256-frame chunks stacked along frequency) -> 4x4 patches (96-d)
    -> Swin stages of depth (2, 2, 6, 2), heads (4, 8, 16, 32), window 8, patch merging
    between stages -> LayerNorm -> mean over the 64 final tokens = 768-d ``latent`` ->
    projection ``LayerNorm(W1 x + W2 gelu(W1 x))`` = 1024-d CLAP audio embedding.

Attention uses ``scaled_dot_product_attention`` with the relative position bias (and the
shifted-window mask, -100 as in the original) as an additive mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embedprobe.extractors.nets.common import LogmelFilterBank, Spectrogram

# msclap/models/config.py (the HTS-AT config msclap actually uses)
FRONTEND = {"sample_rate": 32000, "window_size": 1024, "hop_size": 320, "mel_bins": 64,
            "fmin": 50, "fmax": 14000}
DERIVED_KEYS = (
    r".*spectrogram_extractor\.stft\.conv_(real|imag)\.weight", r".*logmel_extractor\.melW",
    r".*relative_position_index", r".*attn_mask",
)


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B, nW, w*w, C)``."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // w) * (wd // w), w * w, c)


def window_reverse(x: torch.Tensor, w: int, h: int, wd: int) -> torch.Tensor:
    """``(B, nW, w*w, C)`` -> ``(B, H, W, C)``."""
    b, c = x.shape[0], x.shape[-1]
    x = x.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window: int, heads: int):
        super().__init__()
        self.window, self.heads = window, heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", torch.zeros(window**2, window**2, dtype=torch.long))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.init_derived()

    def init_derived(self) -> None:
        w = self.window
        coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (w - 1)
        self.relative_position_index.copy_(rel[:, :, 0] * (2 * w - 1) + rel[:, :, 1])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x (B, nW, N, C)``; ``mask (nW, N, N)`` or ``None``."""
        b, nw, n, c = x.shape
        qkv = self.qkv(x).view(b, nw, n, 3, self.heads, c // self.heads).permute(3, 0, 1, 4, 2, 5)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, self.heads).permute(2, 0, 1)  # (heads, N, N)
        bias = bias[None] if mask is None else bias[None] + mask[:, None]  # (nW or 1, heads, N, N)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias.to(x.dtype))
        return self.proj(out.transpose(2, 3).reshape(b, nw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, resolution: tuple[int, int], heads: int, window: int, shift: int,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.resolution = resolution
        if min(resolution) <= window:  # the window covers the map: no partition, no shift
            window, shift = min(resolution), 0
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        n_win = (resolution[0] // window) * (resolution[1] // window)
        mask = torch.zeros(n_win, window**2, window**2) if shift > 0 else None
        self.register_buffer("attn_mask", mask)
        self.init_derived()

    def init_derived(self) -> None:
        if self.attn_mask is None:
            return
        h, w = self.resolution
        ws, s = self.window, self.shift
        img = torch.zeros(1, h, w, 1)
        cnt = 0
        for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                img[:, hs, wsl, :] = cnt
                cnt += 1
        win = window_partition(img, ws)[0, :, :, 0]  # (nW, N)
        diff = win[:, None, :] - win[:, :, None]
        self.attn_mask.copy_(torch.where(diff != 0, -100.0, 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, n, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.window), self.attn_mask)
        y = window_reverse(y, self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y.reshape(b, n, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, resolution: tuple[int, int], dim: int):
        super().__init__()
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, heads: int, window: int,
                 downsample: bool):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinBlock(dim, resolution, heads, window, 0 if i % 2 == 0 else window // 2)
            for i in range(depth)])
        self.downsample = PatchMerging(resolution, dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(1, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class HTSAT(nn.Module):
    """HTS-AT (``HTSAT_Swin_Transformer``) up to its latent output; heads kept for the checkpoint."""

    def __init__(self, embed_dim: int = 96, depths: tuple[int, ...] = (2, 2, 6, 2),
                 heads: tuple[int, ...] = (4, 8, 16, 32), window: int = 8, spec_size: int = 256,
                 patch: int = 4, classes_num: int = 527, frontend: dict | None = None):
        super().__init__()
        fe = {**FRONTEND, **(frontend or {})}
        self.spec_size, self.freq_ratio = spec_size, spec_size // fe["mel_bins"]
        self.spectrogram_extractor = Spectrogram(fe["window_size"], fe["hop_size"])
        self.logmel_extractor = LogmelFilterBank(fe["sample_rate"], fe["window_size"], fe["mel_bins"],
                                                 fe["fmin"], fe["fmax"])
        self.bn0 = nn.BatchNorm2d(fe["mel_bins"])
        self.patch_embed = PatchEmbed(patch, embed_dim)
        grid = spec_size // patch
        self.layers = nn.ModuleList([
            BasicLayer(embed_dim * 2**i, (grid // 2**i, grid // 2**i), depths[i], heads[i], window,
                       downsample=i < len(depths) - 1)
            for i in range(len(depths))])
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)
        sf = spec_size // 2 ** (len(depths) - 1) // patch // self.freq_ratio
        self.tscam_conv = nn.Conv2d(self.num_features, classes_num, (sf, 3), padding=(0, 1))
        self.head = nn.Linear(classes_num, classes_num)

    def to_image(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` -> the 256 x 256 log-mel "image" ``(B, 1, 256, 256)``."""
        x = self.logmel_extractor(self.spectrogram_extractor(wav))  # (B, 1, T, F)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        target_t, f = self.spec_size * self.freq_ratio, x.shape[3]
        if x.shape[2] > target_t:
            raise ValueError(f"HTS-AT takes at most {target_t} frames, got {x.shape[2]}; window the input")
        if x.shape[2] < target_t:
            x = F.interpolate(x, (target_t, f), mode="bicubic", align_corners=True)
        b = x.shape[0]
        x = x.permute(0, 1, 3, 2).reshape(b, 1, f, self.freq_ratio, target_t // self.freq_ratio)
        return x.permute(0, 1, 3, 2, 4).reshape(b, 1, f * self.freq_ratio, target_t // self.freq_ratio)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` -> latent ``(B, 768)`` (mean of the final normalised tokens)."""
        x = self.patch_embed(self.to_image(wav))
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).mean(dim=1)


class HTSATWrapper(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.htsat = HTSAT(**kw)


class Projection(nn.Module):
    """CLAP's projection head (dropout omitted: inference only)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.linear1(x)
        return self.layer_norm(e1 + self.linear2(F.gelu(e1)))


class ClapAudioEncoder(nn.Module):
    """``audio_encoder`` of msclap's ``CLAP``: HTS-AT latent -> projection."""

    def __init__(self, d_proj: int = 1024, **htsat_kw):
        super().__init__()
        self.base = HTSATWrapper(**htsat_kw)
        self.projection = Projection(self.base.htsat.num_features, d_proj)

    def forward(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        latent = self.base.htsat(wav)
        return {"latent": latent, "embedding": self.projection(latent)}

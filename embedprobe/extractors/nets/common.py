"""Pieces shared by the nets: the torchlibrosa-equivalent log-mel front end and checked state-dict loading.

``Spectrogram`` and ``LogmelFilterBank`` reproduce ``torchlibrosa.stft`` (the front end of PANNs
and HTS-AT) with the same parameter names (``stft.conv_real.weight``, ``stft.conv_imag.weight``,
``melW``), so official checkpoints, which store these tensors, load unchanged: a centred STFT
(reflect padding of ``n_fft // 2``) as two ``Conv1d`` with the windowed DFT basis, power
``re^2 + im^2``, Slaney-normalised Slaney-scale mel filters (librosa's defaults), and
``10 log10(max(mel, amin)) - 10 log10(max(amin, ref))`` with no ``top_db`` clipping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from embedprobe.errors import BadValueError
from embedprobe.extractors._mel import mel_filterbank


def dft_basis(n_fft: int, win_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary windowed DFT kernels, each ``(n_fft // 2 + 1, 1, n_fft)`` float32.

    The window is librosa's periodic Hann of ``win_length`` centred in ``n_fft`` samples; the
    phase ``2 pi k n / n_fft`` is reduced modulo ``n_fft`` before the cosine, so it is exact.
    """
    n = np.arange(n_fft)
    win = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    win[left:left + win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    k = np.arange(n_fft // 2 + 1)
    phase = 2 * np.pi * ((k[:, None] * n[None, :]) % n_fft) / n_fft
    real = (np.cos(phase) * win[None, :]).astype(np.float32)[:, None, :]
    imag = (-np.sin(phase) * win[None, :]).astype(np.float32)[:, None, :]
    return real, imag


class STFT(nn.Module):
    """Centred STFT as two strided ``Conv1d`` (torchlibrosa's ``STFT``, forward only)."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int | None = None, center: bool = True,
                 pad_mode: str = "reflect"):
        super().__init__()
        self.n_fft, self.hop_length, self.center, self.pad_mode = n_fft, hop_length, center, pad_mode
        bins = n_fft // 2 + 1
        self.win_length = win_length or n_fft
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop_length, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop_length, bias=False)
        for p in self.parameters():
            p.requires_grad_(False)
        self.init_derived()

    def init_derived(self) -> None:
        real, imag = dft_basis(self.n_fft, self.win_length)
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(real))
            self.conv_imag.weight.copy_(torch.from_numpy(imag))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, n)`` -> real, imag, each ``(B, 1, frames, n_fft // 2 + 1)``."""
        x = x[:, None, :]
        if self.center:
            x = nn.functional.pad(x, (self.n_fft // 2, self.n_fft // 2), mode=self.pad_mode)
        return self.conv_real(x)[:, None].transpose(2, 3), self.conv_imag(x)[:, None].transpose(2, 3)


class Spectrogram(nn.Module):
    """Power spectrogram ``(B, 1, frames, bins)`` (torchlibrosa's ``Spectrogram`` with power 2)."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int | None = None):
        super().__init__()
        self.stft = STFT(n_fft, hop_length, win_length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(x)
        return real**2 + imag**2


class LogmelFilterBank(nn.Module):
    """Mel projection + power-to-dB (torchlibrosa's ``LogmelFilterBank`` with ``top_db=None``)."""

    def __init__(self, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
                 ref: float = 1.0, amin: float = 1e-10):
        super().__init__()
        self.config = (sr, n_fft, n_mels, float(fmin), float(fmax))
        self.melW = nn.Parameter(torch.empty(n_fft // 2 + 1, n_mels), requires_grad=False)
        self.ref, self.amin = ref, amin
        self.init_derived()

    def init_derived(self) -> None:
        mel = np.array(mel_filterbank(*self.config), dtype=np.float32)
        with torch.no_grad():
            self.melW.copy_(torch.from_numpy(np.ascontiguousarray(mel.T)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(x, self.melW)
        return 10.0 * torch.log10(torch.clamp(mel, min=self.amin)) - 10.0 * np.log10(max(self.amin, self.ref))


def n_stft_frames(n_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT (even ``n_fft``): ``1 + n_samples // hop_length``."""
    return 1 + n_samples // hop_length


def build_uninitialised(factory: Callable[[], nn.Module], device: str = "cpu") -> nn.Module:
    """Build a network without running its (slow, soon overwritten) random initialisation.

    The module is created on the meta device, given real uninitialised storage on ``device``,
    and every submodule with an ``init_derived()`` method (STFT kernels, mel filters, position
    indices, attention masks) recomputes its derived tensors. The caller must then load every
    learned tensor (``load_checked`` guarantees that).
    """
    with torch.device("meta"):
        net = factory()
    net = net.to_empty(device=device)
    for m in net.modules():
        if hasattr(m, "init_derived"):
            m.init_derived()
    return net


# -- checked loading ------------------------------------------------------------------------------
def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Entries whose key starts with ``prefix``, with the prefix removed (``module.`` is ignored)."""
    out = {}
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        if k.startswith(prefix):
            out[k[len(prefix):]] = value
    return out


def load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], *, what: str,
                 derived: Iterable[str] = (), ignore: Iterable[str] = ()) -> None:
    """Load ``state`` into ``module``: every learned tensor must match by name and shape.

    Args:
        module: the network.
        state: the checkpoint's tensors, named as in ``module.state_dict()``.
        what: model name for error messages.
        derived: regexes of keys the module computes itself (STFT kernels, position indices,
            attention masks); a checkpoint may omit them, and if it has them its values win.
        ignore: regexes of checkpoint keys that belong to other parts of the original model
            (e.g. a text encoder) and are dropped.

    Raises:
        BadValueError: learned tensors are missing, unexpected, or have the wrong shape.
    """
    derived_re = [re.compile(p) for p in derived]
    ignore_re = [re.compile(p) for p in ignore]
    own = module.state_dict()
    state = {k: v for k, v in state.items() if not any(r.fullmatch(k) for r in ignore_re)}
    missing = [k for k in own if k not in state and not any(r.fullmatch(k) for r in derived_re)
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
             for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        def few(xs: list[str]) -> str:
            return ", ".join(xs[:4]) + (f" and {len(xs) - 4} more" if len(xs) > 4 else "")
        problems = [f"missing {few(missing)}" if missing else "",
                    f"unexpected {few(unexpected)}" if unexpected else "",
                    f"wrong shapes {few(wrong)}" if wrong else ""]
        raise BadValueError(
            f"{what} checkpoint", "; ".join(p for p in problems if p), None,
            fix=f"The file is not an official {what} checkpoint (or is another variant of it): "
                "check the file name against the model name")
    module.load_state_dict(state, strict=False)


# -- deterministic weights for tests --------------------------------------------------------------
def seeded_state(module: nn.Module, seed: int, skip: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """A reproducible random state dict for ``module``'s keys, independent of its init code.

    Tensors are drawn in sorted key order from one ``torch.Generator`` as uniform noise
    ``U(-1, 1) * sqrt(3)`` (unit variance, cheaper than normal draws), scaled: matrices and
    kernels to variance ``1/fan_in``, norm scales ``1 + 0.1 u``, biases and running means
    ``0.1 u``, running variances ``U(0.5, 1.5)``. Keys matching a ``skip`` regex keep the
    module's values. Two modules with the same key names and shapes (ours and a reference
    implementation) therefore get identical weights.
    """
    g = torch.Generator().manual_seed(seed)
    skip_re = [re.compile(p) for p in skip]
    out = {}
    for key, value in sorted(module.state_dict().items()):
        if not value.is_floating_point() or any(r.fullmatch(key) for r in skip_re):
            out[key] = value.clone()
            continue
        shape = tuple(value.shape)
        t = torch.empty(shape).uniform_(generator=g)
        if key.endswith("running_var"):
            t.add_(0.5)
        else:
            if key.endswith(("running_mean", "bias")) or value.ndim == 0:
                scale, offset = 0.1, 0.0
            elif value.ndim == 1:
                scale, offset = 0.1, 1.0
            else:
                scale, offset = 1.0 / np.sqrt(max(int(np.prod(shape[1:])), 1)), 0.0
            t.mul_(2.0 * np.sqrt(3.0) * scale).add_(offset - np.sqrt(3.0) * scale)
        out[key] = t.to(value.dtype)
    return out

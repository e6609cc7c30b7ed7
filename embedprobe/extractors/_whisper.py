"""Whisper's encoder pieces for ``whisper``: frame arithmetic, the torch log-mel, one forward pass, the weights.

Frames. Whisper's log-mel has a 160-sample hop (10 ms at 16 kHz, 400-sample Hann window,
``center=True``) and its encoder's second convolution has stride 2 (kernel 3, padding 1), so
encoder frame ``j`` is centred on sample ``320 j``: a 30 s window (480000 samples, 3000 mel
frames) gives 1500 frames. The frames of the real audio are those centred inside it,
``ceil(n / 320)`` of them (``encoder_frames``), which is also the number of mel frames that
transformers' ``WhisperFeatureExtractor`` marks as real (``ceil(n / 160)``) halved and rounded up.

Log-mel (``log_mel``): transformers' ``WhisperFeatureExtractor._torch_extract_fbank_features``
on a zero-padded batch (power STFT, its last frame dropped, the extractor's own Slaney mel
filters, ``log10`` clamped at 1e-10, floored 8 below the example's maximum, ``(x + 4) / 4``),
written here so that it runs in fp32 on the model's device outside any autocast. At native
length the waveform is zero-padded to ``320 * T + 480`` samples: every mel frame that touches
the audio then sees what it sees in the 30 s window (zeros after the end, never a reflection),
so the native frames and their maximum are the padded window's first ``2 T`` frames.

Forward (``encoder_states``): the modules of transformers' ``WhisperEncoder`` run in its own
order (conv1, GELU, conv2, GELU, + positional embedding, blocks, final LayerNorm), collecting
every hidden state from one pass. Unlike ``WhisperEncoder.forward`` it accepts fewer than 3000
mel frames: the positional embeddings are then cut to the frames given (native mode).

Weights (``read_encoder_state``): only the encoder's tensors (``model.encoder.*`` of a
``WhisperForConditionalGeneration`` checkpoint, ``encoder.*`` of a ``WhisperModel``, or a
bare ``WhisperEncoder``) are read, through ``safetensors.safe_open`` (the decoder's bytes are
never loaded); a ``pytorch_model.bin`` goes through the safe loader, memory-mapped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError, MissingWeightsError
from embedprobe.extractors.safeload import load_torch_checkpoint

SAMPLE_RATE = 16000
N_FFT, MEL_HOP = 400, 160
FRAME = 2 * MEL_HOP  # samples per encoder frame (conv2 stride 2)
WINDOW_S = 30
WINDOW = WINDOW_S * SAMPLE_RATE  # 480000 samples = 3000 mel frames = 1500 encoder frames
POSITIONS = WINDOW // FRAME
ENCODER_PREFIXES = ("model.encoder.", "encoder.")
PREPROCESSOR = {"sampling_rate": SAMPLE_RATE, "hop_length": MEL_HOP, "n_fft": N_FFT, "chunk_length": WINDOW_S}


def encoder_frames(n_samples: int) -> int:
    """Encoder frames of ``n_samples`` of audio: those centred inside it, ``ceil(n / 320)``.

    Example:
        >>> [encoder_frames(n) for n in (1, 320, 321, 16000, 480000, 480001)]
        [1, 1, 2, 50, 1500, 1501]
    """
    return math.ceil(int(n_samples) / FRAME)


def windows(n_samples: int) -> list[tuple[int, int]]:
    """The 30 s windows ``(start, stop)`` a clip of ``n_samples`` is embedded in, from its start.

    Example:
        >>> windows(1000000)
        [(0, 480000), (480000, 960000), (960000, 1000000)]
    """
    return [(s, min(s + WINDOW, n_samples)) for s in range(0, max(n_samples, 1), WINDOW)]


def mel_filters(n_mels: int) -> np.ndarray:
    """transformers' Whisper mel filters, shape ``(201, n_mels)`` (Slaney scale and norm, 0-8 kHz)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=n_mels).mel_filters


def log_mel(wav: Any, filters: Any) -> Any:
    """Whisper log-mel of a zero-padded batch ``(B, L)`` (``L`` a multiple of 160) -> ``(B, n_mels, L // 160)``.

    ``filters``: ``mel_filters`` as a float32 tensor on the batch's device.
    """
    import torch

    window = torch.hann_window(N_FFT, device=wav.device)
    stft = torch.stft(wav, N_FFT, MEL_HOP, window=window, return_complex=True)
    power = (stft[..., :-1].abs() ** 2).contiguous()
    log = torch.clamp(filters.T @ power, min=1e-10).log10()
    log = torch.maximum(log, log.amax(dim=(1, 2), keepdim=True) - 8.0)
    return (log + 4.0) / 4.0


def padded_input(wav: np.ndarray, native: bool) -> tuple[np.ndarray, int]:
    """A window's samples zero-padded for ``log_mel`` and its real frame count ``T``.

    Padded (the reference): to 30 s. Native: to ``320 T + 480`` samples, of which the first
    ``2 T`` mel frames are kept.
    """
    t = encoder_frames(len(wav))
    out = np.zeros(FRAME * t + 3 * MEL_HOP if native else WINDOW, np.float32)
    out[:len(wav)] = wav
    return out, t


def encoder_states(encoder: Any, mel: Any) -> list[Any]:
    """Every hidden state of ``encoder`` (a ``WhisperEncoder``) for ``mel`` ``(B, n_mels, 2 T)``.

    ``[layer00 = conv + positional embedding, block 1 .. block N outputs, final LayerNorm]``,
    each ``(B, T, d_model)``; ``T`` may be below 1500 (positional embeddings cut to ``T``).
    """
    from torch.nn.functional import gelu

    x = gelu(encoder.conv1(mel))
    x = gelu(encoder.conv2(x)).permute(0, 2, 1)
    if x.shape[1] > encoder.embed_positions.num_embeddings:
        raise ValueError(f"{x.shape[1]} frames exceed Whisper's {encoder.embed_positions.num_embeddings} positions")
    x = x + encoder.embed_positions.weight[:x.shape[1]]
    states = [x]
    for layer in encoder.layers:
        out = layer(x, None)
        x = out[0] if isinstance(out, tuple) else out
        states.append(x)
    states.append(encoder.layer_norm(x))
    return states


# -- weights -------------------------------------------------------------------------------------
def check_preprocessor(folder: Path, n_mels: int) -> None:
    """A folder's ``preprocessor_config.json`` (if any) must describe Whisper's log-mel for ``n_mels`` bins."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return
    pre = json.loads(path.read_text())
    want = {**PREPROCESSOR, "feature_size": n_mels}
    bad = {k: pre[k] for k in want if k in pre and pre[k] != want[k]}
    if bad:
        raise BadValueError(f"Whisper preprocessor in '{folder}'", bad, fix=f"This extractor computes {want}")


def _weight_map(folder: Path) -> dict[str, str]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return dict(json.loads(index.read_text())["weight_map"])
    if (folder / "model.safetensors").is_file():
        from safetensors import safe_open

        with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
            return {k: "model.safetensors" for k in f.keys()}
    return {}


def _prefix(keys: list[str], where: Path) -> str:
    for prefix in ENCODER_PREFIXES:
        if any(k.startswith(prefix) for k in keys):
            return prefix
    if "conv1.weight" in keys:
        return ""
    raise BadValueError("Whisper checkpoint", str(where), fix=(
        f"It holds no encoder tensors ({', '.join(p + '*' for p in ENCODER_PREFIXES)} or conv1.weight)"))


def read_encoder_state(folder: Path, *, trust_pickle: bool = False) -> dict[str, Any]:
    """The encoder's tensors of a Whisper checkpoint folder, named as in ``WhisperEncoder``.

    Safetensors (one file or shards): only the encoder's tensors are read. ``pytorch_model.bin``:
    memory-mapped through the safe loader, the encoder's tensors copied out.
    """
    weight_map = _weight_map(folder)
    if not weight_map:
        path = folder / "pytorch_model.bin"
        if not path.is_file():
            raise MissingWeightsError(f"Whisper weights not found in '{folder}': it needs model.safetensors "
                                      "(or its shards with model.safetensors.index.json) or pytorch_model.bin.")
        state = load_torch_checkpoint(path, trust_pickle=trust_pickle, mmap=True)
        prefix = _prefix(list(state), path)
        return {k[len(prefix):]: v.clone() for k, v in state.items() if k.startswith(prefix)}
    prefix = _prefix(list(weight_map), folder)
    by_shard: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        if key.startswith(prefix):
            by_shard.setdefault(shard, []).append(key)
    from safetensors import safe_open

    state: dict[str, Any] = {}
    for shard, keys in sorted(by_shard.items()):
        if not (folder / shard).is_file():
            raise MissingWeightsError(f"Whisper shard '{shard}' (encoder tensors) is missing from '{folder}': "
                                      "download the repository's model files again.")
        with safe_open(str(folder / shard), framework="pt") as f:
            for key in keys:
                state[key[len(prefix):]] = f.get_tensor(key)
    return state


def build_encoder(config: Any, state: dict[str, Any] | None = None, *, where: str = "") -> Any:
    """A ``WhisperEncoder`` of ``config``: seeded random weights when ``state`` is ``None``, else exactly ``state``.

    Raises:
        BadValueError: ``state`` misses a tensor of the encoder or has one it does not know.
    """
    import torch
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if state is None:
        torch.manual_seed(0)
        return WhisperEncoder(config)
    with torch.device("meta"):  # no random init of weights that are overwritten anyway
        encoder = WhisperEncoder(config)
    result = encoder.load_state_dict(state, strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise BadValueError("Whisper checkpoint", where, fix=(
            f"Its encoder does not match transformers' WhisperEncoder: missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"))
    return encoder


# -- fast path -----------------------------------------------------------------------------------
def _fused_self_attention(self, hidden_states, key_value_states=None, cache=None, attention_mask=None,
                          output_attentions=False, **kwargs):
    """The encoder's ``WhisperAttention`` as one q/k/v projection and one SDPA call (inference).

    Same maths as the stock forward with no mask, no cache: ``softmax((s q) k^T) v`` with
    ``s = head_dim ** -0.5`` applied to the projected queries, as the stock module does.
    """
    import torch.nn.functional as F

    b, t, _ = hidden_states.shape
    qkv = self.qkv_fused(hidden_states).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(qkv[0] * self.scaling, qkv[1], qkv[2], scale=1.0)
    return self.out_proj(out.transpose(1, 2).reshape(b, t, -1)), None


def fuse_attention(model: Any) -> int:
    """Give every Whisper encoder self-attention in ``model`` one ``(3C, C)`` projection (k has no
    bias: zeros) and the fused forward; the separate q/k/v modules are dropped (no second copy
    of their weights in a fast precision). Idempotent; returns how many are fused (0 for models
    without a Whisper encoder). Called by ``rewrites.prepare``."""
    import types

    import torch
    from torch import nn

    n = 0
    for module in model.modules():
        if type(module).__name__ != "WhisperEncoder":
            continue
        for layer in module.layers:
            attn = layer.self_attn
            n += 1
            if hasattr(attn, "qkv_fused"):
                continue
            q, k, v = attn.q_proj, attn.k_proj, attn.v_proj
            fused = nn.Linear(q.in_features, 3 * q.out_features, bias=True, device="meta")
            with torch.no_grad():
                fused.weight = nn.Parameter(torch.cat([q.weight, k.weight, v.weight]), requires_grad=False)
                fused.bias = nn.Parameter(torch.cat([q.bias, torch.zeros_like(q.bias), v.bias]), requires_grad=False)
            for name in ("q_proj", "k_proj", "v_proj"):
                del attn._modules[name]
            attn.qkv_fused = fused
            attn.forward = types.MethodType(_fused_self_attention, attn)
    return n

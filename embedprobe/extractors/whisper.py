"""OpenAI Whisper's audio encoder through transformers: every encoder layer, the decoder never loaded.

About the models:
    ``whisper-tiny``, ``-base``, ``-small``, ``-medium``, ``-large-v3`` (``openai/whisper-*``, MIT):
    the encoder of the multilingual ASR models (4 / 6 / 12 / 24 / 32 transformer blocks of
    384 / 512 / 768 / 1024 / 1280; 80 mel bins, 128 for large-v3). 16 kHz input, 20 ms frames.
    EmoBox's leaderboard puts Whisper-large-v3's frozen features first for speech emotion.

Modes (registered names, so the mode is part of every cache's identity):
    * ``whisper-<size>`` (the reference): each clip is zero-padded to Whisper's 30 s window,
      as Whisper and transformers' feature extractor do, and only the frames of the real
      audio (``ceil(n / 320)``, see ``_whisper``) are returned, so pooling sees the clip only.
      The frames equal transformers' ``WhisperModel.encoder`` on ``WhisperFeatureExtractor``
      features (``tests/extractors/test_whisper.py``).
    * ``whisper-<size>-native``: each clip runs at its own length, positional embeddings cut to
      its frames: the same log-mel frames, but attention over the clip only (no 30 s of
      padding). Far cheaper on short clips, not the same numbers; the README gives how far
      pooled vectors move on EmoDB.

Layers (one forward pass, ``_whisper.encoder_states``): ``layer00`` is the convolution front
end plus positional embedding (the input of block 1, transformers' ``hidden_states[0]``),
``layerNN`` the output of block NN, ``final`` the encoder's final LayerNorm of the last block
(``last_hidden_state``, what the decoder reads).

Long clips: embedded in independent 30 s windows from the clip's start (``chunk_block_s``),
each as a clip of its own (padded, or at its length in native mode); a clip's frames are the
windows' frames in order, ``ceil(n / 320)`` in all. The pipeline's chunks of a long file are
whole windows, so a 10-minute file never holds more than one or two windows in memory and
its frames and pooled statistics equal the whole clip's.

Weights: ``--weights DIR`` or the Hugging Face cache (``resolve_hf``); when online only
``config.json``, ``preprocessor_config.json`` and the safetensors files are downloaded.
Only the encoder's tensors are read (``_whisper.read_encoder_state``). ``hf:<id>`` and
``hf:<folder>`` take any Whisper-family checkpoint (its ``config.json`` has
``model_type: whisper``), in the reference mode.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError
from embedprobe.extractors import _whisper as W
from embedprobe.extractors._hf import RANDOM_INIT, HFExtractor
from embedprobe.extractors.base import Extractor, ExtractorSpec, as_mono_float32
from embedprobe.extractors.precision import inference, to_device
from embedprobe.extractors.registry import ExtractorEntry, register
from embedprobe.extractors.runtime import versions

SIZES = {  # name -> (d_model, encoder_layers, attention heads, mel bins), from the official config.json
    "tiny": (384, 4, 6, 80), "base": (512, 6, 8, 80), "small": (768, 12, 12, 80),
    "medium": (1024, 24, 16, 80), "large-v3": (1280, 32, 20, 128)}
MODES = ("padded", "native")
_DOWNLOAD = ["config.json", "preprocessor_config.json", "model.safetensors", "model.safetensors.index.json",
             "model-*-of-*.safetensors"]


def layer_names(n_layers: int) -> tuple[str, ...]:
    """``("layer00", ..., "layerNN", "final")``: hf_ssl's naming for a pre-LN encoder."""
    return tuple(f"layer{i:02d}" for i in range(n_layers + 1)) + ("final",)


def whisper_spec(name: str, weights_id: str, *, dim: int, n_layers: int, n_mels: int, mode: str = "padded",
                 revision: str | None = "main", licence: str = "MIT", description: str = "",
                 local: bool = False) -> ExtractorSpec:
    if mode not in MODES:
        raise BadValueError("Whisper mode", mode, MODES)
    params = {"mode": mode, "model_type": "whisper", "n_mels": n_mels, "window_s": W.WINDOW_S}
    if local:
        params["local"] = True
    return ExtractorSpec(
        name=name, family="whisper", sample_rate=W.SAMPLE_RATE, dim=dim, layers=layer_names(n_layers),
        hop_s=W.FRAME / W.SAMPLE_RATE, weights_id=weights_id, weights_revision=revision, licence=licence,
        extra="hf", min_duration_s=0.0, description=description, params=tuple(sorted(params.items())))


class WhisperExtractor(HFExtractor):
    """Whisper's encoder; every layer from one forward pass per 30 s window.

    Args:
        spec: the variant (``params["mode"]``: ``"padded"`` or ``"native"``).
        device: torch device.
        weights: a Whisper model folder (``save_pretrained`` output or a hub snapshot).
        precision: see ``precision.PRECISIONS`` (``"auto"``: bf16 on bf16 CPUs and on CUDA).
        batch_windows: padded 30 s windows per forward pass in ``embed_batch`` (default 1 on
            CPU, where batching gains nothing, 8 on CUDA); native mode runs clip by clip.

    Example:
        >>> from embedprobe.extractors import create
        >>> # SKIP: needs openai/whisper-small in the Hugging Face cache (~1 GB)
        >>> ext = create("whisper-small").load()                      # doctest: +SKIP
        >>> ext.embed(np.zeros(16000, np.float32))["final"].shape     # doctest: +SKIP
        (50, 768)
    """
    chunk_block_s = float(W.WINDOW_S)  # independent 30 s windows from the clip's start
    chunk_context_s = (0.0, 0.0)

    def __init__(self, spec: ExtractorSpec, *, device: str = "cpu", weights: str | Path | None = None,
                 precision: str = "auto", batch_windows: int | None = None, _random_config: Any = None):
        super().__init__(spec, device=device, weights=weights, precision=precision,
                         _random_config=_random_config)
        self.batch_windows = batch_windows

    # -- weights -----------------------------------------------------------------------------
    def _local_folder(self) -> Path | None:
        if self.weights is not None:
            return self.weights
        return Path(str(self.spec.weights_id)) if self.spec.param("local") else None

    def _check_arch(self, config: Any, where: str) -> None:
        """Refuse a checkpoint that is not the named spec's size (``hf:`` specs are read from it)."""
        want = {"model_type": "whisper", "d_model": self.spec.dim, "encoder_layers": len(self.spec.layers) - 2,
                "num_mel_bins": self.spec.param("n_mels"), "max_source_positions": W.POSITIONS}
        got = {k: getattr(config, k, None) for k in want}
        bad = {k: got[k] for k in want if got[k] != want[k]}
        if bad:
            raise BadValueError(f"checkpoint for {self.spec.name}", where, fix=(
                f"Its config.json has {bad} but {self.spec.name} needs { {k: want[k] for k in bad} }; "
                f"extract other Whisper checkpoints with --model hf:{where}"))

    def _build(self) -> tuple[Any, str]:
        """The ``WhisperEncoder`` (random-init for tests, else the checkpoint's encoder) and its source."""
        if self._random_config is not None:
            self._revision = RANDOM_INIT
            return W.build_encoder(self._random_config), RANDOM_INIT
        from transformers import WhisperConfig

        src = self._resolve()
        if src.local:
            folder = Path(src.path_or_id)
        else:  # online, not cached: the encoder's files only
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(src.path_or_id, revision=src.revision, allow_patterns=_DOWNLOAD))
            src = replace(src, path_or_id=str(folder), local=True)
        config = WhisperConfig.from_pretrained(str(folder), local_files_only=True)
        self._check_arch(config, str(folder))
        W.check_preprocessor(folder, int(config.num_mel_bins))
        state = W.read_encoder_state(folder, trust_pickle=self.trust_pickle)
        encoder = W.build_encoder(config, state, where=str(folder))
        self._revision = self.loaded_revision(src)
        return encoder, str(folder)

    # -- loading -----------------------------------------------------------------------------
    def _load(self) -> None:
        torch, _ = self._import("WhisperConfig")
        encoder, source = self._build()
        self.model = self._frozen(encoder)
        self.precision_ = self._resolve_precision()
        info = self._prepare_model(self.model)  # fuse_attention: _whisper.fuse_attention
        n_mels = int(self.model.config.num_mel_bins)
        self._filters = torch.from_numpy(W.mel_filters(n_mels)).float().to(self.device)
        self._native = self.spec.param("mode") == "native"
        cuda = str(self.device).startswith("cuda")
        self._batch = max(1, int(self.batch_windows if self.batch_windows is not None else (8 if cuda else 1)))
        self._runtime = {
            **info, "device": str(self.device), "mode": self.spec.param("mode"), "n_mels": n_mels,
            "batch_windows": self._batch, "weights": source, "revision": self._revision,
            "attn_implementation": getattr(self.model.config, "_attn_implementation", None), **versions()}

    # -- compute -----------------------------------------------------------------------------
    def n_frames(self, n_samples: int) -> int:
        return W.encoder_frames(n_samples)

    def _run(self, inputs: list[np.ndarray], frames: list[int]) -> list[list[np.ndarray]]:
        """One forward pass over equally long padded windows; per window, every layer's real frames."""
        import torch

        x = to_device(np.stack(inputs), self.device)
        with torch.inference_mode():  # the log-mel in fp32, outside autocast
            mel = W.log_mel(x, self._filters)
        if self._native:
            mel = mel[:, :, :2 * frames[0]]
        with inference(self.precision_, self.device):
            states = W.encoder_states(self.model, mel)
        return [[h[row, :t].float().cpu().numpy() for h in states] for row, t in enumerate(frames)]

    def _windows(self, wav: np.ndarray) -> list[tuple[np.ndarray, int]]:
        wav = as_mono_float32(wav)
        return [W.padded_input(wav[s:e], self._native) for s, e in W.windows(len(wav))]

    def _gather(self, parts: list[list[np.ndarray]]) -> dict[str, np.ndarray]:
        return {name: np.concatenate([p[i] for p in parts]) if len(parts) > 1 else parts[0][i]
                for i, name in enumerate(self.spec.layers)}

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        self.load()
        return self._gather([self._run([x], [t])[0] for x, t in self._windows(wav)])

    def embed_batch(self, wavs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Padded mode: the clips' 30 s windows ``batch_windows`` at a time; native: clip by clip."""
        self.load()
        if self._native or self._batch < 2 or len(wavs) < 2:
            return [self.embed(w) for w in wavs]
        items = [(k, x, t) for k, w in enumerate(wavs) for x, t in self._windows(w)]
        parts: list[list[list[np.ndarray]]] = [[] for _ in wavs]
        for i in range(0, len(items), self._batch):
            group = items[i:i + self._batch]
            outs = self._run([x for _, x, _ in group], [t for _, _, t in group])
            for (k, _, _), out in zip(group, outs, strict=True):
                parts[k].append(out)
        return [self._gather(p) for p in parts]

    # -- tests -------------------------------------------------------------------------------
    @classmethod
    def tiny_config(cls, spec: ExtractorSpec, n_layers: int = 2, dim: int = 32) -> Any:
        """A small ``WhisperConfig`` of the real architecture (30 s window, the spec's mel bins)."""
        from transformers import WhisperConfig

        return WhisperConfig(
            d_model=dim, encoder_layers=n_layers, encoder_attention_heads=2, encoder_ffn_dim=2 * dim,
            decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=2 * dim,
            num_mel_bins=int(spec.param("n_mels")), max_source_positions=W.POSITIONS, max_target_positions=64)

    @classmethod
    def for_tests(cls, spec: ExtractorSpec) -> Extractor:
        cfg = cls.tiny_config(spec)
        return cls(replace(spec, dim=cfg.d_model, layers=layer_names(cfg.encoder_layers)), _random_config=cfg)


# -- hf:<whisper id or folder> (hf_prefix.hf_entry dispatches here on model_type "whisper") ---------
def whisper_entry(name: str, cfg: dict[str, Any], *, folder: Path | None, model_id: str,
                  revision: str | None) -> ExtractorEntry:
    """The entry of ``hf:<id>`` / ``hf:<folder>`` for a Whisper-family ``config.json`` (reference mode)."""
    try:
        dim, n_layers, n_mels = int(cfg["d_model"]), int(cfg["encoder_layers"]), int(cfg.get("num_mel_bins", 80))
    except (KeyError, TypeError, ValueError):
        raise BadValueError("Whisper config.json", sorted(cfg)[:8],
                            fix=f"{name} needs d_model and encoder_layers") from None
    if int(cfg.get("max_source_positions", W.POSITIONS)) != W.POSITIONS:
        raise BadValueError("Whisper max_source_positions", cfg.get("max_source_positions"), [W.POSITIONS],
                            fix=f"{name} is not a 30 s-window Whisper encoder")
    spec = whisper_spec(
        name, str(folder) if folder is not None else model_id, dim=dim, n_layers=n_layers, n_mels=n_mels,
        revision=None if folder is not None else (revision or "main"), licence="see the model card",
        description=f"Whisper encoder from {folder or model_id}, padded to 30 s", local=folder is not None)
    return ExtractorEntry(spec, WhisperExtractor)


def _register(size: str, mode: str) -> ExtractorSpec:
    dim, n_layers, heads, n_mels = SIZES[size]
    native = mode == "native"
    how = "each clip at its own length" if native else "padded to 30 s, real frames pooled"
    return register(whisper_spec(
        f"whisper-{size}" + ("-native" if native else ""), f"openai/whisper-{size}", dim=dim, n_layers=n_layers,
        n_mels=n_mels, mode=mode,
        description=f"Whisper {size} encoder, {n_layers + 1} layers + final x {dim}, {how}"), WhisperExtractor)


WHISPER = {f"{size}" + ("-native" if mode == "native" else ""): _register(size, mode)
           for size in SIZES for mode in MODES}

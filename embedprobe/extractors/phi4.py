"""The speech encoder of Phi-4-multimodal (a 24-block Conformer), through transformers.

About the model:
    ``phi4-audio``: the audio encoder of ``microsoft/Phi-4-multimodal-instruct`` (MIT), the
    poster's "Phi4 1024". Input: 80 log-mel bands every 10 ms at 16 kHz (25 ms Hamming
    window, pre-emphasis 0.97, Kaldi mel scale, up to 7690 Hz), computed by transformers'
    ``Phi4MultimodalFeatureExtractor`` (torch, no torchaudio). A convolutional front end
    subsamples 8x, so frames are 80 ms: ``n_frames = ceil(((n - 400) // 160 + 1) / 8)``.

Layers (one forward pass, forward hooks): ``layer00`` is the subsampled front-end output, the
input of Conformer block 1; ``layerNN`` the output of block NN; ``layer24`` is the encoder
output that the LLM's speech projector reads. Only the encoder is loaded, never the 5.6B LLM.

Weights, any of three layouts (``--weights DIR`` or the Hugging Face cache):
    * the official repository at ``main`` (remote-code layout, ``config.json`` with
      ``audio_processor``): the encoder's tensors are read from the safetensors shards that
      hold them and renamed as transformers' conversion script does;
    * a transformers-native conversion (``config.json`` with ``audio_config``);
    * an encoder-only folder (``Phi4MultimodalAudioModel.save_pretrained``, ~1.8 GB), the
      cheapest to keep around.
Encoder sequences longer than 500 frames (40 s) are folded into 500-frame blocks by the model
itself; the pipeline's 30 s chunks never reach that.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError, MissingWeightsError
from embedprobe.extractors._hf import RANDOM_INIT, HFExtractor
from embedprobe.extractors.base import Extractor, ExtractorSpec, as_mono_float32
from embedprobe.extractors.hf_ssl import layer_names
from embedprobe.extractors.precision import inference
from embedprobe.extractors.registry import register
from embedprobe.extractors.runtime import versions

SAMPLE_RATE = 16000
WIN, HOP, REDUCTION = 400, 160, 8
PREFIX = "model.embed_tokens_extend.audio_embed.encoder."
# original (remote-code) -> transformers names, from transformers' convert_phi4_multimodal_weights_to_hf.py
_RENAMES = (
    (r"^encoders\.(\d+)\.feed_forward_(in|out)\.net\.0\.linear", r"encoders.\1.feed_forward_\2.gate_up_proj"),
    (r"^encoders\.(\d+)\.feed_forward_(in|out)\.net\.2", r"encoders.\1.feed_forward_\2.down_proj"),
    (r"^encoders\.(\d+)\.self_attn\.linear_(q|k|v)", r"encoders.\1.self_attn.\2_proj"),
    (r"^encoders\.(\d+)\.self_attn\.linear_out", r"encoders.\1.self_attn.o_proj"),
)


def audio_config_dict(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``Phi4MultimodalAudioConfig`` fields from a native or an original ``config.json``."""
    if cfg.get("model_type") == "phi4_multimodal_audio":
        return dict(cfg)
    if "audio_config" in cfg:
        return dict(cfg["audio_config"])
    if "audio_processor" not in cfg:
        raise BadValueError("Phi-4 config.json", sorted(cfg)[:8],
                            fix="Expected 'audio_config' (transformers) or 'audio_processor' (original)")
    a = dict(cfg["audio_processor"]["config"])
    for k in ("activation_checkpointing", "cnn_layer_norm", "input_layer", "encoder_embedding_config"):
        a.pop(k, None)
    a["hidden_size"] = a.pop("attention_dim")
    a["num_attention_heads"] = a.pop("attention_heads")
    a["intermediate_size"] = a.pop("linear_units")
    a["nemo_conv_channels"] = a.pop("nemo_conv_settings")["conv_channels"]
    a["bias_max_distance"] = a.pop("relative_attention_bias_args")["t5_bias_max_distance"]
    embd = cfg.get("embd_layer", {}).get("audio_embd_layer", {})
    if "downsample_rate" in embd:
        a["downsample_rate"] = embd["downsample_rate"]
    return a


def rename_key(key: str) -> str | None:
    """An original checkpoint key (prefix stripped) in transformers' naming; ``None`` to drop."""
    if "lora" in key:
        return None
    key = key.replace("base_layer.", "")
    for pattern, repl in _RENAMES:
        key, n = re.subn(pattern, repl, key)
        if n:
            break
    return key


def read_encoder_state(folder: Path) -> dict[str, Any]:
    """The audio encoder's tensors (float32) from the shards of a full Phi-4 checkpoint."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
    elif (folder / "model.safetensors").is_file():
        with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
            weight_map = {k: "model.safetensors" for k in f.keys()}
    else:
        raise MissingWeightsError(f"Phi-4 weights not found in '{folder}': it needs model.safetensors "
                                  "or model.safetensors.index.json with its shards.")
    by_shard: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        if key.startswith(PREFIX):
            by_shard.setdefault(shard, []).append(key)
    state: dict[str, Any] = {}
    for shard, keys in sorted(by_shard.items()):
        if not (folder / shard).is_file():
            raise MissingWeightsError(f"Phi-4 shard '{shard}' (audio encoder) is missing from '{folder}': "
                                      "download the full repository folder.")
        with safe_open(str(folder / shard), framework="pt") as f:
            for key in keys:
                new = rename_key(key[len(PREFIX):])
                if new is not None:
                    state[new] = f.get_tensor(key).float()
    if not state:
        raise BadValueError("Phi-4 checkpoint", str(folder), fix=f"It holds no '{PREFIX}*' tensors")
    return state


class Phi4Audio(HFExtractor):
    """Phi-4-multimodal's Conformer speech encoder; every block's output from one pass.

    Args:
        spec, device, weights: see ``Extractor`` (``weights``: one of the folder layouts above).
        precision: see ``precision.PRECISIONS`` (``"auto"``: bf16 autocast on bf16 CPUs).
    """
    # the encoder attends within blocks of 500 frames (40 s) from the input's start; chunks are
    # whole blocks, and only each block's first frames (conv front end) can differ from the whole
    chunk_block_s = 500 * HOP * REDUCTION / SAMPLE_RATE
    chunk_context_s = (0.0, 1.0)

    def _build(self) -> tuple[Any, str]:
        from transformers import Phi4MultimodalAudioConfig, Phi4MultimodalAudioModel

        if self._random_config is not None:
            self._revision = RANDOM_INIT
            return Phi4MultimodalAudioModel(self._random_config), RANDOM_INIT
        src = self._resolve()
        if not src.local:
            raise MissingWeightsError(
                f"{self.spec.name}: download {self.spec.weights_id} first (`hf download "
                f"{self.spec.weights_id}`, ~12 GB) or pass --weights with a local folder.")
        folder = Path(src.path_or_id)
        raw = json.loads((folder / "config.json").read_text())
        if raw.get("model_type") == "phi4_multimodal_audio":
            model = Phi4MultimodalAudioModel.from_pretrained(str(folder), local_files_only=True)
        else:
            model = Phi4MultimodalAudioModel(Phi4MultimodalAudioConfig.from_dict(audio_config_dict(raw)))
            result = model.load_state_dict(read_encoder_state(folder), strict=False)
            if result.missing_keys or result.unexpected_keys:
                raise BadValueError("Phi-4 checkpoint", str(folder), fix=(
                    f"Its audio encoder does not match transformers' Phi4MultimodalAudioModel: missing "
                    f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}"))
        self._revision = self.loaded_revision(src)
        return model, str(folder)

    def _load(self) -> None:
        torch, Phi4MultimodalFeatureExtractor = self._import("Phi4MultimodalFeatureExtractor")
        torch.manual_seed(0)
        model, source = self._build()
        cfg = model.config
        n_layers = sum(n.startswith("layer") for n in self.spec.layers) - 1
        if (cfg.hidden_size, cfg.num_blocks, cfg.time_reduction) != (self.spec.dim, n_layers, REDUCTION):
            raise BadValueError(f"checkpoint for {self.spec.name}", source, fix=(
                f"It has hidden_size={cfg.hidden_size}, num_blocks={cfg.num_blocks}, time_reduction="
                f"{cfg.time_reduction}; expected {self.spec.dim}, {n_layers}, {REDUCTION}"))
        self.model = self._frozen(model)
        self.fe = Phi4MultimodalFeatureExtractor()
        self.precision_ = self._resolve_precision()
        info = self._prepare_model(self.model, fuse_attention=False)
        self._cap: list[Any] = [None] * (n_layers + 1)
        blocks = self.model.encoders
        blocks[0].register_forward_pre_hook(
            lambda _m, args, kwargs: self._cap.__setitem__(0, args[0] if args else kwargs["hidden_states"]),
            with_kwargs=True)
        for i, block in enumerate(blocks):
            block.register_forward_hook(lambda _m, _a, out, i=i: self._cap.__setitem__(i + 1, out))
        self._runtime = {**info, "device": str(self.device), "weights": source, "revision": self._revision,
                         "attn_implementation": getattr(cfg, "_attn_implementation", None),
                         **versions()}

    def n_frames(self, n_samples: int) -> int:
        n = int(n_samples)
        return math.ceil(((n - WIN) // HOP + 1) / REDUCTION) if n >= WIN else 0

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        self.load()
        wav = as_mono_float32(wav)
        t = self.n_frames(wav.shape[0])
        if t < 1:
            raise BadValueError("clip length", f"{wav.shape[0]} samples",
                                fix=f"{self.spec.name} needs at least {WIN} samples (25 ms)")
        feats = self.fe(wav, sampling_rate=SAMPLE_RATE, return_tensors="pt")["audio_input_features"]
        self._cap[:] = [None] * len(self._cap)
        with inference(self.precision_, self.device):
            self.model(feats.to(self.device), None)
        # blocks see (n_blocks_of_500, 500, D) for long input: unfold back and trim the padding
        return {name: h.reshape(-1, h.shape[-1])[:t].float().cpu().numpy()
                for name, h in zip(self.spec.layers, self._cap, strict=True)}

    @classmethod
    def for_tests(cls, spec: ExtractorSpec) -> Extractor:
        from transformers import Phi4MultimodalAudioConfig

        cfg = Phi4MultimodalAudioConfig(
            hidden_size=32, intermediate_size=32, num_blocks=2, num_attention_heads=2,
            ext_pw_out_channel=32, depthwise_separable_out_channel=32, nemo_conv_channels=16,
            bias_max_distance=64)
        return cls(replace(spec, dim=32, layers=layer_names(2, False)), _random_config=cfg)


PHI4_AUDIO = register(ExtractorSpec(
    name="phi4-audio", family="phi4", sample_rate=SAMPLE_RATE, dim=1024, layers=layer_names(24, False),
    hop_s=HOP * REDUCTION / SAMPLE_RATE, weights_id="microsoft/Phi-4-multimodal-instruct",
    weights_revision="main", licence="MIT", extra="hf", min_duration_s=WIN / SAMPLE_RATE,
    description="Phi-4-multimodal speech encoder (Conformer), 25 layers x 1024 at 80 ms (the poster's Phi4)",
    params=(("features", "80 log-mel, 25 ms / 10 ms, Kaldi mel <= 7690 Hz"), ("reduction", REDUCTION)),
), Phi4Audio)

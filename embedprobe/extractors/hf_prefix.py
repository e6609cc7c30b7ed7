"""``hf:<model-id>[@revision]`` / ``hf:<folder>``: any Hugging Face speech encoder, its spec read from config.json.

wav2vec2-family types (wav2vec2, HuBERT, WavLM, data2vec-audio, ...) run on
:class:`~embedprobe.extractors.hf_ssl.HFSpeechEncoder`; ``model_type == "whisper"`` goes to the
Whisper family (:func:`~embedprobe.extractors.whisper.whisper_entry`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from embedprobe.errors import BadValueError, MissingDependencyError, MissingWeightsError
from embedprobe.extractors.base import ExtractorSpec
from embedprobe.extractors.hf_ssl import (
    CONV,
    SAMPLE_RATE,
    W2V2_TYPES,
    HFSpeechEncoder,
    conv_frames_min,
    layer_names,
    pre_ln,
)
from embedprobe.extractors.registry import ExtractorEntry, register_prefix
from embedprobe.extractors.whisper import whisper_entry


def _read_json(path: Path | None) -> dict[str, Any]:
    return json.loads(path.read_text()) if path is not None and path.is_file() else {}


def hf_entry(rest: str, weights: Path | None) -> ExtractorEntry:
    """The entry for ``hf:<model-id>[@revision]`` or ``hf:<folder>``, built from its config.json."""
    model_id, _, revision = rest.partition("@")
    if not model_id:
        raise BadValueError("model name", "hf:", fix="Write hf:<model-id> (e.g. hf:microsoft/wavlm-large) or hf:<folder>")
    local = Path(model_id).expanduser()
    folder = weights or (local if local.is_dir() else None)
    if folder is not None:
        cfg_path: Path | None = folder / "config.json"
        prep_path: Path | None = folder / "preprocessor_config.json"
    else:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError as err:
            raise MissingDependencyError("transformers", "hf", f"hf:{rest}") from err
        hit = try_to_load_from_cache(model_id, "config.json", revision=revision or None)
        cfg_path = Path(hit) if isinstance(hit, str) else None
        prep_path = cfg_path.with_name("preprocessor_config.json") if cfg_path else None
    if cfg_path is None or not cfg_path.is_file():
        where = f"folder '{folder}'" if folder is not None else "the Hugging Face cache"
        raise MissingWeightsError(
            f"hf:{rest}: no config.json in {where}: run `hf download {model_id}` on a machine with "
            f"internet and copy the cache (HF_HOME), or pass a local model folder as hf:<folder>.")
    cfg, prep = _read_json(cfg_path), _read_json(prep_path)
    model_type = cfg.get("model_type")
    if model_type == "whisper":  # the Whisper family has its own module
        return whisper_entry(f"hf:{rest}", cfg, folder=folder, model_id=model_id, revision=revision)
    if model_type not in W2V2_TYPES:
        raise BadValueError("model type", model_type, W2V2_TYPES,
                            fix=f"hf:{rest} is not a wav2vec2-family or Whisper audio encoder")
    kernels = cfg.get("conv_kernel", [k for k, _ in CONV])
    conv = tuple(zip(kernels, cfg.get("conv_stride", [s for _, s in CONV]), strict=True))
    sr = int(prep.get("sampling_rate", SAMPLE_RATE))
    large = pre_ln(model_type, cfg.get("do_stable_layer_norm", False))
    d2v = model_type == "data2vec-audio"  # LayerNorm CNN, normalised input, whatever the config says
    group = not d2v and cfg.get("feat_extract_norm", "group") == "group"
    params = {"conv": conv, "do_normalize": bool(prep.get("do_normalize", large or d2v)), "model_type": model_type,
              "final_norm": large, "group_norm": group, "local": folder is not None}
    spec = ExtractorSpec(
        name=f"hf:{rest}", family="hf_ssl", sample_rate=sr, dim=int(cfg["hidden_size"]),
        layers=layer_names(int(cfg["num_hidden_layers"]), final=large),
        hop_s=math.prod(s for _, s in conv) / sr,
        weights_id=str(folder) if folder is not None else model_id,
        weights_revision=None if folder is not None else (revision or "main"),
        licence="see the model card", extra="hf", min_duration_s=conv_frames_min(conv) / sr,
        description=f"{model_type} encoder from {folder or model_id}", params=tuple(sorted(params.items())),
    )
    return ExtractorEntry(spec, HFSpeechEncoder)


register_prefix("hf", hf_entry, "any Hugging Face speech encoder (wav2vec2/HuBERT/WavLM/data2vec-audio "
                "family, or Whisper) by model id or local folder; its spec is read from the model's config",
                placeholder="model-id[@revision]")

"""audEERING's dimensional emotion model: every hidden layer plus its arousal / dominance / valence head.

About the model:
    ``w2v2-msp-dim`` is ``audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim``
    (CC-BY-NC-SA-4.0: research only, no commercial use): wav2vec2-large-robust pruned from 24
    to 12 transformer layers and fine-tuned on MSP-Podcast (v1.7) to predict arousal,
    dominance and valence (roughly 0..1). The architecture is the pre-LN wav2vec2 Large of
    ``hf_ssl`` (LayerNorm CNN, 20 ms hop, per-clip input normalisation), so its layers are
    ``layer00`` .. ``layer12`` and ``final`` as there.

The head (model card, "Usage"): ``EmotionModel`` holds the encoder as ``.wav2vec2`` and a
``RegressionHead`` as ``.classifier``; it averages the encoder's ``last_hidden_state`` (our
``final``) over time and applies ``dense -> tanh -> out_proj`` (dropout is off at inference).
Both are written here in that layout, so the official checkpoint's keys (``wav2vec2.*``,
``classifier.dense.*``, ``classifier.out_proj.*``) load as they are; a missing or unexpected
key is an error. Its output is the extra layer ``adv``: one 3-d vector per clip, columns
``ADV_LABELS`` (the checkpoint's ``id2label`` order, checked on load).

``adv`` is a clip-level layer of a frame-level model (``ExtractorSpec.clip_layers``): a long
clip embedded in chunks gets it from the mean of ``final`` over the whole clip
(``clip_outputs``), as the model card computes it on the whole file. The head always runs in
fp32 (two small matrix products per clip).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError
from embedprobe.extractors.base import Extractor, ExtractorSpec
from embedprobe.extractors.hf_ssl import HFSpeechEncoder, _spec, layer_names
from embedprobe.extractors.registry import register

ADV_LABELS = ("arousal", "dominance", "valence")
_CLASSES: dict[str, Any] = {}


def emotion_model_class() -> Any:
    """The model card's ``EmotionModel`` (a ``Wav2Vec2PreTrainedModel`` with ``.wav2vec2`` and ``.classifier``)."""
    if "EmotionModel" in _CLASSES:
        return _CLASSES["EmotionModel"]
    import torch
    from torch import nn
    from transformers.models.wav2vec2.modeling_wav2vec2 import (
        Wav2Vec2Model,
        Wav2Vec2PreTrainedModel,
    )

    class RegressionHead(nn.Module):
        """``dense -> tanh -> out_proj`` over the time-averaged last hidden state (dropouts: inference no-ops)."""

        def __init__(self, config: Any):
            super().__init__()
            self.dense = nn.Linear(config.hidden_size, config.hidden_size)
            self.dropout = nn.Dropout(config.final_dropout)
            self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

        def forward(self, features: Any) -> Any:
            x = self.dropout(torch.tanh(self.dense(self.dropout(features))))
            return self.out_proj(x)

    class EmotionModel(Wav2Vec2PreTrainedModel):
        """audEERING's layout: the checkpoint's key names are these attribute paths."""

        def __init__(self, config: Any):
            super().__init__(config)
            self.wav2vec2 = Wav2Vec2Model(config)
            self.classifier = RegressionHead(config)
            self.post_init()

    _CLASSES.update(EmotionModel=EmotionModel, RegressionHead=RegressionHead)
    return EmotionModel


class EmotionEncoder(HFSpeechEncoder):
    """``HFSpeechEncoder`` over the encoder of audEERING's ``EmotionModel``, plus the ``adv`` head output.

    Example:
        >>> from embedprobe.extractors import create
        >>> # SKIP: needs the checkpoint (~660 MB; CC-BY-NC-SA-4.0)
        >>> ext = create("w2v2-msp-dim", weights="/models/w2v2-msp-dim").load()   # doctest: +SKIP
        >>> ext.embed(np.zeros(16000, np.float32))["adv"].shape                   # doctest: +SKIP
        (1, 3)
    """

    clip_sources = ("final",)

    def _build(self, auto_model: Any, config: Any, src: Any = None) -> Any:
        cls = emotion_model_class()
        if src is None:
            return cls(config)
        labels = [str(config.id2label.get(i, config.id2label.get(str(i)))) for i in range(config.num_labels)]
        if tuple(labels) != ADV_LABELS:
            raise BadValueError(f"checkpoint for {self.spec.name}", src.path_or_id,
                                fix=f"Its config.json labels its outputs {labels}, expected {list(ADV_LABELS)}")
        model, info = cls.from_pretrained(src.path_or_id, config=config, output_loading_info=True, **src.kwargs())
        bad = {k: sorted(v) for k in ("missing_keys", "unexpected_keys") if (v := info.get(k))}
        if bad:
            raise BadValueError(f"checkpoint for {self.spec.name}", src.path_or_id,
                                fix=f"It is not audEERING's EmotionModel layout ({bad}); give the folder of "
                                    "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim")
        return model

    def _encoder(self, model: Any) -> Any:
        self._head = model.classifier  # fp32, outside the encoder's rewrites and autocast
        return model.wav2vec2

    def clip_outputs(self, means: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        self.load()
        x = torch.from_numpy(np.asarray(means["final"], np.float32).reshape(1, -1)).to(self.device)
        with torch.inference_mode():
            return {"adv": self._head(x)[0].cpu().numpy().astype(np.float32)}

    def _with_adv(self, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        mean = out["final"].mean(axis=0, dtype=np.float64).astype(np.float32)
        return {**out, "adv": self.clip_outputs({"final": mean})["adv"][None]}

    def embed_part(self, wav: np.ndarray, stats: Any) -> dict[str, np.ndarray]:
        return self._with_adv(super().embed_part(wav, stats))

    def embed_batch(self, wavs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Padded batches give each clip its own valid frames: ``adv`` from their mean, as one by one."""
        return [out if "adv" in out else self._with_adv(out) for out in super().embed_batch(wavs)]

    def _load(self) -> None:
        super()._load()
        self._runtime["head"] = "fp32"

    @classmethod
    def tiny_config(cls, spec: ExtractorSpec, n_layers: int = 2, dim: int = 32) -> Any:
        cfg = super().tiny_config(spec, n_layers, dim)
        cfg.num_labels = len(ADV_LABELS)
        cfg.id2label = dict(enumerate(ADV_LABELS))
        cfg.label2id = {k: i for i, k in enumerate(ADV_LABELS)}
        return cfg

    @classmethod
    def for_tests(cls, spec: ExtractorSpec) -> Extractor:
        cfg = cls.tiny_config(spec)
        tiny = replace(spec, dim=cfg.hidden_size, layers=layer_names(cfg.num_hidden_layers, True) + spec.clip_layers)
        return cls(tiny, _random_config=cfg)


W2V2_MSP_DIM = register(replace(_spec(
    "w2v2-msp-dim", "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim", "wav2vec2", 12, 1024, large=True,
    licence="CC-BY-NC-SA-4.0",
    description="audEERING wav2vec2-large-robust-12 fine-tuned on MSP-Podcast: 13 layers + final x 1024, "
                "adv = arousal, dominance, valence (research only)",
    extra_params={"clip_layers": ("adv",), "layer_dims": (("adv", len(ADV_LABELS)),),
                  "adv_labels": ADV_LABELS}), family="w2v2_emotion"), EmotionEncoder)

"""Self-supervised speech encoders through transformers: WavLM, HuBERT, wav2vec 2.0 and ``hf:<id>``.

About the models:
    ``wavlm-base``, ``wavlm-base-plus``, ``wavlm-large`` (``microsoft/wavlm-*``, MIT),
    ``hubert-large`` (``facebook/hubert-large-ll60k``) and ``wav2vec2-large``
    (``facebook/wav2vec2-large-lv60``), ``data2vec-audio-base`` / ``-large``
    (``facebook/data2vec-audio-*``, Apache-2.0): the *self-supervised* checkpoints, never the
    ASR fine-tuned ones. 16 kHz input, a CNN front end with 20 ms hop (400-sample receptive
    field), then 12 or 24 transformer layers. data2vec-audio: LayerNorm CNN (also in the base
    model), a 5-layer convolutional positional embedding without weight norm, post-LN blocks
    at both sizes (no ``final``), and per-clip input normalisation.

Layers (all from ONE forward pass, collected with forward hooks so the meaning does not
depend on the transformers version):
    ``layer00``: the transformer's input (CNN features -> feature projection -> convolutional
    positional embedding; plus the encoder LayerNorm for the post-LN base models), the
    ``hidden_states[0]`` of transformers. ``layerNN``: the output of transformer block NN.
    ``final`` (pre-LN "large" models only): the encoder's final LayerNorm applied to the last
    block, i.e. the model's ``last_hidden_state``. For post-LN models the last block output
    already is ``last_hidden_state``, so they have no ``final``.

Input normalisation follows each checkpoint's ``preprocessor_config.json``: zero mean / unit
variance per clip (``(x - mean) / sqrt(var + 1e-7)``) for the large and data2vec checkpoints,
raw waveform for the WavLM base ones. The spec carries the official default; a loaded folder's
``preprocessor_config.json`` wins and ``runtime_config()`` records the value used.

Weights and revisions:
    The specs pin ``revision="main"`` (no commit hash could be verified offline). The commit
    actually loaded is read from the Hugging Face cache's snapshot folder name and returned
    by ``weights_revision()``; a ``--weights DIR`` folder is identified by the sha256 of its
    weight files. Offline and uncached, ``load()`` raises ``MissingWeightsError`` at once.

A ``--weights DIR`` whose config has another architecture than the named spec (hidden size,
layer count, CNN, model type) is an error naming both: a cache must never say
``wavlm-large`` for a model that is not. Use ``hf:DIR`` for any other checkpoint: the spec
of an ``hf:`` name is read from the model's own ``config.json`` (any wav2vec2-family model:
wav2vec2, wav2vec2-conformer, HuBERT, WavLM, data2vec-audio, UniSpeech(-SAT)).

Batching: on CPU one clip per forward pass (padded batches measured slower there). On CUDA
``embed_batch`` sorts clips by length and pads buckets of at most ``batch_seconds`` of padded
audio with attention masks; only the layer-norm ("large") models batch, because GroupNorm in
the base models' first convolution normalises over the padded time axis (and data2vec-audio's
stacked positional convolutions carry the padded frames' values into the last real ones).

Fast path: the family's inference rewrites (WavLM attention as one fused projection + SDPA,
the LayerNorm CNN front end as GEMMs) live next to it in ``hf_ssl_patches``;
``rewrites.prepare`` applies them for the resolved precision.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError
from embedprobe.extractors._hf import RANDOM_INIT, HFExtractor
from embedprobe.extractors.base import Extractor, ExtractorSpec, as_mono_float32
from embedprobe.extractors.precision import inference, to_device
from embedprobe.extractors.registry import register
from embedprobe.extractors.runtime import versions

SAMPLE_RATE = 16000
CONV = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))  # (kernel, stride) of the CNN
W2V2_TYPES = ("data2vec-audio", "hubert", "unispeech", "unispeech-sat", "wav2vec2",
              "wav2vec2-conformer", "wavlm")
_ARCH_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "conv_kernel", "conv_stride",
              "do_stable_layer_norm")


def layer_names(n_layers: int, final: bool) -> tuple[str, ...]:
    """``("layer00", ..., "layerNN")`` plus ``"final"`` for pre-LN models."""
    return tuple(f"layer{i:02d}" for i in range(n_layers + 1)) + (("final",) if final else ())


def conv_frames(n_samples: int, conv: tuple[tuple[int, int], ...] = CONV) -> int:
    """Frames out of the CNN front end for ``n_samples`` input samples (0 if too short)."""
    n = int(n_samples)
    for kernel, stride in conv:
        n = (n - kernel) // stride + 1 if n >= kernel else 0
    return max(n, 0)


def pre_ln(model_type: str | None, stable: Any) -> bool:
    """Whether the encoder ends in a LayerNorm after its last block (``final``): ``do_stable_layer_norm``
    models; data2vec-audio has no such option and is post-LN at every size."""
    return model_type != "data2vec-audio" and bool(stable)


def _spec(name: str, repo: str, model_type: str, n_layers: int, dim: int, *, large: bool,
          licence: str, description: str, layer_norm_cnn: bool | None = None,
          do_normalize: bool | None = None, extra_params: dict[str, Any] | None = None) -> ExtractorSpec:
    """``large``: the pre-LN layout with ``final``; the CNN norm and the input normalisation
    follow it unless given (data2vec-audio-base: LayerNorm CNN, normalised input, post-LN)."""
    conv = CONV
    params = {"conv": conv, "do_normalize": large if do_normalize is None else do_normalize,
              "model_type": model_type, "final_norm": large,
              "group_norm": not (large if layer_norm_cnn is None else layer_norm_cnn), **(extra_params or {})}
    return ExtractorSpec(
        name=name, family="hf_ssl", sample_rate=SAMPLE_RATE, dim=dim,
        layers=layer_names(n_layers, final=large) + tuple(params.get("clip_layers", ())),
        hop_s=math.prod(s for _, s in conv) / SAMPLE_RATE,
        weights_id=repo, weights_revision="main", licence=licence, extra="hf",
        min_duration_s=conv_frames_min(conv) / SAMPLE_RATE,  # 400 samples: one frame
        description=description, params=tuple(sorted(params.items())),
    )


class HFSpeechEncoder(HFExtractor):
    """A wav2vec2-family encoder from transformers; every hidden layer from one forward pass.

    Args:
        spec: the variant.
        device: torch device.
        weights: a local model folder (``save_pretrained`` output: config.json + model.safetensors).
        precision: ``"auto"`` (bf16 on AVX-512-BF16 CPUs / CUDA), ``"fp32"``, ``"fp32-onednn"``,
            ``"bf16"`` or ``"fp16"`` (CUDA); see ``extractors.precision``.
        batch_seconds: padded audio per batched forward in ``embed_batch``; default 0 (one clip
            per pass) on CPU, 120 s on CUDA.

    Example:
        >>> from embedprobe.extractors import create
        >>> # SKIP: needs the WavLM-large weights (downloaded, ~1.2 GB)
        >>> ext = create("wavlm-large", weights="/models/wavlm-large").load()  # doctest: +SKIP
        >>> out = ext.embed(np.zeros(16000, np.float32))                       # doctest: +SKIP
        >>> out["layer24"].shape                                               # doctest: +SKIP
        (49, 1024)
    """
    chunk_context_s = (5.0, 5.0)  # global attention (and group norm in the base models): close, not equal
    uses_clip_stats = True  # do_normalize: zero mean, unit variance over the whole clip

    def __init__(self, spec: ExtractorSpec, *, device: str = "cpu", weights: str | Path | None = None,
                 precision: str = "auto", batch_seconds: float | None = None,
                 _random_config: Any = None):
        super().__init__(spec, device=device, weights=weights, precision=precision,
                         _random_config=_random_config)
        self.batch_seconds = batch_seconds

    # -- weights -----------------------------------------------------------------------------
    def _local_folder(self) -> Path | None:
        if self.weights is not None:
            return self.weights
        if self.spec.param("local"):
            return Path(str(self.spec.weights_id))
        return None

    def _check_arch(self, config: Any, where: str) -> None:
        """Refuse a checkpoint whose architecture is not the named spec's."""
        if self.spec.name.startswith("hf:"):
            return
        want = {"model_type": self.spec.param("model_type"), "hidden_size": self.spec.dim,
                "num_hidden_layers": sum(n.startswith("layer") for n in self.spec.layers) - 1,
                "conv_kernel": [k for k, _ in self.spec.param("conv")],
                "conv_stride": [s for _, s in self.spec.param("conv")],
                "do_stable_layer_norm": bool(self.spec.param("final_norm"))}
        got = {k: getattr(config, k, None) for k in want}
        got = {k: list(v) if isinstance(v, tuple) else v for k, v in got.items()}
        got["do_stable_layer_norm"] = pre_ln(got["model_type"], got["do_stable_layer_norm"])
        bad = {k: got[k] for k in want if got[k] != want[k]}
        if bad:
            raise BadValueError(
                f"checkpoint for {self.spec.name}", where,
                fix=f"Its config.json has {bad} but {self.spec.name} is "
                    f"{ {k: want[k] for k in bad} }; extract other architectures with "
                    f"--model hf:{where}")

    # -- loading -----------------------------------------------------------------------------
    def _load(self) -> None:
        torch, AutoConfig, AutoModel = self._import("AutoConfig", "AutoModel")
        do_normalize = bool(self.spec.param("do_normalize"))
        if self._random_config is not None:
            torch.manual_seed(0)
            model = self._build(AutoModel, self._random_config)
            source, self._revision = RANDOM_INIT, RANDOM_INIT
        else:
            src = self._resolve()
            config = AutoConfig.from_pretrained(src.path_or_id, **src.kwargs())
            self._check_arch(config, src.path_or_id)
            model = self._build(AutoModel, config, src)
            folder = Path(src.path_or_id)
            prep = folder / "preprocessor_config.json"
            if src.local and prep.is_file():
                pre = json.loads(prep.read_text())
                do_normalize = bool(pre.get("do_normalize", do_normalize))
                sr = int(pre.get("sampling_rate", self.spec.sample_rate))
                if sr != self.spec.sample_rate:
                    raise BadValueError("checkpoint sampling rate", sr, [self.spec.sample_rate],
                                        fix=f"{folder} is not a {self.spec.sample_rate} Hz model")
            self._revision, source = self.loaded_revision(src, model), src.path_or_id
        model = self._encoder(self._frozen(model))
        self.precision_ = self._resolve_precision()
        info = self._prepare_model(model)
        self.model = model
        self._do_normalize = do_normalize
        self._final = "final" in self.spec.layers
        self._install_hooks(model)
        cuda = str(self.device).startswith("cuda")
        self._batch_s = float(self.batch_seconds if self.batch_seconds is not None else (120.0 if cuda else 0.0))
        self._runtime = {
            **info, "device": str(self.device), "do_normalize": do_normalize,
            "batch_seconds": self._batch_s, "weights": str(source), "revision": self._revision,
            "attn_implementation": getattr(model.config, "_attn_implementation", None),
            **versions(),
        }

    def _build(self, auto_model: Any, config: Any, src: Any = None) -> Any:
        """The network from ``config`` (random init) or from ``src`` (a ``weights.HFSource``)."""
        if src is None:
            return auto_model.from_config(config)
        return auto_model.from_pretrained(src.path_or_id, config=config, **src.kwargs())

    def _encoder(self, model: Any) -> Any:
        """The wav2vec2-family encoder inside what ``_build`` returned (itself here)."""
        return model

    def _install_hooks(self, model: Any) -> None:
        blocks = model.encoder.layers
        self._cap: list[Any] = [None] * (len(blocks) + 1)

        def grab_input(_mod, args, kwargs):
            self._cap[0] = args[0] if args else kwargs["hidden_states"]

        def grab_output(i):
            def hook(_mod, _args, output):
                self._cap[i + 1] = output[0] if isinstance(output, tuple) else output
            return hook

        blocks[0].register_forward_pre_hook(grab_input, with_kwargs=True)
        for i, block in enumerate(blocks):
            block.register_forward_hook(grab_output(i))

    # -- compute -----------------------------------------------------------------------------
    def n_frames(self, n_samples: int) -> int:
        return conv_frames(n_samples, tuple(tuple(c) for c in self.spec.param("conv")))

    def _prepare(self, wav: np.ndarray, stats: Any = None) -> np.ndarray:
        wav = as_mono_float32(wav)
        if self.n_frames(wav.shape[0]) < 1:
            raise BadValueError(
                "clip length", f"{wav.shape[0]} samples", fix=f"{self.spec.name} needs at least "
                f"{self.spec.min_duration_s:.3f} s ({int(self.spec.min_duration_s * self.spec.sample_rate)} samples)")
        if self._do_normalize:  # over the whole clip, also for a chunk of a long one (embed_part)
            mean, var = (wav.mean(), wav.var()) if stats is None else (stats.mean, stats.var)
            wav = (wav - mean) / np.sqrt(var + 1e-7)
        return wav.astype(np.float32, copy=False)

    def _forward(self, x: Any, mask: Any = None) -> list[Any]:
        self._cap[:] = [None] * len(self._cap)
        with inference(self.precision_, self.device):
            out = self.model(x, attention_mask=mask)
        states = list(self._cap)
        if self._final:
            states.append(out.last_hidden_state)
        return states

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        return self.embed_part(wav, None)

    def embed_part(self, wav: np.ndarray, stats: Any) -> dict[str, np.ndarray]:
        self.load()
        x = to_device(self._prepare(wav, stats), self.device)[None]
        states = self._forward(x)
        return {name: h[0].float().cpu().numpy() for name, h in zip(self._frame_layers, states, strict=True)}

    @property
    def _frame_layers(self) -> tuple[str, ...]:
        return tuple(n for n in self.spec.layers if n not in self.spec.clip_layers)

    def embed_batch(self, wavs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Length-bucketed padded batches with attention masks (CUDA, layer-norm models); else one by one."""
        self.load()
        budget = int(self._batch_s * self.spec.sample_rate)
        if budget <= 0 or len(wavs) < 2 or self.spec.param("group_norm") or \
                self.spec.param("model_type") == "data2vec-audio":
            return [self.embed(w) for w in wavs]
        import torch

        prepared = [self._prepare(w) for w in wavs]
        order = sorted(range(len(prepared)), key=lambda i: prepared[i].shape[0])
        results: list[dict[str, np.ndarray] | None] = [None] * len(prepared)
        bucket: list[int] = []
        for i in order + [-1]:
            longest = prepared[i].shape[0] if i >= 0 else 0
            if bucket and (i < 0 or (len(bucket) + 1) * longest > budget):
                n_max = prepared[bucket[-1]].shape[0]
                x = np.zeros((len(bucket), n_max), np.float32)
                mask = np.zeros((len(bucket), n_max), np.int64)
                for row, j in enumerate(bucket):
                    x[row, :prepared[j].shape[0]] = prepared[j]
                    mask[row, :prepared[j].shape[0]] = 1
                states = self._forward(to_device(x, self.device),
                                       torch.from_numpy(mask).to(self.device))
                for row, j in enumerate(bucket):
                    t = self.n_frames(prepared[j].shape[0])
                    results[j] = {name: h[row, :t].float().cpu().numpy()
                                  for name, h in zip(self._frame_layers, states, strict=True)}
                bucket = []
            if i >= 0:
                bucket.append(i)
        return results  # type: ignore[return-value]

    # -- tests -------------------------------------------------------------------------------
    @classmethod
    def tiny_config(cls, spec: ExtractorSpec, n_layers: int = 2, dim: int = 32) -> Any:
        """A random-init-sized config of the spec's real architecture (same CNN hop arithmetic)."""
        from transformers import AutoConfig

        large = bool(spec.param("final_norm"))
        conv = spec.param("conv")
        model_type = spec.param("model_type")
        # data2vec-audio: num_conv_pos_embeddings counts positional conv layers (5, kernel 19: kept)
        extra = ({} if model_type == "data2vec-audio" else
                 {"num_conv_pos_embeddings": 16, "do_stable_layer_norm": large,
                  "feat_extract_norm": "group" if spec.param("group_norm") else "layer"})
        return AutoConfig.for_model(
            model_type, hidden_size=dim, num_hidden_layers=n_layers,
            num_attention_heads=2, intermediate_size=2 * dim, conv_dim=[16] * len(conv),
            conv_kernel=[k for k, _ in conv], conv_stride=[s for _, s in conv],
            num_conv_pos_embedding_groups=4, num_buckets=32, max_bucket_distance=64, **extra)

    @classmethod
    def for_tests(cls, spec: ExtractorSpec) -> Extractor:
        cfg = cls.tiny_config(spec)
        tiny = replace(spec, dim=cfg.hidden_size,
                       layers=layer_names(cfg.num_hidden_layers, bool(spec.param("final_norm"))))
        return cls(tiny, _random_config=cfg)


def conv_frames_min(conv: tuple[tuple[int, int], ...]) -> int:
    """The fewest input samples that give one frame."""
    n = 1
    for kernel, stride in reversed(conv):
        n = (n - 1) * stride + kernel
    return n


WAVLM_BASE = register(_spec("wavlm-base", "microsoft/wavlm-base", "wavlm", 12, 768, large=False,
                            licence="MIT", description="WavLM Base (960 h LibriSpeech), 13 layers x 768"), HFSpeechEncoder)
WAVLM_BASE_PLUS = register(_spec("wavlm-base-plus", "microsoft/wavlm-base-plus", "wavlm", 12, 768, large=False,
                                 licence="MIT", description="WavLM Base+ (94k h), 13 layers x 768"), HFSpeechEncoder)
WAVLM_LARGE = register(_spec("wavlm-large", "microsoft/wavlm-large", "wavlm", 24, 1024, large=True,
                             licence="MIT", description="WavLM Large (94k h), 25 layers + final x 1024 (the poster's WavLM-L)"),
                       HFSpeechEncoder)
HUBERT_LARGE = register(_spec("hubert-large", "facebook/hubert-large-ll60k", "hubert", 24, 1024, large=True,
                              licence="Apache-2.0", description="HuBERT Large (Libri-Light 60k h), self-supervised"),
                        HFSpeechEncoder)
WAV2VEC2_LARGE = register(_spec("wav2vec2-large", "facebook/wav2vec2-large-lv60", "wav2vec2", 24, 1024, large=True,
                                licence="Apache-2.0", description="wav2vec 2.0 Large (Libri-Light 60k h), self-supervised"),
                          HFSpeechEncoder)
DATA2VEC_AUDIO_BASE = register(_spec(
    "data2vec-audio-base", "facebook/data2vec-audio-base", "data2vec-audio", 12, 768, large=False,
    layer_norm_cnn=True, do_normalize=True, licence="Apache-2.0",
    description="data2vec-audio Base (LibriSpeech 960 h), self-supervised, 13 layers x 768"), HFSpeechEncoder)
DATA2VEC_AUDIO_LARGE = register(_spec(
    "data2vec-audio-large", "facebook/data2vec-audio-large", "data2vec-audio", 24, 1024, large=False,
    layer_norm_cnn=True, do_normalize=True, licence="Apache-2.0",
    description="data2vec-audio Large (Libri-Light 60k h), self-supervised, 25 layers x 1024"), HFSpeechEncoder)

"""emotion2vec and emotion2vec+ (data2vec 2.0 audio encoders for emotion): every layer, frames every 20 ms.

About the model:
    "emotion2vec: Self-Supervised Pre-Training for Speech Emotion Representation" (Ma et al.,
    ACL Findings 2024, arXiv 2312.15185): a data2vec 2.0 audio encoder pre-trained by online
    distillation on emotion data; emotion2vec+ (May 2024) fine-tunes it on pseudo-labelled
    speech with a 9-class emotion head. Official checkpoints, ``model.pt`` in the Hugging Face
    repositories (licence: FunASR's model licence, ``license: other``, see the model cards):

    * ``emotion2vec-base``: ``emotion2vec/emotion2vec_base``, 768-d, 4 prenet + 8 blocks, 12 heads;
    * ``emotion2vec-plus-base``: ``emotion2vec/emotion2vec_plus_base``, same architecture;
    * ``emotion2vec-plus-large``: ``emotion2vec/emotion2vec_plus_large``, 1024-d, 8 prenet +
      16 blocks, 16 heads (fairseq's data2vec 2.0 large audio configuration; ~300M parameters).

What embedprobe computes:
    The encoder is written here (``nets/data2vec2.py``), without FunASR, fairseq or modelscope,
    and matches FunASR's ``Emotion2vec`` in eval mode (tests compare both on identical random
    weights, ``tests/golden/make_emotion2vec.py``). The clip is normalised to zero mean and unit
    variance (``F.layer_norm`` over the whole clip, as FunASR's ``inference`` does), and one
    forward pass gives ``layer00`` (the prenet's input) and ``layer01`` ... ``layerNN`` (every
    block, prenet blocks first), each ``(n_frames, dim)`` with one frame per 320 samples and
    the 10 extra tokens removed. The last layer is FunASR's ``granularity="frame"`` output; its
    mean over frames (the pooled ``mean`` of that layer) is upstream's
    ``granularity="utterance"`` feature (``utterance()`` returns it directly).

Bounded work: attention is global with an ALiBi bias of ``heads x T x T``, so a clip longer
than ``chunk_s`` (spec param, 30 s) is embedded in windows of at most ``chunk_s`` plus 5 s of
context on each side (``audio.chunking.ChunkPlan``, normalised with the whole clip's
statistics); the kept frames add up to the whole clip's. The pipeline's own chunks
(``--chunk``) use the same context (``chunk_context_s``). Frames near a window edge see less
context than in one whole pass: close, not equal (ALiBi makes far frames weigh little).

Weights are looked up as ``<name>.pt`` (e.g. ``emotion2vec_plus_large.pt``, the repository's
``model.pt`` renamed) in ``--weights``, ``$EMBEDPROBE_WEIGHTS``, ``~/.cache/embedprobe/weights/``,
then in the Hugging Face cache as ``emotion2vec/<name>/model.pt``; they load through the safe
loader (``weights.load_torch_checkpoint``), from ``ckpt["model"]`` or ``ckpt["state_dict"]``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.audio.chunking import ChunkPlan, ClipStats
from embedprobe.errors import BadValueError
from embedprobe.extractors.base import ExtractorSpec, as_mono_float32
from embedprobe.extractors.checkpoint import CheckpointExtractor
from embedprobe.extractors.precision import to_device
from embedprobe.extractors.registry import register
from embedprobe.extractors.weights import extract_state_dict

SAMPLE_RATE = 16000
HOP = 320
CONV = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
LICENCE = ("FunASR model licence (emotion2vec model cards: license other, model-license); "
           "encoder code MIT")
_ARCH = ("embed_dim", "heads", "prenet_depth", "depth", "mlp_ratio", "conv", "conv_pos_width",
         "conv_pos_groups", "conv_pos_depth", "extra_tokens")


def config_of(spec: ExtractorSpec) -> Any:
    """The ``nets.data2vec2.Data2Vec2Config`` of ``spec`` (imports torch)."""
    from embedprobe.extractors.nets.data2vec2 import Data2Vec2Config

    return Data2Vec2Config(**{k: spec.param(k) for k in _ARCH})


def _frames(n: int, conv: tuple[tuple[int, int, int], ...]) -> int:
    for _, kernel, stride in conv:
        n = (n - kernel) // stride + 1 if n >= kernel else 0
    return n


def checkpoint_tensors(obj: Any) -> dict:
    """The encoder's tensors in a loaded ``model.pt``: FunASR reads ``ckpt["state_dict"]`` if
    present, then its ``["model"]``; fairseq checkpoints keep them in ``ckpt["model"]`` (with a
    4-D ``alibi_scale`` in older ones, which fairseq's ``upgrade_state_dict_named`` makes 5-D)."""
    state = dict(extract_state_dict(extract_state_dict(obj, ("state_dict",)), ("model",)))
    key = "modality_encoders.AUDIO.alibi_scale"
    if key in state and getattr(state[key], "ndim", 0) == 4:  # older fairseq layout, upgraded as fairseq does
        state[key] = state[key].unsqueeze(0)
    return state


def layer_names(n_blocks: int) -> tuple[str, ...]:
    """``("layer00", ..., "layerNN")``: the prenet's input, then every block's output."""
    return tuple(f"layer{i:02d}" for i in range(n_blocks + 1))


class Emotion2vecExtractor(CheckpointExtractor):
    """emotion2vec / emotion2vec+: every hidden layer from one forward pass.

    Example:
        >>> from embedprobe.extractors import create
        >>> # SKIP: needs the emotion2vec+ large checkpoint (downloaded)
        >>> ext = create("emotion2vec-plus-large", weights="~/models/model.pt").load()  # doctest: +SKIP
        >>> out = ext.embed(np.zeros(16000, np.float32))  # doctest: +SKIP
        >>> out["layer24"].shape  # doctest: +SKIP
        (49, 1024)
    """
    chunk_context_s = (5.0, 5.0)  # global attention with ALiBi: close, not equal
    uses_clip_stats = True  # the whole clip is normalised to zero mean, unit variance

    what = "emotion2vec"

    @classmethod
    def for_tests(cls, spec: ExtractorSpec) -> Emotion2vecExtractor:
        """A random-init encoder of the real architecture, tiny (``TINY["heads12"]``)."""
        return cls.random_init(tiny_spec(spec, "heads12"), seed=0)

    # -- weights ------------------------------------------------------------------------------
    def _hf_file(self, name: str) -> tuple[str, str, str | None] | None:
        repo = self.spec.param("hf_repo")  # the hub file is model.pt whatever the local name
        return (repo, "model.pt", self.spec.param("hf_revision")) if repo else None

    def _build(self, paths: list[Path] | None) -> None:
        import torch

        from embedprobe.extractors.nets.data2vec2 import IGNORED_KEYS, Data2Vec2Audio

        cfg = config_of(self.spec)
        net = self._network(lambda: Data2Vec2Audio(cfg),
                            lambda: checkpoint_tensors(self._checkpoint(paths[0])),
                            ignore=IGNORED_KEYS)
        self._net = net.eval().to(self.device)
        self._torch = torch

    def _fast_modules(self):
        return self._net, ()

    # -- compute -------------------------------------------------------------------------------
    def n_frames(self, n_samples: int) -> int:
        return _frames(int(n_samples), tuple(tuple(c) for c in self.spec.param("conv")))

    def _check_length(self, n: int) -> None:
        if self.n_frames(n) < 1:
            raise BadValueError(
                "clip length", f"{n} samples", fix=f"{self.spec.name} needs at least "
                f"{self.spec.min_duration_s:.3f} s ({round(self.spec.min_duration_s * SAMPLE_RATE)} samples)")

    def _forward(self, wav: np.ndarray, stats: ClipStats) -> list[np.ndarray]:
        x = ((wav - stats.mean) / np.sqrt(stats.var + 1e-5)).astype(np.float32)
        with self._inference():
            states = self._net(to_device(x[None], self.device))
        return [s[0].float().cpu().numpy() for s in states]

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        return self.embed_part(wav, None)

    def embed_part(self, wav: np.ndarray, stats: Any) -> dict[str, np.ndarray]:
        """Embed ``wav`` normalised by ``stats`` (default: its own), in windows past ``chunk_s``."""
        self.load()
        wav = as_mono_float32(wav)
        self._check_length(wav.shape[0])
        stats = ClipStats.of([wav]) if stats is None else stats
        plan = ChunkPlan.for_extractor(self, max(1, round(float(self.spec.param("chunk_s")) * SAMPLE_RATE)))
        pieces: dict[str, list[np.ndarray]] = {layer: [] for layer in self.spec.layers}
        for win in plan.windows([wav]):
            lo, hi = plan.owned(win)
            for layer, state in zip(self.spec.layers, self._forward(win.wav, stats), strict=True):
                pieces[layer].append(state[lo:hi])
        out = {}
        for layer in self.spec.layers:  # one layer's copy at a time next to the pieces
            parts = pieces.pop(layer)
            out[layer] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return out

    def utterance(self, wav: np.ndarray) -> np.ndarray:
        """Upstream's ``granularity="utterance"`` feature: the last layer's mean over frames, ``(dim,)``."""
        return self.embed(wav)[self.spec.layers[-1]].mean(axis=0)


def _params(cfg: dict[str, Any], repo: str | None, local: str) -> tuple[tuple[str, Any], ...]:
    url = f"https://huggingface.co/{repo}/resolve/main/model.pt (saved as {local})" if repo else ""
    return tuple(sorted({**cfg, "chunk_s": 30.0, "hf_repo": repo, "weights_file": local,
                         "weights_url": url}.items()))


def _spec(name: str, repo: str, arch: dict[str, Any], description: str) -> ExtractorSpec:
    cfg = {"mlp_ratio": 4.0, "conv": CONV, "conv_pos_width": 95, "conv_pos_groups": 16,
           "conv_pos_depth": 5, "extra_tokens": 10, **arch}
    local = repo.split("/")[1] + ".pt"
    return ExtractorSpec(
        name=name, family="emotion2vec", sample_rate=SAMPLE_RATE, dim=int(cfg["embed_dim"]),
        layers=layer_names(int(cfg["prenet_depth"]) + int(cfg["depth"])), hop_s=HOP / SAMPLE_RATE,
        weights_id=repo, weights_revision="main", licence=LICENCE, extra=None,
        min_duration_s=400 / SAMPLE_RATE, description=description, params=_params(cfg, repo, local))


def tiny_spec(spec: ExtractorSpec, variant: str) -> ExtractorSpec:
    """``spec`` with the tiny random-init architecture ``TINY[variant]`` (tests, fixtures)."""
    arch = TINY[variant]
    params = {**dict(spec.params), **arch}
    return replace(spec, dim=int(arch["embed_dim"]), layers=layer_names(arch["prenet_depth"] + arch["depth"]),
                   params=tuple(sorted(params.items())))


_BASE = {"embed_dim": 768, "heads": 12, "prenet_depth": 4, "depth": 8}
_LARGE = {"embed_dim": 1024, "heads": 16, "prenet_depth": 8, "depth": 16}
EMOTION2VEC_BASE = register(_spec(
    "emotion2vec-base", "emotion2vec/emotion2vec_base", _BASE,
    "emotion2vec base (data2vec 2.0, self-supervised on emotion data): 13 layers, 768-d"), Emotion2vecExtractor)
EMOTION2VEC_PLUS_BASE = register(_spec(
    "emotion2vec-plus-base", "emotion2vec/emotion2vec_plus_base", _BASE,
    "emotion2vec+ base (fine-tuned on pseudo-labelled emotion data): 13 layers, 768-d"), Emotion2vecExtractor)
EMOTION2VEC_PLUS_LARGE = register(_spec(
    "emotion2vec-plus-large", "emotion2vec/emotion2vec_plus_large", _LARGE,
    "emotion2vec+ large (fine-tuned on pseudo-labelled emotion data): 25 layers, 1024-d"), Emotion2vecExtractor)


_SMALL_CONV = ((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2  # the official kernels and strides
#: Tiny random-init architectures for tests and fixtures: the official layer types and code path,
#: 12 heads (ALiBi's non-power-of-2 slopes, as the base models) and 16 heads (as the large one).
TINY = {"heads12": {"embed_dim": 96, "heads": 12, "prenet_depth": 2, "depth": 2, "conv": _SMALL_CONV},
        "heads16": {"embed_dim": 64, "heads": 16, "prenet_depth": 1, "depth": 2, "conv": _SMALL_CONV}}
#: The registered variants and the size of their checkpoints' classifier head (-1: none).
FULL = {"base": (EMOTION2VEC_BASE, -1), "plus_base": (EMOTION2VEC_PLUS_BASE, 9),
        "plus_large": (EMOTION2VEC_PLUS_LARGE, 9)}

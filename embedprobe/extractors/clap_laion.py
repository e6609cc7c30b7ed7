"""LAION-CLAP audio embeddings (HTS-AT audio branch + projection) through transformers.

About the models:
    ``clap-laion``: ``laion/clap-htsat-unfused`` (LAION-Audio-630K, HTS-AT tiny, no feature
    fusion). ``clap-laion-general``: ``laion/larger_clap_general`` (larger HTS-AT trained on
    general audio, speech and music). Both: Apache-2.0 weights, 48 kHz input, 512-d joint
    audio-text space. (The poster's "CLAP-2023" is Microsoft's MS-CLAP, a different model.)

The model sees 10 s at a time (1001 mel frames). Longer input is cut into consecutive 10 s
windows, each embedded on its own; a window shorter than 10 s is repeat-padded as the
official feature extractor does (``padding="repeatpad"``). So ``hop_s = 10`` and
``n_frames = ceil(n / 480000)``; pool the frames (mean) for a clip vector. Windows are never
cropped at random: ``rand_trunc`` / ``fusion`` crops only apply to input longer than 10 s,
which never reaches the feature extractor here.

Layer ``embedding``: the audio projection output, L2-normalised, exactly what
``ClapModel.get_audio_features`` returns and what zero-shot CLAP compares to text.

Feature extraction is transformers' ``ClapFeatureExtractor`` (numpy mel filterbank; no
torchaudio or librosa needed).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from embedprobe.errors import BadValueError
from embedprobe.extractors._hf import RANDOM_INIT, HFExtractor
from embedprobe.extractors.base import Extractor, ExtractorSpec, as_mono_float32
from embedprobe.extractors.precision import inference
from embedprobe.extractors.registry import register
from embedprobe.extractors.runtime import versions

SAMPLE_RATE = 48000
WINDOW_S = 10.0


class ClapAudio(HFExtractor):
    """LAION-CLAP audio embedding per 10 s window; the only layer is ``"embedding"``.

    Args:
        spec, device, weights: see ``Extractor`` (``weights``: a ``save_pretrained`` folder of
            ``ClapModel`` or ``ClapAudioModelWithProjection``).
        precision: see ``precision.PRECISIONS`` (``"auto"``: bf16 autocast on bf16 CPUs).

    Example:
        >>> from embedprobe.extractors import create
        >>> # SKIP: needs the LAION-CLAP weights (downloaded, ~2 GB)
        >>> ext = create("clap-laion").load()                                 # doctest: +SKIP
        >>> ext.embed(np.zeros(48000 * 12, np.float32))["embedding"].shape   # doctest: +SKIP
        (2, 512)
    """
    chunk_context_s = (0.0, 5.0)  # half a 10 s window: a chunk's own windows are complete

    def _load(self) -> None:
        torch, ClapAudioModelWithProjection, ClapFeatureExtractor = self._import(
            "ClapAudioModelWithProjection", "ClapFeatureExtractor")
        if self._random_config is not None:
            torch.manual_seed(0)
            model = ClapAudioModelWithProjection(self._random_config)
            fe, source, self._revision = ClapFeatureExtractor(), RANDOM_INIT, RANDOM_INIT
        else:
            src = self._resolve()
            model = ClapAudioModelWithProjection.from_pretrained(src.path_or_id, **src.kwargs())
            try:  # the checkpoint's own mel settings; the defaults are clap-htsat-unfused's
                fe = ClapFeatureExtractor.from_pretrained(src.path_or_id, **src.kwargs())
            except OSError:
                fe = ClapFeatureExtractor()
            self._revision, source = self.loaded_revision(src), src.path_or_id
        if model.config.projection_dim != self.spec.dim or fe.sampling_rate != self.spec.sample_rate:
            raise BadValueError(
                f"checkpoint for {self.spec.name}", source,
                fix=f"It has projection_dim={model.config.projection_dim} at {fe.sampling_rate} Hz, "
                    f"expected {self.spec.dim} at {self.spec.sample_rate} Hz")
        self.model = self._frozen(model)
        self.fe = fe
        self._window = int(round(fe.max_length_s * fe.sampling_rate))
        self._truncation = "fusion" if model.config.enable_fusion else "rand_trunc"
        self.precision_ = self._resolve_precision()
        info = self._prepare_model(self.model, fuse_attention=False)
        self._runtime = {**info, "device": str(self.device), "weights": str(source),
                         "revision": self._revision, "window_s": self._window / fe.sampling_rate,
                         "truncation": self._truncation, "padding": "repeatpad", **versions()}

    def n_frames(self, n_samples: int) -> int:
        return max(1, math.ceil(int(n_samples) / int(WINDOW_S * self.spec.sample_rate)))

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        self.load()
        import torch.nn.functional as F

        wav = as_mono_float32(wav)
        out = []
        for start in range(0, wav.shape[0], self._window):
            window = wav[start:start + self._window]
            feats = self.fe(window, sampling_rate=self.fe.sampling_rate, return_tensors="pt",
                            truncation=self._truncation, padding="repeatpad")
            feats = {k: v.to(self.device) for k, v in feats.items()}
            with inference(self.precision_, self.device):
                emb = self.model(**feats).audio_embeds
            out.append(F.normalize(emb.float(), dim=-1)[0].cpu().numpy())
        return {"embedding": np.stack(out).astype(np.float32)}

    @classmethod
    def for_tests(cls, spec: ExtractorSpec) -> Extractor:
        from transformers import ClapAudioConfig

        cfg = ClapAudioConfig(depths=(1, 1), num_attention_heads=(1, 2), patch_embeds_hidden_size=16,
                              hidden_size=32, projection_dim=16)
        return cls(replace(spec, dim=cfg.projection_dim), _random_config=cfg)


def _spec(name: str, repo: str, description: str) -> ExtractorSpec:
    return ExtractorSpec(
        name=name, family="clap_laion", sample_rate=SAMPLE_RATE, dim=512, layers=("embedding",),
        hop_s=WINDOW_S, weights_id=repo, weights_revision="main", licence="Apache-2.0", extra="hf",
        min_duration_s=0.0, description=description,
        params=(("padding", "repeatpad"), ("window_s", WINDOW_S)),
    )


CLAP_LAION = register(_spec("clap-laion", "laion/clap-htsat-unfused",
                            "LAION-CLAP HTS-AT (unfused), 512-d per 10 s window"), ClapAudio)
CLAP_LAION_GENERAL = register(_spec("clap-laion-general", "laion/larger_clap_general",
                                    "LAION-CLAP larger model (general audio + speech + music), 512-d per 10 s"),
                              ClapAudio)

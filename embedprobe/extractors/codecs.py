"""Neural audio codec latents: EnCodec 24 kHz and DAC 44.1 kHz through transformers' ports.

About the models:
    ``encodec-24k``: Meta's EnCodec (``facebook/encodec_24khz``; weights CC-BY-NC-4.0).
    SEANet encoder, strides 2x4x5x8 = 320 samples, so 75 frames/s of 128-d vectors.
    ``dac-44k``: Descript Audio Codec (``descript/dac_44khz``; MIT). Strides 2x4x8x8 = 512
    samples, about 86 frames/s of 1024-d vectors. These are the poster's "EnCodec 128" and
    "DAC-44kHz 1024".

Layers (one encoder pass each):
    ``latent``: the encoder output *before* quantisation, the continuous embedding the poster
    probes. ``quantized``: the same frames after residual vector quantisation with every
    codebook (EnCodec at its top bandwidth, 24 kbps / 32 codebooks; DAC's 9 codebooks),
    i.e. what the decoder would see.

Input: mono at the codec's rate in [-1, 1]; no loudness normalisation (``normalize`` is off in
both official configs; a config that turns it on is honoured). DAC's input is zero-padded
to a multiple of its hop, as its feature extractor does, so ``n_frames = ceil(n / 512)``;
EnCodec pads internally, ``n_frames = ceil(n / 320)``.

The official ports need no torchaudio (the original ``encodec`` / ``descript-audio-codec``
packages import it and do not install cleanly next to the CPU torch).
"""

from __future__ import annotations

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

LAYERS = ("latent", "quantized")


class CodecLatent(HFExtractor):
    """Pre- and post-quantisation latents of EnCodec / DAC (``spec.param("kind")``).

    Args:
        spec, device, weights: see ``Extractor`` (``weights``: a ``save_pretrained`` folder).
        precision: see ``precision.PRECISIONS``. Default ``"fp32"``: bf16 keeps ``latent`` at
            cosine 0.9999 but moves ``quantized`` frames to neighbouring codes (cosine ~0.98),
            and the codecs are cheap enough in fp32.

    Example:
        >>> from embedprobe.extractors import create
        >>> # SKIP: needs the EnCodec weights (downloaded)
        >>> ext = create("encodec-24k").load()                        # doctest: +SKIP
        >>> ext.embed(np.zeros(24000, np.float32))["latent"].shape   # doctest: +SKIP
        (75, 128)
    """
    chunk_context_s = (2.0, 2.0)  # DAC's convolutions need ~0.2 s; EnCodec's encoder LSTM needs more

    def __init__(self, spec: ExtractorSpec, *, device: str = "cpu", weights: str | Path | None = None,
                 precision: str = "fp32", _random_config: Any = None):
        super().__init__(spec, device=device, weights=weights, precision=precision,
                         _random_config=_random_config)

    def _load(self) -> None:
        kind = "EncodecModel" if self.spec.param("kind") == "encodec" else "DacModel"
        torch, cls = self._import(kind)
        if self._random_config is not None:
            torch.manual_seed(0)
            model, source, self._revision = cls(self._random_config), RANDOM_INIT, RANDOM_INIT
            if self.spec.param("kind") == "encodec":  # random codebooks (they init to zeros)
                for layer in model.quantizer.layers:
                    layer.codebook.embed.normal_(0.0, 0.05)
        else:
            src = self._resolve()
            model = cls.from_pretrained(src.path_or_id, **src.kwargs())
            self._revision, source = self.loaded_revision(src), src.path_or_id
        cfg = model.config
        got = (int(cfg.hidden_size), int(cfg.sampling_rate), int(cfg.hop_length))
        want = (self.spec.dim, self.spec.sample_rate, int(self.spec.param("hop")))
        if got != want:
            raise BadValueError(
                f"checkpoint for {self.spec.name}", source,
                fix=f"Its config has (hidden_size, sampling_rate, hop) = {got}, expected {want}")
        if self.spec.param("kind") == "encodec" and cfg.chunk_length_s is not None:
            raise BadValueError(f"checkpoint for {self.spec.name}", source,
                                fix="Chunked EnCodec models (the 48 kHz one) are not supported")
        self.model = self._frozen(model)
        self.precision_ = self._resolve_precision()
        # only the encoder runs under autocast; the codebook search stays fp32 (no argmin flips)
        info = self._prepare_model(self.model.encoder, fuse_attention=False)
        self._runtime = {**info, "device": str(self.device), "weights": str(source),
                         "revision": self._revision, **versions()}

    def n_frames(self, n_samples: int) -> int:
        return max(1, math.ceil(int(n_samples) / int(self.spec.param("hop"))))

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        self.load()
        wav = as_mono_float32(wav)
        hop = int(self.spec.param("hop"))
        if self.spec.param("kind") == "dac":  # DacFeatureExtractor pads to a whole number of hops
            wav = np.pad(wav, (0, -wav.shape[0] % hop))
        x = to_device(wav, self.device)[None, None]
        encodec = self.spec.param("kind") == "encodec"
        cfg = self.model.config
        if encodec and cfg.normalize:
            x = x / (x.pow(2).mean(dim=-1, keepdim=True).sqrt() + 1e-8)
        with inference(self.precision_, self.device):
            latent = self.model.encoder(x)
        with inference("fp32", self.device):
            latent = latent.float()
            if encodec:
                codes = self.model.quantizer.encode(latent, max(cfg.target_bandwidths))
                quantized = self.model.quantizer.decode(codes)
            else:
                quantized = self.model.quantizer(latent)[0]
        return {"latent": latent[0].T.cpu().numpy(), "quantized": quantized[0].T.float().cpu().numpy()}

    # -- tests -------------------------------------------------------------------------------
    @classmethod
    def for_tests(cls, spec: ExtractorSpec) -> Extractor:
        import transformers

        if spec.param("kind") == "encodec":
            cfg = transformers.EncodecConfig(num_filters=4, hidden_size=8, codebook_size=16,
                                             sampling_rate=spec.sample_rate)
        else:
            cfg = transformers.DacConfig(encoder_hidden_size=4, decoder_hidden_size=16, hidden_size=16,
                                         n_codebooks=2, codebook_size=16, codebook_dim=4,
                                         sampling_rate=spec.sample_rate)
        return cls(replace(spec, dim=cfg.hidden_size), _random_config=cfg)


def _spec(name: str, kind: str, repo: str, sr: int, dim: int, hop: int, licence: str,
          description: str) -> ExtractorSpec:
    return ExtractorSpec(
        name=name, family="codecs", sample_rate=sr, dim=dim, layers=LAYERS, hop_s=hop / sr,
        weights_id=repo, weights_revision="main", licence=licence, extra="hf",
        min_duration_s=0.0, description=description,
        params=tuple(sorted({"kind": kind, "hop": hop}.items())),
    )


ENCODEC_24K = register(_spec("encodec-24k", "encodec", "facebook/encodec_24khz", 24000, 128, 320,
                             "CC-BY-NC-4.0 (weights)", "EnCodec 24 kHz encoder latent, 75 Hz x 128"), CodecLatent)
DAC_44K = register(_spec("dac-44k", "dac", "descript/dac_44khz", 44100, 1024, 512, "MIT",
                         "DAC 44.1 kHz encoder latent, ~86 Hz x 1024"), CodecLatent)

"""VGGish (AudioSet VGG, Google 2017): one 128-d embedding per 0.96 s of 16 kHz audio.

About the model:
    VGGish from "CNN Architectures for Large-Scale Audio Classification" (Hershey et al.,
    ICASSP 2017), trained on YouTube-8M-style audio; the AudioSet release adds a PCA (with
    whitening) and 8-bit quantisation. embedprobe loads the PyTorch conversion of
    torchvggish (harritaylor/torchvggish release v0.1, Apache-2.0 like the TF original):
    ``vggish-10086976.pth`` (VGG weights) and ``vggish_pca_params-970ea276.pth`` (PCA); the
    8-hex-digit suffixes are the files' sha256 prefixes, and ``weights_revision()`` reports
    the hashes of the files actually loaded.

What embedprobe computes (``nets/vggish.py``, checked against torchvggish on identical weights):
    log-mel examples of 96 x 64 (25 ms window, 10 ms hop, 125-7500 Hz, ``log(mel + 0.01)``,
    no overlap; a partial last example is dropped, as in the reference), the VGG, then

    * ``"pre_pca"``: the VGG's 128-d output (after its final ReLU, as in torchvggish);
    * ``"embedding"``: the AudioSet PCA of it, *not* clipped or quantised (the quantised
      uint8 values are a storage format; ``Postprocessor.quantize`` reproduces them).

    Frames are examples: ``hop_s = 0.96``; ``n_frames(n) = 1 + (1 + (n - 400) // 160 - 96) // 96``.
    Inputs shorter than one example (0.975 s) are zero-padded to one. ``embed_batch`` runs
    all examples of all clips in one pass (examples are independent, so no padding enters).

Precision (``precision=``, default ``"auto"``, see ``extractors.precision``): on CPUs with native bf16 only
the VGG runs under bf16 autocast (``embedding`` at cosine 0.999998, ``pre_pca`` 0.99998 to fp32
on EmoDB speech, ~1.9x faster); the float64 log-mel front end and the PCA stay as they are.

Weights are looked up by ``embedprobe.extractors.weights`` (``--weights`` with the VGG file or
its folder, the PCA file beside it; ``$EMBEDPROBE_WEIGHTS``; ``~/.cache/embedprobe/weights/``;
torch hub's ``checkpoints/`` folder, where ``torch.hub.load('harritaylor/torchvggish', ...)``
puts them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedprobe.extractors.base import ExtractorSpec, as_mono_float32
from embedprobe.extractors.checkpoint import CheckpointExtractor
from embedprobe.extractors.precision import to_device
from embedprobe.extractors.registry import register
from embedprobe.extractors.weights import extract_state_dict, torch_hub_checkpoints

_RELEASE = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
_MIN_SAMPLES = 400 + 95 * 160  # one complete 96-frame example


class VGGishExtractor(CheckpointExtractor):
    """VGGish embeddings, one per 0.96 s example.

    Example:
        >>> from embedprobe.extractors import create
        >>> # SKIP: needs the VGGish weights (downloaded)
        >>> ext = create("vggish").load()  # doctest: +SKIP
        >>> ext.embed(np.zeros(32000, np.float32))["embedding"].shape  # doctest: +SKIP
        (2, 128)
    """
    chunk_context_s = (0.0, 1.0)  # one 0.96 s example + its 25 ms window: examples are independent

    what = "VGGish"

    @property
    def extra_dirs(self) -> tuple[str, ...]:  # type: ignore[override]
        return (str(torch_hub_checkpoints()),)

    def _files(self) -> tuple[str, ...]:
        return (str(self.spec.param("weights_file")), str(self.spec.param("pca_file")))

    @classmethod
    def for_tests(cls, spec: ExtractorSpec) -> VGGishExtractor:
        """A random-init VGGish with a narrow VGG (the real front end and a 128-d PCA)."""
        small = _with_params(spec, widths=(8, 8, 16, 16), hidden=32)
        return cls.random_init(small, seed=0)

    def _build(self, paths: list[Path] | None) -> None:
        import torch

        from embedprobe.extractors.nets.vggish import VGG, LogMelExamples, Postprocessor

        def pca_state() -> dict:
            raw = self._checkpoint(paths[1])
            state = {k: torch.as_tensor(np.asarray(raw[k]), dtype=torch.float32)
                     for k in ("pca_eigen_vectors", "pca_means") if k in raw}
            if "pca_means" in state:
                state["pca_means"] = state["pca_means"].reshape(-1)
            return state

        p = self.spec.param
        vgg = self._network(lambda: VGG(tuple(p("widths", (64, 128, 256, 512))), int(p("hidden", 4096)),
                                        self.spec.dim),
                            lambda: extract_state_dict(self._checkpoint(paths[0])))
        pca = self._network(lambda: Postprocessor(self.spec.dim), pca_state, seed_offset=1, what="VGGish PCA")
        self._front = LogMelExamples().to(self.device)
        self._vgg = vgg.eval().to(self.device)
        self._pca = pca.eval().to(self.device)
        self._torch = torch

    def _fast_modules(self):
        # Only the VGG runs under autocast: the float64 log-mel front end and the PCA are
        # called outside it (fp32 PCA: it is cheap, and whitening amplifies rounding).
        return self._vgg, ()

    # -- compute -------------------------------------------------------------------------------
    def n_frames(self, n_samples: int) -> int:
        from embedprobe.extractors.nets.vggish import n_examples

        return n_examples(max(n_samples, _MIN_SAMPLES))

    def _examples(self, wav: np.ndarray):
        wav = as_mono_float32(wav)
        if wav.shape[0] < _MIN_SAMPLES:
            wav = np.pad(wav, (0, _MIN_SAMPLES - wav.shape[0]))
        return self._front(to_device(wav, self.device))

    def _run(self, examples) -> tuple[np.ndarray, np.ndarray]:
        with self._inference():
            pre = self._vgg(examples)
        with self._torch.inference_mode():
            pre = pre.float()
            emb = self._pca(pre)
        return emb.cpu().numpy(), pre.cpu().numpy()

    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        self.load()
        with self._torch.inference_mode():
            emb, pre = self._run(self._examples(wav))
        return {"embedding": emb, "pre_pca": pre}

    def embed_batch(self, wavs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """All examples of all clips in one forward pass, split back per clip."""
        if not wavs:
            return []
        self.load()
        with self._torch.inference_mode():
            parts = [self._examples(w) for w in wavs]
            emb, pre = self._run(self._torch.cat(parts))
        bounds = np.cumsum([0] + [len(x) for x in parts])
        return [{"embedding": emb[a:b], "pre_pca": pre[a:b]} for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _with_params(spec: ExtractorSpec, **extra: object) -> ExtractorSpec:
    from dataclasses import replace

    return replace(spec, params=tuple(sorted({**dict(spec.params), **extra}.items())))


VGGISH = register(ExtractorSpec(
    name="vggish",
    family="vggish",
    sample_rate=16000,
    dim=128,
    layers=("embedding", "pre_pca"),
    hop_s=0.96,
    weights_id="vggish-10086976.pth",
    weights_revision="sha256:10086976+sha256:970ea276",
    licence="Apache-2.0 (VGGish weights and torchvggish conversion)",
    extra=None,
    min_duration_s=_MIN_SAMPLES / 16000,
    description="VGGish AudioSet embedding (torchvggish conversion), 128-d PCA per 0.96 s, unquantised",
    params=tuple(sorted({
        "weights_file": "vggish-10086976.pth", "pca_file": "vggish_pca_params-970ea276.pth",
        "weights_url": _RELEASE, "window_s": 0.025, "hop_s": 0.010, "n_mels": 64,
        "fmin": 125.0, "fmax": 7500.0, "log_offset": 0.01, "example_frames": 96,
        "quantised": False,
    }.items())),
), VGGishExtractor)

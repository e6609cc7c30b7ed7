"""The extractor contract: a spec (data) plus a class with a lazy ``load()`` and array-in/array-out ``embed``.

Adding a model family means one new module in this package that defines an ``Extractor``
subclass and registers one ``ExtractorSpec`` per variant (see ``registry.py``).
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedprobe.errors import BadValueError
from embedprobe.extractors.pickle_scan import refusal_from_unpickler


@dataclass(frozen=True)
class ExtractorSpec:
    """Everything that identifies an extractor variant; serialised into every cache.

    Attributes:
        name: registry name, e.g. ``"wavlm-large"``.
        family: the module that implements it, e.g. ``"wavlm"``.
        sample_rate: the rate ``embed`` expects its input at (Hz).
        dim: dimension of every layer's frame vectors.
        layers: names of the layers one forward pass returns, in order.
        hop_s: seconds between output frames; ``None`` for one vector per input.
        weights_id: Hugging Face id or official checkpoint file name, ``None`` if no weights.
        weights_revision: pinned revision (commit, tag or file hash) of those weights.
        licence: licence of the weights / feature code.
        extra: the ``pip install 'embedprobe[extra]'`` that provides the dependencies.
        min_duration_s: the shortest input the model accepts.
        description: one line for ``embedprobe list extractors``.
        params: family-specific settings as sorted ``(key, value)`` pairs (hashable). Two keys
            mean the same in every family: ``layer_dims``, ``((layer, dim), ...)`` for the
            layers whose dimension is not ``dim`` (``dim_of``), and ``clip_layers``, the layers
            of a frame-level model that have one vector per clip (``clip_layers``).
    """

    name: str
    family: str
    sample_rate: int
    dim: int
    layers: tuple[str, ...]
    hop_s: float | None
    weights_id: str | None = None
    weights_revision: str | None = None
    licence: str = ""
    extra: str | None = None
    min_duration_s: float = 0.0
    description: str = ""
    params: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def param(self, key: str, default: Any = None) -> Any:
        return dict(self.params).get(key, default)

    def dim_of(self, layer: str) -> int:
        """The dimension of ``layer``'s vectors: ``dim`` unless the ``layer_dims`` param says otherwise."""
        return int(dict(self.param("layer_dims", ())).get(layer, self.dim))

    @property
    def clip_layers(self) -> tuple[str, ...]:
        """Layers of a frame-level model with one vector per clip (e.g. a regression head's output).

        ``embed`` returns them as ``(1, dim_of(layer))``; a long clip embedded in chunks gets them
        from the whole clip's frame means (``Extractor.clip_outputs``), never from the chunks'.
        """
        return tuple(self.param("clip_layers", ()))


class Extractor(ABC):
    """Base class of every extractor. ``__init__`` is cheap; heavy imports happen in ``load``.

    An extractor pickles as its recipe (spec, device, weights, options): what ``load`` built is
    left out and built again by the receiver's ``load``, which is how ``embedprobe extract``
    hands it to its worker processes (``embedprobe.common.replicas``).

    Attributes:
        replicate_on_cpu: the extractor computes on one thread whatever torch's thread count
            (opensmile, a small LSTM), so on a multi-core CPU ``extract`` runs it as one copy
            per core in worker processes by default (``--procs``). False for the models that
            thread well in one process (measured on 2 cores, WavLM-Large bf16: 7.9 audio-s/s
            in one process, 8.0 with two single-threaded workers at steady state).
        takes_precision: the class takes ``precision=`` (one of ``precision.PRECISIONS``): the
            torch families with a fast path (``runtime.RuntimeMixin`` sets it). ``extract``
            passes ``--precision`` to these and refuses a reduced precision for the others.
        trust_pickle: its weights may load with the full unpickler when they pickle data classes
            beyond the safe allow-list (``create(..., trust_pickle=True)``, ``--trust-pickle``);
            ``False`` by default, and never for pickles that name functions (``safeload``, ``pickle_scan``).

    Args:
        spec: the variant to build.
        device: torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        weights: local checkpoint file or directory that overrides the spec's ``weights_id``.
    """

    def __init__(self, spec: ExtractorSpec, *, device: str = "cpu", weights: str | Path | None = None):
        self.spec = spec
        self.device = device
        self.weights = Path(weights) if weights is not None else None
        self._loaded = False
        self._loaded_keys: frozenset[str] = frozenset()

    replicate_on_cpu: bool = False
    takes_precision: bool = False
    trust_pickle: bool = False
    #: Seconds of audio (before, after) that a long clip's chunk is embedded with, so that its
    #: frames see what they would see in the whole clip (``embedprobe.audio.chunking``): at least the
    #: receptive field of one frame beyond the hop where the model is local, a generous margin
    #: where it is not (global attention, LSTMs). Unused by clip-level models (``hop_s`` None).
    chunk_context_s: tuple[float, float] = (0.0, 0.0)
    #: The model normalises its whole input (mean and variance, level): a long clip's chunks go
    #: through ``embed_part`` with the whole clip's statistics, so they are normalised alike.
    uses_clip_stats: bool = False
    #: The frame layers whose whole-clip means ``clip_outputs`` computes ``spec.clip_layers`` from.
    clip_sources: tuple[str, ...] = ()
    #: The model itself embeds long input as independent blocks of this many seconds (from its
    #: start); a long clip's chunks are then whole blocks, so the blocks are the same.
    chunk_block_s: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def load(self) -> Extractor:
        """Import heavy dependencies and build / load the model. Idempotent; returns self."""
        if not self._loaded:
            before = set(self.__dict__)
            try:
                self._load()
            except pickle.UnpicklingError as err:  # a library's own torch.load refused a pickle
                raise refusal_from_unpickler(None, str(err), label=f"the weights of {self.spec.name}") from None
            self._loaded_keys = frozenset(set(self.__dict__) - before)
            self._loaded = True
        return self

    @property
    def loaded(self) -> bool:
        """``True`` once ``load`` has built the model (until ``unload``)."""
        return self._loaded

    def unload(self) -> None:
        """Drop what ``load`` built (the model); the next ``load`` builds it again."""
        for key in self._loaded_keys:
            self.__dict__.pop(key, None)
        self._loaded_keys, self._loaded = frozenset(), False

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in self._loaded_keys}
        state.update(_loaded=False, _loaded_keys=frozenset())
        return state

    @abstractmethod
    def _load(self) -> None: ...

    def weights_present(self) -> bool | None:
        """``True``/``False`` if the checkpoint is / is not on this machine, ``None`` if no weights."""
        return None

    def runtime_config(self) -> dict[str, Any]:
        """How this run computes (precision, kernels, weights, versions), recorded in caches.

        Empty for extractors with nothing to choose; ``runtime.RuntimeMixin`` fills it for
        the torch families.
        """
        return {}

    def weights_revision(self) -> str | None:
        """The revision actually loaded (a file hash for local files); the spec's by default."""
        return self.spec.weights_revision

    # -- tests -------------------------------------------------------------------------------
    @classmethod
    def for_tests(cls, spec: ExtractorSpec) -> Extractor:
        """A small, fast, offline instance for the registry-wide contract tests.

        ``tests/extractors/test_contract.py`` builds every registered extractor through this
        hook, calls ``load()`` and checks the contract on a few seconds of synthetic audio.
        The default builds the real extractor, which suits families whose weights ship with
        a package. A family whose real checkpoint is large or cannot be on a test machine
        overrides it to return a random-init instance of a tiny configuration (never a
        download). That instance's ``spec`` may differ from the registered one (fewer
        layers, a smaller ``dim``): the test checks outputs against the instance's own spec.
        """
        return cls(spec)

    # -- compute -----------------------------------------------------------------------------
    @abstractmethod
    def embed(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        """Embed one mono float32 waveform at ``spec.sample_rate``.

        Returns:
            layer name -> float32 array of shape ``(n_frames, spec.dim_of(layer))`` for every
            layer in ``spec.layers`` (``(1, ...)`` for ``spec.clip_layers``); ``n_frames >= 1``.
        """

    def embed_part(self, wav: np.ndarray, stats: Any) -> dict[str, np.ndarray]:
        """Embed a piece of a longer clip as ``embed`` would, normalised by the whole clip's ``stats``.

        ``stats`` is an ``embedprobe.audio.chunking.ClipStats``; only extractors that set
        ``uses_clip_stats`` use it, the others embed the piece as it is.
        """
        return self.embed(wav)

    def clip_outputs(self, means: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The ``spec.clip_layers`` of a clip from the means over its frames of the ``clip_sources`` layers.

        How a long clip embedded in chunks gets them exactly as in one piece (the chunks' own
        values are not averaged). Returns layer name -> ``(dim_of(layer),)`` float32 vector.
        """
        raise NotImplementedError(f"{self.spec.name} has no clip-level layers")

    def embed_batch(self, wavs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Embed several clips; families with a faster batched path override this."""
        return [self.embed(w) for w in wavs]

    def n_frames(self, n_samples: int) -> int:
        """How many frames ``embed`` returns for ``n_samples`` input samples."""
        return 1


def as_mono_float32(wav: np.ndarray, what: str = "waveform") -> np.ndarray:
    """Check that ``wav`` is one mono waveform and return it as contiguous float32 (no copy if it is).

    Extractors call this at the top of ``embed``; a 2-D array (channels or a batch) is a
    caller bug and raises instead of being silently flattened.

    Raises:
        BadValueError: ``wav`` is not 1-D or is empty.
    """
    arr = np.asarray(wav)
    if arr.ndim != 1 or arr.size == 0:
        raise BadValueError(
            f"{what} shape", arr.shape,
            fix="Pass one non-empty mono waveform of shape (n_samples,); "
            "mix channels with embedprobe.audio.decode and loop over clips or use embed_batch.",
        )
    return np.ascontiguousarray(arr, dtype=np.float32)

"""Small fake corpora in the real on-disk layouts, for tests, demos and benchmarks.

Example:
    >>> import tempfile
    >>> from embedprobe.corpora import scan
    >>> from embedprobe.corpora.synthetic import write_corpus
    >>> root = write_corpus("emodb", tempfile.mkdtemp(), n_speakers=4, clips_per_class=2)
    >>> m = scan("emodb", root)
    >>> len(m.labelled()), m.excluded_counts()
    (32, {'boredom': 4, 'disgust': 4, 'fear': 4})

Every reader that declares a ``synthetic`` layout (a :class:`SyntheticLayout`: default and
allowed sizes, its recording :class:`~embedprobe.audio.voice.Channel`) and implements the
classmethod ``synthesize(writer, n_speakers, per_class, per_extra)`` can be written here; the
reader's module is the only place that knows its layout. A corpus has several speakers
(half women, half men), ``clips_per_class`` clips per speaker for each of angry / happy /
neutral / sad (in the corpus' own codes), and ``extra_per_speaker`` clips per speaker of each
of a few labels outside the four classes, so exclusion counts can be checked.
:func:`layout_table` lists what each layout writes (the first paragraph of each
``synthesize`` docstring).

Audio: see :mod:`embedprobe.audio.voice` (class-dependent prosody; one channel per corpus,
so cross-corpus transfer is measurably worse than within-corpus).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from embedprobe.audio.voice import (
    DEFAULT_CHANNEL,
    PROSODY,
    Channel,
    Speaker,
    make_speaker,
    synth_clip,
)
from embedprobe.corpora.base import CORPORA
from embedprobe.errors import BadValueError

__all__ = [
    "CHANNELS", "CLASSES", "DEFAULTS", "SyntheticLayout", "Writer", "layout_table", "plan", "synthetic_names",
    "write_corpus",
]

CLASSES = ("angry", "happy", "neutral", "sad")


@dataclass(frozen=True)
class SyntheticLayout:
    """What :func:`write_corpus` needs to know about a reader's fake corpus.

    Attributes:
        n_speakers: default number of speakers.
        clips_per_class: default clips per speaker and canonical class.
        speakers: (min, max) speakers the real layout's naming allows.
        max_per_class: most clips per speaker and label the naming has distinct names for.
        even_speakers: speakers come in pairs (IEMOCAP: one session per pair).
        channel: the recording channel (default: a clean close-talk one).
    """

    n_speakers: int = 6
    clips_per_class: int = 3
    speakers: tuple[int, int] = (1, 1000)
    max_per_class: int = 500
    even_speakers: bool = False
    channel: Channel = DEFAULT_CHANNEL


@dataclass
class Writer:
    """Renders clips of one synthetic corpus into ``root``."""

    root: Path
    channel: Channel
    seed: int = 0
    sample_rate: int = 16000
    duration_s: tuple[float, float] = (1.0, 2.5)
    _speakers: dict[str, Speaker] = field(default_factory=dict)

    def rng(self, key: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(key.encode())])

    def speaker(self, sid: str, gender: str) -> Speaker:
        if sid not in self._speakers:
            self._speakers[sid] = make_speaker(self.rng(f"speaker:{sid}"), gender)
        return self._speakers[sid]

    def write(self, rel: str, label: str, sid: str, gender: str, duration_s: float | None = None) -> float:
        """Render ``label`` (a prosody key) for speaker ``sid`` to ``root/rel``; returns seconds."""
        rng = self.rng(rel)
        lo, hi = self.duration_s
        if duration_s is None:
            duration_s = float(np.clip(rng.uniform(lo, hi) * PROSODY[label].duration, lo, hi))
        x = synth_clip(label, self.speaker(sid, gender), self.channel, duration_s, self.sample_rate, rng)
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()  # soundfile's close() fsyncs real files, 5-10 ms each here
        sf.write(buf, x, self.sample_rate, subtype="PCM_16", format="WAV")
        path.write_bytes(buf.getvalue())
        return len(x) / self.sample_rate


def plan(classes: Mapping[str, str], extras: Mapping[str, str], per_class: int, per_extra: int,
         rng: np.random.Generator) -> list[tuple[str, str]]:
    """Shuffled (native code, prosody key) list for one speaker.

    Args:
        classes: native code -> prosody key (a key of ``embedprobe.audio.voice.PROSODY``) of the
            labels written ``per_class`` times.
        extras: the same for the labels written ``per_extra`` times.
    """
    items = [(code, key) for code, key in classes.items() for _ in range(per_class)]
    items += [(code, key) for code, key in extras.items() for _ in range(per_extra)]
    return [items[i] for i in rng.permutation(len(items))]


def synthetic_names() -> list[str]:
    """Registered corpora that declare a synthetic layout."""
    return [name for name, cls in CORPORA.items() if getattr(cls, "synthetic", None) is not None]


def _layout(name: str) -> SyntheticLayout:
    names = synthetic_names()
    if name not in names:
        raise BadValueError("synthetic corpus", name, names,
                            fix="Give a corpus whose reader declares a synthetic layout.")
    return CORPORA.get(name).synthetic  # type: ignore[attr-defined]


class _PerCorpus(Mapping):
    """A read-only name -> value view over the readers with a synthetic layout (looked up lazily)."""

    def __init__(self, value_of):
        self._value_of = value_of

    def __getitem__(self, name: str):
        if name not in synthetic_names():
            raise KeyError(name)
        return self._value_of(_layout(name))

    def __iter__(self) -> Iterator[str]:
        return iter(synthetic_names())

    def __len__(self) -> int:
        return len(synthetic_names())


#: name -> (default n_speakers, default clips_per_class), for every synthetic layout.
DEFAULTS: Mapping[str, tuple[int, int]] = _PerCorpus(lambda lay: (lay.n_speakers, lay.clips_per_class))
#: name -> the recording channel of that corpus' synthetic layout.
CHANNELS: Mapping[str, Channel] = _PerCorpus(lambda lay: lay.channel)


def layout_table() -> str:
    """One line per synthetic layout: name, default sizes, what its ``synthesize`` writes."""
    lines = []
    for name in sorted(synthetic_names()):
        reader = CORPORA.get(name)
        lay = reader.synthetic  # type: ignore[attr-defined]
        doc = (reader.synthesize.__doc__ or "").strip().split("\n\n")[0]  # type: ignore[attr-defined]
        lines.append(f"{name:<12} {lay.n_speakers:>3} speakers x {lay.clips_per_class} per class: "
                     + " ".join(doc.split()))
    return "\n".join(lines)


def write_corpus(
    name: str,
    root: str | Path,
    *,
    n_speakers: int | None = None,
    clips_per_class: int | None = None,
    extra_per_speaker: int = 1,
    seed: int = 0,
    sample_rate: int = 16000,
    duration_s: tuple[float, float] = (1.0, 2.5),
    channel: str | Channel | None = None,
) -> Path:
    """Write a small synthetic corpus in the official layout of ``name`` under ``root``.

    Args:
        name: a registered corpus with a synthetic layout (see :func:`synthetic_names`).
        root: output folder (created; existing files with the same names are overwritten).
        n_speakers: speakers (default per corpus, see :data:`DEFAULTS`; IEMOCAP: even, one
            session per pair).
        clips_per_class: clips per speaker and canonical class (RAVDESS also for calm).
        extra_per_speaker: clips per speaker of each non-4-class label.
        seed: makes the corpus reproducible (same arguments -> identical files).
        sample_rate: Hz of the PCM16 wav files.
        duration_s: (min, max) clip length in seconds.
        channel: the recording channel, a key of :data:`CHANNELS` or a ``Channel``; default:
            the corpus' own (so two layouts differ acoustically as real corpora do).

    Returns:
        The path to pass to ``embedprobe.corpora.scan(name, path)``: the root, or for
        ``manifest`` the ``manifest.csv`` file (``manifest_split.jsonl`` sits beside it),
        for ``emobox`` the ``data/emodb`` folder.
    """
    lay = _layout(name)
    n_speakers = lay.n_speakers if n_speakers is None else int(n_speakers)
    clips_per_class = lay.clips_per_class if clips_per_class is None else int(clips_per_class)
    lo, hi = lay.speakers
    max_cpc = lay.max_per_class
    if not lo <= n_speakers <= hi or (lay.even_speakers and n_speakers % 2):
        even = " (an even number: two per session)" if lay.even_speakers else ""
        raise BadValueError(f"n_speakers for synthetic {name}", n_speakers,
                            fix=f"Use {lo}..{hi}{even}, the range the real layout allows.")
    if not 1 <= clips_per_class <= max_cpc or not 0 <= extra_per_speaker <= max_cpc:
        raise BadValueError(f"clips_per_class / extra_per_speaker for synthetic {name}",
                            (clips_per_class, extra_per_speaker),
                            fix=f"Use 1..{max_cpc} (and 0..{max_cpc}): the file naming of {name} has no more distinct names.")
    if isinstance(channel, str):
        if channel not in CHANNELS:
            raise BadValueError("synthetic channel", channel, list(CHANNELS))
        channel = CHANNELS[channel]
    lo_s, hi_s = duration_s
    if not 0.2 <= lo_s <= hi_s:
        raise BadValueError("duration_s", duration_s, fix="Give (min, max) seconds with 0.2 <= min <= max.")
    out = Path(root).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    w = Writer(out, channel or lay.channel, seed, sample_rate, (float(lo_s), float(hi_s)))
    return Path(CORPORA.get(name).synthesize(w, n_speakers, clips_per_class, extra_per_speaker))  # type: ignore[attr-defined]

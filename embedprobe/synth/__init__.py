"""Small fake corpora in the real on-disk layouts, for tests, demos and benchmarks.

Example:
    >>> import tempfile
    >>> from embedprobe.synth import write_corpus
    >>> from embedprobe.corpora import scan
    >>> root = write_corpus("emodb", tempfile.mkdtemp(), n_speakers=4, clips_per_class=2)
    >>> m = scan("emodb", root)
    >>> len(m.labelled()), m.excluded_counts()
    (32, {'boredom': 4, 'disgust': 4, 'fear': 4})

Every corpus has several speakers (half women, half men), ``clips_per_class`` clips per
speaker for each of angry / happy / neutral / sad (in the corpus' own codes), and
``extra_per_speaker`` clips per speaker of each of a few labels outside the four classes,
so exclusion counts can be checked:

    =========== ================================ =====================================
    name        layout written                   extra labels (per speaker)
    =========== ================================ =====================================
    iemocap     Session*/dialog/EmoEvaluation,   exc, fru, xxx
                Session*/sentences/wav
    crema-d     AudioWAV, VideoDemographics.csv  DIS, FEA
    msp-podcast Audios, Labels/labels_consensus  X, C, U; + 4 'Unknown'-speaker Train turns;
                                                 speakers split 60/15/15/10 into
                                                 Train/Development/Test1/Test2
    emodb       wav/03a01Fa.wav                  L, A, E
    ravdess     Actor_NN/03-01-...wav            06 fearful, 08 surprised; calm (02) gets
                                                 clips_per_class like the four classes;
                                                 one song file per actor
    manifest    audio/, manifest.csv (no split), fear, disgust; labels written with
                manifest_split.jsonl (split)     synonyms (Anger, joy, NEU, Sadness ...)
    emobox      downloads/emodb/wav + data/emodb EmoDB's; speaker-disjoint folds
                (label_map.json, emodb.jsonl,
                fold_K/emodb_{train,test}_fold_K)
    =========== ================================ =====================================

Audio: see :mod:`embedprobe.synth.voice` (class-dependent prosody, one channel per corpus
in :data:`~embedprobe.synth.voice.CHANNELS`, so cross-corpus transfer is measurably worse
than within-corpus).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from embedprobe.errors import BadValueError
from embedprobe.synth import layouts
from embedprobe.synth.voice import (
    CHANNELS,
    PROSODY,
    Channel,
    Prosody,
    Speaker,
    apply_channel,
    make_speaker,
    synth_clip,
    voice,
)

__all__ = [
    "CHANNELS", "DEFAULTS", "PROSODY", "Channel", "Prosody", "Speaker", "apply_channel", "make_speaker",
    "synth_clip", "voice", "write_corpus",
]

#: name -> (writer, default n_speakers, default clips_per_class, (min, max) speakers, max clips_per_class)
_LAYOUTS: dict[str, tuple[Callable[..., object], int, int, tuple[int, int], int]] = {
    "iemocap": (layouts.iemocap, 10, 3, (2, 10), 200),
    "crema-d": (layouts.cremad, 8, 4, (1, 91), 14),
    "msp-podcast": (layouts.msppodcast, 10, 3, (4, 1000), 500),
    "emodb": (layouts.emodb, 10, 3, (1, 10), 60),
    "ravdess": (layouts.ravdess, 8, 3, (1, 24), 4),
    "manifest": (layouts.manifest, 6, 4, (1, 1000), 500),
    "emobox": (layouts.emobox, 8, 3, (2, 10), 60),
}
#: name -> (default n_speakers, default clips_per_class)
DEFAULTS: dict[str, tuple[int, int]] = {k: (v[1], v[2]) for k, v in _LAYOUTS.items()}


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
        name: one of ``iemocap``, ``crema-d``, ``msp-podcast``, ``emodb``, ``ravdess``,
            ``manifest``, ``emobox``.
        root: output folder (created; existing files with the same names are overwritten).
        n_speakers: speakers (default per corpus, see :data:`DEFAULTS`; IEMOCAP: even, one
            session per pair).
        clips_per_class: clips per speaker and canonical class (RAVDESS also for calm).
        extra_per_speaker: clips per speaker of each non-4-class label.
        seed: makes the corpus reproducible (same arguments -> identical files).
        sample_rate: Hz of the PCM16 wav files.
        duration_s: (min, max) clip length in seconds.
        channel: the recording channel, a key of ``CHANNELS`` or a ``Channel``; default:
            the corpus' own (so two layouts differ acoustically as real corpora do).

    Returns:
        The path to pass to ``embedprobe.corpora.scan(name, path)``: the root, or for
        ``manifest`` the ``manifest.csv`` file (``manifest_split.jsonl`` sits beside it),
        for ``emobox`` the ``data/emodb`` folder.
    """
    if name not in _LAYOUTS:
        raise BadValueError("synthetic corpus", name, _LAYOUTS)
    writer, d_spk, d_cpc, (lo, hi), max_cpc = _LAYOUTS[name]
    n_speakers = d_spk if n_speakers is None else int(n_speakers)
    clips_per_class = d_cpc if clips_per_class is None else int(clips_per_class)
    if not lo <= n_speakers <= hi or (name == "iemocap" and n_speakers % 2):
        even = " (an even number: two per session)" if name == "iemocap" else ""
        raise BadValueError(f"n_speakers for synthetic {name}", n_speakers,
                            fix=f"Use {lo}..{hi}{even}, the range the real layout allows.")
    if not 1 <= clips_per_class <= max_cpc or not 0 <= extra_per_speaker <= max_cpc:
        raise BadValueError(f"clips_per_class / extra_per_speaker for synthetic {name}",
                            (clips_per_class, extra_per_speaker),
                            fix=f"Use 1..{max_cpc} (and 0..{max_cpc}): the file naming of {name} has no more distinct names.")
    if isinstance(channel, str):
        if channel not in CHANNELS:
            raise BadValueError("synthetic channel", channel, CHANNELS)
        channel = CHANNELS[channel]
    lo_s, hi_s = duration_s
    if not 0.2 <= lo_s <= hi_s:
        raise BadValueError("duration_s", duration_s, fix="Give (min, max) seconds with 0.2 <= min <= max.")
    out = Path(root).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    w = layouts.Writer(out, channel or CHANNELS[name], seed, sample_rate, (float(lo_s), float(hi_s)))
    result = writer(w, n_speakers, clips_per_class, extra_per_speaker)
    return out if isinstance(result, list) else Path(result)  # the emodb writer returns its records

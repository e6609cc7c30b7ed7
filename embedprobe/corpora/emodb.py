"""EmoDB, the Berlin Database of Emotional Speech.

About the corpus:
    535 acted German utterances, 10 speakers (5 women, 5 men), 10 sentences, 7 emotions,
    16 kHz mono. Only files judged natural and recognisable by listeners are in the release.

Layout read (the original release archive, unmodified)::

    <root>/wav/03a01Fa.wav      # 535 files

    name: chars 1-2 speaker (03 08 09 10 11 12 13 14 15 16), chars 3-5 text code (a01 ... b10),
          char 6 emotion, char 7 version (a, b, c ...)

Label map (native labels are the English names of the German codes; the code is kept in
``meta['code']``):

    ==== =========== =========
    code native      canonical
    ==== =========== =========
    W    anger       angry
    F    happiness   happy
    N    neutral     neutral
    T    sadness     sad
    L    boredom     (excluded)
    E    disgust     (excluded)
    A    fear        (excluded)
    ==== =========== =========

    Four-class subset: angry 127, happy 71, neutral 79, sad 62 (339 clips).

Split protocols (only the 339 four-class clips take part; the others are ``""``):
    ``speaker`` (default): 10 folds, fold ``speaker/NN`` tests on speaker NN, validates on
        the next speaker in sorted id order (cyclic: 03 -> 08 -> ... -> 16 -> 03) and trains on
        the other 8. Deterministic (the seed plays no part), speaker-independent.
    ``random``: one fold, a seeded random split stratified by class with the poster's sizes
        (192 train / 75 val / 72 test of the 339 clips; other subset sizes keep that ratio).
        Not speaker-independent: speakers appear in every part.

Options:
    seed (int, 0): seed of the ``random`` protocol.
    gender ("f" or "m"; default both): read only the women (08 09 13 14 16) or only the men (03 10 11 12
        15); the ``speaker`` protocol then has 5 folds (test one speaker, validate on the next
        of the same half, train on the other 3). Give the half its own name, e.g.
        ``--option gender=f --name emodb-women``, so both halves stand in one cross-corpus matrix.

Citation:
    F. Burkhardt, A. Paeschke, M. Rolfes, W. Sendlmeier, B. Weiss, "A database of German
    emotional speech", Proc. Interspeech 2005, pp. 1517-1520.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from embedprobe.audio.voice import Channel
from embedprobe.corpora.base import Clip, Manifest
from embedprobe.corpora.common import CorpusReader, meta, register
from embedprobe.corpora.splits import holdout_folds, next_group_folds, rng_for, stratified_random
from embedprobe.corpora.synthetic import SyntheticLayout, Writer, plan

CODES: dict[str, str] = {
    "W": "anger", "L": "boredom", "E": "disgust", "A": "fear",
    "F": "happiness", "T": "sadness", "N": "neutral",
}
LABEL_MAP: dict[str, str | None] = {
    "anger": "angry", "happiness": "happy", "neutral": "neutral", "sadness": "sad",
    "boredom": None, "disgust": None, "fear": None,
}
#: Speaker -> gender, from the corpus documentation.
GENDER: dict[str, str] = {
    "03": "M", "08": "F", "09": "F", "10": "M", "11": "M",
    "12": "M", "13": "F", "14": "F", "15": "M", "16": "F",
}
#: The poster's random split of the four-class subset: 192 / 75 / 72.
RANDOM_SIZES: tuple[int, int, int] = (192, 75, 72)
NAME = re.compile(r"^(\d\d)([a-z]\d\d)([WLEAFTN])([a-z])$")


def parse_name(stem: str) -> tuple[str, str, str, str] | None:
    """``"03a01Fa"`` -> ``("03", "a01", "F", "a")`` (speaker, text, code, version), else None."""
    m = NAME.match(stem)
    return (m.group(1), m.group(2), m.group(3), m.group(4)) if m else None


@register
class EmoDB(CorpusReader):
    name = "emodb"
    default_protocol = "speaker"
    marker = "wav"
    nameable = "gender"  # a half of EmoDB may carry its own name
    # gender None (both halves) stays comparable with caches made before the option existed
    option_defaults: ClassVar[dict[str, Any]] = {"seed": 0, "gender": None}
    option_choices: ClassVar[dict[str, tuple[Any, ...]]] = {"gender": (None, "f", "m")}

    synthetic = SyntheticLayout(n_speakers=10, clips_per_class=3, speakers=(1, 10), max_per_class=60,
                                channel=Channel(-0.5, 50.0, 7900.0, 0.05, 20.0, 42.0, 0.0, 0.0, 1.15))  # anechoic

    @classmethod
    def synthesize(cls, w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
        """``wav/03a01Fa.wav``; extra labels L (boredom), A (fear), E (disgust)."""
        write_clips(w, n_speakers, per_class, per_extra)
        return w.root

    def expected_layout(self) -> str:
        return "a 'wav' folder of files named like 03a01Fa.wav (the original EmoDB release)"

    def _scan(self, root: Path, opts: dict[str, Any]) -> Manifest:
        wav_dir = root / "wav"
        if not wav_dir.is_dir():
            raise self.layout_error(root, "no 'wav' folder")
        clips, odd = [], []
        for f in sorted(wav_dir.glob("*.wav")):
            parsed = parse_name(f.stem)
            if parsed is None:
                odd.append(f.name)
                continue
            spk, text, code, version = parsed
            if opts["gender"] and GENDER.get(spk, "").lower() != opts["gender"]:  # one half only
                continue
            native = CODES[code]
            clips.append(Clip(
                id=f.stem, path=f"wav/{f.name}", speaker=spk, native_label=native,
                label=LABEL_MAP[native],
                meta=meta(code=code, text=text, version=version, gender=GENDER.get(spk)),
            ))
        clips = self.sorted_clips(root, clips, odd, like="03a01Fa.wav", none="no wav files named like 03a01Fa.wav")
        ids = [c.id for c in clips]
        labels = [c.label for c in clips]
        speakers = [c.speaker for c in clips]
        protocols = {
            "speaker": holdout_folds(speakers, labels, next_group_folds(sorted(set(speakers))), "speaker")
            if len(set(speakers)) >= 3 else {},
            "random": {"random": stratified_random(ids, labels, RANDOM_SIZES, rng_for(opts["seed"], "random"))},
        }
        return self.manifest(root, clips, protocols, self.default_protocol, LABEL_MAP, opts)


# -- synthetic layout (embedprobe.corpora.synthetic.write_corpus) ---------------------------------
EMODB_SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")
EMODB_GENDER = dict(zip(EMODB_SPEAKERS, "MFFMMMFFMF", strict=True))
EMODB_TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")


def write_clips(w: Writer, n_speakers: int, per_class: int, per_extra: int) -> list[dict]:
    """Write ``wav/03a01Fa.wav`` files; one record per clip (the EmoBox layout reuses them)."""
    records = []
    classes = {"W": "angry", "F": "happy", "N": "neutral", "T": "sad"}
    extras = {"L": "boredom", "A": "fear", "E": "disgust"}
    for spk in EMODB_SPEAKERS[:n_speakers]:
        used: dict[str, int] = {}
        for i, (code, key) in enumerate(plan(classes, extras, per_class, per_extra, w.rng(f"plan:{spk}"))):
            text = EMODB_TEXTS[i % len(EMODB_TEXTS)]
            version = "abcdefghijklmnopqrstuvwxyz"[used.get(text + code, 0)]
            used[text + code] = used.get(text + code, 0) + 1
            name = f"{spk}{text}{code}{version}"
            secs = w.write(f"wav/{name}.wav", key, spk, EMODB_GENDER[spk])
            records.append({"name": name, "speaker": spk, "code": code, "length": secs})
    return records

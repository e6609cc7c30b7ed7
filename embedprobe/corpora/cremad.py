"""CREMA-D, the Crowd-sourced Emotional Multimodal Actors Dataset.

About the corpus:
    7,442 clips of 91 actors (48 men, 43 women, ages 20-74, several ethnicities) saying
    12 sentences in 6 emotions; the audio is 16 kHz mono. The label read here is the
    emotion the actor was asked to portray (the file name), as in the paper.

Layout read (the GitHub/LFS release)::

    <root>/AudioWAV/1001_DFA_ANG_XX.wav     # actor_sentence_emotion_intensity
    <root>/VideoDemographics.csv            # optional: ActorID,Age,Sex,Race,Ethnicity

    sentence: IEO DFA IOM ITH ITS IWL IWW MTI TAI TIE TSI WSI
    emotion:  ANG DIS FEA HAP NEU SAD
    intensity: LO MD HI (sentence IEO only), XX (unspecified)

    When VideoDemographics.csv is present, each clip gets ``meta['gender']`` and the
    ``speaker`` protocol keeps the gender balance in every part.

Label map: ANG -> angry, HAP -> happy, NEU -> neutral, SAD -> sad; DIS and FEA are kept as
native labels and excluded (four-class set: 4,900 clips, 1,271 per emotion and 1,087 neutral).

Split protocols (only four-class clips take part):
    ``random`` (default, the paper's protocol): one fold, a seeded random 70/15/15
        train/val/test split stratified by class (exact totals, e.g. 3,430/735/735 of 4,900).
        Not speaker-independent: the same actor appears in every part.
    ``speaker``: one fold, actors split 70/15/15 (seeded; 64/14/13 of the 91), so no actor is in
        two parts.

Options:
    seed (int, 0): seed of both protocols.

Citation:
    H. Cao, D. G. Cooper, M. K. Keutmann, R. C. Gur, A. Nenkova, R. Verma, "CREMA-D:
    Crowd-sourced emotional multimodal actors dataset", IEEE Transactions on Affective
    Computing 5(4):377-390, 2014.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, ClassVar

from embedprobe.audio.voice import Channel
from embedprobe.corpora.base import Clip, Manifest
from embedprobe.corpora.common import CorpusReader, meta, register
from embedprobe.corpora.splits import by_group, group_split, rng_for, stratified_random
from embedprobe.corpora.synthetic import SyntheticLayout, Writer, plan

LABEL_MAP: dict[str, str | None] = {
    "ANG": "angry", "HAP": "happy", "NEU": "neutral", "SAD": "sad", "DIS": None, "FEA": None,
}
SENTENCES: tuple[str, ...] = ("IEO", "DFA", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI", "TAI", "TIE", "TSI", "WSI")
NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")
FRACTIONS = (70, 15, 15)


def parse_name(stem: str) -> tuple[str, str, str, str] | None:
    """``"1001_DFA_ANG_XX"`` -> ``("1001", "DFA", "ANG", "XX")``, else None."""
    m = NAME.match(stem)
    return (m.group(1), m.group(2), m.group(3), m.group(4)) if m else None


def read_demographics(path: Path) -> dict[str, str]:
    """ActorID -> 'M'/'F' from VideoDemographics.csv (empty if the file is absent)."""
    if not path.is_file():
        return {}
    out = {}
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            sex = (row.get("Sex") or "").strip().lower()
            if row.get("ActorID") and sex in ("male", "female"):
                out[row["ActorID"].strip()] = "M" if sex == "male" else "F"
    return out


@register
class CremaD(CorpusReader):
    name = "crema-d"
    default_protocol = "random"
    marker = "AudioWAV"
    option_defaults: ClassVar[dict[str, Any]] = {"seed": 0}

    synthetic = SyntheticLayout(n_speakers=8, clips_per_class=4, speakers=(1, 91), max_per_class=14,
                                channel=Channel(1.5, 120.0, 7800.0, 0.2, 9.0, 30.0, 0.0, 0.0, 1.0))

    @classmethod
    def synthesize(cls, w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
        """``AudioWAV/1001_DFA_ANG_XX.wav`` and ``VideoDemographics.csv``; extra labels DIS, FEA."""
        classes = {"ANG": "angry", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
        extras = {"DIS": "disgust", "FEA": "fear"}
        demo = []
        for a in range(n_speakers):
            actor = str(1001 + a)
            gender = "F" if a % 2 else "M"
            demo.append([actor, str(25 + 3 * a), "Female" if gender == "F" else "Male", "Caucasian", "Not Hispanic"])
            counts: dict[str, int] = {}
            for code, key in plan(classes, extras, per_class, per_extra, w.rng(f"plan:{actor}")):
                k = counts.get(code, 0)
                counts[code] = k + 1
                # sentences 0..11 with intensity XX, then IEO at LO/MD/HI: 14 distinct names
                if k < len(SYNTH_SENTENCES):
                    sentence, intensity = SYNTH_SENTENCES[k], "XX" if SYNTH_SENTENCES[k] != "IEO" else "MD"
                else:
                    sentence, intensity = "IEO", ("LO", "HI")[k - len(SYNTH_SENTENCES)]
                w.write(f"AudioWAV/{actor}_{sentence}_{code}_{intensity}.wav", key, actor, gender)
        with (w.root / "VideoDemographics.csv").open("w", newline="") as f:
            csv.writer(f).writerows([["ActorID", "Age", "Sex", "Race", "Ethnicity"], *demo])
        return w.root

    def expected_layout(self) -> str:
        return "an 'AudioWAV' folder of files named like 1001_DFA_ANG_XX.wav (the CREMA-D release)"

    def _scan(self, root: Path, opts: dict[str, Any]) -> Manifest:
        wav_dir = root / "AudioWAV"
        if not wav_dir.is_dir():
            raise self.layout_error(root, "no 'AudioWAV' folder")
        gender = read_demographics(root / "VideoDemographics.csv")
        clips, odd = [], []
        for f in sorted(wav_dir.glob("*.wav")):
            parsed = parse_name(f.stem)
            if parsed is None or parsed[2] not in LABEL_MAP:
                odd.append(f.name)
                continue
            actor, sentence, emo, intensity = parsed
            clips.append(Clip(
                id=f.stem, path=f"AudioWAV/{f.name}", speaker=actor, native_label=emo,
                label=LABEL_MAP[emo],
                meta=meta(sentence=sentence, intensity=intensity, gender=gender.get(actor)),
            ))
        clips = self.sorted_clips(root, clips, odd, like="1001_DFA_ANG_XX.wav",
                                  none="no wav files named like 1001_DFA_ANG_XX.wav in AudioWAV")
        ids = [c.id for c in clips]
        labels = [c.label for c in clips]
        speakers = [c.speaker for c in clips]
        strata = gender if gender and all(s in gender for s in speakers) else None
        protocols = {
            "random": {"random": stratified_random(ids, labels, FRACTIONS, rng_for(opts["seed"], "random"))},
            "speaker": {"speaker": by_group(speakers, labels, group_split(
                speakers, FRACTIONS, rng_for(opts["seed"], "speaker"), strata))}
            if len(set(speakers)) >= 3 else {},
        }
        return self.manifest(root, clips, protocols, self.default_protocol, LABEL_MAP, opts)


# -- synthetic layout (embedprobe.corpora.synthetic.write_corpus) ---------------------------------
SYNTH_SENTENCES = ("DFA", "IEO", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI", "TAI", "TIE", "TSI", "WSI")

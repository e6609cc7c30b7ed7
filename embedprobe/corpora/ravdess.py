"""RAVDESS, the Ryerson Audio-Visual Database of Emotional Speech and Song.

About the corpus:
    24 professional actors (12 women, 12 men) saying two lexically matched North-American
    English statements in 8 emotions; the speech audio release has 1,440 files (60 per actor,
    48 kHz). Neutral has only normal intensity, so it has half as many clips (96) as the
    other emotions (192 each).

Layout read (``Audio_Speech_Actors_01-24``; the song release may be unpacked alongside)::

    <root>/Actor_01 ... Actor_24/03-01-05-01-01-01-12.wav

    name: modality (01 AV, 02 video, 03 audio) - vocal channel (01 speech, 02 song) -
          emotion - intensity (01 normal, 02 strong) - statement (01 "Kids are talking by the
          door", 02 "Dogs are sitting by the door") - repetition (01, 02) - actor (01-24;
          odd = man, even = woman)
    emotion: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust,
             08 surprised

    Only audio-only speech files (03-01-...) are read unless ``include_song=True``
    (song files then become clips too, with ``meta['channel'] = 'song'``).

Label map (native labels are the English names; the code is kept in ``meta['code']``):
    neutral -> neutral, happy -> happy, sad -> sad, angry -> angry;
    calm -> neutral only with ``calm_as_neutral=True`` (the poster's mapping, giving 864
    four-class clips = 576/144/144); by default calm is excluded (672 clips), because calm
    is a distinct low-arousal category in the corpus' own design;
    fearful, disgust, surprised are excluded.

Split protocols (only four-class clips take part):
    ``speaker`` (default, the poster's protocol): one fold, actors split 16/4/4 into
        train/val/test (seeded), gender-balanced: 2 women + 2 men in val and in test.
        Other actor counts keep the 4:1:1 ratio per gender.
    ``speaker-cv``: 6 folds ``speaker-cv/1`` ... ``speaker-cv/6`` over a seeded,
        gender-balanced partition of the actors into 6 groups (4 actors each: 2 women,
        2 men); fold k tests on group k, validates on group k+1 (cyclic) and trains on the
        other 16 actors, so every actor is tested exactly once.

Options:
    seed (int, 0): seed of both protocols.
    calm_as_neutral (bool, False): merge calm into neutral.
    include_song (bool, False): also read song files (vocal channel 02).

Citation:
    S. R. Livingstone, F. A. Russo, "The Ryerson Audio-Visual Database of Emotional Speech
    and Song (RAVDESS)", PLoS ONE 13(5):e0196391, 2018.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from embedprobe.audio.voice import Channel
from embedprobe.corpora.base import Clip, Manifest
from embedprobe.corpora.common import CorpusReader, meta, register
from embedprobe.corpora.splits import (
    by_group,
    group_split,
    holdout_folds,
    next_group_folds,
    permutation,
    rng_for,
)
from embedprobe.corpora.synthetic import SyntheticLayout, Writer, plan

EMOTIONS: dict[str, str] = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}
LABEL_MAP: dict[str, str | None] = {
    "neutral": "neutral", "calm": None, "happy": "happy", "sad": "sad",
    "angry": "angry", "fearful": None, "disgust": None, "surprised": None,
}
NAME = re.compile(r"^(0[123])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d\d)$")
SPLIT = (16, 4, 4)
CV_FOLDS = 6


def parse_name(stem: str) -> dict[str, str] | None:
    """``"03-01-05-01-01-01-12"`` -> its fields (modality, channel, code, intensity, ...), else None."""
    m = NAME.match(stem)
    if not m:
        return None
    keys = ("modality", "channel", "code", "intensity", "statement", "repetition", "actor")
    return dict(zip(keys, m.groups(), strict=True))


def gender_of(actor: str) -> str:
    """Odd actor numbers are men, even ones women."""
    return "M" if int(actor) % 2 else "F"


@register
class RAVDESS(CorpusReader):
    name = "ravdess"
    default_protocol = "speaker"
    marker = "Actor_01"
    option_defaults: ClassVar[dict[str, Any]] = {"seed": 0, "calm_as_neutral": False, "include_song": False}

    synthetic = SyntheticLayout(n_speakers=8, clips_per_class=3, speakers=(1, 24), max_per_class=4,
                                channel=Channel(3.0, 80.0, 7900.0, 0.12, 12.0, 45.0, 0.0, 0.0, 1.1))  # bright studio

    @classmethod
    def synthesize(cls, w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
        """``Actor_NN/03-01-...wav``; extra labels 06 fearful, 08 surprised; calm (02) gets
        ``per_class`` clips like the four classes; one song file per actor.
        """
        classes = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry"}
        extras = {"06": "fear", "08": "surprise"}
        for a in range(1, n_speakers + 1):
            actor, gender = f"{a:02d}", ("M" if a % 2 else "F")
            counts: dict[str, int] = {}
            for code, key in plan(classes, extras, per_class, per_extra, w.rng(f"plan:{actor}")):
                k = counts.get(code, 0)
                counts[code] = k + 1
                # neutral has no strong intensity: 4 takes; others 8 (intensity x statement x repetition)
                intensity = "01" if code == "01" else f"{k // 4 + 1:02d}"
                statement, repetition = f"{(k // 2) % 2 + 1:02d}", f"{k % 2 + 1:02d}"
                w.write(f"Actor_{actor}/03-01-{code}-{intensity}-{statement}-{repetition}-{actor}.wav", key, actor,
                        gender)
            w.write(f"Actor_{actor}/03-02-01-01-01-01-{actor}.wav", "neutral", actor, gender, 0.5)  # a song file
        return w.root

    def expected_layout(self) -> str:
        return "Actor_01..Actor_24 folders of files named like 03-01-05-01-01-01-12.wav"

    def _scan(self, root: Path, opts: dict[str, Any]) -> Manifest:
        actor_dirs = sorted(d for d in root.glob("Actor_*") if d.is_dir())
        if not actor_dirs:
            raise self.layout_error(root, "no Actor_01..Actor_24 folders")
        label_map = dict(LABEL_MAP, calm="neutral" if opts["calm_as_neutral"] else None)
        channels = ("01", "02") if opts["include_song"] else ("01",)
        clips, odd = [], []
        for d in actor_dirs:
            for f in sorted(d.glob("*.wav")):
                fields = parse_name(f.stem)
                if fields is None:
                    odd.append(f.name)
                    continue
                if fields["modality"] != "03" or fields["channel"] not in channels:
                    continue
                native = EMOTIONS[fields["code"]]
                clips.append(Clip(
                    id=f.stem, path=f"{d.name}/{f.name}", speaker=fields["actor"], native_label=native,
                    label=label_map[native],
                    meta=meta(code=fields["code"], intensity="strong" if fields["intensity"] == "02" else "normal",
                              statement=fields["statement"], repetition=fields["repetition"],
                              channel="song" if fields["channel"] == "02" else "speech",
                              gender=gender_of(fields["actor"])),
                ))
        clips = self.sorted_clips(root, clips, odd, like="03-01-05-01-01-01-12.wav",
                                  none="no audio-only speech files (03-01-*.wav) in the Actor_* folders")
        labels = [c.label for c in clips]
        actors = [c.speaker for c in clips]
        strata = {a: gender_of(a) for a in actors}
        protocols: dict[str, dict[str, list[str]]] = {"speaker": {}, "speaker-cv": {}}
        if len(set(actors)) >= 3:
            table = group_split(actors, SPLIT, rng_for(opts["seed"], "speaker"), strata)
            protocols["speaker"] = {"speaker": by_group(actors, labels, table)}
        groups = self._cv_groups(sorted(set(actors)), opts["seed"])
        if len(groups) >= 3:
            names = [str(i + 1) for i in range(len(groups))]
            group_of = {a: names[i] for i, g in enumerate(groups) for a in g}
            folds = next_group_folds(names)
            protocols["speaker-cv"] = holdout_folds([group_of[a] for a in actors], labels, folds, "speaker-cv")
        return self.manifest(root, clips, protocols, self.default_protocol, label_map, opts)

    @staticmethod
    def _cv_groups(actors: list[str], seed: int) -> list[list[str]]:
        """Deal each gender's shuffled actors round-robin into (at most) 6 groups."""
        k = min(CV_FOLDS, len(actors))
        groups: list[list[str]] = [[] for _ in range(k)]
        rng = rng_for(seed, "speaker-cv")
        i = 0
        for g in ("F", "M"):
            same = [a for a in actors if gender_of(a) == g]
            for j in permutation(rng, len(same)):
                groups[i % k].append(same[j])
                i += 1
        return [sorted(g) for g in groups if g]

"""IEMOCAP, the Interactive Emotional Dyadic Motion Capture database.

About the corpus:
    About 12 hours of acted English dyadic sessions (improvised and scripted) by 10 actors,
    5 sessions of one woman and one man each; 10,039 utterances at 16 kHz. Each utterance has
    a categorical label from the majority vote of the reviewers and dimensional ratings.

Layout read (``IEMOCAP_full_release``)::

    <root>/Session1 ... Session5/
        dialog/EmoEvaluation/Ses01F_impro01.txt        # one file per dialog
        sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav

    EmoEvaluation lines read (other lines, sub-folders and '._*' files are ignored):
        [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
        (start - end in seconds, utterance, consensus label, [valence, activation, dominance])

Speakers:
    The speaker of an utterance is its session plus the gender letter that starts the part
    after the LAST underscore: ``Ses01F_impro01_M012`` is spoken by ``Ses01M`` (the man of
    Session 1; the ``F`` in the dialog name only says who wore the markers).

Label map (the consensus label of EmoEvaluation, as in the paper: reviewer consensus only):

    neu -> neutral, hap -> happy, sad -> sad, ang -> angry;
    exc (excited) -> happy only with ``excited_as_happy=True`` (the common practice that gives
    the 5,531-clip set; default False keeps it out, 4,490 clips);
    excluded: exc (by default), fru, sur, fea, dis, oth, xxx (no majority).

Split protocols (only four-class clips take part):
    ``speaker`` (default, the paper's protocol): 10 folds ``speaker/Ses01F`` ... ``speaker/Ses05M``.
        Fold k tests on speaker k, validates on the other speaker of the same session and trains
        on the 8 speakers of the other sessions, so the validation speaker never shares a
        dialog with the training speakers either. Deterministic.
    ``session``: leave-one-session-out, 5 folds ``session/1`` ... ``session/5``.
        ``session_val="next"`` (default): validation is the next session (cyclic), training the
        other three; everything is speaker-independent. ``session_val="random"``: validation is
        a seeded 10% of the four training sessions' clips (stratified by class), training the
        rest, as often done in leave-one-session-out papers; the test session stays unseen.
        Needs at least 3 sessions on disk.

Options:
    seed (int, 0): seed of ``session_val="random"``.
    excited_as_happy (bool, False): merge ``exc`` into happy.
    session_val ("next" | "random"): validation choice of the ``session`` protocol.
    allow_missing (bool, False): leave out labelled utterances whose wav file is missing
        instead of raising.

Citation:
    C. Busso, M. Bulut, C.-C. Lee, A. Kazemzadeh, E. Mower, S. Kim, J. N. Chang, S. Lee,
    S. S. Narayanan, "IEMOCAP: Interactive emotional dyadic motion capture database",
    Language Resources and Evaluation 42(4):335-359, 2008.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from embedprobe.audio.voice import Channel
from embedprobe.corpora.base import Clip, Manifest
from embedprobe.corpora.common import CorpusReader, check_missing, meta, register
from embedprobe.corpora.splits import (
    TRAIN,
    VAL,
    by_group,
    holdout_folds,
    rng_for,
    stratified_random,
)
from embedprobe.corpora.synthetic import SyntheticLayout, Writer, plan

LABEL_MAP: dict[str, str | None] = {
    "neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry", "exc": None,
    "fru": None, "sur": None, "fea": None, "dis": None, "oth": None, "xxx": None,
}
LINE = re.compile(
    r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(Ses\d\d[FM]_\S+)\s+([a-z]{3})\s+\[([^\]]*)\]", re.IGNORECASE
)
UTT = re.compile(r"^Ses(\d\d)[FM]_.+_([FM])\d+$")
SESSIONS = tuple(f"Session{i}" for i in range(1, 6))


def speaker_of(utterance: str) -> str | None:
    """``"Ses01F_impro01_M012"`` -> ``"Ses01M"``; None if the name is not an IEMOCAP utterance."""
    m = UTT.match(utterance)
    return f"Ses{m.group(1)}{m.group(2)}" if m else None


def parse_evaluation(text: str) -> list[tuple[float, float, str, str, tuple[str, ...]]]:
    """The summary lines of one EmoEvaluation file: (start, end, utterance, label, (v, a, d))."""
    rows = []
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if m:
            vad = tuple(v.strip() for v in m.group(5).split(","))
            rows.append((float(m.group(1)), float(m.group(2)), m.group(3), m.group(4).lower(), vad))
    return rows


@register
class IEMOCAP(CorpusReader):
    name = "iemocap"
    default_protocol = "speaker"
    marker = "Session1"
    option_defaults: ClassVar[dict[str, Any]] = {
        "seed": 0, "excited_as_happy": False, "session_val": "next", "allow_missing": False,
    }
    option_choices: ClassVar[dict[str, tuple[Any, ...]]] = {"session_val": ("next", "random")}

    synthetic = SyntheticLayout(n_speakers=10, clips_per_class=3, speakers=(2, 10), max_per_class=200,
                                even_speakers=True,  # shotgun mics in a camera room
                                channel=Channel(-2.0, 90.0, 7000.0, 0.45, 4.0, 22.0, 1.0, 60.0, 0.8))

    @classmethod
    def synthesize(cls, w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
        """``Session*/dialog/EmoEvaluation/*.txt``, ``Session*/sentences/wav``; extra labels exc, fru, xxx."""
        classes = {"ang": "angry", "hap": "happy", "neu": "neutral", "sad": "sad"}
        extras = {"exc": "excited", "fru": "frustrated", "xxx": "other"}
        for s in range(1, n_speakers // 2 + 1):
            sess = f"Session{s}"
            dialogs = [f"Ses{s:02d}F_impro01", f"Ses{s:02d}M_script01_1"]
            turns: dict[str, list[tuple[str, str, str]]] = {d: [] for d in dialogs}
            for g in "FM":
                counter = {d: 0 for d in dialogs}
                for i, (code, key) in enumerate(plan(classes, extras, per_class, per_extra, w.rng(f"plan:{s}{g}"))):
                    d = dialogs[i % 2]
                    turns[d].append((f"{d}_{g}{counter[d]:03d}", code, key))
                    counter[d] += 1
            ev_dir = w.root / sess / "dialog" / "EmoEvaluation"
            (ev_dir / "Categorical").mkdir(parents=True, exist_ok=True)
            for d in dialogs:
                lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
                t = 1.0
                for utt, code, key in sorted(turns[d], key=lambda u: (u[0][-3:], u[0][-4])):
                    secs = w.write(f"{sess}/sentences/wav/{d}/{utt}.wav", key,
                                   f"Ses{s:02d}{utt.rsplit('_', 1)[1][0]}", utt.rsplit("_", 1)[1][0])
                    lines.append(f"[{t:.4f} - {t + secs:.4f}]\t{utt}\t{code}\t[{SYNTH_VAD[code]}]")
                    lines += [f"C-E{k}:\t{SYNTH_WORDS[code]};\t()" for k in (1, 2, 3)]
                    lines += ["A-E1:\tval 3; act 3; dom  3;\t()", ""]
                    t += secs + 0.5
                (ev_dir / f"{d}.txt").write_text("\n".join(lines) + "\n")
                (ev_dir / "Categorical" / f"{d}_e1_cat.txt").write_text(f"{d}_F000 :Neutral state; ()\n")
            (ev_dir / f"._{dialogs[0]}.txt").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
        return w.root

    def expected_layout(self) -> str:
        return ("Session1..Session5 folders, each with dialog/EmoEvaluation/*.txt and "
                "sentences/wav/<dialog>/<utterance>.wav (IEMOCAP_full_release)")

    def _scan(self, root: Path, opts: dict[str, Any]) -> Manifest:
        sessions = [s for s in SESSIONS if (root / s).is_dir()]
        if not sessions:
            raise self.layout_error(root, "no Session1..5 folders")
        label_map = dict(LABEL_MAP, exc="happy" if opts["excited_as_happy"] else None)
        clips: list[Clip] = []
        for sess in sessions:
            eval_dir = root / sess / "dialog" / "EmoEvaluation"
            if not eval_dir.is_dir():
                raise self.layout_error(root, f"no {sess}/dialog/EmoEvaluation folder")
            for f in sorted(eval_dir.glob("*.txt")):
                if f.name.startswith("."):
                    continue
                for start, end, utt, lab, vad in parse_evaluation(f.read_text(errors="replace")):
                    spk = speaker_of(utt)
                    if spk is None:
                        continue
                    dialog = utt.rsplit("_", 1)[0]
                    fields = dict(zip(("valence", "activation", "dominance"), vad, strict=False))
                    clips.append(Clip(
                        id=utt, path=f"{sess}/sentences/wav/{dialog}/{utt}.wav", speaker=spk,
                        native_label=lab, label=label_map.get(lab),
                        meta=meta(session=sess[-1], gender=spk[-1], dialog=dialog,
                                  kind="script" if "_script" in utt else "impro",
                                  start=f"{start:.4f}", end=f"{end:.4f}", **fields),
                    ))
        if not clips:
            raise self.layout_error(root, "no utterance lines in any dialog/EmoEvaluation/*.txt")
        clips = sorted({c.id: c for c in clips}.values(), key=lambda c: c.id)
        # Only clips that can be used must exist; excluded labels are listed but not required.
        usable = check_missing(self.name, root, [c for c in clips if c.label is not None], opts["allow_missing"])
        keep = {c.id for c in usable}
        clips = [c for c in clips if c.label is None or c.id in keep]
        for lab in {c.native_label for c in clips} - set(label_map):
            label_map[lab] = None
        return self.manifest(root, clips, self._protocols(clips, opts), self.default_protocol, label_map, opts)

    @staticmethod
    def _protocols(clips: list[Clip], opts: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
        labels = [c.label for c in clips]
        speakers = [c.speaker for c in clips]
        sessions = [dict(c.meta)["session"] for c in clips]
        sess_ids = sorted(set(sessions))
        out: dict[str, dict[str, list[str]]] = {"speaker": {}, "session": {}}
        if len(sess_ids) >= 2:
            folds = []
            for spk in sorted(set(speakers)):
                other = spk[:-1] + ("M" if spk[-1] == "F" else "F")
                folds.append((spk, [spk], [other]))
            out["speaker"] = holdout_folds(speakers, labels, folds, "speaker")
        if len(sess_ids) >= 3:
            if opts["session_val"] == "next":
                folds = [(s, [s], [sess_ids[(i + 1) % len(sess_ids)]]) for i, s in enumerate(sess_ids)]
                out["session"] = holdout_folds(sessions, labels, folds, "session")
            else:
                ids = [c.id for c in clips]
                for s in sess_ids:
                    key = f"session/{s}"
                    parts = by_group(sessions, labels, {g: ("test" if g == s else TRAIN) for g in sess_ids})
                    train_idx = [i for i, p in enumerate(parts) if p == TRAIN]
                    sub = stratified_random([ids[i] for i in train_idx], [labels[i] for i in train_idx],
                                            (90, 10, 0), rng_for(opts["seed"], key))
                    for i, p in zip(train_idx, sub, strict=True):
                        parts[i] = VAL if p == VAL else TRAIN
                    out["session"][key] = parts
        return out


# -- synthetic layout (embedprobe.corpora.synthetic.write_corpus) ---------------------------------
SYNTH_WORDS = {"ang": "Anger", "hap": "Happiness", "neu": "Neutral state", "sad": "Sadness",
               "exc": "Excited", "fru": "Frustration", "xxx": "Other"}
SYNTH_VAD = {"ang": "2.0000, 3.5000, 3.5000", "hap": "4.0000, 3.0000, 3.0000", "neu": "2.5000, 2.5000, 2.5000",
             "sad": "2.0000, 2.0000, 2.0000", "exc": "4.0000, 4.0000, 3.0000", "fru": "2.0000, 3.0000, 3.0000",
             "xxx": "3.0000, 3.0000, 3.0000"}

"""MSP-Podcast, naturalistic emotional speech from podcast recordings.

About the corpus:
    Speaking turns cut from podcasts (v1.10: >100,000 segments, ~165 h, >1,000 speakers),
    each rated by at least five crowd workers. The primary categorical label is the plurality
    vote; ``X`` marks turns without agreement. Release v1.10 was used by the paper
    (67,929 four-class consensus files: 50,494 Train / 6,656 Development / 10,779 Test1).

Layout read (the release as distributed by the MSP lab)::

    <root>/Audios/MSP-PODCAST_0001_0008.wav          # older releases: Audio/
    <root>/Labels/labels_consensus.csv               # some releases: labels_concensus.csv

    columns: FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
    EmoClass: A angry, S sad, H happy, U surprise, F fear, D disgust, C contempt,
              N neutral, O other, X no agreement
    Split_Set: Train, Development, Test1, Test2 (v1.11+ also Test3)

Label map (native labels are the English names; the letter is kept in ``meta['code']``):
    A -> angry, H -> happy, N -> neutral, S -> sad; U, F, D, C, O and X (no consensus)
    are excluded.

Speakers: ``SpkrID``; turns whose speaker is not identified (``Unknown``) get ``"unknown"``.

Split protocols (only four-class clips take part):
    ``official`` (default, the paper's protocol): one fold, Train -> train,
        Development -> val, Test1 -> test; Test2 / Test3 clips are left out.
    ``test2``: as ``official`` but testing on Test2 (only when the release has Test2 rows).
    Both are the corpus's own speaker-independent partitions; the seed plays no part.

Options:
    seed (int, 0): recorded only (no random protocol).
    allow_missing (bool, False): leave out four-class rows whose wav file is missing instead
        of raising.

Citation:
    R. Lotfian, C. Busso, "Building naturalistic emotionally balanced speech corpus by
    retrieving emotional speech from existing podcast recordings", IEEE Transactions on
    Affective Computing 10(4):471-483, 2019.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, ClassVar

from embedprobe.audio.voice import Channel
from embedprobe.corpora.base import Clip, Manifest
from embedprobe.corpora.common import CorpusReader, check_missing, meta, register
from embedprobe.corpora.splits import OUT, TEST, TRAIN, VAL, exact_counts
from embedprobe.corpora.synthetic import SyntheticLayout, Writer, plan
from embedprobe.corpora.textfiles import read_csv
from embedprobe.errors import CorpusError

CODES: dict[str, str] = {
    "A": "angry", "S": "sad", "H": "happy", "U": "surprise", "F": "fear", "D": "disgust",
    "C": "contempt", "N": "neutral", "O": "other", "X": "no-agreement",
}
LABEL_MAP: dict[str, str | None] = {
    name: (name if name in ("angry", "happy", "neutral", "sad") else None) for name in CODES.values()
}
LABEL_FILES = ("labels_consensus.csv", "labels_concensus.csv")
AUDIO_DIRS = ("Audios", "Audio")
COLUMNS = ("FileName", "EmoClass", "SpkrID", "Split_Set")
PROTOCOLS: dict[str, dict[str, str]] = {
    "official": {"Train": TRAIN, "Development": VAL, "Test1": TEST},
    "test2": {"Train": TRAIN, "Development": VAL, "Test2": TEST},
}


@register
class MSPPodcast(CorpusReader):
    name = "msp-podcast"
    default_protocol = "official"
    marker = "Labels"
    option_defaults: ClassVar[dict[str, Any]] = {"seed": 0, "allow_missing": False}

    synthetic = SyntheticLayout(n_speakers=10, clips_per_class=3, speakers=(4, 1000), max_per_class=500,
                                channel=Channel(0.5, 70.0, 6000.0, 0.08, 15.0, 34.0, 0.5, 0.0, 0.6))  # close mic, lossy

    @classmethod
    def synthesize(cls, w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
        """``Audios/*.wav``, ``Labels/labels_consensus.csv``; extra labels X, C, U; plus 4
        'Unknown'-speaker Train turns; speakers split 60/15/15/10 into Train/Development/Test1/Test2.
        """
        classes = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}
        extras = {"X": "other", "C": "contempt", "U": "surprise"}
        sets = ["Train", "Development", "Test1", "Test2"]
        counts = exact_counts(n_speakers, (60, 15, 15, 10))
        split_of = [s for s, k in zip(sets, counts, strict=True) for _ in range(k)]
        rows = [["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]]

        def add(podcast: int, seg: int, code: str, key: str, spk: str, gender: str, split: str) -> None:
            name = f"MSP-PODCAST_{podcast:04d}_{seg:04d}.wav"
            w.write(f"Audios/{name}", key, spk, gender[0])
            act, val, dom = SYNTH_DIMS[code]
            rows.append([name, code, f"{act:.1f}", f"{val:.1f}", f"{dom:.1f}", spk, gender, split])

        for i in range(n_speakers):
            spk, gender = str(101 + i), ("Female" if i % 2 else "Male")
            for seg, (code, key) in enumerate(plan(classes, extras, per_class, per_extra, w.rng(f"plan:{spk}")), 1):
                add(i + 1, seg, code, key, spk, gender, split_of[i])
        for j, code in enumerate("NHAS"):  # turns without an identified speaker
            add(900, j + 1, code, classes[code], "Unknown", "Unknown", "Train")
        (w.root / "Labels").mkdir(parents=True, exist_ok=True)
        with (w.root / "Labels" / "labels_consensus.csv").open("w", newline="") as f:
            csv.writer(f).writerows(rows)
        return w.root

    def expected_layout(self) -> str:
        return "Audios/*.wav and Labels/labels_consensus.csv (the MSP-Podcast release)"

    def _scan(self, root: Path, opts: dict[str, Any]) -> Manifest:
        label_file = next((root / "Labels" / n for n in LABEL_FILES if (root / "Labels" / n).is_file()), None)
        if label_file is None:
            raise self.layout_error(root, "no Labels/labels_consensus.csv")
        audio_dir = next((d for d in AUDIO_DIRS if (root / d).is_dir()), None)
        if audio_dir is None:
            raise self.layout_error(root, "no 'Audios' folder")
        rows = [r for _, r in read_csv(label_file, "msp-podcast")]
        header = list(rows[0]) if rows else []
        lacking = [c for c in COLUMNS if c not in header]
        if lacking:
            raise CorpusError(
                f"msp-podcast: {label_file} lacks the column(s) {lacking}; it has {header}. "
                "Fix: use the labels_consensus.csv of the release (FileName,EmoClass,...,Split_Set)."
            )
        clips = []
        for r in rows:
            code = r["EmoClass"].upper()
            native = CODES.get(code, code)
            spk = r["SpkrID"]
            stem = r["FileName"].rsplit(".", 1)[0]
            clips.append(Clip(
                id=stem, path=f"{audio_dir}/{r['FileName']}",
                speaker="unknown" if spk.lower() in ("unknown", "") else spk,
                native_label=native, label=LABEL_MAP.get(native),
                meta=meta(code=code, split_set=r["Split_Set"], gender=r.get("Gender") or None,
                          activation=r.get("EmoAct") or None, valence=r.get("EmoVal") or None,
                          dominance=r.get("EmoDom") or None),
            ))
        if not clips:
            raise self.layout_error(root, f"no rows in {label_file.name}")
        clips = sorted({c.id: c for c in clips}.values(), key=lambda c: c.id)
        usable = check_missing(self.name, root, [c for c in clips if c.label is not None], opts["allow_missing"])
        keep = {c.id for c in usable}
        clips = [c for c in clips if c.label is None or c.id in keep]
        label_map = dict(LABEL_MAP)
        for c in clips:
            label_map.setdefault(c.native_label, None)
        sets = [dict(c.meta).get("split_set", "") for c in clips]
        protocols = {}
        for proto, table in PROTOCOLS.items():
            if TEST not in table.values() or not any(table.get(s) == TEST for s in sets):
                continue
            parts = [OUT if c.label is None else table.get(s, OUT) for c, s in zip(clips, sets, strict=True)]
            protocols[proto] = {proto: parts}
        return self.manifest(root, clips, protocols, self.default_protocol, label_map, opts)


# -- synthetic layout (embedprobe.corpora.synthetic.write_corpus) ---------------------------------
SYNTH_DIMS = {"A": (5.5, 2.5, 5.0), "H": (4.8, 5.5, 4.5), "N": (4.0, 4.0, 4.0), "S": (3.0, 2.5, 3.0),
              "X": (4.2, 3.8, 4.1), "C": (4.3, 3.0, 4.8), "U": (5.0, 4.5, 4.0)}

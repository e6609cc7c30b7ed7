"""Writers of small fake corpora in each real corpus layout (audio + label files).

Each writer takes a :class:`Writer` (which renders and saves clips) and the corpus size,
and returns the path to hand to ``embedprobe.corpora.scan``. Clip audio is seeded per
file name, so a corpus is byte-identical for the same arguments.
"""

from __future__ import annotations

import csv
import io
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from embedprobe.corpora.splits import exact_counts
from embedprobe.synth.voice import PROSODY, Channel, Speaker, make_speaker, synth_clip

CLASSES = ("angry", "happy", "neutral", "sad")


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


def _plan(classes: dict[str, str], extras: dict[str, str], per_class: int, per_extra: int,
          rng: np.random.Generator) -> list[tuple[str, str]]:
    """Shuffled (native code, prosody key) list for one speaker."""
    items = [(code, key) for code, key in classes.items() for _ in range(per_class)]
    items += [(code, key) for code, key in extras.items() for _ in range(per_extra)]
    return [items[i] for i in rng.permutation(len(items))]


# -- EmoDB ----------------------------------------------------------------------------------
EMODB_SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")
EMODB_GENDER = dict(zip(EMODB_SPEAKERS, "MFFMMMFFMF", strict=True))
EMODB_TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")


def emodb(w: Writer, n_speakers: int, per_class: int, per_extra: int) -> list[dict]:
    """``wav/03a01Fa.wav``; returns one record per clip (used by the EmoBox writer)."""
    records = []
    classes = {"W": "angry", "F": "happy", "N": "neutral", "T": "sad"}
    extras = {"L": "boredom", "A": "fear", "E": "disgust"}
    for spk in EMODB_SPEAKERS[:n_speakers]:
        used: dict[str, int] = {}
        for i, (code, key) in enumerate(_plan(classes, extras, per_class, per_extra, w.rng(f"plan:{spk}"))):
            text = EMODB_TEXTS[i % len(EMODB_TEXTS)]
            version = "abcdefghijklmnopqrstuvwxyz"[used.get(text + code, 0)]
            used[text + code] = used.get(text + code, 0) + 1
            name = f"{spk}{text}{code}{version}"
            secs = w.write(f"wav/{name}.wav", key, spk, EMODB_GENDER[spk])
            records.append({"name": name, "speaker": spk, "code": code, "length": secs})
    return records


# -- CREMA-D --------------------------------------------------------------------------------
CREMA_SENTENCES = ("DFA", "IEO", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI", "TAI", "TIE", "TSI", "WSI")


def cremad(w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
    classes = {"ANG": "angry", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
    extras = {"DIS": "disgust", "FEA": "fear"}
    demo = []
    for a in range(n_speakers):
        actor = str(1001 + a)
        gender = "F" if a % 2 else "M"
        demo.append([actor, str(25 + 3 * a), "Female" if gender == "F" else "Male", "Caucasian", "Not Hispanic"])
        counts: dict[str, int] = {}
        for code, key in _plan(classes, extras, per_class, per_extra, w.rng(f"plan:{actor}")):
            k = counts.get(code, 0)
            counts[code] = k + 1
            # sentences 0..11 with intensity XX, then IEO at LO/MD/HI: 14 distinct names
            if k < len(CREMA_SENTENCES):
                sentence, intensity = CREMA_SENTENCES[k], "XX" if CREMA_SENTENCES[k] != "IEO" else "MD"
            else:
                sentence, intensity = "IEO", ("LO", "HI")[k - len(CREMA_SENTENCES)]
            w.write(f"AudioWAV/{actor}_{sentence}_{code}_{intensity}.wav", key, actor, gender)
    with (w.root / "VideoDemographics.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["ActorID", "Age", "Sex", "Race", "Ethnicity"], *demo])
    return w.root


# -- IEMOCAP --------------------------------------------------------------------------------
IEMOCAP_WORDS = {"ang": "Anger", "hap": "Happiness", "neu": "Neutral state", "sad": "Sadness",
                 "exc": "Excited", "fru": "Frustration", "xxx": "Other"}
IEMOCAP_VAD = {"ang": "2.0000, 3.5000, 3.5000", "hap": "4.0000, 3.0000, 3.0000", "neu": "2.5000, 2.5000, 2.5000",
               "sad": "2.0000, 2.0000, 2.0000", "exc": "4.0000, 4.0000, 3.0000", "fru": "2.0000, 3.0000, 3.0000",
               "xxx": "3.0000, 3.0000, 3.0000"}


def iemocap(w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
    classes = {"ang": "angry", "hap": "happy", "neu": "neutral", "sad": "sad"}
    extras = {"exc": "excited", "fru": "frustrated", "xxx": "other"}
    for s in range(1, n_speakers // 2 + 1):
        sess = f"Session{s}"
        dialogs = [f"Ses{s:02d}F_impro01", f"Ses{s:02d}M_script01_1"]
        turns: dict[str, list[tuple[str, str, str]]] = {d: [] for d in dialogs}
        for g in "FM":
            counter = {d: 0 for d in dialogs}
            for i, (code, key) in enumerate(_plan(classes, extras, per_class, per_extra, w.rng(f"plan:{s}{g}"))):
                d = dialogs[i % 2]
                turns[d].append((f"{d}_{g}{counter[d]:03d}", code, key))
                counter[d] += 1
        ev_dir = w.root / sess / "dialog" / "EmoEvaluation"
        (ev_dir / "Categorical").mkdir(parents=True, exist_ok=True)
        for d in dialogs:
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            t = 1.0
            for utt, code, key in sorted(turns[d], key=lambda u: (u[0][-3:], u[0][-4])):
                secs = w.write(f"{sess}/sentences/wav/{d}/{utt}.wav", key, f"Ses{s:02d}{utt.rsplit('_', 1)[1][0]}",
                               utt.rsplit("_", 1)[1][0])
                lines.append(f"[{t:.4f} - {t + secs:.4f}]\t{utt}\t{code}\t[{IEMOCAP_VAD[code]}]")
                lines += [f"C-E{k}:\t{IEMOCAP_WORDS[code]};\t()" for k in (1, 2, 3)]
                lines += ["A-E1:\tval 3; act 3; dom  3;\t()", ""]
                t += secs + 0.5
            (ev_dir / f"{d}.txt").write_text("\n".join(lines) + "\n")
            (ev_dir / "Categorical" / f"{d}_e1_cat.txt").write_text(f"{d}_F000 :Neutral state; ()\n")
        (ev_dir / f"._{dialogs[0]}.txt").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    return w.root


# -- MSP-Podcast ----------------------------------------------------------------------------
MSP_DIMS = {"A": (5.5, 2.5, 5.0), "H": (4.8, 5.5, 4.5), "N": (4.0, 4.0, 4.0), "S": (3.0, 2.5, 3.0),
            "X": (4.2, 3.8, 4.1), "C": (4.3, 3.0, 4.8), "U": (5.0, 4.5, 4.0)}


def msppodcast(w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
    classes = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}
    extras = {"X": "other", "C": "contempt", "U": "surprise"}
    sets = ["Train", "Development", "Test1", "Test2"]
    counts = exact_counts(n_speakers, (60, 15, 15, 10))
    split_of = [s for s, k in zip(sets, counts, strict=True) for _ in range(k)]
    rows = [["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]]

    def add(podcast: int, seg: int, code: str, key: str, spk: str, gender: str, split: str) -> None:
        name = f"MSP-PODCAST_{podcast:04d}_{seg:04d}.wav"
        w.write(f"Audios/{name}", key, spk, gender[0])
        act, val, dom = MSP_DIMS[code]
        rows.append([name, code, f"{act:.1f}", f"{val:.1f}", f"{dom:.1f}", spk, gender, split])

    for i in range(n_speakers):
        spk, gender = str(101 + i), ("Female" if i % 2 else "Male")
        for seg, (code, key) in enumerate(_plan(classes, extras, per_class, per_extra, w.rng(f"plan:{spk}")), 1):
            add(i + 1, seg, code, key, spk, gender, split_of[i])
    for j, code in enumerate("NHAS"):  # turns without an identified speaker
        add(900, j + 1, code, classes[code], "Unknown", "Unknown", "Train")
    (w.root / "Labels").mkdir(parents=True, exist_ok=True)
    with (w.root / "Labels" / "labels_consensus.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return w.root


# -- RAVDESS --------------------------------------------------------------------------------
def ravdess(w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
    classes = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry"}
    extras = {"06": "fear", "08": "surprise"}
    for a in range(1, n_speakers + 1):
        actor, gender = f"{a:02d}", ("M" if a % 2 else "F")
        counts: dict[str, int] = {}
        for code, key in _plan(classes, extras, per_class, per_extra, w.rng(f"plan:{actor}")):
            k = counts.get(code, 0)
            counts[code] = k + 1
            # neutral has no strong intensity: 4 takes; others 8 (intensity x statement x repetition)
            intensity = "01" if code == "01" else f"{k // 4 + 1:02d}"
            statement, repetition = f"{(k // 2) % 2 + 1:02d}", f"{k % 2 + 1:02d}"
            w.write(f"Actor_{actor}/03-01-{code}-{intensity}-{statement}-{repetition}-{actor}.wav", key, actor, gender)
        w.write(f"Actor_{actor}/03-02-01-01-01-01-{actor}.wav", "neutral", actor, gender, 0.5)  # a song file
    return w.root


# -- manifest -------------------------------------------------------------------------------
MANIFEST_NAMES = {"angry": ("angry", "Anger", "ANG"), "happy": ("happy", "Happiness", "joy"),
                  "neutral": ("neutral", "NEU"), "sad": ("sad", "Sadness"), "fear": ("fear",), "disgust": ("disgust",)}


def manifest(w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
    """``audio/<spk>/<name>.wav`` + ``manifest.csv`` (no split) + ``manifest_split.jsonl`` (split)."""
    classes = {k: k for k in CLASSES}
    extras = {"fear": "fear", "disgust": "disgust"}
    rows, records = [], []
    n_test = max(1, n_speakers // 6)
    for s in range(n_speakers):
        spk, gender = f"spk{s + 1:02d}", ("F" if s % 2 else "M")
        split = "test" if s < n_test else ("valid" if s < 2 * n_test else "train")
        for i, (code, key) in enumerate(_plan(classes, extras, per_class, per_extra, w.rng(f"plan:{spk}"))):
            names = MANIFEST_NAMES[code]
            rel = f"audio/{spk}/{spk}_{i:03d}.wav"
            w.write(rel, key, spk, gender)
            label = names[i % len(names)]
            rows.append({"path": rel, "label": label, "speaker": spk, "gender": gender})
            records.append({"path": rel, "label": label, "speaker": spk, "split": split, "id": f"{spk}-{i:03d}"})
    with (w.root / "manifest.csv").open("w", newline="") as f:
        dw = csv.DictWriter(f, fieldnames=["path", "label", "speaker", "gender"])
        dw.writeheader()
        dw.writerows(rows)
    (w.root / "manifest_split.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return w.root / "manifest.csv"


# -- EmoBox ---------------------------------------------------------------------------------
EMOBOX_EMO = {"W": "anger", "L": "boredem", "E": "disgust", "A": "fear", "F": "happy", "N": "neutral", "T": "sad"}
EMOBOX_LABEL_MAP = {"anger": "Angry", "boredem": "Boredom", "disgust": "Disgust", "fear": "Fear",
                    "happy": "Happy", "Neutral": "Neutral", "sad": "Sad"}


def emobox(w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
    """EmoDB-named audio in ``downloads/emodb/wav`` + EmoBox metadata in ``data/emodb``."""
    audio = Writer(w.root / "downloads" / "emodb", w.channel, w.seed, w.sample_rate, w.duration_s)
    recs = emodb(audio, n_speakers, per_class, per_extra)
    data = w.root / "data" / "emodb"
    data.mkdir(parents=True, exist_ok=True)
    (data / "label_map.json").write_text(json.dumps(EMOBOX_LABEL_MAP, indent=4))

    def line(r: dict) -> str:
        return json.dumps({
            "key": f"emodb-{r['name']}", "dataset": "emodb", "wav": f"downloads/emodb/wav/{r['name']}.wav",
            "type": "raw", "sample_rate": w.sample_rate, "num_frame": r["length"] * w.sample_rate,
            "task": "category", "length": r["length"], "emo": EMOBOX_EMO[r["code"]], "channel": 1,
        }) + "\n"

    (data / "emodb.jsonl").write_text("".join(line(r) for r in recs))
    speakers = sorted({r["speaker"] for r in recs})
    n_folds = max(2, len(speakers) // 4)
    for k in range(1, n_folds + 1):
        test_spk = {s for i, s in enumerate(speakers) if i % n_folds == k - 1}
        fold = data / f"fold_{k}"
        fold.mkdir(exist_ok=True)
        (fold / f"emodb_train_fold_{k}.jsonl").write_text("".join(line(r) for r in recs if r["speaker"] not in test_spk))
        (fold / f"emodb_test_fold_{k}.jsonl").write_text("".join(line(r) for r in recs if r["speaker"] in test_spk))
    return data

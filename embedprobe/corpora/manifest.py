"""A generic reader for any corpus listed in a CSV or JSONL manifest.

About the corpus:
    Whatever you list. Use it for corpora without a built-in reader, for subsets, or to pin
    an exact list of files (e.g. the files a paper used).

Encoding: UTF-8, or UTF-16/UTF-32 with a byte-order mark (as spreadsheets export "Unicode
text"); any other encoding (Latin-1, Windows-1252) is an error naming the line: save as UTF-8.

Layout read::

    <root>                      # the manifest file itself (.csv, .tsv or .jsonl), or a folder
                                # holding manifest.csv / manifest.jsonl
    columns (CSV header or JSON keys):
        path     audio file, relative to the manifest's folder or absolute      (required)
        label    emotion label, free text                                       (required)
        speaker  speaker id; without it every clip is speaker "unknown"          (recommended)
        split    train / val / test (also valid, validation, dev, development); empty, "-",
                 "none" or "excluded" leave the clip out                         (optional)
        split:<fold>  several folds at once, e.g. split:1 ... split:5            (optional)
        id       unique clip id; default: the path without its extension        (optional)
        any other column is kept in ``meta``.

Label map:
    Labels are matched case-insensitively through :data:`~embedprobe.corpora.common.LABEL_SYNONYMS`:
    angry <- ang, anger, angry, annoyed, mad; happy <- hap, happy, happiness, joy, joyful,
    glad; neutral <- neu, neutral, neutrality; sad <- sad, sadness, sorrow, unhappy.
    Other labels (fear, disgust, calm, exc, ...) are kept as native labels and excluded.
    ``label_map`` adds or overrides entries: ``{"exc": "happy"}``, or from the command line
    ``label_map="exc=happy,calm=neutral"`` (``none`` as target excludes a label).

Split protocols (only four-class clips take part):
    ``given`` (default when a split column exists): the manifest's own split(s); one fold
        ``given`` for a ``split`` column, folds ``given/<fold>`` for ``split:<fold>`` columns.
    ``speaker`` (default otherwise; needs >= 3 speakers): one fold, speakers split 70/15/15,
        seeded, so no speaker is in two parts.
    ``random``: one fold, seeded random 70/15/15 stratified by class (always offered; not
        speaker-independent).

Name:
    Every manifest corpus is called ``manifest`` unless ``--name NAME`` (``scan(...,
    corpus_name=NAME)``) names it: the cache is then ``NAME__<model>.h5`` and ``probe --train
    NAME`` finds it, so several custom corpora can stand in one matrix. Caches written without
    a name keep opening as ``manifest``.

Options:
    seed (int, 0): seed of ``speaker`` and ``random``.
    label_map (dict or "a=b,c=d"): label overrides, see above.
    allow_missing (bool, False): leave out four-class rows whose audio file is missing.

Citation: cite the corpus your manifest lists.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from embedprobe.audio.voice import Channel
from embedprobe.corpora.base import CANONICAL_LABELS, Clip, Manifest
from embedprobe.corpora.common import (
    CorpusReader,
    canonical_label,
    check_missing,
    register,
    unique_ids,
)
from embedprobe.corpora.splits import (
    OUT,
    TEST,
    TRAIN,
    VAL,
    by_group,
    group_split,
    rng_for,
    stratified_random,
)
from embedprobe.corpora.synthetic import SyntheticLayout, Writer, plan
from embedprobe.corpora.textfiles import read_csv, read_jsonl
from embedprobe.errors import CorpusError

SPLIT_VALUES: dict[str, str] = {
    "train": TRAIN, "training": TRAIN, "val": VAL, "valid": VAL, "validation": VAL, "dev": VAL,
    "development": VAL, "test": TEST, "testing": TEST, "": OUT, "-": OUT, "none": OUT, "excluded": OUT,
}
FRACTIONS = (70, 15, 15)
DEFAULT_FILES = ("manifest.csv", "manifest.jsonl", "manifest.tsv")


def fallback_protocols(clips: list[Clip], seed: int) -> dict[str, dict[str, list[str]]]:
    """``speaker`` (>= 3 known speakers) and ``random`` 70/15/15 protocols for listed corpora."""
    labels = [c.label for c in clips]
    speakers = [c.speaker for c in clips]
    out: dict[str, dict[str, list[str]]] = {}
    known = {s for s in speakers if s != "unknown"}
    if len(known) >= 3 and "unknown" not in speakers:
        table = group_split(speakers, FRACTIONS, rng_for(seed, "speaker"))
        out["speaker"] = {"speaker": by_group(speakers, labels, table)}
    out["random"] = {"random": stratified_random([c.id for c in clips], labels, FRACTIONS, rng_for(seed, "random"))}
    return out


def read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a CSV/TSV (header line) or JSONL file, cells as strings."""
    if path.suffix.lower() == ".jsonl":
        return [(n, {str(k): "" if v is None else str(v) for k, v in obj.items()})
                for n, obj in read_jsonl(path, "manifest")]
    return read_csv(path, "manifest", "\t" if path.suffix.lower() == ".tsv" else ",")


@register
class ManifestCorpus(CorpusReader):
    name = "manifest"
    default_protocol = "given"
    nameable = True
    option_defaults: ClassVar[dict[str, Any]] = {"seed": 0, "label_map": {}, "allow_missing": False}
    layout_fix = "pass the manifest file itself (.csv, .tsv or .jsonl) or the folder that holds manifest.csv"

    synthetic = SyntheticLayout(n_speakers=6, clips_per_class=4, speakers=(1, 1000), max_per_class=500,
                                channel=Channel(-3.5, 150.0, 5000.0, 0.3, 6.0, 25.0, 2.0, 50.0, 0.9))

    @classmethod
    def synthesize(cls, w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
        """``audio/<spk>/*.wav``, ``manifest.csv`` (no split), ``manifest_split.jsonl`` (split);
        extra labels fear, disgust; labels written with synonyms (Anger, joy, NEU, Sadness ...).
        Returns the ``manifest.csv`` path.
        """
        classes = {k: k for k in CANONICAL_LABELS}
        extras = {"fear": "fear", "disgust": "disgust"}
        rows, records = [], []
        n_test = max(1, n_speakers // 6)
        for s in range(n_speakers):
            spk, gender = f"spk{s + 1:02d}", ("F" if s % 2 else "M")
            split = "test" if s < n_test else ("valid" if s < 2 * n_test else "train")
            for i, (code, key) in enumerate(plan(classes, extras, per_class, per_extra, w.rng(f"plan:{spk}"))):
                names = SYNTH_NAMES[code]
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

    def expected_layout(self) -> str:
        return "a .csv/.tsv/.jsonl manifest with columns path,label,speaker[,split][,id]"

    def _scan(self, root: Path, opts: dict[str, Any]) -> Manifest:
        path = root
        if root.is_dir():
            path = next((root / n for n in DEFAULT_FILES if (root / n).is_file()), root)
            if path.is_dir():
                raise self.layout_error(root, f"no manifest file ({', '.join(DEFAULT_FILES)})")
        if path.suffix.lower() not in (".csv", ".tsv", ".jsonl"):
            raise self.layout_error(path, f"an unsupported manifest type {path.suffix!r}")
        overrides = opts["label_map"]
        numbered = read_rows(path)
        if not numbered:
            raise CorpusError(f"manifest: {path} has no rows. Fix: list one clip per row under a header "
                              "line path,label,speaker (and optionally split, id).")
        rows = [r for _, r in numbered]
        columns = {k for r in rows for k in r}  # JSONL objects may differ in their keys
        lacking = [c for c in ("path", "label") if c not in columns]
        if lacking:
            raise CorpusError(f"manifest: {path} lacks the column(s) {lacking}; it has {sorted(columns)}. "
                              "Fix: add columns path,label,speaker (and optionally split, id).")
        split_cols = [k for k in dict.fromkeys(k for r in rows for k in r) if k == "split" or k.startswith("split:")]
        reserved = {"path", "label", "speaker", "id", *split_cols}
        clips, split_values = [], []
        for n, r in numbered:
            if not r.get("path"):
                raise CorpusError(f"manifest: {path} line {n} has an empty path. Fix: fill it or drop the row.")
            if "label" not in r:
                raise CorpusError(f"manifest: {path} line {n} has no label. Fix: give every row a label.")
            rel = PurePosixPath(r["path"].replace("\\", "/"))
            cid = r.get("id") or str(rel.with_suffix(""))
            native = r["label"]
            clips.append(Clip(
                id=cid, path=str(rel), speaker=r.get("speaker") or "unknown", native_label=native,
                label=canonical_label(native, overrides),
                meta=tuple(sorted((k, v) for k, v in r.items() if k not in reserved and v != "")),
            ))
            split_values.append([self._part(r.get(c, ""), path, n, c) for c in split_cols])
        unique_ids(self.name, clips)
        order = sorted(range(len(clips)), key=lambda i: clips[i].id)
        clips = [clips[i] for i in order]
        split_values = [split_values[i] for i in order]
        usable = check_missing(self.name, path.parent, [c for c in clips if c.label is not None], opts["allow_missing"])
        keep = {c.id for c in usable}
        kept = [i for i, c in enumerate(clips) if c.label is None or c.id in keep]
        clips = [clips[i] for i in kept]
        split_values = [split_values[i] for i in kept]
        protocols = {}
        if split_cols:
            folds = {}
            for j, col in enumerate(split_cols):
                key = "given" if col == "split" else f"given/{col.split(':', 1)[1]}"
                folds[key] = [OUT if c.label is None else v[j] for c, v in zip(clips, split_values, strict=True)]
            protocols["given"] = folds
        protocols.update(fallback_protocols(clips, opts["seed"]))
        default = "given" if split_cols else ("speaker" if "speaker" in protocols else "random")
        label_map = {c.native_label: c.label for c in clips}
        return self.manifest(path.parent, clips, protocols, default, label_map, opts)

    @staticmethod
    def _part(value: str, path: Path, row: int, column: str) -> str:
        try:
            return SPLIT_VALUES[value.strip().lower()]
        except KeyError:
            raise CorpusError(
                f"manifest: {path} line {row} has {column}={value!r}; expected one of "
                f"{sorted(k for k in SPLIT_VALUES if k)} or empty. Fix: correct that cell."
            ) from None


# -- synthetic layout (embedprobe.corpora.synthetic.write_corpus) ---------------------------------
SYNTH_NAMES = {"angry": ("angry", "Anger", "ANG"), "happy": ("happy", "Happiness", "joy"),
               "neutral": ("neutral", "NEU"), "sad": ("sad", "Sadness"), "fear": ("fear",), "disgust": ("disgust",)}

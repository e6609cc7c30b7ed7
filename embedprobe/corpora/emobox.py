"""Import the metadata and fold partitions of EmoBox.

About the corpus:
    EmoBox (32 corpora in 14 languages) ships no audio, only metadata that point into the
    corpora you download yourself: one JSONL record per clip and per-fold train/test files
    (speaker-independent where the corpus allows). Reading it gives exactly the EmoBox folds.

Layout read (``EmoBox/data/<dataset>/`` of the EmoBox repository)::

    <dataset>/label_map.json                          # emo code -> class name (merges, e.g. exc -> Happy)
    <dataset>/<dataset>.jsonl                         # every clip (optional)
    <dataset>/fold_1/<dataset>_train_fold_1.jsonl     # per fold: train, test, optional valid
    <dataset>/fold_1/<dataset>_test_fold_1.jsonl

    record: {"key": "iemocap-Ses01F_impro04_F000", "dataset": "iemocap",
             "wav": "downloads/iemocap/Session1/sentences/wav/.../Ses01F_impro04_F000.wav",
             "type": "raw", "sample_rate": 16000, "num_frame": 70312, "task": "category",
             "length": 4.39, "emo": "neu", "channel": 1}

    Record schemas: the audio path is read from ``wav`` (as above), ``audio`` or
    ``wav_filename``, the label from ``emo`` or ``label``; ``key`` is optional (default: the
    file name without extension, or the whole path without extension where names repeat).

    Two fold-file sets: some dataset folders hold both ``<dataset>_test_fold_1.jsonl``
    (``wav``/``emo``) and ``<dataset>_test_fold1.jsonl`` (``audio``/``label``) for the same
    folds. The reader takes the ``fold_K`` set (EmoBox's documented naming), or the set given by
    ``fold_files``, says once which set it took and which it left, and records the choice in
    the manifest's options (``fold_files``).

    The root may be the dataset folder, a folder of fold files, or a single JSONL file (a
    fold file stands for its whole folder). ``wav`` paths are relative to the EmoBox
    checkout (where ``downloads/`` lives): give ``audio_root``, or the reader tries the
    dataset folder and its parents (EmoBox/data/<dataset> -> EmoBox) and takes the first
    under which the listed files exist.

    ``track2`` (the cross-corpus track) is a folder of one JSONL per corpus
    (``IEMOCAP_selected_balenced.jsonl``, ``SAVEE_...``: ``wav_filename``, ``label``,
    ``speaker``; paths relative to that corpus's audio folder). Read each as a named corpus,
    so that the track becomes a matrix::

        embedprobe extract --corpus emobox --root EmoBox/data/track2 --option dataset=savee \
            --option audio_root=/data/SAVEE/AudioData --name savee ...

    ``dataset`` picks the file whose name is the dataset's, or starts with it and ``_``
    (case-insensitive).

Speakers:
    EmoBox records carry no speaker. A ``spk``/``speaker`` field is used when present;
    otherwise the speaker is parsed from the file name for iemocap, cremad, emodb and
    ravdess (same rules as those readers), else it is ``"unknown"``.

Label map:
    ``emo`` is kept as the native label. With ``use_label_map=True`` (default) it goes
    through the dataset's label_map.json first (EmoBox merges exc into Happy for IEMOCAP),
    then through the synonyms table of the ``manifest`` reader (Angry -> angry, ...);
    everything else (Fear, Disgust, ...) is excluded. ``label_map`` overrides as in
    ``manifest``.

Split protocols (only four-class clips take part):
    ``emobox`` (default): the EmoBox folds ``fold/1`` ... ``fold/K``: train/test from the
        fold files; validation from the fold's valid file when present, otherwise a seeded
        ``val_fraction`` (0.2, EmoBox's own 80/20) of the fold's training clips, stratified
        by class (this validation set is not speaker-disjoint from training).
    Without fold files (a single whole-dataset file): ``speaker`` and ``random`` 70/15/15
        as in the ``manifest`` reader.

Options:
    seed (int, 0); val_fraction (float, 0.2); audio_root (str, auto); use_label_map (bool,
    True); label_map (overrides); allow_missing (bool, False); dataset (str): one file of a
    folder of per-corpus files (track2); fold_files ("fold_K" or "foldK"): which fold-file
    set to read when a folder holds both (default ``fold_K``).

Name:
    ``--name NAME`` names what is read (a dataset, a track2 corpus): the cache is
    ``NAME__<model>.h5`` and the matrices and the report call it NAME.

Citation:
    Z. Ma, M. Chen, H. Zhang, Z. Zheng, W. Chen, X. Li, J. Ye, X. Chen, T. Hain, "EmoBox:
    Multilingual multi-corpus speech emotion recognition toolkit and benchmark",
    Proc. Interspeech 2024. Also cite each corpus you use.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from embedprobe.corpora import cremad, emodb, iemocap, ravdess
from embedprobe.corpora.base import Clip, Manifest
from embedprobe.corpora.common import CorpusReader, canonical_label, check_missing, meta, register
from embedprobe.corpora.manifest import fallback_protocols
from embedprobe.corpora.splits import OUT, TEST, TRAIN, VAL, rng_for, stratified_random
from embedprobe.corpora.synthetic import SyntheticLayout, Writer
from embedprobe.corpora.textfiles import read_json_object, read_jsonl
from embedprobe.errors import BadValueError, CorpusError

FOLD_FILE = re.compile(r"^(?P<ds>.+)_(?P<part>train|valid|test)_(?P<style>fold_?)(?P<fold>\d+)\.jsonl$")
PARTS = {"train": TRAIN, "valid": VAL, "test": TEST}
#: fold-file sets (``..._fold_1.jsonl``, ``..._fold1.jsonl``); the first is taken when both are there
FOLD_STYLES = ("fold_K", "foldK")
#: record fields holding the audio path and the label, in the order they are tried
PATH_FIELDS = ("wav", "audio", "wav_filename")
LABEL_FIELDS = ("emo", "label")

log = logging.getLogger("embedprobe.corpora")


def _first(parsed: Any, key: int | str) -> str | None:
    return None if parsed is None else parsed[key]


SPEAKER_PARSERS: dict[str, Callable[[str], str | None]] = {
    "iemocap": iemocap.speaker_of,
    "cremad": lambda s: _first(cremad.parse_name(s), 0),
    "crema-d": lambda s: _first(cremad.parse_name(s), 0),
    "emodb": lambda s: _first(emodb.parse_name(s), 0),
    "ravdess": lambda s: _first(ravdess.parse_name(s), "actor"),
}


def _key(record: dict[str, Any], repeated: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """The record's ``key``; else its file name without extension (the path, if that name repeats)."""
    if record.get("key"):
        return str(record["key"])
    wav = PurePosixPath(str(record["wav"]))
    return str(wav.with_suffix("")) if wav.stem in repeated else wav.stem


def normalise(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """``record`` with ``wav`` and ``emo`` filled from whichever schema it uses (see the docstring)."""
    wav = next((record[k] for k in PATH_FIELDS if record.get(k) not in (None, "")), None)
    emo = next((record[k] for k in LABEL_FIELDS if record.get(k) not in (None, "")), None)
    if wav is None or emo is None:
        lacks = "an audio path (" + "/".join(PATH_FIELDS) + ")" if wav is None else "a label (" + "/".join(LABEL_FIELDS) + ")"
        raise CorpusError(f"emobox: a record in {path} lacks {lacks}: {record}. "
                          "Fix: use the files of an EmoBox categorical (emotion class) task.")
    return {**record, "wav": wav, "emo": emo}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [normalise(obj, path) for _, obj in read_jsonl(path, "emobox")]


@register
class EmoBox(CorpusReader):
    name = "emobox"
    default_protocol = "emobox"
    nameable = True
    option_defaults: ClassVar[dict[str, Any]] = {
        "seed": 0, "val_fraction": 0.2, "audio_root": "", "use_label_map": True,
        "label_map": {}, "allow_missing": False,
        "dataset": None, "fold_files": None,  # None: absent from caches made before these options
    }
    option_choices: ClassVar[dict[str, tuple[Any, ...]]] = {"fold_files": (None, *FOLD_STYLES)}

    synthetic = SyntheticLayout(n_speakers=8, clips_per_class=3, speakers=(2, 10), max_per_class=60,
                                channel=emodb.EmoDB.synthetic.channel)  # type: ignore[union-attr]

    @classmethod
    def synthesize(cls, w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
        """EmoDB's audio in ``downloads/emodb/wav`` and EmoBox metadata in ``data/emodb``
        (``label_map.json``, ``emodb.jsonl``, ``fold_K/emodb_{train,test}_fold_K.jsonl``, speaker-disjoint
        folds); EmoDB's extra labels. Returns the ``data/emodb`` path.
        """
        audio = Writer(w.root / "downloads" / "emodb", w.channel, w.seed, w.sample_rate, w.duration_s)
        recs = emodb.write_clips(audio, n_speakers, per_class, per_extra)
        data = w.root / "data" / "emodb"
        data.mkdir(parents=True, exist_ok=True)
        (data / "label_map.json").write_text(json.dumps(SYNTH_LABEL_MAP, indent=4))

        def line(r: dict) -> str:
            return json.dumps({
                "key": f"emodb-{r['name']}", "dataset": "emodb", "wav": f"downloads/emodb/wav/{r['name']}.wav",
                "type": "raw", "sample_rate": w.sample_rate, "num_frame": r["length"] * w.sample_rate,
                "task": "category", "length": r["length"], "emo": SYNTH_EMO[r["code"]], "channel": 1,
            }) + "\n"

        (data / "emodb.jsonl").write_text("".join(line(r) for r in recs))
        speakers = sorted({r["speaker"] for r in recs})
        n_folds = max(2, len(speakers) // 4)
        for k in range(1, n_folds + 1):
            test_spk = {s for i, s in enumerate(speakers) if i % n_folds == k - 1}
            fold = data / f"fold_{k}"
            fold.mkdir(exist_ok=True)
            (fold / f"emodb_train_fold_{k}.jsonl").write_text(
                "".join(line(r) for r in recs if r["speaker"] not in test_spk))
            (fold / f"emodb_test_fold_{k}.jsonl").write_text("".join(line(r) for r in recs if r["speaker"] in test_spk))
        return data

    def expected_layout(self) -> str:
        return "EmoBox metadata: fold_K/<dataset>_{train,test}_fold_K.jsonl files or one .jsonl file"

    def _scan(self, root: Path, opts: dict[str, Any]) -> Manifest:
        if not 0.0 <= opts["val_fraction"] < 1.0:
            raise BadValueError("val_fraction", opts["val_fraction"], fix="Use a fraction in [0, 1), e.g. 0.2.")
        folder, fold_files, whole = self._locate(root, opts)
        overrides = opts["label_map"]
        box_map: dict[str, str] = {}
        if opts["use_label_map"] and (folder / "label_map.json").is_file():
            raw = read_json_object(folder / "label_map.json", "emobox")
            box_map = {str(k).strip().lower(): str(v) for k, v in raw.items()}
        records: dict[str, dict[str, Any]] = {}
        membership: dict[str, dict[str, str]] = {}  # fold -> key -> part
        parsed = {f: _read_jsonl(f) for f in [*whole, *(f for _, _, f in fold_files)]}
        repeated = _repeated_names(parsed.values())
        for rows in parsed.values():
            for r in rows:
                records.setdefault(_key(r, repeated), r)
        for fold, part, f in fold_files:
            for r in parsed[f]:
                membership.setdefault(fold, {})[_key(r, repeated)] = part
        if not records:
            raise self.layout_error(root, "no records in the EmoBox jsonl files")
        audio_root = self._audio_root(folder, records, opts["audio_root"])
        clips = []
        for key, r in sorted(records.items()):
            native = str(r["emo"])
            wav = PurePosixPath(str(r["wav"]).replace("\\", "/"))
            if native.strip().lower() in {k.strip().lower() for k in overrides}:
                label = canonical_label(native, overrides)
            else:
                label = canonical_label(box_map.get(native.strip().lower(), native))
            clips.append(Clip(
                id=key, path=str(wav), speaker=self._speaker(r, wav), native_label=native, label=label,
                meta=meta(dataset=r.get("dataset"), length=r.get("length"), sample_rate=r.get("sample_rate"),
                          channel=r.get("channel"), start_time=r.get("start_time"), end_time=r.get("end_time")),
            ))
        usable = check_missing(self.name, audio_root, [c for c in clips if c.label is not None], opts["allow_missing"])
        keep = {c.id for c in usable}
        clips = [c for c in clips if c.label is None or c.id in keep]
        if membership:
            protocols = {"emobox": self._folds(clips, membership, opts)}
        else:
            protocols = fallback_protocols(clips, opts["seed"])
        default = "emobox" if membership else ("speaker" if "speaker" in protocols else "random")
        label_map = {c.native_label: c.label for c in clips}
        return self.manifest(audio_root, clips, protocols, default, label_map, opts)

    def _locate(self, root: Path, opts: dict[str, Any]) -> tuple[Path, list[tuple[str, str, Path]], list[Path]]:
        """(dataset folder, [(fold, part, file)], [whole-dataset files])."""
        if root.is_file():
            if root.suffix != ".jsonl":
                raise self.layout_error(root, "a file that is not .jsonl")
            if not FOLD_FILE.match(root.name):
                return root.parent, [], [root]
            root = root.parent
        folder = root.parent if root.name.startswith("fold_") or re.fullmatch(r"fold\d+", root.name) else root
        found: dict[str, list[tuple[str, str, Path]]] = {}
        for f in sorted({*folder.glob("fold*/*.jsonl"), *folder.glob("*.jsonl")}):
            m = FOLD_FILE.match(f.name)
            if m:
                style = FOLD_STYLES[0] if m.group("style") == "fold_" else FOLD_STYLES[1]
                found.setdefault(style, []).append((m.group("fold"), PARTS[m.group("part")], f))
        fold_files = self._fold_set(folder, found, opts)
        whole = [f for f in sorted(folder.glob("*.jsonl")) if not FOLD_FILE.match(f.name)]
        if opts["dataset"]:
            whole = [self._dataset_file(folder, whole, opts["dataset"])]
        if not fold_files and not whole:
            raise self.layout_error(root, "no EmoBox .jsonl files")
        if not fold_files and len(whole) > 1:
            names = ", ".join(f.name for f in whole)
            raise self.layout_error(root, f"several .jsonl files ({names}) and no folds (a folder of one file "
                                    "per corpus, like EmoBox's track2); read each as its own corpus with "
                                    "--option dataset=NAME --name NAME, or point at one of them")
        return folder, fold_files, whole

    def _fold_set(self, folder: Path, found: dict[str, list[tuple[str, str, Path]]],
                  opts: dict[str, Any]) -> list[tuple[str, str, Path]]:
        """The fold files of one set: the asked one, else ``fold_K`` (the first of FOLD_STYLES) if present."""
        if not found:
            return []
        asked = opts["fold_files"]
        if asked and asked not in found:
            raise BadValueError(f"fold_files for {folder}", asked, sorted(found),
                                fix="This folder holds no fold files of that set.")
        chosen = asked or next(s for s in FOLD_STYLES if s in found)
        if len(found) > 1:
            left = next(s for s in found if s != chosen)
            log.warning("emobox: %s holds two fold-file sets; reading %s (%s) and leaving %s (%s) "
                        "(fold_files=%s reads the other)", folder, chosen, found[chosen][0][2].name, left,
                        found[left][0][2].name, left)
            opts["fold_files"] = chosen  # recorded in the manifest's options
        return found[chosen]

    def _dataset_file(self, folder: Path, whole: list[Path], dataset: str) -> Path:
        want = dataset.strip().lower()
        hits = [f for f in whole if f.stem.lower() == want] or [f for f in whole if f.stem.lower().startswith(want + "_")]
        if len(hits) != 1:
            names = [f.stem.split("_")[0].lower() for f in whole]
            raise BadValueError(f"dataset in {folder}", dataset, names,
                                fix="Name one per-corpus .jsonl file of that folder (case-insensitive).")
        return hits[0]

    def _audio_root(self, folder: Path, records: dict[str, dict[str, Any]], given: str) -> Path:
        probe = [str(r["wav"]) for _, r in sorted(records.items())[:5]]
        candidates = [Path(given).expanduser()] if given else [folder, *list(folder.parents)[:4], Path.cwd()]
        for cand in candidates:
            if any((cand / p).is_file() for p in probe):
                return cand.resolve()
        raise CorpusError(
            f"emobox: none of the audio files listed (e.g. {probe[0]!r}) exist under "
            f"{[str(c) for c in candidates]}. Fix: pass audio_root=<the folder that holds "
            f"{probe[0].split('/')[0]}/>, e.g. your EmoBox checkout."
        )

    @staticmethod
    def _speaker(record: dict[str, Any], wav: PurePosixPath) -> str:
        for k in ("spk", "speaker", "speaker_id"):
            if record.get(k) not in (None, ""):
                return str(record[k])
        parser = SPEAKER_PARSERS.get(str(record.get("dataset", "")).lower())
        return (parser(wav.stem) if parser else None) or "unknown"

    @staticmethod
    def _folds(clips: list[Clip], membership: dict[str, dict[str, str]], opts: dict[str, Any]) -> dict[str, list[str]]:
        out = {}
        for fold in sorted(membership, key=int):
            table = membership[fold]
            parts = [OUT if c.label is None else table.get(c.id, OUT) for c in clips]
            if VAL not in table.values() and opts["val_fraction"] > 0:
                idx = [i for i, p in enumerate(parts) if p == TRAIN]
                sub = stratified_random([clips[i].id for i in idx], [clips[i].label for i in idx],
                                        (1 - opts["val_fraction"], opts["val_fraction"], 0),
                                        rng_for(opts["seed"], f"fold/{fold}"))
                for i, p in zip(idx, sub, strict=True):
                    parts[i] = p
            out[f"fold/{fold}"] = parts
        return out


def _repeated_names(files: Any) -> set[str]:
    """File names (without extension) that two different keyless audio paths share."""
    paths: dict[str, set[str]] = {}
    for rows in files:
        for r in rows:
            if not r.get("key"):
                wav = PurePosixPath(str(r["wav"]))
                paths.setdefault(wav.stem, set()).add(str(wav))
    return {stem for stem, p in paths.items() if len(p) > 1}


# -- synthetic layout (embedprobe.corpora.synthetic.write_corpus) ---------------------------------
SYNTH_EMO = {"W": "anger", "L": "boredem", "E": "disgust", "A": "fear", "F": "happy", "N": "neutral", "T": "sad"}
SYNTH_LABEL_MAP = {"anger": "Angry", "boredem": "Boredom", "disgust": "Disgust", "fear": "Fear",
                   "happy": "Happy", "Neutral": "Neutral", "sad": "Sad"}

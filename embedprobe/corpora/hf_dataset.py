"""Hugging Face datasets: a dataset saved with ``save_to_disk``, or a Hub id when online.

About the corpus:
    Whatever the dataset holds; many SER corpora live on the Hub as ``datasets`` repositories
    (e.g. ``renumics/emodb``, ``mteb/crema-d``). The audio is taken from the Arrow table as the
    encoded bytes or file paths (the ``Audio`` feature with ``decode=False``) and decoded by
    embedprobe's own loader (:mod:`embedprobe.audio.decode`), never by ``datasets``' decoder,
    so results do not depend on its back-end.

Layout read::

    <root>                          # a folder written by Dataset(Dict).save_to_disk:
        dataset_dict.json           #   DatasetDict: {"splits": [...]}, one sub-folder per split
        <split>/state.json, <split>/dataset_info.json, <split>/data-*.arrow
    or  state.json, dataset_info.json, data-*.arrow     # a single Dataset
    or  owner/name                  # a Hub id (needs the network, or the Hugging Face cache)

    Saved folders are read with pyarrow alone; a Hub id needs ``pip install
    'embedprobe[hf-datasets]'``. Columns (names are options, see below): audio (an ``Audio``
    feature, or a string column of paths), label (ClassLabel, string or int), speaker, split,
    id; other columns are ignored.

Audio: a row with embedded bytes is written once to a content-addressed file
``<audio_dir>/<sha256[:2]>/<sha256>.<ext>`` (default ``audio_dir``: ``<root>/.embedprobe-audio``
for a saved folder, ``$EMBEDPROBE_HOME/hf-datasets/<id>`` or the XDG cache's
``embedprobe/hf-datasets/<id>`` for a Hub id); a later scan finds the file and writes nothing.
A row with only a path uses that file (a relative path is taken relative to the root).

Label map:
    Native labels (ClassLabel names, or the values) are matched case-insensitively through
    :data:`~embedprobe.corpora.common.LABEL_SYNONYMS` (anger -> angry, happiness/joy -> happy,
    neutral, sadness -> sad ...); others are kept as native labels and excluded.
    ``label_map="exc=happy,calm=neutral"`` adds or overrides entries.

Split protocols (only four-class clips take part):
    ``given`` (default when the dataset has a test part): the dataset's splits (the sub-folders
        of a DatasetDict, or the values of ``split_column``); train, validation/valid/dev, test.
    ``speaker`` (default otherwise; needs >= 3 known speakers): speakers split 70/15/15, seeded.
    ``random``: seeded random 70/15/15 stratified by class (not speaker-independent).

Options:
    seed (int, 0): seed of ``speaker`` and ``random``.
    audio_column (str, "audio"), label_column (str, "label"; else "emotion"),
    speaker_column (str, "speaker"; else "speaker_id", "client_id"), split_column (str,
    "split"), id_column (str, "id"; else the audio file's stem, else the row number):
        column names; a default that is absent falls back as listed, a name you give must exist,
        "" leaves an optional column (speaker, split, id) unused.
    label_map (dict or "a=b,c=d"): label overrides, see above.
    audio_dir (str, ""): where embedded audio bytes are written (default above).
    allow_missing (bool, False): leave out four-class rows whose audio file is missing.

Citation: cite the corpus the dataset holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from embedprobe.audio.voice import Channel
from embedprobe.corpora.base import Clip, Manifest
from embedprobe.corpora.common import (
    CorpusReader,
    canonical_label,
    check_missing,
    meta,
    register,
    unique_ids,
)
from embedprobe.corpora.manifest import SPLIT_VALUES, fallback_protocols
from embedprobe.corpora.splits import OUT, TEST
from embedprobe.corpora.synthetic import SyntheticLayout, Writer, plan
from embedprobe.errors import CorpusError, MissingDependencyError

EXTRA = "hf-datasets"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
FALLBACK_COLUMNS = {"label_column": ("emotion",), "speaker_column": ("speaker_id", "client_id")}
MAGIC = ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"\xff\xfb", ".mp3"),
         (b"FORM", ".aiff"))

Split = tuple[str, Any, dict[str, list[str] | None]]  # (split name, pyarrow Table, column -> class names)


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.ipc  # noqa: F401
    except ImportError:
        raise MissingDependencyError("pyarrow", EXTRA, "Hugging Face datasets") from None
    return pa


def read_saved(root: Path) -> list[Split]:
    """The splits of a ``save_to_disk`` folder (a DatasetDict or one Dataset), read with pyarrow."""
    pa = _pyarrow()
    if (root / "dataset_dict.json").is_file():
        names = json.loads((root / "dataset_dict.json").read_text())["splits"]
        folders = [(str(n), root / str(n)) for n in names]
    else:
        folders = [("", root)]
    out = []
    for name, folder in folders:
        try:
            state = json.loads((folder / "state.json").read_text())
            info_file = folder / "dataset_info.json"
            info = json.loads(info_file.read_text()) if info_file.is_file() else {}
            tables = []
            for entry in state["_data_files"]:
                with pa.memory_map(str(folder / entry["filename"])) as source:
                    tables.append(pa.ipc.open_stream(source).read_all())
        except (OSError, KeyError, TypeError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise CorpusError(f"hf-dataset: {str(folder)!r} is not a readable save_to_disk folder "
                              f"({type(e).__name__}: {e}). Fix: save it again with save_to_disk.") from None
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        names = {k: v.get("names") for k, v in (info.get("features") or {}).items()
                 if isinstance(v, dict) and v.get("_type") == "ClassLabel"}
        out.append((name or str(state.get("_split") or ""), table, names))
    return out


def read_hub(dataset_id: str) -> list[Split]:
    """The splits of a Hub dataset through ``datasets`` (audio cast to ``decode=False``)."""
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("datasets", EXTRA, f"the Hub dataset {dataset_id!r}") from None
    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as e:  # offline, unknown id, gated: datasets raises many types
        raise CorpusError(
            f"hf-dataset: could not load the Hub dataset {dataset_id!r} ({type(e).__name__}: {str(e)[:160]}). "
            "Fix: go online (offline only datasets already in the Hugging Face cache load), or pass "
            "the folder of a dataset saved with save_to_disk."
        ) from None
    parts = loaded.items() if isinstance(loaded, dict) else [("", loaded)]
    out = []
    for name, ds in parts:
        for col, feature in ds.features.items():
            if type(feature).__name__ == "Audio":
                ds = ds.cast_column(col, datasets.Audio(decode=False))
        names = {c: list(f.names) for c, f in ds.features.items() if type(f).__name__ == "ClassLabel"}
        out.append((str(name), ds.data.table, names))
    return out


def audio_home() -> Path:
    """Where Hub datasets' audio bytes go by default (``$EMBEDPROBE_HOME`` or the XDG cache)."""
    if os.environ.get("EMBEDPROBE_HOME"):
        return Path(os.environ["EMBEDPROBE_HOME"]).expanduser() / "hf-datasets"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "embedprobe" / "hf-datasets"


def materialise(data: bytes, hint: str, folder: Path) -> Path:
    """Write encoded audio ``data`` once to ``folder/<h[:2]>/<h>.<ext>`` (h: its sha256); return the path."""
    digest = hashlib.sha256(data).hexdigest()
    ext = PurePosixPath(hint).suffix.lower() if hint else ""
    if not ext or len(ext) > 6:
        ext = next((e for magic, e in MAGIC if data.startswith(magic)), ".audio")
    path = folder / digest[:2] / f"{digest}{ext}"
    if not (path.is_file() and path.stat().st_size == len(data)):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


@register
class HFDataset(CorpusReader):
    name = "hf-dataset"
    default_protocol = "given"
    nameable = True  # any dataset: --name says which corpus it is
    option_defaults: ClassVar[dict[str, Any]] = {
        "seed": 0, "audio_column": "audio", "label_column": "label", "speaker_column": "speaker",
        "split_column": "split", "id_column": "id", "label_map": {}, "audio_dir": "", "allow_missing": False,
    }
    layout_fix = "pass a folder written by Dataset.save_to_disk (or DatasetDict.save_to_disk), or a Hub id"
    synthetic = SyntheticLayout(n_speakers=6, clips_per_class=3, speakers=(3, 999), max_per_class=999,
                                channel=Channel(-1.0, 90.0, 7000.0, 0.15, 12.0, 36.0, 1.0, 0.0, 0.9))

    def expected_layout(self) -> str:
        return "a folder written by save_to_disk (dataset_dict.json or state.json) or a Hub id owner/name"

    def scan(self, root: str | Path, **options: Any) -> Manifest:
        text = str(root)
        if not Path(text).expanduser().exists() and HUB_ID.match(text):
            opts = self.resolve_options(options)
            folder = Path(opts["audio_dir"]).expanduser() if opts["audio_dir"] else audio_home() / text.replace("/", "--")
            return self._build(read_hub(text), folder.resolve(), folder.resolve(), opts, source=text)
        return super().scan(root, **options)

    def _scan(self, root: Path, opts: dict[str, Any]) -> Manifest:
        if not ((root / "dataset_dict.json").is_file() or (root / "state.json").is_file()):
            raise self.layout_error(root, "no dataset_dict.json or state.json")
        folder = Path(opts["audio_dir"]).expanduser().resolve() if opts["audio_dir"] else root / ".embedprobe-audio"
        return self._build(read_saved(root), root, folder, opts, source=str(root))

    # -- rows -> clips -------------------------------------------------------------------------
    def _column(self, opts: dict[str, Any], option: str, columns: list[str], required: bool) -> str | None:
        wanted = opts[option]
        if not wanted and not required:  # "" turns an optional column off
            return None
        if wanted in columns:
            return wanted
        if wanted == self.option_defaults[option]:  # a default that is absent falls back
            found = next((c for c in FALLBACK_COLUMNS.get(option, ()) if c in columns), None)
            if found or not required:
                return found
        raise CorpusError(f"hf-dataset: the dataset has no column {wanted!r} ({option}); it has "
                          f"{columns}. Fix: pass {option}=<one of those>.")

    def _build(self, splits: list[Split], root: Path, folder: Path, opts: dict[str, Any], source: str) -> Manifest:
        if not splits or all(t.num_rows == 0 for _, t, _ in splits):
            raise CorpusError(f"hf-dataset: {source} holds no rows. Fix: pass a dataset with audio rows.")
        columns = list(dict.fromkeys(c for _, t, _ in splits for c in t.column_names))
        audio = self._column(opts, "audio_column", columns, True)
        label = self._column(opts, "label_column", columns, True)
        speaker = self._column(opts, "speaker_column", columns, False)
        split_col = self._column(opts, "split_column", columns, False)
        id_col = self._column(opts, "id_column", columns, False)
        use_split = split_col is not None or len(splits) > 1 or any(name for name, _, _ in splits)
        clips, parts = [], []
        for name, table, class_names in splits:
            rows = table.select([c for c in (audio, label, speaker, split_col, id_col) if c]).to_pylist()
            for i, row in enumerate(rows):
                native = self._native(row[label], class_names.get(label))
                rel, hint = self._audio(row[audio], root, folder, source, i)
                part = row[split_col] if split_col else name
                cid = str(row[id_col]) if id_col and row[id_col] not in (None, "") else ""
                clips.append(Clip(
                    id=cid or f"{name or 'row'}-{i:06d}", path=rel,
                    speaker=str(row[speaker]) if speaker and row[speaker] not in (None, "") else "unknown",
                    native_label=native, label=canonical_label(native, opts["label_map"]),
                    meta=meta(split=part or None, file=hint or None)))
                parts.append(self._part(part, source) if use_split else OUT)
        if not id_col:  # ids from the audio files' stems when those are unique
            stems = [PurePosixPath(dict(c.meta).get("file", "")).stem for c in clips]
            if all(stems) and len(set(stems)) == len(stems):
                clips = [Clip(s, c.path, c.speaker, c.native_label, c.label, c.meta)
                         for s, c in zip(stems, clips, strict=True)]
        unique_ids(self.name, clips)
        order = sorted(range(len(clips)), key=lambda k: clips[k].id)
        clips, parts = [clips[k] for k in order], [parts[k] for k in order]
        usable = {c.id for c in check_missing(self.name, root, [c for c in clips if c.label is not None],
                                              opts["allow_missing"])}
        kept = [k for k, c in enumerate(clips) if c.label is None or c.id in usable]
        clips, parts = [clips[k] for k in kept], [parts[k] for k in kept]
        protocols: dict[str, dict[str, list[str]]] = {}
        given = [OUT if c.label is None else p for c, p in zip(clips, parts, strict=True)]
        if TEST in given:
            protocols["given"] = {"given": given}
        protocols.update(fallback_protocols(clips, opts["seed"]))
        default = "given" if "given" in protocols else ("speaker" if "speaker" in protocols else "random")
        label_map = {c.native_label: c.label for c in clips}
        m = self.manifest(root, clips, protocols, default, label_map, opts)
        m.options["source"] = source
        return m

    @staticmethod
    def _native(value: Any, names: list[str] | None) -> str:
        if names is not None and isinstance(value, int) and 0 <= value < len(names):
            return str(names[value])
        return "" if value is None else str(value)

    @staticmethod
    def _audio(value: Any, root: Path, folder: Path, source: str, row: int) -> tuple[str, str]:
        """(path for the manifest, the stored file name) of one audio cell."""
        if isinstance(value, dict):
            data, hint = value.get("bytes"), value.get("path") or ""
        else:
            data, hint = None, "" if value is None else str(value)
        if data:
            path = materialise(bytes(data), hint, folder)
            return (path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)), hint
        if not hint:
            raise CorpusError(f"hf-dataset: row {row} of {source} has neither audio bytes nor a path. "
                              "Fix: drop that row or pass the right audio_column.")
        return PurePosixPath(hint.replace("\\", "/")).as_posix(), hint

    @staticmethod
    def _part(value: Any, source: str) -> str:
        try:
            return SPLIT_VALUES[str(value or "").strip().lower()]
        except KeyError:
            raise CorpusError(
                f"hf-dataset: {source} has the split {value!r}; expected one of "
                f"{sorted(k for k in SPLIT_VALUES if k)}. Fix: pass split_column=<a column with those "
                "values>, or save the dataset with train/validation/test splits."
            ) from None

    # -- synthetic layout (embedprobe.corpora.synthetic.write_corpus) -----------------------------
    @classmethod
    def synthesize(cls, w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
        """``dataset/``: a DatasetDict (train/validation/test by speaker) with embedded wav bytes,
        ClassLabel emotion names (anger, happiness, neutral, sadness, fear), a speaker column; extra
        label fear. Written with pyarrow in ``save_to_disk``'s format. Returns the ``dataset`` path.
        """
        pa = _pyarrow()
        names = ["anger", "happiness", "neutral", "sadness", "fear"]
        classes = {"anger": "angry", "happiness": "happy", "neutral": "neutral", "sadness": "sad"}
        rows: dict[str, list[dict[str, Any]]] = {"train": [], "validation": [], "test": []}
        for s in range(1, n_speakers + 1):
            spk, gender = f"sp{s:03d}", "FM"[s % 2]
            split = "test" if s == 1 else ("validation" if s == 2 else "train")
            for i, (code, key) in enumerate(plan(classes, {"fear": "fear"}, per_class, per_extra, w.rng(f"plan:{spk}"))):
                rel = f"tmp/{spk}_{i:03d}.wav"
                w.write(rel, key, spk, gender)
                data = (w.root / rel).read_bytes()
                (w.root / rel).unlink()
                rows[split].append({"audio": {"bytes": data, "path": f"{spk}_{i:03d}.wav"},
                                    "label": names.index(code), "speaker": spk})
        (w.root / "tmp").rmdir()
        features = {"audio": {"decode": False, "_type": "Audio"},
                    "label": {"names": names, "_type": "ClassLabel"},
                    "speaker": {"dtype": "string", "_type": "Value"}}
        schema = pa.schema([("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                            ("label", pa.int64()), ("speaker", pa.string())],
                           metadata={"huggingface": json.dumps({"info": {"features": features}})})
        out = w.root / "dataset"
        for split, items in rows.items():
            folder = out / split
            folder.mkdir(parents=True, exist_ok=True)
            with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink:
                with pa.ipc.new_stream(sink, schema) as writer:
                    writer.write_table(pa.Table.from_pylist(items, schema=schema))
            (folder / "dataset_info.json").write_text(json.dumps({"features": features}, indent=2))
            (folder / "state.json").write_text(json.dumps({
                "_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_fingerprint": f"synthetic-{split}",
                "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                "_output_all_columns": False, "_split": split}, indent=2))
        (out / "dataset_dict.json").write_text(json.dumps({"splits": list(rows)}))
        return out

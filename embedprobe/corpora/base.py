"""Clips, manifests and the corpus-reader contract.

A ``Manifest`` is the list of clips of one corpus scan plus, for every split protocol, one
column saying which part of that fold each clip belongs to (``train``, ``val``, ``test`` or
``""`` for excluded). It is written into every cache so a result can name exactly the clips
it used.

Every manifest whose labelled clips all have known speakers (at least 3) also offers
``loso``, leave one speaker out (:func:`embedprobe.corpora.splits.loso_folds`). It is derived
from the stored clips, labels and seed option when asked for (:meth:`Manifest.with_protocol`)
rather than stored, so a cache written before it existed offers it too, and scanning again
gives the same manifest as before (caches resume without a mismatch).

:data:`CORPORA` holds every reader: each reader module registers its class with
:func:`register`, and the registry imports every module of ``embedprobe.corpora`` the first
time it is asked for a name, so a new corpus is one new module.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from embedprobe.corpora.splits import LOSO, loso_folds, loso_speakers
from embedprobe.errors import BadValueError
from embedprobe.registry import Registry

CANONICAL_LABELS: tuple[str, ...] = ("angry", "happy", "neutral", "sad")
SPLIT_PARTS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Clip:
    """One utterance.

    Attributes:
        id: unique, stable id within the corpus (usually the file stem).
        path: file path relative to the corpus root (POSIX separators).
        speaker: speaker id (corpus-prefixed ids are not needed; ids are per corpus).
        native_label: the corpus's own label, kept even when it is not one of the four classes.
        label: canonical label (one of ``CANONICAL_LABELS``) or ``None`` if excluded from 4-class work.
        meta: extra per-clip fields (session, gender, sentence...) as sorted pairs.
    """

    id: str
    path: str
    speaker: str
    native_label: str
    label: str | None
    meta: tuple[tuple[str, str], ...] = ()


@dataclass
class Manifest:
    """The clips of one corpus and their split assignments.

    ``splits`` maps a fold key (``"random"``, ``"speaker/03"``, ``"session/2"``,
    ``"official"`` ...) to a list parallel to ``clips`` of ``"train"|"val"|"test"|""``.
    ``protocols`` maps a protocol name to its fold keys, e.g.
    ``{"speaker": ["speaker/01", ..., "speaker/10"], "random": ["random"]}``.
    """

    corpus: str
    root: str
    clips: list[Clip]
    splits: dict[str, list[str]] = field(default_factory=dict)
    protocols: dict[str, list[str]] = field(default_factory=dict)
    default_protocol: str = ""
    label_map: dict[str, str | None] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    reader: str = ""  # the reader that made it, when ``corpus`` is a user-given name (``--name``)

    # -- queries -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.clips)

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.clips]

    def labelled(self) -> list[Clip]:
        """Clips with a canonical label (the 4-class set)."""
        return [c for c in self.clips if c.label is not None]

    def excluded_counts(self) -> dict[str, int]:
        """Native labels left out of 4-class work, with counts."""
        out: dict[str, int] = {}
        for c in self.clips:
            if c.label is None:
                out[c.native_label] = out.get(c.native_label, 0) + 1
        return dict(sorted(out.items()))

    def part(self, fold: str, part: str) -> list[Clip]:
        """Clips of ``part`` (train/val/test) in fold ``fold``."""
        if fold not in self.splits:
            raise BadValueError("split fold", fold, self.splits)
        return [c for c, p in zip(self.clips, self.splits[fold], strict=True) if p == part]

    def folds(self, protocol: str | None = None) -> list[str]:
        """The fold keys of ``protocol`` (default: the default protocol); see :meth:`with_protocol`."""
        protocol = protocol or self.default_protocol
        if protocol not in self.protocols:
            offered = list(self.protocols) + ([LOSO] if self.offers_loso() else [])
            fix = ("loso needs a known speaker id for every labelled clip and at least 3 speakers; "
                   "use one of the others." if protocol == LOSO else "")
            raise BadValueError(f"split protocol for {self.corpus}", protocol, offered, fix=fix)
        return self.protocols[protocol]

    def offers_loso(self) -> bool:
        """Whether leave-one-speaker-out can be built (known speakers, at least 3)."""
        return loso_speakers([c.speaker for c in self.clips], [c.label for c in self.clips]) is not None

    def with_protocol(self, protocol: str | None) -> Manifest:
        """This manifest, or a copy with ``loso`` added when it is asked for and not stored.

        The folds depend only on the clips' speakers and labels and the ``seed`` option (0 when
        the reader has none), so the same cache gives the same folds on every machine.
        """
        if protocol != LOSO or LOSO in self.protocols or not self.offers_loso():
            return self
        seed = int(self.options.get("seed", 0) or 0)
        folds = loso_folds([c.speaker for c in self.clips], [c.label for c in self.clips], seed)
        return replace(self, splits={**self.splits, **folds}, protocols={**self.protocols, LOSO: list(folds)})

    # -- serialisation ---------------------------------------------------------------------------
    @property
    def reader_name(self) -> str:
        """The reader's registered name (``corpus`` itself unless the corpus was given a name)."""
        return self.reader or self.corpus

    def header(self) -> dict[str, Any]:
        """Everything except the per-clip table, as JSON-able data.

        ``reader`` is written only for a named corpus, so unnamed manifests serialise exactly
        as before names existed (and their fingerprints stay the same).
        """
        out = {
            "corpus": self.corpus,
            "root": self.root,
            "protocols": self.protocols,
            "default_protocol": self.default_protocol,
            "label_map": self.label_map,
            "options": self.options,
        }
        if self.reader and self.reader != self.corpus:
            out["reader"] = self.reader
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        fold_keys = list(self.splits)
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["id", "path", "speaker", "native_label", "label", "meta"] + [f"split:{k}" for k in fold_keys])
        for i, c in enumerate(self.clips):
            w.writerow(
                [c.id, c.path, c.speaker, c.native_label, c.label or "", json.dumps(dict(c.meta))]
                + [self.splits[k][i] for k in fold_keys]
            )
        return buf.getvalue()

    def to_json(self) -> str:
        """Header and table in one JSON string (what caches and results store)."""
        return json.dumps({"header": self.header(), "csv": self.to_csv()})

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        blob = json.loads(text)
        return cls.from_csv(blob["csv"], **blob["header"])

    @classmethod
    def from_csv(cls, text: str, **header: Any) -> Manifest:
        rows = list(csv.reader(io.StringIO(text)))
        head, body = rows[0], rows[1:]
        split_cols = [(i, h[len("split:"):]) for i, h in enumerate(head) if h.startswith("split:")]
        clips = [
            Clip(
                id=r[0], path=r[1], speaker=r[2], native_label=r[3], label=r[4] or None,
                meta=tuple(sorted(json.loads(r[5]).items())) if r[5] else (),
            )
            for r in body
        ]
        splits = {k: [r[i] for r in body] for i, k in split_cols}
        return cls(clips=clips, splits=splits, **header)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        return cls.from_json(Path(path).read_text())


class Corpus(ABC):
    """A reader for one corpus's official on-disk layout.

    Subclasses set ``name`` and document, in the module docstring, the layout they read,
    their label map and their split protocols. ``scan`` never opens audio; it only lists
    files and reads label files.
    """

    name: str = ""
    default_protocol: str = ""
    #: Whether ``--name`` may name what this reader reads: ``True`` for readers that can hold
    #: different corpora (``manifest``, ``emobox``), ``False`` for readers of one fixed corpus,
    #: or the name of the option that makes a subset worth its own name (``"gender"`` for EmoDB).
    nameable: bool | str = False

    @abstractmethod
    def scan(self, root: str | Path, *, corpus_name: str | None = None, **options: Any) -> Manifest:
        """List the clips under ``root`` and compute every split protocol (deterministic, seeded).

        ``corpus_name`` names the corpus (its caches, matrices and results) instead of the reader.
        """


#: The one corpus registry (re-exported as ``embedprobe.corpora.CORPORA``); looking a name up
#: imports every module of ``embedprobe.corpora`` (and the external plugins) once.
def describe_corpus(name: str, cls: type) -> dict[str, str]:
    """One ``embedprobe list corpora`` row: name, default protocol, whether ``--name`` applies (named), the
    module's first doc line."""
    module = inspect.getmodule(cls)
    doc = (module.__doc__ or cls.__doc__ or "").strip().splitlines()
    nameable = getattr(cls, "nameable", False)
    named = "yes" if nameable is True else (f"with --option {nameable}" if nameable else "no")
    return {"name": name, "default_protocol": getattr(cls, "default_protocol", ""), "named": named,
            "about": doc[0] if doc else ""}


CORPORA: Registry[type[Corpus]] = Registry("corpus", "corpora", package="embedprobe.corpora",
                                           describe=describe_corpus, about="corpus readers (--corpus NAME)")


def register(cls: type[Corpus]) -> type[Corpus]:
    """Class decorator adding a reader to :data:`CORPORA` under its ``name``."""
    CORPORA.add(cls.name, cls)
    return cls

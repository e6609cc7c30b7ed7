"""What every corpus reader shares: option handling, root checks, label synonyms, manifest assembly.

A reader subclasses :class:`CorpusReader`, declares its options with defaults in
``option_defaults`` (every reader has ``seed``), and implements ``_scan(root, opts)``.
``scan()`` validates and coerces the options (so the CLI can pass ``"true"`` or ``"3"``),
checks the root, and records the resolved options in the manifest.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from embedprobe.common.checks import name_for_path
from embedprobe.corpora.base import CANONICAL_LABELS, CORPORA, Clip, Corpus, Manifest, register
from embedprobe.corpora.synthetic import SyntheticLayout, Writer
from embedprobe.errors import BadValueError, CorpusError

__all__ = [
    "CORPORA", "LABEL_SYNONYMS", "CorpusReader", "canonical_label", "check_corpus_name", "check_missing",
    "describe", "meta", "parse_label_map", "register", "unique_ids",
]

log = logging.getLogger("embedprobe.corpora")

#: Case-insensitive label names understood by the generic readers (``manifest``, ``emobox``).
#: Anything else is kept as ``native_label`` with ``label=None``. Pass ``label_map={...}`` to
#: a reader to add or override entries (e.g. ``{"exc": "happy", "calm": "neutral"}``).
LABEL_SYNONYMS: dict[str, str] = {
    **dict.fromkeys(["ang", "anger", "angry", "annoyed", "mad"], "angry"),
    **dict.fromkeys(["hap", "happy", "happiness", "joy", "joyful", "glad"], "happy"),
    **dict.fromkeys(["neu", "neutral", "neutrality"], "neutral"),
    **dict.fromkeys(["sad", "sadness", "sorrow", "unhappy"], "sad"),
}

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def canonical_label(native: str, overrides: Mapping[str, str | None] | None = None) -> str | None:
    """Map a free-text label to a canonical class (or ``None``) via :data:`LABEL_SYNONYMS`.

    Example:
        >>> canonical_label("Sadness"), canonical_label("fear"), canonical_label("exc", {"exc": "happy"})
        ('sad', None, 'happy')
    """
    key = native.strip().lower()
    if overrides:
        low = {str(k).strip().lower(): v for k, v in overrides.items()}
        if key in low:
            value = low[key]
            if value is not None and value not in CANONICAL_LABELS:
                raise BadValueError("label_map target", value, CANONICAL_LABELS,
                                    fix="Map each label to one of the canonical classes or None.")
            return value
    return LABEL_SYNONYMS.get(key)


def parse_label_map(value: Any) -> dict[str, str | None]:
    """``{"exc": "happy"}`` or ``"exc=happy,calm=neutral,fea=none"`` -> dict (checked)."""
    if not value:
        return {}
    if isinstance(value, str):
        pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise BadValueError("label_map", value, fix="Write it as 'native=canonical,native=canonical'.")
        value = {k.strip(): v.strip() for k, v in pairs}
    out: dict[str, str | None] = {}
    for k, v in dict(value).items():
        target = None if v is None or str(v).strip().lower() in ("none", "") else str(v).strip().lower()
        if target is not None and target not in CANONICAL_LABELS:
            raise BadValueError(f"label_map target for {k!r}", v, list(CANONICAL_LABELS) + ["none"])
        out[str(k)] = target
    return out


def _coerce(name: str, value: Any, default: Any) -> Any:
    if default is None or value is None or isinstance(default, dict | list | tuple):
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise BadValueError(f"value for option {name!r}", value, ["true", "false"])
    try:
        return type(default)(value)
    except (TypeError, ValueError):
        raise BadValueError(f"value for option {name!r}", value,
                            fix=f"Give a {type(default).__name__}, e.g. {default!r}.") from None


class CorpusReader(Corpus):
    """Base class of the built-in readers.

    Attributes:
        option_defaults: option name -> default; ``scan`` rejects any other name.
        option_choices: option name -> allowed values, for options with a fixed set.
        marker: a file or folder name that sits at the root of a valid corpus; used to
            point users at a nested copy (e.g. ``Session1``).
        layout_fix: the fix named by layout errors (readers of user-made files, not a release).
        synthetic: the reader's fake-corpus layout for tests and demos (default sizes, allowed
            sizes, recording channel), or ``None`` when it has none. A reader that sets it
            implements :meth:`synthesize`; ``embedprobe.corpora.synthetic.write_corpus(name,
            root)`` then writes its layout, and the contract tests cover it.
    """

    option_defaults: ClassVar[dict[str, Any]] = {"seed": 0}
    option_choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    marker: ClassVar[str] = ""
    layout_fix: ClassVar[str] = ""  # the fix of layout errors, when not "point the root at the release"
    synthetic: ClassVar[SyntheticLayout | None] = None

    @classmethod
    def synthesize(cls, w: Writer, n_speakers: int, per_class: int, per_extra: int) -> Path:
        """Write a fake corpus in this reader's layout with ``w``; return the path to ``scan``.

        The first paragraph of the docstring says what is written (files, extra labels); it
        is the reader's line in ``embedprobe.corpora.synthetic.layout_table()``.

        Args:
            w: renders one clip per ``w.write(relative_path, prosody_key, speaker, gender)``
                (seeded by the path, so the same arguments give identical files).
            n_speakers: speakers (checked against ``synthetic.speakers``); half women, half men.
            per_class: clips per speaker of each of angry / happy / neutral / sad.
            per_extra: clips per speaker of each label outside the four classes.
        """
        raise NotImplementedError(f"corpus {cls.name!r} has no synthetic layout")

    def resolve_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``options``, type-coerced and checked."""
        unknown = [k for k in options if k not in self.option_defaults]
        if unknown:
            raise BadValueError(f"option for corpus {self.name!r}", unknown[0], self.option_defaults,
                                fix="See the reader's module docstring for what each option does.")
        opts = dict(self.option_defaults)
        for k, v in options.items():
            opts[k] = _coerce(k, v, self.option_defaults[k])
        if opts["seed"] < 0:
            raise BadValueError(f"seed for corpus {self.name!r}", opts["seed"], fix="Use a non-negative integer.")
        if "label_map" in opts:
            opts["label_map"] = parse_label_map(opts["label_map"])
        for k, allowed in self.option_choices.items():
            if opts[k] not in allowed:
                raise BadValueError(f"value for option {k!r} of corpus {self.name!r}", opts[k], allowed)
        return opts

    def scan(self, root: str | Path, *, corpus_name: str | None = None, **options: Any) -> Manifest:
        opts = self.resolve_options(options)
        if corpus_name:
            check_corpus_name(type(self), corpus_name, opts)
        path = Path(root).expanduser()
        if not path.exists():
            raise CorpusError(
                f"{self.name}: the corpus root {str(path)!r} does not exist. "
                f"Expected {self.expected_layout()}. Fix: pass the path that holds it."
            )
        manifest = self._scan(path.resolve(), opts)
        if corpus_name and corpus_name != self.name:
            manifest.corpus, manifest.reader = corpus_name, self.name
        log.info("%s", describe(manifest))
        return manifest

    def expected_layout(self) -> str:
        """One phrase naming what must be found at the root (used in error messages)."""
        return "the corpus's official layout"

    @abstractmethod
    def _scan(self, root: Path, opts: dict[str, Any]) -> Manifest:
        """Read the corpus at the checked ``root`` with resolved options ``opts``."""

    # -- helpers for subclasses --------------------------------------------------------------
    def layout_error(self, root: Path, problem: str) -> CorpusError:
        """A CorpusError naming the root and the layout; points at a nested copy when there is one."""
        fix = self.layout_fix or f"point the {self.name} root at the folder that holds it (the unpacked official release)"
        if self.marker and root.is_dir():
            found = sorted(root.glob(f"*/{self.marker}")) or sorted(root.glob(f"*/*/{self.marker}"))
            if found:
                fix = f"use {str(found[0].parent)!r} as the root (it has {self.marker})"
        return CorpusError(f"{self.name}: {problem} under {str(root)!r}. Expected {self.expected_layout()}. Fix: {fix}.")

    def sorted_clips(self, root: Path, clips: list[Clip], odd: list[str], *, like: str,
                     none: str) -> list[Clip]:
        """``clips`` sorted by id, after a warning naming the ``odd`` wav files not named ``like``.

        Raises:
            CorpusError: there are no clips; ``none`` says what was not found under ``root``.
        """
        if odd:
            log.warning("%s: ignored %d wav files not named like %s (e.g. %s)", self.name, len(odd), like,
                        odd[0])
        if not clips:
            raise self.layout_error(root, none)
        return sorted(clips, key=lambda c: c.id)

    def manifest(
        self,
        root: Path,
        clips: Sequence[Clip],
        protocols: Mapping[str, Mapping[str, list[str]]],
        default_protocol: str,
        label_map: Mapping[str, str | None],
        opts: Mapping[str, Any],
    ) -> Manifest:
        """Assemble a manifest; ``protocols`` maps protocol -> {fold key -> parts per clip}."""
        splits: dict[str, list[str]] = {}
        proto_keys: dict[str, list[str]] = {}
        for proto, folds in protocols.items():
            if not folds:
                continue
            proto_keys[proto] = list(folds)
            for key, parts in folds.items():
                if len(parts) != len(clips):
                    raise RuntimeError(f"split {key} has {len(parts)} entries for {len(clips)} clips")
                splits[key] = list(parts)
        if default_protocol not in proto_keys and proto_keys:
            default_protocol = next(iter(proto_keys))
        return Manifest(
            corpus=self.name,
            root=str(root),
            clips=list(clips),
            splits=splits,
            protocols=proto_keys,
            default_protocol=default_protocol,
            label_map=dict(sorted(label_map.items())),
            options=dict(opts),
        )


def check_corpus_name(reader: type[Corpus], name: str, options: Mapping[str, Any] | None = None) -> str:
    """Check ``--name NAME`` for ``reader``: a safe file-name part, allowed by the reader, no clash.

    The name becomes the cache file's first part (``<name>__<model>.h5``), the corpus's name in
    ``probe --train/--test``, the matrices, the results and the report.

    Raises:
        BadValueError: the name cannot be a file name, holds ``__`` (the cache-name separator),
            is another reader's name, or the reader reads one fixed corpus.
    """
    name_for_path("corpus name (--name)", name)
    if "__" in name:
        raise BadValueError("corpus name (--name)", name, fix="'__' separates the corpus from the model in "
                            "cache file names; use a single '_' or '-' (e.g. 'emodb-women').")
    if name == reader.name:
        return name
    allowed = reader.nameable
    if isinstance(allowed, str) and not (options or {}).get(allowed):
        raise BadValueError(f"--name for corpus {reader.name!r}", name, fix=f"{reader.name} is one fixed corpus; "
                            f"a name is only for a subset chosen with --option {allowed}=VALUE.")
    if not allowed:
        raise BadValueError(f"--name for corpus {reader.name!r}", name, fix=f"{reader.name} reads one fixed corpus, "
                            "which is always called by the reader's name; drop --name.")
    if name in CORPORA.names():
        raise BadValueError("corpus name (--name)", name, fix=f"{name!r} is the name of another corpus reader, whose "
                            "caches it would mix with; choose another (e.g. 'my-" + name + "').")
    return name


def check_missing(name: str, root: Path, clips: list[Clip], allow_missing: bool) -> list[Clip]:
    """Handle labelled clips whose audio file is absent.

    If every clip is missing the root is wrong: ``CorpusError``. Otherwise the missing clips
    are kept (extraction records each as a one-line "file not found" error in the cache and
    goes on) unless ``allow_missing`` asks to leave them out of the manifest altogether.
    """
    missing = [c for c in clips if not (root / c.path).is_file()]
    if not missing:
        return clips
    if len(missing) == len(clips):
        examples = ", ".join(c.path for c in missing[:3])
        raise CorpusError(
            f"{name}: none of the {len(clips)} labelled clips has an audio file under "
            f"{str(root)!r} (e.g. {examples}). Fix: "
            + ("correct the path column (relative to the manifest's folder, or absolute)." if name == "manifest"
               else "unpack the audio of the full release there, or pass the folder that holds it as the root.")
        )
    if not allow_missing:
        log.warning("%s: %d of %d labelled clips have no audio file (e.g. %s); extraction will "
                    "record them as errors (allow_missing=true leaves them out)",
                    name, len(missing), len(clips), missing[0].path)
        return clips
    log.warning("%s: leaving out %d clips whose audio is missing", name, len(missing))
    gone = {c.id for c in missing}
    return [c for c in clips if c.id not in gone]


def unique_ids(name: str, clips: Iterable[Clip]) -> None:
    seen: dict[str, str] = {}
    for c in clips:
        if c.id in seen:
            raise CorpusError(f"{name}: clip id {c.id!r} appears twice ({seen[c.id]} and {c.path}). "
                              "Fix: give every clip a unique id (an 'id' column) or a unique file name.")
        seen[c.id] = c.path


def meta(**fields: object) -> tuple[tuple[str, str], ...]:
    """Clip.meta from keyword fields (``None`` values are dropped)."""
    return tuple(sorted((k, str(v)) for k, v in fields.items() if v is not None))


def describe(manifest: Manifest) -> str:
    """A short human summary: classes, speakers, exclusions, default protocol sizes."""
    counts: dict[str, int] = {}
    for c in manifest.clips:
        if c.label is not None:
            counts[c.label] = counts.get(c.label, 0) + 1
    speakers = len({c.speaker for c in manifest.clips})
    excl = manifest.excluded_counts()
    lines = [
        f"{manifest.corpus}: {len(manifest)} clips, {speakers} speakers, "
        f"{sum(counts.values())} in 4 classes ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})",
        f"  excluded from 4-class work: {sum(excl.values())}"
        + (f" ({', '.join(f'{k} {v}' for k, v in excl.items())})" if excl else ""),
    ]
    for proto, folds in manifest.protocols.items():
        first = manifest.splits[folds[0]]
        sizes = "/".join(str(sum(p == part for p in first)) for part in ("train", "val", "test"))
        mark = " (default)" if proto == manifest.default_protocol else ""
        lines.append(f"  protocol {proto}{mark}: {len(folds)} fold(s); {folds[0]} train/val/test {sizes}")
    if "loso" not in manifest.protocols and manifest.offers_loso():
        n = len({c.speaker for c in manifest.labelled()})
        lines.append(f"  protocol loso: {n} fold(s), one per speaker (derived when probed: --protocol "
                     f"{manifest.corpus}=loso)")
    return "\n".join(lines)

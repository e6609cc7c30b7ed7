"""Corpus readers: one module per corpus, one registry, one entry point.

Example:
    >>> from embedprobe.corpora import CORPORA, scan
    >>> {'crema-d', 'emobox', 'emodb', 'iemocap', 'manifest', 'msp-podcast', 'ravdess'} <= set(CORPORA)
    True
    >>> m = scan("emodb", "../shared/data/emodb")             # doctest: +SKIP
    >>> m.folds()[:2], len(m.part("speaker/03", "test"))      # doctest: +SKIP
    (['speaker/03', 'speaker/08'], 39)

Each reader's module docstring ("About the corpus") documents the on-disk layout it reads,
its label map to the four canonical classes, its split protocols and the citation; its class
also declares its synthetic layout (``synthetic`` and ``synthesize``, written by
:func:`embedprobe.corpora.synthetic.write_corpus`).
Add a corpus: write one module in this package with a ``@register``-ed :class:`CorpusReader`
subclass. :data:`CORPORA` imports every module of the package on its first lookup (and the
external plugins, see :mod:`embedprobe.registry`), so nothing else needs an edit; see
"Worked example: a corpus" in docs/DEVELOPING.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedprobe.corpora.base import CANONICAL_LABELS, CORPORA, SPLIT_PARTS, Clip, Corpus, Manifest
from embedprobe.corpora.common import (
    LABEL_SYNONYMS,
    CorpusReader,
    canonical_label,
    describe,
)

__all__ = [
    "CANONICAL_LABELS", "CORPORA", "LABEL_SYNONYMS", "SPLIT_PARTS", "Clip", "Corpus", "CorpusReader",
    "Manifest", "canonical_label", "describe", "get_corpus", "scan",
]


def get_corpus(name: str) -> Corpus:
    """A reader instance by registered name (unknown names list the valid ones)."""
    return CORPORA.get(name)()


def scan(name: str, root: str | Path, *, corpus_name: str | None = None, **options: Any) -> Manifest:
    """Scan the corpus ``name`` at ``root`` and compute all its split protocols.

    Logs (logger ``embedprobe.corpora``, level INFO) a summary that includes how many clips
    are excluded from 4-class work and which native labels they carry; the same numbers are
    in ``manifest.excluded_counts()`` and :func:`describe` gives the text.

    Args:
        name: registered corpus name (see ``CORPORA.names()``).
        root: corpus root as documented by the reader.
        corpus_name: the corpus's own name (``--name``) for readers that can hold different
            corpora (``manifest``, ``emobox``; see ``Corpus.nameable``); default: the reader's name.
        **options: reader options (``seed`` and the reader's own; strings are coerced).

    Returns:
        The manifest with ``splits``, ``protocols`` and ``default_protocol`` filled.
    """
    if corpus_name:
        return get_corpus(name).scan(root, corpus_name=corpus_name, **options)
    return get_corpus(name).scan(root, **options)

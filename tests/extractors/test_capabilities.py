"""Extractor capabilities are class attributes (``Extractor.takes_precision``, ``replicate_on_cpu`` ...).

The pipeline reads them instead of inspecting signatures; these tests check, for every
registered family, that the declarations say what the classes do, and that ``extract`` acts
on them.
"""

from __future__ import annotations

import inspect

import pytest

from embedprobe.errors import BadValueError
from embedprobe.extractors import EXTRACTORS
from embedprobe.extractors.base import Extractor
from embedprobe.extractors.precision import PRECISIONS
from embedprobe.pipeline.extract import ExtractConfig, _create

CLASSES = sorted({entry.cls for _, entry in EXTRACTORS.items()}, key=lambda c: c.__qualname__)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__qualname__)
def test_takes_precision_matches_the_constructor(cls):
    takes = "precision" in inspect.signature(cls.__init__).parameters
    assert cls.takes_precision is takes, f"{cls.__qualname__}.takes_precision should be {takes}"
    if takes:
        assert all(cls.check_precision(p) == p for p in PRECISIONS)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__qualname__)
def test_capabilities_are_plain_class_attributes(cls):
    assert issubclass(cls, Extractor)
    for attr, kind in (("takes_precision", bool), ("replicate_on_cpu", bool), ("uses_clip_stats", bool),
                       ("trust_pickle", bool), ("chunk_context_s", tuple)):
        assert isinstance(getattr(cls, attr), kind), (cls.__qualname__, attr)


def test_extract_passes_precision_only_to_families_that_take_it():
    fast = _create(ExtractConfig(corpus="emodb", root=".", out=".", model="wavlm-base", precision="fp32"))
    assert fast.takes_precision and fast.requested_precision == "fp32"
    plain = _create(ExtractConfig(corpus="emodb", root=".", out=".", model="logmel-128", precision="auto"))
    assert not plain.takes_precision
    with pytest.raises(BadValueError, match="no reduced-precision path"):
        _create(ExtractConfig(corpus="emodb", root=".", out=".", model="logmel-128", precision="bf16"))

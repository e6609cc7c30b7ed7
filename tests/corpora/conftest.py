"""Small synthetic corpora written once per test session (about 3 s of CPU in total)."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedprobe.corpora.synthetic import DEFAULTS, synthetic_names, write_corpus

#: name -> (n_speakers, clips_per_class) used by the reader tests (the reader-specific tests
#: count on these); any other corpus with a synthetic layout uses its defaults, 2 clips per class
SIZES = {
    "iemocap": (10, 2),
    "crema-d": (8, 3),
    "msp-podcast": (8, 2),
    "emodb": (10, 2),
    "ravdess": (8, 2),
    "manifest": (6, 2),
    "emobox": (8, 2),
}


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> path to scan, for every synthetic layout (short clips to keep it fast)."""
    out = {}
    for name in synthetic_names():
        n_spk, cpc = SIZES.get(name, (DEFAULTS[name][0], 2))
        root = tmp_path_factory.mktemp(name.replace("-", ""))
        out[name] = write_corpus(name, root, n_speakers=n_spk, clips_per_class=cpc, duration_s=(0.4, 0.8))
    return out

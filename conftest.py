"""Repository-wide pytest set-up: which files ``--doctest-modules`` imports.

``pyproject.toml`` runs the ``>>>`` examples of ``embedprobe/`` with the tests
(``testpaths = ["tests", "embedprobe"]``, ``--doctest-modules``). Collecting doctests imports
every module it is given, so a module with no example (and every helper script under
``tests/``, e.g. the golden-file generators) is left out here: it has nothing to run, and
importing it would only cost time (torch, transformers) or run a script. Test files
(``test_*.py``) and conftests are collected as usual.

Examples that need the network, model weights, big data or ``../shared/data`` carry
``# doctest: +SKIP`` and a ``# SKIP:`` line saying why; every other example runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _doctests_run_in_a_temp_dir(request: pytest.FixtureRequest, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An example may write files (``sf.write("clip.wav", ...)``): they land in a temp dir."""
    if isinstance(request.node, DoctestItem):
        monkeypatch.chdir(tmp_path)


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    """Skip ``.py`` files without a ``>>>`` example, unless pytest collects them as tests."""
    if collection_path.suffix != ".py" or not config.getoption("doctestmodules"):
        return None
    name = collection_path.name
    if name.startswith("test_") or name == "conftest.py":
        return None
    try:
        text = collection_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return None if ">>>" in text else True

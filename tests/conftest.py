"""Test-wide set-up: offline model hubs in a temp dir, one torch thread, the shared EmoDB path."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="embedprobe-test-home-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["HF_HOME"] = os.path.join(_HOME, "hf")
os.environ["TORCH_HOME"] = os.path.join(_HOME, "torch")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# every child process a test starts prints its threads' stacks on SIGABRT (fault_report.communicate
# sends one to a process that hangs), so a hang fails with where it hung
os.environ.setdefault("PYTHONFAULTHANDLER", "1")

REPO = Path(__file__).resolve().parent.parent
EMODB = Path(os.environ.get("EMBEDPROBE_EMODB", REPO.parent / "shared" / "data" / "emodb"))


@pytest.fixture(scope="session")
def emodb_root() -> Path:
    """The real EmoDB release beside the checkout (../shared/data/emodb)."""
    if not (EMODB / "wav").is_dir():
        pytest.skip(f"EmoDB not found at {EMODB}; set EMBEDPROBE_EMODB")
    return EMODB


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run on a CUDA machine (``benchmarks/gpu_check.sh``) and skip elsewhere."""
    marked = [item for item in items if item.get_closest_marker("gpu") is not None]
    if marked and not _cuda():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.sh on one)")
        for item in marked:
            item.add_marker(skip)

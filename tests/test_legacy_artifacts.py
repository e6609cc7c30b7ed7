"""Caches and results written by an older main (0c4168f, before the re-layout) still open.

The fixtures in ``tests/fixtures/legacy_0c4168f`` were written by the CLI of that commit (see
its README). Every command that reads a cache or a results file must accept them as they are.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedprobe.cli.main import app

LEGACY = Path(__file__).parent / "fixtures" / "legacy_0c4168f"


@pytest.fixture()
def legacy(tmp_path: Path) -> Path:
    dst = tmp_path / "legacy"
    shutil.copytree(LEGACY, dst)
    return dst


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_old_caches_verify_and_describe(legacy: Path) -> None:
    for name in ("emodb", "ravdess"):
        path = legacy / "cache" / f"{name}__logmel-128.h5"
        code, out = run("verify", path)
        assert code == 0, out
        code, out = run("info", path)
        assert code == 0, out
        assert "0c4168f" in out and "logmel (128)" in out


def test_old_caches_probe_and_domain(legacy: Path) -> None:
    out_dir = legacy / "new-results"
    code, out = run("probe", "-m", "logmel-128", "--cache-dir", legacy / "cache", "--train", "emodb",
                    "--test", "emodb,ravdess", "--probe", "linear", "--bootstrap", "0",
                    "--max-folds", "2", "-o", out_dir, "-q", "--allow-degenerate")
    assert code == 0, out
    files = sorted(p.name for p in out_dir.glob("*.json"))
    assert any(f.startswith("logmel-128__linear__train-emodb") for f in files), files
    res = json.loads(next(out_dir.glob("logmel-128__linear__*.json")).read_text())
    assert res["caches"]["emodb"]["fingerprint"] == "ad61c53103fd4df6"
    # the old ravdess fixture has an empty test part: without --allow-degenerate the run stops on it
    assert [(c["corpus"], c["kind"]) for c in res["split_checks"]] == [("ravdess", "missing-class")]
    code, out = run("domain", "-m", "logmel-128", "--cache-dir", legacy / "cache", "-o", out_dir)
    assert code == 0, out
    assert (out_dir / "domain__logmel-128.json").is_file()


def test_old_results_report(legacy: Path) -> None:
    res = legacy / "results"
    code, out = run("report", res)
    assert code == 0, out
    md = "\n".join(p.read_text() for p in res.rglob("*.md") if p.name != "domain__logmel-128.md")
    assert "| emodb | emodb | 16 | 0.96 | 0.69 | 0.69 | 0.62 | 0.62 | 0.93 |" in md, md[:3000]
    assert "| logmel | 0.875 | 1.000 | speaker-disjoint |" in md, md[:3000]


def test_old_caches_probe_leave_one_speaker_out(legacy: Path) -> None:
    """``loso`` is derived from an old cache's stored manifest: no re-extraction, cache untouched."""
    cache = legacy / "cache" / "emodb__logmel-128.h5"
    before = cache.read_bytes()
    out_dir = legacy / "loso-results"
    code, out = run("probe", "-m", "logmel-128", "--cache-dir", legacy / "cache", "--train", "emodb",
                    "--test", "emodb", "--probe", "linear", "--bootstrap", "0", "--protocol", "emodb=loso",
                    "--aggregate", "pooled", "--param", "max_steps=50", "--param", "min_steps=0", "-o", out_dir,
                    "-q", "--allow-degenerate")
    assert code == 0, out
    res = json.loads(next(out_dir.glob("*__emodb-loso__pooled.json")).read_text())
    assert res["caches"]["emodb"]["folds"] == ["loso/03", "loso/08", "loso/09", "loso/10"]
    assert res["cells"][0]["aggregate"] == "pooled" and res["cells"][0]["n_folds"] == 4
    assert cache.read_bytes() == before

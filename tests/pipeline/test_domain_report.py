"""Domain gap from real caches (log-mel of two synthetic corpora in their real layouts), and its CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedprobe.errors import BadValueError, CacheError
from embedprobe.pipeline.domain import domain_gap_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> Path:
    from embedprobe.corpora.synthetic import write_corpus
    from embedprobe.pipeline.extract import ExtractConfig, extract

    base = tmp_path_factory.mktemp("domain")
    for name in ("emodb", "iemocap"):  # each layout has its own recording channel
        root = write_corpus(name, base / name, n_speakers=4, clips_per_class=2)
        extract(ExtractConfig(model="logmel-128", corpus=name, root=str(root), out=str(base / "cache")),
                progress=False)
    return base / "cache"


def test_domain_gap_from_caches(caches, tmp_path):
    from embedprobe.cache import open_cache
    from embedprobe.eval.domain import frechet_distance

    rec = domain_gap_for("logmel-128", caches, out=tmp_path)
    assert rec["corpora"] == ["emodb", "iemocap"] and rec["layers"] == ["logmel"]
    (row,) = rec["frechet"]
    with open_cache(caches / "emodb__logmel-128.h5") as a, open_cache(caches / "iemocap__logmel-128.h5") as b:
        xa = a.pooled("logmel", "mean", [c.id for c in a.manifest.labelled()])
        xb = b.pooled("logmel", "mean", [c.id for c in b.manifest.labelled()])
    assert (row["n_a"], row["n_b"]) == (len(xa), len(xb)) == (32, 32)  # 4-class clips only
    assert row["frechet"] == pytest.approx(frechet_distance(xa, xb), rel=1e-9)
    assert row["shrinkage"] == "ledoit-wolf"  # 32 clips < 128 dims
    ident = rec["identifiability"]["logmel"]
    assert ident["split"] == "speaker-disjoint" and ident["balanced_accuracy"] > 0.9  # channels differ
    saved = json.loads((tmp_path / "domain__logmel-128.json").read_text())
    assert saved["frechet"][0]["frechet"] == pytest.approx(row["frechet"])
    assert saved["caches"]["emodb"]["fingerprint"] and saved["code_version"]
    md = (tmp_path / "domain__logmel-128.md").read_text()
    assert "emodb vs iemocap" in md and "| logmel |" in md
    assert np.isfinite(row["frechet_norm"]) and row["frechet_norm"] > 0
    # 128-dim covariances and a 64-clip probe are small work: one thread each
    assert rec["threads"]["requested"] is None and rec["threads"]["identifiability"] == [1]
    assert rec["threads"]["frechet"] == [1]


def test_domain_errors(caches, tmp_path):
    with pytest.raises(BadValueError, match="layer"):
        domain_gap_for("logmel-128", caches, layers=["layer_7"], out=None)
    with pytest.raises(BadValueError, match="crema-d"):
        domain_gap_for("logmel-128", caches, corpora=["emodb", "crema-d"], out=None)
    with pytest.raises(CacheError, match=">= 2 corpora"):
        domain_gap_for("logmel-128", caches, corpora=["emodb"], out=None)
    with pytest.raises(CacheError, match="embedprobe extract"):
        domain_gap_for("wavlm-base", caches, out=None)
    with pytest.raises(BadValueError, match="threads"):
        domain_gap_for("logmel-128", caches, out=None, threads=0)
    assert domain_gap_for("logmel-128", caches, out=None, threads=1)["threads"]["frechet"] == [1]


def test_domain_cli(caches, tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    res = subprocess.run([sys.executable, "-m", "embedprobe.cli.main", "domain", "--model", "logmel-128",
                          "--cache-dir", str(caches), "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Fréchet" in res.stdout and "identifiability" in res.stdout and "speaker-disjoint" in res.stdout
    assert (tmp_path / "domain__logmel-128.md").is_file()

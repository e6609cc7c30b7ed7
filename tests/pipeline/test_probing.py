"""Cross-corpus probing end to end on two synthetic corpora: matrix, scrambling, results, report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedprobe.corpora.synthetic import write_corpus
from embedprobe.errors import BadValueError
from embedprobe.eval.data import SCRAMBLE_MAP, scramble
from embedprobe.pipeline.domain import domain_gap_for
from embedprobe.pipeline.extract import ExtractConfig, extract
from embedprobe.pipeline.probe import ProbeConfig, cache_file, load_corpus, probe
from embedprobe.report.markdown import write_report


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """logmel-128 caches (with frames) of two synthetic corpora with different channels."""
    base = tmp_path_factory.mktemp("probing")
    out = base / "cache"
    for name in ("emodb", "iemocap"):
        root = write_corpus(name, base / name, n_speakers=6, clips_per_class=5, seed=1)
        extract(ExtractConfig(model="logmel-128", corpus=name, root=str(root), out=str(out),
                              frames=True, frame_hop_s=0.05), progress=False)
    return out


def _cell(rec: dict, train: str, test: str) -> dict:
    return next(c for c in rec["cells"] if c["train"] == train and c["test"] == test)


def test_cross_corpus_matrix_diagonal_beats_off_diagonal(caches: Path, tmp_path: Path) -> None:
    path = probe(ProbeConfig(model="logmel-128", cache_dir=str(caches), train=("emodb",),
                             probe="linear", pooling="meanstd", seeds=(0, 1), n_bootstrap=200, max_folds=2,
                             out=str(tmp_path)), progress=False)
    rec = json.loads(path.read_text())
    assert {(c["train"], c["test"]) for c in rec["cells"]} == {
        ("emodb", "emodb"), ("emodb", "iemocap"), ("iemocap", "emodb"), ("iemocap", "iemocap")}
    for a, b in (("emodb", "iemocap"), ("iemocap", "emodb")):
        diag = _cell(rec, a, a)["metrics"]
        off = _cell(rec, a, b)["metrics"]
        assert diag["auroc"]["mean"] > off["auroc"]["mean"]
        assert diag["wf1"]["mean"] > off["wf1"]["mean"]
    c = _cell(rec, "emodb", "emodb")
    assert c["in_domain"] and c["n_folds"] == 2 and c["seeds"] == [0, 1]
    for m in ("auroc", "acc", "uacc", "f1", "wf1", "avprec"):
        e = c["metrics"][m]
        assert 0 <= e["mean"] <= 1 and e["ci95"][0] <= e["ci95"][1]
        assert e["last20_std"] is not None and e["seeds"]["n"] == 2
    rel = rec["relative_wf1"]
    assert rel["emodb"]["emodb"] == 0 and rel["emodb"]["iemocap"] < 0
    # provenance: full config, versions, seeds, cache fingerprints
    assert rec["config"]["train"] == ["emodb"] and rec["seeds"] == [0, 1]
    assert rec["versions"]["torch"] and rec["caches"]["emodb"]["fingerprint"]
    assert path.with_suffix(".csv").read_text().count("\n") == 1 + 4 * 6


def test_scramble_swaps_labels_and_reports_fragmentation(caches: Path, tmp_path: Path) -> None:
    d, _ = load_corpus(cache_file(caches, "emodb", "logmel-128"), layer=None, pooling="mean", frames=False)
    s = scramble(d)
    from embedprobe.corpora.base import CANONICAL_LABELS as L

    for i, j in zip(d.y, s.y, strict=False):
        assert L[j] == SCRAMBLE_MAP[L[i]]
    path = probe(ProbeConfig(model="logmel-128", cache_dir=str(caches), train=("emodb+iemocap",),
                             test=("emodb", "iemocap"), probe="linear", scramble=("iemocap",),
                             n_bootstrap=0, max_folds=1, out=str(tmp_path)), progress=False)
    rec = json.loads(path.read_text())
    frag = rec["fragmentation"]
    assert len(frag) == 1 and frag[0]["corpus"] == "iemocap" and frag[0]["joint_train"] == "emodb+iemocap"
    assert frag[0]["alone_wf1"] is not None and frag[0]["delta_wf1"] is not None
    assert _cell(rec, "iemocap", "iemocap")["scrambled"] is True
    assert "scrambled-iemocap" in path.name


def test_frame_augmentations_need_frames_and_work_with_them(caches: Path, tmp_path: Path) -> None:
    from embedprobe.errors import EmbedprobeError

    with pytest.raises(EmbedprobeError, match="--frames"):
        probe(ProbeConfig(model="logmel-128", cache_dir=str(caches), train=("emodb",), test=("emodb",),
                          probe="mlp", probe_params={"frame_mask": 0.3}, n_bootstrap=0,
                          max_folds=1, out=str(tmp_path)), progress=False)
    path = probe(ProbeConfig(model="logmel-128", cache_dir=str(caches), train=("emodb",), test=("emodb",),
                             probe="mlp", frames=True, probe_params={"frame_mask": 0.3, "mix_prob": 0.5},
                             n_bootstrap=0, max_folds=1, out=str(tmp_path)), progress=False)
    rec = json.loads(path.read_text())
    assert rec["resolved"]["probe_params"]["frame_mask"] == 0.3
    assert _cell(rec, "emodb", "emodb")["metrics"]["auroc"]["mean"] > 0.5


def test_report_writes_markdown_and_heatmaps(caches: Path, tmp_path: Path) -> None:
    path = probe(ProbeConfig(model="logmel-128", cache_dir=str(caches), train=("emodb",), probe="linear",
                             n_bootstrap=100, max_folds=1, out=str(tmp_path)), progress=False)
    rec = json.loads(path.read_text())
    assert "domain_gap" not in rec and not list(tmp_path.glob("domain__*"))  # probe alone: no side effect
    domain_gap_for("logmel-128", caches, layers=[rec["caches"]["emodb"]["layer"]], corpora=sorted(rec["caches"]),
                   out=tmp_path)  # composed by the caller, as the probe command does
    env = dict(os.environ, EMBEDPROBE_NO_PROGRESS="1")
    r = subprocess.run([sys.executable, "-m", "embedprobe.cli.main", "report", str(tmp_path)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "report.md").read_text()
    assert "AUROC" in md and "wF1" in md and "relative wf1" in md
    assert "Domain gap" in md  # the embedding-space domain gap sits next to the matrices
    pngs = sorted((tmp_path / "figures").glob("*.png"))
    assert len(pngs) == 3 and all(p.stat().st_size > 5000 for p in pngs)
    assert write_report(tmp_path) == tmp_path / "report.md"


def test_probe_cli_errors_are_one_line(caches: Path, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "embedprobe.cli.main", "probe", "--model", "logmel-128",
                        "--cache-dir", str(caches), "--train", "ravdess", "--out", str(tmp_path), "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "ravdess" in r.stderr and "iemocap" in r.stderr  # the bad value and the valid ones


def test_augmentation_rate_uses_cached_copies(caches: Path, tmp_path: Path) -> None:
    from embedprobe.errors import CacheError

    root = caches.parent / "emodb"
    extract(ExtractConfig(model="logmel-128", corpus="emodb", root=str(root), out=str(caches),
                          augment="paper", copies=2, augment_seed=3), progress=False)
    kw = dict(model="logmel-128", cache_dir=str(caches), test=("emodb", "iemocap"), probe="linear",
              n_bootstrap=0, max_folds=1, baselines=False, augment_seed=3, out=str(tmp_path))
    runs, names = {}, {}
    for rate in (0.0, 1.0):
        path = probe(ProbeConfig(train=("emodb",), augment_rate=rate, **kw), progress=False)
        runs[rate], names[rate] = json.loads(path.read_text()), path.name
    assert "aug100" in names[1.0] and "aug" not in names[0.0]
    aug = runs[1.0]["caches"]["emodb"]["augmented"]
    assert aug["copies"] == 2 and aug["n_missing"] == 0 and aug["augment"]["seed"] == 3
    assert "augmented" not in runs[0.0]["caches"]["emodb"]
    a, b = (_cell(runs[r], "emodb", "iemocap")["metrics"]["auroc"]["mean"] for r in (0.0, 1.0))
    assert a != b  # training on augmented copies changes the probe
    with pytest.raises(CacheError, match="--augment paper"):
        probe(ProbeConfig(train=("iemocap",), augment_rate=0.5, **kw), progress=False)


def test_tune_searches_lr_and_batch_size_on_validation_only(caches: Path, tmp_path: Path) -> None:
    path = probe(ProbeConfig(model="logmel-128", cache_dir=str(caches), train=("emodb",), test=("emodb",),
                             probe="linear", tune=True, n_bootstrap=0, max_folds=1, out=str(tmp_path)),
                 progress=False)
    rec = json.loads(path.read_text())
    tuned = rec["resolved"]["tuned"]
    assert set(tuned["best_params"]) == {"lr", "batch_size"} and len(tuned["results"]) >= 4
    assert rec["resolved"]["probe_params"]["lr"] == tuned["best_params"]["lr"]


def test_threads_are_recorded_and_can_be_forced(caches: Path, tmp_path: Path) -> None:
    base = dict(model="logmel-128", cache_dir=str(caches), train=("emodb",), test=("emodb",), probe="linear",
                n_bootstrap=20, max_folds=1, out=str(tmp_path),
                probe_params={"max_steps": 100, "min_steps": 0})  # 2 threads crawl on a busy machine
    rec = json.loads(probe(ProbeConfig(**base), progress=False).read_text())
    t = rec["threads"]
    assert t["requested"] is None and t["cores"] >= 1 and t["fit"] == [1] and t["metrics"] == [1]
    assert rec["cells"][0]["threads"] == {"fit": [1], "predict": [1], "metrics": 1}
    rec = json.loads(probe(ProbeConfig(**base, threads=2, tag="t2"), progress=False).read_text())
    t = rec["threads"]
    assert t["requested"] == 2 and t["fit"] == [2] and t["predict"] == [2] and t["metrics"] == [2]
    assert rec["config"]["threads"] == 2
    with pytest.raises(BadValueError, match="threads"):
        probe(ProbeConfig(**base, threads=0), progress=False)


def test_probe_cli_threads_is_validated(caches: Path, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "embedprobe.cli.main", "probe", "--model", "logmel-128",
                        "--cache-dir", str(caches), "--train", "emodb", "--test", "emodb", "--probe", "linear",
                        "--threads", "0", "--out", str(tmp_path), "-q"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--threads 0" in r.stderr and ">= 1" in r.stderr


def test_loso_pooled_is_recorded_and_reported(caches: Path, tmp_path: Path) -> None:
    cfg = ProbeConfig(model="logmel-128", cache_dir=str(caches), train=("emodb",), test=("emodb",), probe="linear",
                      protocols={"emodb": "loso"}, aggregate="pooled", n_bootstrap=20, out=str(tmp_path),
                      probe_params={"max_steps": 100, "min_steps": 0})
    path = probe(cfg, progress=False)
    assert path.name == "logmel-128__linear__train-emodb__emodb-loso__pooled.json"
    rec = json.loads(path.read_text())
    (cell,) = rec["cells"]
    assert cell["protocol"] == "loso" and cell["aggregate"] == "pooled" and cell["n_folds"] == 6
    folds = rec["caches"]["emodb"]["folds"]
    assert len(folds) == 6 and all(f.startswith("loso/") for f in folds)  # one fold per synthetic speaker
    assert rec["resolved"]["aggregate"] == "pooled" and rec["resolved"]["protocols"] == {"emodb": "loso"}
    assert rec["config"]["aggregate"] == "pooled"
    u = cell["metrics"]["uacc"]
    assert u["fold_mean"] is not None and u["ci95"][0] <= u["mean"] <= u["ci95"][1]
    md = write_report(tmp_path).read_text()
    assert "aggregate pooled" in md and "loso" in md


def test_probe_cli_aggregate_and_protocol_are_validated(caches: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "embedprobe.cli.main", "probe", "--model", "logmel-128", "--cache-dir",
            str(caches), "--train", "emodb", "--test", "emodb", "--out", str(tmp_path), "-q"]
    r = subprocess.run(base + ["--aggregate", "median"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "Bad aggregate (--aggregate) 'median', expected one of ['mean', 'pooled']" in " ".join(r.stderr.split())
    r = subprocess.run(base + ["--protocol", "emodb=los"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "'los'" in r.stderr and "'loso'" in r.stderr  # the offered protocols include loso

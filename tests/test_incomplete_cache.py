"""probe, domain and bench refuse a cache that misses clips unless --allow-incomplete is given,
which proceeds, says so and records it; a damaged clip stops a probe with one sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedprobe.cache import CacheWriter, ClipResult, LayerResult
from embedprobe.cache.naming import cache_file
from embedprobe.corpora import scan
from embedprobe.corpora.synthetic import write_corpus
from embedprobe.errors import CacheIncompleteError
from embedprobe.pipeline.domain import domain_gap_for
from embedprobe.pipeline.probe import ProbeConfig, probe

MODEL = "logmel-128"
DIM = 6


def _write(path: Path, manifest, ids, finalize: bool) -> None:
    """A cache of random vectors whose mean depends on the label (so probes learn something)."""
    rng = np.random.default_rng(0)
    label = {c.id: c.label for c in manifest.clips}
    shift = {"angry": 0, "happy": 1, "neutral": 2, "sad": 3}
    results = []
    for cid in ids:
        v = rng.standard_normal(DIM).astype(np.float32)
        if label[cid] in shift:
            v[shift[label[cid]]] += 3
        results.append(ClipResult(cid, "h", 1.0, {"layer_0": LayerResult(v, np.abs(v))}))
    with CacheWriter(path, provenance={"corpus": manifest.corpus}, identity={"corpus": manifest.corpus},
                     manifest_json=manifest.to_json(), layers={"layer_0": DIM}) as w:
        w.write(results)
        if finalize:
            w.finalize()


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """emodb: complete; iemocap: 60 % written, never finalized (an extraction still running)."""
    base = tmp_path_factory.mktemp("incomplete")
    out = base / "cache"
    info = {"dir": out}
    for name, share in (("emodb", 1.0), ("iemocap", 0.6)):
        m = scan(name, write_corpus(name, base / name, n_speakers=6, clips_per_class=4, seed=2))
        n = int(len(m.ids) * share)
        _write(cache_file(out, name, MODEL), m, m.ids[:n], finalize=share == 1.0)
        info[name] = (n, len(m.ids))
    return info


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run([sys.executable, "-m", "embedprobe.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_probe_refuses_an_incomplete_cache_naming_how_many_clips_are_missing(caches, tmp_path):
    n, total = caches["iemocap"]
    cfg = ProbeConfig(model=MODEL, cache_dir=str(caches["dir"]), train=("iemocap",), test=("iemocap",),
                      probe="linear", n_bootstrap=0, max_folds=1, out=str(tmp_path))
    with pytest.raises(CacheIncompleteError, match=f"{total - n} of {total} clips are missing.*--allow-incomplete"):
        probe(cfg, progress=False)
    r = _run(["probe", "-m", MODEL, "--cache-dir", str(caches["dir"]), "--train", "iemocap", "--test", "iemocap",
              "--probe", "linear", "--bootstrap", "0", "--max-folds", "1", "-o", str(tmp_path), "-q"])
    saw = f"exit {r.returncode}; stdout {r.stdout[-800:]!r}; stderr {r.stderr[-800:]!r}"
    assert r.returncode == 2 and "Traceback" not in r.stderr, saw
    assert f"{total - n} of {total} clips are missing" in " ".join(r.stderr.split()), saw
    assert not list(tmp_path.glob("*.json")), saw


def test_allow_incomplete_proceeds_prints_and_records(caches, tmp_path):
    n, total = caches["iemocap"]
    r = _run(["probe", "-m", MODEL, "--cache-dir", str(caches["dir"]), "--train", "emodb", "--test", "all",
              "--probe", "linear", "--bootstrap", "0", "--max-folds", "1", "-o", str(tmp_path), "-q",
              "--allow-incomplete"])
    saw = f"exit {r.returncode}; stdout {r.stdout[-800:]!r}; stderr {r.stderr[-1500:]!r}"
    assert r.returncode == 0, saw
    assert "incomplete" in r.stderr and f"{total - n} of {total} clips missing" in " ".join(r.stderr.split()), saw
    rec = json.loads(next(tmp_path.glob(f"{MODEL}__*.json")).read_text())
    inc = rec["incomplete_caches"]
    assert list(inc) == ["iemocap"] and inc["iemocap"]["n_missing"] == total - n, inc
    assert rec["caches"]["iemocap"]["incomplete"]["n_manifest"] == total and rec["config"]["allow_incomplete"]
    assert rec["caches"]["emodb"]["incomplete"] is None and rec["caches"]["emodb"]["checksums"] == "yes"
    assert rec["domain_gap"]  # the domain gap of the same caches ran with the same permission


def test_domain_refuses_then_allows(caches, tmp_path):
    with pytest.raises(CacheIncompleteError, match="incomplete"):
        domain_gap_for(MODEL, caches["dir"], out=None)
    rec = domain_gap_for(MODEL, caches["dir"], out=None, allow_incomplete=True)
    assert rec["caches"]["iemocap"]["incomplete"]["n_missing"] == caches["iemocap"][1] - caches["iemocap"][0]
    r = _run(["domain", "-m", MODEL, "--cache-dir", str(caches["dir"]), "-o", str(tmp_path)])
    assert r.returncode == 2 and "clips are missing" in " ".join(r.stderr.split()), r.stderr[-800:]


def test_bench_config_carries_allow_incomplete():
    from embedprobe.bench.config import parse_config
    from embedprobe.bench.grid import expand, job_fingerprint, probe_config

    raw = {"bench": {"name": "t", "out": "o"}, "extract": {"models": [MODEL]},
           "corpora": {"emodb": {"root": "x"}}, "grid": {"train": ["emodb"], "probes": ["linear"]}}
    base = parse_config(raw)
    allowed = parse_config({**raw, "probe": {"allow_incomplete": True}})
    assert not base.probe.allow_incomplete and allowed.probe.allow_incomplete
    job = expand(allowed)[0]
    assert probe_config(allowed, job, ".").allow_incomplete
    assert job_fingerprint(base, job) == job_fingerprint(allowed, job)  # finished jobs stay finished


def test_damaged_clip_stops_the_probe_with_one_sentence(caches, tmp_path):
    import h5py

    path = cache_file(caches["dir"], "emodb", MODEL)
    damaged = tmp_path / "cache" / path.name
    damaged.parent.mkdir()
    damaged.write_bytes(path.read_bytes())
    with h5py.File(damaged, "r") as f:
        d = f["pooled/layer_0/mean"]
        where, victim = d.id.get_offset() + 5 * DIM * 4 + 2, f["clips/id"].asstr()[5]
    with open(damaged, "r+b") as fh:
        fh.seek(where)
        b = fh.read(1)[0]
        fh.seek(where)
        fh.write(bytes([b ^ 0xFF]))
    r = _run(["probe", "-m", MODEL, "--cache-dir", str(damaged.parent), "--train", "emodb", "--probe", "linear",
              "--bootstrap", "0", "--max-folds", "1", "-o", str(tmp_path / "res"), "-q"])
    saw = f"exit {r.returncode}; stderr {r.stderr[-800:]!r}"
    assert r.returncode == 2 and "Traceback" not in r.stderr, saw
    text = " ".join(r.stderr.split())
    assert victim in text and str(damaged) in "".join(text.split()), saw
    assert "re-run the extraction" in text, saw
    v = _run(["verify", str(damaged)])
    assert v.returncode == 1 and victim in v.stdout and "1 problem" in v.stdout, v.stdout[-800:]
    ok = _run(["verify", str(path)])
    assert ok.returncode == 0 and "ok" in ok.stdout, ok.stdout[-800:]


def test_info_and_verify_on_a_cache_without_checksums(tmp_path):
    import shutil

    fixture = Path(__file__).parent / "fixtures" / "cache_v1_nochecksums.h5"
    path = tmp_path / fixture.name
    shutil.copy(fixture, path)
    info = _run(["info", str(path)])
    assert info.returncode == 0 and "checksums" in info.stdout and "none (written before" in info.stdout, info.stdout
    v = _run(["verify", str(path)])
    assert v.returncode == 1 and "no checksums" in v.stdout and "1 problem" in v.stdout, v.stdout

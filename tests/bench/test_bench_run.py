"""A small bench end to end: outputs, resume after SIGKILL, stale results, the HTML in Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_bench import CORPORA_AB  # tests/bench/tiny_bench.py

from embedprobe.bench import load_config, run_bench

TINY = """
[bench]
name = "tiny"
out = "{out}"
jobs = {jobs}
[extract]
models = ["logmel-128"]
cache_dir = "{cache}"
""" + CORPORA_AB + """[grid]
train = ["a", "b", "a+b"]
probes = ["linear"]
seeds = 1
scramble = [[], ["b"]]
[probe]
max_folds = 1
n_bootstrap = 50
"""
N_JOBS = 5  # clean: a, b, a+b; b scrambled: a, a+b (b alone comes with every scrambled run)


def write_config(folder: Path, cache: Path, jobs: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.toml"
    path.write_text(TINY.format(out=folder / "out", cache=cache, jobs=jobs))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory):
    """The tiny bench run once without interruption (in this process)."""
    base = tmp_path_factory.mktemp("bench")
    cfg = load_config(write_config(base / "full", base / "cache"))
    run = run_bench(cfg, progress=False)
    return base, run


def cells(run_json: Path) -> dict[tuple[str, str, str], float]:
    s = json.loads(run_json.read_text())
    return {(g["id"], c["train"], c["test"]): c["metrics"]["wf1"]["mean"] for g in s["groups"] for c in g["cells"]}


def test_small_bench_writes_report_csv_json_and_links_alias_caches(finished) -> None:
    base, run = finished
    out = base / "full" / "out"
    assert run.count("done") == N_JOBS and run.count("failed") == 0
    assert [p.name for p in sorted((out / "results").glob("*.json"))] == sorted(f"{j.id}.json" for j in run.jobs)
    # corpus keys 'a'/'b' are read by 'emodb'/'iemocap': caches live in a sub-folder, linked by key
    link = base / "cache" / "a__logmel-128.h5"
    assert link.is_symlink() and link.resolve() == (base / "cache" / "a" / "emodb__logmel-128.h5").resolve()
    s = json.loads((out / "bench.json").read_text())
    assert s["kind"] == "embedprobe.bench" and s["counts"]["done"] == N_JOBS
    clean = next(g for g in s["groups"] if not g["scramble"])
    assert {(c["train"], c["test"]) for c in clean["cells"]} == {
        (t, c) for t in ("a", "b", "a+b") for c in ("a", "b")}
    assert clean["relative"]["a"]["a"] == 0 and clean["relative"]["b"]["b"] == 0
    scr = next(g for g in s["groups"] if g["scramble"] == ["b"])
    assert any(c["train"] == "b" and c["scrambled"] for c in scr["cells"])
    assert s["fragmentation"] and s["fragmentation"][0]["joint_train"] == "a+b"
    assert s["fragmentation"][0]["clean_joint"] is not None  # the same cell without scrambling
    # Figure 2/3 layout: one table per scrambling state, scenarios A.. in config order
    fig2 = next(t for t in s["paper"] if not t["scramble"])
    assert [sc["train"] for sc in fig2["scenarios"]] == ["a", "b", "a+b"] and fig2["baseline"].startswith("clean")
    fig3 = next(t for t in s["paper"] if t["scramble"])
    b_alone_clean = next(c for c in clean["cells"] if c["train"] == "b" and c["test"] == "b")
    b_alone_scr = next(c for c in scr["cells"] if c["train"] == "b" and c["test"] == "b")
    expected = b_alone_scr["metrics"]["wf1"]["mean"] - b_alone_clean["metrics"]["wf1"]["mean"]
    assert fig3["rows"][0]["values"]["a+b"]["b"] is not None
    # Fig. 3 cells are relative to the clean baseline (as in the paper), so b alone is not 0
    assert np.isclose(fig3["rows"][0]["values"]["b"]["b"], expected, atol=1e-6)
    # provenance of every job: config, seeds, versions, cache fingerprints
    p = s["provenance"][run.jobs[0].id]
    assert p["config"]["probe"] == "linear" and p["seeds"] == [0] and p["versions"]["torch"]
    assert p["caches"]["a"]["fingerprint"] == run.caches[("logmel-128", "a")].fingerprint
    csv_lines = (out / "bench.csv").read_text().splitlines()
    assert csv_lines[0].startswith("job,model,layer,probe,augment_rate,scramble,train,test")
    assert len(csv_lines) == 1 + 6 * sum(len(g["cells"]) for g in s["groups"])
    html = (out / "report.html").read_text()
    assert "Figure 2/3 layout" in html and "data:image/png;base64," in html and "Fragmentation" in html
    assert f"id='job-{run.jobs[0].id}'" in html and f"href='#job-{run.jobs[0].id}'" in html
    assert "<script" not in html and "src='http" not in html  # self-contained


def test_rerun_skips_finished_jobs_and_reruns_stale_ones(finished, tmp_path: Path) -> None:
    base, run = finished
    stale = base / "full" / "out" / "results" / f"{run.jobs[1].id}.json"
    rec = json.loads(stale.read_text())
    rec["bench"]["job_fingerprint"] = "0" * 16  # as if made with another config
    stale.write_text(json.dumps(rec))
    again = run_bench(load_config(base / "full" / "tiny.toml"), progress=False)
    assert again.count("skipped") == N_JOBS - 1 and again.count("done") == 1
    assert again.results[run.jobs[1].id].status == "done"
    assert json.loads(stale.read_text())["bench"]["job_fingerprint"] != "0" * 16


def test_killed_bench_resumes_and_matches_an_uninterrupted_run(finished, tmp_path: Path) -> None:
    base, run = finished
    cfg_path = write_config(tmp_path, base / "cache", jobs=2)  # caches shared with the full run
    results = tmp_path / "out" / "results"
    env = dict(os.environ, EMBEDPROBE_NO_PROGRESS="1")
    cmd = [sys.executable, "-m", "embedprobe.cli.main", "bench", str(cfg_path), "-q"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list(results.glob("*.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the bench and its workers, mid-grid
    proc.communicate()
    n_before = len(list(results.glob("*.json")))
    assert 1 <= n_before < N_JOBS, f"kill came too late or too early ({n_before} results)"
    for f in results.glob("*.json"):  # atomic writes: every results file a kill leaves is whole
        assert json.loads(f.read_text())["bench"]["job_fingerprint"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{n_before} skipped" in r.stderr.replace("\n", " ")
    resumed = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert resumed["counts"]["skipped"] == n_before and resumed["counts"]["done"] == N_JOBS - n_before
    full = json.loads((base / "full" / "out" / "bench.json").read_text())
    assert {j["id"] for j in resumed["jobs"]} == {j["id"] for j in full["jobs"]}
    fps = {k: v["job_fingerprint"] for k, v in resumed["provenance"].items()}
    assert fps == {k: v["job_fingerprint"] for k, v in full["provenance"].items()}
    # same numbers as the uninterrupted in-process run (one torch thread everywhere)
    assert cells(tmp_path / "out" / "bench.json") == cells(base / "full" / "out" / "bench.json")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(finished, tmp_path: Path) -> None:
    from PIL import Image

    base, _ = finished
    report = (base / "full" / "out" / "report.html").resolve()
    png = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={png}",
                        "--window-size=1400,2000", report.as_uri()],
                       capture_output=True, timeout=120, check=False)
    assert png.is_file(), "chromium wrote no screenshot"
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=float)
    assert pixels.shape[:2] == (2000, 1400)
    assert pixels.std() > 20  # not a blank page
    # the paper-layout tables are coloured (red/green cells), not only black text on white
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    assert ((r > 180) & (g < 120) & (b < 100)).sum() > 500 or ((g > 140) & (r < 120)).sum() > 500

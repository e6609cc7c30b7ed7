"""Model replicas in worker processes (``--procs``): same cache as one process, errors, Ctrl-C, kill -9."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from embedprobe.cache import open_cache
from embedprobe.common.replicas import (
    MAX_AUTO_PROCS,
    MIN_CLIPS_FOR_REPLICAS,
    resolve_procs,
    threads_per_proc,
)
from embedprobe.corpora.synthetic import write_corpus
from embedprobe.errors import BadValueError, EmbedprobeError
from embedprobe.extractors import EXTRACTORS
from embedprobe.pipeline.extract import ExtractConfig, extract

REPO = Path(__file__).resolve().parents[2]


def tiny_wavlm():
    entry = EXTRACTORS.get("wavlm-base")
    return entry.cls.for_tests(entry.spec)  # a tiny random-init WavLM (transformers' real modules)


def manifest_corpus(folder: Path, n: int = 7) -> Path:
    """n speech-like clips of different lengths, plus a missing and a corrupt file."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["path,label,speaker"]
    for i in range(n):
        t = np.arange(int((0.6 + 0.3 * i) * 16000)) / 16000
        wav = 0.2 * np.sin(2 * np.pi * (120 + 15 * i) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(folder / f"c{i}.wav", wav.astype(np.float32), 16000)
        rows.append(f"c{i}.wav,{('angry', 'sad')[i % 2]},s{i % 3}")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    rows += ["corrupt.wav,angry,s0", "missing.wav,sad,s1"]
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_auto_policy() -> None:
    auto = dict(device="cpu", replicate=True, n_todo=1000, cores=2)
    assert resolve_procs(None, **auto) == 2
    assert resolve_procs(None, **(auto | {"cores": 16})) == MAX_AUTO_PROCS
    assert resolve_procs(None, **(auto | {"cores": 1})) == 1
    assert resolve_procs(None, **(auto | {"device": "cuda:0"})) == 1
    assert resolve_procs(None, **(auto | {"replicate": False})) == 1
    assert resolve_procs(None, **(auto | {"n_todo": MIN_CLIPS_FOR_REPLICAS - 1})) == 1
    assert resolve_procs(3, **(auto | {"replicate": False})) == 3  # asked for: given
    assert resolve_procs(8, **(auto | {"n_todo": 2})) == 2  # never more workers than clips
    with pytest.raises(BadValueError):
        resolve_procs(0, **auto)
    assert threads_per_proc(2, cores=2) == 1 and threads_per_proc(4, cores=16) == 4
    assert threads_per_proc(4, cores=2) == 1


@pytest.mark.parametrize("name", ["wavlm-base", "cnn14-16k", "logmel-128", "egemaps"])
def test_an_extractor_pickles_as_its_recipe(name: str) -> None:
    entry = EXTRACTORS.get(name)
    ext = entry.cls.for_tests(entry.spec)
    x = (np.random.default_rng(1).standard_normal(24000) * 0.1).astype(np.float32)
    try:
        want = ext.load().embed(x)
    except ImportError as e:
        pytest.skip(str(e))
    blob = pickle.dumps(ext)
    assert len(blob) < 200_000  # the recipe, not the weights
    copy = pickle.loads(blob)
    assert not copy.loaded
    got = copy.embed(x)  # loads on first use
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5)
    ext.unload()
    assert not ext.loaded and ext.embed(x).keys() == want.keys()  # loads again


def test_replicas_write_the_same_cache_as_one_process(tmp_path: Path) -> None:
    root = manifest_corpus(tmp_path / "c")
    base = dict(corpus="manifest", root=str(root), model="wavlm-base", batch_size=3)
    one = extract(ExtractConfig(out=str(tmp_path / "one"), procs=1, **base), progress=False,
                  extractor=tiny_wavlm())
    two = extract(ExtractConfig(out=str(tmp_path / "two"), procs=2, **base), progress=False,
                  extractor=tiny_wavlm())
    assert one.procs == 1 and two.procs == 2
    assert two.n_new == one.n_new == 7 and two.complete
    assert sorted(e[2] for e in two.errors) == sorted(e[2] for e in one.errors)
    assert {Path(e[1]).name for e in two.errors} == {"corrupt.wav", "missing.wav"}
    with open_cache(one.cache) as a, open_cache(two.cache) as b:
        assert sorted(a.ids) == sorted(b.ids)
        assert b.provenance["runtime"]["procs"] == 2
        for layer in a.layers:
            np.testing.assert_allclose(b.pooled(layer, "meanstd", a.ids), a.pooled(layer, "meanstd"),
                                       rtol=1e-4, atol=1e-4)


def test_an_unguarded_script_runs_once(tmp_path: Path) -> None:
    """Workers do not re-run the calling script (spawn would, without a __main__ guard)."""
    root = manifest_corpus(tmp_path / "c", n=4)
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        print("script body ran", flush=True)
        from embedprobe.pipeline.extract import ExtractConfig, extract
        s = extract(ExtractConfig(model="logmel-128", corpus="manifest", root={str(root)!r},
                                  out={str(tmp_path / "out")!r}, procs=2), progress=False)
        print("procs", s.procs, "new", s.n_new, flush=True)
    """))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("script body ran") == 1
    assert "procs 2 new 4" in p.stdout


def test_a_worker_that_cannot_load_gives_one_sentence(tmp_path: Path) -> None:
    root = manifest_corpus(tmp_path / "c", n=3)
    missing = tmp_path / "no-such-checkpoint"
    cfg = ExtractConfig(model="wavlm-base", corpus="manifest", root=str(root), out=str(tmp_path / "o"),
                        weights=str(missing), procs=2)
    with pytest.raises(EmbedprobeError) as e:
        extract(cfg, progress=False)
    assert "no-such-checkpoint" in str(e.value) and "Traceback" not in str(e.value)


def _committed(cache: Path) -> int:
    try:
        with open_cache(cache) as r:
            return r.n_clips
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_replica_run_resumes_and_leaves_no_workers(tmp_path: Path, how: int) -> None:
    """Ctrl-C (SIGINT) or kill -9 of `embedprobe extract --procs 2` mid-run: the workers go away,
    the cache opens with what was committed, and the same command finishes it."""
    root = write_corpus("emodb", tmp_path / "c", n_speakers=6, clips_per_class=5)
    args = [sys.executable, "-m", "embedprobe.cli.main", "extract", "--model", "egemaps",
            "--corpus", "emodb", "--root", str(root), "--out", str(tmp_path / "o"),
            "--procs", "2", "--batch-size", "2", "-q"]
    cache = tmp_path / "o" / "emodb__egemaps.h5"
    pytest.importorskip("opensmile")
    env = dict(os.environ, EMBEDPROBE_NO_PROGRESS="1")
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while _committed(cache) == 0 and time.time() - t0 < 120:
        time.sleep(0.05)  # until the workers have delivered and this process committed something
    workers = _children(p.pid)
    assert len(workers) >= 2  # the two replicas (and the resource tracker)
    os.kill(p.pid, how)
    out, err = p.communicate(timeout=60)
    if how == signal.SIGINT:
        assert p.returncode == 130, err
        assert "interrupted" in out + err, (out, err)
    deadline = time.time() + 30
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "worker processes outlived the extraction"
    with open_cache(cache) as r:
        n_mid = r.n_clips
        assert 0 < n_mid < len(r.manifest.clips) and not r.complete
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with open_cache(cache) as r:
        assert r.complete and r.n_clips >= n_mid and len(set(r.ids)) == len(r.ids)

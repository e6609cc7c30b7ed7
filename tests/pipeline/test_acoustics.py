"""Acoustic profiles: values, CSV round trip, augmentation, resume after kill / Ctrl-C, compare, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from embedprobe.errors import (
    BadValueError,
    CacheLockedError,
    CacheMismatchError,
    CorpusError,
    MissingDependencyError,
)
from embedprobe.pipeline import acoustics as ap

FAST = ("snr", "t60", "c50", "loudness")  # no DNSMOS: ~15 ms per clip
REPO = Path(__file__).resolve().parents[2]
N_CLIPS = 14  # synthetic EmoDB, 2 speakers x (4 classes + 3 other labels)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from embedprobe.corpora.synthetic import write_corpus

    return write_corpus("emodb", tmp_path_factory.mktemp("emodb"), n_speakers=2, clips_per_class=1)


def _wav(root: Path, clip_id: str) -> np.ndarray:
    from embedprobe.audio import decode as audio

    return audio.load(root / "wav" / f"{clip_id}.wav", audio.AudioConfig(sample_rate=16000))


def test_profile_values_round_trip_and_provenance(corpus, tmp_path):
    from embedprobe.augment.acoustics import measure

    path = ap.profile("emodb", corpus, out_dir=tmp_path, which=FAST, progress=False)
    assert path == tmp_path / "acoustics__emodb.csv"
    p = ap.load_profile(path)
    assert len(p["id"]) == N_CLIPS == len(set(p["id"])) and set(p["copy"]) == {0}
    assert p["snr"].dtype == np.float64 and p["duration_s"].min() >= 1.0
    assert np.all((p["snr"] >= -20) & (p["snr"] <= 100)) and np.all(p["loudness"] < 0)
    assert set(p["label"]) == {"angry", "happy", "neutral", "sad", ""}  # all clips, 4-class or not
    for i in (0, 7):  # the CSV holds exactly what measure() returns
        direct = measure(_wav(corpus, p["id"][i]), 16000, which=FAST)
        assert all(p[m][i] == direct[m] or np.isnan(p[m][i]) and np.isnan(direct[m]) for m in FAST)
    meta = ap.read_meta(path)
    assert meta["identity"]["measures"] == list(FAST) and meta["identity"]["augmentation"] is None
    assert meta["complete"] and meta["n_rows"] == N_CLIPS and "numpy" in meta["versions"]
    assert meta["code_version"] and meta["runs"][0]["n_new"] == N_CLIPS
    with pytest.raises(CacheMismatchError, match="measures"):
        ap.profile("emodb", corpus, out_dir=tmp_path, which=["snr"], progress=False)


def test_augmented_copies_are_noisier_and_replayable(corpus, tmp_path):
    from embedprobe.augment import replay
    from embedprobe.augment.acoustics import measure

    raw = ap.load_profile(ap.profile("emodb", corpus, out_dir=tmp_path, which=FAST, progress=False))
    path = ap.profile("emodb", corpus, out_dir=tmp_path, which=FAST, augment="paper", copies=2,
                      seed=3, progress=False)
    assert path.name == "acoustics__emodb__aug-paper-s3.csv"
    aug = ap.load_profile(path)
    assert len(aug["id"]) == 2 * N_CLIPS and sorted(set(aug["copy"])) == [0, 1]
    assert np.nanmedian(aug["snr"]) < np.nanmedian(raw["snr"]) - 10  # pink noise at 5-40 dB
    assert np.nanmedian(aug["t60"]) > np.nanmedian(raw["t60"])  # reverberation
    first = np.flatnonzero(aug["id"] == aug["id"][0])
    assert aug["snr"][first[0]] != aug["snr"][first[1]]  # copies draw their own parameters
    k = first[1]
    again = replay(_wav(corpus, aug["id"][k]), 16000, "paper", json.loads(aug["aug_params"][k]))
    assert measure(again, 16000, which=["snr"])["snr"] == aug["snr"][k]
    meta = ap.read_meta(path)
    assert meta["augmentation"]["config"]["kind"] == "chain" and meta["identity"]["augmentation"]["seed"] == 3

    rows, figure = ap.compare(tmp_path)
    assert figure == tmp_path / "acoustics.png" and figure.stat().st_size > 10_000
    snr = next(r for r in rows if r["measure"] == "snr")
    assert (snr["corpus_a"], snr["corpus_b"]) == ("emodb", "emodb+paper-s3") and snr["ks"] > 0.5
    assert {r["measure"] for r in rows} == set(FAST)


def test_subset_then_resume_measures_only_the_rest(corpus, tmp_path):
    path = ap.profile("emodb", corpus, out_dir=tmp_path, which=["snr"], max_clips=5, progress=False)
    first = set(ap.load_profile(path)["id"])
    assert len(first) == 5
    assert set(c.id for c in ap.select_clips(_clips(corpus), 8)) >= first  # nested subsets
    ap.profile("emodb", corpus, out_dir=tmp_path, which=["snr"], progress=False)
    run = ap.read_meta(path)["runs"][-1]
    assert (run["n_done_before"], run["n_new"]) == (5, N_CLIPS - 5)
    assert len(ap.load_profile(path)["id"]) == N_CLIPS


def test_compare_pairs_a_subset_with_the_full_profile(corpus, tmp_path):
    ap.profile("emodb", corpus, out_dir=tmp_path, which=["snr"], progress=False)
    ap.profile("emodb", corpus, out_dir=tmp_path, which=["snr"], augment="pink_noise", max_clips=5,
               progress=False)
    (paired,), _ = ap.compare(tmp_path)
    assert (paired["corpus_a"], paired["corpus_b"], paired["n_a"], paired["n_b"]) == \
        ("emodb", "emodb+pink_noise", 5, 5)
    (unpaired,), _ = ap.compare(tmp_path, paired=False)
    assert (unpaired["n_a"], unpaired["n_b"]) == (N_CLIPS, 5)
    rows = ap.medians(ap.load_profiles(tmp_path, paired=True))
    assert [r["n"] for r in rows] == [5, 5]


def _clips(root):
    from embedprobe.corpora import scan

    return scan("emodb", root).clips


_SLOW_CHILD = """
import sys, time
from embedprobe.pipeline import acoustics as ap
inner = ap._measure_clip
def slow(task):
    time.sleep(0.4)
    return inner(task)
ap._measure_clip = slow
ap.profile("emodb", sys.argv[1], out_dir=sys.argv[2], which=["snr", "t60"], batch_size=2, progress=False)
"""


def test_killed_run_resumes_and_a_torn_line_is_cut(corpus, tmp_path):
    path = tmp_path / "acoustics__emodb.csv"
    child = subprocess.Popen([sys.executable, "-c", _SLOW_CHILD, str(corpus), str(tmp_path)])
    deadline = time.time() + 60
    while time.time() < deadline and (not path.exists() or path.read_text().count("\n") < 3):
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    n_saved = len(ap.load_profile(path)["id"])
    assert 2 <= n_saved < N_CLIPS
    with open(path, "a") as f:  # what a crash in the middle of an append leaves
        f.write("03b99Xx,0,03,ang")
    assert len(ap.load_profile(path)["id"]) == n_saved  # readers ignore the torn line
    ap.profile("emodb", corpus, out_dir=tmp_path, which=["snr", "t60"], progress=False)
    p = ap.load_profile(path)
    assert len(p["id"]) == N_CLIPS == len(set(p["id"])) and "03b99Xx" not in p["id"]
    assert ap.read_meta(path)["runs"][-1]["n_new"] == N_CLIPS - n_saved


def test_ctrl_c_saves_what_was_measured(corpus, tmp_path, monkeypatch):
    calls = []
    inner = ap._measure_clip

    def interrupted(task):
        calls.append(task[1])
        if len(calls) == 4:
            raise KeyboardInterrupt
        return inner(task)

    monkeypatch.setattr(ap, "_measure_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ap.profile("emodb", corpus, out_dir=tmp_path, which=["snr"], batch_size=16, progress=False)
    path = tmp_path / "acoustics__emodb.csv"
    assert list(ap.load_profile(path)["id"]) == calls[:3]
    meta = ap.read_meta(path)
    assert meta["runs"][-1]["interrupted"] and not meta["complete"]


def test_parallel_workers_give_the_same_values(corpus, tmp_path):
    one = ap.load_profile(ap.profile("emodb", corpus, out_dir=tmp_path / "1", which=["snr", "t60"],
                                     max_clips=6, progress=False))
    two = ap.load_profile(ap.profile("emodb", corpus, out_dir=tmp_path / "2", which=["snr", "t60"],
                                     max_clips=6, workers=2, progress=False))
    o1, o2 = np.argsort(one["id"]), np.argsort(two["id"])  # workers finish in any order
    assert len(o1) == 6 and list(one["id"][o1]) == list(two["id"][o2])
    for m in ("snr", "t60"):
        np.testing.assert_array_equal(one[m][o1], two[m][o2])


@pytest.mark.skipif(find_spec("speechmos") is None or find_spec("onnxruntime") is None,
                    reason="pip install 'embedprobe[acoustics]'")
def test_dnsmos_in_the_profile(corpus, tmp_path):
    p = ap.load_profile(ap.profile("emodb", corpus, out_dir=tmp_path, max_clips=2, progress=False))
    for m in ("mos_sig", "mos_bak", "mos_ovrl"):
        assert np.all((p[m] >= 1) & (p[m] <= 5)), (m, p[m])


def test_errors_name_the_value_and_the_fix(corpus, tmp_path, monkeypatch):
    from embedprobe.augment import acoustics
    from embedprobe.cache.locks import FileLock

    with pytest.raises(BadValueError, match="nope"):
        ap.profile("nope", corpus, out_dir=tmp_path, which=["snr"], progress=False)
    with pytest.raises(CorpusError):
        ap.profile("emodb", tmp_path / "missing", out_dir=tmp_path, which=["snr"], progress=False)
    with pytest.raises(BadValueError, match="augmentation 'loud'"):
        ap.profile("emodb", corpus, out_dir=tmp_path, augment="loud", which=["snr"], progress=False)
    with pytest.raises(BadValueError, match="acoustic measure 'pesq'"):
        ap.profile("emodb", corpus, out_dir=tmp_path, which=["pesq"], progress=False)
    monkeypatch.setattr(acoustics, "available", lambda: ("t60", "c50", "snr"))
    with pytest.raises(MissingDependencyError, match=r"embedprobe\[acoustics\]"):
        ap.profile("emodb", corpus, out_dir=tmp_path, which=["mos_ovrl"], progress=False)
    lock = FileLock(tmp_path / "acoustics__emodb.csv.lock")
    assert lock.acquire()
    try:
        with pytest.raises(CacheLockedError, match="another process"):
            ap.profile("emodb", corpus, out_dir=tmp_path, which=["snr"], progress=False)
    finally:
        lock.release()


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EMBEDPROBE_NO_PROGRESS": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "embedprobe.cli.main", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=120)


def test_cli_profiles_and_compares(corpus, tmp_path):
    base = ("acoustics", "--corpus", "emodb", "--root", str(corpus), "--out", str(tmp_path),
            "--measures", "snr,t60", "--workers", "1", "--max-clips", "6")
    assert _cli(*base).returncode == 0
    res = _cli(*base, "--augment", "paper")
    assert res.returncode == 0, res.stderr
    assert "emodb+paper" in res.stdout and "W1" in res.stdout and "snr" in res.stdout
    assert (tmp_path / "acoustics.png").is_file()
    bad = _cli("acoustics", "--corpus", "emodb", "--root", str(tmp_path / "nothing"), "--out", str(tmp_path))
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
    assert "nothing" in bad.stderr and "Fix:" in bad.stderr

"""End-to-end extraction: EmoDB, bad input, resume, mismatch refusal, shards, kill -9 of the real CLI."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from embedprobe.cache import open_cache
from embedprobe.corpora.synthetic import write_corpus
from embedprobe.errors import CacheLockedError, CacheMismatchError
from embedprobe.pipeline.extract import ExtractConfig, extract

SR = 16000


def _cfg(root: Path, out: Path, **kw) -> ExtractConfig:
    base = dict(model="logmel-128", corpus="emodb", root=str(root), out=str(out), workers=2)
    base.update(kw)
    return ExtractConfig(**base)


def test_emodb_logmel_end_to_end(emodb_root: Path, tmp_path: Path) -> None:
    s = extract(_cfg(emodb_root, tmp_path, frames=True, frame_hop_s=0.05), progress=False)
    assert s.complete and s.n_clips == 535 and s.n_new == 535 and s.n_errors == 0
    with open_cache(s.cache) as r:
        assert r.n_clips == 535 and r.complete and r.layers == ["logmel"] and r.dims == {"logmel": 128}
        assert r.has_frames("logmel")
        clip = r.ids[0]
        frames = r.frames("logmel", [clip])[0]
        dur = r.clip_table([clip])["duration_s"][0]
        assert abs(frames.shape[0] - (1 + int(dur * SR) // 160) / 5) <= 1  # 10 ms hop pooled by 5
        # pooled mean was computed on native frames; it equals the mean of the 5x-pooled frames
        # up to the shorter last group
        assert np.allclose(r.pooled("logmel", "mean", [clip])[0], frames.mean(0), atol=0.05)
        ident = r.identity
        assert ident["extractor"]["name"] == "logmel-128" and ident["frames"]["hop_factor"] == 5
        assert r.manifest.corpus == "emodb" and "speaker/03" in r.manifest.splits
        assert r.provenance["versions"]["numpy"] == np.__version__
    # resume: a second run does nothing new
    s2 = extract(_cfg(emodb_root, tmp_path, frames=True, frame_hop_s=0.05), progress=False)
    assert s2.n_new == 0 and s2.n_done_before == 535 and s2.complete
    # another config on the same file is refused, naming the differing fields
    with pytest.raises(CacheMismatchError) as e:
        extract(_cfg(emodb_root, tmp_path, frames=False), progress=False)
    assert "frames" in str(e.value) and "--overwrite" in str(e.value)


def _write_bad_corpus(root: Path) -> Path:
    """A manifest corpus with one good clip per kind of bad input, plus good clips."""
    audio = root / "audio"
    audio.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.arange(int(1.5 * SR)) / SR

    def tone(f0: float, dur: float = 1.5, sr: int = SR) -> np.ndarray:
        tt = np.arange(int(dur * sr)) / sr
        return (0.3 * np.sin(2 * np.pi * f0 * tt) * (1 + 0.5 * np.sin(2 * np.pi * 3 * tt))
                + 0.01 * rng.standard_normal(tt.size)).astype(np.float32)

    rows = []
    for i in range(6):
        sf.write(audio / f"good{i}.wav", tone(120 + 20 * i), SR)
        rows.append((f"audio/good{i}.wav", ["angry", "happy", "neutral", "sad"][i % 4], f"s{i % 3}"))
    (audio / "empty.wav").write_bytes(b"")
    sf.write(audio / "zero.wav", np.zeros(0, np.float32), SR)
    (audio / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    nan = tone(200)
    nan[100:200] = np.nan
    sf.write(audio / "nan.wav", nan, SR, subtype="FLOAT")
    sf.write(audio / "silent.wav", np.zeros(SR, np.float32), SR)
    sf.write(audio / "short.wav", tone(200, 0.02), SR)
    sf.write(audio / "stereo.wav", np.stack([tone(150), tone(160)], axis=1), SR)
    sf.write(audio / "odd_rate.wav", tone(180, 1.5, 11025), 11025)
    bad = ["missing", "empty", "zero", "corrupt", "nan", "silent", "short"]
    for name in bad:
        rows.append((f"audio/{name}.wav", "sad", "s9"))
    rows += [("audio/stereo.wav", "happy", "s8"), ("audio/odd_rate.wav", "angry", "s8")]
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "speaker"])
        w.writerows(rows)
    return root / "manifest.csv"


def test_bad_input_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    manifest = _write_bad_corpus(tmp_path / "bad")
    s = extract(_cfg(manifest, tmp_path / "out", corpus="manifest", batch_size=4), progress=False)
    reasons = {Path(p).stem: r for _, p, r in s.errors}
    assert set(reasons) == {"missing", "empty", "zero", "corrupt", "nan", "silent", "short"}
    for stem, word in [("missing", "not found"), ("empty", "empty"), ("nan", "nan"),
                       ("silent", "silent"), ("short", "short")]:
        assert word in reasons[stem].lower(), (stem, reasons[stem])
    for r in reasons.values():
        assert "\n" not in r
    notes = dict(s.notes)
    assert any("mono" in n for n in notes.values()) and any("11025" in n for n in notes.values())
    with open_cache(s.cache) as r:
        assert r.n_clips == 8  # 6 good + stereo + odd rate
        assert {Path(e["path"]).stem for e in r.errors} == set(reasons)
        assert r.complete  # every clip is done or failed
        assert np.isfinite(r.pooled("logmel")).all()


def test_concurrent_writer_is_refused(emodb_root: Path, tmp_path: Path) -> None:
    from embedprobe.cache import CacheWriter

    cfg = _cfg(emodb_root, tmp_path)
    s = extract(cfg, progress=False)
    with open_cache(s.cache) as r:
        prov, ident, man = r.provenance, r.identity, r.manifest.to_json()
    with CacheWriter(cfg.cache_path(), provenance=prov, identity=ident, manifest_json=man,
                     layers={"logmel": 128}):
        with pytest.raises(CacheLockedError) as e:
            extract(cfg, progress=False)
    assert str(cfg.cache_path()) in str(e.value) or cfg.cache_path().name in str(e.value)


def test_shards_then_merge_equal_one_run(tmp_path: Path) -> None:
    root = write_corpus("emodb", tmp_path / "c", n_speakers=4, clips_per_class=2)
    one = extract(_cfg(root, tmp_path / "one"), progress=False)
    for k in range(3):
        extract(_cfg(root, tmp_path / "sh", shard=k, n_shards=3), progress=False)
    from embedprobe.cache import merge

    merged = merge(_cfg(root, tmp_path / "sh").cache_path())
    with open_cache(one.cache) as a, open_cache(merged) as b:
        assert a.ids == b.ids and b.complete
        assert np.array_equal(a.pooled("logmel", "meanstd"), b.pooled("logmel", "meanstd"))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "embedprobe.cli.main", *args]


def _committed_parts(parts: Path) -> set[str]:
    """Names of committed part files (a listing that races with the writer is just retried)."""
    for _ in range(50):
        try:
            return {p.name for p in parts.iterdir() if p.name.startswith("part.")} if parts.is_dir() else set()
        except FileNotFoundError:
            time.sleep(0.001)
    return set()


@pytest.mark.slow
def test_kill9_during_real_extraction_resumes(tmp_path: Path) -> None:
    """kill -9 the real `embedprobe extract` mid-extraction, again and again, then finish.

    Each run is killed a random 0-50 ms after it committed its first new part, so it dies
    mid-extraction however fast the machine is (this test used to wait for any change in the
    parts folder, such as a leftover temporary file being removed, and to sleep up to 0.4 s: on
    a fast machine the run could finish first, leaving fewer than 3 kills; and listing the folder
    while the writer deleted files could raise FileNotFoundError). Every failure message says
    what each run saw: exit code, output tail and the cache's state.
    """
    from fault_report import cache_state, tail

    root = write_corpus("emodb", tmp_path / "c", n_speakers=8, clips_per_class=6)
    args = ["extract", "--model", "logmel-128", "--corpus", "emodb", "--root", str(root),
            "--frames", "--batch-size", "4", "-q"]
    env = dict(os.environ, EMBEDPROBE_NO_PROGRESS="1")
    ref = subprocess.run(_cli(*args, "--out", str(tmp_path / "ref")), capture_output=True, text=True, env=env)
    assert ref.returncode == 0, f"reference run: exit {ref.returncode}\n    {tail(ref.stderr)}"
    out = tmp_path / "killed"
    cache, parts = out / "emodb__logmel-128.h5", out / "emodb__logmel-128.h5.parts"
    rnd = random.Random(1234)
    n_before, kills, seen = -1, 0, []

    def report() -> str:
        return "\n".join(seen) + "\n" + cache_state(cache)

    for run in range(12):
        if kills >= 5:
            break
        before = _committed_parts(parts)
        p = subprocess.Popen(_cli(*args, "--out", str(out)), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.time()
        while p.poll() is None and not (_committed_parts(parts) - before) and time.time() - t0 < 120:
            time.sleep(0.005)  # until this run has committed a part of its own (mid-extraction)
        time.sleep(rnd.uniform(0.0, 0.05))
        killed = p.poll() is None
        if killed:
            os.kill(p.pid, signal.SIGKILL)
            kills += 1
        _, err = p.communicate(timeout=60)  # reaped: its flock is released
        seen.append(f"run {run}: {'killed' if killed else 'not killed'} after {time.time() - t0:.2f} s, "
                    f"exit {p.returncode}, output:\n    {tail(err, 6)}\n  {cache_state(cache)}")
        assert killed or p.returncode == 0, f"a run that was not killed failed\n{report()}"
        if cache.exists() or parts.exists():
            with open_cache(cache) as r:  # opens after every kill
                n = r.n_clips
                assert len(set(r.ids)) == n, f"a clip is stored twice\n{report()}"
                assert n >= n_before, f"committed clips were lost: {n} < {n_before}\n{report()}"
                n_before = n
        if not killed:
            break  # it finished: nothing left to kill
    assert kills >= 3, f"only {kills} runs were killed mid-extraction\n{report()}"
    done = subprocess.run(_cli(*args, "--out", str(out)), capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"final run: exit {done.returncode}\n    {tail(done.stderr)}\n{report()}"
    with open_cache(cache) as a, open_cache(tmp_path / "ref" / "emodb__logmel-128.h5") as b:
        assert a.complete and sorted(a.ids) == sorted(b.ids) and len(a.ids) == len(set(a.ids)), report()
        assert np.allclose(a.pooled("logmel", "meanstd", b.ids), b.pooled("logmel", "meanstd")), report()
        fa, fb = a.frames("logmel", b.ids), b.frames("logmel")
        bad = [i for i, x, y in zip(b.ids, fa, fb, strict=True) if not np.array_equal(x, y)]
        assert not bad, f"frames differ from an uninterrupted run for {bad[:5]}\n{report()}"


def test_cli_extract_info_list(emodb_root: Path, tmp_path: Path) -> None:
    import json

    env = dict(os.environ, EMBEDPROBE_NO_PROGRESS="1")
    r = subprocess.run(_cli("extract", "--model", "logmel-128", "--corpus", "emodb", "--root",
                            str(emodb_root), "--out", str(tmp_path)), capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "535 new" in r.stderr and "boredom 81" in r.stderr
    info = subprocess.run(_cli("info", str(tmp_path / "emodb__logmel-128.h5"), "--json"),
                          capture_output=True, text=True)
    data = json.loads(info.stdout)
    assert data["n_clips"] == 535 and data["n_errors"] == 0 and data["complete"] is True
    assert data["layers"] == ["logmel"]
    lst = subprocess.run(_cli("list", "extractors", "--json"), capture_output=True, text=True)
    names = {row["name"] for row in json.loads(lst.stdout)}
    assert {"logmel-128", "egemaps", "ge2e"} <= names
    bad = subprocess.run(_cli("extract", "--model", "nope", "--corpus", "emodb", "--root",
                              str(emodb_root), "--out", str(tmp_path)), capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "logmel-128" in bad.stderr


def test_augmented_copies_are_cached_keyed_and_resumed(tmp_path: Path) -> None:
    from embedprobe.augment.copies import read_records

    root = write_corpus("emodb", tmp_path / "c", n_speakers=2, clips_per_class=1)
    plain = extract(_cfg(root, tmp_path / "out"), progress=False)
    cfg = _cfg(root, tmp_path / "out", augment="paper", copies=2, augment_seed=7, batch_size=3)
    s = extract(cfg, progress=False)
    assert s.cache.name == "emodb__logmel-128__aug-paper-s7.h5" and s.complete
    with open_cache(plain.cache) as p, open_cache(s.cache) as a:
        assert sorted(a.ids) == sorted(f"{i}@{k}" for i in p.ids for k in (0, 1))
        aug = a.identity["augment"]
        assert aug["name"] == "paper" and aug["seed"] == 7 and aug["copies"] == 2 and aug["fingerprint"]
        x0 = a.pooled("logmel", "mean", [f"{i}@0" for i in p.ids])
        x1 = a.pooled("logmel", "mean", [f"{i}@1" for i in p.ids])
        orig = p.pooled("logmel", "mean")
        assert not np.allclose(x0, orig, atol=1e-3) and not np.allclose(x0, x1, atol=1e-3)
        fold = p.manifest.folds()[0]
        assert a.manifest.splits[fold][:2] == [p.manifest.splits[fold][0]] * 2
    records = read_records(s.cache)
    assert set(records) == {f"{i}@{k}" for i in p.ids for k in (0, 1)}
    assert all(r["seed"] == 7 and r["params"] for r in records.values())
    # same seed -> same copies (reproducible); a re-run has nothing to do
    again = extract(_cfg(root, tmp_path / "again", augment="paper", copies=2, augment_seed=7), progress=False)
    with open_cache(s.cache) as a, open_cache(again.cache) as b:
        assert np.array_equal(a.pooled("logmel", "mean", b.ids), b.pooled("logmel", "mean"))
    assert extract(cfg, progress=False).n_new == 0

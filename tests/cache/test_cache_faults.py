"""Faults a user meets while writing a cache: a full disk (in a batch, in a merge, in the final
merge), a read-only folder, Ctrl-C mid-run and in the final merge, and a slow disk.

Each ends with one sentence (never a traceback), keeps everything committed before, leaves no
temporary file, and the same command resumes. Real small disks are tmpfs mounts where this
machine allows mounting (root outside a locked-down sandbox); elsewhere those tests skip and the
injected-error tests cover the same paths. Failure messages say what the test saw: exit code,
output tail, the cache's state.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cache_synth import kwargs, make_manifest, result
from fault_report import cache_state, communicate, tail
from test_cache_crash import check_values

import embedprobe.cache.diskerrors as diskerrors_mod
import embedprobe.cache.durable as durable_mod
import embedprobe.cache.rangeio as rangeio_mod
import embedprobe.cache.snapshot as snapshot_mod
from embedprobe.cache import AsyncWriter, CacheWriter, open_cache
from embedprobe.cache.diskerrors import CacheDiskFullError, CacheReadOnlyError
from embedprobe.cache.locks import FileLock

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CLI_CHILD = HERE / "cli_child.py"


def _tmp_files(folder: Path) -> list[str]:
    """Temporary files a writer left (part temps, main temps, header temps)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp" in p.name)


def _flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def _one_sentence(err: str) -> None:
    assert "Traceback" not in err and "Exception ignored" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, err


# -- disk full and read-only, injected (runs everywhere) -------------------------------------------

def _resume_to_complete(path, m, pending):
    """The same run again: it finds ``pending`` still to do, writes them and finishes the cache."""
    with CacheWriter(path, **kwargs(m)) as w:
        assert w.pending_ids() == pending, cache_state(path)
        w.write([result(c) for c in w.pending_ids()])
        w.finalize()
    with open_cache(path) as r:
        assert r.complete and r.ids == m.ids, cache_state(path)
        check_values(r, r.ids)

def test_full_disk_in_a_batch_keeps_every_committed_batch_and_resumes(tmp_path, monkeypatch):
    m = make_manifest(24)
    path = tmp_path / "c.h5"
    real, calls = durable_mod.commit_bytes, []

    def fills_up(data, tmp, final):
        calls.append(tmp)
        if len(calls) == 3:
            tmp.write_bytes(bytes(memoryview(data[0])[:100]))  # what a full disk leaves behind
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        return real(data, tmp, final)

    monkeypatch.setattr(durable_mod, "commit_bytes", fills_up)
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids[:4]])
        w.write([result(c) for c in m.ids[4:8]])
        with pytest.raises(CacheDiskFullError) as e:
            w.write([result(c) for c in m.ids[8:12]])
    msg = str(e.value)
    assert "\n" not in msg and "free at least" in msg and "re-run the same command" in msg, msg
    assert "final merge" in msg and "nothing committed before is lost" in msg, msg
    assert _tmp_files(tmp_path) == [], cache_state(path)
    with open_cache(path) as r:
        assert r.ids == m.ids[:8], cache_state(path)
    monkeypatch.undo()
    _resume_to_complete(path, m, pending=m.ids[8:])  # space freed: the same run resumes


def test_full_disk_in_the_final_merge_keeps_the_parts(tmp_path, monkeypatch):
    m = make_manifest(16)
    path = tmp_path / "c.h5"
    real = snapshot_mod.write_merged_checked

    def fills_up(dst, *a, **k):
        Path(dst).write_bytes(b"\x89HDF\r\n" + bytes(1000))  # a half-written main temp
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(snapshot_mod, "write_merged_checked", fills_up)
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids])
        with pytest.raises(CacheDiskFullError) as e:
            w.finalize()
    assert "final merge" in str(e.value) and "full copy" in str(e.value), str(e.value)
    assert _tmp_files(tmp_path) == [] and not path.exists(), cache_state(path)
    with open_cache(path) as r:
        assert r.ids == m.ids and not r.complete
    # too little space is refused before the copy starts
    monkeypatch.setattr(snapshot_mod, "write_merged_checked", real)
    monkeypatch.setattr(diskerrors_mod, "free_bytes", lambda folder: 1000)
    with CacheWriter(path, **kwargs(m)) as w, pytest.raises(CacheDiskFullError, match="too little space"):
        w.finalize()
    assert _tmp_files(tmp_path) == [], cache_state(path)
    monkeypatch.undo()
    _resume_to_complete(path, m, pending=[])


def test_full_disk_during_compaction_keeps_the_parts(tmp_path, monkeypatch):
    m = make_manifest(16)
    path = tmp_path / "c.h5"
    monkeypatch.setattr(diskerrors_mod, "free_bytes", lambda folder: 1000)  # merging is skipped
    with CacheWriter(path, **kwargs(m), compact_every=2) as w:
        for k in range(0, 16, 2):
            w.write([result(c) for c in m.ids[k:k + 2]])
        with open_cache(path) as r:
            assert r.ids == m.ids and r.info()["n_parts"] == 8
    assert _tmp_files(tmp_path) == []


def test_read_only_folder_is_one_sentence(tmp_path, monkeypatch):
    m = make_manifest(8)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids])
        w.finalize()

    def denied(self, *, shared=False):  # what os.open of the lock file gives in a read-only folder
        raise PermissionError(errno.EROFS, "Read-only file system", str(self.path))

    monkeypatch.setattr(FileLock, "acquire", denied)
    with pytest.raises(CacheReadOnlyError) as e:
        CacheWriter(path, **kwargs(m))
    msg = str(e.value)
    assert "\n" not in msg and "cannot be written" in msg and "--out" in msg, msg
    with open_cache(path) as r:  # reading needs no write access
        assert r.complete and r.ids == m.ids


# -- the queue between model and disk --------------------------------------------------------------
def test_background_writer_keeps_at_most_one_batch_uncommitted(tmp_path, monkeypatch):
    """With a slow disk, the caller waits instead of piling batches up: a kill -9 at any moment
    loses at most one handed-over batch (plus the one the caller is still filling)."""
    m = make_manifest(24)
    path = tmp_path / "c.h5"
    real = CacheWriter.write
    committed: list[int] = []

    def slow_write(self, results, errors=()):
        time.sleep(0.15)
        real(self, results, errors)
        committed.append(len(results))

    monkeypatch.setattr(CacheWriter, "write", slow_write)
    uncommitted = []
    with CacheWriter(path, **kwargs(m)) as w, AsyncWriter(w) as aw:
        for k in range(0, 24, 4):
            aw.write([result(c) for c in m.ids[k:k + 4]])
            uncommitted.append(k // 4 + 1 - len(committed))
        aw.flush()
    assert max(uncommitted) <= 1, f"batches handed over but not committed, after each write: {uncommitted}"
    assert len(committed) == 6


# -- real small disks (tmpfs) ----------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """``mount(size) -> folder`` on a fresh tmpfs, or a skip where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(size: str, name: str = "disk") -> Path:
        d = tmp_path / name
        d.mkdir()
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                               capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"cannot mount a tmpfs here ({e}); the injected-error tests cover this")
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the injected-error tests cover this")
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "embedprobe.cli.main", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "EMBEDPROBE_NO_PROGRESS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small synthetic EmoDB with a reference cache made in one uninterrupted run."""
    from embedprobe.corpora.synthetic import write_corpus

    base = tmp_path_factory.mktemp("faults")
    root = write_corpus("emodb", base / "c", n_speakers=4, clips_per_class=3)
    args = ["extract", "--model", "logmel-128", "--corpus", "emodb", "--root", str(root), "--frames",
            "--batch-size", "4", "-q"]
    ref = subprocess.run(_cli(*args, "--out", str(base / "ref")), capture_output=True, text=True, env=_env())
    assert ref.returncode == 0, tail(ref.stderr)
    return args, base / "ref" / "emodb__logmel-128.h5"


def _same_as_reference(cache: Path, ref: Path) -> None:
    with open_cache(cache) as a, open_cache(ref) as b:
        assert a.complete and a.ids == b.ids, cache_state(cache)
        np.testing.assert_array_equal(a.pooled("logmel", "meanstd"), b.pooled("logmel", "meanstd"))
        assert all(np.array_equal(x, y) for x, y in zip(a.frames("logmel"), b.frames("logmel"), strict=True))


def _extract_on_a_full_disk(args, out: Path, cache: Path):
    """Run the CLI into ``out`` on a disk too small for it: one sentence, exit 2, no temp file."""
    r = subprocess.run(_cli(*args, "--out", str(out)), capture_output=True, text=True, env=_env())
    seen = f"exit {r.returncode}\n    {tail(r.stderr)}\n{cache_state(cache)}"
    assert r.returncode == 2, seen
    _one_sentence(r.stderr)
    assert "free at least" in _flat(r.stderr), seen
    assert _tmp_files(out) == [], seen
    return r, seen


@pytest.mark.slow
def test_cli_on_a_full_disk_then_resume(corpus, small_disk):
    args, ref = corpus
    disk = small_disk("1m")
    out = disk / "out"
    cache = out / "emodb__logmel-128.h5"
    r, seen = _extract_on_a_full_disk(args, out, cache)
    assert "is full" in _flat(r.stderr) and "resumes" in _flat(r.stderr), seen
    if cache.exists() or cache.with_name(cache.name + ".parts").exists():
        with open_cache(cache) as c:
            n_kept = c.n_clips
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    r = subprocess.run(_cli(*args, "--out", str(out)), capture_output=True, text=True, env=_env())
    assert r.returncode == 0, f"exit {r.returncode}\n    {tail(r.stderr)}\n{cache_state(cache)}"
    assert f"{n_kept} already cached" in _flat(r.stderr), r.stderr
    _same_as_reference(cache, ref)


@pytest.mark.slow
def test_cli_with_400_kb_free_is_one_sentence_and_leaves_no_temp_file(corpus, small_disk):
    args, _ = corpus
    disk = small_disk("2m")
    free = diskerrors_mod.free_bytes(disk)
    (disk / "fill").write_bytes(bytes(max(0, free - 400_000)))
    out = disk / "out"
    cache = out / "emodb__logmel-128.h5"
    _, seen = _extract_on_a_full_disk(args, out, cache)
    if cache.exists() or cache.with_name(cache.name + ".parts").exists():
        assert "opens" in cache_state(cache), seen


@pytest.mark.slow
def test_cli_in_a_read_only_folder(corpus, small_disk):
    args, _ = corpus
    disk = small_disk("64m")
    out = disk / "out"
    cache = out / "emodb__logmel-128.h5"
    r = subprocess.run(_cli(*args, "--out", str(out)), capture_output=True, text=True, env=_env())
    assert r.returncode == 0, tail(r.stderr)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    for extra in ([], ["--overwrite"]):  # a finished cache, and a new one
        r = subprocess.run(_cli(*args, "--out", str(out), *extra), capture_output=True, text=True, env=_env())
        seen = f"exit {r.returncode}\n    {tail(r.stderr)}\n{cache_state(cache)}"
        assert r.returncode == 2, seen
        _one_sentence(r.stderr)
        assert "cannot be written" in _flat(r.stderr), seen
    info = subprocess.run(_cli("info", str(cache)), capture_output=True, text=True, env=_env())
    assert info.returncode == 0, tail(info.stderr)


# -- Ctrl-C at every phase (the real command) ------------------------------------------------------
def _committed(cache: Path) -> bool:
    try:
        return any(p.name.startswith("part.") for p in cache.with_name(cache.name + ".parts").iterdir())
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["mid-run", "final merge"])
def test_ctrl_c_at_every_phase_ends_with_the_interrupted_line(corpus, tmp_path, phase):
    """Mid-run: after the first committed batch; final merge: while the merge copies (slowed
    down by the child). Ctrl-C during start-up, before any cache file exists, is the CLI's own
    handling (tests/cli)."""
    args, ref = corpus
    out = tmp_path / "out"
    cache = out / "emodb__logmel-128.h5"
    mark = tmp_path / "merging"
    env = {**_env(), "EMBEDPROBE_TEST_MARK": str(mark)}
    cmd = [sys.executable, str(CLI_CHILD), *args, "--out", str(out)]  # its final merge is slow and marked
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    ready = {"mid-run": lambda: _committed(cache), "final merge": mark.exists}[phase]
    while p.poll() is None and not ready() and time.time() - t0 < 120:
        time.sleep(0.002)
    running = p.poll() is None
    if running:
        p.send_signal(signal.SIGINT)
    outs, err = communicate(p, 120, f"{phase}: the Ctrl-C'd extraction (sent: {running})")
    seen = f"{phase}: exit {p.returncode}\n    {tail(outs + err)}\n{cache_state(cache)}"
    assert running, f"the run ended before the Ctrl-C\n{seen}"
    assert p.returncode == 130, seen
    assert "interrupted" in err and "re-run the same command" in _flat(err), seen
    assert "Traceback" not in err and "Exception ignored" not in err, seen
    assert _tmp_files(out) == [] if out.exists() else True, seen
    if cache.exists() or cache.with_name(cache.name + ".parts").exists():
        with open_cache(cache) as r:
            assert not r.complete, seen
    done = subprocess.run(_cli(*args, "--out", str(out)), capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"resume: exit {done.returncode}\n    {tail(done.stderr)}\n{seen}"
    _same_as_reference(cache, ref)


def test_sigint_in_a_library_merge_is_raised_after_cleaning_up(tmp_path, monkeypatch):
    """In-process: a Ctrl-C that arrives while the final merge copies is raised as
    KeyboardInterrupt between blocks; the temp file is removed and the parts are intact."""
    import embedprobe.cache.interrupts as interrupts_mod

    m = make_manifest(40)
    path = tmp_path / "c.h5"
    monkeypatch.setattr(rangeio_mod, "SPAN_BYTES", 256)
    real, calls = interrupts_mod.check_interrupt, []

    def poke():
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)  # the handler runs; with deferral it only sets a flag
        real()

    monkeypatch.setattr(interrupts_mod, "check_interrupt", poke)
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids])
        with pytest.raises(KeyboardInterrupt):
            w.finalize()
    assert threading.current_thread() is threading.main_thread()
    assert _tmp_files(tmp_path) == [] and not path.exists(), cache_state(path)
    with open_cache(path) as r:
        assert r.ids == m.ids and not r.complete
    monkeypatch.undo()
    with CacheWriter(path, **kwargs(m)) as w:
        w.finalize()
    with open_cache(path) as r:
        assert r.complete

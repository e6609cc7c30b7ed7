"""``extract --engine ray`` on a local two-node Ray cluster: the same cache as the local engine,
a killed worker or removed node loses and duplicates nothing, a killed driver resumes.

One cluster for the module (``ray.cluster_utils.Cluster``, one CPU per node); the extractor is
log-mel (cheap), wrapped where a test needs a worker to die or to go slowly. The wrappers are
defined here and sent to the workers by value (``ray.cloudpickle.register_pickle_by_value``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'embedprobe[ray]')")

from ray.cluster_utils import Cluster  # noqa: E402

from embedprobe.cache import open_cache  # noqa: E402
from embedprobe.corpora.synthetic import write_corpus  # noqa: E402
from embedprobe.extractors import create  # noqa: E402
from embedprobe.extractors.logmel import LogMel  # noqa: E402
from embedprobe.pipeline.extract import ExtractConfig, extract  # noqa: E402

pytestmark = pytest.mark.slow
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class CrashOnce(LogMel):
    """Log-mel whose worker process exits (like ``kill -9``) at its ``after``-th clip, once per marker."""

    def __init__(self, spec, *, marker: str, after: int, **kw):
        super().__init__(spec, **kw)
        self.marker, self.after, self.n = marker, after, 0

    def embed(self, wav):
        self.n += 1
        if self.n == self.after:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))  # the first to get here dies
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return super().embed(wav)


class CrashOn(LogMel):
    """Log-mel whose worker process exits whenever it is given a clip of ``n_samples`` samples."""

    def __init__(self, spec, *, n_samples: int, **kw):
        super().__init__(spec, **kw)
        self.n_samples = n_samples

    def embed(self, wav):
        if len(wav) == self.n_samples:
            os._exit(1)
        return super().embed(wav)


class Slow(LogMel):
    """Log-mel that takes ``delay`` seconds a clip and leaves a file per clip in ``trace``."""

    def __init__(self, spec, *, trace: str, delay: float, **kw):
        super().__init__(spec, **kw)
        self.trace, self.delay = trace, delay

    def embed(self, wav):
        time.sleep(self.delay)
        Path(self.trace, f"{os.getpid()}-{time.monotonic_ns()}").touch()
        return super().embed(wav)


class WithTorch(LogMel):
    """Log-mel that imports torch when it loads (as the torch families do)."""

    def _load(self):
        import torch  # noqa: F401

        super()._load()


def _spec():
    return create("logmel-128").spec


@pytest.fixture(scope="module")
def cluster():
    # each node claims a GPU (none is there: log-mel never touches it; Ray only hands out its id)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1, num_gpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, include_dashboard=False, logging_level="warning")
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = write_corpus("emodb", tmp_path_factory.mktemp("corpus"), n_speakers=2, clips_per_class=2)
    bad = sorted((root / "wav").glob("*.wav"))[3]
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)  # one clip that cannot be decoded
    return root


def _cfg(root: Path, out: Path, **kw) -> ExtractConfig:
    base = dict(model="logmel-128", corpus="emodb", root=str(root), out=str(out), batch_size=4, chunk_s=0.7)
    return ExtractConfig(**(base | kw))


@pytest.fixture(scope="module")
def local(corpus, tmp_path_factory):
    """The local engine's cache of the corpus: ids -> pooled mean+std, and the failed ids."""
    s = extract(_cfg(corpus, tmp_path_factory.mktemp("local")), progress=False)
    with open_cache(s.cache) as r:
        return {"ids": sorted(r.ids), "pooled": dict(zip(r.ids, r.pooled("logmel", "meanstd"), strict=True)),
                "errors": sorted((e["id"], e["reason"]) for e in r.errors)}


def _same_as_local(cache: Path, local: dict) -> None:
    with open_cache(cache) as r:
        assert r.complete and len(r.ids) == len(set(r.ids)), "a clip is stored twice"
        assert sorted(r.ids) == local["ids"]
        assert sorted((e["id"], e["reason"]) for e in r.errors) == local["errors"]
        got = r.pooled("logmel", "meanstd", local["ids"])
    want = np.stack([local["pooled"][i] for i in local["ids"]])
    assert np.array_equal(got, want)


def test_ray_equals_local_clip_for_clip(cluster, corpus, local, tmp_path):
    assert local["errors"] and len(local["ids"]) > 20  # the bad clip fails; clips of 1-2.5 s run in chunks
    s = extract(_cfg(corpus, tmp_path, engine="ray", ray_workers=2), progress=False)
    assert s.engine == "ray" and s.procs == 2 and s.retried == 0 and s.complete
    assert s.n_errors == 1 and "" not in {reason for _, _, reason in s.errors}
    _same_as_local(s.cache, local)
    with open_cache(s.cache) as r:
        runtime = r.provenance["runtime"]
        assert runtime["engine"] == "ray" and runtime["ray"]["workers"] == 2 and runtime["ray"]["nodes"] == 2
    again = extract(_cfg(corpus, tmp_path), progress=False)  # the local engine resumes a Ray cache
    assert again.n_new == 0 and again.n_done_before == s.n_clips - 1 and again.complete  # the error is retried


def test_a_worker_runs_on_as_many_threads_as_its_cpus(corpus):
    """Ray starts workers with OMP_NUM_THREADS=1; the actor sets torch's threads to --cpus-per-worker."""
    torch = pytest.importorskip("torch")
    from embedprobe.audio.decode import AudioConfig
    from embedprobe.pipeline.clip_embedder import ClipEmbedder
    from embedprobe.pipeline.ray_extract import ClipActor

    before = torch.get_num_threads()
    embedder = ClipEmbedder(WithTorch(_spec()), ("logmel",), (), 1, AudioConfig(sample_rate=16000))
    actor = ClipActor(embedder, before + 2, str(corpus))  # the class itself, in this process
    try:
        assert actor.error is None and actor.audio_visible and torch.get_num_threads() == before + 2
    finally:
        actor._threads.close()
    assert torch.get_num_threads() == before
    elsewhere = ClipActor(embedder, 1, str(corpus / "elsewhere"))
    elsewhere._threads.close()
    assert not elsewhere.audio_visible


def test_gpu_workers_run_on_the_gpu_ray_gives_them(cluster, corpus, local, tmp_path):
    s = extract(_cfg(corpus, tmp_path, engine="ray", ray_workers=2, gpus_per_worker=0.5), progress=False)
    _same_as_local(s.cache, local)
    with open_cache(s.cache) as r:
        ray_record = r.provenance["runtime"]["ray"]
        assert r.provenance["config"]["device"] == "cpu"  # as given; the workers use their GPU
    assert ray_record["gpus_per_worker"] == 0.5 and ray_record["devices"] == ["cuda (GPU 0)"]


def test_a_killed_worker_loses_and_duplicates_nothing(cluster, corpus, local, tmp_path):
    marker = tmp_path / "crashed"
    ext = CrashOnce(_spec(), marker=str(marker), after=3)
    s = extract(_cfg(corpus, tmp_path / "out", engine="ray", ray_workers=2), progress=False, extractor=ext)
    assert marker.exists(), "no worker was killed"
    assert s.retried >= 1 and s.complete
    _same_as_local(s.cache, local)


def test_a_clip_that_kills_every_worker_is_an_error_not_a_loop(cluster, corpus, local, tmp_path):
    import soundfile as sf

    poison = sorted((corpus / "wav").glob("*.wav"))[5]
    ext = CrashOn(_spec(), n_samples=sf.info(poison).frames)
    s = extract(_cfg(corpus, tmp_path, engine="ray", ray_workers=2, chunk_s=30.0), progress=False, extractor=ext)
    assert s.retried >= 1 and s.complete
    reasons = {cid: reason for cid, _, reason in s.errors}
    assert "died 3 times" in reasons[poison.stem] and len(reasons) == 2  # and the undecodable clip
    with open_cache(s.cache) as r:
        assert sorted(r.ids) == [i for i in local["ids"] if i != poison.stem] and len(set(r.ids)) == len(r.ids)


def test_a_killed_driver_resumes(cluster, corpus, local, tmp_path):
    """SIGKILL a driver process once it has committed clips; the next run keeps them and finishes."""
    out, trace = tmp_path / "out", tmp_path / "trace"
    trace.mkdir()
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import ray
        import test_ray_extract as t
        from embedprobe.pipeline.extract import extract
        ray.init(address={cluster.address!r}, log_to_driver=False, include_dashboard=False,
                 logging_level="warning")
        ext = t.Slow(t._spec(), trace={str(trace)!r}, delay=0.1)
        extract(t._cfg(t.Path({str(corpus)!r}), t.Path({str(out)!r}), engine="ray", ray_workers=2,
                       batch_size=2), progress=False, extractor=ext)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=dict(os.environ, EMBEDPROBE_NO_PROGRESS="1"))
    parts = out / "emodb__logmel-128.h5.parts"
    t0 = time.time()
    while p.poll() is None and len(list(trace.iterdir())) < 8 and time.time() - t0 < 120:
        time.sleep(0.01)
    while p.poll() is None and not list(parts.glob("part.*")) and time.time() - t0 < 120:
        time.sleep(0.005)
    assert p.poll() is None, f"the driver ended before it was killed: {p.stderr.read().decode()[-2000:]}"
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=60)
    with open_cache(out / "emodb__logmel-128.h5") as r:
        kept = set(r.ids)
    assert 0 < len(kept) < len(local["ids"])
    s = extract(_cfg(corpus, out, engine="ray", ray_workers=2), progress=False)
    assert s.n_done_before >= len(kept) and s.complete
    _same_as_local(s.cache, local)


def test_a_removed_node_loses_and_duplicates_nothing(cluster, corpus, local, tmp_path):
    trace = tmp_path / "trace"
    trace.mkdir()
    ext = Slow(_spec(), trace=str(trace), delay=0.1)
    cfg = _cfg(corpus, tmp_path / "out", engine="ray", ray_workers=2, batch_size=2)
    box: dict = {}
    run = threading.Thread(target=lambda: box.update(s=extract(cfg, progress=False, extractor=ext)))
    run.start()
    t0 = time.time()
    while run.is_alive() and len({f.name.split("-")[0] for f in trace.iterdir()}) < 2 and time.time() - t0 < 120:
        time.sleep(0.01)  # until both workers are embedding
    assert run.is_alive(), "the run ended before the node could be removed"
    worker_node = [n for n in cluster.list_all_nodes() if n is not cluster.head_node][0]
    cluster.remove_node(worker_node)
    run.join(timeout=300)
    cluster.add_node(num_cpus=1, num_gpus=1)  # for any later test
    s = box["s"]
    assert s.retried >= 1 and s.complete
    _same_as_local(s.cache, local)

"""Thread policy: one thread for small work, more only for big work on free cores; settings restored.

No timings here (the figures behind the policy are in ``benchmarks/probe_speed.py --parts
crossover``) and no dependence on the CPU: the core counts and the load are mocked.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from embedprobe.common import threads
from embedprobe.common.threads import (
    check_threads,
    choose_threads,
    cpu_cores,
    free_cores,
    limit_threads,
)
from embedprobe.errors import BadValueError

BIG = 1e12  # floating-point operations of one call: far above any crossover


def _pools() -> dict[str, int]:
    return {f"{i['internal_api']}:{i['filepath']}": i["num_threads"] for i in threadpool_info()}


@pytest.mark.parametrize("cores", [1, 2, 8, 64])
def test_small_work_gets_one_thread_whatever_the_cores(cores: int) -> None:
    for work in (0, 1e3, 5e5, 6 * 256 * 88 * 4, 6 * 256 * (88 * 128 + 128 * 256 + 256 * 4)):
        assert choose_threads(work, cores=cores, free=float(cores)) == 1


def test_big_work_gets_the_free_cores() -> None:
    assert choose_threads(BIG, cores=2, free=2.0) == 2
    assert choose_threads(BIG, cores=8, free=8.0) == 8
    assert choose_threads(BIG, cores=8, free=3.4) == 3  # never more than the free cores
    assert choose_threads(BIG, cores=8, free=0.0) == 1  # a busy machine: one thread
    assert choose_threads(BIG, cores=1, free=1.0) == 1
    # in between, one thread per MIN_FLOPS_PER_THREAD of one call
    assert choose_threads(3.5 * threads.MIN_FLOPS_PER_THREAD, cores=8, free=8.0) == 3


def test_free_cores_is_only_read_when_more_threads_could_pay(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(threads, "free_cores", lambda cores: calls.append(cores) or 0.0)
    assert choose_threads(1e3, cores=4) == 1 and calls == []
    assert choose_threads(BIG, cores=4) == 1 and calls == [4]


def test_requested_threads_win_and_are_validated() -> None:
    assert choose_threads(1e3, requested=3, cores=2, free=0.0) == 3
    assert check_threads(None) is None and check_threads(2) == 2
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(BadValueError, match="threads"):
            choose_threads(BIG, requested=bad)


def _loadavg(monkeypatch, tmp_path, running: int) -> None:
    f = tmp_path / "loadavg"
    f.write_text(f"3.10 2.50 1.20 {running}/321 4567\n")
    monkeypatch.setattr(threads, "_LOADAVG", f)


def test_free_cores_from_the_runnable_count(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    _loadavg(monkeypatch, tmp_path, 1)  # this process alone
    assert free_cores(2, interval=0) == 2.0
    _loadavg(monkeypatch, tmp_path, 2)
    assert free_cores(2, interval=0) == 1.0
    _loadavg(monkeypatch, tmp_path, 7)  # three busy processes and more
    assert free_cores(2, interval=0) == 0.0
    # a container with 4 of a host's 64 cores: others' share is scaled to ours
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 64)
    _loadavg(monkeypatch, tmp_path, 33)
    assert free_cores(4, interval=0) == 2.0


def test_cpu_cores_respects_a_cpu_quota(monkeypatch) -> None:
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
    assert cpu_cores() == 4
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: 1.5)
    assert cpu_cores() == 2
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: 0.2)
    assert cpu_cores() == 1


def test_limit_threads_sets_and_restores_torch_and_blas() -> None:
    before_torch = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        pools = _pools()
        with limit_threads(1) as n:
            assert n == 1 and torch.get_num_threads() == 1
            assert set(_pools().values()) == {1}
            with limit_threads(2):  # nested: the inner one restores the outer one's settings
                assert torch.get_num_threads() == 2
            assert torch.get_num_threads() == 1 and set(_pools().values()) == {1}
        assert torch.get_num_threads() == 3 and _pools() == pools
        with pytest.raises(RuntimeError), limit_threads(1):
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 3 and _pools() == pools
        with pytest.raises(BadValueError):
            limit_threads(0).__enter__()
    finally:
        torch.set_num_threads(before_torch)


def _data(n: int = 120, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], n // 3)
    return rng.normal(0, 1, (n, d)) + y[:, None], y


def test_probe_fits_small_work_on_one_thread_and_restores(monkeypatch) -> None:
    from embedprobe.probes import create

    monkeypatch.setattr(threads, "cpu_cores", lambda: 8)
    monkeypatch.setattr(threads, "free_cores", lambda cores: 8.0)
    X, y = _data()
    before = torch.get_num_threads()
    from embedprobe.probes import PROBES, TorchProbe

    for name in [n for n, entry in PROBES.items() if issubclass(entry.cls, TorchProbe)]:  # every torch probe
        p = create(name, max_steps=60, min_steps=0, random_state=0).fit(X, y)
        assert p.n_threads_ == 1 and p.prediction_threads(len(X)) == 1
        assert torch.get_num_threads() == before


def test_probe_uses_more_threads_when_the_work_pays(monkeypatch) -> None:
    from embedprobe.probes import create

    monkeypatch.setattr(threads, "MIN_FLOPS_PER_THREAD", 1.0)  # every call counts as big
    monkeypatch.setattr(threads, "cpu_cores", lambda: 2)
    monkeypatch.setattr(threads, "free_cores", lambda cores: 2.0)
    X, y = _data()
    before = torch.get_num_threads()
    p = create("linear", max_steps=60, min_steps=0, random_state=0).fit(X, y)
    assert p.n_threads_ == 2 and p.prediction_threads(len(X)) == 2
    assert torch.get_num_threads() == before
    monkeypatch.setattr(threads, "free_cores", lambda cores: 0.0)  # busy: back to one
    assert create("linear", max_steps=60, random_state=0).fit(X, y).n_threads_ == 1


def test_probe_n_threads_overrides_and_is_validated() -> None:
    from embedprobe.probes import create

    X, y = _data()
    p = create("mlp", max_steps=60, min_steps=0, random_state=0, n_threads=2).fit(X, y)
    assert p.n_threads_ == 2 and p.prediction_threads(10**6) == 2
    q = create("mlp", max_steps=60, min_steps=0, random_state=0, n_threads=1).fit(X, y)
    np.testing.assert_allclose(p.predict_proba(X), q.predict_proba(X), atol=1e-5)
    with pytest.raises(BadValueError, match="n_threads"):
        create("linear", n_threads=0).fit(X, y)


def test_extraction_records_its_threads_and_validates_them(tmp_path) -> None:
    from embedprobe.cache import open_cache
    from embedprobe.corpora.synthetic import write_corpus
    from embedprobe.pipeline.extract import ExtractConfig, extract

    root = write_corpus("emodb", tmp_path / "c", n_speakers=2, clips_per_class=1)
    before = torch.get_num_threads()
    cfg = ExtractConfig(model="logmel-128", corpus="emodb", root=str(root), out=str(tmp_path / "o"), threads=1)
    summary = extract(cfg, progress=False)
    assert torch.get_num_threads() == before
    with open_cache(summary.cache) as r:
        assert r.provenance["runtime"]["threads"] == 1
    with pytest.raises(BadValueError, match="threads"):
        extract(ExtractConfig(model="logmel-128", corpus="emodb", root=str(root), out=str(tmp_path / "p"),
                              threads=0), progress=False)

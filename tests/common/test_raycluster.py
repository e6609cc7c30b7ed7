"""Joining or starting a Ray cluster: an address where nothing answers is one sentence at once."""

from __future__ import annotations

import time

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'embedprobe[ray]')")

from embedprobe.common import raycluster  # noqa: E402
from embedprobe.errors import BadValueError  # noqa: E402


class _Stop(Exception):
    pass


@pytest.fixture
def init_calls(monkeypatch):
    """``ray.init`` replaced by a recorder (nothing is started); no cluster counts as connected."""
    calls: list[dict] = []

    def init(**kwargs):
        calls.append(kwargs)
        raise _Stop

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


def test_an_address_where_nothing_listens_is_one_sentence_at_once(init_calls):
    t0 = time.perf_counter()
    with pytest.raises(BadValueError) as err, raycluster.connected("127.0.0.1:1"):
        pass
    assert time.perf_counter() - t0 < 10 and not init_calls
    text = str(err.value)
    assert "127.0.0.1:1" in text and "ray start --head" in text and "\n" not in text


def test_ray_address_from_the_environment_is_checked_too(init_calls, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    with pytest.raises(BadValueError, match="127.0.0.1:1"), raycluster.connected():
        pass
    assert not init_calls


def test_a_ray_start_cluster_that_is_gone_is_passed_over(init_calls, monkeypatch):
    monkeypatch.setattr(raycluster, "_recorded_address", lambda: "127.0.0.1:1")
    with pytest.raises(_Stop), raycluster.connected(num_cpus=3):
        pass
    assert init_calls[0]["address"] == "local" and init_calls[0]["num_cpus"] == 3
    assert init_calls[0]["log_to_driver"] is False and init_calls[0]["logging_level"] == "error"


def test_a_running_ray_start_cluster_is_joined(init_calls, monkeypatch):
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        recorded = f"127.0.0.1:{server.getsockname()[1]}"
        monkeypatch.setattr(raycluster, "_recorded_address", lambda: recorded)
        with pytest.raises(_Stop), raycluster.connected(num_cpus=3):
            pass
    assert init_calls[0]["address"] == recorded and "num_cpus" not in init_calls[0]

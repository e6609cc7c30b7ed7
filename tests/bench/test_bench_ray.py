"""``embedprobe bench --engine ray`` on a local two-node Ray cluster: the local engine's numbers,
resume, errors and retries, and the one-sentence pip command without Ray.

One cluster (two nodes of one CPU each, ``ray.cluster_utils.Cluster``) serves the whole module;
the tests that need it skip, with the reason, where Ray is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tiny_bench import CORPORA_AB  # tests/bench/tiny_bench.py
from typer.testing import CliRunner

from embedprobe.bench import load_config, parse_config, run_bench
from embedprobe.bench.executor import Executor
from embedprobe.bench.progress import GridProgress
from embedprobe.bench.ray_executor import RayExecutor
from embedprobe.bench.spec import EngineSpec
from embedprobe.cli.main import app
from embedprobe.errors import BadValueError, EmbedprobeError
from embedprobe.pipeline.extract_config import ExtractConfig

TINY = """
[bench]
name = "tiny"
out = "{out}"
[extract]
models = ["logmel-128"]
cache_dir = "{cache}"
""" + CORPORA_AB + """[grid]
train = ["a", "b", "a+b"]
probes = ["linear"]
seeds = 1
[probe]
max_folds = 1
n_bootstrap = 20
"""
N_JOBS = 3
#: what differs between two runs of the same job: when, how long, on which cores
VOLATILE = ("created_unix", "seconds", "threads")


def write_config(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.toml"
    path.write_text(TINY.format(out=folder / "out", cache=folder / "cache"))
    return path


@pytest.fixture(scope="module")
def cluster() -> Any:
    """The address of a two-node local Ray cluster (one CPU per node) this process is connected to."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'embedprobe[ray]')")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield c.address
    ray.shutdown()
    c.shutdown()


def numbers(folder: Path) -> dict[str, dict[str, Any]]:
    """Every results record of the bench in ``folder``, less what differs between runs of a job."""
    out = {}
    for f in sorted((folder / "out" / "results").glob("*.json")):
        rec = json.loads(f.read_text().replace(str(folder), "FOLDER"))
        for k in VOLATILE:
            rec.pop(k, None)
        out[f.stem] = rec
    return out


def test_bench_on_ray_gives_the_local_results_and_a_rerun_runs_nothing(cluster, tmp_path: Path) -> None:
    local = run_bench(load_config(write_config(tmp_path / "local")), progress=False)
    cfg = load_config(write_config(tmp_path / "ray"), engine="ray", address=cluster)
    on_ray = run_bench(cfg, progress=False)
    assert local.count("done") == on_ray.count("done") == N_JOBS and on_ray.count("failed") == 0
    assert [e.status for e in on_ray.extractions] == ["done", "done"]
    assert json.loads((tmp_path / "ray" / "out" / "bench.json").read_text())["config"]["engine"]["engine"] == "ray"
    ray_results = tmp_path / "ray" / "out" / "results"
    got, want = numbers(tmp_path / "ray"), numbers(tmp_path / "local")
    assert sorted(got) == sorted(want) == sorted(j.id for j in on_ray.jobs)
    for job in want:
        assert got[job] == want[job], job
    mtimes = {f: f.stat().st_mtime_ns for f in ray_results.iterdir()}
    res = CliRunner().invoke(app, ["bench", str(tmp_path / "ray" / "tiny.toml"), "--engine", "ray",
                                   "--address", cluster, "-q"])
    assert res.exit_code == 0, res.output
    assert f"0 run, {N_JOBS} skipped" in res.output
    assert {f: f.stat().st_mtime_ns for f in ray_results.iterdir()} == mtimes  # nothing rewritten
    # the same fingerprints both ways: the local engine finds the Ray engine's work finished too
    again = run_bench(load_config(tmp_path / "ray" / "tiny.toml"), progress=False, write=False)
    assert again.count("skipped") == N_JOBS and {e.status for e in again.extractions} == {"skipped"}


def test_a_task_error_is_reported_as_the_local_engine_reports_it(cluster) -> None:
    tasks = [("bad", int, "x", 1.0), ("good", dict, {"n": 1}, 1.0)]  # int("x") raises ValueError
    said: dict[str, list[str]] = {"local": [], "ray": []}
    with Executor(1) as ex, GridProgress(False, "t") as view:
        local = ex.run("probe", tasks, view, said["local"].append)
    with RayExecutor(EngineSpec(engine="ray", address=cluster)) as ex, GridProgress(False, "t") as view:
        on_ray = ex.run("probe", tasks, view, said["ray"].append)
    assert [(r.status, r.error, r.info.get("n")) for r in on_ray.values()] == [
        (r.status, r.error, r.info.get("n")) for r in local.values()]
    assert on_ray["bad"].status == "failed" and on_ray["bad"].error.startswith("ValueError: invalid literal")
    assert "Traceback" in on_ray["bad"].info["traceback"]
    assert [s.split(" (")[0] for s in said["ray"]] == [s.split(" (")[0] for s in said["local"]]


def _die_once(marker: str) -> dict[str, Any]:
    """Kills its own process the first time (as a crashed worker or a lost node would)."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os._exit(1)
    return {"first_pid": int(path.read_text()), "pid": os.getpid()}


def test_a_task_whose_worker_dies_is_retried(cluster, tmp_path: Path) -> None:
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    marker = tmp_path / "died"
    with RayExecutor(EngineSpec(engine="ray", address=cluster)) as ex, GridProgress(False, "t") as view:
        out = ex.run("probe", [("job", _die_once, str(marker), 1.0)], view, lambda _m: None)
    r = out["job"]
    assert r.status == "done" and r.info["first_pid"] != r.info["pid"]


def test_more_cpus_per_task_than_any_node_has_is_one_sentence(cluster) -> None:
    with RayExecutor(EngineSpec(engine="ray", address=cluster, cpus_per_task=4)) as ex, \
            GridProgress(False, "t") as view:
        with pytest.raises(Exception, match=r"--cpus-per-task 4 is more than any node .* Fix: use --cpus-per-task 1"):
            ex.run("probe", [("good", dict, {"n": 1}, 1.0)], view, lambda _m: None)


def test_gpus_on_a_cluster_without_gpus_is_one_sentence(cluster) -> None:
    with RayExecutor(EngineSpec(engine="ray", address=cluster, gpus_per_extract=1)) as ex, \
            GridProgress(False, "t") as view:
        ecfg = ex.prepare_extract(ExtractConfig(model="logmel-128", corpus="emodb", root="r", out="o"))
        assert (ecfg.device, ecfg.procs, ecfg.threads) == ("cuda", 1, 1)  # one model copy on the task's CPUs
        with pytest.raises(Exception, match=r"ask for 1 GPU\(s\) each but the nodes .* have at most 0\. Fix: "):
            ex.run("extract", [("a__m", dict, {"n": 1}, 1.0)], view, lambda _m: None)
        assert ex.run("probe", [("good", dict, {"n": 1}, 1.0)], view, lambda _m: None)["good"].status == "done"


def test_engine_ray_without_ray_says_the_pip_command(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # ``import ray`` fails as where it is not installed
    res = CliRunner().invoke(app, ["bench", str(write_config(tmp_path)), "--engine", "ray", "-q"])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (  # one sentence (the console wraps it at its width)
        "error: The package 'ray' is needed for --engine ray but is not installed: run pip install "
        "'embedprobe[ray]'.")


def test_a_bad_engine_on_the_command_line_names_the_option(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", str(write_config(tmp_path)), "--engine", "rya", "-q"])
    assert res.exit_code == 2
    assert " ".join(res.output.split()) == ("error: Bad --engine 'rya', expected one of ['local', 'ray']. "
                                            "local runs on this machine, ray on a Ray cluster.")


@pytest.mark.parametrize("address, match", [
    ("127.0.0.1:1", r"No Ray cluster could be used at '127.0.0.1:1' \(.*\); start one with `ray start --head`"),
    ("node01", r"No Ray cluster could be used at 'node01'"),
])
def test_a_wrong_address_is_one_sentence_at_once(address: str, match: str) -> None:
    with pytest.raises(EmbedprobeError, match=match):
        RayExecutor(EngineSpec(engine="ray", address=address)).__enter__()


def test_the_local_engine_never_imports_ray(tmp_path: Path) -> None:
    code = (f"import sys\nfrom embedprobe.bench import load_config\nfrom embedprobe.bench.runner import make_executor\n"
            f"with make_executor(load_config({str(write_config(tmp_path))!r})) as ex:\n    pass\n"
            "print(ex.engine, 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["local", "False"]


@pytest.mark.parametrize("raw, match", [
    ({"bench": {"engine": "rya"}}, r"\[bench\]: bad engine 'rya', expected one of \['local', 'ray'\]"),
    ({"ray": {"cpus_per_task": 0}}, r"\[ray\]: bad cpus_per_task 0. Give an integer >= 1"),
    ({"ray": {"gpus_per_extract": -1}}, r"\[ray\]: bad gpus_per_extract -1. Give a number of GPUs >= 0"),
    ({"ray": {"adress": "auto"}}, r"\[ray\]: bad key 'adress'.*Did you mean 'address'"),
])
def test_bad_engine_settings_name_the_key(raw: dict[str, Any], match: str) -> None:
    base = {"corpora": {"a": {"synthetic": "emodb"}}, "grid": {"train": ["a"]},
            "extract": {"models": ["logmel-128"]}}
    with pytest.raises(BadValueError, match=match):
        parse_config({**base, **raw}, source="x.toml")


def test_engine_settings_from_the_config_and_the_command_line(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text() + '\n[ray]\naddress = "auto"\ncpus_per_task = 2\n')
    cfg = load_config(path)
    assert cfg.engine == EngineSpec(engine="local", address="auto", cpus_per_task=2)
    cfg = load_config(path, engine="ray", cpus_per_task=3, gpus_per_extract=0.5)
    assert cfg.engine == EngineSpec(engine="ray", address="auto", cpus_per_task=3, gpus_per_extract=0.5)

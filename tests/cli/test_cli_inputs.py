"""Bad command-line input: one ``error:`` sentence and exit 2 (never a traceback, never a silent run).

Covers every option with a fixed set of values or a range, malformed manifests through the
command, ``info``/``merge`` on things that are not caches, and the hints the messages print
(every ``embedprobe list KIND`` and every ``--option`` they name exists).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from embedprobe.cli.main import app

PACKAGE = Path(__file__).resolve().parents[2] / "embedprobe"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def one_error(code: int, text: str, *needles: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text and text.count("error:") == 1, text
    flat = " ".join(text.split())
    for needle in needles:
        assert needle in flat, (needle, flat)


EXTRACT_BAD = {
    "--batch-size 0": "batch size (--batch-size) 0",
    "--batch-size -3": "batch size (--batch-size) -3",
    "--device bogus": "device 'bogus'",
    "--device cuda:x": "device 'cuda:x'",
    "--workers 0": "(--workers) 0",
    "--procs 0": "(--procs) 0",
    "--chunk 0": "(--chunk) 0.0",
    "--chunk -1": "(--chunk) -1.0",
    "--frames --frame-hop 0": "(--frame-hop) 0.0",
    "--augment paper --copies 0": "(--copies) 0",
    "--augment-seed -1": "(--augment-seed) -1",
    "--tag ../../x": "cache tag '../../x'",
    "--tag a/b": "cache tag 'a/b'",
    "--shard 2/2": "shard '2/2'",
    "--shard x": "shard 'x'",
    "--copies 2": "--copies only applies with --augment NAME",
    "--augment-seed 3": "--augment-seed only applies with --augment NAME",
    "--frame-hop 0.02": "--frame-hop only applies with --frames",
    "--frame-layers logmel": "--frame-layers only applies with --frames",
    "--engine spark": "--engine 'spark', expected one of ['local', 'ray']",
    "--address auto": "--address only applies with --engine ray",
    "--gpus-per-worker 1": "--gpus-per-worker only applies with --engine ray",
    "--cpus-per-worker 2": "--cpus-per-worker only applies with --engine ray",
    "--engine ray --workers 0": "Ray workers (--workers) 0",
    "--engine ray --cpus-per-worker 0": "(--cpus-per-worker) 0",
    "--engine ray --gpus-per-worker -1": "(--gpus-per-worker) -1.0",
    "--engine ray --procs 2": "--procs only applies with --engine local",
    "--engine ray --threads 2": "--threads only applies with --engine local",
}


@pytest.mark.parametrize("args", sorted(EXTRACT_BAD))
def test_extract_refuses_bad_values_before_any_work(args: str, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    code, text = run("extract", "-m", "logmel-128", "-c", "emodb", "-r", str(tmp_path / "nowhere"),
                     "-o", str(out), "-q", *args.split())
    one_error(code, text, EXTRACT_BAD[args])
    assert not out.exists()


def test_device_without_cuda_says_so(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, text = run("extract", "-m", "logmel-128", "-c", "emodb", "-r", str(tmp_path), "--device", "cuda")
    one_error(code, text, "device 'cuda'", "CUDA", "--device cpu")


PROBE_BAD = {
    "--seeds 0": "number of seeds (--seeds) 0",
    "--seeds -2": "number of seeds (--seeds) -2",
    "--param bogus=1": "parameter of the mlp probe 'bogus', expected one of ['balance', 'batch_size'",
    "--param random_state=1": "random_state comes from --seeds",
    "--param lr=abc": "wrong type",
    "--param monitor=x": "monitor 'x'",
    "--param device=bogus": "device 'bogus'",
    "--pooling bogus": "pooling 'bogus', expected one of ['mean', 'meanstd']",
    "--probe bogus": "probe 'bogus', expected one of ['linear', 'logreg', 'mlp', 'svm']. Run 'embedprobe list probes'",
    "--bootstrap -1": "(--bootstrap) -1",
    "--max-folds 0": "(--max-folds) 0",
    "--augment-rate 1.5": "(--augment-rate) 1.5",
    "--frame-mask 2": "frame_mask 2.0",
    "--noise -1": "noise_std -1.0",
    "--tag ../x": "results tag '../x'",
    "--protocol nope=speaker": "corpus in --protocol 'nope'",
    "--frames --pooling meanstd": "--param pooling=mean+std",
}


@pytest.mark.parametrize("args", sorted(PROBE_BAD))
def test_probe_refuses_bad_values(args: str, tmp_path: Path) -> None:
    code, text = run("probe", "-m", "logmel-128", "--cache-dir", str(tmp_path), "--train", "emodb", "-q",
                     "-o", str(tmp_path / "results"), *args.split())
    one_error(code, text, PROBE_BAD[args])
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("args", "needle"), [
    ("--probe bogus", "identifiability probe 'bogus'"),
    ("--shrinkage bogus", "covariance shrinkage 'bogus'"),
    ("--shrinkage 1.5", "covariance shrinkage 1.5"),
    ("--seed -1", "seed -1"),
])
def test_domain_refuses_bad_values(args: str, needle: str, tmp_path: Path) -> None:
    code, text = run("domain", "-m", "logmel-128", "--cache-dir", str(tmp_path), *args.split())
    one_error(code, text, needle)


@pytest.mark.parametrize(("args", "needle"), [
    ("--copies 0", "(--copies) 0"), ("--workers 0", "(--workers) 0"), ("--max-clips 0", "(--max-clips) 0"),
    ("--measures bogus", "acoustic measure 'bogus'"), ("--augment bogus", "augmentation 'bogus'"),
    ("--copies 2", "--copies'. It only applies with --augment"), ("--seed -2", "(--seed) -2"),
    ("--subset-seed -1", "(--subset-seed) -1"),
])
def test_acoustics_refuses_bad_values(args: str, needle: str, tmp_path: Path) -> None:
    code, text = run("acoustics", "-c", "emodb", "-r", str(tmp_path), "-o", str(tmp_path / "a"), "-q",
                     *args.split())
    one_error(code, text, needle)


def test_bench_refuses_zero_jobs(tmp_path: Path) -> None:
    config = tmp_path / "b.toml"
    config.write_text('[extract]\nmodels = ["logmel-128"]\n[corpora.emodb]\nroot = "x"\n[grid]\ntrain = ["emodb"]\n')
    code, text = run("bench", str(config), "--jobs", "0", "--dry-run")
    one_error(code, text, "jobs")


# -- malformed manifests through the command ------------------------------------------------
@pytest.mark.parametrize(("name", "content", "needle"), [
    ("latin.csv", "path,label\na.wav,ang\nb\xe4.wav,sad\n".encode("latin-1"), "line 3"),
    ("extra.csv", b"path,label\na.wav,ang\nb.wav,sad,x\n", "line 3 has 3 cells"),
    ("list.jsonl", b'{"path": "a.wav", "label": "ang"}\n[1]\n', "line 2 is a JSON array, not an object"),
])
def test_malformed_manifest_is_one_sentence(name: str, content: bytes, needle: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    code, text = run("extract", "-m", "logmel-128", "-c", "manifest", "-r", str(path), "-o", str(tmp_path / "c"))
    one_error(code, text, name, needle)


# -- info / merge on things that are not caches ---------------------------------------------
def test_info_on_folder_wav_text_and_foreign_hdf5(tmp_path: Path) -> None:
    import h5py
    import numpy as np
    import soundfile as sf

    (tmp_path / "emodb__logmel-128.h5").touch()
    wav = tmp_path / "clip.wav"
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    txt = tmp_path / "notes.h5"
    txt.write_text("hello")
    foreign = tmp_path / "other.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = [1, 2]
    for path, what in ((tmp_path, "is a folder, not a cache"), (wav, "a WAV file"),
                       (txt, "not an HDF5 file"), (foreign, "without embedprobe's header")):
        code, text = run("info", str(path))
        one_error(code, text, str(path), what, "<corpus>__<model>")
        assert "damage" not in text
    code, text = run("info", str(tmp_path))
    assert "emodb__logmel-128.h5" in " ".join(text.split())  # names the caches the folder holds


def test_failed_merge_leaves_no_lock(tmp_path: Path) -> None:
    missing = tmp_path / "emodb__logmel-128.h5"
    code, text = run("merge", str(missing))
    one_error(code, text, "no cache")
    code, text = run("merge", str(tmp_path))
    one_error(code, text, "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert not (tmp_path.parent / f"{tmp_path.name}.lock").exists()


# -- hints ------------------------------------------------------------------------------------
def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))]


def test_every_list_kind_named_anywhere_exists() -> None:
    import embedprobe.cli.catalog  # noqa: F401 - creates every registry
    from embedprobe.registry import REGISTRIES

    named = {m for _, text in _sources() for m in re.findall(r"embedprobe list ([a-z][a-z-]*[a-z])", text)}
    registries = {m for _, text in _sources()
                  for m in re.findall(r"Registry\(\s*\"([a-z ]+)\"(?:,\s*\"([a-z-]+)\")?", text)}
    plurals = {plural or f"{kind}s" for kind, plural in registries}
    assert named and plurals
    assert named <= set(REGISTRIES), named - set(REGISTRIES)
    assert plurals <= set(REGISTRIES), plurals - set(REGISTRIES)
    code, text = run("list", "--json")
    assert code == 0 and sorted(row["name"] for row in json.loads(text)) == sorted(REGISTRIES), text
    for kind in sorted(REGISTRIES):
        code, text = run("list", kind, "--json")
        assert code == 0 and '"name"' in text, (kind, text)
        rows = json.loads(text)
        assert [row["name"] for row in rows] == [row["name"] for row in REGISTRIES[kind].rows()], kind


def test_registry_hint_names_a_real_list_kind() -> None:
    from embedprobe.corpora import scan

    with pytest.raises(Exception) as err:
        scan("corpuss", ".")
    assert "Run 'embedprobe list corpora'" in str(err.value)


def test_every_option_named_in_a_message_exists() -> None:
    command = typer.main.get_command(app)
    options = {o for c in command.commands.values() for p in c.params for o in (*p.opts, *p.secondary_opts)}
    other_tools = {"--porcelain", "--untracked-files", "--revision", "--head"}  # git status, hf download, ray start
    named = {}
    for path, text in _sources():
        if path.parent.name == "cli":
            continue
        for m in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", text):
            named.setdefault(m, path.name)
    unknown = {k: v for k, v in named.items() if k not in options and k not in other_tools}
    assert not unknown, unknown

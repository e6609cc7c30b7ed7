"""No code from pickles: every route that loads weights refuses a malicious pickle before it runs.

The payload is a real one (``os.system("touch SENTINEL")``, pickled as ``posix.system``); a
control test shows that unpickling it the unsafe way does create the sentinel, and every other
test checks that it never appears. Also: the scan of pickle opcodes, ``--trust-pickle`` for data
classes only, one-sentence refusals at the CLI, and the one-time conversion to safetensors.
"""

from __future__ import annotations

import argparse
import builtins
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

from embedprobe.cli.main import app  # noqa: E402
from embedprobe.errors import BadValueError  # noqa: E402
from embedprobe.extractors import create, get_spec  # noqa: E402
from embedprobe.extractors import pickle_scan as P  # noqa: E402
from embedprobe.extractors import weights as W  # noqa: E402
from embedprobe.extractors.cnn14 import Cnn14Extractor  # noqa: E402
from embedprobe.extractors.hf_ssl import WAVLM_BASE, HFSpeechEncoder  # noqa: E402
from embedprobe.extractors.vggish import VGGishExtractor  # noqa: E402

CNN14_FILE = "Cnn14_16k_mAP=0.438.pth"
pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol 4:UserWarning")


class System:
    """Unpickles as ``os.system(command)``: the classic malicious checkpoint."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class Exec:
    """Unpickles as ``exec(source)`` (``builtins.exec``)."""

    def __init__(self, source: str):
        self.source = source

    def __reduce__(self):
        return (builtins.exec, (self.source,))


def evil_state(sentinel: Path, state: dict | None = None) -> dict:
    return {"model": dict(state or {"w": torch.ones(2)}), "hook": System(f"touch '{sentinel}'")}


def save(obj, path: Path, fmt: str = "zip") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    elif fmt == "protocol4":  # STACK_GLOBAL instead of GLOBAL, with memoised strings
        torch.save(obj, path, pickle_protocol=4)
    else:
        torch.save(obj, path)
    return path


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An empty weights world: no $EMBEDPROBE_WEIGHTS, home folders under tmp_path."""
    for var in ("EMBEDPROBE_WEIGHTS", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EMBEDPROBE_HOME", str(tmp_path / "ep"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture(scope="module")
def tiny_cnn14():
    return Cnn14Extractor.for_tests(get_spec("cnn14-16k")).load()


def hf_folder(root: Path, extra: dict | None = None, seed: int = 1) -> tuple[Path, dict]:
    """A tiny WavLM saved as config.json + pytorch_model.bin (the pickle layout), plus ``extra`` entries."""
    torch.manual_seed(seed)
    model = transformers.WavLMModel(HFSpeechEncoder.tiny_config(WAVLM_BASE)).eval()
    folder = root / "wavlm"
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({**state, **(extra or {})}, folder / "pytorch_model.bin")
    return folder, state


def test_control_the_payload_does_run_when_unpickled_unsafely(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    path = save(evil_state(sentinel), tmp_path / "evil.pth")
    torch.load(path, weights_only=False)
    assert sentinel.exists(), "the payload must really work for the other tests to mean anything"


# -- every route -----------------------------------------------------------------------------------
def _cnn14(tmp_path, monkeypatch, sentinel, where: str, fmt: str = "zip"):
    spec = Cnn14Extractor.for_tests(get_spec("cnn14-16k")).spec
    if where == "file":
        path = save(evil_state(sentinel), tmp_path / "renamed.pth", fmt)
        return lambda: Cnn14Extractor(spec, weights=path).load()
    if where == "folder":
        save(evil_state(sentinel), tmp_path / "mine" / CNN14_FILE, fmt)
        return lambda: Cnn14Extractor(spec, weights=tmp_path / "mine").load()
    if where == "env":
        save(evil_state(sentinel), tmp_path / "envdir" / CNN14_FILE, fmt)
        monkeypatch.setenv("EMBEDPROBE_WEIGHTS", str(tmp_path / "envdir"))
        return lambda: Cnn14Extractor(spec).load()
    save(evil_state(sentinel), tmp_path / "ep" / "weights" / CNN14_FILE, fmt)  # the default folder
    return lambda: Cnn14Extractor(spec).load()


def _hf(tmp_path, monkeypatch, sentinel, how: str):
    folder, _ = hf_folder(tmp_path, {"hook": System(f"touch '{sentinel}'")})
    if how == "hf-prefix":
        return lambda: create(f"hf:{folder}").load()
    if how == "cache-snapshot":  # the Hugging Face cache's snapshot of a registered model
        monkeypatch.setattr(W, "hf_cached_snapshot", lambda *a, **k: folder)
        return lambda: create("wavlm-base").load()
    return lambda: create(how, weights=folder).load()  # --weights DIR of a named model


ROUTES = {
    "legacy .pth --weights FILE": lambda t, m, s: _cnn14(t, m, s, "file", "legacy"),
    "zip .pth --weights FILE": lambda t, m, s: _cnn14(t, m, s, "file"),
    "protocol-4 .pth --weights FILE": lambda t, m, s: _cnn14(t, m, s, "file", "protocol4"),
    "--weights DIR": lambda t, m, s: _cnn14(t, m, s, "folder"),
    "legacy .pth in --weights DIR": lambda t, m, s: _cnn14(t, m, s, "folder", "legacy"),
    "$EMBEDPROBE_WEIGHTS": lambda t, m, s: _cnn14(t, m, s, "env"),
    "default folder": lambda t, m, s: _cnn14(t, m, s, "home"),
    "hf:<folder>": lambda t, m, s: _hf(t, m, s, "hf-prefix"),
    "HF folder .bin, wavlm-base --weights DIR": lambda t, m, s: _hf(t, m, s, "wavlm-base"),
    "HF cache snapshot .bin": lambda t, m, s: _hf(t, m, s, "cache-snapshot"),
    "encodec --weights DIR": lambda t, m, s: _hf(t, m, s, "encodec-24k"),
    "clap-laion --weights DIR": lambda t, m, s: _hf(t, m, s, "clap-laion"),
    "phi4-audio --weights DIR": lambda t, m, s: _hf(t, m, s, "phi4-audio"),
    "whisper-small --weights DIR": lambda t, m, s: _hf(t, m, s, "whisper-small"),
    "cdpam --weights FILE": lambda t, m, s: (lambda p: lambda: create("cdpam", weights=p).load())(
        save({"state": {"w": torch.ones(2)}, "x": System(f"touch '{s}'")}, t / "cdpam.pth", "legacy")),
    "ge2e --weights FILE": lambda t, m, s: (lambda p: lambda: create("ge2e", weights=p).load())(
        save({"model_state": {"w": torch.ones(2)}, "x": System(f"touch '{s}'")}, t / "ge2e.pt")),
    "convert-weights": lambda t, m, s: (lambda p: lambda: W.convert_to_safetensors(p))(
        save(evil_state(s), t / "evil.pth")),
}


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_malicious_pickle_never_runs(route, env, monkeypatch):
    sentinel = env / "SENTINEL"
    load = ROUTES[route](env, monkeypatch, sentinel)
    with pytest.raises(BadValueError) as info:
        load()
    msg = str(info.value)
    assert not sentinel.exists(), f"{route}: the pickled payload ran"
    assert "posix.system" in msg and "can run code" in msg, msg
    assert "--trust-pickle" not in msg and "--weights" not in msg, f"{route} suggests an unsafe path: {msg}"
    assert msg.count(". ") == 0 and "\n" not in msg and msg.endswith("."), msg
    # --trust-pickle does not open the door to callables either
    from embedprobe.extractors.base import Extractor

    monkeypatch.setattr(Extractor, "trust_pickle", True)  # every extractor built in load() trusts
    with pytest.raises(BadValueError, match="posix.system"):
        if route == "convert-weights":
            W.convert_to_safetensors(env / "evil.pth", trust_pickle=True)
        else:
            load()
    assert not sentinel.exists()


@pytest.mark.parametrize("fmt", ["zip", "legacy", "protocol4"])
def test_exec_payload_is_named_and_never_runs(tmp_path, fmt):
    sentinel = tmp_path / "SENTINEL"
    path = save({"x": Exec(f"open({str(sentinel)!r}, 'w')")}, tmp_path / "exec.pth", fmt)
    with pytest.raises(P.UnsafePickleError, match=r"names builtins\.exec, which can run code") as info:
        W.load_torch_checkpoint(path, trust_pickle=True)
    assert not info.value.trustable and info.value.offending == ["builtins.exec"]
    assert not sentinel.exists()


# -- the scan --------------------------------------------------------------------------------------
def test_scan_reads_global_and_stack_global_without_running_anything(tmp_path):
    for protocol in (2, 4, 5):
        data = pickle.dumps({"a": [System("true"), argparse.Namespace(lr=1)]}, protocol=protocol)
        assert P._scan_one(data) == {"posix.system", "argparse.Namespace"}, protocol
    # py2 names are mapped as the unpickler maps them
    assert P._scan_one(b"c__builtin__\nset\n.") == {"builtins.set"}
    # a STACK_GLOBAL whose strings are not plain pushes is reported, not guessed
    tricky = b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94\x93."  # memoised strings: resolved
    assert P._scan_one(tricky) == {"posix.system"}
    dup = b"\x80\x04\x8c\x05posix\x94)\x85R\x8c\x06system\x93."  # the module is not a string there
    assert P._scan_one(dup) == {P.UNRESOLVED}
    assert P.classify({P.UNRESOLVED}) == ([P.UNRESOLVED], False)


def test_classify_separates_allow_list_data_classes_and_code():
    assert P.classify(["collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                       "numpy.core.multiarray._reconstruct", "numpy.dtype"]) == ([], True)
    assert P.classify(["argparse.Namespace", "torch.nn.modules.conv.Conv2d"]) == (
        ["argparse.Namespace", "torch.nn.modules.conv.Conv2d"], True)
    for code in ("posix.system", "nt.system", "subprocess.Popen", "builtins.eval", "builtins.getattr",
                 "torch.storage._load_from_bytes", "numpy.load", "functools.partial", "os.system",
                 "runpy._run_code", "webbrowser.open", "torch.jit.load", "__main__.__reduce__"):
        extra, trustable = P.classify(["argparse.Namespace", code])
        assert extra[0] == code and not trustable, code


def test_legacy_files_beyond_the_weights_only_opcodes_still_load(tmp_path):
    """CDPAM's wheel file uses protocol-0 INT opcodes: allow-listed globals only, so it loads."""
    cdpam = pytest.importorskip("embedprobe.extractors.cdpam")
    try:
        path = cdpam.package_dir() / cdpam.CHECKPOINT
    except Exception:  # noqa: BLE001
        pytest.skip("cdpam is not installed")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert P.classify(P.pickle_globals(path)) == ([], True)
    assert set(W.load_torch_checkpoint(path)) == {"epochs", "optim", "state"}


# -- --trust-pickle --------------------------------------------------------------------------------
def test_data_classes_load_only_with_trust_pickle(tmp_path, tiny_cnn14, env):
    path = save({"model": tiny_cnn14._net.state_dict(), "args": argparse.Namespace(lr=1e-3)},
                tmp_path / "ep" / "weights" / CNN14_FILE)
    with pytest.raises(P.UnsafePickleError) as info:
        Cnn14Extractor(tiny_cnn14.spec).load()
    msg = str(info.value)
    assert "argparse.Namespace" in msg and "--trust-pickle" in msg and "convert-weights" in msg
    assert msg.count(". ") == 0 and "\n" not in msg
    ext = Cnn14Extractor(tiny_cnn14.spec, weights=path)
    ext.trust_pickle = True
    with pytest.warns(P.UntrustedPickleWarning, match="untrusted code paths"):
        ext.load()
    wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    np.testing.assert_allclose(ext.embed(wav)["embedding"], tiny_cnn14.embed(wav)["embedding"], rtol=1e-6)
    assert create("cnn14-16k", trust_pickle=True).trust_pickle and not create("cnn14-16k").trust_pickle


def test_hf_folder_with_data_classes_names_the_conversion(tmp_path):
    """transformers reads pytorch_model.bin weights-only: the way for data classes is converting once."""
    folder, _ = hf_folder(tmp_path, {"args": argparse.Namespace(lr=1)})
    for trust in (False, True):
        with pytest.raises(P.UnsafePickleError) as info:
            create(f"hf:{folder}", trust_pickle=trust).load()
        msg = str(info.value)
        assert "argparse.Namespace" in msg and f"convert-weights '{folder}' --trust-pickle" in msg
        assert msg.count(". ") == 0 and "\n" not in msg
    assert W.resolve_hf("org/m", explicit=hf_folder(tmp_path / "clean")[0]).local


# -- the CLI: one sentence, exit 2 -----------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from embedprobe.corpora.synthetic import write_corpus

    return write_corpus("emodb", tmp_path_factory.mktemp("corpus"), n_speakers=2, clips_per_class=1)


def test_cli_hf_folder_with_a_refused_pickle_is_one_sentence(tmp_path, corpus):
    """``embedprobe extract --model hf:<folder>``: exit 2, one line naming the file and the global."""
    sentinel = tmp_path / "SENTINEL"
    folder, _ = hf_folder(tmp_path, {"hook": System(f"touch '{sentinel}'")})
    env = dict(os.environ, EMBEDPROBE_NO_PROGRESS="1", COLUMNS="400")
    r = subprocess.run([sys.executable, "-m", "embedprobe.cli.main", "extract", "--model", f"hf:{folder}",
                        "--corpus", "emodb", "--root", str(corpus), "--out", str(tmp_path / "cache")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and not sentinel.exists()
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert str(folder / "pytorch_model.bin") in line and "posix.system" in line
    assert "--trust-pickle" not in r.stderr


def _ge2e_with_args(tmp_path: Path) -> Path:
    from embedprobe.extractors.ge2e import packaged_weights

    src = packaged_weights()
    if src is None or not src.is_file():
        pytest.skip("resemblyzer's weights are not installed")
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    return save({**ckpt, "args": argparse.Namespace(lr=1)}, tmp_path / "ge2e_args.pt")


def test_cli_trust_pickle_loads_says_so_and_is_recorded(tmp_path, corpus):
    from embedprobe.cache import open_cache

    path = _ge2e_with_args(tmp_path)
    base = ["extract", "--model", "ge2e", "--weights", str(path), "--corpus", "emodb", "--root", str(corpus),
            "--out", str(tmp_path / "cache"), "--quiet"]
    runner = CliRunner()
    refused = runner.invoke(app, base, env={"COLUMNS": "400"})
    assert refused.exit_code == 2 and "argparse.Namespace" in refused.output
    assert "--trust-pickle" in refused.output and "Traceback" not in refused.output
    trusted = runner.invoke(app, [*base, "--trust-pickle"], env={"COLUMNS": "400"})
    assert trusted.exit_code == 0, trusted.output
    [line] = [ln for ln in trusted.output.splitlines() if "untrusted code paths" in ln]
    assert line.startswith("warning: --trust-pickle: loaded") and "argparse.Namespace" in line
    with open_cache(tmp_path / "cache" / "emodb__ge2e.h5") as cache:
        assert cache.complete and cache.provenance["config"]["trust_pickle"] is True


# -- conversion ------------------------------------------------------------------------------------
def test_convert_round_trips_and_the_copy_is_preferred(tmp_path, tiny_cnn14, env):
    """A PANNs-format .pth (numpy statistics) -> .safetensors beside it: same tensors, same embeddings,
    same weights revision; the default folder then loads the copy, never the pickle."""
    home = tmp_path / "ep" / "weights"
    pth = save({"model": tiny_cnn14._net.state_dict(), "iteration": np.int64(600000),
                "statistics": {"mAP": np.float64(0.438)}}, home / CNN14_FILE)
    from_pth = Cnn14Extractor(tiny_cnn14.spec).load()
    assert from_pth.checkpoint_ == pth
    done = W.convert_to_safetensors(pth)
    assert done.path == home / "Cnn14_16k_mAP=0.438.safetensors" and done.entry == "model"
    assert done.dropped == ("iteration", "statistics")
    copy = W.load_torch_checkpoint(done.path)
    original = W.extract_state_dict(W.load_torch_checkpoint(pth))
    assert set(copy) == set(original) and done.n_tensors == len(original)
    assert all(torch.equal(copy[k], original[k]) for k in original)
    from_copy = Cnn14Extractor(tiny_cnn14.spec).load()
    assert from_copy.checkpoint_ == done.path
    assert from_copy.weights_revision() == from_pth.weights_revision() == W.sha256_prefix(pth)
    wav = np.random.default_rng(1).standard_normal(24000).astype(np.float32)
    np.testing.assert_array_equal(from_copy.embed(wav)["embedding"], from_pth.embed(wav)["embedding"])
    # the pickle is never opened once the copy is there
    pth.write_bytes(b"\x80 damaged")
    assert Cnn14Extractor(tiny_cnn14.spec).load().checkpoint_ == done.path
    with pytest.raises(BadValueError, match="exists already"):
        W.convert_to_safetensors(done.path.with_suffix(".pth"))


def test_convert_vggish_pair_with_numpy_pca(tmp_path):
    """VGGish's two files (the PCA one holds numpy arrays): converted, passed as --weights FILE."""
    tiny = VGGishExtractor.for_tests(get_spec("vggish")).load()
    vgg = save({k: v.clone() for k, v in tiny._vgg.state_dict().items()}, tmp_path / "vggish-10086976.pth")
    pca = {k: v.numpy().astype(np.float64) for k, v in tiny._pca.state_dict().items()
           if k in ("pca_eigen_vectors", "pca_means")}
    save(pca, tmp_path / "vggish_pca_params-970ea276.pth")
    before = VGGishExtractor(tiny.spec, weights=vgg, precision="fp32").load()
    for name in ("vggish-10086976.pth", "vggish_pca_params-970ea276.pth"):
        W.convert_to_safetensors(tmp_path / name)
        (tmp_path / name).unlink()  # only the copies are left
    after = VGGishExtractor(tiny.spec, weights=tmp_path / "vggish-10086976.safetensors", precision="fp32").load()
    wav = np.random.default_rng(2).standard_normal(32000).astype(np.float32)
    np.testing.assert_array_equal(after.embed(wav)["embedding"], before.embed(wav)["embedding"])


def test_convert_hf_folder_and_cli(tmp_path):
    folder, state = hf_folder(tmp_path, {"args": argparse.Namespace(lr=1)})
    runner = CliRunner()
    refused = runner.invoke(app, ["convert-weights", str(folder)], env={"COLUMNS": "400"})
    assert refused.exit_code == 2 and "argparse.Namespace" in refused.output and "Traceback" not in refused.output
    ok = runner.invoke(app, ["convert-weights", str(folder), "--trust-pickle"], env={"COLUMNS": "400"})
    assert ok.exit_code == 0, ok.output
    assert f"wrote {folder / 'model.safetensors'}" in ok.output and "left out (not tensors): args" in ok.output
    assert sum("untrusted code paths" in ln for ln in ok.output.splitlines()) == 1
    converted = create(f"hf:{folder}", precision="fp32").load()  # transformers reads model.safetensors
    clean, _ = hf_folder(tmp_path / "clean")  # the same weights (same seed), tensors only
    reference = create(f"hf:{clean}", precision="fp32").load()
    wav = np.random.default_rng(3).standard_normal(8000).astype(np.float32)
    got, want = converted.embed(wav), reference.embed(wav)
    assert list(got) == list(want)
    for layer in want:
        np.testing.assert_array_equal(got[layer], want[layer])


# -- attempts to hide a payload from the scan --------------------------------------------------------
@pytest.mark.parametrize("evil_first", [True, False])
def test_a_duplicated_zip_entry_cannot_hide_the_payload(tmp_path, evil_first):
    """Two ``archive/data.pkl`` entries: whichever one torch reads, the scan has read both."""
    import zipfile

    sentinel = tmp_path / "SENTINEL"
    good = save({"model": {"w": torch.ones(2)}}, tmp_path / "good.pth")
    bad = save({"model": {"w": torch.ones(2)}, "x": System(f"touch '{sentinel}'")}, tmp_path / "bad.pth")
    out = tmp_path / "dup.pth"
    with zipfile.ZipFile(good) as zg, zipfile.ZipFile(bad) as zb, zipfile.ZipFile(out, "w") as zo:
        evil = zb.read(next(n for n in zb.namelist() if n.endswith("data.pkl")))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Duplicate name"
            for info in zg.infolist():
                data = zg.read(info)
                if info.filename.endswith("data.pkl"):
                    pair = [(info.filename, evil), (info.filename, data)]
                    for name, blob in pair if evil_first else pair[::-1]:
                        zo.writestr(name, blob)
                else:
                    zo.writestr(info, data)
    try:  # torch reads one entry weights-only: the benign one loads, the evil one is refused
        loaded = W.load_torch_checkpoint(out, trust_pickle=True)
        assert set(loaded) == {"model"}
    except BadValueError as err:
        assert "posix.system" in str(err), err
    assert not sentinel.exists()
    assert "posix.system" in P.pickle_globals(out)


def test_bytes_hidden_after_stop_inside_a_frame_are_refused(tmp_path):
    """A legacy file whose object pickle ends (STOP) before its frame does: torch's next load starts
    after the frame, so a scan that went on after STOP would read a decoy instead of the payload."""
    import struct

    sentinel = tmp_path / "SENTINEL"
    header = b"".join(pickle.dumps(v, protocol=2) for v in (
        torch.serialization.MAGIC_NUMBER, torch.serialization.PROTOCOL_VERSION,
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}))
    decoy = pickle.dumps([], protocol=2)  # what a naive scan takes for the storage keys
    body = b"}." + decoy
    obj = b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body
    payload = pickle.dumps(System(f"touch '{sentinel}'"), protocol=2)  # what torch really loads next
    path = tmp_path / "framed.pth"
    path.write_bytes(header + obj + payload)
    with pytest.raises(BadValueError) as info:
        W.load_torch_checkpoint(path, trust_pickle=True)
    assert not sentinel.exists()
    assert P.UNRESOLVED in str(info.value) or "posix.system" in str(info.value)


def test_a_library_s_own_refusal_becomes_one_sentence():
    """A pickle refused inside a library (transformers downloading a .bin) surfaces from load() as
    one sentence naming the global, not as torch's traceback."""
    from embedprobe.extractors.base import Extractor

    class Downloads(Extractor):
        def _load(self):
            raise pickle.UnpicklingError(
                "Weights only load failed. In PyTorch 2.6 ...\n\nTrying to load unsupported GLOBAL "
                "posix.system whose module posix is blocked.\n\nCheck the documentation ...")

        def embed(self, wav):
            return {}

    with pytest.raises(P.UnsafePickleError) as info:
        Downloads(get_spec("logmel-128")).load()
    msg = str(info.value)
    assert msg.startswith("Refused the weights of logmel-128: its pickle names posix.system")
    assert "--trust-pickle" not in msg and "\n" not in msg

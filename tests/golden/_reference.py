"""Import the reference implementations' model modules without their package side effects.

Used only by the ``make_*.py`` fixture generators, in a throwaway virtualenv that has the
reference packages (see each generator's docstring). ``panns_inference/__init__.py`` runs
``wget`` at import time and ``msclap/__init__.py`` imports torchaudio; the model files
themselves need neither, so they are loaded by path under stand-in parent packages (funasr's
emotion2vec files likewise, without funasr's heavy package imports).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path


def _site_dir(package: str) -> Path:
    if package in sys.modules:  # our stand-in from an earlier call
        return Path(sys.modules[package].__path__[0])
    spec = importlib.util.find_spec(package)  # finds the folder without running __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed in this environment")
    return Path(list(spec.submodule_search_locations)[0])


def _load(package: str, sub: str, module: str):
    root = _site_dir(package)
    for name, path in ((package, root), (f"{package}.{sub}" if sub else None, root / sub)):
        if name and name not in sys.modules:
            stand_in = types.ModuleType(name)
            stand_in.__path__ = [str(path)]
            sys.modules[name] = stand_in
    parent = f"{package}.{sub}" if sub else package
    full = f"{parent}.{module}"
    file = (root / sub if sub else root) / f"{module}.py"
    spec = importlib.util.spec_from_file_location(full, file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[full] = mod
    spec.loader.exec_module(mod)
    return mod


def panns_models():
    """``panns_inference.models`` (needs torchlibrosa), without ``panns_inference.config``."""
    return _load("panns_inference", "", "models")


def torchvggish_modules():
    """``torchvggish.torchvggish`` and ``torchvggish.vggish_input`` (needs resampy, soundfile)."""
    return _load("torchvggish", "", "torchvggish"), _load("torchvggish", "", "vggish_input")


def msclap_clap():
    """``msclap.models.clap`` (needs torchlibrosa); transformers is stubbed: only the text encoder uses it."""
    if "transformers" not in sys.modules:
        stub = types.ModuleType("transformers")
        stub.AutoModel = None
        sys.modules["transformers"] = stub
    return _load("msclap", "models", "clap")


def funasr_emotion2vec():
    """``funasr.models.emotion2vec.model`` without funasr's package imports (installed ``--no-deps``).

    Its ``model.py`` imports ``funasr.register`` (the model table) and ``funasr.utils.load_utils``
    (audio decoding: librosa, kaldi...); both are stubbed, the latter by a pass-through that
    hands ``inference`` the waveform tensors it is given.
    """
    root = _site_dir("funasr")
    for name, path in (("funasr", root), ("funasr.utils", root / "utils"), ("funasr.models", root / "models"),
                       ("funasr.models.emotion2vec", root / "models" / "emotion2vec")):
        if name not in sys.modules:
            stand_in = types.ModuleType(name)
            stand_in.__path__ = [str(path)]
            sys.modules[name] = stand_in
    register = types.ModuleType("funasr.register")
    register.tables = types.SimpleNamespace(register=lambda *a, **k: (lambda cls: cls))
    sys.modules["funasr.register"] = register
    load_utils = types.ModuleType("funasr.utils.load_utils")
    load_utils.load_audio_text_image_video = lambda data_in, **kwargs: data_in
    sys.modules["funasr.utils.load_utils"] = load_utils
    return importlib.import_module("funasr.models.emotion2vec.model")

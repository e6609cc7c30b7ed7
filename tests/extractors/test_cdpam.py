"""CDPAM with its REAL weights (shipped in the cdpam wheel), end to end on a few EmoDB clips."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from embedprobe.errors import BadValueError, MissingDependencyError  # noqa: E402
from embedprobe.extractors import create, get_spec  # noqa: E402
from embedprobe.extractors.cdpam import REVISION, load_checkpoint, models_module  # noqa: E402
from embedprobe.extractors.precision import cosine  # noqa: E402

torch.set_num_threads(1)
CLIPS = ("03a01Fa", "03a01Wa", "16b10Td")  # speaker 03 happy / angry, speaker 16 sad


@pytest.fixture(scope="module")
def cdpam():
    ext = create("cdpam")
    try:
        return ext.load()
    except MissingDependencyError as err:
        pytest.skip(str(err))


def emodb_clip(root, name: str, seconds: float = 0.8) -> np.ndarray:
    """Decode with soundfile, resample 16 -> 22.05 kHz with soxr (no librosa/resampy), crop."""
    import soundfile as sf
    import soxr

    wav, sr = sf.read(root / "wav" / f"{name}.wav", dtype="float32")
    wav = soxr.resample(wav, sr, 22050).astype(np.float32)
    return wav[: int(seconds * 22050)]


@pytest.mark.emodb
@pytest.mark.slow
def test_real_weights_on_emodb(cdpam, emodb_root):
    wavs = [emodb_clip(emodb_root, name) for name in CLIPS]
    outs = [cdpam.embed(w) for w in wavs]
    content = np.concatenate([o["content"] for o in outs])
    acoustic = np.concatenate([o["acoustic"] for o in outs])
    assert content.shape == acoustic.shape == (len(CLIPS), 512)
    assert np.isfinite(content).all() and np.isfinite(acoustic).all()
    # deterministic: the same clip twice gives the same vector
    np.testing.assert_array_equal(cdpam.embed(wavs[0])["content"], outs[0]["content"])
    # not degenerate: many active dimensions, clips differ, content is not the acoustic half
    assert (content.std(axis=0) > 1e-4).sum() > 100
    pairs = [cosine(content[i], content[j]) for i in range(len(CLIPS)) for j in range(i + 1, len(CLIPS))]
    assert max(pairs) < 0.9999 and min(pairs) > -0.5, pairs
    assert abs(cosine(content[0], acoustic[0])) < 0.99
    # the provenance names the checkpoint inside the wheel
    assert cdpam.weights_revision() == REVISION == get_spec("cdpam").weights_revision
    assert cdpam.runtime_config()["weights"].endswith("scratchJNDdefault_best_model.pth")


@pytest.mark.emodb
@pytest.mark.slow
def test_fast_path_matches_fp32_on_real_weights(cdpam, emodb_root):
    if cdpam.precision == "fp32":
        pytest.skip("no bf16 fast path on this CPU")
    wav = emodb_clip(emodb_root, CLIPS[1], seconds=0.5)
    fp32 = create("cdpam", precision="fp32").load()
    fast, ref = cdpam.embed(wav), fp32.embed(wav)
    for layer in ref:
        assert cosine(fast[layer], ref[layer]) >= 0.999, layer


def test_checkpoint_is_the_packaged_finnet_state(cdpam):
    """The wheel's checkpoint: {'epochs', 'optim', 'state'}; FINnet loads 'state' with every key."""
    from embedprobe.extractors.cdpam import CHECKPOINT, FINNET, package_dir

    ckpt = load_checkpoint(package_dir() / CHECKPOINT)
    assert {"epochs", "optim", "state"} <= set(ckpt)
    result = models_module().FINnet(**FINNET).load_state_dict(ckpt["state"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert cdpam.model.encoder[-1].out_channels == 1024


class _Evil:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_legacy_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state": _Evil()}, path, _use_new_zipfile_serialization=False, pickle_protocol=2)
    with pytest.raises(BadValueError, match=r"names posix\.getcwd, which can run code") as info:
        load_checkpoint(path)
    assert "--trust-pickle" not in str(info.value)
    # a harmless legacy file of tensors loads
    good = tmp_path / "good.pth"
    torch.save({"state": {"w": torch.ones(2)}}, good, _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint(good)["state"]["w"], torch.ones(2))

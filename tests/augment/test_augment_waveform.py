"""Waveform augmentations: drawn parameters stay in range, effects are real, copies reproduce."""

from __future__ import annotations

import json
from importlib.util import find_spec

import numpy as np
import pytest
from augment_signals import SR, speech

from embedprobe.augment import (
    AUGMENTATIONS,
    Chain,
    Equalizer,
    Fade,
    PinkNoise,
    Reverb,
    SpecAugment,
    Step,
    TimeShift,
    TimeStretch,
    apply_mel_masks,
    augment,
    clip_rng,
    paper_chain,
    pink_noise,
    replay,
    spec_augment_mel,
)
from embedprobe.common.extras import installed, pip_hint
from embedprobe.errors import BadValueError

needs_pedalboard = pytest.mark.skipif(find_spec("pedalboard") is None, reason="pip install 'embedprobe[augment]'")

SEVEN = ["specaugment", "time_stretch", "time_shift", "fade", "equalizer", "pink_noise", "reverb"]  # the paper's


def _registered() -> list:
    """Every registered augmentation, skipped when an extra it declares (``spec.extras()``) is missing."""
    params = []
    for name, spec in AUGMENTATIONS.items():
        missing = {e for e in spec.extras() if not installed(e)}
        params.append(pytest.param(name, marks=pytest.mark.skipif(bool(missing), reason=pip_hint(missing))))
    return params


N = 2 * SR


def _draws(name: str, n_seeds: int = 200, n: int = N, sr: int = SR):
    spec = AUGMENTATIONS.get(name)
    return [spec.draw(clip_rng(s, "clip", 0), n, sr) for s in range(n_seeds)]


def _psd(x: np.ndarray, sr: int = SR):
    from scipy.signal import welch

    return welch(x, fs=sr, nperseg=2048)


def test_registry_has_the_seven_and_the_paper_chain():
    assert set(SEVEN) | {"paper"} <= set(AUGMENTATIONS.names())
    with pytest.raises(BadValueError, match="pink_noise"):
        AUGMENTATIONS.get("pinknoise")
    kinds = [s.spec.kind for s in AUGMENTATIONS.get("paper").steps]
    assert sorted(kinds) == sorted(SEVEN) and all(s.p == 1.0 for s in AUGMENTATIONS.get("paper").steps)


def test_drawn_parameters_stay_in_documented_ranges():
    f = np.array([d["factor"] for d in _draws("time_stretch")])
    assert f.min() >= 0.9 and f.max() <= 1.2 and f.max() - f.min() > 0.25
    k = np.array([d["shift"] for d in _draws("time_shift")])
    assert np.abs(k).max() <= 0.1 * N and (k < 0).any() and (k > 0).any()
    fades = _draws("fade")
    assert max(d["fade_in"] + d["fade_out"] for d in fades) <= 0.1 * N
    assert {d["shape"] for d in fades} == {"linear", "cosine"}
    eq = _draws("equalizer", sr=16000)
    assert all(50 <= d["highpass_hz"] <= 300 and 3400 <= d["lowpass_hz"] <= 7500 for d in eq)
    eq8 = _draws("equalizer", sr=8000)
    assert max(d["lowpass_hz"] for d in eq8) <= 0.95 * 4000
    snr = np.array([d["snr_db"] for d in _draws("pink_noise")])
    assert snr.min() >= 10 and snr.max() <= 30
    rv = _draws("reverb")
    assert all(0 <= d["room_size"] <= 0.2 and 0 <= d["wet_level"] <= 0.5 for d in rv)
    mel_top = 2595 * np.log10(1 + SR / 2 / 700)
    dur = N / SR
    for d in _draws("specaugment"):
        for lo, hi in d["freq_masks_hz"]:
            width_mel = 2595 * (np.log10(1 + hi / 700) - np.log10(1 + lo / 700))
            assert 0 <= lo <= hi <= SR / 2 + 1e-6 and width_mel <= 15 / 80 * mel_top + 1e-6
        for t0, t1 in d["time_masks_s"]:
            assert 0 <= t0 <= t1 <= dur + 1e-9 and t1 - t0 <= min(0.7, 0.2 * dur) + 1e-9


@needs_pedalboard
def test_same_seed_clip_copy_reproduces_and_other_copies_differ():
    x = speech(1)
    a = augment(x, SR, "paper", seed=3, clip_id="03a01Fa", copy=2)
    later = augment(x, SR, "paper", seed=3, clip_id="03a01Fa", copy=5)
    b = augment(x, SR, "paper", seed=3, clip_id="03a01Fa", copy=2)  # after another copy
    assert np.array_equal(a.wav, b.wav) and a.params == b.params
    for other in (later, augment(x, SR, "paper", seed=3, clip_id="03a01Fb", copy=2),
                  augment(x, SR, "paper", seed=4, clip_id="03a01Fa", copy=2)):
        assert other.params != a.params
        assert len(other.wav) != len(a.wav) or not np.allclose(other.wav, a.wav)
    # the record is JSON and replays bit-exactly after a round trip
    rec = json.loads(json.dumps(a.record))
    assert rec["augmentation"] == "paper" and rec["copy"] == 2
    assert rec["fingerprint"] == AUGMENTATIONS.get("paper").fingerprint()
    assert np.array_equal(replay(x, SR, "paper", rec["params"]), a.wav)


@pytest.mark.parametrize("name", _registered())
def test_every_augmentation_is_finite_float32_and_bounded(name):
    x = speech(2)
    x_loud = x / np.max(np.abs(x))  # full scale, so noise and reverb must be peak-limited
    for copy in range(3):
        out = augment(x_loud, SR, name, seed=0, clip_id="c", copy=copy)
        assert out.wav.dtype == np.float32 and out.wav.ndim == 1
        assert np.isfinite(out.wav).all() and np.max(np.abs(out.wav)) <= 1.0
        spec = AUGMENTATIONS.get(name)
        assert len(out.wav) == spec.out_length(len(x), SR, out.params)


@pytest.mark.parametrize("name", _registered())
def test_every_augmentation_reproduces_and_replays(name):
    """The contract: same (spec, seed, clip, copy) -> same output; recorded params replay it."""
    x = speech(1)
    a = augment(x, SR, name, seed=1, clip_id="c", copy=1)
    b = augment(x, SR, name, seed=1, clip_id="c", copy=1)
    assert np.array_equal(a.wav, b.wav) and a.params == b.params
    assert json.loads(json.dumps(a.params)) == a.params  # JSON-able
    assert np.array_equal(replay(x, SR, name, a.params), a.wav)
    spec = AUGMENTATIONS.get(name)
    assert spec.fingerprint() == AUGMENTATIONS.get(name).fingerprint()
    assert isinstance(spec, Chain) or name == spec.kind  # single augmentations register under their kind


def test_fingerprint_tracks_ranges():
    assert PinkNoise().fingerprint() == PinkNoise().fingerprint()
    assert PinkNoise(snr_db=(0, 20)).fingerprint() != PinkNoise().fingerprint()
    assert Chain((Step(Fade()),)).fingerprint() != Chain((Step(Fade(), p=0.5),)).fingerprint()


@needs_pedalboard
def test_time_stretch_length_follows_factor_and_keeps_pitch():
    t = np.arange(N) / SR
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for factor in (0.9, 1.2):
        y = TimeStretch().apply(x, SR, {"factor": factor})
        assert abs(len(y) / len(x) - 1 / factor) < 1e-3
        f, p = _psd(y[SR // 10: -SR // 10])
        assert abs(f[np.argmax(p)] - 440) < 10
    assert len(TimeStretch(keep_length=True).apply(x, SR, {"factor": 1.2})) == len(x)


def test_time_shift_modes():
    x = speech(3)
    y = TimeShift().apply(x, SR, {"shift": 1000})
    assert np.array_equal(y[1000:], x[:-1000]) and not y[:1000].any()
    y = TimeShift().apply(x, SR, {"shift": -1000})
    assert np.array_equal(y[:-1000], x[1000:]) and not y[-1000:].any()
    y = TimeShift(mode="roll").apply(x, SR, {"shift": 1000})
    assert np.array_equal(y, np.roll(x, 1000))
    with pytest.raises(BadValueError, match="roll"):
        TimeShift(mode="wrap")


def test_fade_only_touches_the_drawn_ends():
    x = np.full(N, 0.5, np.float32)
    d = {"fade_in": 800, "fade_out": 1200, "shape": "cosine"}
    y = Fade().apply(x, SR, d)
    assert y[0] == 0 and np.all(np.diff(y[:800]) >= 0) and np.all(np.diff(y[-1200:]) <= 0)
    assert np.array_equal(y[800:-1200], x[800:-1200])
    for d in _draws("fade"):
        y = Fade().apply(x, SR, d)
        assert np.count_nonzero(y != x) <= 0.1 * N


def test_equalizer_attenuates_outside_the_band():
    x = np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32) * 0.1
    y = Equalizer().apply(x, SR, {"highpass_hz": 200.0, "lowpass_hz": 2000.0})
    f, px = _psd(x)
    _, py = _psd(y)
    gain = 10 * np.log10(py / px)
    assert abs(np.median(gain[(f > 500) & (f < 1500)])) < 1.0  # passband
    assert np.median(gain[(f > 4000) & (f < 7000)]) < -40  # an octave above the low-pass
    assert np.median(gain[(f > 20) & (f < 80)]) < -40  # over an octave below the high-pass


def test_pink_noise_hits_the_snr_and_the_slope():
    x = speech(4) * 0.2  # quiet enough that no peak limiting happens
    for snr in (10.0, 20.0, 30.0):
        y = PinkNoise().apply(x, SR, {"snr_db": snr, "noise_seed": 7})
        noise = y.astype(np.float64) - x
        measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2))
        assert abs(measured - snr) < 0.5
    n = pink_noise(2**18, np.random.default_rng(0))
    f, p = _psd(n)
    band = (f > 50) & (f < 6000)
    slope_db_per_octave = np.polyfit(np.log2(f[band]), 10 * np.log10(p[band]), 1)[0]
    assert -3.3 < slope_db_per_octave < -2.7
    assert PinkNoise().apply(np.zeros(100, np.float32), SR, {"snr_db": 10, "noise_seed": 1}).any() == 0


def _decay_time(y: np.ndarray, start: int, drop_db: float = 20.0) -> float:
    """Seconds after ``start`` until the 10 ms-smoothed energy is ``drop_db`` below its level at start."""
    e = np.convolve(y.astype(np.float64) ** 2, np.ones(160) / 160, mode="same")
    ref = e[start - 200]
    below = np.nonzero(e[start:] < ref * 10 ** (-drop_db / 10))[0]
    return below[0] / SR if below.size else np.inf


@needs_pedalboard
def test_reverb_lengthens_the_energy_decay():
    x = np.zeros(N, np.float32)
    x[SR // 4: SR // 2] = np.random.default_rng(0).standard_normal(SR // 4) * 0.3
    dry = Reverb().apply(x, SR, {"room_size": 0.2, "wet_level": 0.0})
    wet = Reverb().apply(x, SR, {"room_size": 0.2, "wet_level": 0.5})
    small = Reverb().apply(x, SR, {"room_size": 0.0, "wet_level": 0.5})
    t_dry, t_wet, t_small = (_decay_time(y, SR // 2) for y in (dry, wet, small))
    assert t_dry < 0.02 and t_wet > 0.1 and t_wet > t_small
    assert np.allclose(dry, 0.8 * x, atol=1e-5)  # Freeverb dry gain = 2 x dry level


def test_specaugment_masks_time_and_frequency_and_is_transparent_without_masks():
    x = np.random.default_rng(1).standard_normal(N).astype(np.float32) * 0.1
    none = {"freq_masks_hz": [], "time_masks_s": []}
    assert np.max(np.abs(SpecAugment().apply(x, SR, none) - x)) < 1e-4
    y = SpecAugment().apply(x, SR, {"freq_masks_hz": [], "time_masks_s": [[0.5, 0.8]]})
    inner = slice(int(0.55 * SR), int(0.75 * SR))
    assert np.sqrt(np.mean(y[inner] ** 2)) < 1e-3 * np.sqrt(np.mean(x[inner] ** 2)) + 1e-7
    assert np.allclose(y[: int(0.4 * SR)], x[: int(0.4 * SR)], atol=1e-4)
    y = SpecAugment().apply(x, SR, {"freq_masks_hz": [[1000.0, 2000.0]], "time_masks_s": []})
    f, px = _psd(x)
    _, py = _psd(y)
    assert np.median(10 * np.log10(py / px)[(f > 1200) & (f < 1800)]) < -20
    assert len(y) == len(x)


def test_mel_specaugment_numpy_and_torch():
    mel = np.random.default_rng(0).standard_normal((300, 80)).astype(np.float32) + 5
    masked, params = spec_augment_mel(mel, np.random.default_rng(1))
    assert masked.shape == mel.shape and not np.array_equal(masked, mel) and (mel > 0).all()
    for f0, f1 in params["freq_masks"]:
        assert f1 - f0 <= 15 and (masked[:, f0:f1] == 0).all()
    for t0, t1 in params["time_masks"]:
        assert t1 - t0 <= min(70, 0.2 * 300) and (masked[t0:t1, :] == 0).all()
    again = apply_mel_masks(mel, params)
    assert np.array_equal(again, masked)
    mean_masked = apply_mel_masks(mel, {"freq_masks": [[0, 3]], "time_masks": []}, mask_value="mean")
    assert np.allclose(mean_masked[:, :3], mel.mean())
    torch = pytest.importorskip("torch")
    tm, _ = spec_augment_mel(torch.from_numpy(mel), np.random.default_rng(1))
    assert isinstance(tm, torch.Tensor) and np.array_equal(tm.numpy(), masked)


def test_chain_step_probabilities():
    chain = Chain((Step(Fade(), p=0.0), Step(PinkNoise(), p=0.5)))
    recs = [chain.draw(clip_rng(s, "c", 0), N, SR)["steps"] for s in range(200)]
    assert not any(r[0]["applied"] for r in recs)
    n_noise = sum(r[1]["applied"] for r in recs)
    assert 70 < n_noise < 130
    assert paper_chain() == AUGMENTATIONS.get("paper")
    # each step has its own child stream: skipping one step leaves the others' draws alone
    skip = Chain((Step(Fade(), p=0.0), Step(PinkNoise())))
    keep = Chain((Step(Fade()), Step(PinkNoise())))
    for s in range(5):
        a, b = (c.draw(clip_rng(s, "c", 0), N, SR)["steps"][1]["params"] for c in (skip, keep))
        assert a == b


def test_bad_inputs_are_named():
    with pytest.raises(BadValueError, match="time-stretch factor range"):
        TimeStretch(min_factor=1.2, max_factor=0.9)
    with pytest.raises(BadValueError, match="shape"):
        augment(np.zeros((2, 100), np.float32), SR, "fade", seed=0, clip_id="c", copy=0)
    with pytest.raises(BadValueError, match="dtype"):
        augment(np.zeros(100, np.int16), SR, "fade", seed=0, clip_id="c", copy=0)
    with pytest.raises(BadValueError, match="NaN"):
        augment(np.full(100, np.nan, np.float32), SR, "fade", seed=0, clip_id="c", copy=0)
    with pytest.raises(BadValueError, match="clip length"):
        augment(np.zeros(0, np.float32), SR, "paper", seed=0, clip_id="c", copy=0)
    with pytest.raises(BadValueError, match="copy"):
        clip_rng(0, "c", -1)

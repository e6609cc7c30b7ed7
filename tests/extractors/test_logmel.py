"""logmel-128: numpy log-mel frames against librosa, plus physical sanity checks."""

from __future__ import annotations

import numpy as np
import pytest

from embedprobe.audio.decode import load
from embedprobe.extractors import create
from embedprobe.extractors._mel import hz_to_mel, mel_filterbank, mel_to_hz

SR = 16000


@pytest.fixture(scope="module")
def ext():
    return create("logmel-128").load()


def librosa_logmel(wav: np.ndarray) -> np.ndarray:
    librosa = pytest.importorskip("librosa")
    mel = librosa.feature.melspectrogram(
        y=wav,
        sr=SR,
        n_fft=512,
        hop_length=160,
        win_length=400,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=128,
        fmin=0.0,
        fmax=8000.0,
    )
    return np.log(mel.T + 1e-6)


@pytest.mark.parametrize("htk,norm", [(False, "slaney"), (True, None), (False, None)])
def test_filterbank_matches_librosa(htk, norm):
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=SR, n_fft=512, n_mels=128, htk=htk, norm=norm)
    np.testing.assert_allclose(
        mel_filterbank(SR, 512, 128, 0.0, None, htk, norm), ref, rtol=1e-5, atol=1e-8
    )
    f = np.array([0.0, 300.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f, htk), htk), f, atol=1e-6)


def test_matches_librosa_on_emodb(ext, emodb_root):
    wav = load(emodb_root / "wav" / "03a01Fa.wav")
    ours, ref = ext.embed(wav)["logmel"], librosa_logmel(wav)
    assert ours.shape == ref.shape == (1 + len(wav) // 160, 128)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_matches_librosa_on_odd_length_noise(ext):
    wav = (0.1 * np.random.default_rng(1).standard_normal(12345)).astype(np.float32)
    np.testing.assert_allclose(ext.embed(wav)["logmel"], librosa_logmel(wav), atol=2e-3)


def test_tone_lands_in_the_right_band(ext):
    t = np.arange(SR) / SR
    frames = ext.embed((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))["logmel"]
    band = int(frames[10:-10].mean(0).argmax())
    fb = mel_filterbank(SR, 512, 128)
    peak_hz = np.linspace(0, SR / 2, 257)[fb[band].argmax()]
    assert abs(peak_hz - 1000) < 40


def test_silence_is_log_eps(ext):
    out = ext.embed(np.zeros(1600, np.float32))["logmel"]
    assert out.shape == (11, 128)
    np.testing.assert_allclose(out, np.log(np.float32(1e-6)), rtol=1e-6)


def test_louder_is_higher_by_the_gain(ext):
    wav = (0.05 * np.random.default_rng(2).standard_normal(SR)).astype(np.float32)
    quiet, loud = ext.embed(wav)["logmel"], ext.embed(4 * wav)["logmel"]
    assert np.median(loud - quiet) == pytest.approx(np.log(16), abs=0.01)


def test_the_same_values_whatever_the_blas_thread_count(ext):
    """OpenBLAS's float32 products differ in the last bit between 1 and 2 threads on some CPUs
    (seen on this project's AMD EPYC); the mel projection runs on one thread, so a run with
    --threads 1 (a Ray worker) stores what a 2-thread local run stores."""
    from threadpoolctl import threadpool_limits

    wav = np.random.default_rng(3).standard_normal(SR * 12).astype(np.float32) * 0.1
    got = {}
    for n in (1, 2, 4):
        with threadpool_limits(n):
            got[n] = ext.embed(wav)["logmel"]
    assert np.array_equal(got[1], got[2]) and np.array_equal(got[1], got[4])

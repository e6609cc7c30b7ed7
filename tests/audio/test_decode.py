"""embedprobe.audio.decode on real files written by the tests: every failure mode, conversions, streaming."""

from __future__ import annotations

import hashlib
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from embedprobe.audio import decode as audio
from embedprobe.audio import prefetch
from embedprobe.audio.decode import (
    AudioConfig,
    AudioStream,
    load,
    probe_file,
    read_chunks,
)
from embedprobe.audio.prefetch import decode_iter
from embedprobe.errors import AudioError, BadValueError

SR = 16000


def tone(seconds: float, sr: int = SR, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, data: np.ndarray, sr: int = SR, **kw) -> Path:
    sf.write(str(path), data, sr, **kw)
    return path


def reason(exc_info) -> str:
    err = exc_info.value
    assert isinstance(err, AudioError)
    assert "\n" not in str(err), "audio errors are one line"
    return err.reason


# -- header-level failures -------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(AudioError) as e:
        probe_file(tmp_path / "nope.wav")
    assert "not found" in reason(e)
    assert e.value.path.endswith("nope.wav")


def test_directory(tmp_path):
    with pytest.raises(AudioError) as e:
        load(tmp_path)
    assert "directory" in reason(e)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(AudioError) as e:
        load(p)
    assert "empty file (0 bytes)" in reason(e)


def test_zero_length(tmp_path):
    p = write(tmp_path / "zero.wav", np.zeros(0, np.float32))
    assert p.stat().st_size > 0
    with pytest.raises(AudioError) as e:
        load(p)
    assert "0 frames" in reason(e)


def test_corrupt_header(tmp_path):
    p = tmp_path / "bad.wav"
    p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" * 20)
    with pytest.raises(AudioError) as e:
        probe_file(p)
    r = reason(e)
    assert r.startswith("corrupt header") and "re-export" in r


# -- content failures ------------------------------------------------------------------------
def test_nan_samples(tmp_path):
    x = tone(1.0)
    x[8000] = np.nan
    p = write(tmp_path / "nan.wav", x, subtype="FLOAT")
    with pytest.raises(AudioError) as e:
        load(p)
    assert "NaN" in reason(e) and "0.500 s" in reason(e)


def test_inf_in_a_later_chunk_raises_while_streaming(tmp_path):
    x = tone(3.0)
    x[-100] = np.inf
    p = write(tmp_path / "inf.wav", x, subtype="FLOAT")
    it = read_chunks(p, AudioConfig(max_chunk_s=1.0))
    assert len(next(it)) == SR  # the first chunk is clean
    with pytest.raises(AudioError, match="NaN or inf"):
        list(it)


@pytest.mark.parametrize("amp", [0.0, 3e-6])
def test_silent(tmp_path, amp):
    p = write(tmp_path / "silent.wav", tone(1.0, amp=amp), subtype="FLOAT")
    with pytest.raises(AudioError) as e:
        load(p)
    assert reason(e).startswith("silent")


def test_not_silent_just_above_threshold(tmp_path):
    p = write(tmp_path / "quiet.wav", tone(1.0, amp=1e-3), subtype="FLOAT")
    assert np.abs(load(p)).max() == pytest.approx(1e-3, rel=1e-3)


def test_too_short(tmp_path):
    p = write(tmp_path / "short.wav", tone(0.1))
    with pytest.raises(AudioError) as e:
        load(p)
    assert "too short (0.100 s < min_duration_s 0.25 s)" in reason(e)
    assert len(load(p, AudioConfig(min_duration_s=0.05))) == 1600


# -- conversions and their notes ---------------------------------------------------------------
def test_stereo_is_mixed_by_mean_with_a_note(tmp_path):
    left, right = tone(1.0, freq=300), tone(1.0, freq=500, amp=0.1)
    p = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    stream = AudioStream(p, AudioConfig())
    wav = np.concatenate(list(stream))
    np.testing.assert_allclose(wav, (left + right) / 2, atol=1e-7)
    assert stream.notes == ["mixed 2 channels to mono (mean)"]
    assert stream.info.channels == 2


@pytest.mark.parametrize("sr_in", [11025, 44100])
def test_odd_rates_are_resampled_with_a_note(tmp_path, sr_in):
    p = write(
        tmp_path / f"r{sr_in}.wav", tone(2.0, sr=sr_in, freq=1000.0), sr=sr_in, subtype="FLOAT"
    )
    stream = AudioStream(p, AudioConfig())
    wav = np.concatenate(list(stream))
    assert abs(len(wav) - 2 * SR) <= 1
    assert stream.notes == [f"resampled from {sr_in} Hz to 16000 Hz (soxr HQ)"]
    spectrum = np.abs(np.fft.rfft(wav[2000:-2000]))
    assert np.fft.rfftfreq(len(wav) - 4000, 1 / SR)[spectrum.argmax()] == pytest.approx(1000, abs=2)


def test_streamed_resampling_equals_one_shot(tmp_path):
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(round(3.7 * 44100))).astype(np.float32)
    p = write(tmp_path / "n44.wav", x, sr=44100, subtype="FLOAT")
    cfg = AudioConfig(max_chunk_s=1.0)
    chunks = list(read_chunks(p, cfg))
    assert [len(c) for c in chunks[:-1]] == [cfg.chunk_samples] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) <= cfg.chunk_samples and len(chunks) == 4
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    np.testing.assert_allclose(
        np.concatenate(chunks), soxr.resample(x, 44100, SR, quality="HQ"), atol=1e-6
    )


@pytest.mark.parametrize("fmt", ["FLAC", "OGG", "MP3"])
def test_compressed_formats(tmp_path, fmt):
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot handle {fmt}")
    x = tone(1.5, freq=440.0)
    p = write(tmp_path / f"t.{fmt.lower()}", x, format=fmt)
    wav = load(p)
    assert abs(len(wav) - len(x)) < 0.05 * SR  # lossy codecs may add priming frames
    n = min(len(x), len(wav)) - 4000
    spectrum = np.abs(np.fft.rfft(wav[2000 : 2000 + n]))
    assert np.fft.rfftfreq(n, 1 / SR)[spectrum.argmax()] == pytest.approx(440, abs=3)


def test_segments(tmp_path):
    x = np.linspace(-0.5, 0.5, 3 * SR, dtype=np.float32)
    p = write(tmp_path / "seg.wav", x, subtype="FLOAT")
    np.testing.assert_array_equal(load(p, start_s=1.0, end_s=1.5), x[SR : SR + SR // 2])
    np.testing.assert_array_equal(load(p, start_s=2.5), x[5 * SR // 2 :])
    with pytest.raises(AudioError, match="outside the file"):
        load(p, start_s=3.5)
    with pytest.raises(AudioError, match="too short"):
        load(p, start_s=1.0, end_s=1.1)


def test_truncated_file_reads_the_frames_present(tmp_path):
    p = write(tmp_path / "trunc.wav", tone(2.0), subtype="PCM_16")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    stream = AudioStream(p, AudioConfig())
    wav = np.concatenate(list(stream))
    assert 0.9 * SR < len(wav) < 1.1 * SR  # libsndfile reports the frames actually present
    assert stream.info.frames == len(wav)


# -- config, hashing -------------------------------------------------------------------------
def test_config_validation():
    with pytest.raises(BadValueError, match="'HQ'"):
        AudioConfig(resample_quality="best")
    with pytest.raises(BadValueError):
        AudioConfig(sample_rate=0)
    with pytest.raises(BadValueError):
        AudioConfig(max_chunk_s=0)
    assert AudioConfig(max_chunk_s=0.5, sample_rate=8000).chunk_samples == 4000


def test_content_hash(tmp_path):
    p = write(tmp_path / "h.wav", tone(0.5))
    assert audio.content_hash(p) == hashlib.sha1(p.read_bytes()).hexdigest()
    assert audio.content_hash(p, block_size=7) == audio.content_hash(p)
    before = audio.content_hash(p)
    write(p, tone(0.5, freq=441))
    assert audio.content_hash(p) != before
    with pytest.raises(AudioError, match="not found"):
        audio.content_hash(tmp_path / "missing.wav")


# -- prefetching ---------------------------------------------------------------------------
def test_decode_iter_keeps_order_and_yields_errors_in_place(tmp_path):
    paths = []
    for i in range(7):
        paths.append(write(tmp_path / f"{i}.wav", tone(0.5 + 0.1 * i, freq=200 + 50 * i)))
    paths[3] = tmp_path / "missing.wav"
    paths[5].write_bytes(b"")
    got = list(decode_iter(paths, AudioConfig(), workers=2, prefetch=1))
    assert [i for i, _ in got] == list(range(7))
    assert isinstance(got[3][1], AudioError) and "not found" in got[3][1].reason
    assert isinstance(got[5][1], AudioError) and "empty" in got[5][1].reason
    for i in (0, 1, 2, 4, 6):
        np.testing.assert_array_equal(got[i][1].wav(), load(paths[i]))
    serial = list(decode_iter(paths, AudioConfig(), workers=0))
    assert [type(r) for _, r in serial] == [type(r) for _, r in got]


def test_decode_iter_is_bounded_and_closes(tmp_path, monkeypatch):
    p = write(tmp_path / "a.wav", tone(0.5))
    started = []
    lock = threading.Lock()
    real = prefetch.decode

    def counting(item, cfg=None, **kw):
        with lock:
            started.append(item)
        return real(item, cfg, **kw)

    monkeypatch.setattr(prefetch, "decode", counting)
    it = decode_iter([p] * 50, AudioConfig(), workers=2, prefetch=3)
    next(it)
    time.sleep(0.2)
    assert len(started) <= 2 + 3 + 1
    it.close()
    n = len(started)
    time.sleep(0.1)
    assert len(started) == n < 50


def test_decode_iter_segments_and_lazy_long_files(tmp_path):
    x = np.linspace(-0.5, 0.5, 4 * SR, dtype=np.float32)
    p = write(tmp_path / "long.wav", x, subtype="FLOAT")
    cfg = AudioConfig(max_chunk_s=1.0)
    (_, seg), (_, whole) = decode_iter([(p, 1.0, 2.0), p], cfg, max_eager_s=2.5)
    assert not seg.lazy and len(seg.chunks) == 1
    np.testing.assert_array_equal(seg.wav(), x[SR : 2 * SR])
    assert whole.lazy and isinstance(whole.chunks, AudioStream)
    np.testing.assert_array_equal(whole.wav(), x)


# -- long files stream in bounded memory ------------------------------------------------------
def test_one_hour_file_streams_in_bounded_chunks(tmp_path):
    p = tmp_path / "hour.wav"
    minute = (0.1 * np.sin(np.arange(60 * SR) * 0.05)).astype(np.float32)
    with sf.SoundFile(str(p), "w", samplerate=SR, channels=1, subtype="PCM_16") as f:
        for _ in range(60):
            f.write(minute)
    cfg = AudioConfig()  # 30 s chunks
    tracemalloc.start()
    try:
        n_chunks, total, longest = 0, 0, 0
        for chunk in read_chunks(p, cfg):
            n_chunks += 1
            total += len(chunk)
            longest = max(longest, len(chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 3600 * SR and n_chunks == 120 and longest == cfg.chunk_samples
    whole = 3600 * SR * 4
    # a few chunks' worth (the chunk, a read block, the concatenation), never the whole file
    assert peak < 5 * cfg.chunk_samples * 4 < whole / 20, f"peak traced memory {peak / 1e6:.1f} MB"

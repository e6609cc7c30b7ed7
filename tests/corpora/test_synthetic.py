"""The synthetic-corpus generator: reproducible files, class-dependent prosody, corpus channels.

Parametrised from the corpus registry: every reader with a synthetic layout is written and scanned.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from embedprobe.audio.voice import DEFAULT_CHANNEL, PROSODY, apply_channel, make_speaker, voice
from embedprobe.corpora import CORPORA, scan
from embedprobe.corpora.synthetic import (
    CHANNELS,
    DEFAULTS,
    layout_table,
    synthetic_names,
    write_corpus,
)
from embedprobe.errors import BadValueError

SR = 16000


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_audio(tmp_path: Path) -> None:
    kw = dict(n_speakers=2, clips_per_class=1, duration_s=(0.4, 0.6))
    a = digest(write_corpus("emodb", tmp_path / "a", seed=3, **kw))
    b = digest(write_corpus("emodb", tmp_path / "b", seed=3, **kw))
    c = digest(write_corpus("emodb", tmp_path / "c", seed=4, **kw))
    assert a == b
    assert len(a) == len(c) and all(a[k] != c[k] for k in a.keys() & c.keys())


def test_audio_format_and_lengths(tmp_path: Path) -> None:
    root = write_corpus("crema-d", tmp_path, n_speakers=2, clips_per_class=2, sample_rate=8000, duration_s=(0.5, 0.9))
    files = sorted((root / "AudioWAV").glob("*.wav"))
    assert len(files) == 2 * (4 * 2 + 2)
    for f in files:
        info = sf.info(f)
        assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
        assert 0.5 <= info.duration <= 0.9 + 1e-3
        x, _ = sf.read(f)
        assert np.abs(x).max() > 0.005 and np.abs(x).max() <= 1.0


def test_layouts_come_from_the_readers() -> None:
    names = synthetic_names()
    assert sorted(DEFAULTS) == sorted(CHANNELS) == sorted(names)
    for name in names:
        lay = CORPORA.get(name).synthetic
        assert DEFAULTS[name] == (lay.n_speakers, lay.clips_per_class) and CHANNELS[name] is lay.channel
    table = layout_table().splitlines()
    assert [line.split()[0] for line in table] == sorted(names)
    assert any("Session*/dialog/EmoEvaluation" in line for line in table)
    assert CHANNELS["emobox"] == CHANNELS["emodb"] and CHANNELS["emodb"] != DEFAULT_CHANNEL
    with pytest.raises(KeyError):
        CHANNELS["studio"]


@pytest.mark.parametrize("name", sorted(synthetic_names()))
def test_sizes_follow_the_arguments(name: str, tmp_path: Path) -> None:
    n_spk = max(4, CORPORA.get(name).synthetic.speakers[0])
    n_spk += n_spk % 2 if CORPORA.get(name).synthetic.even_speakers else 0
    m = scan(name, write_corpus(name, tmp_path, n_speakers=n_spk, clips_per_class=1, extra_per_speaker=2,
                                duration_s=(0.3, 0.4)))
    counts = Counter(c.label for c in m.labelled())
    unknown = 1 if name == "msp-podcast" else 0  # plus one 'Unknown'-speaker turn per class
    assert counts == {k: n_spk + unknown for k in ("angry", "happy", "neutral", "sad")}
    excluded = m.excluded_counts()
    if name == "ravdess":  # calm gets clips_per_class, the true extras extra_per_speaker
        assert excluded.pop("calm") == n_spk
    assert excluded and set(excluded.values()) == {2 * n_spk}
    assert len({c.speaker for c in m.labelled()} - {"unknown"}) == n_spk


def test_bad_arguments() -> None:
    with pytest.raises(BadValueError, match="emodb"):
        write_corpus("emo-db", "/tmp/never")
    with pytest.raises(BadValueError, match="even"):
        write_corpus("iemocap", "/tmp/never", n_speakers=3)
    with pytest.raises(BadValueError, match="1..4"):
        write_corpus("ravdess", "/tmp/never", clips_per_class=5)
    with pytest.raises(BadValueError, match="channel"):
        write_corpus("emodb", "/tmp/never", channel="studio")


def _f0(x: np.ndarray) -> np.ndarray:
    """Per-frame F0 (Hz) of the voiced frames, by autocorrelation."""
    win, hop = 640, 160
    out = []
    thresh = 0.1 * np.abs(x).max()
    for s in range(0, len(x) - win, hop):
        fr = x[s : s + win]
        if np.abs(fr).max() < thresh:
            continue
        fr = fr - fr.mean()
        ac = np.correlate(fr, fr, "full")[win - 1 :]
        lo, hi = SR // 500, SR // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.4 * ac[0]:
            out.append(SR / lag)
    return np.array(out)


def test_prosody_is_class_dependent() -> None:
    rng = np.random.default_rng(0)
    spk = make_speaker(np.random.default_rng(1), "M")
    stats: dict[str, dict[str, float]] = {}
    for label in ("angry", "happy", "neutral", "sad"):
        rms, f0, spread = [], [], []
        for _ in range(6):
            x = voice(PROSODY[label], spk, 1.5, SR, rng)
            rms.append(np.sqrt(np.mean(x**2)))
            track = _f0(x)
            f0.append(np.median(track))
            semitones = 12 * np.log2(track)
            spread.append(np.percentile(semitones, 75) - np.percentile(semitones, 25))  # robust to octave slips
        stats[label] = {"rms": float(np.mean(rms)), "f0": float(np.mean(f0)), "range": float(np.mean(spread))}
    assert stats["angry"]["rms"] > stats["happy"]["rms"] > stats["neutral"]["rms"] > stats["sad"]["rms"]
    assert min(stats["angry"]["f0"], stats["happy"]["f0"]) > stats["neutral"]["f0"] > stats["sad"]["f0"]
    assert stats["happy"]["range"] > stats["neutral"]["range"] > stats["sad"]["range"]


def test_channels_differ_in_noise_and_reverb() -> None:
    rng = np.random.default_rng(0)
    x = np.zeros(SR, dtype=np.float32)
    x[SR // 4 : SR // 2] = np.sin(2 * np.pi * 220 * np.arange(SR // 4) / SR) * 0.3
    tails = {}
    for name in ("emodb", "iemocap"):
        y = apply_channel(x, CHANNELS[name], SR, rng)
        after = y[SR // 2 + SR // 20 : SR // 2 + SR // 5]  # 50-200 ms after the tone stops
        tails[name] = float(np.sqrt(np.mean(after**2)) / np.sqrt(np.mean(y[SR // 4 : SR // 2] ** 2)))
    assert tails["iemocap"] > 10 * tails["emodb"]  # reverberant, noisy room vs anechoic chamber


def _features(m) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean/std of 24 log band energies over active frames (a crude frozen 'embedding')."""
    feats, labels, speakers = [], [], []
    edges = np.geomspace(2, 257, 25).astype(int)
    for c in m.labelled():
        x, _ = sf.read(Path(m.root) / c.path, dtype="float32")
        idx = np.arange(400)[None, :] + 160 * np.arange(1 + (len(x) - 400) // 160)[:, None]
        power = np.abs(np.fft.rfft(x[idx] * np.hanning(400), 512)) ** 2
        bands = np.log(np.stack([power[:, a:b].sum(1) for a, b in zip(edges[:-1], edges[1:], strict=True)], 1) + 1e-10)
        active = bands[bands.max(1) > np.percentile(bands.max(1), 30)]
        feats.append(np.concatenate([active.mean(0), active.std(0)]))
        labels.append(c.label)
        speakers.append(c.speaker)
    return np.array(feats), np.array(labels), np.array(speakers)


def test_probe_transfers_worse_across_channels(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    kw = dict(duration_s=(0.8, 1.6))
    home = _features(scan("emodb", write_corpus("emodb", tmp_path / "home", seed=0, **kw)))
    away = _features(scan("emodb", write_corpus("emodb", tmp_path / "away", seed=1, channel="iemocap", **kw)))
    X, y, spk = home
    train = np.isin(spk, ["03", "08", "09", "10", "11", "12"])
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X[train], y[train])
    in_corpus = probe.score(X[~train], y[~train])
    cross = probe.score(away[0], away[1])
    assert in_corpus >= 0.6, in_corpus  # chance is 0.25: the prosody carries the classes
    assert cross <= in_corpus - 0.2, (in_corpus, cross)  # the channel shift hurts, as between real corpora
    # standardising the other corpus with its own statistics recovers part, not all, of it
    clf = probe.steps[-1][1]
    adapted = clf.score((away[0] - away[0].mean(0)) / away[0].std(0), away[1])
    assert cross + 0.15 <= adapted < in_corpus, (cross, adapted, in_corpus)

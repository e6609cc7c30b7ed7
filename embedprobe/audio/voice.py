"""Speech-like test signals with class-dependent prosody and a corpus-specific channel.

Pure functions of parameters and a numpy ``Generator``; no files. A clip is a voiced
source (sawtooth glottal flow at a time-varying F0, spectrally tilted, plus aspiration
noise) shaped into syllables (voiced nucleus + fricative burst), filtered by a
three-formant vocal tract whose vowel changes per syllable, then passed through a channel
(EQ tilt, band limits, exponentially decaying reverb, coloured noise floor).

What carries the emotion (tuned after the acoustic-correlate literature, e.g. Scherer 2003;
Juslin & Laukka 2003): angry = high and tense (flat spectral tilt), loud, fast, sharp
onsets; happy = high pitch with a wide range, moderately loud; sad = low, narrow, slow,
quiet, breathy, dark; neutral = mid, flat, medium. Other labels get their own profiles so
that excluded clips are not silent duplicates.

Each corpus reader declares its own :class:`Channel` (``synthetic.channel`` in its module, see
:mod:`embedprobe.corpora.synthetic`); this module knows no corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Prosody:
    """Class-level voice settings (deviations from the speaker's habitual voice)."""

    f0_shift_st: float = 0.0  # semitones above the speaker's base F0
    f0_range_st: float = 1.5  # std of syllable pitch targets, semitones
    rate: float = 4.5  # syllables per second
    level_db: float = 0.0  # loudness
    tilt: float = 0.6  # source low-pass pole (higher = darker, breathier voice)
    breath: float = 0.05  # aspiration noise relative to the voiced source
    attack: float = 0.25  # fraction of a syllable nucleus spent rising (lower = sharper)
    declination_st: float = -2.0  # pitch drift over the utterance
    duration: float = 1.0  # relative utterance length


NEUTRAL = Prosody()
PROSODY: dict[str, Prosody] = {
    "neutral": NEUTRAL,
    "angry": Prosody(4.0, 2.0, 5.8, 8.0, 0.25, 0.02, 0.08, -3.0, 0.9),
    "happy": Prosody(4.5, 4.5, 5.2, 4.0, 0.45, 0.04, 0.18, 1.5, 0.95),
    "sad": Prosody(-2.5, 0.6, 3.0, -7.0, 0.85, 0.25, 0.4, -3.5, 1.15),
    # labels kept out of 4-class work
    "calm": Prosody(-1.0, 1.0, 3.8, -3.0, 0.7, 0.1, 0.35, -2.0, 1.05),
    "excited": Prosody(5.5, 4.0, 6.0, 6.0, 0.35, 0.03, 0.12, 1.0, 0.9),
    "frustrated": Prosody(1.5, 1.5, 4.8, 3.0, 0.4, 0.06, 0.15, -2.5, 1.0),
    "fear": Prosody(6.0, 2.5, 6.5, 1.0, 0.5, 0.15, 0.2, 2.0, 0.95),
    "disgust": Prosody(-1.5, 2.0, 3.4, 1.0, 0.55, 0.1, 0.3, -4.0, 1.1),
    "surprise": Prosody(6.5, 5.0, 5.0, 4.0, 0.45, 0.05, 0.15, 4.0, 0.85),
    "boredom": Prosody(-2.0, 0.4, 3.5, -4.0, 0.75, 0.12, 0.4, -1.5, 1.1),
    "contempt": Prosody(-0.5, 2.5, 4.0, 0.0, 0.55, 0.08, 0.25, -3.0, 1.0),
    "other": Prosody(0.5, 2.0, 4.5, 0.5, 0.55, 0.06, 0.25, -1.0, 1.0),
}

#: Vowel formants (F1, F2, F3) in Hz for an adult male vocal tract.
VOWELS = np.array([[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010], [570, 840, 2410], [300, 870, 2240]])
BANDWIDTHS = np.array([80.0, 100.0, 140.0])


@dataclass(frozen=True)
class Speaker:
    """A synthetic voice."""

    f0_hz: float
    formant_scale: float
    rate_scale: float = 1.0
    level_db: float = 0.0
    breath: float = 0.0


def make_speaker(rng: np.random.Generator, gender: str) -> Speaker:
    """A random voice of gender ``"F"`` or ``"M"``."""
    female = gender.upper().startswith("F")
    return Speaker(
        f0_hz=float((205.0 if female else 115.0) * np.exp(rng.normal(0, 0.1))),
        formant_scale=float((1.15 if female else 1.0) * np.exp(rng.normal(0, 0.035))),
        rate_scale=float(np.exp(rng.normal(0, 0.1))),
        level_db=float(rng.normal(0, 1.5)),
        breath=float(abs(rng.normal(0, 0.03)) + (0.03 if female else 0.0)),
    )


@dataclass(frozen=True)
class Channel:
    """Recording conditions of one corpus.

    Attributes:
        tilt_db_oct: EQ slope in dB per octave around 1 kHz (negative = darker).
        highpass_hz / lowpass_hz: band limits (4th / 8th-order magnitude roll-offs).
        rt60_s: reverberation time of the exponentially decaying tail (0 = dry).
        drr_db: direct-to-reverberant energy ratio.
        snr_db: speech-to-noise ratio of the noise floor.
        noise_slope: noise spectrum slope (0 white, 1 pink, 2 brown).
        hum_hz: mains hum frequency (0 = none), 6 dB under the noise floor.
        expressiveness: scales every class's prosody deviation from neutral (acted > natural).
    """

    tilt_db_oct: float = 0.0
    highpass_hz: float = 60.0
    lowpass_hz: float = 7500.0
    rt60_s: float = 0.0
    drr_db: float = 10.0
    snr_db: float = 40.0
    noise_slope: float = 0.0
    hum_hz: float = 0.0
    expressiveness: float = 1.0


#: The channel of a corpus that declares none (a clean close-talk recording).
DEFAULT_CHANNEL = Channel()


def scaled(prosody: Prosody, expressiveness: float) -> Prosody:
    """``prosody`` with its deviation from neutral scaled by ``expressiveness``."""
    def mix(name: str) -> float:
        base = getattr(NEUTRAL, name)
        return base + expressiveness * (getattr(prosody, name) - base)
    return replace(prosody, **{k: mix(k) for k in prosody.__dataclass_fields__})


def _formant_filter(f1f2f3: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1.0])
    for f, bw in zip(np.minimum(f1f2f3, 0.45 * sr), BANDWIDTHS, strict=True):
        r = np.exp(-np.pi * bw / sr)
        a = np.convolve(a, [1.0, -2 * r * np.cos(2 * np.pi * f / sr), r * r])
    return np.array([a.sum()]), a


def voice(prosody: Prosody, speaker: Speaker, duration_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A dry utterance (float32, RMS set by ``prosody.level_db + speaker.level_db``)."""
    from scipy.signal import lfilter  # scipy.signal costs ~1 s of import: only when synthesising

    n = max(int(duration_s * sr), sr // 10)
    rate = prosody.rate * speaker.rate_scale * np.exp(rng.normal(0, 0.08))
    n_syl = max(1, int(round(duration_s * rate)))
    edges = np.linspace(0.04 * n, 0.96 * n, n_syl + 1)
    edges[1:-1] += rng.uniform(-0.2, 0.2, n_syl - 1) * (edges[1] - edges[0])
    edges = edges.astype(int)
    centres = (edges[:-1] + edges[1:]) / 2
    # pitch: declination + per-syllable targets, interpolated and slightly jittered
    trend = prosody.declination_st * (centres / n - 0.5)
    targets = trend + prosody.f0_range_st * rng.standard_normal(n_syl) + rng.normal(0, 0.7)
    semis = np.interp(np.arange(n), centres, targets) + prosody.f0_shift_st
    knots = np.arange(0, n + sr // 50, sr // 50)  # slow random-walk drift, 50 knots/s
    semis += np.interp(np.arange(n), knots, 0.15 * np.cumsum(rng.standard_normal(len(knots))) / np.sqrt(50))
    f0 = speaker.f0_hz * 2.0 ** (semis / 12.0)
    phase = np.cumsum(f0 / sr)
    source = 2.0 * (phase % 1.0) - 1.0
    alpha = float(np.clip(prosody.tilt, 0.0, 0.97))
    source = lfilter([1.0 - alpha], [1.0, -alpha], source)
    source /= np.std(source) + 1e-9
    noise = rng.standard_normal(n)
    source = source + (prosody.breath + speaker.breath) * 3.0 * noise
    # syllable envelopes: voiced nucleus, then a fricative burst, then a short gap
    env = np.zeros(n)
    fric = np.zeros(n)
    for i in range(n_syl):
        a, b = edges[i], edges[i + 1]
        length = b - a
        v_end = a + int(0.7 * length)
        nv = v_end - a
        if nv < 4:
            continue
        k_att = max(2, int(prosody.attack * nv))
        shape = np.ones(nv)
        shape[:k_att] = np.sin(np.linspace(0, np.pi / 2, k_att)) ** 2
        shape[-k_att:] = np.minimum(shape[-k_att:], np.cos(np.linspace(0, np.pi / 2, k_att)) ** 2)
        env[a:v_end] = shape * 10 ** (rng.normal(0, 2.0) / 20)
        f_end = min(b, v_end + int(0.15 * length))
        if f_end > v_end and rng.random() < 0.6:
            fric[v_end:f_end] = np.hanning(f_end - v_end) * 0.3
    voiced = source * env
    out = np.zeros(n)
    zi = np.zeros(6)
    smile = 1.0 + 0.04 * np.tanh(prosody.f0_shift_st / 4)
    for i in range(n_syl):
        a, b = edges[i], edges[i + 1]
        formants = VOWELS[rng.integers(len(VOWELS))] * speaker.formant_scale * smile
        bb, aa = _formant_filter(formants, sr)
        out[a:b], zi = lfilter(bb, aa, voiced[a:b], zi=zi)
    hiss = np.zeros(n)
    hiss[1:] = (noise[1:] - noise[:-1]) * fric[1:]
    out += hiss * (np.std(out) + 1e-9) / (np.std(hiss) + 1e-9) * 0.15
    target = 0.05 * 10 ** ((prosody.level_db + speaker.level_db) / 20)
    active = out[env > 0.1] if np.any(env > 0.1) else out
    return (out * target / (np.sqrt(np.mean(active**2)) + 1e-12)).astype(np.float32)


@lru_cache(maxsize=64)
def _eq_gain(channel: Channel, nfft: int, sr: int) -> np.ndarray:
    f = np.maximum(np.fft.rfftfreq(nfft, 1.0 / sr), 20.0)
    gain = (f / 1000.0) ** (channel.tilt_db_oct / 6.02)
    gain /= np.sqrt(1.0 + (channel.highpass_hz / f) ** 8)
    gain /= np.sqrt(1.0 + (f / channel.lowpass_hz) ** 16)
    return gain


def apply_channel(x: np.ndarray, channel: Channel, sr: int, rng: np.random.Generator) -> np.ndarray:
    """EQ + band limits + reverb in one FFT pass, then the noise floor (float32, clipped to [-1, 1])."""
    import scipy.fft as sfft  # scipy.signal costs ~1 s of import: only when synthesising
    from scipy.signal import lfilter
    n = len(x)
    ir_len = int(min(channel.rt60_s, 1.0) * sr)
    nfft = sfft.next_fast_len(n + ir_len + 1, real=True)
    spec = sfft.rfft(x, nfft) * _eq_gain(channel, nfft, sr)
    if ir_len > 1:
        t = np.arange(ir_len) / sr
        tail = rng.standard_normal(ir_len) * np.exp(-6.9 * t / channel.rt60_s)
        tail[: int(0.002 * sr)] = 0.0
        tail *= 10 ** (-channel.drr_db / 20) / (np.sqrt(np.sum(tail**2)) + 1e-12)
        tail[0] = 1.0
        spec *= sfft.rfft(tail, nfft)
    y = sfft.irfft(spec, nfft)[:n]
    sig_rms = np.sqrt(np.mean(y**2)) + 1e-12
    noise = rng.standard_normal(n)
    if channel.noise_slope > 0:  # one-pole colouring: slope 1 ~ pink-ish, 2 ~ brown
        pole = 1.0 - 10.0 ** (-channel.noise_slope)
        noise = lfilter([1.0], [1.0, -pole], noise)
    noise *= sig_rms * 10 ** (-channel.snr_db / 20) / (np.sqrt(np.mean(noise**2)) + 1e-12)
    if channel.hum_hz:
        tt = np.arange(n) / sr
        hum = np.sin(2 * np.pi * channel.hum_hz * tt) + 0.5 * np.sin(2 * np.pi * 3 * channel.hum_hz * tt)
        noise += hum * sig_rms * 10 ** (-(channel.snr_db + 6) / 20)
    return np.clip(y + noise, -1.0, 1.0).astype(np.float32)


def synth_clip(
    label: str,
    speaker: Speaker,
    channel: Channel,
    duration_s: float,
    sr: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """One clip of ``label`` (a key of :data:`PROSODY`) spoken by ``speaker`` through ``channel``."""
    prosody = scaled(PROSODY[label], channel.expressiveness)
    jittered = replace(
        prosody,
        f0_shift_st=prosody.f0_shift_st + rng.normal(0, 1.0),
        level_db=prosody.level_db + rng.normal(0, 1.5),
        f0_range_st=max(0.2, prosody.f0_range_st * np.exp(rng.normal(0, 0.2))),
    )
    return apply_channel(voice(jittered, speaker, duration_s, sr, rng), channel, sr, rng)

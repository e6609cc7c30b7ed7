"""Blind acoustic estimators on signals of known reverberation and SNR; corpus distances; plots."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest
from augment_signals import SR, burst_train, emodb_clips, reverberate

from embedprobe.augment.acoustics import MEASURES, distribution_distances, loudness, measure
from embedprobe.augment.blind import WADA_DB, WADA_G, c50_from_t60, t60_blind, wada_snr
from embedprobe.errors import BadValueError, MissingDependencyError

T60S = (0.3, 0.6, 1.0)
needs_dnsmos = pytest.mark.skipif(
    find_spec("speechmos") is None or find_spec("onnxruntime") is None,
    reason="pip install 'embedprobe[acoustics]'",
)


def _add_noise(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    x = x.astype(np.float64)
    n = np.random.default_rng(seed).standard_normal(len(x))
    return x + n * np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10))


def test_t60_on_free_decays_of_known_rooms():
    # noise-burst trains through exponential-decay rooms: the estimator's own model
    for seed in (0, 1):
        est = [t60_blind(reverberate(burst_train(seed), t60, seed + 10), SR) for t60 in T60S]
        assert est[0] < est[1] < est[2]
        assert all(abs(e - t) <= 0.1 for e, t in zip(est, T60S, strict=True)), est
    from scipy.signal import resample_poly

    at_22k = resample_poly(reverberate(burst_train(0), 0.6, 0), 441, 320)  # other rates resample
    assert abs(t60_blind(at_22k, 22050) - 0.6) <= 0.1
    assert np.isnan(t60_blind(np.zeros(SR), SR))  # nothing decays
    assert np.isnan(t60_blind(np.ones(100), SR))  # too short


@pytest.mark.emodb
def test_t60_on_reverberated_emodb_speech(emodb_root):
    clips = emodb_clips(emodb_root, 6)
    med = []
    for t60 in T60S:
        est = [t60_blind(reverberate(x, t60, i), SR) for i, (_, x) in enumerate(clips)]
        med.append(float(np.nanmedian(est)))
    assert med[0] < med[1] < med[2], med
    assert all(abs(m - t) <= 0.25 * t + 0.05 for m, t in zip(med, T60S, strict=True)), med


def test_c50_model_and_its_monotony():
    # closed form == numerical integration of the exponential energy decay
    for t60 in T60S:
        t = np.linspace(0, 10 * t60, 2_000_001)
        e = np.exp(-6 * np.log(10) * t / t60)
        early = e[t <= 0.05].sum()
        expect = 10 * np.log10(early / (e.sum() - early))
        assert abs(c50_from_t60(t60) - expect) < 0.01
    est = [measure(reverberate(burst_train(0), t60, 5), SR, which=["t60", "c50"]) for t60 in T60S]
    c50 = [m["c50"] for m in est]
    assert c50[0] > c50[1] > c50[2]
    assert np.isnan(c50_from_t60(float("nan")))


def test_wada_table_matches_the_gamma_speech_model():
    # Monte-Carlo re-derivation of the lookup table: Gamma(0.4) amplitudes + Gaussian noise
    rng = np.random.default_rng(0)
    k = 0.4
    s = rng.gamma(k, 1.0, 400_000) * rng.choice([-1.0, 1.0], 400_000)
    z = rng.standard_normal(400_000)
    for db in (-10, 0, 10, 20, 30):
        x = np.abs(s + z * np.sqrt(k * (k + 1) / 10 ** (db / 10)))
        x = np.maximum(x / x.max(), 1e-10)
        g = np.log(x.mean()) - np.log(x).mean()
        assert abs(g - WADA_G[WADA_DB == db][0]) < 0.01
    # and on such a signal the estimator recovers the SNR it was built for
    for db in (0.0, 10.0, 20.0):
        assert abs(wada_snr(_add_noise(s[:48000], db, 1)) - db) < 1.0


@pytest.mark.emodb
def test_wada_snr_on_noisy_emodb_speech(emodb_root):
    clean = [x for _, x in emodb_clips(emodb_root, 60, step=4) if wada_snr(x) > 35][:6]
    assert len(clean) >= 4
    for snr in (0.0, 10.0, 20.0):
        err = np.array([wada_snr(_add_noise(x, snr, i)) - snr for i, x in enumerate(clean)])
        assert np.median(np.abs(err)) <= 3.0, (snr, err)
    est = [wada_snr(_add_noise(clean[0], snr, 0)) for snr in (0.0, 10.0, 20.0)]
    assert est[0] < est[1] < est[2]
    assert np.isnan(wada_snr(np.zeros(100)))


def test_loudness_of_a_full_scale_sine():
    pytest.importorskip("pyloudnorm")
    t = np.arange(3 * 48000) / 48000
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LUFS
    assert abs(loudness(np.sin(2 * np.pi * 997 * t), 48000) + 3.01) < 0.05
    assert abs(loudness(0.1 * np.sin(2 * np.pi * 997 * t), 48000) + 23.01) < 0.05
    assert np.isnan(loudness(np.zeros(48000), 48000))
    assert np.isnan(loudness(np.ones(100) * 0.1, 48000))


def test_measure_names_and_order():
    x = reverberate(burst_train(2), 0.6, 2)
    out = measure(x, SR, which=["snr", "c50", "t60"])
    assert list(out) == ["snr", "c50", "t60"] and all(isinstance(v, float) for v in out.values())
    with pytest.raises(BadValueError, match="t60"):
        measure(x, SR, which=["rt60"])
    with pytest.raises(BadValueError, match="shape"):
        measure(np.zeros((2, 100)), SR, which=["snr"])


def test_missing_dnsmos_names_the_extra(monkeypatch):
    import importlib.util

    from embedprobe.augment import dnsmos

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "speechmos" else real(n, *a))
    with pytest.raises(MissingDependencyError, match=r"embedprobe\[acoustics\]"):
        dnsmos.model_path()


@needs_dnsmos
@pytest.mark.emodb
def test_dnsmos_rates_clean_emodb_above_noisy(emodb_root):
    from embedprobe.augment.dnsmos import dnsmos

    for _, x in emodb_clips(emodb_root, 2):
        clean = measure(x, SR, which=["mos_sig", "mos_bak", "mos_ovrl"])
        noisy = dnsmos(_add_noise(x, 0.0, 0).astype(np.float32), SR)
        assert all(1.0 <= v <= 5.0 for v in (*clean.values(), *noisy.values())), (clean, noisy)
        assert noisy["mos_ovrl"] < clean["mos_ovrl"] - 0.5 and noisy["mos_bak"] < clean["mos_bak"]
    # other sample rates are resampled to 16 kHz
    assert 1.0 <= dnsmos(np.asarray(x[::2]), 8000)["mos_ovrl"] <= 5.0


def test_distribution_distances_identities():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.1, 300)
    rows = distribution_distances({
        "a": {"t60": a, "snr": [1.0, np.nan, 3.0]},
        "a_copy": {"t60": a.copy(), "snr": [1.0, 3.0]},
        "shifted": {"t60": a + 0.3},
    })
    by = {(r["measure"], r["corpus_a"], r["corpus_b"]): r for r in rows}
    assert list(dict.fromkeys(r["measure"] for r in rows)) == ["t60", "snr"]  # MEASURES order
    same = by[("t60", "a", "a_copy")]
    assert same["wasserstein"] == 0 and same["ks"] == 0
    moved = by[("t60", "a", "shifted")]
    assert abs(moved["wasserstein"] - 0.3) < 1e-9 and moved["ks"] > 0.8 and moved["ks_pvalue"] < 1e-6
    assert abs(moved["wasserstein_std"] - 0.3 / np.std(np.concatenate([a, a + 0.3]))) < 1e-9
    assert by[("snr", "a", "a_copy")]["n_a"] == 2  # NaN dropped
    assert ("snr", "a", "shifted") not in by  # measure absent on one side
    assert set(MEASURES) >= {"mos_ovrl", "t60", "c50", "snr", "loudness"}


def test_plot_distributions_writes_a_figure(tmp_path):
    from embedprobe.augment.plots import plot_distributions

    rng = np.random.default_rng(0)
    values = {
        "raw": {"iemocap": {"t60": rng.normal(0.6, 0.1, 50), "c50": rng.normal(3, 1, 50)},
                "msp": {"t60": rng.normal(0.3, 0.1, 50), "c50": [5.0, 6.0]}},
        "augm.": {"msp": {"t60": rng.normal(0.5, 0.1, 50), "c50": rng.normal(4, 1, 50)}},
    }
    fig = plot_distributions(values, path=tmp_path / "fig4.png")
    assert len(fig.axes) == 4 and fig.axes[0].get_title().startswith("T60")
    assert (tmp_path / "fig4.png").stat().st_size > 5000
    with pytest.raises(BadValueError):
        plot_distributions({})

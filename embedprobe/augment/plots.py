"""Figure 4 of the paper: distributions of acoustic measures per corpus, with and without augmentation.

Rows are conditions (e.g. ``"raw"`` and ``"augm."``), columns are measures, and each panel
overlays one density per corpus (Gaussian KDE, Scott's bandwidth; a histogram when a corpus
has fewer than ``min_kde`` finite values or no spread). Uses matplotlib's Agg backend, so it
works headless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from embedprobe.augment.acoustics import MEASURES, UNITS
from embedprobe.errors import BadValueError

_LABELS = {
    "mos_sig": "MOS (SIG)", "mos_bak": "MOS (BAK)", "mos_ovrl": "MOS (OVRL)", "t60": "T60",
    "c50": "C50", "snr": "SNR (WADA)", "loudness": "Loudness",
}


def plot_distributions(
    values: Mapping[str, Mapping[str, Mapping[str, Sequence[float] | np.ndarray]]],
    *,
    measures: Sequence[str] | None = None,
    path: str | Path | None = None,
    min_kde: int = 5,
    dpi: int = 120,
):
    """Plot per-corpus distributions of acoustic measures, one row per condition.

    Args:
        values: ``{condition: {corpus: {measure: per-clip values}}}``, e.g.
            ``{"raw": {"iemocap": {...}, "msp": {...}}, "augm.": {"msp": {...}}}``.
        measures: columns, default the measures present (paper's order: MOS, T60, C50 first).
        path: if given, the figure is also saved there (PNG/SVG/PDF by suffix).
        min_kde: fewest finite values for a KDE; fewer are drawn as a histogram.
        dpi: resolution when saving.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from scipy.stats import gaussian_kde

    if not values:
        raise BadValueError("plot input", values, fix="Pass {condition: {corpus: {measure: values}}}.")
    found = {m for cond in values.values() for corp in cond.values() for m in corp}
    if measures is None:
        order = ("mos_ovrl", "t60", "c50", "snr", "mos_sig", "mos_bak", "loudness")
        measures = [m for m in order if m in found] + sorted(found - set(MEASURES))
    if not measures:
        raise BadValueError("measures", measures, sorted(found), fix="Name at least one measure to plot.")
    corpora = list(dict.fromkeys(c for cond in values.values() for c in cond))
    colours = {c: f"C{i % 10}" for i, c in enumerate(corpora)}
    conditions = list(values)
    fig, axes = plt.subplots(
        len(conditions), len(measures), figsize=(3.2 * len(measures), 2.4 * len(conditions)),
        squeeze=False, sharex="col",
    )
    for r, cond in enumerate(conditions):
        for c, m in enumerate(measures):
            ax = axes[r][c]
            for corpus, by_measure in values[cond].items():
                x = np.asarray(by_measure.get(m, []), dtype=np.float64).ravel()
                x = x[np.isfinite(x)]
                if not len(x):
                    continue
                label = f"{corpus} (n={len(x)})"
                if len(x) >= min_kde and np.ptp(x) > 0:
                    grid = np.linspace(x.min() - 0.1 * np.ptp(x), x.max() + 0.1 * np.ptp(x), 200)
                    y = gaussian_kde(x)(grid)
                    ax.plot(grid, y, color=colours[corpus], label=label)
                    ax.fill_between(grid, y, alpha=0.2, color=colours[corpus])
                else:
                    ax.hist(x, bins=10, density=True, alpha=0.5, color=colours[corpus], label=label)
            if r == 0:
                ax.set_title(f"{_LABELS.get(m, m)} [{UNITS.get(m, '')}]".replace(" []", ""))
            if c == 0:
                ax.set_ylabel(f"{cond}\ndensity")
            ax.tick_params(labelsize=8)
            if c == len(measures) - 1:
                ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig

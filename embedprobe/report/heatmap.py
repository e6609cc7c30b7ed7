"""PNG heatmaps of cross-corpus matrices, annotated with values and intervals (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedprobe.report.tables import Matrix


def save_heatmap(m: Matrix, path: Path, digits: int = 2) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vals = np.array([[np.nan if v is None else v for v in row] for row in m.values], dtype=float)
    fig_w = 1.6 + 1.45 * len(m.cols)
    fig_h = 1.3 + 0.75 * len(m.rows)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h), dpi=110)
    if m.relative:
        lim = max(0.05, float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 0.05)
        im = ax.imshow(vals, cmap="RdYlGn", vmin=-lim, vmax=lim)
    else:
        im = ax.imshow(vals, cmap="viridis", vmin=np.nanmin(vals) if np.isfinite(vals).any() else 0,
                       vmax=np.nanmax(vals) if np.isfinite(vals).any() else 1)
    ax.set_xticks(range(len(m.cols)), m.cols, rotation=30, ha="right")
    ax.set_yticks(range(len(m.rows)), m.rows)
    ax.set_xlabel("test corpus")
    ax.set_ylabel("trained on")
    ax.set_title(m.title, fontsize=10)
    finite = vals[np.isfinite(vals)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(len(m.rows)):
        for j in range(len(m.cols)):
            v = m.values[i][j]
            if v is None:
                ax.text(j, i, "–", ha="center", va="center", fontsize=8)
                continue
            text = f"{v:+.{digits}f}" if m.relative else f"{v:.{digits}f}"
            if m.low[i][j] is not None and m.high[i][j] is not None:
                text += f"\n[{m.low[i][j]:.{digits}f}, {m.high[i][j]:.{digits}f}]"
            dark = (v < mid) if not m.relative else abs(v) > 0.6 * abs(mid or 1)
            ax.text(j, i, text, ha="center", va="center", fontsize=7.5,
                    color="white" if (dark and not m.relative) else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path

"""Probe speed and quality against scikit-learn, measured side by side in one run.

Synthetic embeddings of MSP-Podcast size (68,000 clips x 1024 dims by default: 50,494 train,
6,656 validation, 10,779 test; 4 classes with MSP-like imbalance), informative but not
trivially separable: the class signal lives in a 24-dim subspace, partly linear and partly
quadratic (a class that differs in spread, not in mean), under correlated nuisance factors
(a "speaker" subspace) and isotropic noise. A frame-level variant gives every clip 20 float16
frames whose mean is the clip's vector plus frame noise.

Timed per matrix cell (fit on train+val, predict on one test set), wall and process CPU time,
on one thread (torch and BLAS) so other users of the machine disturb the figures least:

* ``LinearProbe`` vs ``sklearn.linear_model.LogisticRegression`` (lbfgs, max_iter=200, on
  StandardScaler features);
* ``MLPProbe`` vs ``sklearn.neural_network.MLPClassifier`` ((128, 256), early_stopping);
* ``MLPProbe`` with frame masking + same-label mixing + noise on the frame variant.

The full 5x5 matrix with 3 seeds is extrapolated conservatively as 15 MSP-size fits plus 75
test predictions. The last line printed is one JSON object with every figure.

Usage::

    python benchmarks/probe_speed.py            # full size (~3 GB RAM for the frame variant)
    python benchmarks/probe_speed.py --small    # 8,000 clips, 256 dims: a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from contextlib import contextmanager

import numpy as np

MSP_SPLIT = (50494, 6656, 10779)
PRIORS = np.array([0.14, 0.30, 0.46, 0.10])  # angry, happy, neutral, sad (MSP-like imbalance)


def make_data(n: int, dim: int, seed: int, frames: int = 0) -> dict:
    """Synthetic pooled features (float32) and, if ``frames``, a maker of float16 FrameSets."""
    import torch

    from embedprobe.probes.features import FrameSet

    rng = np.random.default_rng(seed)
    y = rng.choice(4, size=n, p=PRIORS)
    r_sig, r_nui = 24, 48
    means = rng.normal(0.0, 0.2, (4, r_sig))
    spread = np.ones((4, r_sig))
    spread[0, :8] = 1.8  # "angry" differs in spread of part of the subspace: needs a nonlinearity
    spread[3, 8:16] = 0.45
    z = means[y] + rng.normal(0.0, 1.0, (n, r_sig)) * spread[y]
    speakers = rng.normal(0.0, 1.0, (n // 40 + 1, r_nui))[rng.integers(0, n // 40 + 1, n)]
    A = rng.normal(0.0, 1.0, (r_sig, dim)) / np.sqrt(r_sig)
    B = rng.normal(0.0, 1.0, (r_nui, dim)) * (1.5 / np.sqrt(r_nui))
    X = (z @ A + speakers @ B).astype(np.float32)
    X += rng.normal(0.0, 1.0, (n, dim)).astype(np.float32)
    X += rng.normal(0.0, 0.5, dim).astype(np.float32)  # a global offset, like real embeddings
    out = {"X": X, "y": y}
    if frames:
        g = torch.Generator().manual_seed(seed)

        def frameset(part: np.ndarray) -> FrameSet:
            chunks = []
            for s in range(0, part.shape[0], 4096):
                base = torch.from_numpy(part[s:s + 4096])
                f = base[:, None, :] + 1.5 * torch.randn((base.shape[0], frames, dim), generator=g)
                f = f - f.mean(dim=1, keepdim=True) + base[:, None, :]  # frame mean == pooled vector
                chunks.append(f.reshape(-1, dim).half())
            return FrameSet(torch.cat(chunks), np.arange(0, part.shape[0] * frames + 1, frames))

        out["frameset"] = frameset  # built per split by the caller, so no split is copied
    return out


@contextmanager
def timer(store: dict, key: str):
    w, c = time.perf_counter(), time.process_time()
    yield
    store[key] = {"wall": time.perf_counter() - w, "cpu": time.process_time() - c}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="8,000 clips x 256 dims")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=20, help="frames per clip of the frame variant (0 = skip)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from embedprobe.eval.metrics import auroc
    from embedprobe.probes.augment import POSTER_AUGMENT
    from embedprobe.probes.linear import LinearProbe
    from embedprobe.probes.mlp import MLPProbe

    torch.set_num_threads(args.threads)
    n_tr, n_va, n_te = (6000, 800, 1200) if args.small else MSP_SPLIT
    dim = 256 if args.small else 1024
    n = n_tr + n_va + n_te
    t0 = time.perf_counter()
    data = make_data(n, dim, args.seed, frames=args.frames)
    X, y = data["X"], data["y"]
    tr, va, te = np.arange(n_tr), np.arange(n_tr, n_tr + n_va), np.arange(n_tr + n_va, n)
    trva = np.arange(n_tr + n_va)
    print(f"data: {n} clips x {dim} dims, {args.frames} frames/clip variant; "
          f"made in {time.perf_counter() - t0:.1f}s; threads={args.threads}; "
          f"os.cpu_count={os.cpu_count()}, load avg {os.getloadavg()[0]:.2f}")

    rows: dict[str, dict] = {}
    with threadpool_limits(args.threads):  # warm-up: lazy imports and first-call costs, both sides
        few = np.r_[np.flatnonzero(y == 0)[:50], np.flatnonzero(y != 0)[:250]]
        for model in (LinearProbe(max_steps=50), MLPProbe(max_steps=50), LogisticRegression(max_iter=5),
                      MLPClassifier(hidden_layer_sizes=(8,), max_iter=2)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X[few], y[few])

    def run(name: str, fit, predict) -> None:
        t: dict = {}
        with threadpool_limits(args.threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LogisticRegression's ConvergenceWarning at max_iter
            with timer(t, "fit"):
                model = fit()
            with timer(t, "predict"):
                proba = predict(model)
        score = auroc(y[te], proba)
        cell = {k: t["fit"][k] + t["predict"][k] for k in ("wall", "cpu")}
        rows[name] = {"fit": t["fit"], "predict": t["predict"], "cell": cell, "test_auroc": score,
                      "steps": getattr(model, "n_steps_", None), "best_step": getattr(model, "best_step_", None)}
        print(f"{name:<14} fit {t['fit']['wall']:7.2f}s wall {t['fit']['cpu']:7.2f}s cpu | "
              f"predict {t['predict']['wall']:.3f}s | test AUROC {score:.4f}"
              + (f" | steps {model.n_steps_} (best {model.best_step_})" if hasattr(model, "n_steps_") else ""))

    seed = args.seed
    run("linear", lambda: LinearProbe(random_state=seed).fit(X[tr], y[tr], X_val=X[va], y_val=y[va]),
        lambda m: m.predict_proba(X[te]))
    run("sk_logreg", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(X[trva], y[trva]),
        lambda m: m.predict_proba(X[te]))
    run("mlp", lambda: MLPProbe(random_state=seed).fit(X[tr], y[tr], X_val=X[va], y_val=y[va]),
        lambda m: m.predict_proba(X[te]))
    run("sk_mlp", lambda: make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(128, 256), early_stopping=True, random_state=seed)).fit(X[trva], y[trva]),
        lambda m: m.predict_proba(X[te]))
    if args.frames:
        fs_tr, fs_va, fs_te = (data["frameset"](X[part]) for part in (tr, va, te))
        run("mlp_frames_aug", lambda: MLPProbe(random_state=seed, **POSTER_AUGMENT).fit(
            fs_tr, y[tr], X_val=fs_va, y_val=y[va]), lambda m: m.predict_proba(fs_te))

    def matrix(name: str) -> dict:
        r = rows[name]
        return {k: 15 * r["fit"][k] + 75 * r["predict"][k] for k in ("wall", "cpu")}

    summary = {
        "n_clips": n, "dim": dim, "frames_per_clip": args.frames, "threads": args.threads,
        "rows": rows,
        "linear_speedup_vs_logreg_cpu": rows["sk_logreg"]["cell"]["cpu"] / rows["linear"]["cell"]["cpu"],
        "linear_speedup_vs_logreg_wall": rows["sk_logreg"]["cell"]["wall"] / rows["linear"]["cell"]["wall"],
        "linear_auroc_minus_logreg": rows["linear"]["test_auroc"] - rows["sk_logreg"]["test_auroc"],
        "mlp_speedup_vs_sk_mlp_cpu": rows["sk_mlp"]["cell"]["cpu"] / rows["mlp"]["cell"]["cpu"],
        "mlp_auroc_minus_sk_mlp": rows["mlp"]["test_auroc"] - rows["sk_mlp"]["test_auroc"],
        "matrix_5x5_3seeds_mlp_s": matrix("mlp"),
    }
    if args.frames:
        summary["matrix_5x5_3seeds_mlp_frames_aug_s"] = matrix("mlp_frames_aug")
    print(f"linear vs LogisticRegression: {summary['linear_speedup_vs_logreg_cpu']:.1f}x faster (cpu), "
          f"AUROC diff {summary['linear_auroc_minus_logreg']:+.4f}")
    print(f"mlp vs MLPClassifier: {summary['mlp_speedup_vs_sk_mlp_cpu']:.1f}x faster (cpu), "
          f"AUROC diff {summary['mlp_auroc_minus_sk_mlp']:+.4f}")
    print(f"5x5 matrix x 3 seeds (15 fits + 75 predictions at this size): MLP "
          f"{summary['matrix_5x5_3seeds_mlp_s']['cpu']:.0f}s cpu / {summary['matrix_5x5_3seeds_mlp_s']['wall']:.0f}s wall"
          + (f"; MLP+frame augmentations {summary['matrix_5x5_3seeds_mlp_frames_aug_s']['cpu']:.0f}s cpu"
             if args.frames else ""))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

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
test predictions.

Part ``emodb`` (small corpus, busy machine): EmoDB's size, 339 clips x 88 eGeMAPS dimensions
in EmoDB's 10 speaker folds (test one speaker, validate on the next, train on 8), 3 seeds: the
real eGeMAPS cache when ``--emodb-cache DIR`` (holding ``emodb__egemaps.h5``) or
``--emodb-root`` (extracted first, ~20 s on 2 cores) is given, else synthetic features of the
same shapes and folds. Timed with embedprobe's own thread choice (no thread setting here):

* the whole protocol (30 trainings, each scoring its test fold while training, plus the test
  prediction) for ``LinearProbe`` and ``MLPProbe``, trained together as the matrix runner does
  (``fit_together``: one stacked model; ``--emodb-runs linear-single,mlp-single`` times one
  ``fit`` after the other as well), and ``LogisticRegression`` (lbfgs,
  StandardScaler, fitted on train+validation, one BLAS thread) on the same 30 fold x seed runs;
* ``run_matrix``, i.e. the same plus metrics and 1,000 bootstrap resamples (what ``embedprobe
  probe`` runs);
* all of it quiet, then again beside three busy processes (``python -c "while True: pass"``,
  started and killed here), plus the linear protocol forced onto every core (torch's old
  default) beside them.

Part ``crossover``: one training step and one prediction of each probe at several sizes on 1
and 2 threads: the figures behind ``embedprobe.common.threads.MIN_FLOPS_PER_THREAD``.

The last line printed is one JSON object with every figure of the parts run.

Usage::

    python benchmarks/probe_speed.py            # full size (~3 GB RAM for the frame variant)
    python benchmarks/probe_speed.py --small    # 8,000 clips, 256 dims: a quick check
    python benchmarks/probe_speed.py --parts emodb --emodb-cache cache   # EmoDB size, quiet and busy
    python benchmarks/probe_speed.py --parts large,emodb,crossover --small
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
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
    ap.add_argument("--parts", default="large,emodb", help="comma-separated: large, emodb, crossover")
    ap.add_argument("--small", action="store_true", help="large part: 8,000 clips x 256 dims")
    ap.add_argument("--threads", type=int, default=1, help="large part: torch and BLAS threads")
    ap.add_argument("--frames", type=int, default=20, help="frames per clip of the frame variant (0 = skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--emodb-cache", help="emodb part: folder with emodb__egemaps.h5")
    ap.add_argument("--emodb-root", help="emodb part: EmoDB folder, extracted with egemaps first")
    ap.add_argument("--busy", type=int, default=3, help="emodb part: competing busy processes")
    ap.add_argument("--emodb-runs", default="linear,mlp,matrix,all-cores",
                    help="emodb part: which protocols to time (linear, mlp: the 30 probes trained together, "
                         "as the matrix runner does; linear-single, mlp-single: one fit after the other; "
                         "matrix = linear with metrics and bootstrap), and all-cores (linear forced onto every "
                         "core beside the busy processes); LogisticRegression always runs")
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"large", "emodb", "crossover"}
    if unknown:
        ap.error(f"unknown parts {sorted(unknown)}; expected large, emodb, crossover")
    summary: dict = {"cpu": _cpu_model(), "os_cpu_count": os.cpu_count()}
    if "large" in parts:
        summary.update(large(args))
    if "emodb" in parts:
        summary["emodb"] = emodb(args)
    if "crossover" in parts:
        summary["crossover"] = crossover()
    print(json.dumps(summary))


def large(args) -> dict:
    """MSP-Podcast-size probes against scikit-learn, on ``args.threads`` threads."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from embedprobe.common.metrics import auroc
    from embedprobe.probes.augment import POSTER_AUGMENT
    from embedprobe.probes.linear import LinearProbe
    from embedprobe.probes.mlp import MLPProbe

    before = torch.get_num_threads()
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
    torch.set_num_threads(before)
    print(f"linear vs LogisticRegression: {summary['linear_speedup_vs_logreg_cpu']:.1f}x faster (cpu), "
          f"AUROC diff {summary['linear_auroc_minus_logreg']:+.4f}")
    print(f"mlp vs MLPClassifier: {summary['mlp_speedup_vs_sk_mlp_cpu']:.1f}x faster (cpu), "
          f"AUROC diff {summary['mlp_auroc_minus_sk_mlp']:+.4f}")
    print(f"5x5 matrix x 3 seeds (15 fits + 75 predictions at this size): MLP "
          f"{summary['matrix_5x5_3seeds_mlp_s']['cpu']:.0f}s cpu / {summary['matrix_5x5_3seeds_mlp_s']['wall']:.0f}s wall"
          + (f"; MLP+frame augmentations {summary['matrix_5x5_3seeds_mlp_frames_aug_s']['cpu']:.0f}s cpu"
             if args.frames else ""))
    return summary


# --------------------------------------------------------------------------- emodb part
def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


@contextmanager
def busy_processes(n: int):
    """``n`` processes spinning ``while True: pass`` for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(1.0)  # let them get going (and the load figures notice)
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def emodb_data(args) -> tuple:
    """EmoDB's 4-class clips as ``CorpusData`` (real eGeMAPS cache, else synthetic) and a label."""
    from embedprobe.pipeline.probe import load_corpus

    cache_dir = args.emodb_cache
    if cache_dir is None and args.emodb_root:
        from embedprobe.pipeline.extract import ExtractConfig, extract

        cache_dir = tempfile.mkdtemp(prefix="probe_speed_")
        extract(ExtractConfig(model="egemaps", corpus="emodb", root=args.emodb_root, out=cache_dir),
                progress=False)
    if cache_dir is not None:
        from embedprobe.cache.naming import cache_file

        data, _ = load_corpus(cache_file(cache_dir, "emodb", "egemaps"), layer=None, pooling="mean",
                              frames=False)
        return data, f"real eGeMAPS features of EmoDB ({cache_dir})"
    return synthetic_emodb(args.seed), "synthetic, EmoDB's shapes and 10 speaker folds"


def synthetic_emodb(seed: int, n: int = 339, dim: int = 88, speakers: int = 10):
    """339 clips x 88 dims, 10 speakers; fold f tests speaker f, validates on f+1, trains on 8."""
    from embedprobe.eval.data import CorpusData

    rng = np.random.default_rng(seed)
    y = rng.choice(4, size=n, p=[0.38, 0.21, 0.23, 0.18])  # EmoDB: 127 angry, 71 happy, 79 neutral, 62 sad
    spk = rng.integers(0, speakers, n)
    X = (rng.normal(0, 1, (4, dim))[y] * 0.6 + rng.normal(0, 1, (speakers, dim))[spk]
         + rng.normal(0, 1.5, (n, dim)) + rng.normal(0, 3, dim)).astype(np.float32)
    folds = [f"speaker/{k:02d}" for k in range(speakers)]
    parts = {}
    for k, f in enumerate(folds):
        part = np.full(n, "train", dtype=object)
        part[spk == k] = "test"
        part[spk == (k + 1) % speakers] = "val"
        parts[f] = part.astype(str)
    return CorpusData(name="emodb", ids=np.array([f"c{i}" for i in range(n)]), y=y,
                      speakers=np.array([f"{s:02d}" for s in spk]), X=X, parts=parts, folds=folds,
                      protocol="speaker")


def emodb(args) -> dict:
    """The EmoDB-size protocol, quiet and beside ``args.busy`` busy processes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from embedprobe.common.threads import cpu_cores, limit_threads
    from embedprobe.eval.data import test_index, training_split
    from embedprobe.eval.runner import MatrixSpec, run_matrix
    from embedprobe.probes import create, fit_together

    wanted = {w.strip() for w in args.emodb_runs.split(",")}
    data, source = emodb_data(args)
    seeds = (0, 1, 2)
    splits = [training_split([data], f) for f in range(len(data.folds))]
    tests = [data.take(test_index(data, f, True)) for f in range(len(data.folds))]
    print(f"emodb part: {len(data)} clips x {data.X.shape[1]} dims, {len(splits)} folds x {len(seeds)} seeds; "
          f"{source}; {cpu_cores()} cores, load {os.getloadavg()[0]:.2f}")

    def protocol(probe: str, together: bool = True, **params) -> float:
        """Seconds for 30 trainings as the matrix runner does them (test fold scored while training):
        all together as one stacked model (``fit_together``), or one ``fit`` after the other."""
        t = time.perf_counter()
        probes, fits, held_out = [], [], []
        for split, (Xt, yt) in zip(splits, tests, strict=True):
            for seed in seeds:
                probes.append(create(probe, random_state=seed, **params))
                fits.append({"X": split.X, "y": split.y, "X_val": split.X_val, "y_val": split.y_val,
                             "eval_sets": {"test:emodb": (Xt, yt)}})
                held_out.append(Xt)
        if together:
            fit_together(probes, fits)
        else:
            for m, fit in zip(probes, fits, strict=True):
                m.fit(**fit)
        for m, Xt in zip(probes, held_out, strict=True):
            m.predict_proba(Xt)
        return time.perf_counter() - t

    def logreg() -> float:
        t = time.perf_counter()
        with limit_threads(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for split, (Xt, _) in zip(splits, tests, strict=True):
                Xtr, ytr = np.r_[split.X, split.X_val], np.r_[split.y, split.y_val]
                for seed in seeds:
                    make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed)).fit(
                        Xtr, ytr).predict_proba(Xt)
        return time.perf_counter() - t

    def matrix() -> float:
        t = time.perf_counter()
        run_matrix({"emodb": data}, MatrixSpec(train_sets=(("emodb",),), tests=("emodb",), probe="linear",
                                                seeds=seeds, n_bootstrap=1000))
        return time.perf_counter() - t

    protocol("linear", max_steps=60)  # warm-up: lazy imports, first calls
    logreg()

    def measure(tag: str, forced: bool) -> dict:
        r: dict = {}
        runs = [("linear", lambda: protocol("linear")), ("mlp", lambda: protocol("mlp")), ("logreg", logreg),
                ("linear_matrix_with_bootstrap", matrix),
                ("linear_one_by_one", lambda: protocol("linear", together=False)),
                ("mlp_one_by_one", lambda: protocol("mlp", together=False))]
        names = {"linear_matrix_with_bootstrap": "matrix", "linear_one_by_one": "linear-single",
                 "mlp_one_by_one": "mlp-single"}
        for key, fn in runs:
            if key != "logreg" and names.get(key, key) not in wanted:
                continue
            c = time.process_time()
            r[f"{key}_s"] = fn()
            r[f"{key}_cpu_s"] = time.process_time() - c
        if forced and "all-cores" in wanted:  # the old behaviour: torch's and BLAS's default threads, one per core
            r["linear_all_cores_s"] = protocol("linear", n_threads=cpu_cores())
        r["load_1min_after"] = round(os.getloadavg()[0], 2)
        shown = "  ".join(f"{k[:-2]} {v:.1f}" for k, v in r.items() if k.endswith("_s"))
        print(f"  {tag:<7} seconds: {shown}  load {r['load_1min_after']}")
        return r

    quiet = measure("quiet", forced=False)
    with busy_processes(args.busy):
        busy = measure(f"busy x{args.busy}", forced=True)
    out = {
        "source": source, "n_clips": len(data), "dim": int(data.X.shape[1]), "folds": len(splits),
        "seeds": len(seeds), "cores": cpu_cores(), "busy_processes": args.busy, "quiet": quiet, "busy": busy,
        "goals": {"linear_vs_logreg_quiet": 3.0, "linear_busy_vs_quiet": 2.5},
    }
    if "linear" in wanted:
        out |= {"linear_vs_logreg_quiet": quiet["linear_s"] / quiet["logreg_s"],
                "linear_vs_logreg_quiet_cpu": quiet["linear_cpu_s"] / quiet["logreg_cpu_s"],
                "linear_vs_logreg_busy": busy["linear_s"] / busy["logreg_s"],
                "linear_busy_vs_quiet": busy["linear_s"] / quiet["linear_s"]}
    for key in ("mlp", "logreg", "linear_matrix_with_bootstrap", "linear_one_by_one", "mlp_one_by_one"):
        if f"{key}_s" in busy:
            out[f"{key}_busy_vs_quiet"] = busy[f"{key}_s"] / quiet[f"{key}_s"]
    base = quiet.get("linear_s")
    if "linear_all_cores_s" in busy and "linear" in wanted:
        out["linear_all_cores_busy_vs_quiet_linear"] = busy["linear_all_cores_s"] / base
    print("  ratios: " + "  ".join(f"{k} {v:.2f}" for k, v in out.items()
                                     if k.endswith(("_quiet", "_busy", "_cpu", "_linear")) and v is not None))
    return out


# --------------------------------------------------------------------------- crossover part
def crossover() -> list[dict]:
    """One probe training step / prediction at several sizes on 1 and 2 threads (best of 5)."""
    import torch
    import torch.nn.functional as F

    from embedprobe.common.threads import limit_threads
    from embedprobe.probes.nets import LinearNet, MLPNet

    gen = torch.Generator().manual_seed(0)
    rows = []
    cases = [(k, "train", b, d) for k in ("linear", "mlp") for b in (256, 1024) for d in (88, 1024, 4096)]
    cases += [(k, "predict", n, d) for k in ("linear", "mlp") for n in (300, 5000) for d in (88, 1024)]
    for kind, mode, b, d in cases:
        dims = (d, 4) if kind == "linear" else (d, 128, 256, 4)
        net = LinearNet(d, 4, gen) if kind == "linear" else MLPNet(d, 4, (128, 256), 0.2, gen)
        x, y = torch.randn(b, d), torch.randint(0, 4, (b,))
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

        def call(net=net, x=x, y=y, opt=opt, mode=mode):
            if mode == "train":
                loss = F.cross_entropy(net(x, gen), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            else:
                with torch.inference_mode():
                    net(x)

        flops = (6 if mode == "train" else 2) * b * sum(p * q for p, q in zip(dims[:-1], dims[1:], strict=False))
        reps = int(min(200, max(3, 2e8 / flops)))
        best = {1: float("inf"), 2: float("inf")}
        for _ in range(5):
            for th in (1, 2):
                with limit_threads(th):
                    call()
                    t = time.perf_counter()
                    for _ in range(reps):
                        call()
                    best[th] = min(best[th], (time.perf_counter() - t) / reps)
        row = {"probe": kind, "mode": mode, "rows": b, "dim": d, "mflop": flops / 1e6,
               "ms_1": best[1] * 1e3, "ms_2": best[2] * 1e3, "speedup_2": best[1] / best[2],
               "runnable": open("/proc/loadavg").read().split()[3] if os.path.exists("/proc/loadavg") else None}
        print(f"  {kind:6} {mode:7} {b:5} x {d:4}  {row['mflop']:8.1f} MFLOP  1 thread {row['ms_1']:8.3f} ms  "
              f"2 threads {row['ms_2']:8.3f} ms  speedup {row['speedup_2']:.2f}  runnable {row['runnable']}")
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()

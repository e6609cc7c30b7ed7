"""Probe quality on EmoDB: AUROC and UAR of every reference and torch probe, in one run.

For each feature set (``egemaps``, ``logmel-128``, ``ge2e`` by default) the EmoDB cache is
extracted into ``--cache`` (an existing cache is reused: extraction resumes and finds nothing to
do), then every probe among ``linear``, ``mlp``, ``logreg``, ``svm`` that is registered is run
through the library (``embedprobe.pipeline.probe.probe(ProbeConfig(...))``) under each protocol
of ``--protocols``, with 3 seeds and no bootstrap; a probe that is not registered is skipped
with one line. UAR is the unweighted accuracy (``uacc``, mean recall over the 4 classes).

``--protocols`` lists what to run, comma-separated: ``speaker`` (EmoDB's default folds: test one
speaker, validate on the next, train on the other 8, metrics averaged over folds and seeds) and
``PROTOCOL:AGGREGATE`` items such as ``loso:pooled`` (``--protocol emodb=loso --aggregate
pooled``), which need those options in ``ProbeConfig``; a protocol the library refuses is
skipped with one line.

``--variant PROBE:KEY=VALUE[,KEY=VALUE]`` (repeatable) adds a row per feature set and protocol
for that probe with those parameters, named ``PROBE[KEY=VALUE]``, e.g. ``--variant
svm:select=logloss`` (C and gamma by validation log-loss instead of validation UAR).

The last line printed is one JSON object: ``{"rows": [...], "seconds": ..., ...}``.

Usage::

    python benchmarks/probe_quality.py --cache /tmp/pq-cache                  # ~2-4 min on 2 cores
    python benchmarks/probe_quality.py --cache /tmp/pq-cache --features egemaps --probes linear,mlp
    python benchmarks/probe_quality.py --cache /tmp/pq-cache --protocols speaker,loso:pooled
    python benchmarks/probe_quality.py --cache /tmp/pq-cache --probes svm --variant svm:select=logloss
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

from embedprobe.pipeline.extract import extract
from embedprobe.pipeline.extract_config import ExtractConfig
from embedprobe.pipeline.probe import ProbeConfig, load_results, probe
from embedprobe.probes.registry import PROBES

FEATURES = ("egemaps", "logmel-128", "ge2e")
PROBE_NAMES = ("linear", "mlp", "logreg", "svm")


def _root(arg: str | None) -> Path:
    root = Path(arg or os.environ.get("EMBEDPROBE_EMODB") or Path("..") / "shared" / "data" / "emodb")
    if not root.is_dir():
        sys.exit(f"EmoDB not found at {root}; pass --root or set EMBEDPROBE_EMODB.")
    return root


def _protocol(item: str) -> tuple[str, dict]:
    """``speaker`` -> no options; ``loso:pooled`` -> ProbeConfig options for that protocol."""
    name, _, aggregate = item.partition(":")
    opts: dict = {} if name == "speaker" else {"protocols": {"emodb": name}}
    if aggregate:
        opts["aggregate"] = aggregate
    return name if not aggregate else f"{name}/{aggregate}", opts


def _variant(item: str) -> tuple[str, str, dict]:
    """``svm:select=logloss,C=1`` -> (``svm[select=logloss,C=1]``, ``svm``, its parameters)."""
    name, _, text = item.partition(":")
    params: dict = {}
    for kv in filter(None, text.split(",")):
        key, _, value = kv.partition("=")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return (f"{name}[{text}]" if params else name), name, params


def _cell_metrics(path: Path) -> dict[str, float | None]:
    rec = load_results(path)
    cell = next(c for c in rec["cells"] if c["test"] == "emodb" and c["in_domain"])
    out = {}
    for m in ("auroc", "uacc"):
        entry = cell["metrics"][m]
        value = entry.get("mean") if isinstance(entry, dict) else entry  # the pooled value under --aggregate pooled
        spread = (entry.get("seeds") or {}).get("std") if isinstance(entry, dict) else None
        out[m], out[f"{m}_seed_std"] = value, spread
    out["mean_steps"] = cell.get("mean_steps")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True, help="cache folder (extracted into; existing caches reused)")
    ap.add_argument("--root", default=None, help="EmoDB folder (default: $EMBEDPROBE_EMODB or ../shared/data/emodb)")
    ap.add_argument("--features", default=",".join(FEATURES))
    ap.add_argument("--probes", default=",".join(PROBE_NAMES))
    ap.add_argument("--protocols", default="speaker", help="comma-separated, e.g. speaker,loso:pooled")
    ap.add_argument("--variant", action="append", default=[], help="PROBE:KEY=VALUE[,KEY=VALUE] (repeatable)")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    t_all = time.perf_counter()
    root = _root(args.root)
    out = Path(tempfile.mkdtemp(prefix="probe-quality-"))
    rows: list[dict] = []
    skipped: list[str] = []
    probes: list[tuple[str, str, dict]] = []
    for item in [*filter(None, args.probes.split(",")), *args.variant]:
        label, name, params = _variant(item)
        if name in PROBES:
            probes.append((label, name, params))
        else:
            skipped.append(f"probe {name}: not registered")
            print(f"skip probe {name}: not registered (have: {', '.join(PROBES.names())})")
    print(f"{'features':<11} {'protocol':<14} {'probe':<7} {'AUROC':>6} {'UAR':>6} {'UAR sd':>7} {'sec':>6}")
    for feat in args.features.split(","):
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():  # a reused cache made by other code versions says so
                warnings.simplefilter("ignore")
                extract(ExtractConfig(model=feat, corpus="emodb", root=str(root), out=args.cache), progress=False)
        except Exception as e:  # a model whose weights are not at hand offline: say so, go on
            skipped.append(f"features {feat}: {type(e).__name__}: {e}")
            print(f"skip features {feat}: extraction failed: {type(e).__name__}: {e}")
            continue
        extract_s = time.perf_counter() - t0
        for item in args.protocols.split(","):
            label, opts = _protocol(item)
            for shown, name, params in probes:
                t1 = time.perf_counter()
                tag = re.sub(r"[^A-Za-z0-9._=+-]+", "-", f"{shown}-{label}")
                try:
                    cfg = ProbeConfig(model=feat, cache_dir=args.cache, train=("emodb",), test=("emodb",),
                                      probe=name, seeds=tuple(range(args.seeds)), n_bootstrap=0,
                                      out=str(out), tag=tag, probe_params=params,
                                      domain_gap=False, **opts)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        path = probe(cfg, progress=False)
                except TypeError as e:  # ProbeConfig without that option (not in this version)
                    if not any(s.startswith(f"protocol {item}:") for s in skipped):
                        skipped.append(f"protocol {item}: {e}")
                        print(f"skip protocol {item}: {e}")
                    break
                m = _cell_metrics(path)
                sec = time.perf_counter() - t1
                rows.append({"features": feat, "protocol": label, "probe": shown, **m,
                             "seconds": round(sec, 2), "extract_seconds": round(extract_s, 2)})
                sd = m["uacc_seed_std"]
                print(f"{feat:<11} {label:<14} {shown:<7} {m['auroc']:>6.3f} {m['uacc']:>6.3f} "
                      f"{'' if sd is None else f'{sd:.3f}':>7} {sec:>6.1f}", flush=True)
    total = time.perf_counter() - t_all
    print(f"total {total:.0f} s ({os.cpu_count()} cores visible)")
    print(json.dumps({"benchmark": "probe_quality", "rows": rows, "skipped": skipped, "seeds": args.seeds,
                      "seconds": round(total, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

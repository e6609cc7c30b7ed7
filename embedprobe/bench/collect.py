"""Finished jobs -> one bench summary: merged matrices, the paper's layouts, CSV, JSON and HTML.

``summarize(run)`` reads the results JSON of every finished job and builds a JSON-able dict:

* ``groups``: one cross-corpus matrix per (model, layer, probe, augmentation rate, scrambling),
  the cells of its jobs merged (each cell names the job that made it) with the relative matrix
  (cell minus the in-domain baseline of its test corpus in the same setting) and the
  fragmentation summary;
* ``paper``: the paper's Figure 2/3 layout per (model, layer, probe, scrambling): columns =
  training scenarios, sub-columns = test corpora, rows = augmentation rates; a cell is the
  metric minus the **clean, non-augmented** in-domain baseline of its test corpus (the
  paper's Table 1 baseline: its Fig. 2 in-domain cells move with augmentation and its Fig. 3
  baseline is the unscrambled IEMOCAP);
* ``baselines``: the paper's Table 1 layout (in-domain scores per test corpus and rate);
* ``fragmentation``: every scrambled corpus in joint training, against alone and clean runs;
* ``jobs`` and ``provenance``: status, config, versions, seeds and cache fingerprints per job.

``write_outputs(run)`` writes ``bench.json``, ``bench.csv`` and ``report.html`` into the bench's
out folder; ``read_summary(out)`` reads ``bench.json`` back (older formats upgraded) and
``rewrite_report(out)`` renders ``report.html`` from it again.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from embedprobe.bench.extras import load_acoustics, load_marker
from embedprobe.bench.grid import Job, group_id
from embedprobe.bench.numbers import COMPLETE_FORMAT, acoustic_numbers, job_counts, upgrade_summary
from embedprobe.bench.spec import rate_label
from embedprobe.common.metrics import METRICS
from embedprobe.eval.runner import fragmentation
from embedprobe.provenance import artifact_header, atomic_write_json, atomic_write_text, to_jsonable
from embedprobe.report.html import write_html

SUMMARY_FORMAT = 2  # 2: every number of the report is in the summary (bench.numbers)


def write_outputs(run: Any) -> dict[str, Path]:
    """Write ``bench.json``, ``bench.csv`` and ``report.html``; sets ``run.json/csv/report``."""
    out = Path(run.out)
    acoustic = (load_acoustics(out, [c.key for c in run.config.corpora])
                if run.config.acoustics.enabled else None)
    summary = summarize(run, acoustics=acoustic)
    run.json = atomic_write_json(out / "bench.json", summary)
    run.csv = atomic_write_text(out / "bench.csv", bench_csv(summary))
    run.report = write_html(summary, out / "report.html", acoustics=acoustic)
    return {"json": run.json, "csv": run.csv, "report": run.report}


def read_summary(out: str | Path) -> dict[str, Any]:
    """The summary in ``<out>/bench.json``, of any format, with every field the report reads
    (an older file's missing numbers are computed by ``bench.numbers.upgrade_summary``)."""
    out = Path(out)
    summary = json.loads((out / "bench.json").read_text())
    values = (load_acoustics(out, [c["key"] for c in summary["corpora"]])
              if summary.get("acoustics") and summary.get("format", 1) < COMPLETE_FORMAT else None)
    return upgrade_summary(summary, acoustics=values)


def rewrite_report(out: str | Path) -> Path:
    """Render ``<out>/report.html`` again from ``<out>/bench.json`` (no job is run)."""
    out = Path(out)
    summary = read_summary(out)
    values = load_acoustics(out, [c["key"] for c in summary["corpora"]]) if summary.get("acoustics") else None
    return write_html(summary, out / "report.html", acoustics=values)


def summarize(run: Any, *, acoustics: dict[str, Any] | None = None) -> dict[str, Any]:
    """The bench summary (``bench.json``): every number the report shows.

    Args:
        run: the finished ``BenchRun``.
        acoustics: per-clip acoustic values ``{condition: {corpus: {measure: values}}}``
            (``extras.load_acoustics``), summarised into quartiles and distances.
    """
    cfg = run.config
    records: dict[str, dict[str, Any]] = {}
    for job in run.jobs:
        r = run.results[job.id]
        if r.status in ("done", "skipped") and r.path:
            try:
                records[job.id] = json.loads(Path(r.path).read_text())
            except (OSError, ValueError):
                r.status, r.error = "failed", f"results file {r.path} is unreadable"
    metric, stat = cfg.report.metric, cfg.report.statistic
    groups = _groups(run.jobs, records, metric, stat)
    summary = {
        **artifact_header("embedprobe.bench", SUMMARY_FORMAT, cfg, seconds=run.seconds),
        "name": cfg.name,
        "source": cfg.source,
        "out": str(Path(run.out).resolve()),
        "phase_seconds": dict(run.phases),
        "job_seconds": round(sum(float(r.get("seconds") or 0) for r in records.values()), 3),
        "jobs_setting": run.config.jobs,
        "report": {"metric": metric, "statistic": stat},
        "corpora": _corpora(run),
        "counts": {s: sum(r.status == s for r in run.results.values())
                   for s in ("done", "skipped", "failed", "unsupported", "blocked")},
        "jobs": [{"id": j.id, "role": j.role, "group": group_id(j.group), **to_jsonable(j),
                  "status": run.results[j.id].status, "seconds": round(run.results[j.id].seconds, 3),
                  "path": _rel(run.results[j.id].path, run.out), "error": run.results[j.id].error}
                 for j in run.jobs],
        "extractions": [_task(t, run.out) for t in run.extractions],
        "extras": [_task(t, run.out) for t in run.extras],
        "groups": groups,
        "paper": _paper(cfg, groups, metric, stat),
        "baselines": _baselines(cfg, groups, stat),
        "fragmentation": _fragmentation(groups, metric, stat),
        "acoustics": _extras_summary(run, "acoustics"),
        "domain": _extras_summary(run, "domain"),
        "provenance": {jid: _provenance(rec, run.out, run.results[jid].path) for jid, rec in records.items()},
    }
    job_counts(summary)
    if summary["acoustics"] is not None:
        summary["acoustics"]["numbers"] = acoustic_numbers(acoustics)
    return summary


# ------------------------------------------------------------------------------------ groups
def _groups(jobs: list[Job], records: dict[str, dict[str, Any]], metric: str, stat: str) -> list[dict[str, Any]]:
    by: dict[tuple, list[Job]] = {}
    for j in jobs:
        by.setdefault(j.group, []).append(j)
    out = []
    for group, members in by.items():
        cells: dict[tuple[str, str], dict[str, Any]] = {}
        own = {}
        for j in members:
            for c in records.get(j.id, {}).get("cells", []):
                k = (c["train"], c["test"])
                primary = tuple(c["train_corpora"]) == j.train
                if k not in cells or (primary and not own.get(k)):
                    cells[k] = {**c, "job": j.id}
                    own[k] = primary
        model, layer, probe, rate, scramble = group
        cl = list(cells.values())
        out.append({
            "id": group_id(group), "model": model, "layer": layer, "probe": probe,
            "augment_rate": rate, "scramble": list(scramble),
            "jobs": [j.id for j in members], "finished": [j.id for j in members if j.id in records],
            "train_sets": ["+".join(j.train) for j in members],
            "tests": list(members[0].tests),
            "cells": cl,
            "relative": relative(cl, cl, metric, stat),
            "fragmentation": fragmentation(cl, tuple(scramble)) if scramble else [],
        })
    return out


def value(cell: dict[str, Any] | None, metric: str, stat: str) -> float | None:
    if cell is None:
        return None
    return cell["metrics"][metric].get(stat)


def relative(cells: list[dict[str, Any]], base_cells: list[dict[str, Any]], metric: str,
             stat: str) -> dict[str, dict[str, float | None]]:
    """train -> test -> cell minus the in-domain cell (trained on the test corpus alone) of
    ``base_cells``."""
    base = {c["test"]: value(c, metric, stat) for c in base_cells if c["train_corpora"] == [c["test"]]}
    out: dict[str, dict[str, float | None]] = {}
    for c in cells:
        b, v = base.get(c["test"]), value(c, metric, stat)
        out.setdefault(c["train"], {})[c["test"]] = None if b is None or v is None else round(v - b, 6)
    return out


def _find(groups: list[dict[str, Any]], model, layer, probe, rate, scramble) -> dict[str, Any] | None:
    return next((g for g in groups if (g["model"], g["layer"], g["probe"], g["augment_rate"],
                                       tuple(g["scramble"])) == (model, layer, probe, rate, tuple(scramble))),
                None)


def _settings(groups: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return list(dict.fromkeys((g["model"], g["layer"], g["probe"]) for g in groups))


def _paper(cfg: Any, groups: list[dict[str, Any]], metric: str, stat: str) -> list[dict[str, Any]]:
    """Figure 2/3 tables: per (model, layer, probe, scrambling), rows = augmentation rates."""
    tables = []
    for model, layer, probe in _settings(groups):
        clean0 = _find(groups, model, layer, probe, 0.0, ())
        for scr in cfg.grid.scramble:
            train = ["+".join(t) for t in cfg.grid.scramble_train.get(scr, cfg.grid.train)]
            rows, note = [], None
            for rate in cfg.grid.augment_rates:
                g = _find(groups, model, layer, probe, rate, scr)
                if g is None:
                    continue
                base = clean0 if clean0 is not None and clean0["cells"] else g
                if base is g and g is not clean0:
                    note = ("no finished clean, non-augmented run of this setting: each row is "
                            "relative to the in-domain baselines of its own run")
                rel = relative(g["cells"], base["cells"], metric, stat)
                jobs = {(c["train"], c["test"]): c["job"] for c in g["cells"]}
                rows.append({"augment_rate": rate, "label": rate_label(rate), "group": g["id"],
                             "values": {t: {s: rel.get(t, {}).get(s) for s in g["tests"]} for t in train},
                             "jobs": {t: {s: jobs.get((t, s)) for s in g["tests"]} for t in train}})
            if rows:
                tests = _find(groups, model, layer, probe, rows[0]["augment_rate"], scr)["tests"]
                tables.append({"model": model, "layer": layer, "probe": probe, "scramble": list(scr),
                               "scenarios": [{"letter": _letter(i), "train": t} for i, t in enumerate(train)],
                               "tests": tests, "rows": rows, "metric": metric, "statistic": stat,
                               "baseline": "own run" if note else "clean, non-augmented in-domain",
                               "note": note})
    return tables


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"S{i + 1}"


def _baselines(cfg: Any, groups: list[dict[str, Any]], stat: str) -> list[dict[str, Any]]:
    """Table 1 layout: in-domain cells per (model, layer, probe), test corpus and rate (clean)."""
    out = []
    for model, layer, probe in _settings(groups):
        rows = []
        for test in cfg.grid.test:
            row: dict[str, Any] = {"corpus": test, "rates": {}}
            for rate in cfg.grid.augment_rates:
                g = _find(groups, model, layer, probe, rate, ())
                cell = next((c for c in (g or {}).get("cells", [])
                             if c["train_corpora"] == [test] and c["test"] == test), None)
                if cell is None:
                    continue
                m = cell["metrics"]
                row["rates"][rate_label(rate)] = {
                    "job": cell["job"], "protocol_folds": cell["n_folds"], "n_test": cell["n_test"],
                    **{k: {"value": m[k].get(stat), "last20_std": m[k].get("last20_std"),
                           "ci95": m[k].get("ci95")} for k in ("uacc", "acc", "wf1", "auroc")}}
            if row["rates"]:
                rows.append(row)
        if rows:
            out.append({"model": model, "layer": layer, "probe": probe, "rows": rows, "statistic": stat,
                        "rates": [rate_label(r) for r in cfg.grid.augment_rates]})
    return out


def _fragmentation(groups: list[dict[str, Any]], metric: str, stat: str) -> list[dict[str, Any]]:
    """Scrambled corpora in joint training; with the same cell of the clean run for comparison."""
    rows = []
    for g in groups:
        if not g["scramble"]:
            continue
        clean = _find(groups, g["model"], g["layer"], g["probe"], g["augment_rate"], ())
        clean_cells = {(c["train"], c["test"]): c for c in (clean or {}).get("cells", [])}
        by = {(c["train"], c["test"]): c for c in g["cells"]}
        for f in g["fragmentation"]:
            s, joint = f["corpus"], f["joint_train"]
            jc, ac = by.get((joint, s)), by.get((s, s))
            cc = clean_cells.get((joint, s))
            rows.append({
                "group": g["id"], "model": g["model"], "layer": g["layer"], "probe": g["probe"],
                "augment_rate": g["augment_rate"], "corpus": s, "joint_train": joint,
                "joint": value(jc, metric, stat), "alone": value(ac, metric, stat),
                "clean_joint": value(cc, metric, stat),
                "joint_auroc": value(jc, "auroc", stat), "alone_auroc": value(ac, "auroc", stat),
                "job": jc["job"] if jc else None, "clean_job": cc["job"] if cc else None,
            })
    for r in rows:
        r["delta_alone"] = _diff(r["joint"], r["alone"])
        r["delta_clean"] = _diff(r["joint"], r["clean_joint"])
    return rows


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 6)


# ---------------------------------------------------------------------------------- provenance
def _provenance(rec: dict[str, Any], out: Path, path: str | None) -> dict[str, Any]:
    return {
        "results": _rel(path, out), "config": rec.get("config"), "resolved": rec.get("resolved"),
        "seeds": rec.get("seeds"), "versions": rec.get("versions"), "code_version": rec.get("code_version"),
        "created_unix": rec.get("created_unix"), "seconds": rec.get("seconds"),
        "job_fingerprint": rec.get("bench", {}).get("job_fingerprint"),
        "caches": {k: {f: v.get(f) for f in ("path", "fingerprint", "layer", "protocol", "folds", "n_4class",
                                           "n_clips", "n_errors", "complete", "split_fingerprint")}
                   | {"extractor": (v.get("identity") or {}).get("extractor", {}).get("name"),
                      "weights_revision": (v.get("identity") or {}).get("weights_revision")}
                   for k, v in rec.get("caches", {}).items()},
    }


def _corpora(run: Any) -> list[dict[str, Any]]:
    out = []
    for c in run.config.corpora:
        caches = {m: to_jsonable(i) for (m, k), i in run.caches.items() if k == c.key}
        out.append({"key": c.key, "reader": c.reader, "root": c.root, "synthetic": c.synthetic,
                    "synth": to_jsonable(c.synth), "options": to_jsonable(c.options),
                    "protocol": c.protocol, "caches": caches})
    return out


def _task(t: Any, out: Path) -> dict[str, Any]:
    return {"kind": t.kind, "key": t.key, "status": t.status, "seconds": round(t.seconds, 3),
            "path": _rel(t.path, out), "error": t.error,
            "info": {k: v for k, v in t.info.items() if k != "traceback"}}


def _extras_summary(run: Any, kind: str) -> dict[str, Any] | None:
    spec = getattr(run.config, kind)
    if not spec.enabled:
        return None
    tasks = [t for t in run.extras if t.key == kind or t.key.startswith(f"{kind}:")]
    items = []
    for t in tasks:
        marker = load_marker(Path(t.path)) if t.path else None
        items.append({"key": t.key.split(":", 1)[-1], "status": t.status, "error": t.error,
                      "result": (marker or {}).get("result"), "files": (marker or {}).get("files"),
                      "path": _rel(t.path, run.out)})
    return {"enabled": True, "items": items}


def _rel(path: str | None, out: Path) -> str | None:
    if not path:
        return None
    try:
        return os.path.relpath(Path(path).resolve(), Path(out).resolve())
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------- files
def bench_csv(summary: dict[str, Any]) -> str:
    """One row per (group, cell, metric), with the relative figures of the report metric.

    The last two columns say how the number was made: the split ``protocol`` of the cell's test
    corpus (in-domain cells; cross-corpus cells test every test clip) and the fold ``aggregate``
    (``mean`` for cells written before it was recorded).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    metric = summary["report"]["metric"]
    w.writerow(["job", "model", "layer", "probe", "augment_rate", "scramble", "train", "test", "in_domain",
                "scrambled", "n_test", "n_folds", "seeds", "metric", "mean", "last20_mean", "last20_std",
                "seed_mean", "seed_std", "ci95_low", "ci95_high", f"relative_{metric}",
                f"relative_{metric}_paper", "protocol", "aggregate"])
    paper = {}
    for t in summary["paper"]:
        for row in t["rows"]:
            for tr, vals in row["values"].items():
                for te, v in vals.items():
                    paper[(row["group"], tr, te)] = v
    for g in summary["groups"]:
        for c in g["cells"]:
            for m in METRICS:
                e = c["metrics"][m]
                ci = e.get("ci95") or [None, None]
                s = e.get("seeds", {})
                rel = g["relative"].get(c["train"], {}).get(c["test"]) if m == metric else ""
                pap = paper.get((g["id"], c["train"], c["test"]), "") if m == metric else ""
                w.writerow([c["job"], g["model"], g["layer"], g["probe"], g["augment_rate"],
                            "+".join(g["scramble"]), c["train"], c["test"], c["in_domain"], c["scrambled"],
                            c["n_test"], c["n_folds"], " ".join(map(str, c["seeds"])), m, e["mean"],
                            e.get("last20_mean"), e.get("last20_std"), s.get("mean"), s.get("std"),
                            ci[0], ci[1], rel, pap, (c.get("protocol") or "") if c["in_domain"] else "",
                            c.get("aggregate") or "mean"])
    return buf.getvalue()


"""A self-contained HTML report of a bench (inline CSS, figures as base64 PNG data URIs, no JS).

``write_html(summary, path)`` renders the dict made by ``embedprobe.bench.collect.summarize``
(also stored as ``bench.json``, so a report can be re-rendered from it):

* the relative matrices in the paper's Figure 2/3 layout (columns = training scenarios,
  sub-columns = test corpora, rows = augmentation rates; green high, red low);
* the in-domain baselines in the paper's Table 1 layout;
* per setting (model, layer, probe, augmentation rate, scrambling) the cross-corpus AUROC and
  wF1 matrices with 95% bootstrap intervals, the relative matrix and heatmaps;
* the fragmentation summary of label scrambling; acoustics and the domain gap when enabled;
* provenance: every number links to the job that made it, and each job lists its results
  file, config, seeds, versions, code version and cache fingerprints.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from embedprobe.provenance import atomic_write_text

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1f24;margin:0;background:#fafafa}
main{max-width:1400px;margin:0 auto;padding:18px 28px 60px}
h1{font-size:24px;margin:6px 0 2px}h2{font-size:19px;margin:34px 0 8px;border-bottom:2px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}nav a{margin-right:14px}a{color:#0b57d0;text-decoration:none}
a:hover{text-decoration:underline}.muted{color:#57606a}.small{font-size:12px}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff}th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:center}
th{background:#f1f3f5;font-weight:600}td.l,th.l{text-align:left}td a{color:inherit}
td.ind{outline:2px solid #1b1f24;outline-offset:-2px}.ci{display:block;font-size:11px;color:#3d444d}
.pill{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;margin-right:4px}
.done{background:#dafbe1}.skipped{background:#ddf4ff}.failed{background:#ffebe9}.unsupported,.blocked{background:#fff8c5}
.note{background:#fff8c5;border:1px solid #e5d17a;padding:6px 10px;margin:8px 0;border-radius:4px}
.err{background:#ffebe9;border:1px solid #f5a3a3;padding:6px 10px;margin:8px 0;border-radius:4px}
details{margin:4px 0 10px}summary{cursor:pointer;color:#0b57d0}pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px;max-height:420px}
img{max-width:100%;border:1px solid #d0d7de;background:#fff;margin:4px 8px 4px 0}.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
"""

_METRIC_NAMES = {"auroc": "AUROC", "acc": "ACC", "uacc": "uACC", "f1": "F1", "wf1": "wF1", "avprec": "AvPrec"}


def write_html(summary: dict[str, Any], path: str | Path, *,
               acoustics: dict[str, Any] | None = None) -> Path:
    """Write the report of ``summary`` to ``path`` (atomically); returns ``path``."""
    return atomic_write_text(path, render_html(summary, acoustics=acoustics))


def render_html(summary: dict[str, Any], *, acoustics: dict[str, Any] | None = None) -> str:
    """The report as one HTML string."""
    s = summary
    mname = _e(_METRIC_NAMES.get(s["report"]["metric"], s["report"]["metric"]))
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(s['name'])} · embedprobe bench"
             f"</title><style>{CSS}</style></head><body><main>",
             f"<h1>embedprobe bench: {_e(s['name'])}</h1>", _overview(s),
             "<nav><a href='#paper'>Relative " + mname + " (Fig. 2/3)</a><a href='#baselines'>Baselines</a>"
             "<a href='#matrices'>Matrices</a><a href='#fragmentation'>Fragmentation</a>"
             + ("<a href='#acoustics'>Acoustics</a>" if s.get("acoustics") else "")
             + ("<a href='#domain'>Domain gap</a>" if s.get("domain") else "")
             + "<a href='#provenance'>Provenance</a></nav>",
             _notes(s), _paper(s, mname), _baselines(s), _matrices(s), _fragmentation(s, mname)]
    if s.get("acoustics"):
        parts.append(_acoustics(s["acoustics"], acoustics))
    if s.get("domain"):
        parts.append(_domain(s["domain"]))
    parts += [_provenance(s), "</main></body></html>"]
    return "\n".join(parts)


# ----------------------------------------------------------------------------------- sections
def _overview(s: dict[str, Any]) -> str:
    c = s["counts"]
    pills = " ".join(f"<span class='pill {k}'>{v} {k}</span>" for k, v in c.items() if v)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["created_unix"]))
    return (f"<p class=muted>{len(s['jobs'])} jobs {pills} · this run {s['seconds']:.0f} s · "
            f"probe time of all finished jobs {s.get('job_seconds', 0):.0f} s · {when} · "
            f"config <code>{_e(s['source'])}</code> · code {_e(s['code_version'])} · "
            f"files: <a href='bench.json'>bench.json</a>, <a href='bench.csv'>bench.csv</a>, "
            f"<a href='results/'>results/</a></p>"
            "<p class='muted small'>Every number links to the job that made it (see Provenance). Cells "
            "read <i>value</i> with the 95% bootstrap interval over test clips below; outlined cells are "
            "in-domain (the corpus's own split protocol, mean over folds).</p>")


def _notes(s: dict[str, Any]) -> str:
    msgs: dict[tuple[str, str], int] = {}
    for j in s["jobs"]:
        if j["status"] in ("failed", "unsupported", "blocked"):
            msgs[(j["status"], j["error"] or "")] = msgs.get((j["status"], j["error"] or ""), 0) + 1
    for t in s["extractions"] + s["extras"]:
        if t["status"] in ("failed", "unsupported"):
            msgs[(t["status"], f"{t['key']}: {t['error']}")] = 1
    out = []
    for (status, msg), n in msgs.items():
        cls = "err" if status == "failed" else "note"
        out.append(f"<div class={cls}><b>{n} {status}</b>: {_e(msg)}</div>")
    return "\n".join(out)


def _paper(s: dict[str, Any], mname: str) -> str:
    out = [f"<h2 id=paper>Relative {mname} in the paper's Figure 2/3 layout</h2>",
           f"<p class=muted>Each cell is the {mname} ({_e(s['report']['statistic'])}) of a probe trained on "
           "the scenario's corpora and tested on the sub-column's corpus, minus the in-domain "
           f"{mname} of that test corpus trained alone without augmentation or scrambling (the paper's "
           "Table 1 baseline). Green: higher, red: lower.</p>"]
    if not s["paper"]:
        out.append("<p>No finished jobs yet.</p>")
    for t in s["paper"]:
        scr = set(t["scramble"])
        title = f"{t['model']} · layer {t['layer']} · {t['probe']} probe"
        title += f" · {'+'.join(t['scramble'])} labels scrambled (Fig. 3)" if scr else " (Fig. 2)"
        vals = [v for r in t["rows"] for d in r["values"].values() for v in d.values() if v is not None]
        lim = max([0.05] + [abs(v) for v in vals])
        head1 = "<tr><th class=l>Train on ›</th>" + "".join(
            f"<th colspan={len(t['tests'])}>{sc['letter']}: {_e(_scen(sc['train'], scr))}</th>"
            for sc in t["scenarios"]) + "</tr>"
        head2 = "<tr><th class=l>Test on ›</th>" + "".join(
            f"<th>{_e(_name(te, scr))}</th>" for _ in t["scenarios"] for te in t["tests"]) + "</tr>"
        body = []
        for r in t["rows"]:
            tds = []
            for sc in t["scenarios"]:
                for te in t["tests"]:
                    v = r["values"].get(sc["train"], {}).get(te)
                    job = r["jobs"].get(sc["train"], {}).get(te)
                    ind = " ind" if sc["train"] == te else ""
                    tds.append(f"<td class='{ind}' style='background:{_div(v, lim)}'>{_link(_fmt(v, True), job)}</td>")
            label = f"Augment {r['label']}" if r is t["rows"][0] else r["label"]
            body.append(f"<tr><th class=l><a href='#g-{_e(r['group'])}'>{_e(label)}</a></th>{''.join(tds)}</tr>")
        note = f"<div class=note>{_e(t['note'])}</div>" if t.get("note") else ""
        out.append(f"<h3>{_e(title)}</h3>{note}<table>{head1}{head2}{''.join(body)}</table>")
    return "\n".join(out)


def _baselines(s: dict[str, Any]) -> str:
    out = ["<h2 id=baselines>In-domain baselines (the paper's Table 1 layout)</h2>",
           "<p class=muted>Each corpus trained and tested on itself (its split protocol; mean over folds "
           "and seeds), without scrambling; in parentheses the std over the evaluations in the last 20% "
           "of training (the paper's confidence figure).</p>"]
    for b in s["baselines"]:
        rates = b["rates"]
        head = ("<tr><th class=l rowspan=2>Train/Test</th><th colspan=4>" + _e(rates[0]) + " augmentation</th>"
                + "".join(f"<th>{_e(r)}</th>" for r in rates[1:]) + "</tr><tr><th>uACC</th><th>ACC</th>"
                "<th>wF1</th><th>AUROC</th>" + "<th>wF1</th>" * (len(rates) - 1) + "</tr>")
        body = []
        for row in b["rows"]:
            first = row["rates"].get(rates[0])
            tds = ([_cell_std(first, k) for k in ("uacc", "acc", "wf1", "auroc")] if first
                   else ["<td>–</td>"] * 4)
            tds += [_cell_std(row["rates"].get(r), "wf1") for r in rates[1:]]
            body.append(f"<tr><th class=l>{_e(row['corpus'])}</th>{''.join(tds)}</tr>")
        out.append(f"<h3>{_e(b['model'])} · layer {_e(b['layer'])} · {_e(b['probe'])} probe</h3>"
                   f"<table>{head}{''.join(body)}</table>")
    return "\n".join(out)


def _cell_std(entry: dict[str, Any] | None, metric: str) -> str:
    if not entry:
        return "<td>–</td>"
    e = entry[metric]
    std = f" <span class=small>({e['last20_std']:.0e})</span>" if e.get("last20_std") is not None else ""
    return f"<td>{_link(_fmt(e['value']), entry['job'])}{std}</td>"


def _matrices(s: dict[str, Any]) -> str:
    from embedprobe.report.tables import metric_matrix, relative_from

    metric = s["report"]["metric"]
    mname = _METRIC_NAMES.get(metric, metric)
    out = ["<h2 id=matrices>Cross-corpus matrices</h2>",
           "<p class=muted>Rows: training set; columns: test corpus. Relative: each cell minus the "
           "in-domain cell of its test corpus in the same setting.</p>"]
    for g in s["groups"]:
        scr = f" · {'+'.join(g['scramble'])} scrambled" if g["scramble"] else ""
        title = (f"{g['model']} · layer {g['layer']} · {g['probe']} probe · augmentation "
                 f"{g['augment_rate'] * 100:g}%{scr}")
        jobs = " ".join(f"<a href='#job-{_e(j)}'>{_e(_short(j))}</a>" for j in g["jobs"])
        out.append(f"<h3 id='g-{_e(g['id'])}'>{_e(title)}</h3><p class=small>jobs: {jobs} "
                   f"({len(g['finished'])}/{len(g['jobs'])} finished)</p>")
        if not g["cells"]:
            out.append("<p>No finished jobs.</p>")
            continue
        jobs_of = {(c["train"], c["test"]): c["job"] for c in g["cells"]}
        ind = {(c["train"], c["test"]) for c in g["cells"] if c["in_domain"]}
        mats = [metric_matrix(g["cells"], "auroc", "AUROC"), metric_matrix(g["cells"], metric, mname),
                relative_from({"cells": g["cells"], f"relative_{metric}": g["relative"]}, metric)]
        mats[2].title = f"relative {mname}"
        out.append("<div class=grid>" + "".join(_matrix_table(m, jobs_of, ind) for m in mats) + "</div>")
        out.append("<details><summary>heatmaps</summary>" + "".join(
            f"<img alt='{_e(m.title)}' src='{_heatmap(m)}'>" for m in mats) + "</details>")
    return "\n".join(out)


def _matrix_table(m: Any, jobs: dict[tuple[str, str], str], ind: set[tuple[str, str]]) -> str:
    vals = [v for row in m.values for v in row if v is not None]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    lim = max([0.05] + [abs(v) for v in vals])
    rows = []
    for i, r in enumerate(m.rows):
        tds = []
        for j, c in enumerate(m.cols):
            v = m.values[i][j]
            bg = _div(v, lim) if m.relative else _seq(v, lo, hi)
            fg = "#fff" if (not m.relative and v is not None and hi > lo and (v - lo) / (hi - lo) > 0.62) else "#000"
            ci = ""
            if m.low[i][j] is not None and m.high[i][j] is not None:
                ci = f"<span class=ci style='color:{fg}'>[{m.low[i][j]:.2f}, {m.high[i][j]:.2f}]</span>"
            cls = " ind" if (r, c) in ind else ""
            tds.append(f"<td class='{cls}' style='background:{bg};color:{fg}'>"
                       f"{_link(_fmt(v, m.relative), jobs.get((r, c)))}{ci}</td>")
        rows.append(f"<tr><th class=l>{_e(r)}</th>{''.join(tds)}</tr>")
    head = "<tr><th class=l>train \\ test</th>" + "".join(f"<th>{_e(c)}</th>" for c in m.cols) + "</tr>"
    return f"<div><b>{_e(m.title)}</b><table>{head}{''.join(rows)}</table></div>"


def _fragmentation(s: dict[str, Any], mname: str) -> str:
    out = ["<h2 id=fragmentation>Label scrambling: fragmentation summary</h2>",
           "<p class=muted>A corpus's labels are scrambled (angry↔happy, neutral↔sad) in training and "
           "test. If the probe learnt emotion features shared across corpora, joint training should "
           f"hurt the scrambled corpus; a joint {mname} close to its {mname} trained alone, and to the "
           "same cell without scrambling, means the probe keeps the corpora apart (class "
           "fragmentation, paper Fig. 3).</p>"]
    rows = s["fragmentation"]
    if not rows:
        out.append("<p>No scrambled joint training in this grid.</p>")
        return "\n".join(out)
    out.append(f"<table><tr><th class=l>setting</th><th>scrambled</th><th>joint training</th><th>joint {mname}</th>"
               f"<th>alone {mname}</th><th>Δ vs alone</th><th>same cell, clean labels</th><th>Δ vs clean</th>"
               "<th>joint AUROC</th><th>alone AUROC</th></tr>")
    for r in rows:
        setting = f"{r['model']} · {r['layer']} · {r['probe']} · aug {r['augment_rate'] * 100:g}%"
        out.append(
            f"<tr><td class=l><a href='#g-{_e(r['group'])}'>{_e(setting)}</a></td><td>{_e(r['corpus'])}</td>"
            f"<td>{_e(r['joint_train'])}</td><td>{_link(_fmt(r['joint']), r['job'])}</td><td>{_fmt(r['alone'])}</td>"
            f"<td style='background:{_div(r['delta_alone'], 0.3)}'>{_fmt(r['delta_alone'], True)}</td>"
            f"<td>{_link(_fmt(r['clean_joint']), r['clean_job'])}</td>"
            f"<td style='background:{_div(r['delta_clean'], 0.3)}'>{_fmt(r['delta_clean'], True)}</td>"
            f"<td>{_fmt(r['joint_auroc'])}</td><td>{_fmt(r['alone_auroc'])}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def _acoustics(section: dict[str, Any], values: dict[str, Any] | None) -> str:
    out = ["<h2 id=acoustics>Acoustic conditions</h2>"]
    out += [_item_status(i) for i in section["items"] if i["status"] in ("failed", "unsupported")]
    if not values:
        out.append("<p>No per-clip acoustic values (acoustics__*.csv) found.</p>")
        return "\n".join(out)
    from embedprobe.augment.acoustics import distribution_distances
    from embedprobe.augment.plots import plot_distributions

    with tempfile.TemporaryDirectory() as d:
        png = Path(d) / "acoustics.png"
        try:
            plot_distributions(values, path=png, dpi=90)
            out.append(f"<img alt='acoustic distributions' src='{_data_uri(png)}'>")
        except Exception as e:  # noqa: BLE001 - a figure must not sink the report
            out.append(f"<div class=err>distribution plot failed: {_e(e)}</div>")
    out.append("<p class=muted>Per-clip distributions per corpus (the paper's Figure 4). Distances "
               "between corpora: Wasserstein-1 over the pooled std (comparable across measures) and "
               "the Kolmogorov-Smirnov statistic.</p>")
    import numpy as np

    measures = list(dict.fromkeys(m for by in values.values() for ms in by.values() for m in ms))
    med = []
    for cond, by_corpus in values.items():
        for corpus, ms in by_corpus.items():
            row = [cond, corpus]
            for m in measures:
                x = np.asarray(ms.get(m, []), dtype=float)
                x = x[np.isfinite(x)]
                if x.size:
                    q = np.percentile(x, [25, 50, 75])
                    row.append(f"{q[1]:.2f} [{q[0]:.2f}, {q[2]:.2f}] n={x.size}")
                else:
                    row.append("–")
            med.append(row)
    out.append("<h3>Median [quartiles] per corpus</h3>" + _table(["condition", "corpus", *measures], med))
    for cond, by_corpus in values.items():
        rows = distribution_distances(by_corpus) if len(by_corpus) > 1 else []
        if not rows:
            continue
        pairs = list(dict.fromkeys((r["corpus_a"], r["corpus_b"]) for r in rows))
        by = {(r["corpus_a"], r["corpus_b"], r["measure"]): r for r in rows}
        body = [[f"{a} vs {b}", *[(f"{_fmt(by[(a, b, m)]['wasserstein_std'])} ({_fmt(by[(a, b, m)]['ks'])})"
                                   if (a, b, m) in by else "–") for m in measures]] for a, b in pairs]
        out.append(f"<h3>Distances, {_e(cond)}: W1/std (KS)</h3>" + _table(["pair", *measures], body))
    return "\n".join(out)


def _domain(section: dict[str, Any]) -> str:
    out = ["<h2 id=domain>Domain gap</h2>",
           "<p class=muted>Between the embeddings of the corpora (4-class clips, mean-pooled): the "
           "Fréchet distance per pair (FD/var: over the mean total variance, scale-free) and how well "
           "a probe tells the corpora apart (chance: 1/number of corpora balanced accuracy, 0.5 AUROC).</p>"]
    for item in section["items"]:
        out.append(f"<h3>{_e(item['key'])}</h3>")
        r = item.get("result")
        if item["status"] in ("failed", "unsupported"):
            out.append(_item_status(item))
        elif isinstance(r, dict) and "frechet" in r and "identifiability" in r:
            out.append(_table(["layer", "corpus a", "corpus b", "FD", "FD/var"],
                              [[f["layer"], f["a"], f["b"], _num(f.get("frechet")), _fmt(f.get("frechet_norm"))]
                               for f in r["frechet"]]))
            corpora = r.get("corpora", [])
            out.append(_table(["layer", "balanced acc.", "AUROC", "split", *[f"recall {c}" for c in corpora]],
                              [[layer, _fmt(v.get("balanced_accuracy")), _fmt(v.get("auroc")), v.get("split"),
                                *[_fmt((v.get("per_corpus_recall") or {}).get(c)) for c in corpora]]
                               for layer, v in r["identifiability"].items()]))
        elif r is not None:
            out.append(_generic(r))
    if not section["items"]:
        out.append("<p>No domain-gap results.</p>")
    return "\n".join(out)


def _provenance(s: dict[str, Any]) -> str:
    v = s["versions"]
    out = ["<h2 id=provenance>Provenance</h2>",
           f"<p>embedprobe {_e(v.get('embedprobe'))} · code {_e(s['code_version'])} · python "
           f"{_e(v.get('python'))} · torch {_e(v.get('torch'))} · numpy {_e(v.get('numpy'))} · "
           f"scikit-learn {_e(v.get('scikit-learn'))} · {_e(v.get('platform'))}</p>",
           "<details><summary>bench config (resolved)</summary><pre>" + _e(json.dumps(s["config"], indent=1))
           + "</pre></details>", "<h3>Corpora and caches</h3>"]
    rows = []
    for c in s["corpora"]:
        src = f"synthetic {c['synthetic']} {json.dumps(c['synth'])}" if c["synthetic"] else c["root"]
        for model, info in (c["caches"] or {"–": None}).items():
            rows.append([c["key"], c["reader"], src, c["protocol"] or "default", model,
                         info["fingerprint"] if info else "–", info["n_labelled"] if info else "–",
                         info["n_folds"] if info else "–"])
    out.append(_table(["corpus", "reader", "source", "protocol", "model", "cache fingerprint",
                       "4-class clips", "folds"], rows))
    out.append("<h3>Jobs</h3>")
    for j in s["jobs"]:
        p = s["provenance"].get(j["id"])
        head = (f"<span class='pill {j['status']}'>{j['status']}</span> <code>{_e(j['id'])}</code> "
                f"<span class=muted>({_e(j['role'])}, {j['seconds']:.1f} s)</span>")
        body = [f"<p class=small>train {_e('+'.join(j['train']))} · tests {_e(', '.join(j['tests']))} · "
                f"seeds {j['seeds']} · scrambled {_e('+'.join(j['scramble']) or 'none')}</p>"]
        if j.get("error"):
            body.append(f"<div class=err>{_e(j['error'])}</div>")
        if p:
            body.append(f"<p class=small>results <a href='{_e(p['results'])}'>{_e(p['results'])}</a> · job "
                        f"fingerprint {_e(p['job_fingerprint'])} · code {_e(p['code_version'])} · torch "
                        f"{_e((p['versions'] or {}).get('torch'))} · {p['seconds']} s</p>")
            body.append(_table(["corpus", "cache fingerprint", "extractor", "weights", "layer", "protocol",
                                "folds", "4-class", "split fingerprint"],
                               [[k, c["fingerprint"], c["extractor"], c["weights_revision"], c["layer"],
                                 c["protocol"], len(c["folds"] or []), c["n_4class"], c["split_fingerprint"]]
                                for k, c in p["caches"].items()]))
            body.append("<details><summary>config, resolved settings and versions</summary><pre>" + _e(json.dumps(
                {"config": p["config"], "resolved": p["resolved"], "versions": p["versions"]}, indent=1))
                + "</pre></details>")
        out.append(f"<div id='job-{_e(j['id'])}'><details><summary>{head}</summary>{''.join(body)}</details></div>")
    return "\n".join(out)


# ------------------------------------------------------------------------------------- helpers
def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _fmt(v: Any, signed: bool = False) -> str:
    if v is None or not isinstance(v, (int, float)):
        return "–" if v is None else _e(v)
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def _link(text: str, job: str | None) -> str:
    return f"<a href='#job-{_e(job)}' title='{_e(job)}'>{text}</a>" if job else text


def _short(job_id: str) -> str:
    return job_id.split("__train-")[-1]


def _name(corpus: str, scrambled: set[str]) -> str:
    return f"{corpus}-SCRAMBLED" if corpus in scrambled else corpus


def _scen(train: str, scrambled: set[str]) -> str:
    return " + ".join(_name(c, scrambled) for c in train.split("+"))


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def _div(v: float | None, lim: float) -> str:
    """Red (low) - pale yellow (0) - green (high), like the paper's figures."""
    if v is None:
        return "#ffffff"
    t = max(-1.0, min(1.0, v / lim)) if lim else 0.0
    mid = (255, 255, 191)
    return _mix(mid, (26, 152, 80), t) if t >= 0 else _mix(mid, (215, 48, 39), -t)


def _seq(v: float | None, lo: float, hi: float) -> str:
    if v is None:
        return "#ffffff"
    t = (v - lo) / (hi - lo) if hi > lo else 0.5
    return _mix((239, 243, 255), (33, 102, 172), 0.1 + 0.9 * t)


def _heatmap(m: Any) -> str:
    from embedprobe.report.heatmap import save_heatmap

    with tempfile.TemporaryDirectory() as d:
        return _data_uri(save_heatmap(m, Path(d) / "m.png"))


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _table(head: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{_e(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(x)}</td>" for x in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _item_status(item: dict[str, Any]) -> str:
    cls = "err" if item["status"] == "failed" else "note"
    return f"<div class={cls}><b>{_e(item['key'])}</b> {_e(item['status'])}: {_e(item.get('error'))}</div>"


def _generic(obj: Any, depth: int = 0) -> str:
    """Any JSON value as HTML: lists of flat dicts as tables, dicts as nested sections."""
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        cols = list(dict.fromkeys(k for r in obj for k in r))
        if all(not isinstance(r.get(k), (dict, list)) for r in obj for k in cols):
            return _table(cols, [[_num(r.get(k)) for k in cols] for r in obj])
    if isinstance(obj, dict):
        flat = {k: v for k, v in obj.items() if not isinstance(v, (dict, list))}
        nested = {k: v for k, v in obj.items() if isinstance(v, (dict, list))}
        out = _table(["key", "value"], [[k, _num(v)] for k, v in flat.items()]) if flat else ""
        for k, v in nested.items():
            inner = _generic(v, depth + 1)
            out += (f"<details{' open' if depth == 0 else ''}><summary>{_e(k)}</summary>{inner}</details>")
        return out
    return f"<pre>{_e(json.dumps(obj, indent=1, default=str))}</pre>"


def _num(v: Any) -> Any:
    return f"{v:.4g}" if isinstance(v, float) else v

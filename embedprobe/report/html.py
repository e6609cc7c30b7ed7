"""A self-contained HTML report of a bench (inline CSS, figures as base64 PNG data URIs, no JS).

``write_html(summary, path)`` renders the dict made by ``embedprobe.bench.collect.summarize``
(also stored as ``bench.json``, so a report can be re-rendered from it; an older ``bench.json``
goes through ``embedprobe.bench.numbers.upgrade_summary`` first). It only formats: every number
it shows is in the summary, computed by the bench. Sections beyond the matrices are in
``report/html_sections.py``, the style, colours and number formats in ``report/htmlkit.py``:

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

import time
from pathlib import Path
from typing import Any

from embedprobe.provenance import atomic_write_text
from embedprobe.report.html_sections import acoustics_section, domain_section, provenance_section
from embedprobe.report.htmlkit import (
    CSS,
    METRIC_NAMES,
    diverging,
    esc,
    fmt,
    heatmap_uri,
    link,
    scenario,
    sequential,
    short_job,
    shown_name,
)
from embedprobe.report.tables import cell_choices, metric_matrix, relative_from


def write_html(summary: dict[str, Any], path: str | Path, *,
               acoustics: dict[str, Any] | None = None) -> Path:
    """Write the report of ``summary`` to ``path`` (atomically); returns ``path``."""
    return atomic_write_text(path, render_html(summary, acoustics=acoustics))


def render_html(summary: dict[str, Any], *, acoustics: dict[str, Any] | None = None) -> str:
    """The report as one HTML string."""
    s = summary
    mname = esc(METRIC_NAMES.get(s["report"]["metric"], s["report"]["metric"]))
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(s['name'])} · embedprobe bench"
             f"</title><style>{CSS}</style></head><body><main>",
             f"<h1>embedprobe bench: {esc(s['name'])}</h1>", _overview(s),
             "<nav><a href='#paper'>Relative " + mname + " (Fig. 2/3)</a><a href='#baselines'>Baselines</a>"
             "<a href='#matrices'>Matrices</a><a href='#fragmentation'>Fragmentation</a>"
             + ("<a href='#acoustics'>Acoustics</a>" if s.get("acoustics") else "")
             + ("<a href='#domain'>Domain gap</a>" if s.get("domain") else "")
             + "<a href='#provenance'>Provenance</a></nav>",
             _notes(s), _paper(s, mname), _baselines(s), _matrices(s), _fragmentation(s, mname)]
    if s.get("acoustics"):
        parts.append(acoustics_section(s["acoustics"], acoustics))
    if s.get("domain"):
        parts.append(domain_section(s["domain"]))
    parts += [provenance_section(s), "</main></body></html>"]
    return "\n".join(parts)


# ----------------------------------------------------------------------------------- sections
def _overview(s: dict[str, Any]) -> str:
    c = s["counts"]
    pills = " ".join(f"<span class='pill {k}'>{v} {k}</span>" for k, v in c.items() if v)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["created_unix"]))
    return (f"<p class=muted>{s['n_jobs']} jobs {pills} · this run {s['seconds']:.0f} s · "
            f"probe time of all finished jobs {s.get('job_seconds', 0):.0f} s · {when} · "
            f"config <code>{esc(s['source'])}</code> · code {esc(s['code_version'])} · "
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
        out.append(f"<div class={cls}><b>{n} {status}</b>: {esc(msg)}</div>")
    return "\n".join(out)


def _paper(s: dict[str, Any], mname: str) -> str:
    out = [f"<h2 id=paper>Relative {mname} in the paper's Figure 2/3 layout</h2>",
           f"<p class=muted>Each cell is the {mname} ({esc(s['report']['statistic'])}) of a probe trained on "
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
            f"<th colspan={len(t['tests'])}>{sc['letter']}: {esc(scenario(sc['train'], scr))}</th>"
            for sc in t["scenarios"]) + "</tr>"
        head2 = "<tr><th class=l>Test on ›</th>" + "".join(
            f"<th>{esc(shown_name(te, scr))}</th>" for _ in t["scenarios"] for te in t["tests"]) + "</tr>"
        body = []
        for r in t["rows"]:
            tds = []
            for sc in t["scenarios"]:
                for te in t["tests"]:
                    v = r["values"].get(sc["train"], {}).get(te)
                    job = r["jobs"].get(sc["train"], {}).get(te)
                    ind = " ind" if sc["train"] == te else ""
                    tds.append(f"<td class='{ind}' style='background:{diverging(v, lim)}'>{link(fmt(v, True), job)}</td>")
            label = f"Augment {r['label']}" if r is t["rows"][0] else r["label"]
            body.append(f"<tr><th class=l><a href='#g-{esc(r['group'])}'>{esc(label)}</a></th>{''.join(tds)}</tr>")
        note = f"<div class=note>{esc(t['note'])}</div>" if t.get("note") else ""
        out.append(f"<h3>{esc(title)}</h3>{note}<table>{head1}{head2}{''.join(body)}</table>")
    return "\n".join(out)


def _baselines(s: dict[str, Any]) -> str:
    out = ["<h2 id=baselines>In-domain baselines (the paper's Table 1 layout)</h2>",
           "<p class=muted>Each corpus trained and tested on itself (its split protocol; mean over folds "
           "and seeds), without scrambling; in parentheses the std over the evaluations in the last 20% "
           "of training (the paper's confidence figure).</p>"]
    for b in s["baselines"]:
        rates = b["rates"]
        head = ("<tr><th class=l rowspan=2>Train/Test</th><th colspan=4>" + esc(rates[0]) + " augmentation</th>"
                + "".join(f"<th>{esc(r)}</th>" for r in rates[1:]) + "</tr><tr><th>uACC</th><th>ACC</th>"
                "<th>wF1</th><th>AUROC</th>" + "<th>wF1</th>" * (len(rates) - 1) + "</tr>")
        body = []
        for row in b["rows"]:
            first = row["rates"].get(rates[0])
            tds = ([_cell_std(first, k) for k in ("uacc", "acc", "wf1", "auroc")] if first
                   else ["<td>–</td>"] * 4)
            tds += [_cell_std(row["rates"].get(r), "wf1") for r in rates[1:]]
            body.append(f"<tr><th class=l>{esc(row['corpus'])}</th>{''.join(tds)}</tr>")
        out.append(f"<h3>{esc(b['model'])} · layer {esc(b['layer'])} · {esc(b['probe'])} probe</h3>"
                   f"<table>{head}{''.join(body)}</table>")
    return "\n".join(out)


def _cell_std(entry: dict[str, Any] | None, metric: str) -> str:
    if not entry:
        return "<td>–</td>"
    e = entry[metric]
    std = f" <span class=small>({e['last20_std']:.0e})</span>" if e.get("last20_std") is not None else ""
    return f"<td>{link(fmt(e['value']), entry['job'])}{std}</td>"


def _matrices(s: dict[str, Any]) -> str:
    metric = s["report"]["metric"]
    mname = METRIC_NAMES.get(metric, metric)
    out = ["<h2 id=matrices>Cross-corpus matrices</h2>",
           "<p class=muted>Rows: training set; columns: test corpus. Relative: each cell minus the "
           "in-domain cell of its test corpus in the same setting.</p>"]
    for g in s["groups"]:
        scr = f" · {'+'.join(g['scramble'])} scrambled" if g["scramble"] else ""
        title = (f"{g['model']} · layer {g['layer']} · {g['probe']} probe · augmentation "
                 f"{g['augment_rate'] * 100:g}%{scr}")
        if choices := cell_choices(g["cells"]):
            title += f" · {choices}"
        jobs = " ".join(f"<a href='#job-{esc(j)}'>{esc(short_job(j))}</a>" for j in g["jobs"])
        out.append(f"<h3 id='g-{esc(g['id'])}'>{esc(title)}</h3><p class=small>jobs: {jobs} "
                   f"({g['n_finished']}/{g['n_jobs']} finished)</p>")
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
            f"<img alt='{esc(m.title)}' src='{heatmap_uri(m)}'>" for m in mats) + "</details>")
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
            bg = diverging(v, lim) if m.relative else sequential(v, lo, hi)
            fg = "#fff" if (not m.relative and v is not None and hi > lo and (v - lo) / (hi - lo) > 0.62) else "#000"
            ci = ""
            if m.low[i][j] is not None and m.high[i][j] is not None:
                ci = f"<span class=ci style='color:{fg}'>[{m.low[i][j]:.2f}, {m.high[i][j]:.2f}]</span>"
            cls = " ind" if (r, c) in ind else ""
            tds.append(f"<td class='{cls}' style='background:{bg};color:{fg}'>"
                       f"{link(fmt(v, m.relative), jobs.get((r, c)))}{ci}</td>")
        rows.append(f"<tr><th class=l>{esc(r)}</th>{''.join(tds)}</tr>")
    head = "<tr><th class=l>train \\ test</th>" + "".join(f"<th>{esc(c)}</th>" for c in m.cols) + "</tr>"
    return f"<div><b>{esc(m.title)}</b><table>{head}{''.join(rows)}</table></div>"


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
            f"<tr><td class=l><a href='#g-{esc(r['group'])}'>{esc(setting)}</a></td><td>{esc(r['corpus'])}</td>"
            f"<td>{esc(r['joint_train'])}</td><td>{link(fmt(r['joint']), r['job'])}</td><td>{fmt(r['alone'])}</td>"
            f"<td style='background:{diverging(r['delta_alone'], 0.3)}'>{fmt(r['delta_alone'], True)}</td>"
            f"<td>{link(fmt(r['clean_joint']), r['clean_job'])}</td>"
            f"<td style='background:{diverging(r['delta_clean'], 0.3)}'>{fmt(r['delta_clean'], True)}</td>"
            f"<td>{fmt(r['joint_auroc'])}</td><td>{fmt(r['alone_auroc'])}</td></tr>")
    out.append("</table>")
    return "\n".join(out)

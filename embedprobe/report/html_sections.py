"""The optional sections of the bench HTML report (acoustics, domain gap) and its provenance.

Each formats a part of the bench summary (``bench.json``); none computes a number.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from embedprobe.augment.plots import plot_distributions
from embedprobe.report.htmlkit import data_uri, esc, fmt, generic, item_status, num4, table


def acoustics_section(section: dict[str, Any], values: dict[str, Any] | None) -> str:
    """Acoustic conditions: the distribution figure (from the per-clip ``values``) and the
    quartiles and distances the bench computed (``section["numbers"]``, see ``bench.numbers``)."""
    out = ["<h2 id=acoustics>Acoustic conditions</h2>"]
    out += [item_status(i) for i in section["items"] if i["status"] in ("failed", "unsupported")]
    nums = section.get("numbers")
    if not nums:
        out.append("<p>No per-clip acoustic values (acoustics__*.csv) found.</p>")
        return "\n".join(out)
    if values:
        with tempfile.TemporaryDirectory() as d:
            png = Path(d) / "acoustics.png"
            try:
                plot_distributions(values, path=png, dpi=90)
                out.append(f"<img alt='acoustic distributions' src='{data_uri(png)}'>")
            except Exception as e:  # noqa: BLE001 - a figure must not sink the report
                out.append(f"<div class=err>distribution plot failed: {esc(e)}</div>")
    out.append("<p class=muted>Per-clip distributions per corpus (the paper's Figure 4). Distances "
               "between corpora: Wasserstein-1 over the pooled std (comparable across measures) and "
               "the Kolmogorov-Smirnov statistic.</p>")
    measures = nums["measures"]
    by_corpus: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for q in nums["quartiles"]:
        by_corpus.setdefault((q["condition"], q["corpus"]), {})[q["measure"]] = q
    med = [[cond, corpus, *[(f"{fmt(qs[m]['median'])} [{fmt(qs[m]['q25'])}, {fmt(qs[m]['q75'])}] "
                             f"n={qs[m]['n']}" if m in qs and qs[m]["n"] else "–") for m in measures]]
           for (cond, corpus), qs in by_corpus.items()]
    out.append("<h3>Median [quartiles] per corpus</h3>" + table(["condition", "corpus", *measures], med))
    conditions = list(dict.fromkeys(r["condition"] for r in nums["distances"]))
    for cond in conditions:
        rows = [r for r in nums["distances"] if r["condition"] == cond]
        pairs = list(dict.fromkeys((r["corpus_a"], r["corpus_b"]) for r in rows))
        by = {(r["corpus_a"], r["corpus_b"], r["measure"]): r for r in rows}
        body = [[f"{a} vs {b}", *[(f"{fmt(by[(a, b, m)]['wasserstein_std'])} ({fmt(by[(a, b, m)]['ks'])})"
                                   if (a, b, m) in by else "–") for m in measures]] for a, b in pairs]
        out.append(f"<h3>Distances, {esc(cond)}: W1/std (KS)</h3>" + table(["pair", *measures], body))
    return "\n".join(out)


def domain_section(section: dict[str, Any]) -> str:
    out = ["<h2 id=domain>Domain gap</h2>",
           "<p class=muted>Between the embeddings of the corpora (4-class clips, mean-pooled): the "
           "Fréchet distance per pair (FD/var: over the mean total variance, scale-free) and how well "
           "a probe tells the corpora apart (chance: 1/number of corpora balanced accuracy, 0.5 AUROC).</p>"]
    for item in section["items"]:
        out.append(f"<h3>{esc(item['key'])}</h3>")
        r = item.get("result")
        if item["status"] in ("failed", "unsupported"):
            out.append(item_status(item))
        elif isinstance(r, dict) and "frechet" in r and "identifiability" in r:
            out.append(table(["layer", "corpus a", "corpus b", "FD", "FD/var"],
                              [[f["layer"], f["a"], f["b"], num4(f.get("frechet")), fmt(f.get("frechet_norm"))]
                               for f in r["frechet"]]))
            corpora = r.get("corpora", [])
            out.append(table(["layer", "balanced acc.", "AUROC", "split", *[f"recall {c}" for c in corpora]],
                              [[layer, fmt(v.get("balanced_accuracy")), fmt(v.get("auroc")), v.get("split"),
                                *[fmt((v.get("per_corpus_recall") or {}).get(c)) for c in corpora]]
                               for layer, v in r["identifiability"].items()]))
        elif r is not None:
            out.append(generic(r))
    if not section["items"]:
        out.append("<p>No domain-gap results.</p>")
    return "\n".join(out)


def provenance_section(s: dict[str, Any]) -> str:
    v = s["versions"]
    out = ["<h2 id=provenance>Provenance</h2>",
           f"<p>embedprobe {esc(v.get('embedprobe'))} · code {esc(s['code_version'])} · python "
           f"{esc(v.get('python'))} · torch {esc(v.get('torch'))} · numpy {esc(v.get('numpy'))} · "
           f"scikit-learn {esc(v.get('scikit-learn'))} · {esc(v.get('platform'))}</p>",
           "<details><summary>bench config (resolved)</summary><pre>" + esc(json.dumps(s["config"], indent=1))
           + "</pre></details>", "<h3>Corpora and caches</h3>"]
    rows = []
    for c in s["corpora"]:
        src = f"synthetic {c['synthetic']} {json.dumps(c['synth'])}" if c["synthetic"] else c["root"]
        for model, info in (c["caches"] or {"–": None}).items():
            rows.append([c["key"], c["reader"], src, c["protocol"] or "default", model,
                         info["fingerprint"] if info else "–", info["n_labelled"] if info else "–",
                         info["n_folds"] if info else "–"])
    out.append(table(["corpus", "reader", "source", "protocol", "model", "cache fingerprint",
                       "4-class clips", "folds"], rows))
    out.append("<h3>Jobs</h3>")
    for j in s["jobs"]:
        p = s["provenance"].get(j["id"])
        head = (f"<span class='pill {j['status']}'>{j['status']}</span> <code>{esc(j['id'])}</code> "
                f"<span class=muted>({esc(j['role'])}, {j['seconds']:.1f} s)</span>")
        body = [f"<p class=small>train {esc('+'.join(j['train']))} · tests {esc(', '.join(j['tests']))} · "
                f"seeds {j['seeds']} · scrambled {esc('+'.join(j['scramble']) or 'none')}</p>"]
        if j.get("error"):
            body.append(f"<div class=err>{esc(j['error'])}</div>")
        if p:
            body.append(f"<p class=small>results <a href='{esc(p['results'])}'>{esc(p['results'])}</a> · job "
                        f"fingerprint {esc(p['job_fingerprint'])} · code {esc(p['code_version'])} · torch "
                        f"{esc((p['versions'] or {}).get('torch'))} · {p['seconds']} s</p>")
            body.append(table(["corpus", "cache fingerprint", "extractor", "weights", "layer", "protocol",
                                "folds", "4-class", "split fingerprint"],
                               [[k, c["fingerprint"], c["extractor"], c["weights_revision"], c["layer"],
                                 c["protocol"], c["n_folds"], c["n_4class"], c["split_fingerprint"]]
                                for k, c in p["caches"].items()]))
            body.append("<details><summary>config, resolved settings and versions</summary><pre>" + esc(json.dumps(
                {"config": p["config"], "resolved": p["resolved"], "versions": p["versions"]}, indent=1))
                + "</pre></details>")
        out.append(f"<div id='job-{esc(j['id'])}'><details><summary>{head}</summary>{''.join(body)}</details></div>")
    return "\n".join(out)



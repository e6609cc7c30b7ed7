"""The domain-gap record of one extractor as Markdown (two tables next to the emotion matrices).

``markdown(record)`` formats what :func:`embedprobe.pipeline.domain.domain_gap_for` returns (and
writes as ``domain__<model>.json``): the Fréchet distance per layer and corpus pair, and the
corpus identifiability per layer. It computes nothing: every number is read from the record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embedprobe.report.escape import md

DOMAIN_KIND = "embedprobe.domain"


def markdown(record: dict[str, Any]) -> str:
    """Two Markdown tables: Fréchet distances per layer and pair, identifiability per layer."""
    lines = [f"## Domain gap: {md(record['model'])}", "",
             f"Corpora: {md(', '.join(record['corpora']))} (4-class clips, mean-pooled). "
             "FD/var = Fréchet distance / mean total variance (scale-free).", "",
             "| layer | pair | FD | FD/var | mean term | cov term | shrinkage |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in record["frechet"]:
        lines.append(f"| {md(r['layer'])} | {md(r['a'])} vs {md(r['b'])} | {r['frechet']:.4g} | {r['frechet_norm']:.3f} "
                     f"| {r['mean_term']:.4g} | {r['cov_term']:.4g} | {r['shrinkage']} |")
    lines += ["", "Corpus identifiability (a probe predicting the corpus; chance = "
              f"{1 / len(record['corpora']):.2f} balanced accuracy, 0.5 AUROC):", "",
              "| layer | balanced acc. | AUROC | split | " + " | ".join(f"recall {md(c)}" for c in record["corpora"])
              + " |",
              "|---|---:|---:|---|" + "---:|" * len(record["corpora"])]
    for layer, r in record["identifiability"].items():
        lines.append(f"| {md(layer)} | {r['balanced_accuracy']:.3f} | {r['auroc']:.3f} | {md(r['split'])} | "
                     + " | ".join(f"{r['per_corpus_recall'][c]:.3f}" for c in record["corpora"]) + " |")
    return "\n".join(lines) + "\n"


def domain_sections(results_dir: Path) -> list[str]:
    """The Markdown of every domain-gap JSON (``domain__*.json``) under ``results_dir``."""
    lines: list[str] = []
    for p in sorted(Path(results_dir).rglob("domain__*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict) and rec.get("kind") == DOMAIN_KIND:
            lines += [markdown(rec), ""]
    return lines

"""model_card.md: a readable page from a model's metadata.json (nothing here that metadata lacks)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fpipe.render.model_summary import fmt_metric

LOWER_IS_BETTER = {"logloss", "brier", "rmse", "mae"}


def _engine_line(meta: Mapping[str, Any]) -> str:
    engine, info = meta.get("engine", "local"), meta.get("engine_info") or {}
    if engine != "dask":
        return f"- **Engine**: {engine} (xgboost.train in one process)"
    where = "a LocalCluster started by fpipe" if info.get("local_cluster") else f"`{info.get('scheduler')}`"
    return f"- **Engine**: dask (xgboost.dask.train on {info.get('workers')} workers of {where})"


def render_model_card(meta: Mapping[str, Any], plots: Sequence[str] = ()) -> str:
    m = meta["metrics"]
    split = meta["split"]
    lines = [
        f"# Model card: {meta['model']} {meta['version']}",
        "",
        f"- **Objective**: `{meta['objective']}` ({meta['kind']}), label `{meta['label']['name']}`",
        f"- **Training set**: `{meta['training_set']}`; spine time `{meta['spine']['time_column']}`",
        f"- **Created**: {meta['created_at']} with fpipe {meta['versions']['fpipe']}, xgboost {meta['versions']['xgboost']}",
        f"- **Booster**: `{meta['model_file']}` (sha256 `{meta['model_sha256'][:16]}...`), "
        f"{meta['best_iteration'] + 1} trees (best iteration {meta['best_iteration']} of at most {meta['num_boost_round']})",
        _engine_line(meta),
        f"- **Feature definitions hash**: `{meta.get('feature_definitions_hash') or 'unknown (no manifest)'}`",
        "",
    ]
    verdict = "PASSED" if not m["gate_failures"] and m["beats_baseline"] else "FAILED"
    lines += [f"## Verdict: {verdict}", ""]
    if not m["beats_baseline"]:
        lines.append("- The model does **not** beat the trivial baseline on the test period.")
    for f in m["gate_failures"]:
        lines.append(f"- Gate missed: {f}")
    if verdict == "PASSED":
        lines.append("- Beats the trivial baseline on the test period" + (" and meets every gate." if m["gates"] else "."))
    lines.append("")
    if meta["warnings"]:
        lines += ["## Warnings", ""]
        lines += [f"- **{w}**" for w in meta["warnings"]]
        lines.append("")

    lines += ["## Test metrics (later time period, never seen in training)", "", "| metric | model | baseline |", "|---|---|---|"]
    for k, v in m["test"].items():
        arrow = " (lower is better)" if k in LOWER_IS_BETTER else ""
        lines.append(f"| {k}{arrow} | {fmt_metric(v)} | {fmt_metric(m['baseline'].get(k))} |")
    lines += ["", f"Baseline: {m['baseline_description']}.", ""]
    if m["gates"]:
        lines += ["Gates: " + ", ".join(f"`{k}: {v}`" for k, v in m["gates"].items()), ""]

    lines += ["## Time split", "", f"Purge gap **{split['gap']}** (label looks {split['label_reach']} ahead); "
              f"valid from {split['valid_start']}, test from {split['test_start']}.", "",
              "| part | rows | from | to |", "|---|---|---|---|"]
    for part, r in split["ranges"].items():
        lines.append(f"| {part} | {r['rows']} | {r['start']} | {r['end']} |")
    purged = split["purged_rows"]
    lines += ["", f"Rows dropped in the purge gaps: {purged.get('train', 0)} before valid, {purged.get('valid', 0)} before test; "
              f"rows without a label: {split['label_missing_rows']}.", ""]

    if meta.get("folds"):
        lines += ["## Rolling-origin backtest", "", "| fold | test from | test to | rows | metric | model | baseline |",
                  "|---|---|---|---|---|---|---|"]
        for f in meta["folds"]:
            if "skipped" in f:
                lines.append(f"| {f['fold']} | | | | skipped: {f['skipped']} | | |")
                continue
            t = f["ranges"]["test"]
            lines.append(f"| {f['fold']} | {t['start']} | {t['end']} | {t['rows']} | {f['metric']} | {fmt_metric(f['model'])} | {fmt_metric(f['baseline'])} |")
        lines.append("")

    if m.get("calibration"):
        lines += ["## Calibration (test)", "", "| predicted | rows | mean predicted | observed |", "|---|---|---|---|"]
        for r in m["calibration"]:
            lines.append(f"| {r['bin']} | {r['count']} | {r['mean_predicted']:.3f} | {r['observed_rate']:.3f} |")
        lines.append("")

    lines += ["## Features (the contract: scoring refuses a table that differs)", "",
              "| # | feature | dtype | importance | alone | categories |", "|---|---|---|---|---|---|"]
    for i, f in enumerate(meta["features"], start=1):
        cats = f.get("categories")
        shown = "" if cats is None else (", ".join(cats[:6]) + (f" (+{len(cats) - 6})" if len(cats) > 6 else ""))
        alone = meta["single_feature"].get(f["name"])
        lines.append(
            f"| {i} | `{f['name']}` | {f['dtype']} | {meta['importance'].get(f['name'], 0):.1%} | {fmt_metric(alone)} | {shown} |"
        )
    lines += ["", "`alone`: the feature used alone (direction-free AUC, or |rank correlation| for regression).", ""]

    lines += ["## Parameters", "", "```json"]
    lines += [json.dumps(meta["params"], indent=2, sort_keys=True), "```", ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)

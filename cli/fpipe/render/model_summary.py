"""Plain-text summaries for `fpipe train`, `fpipe models list` and `fpipe models compare`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def fmt_metric(v: Any) -> str:
    """A metric value: 4 decimals, `n/a` for none (also used by model_card.py)."""
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def format_train_summary(meta: Mapping[str, Any], path: str) -> str:
    m, split = meta["metrics"], meta["split"]
    r = split["ranges"]
    lines = [
        f"trained {meta['model']} {meta['version']} ({meta['objective']}) -> {path}",
        f"  train {r['train']['start']} .. {r['train']['end']} ({r['train']['rows']} rows)",
        f"  valid {r['valid']['start']} .. {r['valid']['end']} ({r['valid']['rows']} rows)",
        f"  test  {r['test']['start']} .. {r['test']['end']} ({r['test']['rows']} rows)",
        f"  purge gap {split['gap']} (label reach {split['label_reach']}): "
        f"{split['purged_rows']['train']} + {split['purged_rows']['valid']} rows dropped",
        f"  best iteration {meta['best_iteration']} of at most {meta['num_boost_round']}",
        "",
        f"  {'metric':<10} {'model':>9} {'baseline':>9}",
    ]
    for k, v in m["test"].items():
        lines.append(f"  {k:<10} {fmt_metric(v):>9} {fmt_metric(m['baseline'].get(k)):>9}")
    for f in meta.get("folds", []):
        if "skipped" in f:
            lines.append(f"  fold {f['fold']}: skipped ({f['skipped']})")
            continue
        t = f["ranges"]["test"]
        lines.append(
            f"  fold {f['fold']}: test {t['start']} .. {t['end']} ({t['rows']} rows) "
            f"{f['metric']} {fmt_metric(f['model'])} vs baseline {fmt_metric(f['baseline'])}"
        )
    verdict = "beats the baseline" if m["beats_baseline"] else "does NOT beat the baseline"
    gates = f"; gates missed: {', '.join(m['gate_failures'])}" if m["gate_failures"] else (
        "; gates met" if m["gates"] else ""
    )
    lines += ["", f"  {verdict}{gates}", f"  card: {path}/model_card.md"]
    return "\n".join(lines)


def format_models_list(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "no models"
    head = f"{'model':<24} {'version':<8} {'current':<8} {'created':<21} {'metric':<8} {'test':>8} {'baseline':>9} {'passed':<6}"
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:<24} {r['version']:<8} {r['error']}")
            continue
        lines.append(
            f"{r['model']:<24} {r['version']:<8} {'*' if r['current'] else '':<8} {str(r['created_at']):<21} "
            f"{str(r['primary_metric']):<8} {fmt_metric(r['test']):>8} {fmt_metric(r['baseline']):>9} {'yes' if r['passed'] else 'no':<6}"
        )
    return "\n".join(line.rstrip() for line in lines)


def format_compare(result: Mapping[str, Any]) -> str:
    s = result["slice"]
    metric = result["metric"]
    cand, curr = result["candidate"], result["current"]
    lines = [
        f"compare {result['model']}: candidate {cand['version']} vs current {curr['version']}",
        f"  most recent slice: {s['start']} .. {s['end']} ({s['rows']} rows)",
        f"  {'metric':<10} {cand['version']:>9} {curr['version']:>9}",
    ]
    for k in cand["metrics"]:
        lines.append(f"  {k:<10} {fmt_metric(cand['metrics'][k]):>9} {fmt_metric(curr['metrics'][k]):>9}")
    verdict = "WORSE than" if result["candidate_worse"] else "not worse than"
    lines.append(f"  candidate is {verdict} current on {metric} (tolerance {result['tolerance']:g})")
    return "\n".join(lines)

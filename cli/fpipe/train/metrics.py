"""Model metrics with numpy only (no sklearn): the one place a metric is defined.

Binary: AUC (rank based, ties averaged), PR-AUC (average precision), log loss, Brier, calibration table.
Regression: RMSE, MAE, R2. Multiclass: accuracy, log loss. Each `*_metrics` function returns a plain
dict of floats, used for the model, the trivial baseline and the gates alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 1e-15

# metric -> True when higher is better (gates: min_<metric> / max_<metric>)
HIGHER_IS_BETTER: dict[str, bool] = {
    "auc": True,
    "pr_auc": True,
    "logloss": False,
    "brier": False,
    "rmse": False,
    "mae": False,
    "r2": True,
    "accuracy": True,
}

# the metric each kind of model is judged on first (compare, backtest folds)
PRIMARY_METRIC: dict[str, str] = {"binary": "auc", "regression": "rmse", "multiclass": "logloss"}


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    # boundaries of runs of equal values
    change = np.concatenate(([True], xs[1:] != xs[:-1], [True]))
    starts = np.flatnonzero(change[:-1])
    ends = np.flatnonzero(change[1:]) + 1
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1 .. end
    run_ids = np.cumsum(change[:-1]) - 1
    ranks[order] = avg[run_ids]
    return ranks


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U); NaN when only one class is present."""
    y = np.asarray(y, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _ranks(score)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def single_feature_auc(y: np.ndarray, values: np.ndarray) -> float:
    """Direction-free AUC of one feature used alone: max(auc, 1 - auc). Missing values rank lowest."""
    v = np.asarray(values, dtype=np.float64).copy()
    v[np.isnan(v)] = -np.inf
    a = auc(y, v)
    if np.isnan(a):
        return a
    return max(a, 1.0 - a)


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0) to (1, 1)."""
    y = np.asarray(y, dtype=bool)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="mergesort")
    ys, ss = y[order], np.asarray(score, dtype=np.float64)[order]
    distinct = np.flatnonzero(np.concatenate((ss[1:] != ss[:-1], [True])))
    tps = np.cumsum(ys)[distinct]
    fps = (distinct + 1) - tps
    n_pos, n_neg = max(int(y.sum()), 1), max(len(y) - int(y.sum()), 1)
    return np.concatenate(([0.0], fps / n_neg)), np.concatenate(([0.0], tps / n_pos))


def pr_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct threshold, highest threshold first."""
    y = np.asarray(y, dtype=bool)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="mergesort")
    ys, ss = y[order], np.asarray(score, dtype=np.float64)[order]
    distinct = np.flatnonzero(np.concatenate((ss[1:] != ss[:-1], [True])))
    tps = np.cumsum(ys)[distinct].astype(np.float64)
    predicted = (distinct + 1).astype(np.float64)
    n_pos = max(int(y.sum()), 1)
    return tps / n_pos, tps / predicted


def pr_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Average precision: sum over thresholds of (recall step) x precision."""
    y = np.asarray(y, dtype=bool)
    if not y.any():
        return float("nan")
    recall, precision = pr_curve(y, score)
    steps = np.diff(np.concatenate(([0.0], recall)))
    return float(np.sum(steps * precision))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2))


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Equal-width bins of predicted probability: count, mean predicted, observed rate (empty bins left out)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    rows: list[dict[str, Any]] = []
    for b in range(bins):
        mask = idx == b
        n = int(mask.sum())
        if n == 0:
            continue
        rows.append(
            {
                "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                "count": n,
                "mean_predicted": float(p[mask].mean()),
                "observed_rate": float(y[mask].mean()),
            }
        )
    return rows


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"auc": auc(y, p), "pr_auc": pr_auc(y, p), "logloss": log_loss(y, p), "brier": brier(y, p)}


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    err = pred - y
    ss_tot = float(np.sum((y - y.mean()) ** 2)) if len(y) else 0.0
    r2 = 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan")
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))), "r2": r2}


def multiclass_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """y: class indices 0..K-1; proba: (n, K) rows summing to 1."""
    y = np.asarray(y, dtype=np.int64)
    proba = np.clip(np.asarray(proba, dtype=np.float64), EPS, 1.0)
    picked = proba[np.arange(len(y)), y]
    return {
        "accuracy": float(np.mean(np.argmax(proba, axis=1) == y)),
        "logloss": float(-np.mean(np.log(picked))),
    }


def metrics_for(kind: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    if kind == "binary":
        return binary_metrics(y, pred)
    if kind == "regression":
        return regression_metrics(y, pred)
    return multiclass_metrics(y, pred)


def is_better(metric: str, model: float, baseline: float, tolerance: float = 0.0) -> bool:
    """True when `model` beats `baseline` on `metric` by more than `tolerance` (NaN never beats)."""
    if np.isnan(model) or np.isnan(baseline):
        return False
    if HIGHER_IS_BETTER[metric]:
        return model > baseline + tolerance
    return model < baseline - tolerance

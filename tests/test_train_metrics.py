"""Metrics (numpy, no sklearn) against brute-force definitions, on tiny data full of ties."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fpipe.train import metrics as M


def auc_oracle(y: list[bool], s: list[float]) -> float:
    """P(score of a random positive > score of a random negative), ties count 1/2."""
    pos = [v for v, t in zip(s, y, strict=True) if t]
    neg = [v for v, t in zip(s, y, strict=True) if not t]
    if not pos or not neg:
        return math.nan
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def ap_oracle(y: list[bool], s: list[float]) -> float:
    """Average precision: at each distinct threshold (descending), recall gain x precision."""
    n_pos = sum(y)
    out, prev_recall = 0.0, 0.0
    for thr in sorted(set(s), reverse=True):
        chosen = [t for v, t in zip(s, y, strict=True) if v >= thr]
        tp = sum(chosen)
        recall = tp / n_pos
        out += (recall - prev_recall) * (tp / len(chosen))
        prev_recall = recall
    return out


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4)), min_size=1, max_size=30))
def test_auc_matches_pairwise_oracle_with_ties(rows: list[tuple[bool, int]]) -> None:
    y = [r[0] for r in rows]
    s = [float(r[1]) for r in rows]
    got, want = M.auc(np.array(y), np.array(s)), auc_oracle(y, s)
    assert (math.isnan(got) and math.isnan(want)) or abs(got - want) < 1e-12


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4)), min_size=1, max_size=30))
def test_pr_auc_matches_oracle(rows: list[tuple[bool, int]]) -> None:
    y = [r[0] for r in rows]
    s = [float(r[1]) for r in rows]
    if not any(y):
        assert math.isnan(M.pr_auc(np.array(y), np.array(s)))
        return
    assert abs(M.pr_auc(np.array(y), np.array(s)) - ap_oracle(y, s)) < 1e-12


def test_single_feature_auc_is_direction_free_and_missing_ranks_lowest() -> None:
    y = np.array([True, True, False, False])
    assert M.single_feature_auc(y, np.array([0.0, 1.0, 2.0, 3.0])) == 1.0
    assert M.single_feature_auc(y, np.array([3.0, 2.0, np.nan, np.nan])) == 1.0


def test_binary_regression_multiclass_values() -> None:
    y = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.9, 0.2, 0.6, 0.4])
    m = M.binary_metrics(y, p)
    assert m["auc"] == 1.0
    assert abs(m["brier"] - np.mean([0.01, 0.04, 0.16, 0.16])) < 1e-12
    assert abs(m["logloss"] - -np.mean(np.log([0.9, 0.8, 0.6, 0.6]))) < 1e-12
    r = M.regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert r["mae"] == 2 / 3 and abs(r["rmse"] - math.sqrt(4 / 3)) < 1e-12 and r["r2"] == 1 - 4 / 2
    mc = M.multiclass_metrics(np.array([0, 2]), np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    assert mc["accuracy"] == 1.0 and abs(mc["logloss"] - -np.mean(np.log([0.5, 0.8]))) < 1e-12


def test_calibration_table_bins() -> None:
    rows = M.calibration_table(np.array([0, 1, 1, 1]), np.array([0.05, 0.05, 0.95, 1.0]))
    assert rows == [
        {"bin": "0.0-0.1", "count": 2, "mean_predicted": 0.05, "observed_rate": 0.5},
        {"bin": "0.9-1.0", "count": 2, "mean_predicted": 0.975, "observed_rate": 1.0},
    ]


def test_is_better_respects_direction_and_tolerance() -> None:
    assert M.is_better("auc", 0.71, 0.70) and not M.is_better("auc", 0.71, 0.70, tolerance=0.02)
    assert M.is_better("rmse", 1.0, 2.0) and not M.is_better("logloss", 0.7, 0.6)
    assert not M.is_better("auc", math.nan, 0.5)
